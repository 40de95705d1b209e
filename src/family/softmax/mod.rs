//! The softmax families (SPEC §1): `softmax` (probabilities and log-probabilities of
//! z/T) and `softmax_ce` (CE(z, y) = logsumexp(z) − z_y, reduced). Their interval
//! reference is [`reference`](mod@reference), on the interval softmax of [`crate::reference::softmax`]
//! that every other family builds on, and
//! their fast paths [`fast`].

mod corpus;
pub mod fast;
pub mod reference;

use crate::answer::{Answer, Tensor};
use crate::case::validate;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::{lower_precision_params, midpoints, Alternative};
use crate::corpus::generate::Generated;
use crate::error::Result;
use crate::exact::ExactForm;
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::Real;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{log_softmax_row, softmax_row, Entry, Quantity};
use crate::reference::blocks::RowBlocks;
use crate::reference::softmax::RowLoss;
use crate::spec::{Case, Dtype, LossId, Reduction};
use crate::tolerance::Scale;
use fast::{log_softmax, softmax, softmax_ce};
use serde_json::Value;

/// A `softmax` case: `probabilities = e^{z/T} / Σ e^{z/T}` and `log_probabilities`, row-wise.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCase {
    /// T > 0, default 1.
    pub temperature: f64,
    /// N×C logits, C ≥ 2, all finite.
    pub logits: Matrix<f64>,
}

/// A `softmax_ce` case: `reduction_i CE(z_i, y_i)` and its gradient with respect to the logits.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCeCase {
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×C logits, C ≥ 2, all finite.
    pub logits: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
}

/// The outputs of `softmax`, as rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SoftmaxOutput {
    /// `probabilities`.
    Probabilities,
    /// `log_probabilities`.
    LogProbabilities,
}

impl TableRows for SoftmaxOutput {
    const ALL: &'static [SoftmaxOutput] = &[
        SoftmaxOutput::Probabilities,
        SoftmaxOutput::LogProbabilities,
    ];

    fn loss(self) -> &'static str {
        "softmax"
    }

    fn output(self) -> &'static str {
        ""
    }

    /// `softmax` (the probabilities) and `log_softmax`.
    fn name(self) -> String {
        match self {
            SoftmaxOutput::Probabilities => "softmax".into(),
            SoftmaxOutput::LogProbabilities => "log_softmax".into(),
        }
    }

    fn entry(self, dtype: Dtype) -> Entry {
        softmax_entry(self, dtype)
    }
}

/// The outputs of `softmax_ce`, as rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SoftmaxCeOutput {
    /// The loss.
    Loss,
    /// ∂L/∂logits.
    Grad,
}

impl TableRows for SoftmaxCeOutput {
    const ALL: &'static [SoftmaxCeOutput] = &[SoftmaxCeOutput::Loss, SoftmaxCeOutput::Grad];

    fn loss(self) -> &'static str {
        "softmax_ce"
    }

    fn output(self) -> &'static str {
        match self {
            SoftmaxCeOutput::Loss => "loss",
            SoftmaxCeOutput::Grad => "grad",
        }
    }

    fn entry(self, dtype: Dtype) -> Entry {
        softmax_ce_entry(self, dtype)
    }
}

impl From<SoftmaxCase> for Case {
    fn from(case: SoftmaxCase) -> Case {
        Case::Softmax(case)
    }
}

impl From<SoftmaxCeCase> for Case {
    fn from(case: SoftmaxCeCase) -> Case {
        Case::SoftmaxCe(case)
    }
}

/// The `softmax` family.
pub struct SoftmaxFamily;

/// The `softmax_ce` family.
pub struct SoftmaxCeFamily;

/// Plain ulps of each value: the measure of both softmax families.
fn plain_measures(quantities: &[(&'static str, Quantity)], exact: &Answer<f64>) -> Vec<Vec<f64>> {
    quantities
        .iter()
        .map(|(g, _)| {
            exact
                .group(g)
                .map_or(&[][..], |t| t.values())
                .iter()
                .map(|v| v.abs())
                .collect()
        })
        .collect()
}

impl LossFamily for SoftmaxFamily {
    type Case = SoftmaxCase;

    const NAME: &'static str = "softmax";

    const LOSSES: &'static [LossId] = &[LossId::Softmax];

    fn parse(_: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<SoftmaxCase> {
        let temperature = params.positive("temperature", 1.0)?;
        let logits = inputs.logits("logits")?;
        Ok(SoftmaxCase {
            temperature,
            logits,
        })
    }

    fn loss(_: &SoftmaxCase) -> LossId {
        LossId::Softmax
    }

    fn validate(c: &SoftmaxCase) -> Result<()> {
        validate::positive("params.temperature", c.temperature)?;
        validate::finite_matrix("logits", &c.logits)?;
        validate::logits("logits", &c.logits)
    }

    fn reduction_mut(_: &mut SoftmaxCase) -> Option<&mut Reduction> {
        None
    }

    fn reference(c: &SoftmaxCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate_softmax(c, prec))
    }

    /// Every output is row-wise.
    fn row_blocks(c: &SoftmaxCase) -> Option<RowBlocks<SoftmaxCase>> {
        Some(RowBlocks {
            rows: c.logits.rows(),
            values_per_row: 2 * c.logits.cols(),
            evaluate: |c, rows, prec| Ok(reference::softmax_rows(c, rows, prec)),
            reduce: |_, _| Answer {
                outputs: vec![],
                gradients: vec![],
            },
        })
    }

    fn fast<T: Real>(c: &SoftmaxCase) -> Result<Answer<f64>> {
        let (n, cols) = (c.logits.rows(), c.logits.cols());
        let z = narrow::<T>(&c.logits);
        let t = T::of_f64(c.temperature);
        let mut p = vec![T::zero(); z.len()];
        let mut lp = vec![T::zero(); z.len()];
        softmax(&z, cols, t, &mut p)?;
        log_softmax(&z, cols, t, &mut lp)?;
        Ok(Answer {
            outputs: vec![
                ("probabilities", widen(n, cols, p)),
                ("log_probabilities", widen(n, cols, lp)),
            ],
            gradients: vec![],
        })
    }

    fn quantities(_: &SoftmaxCase) -> Vec<(&'static str, Quantity)> {
        vec![
            (
                "outputs/probabilities",
                Quantity::Softmax(SoftmaxOutput::Probabilities),
            ),
            (
                "outputs/log_probabilities",
                Quantity::Softmax(SoftmaxOutput::LogProbabilities),
            ),
        ]
    }

    /// Plain ulps of each value.
    fn measures(c: &SoftmaxCase, exact: &Answer<f64>, _: Dtype) -> Vec<Vec<f64>> {
        plain_measures(&Self::quantities(c), exact)
    }

    /// Each value's magnitude plus the relative error that the exp arguments of a
    /// straightforward implementation carry (|z − max|/T·u in e^{(z − max)/T}).
    fn tolerance(c: &SoftmaxCase, _: &Answer<f64>) -> Vec<Vec<Scale>> {
        let (t, cols) = (c.temperature, c.logits.cols());
        let mut probs = Vec::new();
        let mut logs = Vec::new();
        for row in c.logits.iter_rows() {
            let top = row.iter().copied().fold(f64::MIN, f64::max);
            let p = softmax_row(row, t);
            let args: Vec<f64> = row.iter().map(|z| (z - top).abs() / t).collect();
            let log_sum = row.iter().map(|z| ((z - top) / t).exp()).sum::<f64>().ln();
            // the error the exp arguments put into log Σ
            let spread: f64 = p.iter().zip(&args).map(|(pj, a)| pj * a).sum();
            for (pj, arg) in p.iter().zip(&args) {
                probs.push(Scale::plain(pj * (1.0 + arg + spread), cols));
                let mut lp = Scale::plain(arg + log_sum + spread, cols);
                // only in the formula's regime (SPEC §4): a log-probability near 0, p ≥ 1/2
                if *pj >= 0.5 {
                    lp.unstable = Some((arg + log_sum + 1.0, "log(Σ e^{z−max}) without log1p loses the relative accuracy of a log-probability near 0"));
                }
                logs.push(lp);
            }
        }
        vec![probs, logs]
    }

    /// None: a probability lies in (0, 1).
    fn exact_form(_: &SoftmaxCase, _: u32) -> Option<Box<dyn ExactForm>> {
        None
    }

    /// log(softmax(z)) in the dtype: −∞ wherever the probability underflows there.
    fn conventions(c: &SoftmaxCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
        let Some(a) = midpoints(whole) else {
            return Vec::new();
        };
        let p: Vec<f64> = a
            .output("probabilities")
            .map(|t| t.values().to_vec())
            .unwrap_or_default();
        let mut k = 0;
        let alt = a
            .try_map(|place, v| {
                Ok::<f64, ()>(if place.starts_with("outputs.log_probabilities") {
                    let pk = p.get(k).copied().unwrap_or(0.0);
                    k += 1;
                    dtype.round(pk).ln()
                } else {
                    *v
                })
            })
            .unwrap_or_else(|()| a.clone());
        let mut out = vec![(
            "the log-probabilities are log(softmax(z)), which underflows, not log_softmax(z)"
                .into(),
            alt,
            Some(whole.clone()),
        )];
        out.extend(lower_precision_params(
            whole,
            dtype,
            &[("T", c.temperature, &|k, v| {
                if let Case::Softmax(d) = k {
                    d.temperature = v;
                }
            })],
        ));
        out
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::softmax_cases(dtype, out);
    }

    fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
        corpus::softmax_exact_zero_cases(dtype)
    }

    /// None: the rule has no switch.
    fn switch_points(_: LossId, _: &Value) -> Result<Vec<SwitchPoint>> {
        Ok(Vec::new())
    }
}

impl LossFamily for SoftmaxCeFamily {
    type Case = SoftmaxCeCase;

    const NAME: &'static str = "softmax_ce";

    const LOSSES: &'static [LossId] = &[LossId::SoftmaxCe];

    fn parse(_: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<SoftmaxCeCase> {
        let reduction = params.reduction()?;
        let logits = inputs.logits("logits")?;
        let labels = inputs.labels("labels", logits.rows(), logits.cols())?;
        Ok(SoftmaxCeCase {
            reduction,
            logits,
            labels,
        })
    }

    fn loss(_: &SoftmaxCeCase) -> LossId {
        LossId::SoftmaxCe
    }

    fn validate(c: &SoftmaxCeCase) -> Result<()> {
        validate::finite_matrix("logits", &c.logits)?;
        validate::logits("logits", &c.logits)?;
        validate::labels("labels", &c.labels, c.logits.rows(), c.logits.cols())
    }

    fn reduction_mut(c: &mut SoftmaxCeCase) -> Option<&mut Reduction> {
        Some(&mut c.reduction)
    }

    fn reference(c: &SoftmaxCeCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate_softmax_ce(c, prec))
    }

    /// The gradient is row-wise; the loss reduces one cross-entropy per row.
    fn row_blocks(c: &SoftmaxCeCase) -> Option<RowBlocks<SoftmaxCeCase>> {
        Some(RowBlocks {
            rows: c.logits.rows(),
            values_per_row: c.logits.cols(),
            evaluate: |c, rows, prec| Ok(reference::softmax_ce_rows(c, rows, prec)),
            reduce: reference::softmax_ce_reduce,
        })
    }

    fn reference_plain(c: &SoftmaxCeCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate_softmax_ce_plain(c, prec))
    }

    fn fast<T: Real>(c: &SoftmaxCeCase) -> Result<Answer<f64>> {
        let (n, cols) = (c.logits.rows(), c.logits.cols());
        let (loss, grad) = softmax_ce(&narrow::<T>(&c.logits), cols, &c.labels, c.reduction)?;
        Ok(Answer {
            outputs: vec![("loss", Tensor::Scalar(loss.as_f64()))],
            gradients: vec![("logits", widen(n, cols, grad))],
        })
    }

    fn quantities(_: &SoftmaxCeCase) -> Vec<(&'static str, Quantity)> {
        vec![
            ("outputs/loss", Quantity::SoftmaxCe(SoftmaxCeOutput::Loss)),
            (
                "gradients/logits",
                Quantity::SoftmaxCe(SoftmaxCeOutput::Grad),
            ),
        ]
    }

    /// Plain ulps of each value.
    fn measures(c: &SoftmaxCeCase, exact: &Answer<f64>, _: Dtype) -> Vec<Vec<f64>> {
        plain_measures(&Self::quantities(c), exact)
    }

    /// The loss and each gradient entry with the errors of the exp arguments
    /// (Σ_{j≠y} p_j·(1 + |z_j − max| + |z_y − max|)), and the textbook formulas that
    /// cancel when the target dominates named as unstable.
    fn tolerance(c: &SoftmaxCeCase, reference: &Answer<f64>) -> Vec<Vec<Scale>> {
        let (n, cols) = (c.labels.len(), c.logits.cols());
        let r = c.reduction.weight(n);
        let mut loss_scale = 0.0;
        let mut naive = 0.0;
        let mut in_regime = false;
        let mut grads = Vec::new();
        for (row, &y) in c.logits.iter_rows().zip(&c.labels) {
            let top = row.iter().copied().fold(f64::MIN, f64::max);
            let p = softmax_row(row, 1.0);
            let lead = (top - row[y]).abs();
            // Σ_{j≠y} p_j·(1 + |z_j − max| + |z_y − max|): the exp arguments' errors
            let spread: f64 = (0..cols)
                .filter(|&j| j != y)
                .map(|j| p[j] * (1.0 + (row[j] - top).abs() + lead))
                .sum();
            let row_scale = r * (-log_softmax_row(row, 1.0)[y] + spread + lead);
            loss_scale += row_scale;
            // The textbook formulas lose accuracy only in their regime (SPEC §4): a target
            // probability of at least 1/2, where lse − z_y is a loss far below its logits
            // and p_y − 1 cancels. Elsewhere they are as accurate as the careful ones, and
            // an error beyond the tolerance is a FAIL.
            let dominant = p[y] >= 0.5;
            in_regime |= dominant;
            naive += if dominant {
                r * (row[y].abs().max(top.abs()) + 1.0)
            } else {
                row_scale
            };
            for j in 0..cols {
                if j == y {
                    let mut sc = Scale::plain((r * spread).max(f64::MIN_POSITIVE), cols);
                    if dominant {
                        sc.unstable = Some((
                            r,
                            "softmax(z) − onehot: p_y − 1 cancels when the target dominates",
                        ));
                    }
                    grads.push(sc);
                } else {
                    grads.push(Scale::plain(
                        (r * p[j] * (1.0 + (row[j] - top).abs())).max(f64::MIN_POSITIVE),
                        cols,
                    ));
                }
            }
        }
        let loss = reference.loss().map_or(0.0, |l| l.abs());
        let mut loss = Scale::plain(loss_scale.max(loss), cols);
        loss.unstable = in_regime.then_some((naive.max(loss.scale), "logsumexp(z) − z_y cancels when the target dominates (softplus(lse_{j≠y}(z_j − z_y)) does not)"));
        vec![vec![loss], grads]
    }

    /// None: CE(z, y) > 0 for C ≥ 2, and p − onehot has no exact zero to prove.
    fn exact_form(_: &SoftmaxCeCase, _: u32) -> Option<Box<dyn ExactForm>> {
        None
    }

    /// Each row's cross-entropy floored at −log 1e-30 (insightface), or by
    /// `F.softplus` with its threshold 20, where some row's loss reaches them.
    fn conventions(c: &SoftmaxCeCase, _: &Case, _: Dtype) -> Vec<Alternative> {
        let losses: Vec<f64> = c
            .logits
            .iter_rows()
            .zip(&c.labels)
            .map(|(row, &y)| -log_softmax_row(row, 1.0)[y])
            .collect();
        let largest = losses.iter().copied().fold(0.0, f64::max);
        let mut out = Vec::new();
        let mut with = |what: &str, how: RowLoss| {
            let a = reference::evaluate_softmax_ce_as(c, how, 160);
            if let Ok(a) = a.try_map(|_, iv| Ok::<f64, ()>(iv.mid().to_f64())) {
                out.push((what.to_string(), a, None));
            }
        };
        if largest > 60.0 {
            with(
                "the loss is −log max(p_y, 1e-30) (insightface's distributed cross-entropy): a row with p_y below the floor has loss 69.08 and no gradient",
                RowLoss::Floored(1e-30),
            );
        }
        if largest > 19.0 {
            with(
                "the loss is softplus(logsumexp_{j≠y}(z_j − z_y)) by torch.nn.functional.softplus, which returns its argument above the threshold 20",
                RowLoss::SoftplusThreshold(20.0),
            );
        }
        out
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::softmax_ce_cases(dtype, out);
    }

    fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
        corpus::softmax_ce_exact_zero_cases(dtype)
    }

    /// None: the rule has no switch.
    fn switch_points(_: LossId, _: &Value) -> Result<Vec<SwitchPoint>> {
        Ok(Vec::new())
    }
}

/// `softmax`'s rows of the precision table (`crate::precision`).
const fn softmax_entry(output: SoftmaxOutput, dtype: Dtype) -> Entry {
    match (output, dtype) {
        (SoftmaxOutput::Probabilities, Dtype::Float64) => Entry {
        max_ulps: 3.5,
        reason: "exp (< 1 ulp in glibc) of the leading part of an exactly split exponent, the first-order correction e^x·c, the row sum 1 + S′ (a few roundings for C ≤ 12) and one division",
    },
        (SoftmaxOutput::Probabilities, Dtype::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64, with expf",
    },
        (SoftmaxOutput::LogProbabilities, Dtype::Float64) => Entry {
        max_ulps: 3.5,
        reason: "(x_j − ln1p(S′)) + c_j: two roundings and the error of ln1p(S′), which is small against |x_j| except at j*, where −ln1p(S′) is the whole value",
    },
        (SoftmaxOutput::LogProbabilities, Dtype::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64, with log1pf",
    },
    }
}

/// `softmax_ce`'s rows of the precision table (`crate::precision`).
const fn softmax_ce_entry(output: SoftmaxCeOutput, dtype: Dtype) -> Entry {
    match (output, dtype) {
        (SoftmaxCeOutput::Loss, Dtype::Float64) => Entry {
        max_ulps: 2.5,
        reason: "per row ln1p(S′) + (m − z_y) with m − z_y exact as a pair; compensated batch sum; one division by N",
    },
        (SoftmaxCeOutput::Loss, Dtype::Float32) => Entry {
        max_ulps: 6.0,
        reason: "as for f64, plus f32 subnormals: a dominant target puts the loss below 1.2e−38, where each term e^{x_j} is rounded to an absolute 2^−150, and C − 1 terms per row and N rows add up in units of the smallest subnormal",
    },
        (SoftmaxCeOutput::Grad, Dtype::Float64) => Entry {
        max_ulps: 3.5,
        reason: "the softmax error, then p − 1 (benign: p ≤ ½ off the argmax, −S′/(1+S′) at it) and one division by N",
    },
        (SoftmaxCeOutput::Grad, Dtype::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64",
    },
    }
}
