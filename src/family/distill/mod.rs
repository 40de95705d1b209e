//! The `distill` family (SPEC §1, Hinton et al.): knowledge distillation, per sample
//! α·T²·soft_i + (1 − α)·CE(s_i, y_i) with q = softmax(·/T) and soft_i = KL(q_t ‖ q_s)
//! (`kl`) or −Σ q_t log q_s (`ce`); the gradient is with respect to the student's logits.
//!
//! Everything lossref knows about distillation lives here: the case and its parameters
//! ([`DistillCase`]), the interval reference ([`reference`](mod@reference)), the fast path ([`fast`]), the
//! exact form of its zero test ([`exact`]), the rows of the precision table and their
//! measures, the tolerance scales of `lossref check`, the corpus generator and the
//! conventions the diagnosis tries.

mod corpus;
pub mod exact;
pub mod fast;
pub mod reference;

use crate::answer::{Answer, Tensor};
use crate::case::validate;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::{
    combine, lower_precision_params, midpoints, reevaluated, Alternative,
};
use crate::corpus::generate::Generated;
use crate::error::{Error, Result};
use crate::exact::{within_budget, ExactForm};
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::Real;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{log_softmax_row, softmax_row, Entry, Quantity};
use crate::spec::{Arithmetic, Case, Dtype, LossId, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use serde_json::Value;

/// The soft term of `distill` (SPEC §1, `soft`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SoftTerm {
    /// KL(q_t ‖ q_s) = Σ q_t (log q_t − log q_s) (Hinton et al.; PyTorch's `kl_div`).
    #[default]
    Kl,
    /// −Σ q_t log q_s: the cross-entropy with soft targets, KL plus the teacher's entropy.
    Ce,
}

impl SoftTerm {
    /// The SPEC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SoftTerm::Kl => "kl",
            SoftTerm::Ce => "ce",
        }
    }

    /// Parses `kl` or `ce`.
    pub fn from_name(name: &str) -> Option<SoftTerm> {
        [SoftTerm::Kl, SoftTerm::Ce]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// A `distill` case (SPEC §1): per sample α·T²·soft_i + (1 − α)·CE(s_i, y_i) with
/// q = softmax(·/T), reduced; the gradient is with respect to the student's logits.
#[derive(Clone, Debug, PartialEq)]
pub struct DistillCase {
    /// T > 0, default 4.
    pub temperature: f64,
    /// α ∈ [0, 1], default 0.9.
    pub alpha: f64,
    /// `kl` (default) or `ce`.
    pub soft: SoftTerm,
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×C student logits.
    pub student: Matrix<f64>,
    /// N×C teacher logits.
    pub teacher: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
}

/// Distillation's outputs, as rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DistillOutput {
    /// The loss.
    Loss,
    /// ∂L/∂student_logits.
    Grad,
}

impl TableRows for DistillOutput {
    const ALL: &'static [DistillOutput] = &[DistillOutput::Loss, DistillOutput::Grad];

    fn loss(self) -> &'static str {
        "distill"
    }

    fn output(self) -> &'static str {
        match self {
            DistillOutput::Loss => "loss",
            DistillOutput::Grad => "grad",
        }
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
        entry(self, dtype)
    }
}

impl From<DistillCase> for Case {
    fn from(case: DistillCase) -> Case {
        Case::Distill(case)
    }
}

/// The teacher's logits (at `place`) have the student's shape, N×C.
fn same_shape(student: &Matrix<f64>, teacher: &Matrix<f64>, place: &str) -> Result<()> {
    if (teacher.rows(), teacher.cols()) == (student.rows(), student.cols()) {
        return Ok(());
    }
    Err(Error::invalid(
        place,
        format!(
            "is {}×{} but student_logits is {}×{}; both are N×C",
            teacher.rows(),
            teacher.cols(),
            student.rows(),
            student.cols()
        ),
    ))
}

/// The `distill` family.
pub struct DistillFamily;

impl LossFamily for DistillFamily {
    type Case = DistillCase;

    const NAME: &'static str = "distill";

    const LOSSES: &'static [LossId] = &[LossId::Distill];

    fn parse(_: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<DistillCase> {
        let temperature = params.positive("temperature", 4.0)?;
        let alpha = params.unit_interval("alpha", 0.9)?;
        let soft = params
            .choice("soft", SoftTerm::from_name, "\"kl\" or \"ce\"")?
            .unwrap_or_default();
        let reduction = params.reduction()?;
        let student = inputs.logits("student_logits")?;
        let teacher = inputs.logits("teacher_logits")?;
        same_shape(&student, &teacher, &inputs.place("teacher_logits"))?;
        let labels = inputs.labels("labels", student.rows(), student.cols())?;
        Ok(DistillCase {
            temperature,
            alpha,
            soft,
            reduction,
            student,
            teacher,
            labels,
        })
    }

    fn loss(_: &DistillCase) -> LossId {
        LossId::Distill
    }

    fn validate(c: &DistillCase) -> Result<()> {
        validate::positive("params.temperature", c.temperature)?;
        validate::unit_interval("params.alpha", c.alpha)?;
        validate::finite_matrix("student_logits", &c.student)?;
        validate::logits("student_logits", &c.student)?;
        validate::finite_matrix("teacher_logits", &c.teacher)?;
        same_shape(&c.student, &c.teacher, "teacher_logits")?;
        validate::labels("labels", &c.labels, c.student.rows(), c.student.cols())
    }

    fn reduction_mut(case: &mut DistillCase) -> Option<&mut Reduction> {
        Some(&mut case.reduction)
    }

    fn reference(case: &DistillCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate(case, prec))
    }

    fn fast<T: Real>(c: &DistillCase) -> Result<Answer<f64>> {
        let (n, cols) = (c.student.rows(), c.student.cols());
        let d = fast::Distill {
            temperature: c.temperature,
            alpha: c.alpha,
            soft: c.soft,
            reduction: c.reduction,
        };
        let (loss, grad) = d.forward_backward(
            &narrow::<T>(&c.student),
            &narrow::<T>(&c.teacher),
            cols,
            &c.labels,
        )?;
        Ok(Answer {
            outputs: vec![("loss", Tensor::Scalar(loss.as_f64()))],
            gradients: vec![("student_logits", widen(n, cols, grad))],
        })
    }

    fn quantities(_: &DistillCase) -> Vec<(&'static str, Quantity)> {
        vec![
            ("outputs/loss", Quantity::Distill(DistillOutput::Loss)),
            (
                "gradients/student_logits",
                Quantity::Distill(DistillOutput::Grad),
            ),
        ]
    }

    /// The magnitudes summed: the loss in ulps of r·Σ(αT²·Σ_j q_t(|log q_t| + |log q_s|) +
    /// (1 − α)·CE), each gradient entry in ulps of r·(αT(q_s + q_t) + (1 − α)(p + [j = y])).
    fn measures(c: &DistillCase, _: &Answer<f64>, _: Dtype) -> Vec<Vec<f64>> {
        let (loss, grad) = scales(c, false);
        vec![vec![loss], grad]
    }

    /// The measures of [`DistillFamily::measures`] plus the relative error that the exp
    /// arguments of a straightforward implementation carry (|z − max|/T·u in e^{(z − max)/T}),
    /// and one unit of the hard term's log-sum-exp.
    fn tolerance(c: &DistillCase, _: &Answer<f64>, _: Dtype) -> Vec<Vec<Scale>> {
        let cols = c.student.cols();
        let (loss, grad) = scales(c, true);
        vec![
            vec![Scale::plain(loss, cols)],
            grad.into_iter().map(|g| Scale::plain(g, cols)).collect(),
        ]
    }

    fn exact_form(c: &DistillCase, _: u32) -> Option<Box<dyn ExactForm>> {
        within_budget(c.student.rows(), c.student.cols(), 1)?;
        Some(Box::new(exact::DistillForm::new(c)?))
    }

    /// KL for the cross-entropy with soft targets (and back), and a soft term missing its
    /// T² factor: α·soft + (1 − α)·CE = α/T²·(T²·soft) + (1 − α)·CE, combined from the
    /// answers at α = 1 and α = 0.
    fn conventions(c: &DistillCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
        let mut out = Vec::new();
        let mut d = c.clone();
        d.soft = if c.soft == SoftTerm::Kl {
            SoftTerm::Ce
        } else {
            SoftTerm::Kl
        };
        let what = if c.soft == SoftTerm::Kl {
            "the soft term is the cross-entropy −Σ q_t log q_s, not KL(q_t ‖ q_s)"
        } else {
            "the soft term is KL(q_t ‖ q_s), not the cross-entropy"
        };
        out.extend(reevaluated(what, Case::Distill(d)));
        let (mut soft, mut hard) = (c.clone(), c.clone());
        soft.alpha = 1.0;
        hard.alpha = 0.0;
        if let (Some(s), Some(h)) = (
            midpoints(&Case::Distill(soft)),
            midpoints(&Case::Distill(hard)),
        ) {
            let t2 = c.temperature * c.temperature;
            out.push((
                "the soft term is missing its T² factor".into(),
                combine(&s, &h, c.alpha / t2, 1.0 - c.alpha),
                Some(whole.clone()),
            ));
        }
        let set = |k: &mut Case, set: &dyn Fn(&mut DistillCase)| {
            if let Case::Distill(d) = k {
                set(d);
            }
        };
        out.extend(lower_precision_params(
            whole,
            dtype,
            &[
                ("T", c.temperature, &|k, v| set(k, &|d| d.temperature = v)),
                ("α", c.alpha, &|k, v| set(k, &|d| d.alpha = v)),
            ],
        ));
        out
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

    /// Both logit sets are inputs, divided by T in the soft term and not in the hard one
    /// (SPEC §6, `crate::tier`); a logit error goes through both softmaxes of the soft
    /// term, so it reaches the values twice.
    fn logit_stages(c: &DistillCase, _: f64) -> LogitStages {
        let t = c.temperature;
        let mut stages = LogitStages::of_logit_rows(c.student.iter_rows(), t)
            .max(LogitStages::of_logit_rows(c.teacher.iter_rows(), t))
            .max(LogitStages::of_logit_rows(c.student.iter_rows(), 1.0));
        stages.sensitivity = 2.0;
        stages
    }
}

/// The magnitudes that the loss and each gradient entry sum (see
/// [`DistillFamily::measures`]), with the exp arguments' error terms where `exp_args`
/// (the tolerance's scales; [`DistillFamily::tolerance`]).
fn scales(c: &DistillCase, exp_args: bool) -> (f64, Vec<f64>) {
    let (n, cols) = (c.labels.len(), c.student.cols());
    let r = c.reduction.weight(n);
    let (t, al) = (c.temperature, c.alpha);
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(n * cols);
    for (i, &y) in c.labels.iter().enumerate() {
        let (s, te) = (c.student.row(i), c.teacher.row(i));
        let (qs, qt, p) = (softmax_row(s, t), softmax_row(te, t), softmax_row(s, 1.0));
        let (lqs, lqt) = (log_softmax_row(s, t), log_softmax_row(te, t));
        let (ts, tt) = (
            s.iter().copied().fold(f64::MIN, f64::max),
            te.iter().copied().fold(f64::MIN, f64::max),
        );
        // the error an exp argument (z − max)/T carries, relative
        let arg = |j: usize| {
            if exp_args {
                ((s[j] - ts).abs() + (te[j] - tt).abs()) / t
            } else {
                0.0
            }
        };
        let soft: f64 = (0..cols)
            .map(|j| qt[j] * (lqt[j].abs() + lqs[j].abs() + arg(j)))
            .sum();
        let ce = log_softmax_row(s, 1.0)[y].abs() + if exp_args { 1.0 } else { 0.0 };
        loss += r * (al * t * t * soft + (1.0 - al) * ce);
        for j in 0..cols {
            grad.push(
                r * (al * t * (qs[j] + qt[j]) * (1.0 + arg(j))
                    + (1.0 - al) * (p[j] + f64::from(u8::from(j == y)))),
            );
        }
    }
    (loss, grad)
}

/// Distillation's rows of the precision table (`crate::precision`).
const fn entry(output: DistillOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (DistillOutput::Loss, Arithmetic::Float64) => Entry {
        max_ulps: 3.0,
        reason: "per row the compensated KL (or soft CE) sum of q_t·(log q_t − log q_s) from the split-exponent softmax, plus the fast softmax_ce; measured against the magnitudes summed",
    },
        (DistillOutput::Loss, Arithmetic::Float32) => Entry {
        max_ulps: 5.0,
        reason: "as for f64, in f32",
    },
        (DistillOutput::Grad, Arithmetic::Float64) => Entry {
        max_ulps: 4.0,
        reason: "α·T·(q_s − q_t) + (1 − α)·(p − onehot), each from the fast softmax (≤ 3.5 ulps), in ulps of the terms' magnitudes",
    },
        (DistillOutput::Grad, Arithmetic::Float32) => Entry {
        max_ulps: 8.0,
        reason: "as for f64, in f32, with T up to 20 amplifying the q error",
    },
    }
}
