//! The fast f32/f64 paths: their errors, determinism and workspaces, and the precision table measured against the reference.
//!
//! One test crate per theme (GMP and MPFR are linked once per crate); each module was
//! its own crate before, and keeps its own documentation.

#[path = "../common/mod.rs"]
mod common;
mod error_scales;
mod fast_margin;
mod fast_seed_losses;
mod fast_softmax;
mod precision_table;
mod precision_table_adaptive;
mod precision_table_margin;
mod precision_table_seed_losses;
mod switch_walk;
