//! The exact form of the `lsoftmax` and `sphereface` gradients (SPEC §1) for the zero
//! test (proofs/exact_zeros.md, step 7).
//!
//! Everything here is algebraic: with c = cos θ_iy = d/√(‖x‖²‖w‖²), c² is rational, ψ_m on
//! segment k is (−1)^k T_m(c) − 2k and dψ/dc = (−1)^k m U_{m−1}(c), both polynomials in c.
//! With f_ij = ν_j‖x_i‖c_ij (ν_j = ‖w_j‖ for `lsoftmax`, 1 for `sphereface`), h and h′ of
//! the reference (src/reference/psi.rs), P^x and P^w the direction numerators:
//!
//! * ∂L/∂x_ik = r·Σ_l (p_il − δ_{l,y_i})·∂f_il/∂x_ik, with ∂f_il/∂x_ik = ν_l w_lk/‖w_l‖ off
//!   the target and ν_y(h·x_ik/‖x_i‖ + h′·P^x_k/(‖x_i‖²‖w_y‖)) at it;
//! * ∂L/∂w_jk = r·Σ_i (p_ij − δ_{j,y_i})·∂f_ij/∂w_jk, with x_ik (`lsoftmax`) or
//!   P^w_k/‖w_j‖³ (`sphereface`) off the target, and ‖x_i‖h·w_jk/‖w_j‖ + h′P^w_k/‖w_j‖²
//!   (`lsoftmax`) or h′P^w_k/‖w_j‖³ (`sphereface`) at it.
//!
//! **The segment k.** k is the largest integer with c ≤ cos(kπ/m). The enclosure of
//! θ·m/π at the working precision decides it, except at a boundary: c = cos(kπ/m) can hold
//! with c² rational only if cos(2kπ/m) is rational, which by Niven's theorem means
//! 2kπ/m ≡ 0, ±π/3, ±π/2, ±2π/3 or π (mod 2π), so cos²(kπ/m) ∈ {1, 3/4, 1/2, 1/4, 0}. That
//! is tested exactly; at a boundary both neighbouring segments give the same ψ and ψ′
//! (ψ is C¹, SPEC §2 T6), so either may be used. Off a boundary, an undecided enclosure
//! means "retry at a higher precision".

use crate::exact::geometry::{chebyshev, Geometry};
use crate::exact::lindemann::{Coefficient, Combination, Logit, Row, RowTerm};
use crate::exact::surd::Surd;
use crate::exact::ExactForm;
use crate::mp::interval::Interval;
use crate::spec::MultiplicativeCase;
use rug::Rational;
use std::cmp::Ordering;

/// cos²(kπ/m) and the sign of cos(kπ/m), when cos² is rational (Niven), else `None`.
pub fn niven_boundary(k: u32, m: u32) -> Option<(Rational, Ordering)> {
    // 2k/m mod 2, as a reduced fraction p/q
    let angle = Rational::from((2 * k, m));
    let (p, q) = angle.into_numer_denom();
    let cos_double: Rational = match (p.to_u32()?, q.to_u32()?) {
        (0, _) | (2, 1) => Rational::from(1),
        (1, 3) | (5, 3) => Rational::from((1, 2)),
        (1, 2) | (3, 2) => Rational::from(0),
        (2, 3) | (4, 3) => Rational::from((-1, 2)),
        (1, 1) => Rational::from(-1),
        _ => return None,
    };
    // cos² x = (1 + cos 2x)/2; the sign of cos(kπ/m) from kπ/m against π/2
    let sign = (2 * k).cmp(&m).reverse();
    Some(((cos_double + 1u32) / 2u32, sign))
}

/// The segment k of ψ_m at c, or `None` while undecided at `prec` bits.
fn segment(m: u32, c: &Surd, c_sq: &Rational, c_sign: Ordering, prec: u32) -> Option<u32> {
    let t = c
        .enclose(prec)
        .acos()
        .mul(&Interval::from_i64(prec, i64::from(m)))
        .div(&Interval::pi(prec));
    let last = m - 1;
    let floor = |x: &rug::Float| {
        let f = x.to_f64_round(rug::float::Round::Down).floor();
        f.clamp(0.0, f64::from(last)) as u32
    };
    let (k_lo, k_hi) = (floor(t.lo()), floor(t.hi()));
    if k_lo == k_hi {
        return Some(k_lo);
    }
    // straddles the boundary k_hi·π/m: decide it exactly
    let (sq, sign) = niven_boundary(k_hi, m)?;
    (k_hi == k_lo + 1 && sq == *c_sq && sign == c_sign).then_some(k_hi)
}

/// The exact form of one `lsoftmax` or `sphereface` case.
pub struct PsiForm {
    geometry: Geometry,
    labels: Vec<usize>,
    sphere: bool,
    /// h and h′ at each row's target.
    targets: Vec<(Surd, Surd)>,
    rows: Vec<Row>,
}

impl PsiForm {
    /// The form of `case`, or `None` when a norm that the loss divides by is 0 or a
    /// segment is undecided at `prec` bits.
    pub fn new(case: &MultiplicativeCase, prec: u32) -> Option<PsiForm> {
        let geometry = Geometry::new(&case.features, &case.weights);
        let g = &geometry;
        let sphere = case.normalized_weights();
        let m = case.margin;
        let lambda = Rational::from_f64(case.lambda)?;
        let blend = Rational::from(&lambda + 1u32);
        let (n, classes) = (case.features.rows(), case.weights.rows());
        let mut targets = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        for (i, &y) in case.labels.iter().enumerate() {
            let c = g.cos(i, y)?;
            let c_sq = Rational::from(g.dots.get(i, y).square_ref())
                / Rational::from(&g.x_sq[i] * &g.w_sq[y]);
            let k = segment(m, &c, &c_sq, g.dots.get(i, y).cmp0(), prec)?;
            let (t, u) = chebyshev(m, &c);
            let odd = k % 2 == 1;
            let signed = |v: Surd| if odd { v.neg() } else { v };
            let psi = signed(t).sub(&Surd::rational(Rational::from(2 * k)));
            let dpsi = signed(u.scale(&Rational::from(m)));
            let inv_blend = Rational::from(blend.recip_ref());
            let h = c.scale(&lambda).add(&psi).scale(&inv_blend);
            let dh = dpsi.add(&Surd::rational(lambda.clone())).scale(&inv_blend);
            // f_ij = ν_j‖x_i‖c_ij: x·w (lsoftmax) or (x·w)/‖w_j‖ (sphereface) off the
            // target; ν_y‖x_i‖h at it
            let norm_x = Surd::sqrt(&g.x_sq[i])?;
            let nu = |j: usize| {
                if sphere {
                    Some(Surd::rational(Rational::from(1)))
                } else {
                    Surd::sqrt(&g.w_sq[j])
                }
            };
            let mut logits = Vec::with_capacity(classes);
            for j in 0..classes {
                let d = Surd::rational(g.dots.get(i, j).clone());
                logits.push(Logit::Algebraic(if j == y {
                    nu(j)?.mul(&norm_x).mul(&h)
                } else if sphere {
                    d.mul(g.w_inv[j].as_ref()?)
                } else {
                    d
                }));
            }
            rows.push(Row::new(logits));
            targets.push((h, dh));
        }
        Some(PsiForm {
            geometry,
            labels: case.labels.clone(),
            sphere,
            targets,
            rows,
        })
    }

    fn features(&self, i: usize, k: usize) -> Option<Combination> {
        let g = &self.geometry;
        let y = self.labels[i];
        let rational = |q: Rational| Surd::rational(q);
        let mut at = Vec::with_capacity(self.rows[i].len());
        for l in 0..self.rows[i].len() {
            let w_lk = rational(g.w.get(l, k).clone());
            let a = if l == y {
                let (h, dh) = &self.targets[i];
                let x_inv = g.x_inv[i].as_ref()?;
                let along = h.mul(&rational(g.x.get(i, k).clone())).mul(x_inv);
                // h′·P^x/(‖x‖²‖w‖)
                let across = dh
                    .mul(&rational(g.across_x(i, l, k) / g.x_sq[i].clone()))
                    .mul(g.w_inv[l].as_ref()?);
                let sum = along.add(&across);
                if self.sphere {
                    sum
                } else {
                    sum.mul(&Surd::sqrt(&g.w_sq[l])?)
                }
            } else if self.sphere {
                w_lk.mul(g.w_inv[l].as_ref()?)
            } else {
                w_lk
            };
            at.push((l, Coefficient::plain(a)));
        }
        Some(Combination::one_row(i, y, at))
    }

    fn weights(&self, j: usize, k: usize) -> Option<Combination> {
        let g = &self.geometry;
        let mut terms = Vec::new();
        for (i, &y) in self.labels.iter().enumerate() {
            let target = y == j;
            let a = if !self.sphere && !target {
                Surd::rational(g.x.get(i, k).clone())
            } else {
                let w_inv = g.w_inv[j].as_ref()?;
                let p = Surd::rational(g.across_w(i, j, k));
                let slope = if target {
                    self.targets[i].1.clone()
                } else {
                    Surd::rational(Rational::from(1))
                };
                // P^w/‖w‖³ = P^w·(1/‖w‖)/‖w‖²
                let w_sq_inv = Rational::from(g.w_sq[j].recip_ref());
                if self.sphere {
                    slope.mul(&p).mul(w_inv).scale(&w_sq_inv)
                } else {
                    let along = Surd::sqrt(&g.x_sq[i])?
                        .mul(&self.targets[i].0)
                        .mul(&Surd::rational(g.w.get(j, k).clone()))
                        .mul(w_inv);
                    along.add(&slope.mul(&p).scale(&w_sq_inv))
                }
            };
            if a.is_zero() {
                continue;
            }
            terms.push(RowTerm::one_class(i, j, Coefficient::plain(a), target));
        }
        Some(Combination { terms })
    }
}

impl ExactForm for PsiForm {
    fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn gradient(&self, name: &str, index: usize) -> Option<Combination> {
        let d = self.geometry.x.cols().max(1);
        match name {
            "features" => self.features(index / d, index % d),
            "weights" => self.weights(index / d, index % d),
            _ => None,
        }
    }
}
