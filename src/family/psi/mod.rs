//! The multiplicative-margin family (SPEC §1): `lsoftmax` (L-Softmax) and `sphereface`
//! (A-Softmax), CE(f_i, y_i) with f_ij = ν_j‖x_i‖cos θ_ij off the target and
//! f_iy = ν_y‖x_i‖(λ cos θ_iy + ψ_m(θ_iy))/(1 + λ), ν_j = ‖w_j‖ or 1.
//!
//! Its interval reference is [`reference`](mod@reference), its fast path
//! [`fast`], the exact form of its zero test [`exact`].

pub mod exact;
pub mod fast;
pub mod reference;
use crate::answer::{Answer, Tensor};
use crate::case::validate;
use crate::case::{Fields, Inputs, MAX_INTEGER_MARGIN};
use crate::check::diagnose::Alternative;
use crate::corpus::generate::Generated;
use crate::error::{Error, Result};
use crate::exact::{within_budget, ExactForm};
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::Real;
use crate::mp::interval::Interval;
use fast::MultiplicativeLoss;
mod corpus;
mod scales;
mod variant;

use crate::matrix::Matrix;
use crate::precision::{per_entry, Entry, LossOutput, Quantity};
use crate::spec::{Arithmetic, Case, Dtype, LossId, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use scales::psi_scales;
use serde_json::Value;
use std::f64::consts::PI;

/// An `lsoftmax` or `sphereface` case (SPEC §1): CE(f_i, y_i) with f_ij = ν_j‖x_i‖cos θ_ij
/// off the target and f_iy = ν_y‖x_i‖(λ cos θ_iy + ψ_m(θ_iy))/(1 + λ), where ν_j = ‖w_j‖
/// (`lsoftmax`) or 1 (`sphereface`).
#[derive(Clone, Debug, PartialEq)]
pub struct MultiplicativeCase {
    /// `lsoftmax` or `sphereface`.
    pub loss: LossId,
    /// The integer margin m ≥ 1 (default 2 for lsoftmax, 4 for sphereface).
    pub margin: u32,
    /// λ ≥ 0, default 0: the blend with cos θ of the annealing schedule.
    pub lambda: f64,
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×D features, non-zero rows.
    pub features: Matrix<f64>,
    /// C×D weights, C ≥ 2.
    pub weights: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
}

impl MultiplicativeCase {
    /// Whether the weights are normalized (`sphereface`).
    pub fn normalized_weights(&self) -> bool {
        self.loss == LossId::SphereFace
    }
}

/// lsoftmax's and sphereface's outputs, as rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PsiOutput {
    /// `lsoftmax`'s loss or gradients.
    LSoftmax(LossOutput),
    /// `sphereface`'s loss or gradients.
    SphereFace(LossOutput),
}

impl TableRows for PsiOutput {
    const ALL: &'static [PsiOutput] = &[
        PsiOutput::LSoftmax(LossOutput::Loss),
        PsiOutput::LSoftmax(LossOutput::Grad),
        PsiOutput::SphereFace(LossOutput::Loss),
        PsiOutput::SphereFace(LossOutput::Grad),
    ];

    fn loss(self) -> &'static str {
        match self {
            PsiOutput::LSoftmax(_) => "lsoftmax",
            PsiOutput::SphereFace(_) => "sphereface",
        }
    }

    fn output(self) -> &'static str {
        match self {
            PsiOutput::LSoftmax(o) | PsiOutput::SphereFace(o) => o.as_str(),
        }
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
        match self {
            PsiOutput::LSoftmax(o) => lsoftmax_entry(o, dtype),
            PsiOutput::SphereFace(o) => sphereface_entry(o, dtype),
        }
    }
}

/// L-Softmax normalizes only at the target: a zero weight row is undefined where it is
/// some sample's class.
fn zero_target_weight(weights: &Matrix<f64>, labels: &[usize], place: &str) -> Result<()> {
    match labels
        .iter()
        .find(|&&y| weights.row(y).iter().all(|&v| v == 0.0))
    {
        Some(&y) => Err(Error::invalid(
            format!("{place}[{y}]"),
            "is a zero-norm row and a label's class: cos θ to it is undefined (SPEC §1, undefined points)",
        )),
        None => Ok(()),
    }
}

impl From<MultiplicativeCase> for Case {
    fn from(case: MultiplicativeCase) -> Case {
        Case::Multiplicative(case)
    }
}

/// The `lsoftmax` / `sphereface` family.
pub struct PsiFamily;

impl LossFamily for PsiFamily {
    type Case = MultiplicativeCase;

    const NAME: &'static str = "psi";

    const LOSSES: &'static [LossId] = &[LossId::LSoftmax, LossId::SphereFace];

    fn parse(loss: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<MultiplicativeCase> {
        let default = if loss == LossId::LSoftmax { 2 } else { 4 };
        let margin = params.integer_margin(default)?;
        let lambda = params.non_negative("lambda", 0.0)?;
        let reduction = params.reduction()?;
        let features = inputs.unit_rows("features")?;
        let weights = if loss == LossId::SphereFace {
            inputs.unit_rows("weights")?
        } else {
            inputs.matrix("weights")?
        };
        validate::classes(&features, &weights, &inputs.place("weights"))?;
        let labels = inputs.labels("labels", features.rows(), weights.rows())?;
        zero_target_weight(&weights, &labels, &inputs.place("weights"))?;
        Ok(MultiplicativeCase {
            loss,
            margin,
            lambda,
            reduction,
            features,
            weights,
            labels,
        })
    }

    fn loss(c: &MultiplicativeCase) -> LossId {
        c.loss
    }

    fn validate(c: &MultiplicativeCase) -> Result<()> {
        if !Self::LOSSES.contains(&c.loss) {
            return Err(Error::invalid(
                "loss",
                format!("`{}` is not lsoftmax or sphereface", c.loss),
            ));
        }
        validate::param(
            "params.margin",
            f64::from(c.margin),
            (1..=MAX_INTEGER_MARGIN).contains(&c.margin),
            &format!("an integer from 1 to {MAX_INTEGER_MARGIN}"),
        )?;
        validate::non_negative("params.lambda", c.lambda)?;
        validate::finite_matrix("features", &c.features)?;
        validate::unit_rows("features", &c.features)?;
        validate::finite_matrix("weights", &c.weights)?;
        if c.normalized_weights() {
            validate::unit_rows("weights", &c.weights)?;
        }
        validate::classes(&c.features, &c.weights, "weights")?;
        validate::labels("labels", &c.labels, c.features.rows(), c.weights.rows())?;
        zero_target_weight(&c.weights, &c.labels, "weights")
    }

    fn reduction_mut(c: &mut MultiplicativeCase) -> Option<&mut Reduction> {
        Some(&mut c.reduction)
    }

    fn reference(c: &MultiplicativeCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate(c, prec))
    }

    fn fast<T: Real>(c: &MultiplicativeCase) -> Result<Answer<f64>> {
        let d = c.features.cols();
        let g = MultiplicativeLoss::of_case(c).forward_backward(
            &narrow::<T>(&c.features),
            &narrow::<T>(&c.weights),
            &c.labels,
            d,
            0,
        )?;
        Ok(Answer {
            outputs: vec![("loss", Tensor::Scalar(g.loss.as_f64()))],
            gradients: vec![
                ("features", widen(c.features.rows(), d, g.features)),
                ("weights", widen(c.weights.rows(), d, g.weights)),
            ],
        })
    }

    fn quantities(c: &MultiplicativeCase) -> Vec<(&'static str, Quantity)> {
        let row = |o| {
            Quantity::Multiplicative(if c.normalized_weights() {
                PsiOutput::SphereFace(o)
            } else {
                PsiOutput::LSoftmax(o)
            })
        };
        vec![
            ("outputs/loss", row(LossOutput::Loss)),
            ("gradients/features", row(LossOutput::Grad)),
            ("gradients/weights", row(LossOutput::Grad)),
        ]
    }

    /// As the margin family, with row i's logits carrying absolute errors of a few ulps of
    /// Φ_i = max(max_j |f_ij|, ν‖x_i‖·(λ + m²)/(1 + λ)): the loss in ulps of
    /// max(|L|, r·Σ_i Φ_i), each gradient entry in ulps of what its row sums times
    /// max(1, Φ_i).
    fn measures(c: &MultiplicativeCase, exact: &Answer<f64>, _: Dtype) -> Vec<Vec<f64>> {
        let s = psi_scales(c);
        let d = c.features.cols();
        vec![
            vec![exact.loss().map_or(0.0, |l| l.abs()).max(s.loss)],
            per_entry(&s.rows, d),
            per_entry(&s.cols, d),
        ]
    }

    /// The measures of [`PsiFamily::measures`], each a sum over the classes (the
    /// features) or the batch (the weights).
    fn tolerance(c: &MultiplicativeCase, exact: &Answer<f64>, _: Dtype) -> Vec<Vec<Scale>> {
        let (n, classes, d) = (c.labels.len(), c.weights.rows(), c.features.cols());
        let s = psi_scales(c);
        let per_entry = |rows: &[f64], terms: usize| -> Vec<Scale> {
            rows.iter()
                .flat_map(|&v| std::iter::repeat_n(Scale::plain(v, terms), d))
                .collect()
        };
        vec![
            vec![Scale::plain(
                exact.loss().map_or(0.0, |l| l.abs()).max(s.loss),
                classes.max(d),
            )],
            per_entry(&s.rows, classes.max(d)),
            per_entry(&s.cols, n.max(d)),
        ]
    }

    fn exact_form(c: &MultiplicativeCase, prec: u32) -> Option<Box<dyn ExactForm>> {
        within_budget(c.features.rows(), c.weights.rows(), c.features.cols())?;
        Some(Box::new(exact::PsiForm::new(c, prec)?))
    }

    /// cos θ from rows normalized with an ε clamp, where some row's norm is below ε
    /// (pytorch-metric-learning's LargeMarginSoftmaxLoss and SphereFaceLoss).
    fn conventions(c: &MultiplicativeCase, _: &Case, _: Dtype) -> Vec<Alternative> {
        variant::conventions(c)
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::cases(dtype, out);
    }

    /// Empty: the special-angle construction serves this family.
    fn exact_zero_cases(_: Dtype) -> Vec<Generated> {
        Vec::new()
    }

    /// ψ_m's segment boundaries θ = kπ/m, k = 1 … m − 1, where the formula changes its
    /// k (ψ is C¹ there: the gradient exists).
    fn switch_points(loss: LossId, params: &Value) -> Result<Vec<SwitchPoint>> {
        let mut fields = Fields::new(params, "params")?;
        let margin = fields.integer_margin(if loss == LossId::LSoftmax { 2 } else { 4 })?;
        fields.non_negative("lambda", 0.0)?;
        fields.reduction()?;
        fields.finish(&format!("`{loss}` takes the parameters {}", fields.taken()))?;
        Ok((1..margin)
            .map(|k| {
                let theta = f64::from(k) * PI / f64::from(margin);
                SwitchPoint {
                    tag: "edge:psi-boundary",
                    theta,
                    cos: theta.cos(),
                    undefined: false,
                }
            })
            .collect())
    }

    /// See `scales::psi_logit_stages`.
    fn logit_stages(c: &MultiplicativeCase, _: f64) -> LogitStages {
        scales::psi_logit_stages(c)
    }
}

/// `lsoftmax`'s rows of the precision table (`crate::precision`).
const fn lsoftmax_entry(output: LossOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (LossOutput::Loss, Arithmetic::Float64) => Entry {
        max_ulps: 3.5,
        reason: "the GEMM logits w·x, the target's ‖w‖‖x‖h(cos θ) in f64 (Chebyshev recurrence), and a row log-sum-exp, in ulps of the logits' error scale Φ",
    },
        (LossOutput::Loss, Arithmetic::Float32) => Entry {
        max_ulps: 3.0,
        reason: "as for f64; the target logit is computed in f64 and rounded once",
    },
        (LossOutput::Grad, Arithmetic::Float64) => Entry {
        max_ulps: 3.5,
        reason: "two GEMMs with the target column zeroed, plus the target's terms in f64",
    },
        (LossOutput::Grad, Arithmetic::Float32) => Entry {
        max_ulps: 3.3,
        reason: "as for f64",
    },
    }
}

/// `sphereface`'s rows of the precision table (`crate::precision`).
const fn sphereface_entry(output: LossOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (LossOutput::Loss, Arithmetic::Float64) => Entry {
            max_ulps: 3.0,
            reason: "as lsoftmax.loss, with the logits divided by ‖w_j‖",
        },
        (LossOutput::Loss, Arithmetic::Float32) => Entry {
            max_ulps: 2.0,
            reason: "as for f64",
        },
        (LossOutput::Grad, Arithmetic::Float64) => Entry {
            max_ulps: 3.5,
            reason: "as lsoftmax.grad, plus the projection of ∂L/∂W off w_j",
        },
        (LossOutput::Grad, Arithmetic::Float32) => Entry {
            max_ulps: 3.3,
            reason: "as for f64",
        },
    }
}
