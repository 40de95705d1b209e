#![warn(missing_docs)]
//! # lossref — ground truth for softmax-family classification losses
//!
//! * [`reference`](mod@reference): every loss of SPEC §1 on certified MPFR intervals ([`mp`]), with
//!   gradients, evaluated by precision escalation until each value is correctly rounded.
//! * [`fast`]: batched f32/f64 implementations, measured against the reference in ulps
//!   with the limits of [`precision`].
//! * [`case`] and [`spec`]: the case format of SPEC §3 and the typed catalogue.
//! * [`exact`]: the exact zero test: values that symmetry and special angles make exactly
//!   0, proven (multi-quadratic fields, Lindemann–Weierstrass).
//! * [`numdiff`]: high-precision central differences, the independent check of every
//!   analytic gradient.
//! * [`bench`](mod@bench): the fused margin losses timed against their three GEMMs.
//! * [`schedule`]: SphereFace's λ annealing schedule.
//! * [`bounds`]: the theorems of SPEC §2 (NormFace's lower bound and ceiling, CosFace's
//!   scale bound, AdaCos's scale) certified to any number of digits, the configurations that
//!   attain them, and a search that tries to beat them.
//!
//! ```
//! let case = lossref::case::parse_case(
//!     r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "labels": [2]}}"#,
//! ).unwrap();
//! let answer = lossref::reference::certified(&case).unwrap();
//! let loss = answer.answer.output("loss").unwrap().values()[0].f64;
//! // ln(e + e² + e³) − 3
//! let naive = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
//! assert!((loss - naive).abs() < 1e-15);
//! ```

pub mod answer;
pub mod bench;
pub mod bounds;
pub mod case;
pub mod check;
pub mod cli;
pub mod corpus;
pub mod error;
pub mod exact;
pub mod family;
pub mod fast;
pub mod matrix;
pub mod mp;
pub mod npz;
pub mod numdiff;
pub mod precision;
pub mod reference;
pub mod report;
pub mod schedule;
pub mod spec;
pub mod tolerance;
