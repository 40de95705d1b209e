//! The first round of `softmax_ce`'s certified loop without MPFR per logit: the same
//! mathematics as [`crate::reference::softmax::ce_row_over`], with every per-logit
//! quantity held as a [`Ball`] (proofs/certified_products.md §11).
//!
//! For a row z with target y, the exact shift m = max_j z_j (first index `top`), and
//! e_j = e^{z_j − m}: each z_j − m is formed exactly at 400 bits and e_j comes from the
//! fixed-point exponential as a ball (e_top = 1 exactly). R = Σ_{j≠top} e_j is summed on a
//! fixed grid into an enclosure; from there the per-row quantities are the MPFR path's own:
//! ℓ = ln1p(R), the term ℓ + (m − z_y), the target's (p_y − 1)/N = expm1(z_y − m − ℓ)/N,
//! and e^{−ℓ}/N, which becomes a ball. Every other gradient entry is the ball
//! e_j·(e^{−ℓ}/N), certified from its two ends ([`certify_ball`]).
//!
//! A row whose values a ball cannot settle (an inexact z_j − m, an exponent beyond the
//! fixed-point exponential, R too small to hold relative accuracy on the grid, any value
//! that would escalate) makes the block's first round `None`: the block then runs the MPFR
//! loop, which gives the answer it always gave. So an answer is never changed by this
//! path, only reached sooner; the tests compare the two on every generated case.

use crate::answer::{Answer, Tensor};
use crate::matrix::Matrix;
use crate::mp::ball::{sum_enclosure, Ball};
use crate::mp::certify::{certify_ball, certify_first_round, Goal, Rounded};
use crate::mp::fast_exp::{exp_fixed, ERROR_UNITS};
use crate::mp::interval::Interval;
use rug::float::Round;
use rug::ops::SubAssignRound;
use rug::{Assign, Float};
use std::cmp::Ordering;
use std::ops::Range;

/// A block's first round: its row-wise tensors certified, and each row's term of the
/// reduced outputs as an enclosure.
pub(crate) struct FirstRound {
    /// The row-wise tensors, certified.
    pub answer: Answer<Rounded>,
    /// One term per row.
    pub terms: Vec<Interval>,
}

/// How many bits of relative accuracy R keeps at least, below the working precision, for
/// the row's quantities to be as tight as the MPFR path's (else the row declines).
const SUM_SLACK_BITS: u32 = 16;

thread_local! {
    /// z_j − m, formed exactly.
    static DIFFERENCE: std::cell::RefCell<Float> = std::cell::RefCell::new(Float::new(400));
}

/// The rows `rows` of `softmax_ce` (`logits`, `labels`, the reduction's `divisor`) in the
/// loop's first round, the gradient named `name`; `None` where any row declines (module
/// docs).
pub(crate) fn softmax_ce_first_round(
    logits: &Matrix<f64>,
    labels: &[usize],
    rows: Range<usize>,
    divisor: Option<&Interval>,
    goal: Goal,
    name: &'static str,
) -> Option<FirstRound> {
    use rayon::prelude::*;
    let prec = goal.first_precision();
    let (count, cols) = (rows.len(), logits.cols());
    let per_row: Vec<(Interval, Vec<Rounded>)> = rows
        .into_par_iter()
        .map(|i| ce_row(logits.row(i), labels[i], divisor, goal, prec))
        .collect::<Option<_>>()?;
    let mut terms = Vec::with_capacity(count);
    let mut grad = Vec::with_capacity(count * cols);
    for (term, g) in per_row {
        terms.push(term);
        grad.extend(g);
    }
    Some(FirstRound {
        answer: Answer {
            outputs: vec![],
            gradients: vec![(name, Tensor::Matrix(Matrix::from_vec(count, cols, grad)?))],
        },
        terms,
    })
}

/// e^{z_j − m} for every j, as balls.
fn exponentials(z: &[f64], m: f64) -> Option<Vec<Ball>> {
    DIFFERENCE.with(|d| {
        let d = &mut *d.borrow_mut();
        z.iter()
            .map(|&zj| {
                d.assign(zj);
                if d.sub_assign_round(m, Round::Nearest) != Ordering::Equal {
                    return None;
                }
                if d.is_zero() {
                    return Some(Ball::ONE);
                }
                let (v, k) = exp_fixed(d)?;
                Ball::from_fixed(&v, ERROR_UNITS, k)
            })
            .collect()
    })
}

/// One row: its term and its certified gradient (module docs).
fn ce_row(
    z: &[f64],
    y: usize,
    divisor: Option<&Interval>,
    goal: Goal,
    prec: u32,
) -> Option<(Interval, Vec<Rounded>)> {
    // the first largest, as `exact_shift` picks it
    let top = (0..z.len()).reduce(|a, b| if z[b] > z[a] { b } else { a })?;
    let m = z[top];
    let e = exponentials(z, m)?;
    let rest = sum_enclosure(
        e.iter()
            .enumerate()
            .filter(|&(j, _)| j != top)
            .map(|(_, b)| b),
        prec,
    )?;
    if !(rest.is_point() || rest.relative_width_below(prec.saturating_sub(SUM_SLACK_BITS))) {
        return None;
    }
    let log_sum = rest.ln_1p();
    let shift = Interval::from_f64(prec, m);
    let target = Interval::from_f64(prec, z[y]);
    let term = log_sum.add(&shift.sub(&target));
    let over = |v: Interval| match divisor {
        Some(d) => v.div(d),
        None => v,
    };
    let inverse = Ball::enclosing(&over(log_sum.neg().exp()))?;
    let mut grad = Vec::with_capacity(z.len());
    for (j, ej) in e.iter().enumerate() {
        grad.push(if j == y {
            let log_p = target.sub(&shift).sub(&log_sum);
            certify_first_round(over(log_p.exp_m1()), goal)?
        } else {
            certify_ball(&ej.mul(&inverse)?, goal, prec)?
        });
    }
    Some((term, grad))
}

#[cfg(test)]
mod tests {
    use crate::case::case_from_json;
    use crate::family::softmax::reference::softmax_ce_first_round;
    use crate::mp::certify::Goal;
    use crate::spec::Case;

    /// On every generated plain `softmax_ce` case, the first round on balls gives the
    /// gradient of the MPFR loop value for value (decimals included), or declines, and only
    /// in the two edge regimes where the module docs expect it to.
    #[test]
    fn the_first_round_gives_the_mpfr_loops_values_and_declines_only_at_the_edges() {
        let (mut settled, mut declined, mut values) = (0, 0, 0);
        for g in crate::corpus::all_cases() {
            let case = case_from_json(&g.case).unwrap_or_else(|e| panic!("{}: {e}", g.id));
            let Case::SoftmaxCe(c) = &case else { continue };
            if !c.options.is_plain() {
                continue;
            }
            let Some(part) = softmax_ce_first_round(c, 0..c.logits.rows(), Goal::EVAL) else {
                // the regimes the module docs name: differences past the fixed-point
                // exponential's range, and a target so dominant that R is below the grid
                assert!(
                    g.id.contains("/edge-huge-logit/") || g.id.contains("/edge-dominant-target/"),
                    "{}: declined",
                    g.id
                );
                declined += 1;
                continue;
            };
            settled += 1;
            let whole = crate::reference::certified(&case).unwrap_or_else(|e| panic!("{e}"));
            let (_, grad) = &whole.answer.gradients[0];
            let (_, first) = &part.answer.gradients[0];
            assert_eq!(grad.values().len(), first.values().len(), "{}", g.id);
            for (k, (a, b)) in grad.values().iter().zip(first.values()).enumerate() {
                assert_eq!(&a.clone().rounded(true), b, "{}: logits[{k}]", g.id);
                values += 1;
            }
            assert_eq!(
                whole.certificate.precision_bits,
                Goal::EVAL.start_precision(),
                "{}",
                g.id
            );
        }
        assert!(
            settled >= 70 && declined <= 20,
            "{settled} settled, {declined} declined"
        );
        assert!(values > 100_000, "only {values} values compared");
    }
}
