//! Enforces the softmax rows of `lossref::precision::entry` (`softmax`, `log_softmax`,
//! `softmax_ce.*`) in both directions: the fast f32/f64 paths are measured in ulps against
//! the certified reference over every regime of `common::Regime` (fixed seeds), and each
//! entry must be ≥ the measured maximum and at most `STALE_FACTOR` times it.

use crate::common;

use common::table::{Worsts, SOFTMAX_FAMILIES};
use common::{batch, deterministic_runner, temperature, Batch, Regime};
use lossref::fast::{dispatch, Real};
use lossref::matrix::Matrix;
use lossref::reference::certified;
use lossref::spec::{Case, Reduction, SoftmaxCase, SoftmaxCeCase};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

/// Generated inputs per regime and dtype (times `LOSSREF_EXTENSIVE`).
const CASES: u32 = 120;

#[derive(Default)]
struct Measurements {
    worst: Worsts,
    regimes: HashSet<(Regime, &'static str)>,
    /// The smallest exact loss seen per dtype (the dominant-target regime must reach tiny ones).
    smallest_loss: BTreeMap<&'static str, f64>,
    /// Batches drawn so far: which option set the next one gets.
    drawn: usize,
}

/// SPEC §5's cross-entropy family on batch `b`, the `k`-th draw: `softmax_ce` with one of six
/// option sets in turn (class weights from 1e−6 to 1e6 with a zero, ignored rows, ε near 0,
/// at 1 and in between, soft targets summing to 1 or not), `focal` with γ ∈ {0, 0.5, 2, 2.5,
/// 5} and α, and `poly1` with ε ∈ {−1, 0, 1, 2}; every number exact in `T`.
fn cross_entropy_family<T: Real>(b: &Batch, reduction: Reduction, k: usize) -> Vec<Case> {
    use lossref::spec::{CeOptions, FocalCase, TargetRule};
    let exact = |x: f64| T::of_f64(x).as_f64();
    let (n, c) = (b.logits.rows(), b.logits.cols());
    let weights: Vec<f64> = (0..c)
        .map(|j| exact([0.5, 2.0, 1e-6, 1e6, 3.25, 0.0, 1.0][(j + k) % 7]))
        .collect();
    // a `mean` needs a positive weight on some label
    let mut weights = weights;
    weights[b.labels[0]] = 1.5;
    let eps = exact([0.1, 1e-7, 1.0, 0.3, 0.0, 0.05][k % 6]);
    let targets = |sum: f64| {
        Matrix::from_fn(n, c, |i, j| {
            exact(sum * ((i + 2 * j + k) % 5) as f64 / (2.0 * c as f64))
        })
    };
    let ignored: Vec<bool> = (0..n).map(|i| n > 1 && i == n - 1).collect();
    let options = match k % 6 {
        0 => CeOptions {
            weight: Some(weights.clone()),
            ..CeOptions::default()
        },
        1 => CeOptions {
            label_smoothing: eps,
            ..CeOptions::default()
        },
        2 => CeOptions {
            weight: Some(weights.clone()),
            label_smoothing: eps,
            ignore_index: Some(-100),
            ignored_rows: if n > 1 { ignored } else { Vec::new() },
            ..CeOptions::default()
        },
        3 => CeOptions {
            targets: Some(targets(1.0)),
            ..CeOptions::default()
        },
        4 => CeOptions {
            targets: Some(targets(2.5)),
            weight: Some(weights.clone()),
            label_smoothing: eps,
            ..CeOptions::default()
        },
        _ => CeOptions {
            weight: Some(weights.clone()),
            label_smoothing: eps,
            ..CeOptions::default()
        },
    };
    let labels = if options.targets.is_some() {
        Vec::new()
    } else {
        b.labels.clone()
    };
    let gamma = [0.0, 0.5, 2.0, 2.5, 5.0][k % 5];
    let epsilon = [-1.0, 0.0, 1.0, 2.0][k % 4];
    let alpha = (k % 2 == 0).then(|| {
        (0..c)
            .map(|j| exact([0.25, 0.75, 1.0, 0.0][j % 4]))
            .collect()
    });
    let focal = |rule| {
        Case::Focal(FocalCase {
            rule,
            reduction,
            logits: b.logits.clone(),
            labels: b.labels.clone(),
        })
    };
    vec![
        Case::SoftmaxCe(SoftmaxCeCase {
            reduction,
            logits: b.logits.clone(),
            labels,
            options,
        }),
        focal(TargetRule::Focal { gamma, alpha }),
        focal(TargetRule::Poly1 { epsilon }),
    ]
}

/// The fast path in dtype `T` against the certified reference, in the table's measures.
fn measure_case<T: Real>(case: &Case, worst: &mut Worsts, context: &dyn Fn() -> String) -> f64 {
    let exact = certified(case).unwrap_or_else(|e| panic!("reference failed on {case:?}: {e}"));
    let fast = dispatch::evaluate::<T>(case).expect("valid batch");
    worst.measure(case, T::DTYPE, &exact, &fast, context);
    exact
        .answer
        .output("loss")
        .map_or(f64::INFINITY, |l| l.values()[0].f64)
}

fn measure<T: Real>(regime: Regime, m: &RefCell<Measurements>) {
    let is_f32 = T::NAME == "f32";
    let mut runner = deterministic_runner(common::cases(CASES));
    let strategy = (batch(regime, is_f32), temperature(), proptest::bool::ANY);
    runner
        .run(&strategy, |(b, t, sum): (Batch, f64, bool)| {
            let mut m = m.borrow_mut();
            m.regimes.insert((regime, T::NAME));
            // Exactly representable temperatures only, so the reference sees the same T.
            let temperature = T::of_f64(t).as_f64();
            let soft = Case::Softmax(SoftmaxCase {
                temperature,
                logits: b.logits.clone(),
            });
            measure_case::<T>(&soft, &mut m.worst, &|| {
                format!("{regime:?} T={temperature} logits={:?}", b.logits)
            });
            let reduction = if sum { Reduction::Sum } else { Reduction::Mean };
            let ce = Case::SoftmaxCe(SoftmaxCeCase {
                reduction,
                logits: b.logits.clone(),
                labels: b.labels.clone(),
                options: Default::default(),
            });
            let loss = measure_case::<T>(&ce, &mut m.worst, &|| {
                format!("{regime:?} {reduction:?} {b:?}")
            });
            let smallest = m.smallest_loss.entry(T::NAME).or_insert(f64::INFINITY);
            *smallest = smallest.min(loss);
            m.drawn += 1;
            for case in cross_entropy_family::<T>(&b, reduction, m.drawn) {
                measure_case::<T>(&case, &mut m.worst, &|| format!("{regime:?} {case:?}"));
            }
            Ok(())
        })
        .expect("measurement never fails a case");
}

#[test]
fn precision_table_holds_and_is_tight() {
    let m = RefCell::new(Measurements::default());
    for regime in Regime::ALL {
        measure::<f64>(regime, &m);
        measure::<f32>(regime, &m);
    }
    let m = m.into_inner();
    let mut failures = Vec::new();
    for regime in Regime::ALL {
        for dtype in ["f32", "f64"] {
            if !m.regimes.contains(&(regime, dtype)) {
                failures.push(format!("regime {regime:?} was never generated for {dtype}"));
            }
        }
    }
    // The dominant regime must reach losses of 1e−290 (f64) and f32's subnormals.
    for (dtype, reach) in [("f64", 1e-290), ("f32", 1e-38)] {
        let got = m.smallest_loss.get(dtype).copied().unwrap_or(f64::INFINITY);
        if got > reach {
            failures.push(format!(
                "{dtype}: the smallest loss generated is {got:e}, not below {reach:e}"
            ));
        }
    }
    // This file measures the softmax rows; the other precision_table_* files the others.
    m.worst
        .enforce(|q| SOFTMAX_FAMILIES.contains(&q.family()), failures);
}

/// The typed table lists each quantity once, and the four precision-table tests together
/// own every row, each row one test.
#[test]
fn every_table_row_is_listed_once_and_owned_by_one_test() {
    use common::table::{ADAPTIVE_FAMILIES, MARGIN_FAMILIES, SEED_FAMILIES};
    use lossref::precision::Quantity;
    let names: HashSet<String> = Quantity::ALL.iter().map(|q| q.name()).collect();
    assert_eq!(
        names.len(),
        Quantity::ALL.len(),
        "a quantity is listed twice"
    );
    for q in Quantity::ALL {
        let owners = [
            &SOFTMAX_FAMILIES[..],
            &MARGIN_FAMILIES,
            &SEED_FAMILIES,
            &ADAPTIVE_FAMILIES,
        ]
        .iter()
        .filter(|families| families.contains(&q.family()))
        .count();
        assert_eq!(owners, 1, "{q} is owned by {owners} precision-table tests");
    }
}

/// The README's fast-path accuracy tables state every row of the table, each as it is.
#[test]
fn the_readme_states_every_table_entry_as_it_is() {
    use lossref::precision::{entry, Quantity};
    use lossref::spec::Dtype;
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Fast-path accuracy")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a fast-path accuracy section");
    let number = |cell: &str| -> f64 {
        let digits: String = cell
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {cell:?}"))
    };
    let mut stated: BTreeMap<(String, Dtype), f64> = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        assert_eq!(cells.len(), 3, "{line}");
        let name = cells[0].trim();
        let family = name.split('`').nth(1).expect("a backticked loss");
        let rest = name
            .splitn(3, '`')
            .nth(2)
            .unwrap_or("")
            .replace("(and amsoftmax)", "");
        let outputs: Vec<String> = if rest.trim().is_empty() {
            vec![String::new()]
        } else {
            rest.split(" / ")
                .map(|o| match o.trim().trim_matches('`') {
                    "loss" => ".loss".to_string(),
                    "options loss" => ".options_loss".to_string(),
                    "options gradient" => ".options_grad".to_string(),
                    "gradient" | "gradients" => ".grad".to_string(),
                    "∂L/∂s" => ".grad_scale".to_string(),
                    "centers_next" => ".centers_next".to_string(),
                    // SPEC §5's state after the step (t_next, batch_mean_next, …)
                    "state" => ".state".to_string(),
                    other => panic!("unknown output {other:?} in {line}"),
                })
                .collect()
        };
        for (cell, dtype) in [(cells[1], Dtype::Float32), (cells[2], Dtype::Float64)] {
            let values: Vec<&str> = cell.split(" / ").collect();
            assert_eq!(values.len(), outputs.len(), "{line}");
            for (o, v) in outputs.iter().zip(values) {
                let previous = stated.insert((format!("{family}{o}"), dtype), number(v));
                assert!(previous.is_none(), "{family}{o} is stated twice");
            }
        }
    }
    for q in Quantity::ALL {
        for dtype in Dtype::ALL {
            let want = entry(q, dtype).max_ulps;
            match stated.remove(&(q.name(), dtype)) {
                Some(v) => assert_eq!(
                    v,
                    want,
                    "README states {q} {} as {v}, the table {want}",
                    dtype.short()
                ),
                None => panic!("README does not state {q} {}", dtype.short()),
            }
        }
    }
    assert!(
        stated.is_empty(),
        "README states rows the table does not have: {stated:?}"
    );
}

/// SPEC §6's `amp` rows: lossref's fast path on every 16-bit corpus case (float32 on the
/// exact inputs, gradients rounded once to the case's dtype, as `lossref report` runs it),
/// each gradient's error in ulps of the 16-bit dtype at its measure, against the derived
/// entry ½ + F·2^(p − 24), both ways; its outputs are float32's, measured above.
#[test]
fn the_amp_gradient_rows_hold_on_every_16_bit_case_and_are_tight() {
    use lossref::check::Corpus;
    use lossref::precision::{entry, error_ulps, judge, measures, Quantity};
    use lossref::spec::Dtype;
    let corpus = Corpus::load(Some(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus"),
    ))
    .unwrap();
    let mut worst: BTreeMap<(Quantity, Dtype), (f64, String)> = BTreeMap::new();
    // the table holds at sums of at most 16 terms (`lossref::tolerance`'s g(n) is the
    // room beyond): C = 10⁴ is left to the tolerance, as in every other row's measurement
    let small = |c: &&lossref::check::CorpusCase| !c.tags.iter().any(|t| t == "scale:large-C");
    for c in corpus
        .cases
        .iter()
        .filter(|c| c.dtype.is_half())
        .filter(small)
    {
        let loaded = corpus.load_case(c).unwrap();
        let got = dispatch::evaluate::<f32>(&loaded.case).unwrap();
        for m in measures(&loaded.case, &loaded.reference, Dtype::Float32) {
            let Some(name) = m.group.strip_prefix("gradients/") else {
                continue;
            };
            let (Some(g), Some(w)) = (got.gradient(name), loaded.reference.gradient(name)) else {
                panic!("{}: {} missing", c.id, m.group);
            };
            for ((g, w), s) in g.values().iter().zip(w.values()).zip(&m.scales) {
                let amp = c.dtype.round(*g);
                let exact = rug::Float::with_val(53, *w);
                let e = error_ulps(amp, &exact, *s, c.dtype);
                let slot = worst
                    .entry((m.quantity, c.dtype))
                    .or_insert((0.0, String::new()));
                if e > slot.0 {
                    *slot = (e, c.id.clone());
                }
            }
        }
    }
    let mut failures = Vec::new();
    for ((q, d), (e, id)) in &worst {
        eprintln!("{q} {}: {e:.3} ulps ({id})", d.short());
        if let Err(msg) = judge(*q, *d, *e) {
            failures.push(format!("{msg} ({id})"));
        }
        assert!(entry(*q, *d).reason.contains("amp"), "{q}: an amp row");
    }
    // every gradient row of the table is measured in both 16-bit dtypes
    for q in Quantity::ALL
        .into_iter()
        .filter(|q| q.output().starts_with("grad"))
    {
        for d in Dtype::HALF {
            if !worst.contains_key(&(q, d)) {
                failures.push(format!("{q} {} is never measured", d.short()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
