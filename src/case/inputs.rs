//! A case's inputs, from JSON text or from an `.npz` archive (SPEC §3): matrices, unit rows
//! and labels, every value checked, errors naming the place.

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::npz;

use super::fields::{describe, Fields};
use super::validate;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Labels read with an ignore index: the class of each row (0 where the row is ignored and
/// the index lies outside `0..c`), and which rows carry the ignore index.
pub(crate) type IgnoredLabels = (Vec<usize>, Vec<bool>);

/// One label: an integer in `0..c`, or the ignore index.
fn label(k: i64, ignore: Option<i64>, c: usize, at: String) -> Result<(usize, bool)> {
    if Some(k) == ignore {
        return Ok((
            usize::try_from(k).ok().filter(|&k| k < c).unwrap_or(0),
            true,
        ));
    }
    match usize::try_from(k) {
        Ok(k) if k < c => Ok((k, false)),
        _ => {
            let hint = match ignore {
                Some(i) => format!(" and is not params.ignore_index = {i}"),
                None if k < 0 => {
                    " (a negative label marks an ignored row only with params.ignore_index)"
                        .to_string()
                }
                None => String::new(),
            };
            Err(Error::invalid(
                at,
                format!("label {k} is out of range 0..{c} (C = {c}){hint}"),
            ))
        }
    }
}

/// JSON labels: exactly `n` integers in `0..c`, or equal to `ignore`.
fn json_labels(
    v: &Value,
    place: &str,
    n: usize,
    c: usize,
    ignore: Option<i64>,
) -> Result<IgnoredLabels> {
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
            match num.as_str().parse::<i128>() {
                Ok(k) => label(
                    i64::try_from(k).unwrap_or(if k < 0 { i64::MIN } else { i64::MAX }),
                    ignore,
                    c,
                    at,
                ),
                Err(_) => Err(Error::invalid(
                    at,
                    format!("expected an integer class index, got {num}"),
                )),
            }
        })
        .collect::<Result<Vec<_>>>()
        .map(|v| v.into_iter().unzip())
}

/// A JSON number as the binary64 its decimal text rounds to; ±∞ after rounding is an error.
pub(super) fn number(v: &Value, place: &str) -> Result<f64> {
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
                        format!(
                            "unknown array{}; {allowed}",
                            crate::suggest::did_you_mean(extra, taken.iter().copied())
                        ),
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
                let near = crate::suggest::nearest(key, arrays.keys().map(String::as_str))
                    .map_or(String::new(), |k| {
                        format!("; `{k}` is given (did you mean `{key}`?)")
                    });
                arrays
                    .get(key)
                    .ok_or_else(|| Error::invalid(place, format!("missing from the archive{near}")))
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
        let m = Matrix::from_vec(*rows, *cols, values.clone())
            .ok_or_else(|| Error::invalid(&place, "inconsistent shape"))?;
        validate::finite_matrix(&place, &m)?;
        Ok(m)
    }

    /// A matrix whose rows are normalized by the loss: every row needs a non-zero norm.
    pub(crate) fn unit_rows(&mut self, key: &'static str) -> Result<Matrix<f64>> {
        let place = self.place(key);
        let m = self.matrix(key)?;
        validate::unit_rows(&place, &m)?;
        Ok(m)
    }

    /// A logits matrix: N ≥ 1 rows of C ≥ 2 finite numbers.
    pub(crate) fn logits(&mut self, key: &'static str) -> Result<Matrix<f64>> {
        let place = self.place(key);
        let m = self.matrix(key)?;
        validate::logits(&place, &m)?;
        Ok(m)
    }

    /// Whether the input `key` is given (without reading it).
    pub(crate) fn contains(&self, key: &str) -> bool {
        match self {
            Inputs::Json(fields) => fields.contains(key),
            Inputs::Npz { arrays, .. } => arrays.contains_key(key),
        }
    }

    /// A scalar (SPEC §5's running state): a JSON number, or a 0-d or one-entry array.
    pub(crate) fn scalar(&mut self, key: &'static str) -> Result<f64> {
        let place = self.place(key);
        if let Inputs::Json(fields) = self {
            let v = fields.required(key)?;
            let one = v.as_array().filter(|a| a.len() == 1).map(|a| &a[0]);
            return number(one.unwrap_or(v), &place);
        }
        let a = self.array(key)?;
        match (&a.data, a.shape.as_slice()) {
            (npz::Data::Float(v), [] | [1]) => Ok(v[0]),
            _ => Err(Error::invalid(
                place,
                format!(
                    "expected a float scalar (a 0-dimensional or one-entry array), got shape {:?}",
                    a.shape
                ),
            )),
        }
    }

    /// Labels: exactly `n` integers in `0..c`.
    pub(crate) fn labels(&mut self, key: &'static str, n: usize, c: usize) -> Result<Vec<usize>> {
        Ok(self.labels_ignoring(key, n, c, None)?.0)
    }

    /// Labels: exactly `n` integers, each in `0..c` or equal to `ignore` (SPEC §5's
    /// `ignore_index`), with the rows that carry `ignore`.
    pub(crate) fn labels_ignoring(
        &mut self,
        key: &'static str,
        n: usize,
        c: usize,
        ignore: Option<i64>,
    ) -> Result<IgnoredLabels> {
        let place = self.place(key);
        if let Inputs::Json(fields) = self {
            return json_labels(fields.required(key)?, &place, n, c, ignore);
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
            .map(|(i, &k)| label(k, ignore, c, format!("{place}[{i}]")))
            .collect::<Result<Vec<_>>>()
            .map(|v| v.into_iter().unzip())
    }

    /// A list of class indices of any length (SPEC §5's `classes`), each in `0..c`.
    pub(crate) fn class_indices(&mut self, key: &'static str, c: usize) -> Result<Vec<usize>> {
        let len = match self {
            Inputs::Json(fields) => fields.peek(key).and_then(Value::as_array).map(Vec::len),
            Inputs::Npz { arrays, .. } => arrays.get(key).map(|a| a.shape.iter().product()),
        };
        // a value that is not a list is refused by the labels' reader, naming the place
        self.labels(key, len.unwrap_or(0), c)
    }

    /// The optional per-class weights `key` (SPEC §5's `weight`, focal's `alpha`): `None`
    /// when not given, else exactly `classes` finite numbers, a negative one refused as
    /// `what` (`weights`, `α`) must be ≥ 0.
    pub(crate) fn class_weights(
        &mut self,
        key: &'static str,
        classes: usize,
        what: &str,
    ) -> Result<Option<Vec<f64>>> {
        if !self.contains(key) {
            return Ok(None);
        }
        let place = self.place(key);
        let w = self.vector(key, classes, "class")?;
        match w.iter().position(|&x| x < 0.0) {
            Some(k) => Err(Error::invalid(
                format!("{place}[{k}]"),
                format!("class weight {} is negative; {what} must be ≥ 0", w[k]),
            )),
            None => Ok(Some(w)),
        }
    }

    /// A vector of exactly `len` finite numbers, one per `what` (a class, a row).
    pub(crate) fn vector(&mut self, key: &'static str, len: usize, what: &str) -> Result<Vec<f64>> {
        let place = self.place(key);
        let values = if let Inputs::Json(fields) = self {
            let v = fields.required(key)?;
            let items = v.as_array().ok_or_else(|| {
                Error::invalid(
                    &place,
                    format!("expected an array of {len} numbers, got {}", describe(v)),
                )
            })?;
            items
                .iter()
                .enumerate()
                .map(|(k, x)| number(x, &format!("{place}[{k}]")))
                .collect::<Result<Vec<f64>>>()?
        } else {
            let a = self.array(key)?;
            match (&a.data, a.shape.as_slice()) {
                (npz::Data::Float(v), [_]) => v.clone(),
                _ => {
                    return Err(Error::invalid(
                        place,
                        format!(
                            "expected a 1-dimensional float array, got shape {:?}",
                            a.shape
                        ),
                    ))
                }
            }
        };
        if values.len() != len {
            return Err(Error::invalid(
                &place,
                format!(
                    "has {} entries but needs one per {what} ({len})",
                    values.len()
                ),
            ));
        }
        if let Some(k) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(
                format!("{place}[{k}]"),
                format!("{} is not finite", values[k]),
            ));
        }
        Ok(values)
    }
}
