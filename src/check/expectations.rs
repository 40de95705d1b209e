//! Expectations (SPEC §4): named cases, tags or value groups expected to fail or skipped,
//! each with a reason, applied to the verdicts.

use crate::check::{CaseReport, Verdict};
use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;
use std::path::Path;

/// One expectation: cases (and optionally groups) matching globs, expected to fail or
/// skipped, with the reason.
#[derive(Clone, Debug)]
pub struct Expectation {
    /// A glob over case ids (`*` matches any run of characters).
    pub case: String,
    /// `xfail` or `skip`.
    pub category: String,
    /// Why.
    pub reason: String,
}

/// Reads an expectation file: `{"expectations": [{"case": GLOB, "category": "xfail"|"skip",
/// "reason": TEXT}, …]}`.
///
/// # Errors
/// A malformed file, naming the place.
pub fn read_expectations(path: &Path) -> Result<Vec<Expectation>> {
    let file = path.display().to_string();
    let text = crate::cli::read_input(&file, 64 << 20)?;
    parse_expectations(&text, &file)
}

/// Parses the JSON text of an expectation file; `file` names it in messages.
///
/// # Errors
/// A malformed file, naming the place.
pub fn parse_expectations(text: &str, file: &str) -> Result<Vec<Expectation>> {
    let file = file.to_string();
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::new(ErrorKind::Json, &file, format!("not valid JSON: {e}")))?;
    let list = v["expectations"]
        .as_array()
        .ok_or_else(|| Error::invalid(format!("{file}: expectations"), "expected an array"))?;
    list.iter()
        .enumerate()
        .map(|(k, e)| {
            let at = format!("{file}: expectations[{k}]");
            let field = |name: &str| {
                e[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::invalid(&at, format!("needs a string `{name}`")))
            };
            let category = field("category")?;
            if category != "xfail" && category != "skip" {
                return Err(Error::invalid(
                    &at,
                    format!("category must be \"xfail\" or \"skip\", got {category:?}"),
                ));
            }
            Ok(Expectation {
                case: field("case")?,
                category,
                reason: field("reason")?,
            })
        })
        .collect()
}

/// `*`-glob matching.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut at = first.len();
    let end = text.len() - last.len();
    for part in &parts[1..parts.len() - 1] {
        match text[at..end].find(part) {
            Some(k) => at += k + part.len(),
            None => return false,
        }
    }
    true
}

/// Applies the expectations to a case's verdict.
pub fn expect(report: &mut CaseReport, expectations: &[Expectation]) {
    let Some(e) = expectations.iter().find(|e| glob(&e.case, &report.id)) else {
        return;
    };
    report.verdict = match (&e.category[..], &report.verdict) {
        ("skip", _) => Verdict::Skipped(e.reason.clone()),
        (_, Verdict::NotRun) => Verdict::NotRun,
        (_, v) if v.is_failure() => Verdict::Xfail(e.reason.clone()),
        _ => Verdict::UnexpectedPass(format!(
            "expected to fail ({}), but passes: update your expectations",
            e.reason
        )),
    };
}
