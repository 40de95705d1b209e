//! Fast f32/f64 implementations for training loops and for comparison with third-party
//! code. Batched over row-major N×C data, numerically stable, and accurate to the ulps
//! recorded in [`crate::precision`], which the test suite measures against the reference.
//!
//! Determinism: every result is bit-identical for any number of threads (faer splits a
//! GEMM's rows and columns among threads, never its sum over k, and each reduction of ours
//! runs in a fixed order). The tile size of [`MarginLoss::forward_backward_tiled`] (and of a
//! [`Workspace`]) changes only the bits of ∂L/∂W, whose sum over the batch is split at tile
//! boundaries, and, for one-row tiles (a GEMV instead of a GEMM), those of ∂L/∂X; the loss
//! and ∂L/∂s never change. The softmax, distillation and center paths run on one thread.
//! `tests/fast_paths/fast_margin.rs` holds these claims.

pub mod dispatch;
pub mod real;
pub mod simd;
pub(crate) mod tiles;

pub use crate::family::normalized::fast::{MarginGradients, MarginLoss, Workspace};
pub use real::Real;
