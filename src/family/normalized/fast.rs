//! Fast f32/f64 forward + backward of the normalized-margin family (SPEC §1: `normface`,
//! `cosface`, `amsoftmax`, `arcface` in every variant, `combined`), for training loops and
//! for comparison with third-party code.
//!
//! The computation is three GEMMs (faer, multi-threaded) around cheap row-wise work:
//!
//! 1. x̂_i = x_i/‖x_i‖ for the N features, and only 1/‖w_j‖ for the C weights: the C×D
//!    weights are used raw, with 1/‖w_j‖ applied to the logits and to G below (norms are
//!    computed without overflow or underflow);
//! 2. per tile of batch rows: A = X̂·Wᵀ (GEMM 1) and cos θ_ij = A_ij/‖w_j‖; the target
//!    logit s·g(cos θ_iy) in the label column only; a log-sum-exp per row (the max, then
//!    the exponentials, while the row is in cache); and G′_ij = G_ij/‖w_j‖ written over the
//!    tile in place, where G_ij = ∂L/∂cos θ_ij = r·s·(p_ij − [j = y_i]), times dg/dcos θ at
//!    the target (r = 1/N for `mean`);
//! 3. ∂L/∂X̂ = G′·W (GEMM 2) for the tile's rows, and Gᵀ·X̂/‖w‖ = G′ᵀ·X̂ (GEMM 3), summed
//!    over tiles;
//! 4. back through the normalization: ∂L/∂x_i = (ĝ_i − (ĝ_i·x̂_i)x̂_i)/‖x_i‖ with
//!    ĝ_i = ∂L/∂x̂_i, and ∂L/∂w_j = a_j − (a_j·w_j)w_j/‖w_j‖² with a_j = (G′ᵀ·X̂)_j.
//!
//! Tiles run over batch rows, not classes: a tile holds all C logits of its rows, so its
//! softmax is final and G follows without recomputing the cosines (a class-tiled online
//! log-sum-exp must recompute them for the backward pass, a fourth GEMM). At most
//! [`TILE_LOGITS`] logits are held at a time, so C = 100 000 classes costs one tile of
//! ~160 rows, not N×C.
//!
//! The row-wise loops are compiled for AVX2 + FMA where the CPU has them (chosen at run
//! time; no FMA contraction is ever implied, so both builds give the same bits): after
//! faer's AVX kernels, plain SSE code pays a state-transition penalty on every instruction.
//!
//! The target rules and their slopes are evaluated in f64 for both dtypes (N values), from
//! the cosine that the GEMM produced. Accuracy is measured against the certified reference
//! in [`crate::precision`].

use crate::error::{Error, Result};
use crate::fast::real::{compensated_sum, Real};
use crate::fast::tiles::{check_batch, row_norm, row_tiles, softmax_gradient_row};
use crate::spec::{Margin, NormalizedCase, Reduction};
use faer::Par;
use rayon::prelude::*;

pub use crate::fast::tiles::TILE_LOGITS;

/// A normalized-margin loss: scale, target rule and reduction (SPEC §1).
///
/// CosFace on two samples, against the formula written out by hand:
///
/// ```
/// use lossref::fast::MarginLoss;
/// use lossref::spec::{Margin, Reduction};
///
/// let cosface = MarginLoss { scale: 30.0, margin: Margin::Additive { m: 0.35 }, reduction: Reduction::Mean };
/// // N = 2 features and C = 3 class weights in D = 2, row-major
/// let features = [3.0, 4.0, -1.0, 0.0];
/// let weights = [1.0, 0.0, 0.0, 2.0, -1.0, -1.0];
/// let labels = [1, 2];
/// let out = cosface.forward_backward(&features, &weights, &labels, 2, 0).unwrap();
///
/// // L_i = −log(e^{s(cos θ_iy − m)} / (e^{s(cos θ_iy − m)} + Σ_{j≠y} e^{s cos θ_ij}))
/// let row = |cos: [f64; 3], y: usize| {
///     let z: Vec<f64> = (0..3).map(|j| 30.0 * (cos[j] - if j == y { 0.35 } else { 0.0 })).collect();
///     let max = z.iter().cloned().fold(f64::MIN, f64::max);
///     max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - z[y]
/// };
/// let r = 0.5f64.sqrt();
/// let expected = (row([0.6, 0.8, -0.7 * 2f64.sqrt()], 1) + row([-1.0, 0.0, r], 2)) / 2.0;
/// assert!((out.loss - expected).abs() < 1e-12 * expected);
/// assert_eq!(out.features.len(), 4);
/// assert_eq!(out.weights.len(), 6);
/// assert_eq!(out.scale, None); // only normface learns s
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarginLoss {
    /// s > 0.
    pub scale: f64,
    /// The target rule.
    pub margin: Margin,
    /// `mean` or `sum`.
    pub reduction: Reduction,
}

/// The loss and its gradients, row-major like the inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct MarginGradients<T> {
    /// The reduced loss.
    pub loss: T,
    /// ∂L/∂features, N×D.
    pub features: Vec<T>,
    /// ∂L/∂weights, C×D.
    pub weights: Vec<T>,
    /// ∂L/∂s = Σ_ij ∂L/∂z_ij · cos θ_ij, for `normface` (which learns s); `None` otherwise.
    pub scale: Option<T>,
}

/// A batch as the row pass takes it: features, weights, labels, a rule per row (or none),
/// and the sub-centers per class.
type Batch<'a, T> = (&'a [T], &'a [T], &'a [usize], Option<&'a [Margin]>, usize);

/// Buffers that [`MarginLoss::forward_backward_into`] reuses between calls: the unit rows
/// and norms of features and weights, one tile of logits and per-row scratch.
///
/// A training loop allocates once and steps the weights along −∂L/∂W:
///
/// ```
/// use lossref::fast::{MarginLoss, Workspace};
/// use lossref::spec::{Boundary, Margin, MarginGrad, Reduction};
///
/// let arcface = MarginLoss {
///     scale: 16.0,
///     margin: Margin::Angular { m: 0.2, boundary: Boundary::Thmm, grad: MarginGrad::Full },
///     reduction: Reduction::Mean,
/// };
/// let features: Vec<f32> = vec![1.0, 0.2, -0.3, 0.9, 0.8, 0.7, -1.0, -0.1];
/// let labels = [0, 1, 0, 1];
/// let mut weights: Vec<f32> = vec![0.1, 1.0, 1.0, 0.1];
/// let mut ws = Workspace::<f32>::default();
/// let (mut gx, mut gw) = (vec![0.0; features.len()], vec![0.0; weights.len()]);
/// let mut losses = Vec::new();
/// for _ in 0..20 {
///     let (loss, _) = arcface
///         .forward_backward_into(&mut ws, &features, &weights, &labels, 2, 0, &mut gx, &mut gw)
///         .unwrap();
///     losses.push(loss);
///     for (w, g) in weights.iter_mut().zip(&gw) {
///         *w -= 0.05 * g;
///     }
/// }
/// assert!(losses[19] < losses[0] / 2.0, "{losses:?}");
/// ```
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    tile_logits: usize,
    xhat: Vec<T>,
    xnorm: Vec<T>,
    winv: Vec<T>,
    tile: Vec<T>,
    row_losses: Vec<f64>,
    radial: Vec<f64>,
    /// (θ_i, sin θ_i) to each row's class weight, for the angular rules (Kahan's formula
    /// in f64).
    angles: Vec<(f64, f64)>,
}

impl<T: Real> Default for Workspace<T> {
    fn default() -> Workspace<T> {
        Workspace::with_tile_logits(TILE_LOGITS)
    }
}

impl<T: Real> Workspace<T> {
    /// An empty workspace that holds at most `tile_logits` logits (at least one row).
    pub fn with_tile_logits(tile_logits: usize) -> Workspace<T> {
        Workspace {
            tile_logits: tile_logits.max(1),
            xhat: Vec::new(),
            xnorm: Vec::new(),
            winv: Vec::new(),
            tile: Vec::new(),
            row_losses: Vec::new(),
            radial: Vec::new(),
            angles: Vec::new(),
        }
    }
}

impl MarginLoss {
    /// The loss of a case.
    pub fn of_case(case: &NormalizedCase) -> MarginLoss {
        MarginLoss {
            scale: case.scale,
            margin: case.margin,
            reduction: case.reduction,
        }
    }

    /// Forward and backward for features (N×D, row-major), weights (C×D) and labels (N),
    /// on `threads` threads of the current rayon pool (0: all of them).
    ///
    /// # Errors
    /// Inconsistent shapes, C < 2, a label out of range, a non-finite input, a zero-norm
    /// row, or a target whose cos θ rounds to ±1 where the rule's slope is unbounded (each
    /// naming the row).
    pub fn forward_backward<T: Real>(
        &self,
        features: &[T],
        weights: &[T],
        labels: &[usize],
        dim: usize,
        threads: usize,
    ) -> Result<MarginGradients<T>> {
        self.forward_backward_tiled(features, weights, labels, dim, threads, TILE_LOGITS)
    }

    /// [`MarginLoss::forward_backward`] with a target rule per batch row (`rules`, one per
    /// label; `None` for `self.margin` in every row): SPEC §5's per-sample margins
    /// (ElasticFace), whose rules are this loss's with each row's margin
    /// ([`NormalizedCase::margin_of`]).
    ///
    /// # Errors
    /// As [`MarginLoss::forward_backward`], and a rule per row that is not one per label or
    /// not finite.
    pub fn forward_backward_rows<T: Real>(
        &self,
        features: &[T],
        weights: &[T],
        labels: &[usize],
        rules: Option<&[Margin]>,
        dim: usize,
        threads: usize,
    ) -> Result<MarginGradients<T>> {
        self.gradients(
            (features, weights, labels, rules, 1),
            dim,
            threads,
            TILE_LOGITS,
        )
    }

    /// Sub-center ArcFace (SPEC §5, `subcenter_arcface`): `weights` holds K = `subcenters`
    /// rows per class, row j·K + k being sub-center k of class j (C·K rows in all); the
    /// cosine of class j is the largest of its sub-centers', and the gradient reaches that
    /// sub-center only (the first of an exact tie). One GEMM over the C·K rows, the max and
    /// the margin in the row pass, and the backward GEMMs with the gradient placed at each
    /// class's maximizing row (0 at the others).
    ///
    /// # Errors
    /// As [`MarginLoss::forward_backward`]; K = 0, K not dividing the rows, fewer than two
    /// classes, or a label out of 0..C.
    pub fn forward_backward_subcenters<T: Real>(
        &self,
        features: &[T],
        weights: &[T],
        labels: &[usize],
        subcenters: usize,
        dim: usize,
        threads: usize,
    ) -> Result<MarginGradients<T>> {
        self.gradients(
            (features, weights, labels, None, subcenters),
            dim,
            threads,
            TILE_LOGITS,
        )
    }

    /// [`MarginLoss::forward_backward`] holding at most `tile_logits` logits at a time (at
    /// least one row): a smaller tile saves memory for a huge C and costs GEMM efficiency.
    ///
    /// # Errors
    /// As [`MarginLoss::forward_backward`].
    pub fn forward_backward_tiled<T: Real>(
        &self,
        features: &[T],
        weights: &[T],
        labels: &[usize],
        dim: usize,
        threads: usize,
        tile_logits: usize,
    ) -> Result<MarginGradients<T>> {
        self.gradients(
            (features, weights, labels, None, 1),
            dim,
            threads,
            tile_logits,
        )
    }

    /// [`MarginLoss::run`] into fresh buffers, holding at most `tile_logits` logits.
    fn gradients<T: Real>(
        &self,
        batch: Batch<'_, T>,
        dim: usize,
        threads: usize,
        tile_logits: usize,
    ) -> Result<MarginGradients<T>> {
        let mut ws = Workspace::with_tile_logits(tile_logits);
        let mut gx = vec![T::zero(); batch.0.len()];
        let mut gw = vec![T::zero(); batch.1.len()];
        let (loss, scale) = self.run(&mut ws, batch, dim, threads, &mut gx, &mut gw)?;
        Ok(MarginGradients {
            loss,
            features: gx,
            weights: gw,
            scale,
        })
    }

    /// Forward and backward into caller-owned buffers, as a training loop calls it: `ws`
    /// keeps the normalized rows and the logit tile between calls, and the gradients are
    /// written to `grad_features` (N×D) and `grad_weights` (C×D). Returns the loss and, for
    /// `normface`, ∂L/∂s.
    ///
    /// # Errors
    /// As [`MarginLoss::forward_backward`], and gradient buffers of the wrong length.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward_into<T: Real>(
        &self,
        ws: &mut Workspace<T>,
        features: &[T],
        weights: &[T],
        labels: &[usize],
        dim: usize,
        threads: usize,
        grad_features: &mut [T],
        grad_weights: &mut [T],
    ) -> Result<(T, Option<T>)> {
        self.run(
            ws,
            (features, weights, labels, None, 1),
            dim,
            threads,
            grad_features,
            grad_weights,
        )
    }

    /// [`MarginLoss::forward_backward_into`] with row i's rule `rules[i]` where given, and
    /// K sub-centers per class (1: plain rows).
    fn run<T: Real>(
        &self,
        ws: &mut Workspace<T>,
        (features, weights, labels, rules, subcenters): Batch<'_, T>,
        dim: usize,
        threads: usize,
        grad_features: &mut [T],
        grad_weights: &mut [T],
    ) -> Result<(T, Option<T>)> {
        let n = labels.len();
        let rows = check_batch(features, weights, labels, dim)?;
        check_subcenters(rows, subcenters, labels)?;
        check_margin(&self.margin)?;
        self.check_scale()?;
        if let Some(rules) = rules {
            if rules.len() != n {
                return Err(Error::invalid(
                    "margins",
                    format!("has {} rules but the batch has N = {n} rows", rules.len()),
                ));
            }
            rules.iter().try_for_each(check_margin)?;
        }
        let margin_of = |i: usize| rules.map_or(self.margin, |r| r[i]);
        if grad_features.len() != features.len() || grad_weights.len() != weights.len() {
            return Err(Error::invalid(
                "gradients",
                "the gradient buffers must have the lengths of features and weights",
            ));
        }
        let par = Par::rayon(threads);
        normalize(features, dim, "features", &mut ws.xhat, &mut ws.xnorm)?;
        // W is never normalized in memory: its GEMMs use the raw rows, and the row pass
        // divides by ‖w_j‖ (saving a C×D write and read).
        inverse_norms(weights, dim, "weights", &mut ws.winv)?;
        ws.row_losses.resize(n, 0.0);
        let r = self.reduction.weight(n);
        // θ to the target for the angular rules, from the raw rows: acos of the GEMM's
        // cos θ is 0 wherever cos θ rounds to 1 (θ below √ε), and its slope then unbounded
        ws.angles.clear();
        // (with sub-centers, θ is to the maximizing sub-center: the row pass takes it)
        if subcenters == 1
            && (0..n).any(|i| {
                matches!(
                    margin_of(i),
                    Margin::Angular { .. } | Margin::Combined { .. }
                )
            })
        {
            // into the workspace's buffer, reused between calls
            ws.angles.par_extend((0..n).into_par_iter().map(|i| {
                let y = labels[i];
                super::angle(
                    &features[i * dim..(i + 1) * dim],
                    &weights[y * dim..(y + 1) * dim],
                )
            }));
        }
        let (winv, angles) = (&ws.winv, &ws.angles);
        row_tiles(
            &ws.xhat,
            weights,
            dim,
            ws.tile_logits,
            par,
            &mut ws.tile,
            &mut ws.row_losses,
            grad_features,
            grad_weights,
            |i, row| {
                let margin = margin_of(i);
                if subcenters > 1 {
                    let x = &features[i * dim..(i + 1) * dim];
                    return self.subcenter_row(
                        row,
                        &margin,
                        winv,
                        (x, weights, dim),
                        labels[i],
                        subcenters,
                        r,
                        i,
                    );
                }
                self.row_into_gradient(row, &margin, winv, labels[i], angles.get(i).copied(), r, i)
            },
        )?;
        // For normface, ∂L/∂s = Σ_i (ĝ_i·x̂_i)/s: the radial part of ∂L/∂X̂ is
        // Σ_j G_ij c_ij = s·Σ_j ∂L/∂z_ij c_ij.
        project_out(grad_features, &ws.xhat, &ws.xnorm, dim, &mut ws.radial);
        let scale_grad = compensated_sum(ws.radial.iter().copied()) / self.scale;
        // grad_weights holds Σ_i G_ij x̂_i/‖w_j‖ = ĝ_j/‖w_j‖, so ∂L/∂w_j is that minus its
        // component along w_j.
        project_out_raw(grad_weights, weights, &ws.winv, dim);
        let total = compensated_sum(ws.row_losses.iter().copied()) * r;
        Ok((
            T::of_f64(total),
            (self.margin == Margin::None).then(|| T::of_f64(scale_grad)),
        ))
    }

    /// Rejects a scale that is not finite and positive (the fields are public, so a caller
    /// can build any value).
    fn check_scale(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::invalid(
                "scale",
                format!("must be a finite number > 0, got {}", self.scale),
            ));
        }
        Ok(())
    }

    /// The row pass of sub-center ArcFace: row r = j·K + k of `row` holds x̂_i·w_r; each
    /// class's cosine is its largest sub-center's, whose row receives G_ij/‖w_r‖ (the
    /// others 0). θ to the target's sub-center by Kahan's formula from the raw rows
    /// (`x`, `weights` of width `dim`).
    #[allow(clippy::too_many_arguments)]
    fn subcenter_row<T: Real>(
        &self,
        row: &mut [T],
        margin: &Margin,
        inv_norms: &[T],
        (x, weights, dim): (&[T], &[T], usize),
        y: usize,
        k: usize,
        r: f64,
        i: usize,
    ) -> Result<f64> {
        let classes = row.len() / k;
        let mut best = Vec::with_capacity(classes);
        let mut logits = Vec::with_capacity(classes);
        let mut inv = Vec::with_capacity(classes);
        for j in 0..classes {
            let (mut at, mut top) = (j * k, row[j * k] * inv_norms[j * k]);
            for q in j * k + 1..(j + 1) * k {
                let c = row[q] * inv_norms[q];
                if c > top {
                    (at, top) = (q, c);
                }
            }
            // the compact row holds x̂·w_best (times 1/‖w_best‖ in the row pass), as the
            // plain row pass takes it
            best.push(at);
            logits.push(row[at]);
            inv.push(inv_norms[at]);
        }
        let wy = best[y];
        let theta = matches!(margin, Margin::Angular { .. } | Margin::Combined { .. })
            .then(|| super::angle(x, &weights[wy * dim..(wy + 1) * dim]));
        let loss = self.row_into_gradient(&mut logits, margin, &inv, y, theta, r, i)?;
        row.iter_mut().for_each(|v| *v = T::zero());
        for (&q, &g) in best.iter().zip(&logits) {
            row[q] = g;
        }
        Ok(loss)
    }

    /// Turns one row of x̂_i·w_j into its row of G_ij/‖w_j‖ (G = ∂L/∂cos θ), in place, and
    /// returns the row's cross-entropy (in f64). The work is compiled for AVX2 + FMA when the CPU has
    /// them (selected at run time): after faer's AVX kernels, plain SSE code pays a
    /// state-transition penalty on every instruction, ten times this loop's cost.
    #[allow(clippy::too_many_arguments)]
    fn row_into_gradient<T: Real>(
        &self,
        row: &mut [T],
        margin: &Margin,
        inv_norms: &[T],
        y: usize,
        theta: Option<(f64, f64)>,
        r: f64,
        i: usize,
    ) -> Result<f64> {
        margin_row(self, row, margin, inv_norms, y, theta, r, i)
    }

    /// See [`MarginLoss::row_into_gradient`]; no intermediate call, so that it is compiled
    /// with its caller's target features.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn row_portable<T: Real>(
        &self,
        row: &mut [T],
        margin: &Margin,
        inv_norms: &[T],
        y: usize,
        theta: Option<(f64, f64)>,
        r: f64,
        i: usize,
    ) -> Result<f64> {
        let s = self.scale;
        // The GEMM gave x̂_i·w_j; cos θ_ij = x̂_i·w_j / ‖w_j‖.
        let cos_y = (row[y] * inv_norms[y]).as_f64();
        let (g, slope) = target(margin, cos_y, theta).map_err(|why| {
            Error::invalid(
                format!("features[{i}]"),
                format!(
                    "its angle to its class weight weights[{y}] is θ = {} (cos θ = {cos_y} in {}), \
                     where {why} (SPEC §1, undefined points); margin_grad = \"detached\" defines it",
                    theta.map_or_else(|| cos_y.clamp(-1.0, 1.0).acos(), |t| t.0),
                    T::NAME
                ),
            )
        })?;
        let s_t = T::of_f64(s);
        let z_y = T::of_f64(s * g);
        // The GEMM gave x̂_i·w_j: the logits are s·x̂_i·w_j/‖w_j‖; G_ij/‖w_j‖ is what
        // G·W and Gᵀ·X̂ need with the raw weights.
        for (v, &inv) in row.iter_mut().zip(inv_norms) {
            *v = s_t * (*v * inv);
        }
        let (loss, rest) = softmax_gradient_row(row, y, z_y, r * s, |j| inv_norms[j]);
        // p_y − 1 = −Σ_{j≠y} p_j
        row[y] = -rest * T::of_f64(slope) * inv_norms[y];
        Ok(loss)
    }
}

crate::row_kernel!(
    fn margin_row<T: Real>(loss: &MarginLoss, row: &mut [T], margin: &Margin, inv_norms: &[T], y: usize, theta: Option<(f64, f64)>, r: f64, i: usize) -> Result<f64>
        => MarginLoss::row_portable
);

/// Checks K sub-centers per class against `rows` weight rows: K ≥ 1 divides them into
/// C ≥ 2 classes, and every label is in 0..C.
fn check_subcenters(rows: usize, k: usize, labels: &[usize]) -> Result<()> {
    if k == 0 || rows % k != 0 {
        return Err(Error::invalid(
            "weights",
            format!("has {rows} rows, which K = {k} sub-centers per class do not divide"),
        ));
    }
    let classes = rows / k;
    if classes < 2 {
        return Err(Error::invalid(
            "weights",
            format!("has C = {classes} class(es) of K = {k} sub-centers; a softmax needs C ≥ 2"),
        ));
    }
    if let Some((i, &y)) = labels.iter().enumerate().find(|&(_, &y)| y >= classes) {
        return Err(Error::invalid(
            format!("labels[{i}]"),
            format!("label {y} is out of range 0..{classes} (C = {rows} rows / K = {k})"),
        ));
    }
    Ok(())
}

/// Rejects a non-finite margin (the fields are public, so a caller can build any value).
fn check_margin(margin: &Margin) -> Result<()> {
    let finite = match *margin {
        Margin::None => true,
        Margin::Additive { m } | Margin::Angular { m, .. } => m.is_finite(),
        Margin::Combined { m1, m2, m3 } => m1.is_finite() && m2.is_finite() && m3.is_finite(),
    };
    if finite {
        Ok(())
    } else {
        Err(Error::invalid(
            "margin",
            format!("must be finite, got {margin:?}"),
        ))
    }
}

/// g(cos θ) and dg/dcos θ in f64 (SPEC §1), by the family's one binary64 rule
/// ([`super::target`]) at the angle `theta` (the angular rules; the others take acos of
/// `c`); `Err` says why the full gradient does not exist there: a slope that is unbounded
/// when θ is exactly 0 or π, or the `easy` switch hit exactly (cos θ = 0), where the
/// target logit jumps.
fn target(
    margin: &Margin,
    c: f64,
    theta: Option<(f64, f64)>,
) -> std::result::Result<(f64, f64), &'static str> {
    let c = c.clamp(-1.0, 1.0);
    let angle = theta.unwrap_or_else(|| (c.acos(), ((1.0 - c) * (1.0 + c)).sqrt()));
    let rule = super::target(margin, c, angle);
    match rule.undefined {
        Some(why) => Err(why),
        None => Ok((rule.value, rule.slope)),
    }
}

/// Unit rows and norms into `unit` and `norms`. Each row is scaled by the power of two
/// 2^−k nearest its largest |entry| first, exactly, so that Σ v² neither overflows nor
/// underflows; then v̂ = v·(2^−k/√Σ(2^−k v)²) and ‖v‖ = 2^k·√Σ(2^−k v)².
pub(crate) fn normalize<T: Real>(
    m: &[T],
    dim: usize,
    name: &str,
    unit: &mut Vec<T>,
    norms: &mut Vec<T>,
) -> Result<()> {
    unit.resize(m.len(), T::zero());
    norms.resize(m.len() / dim, T::zero());
    m.par_chunks(dim)
        .zip(unit.par_chunks_mut(dim))
        .zip(norms.par_iter_mut())
        .enumerate()
        .try_for_each(|(i, ((row, out), norm))| normalize_row(row, out, norm, name, i))
}

crate::row_kernel!(
    fn normalize_row<T: Real>(row: &[T], out: &mut [T], norm: &mut T, name: &str, i: usize) -> Result<()>
        => normalize_row_kernel
);

#[inline(always)]
fn normalize_row_kernel<T: Real>(
    row: &[T],
    out: &mut [T],
    norm: &mut T,
    name: &str,
    i: usize,
) -> Result<()> {
    let a = row.iter().fold(T::zero(), |acc, v| acc.max(v.abs()));
    if !a.is_finite() || row.iter().any(|v| v.is_nan()) {
        return Err(Error::invalid(
            format!("{name}[{i}]"),
            "has a non-finite entry",
        ));
    }
    if a == T::zero() {
        return Err(Error::invalid(
            format!("{name}[{i}]"),
            "is a zero-norm row; cos θ is undefined for it (SPEC §1, undefined points)",
        ));
    }
    // 2^−k with 2^k ≈ a: exact scaling.
    let (_, exp, _) = num_traits::Float::integer_decode(a);
    let bits = T::MANTISSA_BITS as i32 - 1;
    let k = i32::from(exp) + bits;
    let down = T::of_f64(2f64.powi(-k));
    let sum = row.iter().fold(T::zero(), |acc, &v| {
        let t = v * down;
        acc + t * t
    });
    let root = sum.sqrt();
    let factor = down / root;
    for (o, &v) in out.iter_mut().zip(row) {
        *o = v * factor;
    }
    *norm = root * T::of_f64(2f64.powi(k));
    Ok(())
}

/// 1/‖w_j‖ for every row into `inv`, with ‖w_j‖ accumulated in f64 (rescaled by the
/// largest |entry| when the plain sum of squares would overflow or underflow).
pub(crate) fn inverse_norms<T: Real>(
    m: &[T],
    dim: usize,
    name: &str,
    inv: &mut Vec<T>,
) -> Result<()> {
    inv.resize(m.len() / dim, T::zero());
    m.par_chunks(dim)
        .zip(inv.par_iter_mut())
        .enumerate()
        .try_for_each(|(i, (row, out))| inverse_norm(row, out, name, i))
}

crate::row_kernel!(
    fn inverse_norm<T: Real>(row: &[T], out: &mut T, name: &str, i: usize) -> Result<()>
        => inverse_norm_kernel
);

#[inline(always)]
fn inverse_norm_kernel<T: Real>(row: &[T], out: &mut T, name: &str, i: usize) -> Result<()> {
    let place = || format!("{name}[{i}]");
    let norm = row_norm(row, name, i)?;
    if norm == 0.0 {
        return Err(Error::invalid(
            place(),
            "is a zero-norm row; cos θ is undefined for it (SPEC §1, undefined points)",
        ));
    }
    let inverse = T::of_f64(1.0 / norm);
    if !inverse.is_finite() || inverse == T::zero() {
        return Err(Error::invalid(
            place(),
            format!(
                "has norm {norm:e}, whose inverse is outside {}'s range; cos θ does not depend on \
                 the norm, so rescale the row",
                T::NAME
            ),
        ));
    }
    *out = inverse;
    Ok(())
}

/// Replaces each row a_j of `grad` by a_j − (a_j·w_j)·w_j/‖w_j‖², removing its component
/// along the raw row w_j.
pub(crate) fn project_out_raw<T: Real>(grad: &mut [T], raw: &[T], inv_norms: &[T], dim: usize) {
    grad.par_chunks_mut(dim)
        .zip(raw.par_chunks(dim))
        .zip(inv_norms.par_iter())
        .for_each(|((g, w), &inv)| project_raw_row(g, w, inv));
}

crate::row_kernel!(
    fn project_raw_row<T: Real>(g: &mut [T], w: &[T], inv: T) -> () => project_raw_row_kernel
);

#[inline(always)]
fn project_raw_row_kernel<T: Real>(g: &mut [T], w: &[T], inv: T) {
    let radial = g
        .iter()
        .zip(w)
        .fold(0.0f64, |acc, (a, b)| acc + a.as_f64() * b.as_f64());
    let inv = inv.as_f64();
    let coef = T::of_f64(radial * inv * inv);
    for (gk, &wk) in g.iter_mut().zip(w) {
        *gk -= coef * wk;
    }
}

/// Replaces each row ĝ of `grad` (with respect to the unit row v̂) by (ĝ − (ĝ·v̂)v̂)/‖v‖, the
/// gradient with respect to v, and leaves the radial parts ĝ·v̂ (in f64) in `radial`.
pub(crate) fn project_out<T: Real>(
    grad: &mut [T],
    unit: &[T],
    norms: &[T],
    dim: usize,
    radial: &mut Vec<f64>,
) {
    radial.resize(norms.len(), 0.0);
    grad.par_chunks_mut(dim)
        .zip(unit.par_chunks(dim))
        .zip(norms.par_iter())
        .zip(radial.par_iter_mut())
        .for_each(|(((g, u), &norm), rad)| *rad = project_row(g, u, norm));
}

crate::row_kernel!(
    fn project_row<T: Real>(g: &mut [T], u: &[T], norm: T) -> f64 => project_row_kernel
);

#[inline(always)]
fn project_row_kernel<T: Real>(g: &mut [T], u: &[T], norm: T) -> f64 {
    let radial = g
        .iter()
        .zip(u)
        .fold(0.0f64, |acc, (a, b)| acc + a.as_f64() * b.as_f64());
    let rad_t = T::of_f64(radial);
    let inv = T::one() / norm;
    for (gk, &uk) in g.iter_mut().zip(u) {
        *gk = (*gk - rad_t * uk) * inv;
    }
    radial
}
