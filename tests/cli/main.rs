//! The command line as a user runs it: eval, bound, check, the corpus, and .npz inputs and outputs.
//!
//! One test crate per theme (GMP and MPFR are linked once per crate); each module was
//! its own crate before, and keeps its own documentation.

mod check;
mod cli_bound;
mod cli_eval;
#[path = "../common/mod.rs"]
mod common;
mod corpus;
mod npz_cases;
mod readme;
mod tiers;
