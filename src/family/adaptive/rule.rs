//! The adaptive-margin rules in binary64 (SPEC §5): the batch state and each row's logits
//! with their slopes, the one binary64 form that the fast paths (which evaluate every rule
//! in f64 for both dtypes) and the error scales of [`crate::precision`] and
//! [`crate::tolerance`] share. The interval form is the reference's ([`super::reference`]).
//!
//! Each row i gives, from its cosines c_ij = cos θ_ij, its logits z_ij and their slopes
//! ∂z_ij/∂c_ij, and, where the logits or the loss read ‖x_i‖ (MagFace), ∂z_iy/∂‖x_i‖ and
//! the row's own term's ∂/∂‖x_i‖. SPEC §5's rules only: the conventions the diagnosis tries
//! are the reference's alone.

use super::{AdaptiveCase, AdaptiveRule};
use crate::family::normalized::target;
use crate::spec::{Boundary, Margin, MarginGrad};
use std::f64::consts::{FRAC_PI_4, PI};

/// The state a batch computes before its logits (SPEC §5), in binary64.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct State {
    /// CurricularFace's t' = momentum·mean_i cos θ_iy + (1 − momentum)·t.
    pub t_next: f64,
    /// AdaFace's μ, σ and ẑ_i.
    pub mean: f64,
    pub std: f64,
    pub zhat: Vec<f64>,
    /// AdaCos's s'.
    pub scale_next: f64,
    /// MagFace's a_i = clamp(‖x_i‖, l_a, u_a), whether the clamp is inactive, and m(a_i).
    pub a: Vec<f64>,
    pub a_free: Vec<bool>,
    pub margins: Vec<f64>,
}

/// The lower median's index ⌊(N − 1)/2⌋ of N sorted values.
pub(crate) fn lower_median_index(n: usize) -> usize {
    (n.max(1) - 1) / 2
}

/// The batch state from the row norms ‖x_i‖, the target cosines, and (AdaCos) the sum
/// Σ_i Σ_{j≠y_i} e^{s_old·c_ij}.
pub(crate) fn state(
    c: &AdaptiveCase,
    norms: &[f64],
    target_cos: &[f64],
    off_target_exp_sum: f64,
) -> State {
    let n = norms.len();
    let mut s = State::default();
    match c.rule {
        AdaptiveRule::CurricularFace { momentum, t, .. } => {
            let mean = target_cos.iter().sum::<f64>() / n as f64;
            s.t_next = momentum * mean + (1.0 - momentum) * t;
        }
        AdaptiveRule::AdaFace {
            h,
            t_alpha,
            eps,
            batch_mean,
            batch_std,
            ..
        } => {
            let clamped: Vec<f64> = norms.iter().map(|v| v.clamp(0.001, 100.0)).collect();
            let mean = clamped.iter().sum::<f64>() / n as f64;
            let var = clamped.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
                / (n.max(2) - 1) as f64;
            s.mean = t_alpha * mean + (1.0 - t_alpha) * batch_mean;
            s.std = t_alpha * var.sqrt() + (1.0 - t_alpha) * batch_std;
            s.zhat = clamped
                .iter()
                .map(|v| (h * (v - s.mean) / (s.std + eps)).clamp(-1.0, 1.0))
                .collect();
        }
        AdaptiveRule::MagFace {
            l_a, u_a, l_m, u_m, ..
        } => {
            let k = (u_m - l_m) / (u_a - l_a);
            s.a = norms.iter().map(|v| v.clamp(l_a, u_a)).collect();
            s.a_free = norms.iter().map(|&v| v > l_a && v < u_a).collect();
            s.margins = s.a.iter().map(|a| k * (a - l_a) + l_m).collect();
        }
        AdaptiveRule::AdaCos => {
            let b = off_target_exp_sum / n as f64;
            let mut theta: Vec<f64> = target_cos
                .iter()
                .map(|v| v.clamp(-1.0, 1.0).acos())
                .collect();
            theta.sort_by(f64::total_cmp);
            let med = theta[lower_median_index(n)];
            s.scale_next = b.ln() / med.min(FRAC_PI_4).cos();
        }
    }
    s
}

/// One row's logits, their slopes ∂z_j/∂c_j, and its dependence on ‖x_i‖.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RowRule {
    pub logits: Vec<f64>,
    pub slopes: Vec<f64>,
    /// ∂z_y/∂‖x_i‖ (MagFace's margin m(a_i)).
    pub target_norm_slope: f64,
    /// The row's own term (MagFace's λ_g·g(a_i)) and its ∂/∂‖x_i‖.
    pub own: f64,
    pub own_norm_slope: f64,
}

/// Row i's rule at cosines `cos` (binary64), θ and sin θ to the target `theta` (Kahan's,
/// accurate near the poles); `Err` says why the full gradient does not exist there.
pub(crate) fn row(
    c: &AdaptiveCase,
    st: &State,
    i: usize,
    cos: &[f64],
    theta: (f64, f64),
) -> Result<RowRule, &'static str> {
    let y = c.labels[i];
    let s = c.scale;
    let classes = cos.len();
    let mut r = RowRule {
        logits: vec![0.0; classes],
        slopes: vec![0.0; classes],
        target_norm_slope: 0.0,
        own: 0.0,
        own_norm_slope: 0.0,
    };
    match c.rule {
        AdaptiveRule::CurricularFace { m, .. } => {
            let margin = Margin::Angular {
                m,
                boundary: Boundary::Thmm,
                grad: MarginGrad::Full,
            };
            let t = target(&margin, cos[y], theta);
            if t.undefined.is_some() {
                return Err("CurricularFace's target cos(θ + m) has an unbounded derivative (dθ/dcos θ is infinite)");
            }
            // the mask compares with cos(θ + m) itself (SPEC §5)
            let threshold = (theta.0 + m).cos();
            for (j, &cj) in cos.iter().enumerate() {
                if j == y {
                    r.logits[j] = s * t.value;
                    r.slopes[j] = s * t.slope;
                } else if cj > threshold {
                    r.logits[j] = s * cj * (st.t_next + cj);
                    r.slopes[j] = s * (st.t_next + 2.0 * cj);
                } else {
                    r.logits[j] = s * cj;
                    r.slopes[j] = s;
                }
            }
        }
        AdaptiveRule::AdaFace { m, eps, .. } => {
            let (lo, hi) = (-1.0 + eps, 1.0 - eps);
            for (j, &cj) in cos.iter().enumerate() {
                let free = cj > lo && cj < hi;
                let cc = cj.clamp(lo, hi);
                if j != y {
                    r.logits[j] = s * cc;
                    r.slopes[j] = if free { s } else { 0.0 };
                    continue;
                }
                let z = st.zhat[i];
                // θ of the clamped cosine: Kahan's where the clamp is inactive
                let (th, sin) = if free {
                    theta
                } else {
                    (cc.acos(), ((1.0 - cc) * (1.0 + cc)).sqrt())
                };
                let phi = th - m * z;
                let inner_free = phi > eps && phi < PI - eps;
                let phi_c = phi.clamp(eps, PI - eps);
                r.logits[j] = s * (phi_c.cos() - (m + m * z));
                r.slopes[j] = if free && inner_free {
                    if sin == 0.0 {
                        return Err("AdaFace's cos(θ − m·ẑ) has an unbounded derivative");
                    }
                    s * phi.sin() / sin
                } else {
                    0.0
                };
            }
        }
        AdaptiveRule::MagFace {
            l_a,
            u_a,
            l_m,
            u_m,
            lambda_g,
            boundary,
        } => {
            let mi = st.margins[i];
            let margin = Margin::Angular {
                m: mi,
                boundary,
                grad: MarginGrad::Full,
            };
            let t = target(&margin, cos[y], theta);
            if t.undefined.is_some() {
                return Err(if cos[y] == 0.0 {
                    "cos θ = 0 is MagFace's `easy` switch, where the target logit jumps"
                } else {
                    "MagFace's target cos(θ + m(a)) has an unbounded derivative (dθ/dcos θ is infinite)"
                });
            }
            let on_margin = match boundary {
                Boundary::None => true,
                Boundary::Thmm => cos[y] > (PI - mi).cos(),
                Boundary::Easy => cos[y] > 0.0,
            };
            // ∂g/∂m on the branch taken
            let dg_dm = if on_margin {
                -(theta.0 + mi).sin()
            } else if boundary == Boundary::Thmm {
                -(mi.sin() + mi * mi.cos())
            } else {
                0.0
            };
            for (j, &cj) in cos.iter().enumerate() {
                r.logits[j] = s * cj;
                r.slopes[j] = s;
            }
            r.logits[y] = s * t.value;
            r.slopes[y] = s * t.slope;
            let a = st.a[i];
            let free = if st.a_free[i] { 1.0 } else { 0.0 };
            r.target_norm_slope = s * dg_dm * (u_m - l_m) / (u_a - l_a) * free;
            r.own = lambda_g * (a / (u_a * u_a) + 1.0 / a);
            r.own_norm_slope = lambda_g * (1.0 / (u_a * u_a) - 1.0 / (a * a)) * free;
        }
        AdaptiveRule::AdaCos => {
            for (j, &cj) in cos.iter().enumerate() {
                r.logits[j] = st.scale_next * cj;
                r.slopes[j] = st.scale_next;
            }
        }
    }
    Ok(r)
}
