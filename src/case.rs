//! Reading a case (SPEC §3) from JSON, with errors that name the field, row and entry.
//!
//! Numbers are read from their decimal text and rounded once, correctly, to binary64
//! (serde_json keeps the text with its `arbitrary_precision` feature), so `0.35` means
//! 0.34999999999999997779…, exactly as SPEC §3 says. A number that rounds to ±∞ is an
//! error, not an infinity.

use crate::error::{Error, ErrorKind, Result};
use crate::matrix::Matrix;
use crate::npz;

pub use crate::family::normalized::margin_params;
use crate::spec::{Case, LossId, Reduction, SPEC_LOSSES};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
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

/// JSON allows an object to repeat a key and most readers keep the last value silently; a
/// case that says `"labels"` twice is ambiguous, so it is rejected. `text` is valid JSON and
/// `value` what it parsed to. The parser keeps one entry per key, so the text holds a
/// repeated key exactly when it has more keys than `value`'s objects: one counting pass,
/// and only then a pass that finds the key (hashing every key costs several times more).
fn reject_duplicate_keys(text: &str, value: &Value) -> Result<()> {
    fn keys_in(value: &Value) -> usize {
        match value {
            Value::Object(map) => map.len() + map.values().map(keys_in).sum::<usize>(),
            Value::Array(items) => items.iter().map(keys_in).sum(),
            _ => 0,
        }
    }
    if keys_in_text(text) == keys_in(value) {
        return Ok(());
    }
    locate_duplicate_key(text)
}

/// What [`walk_keys`] meets in a JSON text: an object opening or closing, or a key, whose
/// quoted text is `text[start..end]`.
enum KeyEvent {
    Open,
    Close,
    Key { start: usize, end: usize },
}

/// Walks the valid JSON `text` once, in order, calling `on` at every object's `{` and `}`
/// and at every key; stops at the first error of `on`.
fn walk_keys<E>(
    text: &str,
    mut on: impl FnMut(KeyEvent) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let bytes = text.as_bytes();
    // One entry per open container: (is an object, the next string is a key).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push((true, true));
                on(KeyEvent::Open)?;
            }
            b'[' => stack.push((false, false)),
            b'}' | b']' => {
                if let Some((true, _)) = stack.pop() {
                    on(KeyEvent::Close)?;
                }
            }
            b',' => {
                if let Some((true, expect_key)) = stack.last_mut() {
                    *expect_key = true;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some((true, expect_key)) = stack.last_mut() {
                    if *expect_key {
                        *expect_key = false;
                        let end = (i + 1).min(bytes.len());
                        on(KeyEvent::Key { start, end })?;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The number of object keys in the valid JSON `text`.
fn keys_in_text(text: &str) -> usize {
    let mut keys = 0;
    let _ = walk_keys(text, |event| {
        if let KeyEvent::Key { .. } = event {
            keys += 1;
        }
        Ok::<(), std::convert::Infallible>(())
    });
    keys
}

/// Finds the first repeated key of the valid JSON `text` and reports it with its line and
/// column.
fn locate_duplicate_key(text: &str) -> Result<()> {
    // The keys seen so far in each open object. Keys borrow the text unless they hold an
    // escape (`"a\u0062"` is the key "ab").
    let mut objects: Vec<HashSet<Cow<'_, str>>> = Vec::new();
    walk_keys(text, |event| {
        match event {
            KeyEvent::Open => objects.push(HashSet::new()),
            KeyEvent::Close => {
                objects.pop();
            }
            KeyEvent::Key { start, end } => {
                let raw = &text[start..end];
                let inner = &raw[1..raw.len().saturating_sub(1).max(1)];
                let key: Cow<'_, str> = if inner.contains('\\') {
                    Cow::Owned(serde_json::from_str(raw).unwrap_or_else(|_| raw.to_string()))
                } else {
                    Cow::Borrowed(inner)
                };
                if let Some(keys) = objects.last_mut() {
                    if keys.contains(&key) {
                        let line = text[..start].matches('\n').count() + 1;
                        let column = start - text[..start].rfind('\n').map_or(0, |k| k + 1) + 1;
                        return Err(Error::new(
                            ErrorKind::Json,
                            format!("line {line}, column {column}"),
                            format!("the key {raw} appears twice in one object; a case must not be ambiguous"),
                        ));
                    }
                    keys.insert(key);
                }
            }
        }
        Ok(())
    })
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
            "unknown loss `{loss_name}`; SPEC §1 lists {}",
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

/// The class matrix (`weights` or `centers`, C×D) against the features (N×D): the same D,
/// and C ≥ 2.
pub(crate) fn check_classes(
    features: &Matrix<f64>,
    classes: &Matrix<f64>,
    place: &str,
) -> Result<()> {
    if classes.cols() != features.cols() {
        return Err(Error::invalid(
            place,
            format!(
                "has D = {} columns but features has D = {}; each row lives in the feature space",
                classes.cols(),
                features.cols()
            ),
        ));
    }
    if classes.rows() < 2 {
        return Err(Error::invalid(
            place,
            format!(
                "has C = {} class(es); a softmax needs C ≥ 2",
                classes.rows()
            ),
        ));
    }
    Ok(())
}

/// A short description of a JSON value's kind, for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// The keys of one JSON object, read one by one so that leftovers can be reported.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'static str,
    taken: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(value: &'a Value, path: &'static str) -> Result<Fields<'a>> {
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                path,
                taken: Vec::new(),
            }),
            other => Err(Error::invalid(
                path,
                format!("expected a JSON object, got {}", describe(other)),
            )),
        }
    }

    pub(crate) fn place(&self, key: &str) -> String {
        if self.path == "case" {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn optional(&mut self, key: &'static str) -> Option<&'a Value> {
        self.taken.push(key);
        self.map.get(key)
    }

    pub(crate) fn required(&mut self, key: &'static str) -> Result<&'a Value> {
        self.optional(key)
            .ok_or_else(|| Error::invalid(self.place(key), "missing"))
    }

    pub(crate) fn taken(&self) -> String {
        if self.taken.is_empty() {
            "none".into()
        } else {
            self.taken.join(", ")
        }
    }

    /// Rejects any key that was never read.
    pub(crate) fn finish(&self, allowed: &str) -> Result<()> {
        match self.map.keys().find(|k| !self.taken.contains(&k.as_str())) {
            Some(extra) => Err(Error::invalid(
                self.place(extra),
                format!("unknown key; {allowed}"),
            )),
            None => Ok(()),
        }
    }

    /// A finite real parameter > 0.
    pub(crate) fn positive(&mut self, key: &'static str, default: f64) -> Result<f64> {
        let Some(v) = self.optional(key) else {
            return Ok(default);
        };
        let place = self.place(key);
        let x = number(v, &place)?;
        if x > 0.0 {
            Ok(x)
        } else {
            Err(Error::invalid(
                place,
                format!("must be a number > 0, got {x}"),
            ))
        }
    }

    /// A real parameter in [0, 1].
    pub(crate) fn unit_interval(&mut self, key: &'static str, default: f64) -> Result<f64> {
        let Some(v) = self.optional(key) else {
            return Ok(default);
        };
        let place = self.place(key);
        let x = number(v, &place)?;
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(Error::invalid(place, format!("must be in [0, 1], got {x}")))
        }
    }

    /// A finite real parameter ≥ 0.
    pub(crate) fn non_negative(&mut self, key: &'static str, default: f64) -> Result<f64> {
        let Some(v) = self.optional(key) else {
            return Ok(default);
        };
        let place = self.place(key);
        let x = number(v, &place)?;
        if x >= 0.0 {
            Ok(x)
        } else {
            Err(Error::invalid(
                place,
                format!("must be a number ≥ 0, got {x}"),
            ))
        }
    }

    /// The integer margin m of L-Softmax / A-Softmax: 1 ≤ m ≤ [`MAX_INTEGER_MARGIN`].
    pub(crate) fn integer_margin(&mut self, default: u32) -> Result<u32> {
        let Some(v) = self.optional("margin") else {
            return Ok(default);
        };
        let place = self.place("margin");
        let x = number(v, &place)?;
        if x.fract() == 0.0 && (1.0..=f64::from(MAX_INTEGER_MARGIN)).contains(&x) {
            Ok(x as u32)
        } else {
            Err(Error::invalid(
                place,
                format!("must be an integer from 1 to {MAX_INTEGER_MARGIN}, got {x}"),
            ))
        }
    }

    /// A finite real parameter (any sign).
    pub(crate) fn finite(&mut self, key: &'static str, default: f64) -> Result<f64> {
        match self.optional(key) {
            Some(v) => number(v, &self.place(key)),
            None => Ok(default),
        }
    }

    /// A string parameter from a fixed set; `None` when omitted.
    pub(crate) fn choice<T>(
        &mut self,
        key: &'static str,
        parse: fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<Option<T>> {
        let Some(v) = self.optional(key) else {
            return Ok(None);
        };
        v.as_str().and_then(parse).map(Some).ok_or_else(|| {
            Error::invalid(
                self.place(key),
                format!("must be {allowed}, got {}", describe(v)),
            )
        })
    }

    /// `reduction`: `mean` (default) or `sum`.
    pub(crate) fn reduction(&mut self) -> Result<Reduction> {
        Ok(self
            .choice("reduction", Reduction::from_name, "\"mean\" or \"sum\"")?
            .unwrap_or_default())
    }
}

/// JSON labels: exactly `n` integers in `0..c`.
fn json_labels(v: &Value, place: &str, n: usize, c: usize) -> Result<Vec<usize>> {
    let place = place.to_string();
    let items = v.as_array().ok_or_else(|| {
        Error::invalid(
            &place,
            format!("expected an array of class indices, got {}", describe(v)),
        )
    })?;
    if items.len() != n {
        return Err(Error::invalid(
            &place,
            format!("has {} labels but the batch has N = {n} rows", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{place}[{i}]");
            let Value::Number(num) = item else {
                return Err(Error::invalid(
                    at,
                    format!("expected a class index, got {}", describe(item)),
                ));
            };
            match num.as_str().parse::<u64>() {
                Ok(k) if (k as u128) < c as u128 => Ok(k as usize),
                Ok(k) => Err(Error::invalid(
                    at,
                    format!("label {k} is out of range 0..{c} (C = {c})"),
                )),
                Err(_) => Err(Error::invalid(
                    at,
                    format!("expected a non-negative integer class index, got {num}"),
                )),
            }
        })
        .collect()
}

/// A JSON number as the binary64 its decimal text rounds to; ±∞ after rounding is an error.
fn number(v: &Value, place: &str) -> Result<f64> {
    let Value::Number(n) = v else {
        return Err(Error::invalid(
            place,
            format!("expected a number, got {}", describe(v)),
        ));
    };
    let text = n.as_str();
    let x: f64 = text
        .parse()
        .map_err(|_| Error::invalid(place, format!("cannot read the number {text}")))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(Error::invalid(
            place,
            format!("{text} overflows binary64 (|x| > 1.797…e308)"),
        ))
    }
}

/// A non-empty rectangular matrix of finite numbers.
fn matrix(v: &Value, place: &str) -> Result<Matrix<f64>> {
    let rows = v.as_array().ok_or_else(|| {
        Error::invalid(
            place,
            format!("expected an array of rows, got {}", describe(v)),
        )
    })?;
    if rows.is_empty() {
        return Err(Error::invalid(place, "is empty; a batch needs N ≥ 1 rows"));
    }
    let mut data = Vec::new();
    let mut cols = None;
    for (i, row) in rows.iter().enumerate() {
        let at = format!("{place}[{i}]");
        let entries = row.as_array().ok_or_else(|| {
            Error::invalid(
                &at,
                format!(
                    "expected a row (an array of numbers), got {}",
                    describe(row)
                ),
            )
        })?;
        match cols {
            None => cols = Some(entries.len()),
            Some(c) if c != entries.len() => {
                return Err(Error::invalid(
                    at,
                    format!(
                        "has {} entries but row 0 has {c}; rows must all have the same length",
                        entries.len()
                    ),
                ))
            }
            Some(_) => {}
        }
        for (j, e) in entries.iter().enumerate() {
            data.push(number(e, &format!("{at}[{j}]"))?);
        }
    }
    let cols = cols.unwrap_or(0);
    Matrix::from_vec(rows.len(), cols, data)
        .ok_or_else(|| Error::invalid(place, "inconsistent shape"))
}

/// Where a case's inputs come from: its `inputs` object, or the `.npz` archive that
/// `"inputs": "NAME.npz"` names (SPEC §3). Both give the same matrices and labels, with the
/// same checks, and errors that name the place (`inputs.features[2][0]` or
/// `case.npz:features[2][0]`).
pub(crate) enum Inputs<'a> {
    Json(Fields<'a>),
    Npz {
        /// The archive as the case names it.
        file: String,
        arrays: BTreeMap<String, npz::Array>,
        taken: Vec<&'static str>,
    },
}

impl<'a> Inputs<'a> {
    pub(crate) fn new(value: &'a Value, base: &Path) -> Result<Inputs<'a>> {
        let Value::String(name) = value else {
            return Ok(Inputs::Json(Fields::new(value, "inputs")?));
        };
        if !name.ends_with(".npz") {
            return Err(Error::invalid(
                "inputs",
                format!("expected an object of inputs or the name of a .npz archive, got the string {name:?}"),
            ));
        }
        let arrays = npz::read(&base.join(name))?;
        Ok(Inputs::Npz {
            file: name.clone(),
            arrays,
            taken: Vec::new(),
        })
    }

    pub(crate) fn place(&self, key: &str) -> String {
        match self {
            Inputs::Json(fields) => fields.place(key),
            Inputs::Npz { file, .. } => format!("{file}:{key}"),
        }
    }

    pub(crate) fn taken(&self) -> String {
        match self {
            Inputs::Json(fields) => fields.taken(),
            Inputs::Npz { taken, .. } => taken.join(", "),
        }
    }

    /// Rejects any input that was never read.
    pub(crate) fn finish(&self, allowed: &str) -> Result<()> {
        match self {
            Inputs::Json(fields) => fields.finish(allowed),
            Inputs::Npz { arrays, taken, .. } => {
                match arrays.keys().find(|k| !taken.contains(&k.as_str())) {
                    Some(extra) => Err(Error::invalid(
                        self.place(extra),
                        format!("unknown array; {allowed}"),
                    )),
                    None => Ok(()),
                }
            }
        }
    }

    /// The array `key` of an archive, marked as read.
    pub(crate) fn array(&mut self, key: &'static str) -> Result<&npz::Array> {
        let place = self.place(key);
        match self {
            Inputs::Json(_) => Err(Error::invalid(place, "not an archive")),
            Inputs::Npz { arrays, taken, .. } => {
                taken.push(key);
                arrays
                    .get(key)
                    .ok_or_else(|| Error::invalid(place, "missing from the archive"))
            }
        }
    }

    /// A non-empty matrix of finite numbers.
    pub(crate) fn matrix(&mut self, key: &'static str) -> Result<Matrix<f64>> {
        let place = self.place(key);
        if let Inputs::Json(fields) = self {
            return matrix(fields.required(key)?, &place);
        }
        let a = self.array(key)?;
        let (npz::Data::Float(values), [rows, cols]) = (&a.data, a.shape.as_slice()) else {
            return Err(Error::invalid(
                place,
                format!(
                    "expected a 2-dimensional float64 or float32 array, got shape {:?} of {}",
                    a.shape,
                    if matches!(a.data, npz::Data::Float(_)) {
                        "floats"
                    } else {
                        "non-floats"
                    }
                ),
            ));
        };
        if *rows == 0 {
            return Err(Error::invalid(place, "is empty; a batch needs N ≥ 1 rows"));
        }
        if let Some(k) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(
                format!("{place}[{}][{}]", k / cols, k % cols),
                format!("is {}; inputs must be finite", values[k]),
            ));
        }
        Matrix::from_vec(*rows, *cols, values.clone())
            .ok_or_else(|| Error::invalid(place, "inconsistent shape"))
    }

    /// A matrix whose rows are normalized by the loss: every row needs a non-zero norm.
    pub(crate) fn unit_rows(&mut self, key: &'static str) -> Result<Matrix<f64>> {
        let place = self.place(key);
        let m = self.matrix(key)?;
        if let Some(i) = (0..m.rows()).find(|&i| m.row(i).iter().all(|&x| x == 0.0)) {
            return Err(Error::invalid(
                format!("{place}[{i}]"),
                "is a zero-norm row; cos θ = w·x / (‖w‖‖x‖) is undefined for it (SPEC §1, undefined points)",
            ));
        }
        Ok(m)
    }

    /// A logits matrix: N ≥ 1 rows of C ≥ 2 finite numbers.
    pub(crate) fn logits(&mut self, key: &'static str) -> Result<Matrix<f64>> {
        let place = self.place(key);
        let m = self.matrix(key)?;
        if m.cols() < 2 {
            return Err(Error::invalid(
                place,
                format!("has C = {} class(es); a softmax needs C ≥ 2", m.cols()),
            ));
        }
        Ok(m)
    }

    /// Labels: exactly `n` integers in `0..c`.
    pub(crate) fn labels(&mut self, key: &'static str, n: usize, c: usize) -> Result<Vec<usize>> {
        let place = self.place(key);
        if let Inputs::Json(fields) = self {
            return json_labels(fields.required(key)?, &place, n, c);
        }
        let a = self.array(key)?;
        let npz::Data::Int(values) = &a.data else {
            return Err(Error::invalid(
                place,
                "expected an integer array of class indices",
            ));
        };
        if a.shape.len() != 1 {
            return Err(Error::invalid(
                place,
                format!("expected a 1-dimensional array, got shape {:?}", a.shape),
            ));
        }
        if values.len() != n {
            return Err(Error::invalid(
                &place,
                format!("has {} labels but the batch has N = {n} rows", values.len()),
            ));
        }
        values
            .iter()
            .enumerate()
            .map(|(i, &k)| match usize::try_from(k) {
                Ok(k) if k < c => Ok(k),
                _ => Err(Error::invalid(
                    format!("{place}[{i}]"),
                    format!("label {k} is out of range 0..{c} (C = {c})"),
                )),
            })
            .collect()
    }
}
