//! The results of an implementation under test (SPEC §4): JSON or `.npz`, by case id and
//! value group, read with every malformed value reported as a verdict or a clean error.

use crate::answer::{Answer, Tensor};
use crate::check::Corpus;
use crate::error::{Error, ErrorKind, Result};
use crate::npz::{self, Data};
use crate::tier::Pipeline;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The largest results file read: 1 GiB.
pub const MAX_RESULTS_BYTES: usize = 1 << 30;

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
    /// The value groups the implementation computes (`"computes"`, SPEC §4), if it
    /// declares them: a group it does not compute is "not run", never MISSING.
    pub computes: Option<Vec<String>>,
    /// How the implementation computed (`"pipeline"`, SPEC §6), if it says: the tier each
    /// case is judged in ([`crate::tier`]; [`Pipeline::DEFAULT`] where it does not say).
    pub pipeline: Option<Pipeline>,
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
        let mut out = serde_json::json!({"implementation": self.implementation, "results": all});
        if let Some(computes) = &self.computes {
            out["computes"] = serde_json::json!(computes);
        }
        if let Some(p) = self.pipeline {
            out["pipeline"] = serde_json::json!(p.to_string());
        }
        out
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
                computes: None,
                pipeline: None,
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
        let computes = match v.get("computes") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(k, item)| match item.as_str() {
                        Some(g) if g.starts_with("outputs/") || g.starts_with("gradients/") => {
                            Ok(g.to_string())
                        }
                        _ => Err(Error::invalid(
                            format!("{file}: computes[{k}]"),
                            format!("expected a value group such as \"outputs/loss\" or \"gradients/features\", got {item}"),
                        )),
                    })
                    .collect::<Result<Vec<String>>>()?,
            ),
            Some(other) => {
                return Err(Error::invalid(
                    format!("{file}: computes"),
                    format!("expected an array of value groups, got {other}"),
                ))
            }
        };
        let pipeline = match v.get("pipeline") {
            None | Some(Value::Null) => None,
            Some(p) => Some(Pipeline::parse(p, &format!("{file}: pipeline"))?),
        };
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
            computes,
            pipeline,
        })
    }
}

/// Refuses results for ids that are not cases of `corpus` (a typo, or another corpus
/// version), naming every one (the first 20) with the nearest corpus id; `file` names the
/// results in the message.
///
/// # Errors
/// The unknown ids, all in one error.
pub fn known_ids(corpus: &Corpus, results: &Results, file: &str) -> Result<()> {
    let unknown: Vec<&String> = results
        .values
        .keys()
        .filter(|id| !corpus.cases.iter().any(|c| &c.id == *id))
        .collect();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    // every unknown id, each with the nearest corpus id (the first 20)
    let ids = || corpus.cases.iter().map(|c| c.id.as_str());
    let listed: Vec<String> = unknown
        .iter()
        .take(20)
        .map(|id| format!("{id}{}", crate::suggest::did_you_mean(id, ids())))
        .collect();
    let more = if unknown.len() > 20 {
        format!(", and {} more", unknown.len() - 20)
    } else {
        String::new()
    };
    Err(Error::invalid(
        format!("{file}: results.{first}"),
        format!(
            "is not a case of corpus {}{}; the {} ids that are not: {}{more}",
            corpus.version,
            crate::suggest::did_you_mean(first, ids()),
            unknown.len(),
            listed.join(", ")
        ),
    ))
}
