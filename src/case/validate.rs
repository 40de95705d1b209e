//! The checks every case passes, on values already in memory: the inputs read from JSON or
//! `.npz` ([`super::Inputs`]) and the cases a caller builds by hand (each family's
//! `validate`, run by `crate::reference` and `crate::fast::dispatch` before evaluating).
//! Each error names the place and the reason, as SPEC §1's undefined points require.

use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// N ≥ 1 rows, every entry finite.
pub(crate) fn finite_matrix(place: &str, m: &Matrix<f64>) -> Result<()> {
    if m.rows() == 0 {
        return Err(Error::invalid(place, "is empty; a batch needs N ≥ 1 rows"));
    }
    let values = m.as_slice();
    if let Some(k) = values.iter().position(|x| !x.is_finite()) {
        let cols = m.cols().max(1);
        return Err(Error::invalid(
            format!("{place}[{}][{}]", k / cols, k % cols),
            format!("is {}; inputs must be finite", values[k]),
        ));
    }
    Ok(())
}

/// Rows that the loss normalizes: none of norm 0.
pub(crate) fn unit_rows(place: &str, m: &Matrix<f64>) -> Result<()> {
    if let Some(i) = (0..m.rows()).find(|&i| m.row(i).iter().all(|&x| x == 0.0)) {
        return Err(Error::invalid(
            format!("{place}[{i}]"),
            "is a zero-norm row; cos θ = w·x / (‖w‖‖x‖) is undefined for it (SPEC §1, undefined points)",
        ));
    }
    Ok(())
}

/// Logits: C ≥ 2 columns.
pub(crate) fn logits(place: &str, m: &Matrix<f64>) -> Result<()> {
    if m.cols() < 2 {
        return Err(Error::invalid(
            place,
            format!("has C = {} class(es); a softmax needs C ≥ 2", m.cols()),
        ));
    }
    Ok(())
}

/// The class matrix (`weights` or `centers`, C×D) against the features (N×D): the same D,
/// and C ≥ 2.
pub(crate) fn classes(features: &Matrix<f64>, classes: &Matrix<f64>, place: &str) -> Result<()> {
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

/// Exactly `n` labels, each in `0..c`.
pub(crate) fn labels(place: &str, labels: &[usize], n: usize, c: usize) -> Result<()> {
    if labels.len() != n {
        return Err(Error::invalid(
            place,
            format!("has {} labels but the batch has N = {n} rows", labels.len()),
        ));
    }
    match labels.iter().position(|&k| k >= c) {
        Some(i) => Err(Error::invalid(
            format!("{place}[{i}]"),
            format!("label {} is out of range 0..{c} (C = {c})", labels[i]),
        )),
        None => Ok(()),
    }
}

/// A parameter in a range, named in the error by `what` ("a number > 0", …).
pub(crate) fn param(place: &str, x: f64, ok: bool, what: &str) -> Result<()> {
    if ok && x.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(place, format!("must be {what}, got {x}")))
    }
}

/// A finite parameter > 0.
pub(crate) fn positive(place: &str, x: f64) -> Result<()> {
    param(place, x, x > 0.0, "a number > 0")
}

/// A parameter in [0, 1].
pub(crate) fn unit_interval(place: &str, x: f64) -> Result<()> {
    param(place, x, (0.0..=1.0).contains(&x), "in [0, 1]")
}

/// A finite parameter ≥ 0.
pub(crate) fn non_negative(place: &str, x: f64) -> Result<()> {
    param(place, x, x >= 0.0, "a number ≥ 0")
}

/// A finite parameter of any sign.
pub(crate) fn finite(place: &str, x: f64) -> Result<()> {
    param(place, x, true, "finite")
}

/// Per-class weights (SPEC §5's `weight`, focal's `alpha`): one per class, each finite and
/// ≥ 0.
pub(crate) fn class_weights(place: &str, w: &[f64], classes: usize) -> Result<()> {
    if w.len() != classes {
        return Err(Error::invalid(
            place,
            format!(
                "has {} entries but needs one per class ({classes})",
                w.len()
            ),
        ));
    }
    match w.iter().position(|&x| !(x.is_finite() && x >= 0.0)) {
        Some(k) => Err(Error::invalid(
            format!("{place}[{k}]"),
            format!("class weight {} must be finite and ≥ 0", w[k]),
        )),
        None => Ok(()),
    }
}
