//! The theorems of SPEC §2 checked both ways, and the proofs' ties to real tests.
//!
//! One test crate per theme (GMP and MPFR are linked once per crate); each module was
//! its own crate before, and keeps its own documentation.

#[path = "../common/mod.rs"]
mod common;
mod proofs_name_real_tests;
mod t1_normface_bound;
mod t2_normface_ceiling;
mod t3_cosface_scale;
mod t5_softmax_laws;
mod t7_cross_entropy_options;
mod t7_degenerate_parameters;
