//! T7 (SPEC §2) for SPEC §5's cross-entropy family: the degenerate options and parameters
//! that reduce to today's `softmax_ce`, as identities of the certified answers (the same
//! printed digits, through `lossref eval`'s parser and reference), on random batches of
//! every logit regime.
//!
//! * unit class weights change nothing; weights 2·1 leave `mean` unchanged and double `sum`;
//! * ignored rows are the rows removed (`sum`; and `mean` without weights);
//! * soft one-hot targets are the hard labels (no weights; with weights for `sum`);
//! * `focal` with γ = 0 is `softmax_ce` weighted by α (`sum`), and without α is
//!   `softmax_ce` (`mean`);
//! * `poly1` with ε = 0 is `softmax_ce`.

use crate::common;

use common::{any_batch, Batch};
use lossref::case::case_from_json;
use lossref::mp::certify::CertifiedAnswer;
use lossref::reference::certified;
use proptest::prelude::*;
use serde_json::{json, Value};

fn answer(case: &Value) -> CertifiedAnswer {
    let c = case_from_json(case).unwrap_or_else(|e| panic!("{case}: {e}"));
    certified(&c).unwrap_or_else(|e| panic!("{case}: {e}"))
}

/// Every value of `a` and `b`, in order, with its certified decimal; `b`'s scaled by
/// `factor` (exact: 1 or 2) where `scaled(place)`.
fn assert_same(what: &str, a: &CertifiedAnswer, b: &CertifiedAnswer, factor: &dyn Fn(&str) -> f64) {
    for (section, name, t) in a.answer.sections() {
        let other = if section == "outputs" {
            b.answer.output(name)
        } else {
            b.answer.gradient(name)
        };
        let other = other.unwrap_or_else(|| panic!("{what}: {section}.{name} missing"));
        assert_eq!(
            t.values().len(),
            other.values().len(),
            "{what}: {section}.{name}"
        );
        let f = factor(&format!("{section}/{name}"));
        for (k, (x, y)) in t.values().iter().zip(other.values()).enumerate() {
            // an exact factor: the enclosures meet (the binary64 roundings need not scale
            // exactly among subnormals)
            let same = if f == 1.0 {
                x.decimal == y.decimal
            } else {
                x.enclosure.overlaps(&y.enclosure.mul_f64(f))
            };
            assert!(
                same,
                "{what}: {section}.{name}[{k}]: {} vs {} × {f}",
                x.decimal, y.decimal
            );
        }
    }
}

fn rows(b: &Batch) -> Vec<Vec<f64>> {
    b.logits.iter_rows().map(<[f64]>::to_vec).collect()
}

fn one_hot(b: &Batch) -> Vec<Vec<f64>> {
    let c = b.logits.cols();
    b.labels
        .iter()
        .map(|&y| (0..c).map(|j| if j == y { 1.0 } else { 0.0 }).collect())
        .collect()
}

fn check(b: &Batch, sum: bool) {
    let reduction = if sum { "sum" } else { "mean" };
    let c = b.logits.cols();
    let plain = answer(
        &json!({"loss": "softmax_ce", "params": {"reduction": reduction},
        "inputs": {"logits": rows(b), "labels": b.labels}}),
    );
    let same = |_: &str| 1.0;
    let with = |params: Value, inputs: Value| {
        let mut case = json!({"loss": "softmax_ce", "params": {"reduction": reduction}, "inputs": {"logits": rows(b)}});
        for (k, v) in params.as_object().unwrap() {
            case["params"][k] = v.clone();
        }
        for (k, v) in inputs.as_object().unwrap() {
            case["inputs"][k] = v.clone();
        }
        answer(&case)
    };
    let unit = with(
        json!({}),
        json!({"labels": b.labels, "weight": vec![1.0; c]}),
    );
    assert_same("unit weights", &unit, &plain, &same);
    let twice = with(
        json!({}),
        json!({"labels": b.labels, "weight": vec![2.0; c]}),
    );
    assert_same("weights 2·1", &twice, &plain, &|_| {
        if sum {
            2.0
        } else {
            1.0
        }
    });
    let smoothing_zero = with(
        json!({"label_smoothing": 0.0, "ignore_index": -100}),
        json!({"labels": b.labels, "weight": vec![1.0; c]}),
    );
    assert_same(
        "ε = 0, an ignore index no row carries",
        &smoothing_zero,
        &plain,
        &same,
    );
    let soft = with(json!({}), json!({"targets": one_hot(b)}));
    assert_same("soft one-hot targets", &soft, &plain, &same);
    if sum {
        // with weights, one-hot targets equal labels for `sum` only (`mean` divides soft
        // targets by N and labels by Σ w_y, as in PyTorch)
        let w: Vec<f64> = (0..c).map(|j| 0.5 + j as f64).collect();
        let hard = with(json!({}), json!({"labels": b.labels, "weight": w}));
        let soft = with(json!({}), json!({"targets": one_hot(b), "weight": w}));
        assert_same("weighted one-hot targets, sum", &soft, &hard, &same);
        // focal γ = 0 is softmax_ce weighted by α
        let focal = answer(
            &json!({"loss": "focal", "params": {"gamma": 0.0, "reduction": "sum"},
            "inputs": {"logits": rows(b), "labels": b.labels, "alpha": w}}),
        );
        assert_same("focal γ = 0 with α", &focal, &hard, &same);
    } else {
        let focal = answer(&json!({"loss": "focal", "params": {"gamma": 0.0},
            "inputs": {"logits": rows(b), "labels": b.labels}}));
        assert_same("focal γ = 0", &focal, &plain, &same);
    }
    let poly = answer(
        &json!({"loss": "poly1", "params": {"epsilon": 0.0, "reduction": reduction},
        "inputs": {"logits": rows(b), "labels": b.labels}}),
    );
    assert_same("poly1 ε = 0", &poly, &plain, &same);
    // ignored rows are the rows removed (the kept rows' gradient rows; the ignored ones 0)
    if b.labels.len() > 1 {
        let mut labels: Vec<i64> = b.labels.iter().map(|&y| y as i64).collect();
        labels[0] = -100;
        let ignored = with(json!({"ignore_index": -100}), json!({"labels": labels}));
        let kept = answer(
            &json!({"loss": "softmax_ce", "params": {"reduction": reduction},
            "inputs": {"logits": rows(b)[1..].to_vec(), "labels": b.labels[1..].to_vec()}}),
        );
        let loss =
            |a: &CertifiedAnswer| a.answer.output("loss").unwrap().values()[0].decimal.clone();
        assert_eq!(loss(&ignored), loss(&kept), "ignored row 0: the loss");
        let g = ignored.answer.gradient("logits").unwrap().values();
        let k = kept.answer.gradient("logits").unwrap().values();
        assert!(
            g[..c].iter().all(|v| v.decimal == "0"),
            "an ignored row has no gradient"
        );
        for (x, y) in g[c..].iter().zip(k) {
            assert_eq!(x.decimal, y.decimal, "ignored row 0: a kept gradient entry");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(16)))]

    #[test]
    fn t7_the_options_reduce_to_softmax_ce(b in any_batch(false), sum in any::<bool>()) {
        check(&b, sum);
    }
}

#[test]
fn t7_the_options_reduce_to_softmax_ce_on_the_example() {
    let b = Batch {
        logits: lossref::matrix::Matrix::from_rows(vec![
            vec![1.1, 2.2, 5.0, 10.1],
            vec![3.0, -1.5, 0.25, 2.0],
        ])
        .unwrap(),
        labels: vec![3, 0],
    };
    check(&b, false);
    check(&b, true);
}
