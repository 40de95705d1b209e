//! Fast `focal` and `poly1` forward+backward (SPEC §5), generic over [`Real`], on the
//! softmax split of `crate::family::softmax::fast`: per row, p_y, r = 1 − p_y = Σ_{j≠y} p_j
//! and ℓ = −log p_y come from the split without cancellation, then the formulas of
//! [`super::reference`] (k·(p − onehot), with p_y − 1 = −r). For `focal`,
//! ℓ/r is taken as 1 where r underflows to 0 (its limit as p_y → 1, where ℓ = r + O(r²)).

use super::TargetRule;
use crate::error::Result;
use crate::family::softmax::fast::for_each_split_row;
use crate::fast::real::compensated_sum;
use crate::fast::Real;
use crate::spec::Reduction;

/// Returns the reduced loss and writes ∂L/∂z into `grad`; labels are checked by the caller.
///
/// # Errors
/// As `crate::family::softmax::fast::softmax`.
pub fn focal_into<T: Real>(
    logits: &[T],
    cols: usize,
    labels: &[usize],
    rule: &TargetRule,
    reduction: Reduction,
    grad: &mut [T],
) -> Result<T> {
    let n = logits.len() / cols.max(1);
    let scale = match reduction {
        Reduction::Mean => T::of_usize(n),
        Reduction::Sum => T::one(),
    };
    let mut losses = Vec::with_capacity(n);
    for_each_split_row(logits, cols, grad, |i, row, g| {
        let y = labels[i];
        let (p_y, r, nl) = (row.p(y), row.one_minus_p(y), row.neg_log_p(y));
        let (loss, k) = match rule {
            TargetRule::Focal { gamma, alpha } => {
                let a = T::of_f64(alpha.as_ref().map_or(1.0, |a| a[y]));
                let g = T::of_f64(*gamma);
                let rg = if g == T::zero() { T::one() } else { r.powf(g) };
                let ratio = if r == T::zero() { T::one() } else { nl / r };
                let weight = a * rg;
                (weight * nl, weight * (T::one() + g * p_y * ratio))
            }
            TargetRule::Poly1 { epsilon } => {
                let eps = T::of_f64(*epsilon);
                (nl + eps * r, r + (T::one() + eps) * p_y)
            }
        };
        losses.push(loss);
        for (j, gj) in g.iter_mut().enumerate() {
            *gj = if j == y { -(k * r) } else { k * row.p(j) } / scale;
        }
        Ok(())
    })?;
    Ok(compensated_sum(losses) / scale)
}
