//! The theorems of SPEC §2 that bound the normalized losses, as certified numbers.
//!
//! | name | theorem | value |
//! |---|---|---|
//! | `normface` | T1, NormFace's lower bound | log(1 + (n−1)·e^{−n·s/(n−1)}) |
//! | `normface-ceiling` | T2, the target probability without a scale | e/(e + (n−1)/e) |
//! | `cosface-scale` | T3, CosFace's scale bound | (C−1)/C · log((C−1)·P/(1−P)) |
//! | `adacos-scale` | AdaCos's fixed scale, with T3's posterior at it | √2·log(C−1), 1/(1 + (C−1)·e^{−C·s/(C−1)}) |
//!
//! Each is evaluated on the certified interval core and certified by the same escalation
//! loop as `lossref eval` ([`crate::mp::certify`]), to any number of digits. The inputs
//! are exact: the number of classes is an integer, and a scale or a posterior is the exact
//! decimal the user typed (`0.9` is nine tenths, not the binary64 nearest to it), read as a
//! rational. The proofs are `proofs/t1_normface_bound.md`, `proofs/t2_normface_ceiling.md`
//! and `proofs/t3_cosface_scale.md`; [`simplex`] builds the configurations that attain the
//! bounds and [`search`] tries to beat T1 by gradient descent.
//!
//! ```
//! use lossref::bounds::{Bound, BoundId, ExactNumber};
//! use lossref::mp::certify::Goal;
//!
//! // NormFace's figure: n = 10575 classes at ℓ = 1 (s = ℓ² = 1).
//! let scale = ExactNumber::parse("--scale", "1").unwrap();
//! let t1 = Bound::new(BoundId::NormFace, 10575, Some(scale), None).unwrap();
//! let answer = t1.certified(Goal::digits(50)).unwrap();
//! let value = &answer.answer.output("value").unwrap().values()[0];
//! assert!(value.decimal.starts_with("8.266315928710399360578892167052736"));
//! ```

pub mod evidence;
pub mod plot;
pub mod search;
pub mod simplex;

use crate::answer::{Answer, Tensor};
use crate::error::{Error, Result};
use crate::mp::certify::{certify_to, CertifiedAnswer, Goal};
use crate::mp::interval::Interval;
use crate::report::hex_f64;
use rug::{Integer, Rational};
use serde_json::{json, Map, Value};
use std::fmt;

/// The bounds `lossref bound` evaluates, in the order of SPEC §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoundId {
    /// T1: NormFace's lower bound on the loss.
    NormFace,
    /// T2: NormFace's ceiling on the target probability without a scale.
    NormFaceCeiling,
    /// T3: CosFace's lower bound on the scale for a target posterior.
    CosFaceScale,
    /// AdaCos's fixed scale √2·log(C−1), with the posterior T3 allows at it.
    AdaCosScale,
}

impl BoundId {
    /// Every bound, in SPEC order.
    pub const ALL: [BoundId; 4] = [
        BoundId::NormFace,
        BoundId::NormFaceCeiling,
        BoundId::CosFaceScale,
        BoundId::AdaCosScale,
    ];

    /// The name `lossref bound` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            BoundId::NormFace => "normface",
            BoundId::NormFaceCeiling => "normface-ceiling",
            BoundId::CosFaceScale => "cosface-scale",
            BoundId::AdaCosScale => "adacos-scale",
        }
    }

    /// Parses a bound name.
    pub fn from_name(name: &str) -> Option<BoundId> {
        BoundId::ALL.into_iter().find(|b| b.as_str() == name)
    }

    /// The theorem of SPEC §2 it comes from.
    pub fn theorem(self) -> &'static str {
        match self {
            BoundId::NormFace => "T1",
            BoundId::NormFaceCeiling => "T2",
            BoundId::CosFaceScale | BoundId::AdaCosScale => "T3",
        }
    }

    /// The statement, with its assumptions, in one sentence.
    pub fn statement(self) -> &'static str {
        match self {
            BoundId::NormFace => {
                "n balanced classes, each feature equal to its class weight, every row of norm \
                 ℓ (logits s·cos θ with s = ℓ²): the mean softmax loss is at least \
                 log(1 + (n−1)·e^{−n·s/(n−1)}), with equality exactly when the weights form a \
                 regular simplex centred at 0 (possible only when D ≥ n−1)"
            }
            BoundId::NormFaceCeiling => {
                "unit features and weights and no scale (logits cos θ): the target probability \
                 is at most e/(e + (n−1)/e), reached for one sample whose other class weights \
                 all point opposite to it, never for every class at once when n ≥ 3"
            }
            BoundId::CosFaceScale => {
                "unit class weights with Σ_j w_j = 0 and a feature at its class weight: \
                 p_y ≤ e^s/(e^s + (C−1)·e^{−s/(C−1)}), equality for the regular simplex; so a \
                 target posterior of at least P needs s ≥ (C−1)/C·log((C−1)·P/(1−P))"
            }
            BoundId::AdaCosScale => {
                "AdaCos's fixed scale √2·log(C−1); `posterior` is the largest target posterior \
                 that T3 allows at that scale, e^s/(e^s + (C−1)·e^{−s/(C−1)}), reached by the \
                 regular simplex"
            }
        }
    }

    /// The formula of `value` (and `posterior`).
    pub fn formula(self) -> &'static str {
        match self {
            BoundId::NormFace => "log(1 + (n−1)·exp(−n·s/(n−1)))",
            BoundId::NormFaceCeiling => "e/(e + (n−1)/e)",
            BoundId::CosFaceScale => "(C−1)/C·log((C−1)·P/(1−P))",
            BoundId::AdaCosScale => "√2·log(C−1); posterior 1/(1 + (C−1)·exp(−C·s/(C−1)))",
        }
    }

    /// How the swept parameter is named: `n` for NormFace, `C` for CosFace and AdaCos.
    pub fn classes_symbol(self) -> &'static str {
        match self {
            BoundId::NormFace | BoundId::NormFaceCeiling => "n",
            BoundId::CosFaceScale | BoundId::AdaCosScale => "C",
        }
    }
}

impl fmt::Display for BoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A real number the user typed, read exactly: the decimal text and the rational it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactNumber {
    /// The text, as typed (without a leading `+`).
    pub text: String,
    /// Its exact value.
    pub value: Rational,
}

impl ExactNumber {
    /// Reads a decimal number (`16`, `0.9`, `-2.5e-3`): optional sign, digits, an optional
    /// fraction and an optional exponent. The value is exact, not rounded to binary64.
    ///
    /// # Errors
    /// Text that is not such a number, naming `place`.
    pub fn parse(place: &str, text: &str) -> Result<ExactNumber> {
        let bad = || {
            Error::invalid(
                place,
                format!("expected a decimal number such as 16, 0.9 or 2.5e-3, got `{text}`"),
            )
        };
        let trimmed = text.trim();
        let (negative, body) = match trimmed.as_bytes().first() {
            Some(b'-') => (true, &trimmed[1..]),
            Some(b'+') => (false, &trimmed[1..]),
            _ => (false, trimmed),
        };
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(k) => (&body[..k], Some(&body[k + 1..])),
            None => (body, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(k) => (&mantissa[..k], &mantissa[k + 1..]),
            None => (mantissa, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !digits(int_part) || !digits(frac_part) {
            return Err(bad());
        }
        if mantissa.ends_with('.') {
            return Err(bad());
        }
        let exp10: i64 = match exponent {
            None => 0,
            Some(e) => {
                let e_digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if e_digits.is_empty() || !digits(e_digits) || e_digits.len() > 6 {
                    return Err(Error::invalid(
                        place,
                        format!("`{text}`: the exponent must be an integer of at most 6 digits"),
                    ));
                }
                e.parse().map_err(|_| bad())?
            }
        };
        let all_digits = format!("{int_part}{frac_part}");
        let m = Integer::from_str_radix(&all_digits, 10).map_err(|_| bad())?;
        let shift = exp10 - frac_part.len() as i64;
        let power = Integer::from(Integer::u_pow_u(
            10,
            u32::try_from(shift.unsigned_abs()).map_err(|_| bad())?,
        ));
        let mut value = if shift >= 0 {
            Rational::from(m * power)
        } else {
            Rational::from((m, power))
        };
        if negative {
            value = -value;
        }
        Ok(ExactNumber {
            text: trimmed.trim_start_matches('+').to_string(),
            value,
        })
    }

    /// The exact number as a JSON number with the typed digits.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| Value::String(self.text.clone()))
    }
}

/// The largest number of classes accepted: 10^15 (n and n − 1 stay exact everywhere).
pub const MAX_CLASSES: u64 = 1_000_000_000_000_000;

/// Reads a number of classes: an integer from 2 to [`MAX_CLASSES`] (`10575`, or `1e6`).
///
/// # Errors
/// Anything else, naming `place`.
pub fn parse_classes(place: &str, text: &str) -> Result<u64> {
    let bad = |why: &str| Error::invalid(place, format!("{why}, got `{text}`"));
    let exact = ExactNumber::parse(place, text)
        .map_err(|_| bad("expected a whole number of classes such as 10575"))?;
    if !exact.value.is_integer() {
        return Err(bad("the number of classes must be a whole number"));
    }
    let n = exact.value.numer();
    if *n < 2 {
        return Err(bad("the number of classes must be at least 2"));
    }
    if *n > MAX_CLASSES {
        return Err(bad(&format!(
            "the number of classes must be at most {MAX_CLASSES}"
        )));
    }
    n.to_u64()
        .ok_or_else(|| bad("the number of classes is too large"))
}

/// One bound with its inputs, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// T1 at n classes and scale s = ℓ² ≥ 0.
    NormFace {
        /// n ≥ 2.
        classes: u64,
        /// s ≥ 0.
        scale: ExactNumber,
    },
    /// T2 at n classes.
    NormFaceCeiling {
        /// n ≥ 2.
        classes: u64,
    },
    /// T3 at C classes and target posterior P ∈ (0, 1).
    CosFaceScale {
        /// C ≥ 2.
        classes: u64,
        /// 0 < P < 1.
        posterior: ExactNumber,
    },
    /// AdaCos's scale at C classes.
    AdaCosScale {
        /// C ≥ 2.
        classes: u64,
    },
}

impl Bound {
    /// Builds and validates a bound from its options; `scale` and `posterior` are required
    /// exactly where the bound uses them.
    ///
    /// # Errors
    /// n < 2, s < 0, P outside (0, 1), a missing option or one that the bound does not use,
    /// each naming the option.
    pub fn new(
        id: BoundId,
        classes: u64,
        scale: Option<ExactNumber>,
        posterior: Option<ExactNumber>,
    ) -> Result<Bound> {
        if classes < 2 {
            return Err(Error::invalid(
                "--classes",
                format!("the number of classes must be at least 2, got {classes}"),
            ));
        }
        let unused = |option: &str| {
            Error::invalid(
                option,
                format!("`{id}` does not take {option} (SPEC §2: {})", id.formula()),
            )
        };
        let needed = |option: &str| {
            Error::invalid(
                option,
                format!("`{id}` needs {option} (SPEC §2: {})", id.formula()),
            )
        };
        match id {
            BoundId::NormFace => {
                if posterior.is_some() {
                    return Err(unused("--posterior"));
                }
                let scale = scale.ok_or_else(|| needed("--scale"))?;
                if scale.value < 0 {
                    return Err(Error::invalid(
                        "--scale",
                        format!("the scale s = ℓ² must be at least 0, got {}", scale.text),
                    ));
                }
                Ok(Bound::NormFace { classes, scale })
            }
            BoundId::CosFaceScale => {
                if scale.is_some() {
                    return Err(unused("--scale"));
                }
                let posterior = posterior.ok_or_else(|| needed("--posterior"))?;
                if posterior.value <= 0 || posterior.value >= 1 {
                    return Err(Error::invalid(
                        "--posterior",
                        format!(
                            "the target posterior P must lie strictly between 0 and 1, got {}",
                            posterior.text
                        ),
                    ));
                }
                Ok(Bound::CosFaceScale { classes, posterior })
            }
            BoundId::NormFaceCeiling | BoundId::AdaCosScale => {
                if scale.is_some() {
                    return Err(unused("--scale"));
                }
                if posterior.is_some() {
                    return Err(unused("--posterior"));
                }
                Ok(if id == BoundId::NormFaceCeiling {
                    Bound::NormFaceCeiling { classes }
                } else {
                    Bound::AdaCosScale { classes }
                })
            }
        }
    }

    /// Which bound this is.
    pub fn id(&self) -> BoundId {
        match self {
            Bound::NormFace { .. } => BoundId::NormFace,
            Bound::NormFaceCeiling { .. } => BoundId::NormFaceCeiling,
            Bound::CosFaceScale { .. } => BoundId::CosFaceScale,
            Bound::AdaCosScale { .. } => BoundId::AdaCosScale,
        }
    }

    /// The number of classes (n or C).
    pub fn classes(&self) -> u64 {
        match *self {
            Bound::NormFace { classes, .. }
            | Bound::NormFaceCeiling { classes }
            | Bound::CosFaceScale { classes, .. }
            | Bound::AdaCosScale { classes } => classes,
        }
    }

    /// The same bound at another number of classes (≥ 2), for a sweep.
    pub fn with_classes(&self, n: u64) -> Bound {
        let mut b = self.clone();
        match &mut b {
            Bound::NormFace { classes, .. }
            | Bound::NormFaceCeiling { classes }
            | Bound::CosFaceScale { classes, .. }
            | Bound::AdaCosScale { classes } => *classes = n.max(2),
        }
        b
    }

    /// The inputs as a JSON object (`classes`, and `scale` or `posterior`).
    pub fn inputs_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("classes".into(), json!(self.classes()));
        match self {
            Bound::NormFace { scale, .. } => {
                m.insert("scale".into(), scale.json());
            }
            Bound::CosFaceScale { posterior, .. } => {
                m.insert("posterior".into(), posterior.json());
            }
            _ => {}
        }
        Value::Object(m)
    }

    /// The enclosures at `prec` bits: output `value`, and `posterior` for `adacos-scale`.
    pub fn evaluate(&self, prec: u32) -> Answer<Interval> {
        let outputs = match self {
            Bound::NormFace { classes, scale } => {
                let s = Interval::from_rational(prec, &scale.value);
                vec![("value", Tensor::Scalar(normface_lower_bound(*classes, &s)))]
            }
            Bound::NormFaceCeiling { classes } => {
                vec![("value", Tensor::Scalar(normface_ceiling(*classes, prec)))]
            }
            Bound::CosFaceScale { classes, posterior } => vec![(
                "value",
                Tensor::Scalar(cosface_scale_bound(*classes, &posterior.value, prec)),
            )],
            Bound::AdaCosScale { classes } => {
                let s = adacos_scale(*classes, prec);
                let p = cosface_posterior_ceiling(*classes, &s);
                vec![
                    ("value", Tensor::Scalar(s)),
                    ("posterior", Tensor::Scalar(p)),
                ]
            }
        };
        Answer {
            outputs,
            gradients: Vec::new(),
        }
    }

    /// The certified values to `goal.digits` significant digits.
    ///
    /// # Errors
    /// A value that cannot be certified below the cap. (One beyond MPFR's exponent range,
    /// such as T1 at a scale of 10^12, is an answer of tier `bounded`.)
    pub fn certified(&self, goal: Goal) -> Result<CertifiedAnswer> {
        certify_to(goal, |prec| Ok(self.evaluate(prec)))
    }

    /// A remark a user should read with the value, if any.
    pub fn note(&self) -> Option<String> {
        match self {
            Bound::CosFaceScale { classes, posterior } => {
                let chance = Rational::from((1, *classes));
                (posterior.value <= chance).then(|| {
                    format!(
                        "P = {} is at most 1/C, the posterior at s = 0: every scale s ≥ 0 reaches \
                         it, and the formula's value is not positive",
                        posterior.text
                    )
                })
            }
            _ => None,
        }
    }
}

/// T1: log(1 + (n−1)·e^{−n·s/(n−1)}), as ln1p so that a tiny second term keeps its
/// relative accuracy.
pub fn normface_lower_bound(n: u64, s: &Interval) -> Interval {
    let prec = s.prec();
    let n1 = Interval::from_rational(prec, &Rational::from(n - 1));
    let ratio = Interval::from_rational(prec, &Rational::from((n, n - 1)));
    n1.mul(&s.mul(&ratio).neg().exp()).ln_1p()
}

/// T2: e/(e + (n−1)/e) = 1/(1 + (n−1)·e^{−2}).
pub fn normface_ceiling(n: u64, prec: u32) -> Interval {
    let one = Interval::from_i64(prec, 1);
    let n1 = Interval::from_rational(prec, &Rational::from(n - 1));
    let e_minus_2 = Interval::from_i64(prec, -2).exp();
    one.div(&one.add(&n1.mul(&e_minus_2)))
}

/// T3's ceiling on the target posterior at scale s:
/// e^s/(e^s + (C−1)·e^{−s/(C−1)}) = 1/(1 + (C−1)·e^{−C·s/(C−1)}).
pub fn cosface_posterior_ceiling(c: u64, s: &Interval) -> Interval {
    let prec = s.prec();
    let one = Interval::from_i64(prec, 1);
    let c1 = Interval::from_rational(prec, &Rational::from(c - 1));
    let ratio = Interval::from_rational(prec, &Rational::from((c, c - 1)));
    one.div(&one.add(&c1.mul(&s.mul(&ratio).neg().exp())))
}

/// T3 inverted: the least scale whose simplex posterior reaches P,
/// (C−1)/C · log((C−1)·P/(1−P)). The argument of the log is an exact rational, so the value
/// is the exact point 0 when it is exactly 1 (P = 1/C).
pub fn cosface_scale_bound(c: u64, p: &Rational, prec: u32) -> Interval {
    let c1 = Rational::from(c - 1);
    let odds = Rational::from(&c1 * p) / (Rational::from(1) - p);
    let factor = Interval::from_rational(prec, &Rational::from((c - 1, c)));
    if odds == 1 {
        return Interval::from_i64(prec, 0);
    }
    factor.mul(&Interval::from_rational(prec, &odds).ln())
}

/// T3 inverted at a posterior known by an enclosure (an irrational P, say):
/// (C−1)/C · log((C−1)·P/(1−P)).
pub fn cosface_scale_for(c: u64, p: &Interval) -> Interval {
    let prec = p.prec();
    let one = Interval::from_i64(prec, 1);
    let c1 = Interval::from_rational(prec, &Rational::from(c - 1));
    let factor = Interval::from_rational(prec, &Rational::from((c - 1, c)));
    factor.mul(&c1.mul(p).div(&one.sub(p)).ln())
}

/// AdaCos's fixed scale √2·log(C−1) (exactly 0 for C = 2).
pub fn adacos_scale(c: u64, prec: u32) -> Interval {
    let two = Interval::from_i64(prec, 2);
    let c1 = Interval::from_rational(prec, &Rational::from(c - 1));
    two.sqrt().mul(&c1.ln())
}

/// The JSON that `lossref bound` prints for one bound.
pub fn bound_json(bound: &Bound, answer: &CertifiedAnswer, goal: Goal) -> Value {
    let id = bound.id();
    let mut out = json!({
        "bound": id.as_str(),
        "theorem": id.theorem(),
        "statement": id.statement(),
        "formula": id.formula(),
        "inputs": bound.inputs_json(),
    });
    let mut hex = Map::new();
    for (name, t) in &answer.answer.outputs {
        let v = &t.values()[0];
        out[*name] = Value::String(v.decimal.clone());
        hex.insert((*name).to_string(), Value::String(hex_f64(v.f64)));
    }
    out["binary64"] = Value::Object(hex);
    if let Some(note) = bound.note() {
        out["note"] = Value::String(note);
    }
    out["certificate"] = json!({
        "tier": answer.certificate.tier.as_str(),
        "precision_bits": answer.certificate.precision_bits,
        "digits": goal.digits,
    });
    out
}

/// `points` integers from `from` to `to`, spaced evenly in log n, both ends included,
/// without repeats.
pub fn log_spaced(from: u64, to: u64, points: usize) -> Vec<u64> {
    let (lo, hi) = (from.min(to), from.max(to));
    if points <= 1 || lo == hi {
        return vec![lo];
    }
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    let mut out: Vec<u64> = (0..points)
        .map(|k| {
            if k + 1 == points {
                hi
            } else {
                let x = (a + (b - a) * k as f64 / (points - 1) as f64).exp().round();
                (x as u64).clamp(lo, hi)
            }
        })
        .collect();
    out.dedup();
    out
}

/// Reads a sweep `FROM..TO` of class counts (each an integer ≥ 2, FROM < TO).
///
/// # Errors
/// Text of another form, or counts out of range, naming `--table`.
pub fn parse_range(text: &str) -> Result<(u64, u64)> {
    let (a, b) = text.split_once("..").ok_or_else(|| {
        Error::invalid(
            "--table",
            format!("expected a range FROM..TO such as 2..100000, got `{text}`"),
        )
    })?;
    let from = parse_classes("--table", a)?;
    let to = parse_classes("--table", b)?;
    if from >= to {
        return Err(Error::invalid(
            "--table",
            format!("the range must go up: FROM < TO, got `{text}`"),
        ));
    }
    Ok((from, to))
}
