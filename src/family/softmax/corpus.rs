//! The softmax families' corpus cases (SPEC §4): the logit regimes their implementations
//! meet, and the exact-zero constructions.

use crate::corpus::generate::{exact_zero_case as generated, exact_zero_id as id};
use crate::corpus::generate::{
    params, push, rows_json, unrepresentable_param, Draw, Generated, Regime, LARGEST_C,
};
use crate::spec::{Dtype, LossId};
use serde_json::{json, Value};

/// Softmax-family logits in a regime: (logits, description of the draw).
pub(crate) fn logits(
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
                // case 0002 of `scale:large-C`: a language model's vocabulary, C = 10⁵
                // (corpus 0.7.0)
                if regime == Regime::LargeC { 3 } else { 2 },
                &[],
                |draw, k| {
                    let (n, c) = match (regime, k) {
                        (Regime::LargeC, 0 | 1) => (2, 10_000),
                        (Regime::LargeC, _) => (2, LARGEST_C),
                        _ => (4, 9),
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

/// The tags of the cases that use SPEC §5's options, one per option: what a results file's
/// expectations and `lossref.Corpus.cases` select them by.
pub(crate) const OPTION_WEIGHT: &str = "option:weight";
/// See [`OPTION_WEIGHT`].
pub(crate) const OPTION_IGNORE: &str = "option:ignore_index";
/// See [`OPTION_WEIGHT`].
pub(crate) const OPTION_SMOOTHING: &str = "option:label_smoothing";
/// See [`OPTION_WEIGHT`].
pub(crate) const OPTION_TARGETS: &str = "option:targets";

/// The `softmax_ce` option sets of the corpus (SPEC §5): (name, weights, ignore, ε, soft
/// targets, regimes).
struct OptionSet {
    name: &'static str,
    weighted: bool,
    ignore: bool,
    smoothing: f64,
    soft: bool,
    regimes: &'static [Regime],
}

const OPTION_SETS: [OptionSet; 6] = [
    OptionSet {
        name: "softmax_ce-weighted",
        weighted: true,
        ignore: false,
        smoothing: 0.0,
        soft: false,
        regimes: &[
            Regime::Random,
            Regime::Dominant,
            Regime::WideWeights,
            Regime::LargeLoss,
        ],
    },
    OptionSet {
        name: "softmax_ce-ignore",
        weighted: false,
        ignore: true,
        smoothing: 0.0,
        soft: false,
        regimes: &[Regime::Random, Regime::MostlyIgnored, Regime::Dominant],
    },
    OptionSet {
        name: "softmax_ce-smoothed",
        weighted: false,
        ignore: false,
        smoothing: 0.1,
        soft: false,
        regimes: &[
            Regime::Random,
            Regime::NearTie,
            Regime::Dominant,
            Regime::LargeLoss,
            Regime::SmoothingNearZero,
            Regime::SmoothingOne,
        ],
    },
    OptionSet {
        name: "softmax_ce-weighted-smoothed-ignore",
        weighted: true,
        ignore: true,
        smoothing: 0.1,
        soft: false,
        regimes: &[
            Regime::Random,
            Regime::Dominant,
            Regime::WideWeights,
            Regime::MostlyIgnored,
            Regime::SmoothingNearZero,
        ],
    },
    OptionSet {
        name: "softmax_ce-soft",
        weighted: false,
        ignore: false,
        smoothing: 0.0,
        soft: true,
        regimes: &[
            Regime::Random,
            Regime::Dominant,
            Regime::SoftOneHot,
            Regime::SoftUnnormalized,
            Regime::SoftZeroAtTinyP,
        ],
    },
    OptionSet {
        name: "softmax_ce-soft-weighted-smoothed",
        weighted: true,
        ignore: false,
        smoothing: 0.1,
        soft: true,
        regimes: &[
            Regime::Random,
            Regime::Dominant,
            Regime::SoftOneHot,
            Regime::SoftUnnormalized,
            Regime::WideWeights,
        ],
    },
];

/// `softmax_ce` with SPEC §5's options, each option set in the regimes that separate the
/// conventions and break implementations: weights spanning 1e−6 … 1e6 with zeros, most rows
/// ignored, ε near 0 and at 1, soft targets that are one-hot, that do not sum to 1, or
/// that are 0 where p underflows; a dominant target for all. `mean` and `sum` alternate.
pub(crate) fn softmax_ce_option_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for set in &OPTION_SETS {
        for &regime in set.regimes {
            let smoothed = set.smoothing > 0.0
                || matches!(regime, Regime::SmoothingNearZero | Regime::SmoothingOne);
            let mut tags = Vec::new();
            for (on, tag) in [
                (set.weighted, OPTION_WEIGHT),
                (set.ignore, OPTION_IGNORE),
                (smoothed, OPTION_SMOOTHING),
                (set.soft, OPTION_TARGETS),
            ] {
                if on {
                    tags.push(tag);
                }
            }
            push(
                out,
                dtype,
                set.name,
                LossId::SoftmaxCe,
                regime,
                2,
                &tags,
                |draw, k| {
                    let (n, c) = if regime == Regime::MostlyIgnored {
                        (8, 5)
                    } else {
                        (4, 6)
                    };
                    let labels = draw.labels(n, c);
                    let logit_regime = match regime {
                        Regime::SmoothingOne | Regime::SoftZeroAtTinyP => Regime::Random,
                        r => r,
                    };
                    let (mut z, mut d) = logits(draw, logit_regime, n, c, &labels);
                    let reduction = if k % 2 == 0 { "mean" } else { "sum" };
                    let mut p = json!({"reduction": reduction});
                    let mut inputs = json!({});
                    let mut eps = set.smoothing;
                    if regime == Regime::SmoothingNearZero {
                        eps = draw.dtype.round(draw.log_uniform(1e-8, 1e-3));
                        d["label_smoothing"] = json!("log-uniform[1e−8, 1e−3]");
                    } else if regime == Regime::SmoothingOne {
                        eps = 1.0;
                    }
                    if eps != 0.0 {
                        p["label_smoothing"] = json!(draw.dtype.round(eps));
                    }
                    if set.weighted {
                        let (lo, hi) = if regime == Regime::WideWeights {
                            (1e-6, 1e6)
                        } else {
                            (0.1, 10.0)
                        };
                        let zero = draw.index(c);
                        let w: Vec<f64> = (0..c)
                            .map(|j| {
                                let v = draw.dtype.round(draw.log_uniform(lo, hi));
                                // one zero weight in the wide regime, away from every label
                                // of a `mean` (so that Σ w_y > 0)
                                if regime == Regime::WideWeights && j == zero {
                                    0.0
                                } else {
                                    v
                                }
                            })
                            .collect();
                        d["weight"] = json!(format!("log-uniform[{lo:e}, {hi:e}]"));
                        inputs["weight"] = json!(w);
                    }
                    if set.soft {
                        let t: Vec<Vec<f64>> = (0..n)
                            .map(|i| soft_row(draw, regime, c, labels[i], &mut z[i]))
                            .collect();
                        d["targets"] = json!(soft_description(regime));
                        inputs["targets"] = rows_json(&t);
                    } else {
                        let mut shown: Vec<i64> = labels.iter().map(|&y| y as i64).collect();
                        if set.ignore {
                            // PyTorch's −100, or a class index (0) used as the ignore index
                            let ignore: i64 = if k % 2 == 0 { -100 } else { 0 };
                            p["ignore_index"] = json!(ignore);
                            let keep = if regime == Regime::MostlyIgnored {
                                1
                            } else {
                                n - 1
                            };
                            // the kept rows are the first `keep`, each relabelled off the index
                            for (i, y) in shown.iter_mut().enumerate() {
                                if i >= keep {
                                    *y = ignore;
                                } else if *y == ignore {
                                    *y = 1;
                                }
                            }
                            d["ignored"] = json!(format!("rows {keep}.. carry ignore_index"));
                        }
                        // a `mean` over zero weights only would be undefined: the first label's
                        // class keeps a weight
                        if let Some(w) = inputs.get_mut("weight").and_then(Value::as_array_mut) {
                            let y0 = usize::try_from(shown[0]).unwrap_or(1);
                            if w[y0].as_f64() == Some(0.0) {
                                w[y0] = json!(1.0);
                            }
                        }
                        inputs["labels"] = json!(shown);
                    }
                    inputs["logits"] = rows_json(&z);
                    (params(p), inputs, d)
                },
            );
        }
    }
}

/// A row of soft targets for `regime` (one-hot at the label, rows not summing to 1, or
/// zeros where the logit is pushed 800 … 5000 below the row, so that p underflows).
fn soft_row(draw: &mut Draw, regime: Regime, c: usize, y: usize, z: &mut [f64]) -> Vec<f64> {
    match regime {
        Regime::SoftOneHot => (0..c).map(|j| if j == y { 1.0 } else { 0.0 }).collect(),
        Regime::SoftUnnormalized => {
            let total = draw.uniform(0.3, 3.0);
            shares(draw, c, total)
        }
        Regime::SoftZeroAtTinyP => {
            let raw: Vec<f64> = (0..c).map(|_| draw.uniform(0.0, 1.0)).collect();
            let mut t: Vec<f64> = raw.iter().map(|v| draw.dtype.round(*v)).collect();
            let top = z.iter().copied().fold(f64::MIN, f64::max);
            for j in 0..c {
                if j != y && draw.uniform(0.0, 1.0) < 0.5 {
                    t[j] = 0.0;
                    z[j] = draw.dtype.round(top - draw.uniform(800.0, 5000.0));
                }
            }
            t
        }
        Regime::Dominant => {
            // the target's class carries most of the mass, as a distilled label would
            let mut t: Vec<f64> = (0..c).map(|_| draw.uniform(0.0, 0.01)).collect();
            t[y] += 1.0 - t.iter().sum::<f64>();
            t.iter().map(|v| draw.dtype.round(*v)).collect()
        }
        _ => shares(draw, c, 1.0),
    }
}

/// `c` uniform[0, 1] draws scaled to sum to `total` (before rounding to the dtype).
fn shares(draw: &mut Draw, c: usize, total: f64) -> Vec<f64> {
    let raw: Vec<f64> = (0..c).map(|_| draw.uniform(0.0, 1.0)).collect();
    let s: f64 = raw.iter().sum();
    raw.iter()
        .map(|v| draw.dtype.round(v / s * total))
        .collect()
}

fn soft_description(regime: Regime) -> &'static str {
    match regime {
        Regime::SoftOneHot => "one-hot at the label",
        Regime::SoftUnnormalized => "uniform[0, 1] scaled to a row sum uniform[0.3, 3]",
        Regime::SoftZeroAtTinyP => {
            "uniform[0, 1], half the non-label classes 0 with their logit max − uniform[800, 5000]"
        }
        Regime::Dominant => "uniform[0, 0.01], the label's class the rest of 1",
        _ => "uniform[0, 1] normalized to sum 1",
    }
}

/// Exact zeros of the options: ε = 1 on a row of equal logits (A·p_j = a_j for every j),
/// uniform soft targets on equal logits, with and without equal weights.
pub(crate) fn softmax_ce_options_exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
    let constructions: [(&str, Value, Value, &str, &[&str]); 3] = [
        (
            "softmax_ce-smoothed",
            json!({"reduction": "mean", "label_smoothing": 1.0}),
            json!({"logits": [[2.0, 2.0, 2.0, 2.0], [1.0, 3.0, 1.0, 3.0]], "labels": [1, 0]}),
            "ε = 1: every class gets 1/C, and a row of equal logits has p = 1/C",
            &[OPTION_SMOOTHING],
        ),
        (
            "softmax_ce-soft",
            json!({"reduction": "sum"}),
            json!({"logits": [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]], "targets": [[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.5, 0.5]]}),
            "uniform soft targets (summing to 1 and to 2) on equal logits",
            &[OPTION_TARGETS],
        ),
        (
            "softmax_ce-weighted-smoothed-ignore",
            json!({"reduction": "mean", "label_smoothing": 1.0, "ignore_index": -100}),
            json!({"logits": [[-1.0, -1.0, -1.0], [4.0, 0.0, 2.0]], "labels": [2, -100], "weight": [3.0, 3.0, 3.0]}),
            "ε = 1 with equal weights on equal logits; the other row ignored",
            &[OPTION_WEIGHT, OPTION_IGNORE, OPTION_SMOOTHING],
        ),
    ];
    constructions
        .into_iter()
        .map(|(name, params, inputs, construction, tags)| {
            let mut g = generated(
                id(name, dtype, 0),
                dtype,
                LossId::SoftmaxCe,
                params,
                inputs,
                json!({"construction": construction}),
            );
            g.tags.extend(tags.iter().map(|t| t.to_string()));
            g
        })
        .collect()
}
