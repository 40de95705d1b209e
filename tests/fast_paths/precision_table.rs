//! Enforces `lossref::precision::TABLE` in both directions: the fast f32/f64 paths are
//! measured in ulps against the certified reference over every regime of
//! `common::Regime` (fixed seeds), and each table entry must be ≥ the measured maximum and
//! at most `STALE_FACTOR` times it.

use crate::common;

use common::table::Worsts;
use common::{
    batch, certify_ce, certify_softmax, deterministic_runner, show, temperature, values, Batch,
    Regime,
};
use lossref::fast::{self, Real};
use lossref::mp::certify::Certified;
use lossref::precision::ulps;
use lossref::spec::Reduction;
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
}

impl Measurements {
    fn record(
        &mut self,
        function: &str,
        dtype: &'static str,
        err: f64,
        witness: impl FnOnce() -> String,
    ) {
        self.worst.record(function, dtype, err, witness);
    }
}

fn convert<T: Real>(xs: &[f64]) -> Vec<T> {
    xs.iter().map(|&x| T::of_f64(x)).collect()
}

fn measure<T: Real>(regime: Regime, m: &RefCell<Measurements>) {
    let is_f32 = T::NAME == "f32";
    let err = |got: T, exact: &Certified| {
        ulps(
            got.as_f64(),
            &exact.enclosure.mid(),
            T::MANTISSA_BITS,
            T::MIN_SUBNORMAL_EXP,
        )
    };
    let mut runner = deterministic_runner(common::cases(CASES));
    let strategy = (batch(regime, is_f32), temperature(), proptest::bool::ANY);
    runner
        .run(&strategy, |(b, t, sum): (Batch, f64, bool)| {
            let mut m = m.borrow_mut();
            m.regimes.insert((regime, T::NAME));
            let z: Vec<T> = convert(b.logits.as_slice());
            let cols = b.logits.cols();
            let t_t = T::of_f64(t);
            // Exactly representable temperatures only, so the reference sees the same T.
            let t_exact = t_t.as_f64();
            let soft = certify_softmax(&b.logits, t_exact);
            let mut out = vec![T::zero(); z.len()];
            let witness = |k: usize, g: T, e: &Certified| {
                format!(
                    "{regime:?} T={t_exact} logits={:?} entry {k}: got {} want {}",
                    b.logits,
                    show(g.as_f64()),
                    e.decimal
                )
            };
            fast::softmax::softmax(&z, cols, t_t, &mut out).expect("valid batch");
            for (k, (g, e)) in out
                .iter()
                .zip(values(&soft, "outputs", "probabilities"))
                .enumerate()
            {
                m.record("softmax", T::NAME, err(*g, e), || witness(k, *g, e));
            }
            fast::softmax::log_softmax(&z, cols, t_t, &mut out).expect("valid batch");
            for (k, (g, e)) in out
                .iter()
                .zip(values(&soft, "outputs", "log_probabilities"))
                .enumerate()
            {
                m.record("log_softmax", T::NAME, err(*g, e), || witness(k, *g, e));
            }
            let reduction = if sum { Reduction::Sum } else { Reduction::Mean };
            let ce = certify_ce(&b, reduction);
            let (loss, grad) =
                fast::softmax::softmax_ce(&z, cols, &b.labels, reduction).expect("valid batch");
            let want = &values(&ce, "outputs", "loss")[0];
            let smallest = m.smallest_loss.entry(T::NAME).or_insert(f64::INFINITY);
            *smallest = smallest.min(want.f64);
            m.record("softmax_ce.loss", T::NAME, err(loss, want), || {
                format!(
                    "{regime:?} {reduction:?} {b:?}: got {} want {}",
                    show(loss.as_f64()),
                    want.decimal
                )
            });
            for (k, (g, e)) in grad
                .iter()
                .zip(values(&ce, "gradients", "logits"))
                .enumerate()
            {
                m.record("softmax_ce.grad", T::NAME, err(*g, e), || {
                    format!(
                        "{regime:?} {reduction:?} {b:?} entry {k}: got {} want {}",
                        show(g.as_f64()),
                        e.decimal
                    )
                });
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
        .enforce(|f| f.starts_with("softmax") || f == "log_softmax", failures);
}
