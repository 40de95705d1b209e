//! High-precision numerical differentiation: the independent check of every analytic
//! reference gradient.
//!
//! The central difference (f(x + h·e_k) − f(x − h·e_k)) / 2h has truncation error
//! h²·f'''(ξ)/6. With h = 2^[`STEP_LOG2`] = 2^−100 that is about 10^−61 relative for the
//! smooth losses of SPEC §1, far below the 40 significant digits the tests demand, and the
//! subtraction is exact enough because `f` is evaluated at a working precision chosen by
//! the caller well above the cancellation (≈ 100 bits + the dynamic range of the gradient).
//! Nothing here shares code with the analytic gradients: only the loss value is used.

use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use rug::Float;

/// log₂ of the default step h.
pub const STEP_LOG2: i32 = -100;

/// ∂f/∂x_k for every entry of `at`, by central differences with step 2^`step_log2`,
/// evaluating `f` (a loss on enclosures) at `prec` bits and differencing the midpoints.
pub fn gradient(
    f: impl Fn(&Matrix<Interval>) -> Interval,
    at: &Matrix<f64>,
    prec: u32,
    step_log2: i32,
) -> Matrix<Float> {
    let h = Interval::from_float(Float::with_val(prec, Float::i_exp(1, step_log2)));
    let base = at.map(|&x| Interval::from_f64(prec, x));
    Matrix::from_fn(at.rows(), at.cols(), |i, j| {
        let shifted = |step: &Interval| {
            let mut x = base.clone();
            *x.get_mut(i, j) = base.get(i, j).add(step);
            f(&x).mid()
        };
        let plus = shifted(&h);
        let minus = shifted(&h.neg());
        let mut d = Float::with_val(prec, &plus - &minus);
        d >>= step_log2 + 1; // divide by 2h = 2^(step_log2 + 1)
        d
    })
}

/// Number of agreeing significant decimal digits, −log₁₀(|a − b| / |b|); `f64::INFINITY`
/// when equal, and 0 when `b = 0 ≠ a`.
pub fn agreement_digits(a: &Float, b: &Float) -> f64 {
    let prec = a.prec().max(b.prec());
    let diff = Float::with_val(prec, a - b).abs();
    if diff.is_zero() {
        return f64::INFINITY;
    }
    if b.is_zero() {
        return 0.0;
    }
    let rel = Float::with_val(prec, &diff / Float::with_val(prec, b.abs_ref()));
    -Float::with_val(prec, rel.log10_ref()).to_f64()
}
