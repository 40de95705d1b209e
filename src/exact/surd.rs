//! Exact arithmetic in multi-quadratic fields: numbers Σ_k q_k·√R_k with rational q_k and
//! positive integer radicands R_k (proofs/exact_zeros.md, step 2).
//!
//! Every quantity that the losses build from binary64 inputs before any exponential —
//! squared norms ‖x‖², dot products x·w, cos θ = x·w/√(‖x‖²‖w‖²), Chebyshev polynomials of
//! cos θ, direction numerators ‖x‖²w_k − (x·w)x_k and their quotients by norms — lies in
//! such a field, so it can be held exactly.
//!
//! **Canonical form and the zero test.** Two radicands are in the same *square class*
//! when their product is a perfect square; then q₂√R₂ = q₂·(√(R₁R₂)/R₁)·√R₁ folds into
//! the term of R₁. A [`Surd`] keeps one term per square class and drops zero
//! coefficients. By Besicovitch's theorem (1940), square roots of positive rationals in
//! pairwise distinct square classes are linearly independent over ℚ, so a canonical
//! `Surd` is 0 exactly when it has no terms: [`Surd::is_zero`] is a decision, not a
//! tolerance. (Soundness of "no terms ⇒ 0" needs only that the folding is exact;
//! Besicovitch gives the converse, that a `Surd` with terms is never 0.)

use crate::mp::interval::Interval;
use rug::{Integer, Rational};
use std::fmt;

/// Σ_k q_k·√R_k, canonical: one term per square class, no zero coefficient, R_k ≥ 1 and
/// R_k = 1 only for the rational part.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Surd {
    terms: Vec<(Rational, Integer)>,
}

impl fmt::Debug for Surd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|(q, r)| {
                if *r == 1 {
                    q.to_string()
                } else {
                    format!("{q}·√{r}")
                }
            })
            .collect();
        f.write_str(&parts.join(" + "))
    }
}

/// `(q, R)` with `q·√R` unchanged, R reduced: factors 4 taken out, a perfect square made
/// rational.
fn reduced(mut q: Rational, mut r: Integer) -> (Rational, Integer) {
    if r.is_perfect_square() {
        q *= r.sqrt();
        return (q, Integer::from(1));
    }
    // 4^t divides R: √R = 2^t·√(R/4^t)
    let twos = r.find_one(0).unwrap_or(0) / 2;
    if twos > 0 {
        r >>= 2 * twos;
        q <<= twos;
    }
    (q, r)
}

impl Surd {
    /// The exact 0.
    pub fn zero() -> Surd {
        Surd::default()
    }

    /// The rational `q`.
    pub fn rational(q: Rational) -> Surd {
        let mut s = Surd::zero();
        s.push(q, Integer::from(1));
        s
    }

    /// The binary64 value `x`, exactly (`None` for NaN or ±∞).
    pub fn from_f64(x: f64) -> Option<Surd> {
        Rational::from_f64(x).map(Surd::rational)
    }

    /// √q for a rational q ≥ 0 (`None` for q < 0): √(n/d) = √(n·d)/d.
    pub fn sqrt(q: &Rational) -> Option<Surd> {
        if *q < 0 {
            return None;
        }
        let (n, d) = q.clone().into_numer_denom();
        let coefficient = Rational::from((1, d.clone()));
        let mut s = Surd::zero();
        s.push(coefficient, n * d);
        Some(s)
    }

    /// Adds `q·√r` and keeps the form canonical.
    fn push(&mut self, q: Rational, r: Integer) {
        if q == 0 || r == 0 {
            return;
        }
        let (q, r) = reduced(q, r);
        for k in 0..self.terms.len() {
            let (ref mut qk, ref rk) = self.terms[k];
            let folded = if *rk == r {
                Some(q.clone())
            } else {
                // same square class iff R_k·R is a perfect square; then
                // q√R = q·√(R_k R)/R_k · √R_k
                let product = Integer::from(rk * &r);
                product
                    .is_perfect_square()
                    .then(|| q.clone() * Rational::from((product.sqrt(), rk.clone())))
            };
            if let Some(f) = folded {
                *qk += f;
                if *qk == 0 {
                    self.terms.swap_remove(k);
                }
                return;
            }
        }
        self.terms.push((q, r));
    }

    /// True when the number is exactly 0 (a decision: see the module docs).
    pub fn is_zero(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value as a rational, when it is one.
    pub fn as_rational(&self) -> Option<Rational> {
        match self.terms.as_slice() {
            [] => Some(Rational::new()),
            [(q, r)] if *r == 1 => Some(q.clone()),
            _ => None,
        }
    }

    /// `self + other`.
    pub fn add(&self, other: &Surd) -> Surd {
        let mut s = self.clone();
        for (q, r) in &other.terms {
            s.push(q.clone(), r.clone());
        }
        s
    }

    /// `−self`.
    pub fn neg(&self) -> Surd {
        Surd {
            terms: self
                .terms
                .iter()
                .map(|(q, r)| (-q.clone(), r.clone()))
                .collect(),
        }
    }

    /// `self − other`.
    pub fn sub(&self, other: &Surd) -> Surd {
        self.add(&other.neg())
    }

    /// `self · q` for a rational q.
    pub fn scale(&self, q: &Rational) -> Surd {
        if *q == 0 {
            return Surd::zero();
        }
        Surd {
            terms: self
                .terms
                .iter()
                .map(|(c, r)| (Rational::from(c * q), r.clone()))
                .collect(),
        }
    }

    /// `self · other`: √R₁·√R₂ = g·√((R₁/g)(R₂/g)) with g = gcd(R₁, R₂).
    pub fn mul(&self, other: &Surd) -> Surd {
        let mut s = Surd::zero();
        for (q1, r1) in &self.terms {
            for (q2, r2) in &other.terms {
                let g = Integer::from(r1.gcd_ref(r2));
                let r = Integer::from(r1 / &g) * Integer::from(r2 / &g);
                s.push(Rational::from(q1 * q2) * g, r);
            }
        }
        s
    }

    /// `self^n`.
    pub fn powi(&self, n: u32) -> Surd {
        let mut out = Surd::rational(Rational::from(1));
        for _ in 0..n {
            out = out.mul(self);
        }
        out
    }

    /// The number of square classes (terms) in the canonical form.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True for the exact 0 (no terms).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// An enclosure at `prec` bits.
    pub fn enclose(&self, prec: u32) -> Interval {
        let parts: Vec<Interval> = self
            .terms
            .iter()
            .map(|(q, r)| {
                let root = Interval::from_rational(prec, &Rational::from(r.clone())).sqrt();
                Interval::from_rational(prec, q).mul(&root)
            })
            .collect();
        Interval::sum(prec, &parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i64, d: i64) -> Rational {
        Rational::from((n, d))
    }

    #[test]
    fn square_classes_fold() {
        // √8 − 2√2 = 0, √(1/2) − √2/2 = 0, √2·√3 − √6 = 0, √12·√3 = 6
        let s8 = Surd::sqrt(&q(8, 1)).unwrap();
        let s2 = Surd::sqrt(&q(2, 1)).unwrap();
        assert!(s8.sub(&s2.scale(&q(2, 1))).is_zero());
        let half = Surd::sqrt(&q(1, 2)).unwrap();
        assert!(half.sub(&s2.scale(&q(1, 2))).is_zero());
        let s3 = Surd::sqrt(&q(3, 1)).unwrap();
        let s6 = Surd::sqrt(&q(6, 1)).unwrap();
        assert!(s2.mul(&s3).sub(&s6).is_zero());
        let s12 = Surd::sqrt(&q(12, 1)).unwrap();
        assert_eq!(s12.mul(&s3).as_rational(), Some(q(6, 1)));
        // √18/√2 class: √18 + √2 = 4√2, one term
        let s18 = Surd::sqrt(&q(18, 1)).unwrap();
        assert_eq!(s18.add(&s2).len(), 1);
    }

    #[test]
    fn distinct_classes_stay_apart() {
        // 1 + √2 + √3 + √6 has four terms and is not 0
        let s = [1, 2, 3, 6]
            .iter()
            .map(|&r| Surd::sqrt(&q(r, 1)).unwrap())
            .fold(Surd::zero(), |a, b| a.add(&b));
        assert_eq!(s.len(), 4);
        assert!(!s.is_zero());
    }
}
