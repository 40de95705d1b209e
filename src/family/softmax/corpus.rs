//! The softmax families' corpus cases (SPEC §4): the logit regimes their implementations
//! meet, and the exact-zero constructions.

use crate::corpus::generate::{exact_zero_case as generated, exact_zero_id as id};
use crate::corpus::generate::{
    params, push, rows_json, unrepresentable_param, Draw, Generated, Regime,
};
use crate::spec::{Dtype, LossId};
use serde_json::{json, Value};

/// Softmax-family logits in a regime: (logits, description of the draw).
fn logits(
    draw: &mut Draw,
    regime: Regime,
    n: usize,
    c: usize,
    labels: &[usize],
) -> (Vec<Vec<f64>>, Value) {
    match regime {
        Regime::NearTie => {
            let rows = (0..n)
                .map(|_| {
                    let base = draw.normal(0.0, 4.0);
                    (0..c)
                        .map(|_| {
                            draw.dtype
                                .round(base * (1.0 + draw.uniform(-1.0, 1.0) * 1e-6))
                        })
                        .collect()
                })
                .collect();
            (
                rows,
                json!({"logits": "z₀·(1 + uniform[−1e−6, 1e−6]), z₀ ~ normal(0, 4)"}),
            )
        }
        Regime::Dominant => {
            let gap = if draw.dtype == Dtype::Float32 {
                (20.0, 100.0)
            } else {
                (20.0, 700.0)
            };
            let mut rows = draw.normal_rows(n, c, 1.0);
            for (row, &y) in rows.iter_mut().zip(labels) {
                let g = draw.uniform(gap.0, gap.1);
                row[y] = draw.dtype.round(row[y] + g);
            }
            (
                rows,
                json!({"logits": "normal(0, 1)", "target": format!("+ uniform[{}, {}]", gap.0, gap.1)}),
            )
        }
        Regime::LargeLoss => {
            // the target below the largest other logit by 20 … 36: a loss of 20 … 36, where
            // softplus's threshold (x for x > 20) is off by e^−x, above binary64's ulp
            let mut rows = draw.normal_rows(n, c, 1.0);
            for (row, &y) in rows.iter_mut().zip(labels) {
                let top = row
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != y)
                    .map(|(_, v)| *v)
                    .fold(f64::MIN, f64::max);
                let gap = draw.uniform(20.0, 36.0);
                row[y] = draw.dtype.round(top - gap);
            }
            (
                rows,
                json!({"logits": "normal(0, 1)", "target": "max_{j≠y} z_j − uniform[20, 36]"}),
            )
        }
        Regime::HugeLogit => {
            let sd = if draw.dtype == Dtype::Float32 {
                1e4
            } else {
                1e6
            };
            (
                draw.normal_rows(n, c, sd),
                json!({"logits": format!("normal(0, {sd:e})")}),
            )
        }
        _ => (
            draw.normal_rows(n, c, 3.0),
            json!({"logits": "normal(0, 3)"}),
        ),
    }
}

/// `softmax` at every temperature regime.
pub(crate) fn softmax_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for (regime, t) in [
        (Regime::Random, 1.0),
        (Regime::NearTie, 1.0),
        (Regime::HugeLogit, 1.0),
        (Regime::SmallTemperature, 1.0 / 64.0),
        (Regime::LargeTemperature, 100.0),
        (Regime::ParamPrecision, unrepresentable_param(dtype, 1.7)),
    ] {
        push(
            out,
            dtype,
            "softmax",
            LossId::Softmax,
            regime,
            2,
            &[],
            |draw, _| {
                let (n, c) = (3, 7);
                let (z, d) = logits(draw, regime, n, c, &[0; 3]);
                (
                    params(json!({"temperature": t})),
                    json!({"logits": rows_json(&z)}),
                    d,
                )
            },
        );
    }
}

/// `softmax_ce` with both reductions in every logit regime.
pub(crate) fn softmax_ce_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for regime in [
        Regime::Random,
        Regime::NearTie,
        Regime::Dominant,
        Regime::HugeLogit,
        Regime::LargeLoss,
        Regime::LargeC,
    ] {
        for reduction in ["mean", "sum"] {
            if regime == Regime::LargeC && reduction == "sum" {
                continue;
            }
            let name = format!("softmax_ce-{reduction}");
            push(
                out,
                dtype,
                &name,
                LossId::SoftmaxCe,
                regime,
                2,
                &[],
                |draw, _| {
                    let (n, c) = if regime == Regime::LargeC {
                        (2, 10_000)
                    } else {
                        (4, 9)
                    };
                    let labels = draw.labels(n, c);
                    let (z, d) = logits(draw, regime, n, c, &labels);
                    (
                        params(json!({"reduction": reduction})),
                        json!({"logits": rows_json(&z), "labels": labels}),
                        d,
                    )
                },
            );
        }
    }
}

/// Equal logits in permuted places.
pub(crate) fn softmax_exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
    let mut out = Vec::new();
    out.push(generated(
        id("softmax", dtype, 0),
        dtype,
        LossId::Softmax,
        json!({"temperature": 2}),
        json!({"logits": [[1.0, 3.0, 1.0, 3.0], [0.5, 0.5, 0.5, 0.5]]}),
        json!({"construction": "equal logits in permuted places"}),
    ));
    out
}

/// Two rows, one the other's permutation.
pub(crate) fn softmax_ce_exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
    let mut out = Vec::new();
    out.push(generated(
        id("softmax_ce", dtype, 0),
        dtype,
        LossId::SoftmaxCe,
        json!({"reduction": "sum"}),
        json!({"logits": [[1.0, 3.0, 1.0, 3.0], [3.0, 1.0, 3.0, 1.0]], "labels": [1, 0]}),
        json!({"construction": "two rows, one the other's permutation"}),
    ));
    out
}
