//! The adaptive margins' corpus cases (SPEC §4, §5), each loss in the regimes where its
//! implementations break: random batches and dominant targets; CurricularFace's negatives on
//! both sides of the hard-negative mask with t from 0 to 1, and its `thmm` switch; AdaFace's
//! norms across [0.001, 100] and beyond the clamps, ẑ at ±1, and target cosines past its
//! clamp 1 − eps; MagFace's norms below l_a, inside and above u_a, and its `easy` switch;
//! AdaCos's even and odd batches with θ_med on both sides of π/4.
//!
//! Every case keeps a distance from each switch that its dtype resolves (10⁻⁴ in float32,
//! 10⁻⁹ in float64): nearer, a float32 cosine cannot tell the side, and the value jumps
//! there.

use crate::corpus::generate::{push, rows_json, Draw, Generated, Regime};
use crate::spec::{Dtype, LossId};
use serde_json::{json, Map, Value};

/// The parameters as a map.
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// One feature row at cosine `cos` to `w[y]`, its norm log-uniform in `norm`.
fn feature(draw: &mut Draw, w: &[Vec<f64>], y: usize, cos: f64, norm: (f64, f64)) -> Vec<f64> {
    draw.features_at(w, &[y], &[cos], norm)
        .pop()
        .expect("one row")
}

/// The nearest and farthest distance from a switch that a case of `dtype` is drawn at.
fn near(dtype: Dtype) -> (f64, f64) {
    if dtype == Dtype::Float64 {
        (1e-9, 1e-3)
    } else {
        (1e-4, 1e-2)
    }
}

/// Every adaptive loss's cases in `dtype`.
pub(crate) fn cases(dtype: Dtype, out: &mut Vec<Generated>) {
    curricularface(dtype, out);
    adaface(dtype, out);
    magface(dtype, out);
    adacos(dtype, out);
}

fn curricularface(dtype: Dtype, out: &mut Vec<Generated>) {
    // a momentum of 0.3 moves t' far from t; the official code's 0.01 (and s = 64), which
    // libraries hard-code, in the regimes that matter most
    let all = vec![
        (Regime::Random, 0),
        (Regime::Dominant, 1),
        (Regime::HardNegatives, 2),
        (Regime::ThmmSwitch, 3),
    ];
    let variants = [
        (
            "curricularface",
            json!({"scale": 32, "margin": 0.5, "momentum": 0.3}),
            all,
        ),
        (
            "curricularface-official",
            json!({}),
            vec![(Regime::Random, 1), (Regime::HardNegatives, 3)],
        ),
    ];
    for (name, params, regimes) in variants {
        for (regime, offset) in regimes {
            push(
                out,
                dtype,
                name,
                LossId::CurricularFace,
                regime,
                2,
                &[],
                |draw, k| {
                    let (n, c, d) = (4, 12, 8);
                    let mut w = draw.normal_rows(c, d, 1.0);
                    // distinct labels, and two negatives per row that no other row uses
                    let first = draw.index(c);
                    let labels: Vec<usize> = (0..n).map(|i| (first + i) % c).collect();
                    let (lo, hi) = near(dtype);
                    let (mut cos, mut what): (Vec<f64>, String) = match regime {
                        Regime::Dominant => (
                            (0..n).map(|_| draw.uniform(0.9, 0.99)).collect(),
                            "uniform[0.9, 0.99]".into(),
                        ),
                        Regime::ThmmSwitch => (
                            (0..n)
                                .map(|_| {
                                    (std::f64::consts::PI - 0.5
                                        + draw.side() * draw.log_uniform(lo, hi))
                                    .cos()
                                })
                                .collect(),
                            format!("cos(π − m ± log-uniform[{lo:e}, {hi:e}])"),
                        ),
                        _ => (
                            (0..n).map(|_| draw.uniform(-0.3, 0.9)).collect(),
                            "uniform[−0.3, 0.9]".into(),
                        ),
                    };
                    if regime == Regime::HardNegatives {
                        // row 0 past the `thmm` switch, where the target logit g = cos θ − m·sin m
                        // lies below cos(θ + m): a mask against g differs from SPEC §5's there
                        cos[0] = (std::f64::consts::PI - 0.25).cos();
                        what = format!("{what}; row 0 at θ = π − 0.25 (past the switch)");
                    }
                    let x: Vec<Vec<f64>> = (0..n)
                        .map(|i| feature(draw, &w, labels[i], cos[i], (0.5, 2.0)))
                        .collect();
                    let mut described = json!({
                        "weights": "normal(0, 1)",
                        "target_cos": what,
                        "feature_norms": "log-uniform[0.5, 2]",
                    });
                    if regime == Regime::HardNegatives {
                        // two negatives of each row, one on each side of its mask cos(θ_y + m)
                        for (i, &ci) in cos.iter().enumerate() {
                            let threshold = (ci.acos() + 0.5).cos();
                            for (q, side) in [(0, 1.0), (1, -1.0)] {
                                let j = (first + n + 2 * i + q) % c;
                                let target = if i == 0 && q == 1 {
                                    // between the target logit g and cos(θ + m) = cos(π + 0.25)
                                    -0.99
                                } else {
                                    (threshold + side * draw.log_uniform(lo, 0.2))
                                        .clamp(-0.99, 0.99)
                                };
                                w[j] = feature(draw, &x, i, target, (0.5, 2.0));
                            }
                        }
                        described["hard_negatives"] = json!(format!(
                        "per row, two negative weights at cos(θ_y + m) ± log-uniform[{lo:e}, 0.2] \
                     (row 0's second at −0.99, between g and cos(θ_y + m))"
                    ));
                    }
                    // t from 0 to 1 across the cases
                    let t = [0.0, 0.35, 0.7, 1.0][(offset + k) % 4];
                    described["t"] = json!("0, 0.35, 0.7 or 1 across the cases");
                    (
                        object(params.clone()),
                        json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels, "t": dtype.round(t)}),
                        described,
                    )
                },
            );
        }
    }
}

fn adaface(dtype: Dtype, out: &mut Vec<Generated>) {
    let regimes = [
        Regime::Random,
        Regime::Dominant,
        Regime::NormClamp,
        Regime::ScalerClamp,
        Regime::CosClamp,
    ];
    for regime in regimes {
        push(
            out,
            dtype,
            "adaface",
            LossId::AdaFace,
            regime,
            2,
            &[],
            |draw, _| {
                let (n, c, d) = (6, 10, 8);
                let w = draw.normal_rows(c, d, 1.0);
                let labels = draw.labels(n, c);
                let (lo, _) = near(dtype);
                let mut described = json!({"weights": "normal(0, 1)"});
                let (cos, what): (Vec<f64>, String) = match regime {
                Regime::Dominant => (
                    (0..n).map(|_| draw.uniform(0.9, 0.99)).collect(),
                    "uniform[0.9, 0.99]".into(),
                ),
                // past the clamp 1 − eps = 0.999, by at least the dtype's distance
                Regime::CosClamp => (
                    (0..n)
                        .map(|i| {
                            if i % 2 == 0 {
                                1.0 - 1e-3 + draw.log_uniform(lo, 5e-4)
                            } else {
                                draw.uniform(0.5, 0.99)
                            }
                        })
                        .collect(),
                    "every other row 0.999 + log-uniform[·, 5e-4] (past the clamp), else uniform[0.5, 0.99]".into(),
                ),
                _ => (
                    (0..n).map(|_| draw.uniform(-0.3, 0.9)).collect(),
                    "uniform[−0.3, 0.9]".into(),
                ),
            };
                let (norms, batch_mean, batch_std, what_norms): ([(f64, f64); 3], f64, f64, &str) =
                match regime {
                    // across [0.001, 100] and beyond both clamps
                    Regime::NormClamp => (
                        [(1e-4, 9e-4), (1e-3, 100.0), (110.0, 1e3)],
                        10.0,
                        5.0,
                        "rows in turn log-uniform[1e-4, 9e-4] (below the clamp), [1e-3, 100], [110, 1e3] (above)",
                    ),
                    // ẑ at ±1: a narrow running σ
                    Regime::ScalerClamp => ([(1.0, 60.0); 3], 20.0, 0.5, "log-uniform[1, 60]"),
                    _ => ([(5.0, 50.0); 3], 20.0, 100.0, "log-uniform[5, 50]"),
                };
                let x: Vec<Vec<f64>> = (0..n)
                    .map(|i| feature(draw, &w, labels[i], cos[i], norms[i % 3]))
                    .collect();
                described["target_cos"] = json!(what);
                described["feature_norms"] = json!(what_norms);
                (
                    object(json!({"scale": 64, "margin": 0.4, "h": 0.333, "t_alpha": 0.1})),
                    json!({
                        "features": rows_json(&x),
                        "weights": rows_json(&w),
                        "labels": labels,
                        "batch_mean": dtype.round(batch_mean),
                        "batch_std": dtype.round(batch_std),
                    }),
                    described,
                )
            },
        );
    }
}

fn magface(dtype: Dtype, out: &mut Vec<Generated>) {
    let variants = [
        (
            "magface",
            json!({}),
            vec![
                Regime::Random,
                Regime::Dominant,
                Regime::NormClamp,
                Regime::EasySwitch,
            ],
        ),
        (
            "magface-none",
            json!({"boundary": "none"}),
            vec![Regime::Random, Regime::NormClamp],
        ),
    ];
    for (name, params, regimes) in variants {
        for regime in regimes {
            push(
                out,
                dtype,
                name,
                LossId::MagFace,
                regime,
                2,
                &[],
                |draw, _| {
                    let (n, c, d) = (6, 10, 8);
                    let w = draw.normal_rows(c, d, 1.0);
                    let labels = draw.labels(n, c);
                    let (lo, hi) = near(dtype);
                    let (cos, what): (Vec<f64>, String) = match regime {
                        Regime::Dominant => (
                            (0..n).map(|_| draw.uniform(0.9, 0.99)).collect(),
                            "uniform[0.9, 0.99]".into(),
                        ),
                        Regime::EasySwitch => {
                            let hi = hi.min(2e-3);
                            (
                                (0..n)
                                    .map(|_| draw.side() * draw.log_uniform(lo, hi))
                                    .collect(),
                                format!("±log-uniform[{lo:e}, {hi:e}]"),
                            )
                        }
                        _ => (
                            (0..n).map(|_| draw.uniform(-0.3, 0.9)).collect(),
                            "uniform[−0.3, 0.9]".into(),
                        ),
                    };
                    // below l_a = 10, inside, above u_a = 110
                    let ranges = [(2.0, 9.0), (12.0, 100.0), (120.0, 400.0)];
                    let x: Vec<Vec<f64>> = (0..n)
                        .map(|i| {
                            let range = if regime == Regime::NormClamp {
                                ranges[i % 3]
                            } else {
                                (12.0, 100.0)
                            };
                            feature(draw, &w, labels[i], cos[i], range)
                        })
                        .collect();
                    let norms = if regime == Regime::NormClamp {
                        "rows in turn log-uniform[2, 9] (below l_a), [12, 100], [120, 400] (above u_a)"
                    } else {
                        "log-uniform[12, 100]"
                    };
                    let mut p = object(json!({"scale": 64}));
                    p.extend(object(params.clone()));
                    (
                        p,
                        json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels}),
                        json!({"weights": "normal(0, 1)", "target_cos": what, "feature_norms": norms}),
                    )
                },
            );
        }
    }
}

fn adacos(dtype: Dtype, out: &mut Vec<Generated>) {
    for regime in [Regime::Random, Regime::Dominant, Regime::MedianAngle] {
        push(
            out,
            dtype,
            "adacos",
            LossId::AdaCos,
            regime,
            2,
            &[],
            |draw, k| {
                // an even batch, then an odd one
                let (n, c, d) = (6 + k, 10, 8);
                let w = draw.normal_rows(c, d, 1.0);
                let labels = draw.labels(n, c);
                let (cos, what): (Vec<f64>, &str) = match regime {
                    Regime::Dominant => (
                        (0..n).map(|_| draw.uniform(0.9, 0.99)).collect(),
                        "uniform[0.9, 0.99]",
                    ),
                    // θ_med below π/4 in the first case, above it in the second
                    Regime::MedianAngle if k == 0 => (
                        (0..n).map(|_| draw.uniform(0.75, 0.95)).collect(),
                        "uniform[0.75, 0.95] (θ_med < π/4)",
                    ),
                    Regime::MedianAngle => (
                        (0..n).map(|_| draw.uniform(-0.2, 0.6)).collect(),
                        "uniform[−0.2, 0.6] (θ_med > π/4)",
                    ),
                    _ => (
                        (0..n).map(|_| draw.uniform(-0.3, 0.9)).collect(),
                        "uniform[−0.3, 0.9]",
                    ),
                };
                let x: Vec<Vec<f64>> = (0..n)
                    .map(|i| feature(draw, &w, labels[i], cos[i], (0.5, 2.0)))
                    .collect();
                // the default scale √2·log(C − 1), which no binary format holds
                (
                    Map::new(),
                    json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels}),
                    json!({"weights": "normal(0, 1)", "target_cos": what, "feature_norms": "log-uniform[0.5, 2]", "batch": "N = 6, then N = 7"}),
                )
            },
        );
    }
}
