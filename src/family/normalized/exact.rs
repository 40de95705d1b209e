//! The exact form of the normalized-margin gradients (`normface` … `combined`, SPEC §1)
//! for the zero test (proofs/exact_zeros.md, steps 5 and 6).
//!
//! With z_ij = s·c_ij (s·g(c_iy) at the target), σ_ij = dg/dcos θ at the target and 1
//! elsewhere, and the reference's chain rule (src/reference/normalized.rs):
//!
//! * ∂L/∂x_ik = (s·r/‖x_i‖³)·Σ_l (p_il − δ_{l,y_i})·σ_il·P^x_ilk/‖w_l‖;
//! * ∂L/∂w_jk = (s·r/‖w_j‖³)·Σ_i (p_ij − δ_{j,y_i})·σ_ij·P^w_ijk/‖x_i‖;
//! * ∂L/∂s = r·Σ_i Σ_l (p_il − δ_{l,y_i})·c_il (normface);
//!
//! with P^x_ilk = ‖x_i‖²w_lk − (x_i·w_l)x_ik, P^w_ijk = ‖w_j‖²x_ik − (x_i·w_j)w_jk and r = 1/N
//! or 1. The factors in front are dropped (a product with a zero bracket is zero).
//!
//! The target logit and slope, exactly where they are algebraic:
//!
//! | rule | target logit | slope σ |
//! |---|---|---|
//! | normface, cosface, arcface m = 0 | s·c, s·(c − m) | 1 |
//! | arcface, margin branch (m ≠ 0) | transcendental: `Target` | σ(c), or 1 detached |
//! | arcface `thmm` fallback (m ≠ 0) | s(c − m·sin m), transcendental: `Target` | 1 |
//! | arcface `easy` fallback | s·c | 1 |
//! | combined, m2 = 0, integer m1 | s·(T_{|m1|}(c) − m3) | |m1|·U_{|m1|−1}(c) |
//! | combined, m1 = 0 | s(cos m2 − m3), one constant | 0 |
//! | combined, otherwise | `Target` | σ(c) |
//!
//! The `thmm` switch compares c with cos(π − m), which is transcendental for m ≠ 0 while c
//! is algebraic: they never tie, and the enclosures at the working precision decide; while
//! they cannot, the form is not built (the caller retries at a higher precision).

use crate::exact::geometry::{chebyshev, Geometry};
use crate::exact::lindemann::{Coefficient, Combination, Logit, Row, RowTerm};
use crate::exact::surd::Surd;
use crate::exact::ExactForm;
use crate::mp::interval::Interval;
use crate::spec::{Boundary, Margin, MarginGrad, NormalizedCase};
use rug::Rational;
use std::cmp::Ordering;

/// The largest |m1| for which `combined`'s target is expanded as a Chebyshev polynomial.
const MAX_CHEBYSHEV: f64 = 64.0;

/// The slope factor σ at one row's target.
#[derive(Clone, Debug)]
enum Slope {
    /// An exact number.
    Exact(Surd),
    /// The transcendental dg/dcos θ at cos θ = c, a symbol.
    Symbol(Surd),
}

impl Slope {
    fn times(&self, beta: Surd) -> Coefficient {
        match self {
            Slope::Exact(s) => Coefficient::plain(s.mul(&beta)),
            Slope::Symbol(c) => Coefficient::slope(c.clone(), beta),
        }
    }
}

/// The target's logit g (before the scale) and slope, or `None` while the `thmm` switch is
/// undecided at `prec` bits.
fn target(margin: &Margin, c: &Surd, prec: u32) -> Option<(Logit, Slope)> {
    let one = || Slope::Exact(Surd::rational(Rational::from(1)));
    let exact = |x: f64| Surd::from_f64(x).unwrap_or_default();
    let algebraic = |g: Surd, slope: Slope| Some((Logit::Algebraic(g), slope));
    match *margin {
        Margin::None => algebraic(c.clone(), one()),
        Margin::Additive { m } => algebraic(c.sub(&exact(m)), one()),
        Margin::Angular { m: 0.0, .. } => algebraic(c.clone(), one()),
        Margin::Angular { m, boundary, grad } => {
            let margin_branch = || {
                let slope = match grad {
                    MarginGrad::Full => Slope::Symbol(c.clone()),
                    MarginGrad::Detached => one(),
                };
                Some((
                    Logit::Target {
                        rule: 0,
                        cos: c.clone(),
                    },
                    slope,
                ))
            };
            match boundary {
                Boundary::None => margin_branch(),
                Boundary::Thmm => {
                    let m_iv = Interval::from_f64(prec, m);
                    let threshold = Interval::pi(prec).sub(&m_iv).cos();
                    match c.enclose(prec).compare(&threshold)? {
                        Ordering::Greater => margin_branch(),
                        _ => Some((
                            Logit::Target {
                                rule: 1,
                                cos: c.clone(),
                            },
                            one(),
                        )),
                    }
                }
                Boundary::Easy => {
                    if c.enclose(prec).sign()? == Ordering::Greater {
                        margin_branch()
                    } else {
                        algebraic(c.clone(), one())
                    }
                }
            }
        }
        Margin::Combined { m1, m2, m3 } => {
            if m1 == 0.0 {
                let logit = if m2 == 0.0 {
                    Logit::Algebraic(Surd::rational(Rational::from(1)).sub(&exact(m3)))
                } else {
                    // cos m2 − m3, the same constant in every row
                    Logit::Target {
                        rule: 2,
                        cos: Surd::zero(),
                    }
                };
                return Some((logit, Slope::Exact(Surd::zero())));
            }
            if m2 == 0.0 && m1.fract() == 0.0 && m1.abs() <= MAX_CHEBYSHEV {
                let n = m1.abs() as u32;
                let (t, u) = chebyshev(n, c);
                let slope = u.scale(&Rational::from(n));
                return algebraic(t.sub(&exact(m3)), Slope::Exact(slope));
            }
            Some((
                Logit::Target {
                    rule: 3,
                    cos: c.clone(),
                },
                Slope::Symbol(c.clone()),
            ))
        }
    }
}

/// The exact form of one normalized-margin case.
pub struct NormalizedForm {
    geometry: Geometry,
    labels: Vec<usize>,
    scale: Surd,
    /// cos θ_ij
    cos: Vec<Vec<Surd>>,
    /// σ at each row's target
    slopes: Vec<Slope>,
    rows: Vec<Row>,
    normface: bool,
}

impl NormalizedForm {
    /// The form of `case`, or `None` when a norm is 0 or the `thmm` switch is undecided
    /// at `prec` bits.
    pub fn new(case: &NormalizedCase, prec: u32) -> Option<NormalizedForm> {
        let geometry = Geometry::new(&case.features, &case.weights);
        let (n, classes) = (case.features.rows(), case.weights.rows());
        let cos: Vec<Vec<Surd>> = (0..n)
            .map(|i| (0..classes).map(|j| geometry.cos(i, j)).collect())
            .collect::<Option<_>>()?;
        let scale = Surd::from_f64(case.scale)?;
        let mut slopes = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        for (i, &y) in case.labels.iter().enumerate() {
            let (g, slope) = target(&case.margin_of(i), &cos[i][y], prec)?;
            slopes.push(slope);
            let logits = (0..classes)
                .map(|j| match (j == y, &g) {
                    (false, _) => Logit::Algebraic(cos[i][j].mul(&scale)),
                    (true, Logit::Algebraic(g)) => Logit::Algebraic(g.mul(&scale)),
                    (true, target) => target.clone(),
                })
                .collect();
            rows.push(Row::new(logits));
        }
        Some(NormalizedForm {
            geometry,
            labels: case.labels.clone(),
            scale,
            cos,
            slopes,
            rows,
            normface: case.learns_scale(),
        })
    }

    /// σ_ij·β: the slope at the target, 1 elsewhere.
    fn slope_times(&self, i: usize, j: usize, beta: Surd) -> Coefficient {
        if j == self.labels[i] {
            self.slopes[i].times(beta)
        } else {
            Coefficient::plain(beta)
        }
    }

    fn features(&self, i: usize, k: usize) -> Option<Combination> {
        let g = &self.geometry;
        let a = |l: usize| -> Option<Coefficient> {
            let p = Surd::rational(g.across_x(i, l, k));
            Some(self.slope_times(i, l, p.mul(g.w_inv[l].as_ref()?)))
        };
        let at = (0..self.rows[i].len())
            .map(|l| Some((l, a(l)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Combination::one_row(i, self.labels[i], at))
    }

    fn weights(&self, j: usize, k: usize) -> Option<Combination> {
        let g = &self.geometry;
        let mut terms = Vec::new();
        for (i, &y) in self.labels.iter().enumerate() {
            let p = Surd::rational(g.across_w(i, j, k));
            if p.is_zero() {
                continue;
            }
            let a = self.slope_times(i, j, p.mul(g.x_inv[i].as_ref()?));
            terms.push(RowTerm::one_class(i, j, a, y == j));
        }
        Some(Combination { terms })
    }

    fn scale_gradient(&self) -> Option<Combination> {
        let terms = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, &y)| RowTerm {
                row: i,
                base: Coefficient::plain(self.cos[i][y].neg()),
                at: self.cos[i]
                    .iter()
                    .enumerate()
                    .map(|(l, c)| (l, Coefficient::plain(c.clone())))
                    .collect(),
            })
            .collect();
        Some(Combination { terms })
    }
}

impl ExactForm for NormalizedForm {
    fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn gradient(&self, name: &str, index: usize) -> Option<Combination> {
        if self.scale.is_zero() && name != "scale" {
            // every logit is 0 and the gradient carries the factor s
            return Some(Combination::default());
        }
        let d = self.geometry.x.cols();
        match name {
            "features" => self.features(index / d.max(1), index % d.max(1)),
            "weights" => self.weights(index / d.max(1), index % d.max(1)),
            "scale" if self.normface => self.scale_gradient(),
            _ => None,
        }
    }
}
