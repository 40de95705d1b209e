//! `lossref check`: an implementation's results judged against the conformance corpus
//! (SPEC §4) with the tolerance model of [`crate::tolerance`], per case and per value group,
//! with expectations, a summary table, diagnoses ([`diagnose`]) and JSON / JUnit reports.

pub mod diagnose;
mod expectations;
pub mod html;
pub mod junit;
mod report;
mod results;
mod verdict;

pub use crate::corpus::reader::{Corpus, CorpusCase, Loaded};
pub use expectations::*;
pub use report::*;
pub use results::*;
pub(crate) use verdict::judge_group;
pub use verdict::*;

use crate::error::Result;

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
            let mut r = judge_case(
                corpus,
                c,
                results.values.get(&c.id),
                results.computes.as_deref(),
                results.pipeline,
            )?;
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
        pipeline: results.pipeline,
    })
}
