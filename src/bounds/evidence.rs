//! `lossref bound … --evidence`: the theorem checked on the spot, from both sides, with the
//! reference `normface` loss (SPEC §2), for class counts small enough to evaluate:
//!
//! * `normface` (T1): the loss of the regular simplex (when D ≥ n − 1) against the bound,
//!   to how many digits they agree; and a certified gradient descent ([`super::search`])
//!   that tries to push the loss below the bound in dimension D: its smallest certified gap
//!   and the number of iterates that crossed (T1 says none);
//! * `normface-ceiling` (T2): one sample with every other class weight opposite to it (exact
//!   binary64 vectors in one dimension) reaches the ceiling;
//! * `cosface-scale` (T3): at s equal to the bound the regular simplex reaches P, and at
//!   s·(1 − 10⁻⁶) it stays below P;
//! * `adacos-scale`: the regular simplex at AdaCos's scale reaches the printed posterior.

use crate::bounds::search::{descend, seeded_start, Descent, TiedNormFace};
use crate::bounds::simplex::{features_at_weights, regular_simplex};
use crate::bounds::{
    adacos_scale, cosface_posterior_ceiling, cosface_scale_bound, normface_ceiling,
    normface_lower_bound, Bound,
};
use crate::error::{Error, Result};
use crate::family::normalized::reference::{loss, Rule};
use crate::matrix::Matrix;
use crate::mp::certify::{decimal_string, Goal};
use crate::mp::interval::Interval;
use crate::spec::{Margin, Reduction};
use rug::Rational;
use serde_json::{json, Value};
use std::cmp::Ordering;

/// The most classes for which the simplex and the descent are evaluated: both cost
/// n²·D interval operations per evaluation.
pub const MAX_EVIDENCE_CLASSES: u64 = 64;

/// Steps of the T1 descent.
pub const DESCENT_STEPS: usize = 2000;

fn rule(reduction: Reduction) -> Rule {
    Rule {
        margin: Margin::None,
        reduction,
    }
}

/// The significant digits to which the enclosures a and b provably agree:
/// −log₁₀(max |a − b| / max |b|), ∞ when both are the same point.
pub fn agreement_digits(a: &Interval, b: &Interval) -> f64 {
    let diff = a.sub(b).mag();
    if diff.is_zero() {
        return f64::INFINITY;
    }
    -(diff / b.mag()).to_f64().log10()
}

/// [`agreement_digits`] for the report: to a tenth of a digit, or `"all"`.
fn agreement(a: &Interval, b: &Interval) -> Value {
    let digits = agreement_digits(a, b);
    if digits.is_infinite() {
        json!("all")
    } else {
        json!((digits * 10.0).floor() / 10.0)
    }
}

/// p_y = e^{−CE} of one sample with feature `feature` and label `y`: the reference
/// `normface` loss of that single sample (reduction `sum`) at scale `s`.
///
/// # Errors
/// A zero-norm row.
pub fn posterior(
    feature: &[Interval],
    weights: &Matrix<Interval>,
    y: usize,
    s: &Interval,
) -> Result<Interval> {
    let x = Matrix::from_vec(1, feature.len(), feature.to_vec()).expect("one row");
    Ok(loss(&rule(Reduction::Sum), &x, weights, &[y], s)?
        .neg()
        .exp())
}

/// The posterior of class `y`'s sample at its own class weight.
///
/// # Errors
/// A zero-norm row.
pub fn posterior_at_weight(weights: &Matrix<Interval>, y: usize, s: &Interval) -> Result<Interval> {
    posterior(weights.row(y), weights, y, s)
}

fn small_enough(classes: u64, what: &str) -> Result<usize> {
    if classes > MAX_EVIDENCE_CLASSES {
        return Err(Error::invalid(
            "--evidence",
            format!(
                "{what} is evaluated for at most {MAX_EVIDENCE_CLASSES} classes (it costs n²·D \
                 interval operations), got {classes}"
            ),
        ));
    }
    Ok(classes as usize)
}

/// The evidence for `bound` at the precision `goal` asks for; `dim` is T1's D (n − 1 by
/// default).
///
/// # Errors
/// Too many classes, a dimension below 1, or an undefined point of the reference.
pub fn evidence(bound: &Bound, dim: Option<usize>, goal: Goal) -> Result<Value> {
    let prec = goal.start_precision().max(448);
    let show = |iv: &Interval| decimal_string(&iv.mid(), goal.digits);
    match bound {
        Bound::NormFace { classes, scale } => {
            let n = small_enough(*classes, "T1's evidence")?;
            let d = dim.unwrap_or(n - 1);
            if d == 0 {
                return Err(Error::invalid(
                    "--dim",
                    "the dimension D must be at least 1",
                ));
            }
            let s = Interval::from_rational(prec, &scale.value);
            let b = normface_lower_bound(*classes, &s);
            let simplex = if d + 1 >= n {
                let w = regular_simplex(n, d, prec)?;
                let c = features_at_weights(&w, 1);
                let l = loss(
                    &rule(Reduction::Mean),
                    &c.features,
                    &c.weights,
                    &c.labels,
                    &s,
                )?;
                json!({"dim": d, "loss": show(&l), "agrees_with_bound_to_digits": agreement(&l, &b)})
            } else {
                json!({"dim": d, "exists": false,
                       "why": "a regular simplex of n vectors needs D ≥ n − 1, so the bound is strict here"})
            };
            let s64 = scale.value.to_f64();
            let descent = if s64 > 0.0 && s64.is_finite() {
                let objective = TiedNormFace::new(s64)?;
                let plan = Descent {
                    steps: DESCENT_STEPS,
                    certify_every: 100,
                    cap: 4096,
                };
                let r = descend(&objective, &seeded_start(n, d, 1), &plan)?;
                json!({
                    "dim": d,
                    "scale": s64,
                    "steps": plan.steps,
                    "certified_iterates": r.checkpoints,
                    "crossings": r.crossings,
                    "undecided": r.undecided,
                    "smallest_gap": decimal_string(&r.smallest_gap.hi().clone(), 6),
                    "smallest_gap_step": r.smallest_gap_step,
                })
            } else {
                json!({"skipped": "the descent needs a positive binary64 scale"})
            };
            Ok(json!({"simplex": simplex, "descent": descent}))
        }
        Bound::NormFaceCeiling { classes } => {
            // x = w_y = (1) and every other w_j = (−1): cos θ_y = 1 and cos θ_j = −1, exactly.
            let n = usize::try_from(*classes)
                .ok()
                .filter(|&n| n <= 1_000_000)
                .ok_or_else(|| {
                    Error::invalid(
                        "--evidence",
                        "T2's evidence is evaluated for at most 10^6 classes",
                    )
                })?;
            let w = Matrix::from_fn(n, 1, |j, _| {
                Interval::from_i64(prec, if j == 0 { 1 } else { -1 })
            });
            let p = posterior_at_weight(&w, 0, &Interval::from_i64(prec, 1))?;
            let ceiling = normface_ceiling(*classes, prec);
            Ok(
                json!({"configuration": "x = w_0 = (1), every other w_j = (−1), s = 1",
                      "posterior": show(&p),
                      "agrees_with_ceiling_to_digits": agreement(&p, &ceiling)}),
            )
        }
        Bound::CosFaceScale {
            classes,
            posterior: p,
        } => {
            let c = small_enough(*classes, "T3's evidence")?;
            let w = regular_simplex(c, c - 1, prec)?;
            let s = cosface_scale_bound(*classes, &p.value, prec);
            let p_iv = Interval::from_rational(prec, &p.value);
            let at = posterior_at_weight(&w, 0, &s)?;
            let shrink = Interval::from_rational(prec, &Rational::from((999_999, 1_000_000)));
            let below = posterior_at_weight(&w, 0, &s.mul(&shrink))?;
            let decided = match below.compare(&p_iv) {
                Some(Ordering::Less) => "below P",
                Some(_) => "not below P",
                None => "undecided",
            };
            Ok(json!({
                "simplex": {"classes": c, "dim": c - 1},
                "posterior_at_bound": show(&at),
                "agrees_with_p_to_digits": agreement(&at, &p_iv),
                "posterior_at_bound_times_1_minus_1e-6": show(&below),
                "which_is": decided,
            }))
        }
        Bound::AdaCosScale { classes } => {
            let c = small_enough(*classes, "AdaCos's evidence")?;
            let w = regular_simplex(c, c - 1, prec)?;
            let s = adacos_scale(*classes, prec);
            let at = posterior_at_weight(&w, 0, &s)?;
            let want = cosface_posterior_ceiling(*classes, &s);
            Ok(json!({
                "simplex": {"classes": c, "dim": c - 1},
                "posterior_at_scale": show(&at),
                "agrees_with_posterior_to_digits": agreement(&at, &want),
            }))
        }
    }
}
