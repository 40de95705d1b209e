//! Any case of SPEC §1 through the fast f32/f64 paths, as an [`Answer`] shaped like the
//! reference's (the same outputs and gradients, by the same names), so that `lossref report`
//! and the tests judge them like any implementation. Each family's
//! [`crate::family`] home shapes its own answer with `narrow` and `widen`.

use crate::answer::{Answer, Tensor};
use crate::error::Result;
use crate::fast::real::Real;
use crate::matrix::Matrix;
use crate::spec::Case;

/// A binary64 matrix rounded to the fast path's dtype `T`, row-major.
pub(crate) fn narrow<T: Real>(m: &Matrix<f64>) -> Vec<T> {
    m.as_slice().iter().map(|&v| T::of_f64(v)).collect()
}

/// A fast path's row-major `rows`×`cols` result, widened exactly to f64.
pub(crate) fn widen<T: Real>(rows: usize, cols: usize, v: Vec<T>) -> Tensor<f64> {
    let wide = v.into_iter().map(Real::as_f64).collect();
    Tensor::Matrix(
        Matrix::from_vec(rows, cols, wide).expect("the fast path returns one value per entry"),
    )
}

/// The fast path's answer for `case` in dtype `T`, widened exactly to f64.
///
/// # Errors
/// A case that is not valid ([`Case::validate`]), or the fast path's own errors
/// (undefined points).
pub fn evaluate<T: Real>(case: &Case) -> Result<Answer<f64>> {
    case.validate()?;
    crate::family::fast::<T>(case)
}
