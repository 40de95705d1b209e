//! The error scales of the normalized-margin family in binary64 (`crate::precision`'s
//! measures and `crate::tolerance`'s scales), built on the family's one binary64 target
//! rule ([`super::target`]).

use super::angle;
use crate::precision::{dot, norm, softmax_row};
use crate::spec::{Margin, MarginGrad, NormalizedCase, Reduction};
use crate::tier::LogitStages;

/// What the gradients of a normalized-margin loss sum, weighted by their conditioning.
/// ∂L/∂x_i sums G_ij(ŵ_j − cos θ_ij x̂_i)/‖x_i‖ over j and ∂L/∂w_j sums
/// G_ij(x̂_i − cos θ_ij ŵ_j)/‖w_j‖ over i, with G_ij = ∂L/∂cos θ_ij; the scales are
/// Σ_j |G_ij|'/‖x_i‖ and Σ_i |G_ij|'/‖w_j‖, where |G_ij|' is the natural size of G_ij:
/// * r·s·p_ij·κ_i off the target (an error in the target logit moves every p_ij of the row);
/// * r·s·(1 − p_y)·max(1, |dg/dcos θ|)·κ_i² at the target for a full angular gradient (the
///   slope is computed from θ with an absolute error ~ulp/sin²θ, so its natural size is at
///   least 1 even where it vanishes, as cos(θ + m) does at θ = π − m), κ_i for a detached
///   one or an affine rule;
/// * never below r·s·`floor` (the dtype's smallest normal number: probabilities under it
///   are subnormal, with absolute, not relative, resolution).
///
/// κ_i = 1/sin θ_iy for the angular rules (arcface, combined), which go through
/// θ = acos(cos θ) and so turn an error δ in cos θ into δ/sin θ in θ; 1 for the affine rules.
pub(crate) struct NormalizedTerms {
    /// Per row of features.
    pub rows: Vec<f64>,
    /// Per row of weights.
    pub cols: Vec<f64>,
    /// The same sums with the target's p_y − 1 computed as softmax − onehot, with the
    /// absolute error of a rounding of 1 (the textbook gradient), in the rows where that
    /// formula cancels (p_y ≥ 1/2); equal to `rows` where no row is in that regime.
    pub naive_rows: Vec<f64>,
    /// As `naive_rows`, per row of weights.
    pub naive_cols: Vec<f64>,
    /// κ_i per sample.
    pub kappas: Vec<f64>,
    /// max(1, max_i κ_i).
    pub kappa_max: f64,
}

pub(crate) fn normalized_terms(c: &NormalizedCase, floor: f64) -> NormalizedTerms {
    let (n, classes) = (c.labels.len(), c.weights.rows());
    let r = c.reduction.weight(n);
    let angular = matches!(c.margin, Margin::Angular { .. } | Margin::Combined { .. });
    let detached = matches!(
        c.margin,
        Margin::Angular {
            grad: MarginGrad::Detached,
            ..
        }
    );
    let mut t = NormalizedTerms {
        rows: vec![0.0; n],
        cols: vec![0.0; classes],
        naive_rows: vec![0.0; n],
        naive_cols: vec![0.0; classes],
        kappas: vec![1.0; n],
        kappa_max: 1.0,
    };
    for i in 0..n {
        let x = c.features.row(i);
        let cos: Vec<f64> = (0..classes)
            .map(|j| dot(x, c.weights.row(j)) / (norm(x) * norm(c.weights.row(j))))
            .collect();
        let y = c.labels[i];
        // θ to the target by Kahan's formula: sin θ exact to a few ulps where cos θ rounds
        // to ±1 (θ below 10⁻⁸), so that κ = 1/sin θ is the true condition number there
        let theta = angle(x, c.weights.row(y));
        let k = if angular {
            1.0 / theta.1.max(1e-300)
        } else {
            1.0
        };
        t.kappas[i] = k;
        t.kappa_max = t.kappa_max.max(k);
        let (g, slope) = target_rule(&c.margin_of(i), cos[y], theta);
        let z: Vec<f64> = (0..classes)
            .map(|j| c.scale * if j == y { g } else { cos[j] })
            .collect();
        let p = softmax_row(&z, 1.0);
        // 1 − p_y as Σ_{j≠y} p_j: no cancellation when the target dominates.
        let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
        for (j, pj) in p.iter().enumerate() {
            let size = if j != y {
                pj * k
            } else if detached || !angular {
                rest * k
            } else {
                rest * slope.abs().max(1.0) * k * k
            };
            let gij = r * c.scale * size.max(floor);
            t.rows[i] += gij / norm(x);
            t.cols[j] += gij / norm(c.weights.row(j));
            // the textbook p_y − 1 only in its regime (SPEC §4): a target probability of
            // at least 1/2; elsewhere it is as accurate as Σ_{j≠y} p_j
            let naive = if j == y && p[y] >= 0.5 {
                r * c.scale * (rest + 1.0) * slope.abs().max(1.0) * k * k
            } else {
                gij
            };
            t.naive_rows[i] += naive / norm(x);
            t.naive_cols[j] += naive / norm(c.weights.row(j));
        }
    }
    let at_least = |v: &mut Vec<f64>| v.iter_mut().for_each(|s| *s = s.max(f64::MIN_POSITIVE));
    at_least(&mut t.rows);
    at_least(&mut t.cols);
    t
}

/// The loss's scale max(|L|, s·κ): every logit is s·cos θ with an absolute error of a few
/// ulps of s, times κ for the angular rules, and the loss moves by at most that.
pub(crate) fn normalized_loss_scale(c: &NormalizedCase, loss: f64, t: &NormalizedTerms) -> f64 {
    loss.max(c.scale * t.kappa_max)
}

/// ∂L/∂s's scale: Σ|∂L/∂z · cos θ| ≤ Σ_i 2r·max|cos θ| ≤ 2 (`mean`) or 2N (`sum`).
pub(crate) fn normface_grad_scale_scale(c: &NormalizedCase) -> f64 {
    if c.reduction == Reduction::Mean {
        2.0
    } else {
        2.0 * c.labels.len() as f64
    }
}

/// g and dg/dcos θ of SPEC §1 in binary64 by the family's one rule
/// ([`crate::family::normalized::target`]) at cos θ = `c` and the angle `theta`, floored
/// away from 0 and π: at a pole the scale is that of a slope of 1/10^−150, never an
/// undefined point.
pub(crate) fn target_rule(margin: &Margin, c: f64, (theta, sin): (f64, f64)) -> (f64, f64) {
    let t = super::target(margin, c, (theta, sin.max(1e-150)));
    (t.value, t.slope)
}

/// SPEC §6's stage coefficients of a normalized-margin case (`crate::tier`). cos θ = x̂·ŵ
/// comes out of a product of unit vectors, Σ_k |x̂_k ŵ_k| ≤ 1 (Cauchy–Schwarz), so its
/// operands' roundings and its own rounding move it by at most (2u + u²) + u; a logit
/// s·g(cos θ) moves with it at s·|dg/dcos θ| (1 off the target). Near acos's poles, where
/// the angular rules' slope 1/sin θ blows up, a change Δ of cos θ moves θ by at most
/// √(2Δ), and g by at most that (|dg/dθ| ≤ 1): the slope is capped at √(2/(3u)) for
/// Δ = 3u. The held logits are max |s·g|; the log-probabilities their log-softmax's.
pub(crate) fn normalized_logit_stages(c: &NormalizedCase, u: f64) -> LogitStages {
    let classes = c.weights.rows();
    let cap = if u > 0.0 {
        (2.0 / (3.0 * u)).sqrt()
    } else {
        f64::INFINITY
    };
    let mut per_cos = 1.0f64;
    let mut rows = Vec::with_capacity(c.labels.len());
    for (i, &y) in c.labels.iter().enumerate() {
        let x = c.features.row(i);
        let cos: Vec<f64> = (0..classes)
            .map(|j| dot(x, c.weights.row(j)) / (norm(x) * norm(c.weights.row(j))))
            .collect();
        let (g, slope) = target_rule(&c.margin_of(i), cos[y], angle(x, c.weights.row(y)));
        per_cos = per_cos.max(slope.abs().min(cap));
        rows.push(
            (0..classes)
                .map(|j| c.scale * if j == y { g } else { cos[j] })
                .collect(),
        );
    }
    // ‖x̂‖₁ + ‖ŵ‖₁ of the unit rows the product takes
    let l1 = |m: &crate::matrix::Matrix<f64>| {
        m.iter_rows()
            .map(|r| r.iter().map(|v| v.abs()).sum::<f64>() / norm(r))
            .fold(0.0, f64::max)
    };
    let per_unit = c.scale * per_cos;
    let operand_l1 = l1(&c.features) + l1(&c.weights);
    LogitStages::of_products(rows, per_unit, per_unit, operand_l1, c.features.cols())
}
