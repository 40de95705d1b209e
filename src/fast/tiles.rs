//! The row-tile GEMM scheme shared by the GEMM-based fast losses (the normalized-margin
//! family and L-/A-Softmax): three GEMMs in all, with at most a tile of logits in memory.
//!
//! Per tile of batch rows X_t (rows × D) against all C rows of W (C × D):
//!
//! 1. A = X_t·Wᵀ (GEMM 1) into the tile;
//! 2. a row function turns each row of A, in place and in parallel, into that row of the
//!    loss's G̃ (its ∂L/∂A) and returns a per-row result (the row's loss, and whatever the
//!    loss keeps for later);
//! 3. ∂L/∂X_t = G̃·W (GEMM 2) and ∂L/∂W += G̃ᵀ·X_t (GEMM 3).
//!
//! A tile holds all C logits of its rows, so each row's softmax is final when the row
//! function runs and no cosine is recomputed for the backward pass (a class-tiled online
//! log-sum-exp needs that fourth GEMM). Tiles are equal, of at most `tile_logits / C`
//! rows, so the last one is not a sliver.

use crate::error::{Error, Result};
use crate::fast::real::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// The most logits (rows × classes) held at once by default: 2^24, 64 MiB in f32. At
/// B = 256, C = 10k that is one tile; at C = 100k, tiles of ~160 rows.
pub const TILE_LOGITS: usize = 1 << 24;

/// The number of rows per tile: equal tiles of at most `tile_logits / classes` rows.
pub fn rows_per_tile(n: usize, classes: usize, tile_logits: usize) -> usize {
    let most = (tile_logits / classes.max(1)).clamp(1, n.max(1));
    n.div_ceil(n.div_ceil(most).max(1)).max(1)
}

/// Runs the scheme for `x` (N×D, N = `out.len()`) and `w` (C×D): `row(i, a_i)` rewrites
/// row i of A = X·Wᵀ into G̃ and returns `out[i]`; `grad_x` (N×D) receives G̃·W and
/// `grad_w` (C×D) receives G̃ᵀ·X. `tile` is the reusable buffer.
///
/// # Errors
/// The first error of `row`.
#[allow(clippy::too_many_arguments)]
pub fn row_tiles<T: Real, R: Send>(
    x: &[T],
    w: &[T],
    dim: usize,
    tile_logits: usize,
    par: Par,
    tile: &mut Vec<T>,
    out: &mut [R],
    grad_x: &mut [T],
    grad_w: &mut [T],
    row: impl Fn(usize, &mut [T]) -> Result<R> + Sync,
) -> Result<()> {
    let n = out.len();
    let c = w.len() / dim;
    let per_tile = rows_per_tile(n, c, tile_logits);
    tile.resize(per_tile * c, T::zero());
    let w_ref = MatRef::from_row_major_slice(w, c, dim);
    for start in (0..n).step_by(per_tile) {
        let rows = per_tile.min(n - start);
        let x_tile = MatRef::from_row_major_slice(&x[start * dim..(start + rows) * dim], rows, dim);
        let a = &mut tile[..rows * c];
        matmul(
            MatMut::from_row_major_slice_mut(a, rows, c),
            Accum::Replace,
            x_tile,
            w_ref.transpose(),
            T::one(),
            par,
        );
        a.par_chunks_mut(c)
            .zip(&mut out[start..start + rows])
            .enumerate()
            .try_for_each(|(k, (a_row, result))| {
                *result = row(start + k, a_row)?;
                Ok(())
            })?;
        let g = MatRef::from_row_major_slice(&tile[..rows * c], rows, c);
        matmul(
            MatMut::from_row_major_slice_mut(
                &mut grad_x[start * dim..(start + rows) * dim],
                rows,
                dim,
            ),
            Accum::Replace,
            g,
            w_ref,
            T::one(),
            par,
        );
        matmul(
            MatMut::from_row_major_slice_mut(grad_w, c, dim),
            if start == 0 {
                Accum::Replace
            } else {
                Accum::Add
            },
            g.transpose(),
            x_tile,
            T::one(),
            par,
        );
    }
    Ok(())
}

/// Checks a batch for the GEMM-based losses: N = `labels.len()` ≥ 1 rows of D ≥ 1 features,
/// C ≥ 2 class rows of D, every label in 0..C. Returns C.
///
/// # Errors
/// The first inconsistency, naming `features`, `weights` or `labels[i]`.
pub fn check_batch<T: Real>(
    features: &[T],
    weights: &[T],
    labels: &[usize],
    dim: usize,
) -> Result<usize> {
    let n = labels.len();
    if n == 0 || dim == 0 {
        return Err(Error::invalid(
            "features",
            "is empty; a batch needs N ≥ 1 rows of D ≥ 1",
        ));
    }
    if n.checked_mul(dim) != Some(features.len()) {
        return Err(Error::invalid(
            "features",
            format!(
                "has {} values, but N = {n} labels × D = {dim} needs {}",
                features.len(),
                n as u128 * dim as u128
            ),
        ));
    }
    if weights.len() % dim != 0 {
        return Err(Error::invalid(
            "weights",
            format!("has {} values, not a multiple of D = {dim}", weights.len()),
        ));
    }
    let classes = weights.len() / dim;
    if classes < 2 {
        return Err(Error::invalid(
            "weights",
            format!("has C = {classes} class(es); a softmax needs C ≥ 2"),
        ));
    }
    if let Some((i, &y)) = labels.iter().enumerate().find(|&(_, &y)| y >= classes) {
        return Err(Error::invalid(
            format!("labels[{i}]"),
            format!("label {y} is out of range 0..{classes}"),
        ));
    }
    Ok(classes)
}

/// ‖row‖ in f64: the plain sum of squares, rescaled by the largest |entry| when that sum
/// would overflow or underflow; 0 for a zero row.
///
/// # Errors
/// A non-finite entry, naming `name[i]`.
#[inline(always)]
pub fn row_norm<T: Real>(row: &[T], name: &str, i: usize) -> Result<f64> {
    let sum = row
        .iter()
        .fold(0.0f64, |acc, v| acc + v.as_f64() * v.as_f64());
    if sum.is_finite() && sum > 1e-290 {
        return Ok(sum.sqrt());
    }
    let a = row.iter().fold(0.0f64, |acc, v| acc.max(v.as_f64().abs()));
    if !a.is_finite() || row.iter().any(|v| v.is_nan()) {
        return Err(Error::invalid(
            format!("{name}[{i}]"),
            "has a non-finite entry",
        ));
    }
    if a == 0.0 {
        return Ok(0.0);
    }
    let scaled = row.iter().fold(0.0f64, |acc, v| {
        let t = v.as_f64() / a;
        acc + t * t
    });
    Ok(a * scaled.sqrt())
}

/// The softmax part of a row function: `row` holds the logits z_j for j ≠ y (`row[y]` is
/// ignored), `z_y` the target's. Writes `scale`·p_j·`column(j)` over each z_j (j ≠ y)
/// and returns CE = ln Σ_j e^{z_j} − z_y (ln1p of the others when the target is the max)
/// and `scale`·Σ_{j≠y} p_j = `scale`·(1 − p_y), without the cancellation of 1 − p_y.
/// The caller writes `row[y]`. The row is in cache: one pass for the max, one for the
/// exponentials, one for the scaling.
#[inline(always)]
pub fn softmax_gradient_row<T: Real>(
    row: &mut [T],
    y: usize,
    z_y: T,
    scale: f64,
    column: impl Fn(usize) -> T,
) -> (f64, T) {
    let m = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .fold(z_y, |m, (_, v)| m.max(*v));
    let mut others = T::zero();
    for (j, v) in row.iter_mut().enumerate() {
        if j != y {
            *v = (*v - m).exp();
            others += *v;
        }
    }
    let total = others + (z_y - m).exp();
    let factor = T::of_f64(scale) / total;
    for (j, v) in row.iter_mut().enumerate() {
        if j != y {
            *v = *v * factor * column(j);
        }
    }
    let loss = if m == z_y {
        others.as_f64().ln_1p()
    } else {
        total.as_f64().ln() + (m.as_f64() - z_y.as_f64())
    };
    (loss, others * factor)
}
