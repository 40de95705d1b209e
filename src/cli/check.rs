//! `lossref check` and `lossref report`: results judged against the conformance corpus
//! (SPEC §4), and lossref's own fast paths judged the same way.

use crate::check::junit::junit;
use crate::check::{
    check, groups_of, known_expectations, known_ids, read_expectations, CheckReport, Corpus,
    Expectation, Groups, Results,
};
use crate::error::{Error, ErrorKind, Result};
use crate::fast::dispatch::evaluate;
use crate::spec::{Arithmetic, Dtype};
use crate::tier::{HalfPipeline, Pipeline};
use std::path::Path;

/// `lossref check` as typed.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckRequest {
    /// The results file: JSON or .npz (SPEC §4).
    #[arg(long)]
    pub results: String,
    /// The corpus directory (default: the corpus this binary embeds).
    #[arg(long)]
    pub corpus: Option<String>,
    /// Also write the full report as JSON to this file.
    #[arg(long, value_name = "OUT")]
    pub json: Option<String>,
    /// Also write JUnit XML to this file.
    #[arg(long, value_name = "OUT")]
    pub junit: Option<String>,
    /// Also write a self-contained HTML page: the table, the diagnoses and per loss an SVG
    /// scatter of each value's error against its condition number.
    #[arg(long, value_name = "OUT")]
    pub html: Option<String>,
    /// An expectation file (xfail and skip entries with reasons).
    #[arg(long, value_name = "FILE")]
    pub expect: Option<String>,
    /// Skip the diagnosis of failures (faster on large failing results).
    #[arg(long)]
    pub no_diagnosis: bool,
    /// The pipeline the results were computed in (SPEC §6: `native`, `amp` or
    /// `accumulate16` for the 16-bit cases, `highest`, `tf32`, `bf16x3` or `bf16` for the
    /// float32 cases' matrix products, `ftz`, joined by `+`), instead of the one the file
    /// declares.
    #[arg(long, value_name = "TIERS")]
    pub pipeline: Option<String>,
}

/// `lossref report` as typed.
#[derive(Clone, Debug, clap::Args)]
pub struct ReportRequest {
    /// The corpus directory (default: the corpus this binary embeds).
    #[arg(long)]
    pub corpus: Option<String>,
    /// An expectation file for the fast paths.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<String>,
    /// Print the full report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the fast paths' results as a SPEC §4 results file (an example of the
    /// format, and input for `lossref check`).
    #[arg(long, value_name = "FILE")]
    pub write_results: Option<String>,
    /// Also judge the fast paths in every precision tier of SPEC §6 and print each tier's
    /// counts over the cases it concerns.
    #[arg(long)]
    pub tiers: bool,
}

/// The expectations of the file at `path` (none without one), each naming something in
/// `corpus`.
fn expectations(corpus: &Corpus, path: Option<&str>) -> Result<Vec<Expectation>> {
    let Some(path) = path else {
        return Ok(vec![]);
    };
    let expectations = read_expectations(Path::new(path))?;
    known_expectations(corpus, &expectations, path)?;
    Ok(expectations)
}

fn write(path: &str, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| Error::new(ErrorKind::Io, path, format!("cannot write: {e}")))
}

fn finish(
    report: &CheckReport,
    json: Option<&str>,
    junit_out: Option<&str>,
    html_out: Option<&str>,
) -> Result<()> {
    if let Some(p) = html_out {
        write(p, &crate::check::html::html(report))?;
    }
    if let Some(p) = json {
        write(
            p,
            &(serde_json::to_string_pretty(&report.json()).unwrap_or_default() + "\n"),
        )?;
    }
    if let Some(p) = junit_out {
        write(p, &junit(report))?;
    }
    Ok(())
}

/// Runs `lossref check`: the text report, and whether everything passed.
///
/// # Errors
/// Unreadable or malformed results, corpus or expectations (exit status 2).
pub fn run_check(req: &CheckRequest) -> Result<(String, bool)> {
    let corpus = Corpus::load(req.corpus.as_deref().map(Path::new))?;
    let mut results = Results::read(Path::new(&req.results))?;
    if let Some(p) = &req.pipeline {
        results.pipeline = Some(Pipeline::parse(&serde_json::json!(p), "--pipeline")?);
    }
    known_ids(&corpus, &results, &req.results)?;
    let expectations = expectations(&corpus, req.expect.as_deref())?;
    let report = check(&corpus, &results, &expectations, !req.no_diagnosis)?;
    finish(
        &report,
        req.json.as_deref(),
        req.junit.as_deref(),
        req.html.as_deref(),
    )?;
    Ok((report.text(), report.passed()))
}

/// The fast paths' results over the corpus, each case in its own dtype: a 16-bit case by
/// the float32 path, its gradients rounded to the case's dtype (SPEC §6's `amp`).
///
/// # Errors
/// A corpus case that cannot be loaded.
pub fn fast_results(corpus: &Corpus) -> Result<Results> {
    use rayon::prelude::*;
    let values: Vec<(String, Option<Groups>)> = corpus
        .cases
        .par_iter()
        .map(|c| {
            let loaded = corpus.load_case(c)?;
            let answer = match c.dtype.column() {
                Arithmetic::Float32 => evaluate::<f32>(&loaded.case),
                Arithmetic::Float64 => evaluate::<f64>(&loaded.case),
            };
            let groups = answer
                .ok()
                .map(|a| crate::tier::amp_results(groups_of(&a), c.dtype));
            Ok((c.id.clone(), groups))
        })
        .collect::<Result<_>>()?;
    Ok(Results {
        implementation: format!("lossref {} fast paths", env!("CARGO_PKG_VERSION")),
        values: values
            .into_iter()
            .map(|(id, g)| (id, g.unwrap_or_default()))
            .collect(),
        computes: None,
        // 16-bit inputs, float32 arithmetic, gradients rounded to the case's dtype
        pipeline: Some(Pipeline {
            half: HalfPipeline::Amp,
            ..Pipeline::DEFAULT
        }),
    })
}

/// Runs `lossref report`: the table, and whether everything passed.
///
/// # Errors
/// As [`run_check`].
pub fn run_report(req: &ReportRequest) -> Result<(String, bool)> {
    let corpus = Corpus::load(req.corpus.as_deref().map(Path::new))?;
    let results = fast_results(&corpus)?;
    if let Some(path) = &req.write_results {
        write(path, &results.json().to_string())?;
    }
    let expectations = expectations(&corpus, req.expect.as_deref())?;
    let report = check(&corpus, &results, &expectations, false)?;
    let text = if req.json {
        serde_json::to_string_pretty(&report.json()).unwrap_or_default()
    } else {
        // the judge's own report, titled as what ran
        report
            .text()
            .replacen("lossref check: ", "lossref report: ", 1)
    };
    if !req.tiers {
        return Ok((text, report.passed()));
    }
    let (table, passed) = tier_counts(&corpus, &results, &expectations)?;
    Ok((format!("{text}\n{table}"), report.passed() && passed))
}

/// The fast paths judged in every tier of SPEC §6, one line each: the pipeline, the
/// cases it concerns (its 16-bit cases for `native` and `amp`, the float32 cases for the
/// matrix-product precisions, every case for `ftz`), and their verdicts.
fn tier_counts(
    corpus: &Corpus,
    results: &Results,
    expectations: &[Expectation],
) -> Result<(String, bool)> {
    let mut out = String::from("precision tiers (SPEC §6): the same results judged in each\n");
    let mut passed = true;
    for name in ["amp", "native", "bf16x3", "tf32", "bf16", "ftz"] {
        let pipeline = Pipeline::parse(&serde_json::json!(name), "tier")?;
        let concerned = |d: Dtype| match name {
            "amp" | "native" => d.is_half(),
            "ftz" => true,
            _ => d == Dtype::Float32,
        };
        let judged = Results {
            pipeline: Some(pipeline),
            values: results
                .values
                .iter()
                .filter(|(id, _)| {
                    corpus
                        .cases
                        .iter()
                        .any(|c| &c.id == *id && concerned(c.dtype))
                })
                .map(|(id, g)| (id.clone(), g.clone()))
                .collect(),
            ..results.clone()
        };
        let report = check(corpus, &judged, expectations, false)?;
        let run: Vec<_> = report
            .cases
            .iter()
            .filter(|c| c.verdict != crate::check::Verdict::NotRun)
            .collect();
        let pass = run.iter().filter(|c| !c.verdict.is_failure()).count();
        passed &= pass == run.len();
        out.push_str(&format!(
            "  {name:<8} {pass:>5} of {:>5} cases pass\n",
            run.len()
        ));
    }
    Ok((out, passed))
}
