//! `lossref eval` as a user runs it: valid cases print the SPEC §3 object; every malformed
//! case is rejected with a message naming the place, exit status 1, and never a panic.

use crate::common;

use std::process::Output;

fn lossref(args: &[&str], stdin: &str) -> Output {
    common::run_with_stdin(env!("CARGO_BIN_EXE_lossref"), args, stdin).expect("run lossref")
}

fn eval_stdin(case: &str) -> Output {
    lossref(&["eval", "-"], case)
}

/// Asserts a clean rejection: exit 1, no panic, and a message containing `expected`.
fn rejects(case: &str, expected: &str) {
    let out = eval_stdin(case);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "case {case}\nstderr: {err}");
    assert!(!err.contains("panicked"), "case {case} panicked: {err}");
    assert!(
        out.stdout.is_empty(),
        "case {case} printed output on failure"
    );
    assert!(
        err.contains(expected),
        "case {case}\nexpected the message to contain {expected:?}\ngot: {err}"
    );
}

/// Runs `lossref ARGS` on `stdin`, asserts success and returns the printed JSON.
fn eval_ok(args: &[&str], stdin: &str) -> serde_json::Value {
    let out = lossref(args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?} {stdin}\nstderr: {err}"
    );
    serde_json::from_slice(&out.stdout).expect("eval prints JSON")
}

fn significant_digits(s: &str) -> usize {
    s.split('e')
        .next()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|&c| c == '0')
        .count()
}

fn all_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

#[test]
fn shipped_example_prints_the_spec_object() {
    let v = eval_ok(&["eval", "fixtures/examples/softmax_ce.json"], "");
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["loss", "outputs", "gradients", "certificate"]);
    assert_eq!(v["loss"], "softmax_ce");
    assert_eq!(v["certificate"]["tier"], "correctly_rounded");
    assert!(v["certificate"]["precision_bits"].as_u64().unwrap() >= 128);
    assert_eq!(v["gradients"]["logits"].as_array().unwrap().len(), 2);
    let mut values = Vec::new();
    all_strings(&v["outputs"], &mut values);
    all_strings(&v["gradients"], &mut values);
    assert_eq!(values.len(), 1 + 8);
    for s in values {
        assert!(
            significant_digits(&s) >= 34,
            "{s} has fewer than 34 significant digits"
        );
    }
}

#[test]
fn standard_input_and_binary64_option() {
    let v = eval_ok(
        &["eval", "-", "--binary64"],
        r#"{"loss": "softmax", "params": {"temperature": 2}, "inputs": {"logits": [[0, 0]]}}"#,
    );
    assert_eq!(
        v["outputs"]["probabilities"][0][0],
        "0.500000000000000000000000000000000000"
    );
    assert_eq!(v["binary64"]["outputs"]["probabilities"][0][1], "0x1p-1");
    assert_eq!(
        v["binary64"]["outputs"]["log_probabilities"][0][0],
        "-0x1.62e42fefa39efp-1"
    );
}

#[test]
fn huge_logits_give_certified_tiny_values() {
    // e^{−100001} is far below binary64 (it rounds to 0) but is still printed to 36 digits.
    let out =
        eval_stdin(r#"{"loss": "softmax", "inputs": {"logits": [[1, 2, 3], [-1, 0.5, 1e5]]}}"#);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["outputs"]["log_probabilities"][1][0],
        "-100001.000000000000000000000000000000"
    );
    assert!(v["outputs"]["probabilities"][1][0]
        .as_str()
        .unwrap()
        .ends_with("e-43430"));
}

#[test]
fn values_beyond_mpfr_exponent_range_are_bounded_with_certified_roundings() {
    // e^{−1e300 − 1} is below MPFR's least magnitude (about 2^−1073741824): its binary64
    // and binary32 roundings are +0 all the same, and its enclosure is a certified bound.
    let out = lossref(
        &["eval", "-", "--binary64"],
        r#"{"loss": "softmax", "inputs": {"logits": [[-1, 1e300]]}}"#,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["certificate"]["tier"], "bounded");
    // only the value beyond the range settles: the escalation does not run to the cap
    assert_eq!(v["certificate"]["precision_bits"], 192);
    let p = &v["outputs"]["probabilities"][0];
    let bound = p[0].as_str().unwrap();
    assert!(
        bound.starts_with("[0, ") && bound.ends_with("e-323228497]"),
        "{bound}"
    );
    assert_eq!(p[1], "1.00000000000000000000000000000000000");
    assert_eq!(v["binary64"]["outputs"]["probabilities"][0][0], "0x0p+0");
    assert_eq!(v["binary64"]["outputs"]["probabilities"][0][1], "0x1p+0");
    // log p₁ = −log(1 + e^{−1e300−1}) is a negative value beyond the range: −0
    let logp = &v["outputs"]["log_probabilities"][0];
    assert!(
        logp[1]
            .as_str()
            .unwrap()
            .starts_with("[-2.38257e-323228497, 0]"),
        "{logp}"
    );
    assert_eq!(
        v["binary64"]["outputs"]["log_probabilities"][0][1],
        "-0x0p+0"
    );
    assert_eq!(
        v["outputs"]["log_probabilities"][0][0],
        "-1.00000000000000005250476025520442025e300"
    );
}

#[test]
fn an_lsoftmax_feature_of_norm_1e150_is_answered_not_refused() {
    // The case of issue 12: the target dominates by ≈ 1e150, so the first row's gradient
    // is e^(−1e150)-small. Its entries are bounded (±0 in binary64); everything else keeps
    // 36 true digits.
    let out = lossref(
        &["eval", "-", "--binary64"],
        r#"{"loss": "lsoftmax", "params": {"margin": 2}, "inputs": {"features": [[1e150, 0.5], [3, -1]], "weights": [[1, 0], [0, 1], [-1, 0.25]], "labels": [0, 2]}}"#,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["certificate"]["tier"], "bounded");
    for k in 0..2 {
        let s = v["gradients"]["features"][0][k].as_str().unwrap();
        assert!(s.starts_with('[') && s.contains("e-4"), "{s}");
        let hex = v["binary64"]["gradients"]["features"][0][k]
            .as_str()
            .unwrap();
        assert!(hex == "0x0p+0" || hex == "-0x0p+0", "{hex}");
    }
    // the loss is row 1's alone (row 0's is e^(−1e150)-small), halved by the mean
    let loss = v["outputs"]["loss"].as_str().unwrap();
    assert!(!loss.starts_with('['), "{loss}");
    assert!(v["gradients"]["features"][1][0].as_str().unwrap().len() >= 36);
}

#[test]
fn malformed_json_is_rejected_with_its_position() {
    rejects(r#"{"loss": "softmax_ce", "inputs": "#, "line 1, column");
    rejects("", "not valid JSON");
    rejects(
        r#"{"loss": "softmax", "inputs": {"logits": [[1, 2]]}} trailing"#,
        "not valid JSON",
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    rejects(
        r#"{"loss": "softmax", "inputs": {"logits": [[1, 2]]}, "loss": "softmax_ce"}"#,
        "line 1, column 53: the key \"loss\" appears twice",
    );
    rejects(
        "{\"loss\": \"softmax_ce\",\n \"inputs\": {\"logits\": [[1, 2]], \"labels\": [0], \"lab\\u0065ls\": [1]}}",
        "line 2, column 48: the key \"lab\\u0065ls\" appears twice",
    );
    // The same key in different objects, and key-like strings inside values, are fine.
    let v = eval_ok(
        &["eval", "-"],
        r#"{"loss": "softmax", "params": {"temperature": 1}, "inputs": {"logits": [[1, 2]]}}"#,
    );
    assert_eq!(v["loss"], "softmax");
}

#[test]
fn unknown_losses_are_named_and_every_spec_loss_is_implemented() {
    rejects(
        r#"{"loss": "softmaxx", "inputs": {}}"#,
        "loss: unknown loss `softmaxx`",
    );
    rejects(r#"{"loss": 3, "inputs": {}}"#, "loss: expected a string");
    rejects(r#"{"inputs": {}}"#, "loss: missing");
    rejects(
        r#"{"loss": "softmaxx", "inputs": {}}"#,
        "SPEC §1 lists softmax, softmax_ce, distill, lsoftmax, sphereface, center, normface",
    );
    for id in lossref::spec::SPEC_LOSSES {
        assert!(
            lossref::spec::LossId::from_name(id).is_some(),
            "{id} is in SPEC §1 but not implemented"
        );
    }
}

#[test]
fn mistyped_names_are_answered_with_the_nearest_valid_one() {
    // a loss id, a parameter, an input: the message names what was given and what was meant
    rejects(
        r#"{"loss": "cosfase", "inputs": {}}"#,
        "loss: unknown loss `cosfase` (did you mean `cosface`?)",
    );
    rejects(
        r#"{"loss": "cosface", "params": {"margn": 0.3}, "inputs": {"features": [[1, 0]], "weights": [[1, 0], [0, 1]], "labels": [0]}}"#,
        "params.margn: unknown key (did you mean `margin`?); `cosface` takes the parameters scale, margin, reduction",
    );
    rejects(
        r#"{"loss": "softmax_ce", "inputs": {"logit": [[1, 2]], "labels": [0]}}"#,
        "inputs.logits: missing; `logit` is given (did you mean `logits`?)",
    );
    // and nothing is suggested where nothing is near
    rejects(
        r#"{"loss": "triplet", "inputs": {}}"#,
        "loss: unknown loss `triplet`; SPEC §1 lists",
    );
}

#[test]
fn unknown_keys_and_parameters_are_rejected() {
    rejects(
        r#"{"loss": "softmax", "inputs": {"logits": [[1, 2]]}, "extra": 1}"#,
        "extra: unknown key",
    );
    rejects(
        r#"{"loss": "softmax", "params": {"temp": 2}, "inputs": {"logits": [[1, 2]]}}"#,
        "params.temp: unknown key; `softmax` takes the parameters temperature",
    );
    rejects(
        r#"{"loss": "softmax_ce", "params": {"temperature": 2}, "inputs": {"logits": [[1, 2]], "labels": [0]}}"#,
        "params.temperature: unknown key; `softmax_ce` takes the parameters reduction",
    );
    rejects(
        r#"{"loss": "softmax", "inputs": {"logits": [[1, 2]], "labels": [0]}}"#,
        "inputs.labels: unknown key",
    );
    rejects(
        r#"{"loss": "softmax", "params": [], "inputs": {"logits": [[1, 2]]}}"#,
        "params: expected a JSON object",
    );
    rejects(r#"[1, 2]"#, "case: expected a JSON object");
}

#[test]
fn bad_parameter_values_are_rejected() {
    for t in ["0", "-1", "-0.0", "1e-400"] {
        rejects(
            &format!(
                r#"{{"loss": "softmax", "params": {{"temperature": {t}}}, "inputs": {{"logits": [[1, 2]]}}}}"#
            ),
            "params.temperature: must be a number > 0",
        );
    }
    rejects(
        r#"{"loss": "softmax", "params": {"temperature": "1"}, "inputs": {"logits": [[1, 2]]}}"#,
        "params.temperature: expected a number, got the string \"1\"",
    );
    rejects(
        r#"{"loss": "softmax", "params": {"temperature": 1e999}, "inputs": {"logits": [[1, 2]]}}"#,
        "params.temperature: 1e+999 overflows binary64",
    );
    rejects(
        r#"{"loss": "softmax_ce", "params": {"reduction": "avg"}, "inputs": {"logits": [[1, 2]], "labels": [0]}}"#,
        "params.reduction: must be \"mean\" or \"sum\"",
    );
}

#[test]
fn bad_matrices_are_rejected_by_row_and_entry() {
    let ce = |logits: &str, labels: &str| {
        format!(r#"{{"loss": "softmax_ce", "inputs": {{"logits": {logits}, "labels": {labels}}}}}"#)
    };
    rejects(
        &ce("[[1, 2, 3], [4, 5]]", "[0, 0]"),
        "inputs.logits[1]: has 2 entries but row 0 has 3",
    );
    rejects(&ce("[]", "[]"), "inputs.logits: is empty");
    rejects(
        &ce("[[1], [2]]", "[0, 0]"),
        "inputs.logits: has C = 1 class(es)",
    );
    rejects(&ce("[[]]", "[0]"), "C = 0");
    rejects(
        &ce("[[1, 2], [3, \"4\"]]", "[0, 0]"),
        "inputs.logits[1][1]: expected a number, got the string \"4\"",
    );
    rejects(
        &ce("[[1, 2], [3, null]]", "[0, 0]"),
        "inputs.logits[1][1]: expected a number, got null",
    );
    rejects(
        &ce("[[1, 1e400]]", "[0]"),
        "inputs.logits[0][1]: 1e+400 overflows binary64",
    );
    rejects(
        &ce("[[1, -2e308]]", "[0]"),
        "inputs.logits[0][1]: -2e+308 overflows binary64",
    );
    rejects(&ce("[1, 2]", "[0]"), "inputs.logits[0]: expected a row");
    rejects(
        &ce("{\"a\": 1}", "[0]"),
        "inputs.logits: expected an array of rows",
    );
    rejects(
        r#"{"loss": "softmax_ce", "inputs": {"labels": [0]}}"#,
        "inputs.logits: missing",
    );
    rejects(
        r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2]]}}"#,
        "inputs.labels: missing",
    );
}

#[test]
fn bad_labels_are_rejected() {
    let ce = |labels: &str| {
        format!(
            r#"{{"loss": "softmax_ce", "inputs": {{"logits": [[1, 2, 3], [4, 5, 6]], "labels": {labels}}}}}"#
        )
    };
    rejects(
        &ce("[0, 3]"),
        "inputs.labels[1]: label 3 is out of range 0..3",
    );
    rejects(
        &ce("[0]"),
        "inputs.labels: has 1 labels but the batch has N = 2 rows",
    );
    rejects(&ce("[0, 1, 2]"), "has 3 labels");
    rejects(
        &ce("[-1, 0]"),
        "inputs.labels[0]: label -1 is out of range 0..3 (C = 3) (a negative label marks an ignored row only with params.ignore_index)",
    );
    rejects(
        &ce("[1.5, 0]"),
        "inputs.labels[0]: expected an integer class index, got 1.5",
    );
    rejects(
        &ce("[\"1\", 0]"),
        "inputs.labels[0]: expected a class index, got the string",
    );
    rejects(&ce("[0, 99999999999999999999999]"), "inputs.labels[1]");
    rejects(
        &ce("3"),
        "inputs.labels: expected an array of class indices",
    );
}

#[test]
fn unreadable_and_oversized_files_are_rejected() {
    let out = lossref(&["eval", "no/such/case.json"], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("no/such/case.json: cannot open"), "{err}");

    let dir = std::env::temp_dir().join(format!("lossref-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((lossref::case::MAX_CASE_BYTES + 1) as u64)
        .unwrap(); // sparse: cheap to make
    let out = lossref(&["eval", big.to_str().unwrap()], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("larger than the limit of 67108864 bytes"),
        "{err}"
    );

    let binary = dir.join("binary.json");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let out = lossref(&["eval", binary.to_str().unwrap()], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn usage_errors_exit_with_2() {
    let out = lossref(&["eval"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = lossref(&["frobnicate"], "");
    assert_eq!(out.status.code(), Some(2));
}

const FEATURES: &str = r#""features": [[0.5, -1.25], [2.0, 0.75]]"#;
const WEIGHTS: &str = r#""weights": [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]"#;

fn margin_case(loss: &str, params: &str, inputs: &str) -> String {
    format!(r#"{{"loss": "{loss}", "params": {{{params}}}, "inputs": {{{inputs}}}}}"#)
}

#[test]
fn every_normalized_margin_loss_and_variant_evaluates() {
    let inputs = format!(r#"{FEATURES}, {WEIGHTS}, "labels": [0, 2]"#);
    let mut params = vec![
        ("normface", String::new()),
        ("cosface", r#""margin": -0.1"#.to_string()),
        (
            "amsoftmax",
            r#""scale": 10, "reduction": "sum""#.to_string(),
        ),
        (
            "combined",
            r#""m1": 0.9, "m2": 0.4, "m3": 0.15"#.to_string(),
        ),
    ];
    for boundary in ["none", "thmm", "easy"] {
        for grad in ["full", "detached"] {
            params.push((
                "arcface",
                format!(r#""boundary": "{boundary}", "margin_grad": "{grad}""#),
            ));
        }
    }
    for (loss, p) in params {
        let v = eval_ok(&["eval", "-"], &margin_case(loss, &p, &inputs));
        let mut keys: Vec<&str> = v["gradients"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let want: &[&str] = if loss == "normface" {
            &["features", "scale", "weights"]
        } else {
            &["features", "weights"]
        };
        assert_eq!(keys, want, "{loss} {p}");
        assert_eq!(v["certificate"]["tier"], "correctly_rounded");
    }
}

#[test]
fn normalized_margin_cases_are_validated() {
    let ok_inputs = format!(r#"{FEATURES}, {WEIGHTS}, "labels": [0, 2]"#);
    rejects(
        &margin_case("arcface", r#""boundary": "soft""#, &ok_inputs),
        r#"params.boundary: must be "none", "thmm" or "easy", got the string "soft""#,
    );
    rejects(
        &margin_case("arcface", r#""margin_grad": true"#, &ok_inputs),
        r#"params.margin_grad: must be "full" or "detached""#,
    );
    rejects(
        &margin_case("cosface", r#""boundary": "none""#, &ok_inputs),
        "params.boundary: unknown key; `cosface` takes the parameters scale, margin, reduction",
    );
    rejects(
        &margin_case("normface", r#""margin": 0.2"#, &ok_inputs),
        "params.margin: unknown key; `normface` takes the parameters scale, reduction",
    );
    rejects(
        &margin_case("cosface", r#""scale": 0"#, &ok_inputs),
        "params.scale: must be a number > 0, got 0",
    );
    rejects(
        &margin_case("combined", r#""m2": "0.5""#, &ok_inputs),
        "params.m2: expected a number",
    );
    rejects(
        &margin_case(
            "cosface",
            "",
            &format!(r#""features": [[0.5, -1.25], [0.0, -0.0]], {WEIGHTS}, "labels": [0, 2]"#),
        ),
        "inputs.features[1]: is a zero-norm row",
    );
    rejects(
        &margin_case(
            "cosface",
            "",
            &format!(r#"{FEATURES}, "weights": [[1, 0], [0, 0]], "labels": [0, 1]"#),
        ),
        "inputs.weights[1]: is a zero-norm row",
    );
    rejects(
        &margin_case(
            "cosface",
            "",
            &format!(r#"{FEATURES}, "weights": [[1, 0, 2], [0, 1, 0]], "labels": [0, 1]"#),
        ),
        "inputs.weights: has D = 3 columns but features has D = 2",
    );
    rejects(
        &margin_case(
            "cosface",
            "",
            &format!(r#"{FEATURES}, "weights": [[1, 0]], "labels": [0, 0]"#),
        ),
        "inputs.weights: has C = 1 class(es)",
    );
    rejects(
        &margin_case(
            "arcface",
            "",
            &format!(r#"{FEATURES}, {WEIGHTS}, "labels": [0, 3]"#),
        ),
        "inputs.labels[1]: label 3 is out of range 0..3",
    );
    rejects(
        &margin_case("arcface", "", &format!(r#"{FEATURES}, {WEIGHTS}"#)),
        "inputs.labels: missing",
    );
    rejects(
        &margin_case(
            "arcface",
            "",
            &format!(r#""features": [[0.5, -1.25], [4.0, 0.0]], {WEIGHTS}, "labels": [0, 0]"#),
        ),
        "inputs.features[1]: cos θ to its class weight inputs.weights[0] is exactly 1 (x ∥ w)",
    );
    rejects(
        &margin_case("arcface", r#""boundary": "easy""#, &format!(r#""features": [[0.5, -1.25], [0.0, 3.0]], {WEIGHTS}, "labels": [0, 0]"#)),
        "inputs.features[1]: cos θ to its class weight inputs.weights[0] is exactly 0, the `easy` switch",
    );
}

#[test]
fn bench_reports_the_fused_time_against_three_gemms() {
    let v = eval_ok(
        &[
            "bench",
            "arcface",
            "--batch",
            "8",
            "--dim",
            "16",
            "--classes",
            "50",
            "--dtype",
            "f64",
            "--threads",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "3",
            "--params",
            r#"{"boundary": "easy"}"#,
        ],
        "",
    );
    assert_eq!(v["loss"], "arcface");
    assert_eq!(v["params"]["boundary"], "easy");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["runs"]["fused_ms"].as_array().unwrap().len(), 3);
    let (fused, gemms, ratio) = (
        v["fused_ms"].as_f64().unwrap(),
        v["gemms_ms"].as_f64().unwrap(),
        v["ratio"].as_f64().unwrap(),
    );
    assert!(
        fused > 0.0 && gemms > 0.0 && (ratio - fused / gemms).abs() < 1e-9 * ratio,
        "{v}"
    );
    // the row kernels that ran: the best this CPU has, unless --kernels caps them
    let best = lossref::fast::simd::Kernels::detected();
    assert_eq!(v["kernels"], best.as_str(), "{v}");
    let capped = eval_ok(
        &[
            "bench",
            "cosface",
            "--batch",
            "4",
            "--dim",
            "8",
            "--classes",
            "10",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--kernels",
            "portable",
        ],
        "",
    );
    assert_eq!(capped["kernels"], "portable", "{capped}");
}

#[test]
fn bench_reference_times_the_certified_answer_against_the_fast_path() {
    let v = eval_ok(
        &[
            "bench",
            "cosface",
            "--batch",
            "2",
            "--dim",
            "8",
            "--classes",
            "5",
            "--threads",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "3",
            "--reference",
        ],
        "",
    );
    assert_eq!(v["loss"], "cosface");
    assert_eq!(v["reference_tier"], "correctly_rounded");
    // an answer small enough to print as JSON is certified with its decimal strings
    assert_eq!(v["reference_decimals"], true, "{v}");
    let (reference, fast, ratio) = (
        v["reference_s"].as_f64().unwrap(),
        v["fast_f64_ms"].as_f64().unwrap() / 1e3,
        v["ratio"].as_f64().unwrap(),
    );
    // both are timed, and the ratio is theirs (which is faster is a measurement, not a
    // test: on a loaded machine the fast path's thread pool can lose to a tiny case)
    assert!(reference > 0.0 && fast > 0.0, "{v}");
    assert!((ratio - reference / fast).abs() <= 1e-9 * ratio, "{v}");
    // Linux reports the peak resident memory; a certified run of this size stays small.
    let peak = v["peak_memory_mb"].as_f64().unwrap();
    assert!(peak > 0.0 && peak < 1024.0, "{v}");

    // softmax_ce: B×C logits, no --dim
    let v = eval_ok(
        &[
            "bench",
            "softmax_ce",
            "--batch",
            "3",
            "--classes",
            "40",
            "--threads",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "3",
            "--reference",
            "--params",
            r#"{"reduction": "sum"}"#,
        ],
        "",
    );
    assert_eq!(
        (v["loss"].as_str(), v["classes"].as_u64()),
        (Some("softmax_ce"), Some(40))
    );
    assert_eq!(v["params"]["reduction"], "sum");
    assert_eq!(v["reference_tier"], "correctly_rounded");
    let (reference, fast) = (
        v["reference_s"].as_f64().unwrap(),
        v["fast_f64_ms"].as_f64().unwrap() / 1e3,
    );
    assert!(reference > 0.0 && fast > 0.0, "{v}");
    // without --reference, softmax_ce is not a GEMM-based loss to time
    let out = lossref(
        &[
            "bench",
            "softmax_ce",
            "--batch",
            "3",
            "--dim",
            "2",
            "--classes",
            "40",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bench_rejects_what_it_cannot_time() {
    let bad = |args: &[&str], expected: &str| {
        let out = lossref(args, "");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    };
    let shape = ["--batch", "4", "--dim", "8", "--classes", "10"];
    bad(
        &[&["bench", "softmax_ce"], &shape[..]].concat(),
        "LOSS: `softmax_ce`: bench times the GEMM-based losses",
    );
    bad(
        &[&["bench", "cosface", "--dtype", "f16"], &shape[..]].concat(),
        "--dtype: must be f32 or f64",
    );
    bad(
        &[&["bench", "cosface", "--kernels", "avx521"], &shape[..]].concat(),
        "--kernels: `avx521` is not a kernel set: one of portable, avx2, avx512 (did you mean `avx512`?)",
    );
    bad(
        &[
            &["bench", "cosface", "--params", r#"{"scale": -1}"#],
            &shape[..],
        ]
        .concat(),
        "params.scale: must be a number > 0",
    );
    bad(
        &[
            "bench",
            "cosface",
            "--batch",
            "4",
            "--dim",
            "8",
            "--classes",
            "1",
        ],
        "--classes: a softmax needs C ≥ 2",
    );
    // sizes whose products overflow, or would allocate too much, are refused up front
    bad(
        &[
            "bench",
            "cosface",
            "--batch",
            "100000000000",
            "--dim",
            "100000000000",
            "--classes",
            "10",
        ],
        "--batch: B·D + C·D + B·C = more than usize values",
    );
    bad(
        &[
            "bench",
            "cosface",
            "--batch",
            "100000",
            "--dim",
            "100000",
            "--classes",
            "10",
        ],
        "is more than the 2147483648 a benchmark allocates",
    );
    let out = lossref(&["bench", "cosface"], "");
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --batch is a usage error"
    );
}

#[test]
fn distill_lsoftmax_sphereface_center_parameters_are_validated() {
    let distill = |params: &str| {
        format!(
            r#"{{"loss": "distill", "params": {{{params}}}, "inputs": {{"student_logits": [[1, 2]], "teacher_logits": [[2, 1]], "labels": [0]}}}}"#
        )
    };
    rejects(
        &distill(r#""temperature": 0"#),
        "params.temperature: must be a number > 0, got 0",
    );
    rejects(
        &distill(r#""temperature": -2"#),
        "params.temperature: must be a number > 0",
    );
    rejects(
        &distill(r#""alpha": 1.5"#),
        "params.alpha: must be in [0, 1], got 1.5",
    );
    rejects(
        &distill(r#""alpha": -0.1"#),
        "params.alpha: must be in [0, 1]",
    );
    rejects(
        &distill(r#""soft": "mse""#),
        r#"params.soft: must be "kl" or "ce", got the string "mse""#,
    );
    rejects(
        r#"{"loss": "distill", "inputs": {"student_logits": [[1, 2]], "teacher_logits": [[2, 1, 0]], "labels": [0]}}"#,
        "inputs.teacher_logits: is 1×3 but student_logits is 1×2",
    );
    let psi = |loss: &str, params: &str| {
        format!(
            r#"{{"loss": "{loss}", "params": {{{params}}}, "inputs": {{"features": [[1, 2]], "weights": [[2, 1], [0, 1]], "labels": [0]}}}}"#
        )
    };
    for loss in ["lsoftmax", "sphereface"] {
        rejects(
            &psi(loss, r#""margin": 2.5"#),
            "params.margin: must be an integer from 1 to 64, got 2.5",
        );
        rejects(
            &psi(loss, r#""margin": 0"#),
            "params.margin: must be an integer from 1 to 64, got 0",
        );
        rejects(
            &psi(loss, r#""margin": -3"#),
            "params.margin: must be an integer",
        );
        rejects(
            &psi(loss, r#""lambda": -1"#),
            "params.lambda: must be a number ≥ 0, got -1",
        );
        rejects(&psi(loss, r#""scale": 2"#), &format!("params.scale: unknown key; `{loss}` takes the parameters margin, lambda, reduction"));
    }
    rejects(
        r#"{"loss": "lsoftmax", "inputs": {"features": [[1, 2]], "weights": [[0, 0], [0, 1]], "labels": [0]}}"#,
        "inputs.weights[0]: is a zero-norm row and a label's class",
    );
    eval_ok(
        &["eval", "-"],
        r#"{"loss": "lsoftmax", "inputs": {"features": [[1, 2]], "weights": [[0, 0], [0, 1]], "labels": [1]}}"#,
    );
    rejects(
        r#"{"loss": "sphereface", "inputs": {"features": [[1, 2]], "weights": [[0, 0], [0, 1]], "labels": [1]}}"#,
        "inputs.weights[0]: is a zero-norm row",
    );
    let center = |params: &str| {
        format!(
            r#"{{"loss": "center", "params": {{{params}}}, "inputs": {{"features": [[1, 2]], "centers": [[2, 1], [0, 1]], "labels": [0]}}}}"#
        )
    };
    rejects(
        &center(r#""alpha": 2"#),
        "params.alpha: must be in [0, 1], got 2",
    );
    rejects(
        r#"{"loss": "center", "inputs": {"features": [[1, 2]], "centers": [[2, 1, 0], [0, 1, 0]], "labels": [0]}}"#,
        "inputs.centers: has D = 3 columns but features has D = 2",
    );
    let v = eval_ok(&["eval", "-"], &center(""));
    assert!(v["outputs"]["centers_next"].is_array());
}

#[test]
fn an_object_with_many_keys_is_handled_in_linear_time() {
    // 100 000 distinct keys: the duplicate-key check keeps a hash set per object (it used to
    // compare every key with every other, 12.5 s here); one repeated key at the end is still
    // found. The bound is generous: it guards against the quadratic behaviour, not speed.
    let keys: Vec<String> = (0..100_000).map(|k| format!("\"k{k}\": 0")).collect();
    let case = format!(
        "{{\"loss\": \"softmax\", \"params\": {{{}}}, \"inputs\": {{\"logits\": [[1, 2]]}}}}",
        keys.join(", ")
    );
    let start = std::time::Instant::now();
    let out = lossref(&["eval", "-"], &case);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("params.k0: unknown key"));
    let repeated = case.replacen("\"k99999\": 0", "\"k7\": 1", 1);
    let out = lossref(&["eval", "-"], &repeated);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the key \"k7\" appears twice"));
    assert!(start.elapsed().as_secs_f64() < 5.0, "{:?}", start.elapsed());
}

/// SPEC §5's inputs of the margin family, malformed: each refused with its place and
/// reason.
#[test]
fn bad_per_sample_margins_and_class_subsets_are_rejected() {
    let base =
        r#""features": [[1, 2], [3, -1]], "weights": [[1, 0], [0, 1], [1, 1]], "labels": [0, 2]"#;
    let with = |loss: &str, params: &str, extra: &str| {
        margin_case(loss, params, &format!("{base}, {extra}"))
    };
    rejects(
        &with("arcface", "", r#""margins": [0.5]"#),
        "inputs.margins: has 1 entries but needs one per batch row (2)",
    );
    rejects(
        &with("cosface", "", r#""margins": [0.35, "x"]"#),
        "inputs.margins[1]",
    );
    rejects(
        &with("normface", "", r#""margins": [0.5, 0.5]"#),
        "inputs.margins: normface has no margin to replace per sample",
    );
    rejects(
        &with(
            "cosface",
            r#""margins_as": "m3""#,
            r#""margins": [0.3, 0.4]"#,
        ),
        "params.margins_as: unknown key; `cosface` takes the parameters scale, margin, reduction",
    );
    rejects(
        &with(
            "combined",
            r#""margins_as": "m4""#,
            r#""margins": [0.3, 0.4]"#,
        ),
        "params.margins_as",
    );
    rejects(
        &with("cosface", "", r#""classes": [2, 0]"#),
        "inputs.classes[1]: class 0 follows 2: the subset must be sorted and distinct",
    );
    rejects(
        &with("cosface", "", r#""classes": [0, 0, 2]"#),
        "inputs.classes[1]: class 0 follows 0",
    );
    rejects(
        &with("cosface", "", r#""classes": [0, 1]"#),
        "inputs.labels[1]: label 2 is not in inputs.classes",
    );
    rejects(
        &with("cosface", "", r#""classes": [0, 3]"#),
        "inputs.classes[1]: label 3 is out of range 0..3",
    );
    rejects(
        &margin_case(
            "cosface",
            "",
            r#""features": [[1, 2]], "weights": [[1, 0], [0, 1]], "labels": [0], "classes": [0]"#,
        ),
        "inputs.classes: holds 1 class(es); the softmax over a subset needs at least 2",
    );
    rejects(
        &with("cosface", "", r#""classes": []"#),
        "inputs.classes: holds 0 class(es)",
    );
    rejects(
        &with("cosface", "", r#""classes": 3"#),
        "inputs.classes: expected an array of class indices",
    );
}

/// SPEC §5's adaptive margins, malformed or at an undefined point: each refused with its
/// place and reason (the state before the step a scalar; AdaFace's N ≥ 2; each parameter in
/// its range; a target parallel to its weight where CurricularFace's rule needs dθ).
#[test]
fn bad_adaptive_margin_cases_are_rejected() {
    let base =
        r#""features": [[1, 2], [3, -1]], "weights": [[1, 0], [0, 1], [1, 1]], "labels": [0, 2]"#;
    let with = |loss: &str, params: &str, extra: &str| {
        margin_case(loss, params, &format!("{base}{extra}"))
    };
    rejects(
        &with("curricularface", "", r#", "t": [1, 2]"#),
        "inputs.t: expected a number, got an array of 2 items",
    );
    rejects(
        &with("curricularface", r#""momentum": 1.5"#, ""),
        "params.momentum",
    );
    rejects(
        &with("adaface", "", r#", "batch_std": -1"#),
        "inputs.batch_std: must be a number ≥ 0, got -1",
    );
    rejects(
        &with("adaface", r#""eps": 0.7"#, ""),
        "params.eps: must be a number in (0, 1/2)",
    );
    rejects(
        &margin_case(
            "adaface",
            "",
            r#""features": [[1, 2]], "weights": [[1, 0], [0, 1]], "labels": [0]"#,
        ),
        "inputs.features: has N = 1 row; adaface's σ is the unbiased standard deviation",
    );
    rejects(
        &with("magface", r#""l_a": 3, "u_a": 2"#, ""),
        "params.u_a: must be a finite number above params.l_a",
    );
    rejects(
        &with("magface", r#""boundry": "none""#, ""),
        "params.boundry: unknown key (did you mean `boundary`?)",
    );
    rejects(
        &with("adacos", "", r#", "t": 0.5"#),
        "inputs.t: unknown key; `adacos` takes the inputs features, weights, labels",
    );
    rejects(
        &margin_case(
            "curricularface",
            "",
            r#""features": [[2, 0]], "weights": [[1, 0], [0, 1]], "labels": [0]"#,
        ),
        "inputs.features[0]: cos θ to its class weight inputs.weights[0] is exactly 1 (x ∥ w), where CurricularFace's target cos(θ + m) has no derivative",
    );
}

/// A reader that closes the pipe early (`lossref eval CASE | head`) ends lossref quietly
/// with status 141, as a Unix tool killed by SIGPIPE, never with a panic: the answer of
/// 200×64 features (about 500 kB) does not fit in the pipe's buffer, so lossref is still
/// writing when the reader goes.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let rows = |n: usize, d: usize, shift: f64| -> String {
        let row = |i: usize| -> String {
            let v: Vec<String> = (0..d)
                .map(|k| format!("{}", ((i * 31 + k * 7) % 13) as f64 - 6.0 + shift))
                .collect();
            format!("[{}]", v.join(", "))
        };
        (0..n).map(row).collect::<Vec<_>>().join(", ")
    };
    let labels: Vec<String> = (0..200).map(|i| (i % 5).to_string()).collect();
    let case = format!(
        r#"{{"loss": "cosface", "inputs": {{"features": [{}], "weights": [{}], "labels": [{}]}}}}"#,
        rows(200, 64, 0.5),
        rows(5, 64, 0.25),
        labels.join(", ")
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_lossref"))
        .args(["eval", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lossref");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(case.as_bytes())
        .expect("write the case");
    let mut first = [0u8; 16];
    let mut stdout = child.stdout.take().expect("stdout");
    stdout.read_exact(&mut first).expect("the answer begins");
    drop(stdout);
    let out = child.wait_with_output().expect("lossref ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// `lossref bench` times SPEC §5's adaptive margins through the catalogue's fast path, each
/// against the three GEMMs of its shapes, and names a malformed parameter.
#[test]
fn bench_times_the_adaptive_margins_against_three_gemms() {
    for loss in ["curricularface", "adaface", "magface", "adacos"] {
        let v = eval_ok(
            &[
                "bench",
                loss,
                "--batch",
                "8",
                "--dim",
                "16",
                "--classes",
                "50",
                "--dtype",
                "f32",
                "--threads",
                "1",
                "--warmup",
                "0",
                "--repeats",
                "2",
            ],
            "",
        );
        assert_eq!(v["loss"], loss);
        let (fused, gemms, ratio) = (
            v["fused_ms"].as_f64().unwrap(),
            v["gemms_ms"].as_f64().unwrap(),
            v["ratio"].as_f64().unwrap(),
        );
        assert!(
            fused > 0.0 && gemms > 0.0 && (ratio - fused / gemms).abs() < 1e-9 * ratio,
            "{v}"
        );
    }
    let out = lossref(
        &[
            "bench",
            "magface",
            "--batch",
            "4",
            "--dim",
            "4",
            "--classes",
            "5",
            "--params",
            r#"{"l_a": 3, "u_a": 2}"#,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("params.u_a"), "{err}");
}
