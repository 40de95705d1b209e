//! The 16-bit corpus cases of SPEC §6: every loss in the regimes that matter for bfloat16
//! and float16, each case exact in its format.
//!
//! Two kinds of case, both built from the float32 cases of the families' own generators
//! (`crate::family::corpus_cases`), so that every loss of the catalogue has them:
//! * **rounded**: the float32 cases tagged `random`, `edge:dominant-target`,
//!   `edge:large-loss`, `edge:huge-logit` or `scale:large-C` (up to 10⁴ classes), with
//!   every input and parameter rounded once to the format (labels, `ignore_index` and
//!   strings kept). A case that the format cannot hold (a number past its largest finite
//!   one) is left out;
//! * **tier regimes**, from the `random` cases of the losses whose inputs are logits
//!   (`softmax`, `softmax_ce`, `focal`, `poly1`, `distill`), each row moved by a map that
//!   keeps its order and then rounded:
//!   - `tier:f16-exp-overflow` (float16): z − min z + 12, every logit past float16's exp
//!     range (e^11.09 ≈ 65504), where a softmax that exponentiates before subtracting the
//!     maximum gives ∞/∞;
//!   - `tier:f16-subnormal-probabilities` (float16): the row spread to a range of 24, so
//!     that its smallest probabilities (about e^−24) lie below float16's smallest
//!     subnormal 2^−24;
//!   - `tier:bf16-logit-spacing` (bfloat16): the row mapped onto [32, 63.5], where
//!     bfloat16's logits are 0.25 apart.

use crate::corpus::generate::Generated;
use crate::spec::Dtype;
use serde_json::{json, Map, Value};

/// The float32 tags whose cases are rounded to the 16-bit formats.
pub const ROUNDED_TAGS: [&str; 5] = [
    "random",
    "edge:dominant-target",
    "edge:large-loss",
    "edge:huge-logit",
    "scale:large-C",
];

/// The inputs that are logits (moved by the tier regimes).
const LOGIT_INPUTS: [&str; 3] = ["logits", "student_logits", "teacher_logits"];

/// A tier regime: its tag, the format it is for, and its map of one logit row.
struct Regime {
    tag: &'static str,
    dtype: Dtype,
    map: fn(&[f64]) -> Vec<f64>,
}

const REGIMES: [Regime; 3] = [
    Regime {
        tag: "tier:f16-exp-overflow",
        dtype: Dtype::Float16,
        map: past_exp_range,
    },
    Regime {
        tag: "tier:f16-subnormal-probabilities",
        dtype: Dtype::Float16,
        map: spread_to_24,
    },
    Regime {
        tag: "tier:bf16-logit-spacing",
        dtype: Dtype::BFloat16,
        map: onto_32_64,
    },
];

fn bounds(row: &[f64]) -> (f64, f64) {
    row.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &z| {
            (lo.min(z), hi.max(z))
        })
}

/// z − min z + 12.
fn past_exp_range(row: &[f64]) -> Vec<f64> {
    let (lo, _) = bounds(row);
    row.iter().map(|z| z - lo + 12.0).collect()
}

/// (z − min z)·24/(max z − min z) − 12: a range of 24.
fn spread_to_24(row: &[f64]) -> Vec<f64> {
    let (lo, hi) = bounds(row);
    let k = if hi > lo { 24.0 / (hi - lo) } else { 1.0 };
    row.iter().map(|z| (z - lo) * k - 12.0).collect()
}

/// 32 + (z − min z)·31.5/(max z − min z): onto [32, 63.5].
fn onto_32_64(row: &[f64]) -> Vec<f64> {
    let (lo, hi) = bounds(row);
    let k = if hi > lo { 31.5 / (hi - lo) } else { 0.0 };
    row.iter().map(|z| 32.0 + (z - lo) * k).collect()
}

/// Every number of `v` rounded to `dtype`, except the keys in `keep` at the top level;
/// `None` if one rounds past the format's range.
fn rounded(v: &Value, dtype: Dtype) -> Option<Value> {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = dtype.round(n.as_f64()?);
            x.is_finite().then(|| json!(x))
        }
        Value::Array(a) => a.iter().map(|e| rounded(e, dtype)).collect(),
        Value::Object(o) => Some(Value::Object(
            o.iter()
                .map(|(k, e)| {
                    let kept = matches!(k.as_str(), "labels" | "ignore_index");
                    Some((k.clone(), if kept { e.clone() } else { rounded(e, dtype)? }))
                })
                .collect::<Option<Map<String, Value>>>()?,
        )),
        other => Some(other.clone()),
    }
}

/// The case `g` (a float32 case) in `dtype`, under `regime` (a regime tag and the id's
/// regime part) with its inputs and tags: `None` where the format cannot hold it.
fn in_format(
    g: &Generated,
    dtype: Dtype,
    regime: Option<&str>,
    inputs: Value,
    tags: Vec<String>,
) -> Option<Generated> {
    let mut case = g.case.clone();
    case["inputs"] = rounded(&inputs, dtype)?;
    case["params"] = rounded(&g.case["params"], dtype)?;
    let (head, rest) = g.id.split_once('/')?;
    let (old_regime, k) = rest.rsplit_once('/')?;
    let k = k.strip_prefix(&format!("{}-", Dtype::Float32.short()))?;
    let id = format!(
        "{head}/{}/{}-{k}",
        regime.unwrap_or(old_regime),
        dtype.short()
    );
    Some(Generated {
        seed: crate::corpus::generate::seed_of(&id),
        generator: json!({
            "name": "tier/rounded",
            "from": g.id,
            "rounded to": dtype.as_str(),
            "regime": regime.map_or(Value::Null, |r| json!(r)),
            "generator": g.generator,
        }),
        id,
        dtype,
        tags,
        case,
    })
}

/// The float32 cases too large to round as well: more than [`MAX_ROUNDED_CLASSES`]
/// classes (the C = 10⁵ cases of `scale:large-C`): a weight matrix's rows, or a logit
/// row's length.
fn past_largest(g: &Generated) -> bool {
    let inputs = &g.case["inputs"];
    let rows = |key: &str| inputs.get(key).and_then(Value::as_array);
    let weight_rows = rows("weights").map_or(0, Vec::len);
    let logit_columns = rows("logits")
        .and_then(|r| r.first())
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    weight_rows.max(logit_columns) > MAX_ROUNDED_CLASSES
}

/// The most classes a rounded 16-bit case has. The corpus is embedded in every binary and
/// wheel; its 16-bit `scale:large-C` cases stay at 10⁴ classes, where each is under 1 MB,
/// while a C = 10⁵ one would be about 5 MB (its native and AMP limits are per value and
/// barely compress). The float32 and float64 cases go to 10⁵.
const MAX_ROUNDED_CLASSES: usize = 10_000;

/// The 16-bit cases of `dtype` (one of [`Dtype::HALF`]) from the float32 cases `float32`.
pub(crate) fn corpus_cases(dtype: Dtype, float32: &[Generated]) -> Vec<Generated> {
    let mut out = Vec::new();
    for g in float32 {
        if !g.tags.iter().any(|t| ROUNDED_TAGS.contains(&t.as_str())) || past_largest(g) {
            continue;
        }
        out.extend(in_format(
            g,
            dtype,
            None,
            g.case["inputs"].clone(),
            g.tags.clone(),
        ));
        let has_logits = LOGIT_INPUTS
            .iter()
            .any(|k| g.case["inputs"].get(k).is_some());
        if !(has_logits && g.tags.iter().any(|t| t == "random")) {
            continue;
        }
        for r in REGIMES.iter().filter(|r| r.dtype == dtype) {
            let mut inputs = g.case["inputs"].clone();
            for key in LOGIT_INPUTS {
                let Some(rows) = inputs.get(key).and_then(Value::as_array).cloned() else {
                    continue;
                };
                let moved: Vec<Value> = rows
                    .iter()
                    .map(|row| {
                        let z: Vec<f64> = row
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_f64)
                            .collect();
                        json!((r.map)(&z))
                    })
                    .collect();
                inputs[key] = json!(moved);
            }
            let mut tags: Vec<String> = g.tags.iter().filter(|t| *t != "random").cloned().collect();
            tags.push(r.tag.to_string());
            let regime = r.tag.replace(':', "-");
            out.extend(in_format(g, dtype, Some(&regime), inputs, tags));
        }
    }
    out
}
