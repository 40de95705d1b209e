//! `focal`'s and `poly1`'s corpus cases (SPEC §5).
//!
//! Regimes: random logits; near-ties; a dominant target (p_y → 1, where (1 − p_y)^γ with a
//! non-integer γ needs 1 − p_y as Σ_{j≠y} p_j, and 1 − softmax(z)_y rounds to 0 or to a
//! few ulps of 1); a large loss (the target 20 … 36 below the others); γ from 0 to 5 with
//! non-integers, kornia's α form [1 − a, a, …, a] and a per-class α with zeros; ε = −1, 0,
//! 1, 2 for poly1.

use crate::corpus::generate::{params, push, rows_json, Draw, Generated, Regime};
use crate::spec::{Dtype, LossId};
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
