//! The loss catalogue of SPEC §1 as types: loss ids, typed parameters with their defaults
//! and validated inputs. One [`Case`] per loss drives the reference, the fast paths and
//! `lossref eval` alike.

use crate::matrix::Matrix;
use std::fmt;

/// Every loss id that SPEC §1 lists, in catalogue order. Ids not in [`LossId`] are part of
/// the contract but not implemented in this version; `lossref eval` says so by name.
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

/// The losses this version evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossId {
    /// `softmax`: probabilities and log-probabilities of `logits / T`.
    Softmax,
    /// `softmax_ce`: CE(z, y) = logsumexp(z) − z_y, reduced over the batch.
    SoftmaxCe,
}

impl LossId {
    /// All implemented losses.
    pub const ALL: &'static [LossId] = &[LossId::Softmax, LossId::SoftmaxCe];

    /// The SPEC §1 id.
    pub fn as_str(self) -> &'static str {
        match self {
            LossId::Softmax => "softmax",
            LossId::SoftmaxCe => "softmax_ce",
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

    /// Parses `mean` or `sum`.
    pub fn from_name(name: &str) -> Option<Reduction> {
        match name {
            "mean" => Some(Reduction::Mean),
            "sum" => Some(Reduction::Sum),
            _ => None,
        }
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

/// One validated case (SPEC §3), typed by loss.
#[derive(Clone, Debug, PartialEq)]
pub enum Case {
    /// See [`SoftmaxCase`].
    Softmax(SoftmaxCase),
    /// See [`SoftmaxCeCase`].
    SoftmaxCe(SoftmaxCeCase),
}

impl Case {
    /// The loss this case evaluates.
    pub fn loss(&self) -> LossId {
        match self {
            Case::Softmax(_) => LossId::Softmax,
            Case::SoftmaxCe(_) => LossId::SoftmaxCe,
        }
    }
}
