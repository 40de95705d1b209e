//! The certified core: intervals, the escalation loop and its tiers, the exact products, the plain and batch-scale reference paths, and the answers checked against known values (golden snapshots, textbook numbers, mpmath).
//!
//! One test crate per theme (GMP and MPFR are linked once per crate); each module was
//! its own crate before, and keeps its own documentation.

mod certified_products;
mod certify;
mod class_blocks;
#[path = "../common/mod.rs"]
mod common;
mod fast_exp;
mod golden_snapshots;
mod interval_laws;
mod mpmath_crosscheck;
mod plain_and_fast_reference;
mod row_blocks;
mod scalar_laws;
mod textbook_calibration;
