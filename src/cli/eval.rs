//! `lossref eval CASE.json|-`: the certified answer of one case (SPEC §3).

use crate::case::{parse_case, MAX_CASE_BYTES};
use crate::error::Result;
use crate::reference::certified;
use crate::report::eval_json;

/// Evaluates the case in `path` (or standard input for `-`) and returns the JSON text.
///
/// # Errors
/// Unreadable input, invalid JSON or case (naming the place), or a value that cannot be
/// certified below the precision cap.
pub fn run(path: &str, with_binary64: bool) -> Result<String> {
    let text = super::read_input(path, MAX_CASE_BYTES)?;
    let case = parse_case(&text)?;
    let answer = certified(&case)?;
    let json = eval_json(case.loss(), &answer, with_binary64);
    Ok(serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()))
}
