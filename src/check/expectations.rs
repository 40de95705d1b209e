//! Expectations (SPEC §4): named cases, tags or value groups expected to fail or skipped,
//! each with a reason, applied to the verdicts.

use crate::check::verdict::case_verdict;
use crate::check::{CaseReport, Corpus, Verdict};
use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;
use std::path::Path;

/// One expectation (SPEC §4): the cases it names (by an id glob, by tags, or both), and
/// optionally only some of their value groups, expected to fail or skipped, with the
/// reason.
#[derive(Clone, Debug)]
pub struct Expectation {
    /// A glob over case ids (`*` matches any run of characters); `*` when only tags are
    /// given.
    pub case: String,
    /// Tags, any of which a case must carry (`edge:tiny-norm`); empty: any case.
    pub tags: Vec<String>,
    /// Value groups (`gradients/scale`) the expectation covers; empty: the whole case.
    pub values: Vec<String>,
    /// `xfail` or `skip`.
    pub category: String,
    /// Why.
    pub reason: String,
}

impl Expectation {
    /// Whether the expectation names this case.
    fn covers(&self, report: &CaseReport) -> bool {
        glob(&self.case, &report.id)
            && (self.tags.is_empty() || self.tags.iter().any(|t| report.tags.contains(t)))
    }
}

/// Reads an expectation file: `{"expectations": [{"case": GLOB, "tags": [TAG, …],
/// "values": [GROUP, …], "category": "xfail"|"skip", "reason": TEXT}, …]}` (`case` or
/// `tags` required; `values` optional).
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
            let strings = |name: &str| -> Result<Vec<String>> {
                match &e[name] {
                    Value::Null => Ok(Vec::new()),
                    Value::Array(items) => items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            item.as_str().map(str::to_string).ok_or_else(|| {
                                Error::invalid(
                                    format!("{at}.{name}[{i}]"),
                                    format!("expected a string, got {item}"),
                                )
                            })
                        })
                        .collect(),
                    other => Err(Error::invalid(
                        format!("{at}.{name}"),
                        format!("expected an array of strings, got {other}"),
                    )),
                }
            };
            let tags = strings("tags")?;
            let values = strings("values")?;
            if let Some((i, v)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.starts_with("outputs/") || v.starts_with("gradients/")))
            {
                return Err(Error::invalid(
                    format!("{at}.values[{i}]"),
                    format!("expected a value group such as \"gradients/scale\", got {v:?}"),
                ));
            }
            let case = match &e["case"] {
                Value::Null if !tags.is_empty() => "*".to_string(),
                _ => field("case").map_err(|_| {
                    Error::invalid(&at, "needs a string `case` (an id glob) or `tags`")
                })?,
            };
            Ok(Expectation {
                case,
                tags,
                values,
                category,
                reason: field("reason")?,
            })
        })
        .collect()
}

/// Checks that every expectation names something in `corpus`: each tag is a tag of its
/// cases, each `case` glob matches at least one id, each value group is a SPEC §1 output or
/// gradient. An expectation that names nothing would silently expect nothing (a mistyped
/// tag, say), so every such name is reported at once, each with the nearest valid one.
///
/// # Errors
/// Every name that matches nothing, in one error naming `file`.
pub fn known_expectations(corpus: &Corpus, expectations: &[Expectation], file: &str) -> Result<()> {
    use crate::suggest::did_you_mean;
    let tags: std::collections::BTreeSet<&str> = corpus
        .cases
        .iter()
        .flat_map(|c| c.tags.iter().map(String::as_str))
        .collect();
    let ids = || corpus.cases.iter().map(|c| c.id.as_str());
    let groups: Vec<String> = crate::family::Output::ALL
        .iter()
        .map(|o| format!("outputs/{}", o.as_str()))
        .chain(
            crate::family::Gradient::ALL
                .iter()
                .map(|g| format!("gradients/{}", g.as_str())),
        )
        .collect();
    let mut problems = Vec::new();
    for (k, e) in expectations.iter().enumerate() {
        let at = format!("expectations[{k}]");
        for (i, tag) in e.tags.iter().enumerate() {
            if !tags.contains(tag.as_str()) {
                problems.push(format!(
                    "{at}.tags[{i}]: no case of corpus {} has the tag `{tag}`{}",
                    corpus.version,
                    did_you_mean(tag, tags.iter().copied())
                ));
            }
        }
        if !ids().any(|id| glob(&e.case, id)) {
            let hint = if e.case.contains('*') {
                String::new()
            } else {
                did_you_mean(&e.case, ids())
            };
            problems.push(format!(
                "{at}.case: `{}` matches no case of corpus {}{hint}",
                e.case, corpus.version
            ));
        }
        for (i, group) in e.values.iter().enumerate() {
            if !groups.contains(group) {
                problems.push(format!(
                    "{at}.values[{i}]: `{group}` is no output or gradient of any loss{}",
                    did_you_mean(group, groups.iter().map(String::as_str))
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        file,
        format!(
            "{} names that match nothing (an expectation that names nothing expects nothing): {}",
            problems.len(),
            problems.join("; ")
        ),
    ))
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

/// What an expectation makes of a verdict.
fn expected(e: &Expectation, verdict: &Verdict) -> Verdict {
    match (&e.category[..], verdict) {
        ("skip", _) => Verdict::Skipped(e.reason.clone()),
        (_, Verdict::NotRun) => Verdict::NotRun,
        (_, v) if v.is_failure() => Verdict::Xfail(e.reason.clone()),
        _ => Verdict::UnexpectedPass(format!(
            "expected to fail ({}), but passes: update your expectations",
            e.reason
        )),
    }
}

/// Applies the expectations to a case: those that name value groups to its groups (the
/// first that covers each group), and then the first that covers the whole case to its
/// verdict.
pub fn expect(report: &mut CaseReport, expectations: &[Expectation]) {
    let covering: Vec<&Expectation> = expectations.iter().filter(|e| e.covers(report)).collect();
    if covering.iter().any(|e| !e.values.is_empty()) {
        for g in &mut report.groups {
            if let Some(e) = covering.iter().find(|e| e.values.contains(&g.group)) {
                g.verdict = expected(e, &g.verdict);
            }
        }
        report.verdict = case_verdict(&report.groups);
    }
    if let Some(e) = covering.iter().find(|e| e.values.is_empty()) {
        report.verdict = expected(e, &report.verdict);
    }
}
