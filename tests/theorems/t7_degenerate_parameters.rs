//! T7 (SPEC §2), degenerate parameters: the identities that the loss tests do not already
//! check. amsoftmax is cosface; a zero margin with a detached gradient is normface; the
//! identities hold at the user's surface (`lossref eval` prints the same digits) and in
//! the fast paths (bit for bit where the arithmetic is the same). The others are in
//! tests/reference_losses/normalized_reference.rs, tests/reference_losses/psi_reference.rs and tests/reference_losses/distill_center_reference.rs;
//! `proofs/t7_degenerate_parameters.md` lists them all.

use crate::common;

use common::geometry::{problem, Angle, Problem};
use common::{deterministic_runner, run_with_stdin};
use lossref::case::parse_case;
use lossref::family::normalized::fast::MarginLoss;
use lossref::fast::real::Real;
use lossref::matrix::Matrix;
use lossref::mp::certify::CertifiedAnswer;
use lossref::reference::certified;
use lossref::spec::{Boundary, Case, LossId, Margin, MarginGrad, NormalizedCase, Reduction};
use proptest::prelude::*;
use serde_json::{json, Value};

fn case(
    features: &Matrix<f64>,
    weights: &Matrix<f64>,
    labels: &[usize],
    loss: LossId,
    margin: Margin,
    scale: f64,
    reduction: Reduction,
) -> Case {
    Case::Normalized(NormalizedCase {
        loss,
        scale,
        margin,
        reduction,
        features: features.clone(),
        weights: weights.clone(),
        labels: labels.to_vec(),
        margins: None,
        margins_as: Default::default(),
        classes: None,
    })
}

/// Every output and the feature and weight gradients are the same certified values.
fn assert_same_answer(what: &str, a: &CertifiedAnswer, b: &CertifiedAnswer) {
    for (section, name, t) in a.answer.sections() {
        if name == "scale" {
            continue; // only normface has ∂L/∂s
        }
        let other = if section == "outputs" {
            b.answer.output(name)
        } else {
            b.answer.gradient(name)
        };
        let other = other.unwrap_or_else(|| panic!("{what}: {section}.{name} missing"));
        for (k, (x, y)) in t.values().iter().zip(other.values()).enumerate() {
            assert!(
                x.decimal == y.decimal && x.f64.to_bits() == y.f64.to_bits(),
                "{what}: {section}.{name}[{k}]: {} vs {}",
                x.decimal,
                y.decimal
            );
        }
    }
}

#[test]
fn t7_amsoftmax_is_cosface_with_other_defaults() {
    // Same mathematics: identical certified answers for any scale and margin ...
    let mut runner = deterministic_runner(common::cases(12));
    let angles = proptest::sample::select(Angle::ALL.to_vec());
    let strategy = (angles, 0.05f64..0.8, 1.0f64..64.0)
        .prop_flat_map(|(a, m, s)| (problem(a, m, false), Just((m, s))));
    runner
        .run(&strategy, |(p, (m, s))| {
            let r = Reduction::Sum;
            let am = certified(&case(
                &p.features,
                &p.weights,
                &p.labels,
                LossId::AmSoftmax,
                Margin::Additive { m },
                s,
                r,
            ))
            .unwrap();
            let cos = certified(&case(
                &p.features,
                &p.weights,
                &p.labels,
                LossId::CosFace,
                Margin::Additive { m },
                s,
                r,
            ))
            .unwrap();
            assert_same_answer("amsoftmax = cosface", &am, &cos);
            Ok(())
        })
        .unwrap();
    // ... and amsoftmax's defaults are cosface with s = 30, m = 0.35.
    let inputs = json!({"features": [[0.5, -1.25], [2.0, 0.75]], "weights": [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], "labels": [0, 2]});
    let am = parse_case(&json!({"loss": "amsoftmax", "inputs": inputs}).to_string()).unwrap();
    let cos = parse_case(
        &json!({"loss": "cosface", "params": {"scale": 30, "margin": 0.35}, "inputs": inputs})
            .to_string(),
    )
    .unwrap();
    assert_same_answer(
        "amsoftmax defaults",
        &certified(&am).unwrap(),
        &certified(&cos).unwrap(),
    );
}

#[test]
fn t7_zero_margin_with_a_detached_gradient_is_normface() {
    let mut runner = deterministic_runner(common::cases(12));
    let angles = proptest::sample::select(Angle::ALL.to_vec());
    let strategy = (angles, 1.0f64..64.0).prop_flat_map(|(a, s)| (problem(a, 0.3, false), Just(s)));
    runner
        .run(&strategy, |(p, s)| {
            let r = Reduction::Mean;
            let normface = certified(&case(
                &p.features,
                &p.weights,
                &p.labels,
                LossId::NormFace,
                Margin::None,
                s,
                r,
            ))
            .unwrap();
            for boundary in Boundary::ALL {
                let arc = Margin::Angular {
                    m: 0.0,
                    boundary,
                    grad: MarginGrad::Detached,
                };
                let a = certified(&case(
                    &p.features,
                    &p.weights,
                    &p.labels,
                    LossId::ArcFace,
                    arc,
                    s,
                    r,
                ))
                .unwrap();
                assert_same_answer(
                    &format!("arcface(0, {}, detached) = normface", boundary.as_str()),
                    &a,
                    &normface,
                );
            }
            Ok(())
        })
        .unwrap();
}

fn eval(case: &Value) -> Value {
    let out = run_with_stdin(
        env!("CARGO_BIN_EXE_lossref"),
        &["eval", "-"],
        &case.to_string(),
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn t7_eval_prints_the_normface_answer_for_every_zero_margin() {
    let inputs = json!({"features": [[0.5, -1.25, 3.0], [2.0, 0.75, -0.5], [-1.0, 1.0, 1.0]],
                        "weights": [[1.0, 0.0, 0.5], [0.0, 1.0, -2.0], [-1.0, -1.0, 0.25], [0.125, 3.0, 1.0]],
                        "labels": [0, 2, 3]});
    let normface = eval(&json!({"loss": "normface", "params": {"scale": 24}, "inputs": inputs}));
    let variants = [
        json!({"loss": "cosface", "params": {"scale": 24, "margin": 0}}),
        json!({"loss": "amsoftmax", "params": {"scale": 24, "margin": 0}}),
        json!({"loss": "arcface", "params": {"scale": 24, "margin": 0}}),
        json!({"loss": "arcface", "params": {"scale": 24, "margin": 0, "boundary": "thmm"}}),
        json!({"loss": "arcface", "params": {"scale": 24, "margin": 0, "boundary": "easy", "margin_grad": "detached"}}),
        json!({"loss": "combined", "params": {"scale": 24, "m1": 1, "m2": 0, "m3": 0}}),
    ];
    for mut v in variants {
        v["inputs"] = inputs.clone();
        let got = eval(&v);
        assert_eq!(got["outputs"], normface["outputs"], "{v}");
        for g in ["features", "weights"] {
            assert_eq!(
                got["gradients"][g], normface["gradients"][g],
                "{v}: gradients.{g}"
            );
        }
        assert!(
            got["gradients"].get("scale").is_none(),
            "only normface learns s"
        );
    }
}

/// The fast path's loss and gradients as the bits of their (exact) f64 widenings.
fn fast_bits<T: Real>(p: &Problem, scale: f64, margin: Margin) -> Vec<u64> {
    let narrow = |m: &Matrix<f64>| {
        m.as_slice()
            .iter()
            .map(|&v| T::of_f64(v))
            .collect::<Vec<T>>()
    };
    let fast = MarginLoss {
        scale,
        margin,
        reduction: Reduction::Mean,
    };
    let g = fast
        .forward_backward(
            &narrow(&p.features),
            &narrow(&p.weights),
            &p.labels,
            p.features.cols(),
            1,
        )
        .unwrap();
    std::iter::once(g.loss)
        .chain(g.features)
        .chain(g.weights)
        .map(|v| v.as_f64().to_bits())
        .collect()
}

#[test]
fn t7_fast_zero_margin_cosface_is_fast_normface_bit_for_bit() {
    // In binary64 and binary32, c − 0 = c exactly, so the fast paths agree to the bit
    // (amsoftmax is the same fast `MarginLoss` as cosface).
    let mut runner = deterministic_runner(common::cases(16));
    let angles = proptest::sample::select(Angle::ALL.to_vec());
    let strategy = (angles, 1.0f64..64.0).prop_flat_map(|(a, s)| (problem(a, 0.3, true), Just(s)));
    runner
        .run(&strategy, |(p, s)| {
            let zero = Margin::Additive { m: 0.0 };
            prop_assert_eq!(
                fast_bits::<f64>(&p, s, Margin::None),
                fast_bits::<f64>(&p, s, zero)
            );
            prop_assert_eq!(
                fast_bits::<f32>(&p, s, Margin::None),
                fast_bits::<f32>(&p, s, zero)
            );
            Ok(())
        })
        .unwrap();
}
