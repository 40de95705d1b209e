//! `lossref eval`, end to end, against an independent reference written in Python with
//! mpmath (`tests/mpmath_reference.py`): different language, different arbitrary-precision
//! library, literal definitions. Every printed value must agree to ≥ 30 significant digits
//! over generated cases from every regime (logits up to ±1e3, losses down to 1e−300), and
//! for the normalized-margin family over every variant and target-angle regime (switch
//! points, cos θ near 0 and ±1).
//! Needs `python3` with `mpmath` (`python3 -m pip install mpmath`).

use crate::common;

use common::geometry::{problem, Angle};
use common::mpmath::{self, run};
use common::{any_batch, deterministic_runner};
use lossref::numdiff::agreement_digits;
use proptest::strategy::{Strategy, ValueTree};
use rug::Float;
use serde_json::{json, Value};

/// The generated cases: softmax (several temperatures) and softmax_ce (both reductions).
fn cases() -> Vec<Value> {
    let mut runner = deterministic_runner(1);
    let mut out = vec![
        json!({"loss": "softmax", "inputs": {"logits": [[1.1, 2.2, 5.0, 10.1]]}}),
        json!({"loss": "softmax_ce", "params": {"reduction": "sum"},
               "inputs": {"logits": [[690.8, 0.0, -5.0]], "labels": [0]}}),
    ];
    for k in 0..common::cases(24) {
        let b = any_batch(false).new_tree(&mut runner).unwrap().current();
        let logits: Vec<Vec<f64>> = b.logits.iter_rows().map(<[f64]>::to_vec).collect();
        out.push(if k % 2 == 0 {
            let t = [1.0, 0.5, 2.0, 0.75][(k / 2 % 4) as usize];
            json!({"loss": "softmax", "params": {"temperature": t}, "inputs": {"logits": logits}})
        } else {
            let reduction = if k % 4 == 1 { "mean" } else { "sum" };
            json!({"loss": "softmax_ce", "params": {"reduction": reduction},
                   "inputs": {"logits": logits, "labels": b.labels}})
        });
    }
    let variants = [
        json!({"loss": "normface", "params": {"scale": 16}}),
        json!({"loss": "cosface", "params": {"reduction": "sum"}}),
        json!({"loss": "amsoftmax"}),
        json!({"loss": "arcface", "params": {"boundary": "none"}}),
        json!({"loss": "arcface", "params": {"boundary": "thmm", "reduction": "sum"}}),
        json!({"loss": "arcface", "params": {"boundary": "easy"}}),
        json!({"loss": "arcface", "params": {"boundary": "thmm", "margin_grad": "detached"}}),
        json!({"loss": "combined", "params": {"m1": 1.35, "m2": 0.25, "m3": 0.1}}),
    ];
    out.extend([
        json!({"loss": "distill", "inputs": {"student_logits": [[1.5, -0.25, 3.0], [0.5, 0.5, -2.0]],
            "teacher_logits": [[2.0, 0.0, 1.0], [-1.0, 4.0, 0.25]], "labels": [2, 0]}}),
        json!({"loss": "distill", "params": {"temperature": 2.5, "alpha": 0.3, "soft": "ce", "reduction": "sum"},
            "inputs": {"student_logits": [[10.0, -3.0, 0.125, 7.5]], "teacher_logits": [[9.0, -1.0, 2.0, 2.0]], "labels": [3]}}),
        json!({"loss": "center", "params": {"alpha": 0.25}, "inputs": {"features": [[1.5, -2.0], [0.25, 3.0], [4.0, 4.0]],
            "centers": [[1.0, -1.0], [0.0, 2.5], [7.0, 7.0]], "labels": [0, 1, 1]}}),
        json!({"loss": "center", "params": {"reduction": "sum"}, "inputs": {"features": [[1.0, 2.0, 3.0]],
            "centers": [[0.5, 0.5, 0.5], [-1.0, -1.0, -1.0]], "labels": [1]}}),
    ]);
    for (k, angle) in Angle::ALL.into_iter().enumerate() {
        let p = problem(angle, 0.5, false)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let rows = |m: &lossref::matrix::Matrix<f64>| {
            m.iter_rows().map(<[f64]>::to_vec).collect::<Vec<_>>()
        };
        let (loss, m, lambda) = [
            ("lsoftmax", 2, 0.0),
            ("sphereface", 4, 0.0),
            ("lsoftmax", 3, 1.5),
            ("sphereface", 5, 0.25),
            ("lsoftmax", 6, 0.0),
        ][k];
        out.push(json!({"loss": loss, "params": {"margin": m, "lambda": lambda},
            "inputs": {"features": rows(&p.features), "weights": rows(&p.weights), "labels": p.labels}}));
    }
    out.extend(option_cases());
    for (k, angle) in Angle::ALL.into_iter().enumerate() {
        for (v, variant) in variants.iter().enumerate() {
            if (k + v) % 2 == 1 {
                continue;
            }
            let p = problem(angle, 0.5, false)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let rows = |m: &lossref::matrix::Matrix<f64>| {
                m.iter_rows().map(<[f64]>::to_vec).collect::<Vec<_>>()
            };
            let mut case = variant.clone();
            case["inputs"] = json!({"features": rows(&p.features), "weights": rows(&p.weights), "labels": p.labels});
            out.push(case);
        }
    }
    out
}

/// SPEC §5: `softmax_ce`'s options, `focal` and `poly1`, per-sample margins, class subsets,
/// `subcenter_arcface` and the adaptive margins, on hand-picked cases (a dominant
/// target with a fractional γ, ignored rows with PyTorch's −100 and with a class index) and
/// on the first case of every corpus generator of these losses (every option set, regime
/// and dtype).
fn option_cases() -> Vec<Value> {
    let mut out = vec![
        json!({"loss": "softmax_ce", "params": {"label_smoothing": 0.1, "ignore_index": -100},
            "inputs": {"logits": [[1.1, 2.2, 5.0, 10.1], [3.0, -1.5, 0.25, 2.0], [0.5, 0.5, 0.5, 0.5]],
                       "labels": [3, 0, -100], "weight": [0.5, 1.0, 2.0, 4.0]}}),
        json!({"loss": "softmax_ce", "params": {"reduction": "sum", "ignore_index": 2, "label_smoothing": 1e-6},
            "inputs": {"logits": [[300.0, 2.0, -1.0], [0.0, 1.0, 2.0]], "labels": [0, 2]}}),
        json!({"loss": "softmax_ce", "params": {"label_smoothing": 0.25},
            "inputs": {"logits": [[1.0, 2.0, 3.0], [0.0, 0.0, 40.0]], "targets": [[0.2, 0.3, 0.5], [0.0, 0.0, 1.5]],
                       "weight": [1e-6, 1.0, 1e6]}}),
        json!({"loss": "focal", "params": {"gamma": 0.5},
            "inputs": {"logits": [[40.0, 0.0, -3.0], [0.0, 1.0, 2.0]], "labels": [0, 1], "alpha": [0.75, 0.25, 0.25]}}),
        json!({"loss": "poly1", "params": {"epsilon": -1.0, "reduction": "sum"},
            "inputs": {"logits": [[25.0, 0.0, 1.0], [0.0, 1.0, 2.0]], "labels": [0, 1]}}),
        json!({"loss": "arcface", "params": {"scale": 16, "boundary": "thmm"},
            "inputs": {"features": [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [2.0, 0.1, 0.1]],
                       "weights": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, -1.0, 0.0]],
                       "labels": [0, 2, 3], "margins": [0.45, 0.55, 0.5], "classes": [0, 2, 3, 4]}}),
        json!({"loss": "combined", "params": {"m1": 1.1, "m2": 0.2, "m3": 0.1, "margins_as": "m3", "reduction": "sum"},
            "inputs": {"features": [[1.0, -2.0], [0.5, 0.5]], "weights": [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.25]],
                       "labels": [1, 2], "margins": [0.05, 0.3], "classes": [1, 2]}}),
    ];
    for g in lossref::corpus::all_cases() {
        let loss = g.case["loss"].as_str().unwrap_or_default();
        let with_options = loss == "softmax_ce"
            && !g.id.starts_with("softmax_ce-mean")
            && !g.id.starts_with("softmax_ce-sum")
            && !g.id.starts_with("softmax_ce/");
        // SPEC §5's per-sample margins and sub-center ArcFace (the corpus's subsets hold 200
        // classes, too many for central differences at 400 digits: hand-picked below)
        let sample_inputs = g.tags.iter().any(|t| t == "input:per-sample-margins");
        let subcenter = loss == "subcenter_arcface";
        if (with_options || loss == "focal" || loss == "poly1" || sample_inputs || subcenter)
            && g.id.ends_with("-0000")
        {
            out.push(g.case.clone());
        }
        // the adaptive margins' every generator and regime, its float64 case (the central
        // differences at 400 digits hold their batch state constant)
        let adaptive = ["curricularface", "adaface", "magface", "adacos"].contains(&loss);
        if adaptive && g.id.ends_with("f64-0000") {
            out.push(g.case.clone());
        }
    }
    out
}

#[test]
fn eval_agrees_with_mpmath() {
    let cases = cases();
    let worst = mpmath::eval_agrees(&cases);
    eprintln!(
        "{} cases; the least agreement was {worst:.1} digits",
        cases.len()
    );
}

#[test]
fn bound_agrees_with_mpmath() {
    // `lossref bound` at 40 digits against tests/mpmath_bounds.py at 120: the paper's
    // figures and a spread of n, C, s and P (exact decimals on both sides).
    let requests = [
        json!({"bound": "normface", "classes": "10575", "scale": "1"}),
        json!({"bound": "normface", "classes": "2", "scale": "0"}),
        json!({"bound": "normface", "classes": "10", "scale": "16"}),
        json!({"bound": "normface", "classes": "1000000", "scale": "0.3"}),
        json!({"bound": "normface", "classes": "85742", "scale": "64"}),
        json!({"bound": "normface-ceiling", "classes": "10"}),
        json!({"bound": "normface-ceiling", "classes": "1000"}),
        json!({"bound": "normface-ceiling", "classes": "123456789"}),
        json!({"bound": "cosface-scale", "classes": "10575", "posterior": "0.9"}),
        json!({"bound": "cosface-scale", "classes": "2", "posterior": "0.5001"}),
        json!({"bound": "cosface-scale", "classes": "85742", "posterior": "0.999999"}),
        json!({"bound": "cosface-scale", "classes": "100", "posterior": "0.001"}),
        json!({"bound": "adacos-scale", "classes": "3"}),
        json!({"bound": "adacos-scale", "classes": "10575"}),
        json!({"bound": "adacos-scale", "classes": "1000000000"}),
    ];
    let lines: Vec<String> = requests.iter().map(Value::to_string).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mpmath_bounds.py");
    let mpmath = run("python3", &[script], &(lines.join("\n") + "\n"));
    let answers: Vec<Value> = mpmath
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), requests.len());
    let mut worst = f64::INFINITY;
    for (req, want) in requests.iter().zip(&answers) {
        let mut args = vec![
            "bound".to_string(),
            req["bound"].as_str().unwrap().to_string(),
        ];
        for key in ["classes", "scale", "posterior"] {
            if let Some(v) = req.get(key) {
                args.push(format!("--{key}"));
                args.push(v.as_str().unwrap().to_string());
            }
        }
        args.extend(["--digits".to_string(), "40".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let got: Value =
            serde_json::from_str(&run(env!("CARGO_BIN_EXE_lossref"), &args, "")).unwrap();
        for (key, w) in want.as_object().unwrap() {
            let g = Float::with_val(512, Float::parse(got[key].as_str().unwrap()).unwrap());
            let w = Float::with_val(512, Float::parse(w.as_str().unwrap()).unwrap());
            let d = agreement_digits(&g, &w);
            worst = worst.min(d);
            assert!(
                d >= 39.0,
                "{req} {key}: lossref {g} vs mpmath {w}: {d:.1} digits"
            );
        }
    }
    eprintln!(
        "{} bounds; the least agreement was {worst:.1} digits",
        requests.len()
    );
}

#[test]
fn the_mpmath_reference_has_a_formula_for_every_loss_of_the_catalogue_and_no_fallthrough() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mpmath_reference.py");
    let listed: Vec<String> = serde_json::from_str(&run("python3", &[script, "--losses"], ""))
        .expect("a JSON list of loss ids");
    let mut catalogue: Vec<String> = lossref::family::LOSSES
        .iter()
        .flat_map(|family| family.iter().map(|l| l.as_str().to_string()))
        .collect();
    catalogue.sort();
    assert_eq!(listed, catalogue, "tests/mpmath_reference.py's EVALUATE");
    // an unknown loss is an error, never another loss's formula
    let out = common::run_with_stdin("python3", &[script], "{\"loss\": \"nosuch\"}\n")
        .expect("python3 runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no formula for the loss 'nosuch'"));
}
