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

use crate::error::Result;
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
