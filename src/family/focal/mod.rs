//! The losses of the target probability (SPEC §5): `focal` (softmax focal loss, Lin et
//! al.), l_i = −α_{y_i}·(1 − p_{i,y_i})^γ·log p_{i,y_i}, and `poly1` (PolyLoss, Leng et
//! al.), l_i = CE_i + ε·(1 − p_{i,y_i}); each reduced over N. Both reshape the
//! cross-entropy by p_y alone, so they share one case type, one reference
//! ([`reference`](mod@reference), which states the gradients) and one fast path
//! ([`fast`]); 1 − p_y is always Σ_{j≠y} p_j, which stays accurate as p_y → 1.
//! γ = 0 is `softmax_ce` weighted by α, and ε = 0 is `softmax_ce` (SPEC §5, T7).

mod conventions;
mod corpus;
pub mod fast;
pub mod reference;

use crate::answer::{Answer, Tensor};
use crate::case::validate;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::{lower_precision_params, Alternative};
use crate::corpus::generate::Generated;
use crate::error::Result;
use crate::exact::ExactForm;
use crate::family::{LossFamily, SwitchPoint, TableRows};
use crate::fast::dispatch::{narrow, widen};
use crate::fast::Real;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{Entry, Quantity, RowSoftmax};
use crate::reference::blocks::RowBlocks;
use crate::spec::{Arithmetic, Case, Dtype, LossId, Reduction};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use serde_json::Value;

/// How the target's probability reshapes the cross-entropy.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetRule {
    /// `focal`: γ ≥ 0 (default 2) and per-class α (length C, finite ≥ 0; `None` is all 1).
    Focal {
        /// The focusing exponent γ.
        gamma: f64,
        /// α_c, the weight of class c.
        alpha: Option<Vec<f64>>,
    },
    /// `poly1`: ε (default 1; optax's default is 2), any finite value.
    Poly1 {
        /// The coefficient ε of 1 − p_y.
        epsilon: f64,
    },
}

/// A `focal` or `poly1` case.
#[derive(Clone, Debug, PartialEq)]
pub struct FocalCase {
    /// The loss's rule and parameters.
    pub rule: TargetRule,
    /// `mean` (default, over N) or `sum`.
    pub reduction: Reduction,
    /// N×C logits, C ≥ 2, all finite.
    pub logits: Matrix<f64>,
    /// N labels in `0..C`.
    pub labels: Vec<usize>,
}

/// The outputs of `focal` and `poly1`, as rows of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FocalOutput {
    /// `focal.loss`.
    FocalLoss,
    /// `focal.grad`.
    FocalGrad,
    /// `poly1.loss`.
    Poly1Loss,
    /// `poly1.grad`.
    Poly1Grad,
}

impl TableRows for FocalOutput {
    const ALL: &'static [FocalOutput] = &[
        FocalOutput::FocalLoss,
        FocalOutput::FocalGrad,
        FocalOutput::Poly1Loss,
        FocalOutput::Poly1Grad,
    ];

    fn loss(self) -> &'static str {
        match self {
            FocalOutput::FocalLoss | FocalOutput::FocalGrad => "focal",
            FocalOutput::Poly1Loss | FocalOutput::Poly1Grad => "poly1",
        }
    }

    fn output(self) -> &'static str {
        match self {
            FocalOutput::FocalLoss | FocalOutput::Poly1Loss => "loss",
            FocalOutput::FocalGrad | FocalOutput::Poly1Grad => "grad",
        }
    }

    fn entry(self, dtype: Arithmetic) -> Entry {
        entry(self, dtype)
    }
}

impl From<FocalCase> for Case {
    fn from(case: FocalCase) -> Case {
        Case::Focal(case)
    }
}

impl FocalCase {
    /// The loss of the rule.
    pub fn loss(&self) -> LossId {
        match self.rule {
            TargetRule::Focal { .. } => LossId::Focal,
            TargetRule::Poly1 { .. } => LossId::Poly1,
        }
    }
}

/// The `focal`/`poly1` family.
pub struct FocalFamily;

/// (weight α_y·r^γ or 1, slope k of the module docs, and the loss's magnitudes) per row.
fn coefficients(c: &FocalCase, y: usize, p_y: f64, r: f64, nl: f64) -> (f64, f64, f64) {
    match &c.rule {
        TargetRule::Focal { gamma, alpha } => {
            let a = alpha.as_ref().map_or(1.0, |a| a[y]);
            let w = a * if *gamma == 0.0 { 1.0 } else { r.powf(*gamma) };
            let ratio = if r == 0.0 { 1.0 } else { nl / r };
            (w * nl, w * (1.0 + gamma * p_y * ratio), w)
        }
        TargetRule::Poly1 { epsilon } => {
            (nl + epsilon.abs() * r, r + (1.0 + epsilon).abs() * p_y, 1.0)
        }
    }
}

impl LossFamily for FocalFamily {
    type Case = FocalCase;

    const NAME: &'static str = "focal";

    const LOSSES: &'static [LossId] = &[LossId::Focal, LossId::Poly1];

    fn parse(loss: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<FocalCase> {
        let reduction = params.reduction()?;
        let logits = inputs.logits("logits")?;
        let rule = if loss == LossId::Focal {
            let gamma = params.non_negative("gamma", 2.0)?;
            let alpha = inputs.class_weights("alpha", logits.cols(), "α")?;
            TargetRule::Focal { gamma, alpha }
        } else {
            TargetRule::Poly1 {
                epsilon: params.finite("epsilon", 1.0)?,
            }
        };
        let labels = inputs.labels("labels", logits.rows(), logits.cols())?;
        Ok(FocalCase {
            rule,
            reduction,
            logits,
            labels,
        })
    }

    fn loss(c: &FocalCase) -> LossId {
        c.loss()
    }

    fn validate(c: &FocalCase) -> Result<()> {
        validate::finite_matrix("logits", &c.logits)?;
        validate::logits("logits", &c.logits)?;
        validate::labels("labels", &c.labels, c.logits.rows(), c.logits.cols())?;
        match &c.rule {
            TargetRule::Focal { gamma, alpha } => {
                validate::non_negative("params.gamma", *gamma)?;
                match alpha {
                    Some(a) => validate::class_weights("inputs.alpha", a, c.logits.cols()),
                    None => Ok(()),
                }
            }
            TargetRule::Poly1 { epsilon } => validate::finite("params.epsilon", *epsilon),
        }
    }

    fn reduction_mut(c: &mut FocalCase) -> Option<&mut Reduction> {
        Some(&mut c.reduction)
    }

    fn reference(c: &FocalCase, prec: u32) -> Result<Answer<Interval>> {
        Ok(reference::evaluate(c, prec))
    }

    /// The gradient is row-wise; the loss reduces one term per row.
    fn row_blocks(c: &FocalCase) -> Option<RowBlocks<FocalCase>> {
        Some(RowBlocks {
            rows: c.logits.rows(),
            values_per_row: c.logits.cols(),
            evaluate: |c, rows, prec| Ok(reference::rows(c, rows, prec)),
            reduce: reference::reduce_terms,
            first_round: None,
        })
    }

    fn fast<T: Real>(c: &FocalCase) -> Result<Answer<f64>> {
        let (n, cols) = (c.logits.rows(), c.logits.cols());
        let mut grad = vec![T::zero(); n * cols];
        let loss = fast::focal_into(
            &narrow::<T>(&c.logits),
            cols,
            &c.labels,
            &c.rule,
            c.reduction,
            &mut grad,
        )?;
        Ok(Answer {
            outputs: vec![("loss", Tensor::Scalar(loss.as_f64()))],
            gradients: vec![("logits", widen(n, cols, grad))],
        })
    }

    fn quantities(c: &FocalCase) -> Vec<(&'static str, Quantity)> {
        let (loss, grad) = match c.rule {
            TargetRule::Focal { .. } => (FocalOutput::FocalLoss, FocalOutput::FocalGrad),
            TargetRule::Poly1 { .. } => (FocalOutput::Poly1Loss, FocalOutput::Poly1Grad),
        };
        vec![
            ("outputs/loss", Quantity::Focal(loss)),
            ("gradients/logits", Quantity::Focal(grad)),
        ]
    }

    /// The loss in ulps of r·Σ_i (its terms' magnitudes: α_y·r^γ·ℓ for focal, ℓ + |ε|·r for
    /// poly1), each gradient entry in ulps of r·|k_i|·|p_j − [j = y]| with k's terms taken
    /// in magnitude (|1 + ε|·p_y + r for poly1): plain ulps wherever nothing cancels
    /// (ε ≥ −1), r = 1/N for `mean`.
    fn measures(c: &FocalCase, _: &Answer<f64>, _: Dtype) -> Vec<Vec<f64>> {
        let (loss, grads, _) = magnitudes(c, false);
        vec![vec![loss], grads]
    }

    /// The measures with the exp arguments' errors of a straightforward implementation, and
    /// where the target dominates (p_y ≥ ½) the textbook 1 − softmax(z)_y named as unstable.
    fn tolerance(c: &FocalCase, reference: &Answer<f64>, _: Dtype) -> Vec<Vec<Scale>> {
        let cols = c.logits.cols();
        let (loss, grads, naive) = magnitudes(c, true);
        let loss_value = reference.loss().map_or(0.0, |l| l.abs());
        let mut loss_scale = Scale::plain(loss.max(loss_value), cols);
        let dominant = naive.iter().any(|row| row.is_some());
        if dominant {
            let total: f64 = naive.iter().map(|row| row.map_or(0.0, |(l, _)| l)).sum();
            loss_scale.unstable = Some((
                total.max(loss_scale.scale),
                "1 − softmax(z)_y and log(softmax(z)_y) cancel when the target dominates (Σ_{j≠y} p_j and log_softmax do not)",
            ));
        }
        let mut grad_scales = Vec::with_capacity(grads.len());
        for (k, g) in grads.into_iter().enumerate() {
            let mut sc = Scale::plain(g.max(f64::MIN_POSITIVE), cols);
            if let Some((_, slope)) = naive[k / cols] {
                sc.unstable = Some((
                    slope.max(sc.scale),
                    "(1 − softmax(z)_y) in the slope and softmax(z)_y − 1 cancel when the target dominates",
                ));
            }
            grad_scales.push(sc);
        }
        vec![vec![loss_scale], grad_scales]
    }

    /// None: the gradient is k·(p − onehot) with k > 0 unless α_y = 0, where the reference's
    /// point zero is exact.
    fn exact_form(_: &FocalCase, _: u32) -> Option<Box<dyn ExactForm>> {
        None
    }

    /// focal: kornia's unsummed per-class form and its α on class 0 vs the rest; the
    /// parameters held in a lower precision (γ, ε).
    fn conventions(c: &FocalCase, whole: &Case, dtype: Dtype) -> Vec<Alternative> {
        let mut out = conventions::conventions(c, whole);
        let set_param = |k: &mut Case, v: f64| {
            if let Case::Focal(d) = k {
                match &mut d.rule {
                    TargetRule::Focal { gamma, .. } => *gamma = v,
                    TargetRule::Poly1 { epsilon } => *epsilon = v,
                }
            }
        };
        let (name, value) = match &c.rule {
            TargetRule::Focal { gamma, .. } => ("γ", *gamma),
            TargetRule::Poly1 { epsilon } => ("ε", *epsilon),
        };
        out.extend(lower_precision_params(
            whole,
            dtype,
            &[(name, value, &set_param)],
        ));
        out
    }

    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
        corpus::cases(dtype, out);
    }

    /// None: neither loss has an exact zero to prove (see [`LossFamily::exact_form`]).
    fn exact_zero_cases(_: Dtype) -> Vec<Generated> {
        Vec::new()
    }

    /// None: the rules have no switch.
    fn switch_points(_: LossId, _: &Value) -> Result<Vec<SwitchPoint>> {
        Ok(Vec::new())
    }

    /// The logits are inputs (SPEC §6, `crate::tier`); focal's (1 − p_y)^γ carries γ times
    /// the relative change of 1 − p_y, so a logit error reaches its values 1 + γ times.
    fn logit_stages(c: &FocalCase, _: f64) -> LogitStages {
        let mut stages = LogitStages::of_logit_rows(c.logits.iter_rows(), 1.0);
        if let TargetRule::Focal { gamma, .. } = c.rule {
            stages.sensitivity = 1.0 + gamma.abs();
        }
        stages
    }
}

/// The measures (module docs of `measures`), with the exp arguments' errors when
/// `exp_args`; and per row, where the target dominates, the scales (loss, gradient) that the
/// textbook 1 − softmax(z)_y achieves (an absolute error of one unit in p_y, magnified by
/// ∂l/∂r and ∂k/∂r).
#[allow(clippy::type_complexity)]
fn magnitudes(c: &FocalCase, exp_args: bool) -> (f64, Vec<f64>, Vec<Option<(f64, f64)>>) {
    let n = c.logits.rows();
    let r_n = c.reduction.weight(n);
    let mut loss = 0.0;
    let mut grads = Vec::with_capacity(n * c.logits.cols());
    let mut naive = Vec::with_capacity(n);
    for (z, &y) in c.logits.iter_rows().zip(&c.labels) {
        let row = RowSoftmax::new(z);
        let (p, args, s_top) = (&row.p, &row.args, row.spread);
        // r = 1 − p_y as Σ_{j≠y} p_j, and ℓ = −log p_y
        let (p_y, nl) = (p[y], -row.log_p[y]);
        let r: f64 = (0..z.len()).filter(|&j| j != y).map(|j| p[j]).sum();
        let (l, k, w) = coefficients(c, y, p_y, r, nl);
        // the exp arguments' errors (SPEC §4): each e^{z_k − max} is off by (1 + |z_k − max|)
        // units, the row's log Σ by S = Σ_{k≠top} p_k·(1 + |z_k − max|); ℓ = −log p_y by S at
        // the largest logit and by 1 + |z_y − max| + S elsewhere; r = 1 − p_y (absolute) by
        // S at the largest logit (r = Σ_{k≠y} p_k) and by p_y's own error elsewhere
        let y_top = args[y] == 0.0;
        let (e_nl, e_r) = match (exp_args, y_top) {
            (false, _) => (0.0, 0.0),
            (true, true) => (s_top, s_top),
            (true, false) => {
                let e = 1.0 + args[y] + s_top;
                (e, p_y * e)
            }
        };
        // relative units of r, ℓ and of k
        let rel_r = if r > 0.0 { e_r / r } else { 0.0 };
        let rel_nl = if nl > 0.0 { e_nl / nl } else { 0.0 };
        let (dl, rel_k) = match &c.rule {
            TargetRule::Focal { gamma, .. } => (
                w * (e_nl + gamma * nl * rel_r),
                (2.0 * gamma + 1.0) * rel_r + rel_nl,
            ),
            TargetRule::Poly1 { epsilon } => (
                e_nl + epsilon.abs() * e_r,
                if k > 0.0 {
                    (e_r + (1.0 + epsilon).abs() * p_y * (rel_r + 1.0)) / k
                } else {
                    0.0
                },
            ),
        };
        loss += r_n * (l + dl);
        for j in 0..z.len() {
            let (base, rel_base) = if j == y {
                (r, rel_r)
            } else if args[j] == 0.0 || !exp_args {
                (p[j], if exp_args { s_top } else { 0.0 })
            } else {
                (p[j], 1.0 + args[j] + s_top)
            };
            grads.push(r_n * k * base * (1.0 + rel_k + rel_base));
        }
        let widest = args.iter().copied().fold(0.0, f64::max);
        naive.push((p_y >= 0.5).then(|| {
            let (dl, dk) = match &c.rule {
                TargetRule::Focal { gamma, alpha } => {
                    let a = alpha.as_ref().map_or(1.0, |a| a[y]);
                    let rg = if *gamma == 0.0 { 1.0 } else { r.powf(*gamma) };
                    (
                        a * rg * (gamma + 1.0 + widest),
                        a * rg * (1.0 + gamma) * (1.0 + gamma),
                    )
                }
                TargetRule::Poly1 { epsilon } => (epsilon.abs() + 1.0 + widest, k),
            };
            (r_n * dl, r_n * dk.max(k))
        }));
    }
    (loss, grads, naive)
}

const fn entry(output: FocalOutput, dtype: Arithmetic) -> Entry {
    match (output, dtype) {
        (FocalOutput::FocalLoss, Arithmetic::Float64) => Entry {
            max_ulps: 10.0,
            reason: "α·r^γ·ℓ: r = 1 − p_y and ℓ = −log p_y from the split (a few ulps each); pow multiplies r's relative error by γ (up to 5 measured); two products and a compensated batch sum",
        },
        (FocalOutput::FocalLoss, Arithmetic::Float32) => Entry {
            max_ulps: 10.0,
            reason: "as for f64, with powf",
        },
        (FocalOutput::FocalGrad, Arithmetic::Float64) => Entry {
            max_ulps: 14.0,
            reason: "k = α·r^γ·(1 + γ·p_y·ℓ/r), then k·p_j or −k·r: the loss's errors (γ times r's) plus a division and two products",
        },
        (FocalOutput::FocalGrad, Arithmetic::Float32) => Entry {
            max_ulps: 18.0,
            reason: "as for f64, with powf",
        },
        (FocalOutput::Poly1Loss, Arithmetic::Float64) => Entry {
            max_ulps: 2.5,
            reason: "ℓ + ε·r with ℓ and r from the split, in ulps of ℓ + |ε|·r",
        },
        (FocalOutput::Poly1Loss, Arithmetic::Float32) => Entry {
            max_ulps: 16.0,
            reason: "as for f64, plus f32 subnormals: a dominant target puts the loss below 1.2e−38, where the terms of S′ are rounded to an absolute 2^−150 (as for softmax_ce.loss)",
        },
        (FocalOutput::Poly1Grad, Arithmetic::Float64) => Entry {
            max_ulps: 6.0,
            reason: "k = r + (1 + ε)·p_y, then k·p_j or −k·r: the softmax's errors and two products",
        },
        (FocalOutput::Poly1Grad, Arithmetic::Float32) => Entry {
            max_ulps: 8.0,
            reason: "as for f64, near f32's subnormals",
        },
    }
}
