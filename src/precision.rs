//! The one precision table: how many ulps each fast function may be from the exact value,
//! per dtype, and why, with the measure each entry is stated in.
//!
//! The table is keyed by a typed [`Quantity`] (a loss × one of its outputs) and a
//! [`Dtype`]: [`entry`] matches on every pair, so a quantity without an entry for both
//! dtypes does not compile. The measures are [`measures`], beside the entries: the scale of
//! every value of a case, in the ulps of which its error is stated.
//!
//! An error is measured as |got − v| / ulp(v), where v is the exact value (the certified
//! reference) and ulp(v) = 2^max(⌊log₂|v|⌋ − p + 1, e_min) is the spacing of the dtype at v
//! (p = 24 or 53 significand bits, e_min = −149 or −1074 for subnormals). A correctly
//! rounded result is within 0.5.
//!
//! The normalized-margin family (`normface`, `cosface`, `arcface`, `combined`; amsoftmax is
//! cosface) sums through GEMMs, so its errors scale with what is summed, and it is measured
//! in ulps of a stated scale instead:
//! * `<loss>.loss`: ulps of max(|L|, s·κ) — every logit is s·cos θ with an absolute error
//!   of a few ulps of s, and the loss moves by at most that. κ = max_i 1/sin θ_iy for the
//!   angular rules (arcface, combined), which go through θ = acos(cos θ): its condition
//!   number 1/sin θ is the math's, not the implementation's; κ = 1 for normface/cosface;
//! * `<loss>.grad`: each entry of ∂L/∂features (∂L/∂weights) in ulps of the magnitudes its
//!   row sums, Σ_j |G_ij|'/‖x_i‖ (Σ_i |G_ij|'/‖w_j‖), where G_ij = ∂L/∂cos θ_ij at its
//!   natural size: weighted by κ_i (κ_i² for the slope of a full angular margin) and floored
//!   at r·s times the dtype's smallest normal number ([`measures`] states it exactly). A
//!   sum that cancels, as for two opposite features of one class, has an exact value far
//!   below what it sums, and no GEMM resolves it better;
//! * `normface.grad_scale`: ulps of 2 (`mean`) or 2N (`sum`), the bound of Σ_ij
//!   |∂L/∂z_ij · cos θ_ij|.
//!
//! Errors of O(s) such ulps are expected: ∂L/∂z is a softmax of logits that carry absolute
//! errors of a few ulps of s.
//!
//! The other losses ([`measures`] states each measure exactly):
//! * `distill.*`: ulps of the magnitudes summed — the loss of r·Σ(αT²·Σ_j q_t(|log q_t| +
//!   |log q_s|) + (1 − α)·CE), each gradient entry of r·(αT(q_s + q_t) + (1 − α)(p + [j = y]));
//! * `center.*`: the loss in ulps of r·Σ½(x − c)² (which is |L|), ∂L/∂x in ulps of
//!   r·|x − c| (which is |∂L/∂x|); ∂L/∂c in ulps of r·Σ|x − c|;
//!   `centers_next` in ulps of |c| + α·Σ|x − c|/(1 + n);
//! * `lsoftmax.*`, `sphereface.*`: as the margin family, with row i's logits carrying
//!   absolute errors of a few ulps of Φ_i = max(max_j |f_ij|, ν‖x_i‖·(λ + m²)/(1 + λ)) (the
//!   target logit moves with cos θ at a slope bounded by m², Markov's inequality): the loss
//!   in ulps of max(|L|, r·Σ_i Φ_i), each gradient entry in ulps of what its row sums times
//!   max(1, Φ_i).
//!
//! The softmax rows (`softmax`, `log_softmax`, `softmax_ce.*`) are in plain ulps of the
//! value.
//!
//! The table is enforced both ways by the `precision_table*` tests of `tests/fast_paths/`:
//! a measured maximum above an entry fails, and so does an entry more than [`STALE_FACTOR`]
//! times the measured maximum (a stale entry hides regressions), and so does an entry that
//! is never measured. The measurement uses fixed seeds, so it is reproducible. The same
//! entries, times a factor, are the tolerances of `lossref check` (`crate::tolerance`).

use crate::answer::Answer;
use crate::spec::{
    Boundary, Case, CenterCase, DistillCase, Dtype, LossId, Margin, MarginGrad, MultiplicativeCase,
    NormalizedCase, Reduction,
};
use rug::Float;
use std::fmt;

/// The outputs of `softmax`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SoftmaxOutput {
    /// `probabilities`.
    Probabilities,
    /// `log_probabilities`.
    LogProbabilities,
}

/// A loss and its gradients (every gradient tensor of the loss is one row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LossOutput {
    /// The loss.
    Loss,
    /// Every gradient.
    Grad,
}

/// NormFace's outputs: its ∂L/∂s is measured on its own scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NormFaceOutput {
    /// The loss.
    Loss,
    /// ∂L/∂features and ∂L/∂weights.
    Grad,
    /// ∂L/∂s.
    GradScale,
}

/// Center loss's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CenterOutput {
    /// The loss.
    Loss,
    /// ∂L/∂features and ∂L/∂centers.
    Grad,
    /// The updated centers.
    CentersNext,
}

/// A fast function's output: the row key of the table, a loss of SPEC §1 × one of its
/// outputs. AM-Softmax is CosFace's mathematics and shares its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantity {
    /// `softmax`.
    Softmax(SoftmaxOutput),
    /// `softmax_ce`.
    SoftmaxCe(LossOutput),
    /// `normface`.
    NormFace(NormFaceOutput),
    /// `cosface` and `amsoftmax`.
    CosFace(LossOutput),
    /// `arcface`.
    ArcFace(LossOutput),
    /// `combined`.
    Combined(LossOutput),
    /// `distill`.
    Distill(LossOutput),
    /// `center`.
    Center(CenterOutput),
    /// `lsoftmax`.
    LSoftmax(LossOutput),
    /// `sphereface`.
    SphereFace(LossOutput),
}

use LossOutput as L;
use Quantity as Q;

impl Quantity {
    /// Every quantity, in table order.
    pub const ALL: [Quantity; 22] = [
        Q::Softmax(SoftmaxOutput::Probabilities),
        Q::Softmax(SoftmaxOutput::LogProbabilities),
        Q::SoftmaxCe(L::Loss),
        Q::SoftmaxCe(L::Grad),
        Q::NormFace(NormFaceOutput::Loss),
        Q::NormFace(NormFaceOutput::Grad),
        Q::NormFace(NormFaceOutput::GradScale),
        Q::CosFace(L::Loss),
        Q::CosFace(L::Grad),
        Q::ArcFace(L::Loss),
        Q::ArcFace(L::Grad),
        Q::Combined(L::Loss),
        Q::Combined(L::Grad),
        Q::Distill(L::Loss),
        Q::Distill(L::Grad),
        Q::Center(CenterOutput::Loss),
        Q::Center(CenterOutput::Grad),
        Q::Center(CenterOutput::CentersNext),
        Q::LSoftmax(L::Loss),
        Q::LSoftmax(L::Grad),
        Q::SphereFace(L::Loss),
        Q::SphereFace(L::Grad),
    ];

    /// The loss's name in the table (`normface` … `combined` name the margin rule).
    pub fn family(self) -> &'static str {
        match self {
            Q::Softmax(_) => "softmax",
            Q::SoftmaxCe(_) => "softmax_ce",
            Q::NormFace(_) => "normface",
            Q::CosFace(_) => "cosface",
            Q::ArcFace(_) => "arcface",
            Q::Combined(_) => "combined",
            Q::Distill(_) => "distill",
            Q::Center(_) => "center",
            Q::LSoftmax(_) => "lsoftmax",
            Q::SphereFace(_) => "sphereface",
        }
    }

    /// The output's name in the table (`loss`, `grad`, …; empty for `softmax`, whose two
    /// outputs are named as functions).
    pub fn output(self) -> &'static str {
        match self {
            Q::Softmax(_) => "",
            Q::NormFace(NormFaceOutput::Loss) | Q::Center(CenterOutput::Loss) => "loss",
            Q::NormFace(NormFaceOutput::Grad) | Q::Center(CenterOutput::Grad) => "grad",
            Q::NormFace(NormFaceOutput::GradScale) => "grad_scale",
            Q::Center(CenterOutput::CentersNext) => "centers_next",
            Q::SoftmaxCe(o)
            | Q::CosFace(o)
            | Q::ArcFace(o)
            | Q::Combined(o)
            | Q::Distill(o)
            | Q::LSoftmax(o)
            | Q::SphereFace(o) => match o {
                L::Loss => "loss",
                L::Grad => "grad",
            },
        }
    }

    /// The row's name in reports: `softmax`, `log_softmax`, `family.output`.
    pub fn name(self) -> String {
        match self {
            Q::Softmax(SoftmaxOutput::Probabilities) => "softmax".into(),
            Q::Softmax(SoftmaxOutput::LogProbabilities) => "log_softmax".into(),
            _ => format!("{}.{}", self.family(), self.output()),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// The largest error allowed, in ulps of the dtype (of the quantity's measure).
    pub max_ulps: f64,
    /// Where the error comes from.
    pub reason: &'static str,
}

/// An entry more than this many times the measured maximum error is stale.
pub const STALE_FACTOR: f64 = 4.0;

/// The table. The softmax rows are measured over the generated regimes of
/// `tests/fast_paths/precision_table.rs`, the normalized-margin rows (`normface.*` …
/// `combined.*`) over every variant and target-angle regime of
/// `tests/fast_paths/precision_table_margin.rs` (cos θ near ±1 for the affine rules only;
/// see the module docs), with one row per tile and one tile alternately; those entries
/// cover a 20× extensive run. For the softmax rows: logits in ±10 and in ±1e3, near-ties (a
/// few ulps or 1e−12 apart) and a dominant target whose loss reaches 1e−290 (f64) or f32's
/// subnormals, with temperatures 1/16 … 16, C ≤ 12. Each entry covers the maximum of an
/// extensive run (`LOSSREF_EXTENSIVE=60`, 28 800 batches per dtype) with some margin, and
/// stays within [`STALE_FACTOR`] of the default run.
///
/// The match has no wildcard: a new quantity or dtype without its entries does not compile.
pub const fn entry(quantity: Quantity, dtype: Dtype) -> Entry {
    match (quantity, dtype) {
        (Q::Softmax(SoftmaxOutput::Probabilities), Dtype::Float64) => Entry {
            max_ulps: 3.5,
            reason: "exp (< 1 ulp in glibc) of the leading part of an exactly split exponent, the first-order correction e^x·c, the row sum 1 + S′ (a few roundings for C ≤ 12) and one division",
        },
        (Q::Softmax(SoftmaxOutput::Probabilities), Dtype::Float32) => Entry {
            max_ulps: 4.0,
            reason: "as for f64, with expf",
        },
        (Q::Softmax(SoftmaxOutput::LogProbabilities), Dtype::Float64) => Entry {
            max_ulps: 3.5,
            reason: "(x_j − ln1p(S′)) + c_j: two roundings and the error of ln1p(S′), which is small against |x_j| except at j*, where −ln1p(S′) is the whole value",
        },
        (Q::Softmax(SoftmaxOutput::LogProbabilities), Dtype::Float32) => Entry {
            max_ulps: 4.0,
            reason: "as for f64, with log1pf",
        },
        (Q::SoftmaxCe(LossOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 2.5,
            reason: "per row ln1p(S′) + (m − z_y) with m − z_y exact as a pair; compensated batch sum; one division by N",
        },
        (Q::SoftmaxCe(LossOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 6.0,
            reason: "as for f64, plus f32 subnormals: a dominant target puts the loss below 1.2e−38, where each term e^{x_j} is rounded to an absolute 2^−150, and C − 1 terms per row and N rows add up in units of the smallest subnormal",
        },
        (Q::SoftmaxCe(LossOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 3.5,
            reason: "the softmax error, then p − 1 (benign: p ≤ ½ off the argmax, −S′/(1+S′) at it) and one division by N",
        },
        (Q::SoftmaxCe(LossOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 4.0,
            reason: "as for f64",
        },
        (Q::NormFace(NormFaceOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 3.5,
            reason: "per row ln Σ e^{z−m} + (m − z_y) (ln1p when the target is the max) on logits s·cos θ whose cosines carry a few ulps from the GEMM and the normalization",
        },
        (Q::NormFace(NormFaceOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 4.0,
            reason: "as for f64; the target rule and the row's ln are evaluated in f64",
        },
        (Q::NormFace(NormFaceOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 64.0,
            reason: "G = r·s·(p − onehot) carries the logits' absolute error of a few ulps of s (so O(s) ulps here, s = 16), then two GEMMs and the projection ĝ − (ĝ·v̂)v̂",
        },
        (Q::NormFace(NormFaceOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 64.0,
            reason: "as for f64, with f32 GEMMs",
        },
        (Q::NormFace(NormFaceOutput::GradScale), Dtype::Float64) => Entry {
            max_ulps: 2.0,
            reason: "Σ_i ĝ_i·x̂_i / s, accumulated in f64 and compensated across rows",
        },
        (Q::NormFace(NormFaceOutput::GradScale), Dtype::Float32) => Entry {
            max_ulps: 2.0,
            reason: "as for f64, from f32 GEMM outputs",
        },
        (Q::CosFace(LossOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 5.0,
            reason: "as normface.loss, with s = 30 … 64",
        },
        (Q::CosFace(LossOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 5.0,
            reason: "as for f64",
        },
        (Q::CosFace(LossOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 200.0,
            reason: "as normface.grad with s = 64: O(s) ulps from the logits' absolute error",
        },
        (Q::CosFace(LossOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 240.0,
            reason: "as for f64",
        },
        (Q::ArcFace(LossOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 4.0,
            reason: "as normface.loss; cos(θ + m) is computed in f64 from the GEMM's cos θ (the κ of the measure accounts for acos's conditioning)",
        },
        (Q::ArcFace(LossOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 4.0,
            reason: "as for f64",
        },
        (Q::ArcFace(LossOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 200.0,
            reason: "as cosface.grad, plus the slope sin(θ + m)/sin θ in f64 from the GEMM's cos θ (κ² in the measure)",
        },
        (Q::ArcFace(LossOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 180.0,
            reason: "as for f64",
        },
        (Q::Combined(LossOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 4.0,
            reason: "as arcface.loss, with cos(m1·θ + m2) − m3",
        },
        (Q::Combined(LossOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 4.0,
            reason: "as for f64",
        },
        (Q::Combined(LossOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 200.0,
            reason: "as arcface.grad, with the slope m1·sin(m1·θ + m2)/sin θ",
        },
        (Q::Combined(LossOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 160.0,
            reason: "as for f64",
        },
        (Q::Distill(LossOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 3.0,
            reason: "per row the compensated KL (or soft CE) sum of q_t·(log q_t − log q_s) from the split-exponent softmax, plus the fast softmax_ce; measured against the magnitudes summed",
        },
        (Q::Distill(LossOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 5.0,
            reason: "as for f64, in f32",
        },
        (Q::Distill(LossOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 4.0,
            reason: "α·T·(q_s − q_t) + (1 − α)·(p − onehot), each from the fast softmax (≤ 3.5 ulps), in ulps of the terms' magnitudes",
        },
        (Q::Distill(LossOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 8.0,
            reason: "as for f64, in f32, with T up to 20 amplifying the q error",
        },
        (Q::Center(CenterOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 3.0,
            reason: "compensated sums of ½(x − c)², where x − c is exact or one rounding",
        },
        (Q::Center(CenterOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 3.0,
            reason: "as for f64",
        },
        (Q::Center(CenterOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 3.0,
            reason: "r·(x − c) (a rounding each), and −r·Σ(x − c) compensated, in ulps of r·Σ|x − c|",
        },
        (Q::Center(CenterOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 3.0,
            reason: "as for f64",
        },
        (Q::Center(CenterOutput::CentersNext), Dtype::Float64) => Entry {
            max_ulps: 2.0,
            reason: "c + α·Σ(x − c)/(1 + n): three roundings after a compensated sum",
        },
        (Q::Center(CenterOutput::CentersNext), Dtype::Float32) => Entry {
            max_ulps: 2.0,
            reason: "as for f64",
        },
        (Q::LSoftmax(LossOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 3.5,
            reason: "the GEMM logits w·x, the target's ‖w‖‖x‖h(cos θ) in f64 (Chebyshev recurrence), and a row log-sum-exp, in ulps of the logits' error scale Φ",
        },
        (Q::LSoftmax(LossOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 3.0,
            reason: "as for f64; the target logit is computed in f64 and rounded once",
        },
        (Q::LSoftmax(LossOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 3.5,
            reason: "two GEMMs with the target column zeroed, plus the target's terms in f64",
        },
        (Q::LSoftmax(LossOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 3.3,
            reason: "as for f64",
        },
        (Q::SphereFace(LossOutput::Loss), Dtype::Float64) => Entry {
            max_ulps: 3.0,
            reason: "as lsoftmax.loss, with the logits divided by ‖w_j‖",
        },
        (Q::SphereFace(LossOutput::Loss), Dtype::Float32) => Entry {
            max_ulps: 2.0,
            reason: "as for f64",
        },
        (Q::SphereFace(LossOutput::Grad), Dtype::Float64) => Entry {
            max_ulps: 3.5,
            reason: "as lsoftmax.grad, plus the projection of ∂L/∂W off w_j",
        },
        (Q::SphereFace(LossOutput::Grad), Dtype::Float32) => Entry {
            max_ulps: 3.3,
            reason: "as for f64",
        },
    }
}

/// The error of `got` against the exact value, in ulps of `scale` in `dtype`:
/// |got − exact| / 2^max(⌊log₂|scale|⌋ − p + 1, e_min), with the smallest subnormal for a
/// zero or non-finite scale. Plain ulps when `scale` is the value itself. A non-finite
/// `got` is 0 ulps off where the exact value rounds to it in `dtype` (overflow), and
/// infinitely far otherwise.
pub fn error_ulps(got: f64, exact: &Float, scale: f64, dtype: Dtype) -> f64 {
    let prec = exact.prec().max(64) + 64;
    if !got.is_finite() {
        let rounded = match dtype {
            Dtype::Float32 => f64::from(exact.to_f32()),
            Dtype::Float64 => exact.to_f64(),
        };
        return if rounded == got { 0.0 } else { f64::INFINITY };
    }
    let err = Float::with_val(prec, got - exact).abs();
    let min_exp = dtype.min_subnormal_exp();
    let ulp_exp = match Float::with_val(53, scale).get_exp() {
        // |scale| = 0.1xxx₂ × 2^e, so ⌊log₂|scale|⌋ = e − 1.
        Some(e) if scale.is_finite() => {
            (e - 1 - (dtype.significand_bits() as i32 - 1)).max(min_exp)
        }
        _ => min_exp,
    };
    (err >> ulp_exp).to_f64()
}

/// Judges a measured maximum against the entry of `quantity` at `dtype`: `Err` with a
/// message when the entry is exceeded or stale.
pub fn judge(quantity: Quantity, dtype: Dtype, measured: f64) -> Result<(), String> {
    let entry = entry(quantity, dtype);
    let d = dtype.short();
    if measured > entry.max_ulps {
        Err(format!(
            "{quantity} {d}: measured {measured:.3} ulps exceeds the table's {} ulps",
            entry.max_ulps
        ))
    } else if entry.max_ulps > STALE_FACTOR * measured {
        Err(format!(
            "{quantity} {d}: the table allows {} ulps but at most {measured:.3} were measured; \
             the entry is more than {STALE_FACTOR}× too loose: tighten it",
            entry.max_ulps
        ))
    } else {
        Ok(())
    }
}

/// How one output group of a case is measured: the quantity (its table row) and the scale
/// of every value, in the answer's order. A value's error is [`error_ulps`] of its scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    /// `outputs/NAME` or `gradients/NAME`.
    pub group: &'static str,
    /// The table row.
    pub quantity: Quantity,
    /// The scale of each value.
    pub scales: Vec<f64>,
}

/// The value groups of `case`'s answer (`outputs/NAME`, `gradients/NAME`), in the answer's
/// order, each with its row of the table. The match names every loss, so a new one that is
/// not listed here does not compile.
pub fn quantities(case: &Case) -> Vec<(&'static str, Quantity)> {
    match case {
        Case::Softmax(_) => vec![
            (
                "outputs/probabilities",
                Q::Softmax(SoftmaxOutput::Probabilities),
            ),
            (
                "outputs/log_probabilities",
                Q::Softmax(SoftmaxOutput::LogProbabilities),
            ),
        ],
        Case::SoftmaxCe(_) => vec![
            ("outputs/loss", Q::SoftmaxCe(L::Loss)),
            ("gradients/logits", Q::SoftmaxCe(L::Grad)),
        ],
        Case::Distill(_) => vec![
            ("outputs/loss", Q::Distill(L::Loss)),
            ("gradients/student_logits", Q::Distill(L::Grad)),
        ],
        Case::Center(_) => vec![
            ("outputs/loss", Q::Center(CenterOutput::Loss)),
            ("outputs/centers_next", Q::Center(CenterOutput::CentersNext)),
            ("gradients/features", Q::Center(CenterOutput::Grad)),
            ("gradients/centers", Q::Center(CenterOutput::Grad)),
        ],
        Case::Multiplicative(c) => {
            let family = if c.normalized_weights() {
                Q::SphereFace
            } else {
                Q::LSoftmax
            };
            vec![
                ("outputs/loss", family(L::Loss)),
                ("gradients/features", family(L::Grad)),
                ("gradients/weights", family(L::Grad)),
            ]
        }
        Case::Normalized(c) => {
            let (loss, grad) = match c.margin {
                Margin::None => (
                    Q::NormFace(NormFaceOutput::Loss),
                    Q::NormFace(NormFaceOutput::Grad),
                ),
                Margin::Additive { .. } => (Q::CosFace(L::Loss), Q::CosFace(L::Grad)),
                Margin::Angular { .. } => (Q::ArcFace(L::Loss), Q::ArcFace(L::Grad)),
                Margin::Combined { .. } => (Q::Combined(L::Loss), Q::Combined(L::Grad)),
            };
            let mut out = vec![
                ("outputs/loss", loss),
                ("gradients/features", grad),
                ("gradients/weights", grad),
            ];
            if c.loss == LossId::NormFace {
                out.push(("gradients/scale", Q::NormFace(NormFaceOutput::GradScale)));
            }
            out
        }
    }
}

/// The measures of every value group of `case` in `dtype` (the module docs state each), one
/// per group of [`quantities`], given the exact values rounded to binary64 (`exact`).
pub fn measures(case: &Case, exact: &Answer<f64>, dtype: Dtype) -> Vec<Measure> {
    let groups = quantities(case);
    let value = |group: &str| -> &[f64] { exact.group(group).map_or(&[], |t| t.values()) };
    let loss = || value("outputs/loss").first().map_or(0.0, |l| l.abs());
    // one column of scales per group, in the order of `groups`
    let columns: Vec<Vec<f64>> = match case {
        Case::Softmax(_) | Case::SoftmaxCe(_) => groups
            .iter()
            .map(|(g, _)| value(g).iter().map(|v| v.abs()).collect())
            .collect(),
        Case::Distill(c) => {
            let (loss, grad) = distill_scales(c);
            vec![vec![loss], grad]
        }
        Case::Center(c) => {
            let s = center_scales(c);
            vec![vec![s.loss], s.centers_next, s.features, s.centers]
        }
        Case::Multiplicative(c) => {
            let s = psi_scales(c);
            let d = c.features.cols();
            vec![
                vec![loss().max(s.loss)],
                per_entry(&s.rows, d),
                per_entry(&s.cols, d),
            ]
        }
        Case::Normalized(c) => {
            let t = normalized_terms(c, dtype.min_normal());
            let d = c.features.cols();
            let mut columns = vec![
                vec![normalized_loss_scale(c, loss(), &t)],
                per_entry(&t.rows, d),
                per_entry(&t.cols, d),
            ];
            if c.loss == LossId::NormFace {
                columns.push(vec![normface_grad_scale_scale(c)]);
            }
            columns
        }
    };
    debug_assert_eq!(groups.len(), columns.len(), "a group without scales");
    groups
        .into_iter()
        .zip(columns)
        .map(|((group, quantity), scales)| Measure {
            group,
            quantity,
            scales,
        })
        .collect()
}

/// Each row's scale repeated for its `d` entries.
fn per_entry(rows: &[f64], d: usize) -> Vec<f64> {
    rows.iter()
        .flat_map(|&s| std::iter::repeat_n(s, d))
        .collect()
}

pub(crate) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// softmax(z/t) in binary64.
pub(crate) fn softmax_row(z: &[f64], t: f64) -> Vec<f64> {
    let top = z.iter().copied().fold(f64::MIN, f64::max);
    let e: Vec<f64> = z.iter().map(|v| ((v - top) / t).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

/// log-softmax of `z/t`, computed without underflow: (z_j − max)/t − ln Σ e^{(z_k − max)/t}.
pub(crate) fn log_softmax_row(z: &[f64], t: f64) -> Vec<f64> {
    let top = z.iter().copied().fold(f64::MIN, f64::max);
    let log_sum = z.iter().map(|v| ((v - top) / t).exp()).sum::<f64>().ln();
    z.iter().map(|v| (v - top) / t - log_sum).collect()
}

/// distill: the loss's scale r·Σ_i (αT²·Σ_j q_t(|log q_t| + |log q_s|) + (1 − α)·|log p_y|)
/// (the magnitudes summed), and each gradient entry's r·(αT(q_s + q_t) + (1 − α)(p + [j = y])).
fn distill_scales(c: &DistillCase) -> (f64, Vec<f64>) {
    let (n, cols) = (c.labels.len(), c.student.cols());
    let r = c.reduction.weight(n);
    let (t, al) = (c.temperature, c.alpha);
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(n * cols);
    for (i, &y) in c.labels.iter().enumerate() {
        let (s, te) = (c.student.row(i), c.teacher.row(i));
        let (qs, qt, p) = (softmax_row(s, t), softmax_row(te, t), softmax_row(s, 1.0));
        let (lqs, lqt) = (log_softmax_row(s, t), log_softmax_row(te, t));
        let soft: f64 = (0..cols)
            .map(|j| qt[j] * (lqt[j].abs() + lqs[j].abs()))
            .sum();
        let ce = log_softmax_row(s, 1.0)[y].abs();
        loss += r * (al * t * t * soft + (1.0 - al) * ce);
        for j in 0..cols {
            grad.push(
                r * (al * t * (qs[j] + qt[j]) + (1.0 - al) * (p[j] + f64::from(u8::from(j == y)))),
            );
        }
    }
    (loss, grad)
}

/// The scales of center loss (SPEC §1): every value is a sum of |x_i − c_y| terms.
pub(crate) struct CenterScales {
    /// r·Σ_i ½‖x_i − c_y‖² (= |L|).
    pub loss: f64,
    /// |c_jk| + α·Σ_i |x_ik − c_jk|/(1 + n_j).
    pub centers_next: Vec<f64>,
    /// r·|x_ik − c_yk| (= |∂L/∂x_ik|).
    pub features: Vec<f64>,
    /// r·Σ_{i: y_i = j} |x_ik − c_jk|.
    pub centers: Vec<f64>,
}

pub(crate) fn center_scales(c: &CenterCase) -> CenterScales {
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
        .map(|e| c.centers.as_slice()[e].abs() + c.alpha * sums[e] / (1.0 + counts[e / d] as f64))
        .collect();
    CenterScales {
        loss,
        centers_next,
        features,
        centers,
    }
}

/// The scales of lsoftmax / sphereface. Row i's logits carry absolute errors of a few ulps
/// of Φ_i = max(max_j |f_ij|, ν_y‖x_i‖·(λ + m²)/(1 + λ)): the target logit moves with cos θ
/// at the slope ν‖x‖·h′, and |dψ/dcos θ| ≤ m² (Markov's inequality for T_m′).
pub(crate) struct PsiScales {
    /// r·Σ_i Φ_i (the loss is measured in ulps of max(|L|, this)).
    pub loss: f64,
    /// Per row of features: what ∂L/∂x_i sums, Σ_j |G_ij|·|∂f_ij/∂x| (the target's slope
    /// counted as (λ + m²)/(1 + λ) + 1), times max(1, Φ_i), because every G_ij of row i is a
    /// softmax of those logits; floored at the smallest normal binary64.
    pub rows: Vec<f64>,
    /// Per row of weights, the same for ∂L/∂w_j.
    pub cols: Vec<f64>,
}

pub(crate) fn psi_scales(c: &MultiplicativeCase) -> PsiScales {
    let (n, classes) = (c.labels.len(), c.weights.rows());
    let r = c.reduction.weight(n);
    let m = f64::from(c.margin);
    let slope_bound = (c.lambda + m * m) / (1.0 + c.lambda);
    let nu = |j: usize| {
        if c.normalized_weights() {
            1.0
        } else {
            norm(c.weights.row(j))
        }
    };
    let mut rows = vec![0.0; n];
    let mut cols = vec![0.0; classes];
    let mut loss = 0.0;
    for (i, row_scale) in rows.iter_mut().enumerate() {
        let x = c.features.row(i);
        let y = c.labels[i];
        let f: Vec<f64> = (0..classes)
            .map(|j| {
                let w = c.weights.row(j);
                let cos = dot(x, w) / (norm(x) * norm(w)).max(f64::MIN_POSITIVE);
                let h = if j == y {
                    let theta = cos.clamp(-1.0, 1.0).acos();
                    let k = (theta * m / std::f64::consts::PI).floor().min(m - 1.0);
                    let psi = if k % 2.0 == 1.0 {
                        -(m * theta).cos()
                    } else {
                        (m * theta).cos()
                    } - 2.0 * k;
                    (c.lambda * cos + psi) / (1.0 + c.lambda)
                } else {
                    cos
                };
                nu(j) * norm(x) * h
            })
            .collect();
        let phi = f
            .iter()
            .fold(nu(y) * norm(x) * slope_bound, |a, v| a.max(v.abs()));
        loss += r * phi;
        let p = softmax_row(&f, 1.0);
        let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
        for j in 0..classes {
            let (gij, slope) = if j == y {
                (r * rest, 1.0 + slope_bound)
            } else {
                (r * p[j], 1.0)
            };
            let g = gij * slope * phi.max(1.0);
            *row_scale += g * nu(j);
            cols[j] += g * if c.normalized_weights() {
                norm(x) / norm(c.weights.row(j)).max(f64::MIN_POSITIVE)
            } else {
                norm(x)
            };
        }
    }
    let floor = |v: Vec<f64>| v.into_iter().map(|s| s.max(f64::MIN_POSITIVE)).collect();
    PsiScales {
        loss,
        rows: floor(rows),
        cols: floor(cols),
    }
}

/// What the gradients of a normalized-margin loss sum, weighted by their conditioning.
/// ∂L/∂x_i sums G_ij(ŵ_j − cos θ_ij x̂_i)/‖x_i‖ over j and ∂L/∂w_j sums
/// G_ij(x̂_i − cos θ_ij ŵ_j)/‖w_j‖ over i, with G_ij = ∂L/∂cos θ_ij; the scales are
/// Σ_j |G_ij|'/‖x_i‖ and Σ_i |G_ij|'/‖w_j‖, where |G_ij|' is the natural size of G_ij:
/// * r·s·p_ij·κ_i off the target (an error in the target logit moves every p_ij of the row);
/// * r·s·(1 − p_y)·max(1, |dg/dcos θ|)·κ_i² at the target for a full angular gradient (the
///   slope is computed from θ with an absolute error ~ulp/sin²θ, so its natural size is at
///   least 1 even where it vanishes, as cos(θ + m) does at θ = π − m), κ_i for a detached
///   one or an affine rule;
/// * never below r·s·`floor` (the dtype's smallest normal number: probabilities under it
///   are subnormal, with absolute, not relative, resolution).
///
/// κ_i = 1/sin θ_iy for the angular rules (arcface, combined), which go through
/// θ = acos(cos θ) and so turn an error δ in cos θ into δ/sin θ in θ; 1 for the affine rules.
pub(crate) struct NormalizedTerms {
    /// Per row of features.
    pub rows: Vec<f64>,
    /// Per row of weights.
    pub cols: Vec<f64>,
    /// The same sums with the target's p_y − 1 computed as softmax − onehot, with the
    /// absolute error of a rounding of 1 (the textbook gradient).
    pub naive_rows: Vec<f64>,
    /// As `naive_rows`, per row of weights.
    pub naive_cols: Vec<f64>,
    /// κ_i per sample.
    pub kappas: Vec<f64>,
    /// max(1, max_i κ_i).
    pub kappa_max: f64,
}

pub(crate) fn normalized_terms(c: &NormalizedCase, floor: f64) -> NormalizedTerms {
    let (n, classes) = (c.labels.len(), c.weights.rows());
    let r = c.reduction.weight(n);
    let angular = matches!(c.margin, Margin::Angular { .. } | Margin::Combined { .. });
    let detached = matches!(
        c.margin,
        Margin::Angular {
            grad: MarginGrad::Detached,
            ..
        }
    );
    let mut t = NormalizedTerms {
        rows: vec![0.0; n],
        cols: vec![0.0; classes],
        naive_rows: vec![0.0; n],
        naive_cols: vec![0.0; classes],
        kappas: vec![1.0; n],
        kappa_max: 1.0,
    };
    for i in 0..n {
        let x = c.features.row(i);
        let cos: Vec<f64> = (0..classes)
            .map(|j| dot(x, c.weights.row(j)) / (norm(x) * norm(c.weights.row(j))))
            .collect();
        let y = c.labels[i];
        let k = if angular {
            1.0 / (1.0 - cos[y] * cos[y]).max(0.0).sqrt().max(1e-300)
        } else {
            1.0
        };
        t.kappas[i] = k;
        t.kappa_max = t.kappa_max.max(k);
        let (g, slope) = target_rule(&c.margin, cos[y]);
        let z: Vec<f64> = (0..classes)
            .map(|j| c.scale * if j == y { g } else { cos[j] })
            .collect();
        let p = softmax_row(&z, 1.0);
        // 1 − p_y as Σ_{j≠y} p_j: no cancellation when the target dominates.
        let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
        for (j, pj) in p.iter().enumerate() {
            let size = if j != y {
                pj * k
            } else if detached || !angular {
                rest * k
            } else {
                rest * slope.abs().max(1.0) * k * k
            };
            let gij = r * c.scale * size.max(floor);
            t.rows[i] += gij / norm(x);
            t.cols[j] += gij / norm(c.weights.row(j));
            let naive = if j == y {
                r * c.scale * (rest + 1.0) * slope.abs().max(1.0) * k * k
            } else {
                gij
            };
            t.naive_rows[i] += naive / norm(x);
            t.naive_cols[j] += naive / norm(c.weights.row(j));
        }
    }
    let at_least = |v: &mut Vec<f64>| v.iter_mut().for_each(|s| *s = s.max(f64::MIN_POSITIVE));
    at_least(&mut t.rows);
    at_least(&mut t.cols);
    t
}

/// The loss's scale max(|L|, s·κ): every logit is s·cos θ with an absolute error of a few
/// ulps of s, times κ for the angular rules, and the loss moves by at most that.
pub(crate) fn normalized_loss_scale(c: &NormalizedCase, loss: f64, t: &NormalizedTerms) -> f64 {
    loss.max(c.scale * t.kappa_max)
}

/// ∂L/∂s's scale: Σ|∂L/∂z · cos θ| ≤ Σ_i 2r·max|cos θ| ≤ 2 (`mean`) or 2N (`sum`).
pub(crate) fn normface_grad_scale_scale(c: &NormalizedCase) -> f64 {
    if c.reduction == Reduction::Mean {
        2.0
    } else {
        2.0 * c.labels.len() as f64
    }
}

/// g and dg/dcos θ of SPEC §1 in binary64, away from the poles.
pub(crate) fn target_rule(margin: &Margin, c: f64) -> (f64, f64) {
    let angular = |m1: f64, m2: f64, m3: f64| {
        let a = m1 * c.clamp(-1.0, 1.0).acos() + m2;
        (
            a.cos() - m3,
            m1 * a.sin() / (1.0 - c * c).max(1e-300).sqrt(),
        )
    };
    match *margin {
        Margin::None => (c, 1.0),
        Margin::Additive { m } => (c - m, 1.0),
        Margin::Combined { m1, m2, m3 } => angular(m1, m2, m3),
        Margin::Angular { m, boundary, grad } => {
            let arc = match boundary {
                Boundary::None => true,
                Boundary::Thmm => c > (std::f64::consts::PI - m).cos(),
                Boundary::Easy => c > 0.0,
            };
            let (g, slope) = if arc { angular(1.0, m, 0.0) } else { (c, 1.0) };
            (
                g,
                if grad == MarginGrad::Detached {
                    1.0
                } else {
                    slope
                },
            )
        }
    }
}
