//! The one precision table: how many ulps each fast function may be from the exact value,
//! per dtype, and why.
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
//!   at r·s times the dtype's smallest normal number (`tests/fast_paths/precision_table_margin.rs`
//!   states it exactly). A sum that cancels, as for two opposite features of one class,
//!   has an exact value far below what it sums, and no GEMM resolves it better;
//! * `normface.grad_scale`: ulps of 2 (`mean`) or 2N (`sum`), the bound of Σ_ij
//!   |∂L/∂z_ij · cos θ_ij|.
//!
//! Errors of O(s) such ulps are expected: ∂L/∂z is a softmax of logits that carry absolute
//! errors of a few ulps of s.
//!
//! The other losses (`tests/fast_paths/precision_table_seed_losses.rs` states each measure exactly):
//! * `distill.*`: ulps of the magnitudes summed — the loss of r·Σ(αT²·Σ_j q_t(|log q_t| +
//!   |log q_s|) + (1 − α)·CE), each gradient entry of r·(αT(q_s + q_t) + (1 − α)(p + [j = y]));
//! * `center.*`: the loss and ∂L/∂x in plain ulps; ∂L/∂c in ulps of r·Σ|x − c|;
//!   `centers_next` in ulps of |c| + α·Σ|x − c|/(1 + n);
//! * `lsoftmax.*`, `sphereface.*`: as the margin family, with row i's logits carrying
//!   absolute errors of a few ulps of Φ_i = max(max_j |f_ij|, ν‖x_i‖·(λ + m²)/(1 + λ)) (the
//!   target logit moves with cos θ at a slope bounded by m², Markov's inequality): the loss
//!   in ulps of max(|L|, r·Σ_i Φ_i), each gradient entry in ulps of what its row sums times
//!   max(1, Φ_i).
//!
//! The table is enforced both ways by `tests/fast_paths/precision_table.rs`: a measured maximum above
//! an entry fails, and so does an entry more than [`STALE_FACTOR`] times the measured
//! maximum (a stale entry hides regressions). The measurement uses fixed seeds, so it is
//! reproducible.

use rug::Float;

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// The fast function (`softmax`, `log_softmax`, `softmax_ce.loss`, `softmax_ce.grad`).
    pub function: &'static str,
    /// `f32` or `f64`.
    pub dtype: &'static str,
    /// The largest error allowed, in ulps of the dtype.
    pub max_ulps: f64,
    /// Where the error comes from.
    pub reason: &'static str,
}

/// An entry more than this many times the measured maximum error is stale.
pub const STALE_FACTOR: f64 = 4.0;

/// The table. The softmax rows are measured over the generated regimes of
/// `tests/fast_paths/precision_table.rs`, the normalized-margin rows (`normface.*` … `combined.*`) over
/// every variant and target-angle regime of `tests/fast_paths/precision_table_margin.rs` (cos θ near
/// ±1 for the affine rules only; see the module docs), with one row per tile and one tile
/// alternately; those entries cover a 20× extensive run. For the softmax rows:
/// logits in ±10 and in ±1e3, near-ties (a few ulps or 1e−12 apart) and a dominant target
/// whose loss reaches 1e−290 (f64) or f32's subnormals, with temperatures 1/16 … 16, C ≤ 12.
/// Each entry covers the maximum of an extensive run (`LOSSREF_EXTENSIVE=60`, 28 800 batches
/// per dtype) with some margin, and stays within [`STALE_FACTOR`] of the default run.
pub const TABLE: &[Entry] = &[
    Entry {
        function: "softmax",
        dtype: "f64",
        max_ulps: 3.5,
        reason: "exp (< 1 ulp in glibc) of the leading part of an exactly split exponent, the \
                 first-order correction e^x·c, the row sum 1 + S′ (a few roundings for C ≤ 12) and \
                 one division",
    },
    Entry {
        function: "softmax",
        dtype: "f32",
        max_ulps: 4.0,
        reason: "as for f64, with expf",
    },
    Entry {
        function: "log_softmax",
        dtype: "f64",
        max_ulps: 3.5,
        reason: "(x_j − ln1p(S′)) + c_j: two roundings and the error of ln1p(S′), which is \
                 small against |x_j| except at j*, where −ln1p(S′) is the whole value",
    },
    Entry {
        function: "log_softmax",
        dtype: "f32",
        max_ulps: 4.0,
        reason: "as for f64, with log1pf",
    },
    Entry {
        function: "softmax_ce.loss",
        dtype: "f64",
        max_ulps: 2.5,
        reason: "per row ln1p(S′) + (m − z_y) with m − z_y exact as a pair; compensated batch \
                 sum; one division by N",
    },
    Entry {
        function: "softmax_ce.loss",
        dtype: "f32",
        max_ulps: 6.0,
        reason:
            "as for f64, plus f32 subnormals: a dominant target puts the loss below 1.2e−38, where \
                 each term e^{x_j} is rounded to an absolute 2^−150, and C − 1 terms per row and N \
                 rows add up in units of the smallest subnormal",
    },
    Entry {
        function: "softmax_ce.grad",
        dtype: "f64",
        max_ulps: 3.5,
        reason: "the softmax error, then p − 1 (benign: p ≤ ½ off the argmax, −S′/(1+S′) at \
                 it) and one division by N",
    },
    Entry {
        function: "softmax_ce.grad",
        dtype: "f32",
        max_ulps: 4.0,
        reason: "as for f64",
    },
    Entry {
        function: "normface.loss",
        dtype: "f64",
        max_ulps: 3.5,
        reason: "per row ln Σ e^{z−m} + (m − z_y) (ln1p when the target is the max) on logits s·cos θ whose cosines carry a few ulps from the GEMM and the normalization",
    },
    Entry {
        function: "normface.loss",
        dtype: "f32",
        max_ulps: 4.0,
        reason: "as for f64; the target rule and the row's ln are evaluated in f64",
    },
    Entry {
        function: "normface.grad",
        dtype: "f64",
        max_ulps: 64.0,
        reason: "G = r·s·(p − onehot) carries the logits' absolute error of a few ulps of s (so O(s) ulps here, s = 16), then two GEMMs and the projection ĝ − (ĝ·v̂)v̂",
    },
    Entry {
        function: "normface.grad",
        dtype: "f32",
        max_ulps: 64.0,
        reason: "as for f64, with f32 GEMMs",
    },
    Entry {
        function: "normface.grad_scale",
        dtype: "f64",
        max_ulps: 2.0,
        reason: "Σ_i ĝ_i·x̂_i / s, accumulated in f64 and compensated across rows",
    },
    Entry {
        function: "normface.grad_scale",
        dtype: "f32",
        max_ulps: 2.0,
        reason: "as for f64, from f32 GEMM outputs",
    },
    Entry {
        function: "cosface.loss",
        dtype: "f64",
        max_ulps: 5.0,
        reason: "as normface.loss, with s = 30 … 64",
    },
    Entry {
        function: "cosface.loss",
        dtype: "f32",
        max_ulps: 5.0,
        reason: "as for f64",
    },
    Entry {
        function: "cosface.grad",
        dtype: "f64",
        max_ulps: 200.0,
        reason: "as normface.grad with s = 64: O(s) ulps from the logits' absolute error",
    },
    Entry {
        function: "cosface.grad",
        dtype: "f32",
        max_ulps: 240.0,
        reason: "as for f64",
    },
    Entry {
        function: "arcface.loss",
        dtype: "f64",
        max_ulps: 4.0,
        reason: "as normface.loss; cos(θ + m) is computed in f64 from the GEMM's cos θ (the κ of the measure accounts for acos's conditioning)",
    },
    Entry {
        function: "arcface.loss",
        dtype: "f32",
        max_ulps: 4.0,
        reason: "as for f64",
    },
    Entry {
        function: "arcface.grad",
        dtype: "f64",
        max_ulps: 200.0,
        reason: "as cosface.grad, plus the slope sin(θ + m)/sin θ in f64 from the GEMM's cos θ (κ² in the measure)",
    },
    Entry {
        function: "arcface.grad",
        dtype: "f32",
        max_ulps: 180.0,
        reason: "as for f64",
    },
    Entry {
        function: "combined.loss",
        dtype: "f64",
        max_ulps: 4.0,
        reason: "as arcface.loss, with cos(m1·θ + m2) − m3",
    },
    Entry {
        function: "combined.loss",
        dtype: "f32",
        max_ulps: 4.0,
        reason: "as for f64",
    },
    Entry {
        function: "combined.grad",
        dtype: "f64",
        max_ulps: 200.0,
        reason: "as arcface.grad, with the slope m1·sin(m1·θ + m2)/sin θ",
    },
    Entry {
        function: "combined.grad",
        dtype: "f32",
        max_ulps: 160.0,
        reason: "as for f64",
    },
    Entry {
        function: "distill.loss",
        dtype: "f64",
        max_ulps: 3.0,
        reason: "per row the compensated KL (or soft CE) sum of q_t·(log q_t − log q_s) from the split-exponent softmax, plus the fast softmax_ce; measured against the magnitudes summed",
    },
    Entry {
        function: "distill.loss",
        dtype: "f32",
        max_ulps: 5.0,
        reason: "as for f64, in f32",
    },
    Entry {
        function: "distill.grad",
        dtype: "f64",
        max_ulps: 4.0,
        reason: "α·T·(q_s − q_t) + (1 − α)·(p − onehot), each from the fast softmax (≤ 3.5 ulps), in ulps of the terms' magnitudes",
    },
    Entry {
        function: "distill.grad",
        dtype: "f32",
        max_ulps: 8.0,
        reason: "as for f64, in f32, with T up to 20 amplifying the q error",
    },
    Entry {
        function: "center.loss",
        dtype: "f64",
        max_ulps: 3.0,
        reason: "compensated sums of ½(x − c)², where x − c is exact or one rounding",
    },
    Entry {
        function: "center.loss",
        dtype: "f32",
        max_ulps: 3.0,
        reason: "as for f64",
    },
    Entry {
        function: "center.grad",
        dtype: "f64",
        max_ulps: 3.0,
        reason: "r·(x − c) (a rounding each), and −r·Σ(x − c) compensated, in ulps of r·Σ|x − c|",
    },
    Entry {
        function: "center.grad",
        dtype: "f32",
        max_ulps: 3.0,
        reason: "as for f64",
    },
    Entry {
        function: "center.centers_next",
        dtype: "f64",
        max_ulps: 2.0,
        reason: "c + α·Σ(x − c)/(1 + n): three roundings after a compensated sum",
    },
    Entry {
        function: "center.centers_next",
        dtype: "f32",
        max_ulps: 2.0,
        reason: "as for f64",
    },
    Entry {
        function: "lsoftmax.loss",
        dtype: "f64",
        max_ulps: 3.5,
        reason: "the GEMM logits w·x, the target's ‖w‖‖x‖h(cos θ) in f64 (Chebyshev recurrence), and a row log-sum-exp, in ulps of the logits' error scale Φ",
    },
    Entry {
        function: "lsoftmax.loss",
        dtype: "f32",
        max_ulps: 3.0,
        reason: "as for f64; the target logit is computed in f64 and rounded once",
    },
    Entry {
        function: "lsoftmax.grad",
        dtype: "f64",
        max_ulps: 3.5,
        reason: "two GEMMs with the target column zeroed, plus the target's terms in f64",
    },
    Entry {
        function: "lsoftmax.grad",
        dtype: "f32",
        max_ulps: 3.3,
        reason: "as for f64",
    },
    Entry {
        function: "sphereface.loss",
        dtype: "f64",
        max_ulps: 3.0,
        reason: "as lsoftmax.loss, with the logits divided by ‖w_j‖",
    },
    Entry {
        function: "sphereface.loss",
        dtype: "f32",
        max_ulps: 2.0,
        reason: "as for f64",
    },
    Entry {
        function: "sphereface.grad",
        dtype: "f64",
        max_ulps: 3.5,
        reason: "as lsoftmax.grad, plus the projection of ∂L/∂W off w_j",
    },
    Entry {
        function: "sphereface.grad",
        dtype: "f32",
        max_ulps: 3.3,
        reason: "as for f64",
    },
];

/// The entry for `function` at `dtype`.
pub fn lookup(function: &str, dtype: &str) -> Option<&'static Entry> {
    TABLE
        .iter()
        .find(|e| e.function == function && e.dtype == dtype)
}

/// The error of `got` against the exact `v` in ulps of a format with `mantissa_bits`
/// significand bits and smallest subnormal 2^`min_exp` (see the module docs).
/// Infinite when `got` is not finite but `v` is.
pub fn ulps(got: f64, exact: &Float, mantissa_bits: u32, min_exp: i32) -> f64 {
    scaled_ulps(got, exact, exact, mantissa_bits, min_exp)
}

/// The error of `got` against the exact `v` in ulps of `scale` (not of v): the measure of
/// the GEMM-based functions, whose error is proportional to the magnitude of what they
/// sum, not to the result (see the module docs).
pub fn scaled_ulps(
    got: f64,
    exact: &Float,
    scale: &Float,
    mantissa_bits: u32,
    min_exp: i32,
) -> f64 {
    let prec = exact.prec().max(64) + 64;
    if !got.is_finite() {
        // ±∞ is right only where the exact value rounds to it (overflow) in this format.
        let rounded = if mantissa_bits == 24 {
            f64::from(exact.to_f32())
        } else {
            exact.to_f64()
        };
        return if rounded == got { 0.0 } else { f64::INFINITY };
    }
    let err = Float::with_val(prec, got - exact).abs();
    let ulp_exp = match scale.get_exp() {
        // v = 0.1xxx₂ × 2^e, so ⌊log₂|v|⌋ = e − 1.
        Some(e) => (e - 1 - (mantissa_bits as i32 - 1)).max(min_exp),
        None => min_exp,
    };
    let scaled = err >> ulp_exp;
    scaled.to_f64()
}

/// Judges a measured maximum against its entry: `Err` with a message when the entry is
/// exceeded or stale.
pub fn judge(entry: &Entry, measured: f64) -> Result<(), String> {
    if measured > entry.max_ulps {
        Err(format!(
            "{} {}: measured {measured:.3} ulps exceeds the table's {} ulps",
            entry.function, entry.dtype, entry.max_ulps
        ))
    } else if entry.max_ulps > STALE_FACTOR * measured {
        Err(format!(
            "{} {}: the table allows {} ulps but at most {measured:.3} were measured; the entry is \
             more than {STALE_FACTOR}× too loose: tighten it",
            entry.function, entry.dtype, entry.max_ulps
        ))
    } else {
        Ok(())
    }
}
