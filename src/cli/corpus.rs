//! `lossref corpus build|verify|merge|export`: the conformance corpus of SPEC §4.

use crate::corpus::{self, Shard, Summary, COMMITTED};
use crate::error::{Error, Result};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// `lossref corpus …` as typed.
#[derive(Clone, Debug, clap::Args)]
pub struct Request {
    /// build, verify, merge or export.
    pub action: String,
    /// The corpus directory (default fixtures/corpus; for export, the destination).
    pub dir: Option<String>,
    /// Only the cases i with i mod N = K − 1 (build, verify): K/N.
    #[arg(long)]
    pub shard: Option<String>,
}

/// Runs the action and returns its JSON summary.
///
/// # Errors
/// An unknown action, a bad shard, a build that cannot certify a case or write a file; for
/// verify, any mismatch (the summary lists them).
pub fn run(req: &Request) -> Result<String> {
    let shard = req
        .shard
        .as_deref()
        .map(Shard::parse)
        .transpose()?
        .unwrap_or(Shard::WHOLE);
    let start = Instant::now();
    let dir = req.dir.clone().unwrap_or_else(|| COMMITTED.to_string());
    let root = Path::new(&dir);
    let summary: Summary = match req.action.as_str() {
        "build" => corpus::build(root, shard)?,
        "verify" => corpus::verify(root, shard)?,
        "merge" => corpus::merge(root)?,
        "export" => {
            if req.dir.is_none() {
                return Err(Error::invalid(
                    "corpus export",
                    "needs the destination directory: lossref corpus export DIR",
                ));
            }
            corpus::export(root)?
        }
        other => {
            return Err(Error::invalid(
                "corpus",
                format!(
                "unknown action `{other}`; lossref corpus knows build, verify, merge and export"
            ),
            ))
        }
    };
    let report = json!({
        "action": req.action,
        "dir": dir,
        "version": corpus::VERSION,
        "shard": format!("{}/{}", shard.index, shard.count),
        "cases": summary.cases,
        "bytes": summary.bytes,
        "seconds": (start.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        "mismatches": summary.mismatches,
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string());
    if summary.mismatches.is_empty() {
        Ok(text)
    } else {
        Err(Error::invalid(
            dir,
            format!(
                "{} case(s) differ from a fresh build:\n{text}",
                summary.mismatches.len()
            ),
        ))
    }
}
