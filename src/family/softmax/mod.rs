//! The softmax families (SPEC §1): `softmax` (probabilities and log-probabilities of
//! z/T) and `softmax_ce` (CE(z, y) = logsumexp(z) − z_y, reduced). Their interval
//! reference is [`reference`](mod@reference), on the interval softmax of [`crate::reference::softmax`]
//! that every other family builds on, and
//! their fast paths [`fast`].

pub(crate) mod corpus;
mod exact;
pub mod fast;
pub mod options;
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
use crate::precision::{log_softmax_row, softmax_row, Entry, Quantity, RowSoftmax};
use crate::reference::blocks::RowBlocks;
use crate::reference::softmax::RowLoss;
use crate::spec::{Arithmetic, Case, Dtype, LossId, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use fast::{log_softmax, softmax, softmax_ce};
pub use options::CeOptions;
use serde_json::Value;

/// A `softmax` case: `probabilities = e^{z/T} / Σ e^{z/T}` and `log_probabilities`, row-wise.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCase {
    /// T > 0, default 1.
    pub temperature: f64,
    /// N×C logits, C ≥ 2, all finite.
    pub logits: Matrix<f64>,
}

/// A `softmax_ce` case: `reduction_i CE(z_i, y_i)` and its gradient with respect to the
/// logits, with SPEC §5's options (class weights, ignored rows, label smoothing, soft
/// targets; [`options`] states the mathematics).
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCeCase {
    /// `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// N×C logits, C ≥ 2, all finite.
    pub logits: Matrix<f64>,
    /// N labels in `0..C` (empty with soft targets).
    pub labels: Vec<usize>,
    /// SPEC §5's options; the default is SPEC §1's plain cross-entropy.
    pub options: CeOptions,
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

    fn entry(self, dtype: Arithmetic) -> Entry {
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
    /// The loss with SPEC §5's options (weights, ignored rows, smoothing, soft targets).
    OptionsLoss,
    /// ∂L/∂logits with SPEC §5's options.
    OptionsGrad,
}

impl TableRows for SoftmaxCeOutput {
    const ALL: &'static [SoftmaxCeOutput] = &[
        SoftmaxCeOutput::Loss,
        SoftmaxCeOutput::Grad,
        SoftmaxCeOutput::OptionsLoss,
        SoftmaxCeOutput::OptionsGrad,
    ];

    fn loss(self) -> &'static str {
        "softmax_ce"
    }

    fn output(self) -> &'static str {
        match self {
            SoftmaxCeOutput::Loss => "loss",
            SoftmaxCeOutput::Grad => "grad",
            SoftmaxCeOutput::OptionsLoss => "options_loss",
            SoftmaxCeOutput::OptionsGrad => "options_grad",
        }
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
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
            first_round: None,
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
    fn tolerance(c: &SoftmaxCase, _: &Answer<f64>, _: Dtype) -> Vec<Vec<Scale>> {
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

    /// The logits are inputs, divided by T (SPEC §6, `crate::tier`).
    fn logit_stages(c: &SoftmaxCase, _: f64) -> LogitStages {
        LogitStages::of_logit_rows(c.logits.iter_rows(), c.temperature)
    }
}

impl LossFamily for SoftmaxCeFamily {
    type Case = SoftmaxCeCase;

    const NAME: &'static str = "softmax_ce";

    const LOSSES: &'static [LossId] = &[LossId::SoftmaxCe];

    fn parse(_: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<SoftmaxCeCase> {
        let reduction = params.reduction()?;
        let logits = inputs.logits("logits")?;
        let (labels, options) = options::parse(params, inputs, logits.rows(), logits.cols())?;
        let case = SoftmaxCeCase {
            reduction,
            logits,
            labels,
            options,
        };
        // a `mean` with nothing to average, named at parse time
        options::check_mean_divisor(&case.options, &case.labels, reduction)?;
        Ok(case)
    }

    fn loss(_: &SoftmaxCeCase) -> LossId {
        LossId::SoftmaxCe
    }

    fn validate(c: &SoftmaxCeCase) -> Result<()> {
        validate::finite_matrix("logits", &c.logits)?;
        validate::logits("logits", &c.logits)?;
        options::validate(
            &c.options,
            &c.labels,
            c.logits.rows(),
            c.logits.cols(),
            c.reduction,
        )
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
            first_round: Some(reference::softmax_ce_first_round),
        })
    }

    fn reference_plain(c: &SoftmaxCeCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate_softmax_ce_plain(c, prec))
    }

    fn fast<T: Real>(c: &SoftmaxCeCase) -> Result<Answer<f64>> {
        let (n, cols) = (c.logits.rows(), c.logits.cols());
        if !c.options.is_plain() {
            let divisor = options::divisor_terms(&c.options, &c.labels, c.reduction).map_or_else(
                || T::of_usize(if c.reduction == Reduction::Sum { 1 } else { n }),
                |w| crate::fast::real::compensated_sum(w.into_iter().map(T::of_f64)),
            );
            let mut grad = vec![T::zero(); n * cols];
            let loss = fast::weighted_softmax_ce_into(
                &narrow::<T>(&c.logits),
                cols,
                |i| options::row_coefficients(&c.options, &c.labels, i, cols, T::of_f64),
                divisor,
                &mut grad,
            )?;
            return Ok(Answer {
                outputs: vec![("loss", Tensor::Scalar(loss.as_f64()))],
                gradients: vec![("logits", widen(n, cols, grad))],
            });
        }
        let (loss, grad) = softmax_ce(&narrow::<T>(&c.logits), cols, &c.labels, c.reduction)?;
        Ok(Answer {
            outputs: vec![("loss", Tensor::Scalar(loss.as_f64()))],
            gradients: vec![("logits", widen(n, cols, grad))],
        })
    }

    fn quantities(c: &SoftmaxCeCase) -> Vec<(&'static str, Quantity)> {
        let (loss, grad) = if c.options.is_plain() {
            (SoftmaxCeOutput::Loss, SoftmaxCeOutput::Grad)
        } else {
            (SoftmaxCeOutput::OptionsLoss, SoftmaxCeOutput::OptionsGrad)
        };
        vec![
            ("outputs/loss", Quantity::SoftmaxCe(loss)),
            ("gradients/logits", Quantity::SoftmaxCe(grad)),
        ]
    }

    /// Plain ulps of each value; with options, the loss in ulps of r·Σ_i Σ_c |a_ic|·|log p_ic|
    /// (the loss itself for non-negative targets) and each gradient entry in ulps of
    /// r·(|A_i − a_ij|·p_ij + |a_ij|·(1 − p_ij)), the two terms it is the difference of
    /// (r = 1/D).
    fn measures(c: &SoftmaxCeCase, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<f64>> {
        if c.options.is_plain() {
            return plain_measures(&Self::quantities(c), exact);
        }
        // the dtype's subnormals: each e^{z − max} below the smallest normal number is held to
        // an absolute half-unit of the smallest subnormal, and the coefficients (class
        // weights up to 1e6) multiply that: a floor of r·Σ|a|·C smallest normals, whose ulp
        // is r·Σ|a|·C smallest subnormals
        let floor = dtype.min_normal() * c.logits.cols() as f64;
        let (loss, grads) = options_magnitudes(c, false, floor);
        vec![vec![loss], grads]
    }

    /// The loss and each gradient entry with the errors of the exp arguments
    /// (Σ_{j≠y} p_j·(1 + |z_j − max| + |z_y − max|)), and the textbook formulas that
    /// cancel when the target dominates named as unstable.
    fn tolerance(c: &SoftmaxCeCase, reference: &Answer<f64>, _: Dtype) -> Vec<Vec<Scale>> {
        if !c.options.is_plain() {
            return options_tolerance(c, reference);
        }
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

    /// None without options: CE(z, y) > 0 for C ≥ 2, and p − onehot has no exact zero to
    /// prove. With them, A_i·p_ij − a_ij vanishes where p_ij = a_ij/A_i (equal logits and
    /// ε = 1, uniform soft targets): [`exact::OptionsForm`].
    fn exact_form(c: &SoftmaxCeCase, _: u32) -> Option<Box<dyn ExactForm>> {
        if c.options.is_plain() {
            return None;
        }
        crate::exact::within_budget(c.logits.rows(), c.logits.cols(), 1)?;
        Some(Box::new(exact::OptionsForm::new(c)?))
    }

    /// Each row's cross-entropy floored at −log 1e-30 (insightface), or by
    /// `F.softplus` with its threshold 20, where some row's loss reaches them.
    fn conventions(c: &SoftmaxCeCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
        if !c.options.is_plain() {
            return options_conventions(c, whole, dtype);
        }
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
            if let Some(a) = crate::check::diagnose::midpoints_of(&a) {
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
        out.extend(summed_left_to_right(c, whole, dtype));
        out
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::softmax_ce_cases(dtype, out);
        corpus::softmax_ce_option_cases(dtype, out);
    }

    fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
        let mut out = corpus::softmax_ce_exact_zero_cases(dtype);
        out.extend(corpus::softmax_ce_options_exact_zero_cases(dtype));
        out
    }

    /// None: the rule has no switch.
    fn switch_points(_: LossId, _: &Value) -> Result<Vec<SwitchPoint>> {
        Ok(Vec::new())
    }

    /// The logits are inputs (SPEC §6, `crate::tier`).
    fn logit_stages(c: &SoftmaxCeCase, _: f64) -> LogitStages {
        LogitStages::of_logit_rows(c.logits.iter_rows(), 1.0)
    }
}

/// The convention "Σ e^{z − max} summed left to right" (SPEC §4): each row's normalizer
/// S = Σ_j e^{z_j − max} replaced by S′, the terms rounded to the dtype's arithmetic and
/// added one after another in it, as a hand-written loop over the classes does. Every term
/// below half an ulp of the running sum is lost, so S′ falls short of S by a relative error
/// that grows like C·u (about 2·10³ u at C = 10⁵ in float32), where the pairwise and
/// vector-lane sums of numpy and PyTorch stay near log C·u and √C·u. Then p′_j = e^{z_j −
/// max}/S′, ∂z_j = r·(p′_j − [j = y]) and the loss moves by r·ln(S′/S) per row. Computed in
/// binary64 (S by a compensated sum), a few binary64 ulps from the exact convention.
fn summed_left_to_right(c: &SoftmaxCeCase, whole: &Case, dtype: Dtype) -> Option<Alternative> {
    let arithmetic = dtype.arithmetic();
    let cols = c.logits.cols();
    let r = c.reduction.weight(c.labels.len());
    let mut loss_shift = 0.0;
    let mut grads = Vec::with_capacity(c.logits.rows() * cols);
    for (row, &y) in c.logits.iter_rows().zip(&c.labels) {
        let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let terms: Vec<f64> = row.iter().map(|&z| (z - top).exp()).collect();
        let exact = crate::fast::real::compensated_sum(terms.iter().copied());
        let left_to_right = terms
            .iter()
            .fold(0.0, |s, &t| arithmetic.round(s + arithmetic.round(t)));
        if !(exact > 0.0 && left_to_right > 0.0) {
            return None;
        }
        loss_shift += r * ((left_to_right - exact) / exact).ln_1p();
        grads.extend(terms.iter().enumerate().map(|(j, &t)| {
            if j == y {
                // e_y − S′ exactly where they are close (Sterbenz): no cancellation
                r * ((t - left_to_right) / left_to_right)
            } else {
                r * (t / left_to_right)
            }
        }));
    }
    let a = midpoints(whole)?;
    let mut k = 0;
    let alt = a
        .try_map(|place, v| {
            Ok::<f64, ()>(if place.starts_with("outputs.loss") {
                v + loss_shift
            } else if place.starts_with("gradients.logits") {
                let g = grads.get(k).copied().unwrap_or(*v);
                k += 1;
                g
            } else {
                *v
            })
        })
        .ok()?;
    Some((
        format!(
            "Σ e^{{z − max}} is summed left to right in {}, which loses every term below half an ulp of the running sum (a relative error growing like C·u; numpy's and PyTorch's reductions add pairwise or in vector lanes)",
            arithmetic.as_str()
        ),
        alt,
        Some(whole.clone()),
    ))
}

/// SPEC §5's conventions that differ from the case's own formula (each re-evaluated by the
/// reference), and ε held in a lower precision.
fn options_conventions(c: &SoftmaxCeCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
    let mut out = Vec::new();
    for convention in options::Convention::ALTERNATIVES {
        if !convention.differs(&c.options, c.reduction) {
            continue;
        }
        let a = reference::evaluate_softmax_ce_convention(c, convention, 160);
        if let Some(a) = crate::check::diagnose::midpoints_of(&a) {
            out.push((convention.describe().to_string(), a, None));
        }
    }
    out.extend(lower_precision_params(
        whole,
        dtype,
        &[("ε", c.options.label_smoothing, &|k, v| {
            if let Case::SoftmaxCe(d) = k {
                d.options.label_smoothing = v;
            }
        })],
    ));
    out
}

/// The measures of a `softmax_ce` case with options (see its `measures`): the loss's
/// r·Σ_i Σ_c |a_ic|·|log p_ic| and every gradient entry's r·(|A_i − a_ij|·p_ij +
/// |a_ij|·(1 − p_ij)), r = 1/D. With `exp_args`, the errors that the exp arguments of a
/// straightforward implementation carry (SPEC §4's tolerance): each e^{z_k − max} is off by
/// (1 + |z_k − max|) units, so the row's log Σ by S = Σ_{k≠top} p_k·(1 + |z_k − max|), a
/// log-probability by 1 + |z_j − max| + S (S alone at the largest logit), p_j by the same
/// relative units, and 1 − p_j by S at the largest logit (where it is Σ_{k≠top} p_k) and by
/// p_j's own error elsewhere (where it is at least ½). Each value is floored at `floor`
/// times its coefficients' magnitudes (the measures' subnormal floor; 0 for the tolerance).
fn options_magnitudes(c: &SoftmaxCeCase, exp_args: bool, floor: f64) -> (f64, Vec<f64>) {
    let (mut loss, mut loss_floor) = (0.0, 0.0);
    let mut grads = Vec::with_capacity(c.logits.rows() * c.logits.cols());
    options_rows(c, |row| {
        let s = &row.softmax;
        for j in 0..row.a.len() {
            let (e_lp, e_p, e_rest) = if !exp_args {
                (0.0, 0.0, 0.0)
            } else if s.args[j] == 0.0 {
                (s.spread, s.spread, s.spread)
            } else {
                let e = 1.0 + s.args[j] + s.spread;
                (e, e, s.p[j] * e)
            };
            let a = row.a[j].abs();
            loss += row.r * a * (s.log_p[j].abs() + e_lp);
            loss_floor += row.r * a * floor;
            let others = (row.total - row.a[j]).abs();
            let g = row.r * (others * s.p[j] * (1.0 + e_p) + a * (row.rest(j) + e_rest));
            grads.push(g.max(row.r * (others + a) * floor));
        }
    });
    (loss.max(loss_floor), grads)
}

/// One row of a `softmax_ce` case with options, in binary64, for the measures and scales.
struct OptionsRow {
    /// 1/D.
    r: f64,
    /// a_ij and A_i.
    a: Vec<f64>,
    total: f64,
    /// The row's softmax.
    softmax: RowSoftmax,
}

impl OptionsRow {
    /// 1 − p_j: at least ½ off the row's largest logit; Σ_{k≠j} p_k at it.
    fn rest(&self, j: usize) -> f64 {
        let p = &self.softmax.p;
        if j == self.softmax.top {
            (0..p.len()).filter(|&k| k != j).map(|k| p[k]).sum()
        } else {
            1.0 - p[j]
        }
    }
}

fn options_rows(c: &SoftmaxCeCase, mut each: impl FnMut(&OptionsRow)) {
    let (n, cols) = (c.logits.rows(), c.logits.cols());
    let d = options::divisor_f64(&c.options, &c.labels, n, c.reduction);
    let r = if d > 0.0 { 1.0 / d } else { 1.0 };
    for (i, z) in c.logits.iter_rows().enumerate() {
        let a: Vec<f64> = options::row_coefficients(&c.options, &c.labels, i, cols, |x| x);
        each(&OptionsRow {
            r,
            total: a.iter().sum(),
            a,
            softmax: RowSoftmax::new(z),
        });
    }
}

/// The scales of `lossref check` for a `softmax_ce` case with options: the magnitudes of
/// [`options_magnitudes`] with the exp arguments' errors, and, where a class dominates its
/// row (p ≥ ½), the textbook formulas that cancel there named as unstable:
/// −Σ a_c·(z_c − lse) (a log-probability near 0 as a difference of large numbers) and
/// softmax(z)·Σa − a (A·p_j − a_j with p_j near a_j/A).
fn options_tolerance(c: &SoftmaxCeCase, reference: &Answer<f64>) -> Vec<Vec<Scale>> {
    let cols = c.logits.cols();
    let (loss, grads) = options_magnitudes(c, true, 0.0);
    let mut naive = 0.0;
    let mut in_regime = false;
    let mut grad_scales = Vec::with_capacity(grads.len());
    options_rows(c, |row| {
        for j in 0..row.a.len() {
            let mut sc = Scale::plain(grads[grad_scales.len()].max(f64::MIN_POSITIVE), cols);
            // the formulas cancel only where a class they use (a_j ≠ 0) dominates its row
            if row.softmax.p[j] >= 0.5 && row.a[j] != 0.0 {
                in_regime = true;
                sc.unstable = Some((
                    row.r * row.a[j].abs().max(row.total.abs()),
                    "softmax(z)·Σa − a: A·p_j − a_j cancels when p_j is near a_j/A",
                ));
            }
            naive +=
                row.r * row.a[j].abs() * (row.softmax.log_p[j].abs() + row.softmax.args[j] + 1.0);
            grad_scales.push(sc);
        }
    });
    let loss_value = reference.loss().map_or(0.0, |l| l.abs());
    let mut loss = Scale::plain(loss.max(loss_value), cols);
    if in_regime {
        loss.unstable = Some((
            naive.max(loss.scale) + loss_value,
            "−Σ a_c·(z_c − logsumexp(z)) cancels when a class dominates its row",
        ));
    }
    vec![vec![loss], grad_scales]
}

/// `softmax`'s rows of the precision table (`crate::precision`).
const fn softmax_entry(output: SoftmaxOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (SoftmaxOutput::Probabilities, Arithmetic::Float64) => Entry {
        max_ulps: 3.5,
        reason: "exp (< 1 ulp in glibc) of the leading part of an exactly split exponent, the first-order correction e^x·c, the row sum 1 + S′ (a few roundings for C ≤ 12) and one division",
    },
        (SoftmaxOutput::Probabilities, Arithmetic::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64, with expf",
    },
        (SoftmaxOutput::LogProbabilities, Arithmetic::Float64) => Entry {
        max_ulps: 3.5,
        reason: "(x_j − ln1p(S′)) + c_j: two roundings and the error of ln1p(S′), which is small against |x_j| except at j*, where −ln1p(S′) is the whole value",
    },
        (SoftmaxOutput::LogProbabilities, Arithmetic::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64, with log1pf",
    },
    }
}

/// `softmax_ce`'s rows of the precision table (`crate::precision`).
const fn softmax_ce_entry(output: SoftmaxCeOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (SoftmaxCeOutput::Loss, Arithmetic::Float64) => Entry {
        max_ulps: 2.5,
        reason: "per row ln1p(S′) + (m − z_y) with m − z_y exact as a pair; compensated batch sum; one division by N",
    },
        (SoftmaxCeOutput::Loss, Arithmetic::Float32) => Entry {
        max_ulps: 6.0,
        reason: "as for f64, plus f32 subnormals: a dominant target puts the loss below 1.2e−38, where each term e^{x_j} is rounded to an absolute 2^−150, and C − 1 terms per row and N rows add up in units of the smallest subnormal",
    },
        (SoftmaxCeOutput::Grad, Arithmetic::Float64) => Entry {
        max_ulps: 3.5,
        reason: "the softmax error, then p − 1 (benign: p ≤ ½ off the argmax, −S′/(1+S′) at it) and one division by N",
    },
        (SoftmaxCeOutput::Grad, Arithmetic::Float32) => Entry {
        max_ulps: 4.0,
        reason: "as for f64",
    },
        (SoftmaxCeOutput::OptionsLoss, Arithmetic::Float64) => Entry {
        max_ulps: 3.5,
        reason: "Σ_c a_c·(−log p_c) per row, with −log p_c = (ln1p(S′) − x_c) − c_c two non-negative parts, a_c = (ε/C)·w_c + [c = y](1 − ε)·w_y (or w_c·((1 − ε)t_c + ε/C)) a few roundings; compensated sums per row and over the batch; one division by D (a compensated Σ w_y). Measured in ulps of r·Σ|a_c|·|log p_c| (the loss for non-negative targets), floored at r·Σ|a|·C smallest normals: a class weight of 1e6 multiplies the subnormal terms' absolute rounding",
    },
        (SoftmaxCeOutput::OptionsLoss, Arithmetic::Float32) => Entry {
        max_ulps: 3.5,
        reason: "as for f64",
    },
        (SoftmaxCeOutput::OptionsGrad, Arithmetic::Float64) => Entry {
        max_ulps: 5.0,
        reason: "(A − a_j)·p_j − a_j·(1 − p_j) in ulps of r·(|A − a_j|·p_j + |a_j|·(1 − p_j)), the two terms it is the difference of: A − a_j from A as a compensated pair (exactly 0 for an unsmoothed label), p_j and 1 − p_j as in the plain gradient, the coefficients' roundings and one division by D; floored as the loss",
    },
        (SoftmaxCeOutput::OptionsGrad, Arithmetic::Float32) => Entry {
        max_ulps: 5.0,
        reason: "as for f64",
    },
    }
}
