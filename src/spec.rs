//! The loss catalogue of SPEC §1 as types: loss ids, typed parameters with their defaults
//! and validated inputs. One [`Case`] per loss drives the reference, the fast paths and
//! `lossref eval` alike.

pub use crate::family::center::CenterCase;
pub use crate::family::distill::{DistillCase, SoftTerm};
use crate::matrix::Matrix;
use std::fmt;

/// Every loss id that SPEC §1 lists, in catalogue order (each is a [`LossId`]).
pub const SPEC_LOSSES: &[&str] = &[
    "softmax",
    "softmax_ce",
    "distill",
    "lsoftmax",
    "sphereface",
    "center",
    "normface",
    "cosface",
    "amsoftmax",
    "arcface",
    "combined",
];

/// The losses of SPEC §1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossId {
    /// `softmax`: probabilities and log-probabilities of `logits / T`.
    Softmax,
    /// `softmax_ce`: CE(z, y) = logsumexp(z) − z_y, reduced over the batch.
    SoftmaxCe,
    /// `distill`: α·T²·soft + (1 − α)·CE of the student (knowledge distillation).
    Distill,
    /// `lsoftmax`: L-Softmax, the target logit ‖w‖‖x‖(λ cos θ + ψ_m(θ))/(1 + λ).
    LSoftmax,
    /// `sphereface`: A-Softmax, `lsoftmax` with every ‖w_j‖ replaced by 1.
    SphereFace,
    /// `center`: ½‖x_i − c_{y_i}‖², with the center update `centers_next`.
    Center,
    /// `normface`: CE(s·cos θ_i, y_i), with the gradient with respect to the scale s.
    NormFace,
    /// `cosface`: the target logit is s(cos θ − m).
    CosFace,
    /// `amsoftmax`: the same mathematics as `cosface`, with other defaults.
    AmSoftmax,
    /// `arcface`: the target logit is s·g(θ) with g = cos(θ + m) and a `boundary` rule.
    ArcFace,
    /// `combined`: the target logit is s(cos(m1·θ + m2) − m3).
    Combined,
}

impl LossId {
    /// All losses, in catalogue order.
    pub const ALL: &'static [LossId] = &[
        LossId::Softmax,
        LossId::SoftmaxCe,
        LossId::Distill,
        LossId::LSoftmax,
        LossId::SphereFace,
        LossId::Center,
        LossId::NormFace,
        LossId::CosFace,
        LossId::AmSoftmax,
        LossId::ArcFace,
        LossId::Combined,
    ];

    /// The SPEC §1 id.
    pub fn as_str(self) -> &'static str {
        match self {
            LossId::Softmax => "softmax",
            LossId::SoftmaxCe => "softmax_ce",
            LossId::Distill => "distill",
            LossId::LSoftmax => "lsoftmax",
            LossId::SphereFace => "sphereface",
            LossId::Center => "center",
            LossId::NormFace => "normface",
            LossId::CosFace => "cosface",
            LossId::AmSoftmax => "amsoftmax",
            LossId::ArcFace => "arcface",
            LossId::Combined => "combined",
        }
    }

    /// Parses an implemented id.
    pub fn from_name(name: &str) -> Option<LossId> {
        LossId::ALL.iter().copied().find(|l| l.as_str() == name)
    }
}

impl fmt::Display for LossId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How per-sample terms combine (SPEC: "Every loss is `reduction` over samples").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Sum divided by N (the default).
    #[default]
    Mean,
    /// Plain sum.
    Sum,
}

impl Reduction {
    /// The SPEC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
        }
    }

    /// The weight of each per-sample term in binary64: 1/N for `mean`, 1 for `sum`.
    pub fn weight(self, n: usize) -> f64 {
        match self {
            Reduction::Mean => 1.0 / n as f64,
            Reduction::Sum => 1.0,
        }
    }

    /// The other reduction.
    pub fn other(self) -> Reduction {
        match self {
            Reduction::Mean => Reduction::Sum,
            Reduction::Sum => Reduction::Mean,
        }
    }

    /// Parses `mean` or `sum`.
    pub fn from_name(name: &str) -> Option<Reduction> {
        match name {
            "mean" => Some(Reduction::Mean),
            "sum" => Some(Reduction::Sum),
            _ => None,
        }
    }
}

/// A floating-point format of SPEC §4: the dtype of a corpus case, of a fast path's
/// numbers, and the column of the precision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dtype {
    /// binary32: every number of the case is a float32.
    Float32,
    /// binary64.
    Float64,
}

impl Dtype {
    /// Both, in corpus order.
    pub const ALL: [Dtype; 2] = [Dtype::Float32, Dtype::Float64];

    /// `float32` or `float64` (SPEC §4).
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
        }
    }

    /// The short form used in case ids.
    pub fn short(self) -> &'static str {
        match self {
            Dtype::Float32 => "f32",
            Dtype::Float64 => "f64",
        }
    }

    /// Rounds a binary64 to this dtype (exact for float64).
    pub fn round(self, x: f64) -> f64 {
        match self {
            Dtype::Float32 => f64::from(x as f32),
            Dtype::Float64 => x,
        }
    }

    /// Bits of significand precision p (24 or 53).
    pub fn significand_bits(self) -> u32 {
        match self {
            Dtype::Float32 => 24,
            Dtype::Float64 => 53,
        }
    }

    /// The exponent of the smallest positive subnormal (−149 or −1074).
    pub fn min_subnormal_exp(self) -> i32 {
        match self {
            Dtype::Float32 => -149,
            Dtype::Float64 => -1074,
        }
    }

    /// The smallest positive normal number (2^−126 or 2^−1022).
    pub fn min_normal(self) -> f64 {
        match self {
            Dtype::Float32 => f64::from(f32::MIN_POSITIVE),
            Dtype::Float64 => f64::MIN_POSITIVE,
        }
    }

    /// ulp(x) = 2^max(⌊log₂|x|⌋ − p + 1, e_min) in this format, in binary64; the smallest
    /// subnormal for 0 and non-finite x.
    pub fn ulp(self, x: f64) -> f64 {
        let (p, min_exp) = (self.significand_bits() as i32, self.min_subnormal_exp());
        let e = if x == 0.0 || !x.is_finite() {
            min_exp
        } else {
            (x.abs().log2().floor() as i32 - (p - 1)).max(min_exp)
        };
        exp2i(e)
    }
}

/// 2^e exactly, subnormal powers included (`powi` would underflow through 1/2^−e).
fn exp2i(e: i32) -> f64 {
    if e >= -1022 {
        2f64.powi(e)
    } else {
        f64::from_bits(1u64 << (e + 1074).clamp(0, 51))
    }
}

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
}

/// One validated case (SPEC §3), typed by loss.
#[derive(Clone, Debug, PartialEq)]
pub enum Case {
    /// See [`SoftmaxCase`].
    Softmax(SoftmaxCase),
    /// See [`SoftmaxCeCase`].
    SoftmaxCe(SoftmaxCeCase),
    /// See [`NormalizedCase`].
    Normalized(NormalizedCase),
    /// See [`DistillCase`].
    Distill(DistillCase),
    /// See [`MultiplicativeCase`].
    Multiplicative(MultiplicativeCase),
    /// See [`CenterCase`].
    Center(CenterCase),
}

impl Case {
    /// The case's `reduction`, for the losses that have one (all but `softmax`).
    pub fn reduction_mut(&mut self) -> Option<&mut Reduction> {
        crate::family::reduction_mut(self)
    }

    /// The loss this case evaluates.
    pub fn loss(&self) -> LossId {
        crate::family::loss(self)
    }
}
