//! The fast f32/f64 path of the adaptive margins (SPEC §5): the normalized-margin family's
//! scheme (`crate::family::normalized::fast`), three GEMMs around a row pass, with the row
//! pass running the family's binary64 rule ([`super::rule`]):
//!
//! 1. x̂_i = x_i/‖x_i‖ and 1/‖w_j‖; the batch state in f64 from the norms ‖x_i‖ and the
//!    target cosines (AdaCos's B from one more GEMM, X̂·Wᵀ, before the pass);
//! 2. per tile of rows: A = X̂·Wᵀ, c_ij = A_ij/‖w_j‖, the row's logits and slopes by the rule,
//!    its cross-entropy in f64 (1 − p_y as Σ_{j≠y} p_j), and G_ij/‖w_j‖ over the tile, with
//!    G_ij = r·∂CE/∂z_ij·∂z_ij/∂c_ij;
//! 3. G′·W and G′ᵀ·X̂, then back through the normalization, with MagFace's radial term
//!    ρ_i·x̂_i added to ∂L/∂x_i.

use super::rule::{self, RowRule};
use super::{AdaptiveCase, AdaptiveRule};
use crate::answer::{Answer, Tensor};
use crate::error::{Error, Result};
use crate::family::normalized::angle;
use crate::family::normalized::fast::{inverse_norms, normalize, project_out, project_out_raw};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::real::compensated_sum;
use crate::fast::tiles::{check_batch, row_norm, row_tiles, TILE_LOGITS};
use crate::fast::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// One row's cross-entropy of `rule`'s logits and the row of G_ij (∂CE/∂z_ij times the slope,
/// times `r`), with ∂CE/∂z_iy: in f64.
fn cross_entropy(rule: &RowRule, y: usize, r: f64) -> (f64, Vec<f64>, f64) {
    let z = &rule.logits;
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let others: f64 = e
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .map(|(_, v)| v)
        .sum();
    let total = others + e[y];
    let loss = if z[y] == m {
        others.ln_1p()
    } else {
        total.ln() + (m - z[y])
    };
    let rest = others / total;
    let g = (0..z.len())
        .map(|j| {
            let dz = if j == y { -rest } else { e[j] / total };
            r * dz * rule.slopes[j]
        })
        .collect();
    (loss, g, -rest)
}

/// The fast path's answer for `c` in dtype `T`, widened exactly to f64.
///
/// # Errors
/// Inconsistent shapes, a zero-norm row, or a row where the rule is undefined in f64 (a
/// target whose angle is 0 or π where the rule goes through θ).
pub(crate) fn evaluate<T: Real>(c: &AdaptiveCase) -> Result<Answer<f64>> {
    let (n, d) = (c.labels.len(), c.features.cols());
    let (x, w) = (narrow::<T>(&c.features), narrow::<T>(&c.weights));
    let classes = check_batch(&x, &w, &c.labels, d)?;
    let (mut xhat, mut xnorm, mut winv) = (Vec::new(), Vec::new(), Vec::new());
    normalize(&x, d, "features", &mut xhat, &mut xnorm)?;
    inverse_norms(&w, d, "weights", &mut winv)?;
    let norms: Vec<f64> = (0..n)
        .map(|i| row_norm(&x[i * d..(i + 1) * d], "features", i))
        .collect::<Result<_>>()?;
    let targets: Vec<f64> = (0..n)
        .map(|i| {
            let y = c.labels[i];
            let a: f64 = xhat[i * d..(i + 1) * d]
                .iter()
                .zip(&w[y * d..(y + 1) * d])
                .map(|(p, q)| p.as_f64() * q.as_f64())
                .sum();
            (a * winv[y].as_f64()).clamp(-1.0, 1.0)
        })
        .collect();
    let par = Par::rayon(0);
    let exp_sum = if c.rule == AdaptiveRule::AdaCos {
        let mut a = vec![T::zero(); n * classes];
        matmul(
            MatMut::from_row_major_slice_mut(&mut a, n, classes),
            Accum::Replace,
            MatRef::from_row_major_slice(&xhat, n, d),
            MatRef::from_row_major_slice(&w, classes, d).transpose(),
            T::one(),
            par,
        );
        // per row in parallel, each row's sum in a fixed order: the same bits on any
        // number of threads
        let rows: Vec<f64> = a
            .par_chunks(classes)
            .enumerate()
            .map(|(i, row)| {
                compensated_sum(
                    row.iter()
                        .zip(&winv)
                        .enumerate()
                        .filter(|&(j, _)| j != c.labels[i])
                        .map(|(_, (&v, &inv))| (c.scale * (v * inv).as_f64()).exp()),
                )
            })
            .collect();
        compensated_sum(rows)
    } else {
        0.0
    };
    let state = rule::state(c, &norms, &targets, exp_sum);
    let r = c.reduction.weight(n);
    let mut tile = Vec::new();
    let mut rows = vec![(0.0f64, 0.0f64, 0.0f64); n];
    let mut gx = vec![T::zero(); n * d];
    let mut gw = vec![T::zero(); classes * d];
    row_tiles(
        &xhat,
        &w,
        d,
        TILE_LOGITS,
        par,
        &mut tile,
        &mut rows,
        &mut gx,
        &mut gw,
        |i, row| {
            let y = c.labels[i];
            let cos: Vec<f64> = row
                .iter()
                .zip(&winv)
                .map(|(&a, &inv)| (a * inv).as_f64().clamp(-1.0, 1.0))
                .collect();
            let theta = angle(&x[i * d..(i + 1) * d], &w[y * d..(y + 1) * d]);
            let rule = rule::row(c, &state, i, &cos, theta).map_err(|why| {
                Error::invalid(
                    format!("features[{i}]"),
                    format!(
                        "its angle to its class weight weights[{y}] is θ = {} in {}, where {why} \
                         (SPEC §5, undefined points)",
                        theta.0,
                        T::NAME
                    ),
                )
            })?;
            let (loss, g, dz_y) = cross_entropy(&rule, y, r);
            for ((v, gj), &inv) in row.iter_mut().zip(&g).zip(&winv) {
                *v = T::of_f64(*gj) * inv;
            }
            let radial = r * (dz_y * rule.target_norm_slope + rule.own_norm_slope);
            Ok((loss, rule.own, radial))
        },
    )?;
    let mut radial_parts = Vec::new();
    project_out(&mut gx, &xhat, &xnorm, d, &mut radial_parts);
    for (i, &(_, _, rho)) in rows.iter().enumerate() {
        if rho != 0.0 {
            let rho = T::of_f64(rho);
            for (g, &u) in gx[i * d..(i + 1) * d]
                .iter_mut()
                .zip(&xhat[i * d..(i + 1) * d])
            {
                *g += rho * u;
            }
        }
    }
    project_out_raw(&mut gw, &w, &winv, d);
    let loss = r * compensated_sum(rows.iter().map(|v| v.0))
        + r * compensated_sum(rows.iter().map(|v| v.1));
    let in_dtype = |v: f64| Tensor::Scalar(T::of_f64(v).as_f64());
    let mut outputs = vec![("loss", in_dtype(loss))];
    for name in c.state_outputs() {
        let v = match *name {
            "t_next" => state.t_next,
            "batch_mean_next" => state.mean,
            "batch_std_next" => state.std,
            _ => state.scale_next,
        };
        outputs.push((*name, in_dtype(v)));
    }
    Ok(Answer {
        outputs,
        gradients: vec![
            ("features", widen(n, d, gx)),
            ("weights", widen(classes, d, gw)),
        ],
    })
}
