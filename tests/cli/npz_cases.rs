//! SPEC §3's `.npz` inputs and `lossref eval --output FILE.npz`, end to end: an archive
//! gives the same answer as the JSON case, whatever numpy wrote (float32, Fortran order,
//! big-endian, −0.0, subnormals, any integer labels); the written roundings are the
//! certified binary64 and binary32 (decided from the enclosure, never rounded twice); bad
//! archives are clean errors with exit status 1. The numpy tests need `python3` with numpy.

use lossref::answer::{Answer, Tensor};
use lossref::mp::certify::certify;
use lossref::mp::interval::Interval;
use lossref::npz::{self, Array, Data};
use rug::Float;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lossref-npz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lossref(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lossref"))
        .args(args)
        .output()
        .unwrap()
}

fn eval_file(path: &Path) -> Value {
    let out = lossref(&["eval", path.to_str().unwrap(), "--binary64"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn python(script: &str) {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed (these tests need numpy: python3 -m pip install numpy): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn float(shape: &[usize], v: &[f64]) -> Array {
    Array {
        shape: shape.to_vec(),
        data: Data::Float(v.to_vec()),
        was_f32: false,
    }
}

fn rows(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

/// A JSON case and the same case with its inputs in an archive written by lossref.
#[test]
fn npz_inputs_give_the_json_answer() {
    let dir = scratch("same");
    let cases = [
        json!({"loss": "cosface", "params": {"scale": 64, "margin": 0.35},
               "inputs": {"features": [[0.5, -1.25], [2.0, 0.75]], "weights": [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], "labels": [0, 2]}}),
        json!({"loss": "softmax_ce", "params": {"reduction": "sum"},
               "inputs": {"logits": [[1.5, -2.0, 3.25], [0.0, -0.0, 1e-310]], "labels": [2, 1]}}),
        json!({"loss": "center", "inputs": {"features": [[1.5, -2.0], [0.25, 3.0]], "centers": [[1.0, -1.0], [0.0, 2.5]], "labels": [0, 1]}}),
        json!({"loss": "distill", "params": {"temperature": 2.5},
               "inputs": {"student_logits": [[1.5, -0.25, 3.0]], "teacher_logits": [[2.0, 0.0, 1.0]], "labels": [2]}}),
    ];
    for (k, case) in cases.iter().enumerate() {
        let json_file = dir.join(format!("case{k}.json"));
        std::fs::write(&json_file, case.to_string()).unwrap();
        let mut arrays = Vec::new();
        for (name, v) in case["inputs"].as_object().unwrap() {
            let a = if name == "labels" {
                let l: Vec<i64> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect();
                Array {
                    shape: vec![l.len()],
                    data: Data::Int(l),
                    was_f32: false,
                }
            } else {
                let r = v.as_array().unwrap().len();
                let values = rows(v);
                float(&[r, values.len() / r], &values)
            };
            arrays.push((name.clone(), a));
        }
        // stored and deflated archives alternate: both are read the same
        let how = if k % 2 == 0 {
            npz::Compression::Stored
        } else {
            npz::Compression::Deflated
        };
        npz::write(&dir.join(format!("inputs{k}.npz")), &arrays, how).unwrap();
        let mut npz_case = case.clone();
        npz_case["inputs"] = json!(format!("inputs{k}.npz"));
        let npz_file = dir.join(format!("npz{k}.json"));
        std::fs::write(&npz_file, npz_case.to_string()).unwrap();
        assert_eq!(eval_file(&npz_file), eval_file(&json_file), "{case}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn numpy_archives_are_read_exactly() {
    // float32, Fortran order, big-endian, −0.0 and subnormals, uint8 and int32 labels,
    // savez_compressed: the same certified answer as the JSON case with the same binary64 numbers.
    let dir = scratch("numpy");
    let d = dir.to_str().unwrap();
    python(&format!(
        r#"
import numpy as np, json
X = np.array([[0.5, -1.25, -0.0], [2.0, 0.75, 5e-324], [1e-310, 3.0, -2.5]])
W = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -2.0], [-1.0, -1.0, 0.25], [0.125, 3.0, 1.0]])
y = [0, 2, 3]
np.savez("{d}/a.npz", features=X, weights=np.asfortranarray(W), labels=np.array(y, dtype=np.uint8))
np.savez("{d}/b.npz", features=X.astype(">f8"), weights=W.astype(">f8"), labels=np.array(y, dtype=">i4"))
X32 = X.astype(np.float32)
np.savez("{d}/c.npz", features=X32, weights=W.astype(np.float32), labels=np.array(y, dtype=np.int64))
np.savez_compressed("{d}/d.npz", features=X, weights=W, labels=np.array(y))
def rows(m): return [[float(v) for v in r] for r in m]
case = {{"loss": "arcface", "params": {{"scale": 16, "margin": 0.3, "boundary": "easy", "margin_grad": "detached"}}}}
for name, x in [("a", X), ("b", X), ("c", X32.astype(np.float64)), ("d", X)]:
    json.dump(dict(case, inputs=name + ".npz"), open("{d}/" + name + "_npz.json", "w"))
    json.dump(dict(case, inputs={{"features": rows(x), "weights": rows(W), "labels": y}}), open("{d}/" + name + "_json.json", "w"))
"#
    ));
    for name in ["a", "b", "c", "d"] {
        let from_npz = eval_file(&dir.join(format!("{name}_npz.json")));
        let from_json = eval_file(&dir.join(format!("{name}_json.json")));
        assert_eq!(from_npz, from_json, "archive {name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn output_npz_holds_the_certified_roundings_and_numpy_reads_them() {
    let dir = scratch("output");
    let case = dir.join("case.json");
    std::fs::write(
        &case,
        json!({"loss": "normface", "params": {"scale": 16},
               "inputs": {"features": [[0.5, -1.25], [2.0, 0.75]], "weights": [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], "labels": [0, 2]}})
        .to_string(),
    )
    .unwrap();
    let printed = eval_file(&case);
    let out_file = dir.join("answer.npz");
    let out = lossref(&[
        "eval",
        case.to_str().unwrap(),
        "--output",
        out_file.to_str().unwrap(),
        "--decimals",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["certificate"], printed["certificate"]);
    assert!(
        summary.get("outputs").is_none(),
        "the values go to the file, not to stdout"
    );
    let arrays = npz::read(&out_file).unwrap();
    // binary64: bit for bit the hex floats that --binary64 prints
    let hex = |s: &str| -> f64 { parse_hex(s) };
    let loss = &arrays["outputs/loss"];
    assert_eq!(loss.shape, Vec::<usize>::new());
    let Data::Float(v) = &loss.data else { panic!() };
    assert_eq!(
        v[0].to_bits(),
        hex(printed["binary64"]["outputs"]["loss"].as_str().unwrap()).to_bits()
    );
    let Data::Float(g) = &arrays["gradients/weights"].data else {
        panic!()
    };
    assert_eq!(arrays["gradients/weights"].shape, vec![3, 2]);
    let want: Vec<u64> = printed["binary64"]["gradients"]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| hex(x.as_str().unwrap()).to_bits())
        })
        .collect();
    assert_eq!(g.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
    // binary32 is stored as float32; decimals as the printed strings
    assert!(arrays["binary32/gradients/scale"].was_f32);
    let Data::Text(d) = &arrays["decimal/outputs/loss"].data else {
        panic!()
    };
    assert_eq!(d[0], printed["outputs"]["loss"].as_str().unwrap());
    // numpy reads the same bits
    let f = out_file.to_str().unwrap();
    python(&format!(
        r#"
import numpy as np
d = np.load("{f}")
assert d["outputs/loss"].dtype == np.float64 and d["binary32/outputs/loss"].dtype == np.float32
assert float(d["outputs/loss"]).hex() == "{}", float(d["outputs/loss"]).hex()
assert str(d["decimal/outputs/loss"]) == "{}"
assert d["gradients/features"].shape == (2, 2) and d["binary32/gradients/features"].shape == (2, 2)
"#,
        float_hex(v[0]),
        printed["outputs"]["loss"].as_str().unwrap()
    ));
    std::fs::remove_dir_all(&dir).ok();
}

/// Python's float.hex spelling of a double (for comparing in the numpy script).
fn float_hex(x: f64) -> String {
    let bits = x.to_bits();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    format!("{sign}0x1.{frac:013x}p{:+}", exp - 1023)
}

/// Reads lossref's C99 hex floats (`0x1.8p+1`, `-0x0p+0`).
fn parse_hex(s: &str) -> f64 {
    let (neg, body) = s.strip_prefix('-').map_or((false, s), |b| (true, b));
    let body = body.strip_prefix("0x").unwrap();
    let (mant, exp) = body.split_once('p').unwrap();
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut m = u64::from_str_radix(int, 16).unwrap() as f64;
    for (k, c) in frac.chars().enumerate() {
        m += c.to_digit(16).unwrap() as f64 * 16f64.powi(-(k as i32) - 1);
    }
    let v = m * 2f64.powi(exp.parse().unwrap());
    if neg {
        -v
    } else {
        v
    }
}

#[test]
fn binary32_roundings_are_decided_from_the_enclosure_not_rounded_twice() {
    // x = 1 + 2^-24 + 2^-80: its binary64 rounding 1 + 2^-24 is a binary32 tie, which rounds
    // to even (1.0); x itself is above the tie, so its binary32 rounding is 1 + 2^-23.
    let ans = certify(|p| {
        let mut x = Float::with_val(p, 1);
        x += Float::with_val(p, Float::i_exp(1, -24));
        x += Float::with_val(p, Float::i_exp(1, -80));
        Ok(Answer {
            outputs: vec![("value", Tensor::Scalar(Interval::enclosing(p, &x)))],
            gradients: vec![],
        })
    })
    .unwrap();
    let v = &ans.answer.output("value").unwrap().values()[0];
    assert_eq!(v.f64, 1.0 + 2f64.powi(-24));
    assert_eq!(
        v.f64 as f32, 1.0,
        "rounding the binary64 again would give 1"
    );
    assert_eq!(v.f32, 1.0 + 2f32.powi(-23));
}

#[test]
fn bad_archives_are_clean_errors() {
    let dir = scratch("bad");
    let d = dir.to_str().unwrap();
    let good_w = float(&[3, 2], &[1.0, 0.0, 0.0, 1.0, -1.0, -1.0]);
    let labels = |v: Vec<i64>| Array {
        shape: vec![v.len()],
        data: Data::Int(v),
        was_f32: false,
    };
    let write = |name: &str, arrays: Vec<(&str, Array)>| {
        let arrays: Vec<(String, Array)> = arrays
            .into_iter()
            .map(|(n, a)| (n.to_string(), a))
            .collect();
        npz::write(&dir.join(name), &arrays, npz::Compression::Stored).unwrap();
    };
    write(
        "missing.npz",
        vec![("weights", good_w.clone()), ("labels", labels(vec![0]))],
    );
    write(
        "extra.npz",
        vec![
            ("features", float(&[1, 2], &[1.0, 2.0])),
            ("weights", good_w.clone()),
            ("labels", labels(vec![0])),
            ("bias", float(&[1], &[0.0])),
        ],
    );
    write(
        "flat.npz",
        vec![
            ("features", float(&[2], &[1.0, 2.0])),
            ("weights", good_w.clone()),
            ("labels", labels(vec![0])),
        ],
    );
    write(
        "nan.npz",
        vec![
            ("features", float(&[1, 2], &[1.0, f64::NAN])),
            ("weights", good_w.clone()),
            ("labels", labels(vec![0])),
        ],
    );
    write(
        "range.npz",
        vec![
            ("features", float(&[1, 2], &[1.0, 2.0])),
            ("weights", good_w.clone()),
            ("labels", labels(vec![3])),
        ],
    );
    write(
        "count.npz",
        vec![
            ("features", float(&[1, 2], &[1.0, 2.0])),
            ("weights", good_w.clone()),
            ("labels", labels(vec![0, 1])),
        ],
    );
    write(
        "floatlabels.npz",
        vec![
            ("features", float(&[1, 2], &[1.0, 2.0])),
            ("weights", good_w.clone()),
            ("labels", float(&[1], &[0.0])),
        ],
    );
    write(
        "zero.npz",
        vec![
            ("features", float(&[1, 2], &[0.0, 0.0])),
            ("weights", good_w),
            ("labels", labels(vec![0])),
        ],
    );
    std::fs::write(dir.join("garbage.npz"), b"this is not a zip archive").unwrap();
    // A header that declares 10^9 × 2 float64 values over a few bytes of data.
    python(&format!(
        r#"
import zipfile
header = "{{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 2), }}"
header = header + " " * (117 - len(header)) + "\n"
npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 16
with zipfile.ZipFile("{d}/forged.npz", "w") as z:
    z.writestr("features.npy", npy)
"#
    ));
    let cases: &[(&str, &str)] = &[
        (
            "nowhere.npz",
            "nowhere.npz: cannot open as a numpy .npz archive",
        ),
        (
            "garbage.npz",
            "garbage.npz: cannot open as a numpy .npz archive",
        ),
        (
            "missing.npz",
            "missing.npz:features: missing from the archive",
        ),
        ("extra.npz", "extra.npz:bias: unknown array"),
        (
            "flat.npz",
            "flat.npz:features: expected a 2-dimensional float64 or float32 array",
        ),
        (
            "nan.npz",
            "nan.npz:features[0][1]: is NaN; inputs must be finite",
        ),
        (
            "range.npz",
            "range.npz:labels[0]: label 3 is out of range 0..3",
        ),
        (
            "count.npz",
            "count.npz:labels: has 2 labels but the batch has N = 1 rows",
        ),
        (
            "floatlabels.npz",
            "floatlabels.npz:labels: expected an integer array",
        ),
        ("zero.npz", "zero.npz:features[0]: is a zero-norm row"),
        (
            "forged.npz",
            "declares 2000000000 values (16000000000 bytes) but the archive holds only",
        ),
        (
            "inputs.txt",
            "inputs: expected an object of inputs or the name of a .npz archive",
        ),
    ];
    for (archive, message) in cases {
        let case = dir.join("case.json");
        std::fs::write(
            &case,
            json!({"loss": "cosface", "inputs": archive}).to_string(),
        )
        .unwrap();
        let out = lossref(&["eval", case.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{archive}: {stderr}");
        assert!(
            stderr.contains(message),
            "{archive}: expected «{message}» in {stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A `softmax` case of `n` × `c` logits in [−5, 5] in `dir`: `case.json` naming `big.npz`.
fn large_softmax_case(dir: &Path, n: usize, c: usize) -> PathBuf {
    let logits: Vec<f64> = (0..n * c)
        .map(|k| ((k * 7919) % 2003) as f64 / 200.0 - 5.0)
        .collect();
    npz::write(
        &dir.join("big.npz"),
        &[("logits".to_string(), float(&[n, c], &logits))],
        npz::Compression::Stored,
    )
    .unwrap();
    let case = dir.join("case.json");
    std::fs::write(&case, r#"{"loss": "softmax", "inputs": "big.npz"}"#).unwrap();
    case
}

/// Large inputs are bounded: a `.npz` input over `--max-input-mib` (64 MiB by default, as a
/// JSON case file) is refused with the flag that raises it, and an answer of more values than
/// `lossref eval` prints is refused on stdout with the way to write it (`--output`).
#[test]
fn large_npz_inputs_and_answers_are_bounded_with_the_way_past_the_bound() {
    let dir = scratch("bounds");
    // 150 000 logits: 1.2 MB of array data, and an answer of 300 000 values
    let (n, c) = (1500, 100);
    let case = large_softmax_case(&dir, n, c);
    let case = case.to_str().unwrap();
    let out = lossref(&["eval", case, "--max-input-mib", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("big.npz: holds more than the limit of 1 MiB of arrays; `lossref eval --max-input-mib N` raises it"),
        "{err}"
    );
    let out = lossref(&["eval", case]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains(
            "the answer has 300000 values, more than the 100000 that `lossref eval` prints"
        ) && err.contains("--output FILE.npz"),
        "{err}"
    );
    let answer = dir.join("answer.npz");
    let out = lossref(&["eval", case, "--output", answer.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        npz::read(&answer).unwrap()["outputs/probabilities"].shape,
        vec![n, c]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A large case is certified a block of rows at a time and kept without its enclosures:
/// the answer of a 500 × 1000 `softmax` (a million values) is written with a peak of
/// about 130 MB, where holding every enclosure at once (two MPFR numbers a value, with the
/// decimal strings) took 375 MB. The bound, 200 MB, is below what holding the answer's
/// enclosures alone needs (10⁶ × 128 bytes, with the inputs' 5·10⁵ enclosures: 192 MB).
/// The peak is the child's maximum resident set, as Python's `resource` module reads it.
#[test]
fn a_large_case_is_certified_in_bounded_memory() {
    let dir = scratch("memory");
    let (n, c) = (500, 1000);
    let case = large_softmax_case(&dir, n, c);
    let out = Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], capture_output=True)\n\
             sys.stderr.buffer.write(r.stderr)\n\
             print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
            env!("CARGO_BIN_EXE_lossref"),
            "eval",
            case.to_str().unwrap(),
            "--output",
            dir.join("answer.npz").to_str().unwrap(),
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let (status, peak_kib) = text.trim().split_once(' ').expect("status and peak");
    assert_eq!(status, "0", "{}", String::from_utf8_lossy(&out.stderr));
    let peak_mb = peak_kib.parse::<f64>().unwrap() * 1024.0 / 1e6;
    assert!(peak_mb < 200.0, "peak resident memory {peak_mb:.0} MB");
    let answer = npz::read(&dir.join("answer.npz")).unwrap();
    assert_eq!(answer["outputs/probabilities"].shape, vec![n, c]);
    std::fs::remove_dir_all(&dir).ok();
}

/// A normalized-margin case past one block of classes (2 × 3 features, 60 000 classes:
/// 300 000 logits and weight gradients) is streamed by `lossref eval --output`, its weight
/// gradient written block by block: every array holds the whole path's roundings
/// (`reference::blocks::certified_in_blocks` with one block), with and without `--decimals`.
#[test]
fn a_case_streamed_over_classes_writes_the_whole_answer() {
    use lossref::reference::blocks::{certified_in_blocks, streamed_shape, BLOCK_VALUES};
    let dir = scratch("classes");
    let (n, c, d) = (2, 60_000, 3);
    let weights: Vec<f64> = (0..c * d)
        .map(|k| ((k * 7919) % 2003) as f64 / 500.0 - 2.0)
        .collect();
    let features = [0.5, -1.25, 2.0, 1.5, 0.25, -0.75];
    // the case's inputs, with the weight matrix `w`
    let write_inputs = |w: &[f64]| {
        npz::write(
            &dir.join("big.npz"),
            &[
                ("features".to_string(), float(&[n, d], &features)),
                ("weights".to_string(), float(&[c, d], w)),
                (
                    "labels".to_string(),
                    Array {
                        shape: vec![n],
                        data: Data::Int(vec![17, 59_999]),
                        was_f32: false,
                    },
                ),
            ],
            // a large deflated archive is read as a stored one is
            npz::Compression::Deflated,
        )
        .unwrap()
    };
    write_inputs(&weights);
    let case_file = dir.join("case.json");
    std::fs::write(
        &case_file,
        r#"{"loss": "arcface", "params": {"scale": 30, "margin": 0.4}, "inputs": "big.npz"}"#,
    )
    .unwrap();
    let case =
        lossref::case::parse_case_in(&std::fs::read_to_string(&case_file).unwrap(), &dir).unwrap();
    assert!(
        streamed_shape(&case, BLOCK_VALUES).is_some(),
        "the case streams"
    );
    let whole = certified_in_blocks(&case, true, usize::MAX).unwrap();
    for decimals in [false, true] {
        let answer = dir.join(format!("answer-{decimals}.npz"));
        let mut args = vec![
            "eval",
            case_file.to_str().unwrap(),
            "--output",
            answer.to_str().unwrap(),
        ];
        if decimals {
            args.push("--decimals");
        }
        let out = lossref(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let arrays = npz::read(&answer).unwrap();
        for (section, name, t) in whole.answer.sections() {
            let key = format!("{section}/{name}");
            let floats = |k: &str| match &arrays[k].data {
                Data::Float(v) => v.clone(),
                other => panic!("{k}: {other:?}"),
            };
            let f64s: Vec<u64> = t.values().iter().map(|v| v.f64.to_bits()).collect();
            let f32s: Vec<u64> = t
                .values()
                .iter()
                .map(|v| f64::from(v.f32).to_bits())
                .collect();
            let got: Vec<u64> = floats(&key).iter().map(|x| x.to_bits()).collect();
            assert!(got == f64s, "{key}: binary64 roundings differ");
            let got: Vec<u64> = floats(&format!("binary32/{key}"))
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert!(got == f32s, "binary32/{key}: roundings differ");
            let text = arrays.get(&format!("decimal/{key}"));
            if decimals {
                let Some(Array {
                    data: Data::Text(text),
                    ..
                }) = text
                else {
                    panic!("decimal/{key} missing");
                };
                let expected: Vec<&str> = t
                    .values()
                    .iter()
                    .map(|v| v.decimal.as_deref().unwrap())
                    .collect();
                assert!(
                    text.iter().map(String::as_str).eq(expected),
                    "decimal/{key}"
                );
            } else {
                assert!(text.is_none(), "decimal/{key} written without --decimals");
            }
        }
    }
    // an undefined point met while streaming is the error, with no archive left behind
    let mut parallel = weights.clone();
    parallel[17 * d..18 * d].copy_from_slice(&features[..d]);
    write_inputs(&parallel);
    let answer = dir.join("undefined.npz");
    let out = lossref(&[
        "eval",
        case_file.to_str().unwrap(),
        "--output",
        answer.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("inputs.features[0]") && err.contains("is exactly 1"),
        "{err}"
    );
    assert!(!answer.exists(), "a failed stream left {answer:?}");
    std::fs::remove_dir_all(&dir).ok();
}
