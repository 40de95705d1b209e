//! Reference implementations: every loss of SPEC §1 written as its formula on
//! [`Interval`]s, one module per family (`center` and `distill` live in their homes,
//! [`crate::family`]). [`evaluate`] dispatches a [`Case`] at a given
//! precision; [`certified`] runs it through the escalation loop of
//! [`crate::mp::certify`].

pub mod blocks;
pub mod geometry;
pub mod softmax;
pub(crate) mod softmax_balls;

use crate::answer::Answer;
use crate::error::Result;
use crate::exact;
use crate::mp::certify::{certify_with_zeros, CertifiedAnswer, Goal};
use crate::mp::interval::Interval;
use crate::spec::{Case, Reduction};

/// The enclosures of every output and gradient of `case` at `prec` bits.
///
/// ```
/// use lossref::case::parse_case;
/// use lossref::reference::evaluate;
///
/// let case = parse_case(r#"{"loss": "softmax_ce", "inputs": {"logits": [[0, 1]], "labels": [1]}}"#).unwrap();
/// let answer = evaluate(&case, 128).unwrap();
/// let loss = &answer.outputs[0].1.values()[0];
/// // log(1 + e^−1) = 0.31326168751822283…, enclosed in an interval 2^−120 wide
/// assert!(loss.lo().to_f64() <= 0.3132616875182229 && loss.hi().to_f64() >= 0.3132616875182228);
/// assert!(loss.relative_width_below(120));
/// ```
///
/// # Errors
/// A case that is not valid (`Case::validate`), or an undefined point of the loss
/// (SPEC §1), naming the row.
pub fn evaluate(case: &Case, prec: u32) -> Result<Answer<Interval>> {
    case.validate()?;
    crate::family::reference(case, prec)
}

/// The enclosures of `case` at `prec` bits by the plain path: every formula one MPFR
/// operation per term, the path that [`evaluate`]'s batch-scale evaluations (softmax_ce and
/// the normalized-margin family; `proofs/certified_products.md`) are checked against.
/// The other losses have one path.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_plain(case: &Case, prec: u32) -> Result<Answer<Interval>> {
    case.validate()?;
    crate::family::reference_plain(case, prec)
}

/// [`certified`] by the plain path ([`evaluate_plain`]): the same certified answer, more
/// slowly.
///
/// # Errors
/// As [`certified`].
pub fn certified_plain(case: &Case) -> Result<CertifiedAnswer> {
    case.validate()?;
    let mut zeros = exact::ZeroTest::new(case);
    certify_with_zeros(
        Goal::EVAL,
        |prec| crate::family::reference_plain(case, prec),
        |prec, places| zeros.proven(prec, places),
    )
}

/// The certified answer of `case` (SPEC §3): every value correctly rounded, or faithful
/// where a tie cannot be decided below the precision cap; a value whose enclosure keeps
/// containing 0 is decided exactly by [`exact::ZeroTest`].
///
/// # Errors
/// An undefined point, or a value that cannot be certified below the cap.
pub fn certified(case: &Case) -> Result<CertifiedAnswer> {
    case.validate()?;
    let mut zeros = exact::ZeroTest::new(case);
    certify_with_zeros(
        Goal::EVAL,
        |prec| crate::family::reference(case, prec),
        |prec, places| zeros.proven(prec, places),
    )
}

/// One per-sample term under SPEC §1's reduction: `v` for `sum`, v/N for `mean` (an exact
/// division by the integer N, rounded outward).
pub fn per_sample(v: &Interval, reduction: Reduction, n: usize) -> Interval {
    match reduction {
        Reduction::Sum => v.clone(),
        Reduction::Mean => v.div_i64(n as i64),
    }
}
