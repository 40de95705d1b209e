//! Arbitrary precision with guarantees: [`interval::Interval`] (enclosures with directed
//! rounding over MPFR) and [`certify`] (precision escalation and the tiers of SPEC §3).

pub mod ball;
pub mod certify;
pub mod fast_exp;
pub mod interval;
pub(crate) mod limbs;
pub mod products;
