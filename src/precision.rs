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
use crate::spec::{Case, Dtype};
use rug::Float;

pub use crate::family::Quantity;

/// A loss and its gradients (every gradient tensor of the loss is one row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LossOutput {
    /// The loss.
    Loss,
    /// Every gradient.
    Grad,
}

impl LossOutput {
    /// `loss` or `grad`, as the table names the row.
    pub const fn as_str(self) -> &'static str {
        match self {
            LossOutput::Loss => "loss",
            LossOutput::Grad => "grad",
        }
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
///
/// A 16-bit dtype's fast path is SPEC §6's `amp`: float32 arithmetic on the exact 16-bit
/// inputs, the outputs returned in float32 and the gradients rounded once to the dtype.
/// Its outputs are float32's rows (the same computation, in float32 ulps); its gradients'
/// rows are derived, [`amp_gradient_entry`].
pub fn entry(quantity: Quantity, dtype: Dtype) -> Entry {
    let float32 = crate::family::entry(quantity, dtype.column());
    if dtype.is_half() && quantity.is_gradient() {
        amp_gradient_entry(quantity, float32, dtype)
    } else {
        float32
    }
}

/// The entry of a gradient of the `amp` fast path in the 16-bit `dtype`, in ulps of that
/// dtype at the quantity's measure S ≥ |v|: one rounding to nearest, at most ½ ulp of |v|
/// and so of S, after the float32 path's `float32.max_ulps` ulps of S, which are
/// 2^(p − 24) of the dtype's (p = 8 or 11). Where the measure is far above the values
/// (L-/A-Softmax's gradients carry max(1, Φ_i), the logits' size; NormFace's ∂L/∂s is
/// measured in units of 2 or 2N) the rounding is a fraction of ½, measured over every
/// 16-bit case of the corpus of at most 16 classes (at most 0.062 and 0.057 ulps) and
/// stated with margin.
pub fn amp_gradient_entry(quantity: Quantity, float32: Entry, dtype: Dtype) -> Entry {
    let ratio = (f64::from(dtype.significand_bits()) - 24.0).exp2();
    let (rounding, reason) = match (quantity.family(), quantity.output()) {
        ("lsoftmax" | "sphereface", _) => (
            0.125,
            "amp: the float32 gradient rounded once to the 16-bit dtype, its ½ ulp of |v| a fraction of the measure's (which carries the logits' size Φ)",
        ),
        (_, "grad_scale") => (
            0.125,
            "amp: the float32 ∂L/∂s rounded once to the 16-bit dtype, its ½ ulp of |v| a fraction of the measure's (2 or 2N)",
        ),
        _ => (
            0.5,
            "amp: the float32 gradient rounded once to the 16-bit dtype (SPEC §6)",
        ),
    };
    Entry {
        max_ulps: rounding + float32.max_ulps * ratio,
        reason,
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
            // overflow to ±∞ is all that is asked here, which rounding through binary64 decides
            Dtype::BFloat16 | Dtype::Float16 => dtype.round(exact.to_f64()),
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
    crate::family::quantities(case)
}

/// The measures of every value group of `case` in `dtype` (the module docs state each), one
/// per group of [`quantities`], given the exact values rounded to binary64 (`exact`).
pub fn measures(case: &Case, exact: &Answer<f64>, dtype: Dtype) -> Vec<Measure> {
    let groups = quantities(case);
    // one column of scales per group, in the order of `groups`
    let columns = crate::family::measures(case, exact, dtype);
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
pub(crate) fn per_entry(rows: &[f64], d: usize) -> Vec<f64> {
    rows.iter()
        .flat_map(|&s| std::iter::repeat_n(s, d))
        .collect()
}

pub(crate) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// ‖v‖ in binary64 with v scaled by its largest |entry| first, so that a tiny or huge
/// row's norm neither underflows to 0 nor overflows.
pub(crate) fn scaled_norm(v: &[f64]) -> f64 {
    let top = v.iter().fold(0.0f64, |a, e| a.max(e.abs()));
    if top == 0.0 {
        0.0
    } else {
        top * v.iter().map(|e| (e / top) * (e / top)).sum::<f64>().sqrt()
    }
}

/// The smallest [`scaled_norm`] of the rows of `m`.
pub(crate) fn smallest_row_norm(m: &crate::matrix::Matrix<f64>) -> f64 {
    m.iter_rows().map(scaled_norm).fold(f64::INFINITY, f64::min)
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

/// One logit row's softmax in binary64, for the measures and tolerances of the
/// cross-entropy-like losses (`softmax_ce` with options, `focal`, `poly1`).
pub(crate) struct RowSoftmax {
    /// p_j and log p_j.
    pub(crate) p: Vec<f64>,
    pub(crate) log_p: Vec<f64>,
    /// |z_j − max|.
    pub(crate) args: Vec<f64>,
    /// The index of the largest logit (the first on ties).
    pub(crate) top: usize,
    /// S = Σ_{k≠top} p_k·(1 + |z_k − max|): the error, in units, that the exp arguments of a
    /// straightforward implementation put into the row's log Σ.
    pub(crate) spread: f64,
}

impl RowSoftmax {
    pub(crate) fn new(z: &[f64]) -> RowSoftmax {
        let p = softmax_row(z, 1.0);
        let top = (0..z.len()).fold(0, |m, j| if z[j] > z[m] { j } else { m });
        let max = z.iter().copied().fold(f64::MIN, f64::max);
        let args: Vec<f64> = z.iter().map(|v| (v - max).abs()).collect();
        let spread = (0..z.len())
            .filter(|&k| k != top)
            .map(|k| p[k] * (1.0 + args[k]))
            .sum();
        RowSoftmax {
            log_p: log_softmax_row(z, 1.0),
            p,
            args,
            top,
            spread,
        }
    }
}

/// log-softmax of `z/t`, computed without underflow: (z_j − max)/t − ln Σ e^{(z_k − max)/t}.
pub(crate) fn log_softmax_row(z: &[f64], t: f64) -> Vec<f64> {
    // ln Σ = ln1p(Σ_{j≠top} e^{(z_j − top)/T}): a log-probability near 0 keeps its digits
    let top_at = (0..z.len()).fold(0, |a, j| if z[j] > z[a] { j } else { a });
    let top = z.get(top_at).copied().unwrap_or(0.0);
    let rest: f64 = (0..z.len())
        .filter(|&j| j != top_at)
        .map(|j| ((z[j] - top) / t).exp())
        .sum();
    let log_sum = rest.ln_1p();
    z.iter().map(|v| (v - top) / t - log_sum).collect()
}
