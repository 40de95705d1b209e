//! A dense row-major matrix: the shape every loss input and gradient takes (SPEC §1:
//! logits N×C, features N×D, weights C×D).

/// `rows × cols` values stored row by row.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T> Matrix<T> {
    /// A matrix from row-major data. Returns `None` when `data.len() != rows × cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Option<Matrix<T>> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Matrix { rows, cols, data })
    }

    /// A matrix from rows of equal length. Returns `None` for ragged rows.
    pub fn from_rows(rows: Vec<Vec<T>>) -> Option<Matrix<T>> {
        let n = rows.len();
        let c = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != c) {
            return None;
        }
        Some(Matrix {
            rows: n,
            cols: c,
            data: rows.into_iter().flatten().collect(),
        })
    }

    /// A matrix whose entry (i, j) is `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> T) -> Matrix<T> {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Matrix { rows, cols, data }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i` as a slice.
    ///
    /// # Panics
    /// If `i ≥ rows`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterator over the rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[T]> {
        // `max(1)` keeps chunks_exact valid for a 0-column matrix (which then has no rows
        // to yield only if it has no data, the only such matrix we build).
        self.data.chunks_exact(self.cols.max(1))
    }

    /// Entry (i, j).
    ///
    /// # Panics
    /// If the index is out of range.
    pub fn get(&self, i: usize, j: usize) -> &T {
        &self.data[i * self.cols + j]
    }

    /// Mutable entry (i, j).
    ///
    /// # Panics
    /// If the index is out of range.
    pub fn get_mut(&mut self, i: usize, j: usize) -> &mut T {
        &mut self.data[i * self.cols + j]
    }

    /// The row-major values, consuming the matrix.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The row-major data.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The same shape with every entry mapped.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Matrix<U> {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(f).collect(),
        }
    }
}
