//! `lossref check`: an implementation's results judged against the conformance corpus
//! (SPEC §4) with the tolerance model of [`crate::tolerance`], per case and per value group,
//! with expectations, a summary table, diagnoses ([`diagnose`]) and JSON / JUnit reports.

pub mod diagnose;
pub mod html;
pub mod junit;

use crate::answer::{Answer, Tensor};
use crate::case::case_from_arrays;
use crate::error::{Error, ErrorKind, Result};
use crate::matrix::Matrix;
use crate::npz::{self, Array, Data};
use crate::precision::{quantities, Quantity};
use crate::spec::Case;
use crate::spec::Dtype;
use crate::tolerance::{allowed_ulps, scales, summation_factor, Scale, ILL_CONDITIONED};
use serde_json::{json, Value};
use statrs::statistics::{Data as Sample, OrderStatistics};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest results file read: 1 GiB.
pub const MAX_RESULTS_BYTES: usize = 1 << 30;

/// One corpus case, as the manifest lists it.
#[derive(Clone, Debug)]
pub struct CorpusCase {
    /// The stable id.
    pub id: String,
    /// The loss id.
    pub loss: String,
    /// float32 or float64.
    pub dtype: Dtype,
    /// The SPEC §3 params.
    pub params: Value,
    /// Why the case exists.
    pub tags: Vec<String>,
    /// The file of its arrays, within the corpus.
    pub arrays: String,
}

/// The corpus: a directory, or the copy embedded in the binary.
pub struct Corpus {
    root: Option<PathBuf>,
    /// The manifest's version.
    pub version: String,
    /// Every case, in id order.
    pub cases: Vec<CorpusCase>,
}

impl Corpus {
    /// Loads the manifest of the corpus in `dir`, or of the embedded corpus for `None`.
    ///
    /// # Errors
    /// A manifest that cannot be read or is not a corpus manifest.
    pub fn load(dir: Option<&Path>) -> Result<Corpus> {
        let (text, place) = match dir {
            Some(d) => {
                let p = d.join("manifest.json");
                let t = std::fs::read_to_string(&p).map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        p.display().to_string(),
                        format!("cannot read: {e}"),
                    )
                })?;
                (t, p.display().to_string())
            }
            None => {
                let bytes = crate::corpus::embedded_file("manifest.json").ok_or_else(|| {
                    Error::invalid("corpus", "this binary embeds no corpus; give --corpus DIR")
                })?;
                (
                    String::from_utf8_lossy(bytes).into_owned(),
                    "embedded manifest.json".to_string(),
                )
            }
        };
        let m: Value = serde_json::from_str(&text)
            .map_err(|e| Error::new(ErrorKind::Json, &place, format!("not JSON: {e}")))?;
        let cases = m["cases"]
            .as_array()
            .ok_or_else(|| Error::invalid(&place, "has no `cases` array"))?
            .iter()
            .map(|c| {
                let field = |k: &str| {
                    c[k].as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::invalid(&place, format!("a case lacks `{k}`")))
                };
                Ok(CorpusCase {
                    id: field("id")?,
                    loss: field("loss")?,
                    dtype: if field("dtype")? == "float32" {
                        Dtype::Float32
                    } else {
                        Dtype::Float64
                    },
                    params: c["params"].clone(),
                    tags: c["tags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect(),
                    arrays: field("arrays")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Corpus {
            root: dir.map(Path::to_path_buf),
            version: m["version"].as_str().unwrap_or("").to_string(),
            cases,
        })
    }

    fn arrays(&self, case: &CorpusCase) -> Result<BTreeMap<String, Array>> {
        match &self.root {
            Some(root) => npz::read(&root.join(&case.arrays)),
            None => {
                let bytes = crate::corpus::embedded_file(&case.arrays).ok_or_else(|| {
                    Error::invalid(&case.id, format!("{} is not embedded", case.arrays))
                })?;
                npz::read_bytes(bytes, &case.arrays)
            }
        }
    }

    /// The case itself and its reference rounded to binary64 (and binary32).
    ///
    /// # Errors
    /// Unreadable arrays or an invalid case.
    pub fn load_case(&self, case: &CorpusCase) -> Result<Loaded> {
        let arrays = self.arrays(case)?;
        let mut inputs = BTreeMap::new();
        let mut reference = Answer {
            outputs: vec![],
            gradients: vec![],
        };
        let mut reference32 = Answer {
            outputs: vec![],
            gradients: vec![],
        };
        for (key, a) in &arrays {
            if let Some(name) = key.strip_prefix("inputs/") {
                inputs.insert(name.to_string(), a.clone());
            }
        }
        let head = json!({"loss": case.loss, "params": case.params});
        let parsed = case_from_arrays(&head, inputs, &case.arrays)
            .map_err(|e| Error::new(e.kind, format!("{}: {}", case.id, e.place), e.reason))?;
        // the names of the case's outputs and gradients, as its family lists them
        let names: Vec<&'static str> = quantities(&parsed)
            .into_iter()
            .filter_map(|(group, _)| group.split_once('/').map(|(_, name)| name))
            .collect();
        for (key, a) in &arrays {
            for (prefix, target) in [
                ("reference/", &mut reference),
                ("reference/binary32/", &mut reference32),
            ] {
                let Some(rest) = key.strip_prefix(prefix) else {
                    continue;
                };
                let Some((section, name)) = rest.split_once('/') else {
                    continue;
                };
                let Some(t) = tensor(a) else { continue };
                let Some(name) = names.iter().copied().find(|n| *n == name) else {
                    continue;
                };
                match section {
                    "outputs" => target.outputs.push((name, t)),
                    "gradients" => target.gradients.push((name, t)),
                    _ => {}
                }
            }
        }
        Ok(Loaded {
            case: parsed,
            reference,
            reference32,
        })
    }
}

/// A corpus case read back: the case and its reference roundings.
pub struct Loaded {
    /// The parsed case.
    pub case: Case,
    /// The binary64 roundings.
    pub reference: Answer<f64>,
    /// The binary32 roundings.
    pub reference32: Answer<f64>,
}

fn tensor(a: &Array) -> Option<Tensor<f64>> {
    let Data::Float(v) = &a.data else { return None };
    match a.shape.as_slice() {
        [] => Some(Tensor::Scalar(*v.first()?)),
        [r, c] => Some(Tensor::Matrix(Matrix::from_vec(*r, *c, v.clone())?)),
        [n] => Some(Tensor::Matrix(Matrix::from_vec(1, *n, v.clone())?)),
        _ => None,
    }
}

/// One case's values by group (`outputs/loss`): each its shape and row-major values.
pub type Groups = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

/// An answer's values by group, as a results file holds them.
pub fn groups_of(answer: &Answer<f64>) -> Groups {
    answer
        .sections()
        .map(|(section, name, t)| {
            let shape = match t {
                Tensor::Scalar(_) => vec![],
                Tensor::Matrix(m) => vec![m.rows(), m.cols()],
            };
            (format!("{section}/{name}"), (shape, t.values().to_vec()))
        })
        .collect()
}

/// The values an implementation returned, per case id and value group (`outputs/loss`).
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// `NAME VERSION` of the implementation.
    pub implementation: String,
    /// id → group → (shape, values).
    pub values: BTreeMap<String, Groups>,
}

fn json_tensor(v: &Value, place: &str) -> Result<(Vec<usize>, Vec<f64>)> {
    let num = |x: &Value, at: &str| -> Result<f64> {
        match x {
            Value::Number(n) => n
                .as_str()
                .parse::<f64>()
                .map_err(|_| Error::invalid(at, format!("cannot read the number {n}"))),
            Value::String(s)
                if matches!(
                    s.as_str(),
                    "nan" | "NaN" | "inf" | "-inf" | "Infinity" | "-Infinity"
                ) =>
            {
                Ok(match s.as_str() {
                    "nan" | "NaN" => f64::NAN,
                    "-inf" | "-Infinity" => f64::NEG_INFINITY,
                    _ => f64::INFINITY,
                })
            }
            other => Err(Error::invalid(
                at,
                format!("expected a number, got {other}"),
            )),
        }
    };
    match v {
        Value::Array(rows) if rows.first().is_some_and(Value::is_array) => {
            let cols = rows[0].as_array().map_or(0, Vec::len);
            let mut out = Vec::with_capacity(rows.len() * cols);
            for (i, r) in rows.iter().enumerate() {
                let r = r
                    .as_array()
                    .ok_or_else(|| Error::invalid(format!("{place}[{i}]"), "expected a row"))?;
                if r.len() != cols {
                    return Err(Error::invalid(
                        format!("{place}[{i}]"),
                        format!("has {} entries but row 0 has {cols}", r.len()),
                    ));
                }
                for (j, x) in r.iter().enumerate() {
                    out.push(num(x, &format!("{place}[{i}][{j}]"))?);
                }
            }
            Ok((vec![rows.len(), cols], out))
        }
        Value::Array(items) => {
            let out = items
                .iter()
                .enumerate()
                .map(|(j, x)| num(x, &format!("{place}[{j}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok((vec![items.len()], out))
        }
        other => Ok((vec![], vec![num(other, place)?])),
    }
}

impl Results {
    /// The results as a SPEC §4 JSON results file (non-finite values as the strings
    /// `"nan"`, `"inf"`, `"-inf"`, which [`Results::read`] accepts).
    pub fn json(&self) -> Value {
        let mut all = serde_json::Map::new();
        for (id, groups) in &self.values {
            let mut case = serde_json::json!({"outputs": {}, "gradients": {}});
            for (group, (shape, values)) in groups {
                let Some((section, name)) = group.split_once('/') else {
                    continue;
                };
                let number = |x: f64| {
                    if x.is_finite() {
                        serde_json::json!(x)
                    } else {
                        serde_json::json!(if x.is_nan() {
                            "nan".to_string()
                        } else if x > 0.0 {
                            "inf".to_string()
                        } else {
                            "-inf".to_string()
                        })
                    }
                };
                case[section][name] = match shape.as_slice() {
                    [] => number(values[0]),
                    [_, cols] => serde_json::Value::Array(
                        values
                            .chunks((*cols).max(1))
                            .map(|r| {
                                serde_json::Value::Array(r.iter().map(|&x| number(x)).collect())
                            })
                            .collect(),
                    ),
                    _ => serde_json::Value::Array(values.iter().map(|&x| number(x)).collect()),
                };
            }
            all.insert(id.clone(), case);
        }
        serde_json::json!({"implementation": self.implementation, "results": all})
    }

    /// Reads a results file: JSON (`{"implementation", "results": {id: {"outputs": …,
    /// "gradients": …}}}`) or `.npz` (keys `<id>/outputs/<name>`, `<id>/gradients/<name>`).
    ///
    /// # Errors
    /// A file that cannot be read, is too large, or is malformed, naming the place.
    pub fn read(path: &Path) -> Result<Results> {
        let file = path.display().to_string();
        if file.ends_with(".npz") {
            let arrays = npz::read(path)?;
            let mut values: BTreeMap<String, Groups> = BTreeMap::new();
            for (key, a) in arrays {
                let (id, group) =
                    match key.rfind("/outputs/").or_else(|| key.rfind("/gradients/")) {
                        Some(k) => (key[..k].to_string(), key[k + 1..].to_string()),
                        None => return Err(Error::invalid(
                            format!("{file}:{key}"),
                            "expected a key <case id>/outputs/<name> or <case id>/gradients/<name>",
                        )),
                    };
                let Data::Float(v) = a.data else {
                    return Err(Error::invalid(
                        format!("{file}:{key}"),
                        "expected a float array",
                    ));
                };
                values.entry(id).or_default().insert(group, (a.shape, v));
            }
            return Ok(Results {
                implementation: file,
                values,
            });
        }
        let text = crate::cli::read_input(&file, MAX_RESULTS_BYTES)?;
        Results::parse(&text, &file)
    }

    /// Parses the JSON text of a results file; `file` names it in messages.
    ///
    /// # Errors
    /// Text that is not JSON or not a results object, naming the place.
    pub fn parse(text: &str, file: &str) -> Result<Results> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            Error::new(ErrorKind::Json, format!("{file}: line {}, column {}", e.line(), e.column()), format!("not valid JSON: {e} (NaN and Infinity are not JSON; write them as the strings \"nan\", \"inf\", \"-inf\")"))
        })?;
        let results = v["results"].as_object().ok_or_else(|| {
            Error::invalid(
                format!("{file}: results"),
                "expected an object of results by case id",
            )
        })?;
        let mut values = BTreeMap::new();
        for (id, r) in results {
            let mut groups = BTreeMap::new();
            for section in ["outputs", "gradients"] {
                if let Some(obj) = r.get(section) {
                    let obj = obj.as_object().ok_or_else(|| {
                        Error::invalid(
                            format!("{file}: results.{id}.{section}"),
                            "expected an object",
                        )
                    })?;
                    for (name, t) in obj {
                        groups.insert(
                            format!("{section}/{name}"),
                            json_tensor(t, &format!("results.{id}.{section}.{name}"))?,
                        );
                    }
                }
            }
            values.insert(id.clone(), groups);
        }
        Ok(Results {
            implementation: v["implementation"]
                .as_str()
                .unwrap_or("unnamed")
                .to_string(),
            values,
        })
    }
}

/// How a value group (or a case) fared.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Within tolerance.
    Pass,
    /// Beyond tolerance.
    Fail,
    /// Beyond tolerance, but within what a named unstable formula gives on this case, or
    /// only by flushed subnormals ([`FLUSHED_SUBNORMALS`]); the reasons, joined.
    Unstable(String),
    /// The group is missing from the results, or has the wrong shape.
    Missing(String),
    /// The case is not in the results.
    NotRun,
    /// Failed, as an expectation said, with its reason.
    Xfail(String),
    /// Passed although an expectation said it fails.
    UnexpectedPass(String),
    /// Skipped by an expectation.
    Skipped(String),
}

impl Verdict {
    /// True for the verdicts that make `lossref check` exit 1.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Verdict::Fail | Verdict::Unstable(_) | Verdict::Missing(_) | Verdict::UnexpectedPass(_)
        )
    }

    /// How bad a failing verdict is, for a case made of several groups: a missing value,
    /// then a plain failure, then an unstable formula (0 for the others).
    pub fn severity(&self) -> u8 {
        match self {
            Verdict::Missing(_) => 3,
            Verdict::Fail => 2,
            Verdict::Unstable(_) => 1,
            _ => 0,
        }
    }

    /// A short word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Unstable(_) => "UNSTABLE",
            Verdict::Missing(_) => "MISSING",
            Verdict::NotRun => "not run",
            Verdict::Xfail(_) => "xfail",
            Verdict::UnexpectedPass(_) => "UNEXPECTED PASS",
            Verdict::Skipped(_) => "skip",
        }
    }
}

/// The judgement of one value group of one case.
#[derive(Clone, Debug)]
pub struct GroupReport {
    /// `outputs/loss`, `gradients/features`, …
    pub group: String,
    /// The precision table's function (`cosface.grad`).
    pub function: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The largest error in units of the tolerance (1 = at the tolerance).
    pub worst_units: f64,
    /// The error in ulps of the exact value at the worst point, in the case's dtype (0 where
    /// the exact value is 0: see [`CheckReport`]'s table).
    pub worst_ulps: f64,
    /// Where the largest error is, e.g. `[3][1]`.
    pub worst_at: String,
    /// The largest condition number met in the group.
    pub kappa: f64,
    /// Every value's (error in tolerance units, condition number), for plots and statistics.
    pub points: Vec<(f64, f64)>,
}

impl GroupReport {
    /// The verdict in words: `FAIL (2.1e3× the tolerance at [0][4]): …`, naming an
    /// ill-conditioned case and the verdict's detail.
    pub fn summary(&self) -> String {
        let why = match (detail(&self.verdict), self.kappa > ILL_CONDITIONED) {
            (d, true) => format!(
                ": ill-conditioned case (condition number {:.1e}){}",
                self.kappa,
                if d.is_empty() {
                    String::new()
                } else {
                    format!("; {d}")
                }
            ),
            (d, false) if d.is_empty() => String::new(),
            (d, false) => format!(": {d}"),
        };
        format!(
            "{} ({:.3e}× the tolerance{}){why}",
            self.verdict.word(),
            self.worst_units,
            at(&self.worst_at)
        )
    }

    /// A group the results lack, or hold in the wrong shape.
    fn missing(group: &str, function: String, why: String) -> GroupReport {
        GroupReport {
            group: group.to_string(),
            function,
            verdict: Verdict::Missing(why),
            worst_units: f64::INFINITY,
            worst_ulps: f64::INFINITY,
            worst_at: String::new(),
            kappa: 1.0,
            points: vec![],
        }
    }
}

/// The judgement of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The id.
    pub id: String,
    /// The loss id.
    pub loss: String,
    /// float32 or float64.
    pub dtype: Dtype,
    /// The case's tags.
    pub tags: Vec<String>,
    /// The case's verdict (its worst group's).
    pub verdict: Verdict,
    /// Per group.
    pub groups: Vec<GroupReport>,
}

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

/// The reason given when a value's error is below a few of the dtype's smallest normal
/// numbers: subnormal results or intermediates were flushed to zero.
pub const FLUSHED_SUBNORMALS: &str = "subnormals flushed to zero: the error is below the \
    dtype's smallest normal number (2^−126 in float32, 2^−1022 in float64) times the \
    tolerance, as when XLA on CPU or CUDA's fast math flushes subnormal results";

/// Judges one group's values against the reference with the case's scales.
fn judge_group(
    group: &str,
    quantity: Quantity,
    dtype: Dtype,
    got: &[f64],
    want: &[f64],
    scales: &[Scale],
    cols: usize,
) -> GroupReport {
    let allowed = allowed_ulps(quantity, dtype);
    let mut worst = (0.0f64, 0.0f64, 0usize);
    // the named reasons of the failing points (a textbook formula, flushed subnormals)
    let mut reasons: Vec<&'static str> = Vec::new();
    let mut kappa: f64 = 1.0;
    let mut points = Vec::with_capacity(got.len());
    let mut within_unstable = true;
    for (k, ((g, w), s)) in got.iter().zip(want).zip(scales).enumerate() {
        let limit = allowed * summation_factor(s.terms);
        let err = if g.is_nan() || (g.is_infinite() && *g != *w) {
            f64::INFINITY
        } else if g == w {
            0.0
        } else {
            (g - w).abs()
        };
        let units = err / dtype.ulp(s.scale) / limit;
        // ulps of an exact 0 are the format's smallest subnormal, which measures nothing
        // useful: exact zeros are judged by their tolerance alone and left out of this
        let ulps = if *w == 0.0 { 0.0 } else { err / dtype.ulp(*w) };
        let cond = (s.scale / w.abs().max(f64::MIN_POSITIVE)).max(s.kappa);
        kappa = kappa.max(s.kappa);
        points.push((units, cond));
        if units > 1.0 {
            let why = match s.unstable {
                Some((naive, why)) if err / dtype.ulp(naive) / limit <= 1.0 => Some(why),
                _ if err / dtype.min_normal() / limit <= 1.0 => Some(FLUSHED_SUBNORMALS),
                _ => None,
            };
            match why {
                Some(why) if !reasons.contains(&why) => reasons.push(why),
                Some(_) => {}
                None => within_unstable = false,
            }
        }
        if units > worst.0 || k == 0 {
            worst = (units.max(worst.0), ulps, k);
        }
    }
    let failed = points.iter().any(|p| p.0 > 1.0);
    let verdict = if !failed {
        Verdict::Pass
    } else if within_unstable && !reasons.is_empty() {
        Verdict::Unstable(reasons.join("; "))
    } else {
        Verdict::Fail
    };
    let at = match worst.2.checked_div(cols) {
        Some(row) => format!("[{row}][{}]", worst.2 % cols),
        None => String::new(),
    };
    GroupReport {
        group: group.to_string(),
        function: quantity.name(),
        verdict,
        worst_units: worst.0,
        worst_ulps: worst.1,
        worst_at: at,
        kappa,
        points,
    }
}

/// Judges the results of one case (`None`: not in the results).
///
/// # Errors
/// The case cannot be loaded from the corpus.
pub fn judge_case(corpus: &Corpus, case: &CorpusCase, got: Option<&Groups>) -> Result<CaseReport> {
    let mut report = CaseReport {
        id: case.id.clone(),
        loss: case.loss.clone(),
        dtype: case.dtype,
        tags: case.tags.clone(),
        verdict: Verdict::NotRun,
        groups: vec![],
    };
    let Some(got) = got else { return Ok(report) };
    let loaded = corpus.load_case(case)?;
    let reference = if case.dtype == Dtype::Float32 {
        &loaded.reference32
    } else {
        &loaded.reference
    };
    for scale_group in scales(&loaded.case, &loaded.reference) {
        let group = scale_group.name;
        let (section, name) = group.split_once('/').unwrap_or(("", ""));
        let function = scale_group.quantity.name();
        let want = if section == "outputs" {
            reference.output(name)
        } else {
            reference.gradient(name)
        };
        let Some(want) = want else { continue };
        let (rows, cols) = match want {
            Tensor::Scalar(_) => (0, 0),
            Tensor::Matrix(m) => (m.rows(), m.cols()),
        };
        let expected_shape: Vec<usize> = if cols == 0 { vec![] } else { vec![rows, cols] };
        let g = match got.get(&group) {
            None => {
                let why = "missing from the results".to_string();
                report
                    .groups
                    .push(GroupReport::missing(&group, function, why));
                continue;
            }
            Some(g) => g,
        };
        let shape_ok = g.0 == expected_shape || (expected_shape.is_empty() && g.1.len() == 1);
        if !shape_ok {
            let why = if g.0.len() == 2
                && expected_shape.len() == 2
                && g.0[0] == expected_shape[1]
                && g.0[1] == expected_shape[0]
            {
                format!(
                    "has shape {:?}, the transpose of the reference's {:?}",
                    g.0, expected_shape
                )
            } else {
                format!(
                    "has shape {:?} but the reference's is {:?}",
                    g.0, expected_shape
                )
            };
            report
                .groups
                .push(GroupReport::missing(&group, function, why));
            continue;
        }
        report.groups.push(judge_group(
            &group,
            scale_group.quantity,
            case.dtype,
            &g.1,
            want.values(),
            &scale_group.scales,
            cols,
        ));
    }
    // the case takes its most severe group's verdict: a FAIL is not hidden behind an
    // UNSTABLE group that happens to come first
    report.verdict = report
        .groups
        .iter()
        .map(|g| g.verdict.clone())
        .filter(Verdict::is_failure)
        .max_by_key(Verdict::severity)
        .unwrap_or(Verdict::Pass);
    Ok(report)
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

impl CheckReport {
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
                let e = by.entry((g.function.clone(), c.dtype)).or_insert((
                    Vec::new(),
                    0.0,
                    0.0,
                    String::new(),
                    0,
                ));
                e.0.extend(g.points.iter().map(|p| p.0.min(1e300)));
                if g.worst_units >= e.1 {
                    e.1 = g.worst_units;
                    e.3 = format!("{} {}{}", c.id, g.group, g.worst_at);
                }
                e.2 = e.2.max(g.worst_ulps);
                e.4 += usize::from(g.verdict.is_failure());
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
                json!({"id": c.id, "verdict": c.verdict.word(), "detail": detail(&c.verdict), "groups": c.groups.iter().map(|g| json!({
                    "group": g.group, "verdict": g.verdict.word(), "detail": detail(&g.verdict), "max_units": finite(g.worst_units), "max_ulps": finite(g.worst_ulps), "at": g.worst_at, "kappa": g.kappa,
                    "ill_conditioned": g.kappa > ILL_CONDITIONED,
                })).collect::<Vec<_>>()})
            })
            .collect();
        json!({
            "implementation": self.implementation,
            "corpus_version": self.corpus_version,
            "passed": self.passed(),
            "counts": self.counts(),
            "table": table,
            "diagnoses": self.diagnoses.iter().map(diagnose::Diagnosis::json).collect::<Vec<_>>(),
            "cases": cases,
        })
    }

    /// The human-readable report: counts, the table, the failures and the diagnoses.
    pub fn text(&self) -> String {
        let mut out = format!(
            "lossref check: {} against corpus {}\n",
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

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!("inf")
    }
}

/// The words behind a verdict.
pub fn detail(v: &Verdict) -> String {
    match v {
        Verdict::Unstable(why) => format!("unstable implementation on this case: {why}"),
        Verdict::Missing(why) => why.clone(),
        Verdict::Xfail(why) | Verdict::UnexpectedPass(why) | Verdict::Skipped(why) => why.clone(),
        _ => String::new(),
    }
}

/// Refuses results for ids that are not cases of `corpus` (a typo, or another corpus
/// version), naming the first; `file` names the results in the message.
///
/// # Errors
/// The first unknown id.
pub fn known_ids(corpus: &Corpus, results: &Results, file: &str) -> Result<()> {
    let unknown: Vec<&String> = results
        .values
        .keys()
        .filter(|id| !corpus.cases.iter().any(|c| &c.id == *id))
        .collect();
    match unknown.first() {
        Some(id) => Err(Error::invalid(
            format!("{file}: results.{id}"),
            format!(
                "is not a case of corpus {} ({} such ids)",
                corpus.version,
                unknown.len()
            ),
        )),
        None => Ok(()),
    }
}

/// Runs the check: every corpus case judged, expectations applied, failures diagnosed.
///
/// # Errors
/// A corpus case that cannot be loaded.
pub fn check(
    corpus: &Corpus,
    results: &Results,
    expectations: &[Expectation],
    diagnose_failures: bool,
) -> Result<CheckReport> {
    use rayon::prelude::*;
    let cases: Vec<CaseReport> = corpus
        .cases
        .par_iter()
        .map(|c| {
            let mut r = judge_case(corpus, c, results.values.get(&c.id))?;
            expect(&mut r, expectations);
            Ok(r)
        })
        .collect::<Result<_>>()?;
    let diagnoses = if diagnose_failures {
        diagnose::diagnose(corpus, results, &cases)?
    } else {
        vec![]
    };
    Ok(CheckReport {
        implementation: results.implementation.clone(),
        corpus_version: corpus.version.clone(),
        cases,
        diagnoses,
    })
}
