//! A search that tries to push the NormFace loss below T1's bound (SPEC §2), within the
//! theorem's assumptions, with every iterate's gap to the bound certified.
//!
//! The objective is T1's configuration: n classes, one sample per class, each feature equal
//! to its class weight, so that with unit rows w_i the loss is
//!
//!   L(W) = (1/n)·Σ_i CE(s·(w_i·w_j)_j, i) = `normface`(features = W, weights = W, labels 0..n).
//!
//! [`descend`] runs Riemannian gradient descent on the product of unit spheres: the
//! gradient of L with respect to each row (as a feature and as a weight: the sum of both of
//! `lossref`'s fast-path gradients, which are already tangent since the loss normalizes
//! rows), a step, and the rows renormalized. The step size adapts: a step is accepted when
//! it lowers the binary64 loss beyond its rounding, or, once the loss is within its
//! rounding of a minimum, when it shrinks the gradient's norm; an accepted step grows by a
//! quarter and a refused one is halved. So the descent goes on converging where binary64
//! can no longer see the loss fall, down to iterates about one rounding (10⁻¹⁶) from the
//! minimum, whose gap is then about its square. Every `certify_every` steps the iterate, an exact binary64 matrix, is handed to
//! the certified reference `normface` loss, and the gap L(W) − bound is enclosed and its
//! sign decided ([`TiedNormFace::certified_gap`]). T1 says the gap is never negative; the
//! report says how small it got and whether any iterate crossed.

use crate::bounds::normface_lower_bound;
use crate::error::{Error, Result};
use crate::family::normalized::fast::MarginLoss;
use crate::family::normalized::reference::{loss as reference_loss, Rule};
use crate::matrix::Matrix;
use crate::mp::certify::decide_sign;
use crate::mp::interval::Interval;
use crate::reference::softmax::points;
use crate::spec::{Margin, Reduction};
use std::cmp::Ordering;

/// T1's objective at scale s: the mean NormFace loss with every feature at its class weight.
#[derive(Clone, Copy, Debug)]
pub struct TiedNormFace {
    scale: f64,
    fast: MarginLoss,
}

impl TiedNormFace {
    /// The objective at scale `scale` (finite, > 0).
    ///
    /// # Errors
    /// A scale that is not finite and positive.
    pub fn new(scale: f64) -> Result<TiedNormFace> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::invalid(
                "scale",
                format!("must be finite and positive, got {scale}"),
            ));
        }
        Ok(TiedNormFace {
            scale,
            fast: MarginLoss {
                scale,
                margin: Margin::None,
                reduction: Reduction::Mean,
            },
        })
    }

    /// The scale s.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The binary64 loss and its gradient with respect to each row of `w` (C×D), from the
    /// fast path: ∂L/∂features + ∂L/∂weights, since each row plays both parts.
    ///
    /// # Errors
    /// Fewer than 2 rows, a zero or non-finite row.
    pub fn loss_and_gradient(&self, w: &Matrix<f64>) -> Result<(f64, Matrix<f64>)> {
        let labels: Vec<usize> = (0..w.rows()).collect();
        let g = self
            .fast
            .forward_backward(w.as_slice(), w.as_slice(), &labels, w.cols(), 1)?;
        let sum = g
            .features
            .iter()
            .zip(&g.weights)
            .map(|(a, b)| a + b)
            .collect();
        let grad = Matrix::from_vec(w.rows(), w.cols(), sum).expect("one entry per weight");
        Ok((g.loss, grad))
    }

    /// The gap L(W) − T1's bound for the exact binary64 rows of `w`, enclosed by the
    /// reference `normface` loss and the bound, both at rising precision until the sign of
    /// the gap is decided or `cap` bits are reached (`None`: the gap is within the cap's
    /// resolution of 0).
    ///
    /// # Errors
    /// Fewer than 2 rows, or a zero row.
    pub fn certified_gap(&self, w: &Matrix<f64>, cap: u32) -> Result<(Option<Ordering>, Interval)> {
        if w.rows() < 2 {
            return Err(Error::invalid("weights", "T1 needs at least 2 classes"));
        }
        let labels: Vec<usize> = (0..w.rows()).collect();
        let rule = Rule {
            margin: Margin::None,
            reduction: Reduction::Mean,
        };
        let n = w.rows() as u64;
        decide_sign(cap, |prec| {
            let rows = points(w, prec);
            let s = Interval::from_f64(prec, self.scale);
            let loss = reference_loss(&rule, &rows, &rows, &labels, &s)?;
            Ok(loss.sub(&normface_lower_bound(n, &s)))
        })
    }
}

/// How long to search, and how often to certify.
#[derive(Clone, Copy, Debug)]
pub struct Descent {
    /// Gradient steps.
    pub steps: usize,
    /// Certify the gap every this many steps (and at the start and the end).
    pub certify_every: usize,
    /// The precision cap of each certification, in bits.
    pub cap: u32,
}

impl Default for Descent {
    fn default() -> Descent {
        Descent {
            steps: 3000,
            certify_every: 50,
            cap: 4096,
        }
    }
}

/// What a search found.
#[derive(Clone, Debug)]
pub struct SearchReport {
    /// The last iterate (unit rows, up to rounding).
    pub weights: Matrix<f64>,
    /// The binary64 loss of the last iterate.
    pub loss: f64,
    /// The enclosure of the smallest certified gap L(W) − bound over the checkpoints.
    pub smallest_gap: Interval,
    /// The step at which it was reached.
    pub smallest_gap_step: usize,
    /// How many iterates were certified.
    pub checkpoints: usize,
    /// Checkpoints whose gap was certified negative: T1 says there are none.
    pub crossings: usize,
    /// Checkpoints whose sign stayed undecided at the cap.
    pub undecided: usize,
    /// Accepted steps.
    pub accepted: usize,
}

fn norm(m: &Matrix<f64>) -> f64 {
    m.as_slice().iter().map(|a| a * a).sum::<f64>().sqrt()
}

fn unit_rows(w: &Matrix<f64>) -> Matrix<f64> {
    let mut out = w.clone();
    for i in 0..w.rows() {
        let norm = w.row(i).iter().map(|a| a * a).sum::<f64>().sqrt();
        for k in 0..w.cols() {
            *out.get_mut(i, k) = w.get(i, k) / norm;
        }
    }
    out
}

/// Gradient descent of T1's objective from `start` (C×D, nonzero rows), certifying the gap
/// to the bound along the way (see the module docs).
///
/// # Errors
/// A start with fewer than 2 rows, a zero or non-finite row.
pub fn descend(
    objective: &TiedNormFace,
    start: &Matrix<f64>,
    plan: &Descent,
) -> Result<SearchReport> {
    let mut w = unit_rows(start);
    let (mut loss, mut grad) = objective.loss_and_gradient(&w)?;
    let mut step = 1.0 / (1.0 + objective.scale());
    let mut report = SearchReport {
        weights: w.clone(),
        loss,
        smallest_gap: Interval::entire(64),
        smallest_gap_step: 0,
        checkpoints: 0,
        crossings: 0,
        undecided: 0,
        accepted: 0,
    };
    let every = plan.certify_every.max(1);
    for k in 0..=plan.steps {
        if k % every == 0 || k == plan.steps {
            let (sign, gap) = objective.certified_gap(&w, plan.cap)?;
            report.checkpoints += 1;
            match sign {
                Some(Ordering::Less) => report.crossings += 1,
                None => report.undecided += 1,
                _ => {}
            }
            if report.checkpoints == 1 || gap.hi() < report.smallest_gap.hi() {
                report.smallest_gap = gap;
                report.smallest_gap_step = k;
            }
        }
        if k == plan.steps {
            break;
        }
        let trial = Matrix::from_fn(w.rows(), w.cols(), |i, c| {
            w.get(i, c) - step * grad.get(i, c)
        });
        let trial = unit_rows(&trial);
        let (trial_loss, trial_grad) = objective.loss_and_gradient(&trial)?;
        // Far from a minimum the binary64 loss decides; within its rounding of the minimum
        // (where it can no longer see a decrease) the gradient's norm does: near a strict
        // minimum a step that is not too long shrinks it.
        let noise = 8.0 * f64::EPSILON * loss.abs();
        let better = trial_loss < loss - noise
            || (trial_loss <= loss + noise && norm(&trial_grad) <= norm(&grad));
        if better {
            w = trial;
            loss = trial_loss;
            grad = trial_grad;
            step *= 1.25;
            report.accepted += 1;
        } else {
            step *= 0.5;
        }
    }
    report.weights = w;
    report.loss = loss;
    Ok(report)
}

/// A reproducible start for [`descend`]: `n` rows in R^`d` with entries in [−½, ½) from a
/// xorshift generator seeded by `seed` (integer arithmetic only, so every machine gets the
/// same start).
pub fn seeded_start(n: usize, d: usize, seed: u64) -> Matrix<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Matrix::from_fn(n, d, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    })
}
