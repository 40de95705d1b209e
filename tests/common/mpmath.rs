//! The independent reference in Python with mpmath (tests/mpmath_reference.py): running it
//! and comparing `lossref eval` against it, value by value.

use lossref::numdiff::agreement_digits;
use rug::Float;
use serde_json::Value;

/// Runs `program ARGS` with `stdin`; panics with a hint when it cannot run or fails.
pub fn run(program: &str, args: &[&str], stdin: &str) -> String {
    let out = super::run_with_stdin(program, args, stdin).unwrap_or_else(|e| {
        panic!("cannot run {program}: {e}; this test needs python3 with mpmath")
    });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n(this test needs python3 with mpmath: python3 -m pip install mpmath)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `lossref eval` of every case agrees with mpmath: ≥ 30 significant digits for every
/// value, and an mpmath value below 1e−100 wherever lossref prints an exact 0. Returns
/// the least agreement in digits.
pub fn eval_agrees(cases: &[Value]) -> f64 {
    let lines: Vec<String> = cases.iter().map(Value::to_string).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mpmath_reference.py");
    let mpmath = run("python3", &[script], &(lines.join("\n") + "\n"));
    let answers: Vec<Value> = mpmath
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), cases.len());
    let mut worst = f64::INFINITY;
    for (line, want) in lines.iter().zip(&answers) {
        let got: Value =
            serde_json::from_str(&run(env!("CARGO_BIN_EXE_lossref"), &["eval", "-"], line))
                .unwrap();
        for section in ["outputs", "gradients"] {
            compare(
                &format!("{line}\n{section}"),
                &got[section],
                &want[section],
                &mut worst,
            );
        }
    }
    worst
}

/// Walks two answers in parallel, comparing every decimal string.
fn compare(path: &str, got: &Value, want: &Value, worst: &mut f64) {
    match (got, want) {
        (Value::String(g), Value::String(w)) => {
            let g = Float::with_val(4096, Float::parse(g).unwrap());
            let w = Float::with_val(4096, Float::parse(w).unwrap());
            if g.is_zero() {
                // An exact zero (lossref certifies it as the point 0): the difference quotient
                // must vanish to the accuracy of the numerical derivative.
                assert!(w.clone().abs() < 1e-100, "{path}: lossref 0 vs mpmath {w}");
                return;
            }
            let d = agreement_digits(&g, &w);
            *worst = worst.min(d);
            assert!(
                d >= 30.0,
                "{path}: lossref {g} vs mpmath {w}: {d:.1} digits"
            );
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: lengths differ");
            for (k, (a, b)) in g.iter().zip(w).enumerate() {
                compare(&format!("{path}[{k}]"), a, b, worst);
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            let gk: Vec<_> = g.keys().collect();
            let wk: Vec<_> = w.keys().collect();
            assert_eq!(gk, wk, "{path}: keys differ");
            for (k, v) in w {
                compare(&format!("{path}.{k}"), &g[k], v, worst);
            }
        }
        _ => panic!("{path}: {got} vs {want}"),
    }
}
