#![warn(missing_docs)]
//! # lossref — ground truth for softmax-family classification losses
//!
//! Every loss of SPEC §1 in arbitrary precision with certified error bounds, fast f32/f64
//! implementations held to a precision table, and the conformance corpus with its judge.
//!
//! ## The front door
//!
//! A case (SPEC §3) is parsed and validated, then answered by the certified reference or
//! by the fast paths; every value is typed by its name:
//!
//! ```
//! use lossref::{certified, parse_case, Gradient};
//!
//! let case = parse_case(
//!     r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2, 3]], "labels": [2]}}"#,
//! )?;
//! let answer = certified(&case)?;
//! let loss = answer.answer.loss().unwrap().f64;
//! // ln(e + e² + e³) − 3
//! let naive = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
//! assert!((loss - naive).abs() < 1e-15);
//! // ∂L/∂z = softmax(z) − onehot: the target's entry is negative
//! let grad = answer.answer.grad(Gradient::Logits).unwrap().values();
//! assert!(grad[2].f64 < 0.0);
//! # Ok::<(), lossref::Error>(())
//! ```
//!
//! A case built by hand from the case type of its family is validated by [`Case::new`],
//! and again by [`Case::validate`] at every entry point, with an [`Error`] naming the place.
//!
//! ## The shape: one catalogue, one home per family, layers that ask it
//!
//! * [`family`]: the catalogue. Each family of SPEC §1 (softmax, softmax_ce, distill, the
//!   multiplicative margins lsoftmax/sphereface, center, the normalized margins) has one
//!   home, `family/<name>/`, holding everything lossref knows about it: its case type and
//!   parameters (defaults, validation, parsing), its interval reference, its fast path, the
//!   exact form of its zero test, its rows of the precision table with their error
//!   measures, its tolerance scales, its switch points, its corpus generators and the
//!   conventions the diagnosis tries. One list in `family/mod.rs` expands into the
//!   function each layer calls, so a new family is one new home and one line there.
//! * The layers, generic over the catalogue, with the toolkits the families share:
//!   [`case`] (SPEC §3 parsing, the validation toolkit), [`reference`](mod@reference)
//!   (the interval softmax and geometry; [`certified`] runs the escalation loop of [`mp`]),
//!   [`fast`] (tiles, SIMD dispatch, [`fast::dispatch`]), [`precision`] (the one table of
//!   allowed ulps), [`tolerance`] (the scales of `lossref check`), [`exact`] (the exact zero
//!   test: multi-quadratic fields, Lindemann–Weierstrass), [`corpus`] (build, verify, the
//!   reader and the generator toolkit) and [`check`] (verdicts, expectations, diagnoses,
//!   reports).
//! * Beside them: [`bounds`] (the theorems of SPEC §2 certified to any number of digits),
//!   [`numdiff`] (high-precision central differences, the independent check of every
//!   gradient), [`schedule`] (SphereFace's λ schedule), [`npz`] and [`report`].

pub mod answer;
#[doc(hidden)]
pub mod bench;
pub mod bounds;
pub mod case;
pub mod check;
#[doc(hidden)]
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
pub mod suggest;
pub mod tier;
pub mod tolerance;

pub use answer::{Answer, Gradient, Output, Tensor};
pub use case::{parse_case, parse_case_in};
pub use error::{Error, ErrorKind, Result};
pub use family::SwitchPoint;
pub use fast::{MarginLoss, Real, Workspace};
pub use mp::certify::{Certified, CertifiedAnswer, Rounded, Tier};
pub use reference::certified;
pub use spec::{Case, Dtype, LossId, Reduction};
