//! The whole check's report: the summary table per loss and dtype, and its JSON form.

use crate::check::{diagnose, CaseReport, Verdict};
use crate::spec::Dtype;
use crate::tolerance::ILL_CONDITIONED;
use serde_json::{json, Value};
use statrs::statistics::{Data as Sample, OrderStatistics};
use std::collections::BTreeMap;

/// The whole check.
pub struct CheckReport {
    /// The implementation's name.
    pub implementation: String,
    /// The corpus version.
    pub corpus_version: String,
    /// Per case.
    pub cases: Vec<CaseReport>,
    /// Per loss: the conventions that explain its failures.
    pub diagnoses: Vec<diagnose::Diagnosis>,
    /// The pipeline the results declared (SPEC §6), if they did.
    pub pipeline: Option<crate::tier::Pipeline>,
}

/// One row of the summary table: a loss's output group in one dtype.
#[derive(Clone, Debug)]
pub struct Row {
    /// `cosface.grad`.
    pub function: String,
    /// float32 or float64.
    pub dtype: Dtype,
    /// Values judged.
    pub values: usize,
    /// Error in tolerance units: max, median, 99th percentile.
    pub max: f64,
    /// Median.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The largest error in ulps of the exact value, over the values that are not 0.
    pub max_ulps: f64,
    /// Where the largest error is.
    pub worst_case: String,
    /// Failing groups.
    pub failures: usize,
}

/// One row of the table per tag: how the cases that carry a tag fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagRow {
    /// The tag (`edge:tiny-norm`).
    pub tag: String,
    /// Cases with the tag that were run (not `not run`, not skipped).
    pub run: usize,
    /// Of those, PASS (an expected failure's XFAIL included).
    pub passed: usize,
    /// UNSTABLE.
    pub unstable: usize,
    /// FAIL, MISSING or an unexpected pass.
    pub failed: usize,
    /// The first failing case, if any: the id that shows it.
    pub first_failure: Option<String>,
}

impl CheckReport {
    /// The table per tag (SPEC §4): every tag of the run cases, in tag order.
    pub fn by_tag(&self) -> Vec<TagRow> {
        let mut by: BTreeMap<&str, TagRow> = BTreeMap::new();
        for c in &self.cases {
            if matches!(c.verdict, Verdict::NotRun | Verdict::Skipped(_)) {
                continue;
            }
            for tag in &c.tags {
                let row = by.entry(tag).or_insert_with(|| TagRow {
                    tag: tag.clone(),
                    run: 0,
                    passed: 0,
                    unstable: 0,
                    failed: 0,
                    first_failure: None,
                });
                row.run += 1;
                match &c.verdict {
                    Verdict::Unstable(_) => row.unstable += 1,
                    v if v.is_failure() => {
                        row.failed += 1;
                        row.first_failure.get_or_insert_with(|| c.id.clone());
                    }
                    _ => row.passed += 1,
                }
            }
        }
        by.into_values().collect()
    }

    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(|c| c.verdict.is_failure())
    }

    /// The summary table, per loss output group and dtype.
    pub fn table(&self) -> Vec<Row> {
        // per (function, dtype): every error, the worst in units and in ulps, where, failures
        type Acc = (Vec<f64>, f64, f64, String, usize);
        let mut by: BTreeMap<(String, Dtype), Acc> = BTreeMap::new();
        for c in &self.cases {
            if matches!(c.verdict, Verdict::NotRun | Verdict::Skipped(_)) {
                continue;
            }
            for g in &c.groups {
                // a group that was not compared has no error to tabulate (its failure is
                // counted below, and listed with the failures)
                let compared = g.verdict.compared();
                let e = by.entry((g.function.clone(), c.dtype)).or_insert((
                    Vec::new(),
                    0.0,
                    0.0,
                    String::new(),
                    0,
                ));
                e.4 += usize::from(g.verdict.is_failure());
                if !compared {
                    continue;
                }
                e.0.extend(g.points.iter().map(|p| p.0.min(1e300)));
                if g.worst_units >= e.1 {
                    e.1 = g.worst_units;
                    e.3 = format!("{} {}{}", c.id, g.group, g.worst_at);
                }
                e.2 = e.2.max(g.worst_ulps);
            }
        }
        by.into_iter()
            .map(
                |((function, dtype), (points, max, max_ulps, worst_case, failures))| {
                    let values = points.len();
                    let mut sample =
                        Sample::new(if points.is_empty() { vec![0.0] } else { points });
                    Row {
                        function,
                        dtype,
                        values,
                        max,
                        median: sample.median(),
                        p99: sample.percentile(99),
                        max_ulps,
                        worst_case,
                        failures,
                    }
                },
            )
            .collect()
    }

    /// Counts of case verdicts.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in &self.cases {
            *m.entry(c.verdict.word()).or_default() += 1;
        }
        m
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let table: Vec<Value> = self
            .table()
            .iter()
            .map(|r| json!({"function": r.function, "dtype": r.dtype.as_str(), "values": r.values, "max_units": finite(r.max), "median_units": r.median, "p99_units": r.p99, "max_ulps": finite(r.max_ulps), "worst": r.worst_case, "failures": r.failures}))
            .collect();
        let cases: Vec<Value> = self
            .cases
            .iter()
            .map(|c| {
                json!({"id": c.id, "tags": c.tags, "tier": c.tier.to_string(), "verdict": c.verdict.word(), "detail": detail(&c.verdict), "groups": c.groups.iter().map(|g| json!({
                    "group": g.group, "verdict": g.verdict.word(), "detail": detail(&g.verdict), "max_units": finite(g.worst_units), "max_ulps": finite(g.worst_ulps), "at": g.worst_at, "kappa": g.kappa,
                    "ill_conditioned": g.kappa > ILL_CONDITIONED, "tier_note": g.tier_note,
                })).collect::<Vec<_>>()})
            })
            .collect();
        json!({
            "implementation": self.implementation,
            "corpus_version": self.corpus_version,
            "pipeline": self.pipeline.map(|p| p.to_string()),
            "passed": self.passed(),
            "counts": self.counts(),
            "table": table,
            "tags": self.by_tag().iter().map(|t| json!({"tag": t.tag, "run": t.run, "pass": t.passed, "unstable": t.unstable, "fail": t.failed, "first_failure": t.first_failure})).collect::<Vec<_>>(),
            "diagnoses": self.diagnoses.iter().map(diagnose::Diagnosis::json).collect::<Vec<_>>(),
            "cases": cases,
        })
    }

    /// The human-readable report: counts, the table, the failures and the diagnoses.
    pub fn text(&self) -> String {
        let pipeline = self
            .pipeline
            .map_or(String::new(), |p| format!(" (pipeline {p}, SPEC §6)"));
        let mut out = format!(
            "lossref check: {} against corpus {}{pipeline}\n",
            self.implementation, self.corpus_version
        );
        let counts: Vec<String> = self
            .counts()
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        out.push_str(&format!("cases: {}\n\n", counts.join(", ")));
        out.push_str(&format!(
            "{:<22} {:<8} {:>7} {:>11} {:>11} {:>11} {:>12} {:>5}  worst\n",
            "function", "dtype", "values", "max(tol)", "median", "p99", "max ulps", "fail"
        ));
        for r in self.table() {
            out.push_str(&format!(
                "{:<22} {:<8} {:>7} {:>11.3e} {:>11.3e} {:>11.3e} {:>12.3e} {:>5}  {}\n",
                r.function,
                r.dtype.as_str(),
                r.values,
                r.max,
                r.median,
                r.p99,
                r.max_ulps,
                r.failures,
                r.worst_case
            ));
        }
        out.push_str(
            "(max(tol), median, p99: the error in units of the tolerance, a pass ≤ 1; max ulps: \
             the largest error in ulps of the exact value, large only where a value is \
             ill-conditioned or far below the terms it sums, so that it can be large beside \
             `fail 0`)\n",
        );
        out.push_str(&format!(
            "\n{:<30} {:>5} {:>5} {:>8} {:>5}  first failing case\n",
            "tag", "run", "pass", "unstable", "fail"
        ));
        for t in self.by_tag() {
            out.push_str(&format!(
                "{:<30} {:>5} {:>5} {:>8} {:>5}  {}\n",
                t.tag,
                t.run,
                t.passed,
                t.unstable,
                t.failed,
                t.first_failure.as_deref().unwrap_or("")
            ));
        }
        let failing: Vec<&CaseReport> = self
            .cases
            .iter()
            .filter(|c| c.verdict.is_failure())
            .collect();
        if !failing.is_empty() {
            out.push_str(&format!("\nfailures ({}):\n", failing.len()));
            for c in failing.iter().take(40) {
                for g in c.groups.iter().filter(|g| g.verdict.is_failure()) {
                    out.push_str(&format!("  {} {}: {}\n", c.id, g.group, g.summary()));
                }
                if let Verdict::UnexpectedPass(why) = &c.verdict {
                    out.push_str(&format!("  {}: {why}\n", c.id));
                }
            }
            if failing.len() > 40 {
                out.push_str(&format!("  … and {} more\n", failing.len() - 40));
            }
        }
        for d in &self.diagnoses {
            out.push_str(&format!("\ndiagnosis {}: {}\n", d.loss, d.text()));
        }
        out.push_str(&format!(
            "\n{}\n",
            if self.passed() { "PASSED" } else { "FAILED" }
        ));
        out
    }
}

/// `s` with the characters XML and HTML reserve escaped.
pub fn escape_markup(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// " at `[i][j]`" for a matrix entry, nothing for a scalar.
pub fn at(place: &str) -> String {
    if place.is_empty() {
        String::new()
    } else {
        format!(" at {place}")
    }
}

/// A number for JSON: null where there is no finite one (a value that is NaN or ±∞, or
/// a group that was not compared).
fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The words behind a verdict.
pub fn detail(v: &Verdict) -> String {
    match v {
        Verdict::Unstable(why) => format!("unstable implementation on this case: {why}"),
        Verdict::Missing(why) | Verdict::WrongShape(why) => why.clone(),
        Verdict::Xfail(why) | Verdict::UnexpectedPass(why) | Verdict::Skipped(why) => why.clone(),
        _ => String::new(),
    }
}
