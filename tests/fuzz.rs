//! Fuzzing on stable Rust: generated and mutated inputs through every reader of user data
//! (the case parser, `eval`'s certified evaluation and its report, the fast paths, the
//! `.npz` reader, and `check`'s results reader, judge and diagnosis).
//!
//! Each input is drawn from its index alone (ChaCha8 seeded by `LOSSREF_FUZZ_SEED` and the
//! index), so any failure is replayed with `LOSSREF_FUZZ_ONLY=<index>`. Four generators:
//!
//! * **cases**: a case of a random SPEC §1 loss with random shapes (0 to 4 rows, 0 to 5
//!   classes, 0 to 4 dimensions), parameters and values from an adversarial pool (±0,
//!   subnormals, 1e±300, DBL_MAX, long decimals, numbers that overflow), and with
//!   probability ½ one near-valid defect (a missing or unknown key, a ragged row, a label
//!   out of range, a string or `null` for a number, a parameter out of its range, a zero
//!   row, a duplicate key);
//! * **bytes**: a golden case or a generated one with 1–8 byte-level mutations (bit flips,
//!   JSON punctuation, deleted, repeated and spliced ranges, number tokens replaced, cuts);
//! * **npz**: `.npz` archives with random `.npy` headers (dtypes, orders, shapes up to 2^63)
//!   and payloads, read and turned into a case;
//! * **results**: results files for random corpus cases, judged and diagnosed.
//!
//! Every input must finish without a panic within [`bound`] of its size; a watchdog thread
//! aborts the run (naming the input) if one runs four times past its bound (a hang).
//! 10⁴ inputs run by default; `LOSSREF_FUZZ_INPUTS=1000000` runs 10⁶ (release build
//! advised: `cargo test --release --test fuzz`). Inputs run in parallel on every core.
//! A failing input is written to `target/fuzz-failures/<index>` and listed at the end.

use lossref::case::parse_case;
use lossref::check::{self, Corpus, Results};
use lossref::error::{MAX_PLACE_BYTES, MAX_REASON_BYTES};
use lossref::fast::dispatch;
use lossref::npz;
use lossref::reference::blocks::certified_rounded;
use lossref::report::eval_json;
use lossref::spec::LossId;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The time one input may take: 10 s, plus 2 µs per byte of input. A small case's certified
/// evaluation may escalate to 16 384 bits several times (well under a second in release),
/// and a results input judges and diagnoses a corpus case of up to 10⁴ classes (under 2 s);
/// parsing and rejecting are linear in the size.
fn bound(len: usize) -> Duration {
    Duration::from_secs(10) + Duration::from_micros(2 * len as u64)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Structured generation

/// A JSON number token from the adversarial pool (or, rarely, something that is not a
/// number at all).
fn number(rng: &mut ChaCha8Rng) -> String {
    number_from(rng, 20)
}

/// A finite JSON number from the pool (no overflow, no non-numbers).
fn finite_number(rng: &mut ChaCha8Rng) -> String {
    number_from(rng, 16)
}

fn number_from(rng: &mut ChaCha8Rng, kinds: u32) -> String {
    match rng.gen_range(0..kinds) {
        0..=7 => format!("{}", rng.gen_range(-4.0..4.0f64)),
        8..=9 => format!("{}", rng.gen_range(-3i32..=3)),
        10 => ["0", "-0", "0.0", "-0.0", "1", "-1", "0.5"]
            .choose(rng)
            .copied()
            .unwrap_or("0")
            .to_string(),
        11 => [
            "5e-324",
            "2.2250738585072014e-308",
            "1e-300",
            "1e-160",
            "1e300",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "1e150",
            "-1e150",
            "1e-20",
            "3.141592653589793",
            "1e16",
        ]
        .choose(rng)
        .copied()
        .unwrap_or("1")
        .to_string(),
        12 => format!(
            "{}e{}",
            rng.gen_range(-9.0..9.0f64),
            rng.gen_range(-330i32..300)
        ),
        13 => {
            let digits: String = (0..rng.gen_range(1..400))
                .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
                .collect();
            format!("0.{digits}")
        }
        14 => format!("{}", rng.gen::<f64>() * 1e3),
        15 => format!(
            "{:e}",
            f64::from_bits(
                rng.gen::<u64>() & !(0x7ff << 52) | (rng.gen_range(0x3c0u64..0x440) << 52)
            )
        ),
        16 => "1e400".to_string(),
        17 => [
            "\"nan\"", "null", "true", "\"1\"", "[]", "{}", "NaN", "Infinity",
        ]
        .choose(rng)
        .copied()
        .unwrap_or("null")
        .to_string(),
        _ => format!("{}", rng.gen_range(-100.0..100.0f64)),
    }
}

fn matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize, zero_row: bool) -> String {
    matrix_of(rng, rows, cols, zero_row, number)
}

fn matrix_of(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    zero_row: bool,
    number: fn(&mut ChaCha8Rng) -> String,
) -> String {
    let zero = zero_row.then(|| rng.gen_range(0..rows.max(1)));
    let body: Vec<String> = (0..rows)
        .map(|i| {
            let row: Vec<String> = (0..cols)
                .map(|_| {
                    if Some(i) == zero {
                        "0".to_string()
                    } else {
                        number(rng)
                    }
                })
                .collect();
            format!("[{}]", row.join(", "))
        })
        .collect();
    format!("[{}]", body.join(", "))
}

/// A vector of `len` numbers (class weights, α), sometimes one entry short.
fn vector(rng: &mut ChaCha8Rng, len: usize, number: fn(&mut ChaCha8Rng) -> String) -> String {
    let len = if rng.gen_bool(0.1) {
        len.saturating_sub(1)
    } else {
        len
    };
    let v: Vec<String> = (0..len).map(|_| number(rng)).collect();
    format!("[{}]", v.join(", "))
}

fn labels(rng: &mut ChaCha8Rng, n: usize, classes: usize, bad: bool) -> String {
    let mut v: Vec<String> = (0..n)
        .map(|_| rng.gen_range(0..classes.max(1)).to_string())
        .collect();
    if bad && !v.is_empty() {
        let k = rng.gen_range(0..v.len());
        v[k] = ["-1", "0.5", "\"0\"", "1e20", "18446744073709551616", "null"]
            .choose(rng)
            .copied()
            .unwrap_or("-1")
            .to_string();
        if rng.gen_bool(0.5) {
            v[k] = classes.to_string();
        }
    }
    format!("[{}]", v.join(", "))
}

/// A parameter value: mostly in range, sometimes out of it.
fn param(rng: &mut ChaCha8Rng, name: &str, valid: bool) -> String {
    if !valid && rng.gen_bool(0.1) {
        return number(rng);
    }
    match name {
        "reduction" => ["\"mean\"", "\"sum\"", "\"none\"", "\"avg\""]
            .choose(rng)
            .copied()
            .unwrap_or("\"mean\"")
            .to_string(),
        "soft" => ["\"kl\"", "\"ce\"", "\"mse\""]
            .choose(rng)
            .copied()
            .unwrap_or("\"kl\"")
            .to_string(),
        "boundary" => ["\"none\"", "\"thmm\"", "\"easy\""]
            .choose(rng)
            .copied()
            .unwrap_or("\"none\"")
            .to_string(),
        "margins_as" => ["\"m2\"", "\"m3\"", "\"m1\""]
            .choose(rng)
            .copied()
            .unwrap_or("\"m2\"")
            .to_string(),
        "margin_grad" => ["\"full\"", "\"detached\""]
            .choose(rng)
            .copied()
            .unwrap_or("\"full\"")
            .to_string(),
        "integer_margin" => rng.gen_range(0..8).to_string(),
        "alpha" => format!("{}", rng.gen_range(0.0..1.0f64)),
        "temperature" => format!("{}", rng.gen_range(0.05..20.0f64)),
        "scale" => format!("{}", rng.gen_range(0.1..80.0f64)),
        "lambda" => format!("{}", rng.gen_range(0.0..10.0f64)),
        "label_smoothing" => format!("{}", rng.gen_range(0.0..1.0f64)),
        "gamma" => format!("{}", rng.gen_range(0.0..5.0f64)),
        "momentum" | "t_alpha" => format!("{}", rng.gen_range(0.0..1.0f64)),
        "h" => format!("{}", rng.gen_range(0.0..1.0f64)),
        "eps" => format!("{}", rng.gen_range(1e-6..0.4f64)),
        "l_a" => format!("{}", rng.gen_range(0.1..2.0f64)),
        "u_a" => format!("{}", rng.gen_range(2.0..5.0f64)),
        "lambda_g" => format!("{}", rng.gen_range(0.0..40.0f64)),
        "epsilon" => format!("{}", rng.gen_range(-1.0..3.0f64)),
        "ignore_index" => ["-100", "0", "1", "null", "0.5"]
            .choose(rng)
            .copied()
            .unwrap_or("-100")
            .to_string(),
        _ => format!("{}", rng.gen_range(-1.0..1.5f64)),
    }
}

/// A case of a random loss, valid or with one near-valid defect.
fn generated_case(rng: &mut ChaCha8Rng) -> String {
    // every loss of the catalogue, in its order; the matches below name each one, so a new
    // loss does not compile until it is fuzzed
    let id = *LossId::ALL.choose(rng).unwrap_or(&LossId::SoftmaxCe);
    let loss = id.as_str();
    // Half the cases are valid: shapes a loss accepts, finite numbers, parameters in range.
    let valid = rng.gen_bool(0.5);
    let low = usize::from(valid);
    let n = rng.gen_range(low..=4);
    let c = rng.gen_range(2 * low..=5);
    let d = rng.gen_range(low..=4);
    let number: fn(&mut ChaCha8Rng) -> String = if valid { finite_number } else { number };
    let matrix = |rng: &mut ChaCha8Rng, rows, cols, zero| matrix_of(rng, rows, cols, zero, number);
    let defect = if !valid && rng.gen_bool(0.5) {
        rng.gen_range(0..9)
    } else {
        usize::MAX
    };
    let zero_row = defect == 0;
    let bad_label = defect == 1;
    let params: &[&str] = match id {
        LossId::Softmax => &["temperature"],
        LossId::SoftmaxCe => &["reduction", "label_smoothing", "ignore_index"],
        LossId::Focal => &["gamma", "reduction"],
        LossId::Poly1 => &["epsilon", "reduction"],
        LossId::Distill => &["temperature", "alpha", "soft", "reduction"],
        LossId::LSoftmax | LossId::SphereFace => &["integer_margin", "lambda", "reduction"],
        LossId::Center => &["alpha", "reduction"],
        LossId::NormFace => &["scale", "reduction"],
        LossId::CosFace | LossId::AmSoftmax => &["scale", "margin", "reduction"],
        LossId::ArcFace => &["scale", "margin", "boundary", "margin_grad", "reduction"],
        LossId::Combined => &["scale", "m1", "m2", "m3", "margins_as", "reduction"],
        LossId::SubcenterArcFace => &["scale", "margin", "boundary", "margin_grad", "reduction"],
        LossId::CurricularFace => &["scale", "margin", "momentum", "reduction"],
        LossId::AdaFace => &["scale", "margin", "h", "t_alpha", "eps", "reduction"],
        LossId::MagFace => &[
            "scale",
            "l_a",
            "u_a",
            "l_m",
            "u_m",
            "lambda_g",
            "boundary",
            "reduction",
        ],
        LossId::AdaCos => &["scale", "reduction"],
    };
    let mut ps: Vec<String> = Vec::new();
    for &p in params {
        if rng.gen_bool(0.7) {
            let key = if p == "integer_margin" { "margin" } else { p };
            ps.push(format!("\"{key}\": {}", param(rng, p, valid)));
        }
    }
    let mut inputs: Vec<String> = match id {
        LossId::Softmax => vec![format!("\"logits\": {}", matrix(rng, n, c, false))],
        LossId::SoftmaxCe => {
            let mut v = vec![format!("\"logits\": {}", matrix(rng, n, c, false))];
            // labels or soft targets, sometimes both or with class weights
            if rng.gen_bool(0.7) {
                v.push(format!("\"labels\": {}", labels(rng, n, c, bad_label)));
            }
            if rng.gen_bool(0.4) {
                v.push(format!("\"targets\": {}", matrix(rng, n, c, false)));
            }
            if rng.gen_bool(0.4) {
                v.push(format!("\"weight\": {}", vector(rng, c, number)));
            }
            v
        }
        LossId::Focal | LossId::Poly1 => {
            let mut v = vec![
                format!("\"logits\": {}", matrix(rng, n, c, false)),
                format!("\"labels\": {}", labels(rng, n, c, bad_label)),
            ];
            if id == LossId::Focal && rng.gen_bool(0.5) {
                v.push(format!("\"alpha\": {}", vector(rng, c, number)));
            }
            v
        }
        LossId::Distill => vec![
            format!("\"student_logits\": {}", matrix(rng, n, c, false)),
            format!("\"teacher_logits\": {}", matrix(rng, n, c, false)),
            format!("\"labels\": {}", labels(rng, n, c, bad_label)),
        ],
        LossId::LSoftmax
        | LossId::SphereFace
        | LossId::Center
        | LossId::NormFace
        | LossId::CosFace
        | LossId::AmSoftmax
        | LossId::ArcFace
        | LossId::Combined => {
            let classes = if id == LossId::Center {
                "centers"
            } else {
                "weights"
            };
            let mut v = vec![
                format!("\"features\": {}", matrix(rng, n, d, zero_row)),
                format!("\"{classes}\": {}", matrix(rng, c, d, zero_row)),
                format!("\"labels\": {}", labels(rng, n, c, bad_label)),
            ];
            // SPEC §5's inputs of the margin family, sometimes on the others too
            if rng.gen_bool(0.3) {
                v.push(format!("\"margins\": {}", vector(rng, n, number)));
            }
            if rng.gen_bool(0.3) {
                let mut subset: Vec<usize> = (0..c).filter(|_| rng.gen_bool(0.6)).collect();
                if !valid && rng.gen_bool(0.3) {
                    subset.reverse();
                }
                let items: Vec<String> = subset.iter().map(usize::to_string).collect();
                v.push(format!("\"classes\": [{}]", items.join(", ")));
            }
            v
        }
        LossId::SubcenterArcFace => {
            // K sub-centers per class; sometimes K does not divide the rows
            let k = rng.gen_range(1..4usize);
            ps.push(format!("\"subcenters\": {k}"));
            let rows = if !valid && rng.gen_bool(0.2) {
                c * k + 1
            } else {
                c * k
            };
            vec![
                format!("\"features\": {}", matrix(rng, n, d, zero_row)),
                format!("\"weights\": {}", matrix(rng, rows, d, zero_row)),
                format!("\"labels\": {}", labels(rng, n, c, bad_label)),
            ]
        }
        LossId::CurricularFace | LossId::AdaFace | LossId::MagFace | LossId::AdaCos => {
            let mut v = vec![
                format!("\"features\": {}", matrix(rng, n, d, zero_row)),
                format!("\"weights\": {}", matrix(rng, c, d, zero_row)),
                format!("\"labels\": {}", labels(rng, n, c, bad_label)),
            ];
            // SPEC §5's running state before the step, sometimes on the wrong loss
            for key in ["t", "batch_mean", "batch_std"] {
                if rng.gen_bool(0.3) {
                    v.push(format!("\"{key}\": {}", number(rng)));
                }
            }
            v
        }
    };
    match defect {
        2 if !inputs.is_empty() => {
            let k = rng.gen_range(0..inputs.len());
            inputs.remove(k);
        }
        3 => ps.push(format!("\"unknown_{}\": 1", rng.gen_range(0..9))),
        4 if !inputs.is_empty() => {
            // a ragged matrix: one row one entry longer
            let k = rng.gen_range(0..inputs.len());
            inputs[k] = inputs[k].replacen("]", ", 1]", 1);
        }
        5 => {
            let k = rng.gen_range(0..inputs.len().max(1));
            if let Some(s) = inputs.get_mut(k) {
                *s = s.replacen(|ch: char| ch.is_ascii_digit(), "\"x\"", 1);
            }
        }
        6 if !ps.is_empty() => {
            let k = rng.gen_range(0..ps.len());
            let dup = ps[k].clone();
            ps.push(dup);
        }
        7 => ps.push(format!(
            "\"{}\": -1",
            params.choose(rng).unwrap_or(&"scale")
        )),
        _ => {}
    }
    let loss_text = if defect == 8 {
        format!(
            "\"{}\"",
            ["softmax-ce", "", "ArcFace", "cosface "]
                .choose(rng)
                .unwrap_or(&"")
        )
    } else {
        format!("\"{loss}\"")
    };
    let mut top = vec![format!("\"loss\": {loss_text}")];
    if !ps.is_empty() || rng.gen_bool(0.5) {
        top.push(format!("\"params\": {{{}}}", ps.join(", ")));
    }
    top.push(format!("\"inputs\": {{{}}}", inputs.join(", ")));
    top.shuffle(rng);
    format!("{{{}}}", top.join(", "))
}

// ---------------------------------------------------------------------------------------
// Byte-level mutation

fn golden_seeds() -> &'static [String] {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = Vec::new();
        for dir in ["fixtures/golden", "fixtures/examples"] {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                if let Ok(text) = std::fs::read_to_string(&f) {
                    seeds.push(text);
                }
            }
        }
        assert!(seeds.len() >= 10, "the golden cases are the mutation seeds");
        seeds
    })
}

fn mutated(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let seeds = golden_seeds();
    let mut bytes = if rng.gen_bool(0.5) {
        seeds[rng.gen_range(0..seeds.len())].clone().into_bytes()
    } else {
        generated_case(rng).into_bytes()
    };
    for _ in 0..rng.gen_range(1..=8) {
        let len = bytes.len();
        if len == 0 {
            bytes.extend_from_slice(b"{}");
            continue;
        }
        let at = rng.gen_range(0..len);
        match rng.gen_range(0..8) {
            0 => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 => bytes[at] = *b"{}[],:\"-.eE0123456789 \\tnu".choose(rng).unwrap_or(&b'0'),
            2 => {
                let end = (at + rng.gen_range(1..16)).min(len);
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + rng.gen_range(1..64)).min(len);
                let chunk = bytes[at..end].to_vec();
                let times = if rng.gen_bool(0.1) { 200 } else { 1 };
                for _ in 0..times {
                    bytes.splice(at..at, chunk.iter().copied());
                }
            }
            4 => {
                let other = seeds[rng.gen_range(0..seeds.len())].as_bytes();
                let from = rng.gen_range(0..other.len());
                let end = (from + rng.gen_range(1..80)).min(other.len());
                bytes.splice(at..at, other[from..end].iter().copied());
            }
            5 => {
                // replace the number token that starts at or after `at`
                if let Some(start) = (at..len).find(|&k| bytes[k].is_ascii_digit()) {
                    let end = (start..len)
                        .find(|&k| {
                            !matches!(bytes[k], b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+')
                        })
                        .unwrap_or(len);
                    let token = number(rng);
                    bytes.splice(start..end, token.bytes());
                }
            }
            6 => bytes.truncate(at),
            _ => bytes.insert(at, rng.gen()),
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// .npz archives

fn npy_bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let descr = *[
        "<f8", "<f4", "<i8", "<i4", "|u1", ">f8", "<c16", "|O", "<U7", "<f2", "|b1", "x",
    ]
    .choose(rng)
    .unwrap_or(&"<f8");
    let dims = rng.gen_range(0..=3);
    let shape: Vec<u64> = (0..dims)
        .map(|_| match rng.gen_range(0..10) {
            0 => 1u64 << rng.gen_range(20..64),
            1 => 0,
            _ => rng.gen_range(1..5),
        })
        .collect();
    let shape_text = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let fortran = if rng.gen_bool(0.2) { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape_text}, }}");
    if rng.gen_bool(0.1) {
        let k = rng.gen_range(0..header.len());
        header.truncate(k);
    }
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    let count: u64 = shape.iter().fold(1u64, |a, &b| a.saturating_mul(b)).min(64);
    let item = if descr.contains('8') { 8 } else { 4 };
    let payload = if rng.gen_bool(0.8) {
        count as usize * item
    } else {
        rng.gen_range(0..100)
    };
    for _ in 0..payload {
        out.push(if rng.gen_bool(0.5) { 0 } else { rng.gen() });
    }
    if rng.gen_bool(0.1) && out.len() > 1 {
        let k = rng.gen_range(0..out.len());
        out[k] ^= 0x40;
    }
    out
}

fn npz_archive(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let names = [
            "features",
            "weights",
            "labels",
            "logits",
            "centers",
            "inputs/features",
        ];
        for _ in 0..rng.gen_range(0..5) {
            let name = names.choose(rng).unwrap_or(&"labels");
            if zip.start_file(format!("{name}.npy"), options).is_ok() {
                let _ = zip.write_all(&npy_bytes(rng));
            }
        }
        let _ = zip.finish();
    }
    let mut bytes = buffer.into_inner();
    if rng.gen_bool(0.2) && !bytes.is_empty() {
        let k = rng.gen_range(0..bytes.len());
        bytes[k] = rng.gen();
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// Results files

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| Corpus::load(None).expect("the embedded corpus loads"))
}

fn results_text(rng: &mut ChaCha8Rng) -> (String, String) {
    let corpus = corpus();
    let case = &corpus.cases[rng.gen_range(0..corpus.cases.len())];
    let tensor = |rng: &mut ChaCha8Rng| -> String {
        match rng.gen_range(0..6) {
            0 => number(rng),
            1 => format!(
                "[{}]",
                (0..rng.gen_range(0..6))
                    .map(|_| number(rng))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            2 => ["\"nan\"", "\"inf\"", "\"-inf\"", "[[]]", "[[1],[2,3]]"]
                .choose(rng)
                .copied()
                .unwrap_or("[]")
                .to_string(),
            _ => {
                let (rows, cols) = (rng.gen_range(0..5), rng.gen_range(0..5));
                matrix(rng, rows, cols, false)
            }
        }
    };
    let mut groups = Vec::new();
    for (section, names) in [
        (
            "outputs",
            &["loss", "probabilities", "losses", "centers"][..],
        ),
        (
            "gradients",
            &["features", "weights", "logits", "student_logits", "scale"][..],
        ),
    ] {
        let mut body: Vec<String> = Vec::new();
        for n in names {
            if rng.gen_bool(0.5) {
                body.push(format!("\"{n}\": {}", tensor(rng)));
            }
        }
        groups.push(format!("\"{section}\": {{{}}}", body.join(", ")));
    }
    // SPEC §6's pipeline, declared or not, valid or mistyped: every tier judges the case
    let pipeline = [
        "",
        ", \"pipeline\": \"amp\"",
        ", \"pipeline\": \"native+ftz\"",
        ", \"pipeline\": [\"tf32\", \"amp\"]",
        ", \"pipeline\": \"bf16\"",
        ", \"pipeline\": \"accumulate16\"",
        ", \"pipeline\": \"amq\"",
        ", \"pipeline\": 7",
        ", \"pipeline\": \"amp+native\"",
    ]
    .choose(rng)
    .copied()
    .unwrap_or("");
    let text = format!(
        "{{\"implementation\": \"fuzz 1\"{pipeline}, \"results\": {{\"{}\": {{{}}}}}}}",
        case.id,
        groups.join(", ")
    );
    (case.id.clone(), text)
}

// ---------------------------------------------------------------------------------------
// Running one input

/// How deep inputs got: parsed cases, certified answers, fast answers, `.npz` archives
/// read, results parsed, results judged.
static DEPTH: [AtomicUsize; 6] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];

fn reached(stage: usize) {
    DEPTH[stage].fetch_add(1, Ordering::Relaxed);
}

/// What one input was, to write it out when it fails.
enum Input {
    Case(Vec<u8>),
    Npz(Vec<u8>),
    Results(String, String),
}

impl Input {
    fn draw(seed: u64, index: usize) -> Input {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        match index % 10 {
            0..=3 => Input::Case(generated_case(&mut rng).into_bytes()),
            4..=6 => Input::Case(mutated(&mut rng)),
            7..=8 => Input::Npz(npz_archive(&mut rng)),
            _ => {
                let (id, text) = results_text(&mut rng);
                let text = if rng.gen_bool(0.3) {
                    String::from_utf8_lossy(&{
                        let mut b = text.into_bytes();
                        let k = rng.gen_range(0..b.len());
                        b[k] = *b"{}[],:\"-.e0 ".choose(&mut rng).unwrap_or(&b'0');
                        b
                    })
                    .into_owned()
                } else {
                    text
                };
                Input::Results(id, text)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Input::Case(b) | Input::Npz(b) => b.len(),
            Input::Results(_, t) => t.len(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Input::Case(b) | Input::Npz(b) => b.clone(),
            Input::Results(id, t) => format!("{id}\n{t}").into_bytes(),
        }
    }

    /// Runs the input through its readers; `Err` says which invariant broke.
    fn run(&self) -> Result<(), String> {
        match self {
            Input::Case(bytes) => {
                // The CLI reads text: invalid UTF-8 is refused before parsing.
                let Ok(text) = std::str::from_utf8(bytes) else {
                    return Ok(());
                };
                match parse_case(text) {
                    Ok(case) => {
                        reached(0);
                        match certified_rounded(&case, true) {
                            Ok(answer) => {
                                reached(1);
                                let json = eval_json(case.loss(), &answer, true);
                                if json.to_string().is_empty() {
                                    return Err("an empty report".into());
                                }
                            }
                            Err(e) => error_ok(&e)?,
                        }
                        for result in [
                            dispatch::evaluate::<f64>(&case),
                            dispatch::evaluate::<f32>(&case),
                        ] {
                            match result {
                                Ok(_) => reached(2),
                                Err(e) => error_ok(&e)?,
                            }
                        }
                        Ok(())
                    }
                    Err(e) => error_ok(&e),
                }
            }
            Input::Npz(bytes) => match npz::read_bytes(bytes, "fuzz.npz") {
                Ok(arrays) => {
                    reached(3);
                    for loss in ["softmax_ce", "normface", "center", "lsoftmax", "distill"] {
                        let value = serde_json::json!({ "loss": loss });
                        if let Err(e) =
                            lossref::case::case_from_arrays(&value, arrays.clone(), "fuzz.npz")
                        {
                            error_ok(&e)?;
                        }
                    }
                    Ok(())
                }
                Err(e) => error_ok(&e),
            },
            Input::Results(id, text) => match Results::parse(text, "fuzz.json") {
                Ok(results) => {
                    reached(4);
                    let corpus = corpus();
                    let Some(case) = corpus.cases.iter().find(|c| &c.id == id) else {
                        return Err(format!("no corpus case {id}"));
                    };
                    let report = check::judge_case(
                        corpus,
                        case,
                        results.values.get(id),
                        results.computes.as_deref(),
                        results.pipeline,
                    )
                    .map_err(|e| format!("judging failed: {e}"))?;
                    reached(5);
                    if report.verdict.is_failure() {
                        check::diagnose::diagnose(corpus, &results, std::slice::from_ref(&report))
                            .map_err(|e| format!("diagnosis failed: {e}"))?;
                    }
                    Ok(())
                }
                Err(e) => error_ok(&e),
            },
        }
    }
}

/// An error is fine when it names a reason, and its place and reason are bounded.
fn error_ok(e: &lossref::error::Error) -> Result<(), String> {
    if e.reason.trim().is_empty() {
        return Err(format!("an error without a reason: {e:?}"));
    }
    if e.place.len() > MAX_PLACE_BYTES + 64 || e.reason.len() > MAX_REASON_BYTES + 64 {
        return Err(format!(
            "an unbounded message ({} + {} bytes)",
            e.place.len(),
            e.reason.len()
        ));
    }
    Ok(())
}

/// The fuzz run and the timed tests take turns: the fuzz run uses every core, and the timed
/// tests measure time.
static ALONE: Mutex<()> = Mutex::new(());

/// What each worker thread is running: (index, start, bound), for the watchdog.
static RUNNING: Mutex<BTreeMap<usize, (usize, Instant, Duration)>> = Mutex::new(BTreeMap::new());

fn watchdog(seed: u64) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let stuck = RUNNING
            .lock()
            .map(|m| {
                m.values()
                    .find(|(_, start, bound)| start.elapsed() > *bound * 4)
                    .copied()
            })
            .unwrap_or(None);
        if let Some((index, start, _)) = stuck {
            let input = Input::draw(seed, index);
            let path = failure_path(index);
            let _ = std::fs::write(&path, input.bytes());
            eprintln!(
                "fuzz: input {index} (seed {seed}) has run {:?}, four times past its bound: a hang; written to {}",
                start.elapsed(),
                path.display()
            );
            std::process::abort();
        }
    });
}

fn failure_path(index: usize) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(index.to_string())
}

#[test]
fn fuzz_inputs_never_panic_hang_or_overrun_their_time_bound() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let seed = env_usize("LOSSREF_FUZZ_SEED", 12) as u64;
    let count = env_usize("LOSSREF_FUZZ_INPUTS", 10_000);
    let indices: Vec<usize> = match std::env::var("LOSSREF_FUZZ_ONLY") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => (0..count).collect(),
    };
    // Loading the corpus and the seeds is not part of any input's time.
    let _ = (corpus(), golden_seeds());
    watchdog(seed);
    let done = AtomicUsize::new(0);
    let slowest = Mutex::new((Duration::ZERO, 0usize, 0usize));
    let started = Instant::now();
    let failures: Vec<(usize, String)> = indices
        .par_iter()
        .filter_map(|&index| {
            let input = Input::draw(seed, index);
            let limit = bound(input.len());
            let worker = rayon::current_thread_index().unwrap_or(0);
            let t = Instant::now();
            if let Ok(mut m) = RUNNING.lock() {
                m.insert(worker, (index, t, limit));
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| input.run()));
            let elapsed = t.elapsed();
            if let Ok(mut m) = RUNNING.lock() {
                m.remove(&worker);
            }
            if let Ok(mut s) = slowest.lock() {
                if elapsed > s.0 {
                    *s = (elapsed, index, input.len());
                }
            }
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 100_000 == 0 {
                eprintln!("fuzz: {n} inputs in {:?}", started.elapsed());
            }
            if std::env::var_os("LOSSREF_FUZZ_PRINT").is_some() {
                eprintln!(
                    "input {index} ({elapsed:?}): {}",
                    String::from_utf8_lossy(&input.bytes())
                );
            }
            let failure = match outcome {
                Err(panic) => Some(format!(
                    "panicked: {}",
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )),
                Ok(Err(broken)) => Some(broken),
                Ok(Ok(())) if elapsed > limit => Some(format!(
                    "took {elapsed:?} for {} bytes, over its bound of {limit:?}",
                    input.len()
                )),
                Ok(Ok(())) => None,
            };
            failure.map(|f| {
                let _ = std::fs::write(failure_path(index), input.bytes());
                (index, f)
            })
        })
        .collect();
    let (slow, slow_index, slow_len) = slowest.lock().map(|s| *s).unwrap_or_default();
    eprintln!(
        "fuzz: {} inputs (seed {seed}) in {:?}; slowest: input {slow_index}, {slow_len} bytes, {slow:?}",
        indices.len(),
        started.elapsed()
    );
    let depth: Vec<usize> = DEPTH.iter().map(|d| d.load(Ordering::Relaxed)).collect();
    eprintln!(
        "fuzz: cases parsed {}, certified {}, fast answers {}; .npz read {}; results parsed {}, judged {}",
        depth[0], depth[1], depth[2], depth[3], depth[4], depth[5]
    );
    let mut report = String::new();
    for (index, f) in failures.iter().take(20) {
        let _ = writeln!(report, "input {index}: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed (replay with LOSSREF_FUZZ_SEED={seed} LOSSREF_FUZZ_ONLY=<index>; inputs in {}):\n{report}",
        failures.len(),
        indices.len(),
        failure_path(0).parent().map(|p| p.display().to_string()).unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------
// Hostile sizes: time linear in the input

/// Adversarial case texts of about `bytes` bytes, by family.
fn hostile(family: &str, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    match family {
        // distinct unknown keys in `params`
        "many keys" => {
            s.push_str(r#"{"loss": "softmax_ce", "inputs": {}, "params": {"#);
            let mut k = 0;
            while s.len() < bytes {
                let _ = write!(s, "\"k{k}\": 0,");
                k += 1;
            }
            s.push_str("\"k0\": 1}}");
        }
        // deep nesting, repeated (each run stops at serde_json's depth limit of 128 when
        // deeper; these stay just under it, so the whole text is read)
        "deep nesting" => {
            s.push_str(r#"{"loss": "softmax", "inputs": {"logits": ["#);
            while s.len() < bytes {
                s.push_str(&"[".repeat(120));
                s.push('1');
                s.push_str(&"]".repeat(120));
                s.push(',');
            }
            s.push_str("1]}}");
        }
        // one number with millions of digits
        "long number" => {
            s.push_str(r#"{"loss": "softmax", "inputs": {"logits": [[0.5, 1."#);
            while s.len() < bytes {
                s.push_str("1234567890");
            }
            s.push_str("e-5]]}}");
        }
        // a long string of escapes where a loss name goes
        "long string" => {
            s.push_str(r#"{"inputs": {}, "loss": ""#);
            while s.len() < bytes {
                s.push_str("\\\\\\u00e9\\\"");
            }
            s.push_str("\"}");
        }
        // a valid case of many rows (the reader's work, not the evaluation, is timed)
        _ => {
            s.push_str(r#"{"loss": "softmax_ce", "inputs": {"labels": [0], "logits": ["#);
            while s.len() < bytes {
                s.push_str("[0.25, -1.5, 3, 1e-300, 0.1],");
            }
            s.push_str("[1, 2, 3, 4, 5]]}}");
        }
    }
    s
}

fn time_parse(text: &str) -> Duration {
    let t = Instant::now();
    let _ = std::hint::black_box(parse_case(text));
    t.elapsed()
}

/// Every family of hostile text is read in time linear in its size: four times the bytes
/// take at most eight times as long (a quadratic reader takes sixteen), and 16 MiB of it is
/// read or refused within 8 s (in the test profile, on a 2-core machine; the slowest
/// family, 1.4 million distinct keys and one repeated, takes 2.5–4 s there, most of it
/// building the parsed object, the rest finding the repeated key).
#[test]
fn hostile_texts_are_read_in_time_linear_in_their_size() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    const SMALL: usize = 4 << 20;
    for family in [
        "many keys",
        "deep nesting",
        "long number",
        "long string",
        "many rows",
    ] {
        let small = hostile(family, SMALL);
        let large = hostile(family, 4 * SMALL);
        // the best of two, against scheduling noise
        let t_small = time_parse(&small).min(time_parse(&small));
        let t_large = time_parse(&large).min(time_parse(&large));
        eprintln!(
            "{family}: {} bytes in {t_small:?}, {} bytes in {t_large:?}",
            small.len(),
            large.len()
        );
        assert!(
            t_large <= t_small * 8 + Duration::from_millis(50),
            "{family}: {} bytes took {t_large:?}, more than 8 × the {t_small:?} of {} bytes",
            large.len(),
            small.len()
        );
        assert!(
            t_large < Duration::from_secs(8),
            "{family}: {} bytes took {t_large:?}",
            large.len()
        );
    }
}

/// A case with 100 000 keys in one object is refused well under a second, naming a key.
#[test]
fn an_object_of_100_000_keys_is_refused_well_under_a_second() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = String::from(
        r#"{"loss": "softmax_ce", "inputs": {"logits": [[1, 2]], "labels": [0]}, "params": {"#,
    );
    for k in 0..100_000 {
        let _ = write!(text, "\"key{k}\": 0, ");
    }
    text.push_str("\"reduction\": \"sum\"}}");
    let t = Instant::now();
    let error = parse_case(&text).expect_err("unknown keys are refused");
    let elapsed = t.elapsed();
    assert_eq!(error.place, "params.key0");
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    // and the same keys, one repeated at the end
    text.truncate(text.len() - "\"reduction\": \"sum\"}}".len());
    text.push_str("\"key5\": 1}}");
    let t = Instant::now();
    let error = parse_case(&text).expect_err("a repeated key is refused");
    let elapsed = t.elapsed();
    assert!(error.reason.contains("\"key5\" appears twice"), "{error}");
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
}

/// A text over the size limit is refused before it is parsed.
#[test]
fn a_text_over_the_size_limit_is_refused_at_once() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let text = " ".repeat(lossref::case::MAX_CASE_BYTES + 1);
    let t = Instant::now();
    let error = parse_case(&text).expect_err("too large");
    assert!(error.reason.contains("more than the limit"), "{error}");
    assert!(t.elapsed() < Duration::from_millis(100));
}

// ---------------------------------------------------------------------------------------
// Shrunk failures, kept as explicit cases

/// Found by the fuzzer (with overflow checks): an `.npy` header whose shape multiplies out
/// beyond 64 bits made the `.npy` reader overflow (a panic with overflow checks, a wrapped
/// size without), and so did one with a zero dimension first (the reader's strides
/// multiply the others), and one whose dimension the mutation had turned into an
/// expression, `109+511627776`, which the reader evaluates. All are refused, naming the
/// array.
#[test]
fn an_npy_shape_whose_size_overflows_is_refused() {
    for shape in [
        "(1099511627776, 1099511627776)",
        "(0, 1099511627776, 1099511627776)",
    ] {
        an_npy_shape_is_refused(shape, "overflows 64 bits");
    }
    // and one the fuzzer mutated into an expression the reader evaluates
    an_npy_shape_is_refused(
        "(140737488355328, 109+511627776)",
        "not a shape of decimal integers",
    );
}

fn an_npy_shape_is_refused(shape: &str, reason: &str) {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("features.npy", options).unwrap();
        zip.write_all(&npy).unwrap();
        zip.finish().unwrap();
    }
    let error = npz::read_bytes(&buffer.into_inner(), "huge.npz").unwrap_err();
    assert_eq!(error.place, "huge.npz:features");
    assert!(error.reason.contains(reason), "{error}");
}
