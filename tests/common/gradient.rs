//! The one gradient checker: every analytic reference gradient against central differences
//! (`lossref::numdiff`) of an independent evaluation of the loss from its definition, with
//! one precision rule and one rule for exact zeros, for every loss.

use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::numdiff::{agreement_digits, gradient, STEP_LOG2};
use rug::Float;
use std::fmt::Display;

/// Significant decimal digits a nonzero analytic entry must share with the quotient.
pub const AGREEMENT_DIGITS: f64 = 40.0;

/// Bits below the loss's leading bit within which the quotient of an exact zero must
/// vanish. At an exact zero the quotient is the truncation h²·f'''/6 alone, about
/// 2^(e_L − 200)·|f'''/L| with h = 2^−100 (the evaluation's rounding is far smaller):
/// 2^(e_L − 170) leaves 2^30 for f'''/L (margins m³, scales s³, short feature vectors) and
/// still tells a zero from any derivative above 10^−51·|L|.
pub const ZERO_BITS: i32 = 170;

/// Checks `analytic` = ∂L/∂`at` (row-major enclosures from the reference) against central
/// differences of `loss_at(x, prec)`, the loss from its definition with this input replaced
/// by `x` and every other input at `prec` bits. `loss` is the reference's enclosure of L.
///
/// * **Precision.** The difference f(x + h) − f(x − h) of two values of size |L| must
///   resolve 2h·|g| for the smallest nonzero |g|: the quotient is computed at
///   160 + log₂(1/h) + max(0, e_L − e_g) + 64 bits (40 digits, the step, the dynamic range
///   of the gradient and a guard), where e is a binary exponent.
/// * **Nonzero entries** agree with the quotient to [`AGREEMENT_DIGITS`] digits, and their
///   enclosures are narrow enough for that comparison to mean something (relative width
///   below 10^−45).
/// * **Exact zeros** (a point enclosure at 0) need |quotient| ≤ 2^(e_L − [`ZERO_BITS`]),
///   where e_L is the loss's binary exponent: the derivative vanishes to 51 digits of the
///   loss.
pub fn check_gradient(
    what: &dyn Display,
    loss: &Interval,
    analytic: &[Interval],
    at: &Matrix<f64>,
    loss_at: impl Fn(&Matrix<Interval>, u32) -> Interval,
) {
    assert_eq!(
        analytic.len(),
        at.as_slice().len(),
        "{what}: one analytic entry per input"
    );
    let is_zero = |g: &Interval| g.is_point() && g.lo().is_zero();
    let loss_exp = loss.mid().get_exp().unwrap_or(0);
    let smallest = analytic
        .iter()
        .filter(|g| !is_zero(g))
        .filter_map(|g| g.mid().get_exp())
        .min()
        .unwrap_or(loss_exp);
    let range = (loss_exp - smallest).max(0) as u32;
    let prec = 160 + (-STEP_LOG2) as u32 + range + 64;
    let numeric = gradient(|x| loss_at(x, prec), at, prec, STEP_LOG2);
    let zero_bound = Float::with_val(64, Float::i_exp(1, loss_exp - ZERO_BITS));
    for (k, (g, nd)) in analytic.iter().zip(numeric.as_slice()).enumerate() {
        let cols = at.cols().max(1);
        let place = format!("[{}][{}]", k / cols, k % cols);
        if is_zero(g) {
            assert!(
                nd.clone().abs() <= zero_bound,
                "{what}{place}: an exact 0, but the difference quotient is {nd} (the rule: \
                 |quotient| ≤ 2^{})",
                loss_exp - ZERO_BITS
            );
            continue;
        }
        let width = Float::with_val(64, g.width() / g.mid().abs());
        assert!(
            width < 1e-45,
            "{what}{place}: the enclosure {g:?} is too wide to compare to 40 digits"
        );
        let d = agreement_digits(&g.mid(), nd);
        assert!(
            d >= AGREEMENT_DIGITS,
            "{what}{place}: analytic {} vs numerical {} agree to {d:.1} digits",
            g.mid().to_string_radix(10, Some(45)),
            nd.to_string_radix(10, Some(45))
        );
    }
}

/// `m` as point enclosures at `prec` bits.
pub fn points(m: &Matrix<f64>, prec: u32) -> Matrix<Interval> {
    m.map(|&v| Interval::from_f64(prec, v))
}
