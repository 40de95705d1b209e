//! `lossref._lossref`: the Rust library behind the Python package (python/lossref). Every
//! function here is thin: cases, results and reports cross the boundary as JSON text and
//! the corpus's archives as bytes, so that the Python side and `lossref` on the command line
//! read and print exactly the same things.

use lossref::case::parse_case_in;
use lossref::check::{self, Corpus, Results};
use lossref::mp::certify::Rounded;
use lossref::reference::blocks::certified_rounded;
use lossref::report::{eval_json, sections};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde_json::{json, Value};
use std::path::Path;

create_exception!(
    _lossref,
    CaseError,
    PyValueError,
    "A case that lossref cannot answer: malformed, an undefined point of SPEC §1, or a value that cannot be certified. The message is the command line's."
);
create_exception!(
    _lossref,
    ResultsError,
    PyValueError,
    "Results, expectations or a corpus that lossref check cannot read; the message names the place."
);

fn case_error(e: lossref::error::Error) -> PyErr {
    CaseError::new_err(e.to_string())
}

fn results_error(e: lossref::error::Error) -> PyErr {
    ResultsError::new_err(e.to_string())
}

/// The certified answer of the case in `text` (a SPEC §3 JSON object; `.npz` inputs are
/// relative to `base`), as JSON: `lossref eval`'s object plus `binary64` and `binary32`
/// sections holding each value's roundings as numbers.
#[pyfunction]
fn eval_case(py: Python<'_>, text: String, base: String) -> PyResult<String> {
    let out = py.allow_threads(move || -> lossref::error::Result<Value> {
        let case = parse_case_in(&text, Path::new(&base))?;
        let answer = certified_rounded(&case, true)?;
        let mut out = eval_json(case.loss(), &answer, false);
        out["binary64"] = sections(&answer.answer, &|c: &Rounded| json!(c.f64));
        out["binary32"] = sections(&answer.answer, &|c: &Rounded| json!(f64::from(c.f32)));
        Ok(out)
    });
    Ok(out.map_err(case_error)?.to_string())
}

/// The manifest of the corpus in `path`, or of the corpus embedded in the package.
#[pyfunction]
#[pyo3(signature = (path=None))]
fn corpus_manifest(path: Option<String>) -> PyResult<String> {
    match path {
        Some(dir) => {
            let p = Path::new(&dir).join("manifest.json");
            std::fs::read_to_string(&p)
                .map_err(|e| ResultsError::new_err(format!("{}: cannot read: {e}", p.display())))
        }
        None => lossref::corpus::embedded_file("manifest.json")
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| ResultsError::new_err("this build embeds no corpus")),
    }
}

/// The bytes of one file of a corpus (`cases/<id>.npz`), from `path` or the embedded copy.
#[pyfunction]
#[pyo3(signature = (name, path=None))]
fn corpus_file<'py>(
    py: Python<'py>,
    name: String,
    path: Option<String>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = match path {
        Some(dir) => {
            let p = Path::new(&dir).join(&name);
            std::fs::read(&p)
                .map_err(|e| ResultsError::new_err(format!("{}: cannot read: {e}", p.display())))?
        }
        None => lossref::corpus::embedded_file(&name)
            .ok_or_else(|| ResultsError::new_err(format!("{name}: not in the embedded corpus")))?
            .to_vec(),
    };
    Ok(PyBytes::new(py, &bytes))
}

/// Judges results (SPEC §4 JSON text) against a corpus (`None`: the embedded one), with an
/// optional expectation file's JSON text. Returns (passed, report JSON, text, HTML, JUnit).
#[pyfunction]
#[pyo3(signature = (results, corpus=None, expect=None, diagnose=true))]
fn check_results(
    py: Python<'_>,
    results: String,
    corpus: Option<String>,
    expect: Option<String>,
    diagnose: bool,
) -> PyResult<(bool, String, String, String, String)> {
    py.allow_threads(move || {
        let corpus = Corpus::load(corpus.as_deref().map(Path::new))?;
        let results = Results::parse(&results, "results")?;
        check::known_ids(&corpus, &results, "results")?;
        let expectations = match &expect {
            Some(text) => {
                let expectations = check::parse_expectations(text, "expectations")?;
                check::known_expectations(&corpus, &expectations, "expect")?;
                expectations
            }
            None => vec![],
        };
        let report = check::check(&corpus, &results, &expectations, diagnose)?;
        Ok((
            report.passed(),
            report.json().to_string(),
            report.text(),
            check::html::html(&report),
            check::junit::junit(&report),
        ))
    })
    .map_err(results_error)
}

/// The version of the Rust library and of the corpus it embeds.
#[pyfunction]
fn versions() -> (String, String) {
    (
        env!("CARGO_PKG_VERSION").to_string(),
        lossref::corpus::VERSION.to_string(),
    )
}

/// The catalogue: every family's name with its loss ids, in SPEC §1's order (the one list
/// that the Python strategies and tests read).
#[pyfunction]
fn catalogue() -> Vec<(String, Vec<String>)> {
    lossref::family::FAMILIES
        .iter()
        .map(|(name, losses)| {
            (
                name.to_string(),
                losses.iter().map(|l| l.as_str().to_string()).collect(),
            )
        })
        .collect()
}

/// The switch points of `loss` with the parameters `params` (JSON text): (tag, θ, cos θ,
/// whether the requested gradient is undefined there), as the family states them.
#[pyfunction]
fn switch_points(loss: String, params: String) -> PyResult<Vec<(String, f64, f64, bool)>> {
    let id = lossref::spec::LossId::from_name(&loss).ok_or_else(|| {
        CaseError::new_err(format!(
            "loss: unknown loss `{loss}`; SPEC §1 lists {}",
            lossref::spec::SPEC_LOSSES.join(", ")
        ))
    })?;
    let params: Value = serde_json::from_str(&params)
        .map_err(|e| CaseError::new_err(format!("params: not valid JSON: {e}")))?;
    let points = lossref::family::switch_points(id, &params).map_err(case_error)?;
    Ok(points
        .into_iter()
        .map(|p| (p.tag.to_string(), p.theta, p.cos, p.undefined))
        .collect())
}

#[pymodule]
fn _lossref(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CaseError", m.py().get_type::<CaseError>())?;
    m.add("ResultsError", m.py().get_type::<ResultsError>())?;
    m.add_function(wrap_pyfunction!(eval_case, m)?)?;
    m.add_function(wrap_pyfunction!(corpus_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(corpus_file, m)?)?;
    m.add_function(wrap_pyfunction!(check_results, m)?)?;
    m.add_function(wrap_pyfunction!(versions, m)?)?;
    m.add_function(wrap_pyfunction!(catalogue, m)?)?;
    m.add_function(wrap_pyfunction!(switch_points, m)?)?;
    Ok(())
}
