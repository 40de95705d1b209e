//! The normalized-margin family (SPEC §1): `normface`, `cosface`, `amsoftmax`, `arcface`
//! and `combined`, whose logits are s·cos θ with the target's replaced by s·g(θ).
//!
//! Its interval reference is [`reference`](mod@reference), its fast path
//! [`fast`], the exact form of its zero test
//! [`exact`]; the one binary64 target rule (`target`) serves the
//! fast path and the error scales (`scales`).

pub(crate) mod corpus;
pub mod exact;
pub mod fast;
pub mod reference;
mod scales;
pub(crate) mod stream;
mod subset;
mod target;
mod variant;

pub(crate) use target::{angle, target};

use crate::answer::{Answer, Tensor};
use crate::case::validate;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::{lower_precision_params, reevaluated, Alternative, Param};
use crate::corpus::generate::Generated;
use crate::error::{Error, Result};
use crate::exact::{within_budget, ExactForm};
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::Real;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{per_entry, Entry, LossOutput, Quantity};
use crate::spec::{Arithmetic, Case, Dtype, LossId, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use fast::MarginLoss;
use scales::{normalized_loss_scale, normalized_terms, normface_grad_scale_scale};
use serde_json::Value;
use std::f64::consts::PI;

/// ArcFace's rule past the point where cos(θ + m) stops decreasing (SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Boundary {
    /// g = cos(θ + m) everywhere (the paper's formula).
    #[default]
    None,
    /// g = cos(θ + m) when cos θ > cos(π − m), else cos θ − m·sin m (insightface before
    /// 2022); the tie takes the fallback.
    Thmm,
    /// g = cos(θ + m) when cos θ > 0, else cos θ (the "easy margin").
    Easy,
}

impl Boundary {
    /// Every value, for messages and generators.
    pub const ALL: [Boundary; 3] = [Boundary::None, Boundary::Thmm, Boundary::Easy];

    /// The SPEC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Boundary::None => "none",
            Boundary::Thmm => "thmm",
            Boundary::Easy => "easy",
        }
    }

    /// Parses `none`, `thmm` or `easy`.
    pub fn from_name(name: &str) -> Option<Boundary> {
        Boundary::ALL.into_iter().find(|b| b.as_str() == name)
    }
}

/// How ArcFace differentiates its target logit (SPEC §1, `margin_grad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MarginGrad {
    /// The derivative of g(θ(cos θ)) itself.
    #[default]
    Full,
    /// The offset g(θ) − cos θ is held constant: the gradient of NormFace with the target
    /// logit shifted (insightface's arcface_torch since 2022, opensphere).
    Detached,
}

impl MarginGrad {
    /// Every value.
    pub const ALL: [MarginGrad; 2] = [MarginGrad::Full, MarginGrad::Detached];

    /// The SPEC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MarginGrad::Full => "full",
            MarginGrad::Detached => "detached",
        }
    }

    /// Parses `full` or `detached`.
    pub fn from_name(name: &str) -> Option<MarginGrad> {
        MarginGrad::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// The target-logit rule of the normalized-margin family (SPEC §1): the logit of class j
/// is s·cos θ_ij for j ≠ y_i and s·g(θ_iy) for the target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Margin {
    /// `normface`: g = cos θ.
    None,
    /// `cosface` / `amsoftmax`: g = cos θ − m.
    Additive {
        /// m (radians are irrelevant here: m is subtracted from a cosine).
        m: f64,
    },
    /// `arcface`: g = cos(θ + m) with a boundary rule and a gradient mode.
    Angular {
        /// m, in radians.
        m: f64,
        /// Past-the-boundary rule.
        boundary: Boundary,
        /// Full or detached margin gradient.
        grad: MarginGrad,
    },
    /// `combined`: g = cos(m1·θ + m2) − m3.
    Combined {
        /// Multiplicative angular margin (SphereFace-like).
        m1: f64,
        /// Additive angular margin (ArcFace-like), radians.
        m2: f64,
        /// Additive cosine margin (CosFace-like).
        m3: f64,
    },
}

/// A case of the normalized-margin family: `normface`, `cosface`, `amsoftmax`, `arcface`
/// or `combined` (SPEC §1). Logits are z_ij = s·cos θ_ij, the target's replaced by
/// s·g(θ_iy); the loss is `reduction` over CE(z_i, y_i).
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedCase {
    /// Which of the five losses (the margin rule alone cannot tell cosface from amsoftmax).
    pub loss: LossId,
    /// s > 0.
    pub scale: f64,
    /// The target-logit rule.
    pub margin: Margin,
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×D features, every row of non-zero norm.
    pub features: Matrix<f64>,
    /// C×D class weights, C ≥ 2, every row of non-zero norm.
    pub weights: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
    /// Per-sample margins (SPEC §5, ElasticFace's m_i ~ N(m, σ), drawn by the caller): one
    /// per batch row, replacing the rule's margin in that row (cosface's and arcface's m,
    /// combined's m2 or m3 as [`NormalizedCase::margins_as`] says); `None` for the scalar
    /// margin of every row.
    pub margins: Option<Vec<f64>>,
    /// Which of `combined`'s margins the per-sample `margins` replace (`m2` by default).
    pub margins_as: MarginSlot,
    /// A class subset (SPEC §5, Partial FC): sorted, distinct class indices containing
    /// every label. The loss uses those rows of the weights alone, and ∂L/∂w_j is 0 for
    /// every other j. `None` for every class.
    pub classes: Option<Vec<usize>>,
}

/// Which margin of `combined` the per-sample `margins` replace (SPEC §5, param
/// `margins_as`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MarginSlot {
    /// The additive angular margin m2 (ElasticArcFace).
    #[default]
    M2,
    /// The additive cosine margin m3 (ElasticCosFace).
    M3,
}

impl MarginSlot {
    /// Every value.
    pub const ALL: [MarginSlot; 2] = [MarginSlot::M2, MarginSlot::M3];

    /// The SPEC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MarginSlot::M2 => "m2",
            MarginSlot::M3 => "m3",
        }
    }

    /// Parses `m2` or `m3`.
    pub fn from_name(name: &str) -> Option<MarginSlot> {
        MarginSlot::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// NormFace's outputs, as rows of the precision table: it also differentiates its scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NormFaceOutput {
    /// The loss.
    Loss,
    /// ∂L/∂features and ∂L/∂weights.
    Grad,
    /// ∂L/∂s.
    GradScale,
}

/// The normalized-margin family's outputs, as rows of the precision table (amsoftmax is
/// cosface's mathematics and shares its rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NormalizedOutput {
    /// `normface`, with its ∂L/∂s.
    NormFace(NormFaceOutput),
    /// `cosface` and `amsoftmax`.
    CosFace(LossOutput),
    /// `arcface`.
    ArcFace(LossOutput),
    /// `combined`.
    Combined(LossOutput),
}

impl TableRows for NormalizedOutput {
    const ALL: &'static [NormalizedOutput] = &[
        NormalizedOutput::NormFace(NormFaceOutput::Loss),
        NormalizedOutput::NormFace(NormFaceOutput::Grad),
        NormalizedOutput::NormFace(NormFaceOutput::GradScale),
        NormalizedOutput::CosFace(LossOutput::Loss),
        NormalizedOutput::CosFace(LossOutput::Grad),
        NormalizedOutput::ArcFace(LossOutput::Loss),
        NormalizedOutput::ArcFace(LossOutput::Grad),
        NormalizedOutput::Combined(LossOutput::Loss),
        NormalizedOutput::Combined(LossOutput::Grad),
    ];

    fn loss(self) -> &'static str {
        match self {
            NormalizedOutput::NormFace(_) => "normface",
            NormalizedOutput::CosFace(_) => "cosface",
            NormalizedOutput::ArcFace(_) => "arcface",
            NormalizedOutput::Combined(_) => "combined",
        }
    }

    fn output(self) -> &'static str {
        match self {
            NormalizedOutput::NormFace(NormFaceOutput::Loss) => "loss",
            NormalizedOutput::NormFace(NormFaceOutput::Grad) => "grad",
            NormalizedOutput::NormFace(NormFaceOutput::GradScale) => "grad_scale",
            NormalizedOutput::CosFace(o)
            | NormalizedOutput::ArcFace(o)
            | NormalizedOutput::Combined(o) => o.as_str(),
        }
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
        match self {
            NormalizedOutput::NormFace(o) => normface_entry(o, dtype),
            NormalizedOutput::CosFace(o) => cosface_entry(o, dtype),
            NormalizedOutput::ArcFace(o) => arcface_entry(o, dtype),
            NormalizedOutput::Combined(o) => combined_entry(o, dtype),
        }
    }
}

impl From<NormalizedCase> for Case {
    fn from(case: NormalizedCase) -> Case {
        Case::Normalized(case)
    }
}

/// The normalized-margin family.
pub struct NormalizedFamily;

impl NormalizedCase {
    /// Whether the case differentiates its scale s: `normface` (SPEC §1, `gradients/scale`).
    pub fn learns_scale(&self) -> bool {
        self.loss == LossId::NormFace
    }

    /// The target rule of batch row `i`: the case's rule, with its margin replaced by the
    /// row's per-sample margin where the case has them (SPEC §5).
    pub fn margin_of(&self, i: usize) -> Margin {
        let Some(m) = self.margins.as_ref().and_then(|v| v.get(i).copied()) else {
            return self.margin;
        };
        match (self.margin, self.margins_as) {
            (Margin::None, _) => Margin::None,
            (Margin::Additive { .. }, _) => Margin::Additive { m },
            (Margin::Angular { boundary, grad, .. }, _) => Margin::Angular { m, boundary, grad },
            (Margin::Combined { m1, m3, .. }, MarginSlot::M2) => Margin::Combined { m1, m2: m, m3 },
            (Margin::Combined { m1, m2, .. }, MarginSlot::M3) => Margin::Combined { m1, m2, m3: m },
        }
    }

    /// Every row's target rule where the case has per-sample margins (SPEC §5); `None` for
    /// one rule.
    pub fn row_margins(&self) -> Option<Vec<Margin>> {
        self.margins
            .as_ref()
            .map(|v| (0..v.len()).map(|i| self.margin_of(i)).collect())
    }

    /// The same case with its per-sample margins mapped by `f` (the caller maps the scalar
    /// one): what the diagnosis re-evaluates for margins read in degrees.
    fn with_margins_mapped(&self, f: impl Fn(f64) -> f64) -> NormalizedCase {
        let mut d = self.clone();
        if let Some(v) = &mut d.margins {
            v.iter_mut().for_each(|m| *m = f(*m));
        }
        d
    }
}

impl LossFamily for NormalizedFamily {
    type Case = NormalizedCase;

    const NAME: &'static str = "normalized";

    const LOSSES: &'static [LossId] = &[
        LossId::NormFace,
        LossId::CosFace,
        LossId::AmSoftmax,
        LossId::ArcFace,
        LossId::Combined,
    ];

    fn parse(loss: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<NormalizedCase> {
        normalized_case(loss, params, inputs)
    }

    fn loss(c: &NormalizedCase) -> LossId {
        c.loss
    }

    fn validate(c: &NormalizedCase) -> Result<()> {
        let consistent = match c.margin {
            Margin::None => c.loss == LossId::NormFace,
            Margin::Additive { m } => {
                validate::finite("params.margin", m)?;
                matches!(c.loss, LossId::CosFace | LossId::AmSoftmax)
            }
            Margin::Angular { m, .. } => {
                validate::finite("params.margin", m)?;
                c.loss == LossId::ArcFace
            }
            Margin::Combined { m1, m2, m3 } => {
                validate::finite("params.m1", m1)?;
                validate::finite("params.m2", m2)?;
                validate::finite("params.m3", m3)?;
                c.loss == LossId::Combined
            }
        };
        if !consistent {
            return Err(Error::invalid(
                "margin",
                format!(
                    "{:?} is not the rule of `{}` (normface: None, cosface and amsoftmax: \
                     Additive, arcface: Angular, combined: Combined)",
                    c.margin, c.loss
                ),
            ));
        }
        validate::positive("params.scale", c.scale)?;
        validate::finite_matrix("features", &c.features)?;
        validate::unit_rows("features", &c.features)?;
        validate::finite_matrix("weights", &c.weights)?;
        validate::unit_rows("weights", &c.weights)?;
        validate::classes(&c.features, &c.weights, "weights")?;
        validate::labels("labels", &c.labels, c.features.rows(), c.weights.rows())?;
        validate_margins(c)?;
        if let Some(classes) = &c.classes {
            validate_subset(
                classes,
                &c.labels,
                c.weights.rows(),
                ("inputs.classes", "inputs.labels"),
            )?;
        }
        Ok(())
    }

    fn reduction_mut(c: &mut NormalizedCase) -> Option<&mut Reduction> {
        Some(&mut c.reduction)
    }

    fn reference(c: &NormalizedCase, prec: u32) -> Result<Answer<Interval>> {
        subset::through(c, Interval::from_i64(prec, 0), |c| {
            reference::evaluate(c, prec)
        })
    }

    fn reference_plain(c: &NormalizedCase, prec: u32) -> Result<Answer<Interval>> {
        subset::through(c, Interval::from_i64(prec, 0), |c| {
            reference::evaluate_plain(c, prec)
        })
    }

    fn class_blocks(
        c: &NormalizedCase,
        block_values: usize,
    ) -> Option<crate::reference::blocks::ClassBlocks<NormalizedCase>> {
        // a subset's case streams its restricted case, whose blocks of rows land at the
        // subset's classes, exact zeros between them (`subset::stream`)
        stream::streams(c, block_values).then(|| crate::reference::blocks::ClassBlocks {
            name: "weights",
            position: 1,
            rows: c.weights.rows(),
            cols: c.weights.cols(),
            certify: |c, whole, with_decimals, block_values, sink| match subset::restricted(c) {
                Some(sub) => subset::stream(c, &sub, with_decimals, block_values, sink),
                None => {
                    let block_classes = stream::classes_per_block(c, block_values);
                    stream::certify(c, whole, with_decimals, block_classes, sink)
                }
            },
        })
    }

    fn fast<T: Real>(c: &NormalizedCase) -> Result<Answer<f64>> {
        subset::through(c, 0.0, fast_of::<T>)
    }

    fn quantities(c: &NormalizedCase) -> Vec<(&'static str, Quantity)> {
        let (loss, grad) = match c.margin {
            Margin::None => (
                Quantity::Normalized(NormalizedOutput::NormFace(NormFaceOutput::Loss)),
                Quantity::Normalized(NormalizedOutput::NormFace(NormFaceOutput::Grad)),
            ),
            Margin::Additive { .. } => (
                Quantity::Normalized(NormalizedOutput::CosFace(LossOutput::Loss)),
                Quantity::Normalized(NormalizedOutput::CosFace(LossOutput::Grad)),
            ),
            Margin::Angular { .. } => (
                Quantity::Normalized(NormalizedOutput::ArcFace(LossOutput::Loss)),
                Quantity::Normalized(NormalizedOutput::ArcFace(LossOutput::Grad)),
            ),
            Margin::Combined { .. } => (
                Quantity::Normalized(NormalizedOutput::Combined(LossOutput::Loss)),
                Quantity::Normalized(NormalizedOutput::Combined(LossOutput::Grad)),
            ),
        };
        let mut out = vec![
            ("outputs/loss", loss),
            ("gradients/features", grad),
            ("gradients/weights", grad),
        ];
        if c.learns_scale() {
            out.push((
                "gradients/scale",
                Quantity::Normalized(NormalizedOutput::NormFace(NormFaceOutput::GradScale)),
            ));
        }
        out
    }

    /// The loss in ulps of max(|L|, s·κ); each gradient entry in ulps of the magnitudes
    /// its row sums, weighted by the conditioning of acos (`crate::precision`'s docs);
    /// ∂L/∂s in ulps of 2 (`mean`) or 2N (`sum`).
    fn measures(c: &NormalizedCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<f64>> {
        if let Some(sub) = subset::restricted(c) {
            // ∂L/∂w_j is exactly 0 off the subset; its measure only needs to be positive
            let mut columns = Self::measures(&sub, exact, dtype);
            columns[2] =
                subset::scatter_per_row(c, std::mem::take(&mut columns[2]), f64::MIN_POSITIVE);
            return columns;
        }
        let t = normalized_terms(c, dtype.min_normal());
        let d = c.features.cols();
        let mut columns = vec![
            vec![normalized_loss_scale(
                c,
                exact.loss().map_or(0.0, |l| l.abs()),
                &t,
            )],
            per_entry(&t.rows, d),
            per_entry(&t.cols, d),
        ];
        if c.learns_scale() {
            columns.push(vec![normface_grad_scale_scale(c)]);
        }
        columns
    }

    /// The measures of [`NormalizedFamily::measures`] with κ kept and `softmax(z) − onehot`
    /// named as the unstable textbook gradient, each probability floored at the smallest
    /// normal number of a float32 or float64 case's dtype: below it a careful
    /// implementation's probabilities keep only their absolute resolution (gradual
    /// underflow, half a subnormal ulp), which the gradients scale by s/‖x_i‖ or s/‖w_j‖.
    /// A 16-bit case keeps binary64's floor: its tiers' limits (SPEC §6) state what its
    /// subnormals cost.
    fn tolerance(c: &NormalizedCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<Scale>> {
        if let Some(sub) = subset::restricted(c) {
            // ∂L/∂w_j is exactly 0 off the subset (the loss never reads w_j): any other
            // value fails
            let mut columns = Self::tolerance(&sub, exact, dtype);
            columns[2] = subset::scatter_per_row(
                c,
                std::mem::take(&mut columns[2]),
                Scale::plain(f64::MIN_POSITIVE, 1),
            );
            return columns;
        }
        let (n, classes, d) = (c.labels.len(), c.weights.rows(), c.features.cols());
        let floor = if dtype.is_half() {
            f64::MIN_POSITIVE
        } else {
            dtype.min_normal()
        };
        let t = normalized_terms(c, floor);
        let mut loss_scale = Scale::plain(
            normalized_loss_scale(c, exact.loss().map_or(0.0, |l| l.abs()), &t),
            classes.max(d),
        );
        loss_scale.kappa = t.kappa_max;
        let grad = |scale: f64, naive: f64, kappa: f64, terms: usize, flush: f64| Scale {
            scale,
            kappa,
            terms,
            // named only where a row in the formula's regime contributes (SPEC §4)
            unstable: (naive > scale).then_some((
                naive,
                "softmax(z) − onehot: p_y − 1 cancels when the target dominates its row",
            )),
            flush,
        };
        // A flushed probability p_ij moves ∂L/∂x_i by r·s·|ŵ_j − cos θ_ij·x̂_i|/‖x_i‖ ≤
        // r·s/‖x_i‖ (that vector's length is sin θ_ij), and ∂L/∂w_j by at most r·s/‖w_j‖:
        // over the C − 1 other classes of a row, and the rows whose target is not j.
        let r = c.reduction.weight(n);
        let flush = |others: usize, norm: f64| {
            (r * c.scale * others as f64 / norm.max(f64::MIN_POSITIVE)).max(1.0)
        };
        let row_flush: Vec<f64> = c
            .features
            .iter_rows()
            .map(|x| flush(classes.saturating_sub(1), crate::precision::norm(x)))
            .collect();
        let mut targets_of = vec![0usize; classes];
        for &y in &c.labels {
            targets_of[y] += 1;
        }
        let col_flush: Vec<f64> = (0..classes)
            .map(|j| flush(n - targets_of[j], crate::precision::norm(c.weights.row(j))))
            .collect();
        let mut columns = vec![
            vec![loss_scale],
            (0..n * d)
                .map(|e| {
                    grad(
                        t.rows[e / d],
                        t.naive_rows[e / d],
                        t.kappas[e / d],
                        classes.max(d),
                        row_flush[e / d],
                    )
                })
                .collect(),
            (0..classes * d)
                .map(|e| {
                    grad(
                        t.cols[e / d],
                        t.naive_cols[e / d],
                        t.kappa_max,
                        n.max(d),
                        col_flush[e / d],
                    )
                })
                .collect(),
        ];
        if c.learns_scale() {
            columns.push(vec![Scale::plain(
                normface_grad_scale_scale(c),
                n * classes,
            )]);
        }
        columns
    }

    fn exact_form(c: &NormalizedCase, prec: u32) -> Option<Box<dyn ExactForm>> {
        if let Some(sub) = subset::restricted(c) {
            let form = Self::exact_form(&sub, prec)?;
            let classes = c.classes.clone()?;
            return Some(Box::new(subset::SubsetForm::new(
                form,
                classes,
                c.weights.cols(),
            )));
        }
        within_budget(c.features.rows(), c.weights.rows(), c.features.cols())?;
        Some(Box::new(exact::NormalizedForm::new(c, prec)?))
    }

    /// The target logit s·cos θ − m (cosface), margins read in degrees, the other
    /// boundaries of ArcFace and its other margin gradient.
    fn conventions(c: &NormalizedCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
        let mut out = Vec::new();
        let with = |out: &mut Vec<Alternative>, what: &str, case: Case| {
            out.extend(reevaluated(what, case));
        };
        let degrees = std::f64::consts::PI / 180.0;
        match c.margin {
            Margin::Additive { m } => {
                let mut d = c.with_margins_mapped(|m| m / c.scale);
                d.margin = Margin::Additive { m: m / c.scale };
                with(
                    &mut out,
                    "the target logit is s·cos θ − m, not s·(cos θ − m)",
                    Case::Normalized(d),
                );
                let mut d = c.with_margins_mapped(|m| m * degrees);
                d.margin = Margin::Additive { m: m * degrees };
                with(
                    &mut out,
                    "the margin is read in degrees",
                    Case::Normalized(d),
                );
            }
            Margin::Angular { m, boundary, grad } => {
                let mut d = c.with_margins_mapped(|m| m * degrees);
                d.margin = Margin::Angular {
                    m: m * degrees,
                    boundary,
                    grad,
                };
                with(
                    &mut out,
                    "the margin is read in degrees",
                    Case::Normalized(d),
                );
                for other in Boundary::ALL.into_iter().filter(|b| *b != boundary) {
                    let mut d = c.clone();
                    d.margin = Margin::Angular {
                        m,
                        boundary: other,
                        grad,
                    };
                    with(
                        &mut out,
                        &format!(
                            "ArcFace's boundary is `{}`, not `{}`",
                            other.as_str(),
                            boundary.as_str()
                        ),
                        Case::Normalized(d),
                    );
                }
                let other = if grad == MarginGrad::Full {
                    MarginGrad::Detached
                } else {
                    MarginGrad::Full
                };
                let mut d = c.clone();
                d.margin = Margin::Angular {
                    m,
                    boundary,
                    grad: other,
                };
                with(
                    &mut out,
                    &format!(
                        "the margin gradient is `{}`, not `{}`",
                        other.as_str(),
                        grad.as_str()
                    ),
                    Case::Normalized(d),
                );
            }
            Margin::Combined { m1, m2, m3 } => {
                let mut d = if c.margins_as == MarginSlot::M2 {
                    c.with_margins_mapped(|m| m * degrees)
                } else {
                    c.clone()
                };
                d.margin = Margin::Combined {
                    m1,
                    m2: m2 * degrees,
                    m3,
                };
                with(
                    &mut out,
                    "the angular margin m2 is read in degrees",
                    Case::Normalized(d),
                );
                out.extend(insightface_combined(c, (m1, m2, m3)));
            }
            Margin::None => {}
        }
        out.extend(variant::conventions(c, dtype));
        out.extend(lower_precision_params(whole, dtype, &real_params(c)));
        out.extend(sample_conventions(c, dtype));
        out
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::cases(dtype, out);
        corpus::sample_input_cases(dtype, out);
    }

    /// Empty: the special-angle construction serves this family.
    fn exact_zero_cases(_: Dtype) -> Vec<Generated> {
        Vec::new()
    }

    /// acos's poles θ = 0 and π for every rule, ArcFace's `thmm` switch θ = π − m and its
    /// `easy` switch θ = π/2; each undefined where the family's rule says the requested
    /// gradient does not exist there ([`target`]).
    fn switch_points(loss: LossId, params: &Value) -> Result<Vec<SwitchPoint>> {
        let (_, margin, _) = margin_params(loss, params)?;
        let point = |tag, theta: f64, cos: f64| SwitchPoint {
            tag,
            theta,
            cos,
            // sin θ exactly 0 at the poles
            undefined: target(
                &margin,
                cos,
                (theta, if cos.abs() == 1.0 { 0.0 } else { theta.sin() }),
            )
            .undefined
            .is_some(),
        };
        let mut points = vec![
            point("edge:acos-near-1", 0.0, 1.0),
            point("edge:acos-near-minus-1", PI, -1.0),
        ];
        if let Margin::Angular { m, boundary, .. } = margin {
            match boundary {
                Boundary::Thmm => {
                    let theta = PI - m;
                    points.push(point("edge:thmm-switch", theta, theta.cos()));
                }
                Boundary::Easy => points.push(point("edge:easy-switch", PI / 2.0, 0.0)),
                Boundary::None => {}
            }
        }
        Ok(points)
    }

    /// See `scales::normalized_logit_stages`.
    fn logit_stages(c: &NormalizedCase, u: f64) -> LogitStages {
        if let Some(sub) = subset::restricted(c) {
            return scales::normalized_logit_stages(&sub, u);
        }
        scales::normalized_logit_stages(c, u)
    }
}

/// The fast path of a case without a class subset, in dtype `T` (a subset's goes through
/// [`subset::through`]).
fn fast_of<T: Real>(c: &NormalizedCase) -> Result<Answer<f64>> {
    let d = c.features.cols();
    let g = MarginLoss::of_case(c).forward_backward_rows(
        &narrow::<T>(&c.features),
        &narrow::<T>(&c.weights),
        &c.labels,
        c.row_margins().as_deref(),
        d,
        0,
    )?;
    let mut gradients = vec![
        ("features", widen(c.features.rows(), d, g.features)),
        ("weights", widen(c.weights.rows(), d, g.weights)),
    ];
    if c.learns_scale() {
        if let Some(s) = g.scale {
            gradients.push(("scale", Tensor::Scalar(s.as_f64())));
        }
    }
    Ok(Answer {
        outputs: vec![("loss", Tensor::Scalar(g.loss.as_f64()))],
        gradients,
    })
}

/// insightface's `CombinedMarginLoss` (recognition/arcface_torch/losses.py, SPEC §5), where
/// it differs from `combined`: with m3 > 0 it ignores m1 and m2 (`target_logit - self.m3`,
/// per-sample margins as m2 with them); with m1 = 1 and m3 = 0 it adds m2 to θ under
/// `torch.no_grad()` with in-place arccos and cos, which is arcface with boundary `none`
/// and the detached margin gradient.
fn insightface_combined(c: &NormalizedCase, (m1, m2, m3): (f64, f64, f64)) -> Vec<Alternative> {
    let mut out = Vec::new();
    if m3 > 0.0
        && (m1 != 1.0 || m2 != 0.0 || (c.margins.is_some() && c.margins_as == MarginSlot::M2))
    {
        let mut d = c.clone();
        d.margin = Margin::Combined {
            m1: 1.0,
            m2: 0.0,
            m3,
        };
        if d.margins_as == MarginSlot::M2 {
            d.margins = None;
        }
        out.extend(reevaluated(
            "insightface's CombinedMarginLoss: with m3 > 0 it ignores m1 and m2 (the target logit is s·(cos θ − m3))",
            Case::Normalized(d),
        ));
    }
    if m1 == 1.0 && m3 == 0.0 && c.margins_as == MarginSlot::M2 {
        let d = NormalizedCase {
            loss: LossId::ArcFace,
            margin: Margin::Angular {
                m: m2,
                boundary: Boundary::None,
                grad: MarginGrad::Detached,
            },
            ..c.clone()
        };
        out.extend(reevaluated(
            "insightface's CombinedMarginLoss: with m1 = 1 and m3 = 0 the margin is added under torch.no_grad() (arcface with the detached margin gradient)",
            Case::Normalized(d),
        ));
    }
    out
}

/// SPEC §5's inputs mishandled: per-sample margins ignored (every row takes the scalar
/// margin of `params`) or held in the dtype's lower precision (a float32 tensor drawn by
/// `torch.normal` beside float64 angles), and a class subset ignored (the softmax over
/// every class).
fn sample_conventions(c: &NormalizedCase, dtype: Dtype) -> Vec<Alternative> {
    let mut out = Vec::new();
    if let Some(margins) = &c.margins {
        let d = NormalizedCase {
            margins: None,
            ..c.clone()
        };
        out.extend(reevaluated(
            &format!(
                "the per-sample margins are ignored: every row takes the scalar margin ({:?})",
                c.margin
            ),
            Case::Normalized(d),
        ));
        if margins.iter().any(|&m| dtype.round_lower(m) != m) {
            out.extend(reevaluated(
                &format!("the per-sample margins are held in {}", dtype.lower_name()),
                Case::Normalized(c.with_margins_mapped(|m| dtype.round_lower(m))),
            ));
        }
    }
    if let Some(classes) = &c.classes {
        if classes.len() < c.weights.rows() {
            let d = NormalizedCase {
                classes: None,
                ..c.clone()
            };
            out.extend(reevaluated(
                "the class subset is ignored: the softmax runs over every class",
                Case::Normalized(d),
            ));
        }
    }
    out
}

/// The real parameters of a case, for the lower-precision conventions (SPEC §4): the
/// scale and each margin.
fn real_params(c: &NormalizedCase) -> Vec<Param<'static>> {
    fn on(case: &mut Case, set: impl FnOnce(&mut NormalizedCase)) {
        if let Case::Normalized(d) = case {
            set(d);
        }
    }
    let mut out: Vec<Param<'static>> = vec![("s", c.scale, &|k, v| on(k, |d| d.scale = v))];
    match c.margin {
        Margin::None => {}
        Margin::Additive { m } | Margin::Angular { m, .. } => out.push(("m", m, &|k, v| {
            on(k, |d| match &mut d.margin {
                Margin::Additive { m } | Margin::Angular { m, .. } => *m = v,
                _ => {}
            })
        })),
        Margin::Combined { m1, m2, m3 } => {
            out.push(("m1", m1, &|k, v| {
                on(k, |d| {
                    if let Margin::Combined { m1, .. } = &mut d.margin {
                        *m1 = v;
                    }
                })
            }));
            out.push(("m2", m2, &|k, v| {
                on(k, |d| {
                    if let Margin::Combined { m2, .. } = &mut d.margin {
                        *m2 = v;
                    }
                })
            }));
            out.push(("m3", m3, &|k, v| {
                on(k, |d| {
                    if let Margin::Combined { m3, .. } = &mut d.margin {
                        *m3 = v;
                    }
                })
            }));
        }
    }
    out
}

/// The parameters of a normalized-margin loss (`scale`, the margin rule, `reduction`) from
/// a JSON `params` object, with the defaults of SPEC §1.
///
/// # Errors
/// A parameter of the wrong type or range, or one the loss does not take, named.
pub fn margin_params(loss: LossId, params: &Value) -> Result<(f64, Margin, Reduction)> {
    let mut fields = Fields::new(params, "params")?;
    let parsed = read_margin_params(loss, &mut fields)?;
    fields.finish(&format!("`{loss}` takes the parameters {}", fields.taken()))?;
    Ok(parsed)
}

pub(crate) fn read_margin_params(
    loss: LossId,
    params: &mut Fields,
) -> Result<(f64, Margin, Reduction)> {
    let default_scale = match loss {
        LossId::NormFace => 16.0,
        LossId::AmSoftmax => 30.0,
        _ => 64.0,
    };
    let scale = params.positive("scale", default_scale)?;
    let margin = match loss {
        LossId::CosFace | LossId::AmSoftmax => Margin::Additive {
            m: params.finite("margin", 0.35)?,
        },
        LossId::ArcFace => Margin::Angular {
            m: params.finite("margin", 0.5)?,
            boundary: params
                .choice(
                    "boundary",
                    Boundary::from_name,
                    "\"none\", \"thmm\" or \"easy\"",
                )?
                .unwrap_or_default(),
            grad: params
                .choice(
                    "margin_grad",
                    MarginGrad::from_name,
                    "\"full\" or \"detached\"",
                )?
                .unwrap_or_default(),
        },
        LossId::Combined => Margin::Combined {
            m1: params.finite("m1", 1.0)?,
            m2: params.finite("m2", 0.5)?,
            m3: params.finite("m3", 0.0)?,
        },
        LossId::NormFace => Margin::None,
        other => {
            return Err(Error::invalid(
                "loss",
                format!("`{other}` is not a normalized-margin loss (normface, cosface, amsoftmax, arcface, combined)"),
            ))
        }
    };
    let reduction = params.reduction()?;
    Ok((scale, margin, reduction))
}

/// The parameters and inputs of the normalized-margin family, with the defaults of SPEC §1.
fn normalized_case(
    loss: LossId,
    params: &mut Fields,
    inputs: &mut Inputs,
) -> Result<NormalizedCase> {
    let (scale, margin, reduction) = read_margin_params(loss, params)?;
    let features = inputs.unit_rows("features")?;
    let weights = inputs.unit_rows("weights")?;
    validate::classes(&features, &weights, &inputs.place("weights"))?;
    let labels = inputs.labels("labels", features.rows(), weights.rows())?;
    let margins_as = if loss == LossId::Combined {
        params
            .choice("margins_as", MarginSlot::from_name, "\"m2\" or \"m3\"")?
            .unwrap_or_default()
    } else {
        MarginSlot::default()
    };
    let margins = if inputs.contains("margins") {
        if loss == LossId::NormFace {
            return Err(Error::invalid(
                inputs.place("margins"),
                "normface has no margin to replace per sample (SPEC §5: cosface, amsoftmax, \
                 arcface and combined take `margins`)",
            ));
        }
        Some(inputs.vector("margins", features.rows(), "batch row")?)
    } else {
        None
    };
    let classes = if inputs.contains("classes") {
        let classes = inputs.class_indices("classes", weights.rows())?;
        validate_subset(
            &classes,
            &labels,
            weights.rows(),
            (&inputs.place("classes"), &inputs.place("labels")),
        )?;
        Some(classes)
    } else {
        None
    };
    Ok(NormalizedCase {
        loss,
        scale,
        margin,
        reduction,
        features,
        weights,
        labels,
        margins,
        margins_as,
        classes,
    })
}

/// Per-sample margins: one finite margin per batch row, for a loss that has a margin
/// (SPEC §5); `margins_as = m3` only for `combined`.
fn validate_margins(c: &NormalizedCase) -> Result<()> {
    if c.margins_as != MarginSlot::M2 && c.loss != LossId::Combined {
        return Err(Error::invalid(
            "params.margins_as",
            format!("only `combined` takes it (`{}` has one margin)", c.loss),
        ));
    }
    let Some(margins) = &c.margins else {
        return Ok(());
    };
    if c.loss == LossId::NormFace {
        return Err(Error::invalid(
            "inputs.margins",
            "normface has no margin to replace per sample (SPEC §5: cosface, amsoftmax, \
             arcface and combined take `margins`)",
        ));
    }
    if margins.len() != c.labels.len() {
        return Err(Error::invalid(
            "inputs.margins",
            format!(
                "has {} entries but needs one per batch row ({})",
                margins.len(),
                c.labels.len()
            ),
        ));
    }
    for (i, &m) in margins.iter().enumerate() {
        validate::finite(&format!("inputs.margins[{i}]"), m)?;
    }
    Ok(())
}

/// A class subset (SPEC §5): sorted, distinct indices in `0..classes` that contain every
/// label; `(at, labels_at)` are the places of the subset and of the labels.
fn validate_subset(
    subset: &[usize],
    labels: &[usize],
    classes: usize,
    (at, labels_at): (&str, &str),
) -> Result<()> {
    if subset.len() < 2 {
        return Err(Error::invalid(
            at,
            format!(
                "holds {} class(es); the softmax over a subset needs at least 2 (C < 2 is an \
                 undefined point, SPEC §1)",
                subset.len()
            ),
        ));
    }
    for (k, pair) in subset.windows(2).enumerate() {
        if pair[0] >= pair[1] {
            return Err(Error::invalid(
                format!("{at}[{}]", k + 1),
                format!(
                    "class {} follows {}: the subset must be sorted and distinct",
                    pair[1], pair[0]
                ),
            ));
        }
    }
    if let Some(k) = subset.iter().position(|&j| j >= classes) {
        return Err(Error::invalid(
            format!("{at}[{k}]"),
            format!("class {} is out of range 0..{classes}", subset[k]),
        ));
    }
    if let Some(i) = labels.iter().position(|y| subset.binary_search(y).is_err()) {
        return Err(Error::invalid(
            format!("{labels_at}[{i}]"),
            format!(
                "label {} is not in {at}: a class subset must contain every label \
                 (Partial FC samples the batch's positive classes first)",
                labels[i]
            ),
        ));
    }
    Ok(())
}

/// `normface`'s rows of the precision table (`crate::precision`).
const fn normface_entry(output: NormFaceOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (NormFaceOutput::Loss, Arithmetic::Float64) => Entry {
        max_ulps: 3.5,
        reason: "per row ln Σ e^{z−m} + (m − z_y) (ln1p when the target is the max) on logits s·cos θ whose cosines carry a few ulps from the GEMM and the normalization",
    },
        (NormFaceOutput::Loss, Arithmetic::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64; the target rule and the row's ln are evaluated in f64",
    },
        (NormFaceOutput::Grad, Arithmetic::Float64) => Entry {
        max_ulps: 64.0,
        reason: "G = r·s·(p − onehot) carries the logits' absolute error of a few ulps of s (so O(s) ulps here, s = 16), then two GEMMs and the projection ĝ − (ĝ·v̂)v̂",
    },
        (NormFaceOutput::Grad, Arithmetic::Float32) => Entry {
        max_ulps: 64.0,
        reason: "as for f64, with f32 GEMMs",
    },
        (NormFaceOutput::GradScale, Arithmetic::Float64) => Entry {
        max_ulps: 2.0,
        reason: "Σ_i ĝ_i·x̂_i / s, accumulated in f64 and compensated across rows",
    },
        (NormFaceOutput::GradScale, Arithmetic::Float32) => Entry {
        max_ulps: 2.0,
        reason: "as for f64, from f32 GEMM outputs",
    },
    }
}

/// `cosface`'s rows of the precision table (`crate::precision`).
const fn cosface_entry(output: LossOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (LossOutput::Loss, Arithmetic::Float64) => Entry {
            max_ulps: 5.0,
            reason: "as normface.loss, with s = 30 … 64",
        },
        (LossOutput::Loss, Arithmetic::Float32) => Entry {
            max_ulps: 5.0,
            reason: "as for f64",
        },
        (LossOutput::Grad, Arithmetic::Float64) => Entry {
            max_ulps: 200.0,
            reason: "as normface.grad with s = 64: O(s) ulps from the logits' absolute error",
        },
        (LossOutput::Grad, Arithmetic::Float32) => Entry {
            max_ulps: 240.0,
            reason: "as for f64",
        },
    }
}

/// `arcface`'s rows of the precision table (`crate::precision`).
const fn arcface_entry(output: LossOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (LossOutput::Loss, Arithmetic::Float64) => Entry {
        max_ulps: 4.0,
        reason: "as normface.loss; cos(θ + m) is computed in f64 from the GEMM's cos θ (the κ of the measure accounts for acos's conditioning)",
    },
        (LossOutput::Loss, Arithmetic::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64",
    },
        (LossOutput::Grad, Arithmetic::Float64) => Entry {
        max_ulps: 200.0,
        reason: "as cosface.grad, plus the slope sin(θ + m)/sin θ in f64 from the GEMM's cos θ (κ² in the measure)",
    },
        (LossOutput::Grad, Arithmetic::Float32) => Entry {
        max_ulps: 180.0,
        reason: "as for f64",
    },
    }
}

/// `combined`'s rows of the precision table (`crate::precision`).
const fn combined_entry(output: LossOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (LossOutput::Loss, Arithmetic::Float64) => Entry {
            max_ulps: 4.0,
            reason: "as arcface.loss, with cos(m1·θ + m2) − m3",
        },
        (LossOutput::Loss, Arithmetic::Float32) => Entry {
            max_ulps: 4.0,
            reason: "as for f64",
        },
        (LossOutput::Grad, Arithmetic::Float64) => Entry {
            max_ulps: 200.0,
            reason: "as arcface.grad, with the slope m1·sin(m1·θ + m2)/sin θ",
        },
        (LossOutput::Grad, Arithmetic::Float32) => Entry {
            max_ulps: 160.0,
            reason: "as for f64",
        },
    }
}
