//! The normalized-margin family's corpus cases (SPEC §4). Its exact-zero cases are the
//! special-angle construction of `crate::corpus::exact_zero`, shared with lsoftmax and
//! sphereface.

use super::NormalizedFamily;
use crate::corpus::generate::{
    push, rows_json, unrepresentable_param, variant, Generated, Regime, Variant, LARGEST_C,
};
use crate::family::LossFamily;
use crate::spec::{Boundary, Dtype, LossId, MarginGrad};
use serde_json::{json, Value};

/// The variants of the normalized-margin family: every loss, every ArcFace boundary and
/// margin gradient (all parameters exact in binary32).
fn margin_variants() -> Vec<Variant> {
    margin_variants_with(vec![variant(
        LossId::Combined,
        "combined",
        json!({"scale": 64, "m1": 1.25, "m2": 0.25, "m3": 0.125}),
    )])
}

/// normface, cosface, amsoftmax, the given `combined` variants, and ArcFace with every
/// boundary and margin gradient.
pub(crate) fn margin_variants_with(combined: Vec<Variant>) -> Vec<Variant> {
    let mut v = vec![
        variant(LossId::NormFace, "normface", json!({"scale": 16})),
        variant(
            LossId::CosFace,
            "cosface",
            json!({"scale": 64, "margin": 0.375}),
        ),
        variant(
            LossId::AmSoftmax,
            "amsoftmax",
            json!({"scale": 30, "margin": 0.375}),
        ),
    ];
    v.extend(combined);
    for boundary in Boundary::ALL {
        for grad in MarginGrad::ALL {
            v.push(variant(
                LossId::ArcFace,
                &format!("arcface-{}-{}", boundary.as_str(), grad.as_str()),
                json!({"scale": 64, "margin": 0.5, "boundary": boundary.as_str(), "margin_grad": grad.as_str()}),
            ));
        }
    }
    v
}

/// The `edge:param-precision` values of the real parameters (corpus 0.4.0): decimals that
/// neither the case's dtype nor its lower precision holds exactly.
const PARAM_PRECISION: [(&str, f64); 5] = [
    ("scale", 30.1),
    ("margin", 0.35),
    ("m1", 0.95),
    ("m2", 0.3),
    ("m3", 0.15),
];

/// The angles θ at which cos θ rounds to 1 in `dtype` (1 − cos θ below half an ulp of 1,
/// θ < 2^−(p/2)): far below the 1 − cos θ ≥ 10⁻⁶ of `edge:acos-near-1`, where an
/// unclamped √(1 − cos²θ) of a rounded cosine is NaN.
fn rounds_to_one(dtype: Dtype) -> (f64, f64) {
    match dtype.arithmetic() {
        Dtype::Float64 => (1e-9, 1e-8),
        _ => (1e-6, 2e-4),
    }
}

/// Every variant in the regimes of its rule: dominant targets, tiny and huge norms, acos's
/// poles, the `thmm` and `easy` switches, and large C.
pub(crate) fn cases(dtype: Dtype, out: &mut Vec<Generated>) {
    for v in margin_variants() {
        // the rule's points of interest (SPEC §1), as the family states them
        let points = NormalizedFamily::switch_points(v.loss, &Value::Object(v.params.clone()))
            .expect("the corpus variants' parameters are valid");
        let point = |tag: &str| points.iter().find(|p| p.tag == tag).copied();
        let mut regimes = vec![
            Regime::Random,
            Regime::Dominant,
            Regime::TinyNorm,
            Regime::HugeNorm,
            Regime::AcosNearOne,
        ];
        // acos near −1 for the rules whose margin side stays defined at the pole: the affine
        // rules and a detached ArcFace gradient. (The `thmm` and `easy` rules with a full
        // gradient are defined at θ = π too, on their fallback side, as their switch
        // points say; corpus 0.3.0 holds no such case, and adding them is a new version.)
        let angular = matches!(v.loss, LossId::ArcFace | LossId::Combined);
        let detached = v.params.get("margin_grad").and_then(Value::as_str) == Some("detached");
        if !angular || detached {
            regimes.push(Regime::AcosNearMinusOne);
        }
        // θ where cos θ rounds to ±1 in the dtype (corpus 0.4.0): the loss and the detached
        // gradient are defined there, the full gradient wherever θ > 0 exactly
        regimes.push(Regime::CosRoundsToOne);
        if !angular || detached {
            regimes.push(Regime::CosRoundsToMinusOne);
        }
        regimes.push(Regime::ParamPrecision);
        let thmm = point("edge:thmm-switch");
        let easy = point("edge:easy-switch");
        if thmm.is_some() {
            regimes.push(Regime::ThmmSwitch);
        }
        if easy.is_some() {
            regimes.push(Regime::EasySwitch);
        }
        if matches!(
            v.name.as_str(),
            "normface" | "cosface" | "arcface-none-full"
        ) {
            regimes.push(Regime::LargeC);
        }
        // the face-recognition heads also at C = 10⁵ (corpus 0.7.0), certified a block of
        // classes at a time: case 0001 of `scale:large-C`
        let face_head = matches!(v.name.as_str(), "cosface" | "arcface-none-full");
        for regime in regimes {
            let extra: &[&str] = match regime {
                Regime::CosRoundsToOne => &["edge:acos-near-1"],
                Regime::CosRoundsToMinusOne => &["edge:acos-near-minus-1"],
                _ => &[],
            };
            push(
                out,
                dtype,
                &v.name,
                v.loss,
                regime,
                match regime {
                    Regime::LargeC if face_head => 2,
                    Regime::LargeC => 1,
                    _ => 2,
                },
                extra,
                |draw, k| {
                    let (n, c, d) = match (regime, k) {
                        (Regime::LargeC, 0) => (2, 10_000, 4),
                        (Regime::LargeC, _) => (2, LARGEST_C, 2),
                        _ => (3, 6, 5),
                    };
                    let w = draw.normal_rows(c, d, 1.0);
                    let labels = draw.labels(n, c);
                    // how far from the thmm switch θ = π − m
                    let switch = if dtype == Dtype::Float32 {
                        (1e-4, 1e-2)
                    } else {
                        (1e-9, 1e-3)
                    };
                    let (near, far) = if dtype == Dtype::Float32 {
                        (1e-6, 1e-3)
                    } else {
                        (1e-12, 1e-4)
                    };
                    let (angles, what) = match regime {
                        Regime::CosRoundsToOne | Regime::CosRoundsToMinusOne => {
                            let (lo, hi) = rounds_to_one(dtype);
                            let sign = if regime == Regime::CosRoundsToOne {
                                1.0
                            } else {
                                -1.0
                            };
                            let angles: Vec<(f64, f64)> = (0..n)
                                .map(|_| {
                                    let t = draw.log_uniform(lo, hi);
                                    (sign * t.cos(), t.sin())
                                })
                                .collect();
                            let at = if sign > 0.0 { "θ" } else { "π − θ" };
                            (angles, format!("{at}, θ log-uniform[{lo:e}, {hi:e}]"))
                        }
                        _ => {
                            let (cos, what): (Vec<f64>, String) = match regime {
                                Regime::AcosNearOne => (
                                    (0..n).map(|_| 1.0 - draw.log_uniform(near, far)).collect(),
                                    format!("1 − log-uniform[{near:e}, {far:e}]"),
                                ),
                                Regime::AcosNearMinusOne => (
                                    (0..n).map(|_| -1.0 + draw.log_uniform(near, far)).collect(),
                                    format!("−1 + log-uniform[{near:e}, {far:e}]"),
                                ),
                                Regime::ThmmSwitch => (
                                    (0..n)
                                        .map(|_| {
                                            let side = draw.side();
                                            let at = thmm.map_or(0.0, |p| p.theta);
                                            (at + side * draw.log_uniform(switch.0, switch.1)).cos()
                                        })
                                        .collect(),
                                    format!(
                                        "cos(π − m ± log-uniform[{:e}, {:e}])",
                                        switch.0, switch.1
                                    ),
                                ),
                                Regime::EasySwitch => (
                                    (0..n)
                                        .map(|_| {
                                            let side = draw.side();
                                            easy.map_or(0.0, |p| p.cos)
                                                + side * draw.log_uniform(near, far)
                                        })
                                        .collect(),
                                    format!("± log-uniform[{near:e}, {far:e}]"),
                                ),
                                Regime::Dominant => (
                                    (0..n).map(|_| draw.uniform(0.95, 0.999)).collect(),
                                    "uniform[0.95, 0.999]".into(),
                                ),
                                _ => (
                                    (0..n).map(|_| draw.uniform(-0.9, 0.9)).collect(),
                                    "uniform[−0.9, 0.9]".into(),
                                ),
                            };
                            let angles: Vec<(f64, f64)> = cos
                                .iter()
                                .map(|&c| (c, (1.0 - c * c).max(0.0).sqrt()))
                                .collect();
                            (angles, what)
                        }
                    };
                    let norms = match (regime, dtype) {
                        (Regime::TinyNorm, Dtype::Float32) => (1e-15, 1e-12),
                        (Regime::TinyNorm, Dtype::Float64) => (1e-150, 1e-140),
                        (Regime::HugeNorm, Dtype::Float32) => (1e12, 1e15),
                        (Regime::HugeNorm, Dtype::Float64) => (1e140, 1e150),
                        _ => (0.5, 2.0),
                    };
                    let x = draw.features_at_angles(&w, &labels, &angles, norms);
                    let mut p = v.params.clone();
                    if regime == Regime::ParamPrecision {
                        for (name, decimal) in PARAM_PRECISION {
                            if let Some(value) = p.get_mut(name) {
                                *value = json!(unrepresentable_param(dtype, decimal));
                            }
                        }
                    }
                    if regime == Regime::Dominant {
                        p.insert("reduction".into(), json!("sum"));
                    }
                    (
                        p,
                        json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels}),
                        json!({"weights": "normal(0, 1)", "target_cos": what, "feature_norms": format!("log-uniform[{:e}, {:e}]", norms.0, norms.1)}),
                    )
                },
            );
        }
    }
}

/// SPEC §5's inputs (corpus 0.9.0): per-sample margins drawn around the rule's margin as
/// ElasticFace draws them (m_i ~ N(m, σ), σ = 0.05, as the paper's face models), for
/// cosface, arcface and combined (as m2, and as m3); and class subsets of 1 %, 10 %, 50 %
/// and 100 % of C = 200 classes holding every label (Partial FC's sampling), for cosface
/// and arcface.
pub(crate) fn sample_input_cases(dtype: Dtype, out: &mut Vec<Generated>) {
    // each variant with the margin that its per-sample margins are drawn around
    let margins = [
        (
            variant(
                LossId::CosFace,
                "cosface",
                json!({"scale": 64, "margin": 0.375}),
            ),
            0.375,
        ),
        (
            variant(
                LossId::ArcFace,
                "arcface-none-full",
                json!({"scale": 64, "margin": 0.5}),
            ),
            0.5,
        ),
        (
            variant(
                LossId::ArcFace,
                "arcface-thmm-full",
                json!({"scale": 64, "margin": 0.5, "boundary": "thmm"}),
            ),
            0.5,
        ),
        (
            variant(
                LossId::Combined,
                "combined",
                json!({"scale": 64, "m1": 1.25, "m2": 0.25, "m3": 0.125}),
            ),
            0.25,
        ),
        (
            variant(
                LossId::Combined,
                "combined-m3",
                json!({"scale": 64, "m1": 1.0, "m2": 0.25, "m3": 0.125, "margins_as": "m3"}),
            ),
            0.125,
        ),
    ];
    for (v, m) in margins {
        push(
            out,
            dtype,
            &v.name,
            v.loss,
            Regime::SampleMargins,
            2,
            &[],
            |draw, k| {
                let (n, c, d) = if k == 0 { (4, 6, 5) } else { (8, 16, 8) };
                let w = draw.normal_rows(c, d, 1.0);
                let labels = draw.labels(n, c);
                let angles: Vec<(f64, f64)> = (0..n)
                    .map(|_| {
                        let cos = draw.uniform(-0.9, 0.95);
                        (cos, (1.0 - cos * cos).max(0.0).sqrt())
                    })
                    .collect();
                let x = draw.features_at_angles(&w, &labels, &angles, (0.5, 2.0));
                let margins: Vec<f64> = (0..n).map(|_| draw.normal(m, 0.05)).collect();
                (
                    v.params.clone(),
                    json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels, "margins": margins}),
                    json!({"weights": "normal(0, 1)", "target_cos": "uniform[−0.9, 0.95]", "margins": format!("normal({m}, 0.05)")}),
                )
            },
        );
    }
    let subsets = [
        variant(
            LossId::CosFace,
            "cosface",
            json!({"scale": 64, "margin": 0.375}),
        ),
        variant(
            LossId::ArcFace,
            "arcface-none-full",
            json!({"scale": 64, "margin": 0.5}),
        ),
    ];
    for v in subsets {
        push(
            out,
            dtype,
            &v.name,
            v.loss,
            Regime::ClassSubset,
            4,
            &[],
            |draw, k| {
                let (n, c, d) = (6, 200, 6);
                let fraction = [0.01, 0.1, 0.5, 1.0][k];
                let w = draw.normal_rows(c, d, 1.0);
                let labels = draw.labels(n, c);
                let angles: Vec<(f64, f64)> = (0..n)
                    .map(|_| {
                        let cos = draw.uniform(-0.5, 0.95);
                        (cos, (1.0 - cos * cos).max(0.0).sqrt())
                    })
                    .collect();
                let x = draw.features_at_angles(&w, &labels, &angles, (0.5, 2.0));
                // Partial FC: the batch's classes, then others drawn until the fraction is met
                let mut keep = vec![false; c];
                for &y in &labels {
                    keep[y] = true;
                }
                let target = ((fraction * c as f64).round() as usize).max(2);
                while keep.iter().filter(|&&b| b).count() < target {
                    let j = draw.index(c);
                    keep[j] = true;
                }
                let classes: Vec<usize> = (0..c).filter(|&j| keep[j]).collect();
                (
                    v.params.clone(),
                    json!({"features": rows_json(&x), "weights": rows_json(&w), "labels": labels, "classes": classes}),
                    json!({"weights": "normal(0, 1)", "target_cos": "uniform[−0.5, 0.95]", "classes": format!("the labels, then uniform draws to {target} of {c} ({}%)", fraction * 100.0)}),
                )
            },
        );
    }
}
