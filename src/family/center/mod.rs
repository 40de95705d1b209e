//! The `center` family (SPEC §1, Wen et al. 2016): per sample ½‖x_i − c_{y_i}‖², reduced,
//! with the update `centers_next` = c_j − α·Δc_j, Δc_j = Σ_{i: y_i = j}(c_j − x_i)/(1 + n_j).
//!
//! Everything lossref knows about center loss lives here: the case and its parameters
//! ([`CenterCase`]), the interval reference ([`reference`](mod@reference)), the fast path ([`fast`]), the
//! rows of the precision table and their measures, the tolerance scales of `lossref check`,
//! the corpus generator and the conventions the diagnosis tries.

mod corpus;
pub mod fast;
pub mod reference;

use crate::answer::{Answer, Tensor};
use crate::case::validate;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::{midpoints, scaled, Alternative};
use crate::corpus::generate::Generated;
use crate::error::Result;
use crate::exact::ExactForm;
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::Real;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{Entry, Quantity};
use crate::spec::{Arithmetic, Case, Dtype, LossId, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use serde_json::Value;

/// A `center` case (SPEC §1): ½‖x_i − c_{y_i}‖², reduced, with the update `centers_next`.
#[derive(Clone, Debug, PartialEq)]
pub struct CenterCase {
    /// α ∈ [0, 1], default 0.5: the rate of the center update.
    pub alpha: f64,
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×D features.
    pub features: Matrix<f64>,
    /// C×D centers, C ≥ 2.
    pub centers: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
}

/// Center loss's outputs, as rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CenterOutput {
    /// The loss.
    Loss,
    /// ∂L/∂features and ∂L/∂centers.
    Grad,
    /// The updated centers.
    CentersNext,
}

impl TableRows for CenterOutput {
    const ALL: &'static [CenterOutput] = &[
        CenterOutput::Loss,
        CenterOutput::Grad,
        CenterOutput::CentersNext,
    ];

    fn loss(self) -> &'static str {
        "center"
    }

    fn output(self) -> &'static str {
        match self {
            CenterOutput::Loss => "loss",
            CenterOutput::Grad => "grad",
            CenterOutput::CentersNext => "centers_next",
        }
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
        entry(self, dtype)
    }
}

impl From<CenterCase> for Case {
    fn from(case: CenterCase) -> Case {
        Case::Center(case)
    }
}

/// The `center` family.
pub struct CenterFamily;

impl LossFamily for CenterFamily {
    type Case = CenterCase;

    const NAME: &'static str = "center";

    const LOSSES: &'static [LossId] = &[LossId::Center];

    fn parse(_: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<CenterCase> {
        let alpha = params.unit_interval("alpha", 0.5)?;
        let reduction = params.reduction()?;
        let features = inputs.matrix("features")?;
        let centers = inputs.matrix("centers")?;
        validate::classes(&features, &centers, &inputs.place("centers"))?;
        let labels = inputs.labels("labels", features.rows(), centers.rows())?;
        Ok(CenterCase {
            alpha,
            reduction,
            features,
            centers,
            labels,
        })
    }

    fn loss(_: &CenterCase) -> LossId {
        LossId::Center
    }

    fn validate(c: &CenterCase) -> Result<()> {
        validate::unit_interval("params.alpha", c.alpha)?;
        validate::finite_matrix("features", &c.features)?;
        validate::finite_matrix("centers", &c.centers)?;
        validate::classes(&c.features, &c.centers, "centers")?;
        validate::labels("labels", &c.labels, c.features.rows(), c.centers.rows())
    }

    fn reduction_mut(case: &mut CenterCase) -> Option<&mut Reduction> {
        Some(&mut case.reduction)
    }

    fn reference(case: &CenterCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate(case, prec))
    }

    fn fast<T: Real>(c: &CenterCase) -> Result<Answer<f64>> {
        let d = c.features.cols();
        let out = fast::center(
            &narrow::<T>(&c.features),
            &narrow::<T>(&c.centers),
            &c.labels,
            d,
            c.alpha,
            c.reduction,
        )?;
        let k = c.centers.rows();
        Ok(Answer {
            outputs: vec![
                ("loss", Tensor::Scalar(out.loss.as_f64())),
                ("centers_next", widen(k, d, out.centers_next)),
            ],
            gradients: vec![
                ("features", widen(c.features.rows(), d, out.features)),
                ("centers", widen(k, d, out.centers)),
            ],
        })
    }

    fn quantities(_: &CenterCase) -> Vec<(&'static str, Quantity)> {
        vec![
            ("outputs/loss", Quantity::Center(CenterOutput::Loss)),
            (
                "outputs/centers_next",
                Quantity::Center(CenterOutput::CentersNext),
            ),
            ("gradients/features", Quantity::Center(CenterOutput::Grad)),
            ("gradients/centers", Quantity::Center(CenterOutput::Grad)),
        ]
    }

    /// The loss in ulps of r·Σ½(x − c)² (which is |L|), ∂L/∂x in ulps of r·|x − c| (which
    /// is |∂L/∂x|); ∂L/∂c in ulps of r·Σ|x − c|; `centers_next` in ulps of
    /// |c| + α·Σ|x − c|/(1 + n).
    fn measures(c: &CenterCase, _: &Answer<f64>, _: Dtype) -> Vec<Vec<f64>> {
        let s = Scales::of(c);
        vec![vec![s.loss], s.centers_next, s.features, s.centers]
    }

    /// The measures of [`CenterFamily::measures`], each a sum of N terms (D·N for the loss).
    fn tolerance(c: &CenterCase, _: &Answer<f64>, _: Dtype) -> Vec<Vec<Scale>> {
        let (n, d) = (c.labels.len(), c.features.cols());
        let s = Scales::of(c);
        let plain = |v: Vec<f64>| v.into_iter().map(|v| Scale::plain(v, n)).collect();
        vec![
            vec![Scale::plain(s.loss, n * d)],
            plain(s.centers_next),
            plain(s.features),
            plain(s.centers),
        ]
    }

    /// None: center loss is a polynomial in exact differences, whose zeros the escalation
    /// loop resolves by itself (a difference of two binary64 values is exact once the
    /// precision covers their exponent gap).
    fn exact_form(_: &CenterCase, _: u32) -> Option<Box<dyn ExactForm>> {
        None
    }

    /// A missing ½: ‖x − c‖² instead of ½‖x − c‖² doubles the loss and its gradients,
    /// and leaves the update alone.
    fn conventions(_: &CenterCase, whole: &Case, _: Dtype) -> Vec<Alternative> {
        midpoints(whole)
            .map(|a| {
                (
                    "the loss is missing its ½ (‖x − c‖² instead of ½‖x − c‖²)".into(),
                    scaled(&a, 2.0, &["centers_next"]),
                    Some(whole.clone()),
                )
            })
            .into_iter()
            .collect()
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::cases(dtype, out);
    }

    fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
        corpus::exact_zero_cases(dtype)
    }

    /// None: the rule has no switch.
    fn switch_points(_: LossId, _: &Value) -> Result<Vec<SwitchPoint>> {
        Ok(Vec::new())
    }

    /// No softmax: the loss and its gradients are polynomials in the differences x − c, and
    /// `native` holds each difference in the 16-bit dtype, a relative error u that moves
    /// every value by at most ρ(u) of its error scale (the squares' 2u, to first order).
    /// `amp` computes them in float32 from exact inputs: no stage before the arithmetic.
    fn logit_stages(_: &CenterCase, _: f64) -> LogitStages {
        LogitStages::of_input_logits(1.0, 0.0)
    }
}

/// The scales of center loss (SPEC §1): every value is a sum of |x_i − c_y| terms.
struct Scales {
    /// r·Σ_i ½‖x_i − c_y‖² (= |L|).
    loss: f64,
    /// |c_jk| + α·Σ_i |x_ik − c_jk|/(1 + n_j).
    centers_next: Vec<f64>,
    /// r·|x_ik − c_yk| (= |∂L/∂x_ik|).
    features: Vec<f64>,
    /// r·Σ_{i: y_i = j} |x_ik − c_jk|.
    centers: Vec<f64>,
}

impl Scales {
    fn of(c: &CenterCase) -> Scales {
        let (n, d) = (c.labels.len(), c.features.cols());
        let r = c.reduction.weight(n);
        let mut sums = vec![0.0; c.centers.rows() * d];
        let mut counts = vec![0usize; c.centers.rows()];
        let mut loss = 0.0;
        let mut features = Vec::with_capacity(n * d);
        for (i, &y) in c.labels.iter().enumerate() {
            counts[y] += 1;
            for k in 0..d {
                let diff = (c.features.get(i, k) - c.centers.get(y, k)).abs();
                loss += r * 0.5 * diff * diff;
                sums[y * d + k] += diff;
                features.push(r * diff);
            }
        }
        let centers = sums.iter().map(|s| r * s).collect();
        let centers_next = (0..c.centers.rows() * d)
            .map(|e| {
                c.centers.as_slice()[e].abs() + c.alpha * sums[e] / (1.0 + counts[e / d] as f64)
            })
            .collect();
        Scales {
            loss,
            centers_next,
            features,
            centers,
        }
    }
}

/// Center loss's rows of the precision table (`crate::precision`).
const fn entry(output: CenterOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (CenterOutput::Loss, Arithmetic::Float64) => Entry {
            max_ulps: 3.0,
            reason: "compensated sums of ½(x − c)², where x − c is exact or one rounding",
        },
        (CenterOutput::Loss, Arithmetic::Float32) => Entry {
            max_ulps: 3.0,
            reason: "as for f64",
        },
        (CenterOutput::Grad, Arithmetic::Float64) => Entry {
            max_ulps: 3.0,
            reason:
                "r·(x − c) (a rounding each), and −r·Σ(x − c) compensated, in ulps of r·Σ|x − c|",
        },
        (CenterOutput::Grad, Arithmetic::Float32) => Entry {
            max_ulps: 3.0,
            reason: "as for f64",
        },
        (CenterOutput::CentersNext, Arithmetic::Float64) => Entry {
            max_ulps: 2.0,
            reason: "c + α·Σ(x − c)/(1 + n): three roundings after a compensated sum",
        },
        (CenterOutput::CentersNext, Arithmetic::Float32) => Entry {
            max_ulps: 2.0,
            reason: "as for f64",
        },
    }
}
