//! JUnit XML for CI systems: one test suite per loss, one test case per corpus case × value
//! group, a failure element with the verdict and its diagnosis.

use super::{detail, escape_markup, CheckReport, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The report as JUnit XML.
pub fn junit(report: &CheckReport) -> String {
    let mut by_loss: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    let diagnosis = |loss: &str| {
        report
            .diagnoses
            .iter()
            .find(|d| d.loss == loss)
            .map(|d| d.text())
            .unwrap_or_default()
    };
    for c in &report.cases {
        let cases = by_loss.entry(&c.loss).or_default();
        let groups: Vec<(String, Verdict, String)> = if c.groups.is_empty()
            || !matches!(
                c.verdict,
                Verdict::Pass
                    | Verdict::Fail
                    | Verdict::Unstable(_)
                    | Verdict::Missing(_)
                    | Verdict::WrongShape(_)
            ) {
            vec![("case".into(), c.verdict.clone(), String::new())]
        } else {
            c.groups
                .iter()
                .map(|g| {
                    (
                        g.group.clone(),
                        g.verdict.clone(),
                        format!(
                            "{:.3e}× the tolerance{} ({:.3e} ulps)",
                            g.worst_units,
                            super::at(&g.worst_at),
                            g.worst_ulps
                        ),
                    )
                })
                .collect()
        };
        for (group, verdict, size) in groups {
            let name = escape_markup(&format!("{} {group}", c.id));
            let mut tc = format!(
                "    <testcase classname=\"{}\" name=\"{name}\">",
                escape_markup(&c.loss)
            );
            match &verdict {
                v if v.is_failure() => {
                    *failures.entry(&c.loss).or_default() += 1;
                    let message = format!(
                        "{}: {size}{}",
                        v.word(),
                        match detail(v) {
                            d if d.is_empty() => String::new(),
                            d => format!("; {d}"),
                        }
                    );
                    let _ = write!(
                        tc,
                        "<failure message=\"{}\">{}</failure>",
                        escape_markup(&message),
                        escape_markup(&diagnosis(&c.loss))
                    );
                }
                Verdict::NotRun | Verdict::Skipped(_) | Verdict::Xfail(_) => {
                    *skipped.entry(&c.loss).or_default() += 1;
                    let _ = write!(
                        tc,
                        "<skipped message=\"{}\"/>",
                        escape_markup(&format!("{} {}", verdict.word(), detail(&verdict)))
                    );
                }
                _ => {}
            }
            tc.push_str("</testcase>");
            cases.push(tc);
        }
    }
    let total: usize = by_loss.values().map(Vec::len).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"lossref check: {}\" tests=\"{total}\" failures=\"{}\">\n",
        escape_markup(&report.implementation),
        failures.values().sum::<usize>()
    );
    for (loss, cases) in &by_loss {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            escape_markup(loss),
            cases.len(),
            failures.get(loss).copied().unwrap_or(0),
            skipped.get(loss).copied().unwrap_or(0)
        );
        for tc in cases {
            out.push_str(tc);
            out.push('\n');
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
