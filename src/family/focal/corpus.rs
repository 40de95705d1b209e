//! `focal`'s and `poly1`'s corpus cases (SPEC §5) and the conventions of their real
//! implementations that the diagnosis tries.
//!
//! Regimes: random logits; near-ties; a dominant target (p_y → 1, where (1 − p_y)^γ with a
//! non-integer γ needs 1 − p_y as Σ_{j≠y} p_j, and 1 − softmax(z)_y rounds to 0 or to a
//! few ulps of 1); a large loss (the target 20 … 36 below the others); γ from 0 to 5 with
//! non-integers, kornia's α form [1 − a, a, …, a] and a per-class α with zeros; ε = −1, 0,
//! 1, 2 for poly1.

use super::{FocalCase, TargetRule};
use crate::check::diagnose::{midpoints, reevaluated, scaled, Alternative};
use crate::corpus::generate::{params, push, rows_json, Draw, Generated, Regime};
use crate::spec::{Case, Dtype, LossId, Reduction};
use serde_json::{json, Value};

/// Logits in `regime` for labels `labels`: (rows, description).
fn logits(draw: &mut Draw, regime: Regime, c: usize, labels: &[usize]) -> (Vec<Vec<f64>>, Value) {
    crate::family::softmax::corpus::logits(draw, regime, labels.len(), c, labels)
}

/// The focal variants: (name, γ, α form).
const FOCAL: [(&str, f64, Alpha); 5] = [
    ("focal-g2", 2.0, Alpha::None),
    ("focal-g0.5", 0.5, Alpha::Kornia(0.25)),
    ("focal-g2.5", 2.5, Alpha::PerClass),
    ("focal-g0", 0.0, Alpha::PerClass),
    ("focal-g5", 5.0, Alpha::Kornia(0.75)),
];

/// How a focal case's α is drawn.
#[derive(Clone, Copy)]
enum Alpha {
    /// No α input (all 1).
    None,
    /// kornia's form: 1 − a on class 0, a on the others.
    Kornia(f64),
    /// log-uniform on [0.01, 10] per class, one class 0.
    PerClass,
}

fn alpha(draw: &mut Draw, form: Alpha, c: usize) -> Option<Vec<f64>> {
    match form {
        Alpha::None => None,
        Alpha::Kornia(a) => Some(
            (0..c)
                .map(|k| draw.dtype.round(if k == 0 { 1.0 - a } else { a }))
                .collect(),
        ),
        Alpha::PerClass => {
            let zero = draw.index(c);
            Some(
                (0..c)
                    .map(|k| {
                        if k == zero {
                            0.0
                        } else {
                            draw.dtype.round(draw.log_uniform(0.01, 10.0))
                        }
                    })
                    .collect(),
            )
        }
    }
}

/// Every focal and poly1 variant in every regime, both reductions alternating.
pub(crate) fn cases(dtype: Dtype, out: &mut Vec<Generated>) {
    let regimes = [
        Regime::Random,
        Regime::NearTie,
        Regime::Dominant,
        Regime::LargeLoss,
    ];
    for regime in regimes {
        for (name, gamma, form) in FOCAL {
            let fractional = gamma.fract() != 0.0 && regime == Regime::Dominant;
            let extra: &[&str] = if fractional {
                &["edge:fractional-gamma"]
            } else {
                &[]
            };
            push(
                out,
                dtype,
                name,
                LossId::Focal,
                regime,
                2,
                extra,
                |draw, k| {
                    let (n, c) = (4, 6);
                    let labels = draw.labels(n, c);
                    let (z, d) = logits(draw, regime, c, &labels);
                    let mut inputs = json!({"logits": rows_json(&z), "labels": labels});
                    if let Some(a) = alpha(draw, form, c) {
                        inputs["alpha"] = json!(a);
                    }
                    let reduction = if k % 2 == 0 { "mean" } else { "sum" };
                    (
                        params(json!({"gamma": gamma, "reduction": reduction})),
                        inputs,
                        d,
                    )
                },
            );
        }
        for (name, eps) in [
            ("poly1", 1.0),
            ("poly1-e2", 2.0),
            ("poly1-e-1", -1.0),
            ("poly1-e0", 0.0),
        ] {
            push(
                out,
                dtype,
                name,
                LossId::Poly1,
                regime,
                2,
                &[],
                |draw, k| {
                    let (n, c) = (4, 6);
                    let labels = draw.labels(n, c);
                    let (z, d) = logits(draw, regime, c, &labels);
                    let reduction = if k % 2 == 0 { "mean" } else { "sum" };
                    (
                        params(json!({"epsilon": eps, "reduction": reduction})),
                        json!({"logits": rows_json(&z), "labels": labels}),
                        d,
                    )
                },
            );
        }
    }
}

/// kornia's and MONAI's focal loss keep the per-class terms −α_c(1 − p_c)^γ·t_c·log p_c as
/// an N×C tensor and average it over N·C (the loss and every gradient entry 1/C of the
/// per-sample mean); kornia puts 1 − a on class 0 and a on the others, so a case with the
/// two-level α [u, v, …, v] is tried with the levels swapped.
pub(crate) fn conventions(c: &FocalCase, whole: &Case) -> Vec<Alternative> {
    let mut out = Vec::new();
    let TargetRule::Focal { alpha, .. } = &c.rule else {
        return out;
    };
    let cols = c.logits.cols();
    if c.reduction == Reduction::Mean {
        if let Some(a) = midpoints(whole) {
            out.push((
                format!("the loss is the mean of the unsummed N×C per-class focal terms (kornia, MONAI): 1/C = 1/{cols} of the per-sample mean"),
                scaled(&a, 1.0 / cols as f64, &[]),
                None,
            ));
        }
    }
    if let Some(a) = alpha {
        let (u, v) = (a[0], a[1]);
        if u != v && a[1..].iter().all(|&x| x == v) {
            let mut swapped = c.clone();
            swapped.rule = TargetRule::Focal {
                gamma: match c.rule {
                    TargetRule::Focal { gamma, .. } => gamma,
                    TargetRule::Poly1 { .. } => 0.0,
                },
                alpha: Some((0..cols).map(|k| if k == 0 { v } else { u }).collect()),
            };
            out.extend(reevaluated(
                &format!("α is {v} on class 0 and {u} on the others, the case's levels swapped (kornia's α on class 0 vs 1 − α on the rest)"),
                Case::Focal(swapped),
            ));
        }
    }
    out
}
