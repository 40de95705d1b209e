//! SPEC §6's stages, one function each: how a rounding at one stage of a pipeline moves a
//! value, as bounds derived from unit roundoffs (each unit tested against a hand-derived
//! bound in `tests/tiers/`).
//!
//! A pipeline is a chain of stages: the operands of a matrix product rounded to the
//! product's precision ([`operand_rounding`]), a tensor held in a 16-bit format between
//! kernels ([`held_rounding`]), the float32 arithmetic of the softmax, log-sum-exp and loss
//! ([`arithmetic`]), and each output rounded once to the format it is returned in
//! ([`output_rounding`]). The roundings before the softmax are logit errors Δz, which
//! [`softmax_propagation`] carries to every value through the error scales of SPEC §4.

use crate::spec::Dtype;
use crate::tolerance::summation_factor;

/// The error of a dot product Σ_k a_k·b_k whose operands are each rounded once with unit
/// roundoff `u`, in units of `magnitude` = Σ_k |a_k·b_k|, in the format's normal range:
/// |Σ a_k(1 + α_k)·b_k(1 + β_k) − Σ a_k b_k| ≤ (2u + u²)·Σ|a_k b_k|, with |α_k|, |β_k| ≤ u.
/// [`subnormal_operands`] adds the absolute part of the roundings. (Accumulation, in
/// float32 for every tier, is the [`arithmetic`] stage's.)
pub fn operand_rounding(u: f64, magnitude: f64) -> f64 {
    (2.0 * u + u * u) * magnitude
}

/// The rest of a rounded dot product's error: a rounding to nearest errs by at most
/// u·|a| + η (η half the format's smallest subnormal), so a_k′b_k′ − a_k b_k is within
/// (2u + u²)|a_k b_k| + η(1 + u)(|a_k| + |b_k|) + η², and the sum of the last two parts over
/// `terms` products is at most η(1 + u)·`l1` + terms·η², `l1` = ‖a‖₁ + ‖b‖₁.
pub fn subnormal_operands(u: f64, eta: f64, l1: f64, terms: usize) -> f64 {
    eta * (1.0 + u) * l1 + terms as f64 * eta * eta
}

/// The error of a value of size `magnitude` held in a format of unit roundoff `u` whose
/// smallest subnormal is 2η: |fl(v) − v| ≤ u·|v| + η (relative in the normal range,
/// absolute below it).
pub fn held_rounding(u: f64, eta: f64, magnitude: f64) -> f64 {
    u * magnitude + eta
}

/// ρ(δ) = e^{2δ} − 1: the largest relative change of a softmax-shaped value under logit
/// errors |Δz_j| ≤ δ, in units of its error scale S(v) (SPEC §4).
///
/// Derivation (SPEC §6): along z + tΔz, t ∈ [0, 1], p_j(z + tΔz)/p_j(z) =
/// e^{tΔz_j}/Σ_k p_k e^{tΔz_k} lies in [e^{−2δt}, e^{2δt}], so every probability, every
/// 1 − p_y = Σ_{k≠y} p_k and every entry of ∂L/∂z = p − onehot moves by at most
/// e^{2δ} − 1 of itself (to first order SPEC's p_j(|Δz_j| + Σ_k p_k|Δz_k|) ≤ 2δ·p_j). A
/// log-probability's slope is Δz_j − Σ_k p_k(t)Δz_k, at most 2δ(1 − p_j(t)) ≤
/// 2δ(1 − p_j)e^{2δt} in size, which integrates to (e^{2δ} − 1)(1 − p_j), and
/// 1 − p_j ≤ |log p_j|: a log-probability, and a loss −Σ a_c log p_c with a_c ≥ 0, moves
/// by at most ρ(δ) of itself (SPEC's "the loss moves by at most 2‖Δz‖∞", sharpened by
/// the factor 1 − p_y ≤ L). A value that sums such terms times exact weights (a gradient
/// Σ_j G_ij·∂z_ij/∂x) moves by at most ρ(δ) of what it sums, which its error scale S(v)
/// bounds.
pub fn softmax_propagation(delta: f64) -> f64 {
    (2.0 * delta).exp_m1()
}

/// The float32 (or float64) arithmetic of a value: `allowed_ulps`·g(n) ulps of its error
/// scale `scale` in `format` (SPEC §4's model, [`crate::tolerance`]).
pub fn arithmetic(allowed_ulps: f64, terms: usize, scale: f64, format: Dtype) -> f64 {
    allowed_ulps * summation_factor(terms) * format.ulp(scale)
}

/// One rounding of an output to `format` after errors of `before`: half an ulp of
/// |v| + before there, floored at half the format's smallest subnormal (a value below it
/// rounds to 0), or at its smallest normal number where subnormals are flushed (`ftz`).
pub fn output_rounding(format: Dtype, magnitude: f64, before: f64, ftz: bool) -> f64 {
    let half_ulp = 0.5 * format.ulp(magnitude.abs() + before);
    if ftz {
        half_ulp.max(format.min_normal())
    } else {
        half_ulp
    }
}
