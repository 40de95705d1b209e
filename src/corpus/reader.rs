//! The conformance corpus read back (SPEC §4): its manifest, and each case's inputs and
//! reference roundings from its `.npz`, from a directory or the copy embedded in the binary.

use crate::answer::{Answer, Tensor};
use crate::case::case_from_arrays;
use crate::error::{Error, ErrorKind, Result};
use crate::matrix::Matrix;
use crate::npz::{self, Array, Data};
use crate::precision::quantities;
use crate::spec::Case;
use crate::spec::Dtype;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
                    dtype: {
                        let name = field("dtype")?;
                        Dtype::parse(&name).ok_or_else(|| {
                            Error::invalid(&place, format!("a case has the unknown dtype `{name}`"))
                        })?
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
