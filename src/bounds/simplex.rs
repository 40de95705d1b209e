//! The configurations of SPEC §2 at which the bounds are attained, built at any precision.
//!
//! * [`regular_simplex`]: n unit vectors in R^D (D ≥ n−1) with Σ_i v_i = 0 and
//!   v_i·v_j = −1/(n−1) for i ≠ j, in Helmert coordinates, as enclosures at any precision.
//! * [`integer_simplex`]: the same simplex up to scale, n·e_i − 1 in R^D (D ≥ n), whose
//!   coordinates are integers and so exact binary64 inputs for `lossref eval`.
//! * [`reflect`]: a Householder reflection, an exact isometry, to place a configuration in
//!   general position without changing any angle or sum.
//! * [`features_at_weights`]: the balanced "every feature equals its class weight"
//!   configuration of T1 and T3.
//!
//! **Helmert coordinates.** The vectors h_k = (1, …, 1, −k, 0, …, 0)/√(k(k+1)) (k ones,
//! k = 1..n−1) are orthonormal and orthogonal to (1, …, 1). The centred standard simplex
//! e_i − (1/n)·1 lies in their span and has coordinates (e_i − 1/n)·h_k = h_k(i), with norm
//! √((n−1)/n). So v_i(k−1) = √(n/(n−1))·h_k(i) is a unit regular simplex: entry (i, k−1) is
//! √(n/((n−1)k(k+1))) for i < k, −k·√(n/((n−1)k(k+1))) for i = k, and 0 for i > k.
//! Every entry is the square root of an exact rational, so the enclosures are as tight as the
//! precision allows; the checks are `simplex_rows_are_unit_sum_to_zero_and_meet_at_minus_one_over_n_minus_1`
//! (tests/theorems/t1_normface_bound.rs).

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use rug::Rational;

/// The regular simplex of n unit vectors in R^d (d ≥ n−1), as enclosures at `prec` bits
/// (see the module docs). Coordinates past n−1 are exact zeros.
///
/// # Errors
/// n < 2, or d < n − 1 (no regular simplex of n points fits there).
pub fn regular_simplex(n: usize, d: usize, prec: u32) -> Result<Matrix<Interval>> {
    check(n, d, n.saturating_sub(1))?;
    let zero = Interval::from_i64(prec, 0);
    let mut m = Matrix::from_fn(n, d, |_, _| zero.clone());
    for k in 1..n {
        let q = Rational::from((n as u64, (n as u64 - 1) * k as u64 * (k as u64 + 1)));
        let a = Interval::from_rational(prec, &q).sqrt();
        for i in 0..k {
            *m.get_mut(i, k - 1) = a.clone();
        }
        *m.get_mut(k, k - 1) = a.mul(&Interval::from_i64(prec, -(k as i64)));
    }
    Ok(m)
}

/// The regular simplex of n vectors as exact binary64 rows n·e_i − 1 in R^d (d ≥ n; the
/// remaining coordinates 0). Each row has norm √(n(n−1)), the rows sum to 0 and
/// v_i·v_j = −n, so after normalization they are the unit simplex of [`regular_simplex`]
/// up to a rotation.
///
/// # Errors
/// n < 2, or d < n.
pub fn integer_simplex(n: usize, d: usize) -> Result<Matrix<f64>> {
    check(n, d, n)?;
    Ok(Matrix::from_fn(n, d, |i, k| {
        if k >= n {
            0.0
        } else if k == i {
            n as f64 - 1.0
        } else {
            -1.0
        }
    }))
}

fn check(n: usize, d: usize, least_d: usize) -> Result<()> {
    if n < 2 {
        return Err(Error::invalid(
            "classes",
            format!("a simplex needs at least 2 vectors, got {n}"),
        ));
    }
    if n > 1 << 20 {
        return Err(Error::invalid(
            "classes",
            format!("{n} vectors is more than the 2^20 this construction builds"),
        ));
    }
    if d < least_d {
        return Err(Error::invalid(
            "dim",
            format!("this simplex of {n} vectors needs dimension at least {least_d}, got {d}"),
        ));
    }
    Ok(())
}

/// Every row x mapped to H·x = x − 2(v·x)/(v·v)·v, the reflection through the hyperplane
/// orthogonal to `v` (exact binary64 entries). H is orthogonal and linear, so norms, dot
/// products and sums of the exact rows are kept; the enclosures contain the exact images.
///
/// # Errors
/// `v` of the wrong length, zero, or not finite.
pub fn reflect(rows: &Matrix<Interval>, v: &[f64]) -> Result<Matrix<Interval>> {
    if v.len() != rows.cols() || v.iter().any(|x| !x.is_finite()) || v.iter().all(|&x| x == 0.0) {
        return Err(Error::invalid(
            "reflection",
            format!(
                "needs a finite nonzero vector of length {}, got {v:?}",
                rows.cols()
            ),
        ));
    }
    let prec = rows
        .as_slice()
        .iter()
        .map(Interval::prec)
        .max()
        .unwrap_or(64);
    let v: Vec<Interval> = v.iter().map(|&x| Interval::from_f64(prec, x)).collect();
    let dot = |a: &[Interval], b: &[Interval]| {
        let terms: Vec<Interval> = a.iter().zip(b).map(|(x, y)| x.mul(y)).collect();
        Interval::sum(prec, &terms)
    };
    let vv = dot(&v, &v);
    let two = Interval::from_i64(prec, 2);
    let mut out = Vec::with_capacity(rows.as_slice().len());
    for row in rows.iter_rows() {
        let f = two.mul(&dot(&v, row)).div(&vv);
        out.extend(row.iter().zip(&v).map(|(x, vk)| x.sub(&f.mul(vk))));
    }
    Ok(Matrix::from_vec(rows.rows(), rows.cols(), out).expect("one image per entry"))
}

/// A balanced set of samples whose features equal their class weights: `per_class` samples
/// of each class, in class order (labels 0, 0, …, 1, 1, …).
#[derive(Clone, Debug, PartialEq)]
pub struct AtClassWeights<T> {
    /// N×D features, N = `per_class`·C; row r is weight row `labels[r]`.
    pub features: Matrix<T>,
    /// C×D class weights.
    pub weights: Matrix<T>,
    /// N labels.
    pub labels: Vec<usize>,
}

/// The configuration of T1 and T3: every feature at its class weight, `per_class` samples
/// per class (at least 1).
pub fn features_at_weights<T: Clone>(weights: &Matrix<T>, per_class: usize) -> AtClassWeights<T> {
    let per_class = per_class.max(1);
    let labels: Vec<usize> = (0..weights.rows())
        .flat_map(|j| std::iter::repeat_n(j, per_class))
        .collect();
    let features = Matrix::from_fn(labels.len(), weights.cols(), |r, k| {
        weights.get(labels[r], k).clone()
    });
    AtClassWeights {
        features,
        weights: weights.clone(),
        labels,
    }
}
