//! The conformance corpus (SPEC §4): the generated cases ([`generate`]) with their certified
//! references, stored as a JSON manifest and one `.npz` per case, rebuilt byte for byte by
//! [`build`], checked by [`verify`], split across machines by shards and joined by
//! [`merge`], and embedded in the binary ([`embedded`]) so that an installed `lossref`
//! works without the repository.
//!
//! Layout of a corpus directory:
//! * `manifest.json`: the version, the counts per loss, dtype and tag, and per case its id,
//!   loss, dtype, params, tags, generator, seed, input shapes, the file of its arrays with
//!   that file's sha256, and the reference's tier, precision and scalar outputs as decimal
//!   strings;
//! * `cases/<id>.npz` (the id's `/` are directories): `inputs/<name>` (float32 arrays for a
//!   float32, bfloat16 or float16 case, exact, float64 otherwise; labels int64), and the reference:
//!   `reference/outputs/<name>`, `reference/gradients/<name>` (binary64),
//!   `reference/binary32/…` (binary32) and `reference/decimal/…` (the decimal strings, for
//!   tensors of at most [`DECIMALS_UP_TO`] values), and the tolerance model's data per value
//!   ([`crate::tolerance`]): `tolerance/scale/<group>` (the error scale S),
//!   `tolerance/kappa/<group>` (the condition number folded into it),
//!   `tolerance/limit_ulps/<group>` (the allowed error in ulps of S in the case's dtype; for
//!   a 16-bit case instead `tolerance/limit_native/<group>` and `tolerance/limit_amp/<group>`,
//!   the absolute error each tier of SPEC §6 allows, [`crate::tier`]) and, where a named
//!   textbook formula is unstable, `tolerance/unstable_scale/<group>` (the manifest's
//!   `unstable_formulas` names it). A 16-bit case also holds its reference's roundings to
//!   its format, `reference/bfloat16/…` or `reference/float16/…` (float32 arrays, exact).

pub mod exact_zero;
#[doc(hidden)]
pub mod generate;
pub mod reader;

use crate::case::case_from_json;
use crate::error::{Error, ErrorKind, Result};
use crate::npz::{self, Array, Data};
use crate::reference::blocks::certified_rounded;
use crate::report::{answer_arrays, half_arrays};
use crate::spec::Dtype;
use crate::tier::{HalfPipeline, Pipeline};
use crate::tolerance::{allowed_ulps, scales, summation_factor, Rule, Scale};
use generate::Generated;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Every case of the corpus, in a fixed order.
pub fn all_cases() -> Vec<Generated> {
    let mut out = Vec::new();
    for dtype in Dtype::ALL {
        let mut family = Vec::new();
        crate::family::corpus_cases(dtype, &mut family);
        if dtype == Dtype::Float32 {
            for half in Dtype::HALF {
                out.extend(crate::tier::corpus::corpus_cases(half, &family));
            }
        }
        out.extend(family);
        out.extend(exact_zero::corpus_cases(dtype));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The corpus version (semver): a change of meaning in SPEC.md, of a case's inputs or of the
/// tolerance rules is a new version.
pub const VERSION: &str = "0.10.0";

/// Tensors of more values than this keep their binary64 and binary32 roundings but not
/// their decimal strings (`lossref eval` prints those), which keeps the corpus small.
pub const DECIMALS_UP_TO: usize = 4096;

/// The directory of the committed corpus, relative to the repository.
pub const COMMITTED: &str = "fixtures/corpus";

/// A part of the corpus: cases whose index i (in id order) has i mod N = K − 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K, from 1.
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl Shard {
    /// The whole corpus.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Reads `K/N`.
    ///
    /// # Errors
    /// Text of another form, or K outside 1..=N, naming `--shard`.
    pub fn parse(text: &str) -> Result<Shard> {
        let bad = || {
            Error::invalid(
                "--shard",
                format!("expected K/N with 1 ≤ K ≤ N, such as 2/4, got `{text}`"),
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    fn takes(self, i: usize) -> bool {
        i % self.count == self.index - 1
    }

    fn manifest_name(self) -> String {
        if self == Shard::WHOLE {
            "manifest.json".into()
        } else {
            format!("manifest.part-{}-of-{}.json", self.index, self.count)
        }
    }
}

/// One built case: its manifest entry, and the bytes of its `.npz`.
struct Built {
    entry: Value,
    file: String,
    bytes: Vec<u8>,
}

fn io(place: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, place, e.to_string())
}

/// The path of a case's arrays inside the corpus.
pub fn case_file(id: &str) -> String {
    format!("cases/{id}.npz")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files under `root/cases` that no case of `entries` names (`arrays`), as paths
/// within the corpus: left from an earlier build, they would still be embedded in the
/// binary and exported.
fn stray_files(root: &Path, entries: &[Value]) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(read) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let named: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e["arrays"].as_str())
        .collect();
    let mut found = Vec::new();
    walk(&root.join("cases"), &mut found);
    let mut strays: Vec<String> = found
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .filter(|p| !named.contains(p.as_str()))
        .collect();
    strays.sort();
    strays
}

/// Removes [`stray_files`] after a whole build or a merge.
fn remove_strays(root: &Path, entries: &[Value]) -> Result<()> {
    for file in stray_files(root, entries) {
        let path = root.join(&file);
        std::fs::remove_file(&path).map_err(|e| io(path.display().to_string(), e))?;
    }
    Ok(())
}

/// Evaluates one generated case and lays out its manifest entry and arrays.
fn build_case(g: &Generated, scratch: &Path) -> Result<Built> {
    let case = case_from_json(&g.case)
        .map_err(|e| Error::new(e.kind, format!("{}: {}", g.id, e.place), e.reason))?;
    let answer = certified_rounded(&case, true)
        .map_err(|e| Error::new(e.kind, format!("{}: {}", g.id, e.place), e.reason))?;
    let mut arrays = Vec::new();
    let mut shapes = Map::new();
    let inputs = g.case["inputs"].as_object().cloned().unwrap_or_default();
    for (name, v) in &inputs {
        let rows = v.as_array().cloned().unwrap_or_default();
        // class indices are stored as integers (labels, SPEC §5's class subsets)
        let a = if let Some(x) = v.as_f64() {
            // a scalar: SPEC §5's running state before the step
            Array {
                shape: vec![],
                data: Data::Float(vec![x]),
                was_f32: g.dtype != Dtype::Float64,
            }
        } else if name == "labels" || name == "classes" {
            let l: Vec<i64> = rows.iter().filter_map(Value::as_i64).collect();
            Array {
                shape: vec![l.len()],
                data: Data::Int(l),
                was_f32: false,
            }
        } else if rows.iter().all(Value::is_number) {
            // a vector: class weights, α
            Array {
                shape: vec![rows.len()],
                data: Data::Float(rows.iter().filter_map(Value::as_f64).collect()),
                was_f32: g.dtype != Dtype::Float64,
            }
        } else {
            let cols = rows.first().and_then(Value::as_array).map_or(0, Vec::len);
            let values: Vec<f64> = rows
                .iter()
                .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                .filter_map(|x| x.as_f64())
                .collect();
            Array {
                shape: vec![rows.len(), cols],
                data: Data::Float(values),
                was_f32: g.dtype != Dtype::Float64,
            }
        };
        shapes.insert(name.clone(), json!(a.shape));
        arrays.push((format!("inputs/{name}"), a));
    }
    let halves = if g.dtype.is_half() {
        half_arrays(&answer, g.dtype)
    } else {
        vec![]
    };
    for (name, a) in answer_arrays(&answer, true).into_iter().chain(halves) {
        let is_decimal = name.starts_with("decimal/");
        let size: usize = a.shape.iter().product();
        if is_decimal && size > DECIMALS_UP_TO {
            continue;
        }
        arrays.push((format!("reference/{name}"), a));
    }
    // the tolerance model's data per value (SPEC §4), for the case's own dtype
    let binary64 = answer
        .answer
        .try_map(|_, c| Ok::<f64, ()>(c.f64))
        .map_err(|()| Error::invalid(&g.id, "no binary64 answer"))?;
    let mut formulas = Map::new();
    for scale_group in scales(&case, &binary64, g.dtype) {
        let (group, values) = (&scale_group.name, &scale_group.scales);
        let shape = arrays
            .iter()
            .find(|(k, _)| *k == format!("reference/{group}"))
            .map(|(_, a)| a.shape.clone())
            .unwrap_or_default();
        let column = |f: &dyn Fn(&Scale) -> f64| Array {
            shape: shape.clone(),
            data: Data::Float(values.iter().map(f).collect()),
            was_f32: false,
        };
        arrays.push((format!("tolerance/scale/{group}"), column(&|v| v.scale)));
        arrays.push((format!("tolerance/kappa/{group}"), column(&|v| v.kappa)));
        if g.dtype.is_half() {
            // SPEC §6: each tier's limit, an absolute error per value
            let want: Vec<f64> = binary64
                .sections()
                .find(|(s, n, _)| format!("{s}/{n}") == *group)
                .map(|(_, _, t)| t.values().to_vec())
                .unwrap_or_default();
            for half in [HalfPipeline::Native, HalfPipeline::Amp] {
                let tier = Pipeline {
                    half,
                    ..Pipeline::DEFAULT
                }
                .tier(g.dtype);
                let rule = Rule::of(&case, tier);
                let limits = values
                    .iter()
                    .zip(&want)
                    .map(|(v, w)| rule.limit(group, scale_group.quantity, v.scale, v.terms, *w))
                    .collect();
                let name = if half == HalfPipeline::Amp {
                    "amp"
                } else {
                    "native"
                };
                arrays.push((
                    format!("tolerance/limit_{name}/{group}"),
                    Array {
                        shape: shape.clone(),
                        data: Data::Float(limits),
                        was_f32: false,
                    },
                ));
            }
        } else {
            let allowed = allowed_ulps(scale_group.quantity, g.dtype);
            arrays.push((
                format!("tolerance/limit_ulps/{group}"),
                column(&|v| allowed * summation_factor(v.terms)),
            ));
        }
        if let Some((_, formula)) = values.iter().find_map(|v| v.unstable) {
            arrays.push((
                format!("tolerance/unstable_scale/{group}"),
                column(&|v| v.unstable.map_or(0.0, |u| u.0)),
            ));
            formulas.insert(group.clone(), json!(formula));
        }
    }
    let file = case_file(&g.id);
    let tmp = scratch.join(format!("{}.npz", generate::seed_of(&g.id)));
    npz::write(&tmp, &arrays, npz::Compression::Deflated)?;
    let bytes = std::fs::read(&tmp).map_err(|e| io(tmp.display().to_string(), e))?;
    std::fs::remove_file(&tmp).ok();
    let mut scalars = Map::new();
    for (section, name, t) in answer.answer.sections() {
        if let crate::answer::Tensor::Scalar(v) = t {
            scalars.insert(format!("{section}/{name}"), json!(v.decimal));
        }
    }
    let entry = json!({
        "id": g.id,
        "loss": g.case["loss"],
        "dtype": g.dtype.as_str(),
        "params": g.case["params"],
        "tags": g.tags,
        "generator": g.generator,
        "seed": g.seed,
        "shapes": Value::Object(shapes),
        "arrays": file,
        "sha256": sha256_hex(&bytes),
        "reference": {
            "tier": answer.certificate.tier.as_str(),
            "precision_bits": answer.certificate.precision_bits,
            "scalars": Value::Object(scalars),
        },
        "unstable_formulas": Value::Object(formulas),
    });
    Ok(Built { entry, file, bytes })
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// Builds the shard's cases (in parallel, with a progress bar on a terminal).
fn build_all(shard: Shard, scratch: &Path, what: &str) -> Result<Vec<Built>> {
    let cases: Vec<Generated> = all_cases()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.takes(*i))
        .map(|(_, g)| g)
        .collect();
    let bar = progress(cases.len(), what);
    let built: Result<Vec<Built>> = cases
        .par_iter()
        .map(|g| {
            let b = build_case(g, scratch);
            bar.inc(1);
            b
        })
        .collect();
    bar.finish_and_clear();
    built
}

fn counts(entries: &[Value]) -> Value {
    let mut by_loss = BTreeMap::<String, u64>::new();
    let mut by_dtype = BTreeMap::<String, u64>::new();
    let mut by_tag = BTreeMap::<String, u64>::new();
    for e in entries {
        *by_loss
            .entry(e["loss"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
        *by_dtype
            .entry(e["dtype"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
        for t in e["tags"].as_array().into_iter().flatten() {
            *by_tag
                .entry(t.as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    json!({"cases": entries.len(), "by_loss": by_loss, "by_dtype": by_dtype, "by_tag": by_tag})
}

fn manifest(entries: Vec<Value>, shard: Shard) -> Value {
    let mut m = json!({
        "corpus": "lossref conformance corpus",
        "version": VERSION,
        "spec": "SPEC.md §4",
        "counts": counts(&entries),
        "cases": entries,
    });
    if shard != Shard::WHOLE {
        m["shard"] = json!({"index": shard.index, "count": shard.count});
    }
    m
}

fn manifest_text(m: &Value) -> String {
    serde_json::to_string_pretty(m).unwrap_or_else(|_| m.to_string()) + "\n"
}

fn scratch_dir(tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lossref-corpus-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| io(dir.display().to_string(), e))?;
    Ok(dir)
}

/// What [`build`] and [`verify`] did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Cases handled.
    pub cases: usize,
    /// Bytes of case arrays.
    pub bytes: u64,
    /// Cases whose recomputation differs (verify only), with why.
    pub mismatches: Vec<String>,
}

/// Builds the corpus (or one shard of it) into `root`: the case files, and `manifest.json`
/// (or `manifest.part-K-of-N.json` for a shard, which [`merge`] joins).
///
/// # Errors
/// A case the reference cannot certify, or a file that cannot be written.
pub fn build(root: &Path, shard: Shard) -> Result<Summary> {
    let scratch = scratch_dir("build")?;
    let built = build_all(shard, &scratch, "building the corpus")?;
    std::fs::remove_dir_all(&scratch).ok();
    let mut bytes = 0;
    for b in &built {
        let path = root.join(&b.file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir.display().to_string(), e))?;
        }
        std::fs::write(&path, &b.bytes).map_err(|e| io(path.display().to_string(), e))?;
        bytes += b.bytes.len() as u64;
    }
    let entries: Vec<Value> = built.into_iter().map(|b| b.entry).collect();
    if shard == Shard::WHOLE {
        remove_strays(root, &entries)?;
    }
    let cases = entries.len();
    let path = root.join(shard.manifest_name());
    std::fs::write(&path, manifest_text(&manifest(entries, shard)))
        .map_err(|e| io(path.display().to_string(), e))?;
    Ok(Summary {
        cases,
        bytes,
        mismatches: Vec::new(),
    })
}

/// Joins the shard manifests in `root` (all parts of one `N`) into `manifest.json`, the
/// same bytes as an unsharded build, and removes the parts.
///
/// # Errors
/// Missing or mixed parts, or files that cannot be read or written.
pub fn merge(root: &Path) -> Result<Summary> {
    let mut parts: Vec<(usize, usize, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| io(root.display().to_string(), e))? {
        let path = entry.map_err(|e| io(root.display().to_string(), e))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if let Some(rest) = name
            .strip_prefix("manifest.part-")
            .and_then(|r| r.strip_suffix(".json"))
        {
            if let Some((k, n)) = rest.split_once("-of-") {
                if let (Ok(k), Ok(n)) = (k.parse(), n.parse()) {
                    parts.push((k, n, path));
                }
            }
        }
    }
    let Some(&(_, n, _)) = parts.first() else {
        return Err(Error::invalid(
            root.display().to_string(),
            "holds no manifest.part-K-of-N.json to merge",
        ));
    };
    let mut ks: Vec<usize> = parts.iter().filter(|p| p.1 == n).map(|p| p.0).collect();
    ks.sort_unstable();
    if parts.iter().any(|p| p.1 != n) || ks != (1..=n).collect::<Vec<_>>() {
        return Err(Error::invalid(
            root.display().to_string(),
            format!(
                "needs the parts 1 … {n} of one split, found {:?}",
                parts
                    .iter()
                    .map(|p| format!("{}/{}", p.0, p.1))
                    .collect::<Vec<_>>()
            ),
        ));
    }
    let mut entries = Vec::new();
    for (_, _, path) in &parts {
        let text = std::fs::read_to_string(path).map_err(|e| io(path.display().to_string(), e))?;
        let m: Value =
            serde_json::from_str(&text).map_err(|e| io(path.display().to_string(), e))?;
        entries.extend(m["cases"].as_array().cloned().unwrap_or_default());
    }
    entries.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    remove_strays(root, &entries)?;
    let cases = entries.len();
    let path = root.join("manifest.json");
    std::fs::write(&path, manifest_text(&manifest(entries, Shard::WHOLE)))
        .map_err(|e| io(path.display().to_string(), e))?;
    for (_, _, p) in parts {
        std::fs::remove_file(&p).ok();
    }
    Ok(Summary {
        cases,
        bytes: 0,
        mismatches: Vec::new(),
    })
}

/// Recomputes the shard's cases and compares them, entry and bytes, with the corpus in
/// `root`; also checks that the manifest lists exactly the generated cases.
///
/// # Errors
/// A manifest that cannot be read; mismatches are reported in the summary, not as errors.
pub fn verify(root: &Path, shard: Shard) -> Result<Summary> {
    let path = root.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io(path.display().to_string(), format!("cannot read: {e}")))?;
    let stored: Value = serde_json::from_str(&text)
        .map_err(|e| io(path.display().to_string(), format!("not JSON: {e}")))?;
    let stored_entries: BTreeMap<String, Value> = stored["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["id"].as_str()?.to_string(), e.clone())))
        .collect();
    let mut mismatches = Vec::new();
    if stored["version"] != json!(VERSION) {
        mismatches.push(format!(
            "manifest.json: version {} but this lossref builds {VERSION}",
            stored["version"]
        ));
    }
    let entries: Vec<Value> = stored_entries.values().cloned().collect();
    let generated: Vec<String> = all_cases().into_iter().map(|g| g.id).collect();
    if shard == Shard::WHOLE {
        for id in &generated {
            if !stored_entries.contains_key(id) {
                mismatches.push(format!("{id}: generated but missing from manifest.json"));
            }
        }
        for id in stored_entries.keys() {
            if !generated.contains(id) {
                mismatches.push(format!("{id}: in manifest.json but no longer generated"));
            }
        }
        if stored["counts"] != counts(&entries) {
            mismatches.push("manifest.json: the counts do not match its cases".into());
        }
    }
    if shard.index == 1 {
        // once per split verify: the files are not the shards'
        for file in stray_files(root, &entries) {
            mismatches.push(format!(
                "{file}: no case of manifest.json names it (left from an earlier build, it \
                 would be embedded in the binary; `lossref corpus build` removes it)"
            ));
        }
    }
    let scratch = scratch_dir("verify")?;
    let built = build_all(shard, &scratch, "verifying the corpus")?;
    std::fs::remove_dir_all(&scratch).ok();
    let mut bytes = 0;
    for b in &built {
        let id = b.entry["id"].as_str().unwrap_or("");
        match stored_entries.get(id) {
            Some(e) if *e != b.entry => mismatches.push(format!(
                "{id}: the manifest entry differs from a fresh build"
            )),
            None => continue,
            _ => {}
        }
        let file = root.join(&b.file);
        match std::fs::read(&file) {
            Ok(on_disk) if on_disk == b.bytes => bytes += on_disk.len() as u64,
            Ok(_) => mismatches.push(format!("{id}: {} differs from a fresh build", b.file)),
            Err(e) => mismatches.push(format!("{id}: cannot read {}: {e}", b.file)),
        }
    }
    Ok(Summary {
        cases: built.len(),
        bytes,
        mismatches,
    })
}

/// The files of the corpus embedded in this binary (path within the corpus, bytes).
pub fn embedded() -> &'static [(&'static str, &'static [u8])] {
    EMBEDDED_CORPUS
}

include!(concat!(env!("OUT_DIR"), "/embedded_corpus.rs"));

/// One embedded file by its path within the corpus.
pub fn embedded_file(name: &str) -> Option<&'static [u8]> {
    embedded().iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Writes the embedded corpus into `dir` (created if needed).
///
/// # Errors
/// A file that cannot be written, or a binary built without a corpus.
pub fn export(dir: &Path) -> Result<Summary> {
    if embedded().is_empty() {
        return Err(Error::invalid(
            "corpus",
            "this binary was built without fixtures/corpus",
        ));
    }
    let mut bytes = 0;
    for (name, data) in embedded() {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent.display().to_string(), e))?;
        }
        std::fs::write(&path, data).map_err(|e| io(path.display().to_string(), e))?;
        bytes += data.len() as u64;
    }
    Ok(Summary {
        cases: embedded()
            .iter()
            .filter(|(n, _)| n.ends_with(".npz"))
            .count(),
        bytes,
        mismatches: Vec::new(),
    })
}
