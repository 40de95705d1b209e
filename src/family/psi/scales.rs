//! The error scales of lsoftmax / sphereface in binary64 (`crate::precision`'s measures
//! and `crate::tolerance`'s scales).

use crate::precision::{dot, norm, softmax_row};
use crate::spec::MultiplicativeCase;
use crate::tier::LogitStages;

/// The scales of lsoftmax / sphereface. Row i's logits carry absolute errors of a few ulps
/// of Φ_i = max(max_j |f_ij|, ν_y‖x_i‖·(λ + m²)/(1 + λ)): the target logit moves with cos θ
/// at the slope ν‖x‖·h′, and |dψ/dcos θ| ≤ m² (Markov's inequality for T_m′).
pub(crate) struct PsiScales {
    /// r·Σ_i Φ_i (the loss is measured in ulps of max(|L|, this)).
    pub loss: f64,
    /// Per row of features: what ∂L/∂x_i sums, Σ_j |G_ij|·|∂f_ij/∂x| (the target's slope
    /// counted as (λ + m²)/(1 + λ) + 1), times max(1, Φ_i), because every G_ij of row i is a
    /// softmax of those logits; floored at the smallest normal binary64.
    pub rows: Vec<f64>,
    /// Per row of weights, the same for ∂L/∂w_j.
    pub cols: Vec<f64>,
}

pub(crate) fn psi_scales(c: &MultiplicativeCase) -> PsiScales {
    let (n, classes) = (c.labels.len(), c.weights.rows());
    let r = c.reduction.weight(n);
    let m = f64::from(c.margin);
    let slope_bound = (c.lambda + m * m) / (1.0 + c.lambda);
    let nu = |j: usize| nu(c, j);
    let mut rows = vec![0.0; n];
    let mut cols = vec![0.0; classes];
    let mut loss = 0.0;
    for (i, row_scale) in rows.iter_mut().enumerate() {
        let x = c.features.row(i);
        let y = c.labels[i];
        let f = logits_row(c, i);
        let phi = f
            .iter()
            .fold(nu(y) * norm(x) * slope_bound, |a, v| a.max(v.abs()));
        loss += r * phi;
        let p = softmax_row(&f, 1.0);
        let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
        for j in 0..classes {
            let (gij, slope) = if j == y {
                (r * rest, 1.0 + slope_bound)
            } else {
                (r * p[j], 1.0)
            };
            let g = gij * slope * phi.max(1.0);
            *row_scale += g * nu(j);
            cols[j] += g * if c.normalized_weights() {
                norm(x) / norm(c.weights.row(j)).max(f64::MIN_POSITIVE)
            } else {
                norm(x)
            };
        }
    }
    let floor = |v: Vec<f64>| v.into_iter().map(|s| s.max(f64::MIN_POSITIVE)).collect();
    PsiScales {
        loss,
        rows: floor(rows),
        cols: floor(cols),
    }
}

/// ν_j: 1 for sphereface's normalized weights, ‖w_j‖ for lsoftmax.
fn nu(c: &MultiplicativeCase, j: usize) -> f64 {
    if c.normalized_weights() {
        1.0
    } else {
        norm(c.weights.row(j))
    }
}

/// Row i's logits in binary64: f_ij = ν_j‖x_i‖·h_ij, with h = (λ cos θ + ψ(θ))/(1 + λ) at
/// the target and cos θ elsewhere.
fn logits_row(c: &MultiplicativeCase, i: usize) -> Vec<f64> {
    let classes = c.weights.rows();
    let m = f64::from(c.margin);
    let x = c.features.row(i);
    let y = c.labels[i];
    (0..classes)
        .map(|j| {
            let w = c.weights.row(j);
            let cos = dot(x, w) / (norm(x) * norm(w)).max(f64::MIN_POSITIVE);
            let h = if j == y {
                let theta = cos.clamp(-1.0, 1.0).acos();
                let k = (theta * m / std::f64::consts::PI).floor().min(m - 1.0);
                let psi = if k % 2.0 == 1.0 {
                    -(m * theta).cos()
                } else {
                    (m * theta).cos()
                } - 2.0 * k;
                (c.lambda * cos + psi) / (1.0 + c.lambda)
            } else {
                cos
            };
            nu(c, j) * norm(x) * h
        })
        .collect()
}

/// SPEC §6's stage coefficients of lsoftmax / sphereface (`crate::tier`): cos θ comes out
/// of x·w, whose operands' roundings move it by (2u + u²)·‖x‖‖w‖/(‖x‖‖w‖) at most, and the
/// logit f = ν‖x‖·h(cos θ) moves with cos θ at ν‖x‖·|h′| ≤ ν‖x‖·max(1, (λ + m²)/(1 + λ))
/// (Markov's inequality for T_m′: no pole). So operands and product are
/// max_ij ν_j‖x_i‖·max(1, that slope); the held logits max |f|.
pub(crate) fn psi_logit_stages(c: &MultiplicativeCase) -> LogitStages {
    let m = f64::from(c.margin);
    let slope = ((c.lambda + m * m) / (1.0 + c.lambda)).max(1.0);
    let per_cos = (0..c.labels.len())
        .map(|i| norm(c.features.row(i)))
        .fold(0.0, f64::max)
        * (0..c.weights.rows()).map(|j| nu(c, j)).fold(0.0, f64::max)
        * slope;
    // ∂f/∂(x·w) = ν·h′/‖w‖; ‖x‖₁ + ‖w‖₁ of the raw rows the product takes
    let l1 = |m: &crate::matrix::Matrix<f64>| {
        m.iter_rows()
            .map(|r| r.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max)
    };
    let per_product = (0..c.weights.rows())
        .map(|j| nu(c, j) * slope / norm(c.weights.row(j)).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
    let rows = (0..c.labels.len()).map(|i| logits_row(c, i));
    let operand_l1 = l1(&c.features) + l1(&c.weights);
    LogitStages::of_products(rows, per_cos, per_product, operand_l1, c.features.cols())
}
