//! The exact geometry of binary64 inputs: rationals, squared norms, dot products, cos θ
//! and direction numerators as [`Surd`]s (proofs/exact_zeros.md, step 2).

use crate::exact::surd::Surd;
use crate::matrix::Matrix;
use rug::Rational;

/// Every entry of a binary64 matrix as the rational it is (inputs are finite: checked
/// when the case was read).
pub fn rationals(m: &Matrix<f64>) -> Matrix<Rational> {
    m.map(|&x| Rational::from_f64(x).unwrap_or_default())
}

/// x·w, exactly.
pub fn dot(x: &[Rational], w: &[Rational]) -> Rational {
    x.iter()
        .zip(w)
        .fold(Rational::new(), |acc, (a, b)| acc + Rational::from(a * b))
}

/// The exact inputs of a pair of matrices (features N×D, weights C×D): squared norms,
/// the reciprocal norms 1/‖·‖ and the dot products.
pub struct Geometry {
    /// Features, exactly.
    pub x: Matrix<Rational>,
    /// Class weights, exactly.
    pub w: Matrix<Rational>,
    /// ‖x_i‖²
    pub x_sq: Vec<Rational>,
    /// ‖w_j‖²
    pub w_sq: Vec<Rational>,
    /// 1/‖x_i‖ (`None` for a zero row)
    pub x_inv: Vec<Option<Surd>>,
    /// 1/‖w_j‖ (`None` for a zero row)
    pub w_inv: Vec<Option<Surd>>,
    /// x_i·w_j
    pub dots: Matrix<Rational>,
}

/// 1/√q for q > 0.
fn inverse_root(q: &Rational) -> Option<Surd> {
    if *q <= 0 {
        return None;
    }
    Surd::sqrt(&Rational::from(q.recip_ref()))
}

impl Geometry {
    /// The exact geometry of `features` and `weights`.
    pub fn new(features: &Matrix<f64>, weights: &Matrix<f64>) -> Geometry {
        let x = rationals(features);
        let w = rationals(weights);
        let x_sq: Vec<Rational> = x.iter_rows().map(|r| dot(r, r)).collect();
        let w_sq: Vec<Rational> = w.iter_rows().map(|r| dot(r, r)).collect();
        let dots = Matrix::from_fn(x.rows(), w.rows(), |i, j| dot(x.row(i), w.row(j)));
        Geometry {
            x_inv: x_sq.iter().map(inverse_root).collect(),
            w_inv: w_sq.iter().map(inverse_root).collect(),
            x,
            w,
            x_sq,
            w_sq,
            dots,
        }
    }

    /// cos θ_ij = (x_i·w_j)/(‖x_i‖‖w_j‖), exactly (`None` when a row has norm 0).
    pub fn cos(&self, i: usize, j: usize) -> Option<Surd> {
        let product = Rational::from(&self.x_sq[i] * &self.w_sq[j]);
        if product == 0 {
            return None;
        }
        // d/√(ab) = d·√(ab)/(ab)
        let root = Surd::sqrt(&product)?;
        Some(root.scale(&Rational::from(self.dots.get(i, j) / &product)))
    }

    /// ‖x_i‖²·w_jk − (x_i·w_j)·x_ik: ‖x_i‖³‖w_j‖ times ∂cos θ_ij/∂x_ik.
    pub fn across_x(&self, i: usize, j: usize, k: usize) -> Rational {
        Rational::from(&self.x_sq[i] * self.w.get(j, k))
            - Rational::from(self.dots.get(i, j) * self.x.get(i, k))
    }

    /// ‖w_j‖²·x_ik − (x_i·w_j)·w_jk: ‖w_j‖³‖x_i‖ times ∂cos θ_ij/∂w_jk.
    pub fn across_w(&self, i: usize, j: usize, k: usize) -> Rational {
        Rational::from(&self.w_sq[j] * self.x.get(i, k))
            - Rational::from(self.dots.get(i, j) * self.w.get(j, k))
    }
}

/// The Chebyshev polynomials T_m(c) = cos(mθ) and U_{m−1}(c) = sin(mθ)/sin θ at an exact
/// c = cos θ, by their recurrences (exact arithmetic: any formula for the same polynomial
/// gives the same number).
pub fn chebyshev(m: u32, c: &Surd) -> (Surd, Surd) {
    let one = Surd::rational(Rational::from(1));
    let two_c = c.scale(&Rational::from(2));
    // T_0 = 1, T_1 = c; U_0 = 1, U_1 = 2c
    let (mut t_prev, mut t) = (one.clone(), c.clone());
    let (mut u_prev, mut u) = (Surd::zero(), one.clone());
    if m == 0 {
        return (one, Surd::zero());
    }
    for _ in 1..m {
        let t_next = two_c.mul(&t).sub(&t_prev);
        t_prev = std::mem::replace(&mut t, t_next);
        let u_next = two_c.mul(&u).sub(&u_prev);
        u_prev = std::mem::replace(&mut u, u_next);
    }
    (t, u)
}
