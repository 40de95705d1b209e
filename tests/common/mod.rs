//! Shared test support: proptest strategies for shapes and logits in named regimes, and
//! helpers that run the certified reference.
#![allow(dead_code)]

pub mod bounds;
pub mod geometry;
pub mod gradient;
pub mod mpmath;
pub mod table;
pub mod textbook;

use lossref::matrix::Matrix;
use lossref::mp::certify::{Certified, CertifiedAnswer, Rounded};
use lossref::reference::certified;
use lossref::spec::{Case, Reduction, SoftmaxCase, SoftmaxCeCase};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The input regimes every softmax-family test draws from. Each is reached on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Regime {
    /// Logits in [−10, 10].
    Moderate,
    /// Logits in [−1000, 1000].
    Large,
    /// Logits a few ulps (or 1e−12) apart around one value.
    NearTie,
    /// The target logit exceeds all others by a gap of 1 … 700 (f64) or 1 … 100 (f32), so
    /// the loss goes down to 1e−300 (f64) or into f32's subnormals.
    Dominant,
}

impl Regime {
    /// All regimes.
    pub const ALL: [Regime; 4] = [
        Regime::Moderate,
        Regime::Large,
        Regime::NearTie,
        Regime::Dominant,
    ];
}

/// A softmax_ce batch: logits N×C and labels.
#[derive(Clone, Debug)]
pub struct Batch {
    pub logits: Matrix<f64>,
    pub labels: Vec<usize>,
}

/// Rounds to f32 when `f32` is set (so the value is exactly representable there).
fn narrow(x: f64, f32: bool) -> f64 {
    if f32 {
        f64::from(x as f32)
    } else {
        x
    }
}

/// A strategy for batches in `regime`; with `f32`, every logit is an f32 value.
pub fn batch(regime: Regime, f32: bool) -> BoxedStrategy<Batch> {
    (1usize..=3, 2usize..=12)
        .prop_flat_map(move |(n, c)| {
            let labels = proptest::collection::vec(0..c, n);
            let cells = n * c;
            let values = match regime {
                Regime::Moderate => proptest::collection::vec(-10.0f64..10.0, cells).boxed(),
                Regime::Large => proptest::collection::vec(-1000.0f64..1000.0, cells).boxed(),
                Regime::NearTie => (
                    -50.0f64..50.0,
                    proptest::collection::vec((-3i32..=3, any::<bool>()), cells),
                )
                    .prop_map(move |(base, steps)| {
                        let base = narrow(base, f32);
                        let ulp = if f32 {
                            f64::from((base as f32).abs().max(1.0)) * f64::from(f32::EPSILON)
                        } else {
                            base.abs().max(1.0) * f64::EPSILON
                        };
                        steps
                            .into_iter()
                            .map(|(k, tiny)| {
                                if tiny {
                                    base + f64::from(k) * 1e-12
                                } else {
                                    base + f64::from(k) * ulp
                                }
                            })
                            .collect()
                    })
                    .boxed(),
                Regime::Dominant => {
                    let max_gap = if f32 { 100.0 } else { 700.0 };
                    (
                        1.0f64..max_gap,
                        -5.0f64..5.0,
                        proptest::collection::vec(0.0f64..3.0, cells),
                    )
                        .prop_map(move |(gap, top, spread)| {
                            // Row values below `top − gap`; the label's column is set to `top`
                            // once the labels are known (below).
                            spread
                                .into_iter()
                                .map(|s| top - gap - s)
                                .chain([top])
                                .collect::<Vec<f64>>()
                        })
                        .boxed()
                }
            };
            (Just((n, c)), labels, values)
        })
        .prop_map(move |((n, c), labels, mut values)| {
            if regime == Regime::Dominant {
                let top = values.pop().unwrap_or(0.0);
                for (i, &y) in labels.iter().enumerate() {
                    values[i * c + y] = top;
                }
            }
            let data = values.into_iter().map(|x| narrow(x, f32)).collect();
            Batch {
                logits: Matrix::from_vec(n, c, data).expect("n × c values"),
                labels,
            }
        })
        .boxed()
}

/// A batch from any regime.
pub fn any_batch(f32: bool) -> BoxedStrategy<Batch> {
    prop_oneof![
        batch(Regime::Moderate, f32),
        batch(Regime::Large, f32),
        batch(Regime::NearTie, f32),
        batch(Regime::Dominant, f32),
    ]
    .boxed()
}

/// Temperatures for softmax cases: powers of two and awkward values.
pub fn temperature() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        Just(0.0625),
        Just(16.0),
        Just(0.5),
        Just(2.0),
        Just(0.3),
        Just(7.0)
    ]
}

/// `base` test cases, times `LOSSREF_EXTENSIVE` when that is set (the opt-in extensive
/// tier: `LOSSREF_EXTENSIVE=50 cargo test --release` runs fifty times as many inputs).
pub fn cases(base: u32) -> u32 {
    let factor = std::env::var("LOSSREF_EXTENSIVE")
        .ok()
        .map_or(1, |v| v.parse().unwrap_or(10));
    base.saturating_mul(factor.max(1))
}

/// A runner with a fixed seed, so a measurement over `cases` inputs is reproducible.
pub fn deterministic_runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// The certified answer of a softmax_ce case.
pub fn certify_ce(b: &Batch, reduction: Reduction) -> CertifiedAnswer {
    let case = Case::SoftmaxCe(SoftmaxCeCase {
        reduction,
        logits: b.logits.clone(),
        labels: b.labels.clone(),
        options: Default::default(),
    });
    certified(&case).unwrap_or_else(|e| panic!("reference failed on {b:?}: {e}"))
}

/// The certified answer of a softmax case.
pub fn certify_softmax(logits: &Matrix<f64>, temperature: f64) -> CertifiedAnswer {
    let case = Case::Softmax(SoftmaxCase {
        temperature,
        logits: logits.clone(),
    });
    certified(&case)
        .unwrap_or_else(|e| panic!("reference failed on {logits:?} T={temperature}: {e}"))
}

/// A certified answer as `lossref eval` keeps it: each value's roundings, tier and decimal
/// string, without its enclosure.
pub fn rounded(answer: &CertifiedAnswer) -> CertifiedAnswer<Rounded> {
    CertifiedAnswer {
        answer: answer
            .answer
            .try_map(|_, c| Ok::<_, ()>(c.clone().rounded(true)))
            .expect("infallible"),
        certificate: answer.certificate,
    }
}

/// Asserts two certified answers the same value for value: the same outputs and gradients
/// in the same order and shapes, the same decimal strings, binary64 and binary32 roundings
/// and tiers. Returns how many values were compared (the certificates are the caller's).
pub fn assert_same_values(
    id: &str,
    a: &CertifiedAnswer<Rounded>,
    b: &CertifiedAnswer<Rounded>,
) -> usize {
    let a: Vec<_> = a.answer.sections().collect();
    let b: Vec<_> = b.answer.sections().collect();
    let names = |s: &[(&str, &str, _)]| {
        s.iter()
            .map(|(x, y, _)| format!("{x}.{y}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&a),
        names(&b),
        "{id}: outputs and gradients, in order"
    );
    let mut compared = 0;
    for ((section, name, ta), (_, _, tb)) in a.iter().zip(&b) {
        assert_eq!(
            ta.values().len(),
            tb.values().len(),
            "{id}: {section}.{name} shape"
        );
        assert_eq!(
            ta.index_label(ta.values().len().saturating_sub(1)),
            tb.index_label(tb.values().len().saturating_sub(1)),
            "{id}: {section}.{name} shape"
        );
        for (k, (x, y)) in ta.values().iter().zip(tb.values()).enumerate() {
            let at = format!("{id}: {section}.{name}{}", ta.index_label(k));
            assert_eq!(x.decimal, y.decimal, "{at}: decimal strings differ");
            assert_eq!(x.f64.to_bits(), y.f64.to_bits(), "{at}: binary64 differs");
            assert_eq!(x.f32.to_bits(), y.f32.to_bits(), "{at}: binary32 differs");
            assert_eq!(x.tier, y.tier, "{at}: tier differs");
            compared += 1;
        }
    }
    compared
}

/// The values of a named output or gradient, row-major.
pub fn values<'a>(ans: &'a CertifiedAnswer, section: &str, name: &str) -> &'a [Certified] {
    let t = if section == "outputs" {
        ans.answer.output(name)
    } else {
        ans.answer.gradient(name)
    };
    t.unwrap_or_else(|| panic!("no {section}.{name}")).values()
}

/// A value printed in decimal, as hex-float and as raw bits, for failure messages.
pub fn show(x: f64) -> String {
    format!(
        "{x:e} ({}, bits {:#018x})",
        lossref::report::hex_f64(x),
        x.to_bits()
    )
}

/// Runs `program ARGS` with `stdin` as its standard input and collects its output.
/// `Err` when the program cannot be started.
pub fn run_with_stdin(program: &str, args: &[&str], stdin: &str) -> std::io::Result<Output> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Feed standard input from another thread: a child that answers line by line would
    // otherwise fill its output pipe while we are still writing, and both would wait.
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || input.write_all(text.as_bytes()));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| std::io::Error::other("the stdin writer panicked"))??;
    Ok(output)
}
