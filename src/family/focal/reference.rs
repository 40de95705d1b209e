//! Reference `focal` and `poly1` (SPEC §5) on the certified interval core.
//!
//! Both are functions of the target's log-probability u = log p_y: with r = 1 − p_y
//! evaluated as −expm1(u) = Σ_{j≠y} p_j (never as 1 − p_y, which cancels as p_y → 1) and
//! ℓ = −u,
//!
//! * `focal`: l = α_y·r^γ·ℓ, and ∂l/∂z_j = k·(p_j − [j = y]) with
//!   k = α_y·r^γ·(1 + γ·p_y·ℓ/r) (two non-negative terms; r^γ = e^{γ ln r}, 1 exactly
//!   for γ = 0);
//! * `poly1`: l = ℓ + ε·r, and ∂l/∂z_j = k·(p_j − [j = y]) with k = 1 + ε·p_y, evaluated
//!   as r + (1 + ε)·p_y (no cancellation for ε ≥ −1).
//!
//! p_y − 1 is −r itself. The loss is the reduction of the rows' terms over N.

use super::{FocalCase, TargetRule};
use crate::answer::{Answer, Tensor};
use crate::mp::interval::Interval;
use crate::reference::blocks::RowsPart;
use crate::reference::softmax::{reduce, ShiftedRow};
use crate::spec::Reduction;
use std::ops::Range;

/// One row: the term l and the unreduced gradient.
fn row_terms(case: &FocalCase, row: &[Interval], y: usize, prec: u32) -> (Interval, Vec<Interval>) {
    let shifted_row = ShiftedRow::new(row);
    let log_p = shifted_row.log_p(y);
    let nl = log_p.neg();
    let r = log_p.exp_m1().neg();
    let p_y = log_p.exp();
    let (loss, k) = match &case.rule {
        TargetRule::Focal { gamma, alpha } => {
            let a = Interval::from_f64(prec, alpha.as_ref().map_or(1.0, |a| a[y]));
            let g = Interval::from_f64(prec, *gamma);
            let rg = if *gamma == 0.0 {
                Interval::from_i64(prec, 1)
            } else {
                r.ln().mul(&g).exp()
            };
            let weight = a.mul(&rg);
            // 1 + γ·p_y·ℓ/r
            let slope = Interval::from_i64(prec, 1).add(&g.mul(&p_y).mul(&nl.div(&r)));
            (weight.mul(&nl), weight.mul(&slope))
        }
        TargetRule::Poly1 { epsilon } => {
            let eps = Interval::from_f64(prec, *epsilon);
            let one_plus = Interval::from_i64(prec, 1).add(&eps);
            (nl.add(&eps.mul(&r)), r.add(&one_plus.mul(&p_y)))
        }
    };
    let grad = (0..row.len())
        .map(|j| {
            if j == y {
                k.mul(&r).neg()
            } else {
                k.mul(&shifted_row.p(j))
            }
        })
        .collect();
    (loss, grad)
}

/// A `focal` or `poly1` case at `prec` bits: output `loss`, gradient `logits`.
pub fn evaluate(case: &FocalCase, prec: u32) -> Answer<Interval> {
    let part = rows(case, 0..case.logits.rows(), prec);
    Answer {
        outputs: reduce_terms(case, &part.terms).outputs,
        gradients: part.answer.gradients,
    }
}

/// The gradient rows for the rows in `rows` (divided by the whole case's N for `mean`) and
/// each row's term.
pub(crate) fn rows(case: &FocalCase, rows: Range<usize>, prec: u32) -> RowsPart {
    let n = case.logits.rows() as i64;
    let divisor = (case.reduction == Reduction::Mean).then(|| Interval::from_i64(prec, n));
    RowsPart::of_logit_rows(
        &case.logits,
        rows,
        prec,
        "logits",
        divisor.as_ref(),
        |row, i| row_terms(case, row, case.labels[i], prec),
    )
}

/// The loss from every row's term, reduced over N.
pub(crate) fn reduce_terms(case: &FocalCase, terms: &[Interval]) -> Answer<Interval> {
    Answer {
        outputs: vec![("loss", Tensor::Scalar(reduce(terms, case.reduction)))],
        gradients: vec![],
    }
}
