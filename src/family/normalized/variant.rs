//! The normalized-margin family's reference under what real code does instead of SPEC §1
//! (SPEC §4, "Conventions the diagnosis knows"): rows normalized with an ε clamp, the
//! target's cosine clamped before acos, and a cross-entropy computed otherwise
//! ([`RowLoss`]). Only the diagnosis evaluates these, by the plain formulas at the
//! precision it asks for, each with the gradient that autograd takes through its max or
//! clamp (0 on the side where the max or clamp holds).
//!
//! With n_x = max(‖x‖, ε) (n_x = ‖x‖ without a row ε) and the same for w, or
//! P = max(‖x‖‖w‖, ε) for a product ε, cos θ is c = x·w·u with u = 1/(n_x n_w) or 1/P, and
//!
//! ∂c/∂x_k = u·w_k − [n_x = ‖x‖]·c·x_k/‖x‖²,   ∂c/∂w_k = u·x_k − [n_w = ‖w‖]·c·w_k/‖w‖²
//!
//! (for a product ε, both brackets are [P = ‖x‖‖w‖]). The target's cosine, clamped to
//! [lo, hi] before acos, has slope 0 where the clamp holds (the full margin gradient).

use super::reference::target;
use crate::answer::{Answer, Tensor};
use crate::check::diagnose::Alternative;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::{scaled_norm, smallest_row_norm};
use crate::reference::geometry::{cosine, row_norms, Cosine};
use crate::reference::per_sample;
use crate::reference::softmax::{ce_row_as, points, reduce, RowLoss};
use crate::spec::{Dtype, Margin, MarginGrad, NormalizedCase};

/// How cos θ's denominators are clamped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NormClamp {
    /// ‖x‖ and ‖w‖ as they are (SPEC §1).
    Exact,
    /// x/max(‖x‖, ε) and w/max(‖w‖, ε): `torch.nn.functional.normalize` (ε = 1e-12).
    Rows(f64),
    /// x·w/max(‖x‖‖w‖, ε): `torch.nn.functional.cosine_similarity` as documented (ε = 1e-8).
    Product(f64),
}

/// A convention of real code, as the reference evaluates it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Variant {
    /// The normalization.
    pub norm: NormClamp,
    /// The target's cos θ clamped to [lo, hi] before acos (bounds in the case's dtype).
    pub cos_clamp: Option<(f64, f64)>,
    /// Each row's cross-entropy.
    pub row_loss: RowLoss,
}

impl Variant {
    /// SPEC §1's own convention.
    pub(crate) const EXACT: Variant = Variant {
        norm: NormClamp::Exact,
        cos_clamp: None,
        row_loss: RowLoss::Exact,
    };
}

/// One (feature, class) pair: cos θ, the factor u of the module docs, and whether each
/// norm is free (n = ‖·‖, its projection term present).
struct Pair {
    cos: Cosine,
    u: Interval,
    x_free: bool,
    w_free: bool,
}

/// Whether an enclosure's midpoint is below `eps` (the diagnosis judges midpoints).
fn below(v: &Interval, eps: f64) -> bool {
    v.mid().to_f64() < eps
}

/// The case under `variant` at `prec` bits: output `loss`; gradients `features`,
/// `weights` and, for `normface`, `scale` (the order of the reference's answer).
///
/// # Errors
/// A target at a pole whose rule has no slope there (as the reference's).
pub(crate) fn evaluate(
    case: &NormalizedCase,
    variant: &Variant,
    prec: u32,
) -> Result<Answer<Interval>> {
    if let Some(sub) = super::subset::restricted(case) {
        let answer = evaluate(&sub, variant, prec)?;
        return Ok(super::subset::scatter(
            case,
            answer,
            Interval::from_i64(prec, 0),
        ));
    }
    let x = points(&case.features, prec);
    let w = points(&case.weights, prec);
    let (n, classes, d) = (x.rows(), w.rows(), x.cols());
    let xs = row_norms(&x, prec);
    let ws = row_norms(&w, prec);
    let one = Interval::from_i64(prec, 1);
    let zero = Interval::from_i64(prec, 0);
    let scale = Interval::from_f64(prec, case.scale);
    let pair = |i: usize, j: usize| -> Pair {
        let (dot, exact) = cosine(x.row(i), w.row(j), &xs[i], &ws[j], prec);
        let (u, x_free, w_free) = match variant.norm {
            NormClamp::Exact => (one.div(&xs[i].norm.mul(&ws[j].norm)), true, true),
            NormClamp::Rows(eps) => {
                let e = Interval::from_f64(prec, eps);
                let (xf, wf) = (!below(&xs[i].norm, eps), !below(&ws[j].norm, eps));
                let nx = if xf { &xs[i].norm } else { &e };
                let nw = if wf { &ws[j].norm } else { &e };
                (one.div(&nx.mul(nw)), xf, wf)
            }
            NormClamp::Product(eps) => {
                let p = xs[i].norm.mul(&ws[j].norm);
                if below(&p, eps) {
                    (one.div(&Interval::from_f64(prec, eps)), false, false)
                } else {
                    (one.div(&p), true, true)
                }
            }
        };
        let cos = if x_free && w_free {
            exact
        } else {
            Cosine {
                value: dot.mul(&u),
                pole: None,
            }
        };
        Pair {
            cos,
            u,
            x_free,
            w_free,
        }
    };
    let pairs: Vec<Vec<Pair>> = (0..n)
        .map(|i| (0..classes).map(|j| pair(i, j)).collect())
        .collect();
    let r = per_sample(&one, case.reduction, n);
    let detached = matches!(
        case.margin,
        Margin::Angular {
            grad: MarginGrad::Detached,
            ..
        }
    );
    let mut losses = Vec::with_capacity(n);
    // G_ij = ∂L/∂c_ij, and normface's ∂L/∂s = Σ_ij ∂L/∂z_ij·z_ij/s
    let mut g = vec![Vec::with_capacity(classes); n];
    let mut scale_terms = Vec::new();
    for i in 0..n {
        let y = case.labels[i];
        let mut at_target = pairs[i][y].cos.clone();
        let mut clamped = false;
        if let Some((lo, hi)) = variant.cos_clamp {
            let mid = at_target.value.mid().to_f64();
            let bound = (mid > hi).then_some(hi).or((mid < lo).then_some(lo));
            if let Some(b) = bound {
                at_target = Cosine {
                    value: Interval::from_f64(prec, b),
                    pole: None,
                };
                clamped = true;
            }
        }
        let (target_value, mut slope) = target(&case.margin_of(i), &at_target, i, y)?;
        if clamped && !detached {
            slope = zero.clone();
        }
        let logits: Vec<Interval> = (0..classes)
            .map(|j| {
                scale.mul(if j == y {
                    &target_value
                } else {
                    &pairs[i][j].cos.value
                })
            })
            .collect();
        let (loss, dz) = ce_row_as(&logits, y, variant.row_loss);
        losses.push(loss);
        for (j, dz) in dz.iter().enumerate() {
            let dz = dz.mul(&r);
            if case.learns_scale() {
                scale_terms.push(dz.mul(&logits[j].div(&scale)));
            }
            let gij = scale.mul(&dz);
            g[i].push(if j == y { gij.mul(&slope) } else { gij });
        }
    }
    let loss = reduce(&losses, case.reduction);
    // G_ij·∂c/∂v_k for a row v of norm² `squared` and the other row's entry `other`:
    // u·other, less c·v_k/‖v‖² where the norm is not clamped (`free`)
    let term = |i: usize, j: usize, other: f64, own: f64, free: bool, squared: &Interval| {
        let p = &pairs[i][j];
        let mut t = p.u.mul_f64(other);
        if free {
            t = t.sub(&p.cos.value.mul_f64(own).div(squared));
        }
        g[i][j].mul(&t)
    };
    // Σ over the other side, a pair at a pole contributing its exact 0
    let grad_features = Matrix::from_fn(n, d, |i, k| {
        let terms: Vec<Interval> = (0..classes)
            .filter(|&j| pairs[i][j].cos.pole.is_none())
            .map(|j| {
                let (w, x) = (*case.weights.get(j, k), *case.features.get(i, k));
                term(i, j, w, x, pairs[i][j].x_free, &xs[i].squared)
            })
            .collect();
        Interval::sum(prec, &terms)
    });
    let grad_weights = Matrix::from_fn(classes, d, |j, k| {
        let terms: Vec<Interval> = (0..n)
            .filter(|&i| pairs[i][j].cos.pole.is_none())
            .map(|i| {
                let (x, w) = (*case.features.get(i, k), *case.weights.get(j, k));
                term(i, j, x, w, pairs[i][j].w_free, &ws[j].squared)
            })
            .collect();
        Interval::sum(prec, &terms)
    });
    let mut gradients = vec![
        ("features", Tensor::Matrix(grad_features)),
        ("weights", Tensor::Matrix(grad_weights)),
    ];
    if case.learns_scale() {
        gradients.push(("scale", Tensor::Scalar(Interval::sum(prec, &scale_terms))));
    }
    Ok(Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients,
    })
}

/// The conventions of real code that differ from SPEC §1 on this case (SPEC §4), each
/// evaluated at 160 bits with its description, judged on the case's own scales. Only
/// those whose decision can change here are tried: an ε above some row's norm (or product
/// of norms), a clamp δ that some target's cos θ is beyond, a floor that a row with
/// s ≥ 30 can reach.
pub(crate) fn conventions(c: &NormalizedCase, dtype: Dtype) -> Vec<Alternative> {
    let mut out = Vec::new();
    let with = |out: &mut Vec<Alternative>, what: String, variant: Variant| {
        let answer = evaluate(c, &variant, 160)
            .ok()
            .and_then(|a| crate::check::diagnose::midpoints_of(&a));
        if let Some(a) = answer {
            out.push((what, a, None));
        }
    };
    let (x_min, w_min) = (
        smallest_row_norm(&c.features),
        smallest_row_norm(&c.weights),
    );
    for (eps, whose) in [
        (1e-12, "torch.nn.functional.normalize's default"),
        (
            1e-8,
            "as torch.nn.functional.cosine_similarity's ε, per row",
        ),
    ] {
        if x_min < eps || w_min < eps {
            with(
                &mut out,
                format!("each row is normalized as v/max(‖v‖, ε) with ε = {eps:e} ({whose})"),
                Variant {
                    norm: NormClamp::Rows(eps),
                    ..Variant::EXACT
                },
            );
        }
    }
    if x_min * w_min < 1e-8 {
        with(
            &mut out,
            "cos θ = x·w/max(‖x‖‖w‖, ε) with ε = 1e-8 (torch.nn.functional.cosine_similarity's default)".into(),
            Variant {
                norm: NormClamp::Product(1e-8),
                ..Variant::EXACT
            },
        );
    }
    if matches!(c.margin, Margin::Angular { .. } | Margin::Combined { .. }) {
        let target_cos: Vec<f64> = (0..c.labels.len())
            .map(|i| {
                let (x, w) = (c.features.row(i), c.weights.row(c.labels[i]));
                let d: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
                d / (scaled_norm(x) * scaled_norm(w))
            })
            .collect();
        for delta in [1e-7, 1e-3] {
            let (lo, hi) = (dtype.round(-1.0 + delta), dtype.round(1.0 - delta));
            if target_cos.iter().any(|&t| t > hi || t < lo) {
                with(
                    &mut out,
                    format!(
                        "cos θ is clamped to [−1 + δ, 1 − δ] with δ = {delta:e} before acos (no gradient where the clamp holds)"
                    ),
                    Variant {
                        cos_clamp: Some((lo, hi)),
                        ..Variant::EXACT
                    },
                );
            }
        }
    }
    // p_y < 1e-30 needs a logit gap above ln 1e30 ≈ 69, at most 2s (or s(2 + m)) here
    if c.scale >= 30.0 {
        with(
            &mut out,
            "the loss is −log max(p_y, 1e-30) (insightface's distributed cross-entropy): a row with p_y below the floor has loss 69.08 and no gradient".into(),
            Variant {
                row_loss: RowLoss::Floored(1e-30),
                ..Variant::EXACT
            },
        );
    }
    out
}
