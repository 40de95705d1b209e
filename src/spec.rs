//! The vocabulary of SPEC §1 as types: the loss ids ([`LossId`]), the reduction, the
//! dtypes, and [`Case`], one validated case of any loss. Each case type and its parameters
//! live in the loss's family home ([`crate::family`]) and are re-exported here.

pub use crate::family::adaptive::{AdaptiveCase, AdaptiveRule};
pub use crate::family::center::CenterCase;
pub use crate::family::distill::{DistillCase, SoftTerm};
pub use crate::family::focal::{FocalCase, TargetRule};
pub use crate::family::normalized::{Boundary, Margin, MarginGrad, MarginSlot, NormalizedCase};
pub use crate::family::psi::MultiplicativeCase;
pub use crate::family::softmax::{CeOptions, SoftmaxCase, SoftmaxCeCase};
pub use crate::family::subcenter::SubcenterCase;
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
    "focal",
    "poly1",
    "subcenter_arcface",
    "curricularface",
    "adaface",
    "magface",
    "adacos",
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
    /// `focal`: −α_y·(1 − p_y)^γ·log p_y (SPEC §5).
    Focal,
    /// `poly1`: CE + ε·(1 − p_y) (SPEC §5).
    Poly1,
    /// `subcenter_arcface`: `arcface` on each class's largest of K sub-center cosines
    /// (SPEC §5).
    SubcenterArcFace,
    /// `curricularface`: arcface `thmm` at the target, hard negatives c(t' + c) (SPEC §5).
    CurricularFace,
    /// `adaface`: a margin that follows the feature norm's place in the batch (SPEC §5).
    AdaFace,
    /// `magface`: arcface at a margin m(‖x‖), plus a norm regularizer (SPEC §5).
    MagFace,
    /// `adacos`: normface at the scale s' the batch computes (SPEC §5).
    AdaCos,
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
        LossId::Focal,
        LossId::Poly1,
        LossId::SubcenterArcFace,
        LossId::CurricularFace,
        LossId::AdaFace,
        LossId::MagFace,
        LossId::AdaCos,
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
            LossId::Focal => "focal",
            LossId::Poly1 => "poly1",
            LossId::SubcenterArcFace => "subcenter_arcface",
            LossId::CurricularFace => "curricularface",
            LossId::AdaFace => "adaface",
            LossId::MagFace => "magface",
            LossId::AdaCos => "adacos",
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

/// A floating-point format of SPEC §4 and §6: the dtype of a corpus case, of a fast path's
/// numbers, and the column of the precision table.
///
/// The 16-bit formats (SPEC §6) are storage formats: a `bfloat16` or `float16` case holds
/// numbers exact in it, and the pipelines that implement it compute in float32
/// ([`Dtype::arithmetic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dtype {
    /// binary32: every number of the case is a float32.
    Float32,
    /// binary64.
    Float64,
    /// bfloat16: 8 significand bits, float32's exponent range.
    BFloat16,
    /// IEEE binary16: 11 significand bits, normal numbers in [2^−14, 65504].
    Float16,
}

impl Dtype {
    /// The dtypes that lossref's fast paths compute in, in corpus order.
    pub const ALL: [Dtype; 2] = [Dtype::Float32, Dtype::Float64];

    /// The 16-bit storage formats of SPEC §6, in corpus order.
    pub const HALF: [Dtype; 2] = [Dtype::BFloat16, Dtype::Float16];

    /// Every dtype a corpus case may have, in corpus order.
    pub const CORPUS: [Dtype; 4] = [
        Dtype::Float32,
        Dtype::Float64,
        Dtype::BFloat16,
        Dtype::Float16,
    ];

    /// `float32`, `float64`, `bfloat16` or `float16` (SPEC §4, §6).
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
            Dtype::BFloat16 => "bfloat16",
            Dtype::Float16 => "float16",
        }
    }

    /// The dtype named `name` (as [`Dtype::as_str`] spells it).
    pub fn parse(name: &str) -> Option<Dtype> {
        Dtype::CORPUS.into_iter().find(|d| d.as_str() == name)
    }

    /// The short form used in case ids.
    pub fn short(self) -> &'static str {
        match self {
            Dtype::Float32 => "f32",
            Dtype::Float64 => "f64",
            Dtype::BFloat16 => "bf16",
            Dtype::Float16 => "f16",
        }
    }

    /// Whether this is one of the 16-bit storage formats of SPEC §6.
    pub fn is_half(self) -> bool {
        matches!(self, Dtype::BFloat16 | Dtype::Float16)
    }

    /// The format the fast paths (and every SPEC §6 pipeline but `native`) compute a case
    /// of this dtype in: float32 for the 16-bit formats, the dtype itself otherwise.
    pub fn arithmetic(self) -> Dtype {
        if self.is_half() {
            Dtype::Float32
        } else {
            self
        }
    }

    /// Rounds a binary64 to this dtype, to nearest with ties to even (exact for float64;
    /// ±∞ past the format's largest finite number). The 16-bit roundings go through the
    /// `half` crate's conversions from binary64, which round once.
    pub fn round(self, x: f64) -> f64 {
        match self {
            Dtype::Float32 => f64::from(x as f32),
            Dtype::Float64 => x,
            Dtype::BFloat16 => half::bf16::from_f64(x).to_f64(),
            Dtype::Float16 => half::f16::from_f64(x).to_f64(),
        }
    }

    /// The name of the lower precision that implementations of this dtype hold parameters
    /// in (SPEC §4, "parameters in a lower precision"): `float32` in a float64
    /// computation, `bfloat16` in a float32 one (and in the float32 arithmetic of a 16-bit
    /// case).
    pub fn lower_name(self) -> &'static str {
        match self.arithmetic() {
            Dtype::Float64 => "float32",
            _ => "bfloat16",
        }
    }

    /// Rounds a binary64 to nearest (ties to even) in [`Dtype::lower_name`]'s format.
    pub fn round_lower(self, x: f64) -> f64 {
        match self.arithmetic() {
            Dtype::Float64 => f64::from(x as f32),
            _ => Dtype::BFloat16.round(x),
        }
    }

    /// Bits of significand precision p (24, 53, 8 or 11).
    pub fn significand_bits(self) -> u32 {
        match self {
            Dtype::Float32 => 24,
            Dtype::Float64 => 53,
            Dtype::BFloat16 => 8,
            Dtype::Float16 => 11,
        }
    }

    /// The unit roundoff u = 2^−p: the largest relative error of a rounding to nearest
    /// (SPEC §6: 2^−8 bfloat16, 2^−11 float16, 2^−24 float32).
    pub fn unit_roundoff(self) -> f64 {
        exp2i(-(self.significand_bits() as i32))
    }

    /// The exponent of the smallest positive subnormal (−149, −1074, −133 or −24).
    pub fn min_subnormal_exp(self) -> i32 {
        match self {
            Dtype::Float32 => -149,
            Dtype::Float64 => -1074,
            Dtype::BFloat16 => -133,
            Dtype::Float16 => -24,
        }
    }

    /// The smallest positive normal number (2^−126, 2^−1022, 2^−126 or 2^−14).
    pub fn min_normal(self) -> f64 {
        match self {
            Dtype::Float32 | Dtype::BFloat16 => f64::from(f32::MIN_POSITIVE),
            Dtype::Float64 => f64::MIN_POSITIVE,
            Dtype::Float16 => exp2i(-14),
        }
    }

    /// The largest finite number.
    pub fn max_finite(self) -> f64 {
        match self {
            Dtype::Float32 => f64::from(f32::MAX),
            Dtype::Float64 => f64::MAX,
            Dtype::BFloat16 => half::bf16::MAX.to_f64(),
            Dtype::Float16 => half::f16::MAX.to_f64(),
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

/// The binary format a fast path computes in: the column of the precision table
/// (`crate::precision`). The 16-bit dtypes compute in float32 ([`Dtype::arithmetic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arithmetic {
    /// binary32.
    Float32,
    /// binary64.
    Float64,
}

impl Arithmetic {
    /// The dtype of this format.
    pub fn dtype(self) -> Dtype {
        match self {
            Arithmetic::Float32 => Dtype::Float32,
            Arithmetic::Float64 => Dtype::Float64,
        }
    }
}

impl Dtype {
    /// The column of the precision table that a computation for this dtype is held to:
    /// float32's for the 16-bit formats, whose fast paths compute in float32.
    pub fn column(self) -> Arithmetic {
        match self {
            Dtype::Float64 => Arithmetic::Float64,
            Dtype::Float32 | Dtype::BFloat16 | Dtype::Float16 => Arithmetic::Float32,
        }
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
    /// See [`FocalCase`].
    Focal(FocalCase),
    /// See [`SubcenterCase`].
    Subcenter(SubcenterCase),
    /// See [`AdaptiveCase`].
    Adaptive(AdaptiveCase),
}

impl Case {
    /// A case of any loss, validated ([`Case::validate`]): the constructor for cases built
    /// by hand from their family's case type.
    ///
    /// ```
    /// use lossref::matrix::Matrix;
    /// use lossref::spec::{Case, Margin, NormalizedCase, Reduction};
    /// use lossref::{certified, LossId};
    ///
    /// let cosface = NormalizedCase {
    ///     loss: LossId::CosFace,
    ///     scale: 30.0,
    ///     margin: Margin::Additive { m: 0.35 },
    ///     reduction: Reduction::Mean,
    ///     features: Matrix::from_vec(1, 2, vec![3.0, 4.0]).unwrap(),
    ///     weights: Matrix::from_vec(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap(),
    ///     labels: vec![1],
    ///     margins: None,
    ///     margins_as: Default::default(),
    ///     classes: None,
    /// };
    /// let case = Case::new(cosface.clone())?;
    /// assert!(certified(&case)?.answer.loss().unwrap().f64 > 0.0);
    ///
    /// // a cosface carrying no margin is not a case of cosface
    /// let err = Case::new(NormalizedCase { margin: Margin::None, ..cosface }).unwrap_err();
    /// assert!(err.to_string().starts_with("margin: None is not the rule of `cosface`"));
    /// # Ok::<(), lossref::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Case::validate`].
    pub fn new(case: impl Into<Case>) -> crate::error::Result<Case> {
        let case = case.into();
        case.validate()?;
        Ok(case)
    }

    /// The case's `reduction`, for the losses that have one (all but `softmax`).
    pub fn reduction_mut(&mut self) -> Option<&mut Reduction> {
        crate::family::reduction_mut(self)
    }

    /// The loss this case evaluates.
    pub fn loss(&self) -> LossId {
        crate::family::loss(self)
    }

    /// Checks the case however it was built (parsed, or by hand through the public fields
    /// of its type): shapes, finite inputs, labels in range, parameters in their ranges and
    /// consistent with the loss, and zero-norm rows where the loss normalizes. The
    /// reference and the fast paths run it before evaluating, so a case built by hand is
    /// refused with a message instead of a panic or an inconsistent answer.
    ///
    /// ```
    /// use lossref::matrix::Matrix;
    /// use lossref::spec::{Case, CenterCase, Reduction};
    ///
    /// let case = Case::Center(CenterCase {
    ///     alpha: 0.5,
    ///     reduction: Reduction::Mean,
    ///     features: Matrix::from_vec(1, 2, vec![1.0, 2.0]).unwrap(),
    ///     centers: Matrix::from_vec(2, 2, vec![0.0; 4]).unwrap(),
    ///     labels: vec![2],
    /// });
    /// let err = case.validate().unwrap_err();
    /// assert_eq!(err.to_string(), "labels[0]: label 2 is out of range 0..2 (C = 2)");
    /// assert!(lossref::reference::certified(&case).is_err());
    /// ```
    ///
    /// # Errors
    /// The first violation, naming its place (`features[2]`, `labels[0]`,
    /// `params.scale`, `margin`).
    pub fn validate(&self) -> crate::error::Result<()> {
        crate::family::validate(self)
    }
}
