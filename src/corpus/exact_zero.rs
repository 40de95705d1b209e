//! The exact-zero family of cases (tag `edge:exact-zero`): inputs where symmetry and
//! special angles make gradient entries exactly 0 (SPEC.md "Exact zeros").
//!
//! **Angles.** Small integer vectors whose angle θ to the target weight has a rational
//! cos²θ: 30°, 45°, 60°, 90°, 120°, 135°, 150° (x = [±3, 1, 1, 1], [±1, 1, 0, 0],
//! [±1, 1, 1, 1], [0, 1, 1, 0] against w = [2, 0, 0, 0]). These are every angle kπ/m
//! (m ≤ 6) that such vectors reach, where dψ/dcos θ = ±m·U_{m−1}(cos θ) vanishes; by Niven's
//! theorem no other kπ/m has a rational cos².
//!
//! **Symmetry.** Two more classes w₁ = e₅ and w₂ = −e₅ are orthogonal to every feature
//! (equal logits, opposite directions), a fourth class [1, 0, −2, 0, 0] breaks the rest of
//! the symmetry, and the second feature is the first mirrored in its second coordinate,
//! a reflection that fixes every class weight (two rows with the same logits whose
//! contributions to the weight gradients cancel).
//!
//! **Frames.** `axis` as above; `rotated`: everything multiplied by the orthogonal matrix
//! H/2 (H the 4×4 Hadamard matrix) on the first four coordinates, exact in binary32, so no
//! input is axis-aligned; `permuted`: rotated, with the classes reordered and the labels
//! following them.

use crate::corpus::generate::{exact_zero_case as generated, variant, Generated, Variant};
use crate::family::normalized::corpus::margin_variants_with;
use crate::spec::Dtype;
use crate::spec::LossId;
use serde_json::{json, Value};

/// The special angles: (degrees, a feature at that angle to e₁ in ℝ⁴).
pub const ANGLES: [(u32, [f64; 4]); 7] = [
    (30, [3.0, 1.0, 1.0, 1.0]),
    (45, [1.0, 1.0, 0.0, 0.0]),
    (60, [1.0, 1.0, 1.0, 1.0]),
    (90, [0.0, 1.0, 1.0, 0.0]),
    (120, [-1.0, 1.0, 1.0, 1.0]),
    (135, [-1.0, 1.0, 0.0, 0.0]),
    (150, [-3.0, 1.0, 1.0, 1.0]),
];

/// How the base configuration is presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Axis-aligned, as constructed.
    Axis,
    /// Rotated by H/2.
    Rotated,
    /// Rotated, classes reordered.
    Permuted,
}

impl Frame {
    /// Every frame.
    pub const ALL: [Frame; 3] = [Frame::Axis, Frame::Rotated, Frame::Permuted];

    /// The name used in ids and generator descriptions.
    pub fn as_str(self) -> &'static str {
        match self {
            Frame::Axis => "axis",
            Frame::Rotated => "rotated",
            Frame::Permuted => "permuted",
        }
    }
}

/// The new order of the four classes in the `permuted` frame (new class k is old
/// class `PERMUTATION[k]`).
const PERMUTATION: [usize; 4] = [2, 0, 3, 1];

/// H/2 on the first four coordinates (an exact orthogonal map), identity on the fifth.
fn rotate(v: &[f64]) -> Vec<f64> {
    const H: [[f64; 4]; 4] = [
        [1.0, 1.0, 1.0, 1.0],
        [1.0, -1.0, 1.0, -1.0],
        [1.0, 1.0, -1.0, -1.0],
        [1.0, -1.0, -1.0, 1.0],
    ];
    let mut out: Vec<f64> = H
        .iter()
        .map(|h| h.iter().zip(v).map(|(a, b)| a * b).sum::<f64>() / 2.0)
        .collect();
    out.extend_from_slice(&v[4..]);
    out
}

/// Features, class weights and labels of the base configuration at `angle`, in `frame`.
pub fn configuration(
    feature: [f64; 4],
    frame: Frame,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<usize>) {
    let five = |v: [f64; 4]| vec![v[0], v[1], v[2], v[3], 0.0];
    let x0 = five(feature);
    let mut x1 = x0.clone();
    x1[1] = -x1[1];
    let weights = vec![
        vec![2.0, 0.0, 0.0, 0.0, 0.0],
        vec![0.0, 0.0, 0.0, 0.0, 1.0],
        vec![0.0, 0.0, 0.0, 0.0, -1.0],
        vec![1.0, 0.0, -2.0, 0.0, 0.0],
    ];
    let features = vec![x0, x1];
    let labels = vec![0, 0];
    match frame {
        Frame::Axis => (features, weights, labels),
        Frame::Rotated | Frame::Permuted => {
            let features: Vec<Vec<f64>> = features.iter().map(|v| rotate(v)).collect();
            let weights: Vec<Vec<f64>> = weights.iter().map(|v| rotate(v)).collect();
            if frame == Frame::Rotated {
                return (features, weights, labels);
            }
            let permuted = PERMUTATION.iter().map(|&k| weights[k].clone()).collect();
            let new_label = |y: usize| PERMUTATION.iter().position(|&k| k == y).unwrap_or(y);
            (
                features,
                permuted,
                labels.into_iter().map(new_label).collect(),
            )
        }
    }
}

/// The variants with features and weights: every normalized-margin rule (every ArcFace
/// boundary and gradient; `combined` with a transcendental, an algebraic and a
/// non-integer rule) and ψ with m = 1 … 6 (and λ > 0). All parameters are exact in
/// binary32.
fn angle_variants() -> Vec<Variant> {
    let combined = |name: &str, params: Value| variant(LossId::Combined, name, params);
    let mut v = margin_variants_with(vec![
        combined(
            "combined-arc",
            json!({"scale": 64, "m1": 1, "m2": 0.5, "m3": 0}),
        ),
        combined(
            "combined-m1-2",
            json!({"scale": 32, "m1": 2, "m2": 0, "m3": 0.25}),
        ),
        combined(
            "combined-m1-1.5",
            json!({"scale": 64, "m1": 1.5, "m2": 0.25, "m3": 0.125}),
        ),
    ]);
    for (loss, name) in [
        (LossId::LSoftmax, "lsoftmax"),
        (LossId::SphereFace, "sphereface"),
    ] {
        for m in 1..=6 {
            v.push(variant(loss, &format!("{name}-m{m}"), json!({"margin": m})));
        }
        v.push(variant(
            loss,
            &format!("{name}-m4-lambda"),
            json!({"margin": 4, "lambda": 1.5}),
        ));
    }
    v
}

/// The angles θ, in degrees, where `v`'s requested gradient does not exist (SPEC §1), by
/// its family's switch points: among the special angles, only ArcFace's `easy` switch at
/// 90° with the full gradient.
fn undefined_degrees(v: &Variant) -> Vec<f64> {
    crate::family::switch_points(v.loss, &Value::Object(v.params.clone()))
        .expect("the exact-zero variants' parameters are valid")
        .iter()
        .filter(|p| p.undefined)
        .map(|p| p.theta.to_degrees())
        .collect()
}

/// Every case of the family in the given frames, for `dtype` (the numbers are small
/// dyadic rationals, exact in both dtypes).
pub fn cases(dtype: Dtype, frames: &[Frame]) -> Vec<Generated> {
    let mut out = Vec::new();
    for v in angle_variants() {
        let undefined = undefined_degrees(&v);
        let mut k = 0;
        for frame in frames {
            for (degrees, feature) in ANGLES {
                if undefined
                    .iter()
                    .any(|u| (u - f64::from(degrees)).abs() < 1e-9)
                {
                    continue;
                }
                let (x, w, labels) = configuration(feature, *frame);
                let id = format!("{}/edge-exact-zero/{}-{k:04}", v.name, dtype.short());
                k += 1;
                out.push(generated(
                    id,
                    dtype,
                    v.loss,
                    Value::Object(v.params.clone()),
                    json!({"features": x, "weights": w, "labels": labels}),
                    json!({"angle": format!("{degrees}°"), "frame": frame.as_str(),
                           "construction": "target at a special angle; classes ±e₅ orthogonal to every feature; second feature mirrored"}),
                ));
            }
        }
    }
    // the families' own symmetric constructions
    out.extend(crate::family::exact_zero_cases(dtype));
    out
}

/// The family as the corpus holds it: the `permuted` frame (no input axis-aligned, the
/// target not first), both dtypes.
pub fn corpus_cases(dtype: Dtype) -> Vec<Generated> {
    cases(dtype, &[Frame::Permuted])
}
