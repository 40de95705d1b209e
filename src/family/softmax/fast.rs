//! Fast `softmax`, `log_softmax` and `softmax_ce` forward+backward (SPEC §1), batched over
//! row-major N×C logits, generic over [`Real`] (f32, f64).
//!
//! # Method (per row)
//! With m = max_j z_j at column j*, each exponent (z_j − m)/T is carried as an unevaluated
//! sum x_j + c_j: TwoSum gives z_j − m = d + e exactly, the division q = fl(d/T) has its
//! remainder r = d − qT exactly by one FMA (both skipped for T = 1), so that
//! (z_j − m)/T = q + (r + e)/T, with x_j = q and a tiny correction c_j = (r + e)/T.
//! Then t_j = e^{x_j}(1 + c_j) is accurate to about one ulp even when |z_j − m| is 10³
//! (a plain fl(z_j − m) would cost up to |z_j − m| ulps). S′ = Σ_{j≠j*} t_j is a
//! compensated sum, so its error does not grow with C, and Σ_j t_j = 1 + S′. Then
//!
//! * p_j = t_j / (1 + S′), log p_j = (x_j − ln1p(S′)) + c_j;
//! * CE = ln1p(S′) + (m − z_y), which keeps full relative accuracy for a dominant target
//!   (CE ≈ S′ down to the underflow threshold), where ln(Σ t) would round to 0;
//! * ∂CE/∂z_y = p_y − 1 = −S′/(1 + S′) when y = j*, again without cancellation; when y ≠ j*,
//!   p_y ≤ ½, so p_y − 1 is benign.
//!
//! The batch loss is a compensated (Neumaier) sum of the per-row terms, divided by N for
//! `mean`; the gradient is divided by N for `mean`.

use crate::error::{Error, Result};
use crate::fast::real::{compensated_sum, two_sum, Real};
use crate::spec::Reduction;

/// Checks the shape and finiteness of a logits buffer; returns N.
fn check_logits<T: Real>(logits: &[T], cols: usize) -> Result<usize> {
    if cols < 2 {
        return Err(Error::invalid(
            "logits",
            format!("C = {cols}; a softmax needs C ≥ 2"),
        ));
    }
    if logits.is_empty() || logits.len() % cols != 0 {
        return Err(Error::invalid(
            "logits",
            format!(
                "length {} is not a positive multiple of C = {cols}",
                logits.len()
            ),
        ));
    }
    if let Some(k) = logits.iter().position(|z| !z.is_finite()) {
        return Err(Error::invalid(
            format!("logits[{}][{}]", k / cols, k % cols),
            format!("{} is not finite", logits[k]),
        ));
    }
    Ok(logits.len() / cols)
}

fn check_temperature<T: Real>(temperature: T) -> Result<()> {
    if temperature > T::zero() && temperature.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(
            "temperature",
            format!("must be finite and > 0, got {temperature}"),
        ))
    }
}

/// One row's exponents in the split form of the module docs.
struct Row<T> {
    /// Column of the maximum (the first one on ties).
    argmax: usize,
    /// ln1p(S′) = ln Σ_j e^{(z_j − m)/T}.
    log_sum: T,
    /// S′ = Σ_{j≠j*} t_j.
    rest: T,
}

/// Per-row scratch: the leading parts x_j, the corrections c_j and the terms t_j.
struct Scratch<T> {
    x: Vec<T>,
    c: Vec<T>,
    t: Vec<T>,
}

impl<T: Real> Scratch<T> {
    fn new(cols: usize) -> Scratch<T> {
        Scratch {
            x: vec![T::zero(); cols],
            c: vec![T::zero(); cols],
            t: vec![T::zero(); cols],
        }
    }

    /// Splits row `z` (module docs): fills x, c and t = e^{x}(1 + c), one exp per entry.
    #[inline]
    fn split(&mut self, z: &[T], temperature: T) -> Row<T> {
        let mut argmax = 0;
        for (j, &v) in z.iter().enumerate() {
            if v > z[argmax] {
                argmax = j;
            }
        }
        let m = z[argmax];
        let unit_temperature = temperature == T::one();
        // S′ is summed with Neumaier compensation, so its error does not grow with C.
        let (mut rest, mut comp) = (T::zero(), T::zero());
        let mut add = |t: T| {
            let (s, e) = two_sum(rest, t);
            rest = s;
            comp += e;
        };
        for (j, &zj) in z.iter().enumerate() {
            if j == argmax {
                (self.x[j], self.c[j], self.t[j]) = (T::zero(), T::zero(), T::one());
                continue;
            }
            let (d, e) = two_sum(zj, -m);
            if unit_temperature && d.is_finite() {
                // T = 1 (every softmax_ce row): the exponent is d + e, no division.
                let ex = d.exp();
                let t = ex + ex * e;
                (self.x[j], self.c[j], self.t[j]) = (d, e, t);
                add(t);
                continue;
            }
            let q = d / temperature;
            if !d.is_finite() || !q.is_finite() {
                // z_j − m or its quotient by T overflows: halve before dividing. e^{q} = 0
                // here, so only log_softmax sees q, to within a few ulps.
                let two = T::one() + T::one();
                (self.x[j], self.c[j], self.t[j]) = (
                    (zj / two - m / two) / temperature * two,
                    T::zero(),
                    T::zero(),
                );
                continue;
            }
            let r = (-q).mul_add(temperature, d);
            let c = (r + e) / temperature;
            let ex = q.exp();
            // e^{q}(1 + c): |c| ≲ ulp(q), so ex·c is a tiny correction whose own rounding is
            // negligible and a plain multiply-add is as accurate as an FMA here.
            let t = ex + ex * c;
            (self.x[j], self.c[j], self.t[j]) = (q, c, t);
            add(t);
        }
        let rest = rest + comp;
        Row {
            argmax,
            log_sum: rest.ln_1p(),
            rest,
        }
    }
}

/// Row-wise softmax of `logits / temperature` into `out` (same length as `logits`).
///
/// # Errors
/// C < 2, a length that is not a multiple of C, a non-finite logit (named by row and
/// column), a temperature that is not finite and > 0, or `out` of the wrong length.
pub fn softmax<T: Real>(logits: &[T], cols: usize, temperature: T, out: &mut [T]) -> Result<()> {
    check_logits(logits, cols)?;
    check_temperature(temperature)?;
    check_out(out.len(), logits.len())?;
    let mut s = Scratch::new(cols);
    for (z, o) in logits.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let row = s.split(z, temperature);
        let total = T::one() + row.rest;
        for (oj, &tj) in o.iter_mut().zip(&s.t) {
            *oj = tj / total;
        }
    }
    Ok(())
}

/// Row-wise log-softmax of `logits / temperature` into `out`.
///
/// # Errors
/// As [`softmax`].
pub fn log_softmax<T: Real>(
    logits: &[T],
    cols: usize,
    temperature: T,
    out: &mut [T],
) -> Result<()> {
    check_logits(logits, cols)?;
    check_temperature(temperature)?;
    check_out(out.len(), logits.len())?;
    let mut s = Scratch::new(cols);
    for (z, o) in logits.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let row = s.split(z, temperature);
        for ((oj, &xj), &cj) in o.iter_mut().zip(&s.x).zip(&s.c) {
            *oj = (xj - row.log_sum) + cj;
        }
    }
    Ok(())
}

fn check_out(got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::invalid(
            "out",
            format!("has length {got}, expected {want}"),
        ))
    }
}

/// `softmax_ce` forward and backward: returns the reduced loss and writes ∂L/∂z into `grad`.
///
/// # Errors
/// As [`softmax`], plus a label count other than N or a label outside `0..C` (named).
pub fn softmax_ce_into<T: Real>(
    logits: &[T],
    cols: usize,
    labels: &[usize],
    reduction: Reduction,
    grad: &mut [T],
) -> Result<T> {
    let n = check_logits(logits, cols)?;
    check_out(grad.len(), logits.len())?;
    if labels.len() != n {
        return Err(Error::invalid(
            "labels",
            format!("has {} labels but the batch has N = {n} rows", labels.len()),
        ));
    }
    if let Some(i) = labels.iter().position(|&y| y >= cols) {
        return Err(Error::invalid(
            format!("labels[{i}]"),
            format!("label {} is out of range 0..{cols}", labels[i]),
        ));
    }
    let scale = match reduction {
        Reduction::Mean => T::of_usize(n),
        Reduction::Sum => T::one(),
    };
    let mut s = Scratch::new(cols);
    let mut losses = Vec::with_capacity(n);
    for ((z, g), &y) in logits
        .chunks_exact(cols)
        .zip(grad.chunks_exact_mut(cols))
        .zip(labels)
    {
        let row = s.split(z, T::one());
        // CE = ln1p(S′) + (m − z_y), with m − z_y = −(d_y + e_y) carried exactly.
        let (d_y, e_y) = two_sum(z[y], -z[row.argmax]);
        // |z_y − m| beyond the largest finite value: the loss is +∞ (correctly rounded), and
        // TwoSum's error term is NaN there.
        let e_y = if d_y.is_finite() { e_y } else { T::zero() };
        losses.push(-d_y + (row.log_sum - e_y));
        let total = T::one() + row.rest;
        for (gj, &tj) in g.iter_mut().zip(&s.t) {
            *gj = tj / total / scale;
        }
        // ∂CE/∂z_y = p_y − 1: −S′/(1 + S′) at the argmax (no cancellation), else p_y − 1 with p_y ≤ ½.
        g[y] = if y == row.argmax {
            -(row.rest / total) / scale
        } else {
            (s.t[y] / total - T::one()) / scale
        };
    }
    Ok(compensated_sum(losses) / scale)
}

/// [`softmax_ce_into`] with a freshly allocated gradient: `(loss, ∂L/∂z)`.
///
/// # Errors
/// As [`softmax_ce_into`].
pub fn softmax_ce<T: Real>(
    logits: &[T],
    cols: usize,
    labels: &[usize],
    reduction: Reduction,
) -> Result<(T, Vec<T>)> {
    let mut grad = vec![T::zero(); logits.len()];
    let loss = softmax_ce_into(logits, cols, labels, reduction, &mut grad)?;
    Ok((loss, grad))
}

/// One row of a cross-entropy-like loss after the split of the module docs: what `softmax_ce`
/// with options, `focal` and `poly1` read per class.
pub(crate) struct SplitRow<'a, T> {
    row: Row<T>,
    s: &'a Scratch<T>,
}

impl<T: Real> SplitRow<'_, T> {
    /// Σ_j t_j = 1 + S′.
    pub(crate) fn total(&self) -> T {
        T::one() + self.row.rest
    }

    /// p_j.
    pub(crate) fn p(&self, j: usize) -> T {
        self.s.t[j] / self.total()
    }

    /// 1 − p_j = Σ_{k≠j} p_k: S′/(1 + S′) at the argmax, else (1 + S′ − t_j)/(1 + S′) with
    /// t_j ≤ 1, both without cancellation.
    pub(crate) fn one_minus_p(&self, j: usize) -> T {
        if j == self.row.argmax {
            self.row.rest / self.total()
        } else {
            (self.total() - self.s.t[j]) / self.total()
        }
    }

    /// −log p_j = (ln1p(S′) − x_j) − c_j: two non-negative parts.
    pub(crate) fn neg_log_p(&self, j: usize) -> T {
        (self.row.log_sum - self.s.x[j]) - self.s.c[j]
    }
}

/// Runs `each` on every row of `logits` (checked as for [`softmax`]) split at T = 1, with
/// the row's index and its gradient slice.
pub(crate) fn for_each_split_row<T: Real>(
    logits: &[T],
    cols: usize,
    grad: &mut [T],
    mut each: impl FnMut(usize, &SplitRow<'_, T>, &mut [T]) -> Result<()>,
) -> Result<()> {
    check_logits(logits, cols)?;
    check_out(grad.len(), logits.len())?;
    let mut s = Scratch::new(cols);
    for (i, (z, g)) in logits
        .chunks_exact(cols)
        .zip(grad.chunks_exact_mut(cols))
        .enumerate()
    {
        let row = s.split(z, T::one());
        each(i, &SplitRow { row, s: &s }, g)?;
    }
    Ok(())
}

/// `softmax_ce` with SPEC §5's options (`crate::family::softmax::options`): each row's
/// coefficients a_i from `coefficients(i)`, the reduction's divisor `divisor` (1 for
/// `sum`). Returns the loss Σ_i l_i / D and writes ∂L/∂z into `grad`.
///
/// Per row, l_i = Σ_c a_c·(−log p_c) is a compensated sum of the terms, and the gradient
/// (A − a_j)·p_j − a_j·(1 − p_j) takes A − a_j from A held as an unevaluated pair (a
/// compensated sum), so that it is exactly 0 for an unsmoothed label and accurate for a
/// smoothed one.
///
/// # Errors
/// As [`softmax`], or coefficients of the wrong length.
pub fn weighted_softmax_ce_into<T: Real>(
    logits: &[T],
    cols: usize,
    coefficients: impl Fn(usize) -> Vec<T>,
    divisor: T,
    grad: &mut [T],
) -> Result<T> {
    let mut losses = Vec::with_capacity(logits.len() / cols.max(1));
    for_each_split_row(logits, cols, grad, |i, row, g| {
        let a = coefficients(i);
        if a.len() != cols {
            return Err(Error::invalid(
                format!("coefficients[{i}]"),
                format!("has {} entries for C = {cols}", a.len()),
            ));
        }
        // A = hi + lo, a compensated sum
        let (mut hi, mut lo) = (T::zero(), T::zero());
        for &ac in &a {
            let (s, e) = two_sum(hi, ac);
            hi = s;
            lo += e;
        }
        let mut terms = Vec::with_capacity(cols);
        for (j, (&aj, gj)) in a.iter().zip(g.iter_mut()).enumerate() {
            let (d, e) = two_sum(hi, -aj);
            let others = d + (e + lo);
            let mut v = others * row.p(j);
            if aj != T::zero() {
                terms.push(aj * row.neg_log_p(j));
                v -= aj * row.one_minus_p(j);
            }
            *gj = v / divisor;
        }
        losses.push(compensated_sum(terms));
        Ok(())
    })?;
    Ok(compensated_sum(losses) / divisor)
}
