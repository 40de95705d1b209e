//! The reference losses of SPEC §1 (softmax family, distill and center, L-Softmax/SphereFace, the normalized-margin family) and their proven exact zeros.
//!
//! One test crate per theme (GMP and MPFR are linked once per crate); each module was
//! its own crate before, and keeps its own documentation.

mod adaptive_reference;
mod catalogue;
#[path = "../common/mod.rs"]
mod common;
mod cross_entropy_family;
mod distill_center_reference;
mod exact_zeros;
mod normalized_reference;
mod psi_reference;
mod sample_inputs;
mod softmax_reference;
mod subcenter_reference;
