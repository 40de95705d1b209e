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
