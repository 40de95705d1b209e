//! Fast f32/f64 implementations for training loops and for comparison with third-party
//! code. Batched over row-major N×C data, numerically stable, and accurate to the ulps
//! recorded in [`crate::precision`], which the test suite measures against the reference.

pub mod center;
pub mod dispatch;
pub mod distill;
pub mod normalized;
pub mod psi;
pub mod real;
pub mod softmax;
pub mod tiles;

pub use normalized::{MarginGradients, MarginLoss, Workspace};
pub use real::Real;
