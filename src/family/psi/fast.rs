//! Fast f32/f64 `lsoftmax` and `sphereface` (SPEC §1) forward + backward, on the GEMM and
//! row-tile scheme of [`crate::family::normalized::fast`]:
//!
//! 1. per tile of rows, A = X·Wᵀ (GEMM 1); the logits are f_ij = A_ij (`lsoftmax`) or
//!    A_ij/‖w_j‖ (`sphereface`), and the target's f_iy = ν_y‖x_i‖·h(cos θ_iy) with
//!    h = (λc + ψ_m)/(1 + λ), ψ_m from the Chebyshev recurrence and the segment k counted
//!    against cos(kπ/m), all in f64;
//! 2. G = ∂L/∂f per row (softmax), stored as G̃_ij = G_ij·(1 or 1/‖w_j‖) with the target
//!    column zeroed, so that G̃·W (GEMM 2) and G̃ᵀ·X (GEMM 3) are the off-target parts of
//!    ∂L/∂X and ∂L/∂W (for `sphereface`, projected off w_j afterwards);
//! 3. the target terms, O(N·D), added in f64 from the formulas of
//!    [`crate::family::psi::reference`].

use crate::error::{Error, Result};
use crate::fast::real::{compensated_sum, Real};
use crate::fast::tiles::{check_batch, row_norm, row_tiles, softmax_gradient_row, TILE_LOGITS};
use crate::spec::{MultiplicativeCase, Reduction};
use faer::Par;
use rayon::prelude::*;

/// An L-Softmax / A-Softmax loss (SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiplicativeLoss {
    /// The integer margin m ≥ 1.
    pub margin: u32,
    /// λ ≥ 0.
    pub lambda: f64,
    /// `sphereface` (ν_j = 1) rather than `lsoftmax` (ν_j = ‖w_j‖).
    pub normalized_weights: bool,
    /// `mean` or `sum`.
    pub reduction: Reduction,
}

/// The loss and its gradients, row-major like the inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct PsiGradients<T> {
    /// The reduced loss.
    pub loss: T,
    /// ∂L/∂features, N×D.
    pub features: Vec<T>,
    /// ∂L/∂weights, C×D.
    pub weights: Vec<T>,
}

/// ψ_m(θ) and dψ/dcos θ at cos θ = `c`, in f64: k is the largest integer below m with
/// c ≤ cos(kπ/m), T_m and U_{m−1} come from their recurrences.
pub fn psi_f64(m: u32, c: f64) -> (f64, f64) {
    let c = c.clamp(-1.0, 1.0);
    let k = (1..m)
        .take_while(|&k| c <= (std::f64::consts::PI * f64::from(k) / f64::from(m)).cos())
        .count();
    let (mut t0, mut t1) = (1.0, c);
    let (mut u0, mut u1) = (0.0, 1.0); // U_{−1}, U_0
    for _ in 1..m {
        (t0, t1) = (t1, 2.0 * c * t1 - t0);
        (u0, u1) = (u1, 2.0 * c * u1 - u0);
    }
    let _ = (t0, u0);
    let sign = if k % 2 == 1 { -1.0 } else { 1.0 };
    (sign * t1 - 2.0 * k as f64, sign * f64::from(m) * u1)
}

/// The target's h, h′ and cos θ, kept per row for the backward pass.
#[derive(Clone, Copy, Default)]
struct Target {
    g: f64,
    h: f64,
    dh: f64,
    cos: f64,
}

impl MultiplicativeLoss {
    /// The loss of a case.
    pub fn of_case(case: &MultiplicativeCase) -> MultiplicativeLoss {
        MultiplicativeLoss {
            margin: case.margin,
            lambda: case.lambda,
            normalized_weights: case.normalized_weights(),
            reduction: case.reduction,
        }
    }

    /// Forward and backward for features (N×D), weights (C×D) and labels, on `threads`
    /// threads of the current rayon pool (0: all).
    ///
    /// # Errors
    /// Inconsistent shapes, C < 2, a label out of range, non-finite inputs, a zero-norm
    /// feature, or a zero-norm weight row where it is normalized.
    pub fn forward_backward<T: Real>(
        &self,
        features: &[T],
        weights: &[T],
        labels: &[usize],
        dim: usize,
        threads: usize,
    ) -> Result<PsiGradients<T>> {
        let n = labels.len();
        let c = check_batch(features, weights, labels, dim)?;
        if self.margin == 0 || self.lambda.is_nan() || self.lambda < 0.0 {
            return Err(Error::invalid(
                "params",
                "needs an integer margin ≥ 1 and lambda ≥ 0",
            ));
        }
        let xnorm = norms(features, dim, "features")?;
        let wnorm = norms(weights, dim, "weights")?;
        if let Some(i) = xnorm.iter().position(|&v| v == 0.0) {
            return Err(Error::invalid(
                format!("features[{i}]"),
                "is a zero-norm row; cos θ is undefined for it",
            ));
        }
        let needs = |j: usize| self.normalized_weights || labels.contains(&j);
        if let Some(j) = (0..c).find(|&j| wnorm[j] == 0.0 && needs(j)) {
            return Err(Error::invalid(
                format!("weights[{j}]"),
                "is a zero-norm row where cos θ to it is needed",
            ));
        }
        // the column factor of G̃ (1/‖w_j‖ for sphereface)
        let column: Vec<T> = wnorm
            .iter()
            .map(|&v| {
                T::of_f64(if self.normalized_weights && v > 0.0 {
                    1.0 / v
                } else {
                    1.0
                })
            })
            .collect();
        let par = Par::rayon(threads);
        let mut gx = vec![T::zero(); n * dim];
        let mut gw = vec![T::zero(); c * dim];
        let mut rows = vec![(0.0f64, Target::default()); n];
        let r = self.reduction.weight(n);
        let mut tile = Vec::new();
        row_tiles(
            features,
            weights,
            dim,
            TILE_LOGITS,
            par,
            &mut tile,
            &mut rows,
            &mut gx,
            &mut gw,
            |i, row| {
                let mut target = Target::default();
                let loss =
                    self.row_dispatch(row, &column, &wnorm, xnorm[i], labels[i], r, &mut target);
                Ok((loss, target))
            },
        )?;
        let (row_losses, targets): (Vec<f64>, Vec<Target>) = rows.into_iter().unzip();
        if self.normalized_weights {
            // ∂f_ij/∂w_j = (x_i − (x_i·ŵ_j)ŵ_j)/‖w_j‖: remove each row's component along w_j.
            gw.par_chunks_mut(dim)
                .zip(weights.par_chunks(dim))
                .zip(wnorm.par_iter())
                .for_each(|((g, w), &nw)| {
                    let radial = g
                        .iter()
                        .zip(w)
                        .fold(0.0f64, |a, (p, q)| a + p.as_f64() * q.as_f64())
                        / (nw * nw);
                    for (gk, &wk) in g.iter_mut().zip(w) {
                        *gk = T::of_f64(gk.as_f64() - radial * wk.as_f64());
                    }
                });
        }
        self.add_target_terms(
            features, weights, labels, dim, &xnorm, &wnorm, &targets, &mut gx, &mut gw,
        );
        let loss = compensated_sum(row_losses.iter().copied()) * r;
        Ok(PsiGradients {
            loss: T::of_f64(loss),
            features: gx,
            weights: gw,
        })
    }

    /// [`MultiplicativeLoss::row`], compiled for AVX2 + FMA where the CPU has them (as in
    /// [`crate::family::normalized::fast`]: after faer's AVX kernels, SSE code pays a transition
    /// penalty).
    #[allow(clippy::too_many_arguments)]
    fn row_dispatch<T: Real>(
        &self,
        row: &mut [T],
        column: &[T],
        wnorm: &[f64],
        xnorm: f64,
        y: usize,
        r: f64,
        target: &mut Target,
    ) -> f64 {
        psi_row(self, row, column, wnorm, xnorm, y, r, target)
    }

    /// One row of A = x_i·W into G̃ (target column zeroed); returns CE_i and fills the
    /// target's G_iy, h, h′ and cos θ.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn row<T: Real>(
        &self,
        row: &mut [T],
        column: &[T],
        wnorm: &[f64],
        xnorm: f64,
        y: usize,
        r: f64,
        target: &mut Target,
    ) -> f64 {
        let nu = if self.normalized_weights {
            1.0
        } else {
            wnorm[y]
        };
        let cos = (row[y].as_f64() / (wnorm[y] * xnorm)).clamp(-1.0, 1.0);
        let (psi, dpsi) = psi_f64(self.margin, cos);
        let blend = 1.0 + self.lambda;
        let h = (self.lambda * cos + psi) / blend;
        let dh = (self.lambda + dpsi) / blend;
        let z_y = T::of_f64(nu * xnorm * h);
        let sphere = self.normalized_weights;
        if sphere {
            for (v, &col) in row.iter_mut().zip(column) {
                *v *= col;
            }
        }
        let (loss, rest) = softmax_gradient_row(row, y, z_y, r, |j| column[j]);
        row[y] = T::zero();
        *target = Target {
            g: -rest.as_f64(),
            h,
            dh,
            cos,
        };
        loss
    }

    /// Adds G_iy·∂f_iy/∂x_i and G_iy·∂f_iy/∂w_y (in f64).
    #[allow(clippy::too_many_arguments)]
    fn add_target_terms<T: Real>(
        &self,
        features: &[T],
        weights: &[T],
        labels: &[usize],
        dim: usize,
        xnorm: &[f64],
        wnorm: &[f64],
        targets: &[Target],
        gx: &mut [T],
        gw: &mut [T],
    ) {
        for (i, (&y, t)) in labels.iter().zip(targets).enumerate() {
            let (nx, nw) = (xnorm[i], wnorm[y]);
            let nu = if self.normalized_weights { 1.0 } else { nw };
            for k in 0..dim {
                let xh = features[i * dim + k].as_f64() / nx;
                let wh = weights[y * dim + k].as_f64() / nw;
                // ν(h x̂ + h′(ŵ − c x̂))
                let dx = nu * (t.h * xh + t.dh * (wh - t.cos * xh));
                gx[i * dim + k] = T::of_f64(gx[i * dim + k].as_f64() + t.g * dx);
                let dw = if self.normalized_weights {
                    nx * t.dh * (xh - t.cos * wh) / nw
                } else {
                    nx * (t.h * wh + t.dh * (xh - t.cos * wh))
                };
                gw[y * dim + k] = T::of_f64(gw[y * dim + k].as_f64() + t.g * dw);
            }
        }
    }
}

crate::row_kernel!(
    fn psi_row<T: Real>(loss: &MultiplicativeLoss, row: &mut [T], column: &[T], wnorm: &[f64], xnorm: f64, y: usize, r: f64, target: &mut Target) -> f64
        => MultiplicativeLoss::row
);

/// ‖row‖ for every row, in f64 (0 for a zero row).
fn norms<T: Real>(m: &[T], dim: usize, name: &str) -> Result<Vec<f64>> {
    m.par_chunks(dim)
        .enumerate()
        .map(|(i, row)| row_norm(row, name, i))
        .collect()
}
