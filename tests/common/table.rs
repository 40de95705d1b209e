//! The bookkeeping shared by the precision-table tests: the worst error per
//! (function, dtype) with the input that produced it, and the two-way judgement of
//! `lossref::precision::TABLE` (an entry below the measured maximum fails, so does one
//! more than `STALE_FACTOR` above it, and so does an entry that is never measured).

use lossref::precision::{judge, lookup, TABLE};
use std::collections::BTreeMap;

/// The worst error seen for one (function, dtype), with its witness.
#[derive(Clone, Debug, Default)]
pub struct Worst {
    pub ulps: f64,
    pub witness: String,
}

/// Worst errors by (function, dtype).
#[derive(Clone, Debug, Default)]
pub struct Worsts(pub BTreeMap<(String, &'static str), Worst>);

impl Worsts {
    /// Records an error; the witness is formatted only when it is a new maximum.
    pub fn record(
        &mut self,
        function: impl AsRef<str>,
        dtype: &'static str,
        err: f64,
        witness: impl FnOnce() -> String,
    ) {
        let w = self
            .0
            .entry((function.as_ref().to_string(), dtype))
            .or_default();
        if err > w.ulps || w.witness.is_empty() {
            w.ulps = w.ulps.max(err);
            w.witness = witness();
        }
    }

    /// Judges every measurement against its entry, and every entry of `TABLE` that `owns`
    /// claims against the measurements; prints the maxima and panics with every failure,
    /// `extra` included.
    pub fn enforce(&self, owns: impl Fn(&str) -> bool, mut failures: Vec<String>) {
        for ((function, dtype), w) in &self.0 {
            match lookup(function, dtype) {
                None => failures.push(format!(
                    "{function} {dtype} ({:.3} ulps) is measured but has no table entry",
                    w.ulps
                )),
                Some(entry) => {
                    if let Err(msg) = judge(entry, w.ulps) {
                        failures.push(format!("{msg}\n    worst input: {}", w.witness));
                    }
                }
            }
        }
        for entry in TABLE.iter().filter(|e| owns(e.function)) {
            if !self
                .0
                .contains_key(&(entry.function.to_string(), entry.dtype))
            {
                failures.push(format!(
                    "table entry {} {} is never measured: delete it or test it",
                    entry.function, entry.dtype
                ));
            }
        }
        let summary: Vec<String> = self
            .0
            .iter()
            .map(|((f, d), w)| format!("{f} {d}: {:.3} ulps  ({})", w.ulps, w.witness))
            .collect();
        eprintln!("measured maxima:\n  {}", summary.join("\n  "));
        assert!(
            failures.is_empty(),
            "precision table violations:\n  {}",
            failures.join("\n  ")
        );
    }
}
