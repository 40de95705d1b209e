//! Reading a case (SPEC §3) from JSON, with errors that name the field, row and entry.
//!
//! Numbers are read from their decimal text and rounded once, correctly, to binary64
//! (serde_json keeps the text with its `arbitrary_precision` feature), so `0.35` means
//! 0.34999999999999997779…, exactly as SPEC §3 says. A number that rounds to ±∞ is an
//! error, not an infinity.

use crate::error::{Error, ErrorKind, Result};
use crate::npz;

mod duplicate_keys;
mod fields;
mod inputs;
pub(crate) mod validate;

pub use crate::family::normalized::margin_params;
use crate::spec::{Case, LossId, SPEC_LOSSES};
use duplicate_keys::reject_duplicate_keys;
use fields::describe;
pub(crate) use fields::Fields;
pub(crate) use inputs::Inputs;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The largest case file `lossref` reads, in bytes (64 MiB). Larger inputs are refused
/// before parsing, so a stray multi-gigabyte file cannot exhaust memory.
pub const MAX_CASE_BYTES: usize = 64 << 20;

/// The largest integer margin m of `lsoftmax`/`sphereface`: cos(mθ) is a degree-m
/// polynomial whose coefficients grow like 2^m, and published models use m ≤ 6.
pub const MAX_INTEGER_MARGIN: u32 = 64;

/// Parses and validates one case from JSON text.
///
/// # Errors
/// [`ErrorKind::Json`] for text that is not JSON (with line and column), and
/// [`ErrorKind::Invalid`] for JSON that is not a valid case, naming the place.
pub fn parse_case(text: &str) -> Result<Case> {
    parse_case_in(text, Path::new("."))
}

/// [`parse_case`] for a case whose `"inputs": "NAME.npz"` names an archive relative to the
/// directory `base` (the case file's own).
///
/// # Errors
/// As [`parse_case`], and an `.npz` that cannot be read or holds invalid inputs.
pub fn parse_case_in(text: &str, base: &Path) -> Result<Case> {
    if text.len() > MAX_CASE_BYTES {
        return Err(Error::invalid(
            "case",
            format!(
                "{} bytes is more than the limit of {MAX_CASE_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::Json,
            format!("line {}, column {}", e.line(), e.column()),
            format!("not valid JSON: {e}"),
        )
    })?;
    reject_duplicate_keys(text, &value)?;
    case_from_json_in(&value, base)
}

/// Validates a parsed JSON value as a case.
///
/// # Errors
/// As [`parse_case`].
pub fn case_from_json(value: &Value) -> Result<Case> {
    case_from_json_in(value, Path::new("."))
}

/// [`case_from_json`] with `.npz` inputs resolved against `base`.
///
/// # Errors
/// As [`parse_case_in`].
pub fn case_from_json_in(value: &Value, base: &Path) -> Result<Case> {
    case_with_inputs(value, |inputs_value| Inputs::new(inputs_value, base))
}

/// A case whose `inputs` are arrays already in memory (a corpus case's `inputs/…`, with the
/// prefix removed), named `label` in errors; `value` holds `loss` and `params` (its
/// `inputs`, if any, is ignored).
///
/// # Errors
/// As [`parse_case`], with places such as `label:features[2][0]`.
pub fn case_from_arrays(
    value: &Value,
    arrays: BTreeMap<String, npz::Array>,
    label: &str,
) -> Result<Case> {
    let mut with_inputs = value.clone();
    with_inputs["inputs"] = Value::String(label.to_string());
    case_with_inputs(&with_inputs, |_| {
        Ok(Inputs::Npz {
            file: label.to_string(),
            arrays,
            taken: Vec::new(),
        })
    })
}

fn case_with_inputs<'a>(
    value: &'a Value,
    make_inputs: impl FnOnce(&'a Value) -> Result<Inputs<'a>>,
) -> Result<Case> {
    let mut top = Fields::new(value, "case")?;
    let loss_value = top.required("loss")?;
    let loss_name = loss_value.as_str().ok_or_else(|| {
        Error::invalid(
            "loss",
            format!(
                "expected a string naming a loss, got {}",
                describe(loss_value)
            ),
        )
    })?;
    let loss = LossId::from_name(loss_name).ok_or_else(|| {
        let reason = format!(
            "unknown loss `{loss_name}`{}; SPEC §1 lists {}",
            crate::suggest::did_you_mean(loss_name, SPEC_LOSSES.iter().copied()),
            SPEC_LOSSES.join(", ")
        );
        Error::invalid("loss", reason)
    })?;
    let empty = Value::Object(Map::new());
    let params_value = top.optional("params").unwrap_or(&empty);
    let inputs_value = top.required("inputs")?;
    top.finish("a case has the keys loss, params, inputs")?;
    let mut params = Fields::new(params_value, "params")?;
    let mut inputs = make_inputs(inputs_value)?;
    let case = crate::family::parse(loss, &mut params, &mut inputs)?;
    params.finish(&format!("`{loss}` takes the parameters {}", params.taken()))?;
    inputs.finish(&format!("`{loss}` takes the inputs {}", inputs.taken()))?;
    Ok(case)
}
