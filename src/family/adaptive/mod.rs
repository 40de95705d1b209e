//! The adaptive margins of 2019–2020 (SPEC §5): `curricularface`, `adaface`, `magface` and
//! `adacos`. Each is a cross-entropy over logits that a rule makes of the cosines
//! c_ij = cos θ_ij = x̂_i·ŵ_j and of a state the batch computes first:
//!
//! | loss | state (treated as a constant) | target logit / s | other logits / s |
//! |---|---|---|---|
//! | curricularface | t' = momentum·mean_i c_iy + (1 − momentum)·t | arcface `thmm` | c(t' + c) where c > cos(θ_iy + m), else c |
//! | adaface | μ, σ of the clamped norms; ẑ_i | cos(clamp(acos c̃ − m·ẑ, eps, π − eps)) − m − m·ẑ | c̃ = clamp(c, −1 + eps, 1 − eps) |
//! | magface | — (a_i = clamp(‖x_i‖, l_a, u_a) is differentiated) | arcface's rule at m(a_i) | c |
//! | adacos | s' = log B / cos(min(π/4, θ_med)) | s'·c (the scale is s') | s'·c |
//!
//! MagFace adds λ_g·g(a_i), g(a) = a/u_a² + 1/a, to each row's loss. The state before the
//! step is an input (`t`, `batch_mean`, `batch_std`, AdaCos's `scale`), the state after it
//! an output (`t_next`, `batch_mean_next`, `batch_std_next`, `scale_next`): written as
//! functions of their state, the stateful losses have certified answers.
//!
//! **The switches, decided exactly** (`reference.rs`). CurricularFace's mask
//! c_ij > cos(θ_iy + m) and `thmm` switch, AdaFace's inner clamp and MagFace's `thmm` switch
//! compare an algebraic cosine with a transcendental threshold (Lindemann: they never tie
//! for m ≠ 0), which the escalation loop decides; AdaFace's cosine clamp at ±(1 − eps), MagFace's norm
//! clamp at l_a and u_a and CurricularFace's mask at m = 0 compare algebraic numbers, and
//! are decided in rationals where the enclosures overlap. A tie there is an undefined point
//! of the gradient (its slope jumps): an error naming the row.

mod corpus;
mod fast;
pub(crate) mod reference;
pub(crate) mod rule;

use crate::answer::Answer;
use crate::case::validate;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::{
    lower_precision_params, midpoints_of, reevaluated, Alternative, Param,
};
use crate::corpus::generate::Generated;
use crate::error::{Error, Result};
use crate::exact::ExactForm;
use crate::family::normalized;
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::Real;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{dot, norm, softmax_row, Entry, Quantity};
use crate::spec::{Arithmetic, Boundary, Case, Dtype, LossId, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use serde_json::Value;

/// The rule of an adaptive-margin loss, with its parameters and the state before the step
/// (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdaptiveRule {
    /// `curricularface`: margin m (0.5), momentum (0.01), and the running t before the
    /// step (input `t`, 0).
    CurricularFace {
        /// m.
        m: f64,
        /// The running average's momentum, in [0, 1].
        momentum: f64,
        /// t before the step.
        t: f64,
    },
    /// `adaface`: m (0.4), h (0.333), t_alpha (0.01), eps (1e-3), and the running
    /// statistics before the step (inputs `batch_mean` 20, `batch_std` 100).
    AdaFace {
        /// m.
        m: f64,
        /// h ≥ 0.
        h: f64,
        /// The running statistics' weight of the batch, in [0, 1].
        t_alpha: f64,
        /// eps in (0, 1/2).
        eps: f64,
        /// μ before the step.
        batch_mean: f64,
        /// σ before the step, ≥ 0.
        batch_std: f64,
    },
    /// `magface`: 0 < l_a < u_a (10, 110), l_m and u_m (0.45, 0.8), λ_g (35) and arcface's
    /// `boundary` (`easy`, the official default).
    MagFace {
        /// l_a.
        l_a: f64,
        /// u_a.
        u_a: f64,
        /// l_m.
        l_m: f64,
        /// u_m.
        u_m: f64,
        /// λ_g.
        lambda_g: f64,
        /// The rule below the switch.
        boundary: Boundary,
    },
    /// `adacos`: the case's `scale` is s_old.
    AdaCos,
}

/// A case of `curricularface`, `adaface`, `magface` or `adacos` (SPEC §5).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveCase {
    /// s > 0 (64); AdaCos's s_old ≥ 0 (default √2·log(C − 1)).
    pub scale: f64,
    /// The loss's rule.
    pub rule: AdaptiveRule,
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×D features, every row of non-zero norm.
    pub features: Matrix<f64>,
    /// C×D class weights, C ≥ 2, every row of non-zero norm.
    pub weights: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
}

impl AdaptiveCase {
    /// The loss of this rule.
    pub fn loss(&self) -> LossId {
        match self.rule {
            AdaptiveRule::CurricularFace { .. } => LossId::CurricularFace,
            AdaptiveRule::AdaFace { .. } => LossId::AdaFace,
            AdaptiveRule::MagFace { .. } => LossId::MagFace,
            AdaptiveRule::AdaCos => LossId::AdaCos,
        }
    }

    /// The state outputs (SPEC §5), in answer order.
    pub fn state_outputs(&self) -> &'static [&'static str] {
        match self.rule {
            AdaptiveRule::CurricularFace { .. } => &["t_next"],
            AdaptiveRule::AdaFace { .. } => &["batch_mean_next", "batch_std_next"],
            AdaptiveRule::MagFace { .. } => &[],
            AdaptiveRule::AdaCos => &["scale_next"],
        }
    }
}

impl From<AdaptiveCase> for Case {
    fn from(case: AdaptiveCase) -> Case {
        Case::Adaptive(case)
    }
}

/// What real code does instead of SPEC §5, as the reference evaluates it for the
/// diagnosis (SPEC §4); the conventions a parameter expresses (MagFace's boundary) are
/// cases of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Convention {
    /// SPEC §5 as written.
    Spec,
    /// CurricularFace's mask compared with the target logit g (its fallback
    /// cos θ − m·sin m below the switch), not cos(θ + m).
    CurricularMaskAgainstTarget,
    /// CurricularFace's hard negatives weighted by the t before the step, not t'.
    CurricularOldT,
    /// AdaFace's norms not detached: the gradient reaches ‖x_i‖ through ẑ_i.
    AdaFaceNormsFull,
    /// AdaCos's median of an even batch as the mean of its two middle angles (numpy's).
    AdaCosAveragedMedian,
    /// AdaCos's logits at s_old (the scale updated after the loss).
    AdaCosOldScale,
}

/// The adaptive losses, by rule, for the rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdaptiveLoss {
    /// `curricularface`.
    CurricularFace,
    /// `adaface`.
    AdaFace,
    /// `magface`.
    MagFace,
    /// `adacos`.
    AdaCos,
}

impl AdaptiveLoss {
    fn of(c: &AdaptiveCase) -> AdaptiveLoss {
        match c.rule {
            AdaptiveRule::CurricularFace { .. } => AdaptiveLoss::CurricularFace,
            AdaptiveRule::AdaFace { .. } => AdaptiveLoss::AdaFace,
            AdaptiveRule::MagFace { .. } => AdaptiveLoss::MagFace,
            AdaptiveRule::AdaCos => AdaptiveLoss::AdaCos,
        }
    }
}

/// A row of the table: the loss, its gradients, or its state outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdaptivePart {
    /// `loss`.
    Loss,
    /// Every gradient.
    Grad,
    /// The state after the step.
    State,
}

/// The adaptive family's rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdaptiveOutput(pub AdaptiveLoss, pub AdaptivePart);

impl TableRows for AdaptiveOutput {
    const ALL: &'static [AdaptiveOutput] = &[
        AdaptiveOutput(AdaptiveLoss::CurricularFace, AdaptivePart::Loss),
        AdaptiveOutput(AdaptiveLoss::CurricularFace, AdaptivePart::Grad),
        AdaptiveOutput(AdaptiveLoss::CurricularFace, AdaptivePart::State),
        AdaptiveOutput(AdaptiveLoss::AdaFace, AdaptivePart::Loss),
        AdaptiveOutput(AdaptiveLoss::AdaFace, AdaptivePart::Grad),
        AdaptiveOutput(AdaptiveLoss::AdaFace, AdaptivePart::State),
        AdaptiveOutput(AdaptiveLoss::MagFace, AdaptivePart::Loss),
        AdaptiveOutput(AdaptiveLoss::MagFace, AdaptivePart::Grad),
        AdaptiveOutput(AdaptiveLoss::AdaCos, AdaptivePart::Loss),
        AdaptiveOutput(AdaptiveLoss::AdaCos, AdaptivePart::Grad),
        AdaptiveOutput(AdaptiveLoss::AdaCos, AdaptivePart::State),
    ];

    fn loss(self) -> &'static str {
        match self.0 {
            AdaptiveLoss::CurricularFace => "curricularface",
            AdaptiveLoss::AdaFace => "adaface",
            AdaptiveLoss::MagFace => "magface",
            AdaptiveLoss::AdaCos => "adacos",
        }
    }

    fn output(self) -> &'static str {
        match self.1 {
            AdaptivePart::Loss => "loss",
            AdaptivePart::Grad => "grad",
            AdaptivePart::State => "state",
        }
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
        use AdaptiveLoss as L;
        use AdaptivePart as P;
        let f64_or = |wide: f64, narrow: f64| match dtype {
            Arithmetic::Float64 => wide,
            Arithmetic::Float32 => narrow,
        };
        let (max_ulps, reason) = match (self.0, self.1) {
            (L::CurricularFace, P::Loss) => (
                f64_or(1.5, 1.0),
                "as arcface.loss: the rule and each row's ln in f64 on the GEMM's cosines",
            ),
            (L::CurricularFace, P::Grad) => (
                f64_or(80.0, 120.0),
                "as arcface.grad; the hard negatives' slope s(t' + 2c) in f64",
            ),
            (L::CurricularFace, P::State) => {
                (f64_or(2.5, 1.5), "t' from N target cosines summed in f64")
            }
            (L::AdaFace, P::Loss) => (
                f64_or(3.0, 0.8),
                "the clamps and cos(θ − m·ẑ) in f64 on the GEMM's cosines",
            ),
            (L::AdaFace, P::Grad) => (
                f64_or(100.0, 80.0),
                "as arcface.grad; 0 where a clamp holds",
            ),
            (L::AdaFace, P::State) => (
                f64_or(1.5, 1.0),
                "μ and σ of N norms in f64 (σ's deviations exact to an ulp of the largest norm)",
            ),
            (L::MagFace, P::Loss) => (
                f64_or(2.0, 1.0),
                "as arcface.loss, with the regularizer λ_g·g(a) in f64",
            ),
            (L::MagFace, P::Grad) => (
                f64_or(120.0, 100.0),
                "as arcface.grad, with the radial term of m(a) and g(a)",
            ),
            (L::AdaCos, P::Loss) => (
                f64_or(3.5, 1.5),
                "normface at s', which carries log B's rounding",
            ),
            (L::AdaCos, P::Grad) => (f64_or(6.0, 5.0), "as normface.grad at s'"),
            (L::AdaCos, P::State) => (
                f64_or(1.5, 1.5),
                "log of N·C exponentials summed in f64, over a cosine",
            ),
            (L::MagFace, P::State) => (0.0, "magface has no state output"),
        };
        Entry { max_ulps, reason }
    }
}

/// The adaptive-margin family.
pub struct AdaptiveFamily;

/// A scalar input (SPEC §5's running state): a number, or a 0-d or one-entry array.
fn scalar_input(inputs: &mut Inputs, key: &'static str, default: f64) -> Result<f64> {
    if !inputs.contains(key) {
        return Ok(default);
    }
    let v = inputs.scalar(key)?;
    if !v.is_finite() {
        return Err(Error::invalid(
            inputs.place(key),
            format!("{v} is not finite"),
        ));
    }
    Ok(v)
}

/// √2·log(C − 1), AdaCos's fixed scale (SPEC §5's default s_old), rounded once to
/// binary64 (from 256 bits: the same value on every platform, where a libm's `ln` may
/// differ by an ulp).
pub fn adacos_default_scale(classes: usize) -> f64 {
    let c = rug::Float::with_val(256, classes.max(2) - 1);
    let two = rug::Float::with_val(256, 2);
    (c.ln() * two.sqrt()).to_f64()
}

impl LossFamily for AdaptiveFamily {
    type Case = AdaptiveCase;

    const NAME: &'static str = "adaptive";

    const LOSSES: &'static [LossId] = &[
        LossId::CurricularFace,
        LossId::AdaFace,
        LossId::MagFace,
        LossId::AdaCos,
    ];

    fn parse(loss: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<AdaptiveCase> {
        let features = inputs.unit_rows("features")?;
        let weights = inputs.unit_rows("weights")?;
        validate::classes(&features, &weights, &inputs.place("weights"))?;
        let labels = inputs.labels("labels", features.rows(), weights.rows())?;
        let (scale, rule) = match loss {
            LossId::CurricularFace => (
                params.positive("scale", 64.0)?,
                AdaptiveRule::CurricularFace {
                    m: params.finite("margin", 0.5)?,
                    momentum: params.unit_interval("momentum", 0.01)?,
                    t: scalar_input(inputs, "t", 0.0)?,
                },
            ),
            LossId::AdaFace => (
                params.positive("scale", 64.0)?,
                AdaptiveRule::AdaFace {
                    m: params.finite("margin", 0.4)?,
                    h: params.non_negative("h", 0.333)?,
                    t_alpha: params.unit_interval("t_alpha", 0.01)?,
                    eps: params.positive("eps", 1e-3)?,
                    batch_mean: scalar_input(inputs, "batch_mean", 20.0)?,
                    batch_std: scalar_input(inputs, "batch_std", 100.0)?,
                },
            ),
            LossId::MagFace => (
                params.positive("scale", 64.0)?,
                AdaptiveRule::MagFace {
                    l_a: params.positive("l_a", 10.0)?,
                    u_a: params.positive("u_a", 110.0)?,
                    l_m: params.finite("l_m", 0.45)?,
                    u_m: params.finite("u_m", 0.8)?,
                    lambda_g: params.non_negative("lambda_g", 35.0)?,
                    boundary: params
                        .choice(
                            "boundary",
                            Boundary::from_name,
                            "\"easy\", \"none\" or \"thmm\"",
                        )?
                        .unwrap_or(Boundary::Easy),
                },
            ),
            _ => (
                params.non_negative("scale", adacos_default_scale(weights.rows()))?,
                AdaptiveRule::AdaCos,
            ),
        };
        let reduction = params.reduction()?;
        let case = AdaptiveCase {
            scale,
            rule,
            reduction,
            features,
            weights,
            labels,
        };
        Self::validate(&case)?;
        Ok(case)
    }

    fn loss(c: &AdaptiveCase) -> LossId {
        c.loss()
    }

    fn validate(c: &AdaptiveCase) -> Result<()> {
        validate::finite_matrix("features", &c.features)?;
        validate::unit_rows("features", &c.features)?;
        validate::finite_matrix("weights", &c.weights)?;
        validate::unit_rows("weights", &c.weights)?;
        validate::classes(&c.features, &c.weights, "weights")?;
        validate::labels("labels", &c.labels, c.features.rows(), c.weights.rows())?;
        let param = |place: &str, x: f64, ok: bool, what: &str| validate::param(place, x, ok, what);
        match c.rule {
            AdaptiveRule::AdaCos => validate::non_negative("params.scale", c.scale)?,
            _ => validate::positive("params.scale", c.scale)?,
        }
        match c.rule {
            AdaptiveRule::CurricularFace { m, momentum, t } => {
                validate::finite("params.margin", m)?;
                validate::unit_interval("params.momentum", momentum)?;
                validate::finite("inputs.t", t)?;
            }
            AdaptiveRule::AdaFace {
                m,
                h,
                t_alpha,
                eps,
                batch_mean,
                batch_std,
            } => {
                validate::finite("params.margin", m)?;
                validate::non_negative("params.h", h)?;
                validate::unit_interval("params.t_alpha", t_alpha)?;
                param(
                    "params.eps",
                    eps,
                    eps > 0.0 && eps < 0.5,
                    "a number in (0, 1/2): the cosines are clamped to [−1 + eps, 1 − eps]",
                )?;
                validate::finite("inputs.batch_mean", batch_mean)?;
                validate::non_negative("inputs.batch_std", batch_std)?;
                if c.labels.len() < 2 {
                    return Err(Error::invalid(
                        "inputs.features",
                        format!(
                            "has N = {} row; adaface's σ is the unbiased standard deviation of \
                             the batch's norms, which needs N ≥ 2 (SPEC §5)",
                            c.labels.len()
                        ),
                    ));
                }
            }
            AdaptiveRule::MagFace {
                l_a,
                u_a,
                l_m,
                u_m,
                lambda_g,
                ..
            } => {
                validate::positive("params.l_a", l_a)?;
                param(
                    "params.u_a",
                    u_a,
                    u_a.is_finite() && u_a > l_a,
                    "a finite number above params.l_a",
                )?;
                validate::finite("params.l_m", l_m)?;
                validate::finite("params.u_m", u_m)?;
                validate::non_negative("params.lambda_g", lambda_g)?;
            }
            AdaptiveRule::AdaCos => {}
        }
        Ok(())
    }

    fn reduction_mut(c: &mut AdaptiveCase) -> Option<&mut Reduction> {
        Some(&mut c.reduction)
    }

    fn reference(c: &AdaptiveCase, prec: u32) -> Result<Answer<Interval>> {
        reference::evaluate(c, Convention::Spec, prec)
    }

    fn fast<T: Real>(c: &AdaptiveCase) -> Result<Answer<f64>> {
        fast::evaluate::<T>(c)
    }

    fn quantities(c: &AdaptiveCase) -> Vec<(&'static str, Quantity)> {
        let loss = AdaptiveLoss::of(c);
        let row = |part| Quantity::Adaptive(AdaptiveOutput(loss, part));
        let mut out = vec![("outputs/loss", row(AdaptivePart::Loss))];
        for name in c.state_outputs() {
            out.push((state_group(name), row(AdaptivePart::State)));
        }
        out.push(("gradients/features", row(AdaptivePart::Grad)));
        out.push(("gradients/weights", row(AdaptivePart::Grad)));
        out
    }

    fn measures(c: &AdaptiveCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<f64>> {
        tolerance_scales(c, exact, dtype)
            .into_iter()
            .map(|group| group.into_iter().map(|s| s.scale).collect())
            .collect()
    }

    fn tolerance(c: &AdaptiveCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<Scale>> {
        tolerance_scales(c, exact, dtype)
    }

    /// None: the exact zeros of these losses are those of their structure (a clamp that
    /// holds, a pole), which the reference computes as exact points.
    fn exact_form(_: &AdaptiveCase, _: u32) -> Option<Box<dyn ExactForm>> {
        None
    }

    fn conventions(c: &AdaptiveCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
        let mut out = Vec::new();
        let by = |what: &str, conv: Convention| -> Option<Alternative> {
            let a = midpoints_of(&reference::evaluate(c, conv, 160).ok()?)?;
            Some((what.to_string(), a, None))
        };
        match c.rule {
            AdaptiveRule::CurricularFace { m, .. } => {
                out.extend(by(
                    "the hard-negative mask compares with the target logit g (cos θ − m·sin m \
                     below the switch), not with cos(θ + m)",
                    Convention::CurricularMaskAgainstTarget,
                ));
                out.extend(by(
                    "the hard negatives are weighted by t before the step, not by t'",
                    Convention::CurricularOldT,
                ));
                out.extend(with_rule(c, "the margin is read in degrees", |r| match r {
                    AdaptiveRule::CurricularFace { momentum, t, .. } => {
                        AdaptiveRule::CurricularFace {
                            m: m.to_radians(),
                            momentum,
                            t,
                        }
                    }
                    other => other,
                }));
            }
            AdaptiveRule::AdaFace { .. } => {
                out.extend(by(
                    "the norms are not detached: the gradient reaches ‖x_i‖ through ẑ_i",
                    Convention::AdaFaceNormsFull,
                ));
            }
            AdaptiveRule::MagFace { boundary, .. } => {
                for other in Boundary::ALL.into_iter().filter(|b| *b != boundary) {
                    out.extend(with_rule(
                        c,
                        &format!(
                            "MagFace's boundary is `{}`, not `{}`",
                            other.as_str(),
                            boundary.as_str()
                        ),
                        |r| match r {
                            AdaptiveRule::MagFace {
                                l_a,
                                u_a,
                                l_m,
                                u_m,
                                lambda_g,
                                ..
                            } => AdaptiveRule::MagFace {
                                l_a,
                                u_a,
                                l_m,
                                u_m,
                                lambda_g,
                                boundary: other,
                            },
                            other => other,
                        },
                    ));
                }
            }
            AdaptiveRule::AdaCos => {
                if c.labels.len() % 2 == 0 {
                    out.extend(by(
                        "θ_med of an even batch is the mean of the two middle angles (numpy's \
                         median), not the lower one (torch.median)",
                        Convention::AdaCosAveragedMedian,
                    ));
                }
                out.extend(by(
                    "the logits are at s_old: the scale is updated after the loss, not before",
                    Convention::AdaCosOldScale,
                ));
            }
        }
        out.extend(lower_precision_params(whole, dtype, &real_params(c)));
        out
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::cases(dtype, out);
    }

    fn exact_zero_cases(_: Dtype) -> Vec<Generated> {
        Vec::new()
    }

    /// CurricularFace's `thmm` switch at π − m; MagFace's `easy` switch at π/2 (its `thmm`
    /// switch moves with m(a), and is not a point of θ alone).
    fn switch_points(loss: LossId, params: &Value) -> Result<Vec<SwitchPoint>> {
        let number = |key: &str, default: f64| -> Result<f64> {
            match params.get(key) {
                None => Ok(default),
                Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                    Error::invalid(
                        format!("params.{key}"),
                        format!("expected a finite number, got {v}"),
                    )
                }),
            }
        };
        match loss {
            LossId::CurricularFace => {
                let m = number("margin", 0.5)?;
                let theta = std::f64::consts::PI - m;
                Ok(vec![SwitchPoint {
                    tag: "edge:thmm-switch",
                    theta,
                    cos: theta.cos(),
                    undefined: false,
                }])
            }
            LossId::MagFace => {
                let boundary = match params.get("boundary").and_then(Value::as_str) {
                    None => Boundary::Easy,
                    Some(name) => Boundary::from_name(name).ok_or_else(|| {
                        Error::invalid(
                            "params.boundary",
                            format!("must be \"easy\", \"none\" or \"thmm\", got {name:?}"),
                        )
                    })?,
                };
                Ok(if boundary == Boundary::Easy {
                    vec![SwitchPoint {
                        tag: "edge:easy-switch",
                        theta: std::f64::consts::FRAC_PI_2,
                        cos: 0.0,
                        undefined: true,
                    }]
                } else {
                    Vec::new()
                })
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The logits from the binary64 rule: every logit is a product's cosine through the
    /// rule, whose slope |∂z/∂c| is at most s·(1 + |t'| + 2) (CurricularFace's hard
    /// negatives) or the angular slope (capped near acos's poles as the margin family's).
    fn logit_stages(c: &AdaptiveCase, u: f64) -> LogitStages {
        let cap = if u > 0.0 {
            (2.0 / (3.0 * u)).sqrt()
        } else {
            f64::INFINITY
        };
        let b = Binary64::of(c);
        let mut per_cos = 1.0f64;
        let mut rows = Vec::with_capacity(c.labels.len());
        for rule in b.rows.iter().flatten() {
            let top = rule
                .slopes
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()))
                .min(c.scale.max(b.state.scale_next.abs()) * cap);
            per_cos = per_cos.max(top);
            rows.push(rule.logits.clone());
        }
        let l1 = |m: &Matrix<f64>| {
            m.iter_rows()
                .map(|r| r.iter().map(|v| v.abs()).sum::<f64>() / norm(r))
                .fold(0.0, f64::max)
        };
        let operand_l1 = l1(&c.features) + l1(&c.weights);
        if rows.is_empty() {
            rows.push(vec![0.0; c.weights.rows()]);
        }
        LogitStages::of_products(rows, per_cos, per_cos, operand_l1, c.features.cols())
    }
}

/// `outputs/NAME` for a state output.
fn state_group(name: &str) -> &'static str {
    match name {
        "t_next" => "outputs/t_next",
        "batch_mean_next" => "outputs/batch_mean_next",
        "batch_std_next" => "outputs/batch_std_next",
        _ => "outputs/scale_next",
    }
}

/// The case with its rule changed by `f`, re-evaluated as the convention `what`.
fn with_rule(
    c: &AdaptiveCase,
    what: &str,
    f: impl FnOnce(AdaptiveRule) -> AdaptiveRule,
) -> Option<Alternative> {
    let d = AdaptiveCase {
        rule: f(c.rule),
        ..c.clone()
    };
    reevaluated(what, Case::Adaptive(d))
}

/// The real parameters, for the lower-precision conventions (SPEC §4).
fn real_params(c: &AdaptiveCase) -> Vec<Param<'static>> {
    fn on(case: &mut Case, set: impl FnOnce(&mut AdaptiveCase)) {
        if let Case::Adaptive(d) = case {
            set(d);
        }
    }
    let mut out: Vec<Param<'static>> = vec![("s", c.scale, &|k, v| on(k, |d| d.scale = v))];
    match c.rule {
        AdaptiveRule::CurricularFace { m, .. } | AdaptiveRule::AdaFace { m, .. } => {
            out.push(("m", m, &|k, v| {
                on(k, |d| match &mut d.rule {
                    AdaptiveRule::CurricularFace { m, .. } | AdaptiveRule::AdaFace { m, .. } => {
                        *m = v
                    }
                    _ => {}
                })
            }));
        }
        AdaptiveRule::MagFace { l_m, u_m, .. } => {
            out.push(("l_m", l_m, &|k, v| {
                on(k, |d| {
                    if let AdaptiveRule::MagFace { l_m, .. } = &mut d.rule {
                        *l_m = v;
                    }
                })
            }));
            out.push(("u_m", u_m, &|k, v| {
                on(k, |d| {
                    if let AdaptiveRule::MagFace { u_m, .. } = &mut d.rule {
                        *u_m = v;
                    }
                })
            }));
        }
        AdaptiveRule::AdaCos => {}
    }
    out
}

/// A case evaluated in binary64 by the one binary64 rule ([`rule`]): the batch state and
/// every row's rule (`None` where the rule is undefined), from cosines, angles and norms
/// computed accurately in binary64.
pub(crate) struct Binary64 {
    pub state: rule::State,
    pub rows: Vec<Option<rule::RowRule>>,
    pub kappas: Vec<f64>,
    /// ‖x_i‖ and ‖w_j‖, each computed once.
    pub x_norms: Vec<f64>,
    pub w_norms: Vec<f64>,
}

impl Binary64 {
    pub(crate) fn of(c: &AdaptiveCase) -> Binary64 {
        let (n, classes) = (c.labels.len(), c.weights.rows());
        let x_norms: Vec<f64> = c.features.iter_rows().map(norm).collect();
        let w_norms: Vec<f64> = c.weights.iter_rows().map(norm).collect();
        let cos: Vec<Vec<f64>> = c
            .features
            .iter_rows()
            .zip(&x_norms)
            .map(|(x, nx)| {
                c.weights
                    .iter_rows()
                    .zip(&w_norms)
                    .map(|(w, nw)| (dot(x, w) / (nx * nw)).clamp(-1.0, 1.0))
                    .collect()
            })
            .collect();
        let targets: Vec<f64> = (0..n).map(|i| cos[i][c.labels[i]]).collect();
        let exp_sum: f64 = if c.rule == AdaptiveRule::AdaCos {
            (0..n)
                .flat_map(|i| {
                    let cos = &cos;
                    (0..classes)
                        .filter(move |&j| j != c.labels[i])
                        .map(move |j| (c.scale * cos[i][j]).exp())
                })
                .sum()
        } else {
            0.0
        };
        let state = rule::state(c, &x_norms, &targets, exp_sum);
        let mut kappas = Vec::with_capacity(n);
        let rows = (0..n)
            .map(|i| {
                let theta = normalized::angle(c.features.row(i), c.weights.row(c.labels[i]));
                let angular = !matches!(c.rule, AdaptiveRule::AdaCos);
                kappas.push(if angular {
                    1.0 / theta.1.max(1e-300)
                } else {
                    1.0
                });
                // floored away from the poles: the scales never fail
                rule::row(c, &state, i, &cos[i], (theta.0, theta.1.max(1e-150))).ok()
            })
            .collect();
        Binary64 {
            state,
            rows,
            kappas,
            x_norms,
            w_norms,
        }
    }
}

/// The scales of every value (`crate::precision`'s measures and `crate::tolerance`'s
/// scales), as the normalized-margin family's (SPEC §4's tolerance model): with
/// G_ij = ∂L/∂c_ij = r·∂CE/∂z_ij·∂z_ij/∂c_ij, ∂L/∂x_i sums G_ij(ŵ_j − c_ij x̂_i)/‖x_i‖
/// (plus MagFace's radial term) and ∂L/∂w_j sums G_ij(x̂_i − c_ij ŵ_j)/‖w_j‖; each term's
/// natural size is r·|∂z/∂c|·max(p_ij, floor)·κ_i off the target and
/// r·|∂z/∂c|·(1 − p_y)·κ_i² at it (κ_i = 1/sin θ_iy for the rules through θ). The loss's
/// scale is max(|L|, max |∂z/∂c|·κ); the state's, the size of its terms.
fn tolerance_scales(c: &AdaptiveCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<Scale>> {
    let (n, classes, d) = (c.labels.len(), c.weights.rows(), c.features.cols());
    let floor = if dtype.is_half() {
        f64::MIN_POSITIVE
    } else {
        dtype.min_normal()
    };
    let b = Binary64::of(c);
    let r = c.reduction.weight(n);
    let mut rows = vec![0.0f64; n];
    let mut cols = vec![0.0f64; classes];
    let mut naive_rows = vec![0.0f64; n];
    let mut naive_cols = vec![0.0f64; classes];
    let mut radial = vec![0.0f64; n];
    let mut slope_max = 1.0f64;
    let mut kappa_max = 1.0f64;
    let mut own_max = 0.0f64;
    for i in 0..n {
        let Some(rule) = &b.rows[i] else {
            continue;
        };
        let (y, k, nx) = (c.labels[i], b.kappas[i], b.x_norms[i]);
        kappa_max = kappa_max.max(k);
        let p = softmax_row(&rule.logits, 1.0);
        let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
        let top = rule.slopes.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        slope_max = slope_max.max(top * k);
        own_max = own_max.max(rule.own.abs());
        for j in 0..classes {
            // a slope is never below s in size where it is computed (a clamp's 0 is exact)
            let slope = rule.slopes[j].abs();
            let size = if j != y {
                p[j].max(floor) * slope * k
            } else {
                rest.max(floor) * slope.max(c.scale) * k * k
            };
            let g = r * size;
            rows[i] += g / nx;
            cols[j] += g / b.w_norms[j];
            let naive = if j == y && p[y] >= 0.5 {
                r * (rest + 1.0) * slope.max(c.scale) * k * k
            } else {
                g
            };
            naive_rows[i] += naive / nx;
            naive_cols[j] += naive / b.w_norms[j];
        }
        radial[i] = r * ((1.0 + rest) * rule.target_norm_slope.abs() + rule.own_norm_slope.abs());
    }
    let loss_value = exact.loss().map_or(0.0, |l| l.abs());
    let mut loss = Scale::plain(
        loss_value
            .max(slope_max)
            .max(c.scale.max(b.state.scale_next.abs()) * kappa_max)
            .max(own_max),
        classes.max(d),
    );
    loss.kappa = kappa_max;
    let grad = |scale: f64, naive: f64, kappa: f64, terms: usize| Scale {
        scale: scale.max(f64::MIN_POSITIVE),
        kappa,
        terms,
        unstable: (naive > scale).then_some((
            naive,
            "softmax(z) − onehot: p_y − 1 cancels when the target dominates its row",
        )),
        flush: 1.0,
    };
    let mut out = vec![vec![loss]];
    for name in c.state_outputs() {
        out.push(vec![state_scale(c, &b, name)]);
    }
    out.push(
        (0..n * d)
            .map(|e| {
                let i = e / d;
                grad(
                    rows[i] + radial[i],
                    naive_rows[i] + radial[i],
                    b.kappas[i],
                    classes.max(d),
                )
            })
            .collect(),
    );
    out.push(
        (0..classes * d)
            .map(|e| grad(cols[e / d], naive_cols[e / d], kappa_max, n.max(d)))
            .collect(),
    );
    out
}

/// The scale of a state output: the size of the terms it sums.
fn state_scale(c: &AdaptiveCase, b: &Binary64, name: &str) -> Scale {
    let n = c.labels.len();
    let largest_norm = b.x_norms.iter().copied().fold(0.0f64, f64::max);
    let scale = match (c.rule, name) {
        (AdaptiveRule::CurricularFace { momentum, t, .. }, _) => {
            momentum + (1.0 - momentum) * t.abs()
        }
        (
            AdaptiveRule::AdaFace {
                t_alpha,
                batch_mean,
                ..
            },
            "batch_mean_next",
        ) => t_alpha * largest_norm.clamp(0.001, 100.0) + (1.0 - t_alpha) * batch_mean.abs(),
        (
            AdaptiveRule::AdaFace {
                t_alpha, batch_std, ..
            },
            _,
        ) => t_alpha * largest_norm.clamp(0.001, 100.0) + (1.0 - t_alpha) * batch_std,
        (AdaptiveRule::AdaCos, _) => {
            let cos_med = std::f64::consts::FRAC_1_SQRT_2;
            b.state.scale_next.abs() + c.scale / cos_med
        }
        (AdaptiveRule::MagFace { .. }, _) => 1.0,
    };
    Scale::plain(scale.max(f64::MIN_POSITIVE), n.max(c.weights.rows()))
}
