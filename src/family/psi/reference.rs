//! Reference `lsoftmax` (L-Softmax, Liu et al. 2016) and `sphereface` (A-Softmax, Liu et
//! al. 2017), SPEC §1, on the certified interval core.
//!
//! With c_ij = cos θ_ij and ν_j = ‖w_j‖ (`lsoftmax`) or 1 (`sphereface`), the logits are
//! f_ij = ν_j‖x_i‖c_ij for j ≠ y_i and f_iy = ν_y‖x_i‖·h(c_iy), where
//! h(c) = (λc + ψ_m(θ))/(1 + λ) and, for θ ∈ [kπ/m, (k+1)π/m],
//! ψ_m(θ) = (−1)^k cos(mθ) − 2k (SPEC §1). cos(mθ) = T_m(cos θ) is the Chebyshev
//! polynomial, evaluated by SPEC's expansion Σ_n (−1)^n C(m, 2n) c^{m−2n}(1 − c²)^n, and
//! dψ/dc = (−1)^k T_m′(c) = (−1)^k m U_{m−1}(c) (U by its recurrence): no acos is needed
//! for either, and both are continuous across the segments (ψ is C¹, SPEC §2 T6).
//!
//! The segment k is decided from an enclosure of θ·m/π. Where it straddles a boundary
//! kπ/m, the value is the hull of both segments' formulas; since ψ is C¹ they agree at
//! the boundary, so the hull is as narrow as the enclosure of c allows, and an exact
//! boundary (cos θ = cos(kπ/m), possible for algebraic values such as 0 or 1/√2) still
//! certifies.
//!
//! Gradients, with G = ∂L/∂f (the softmax module) and P the exact direction numerators of
//! [`crate::reference::geometry::direction_numerator`], (ŵ − c x̂)_k = P^x_k/(‖x‖²‖w‖) and
//! (x̂ − c ŵ)_k = P^w_k/(‖w‖²‖x‖):
//!
//! * off the target: ∂f/∂x = ν ŵ; ∂f/∂w = x (`lsoftmax`) or P^w/‖w‖³ (`sphereface`);
//! * at the target: ∂f/∂x = ν(h x̂ + h′(ŵ − c x̂)); ∂f/∂w = ‖x‖h ŵ + h′P^w/‖w‖² (`lsoftmax`)
//!   or h′P^w/‖w‖³ (`sphereface`).

use crate::answer::{Answer, Tensor};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::geometry::{cosine, direction_numerator, dot, row_norms, RowNorm};
use crate::reference::softmax::{cross_entropies, points, reduce, softmax_ce_grad};
use crate::spec::MultiplicativeCase;
use rug::Float;

/// C(m, k) as an exact interval.
fn binomial(m: u32, k: u32, prec: u32) -> Interval {
    let mut b = Float::with_val(prec.max(64) + 2 * m, 1);
    for i in 0..k {
        b *= m - i;
        b /= i + 1;
    }
    Interval::enclosing(prec.max(64) + 2 * m, &b)
}

/// T_m(c) = cos(mθ) for c = cos θ, by SPEC §1's expansion
/// Σ_{n=0}^{⌊m/2⌋} (−1)^n C(m, 2n) c^{m−2n} (1 − c²)^n.
pub fn chebyshev(m: u32, c: &Interval) -> Interval {
    let prec = c.prec();
    let sin2 = Interval::from_i64(prec, 1).sub(&c.powi(2));
    let terms: Vec<Interval> = (0..=m / 2)
        .map(|n| {
            let t = binomial(m, 2 * n, prec)
                .mul(&c.powi(m - 2 * n))
                .mul(&sin2.powi(n));
            if n % 2 == 1 {
                t.neg()
            } else {
                t
            }
        })
        .collect();
    Interval::sum(prec, &terms)
}

/// T_m′(c) = m·U_{m−1}(c), with U_0 = 1, U_1 = 2c, U_{n+1} = 2c·U_n − U_{n−1}.
pub fn chebyshev_slope(m: u32, c: &Interval) -> Interval {
    let prec = c.prec();
    let two_c = c.mul(&Interval::from_i64(prec, 2));
    let (mut previous, mut current) = (Interval::from_i64(prec, 0), Interval::from_i64(prec, 1));
    for _ in 1..m {
        let next = two_c.mul(&current).sub(&previous);
        previous = current;
        current = next;
    }
    current.mul(&Interval::from_i64(prec, i64::from(m)))
}

/// ψ_m and dψ/dcos θ at cos θ = `c` (SPEC §1): the hull over every segment k that the
/// enclosure of θ·m/π allows.
pub fn psi(m: u32, c: &Interval) -> (Interval, Interval) {
    let prec = c.prec();
    let t = c
        .acos()
        .mul(&Interval::from_i64(prec, i64::from(m)))
        .div(&Interval::pi(prec));
    let last = i64::from(m) - 1;
    let floor = |x: &Float| x.to_f64_round(rug::float::Round::Down).floor() as i64;
    let k_lo = floor(t.lo()).clamp(0, last);
    let k_hi = floor(t.hi()).clamp(0, last);
    let tm = chebyshev(m, c);
    let slope = chebyshev_slope(m, c);
    let segment = |k: i64| {
        let sign = |v: &Interval| if k % 2 == 1 { v.neg() } else { v.clone() };
        (
            sign(&tm).sub(&Interval::from_i64(prec, 2 * k)),
            sign(&slope),
        )
    };
    let mut out = segment(k_lo);
    for k in k_lo + 1..=k_hi {
        let (v, d) = segment(k);
        out = (out.0.hull(&v), out.1.hull(&d));
    }
    out
}

/// A `lsoftmax` or `sphereface` case at `prec` bits: output `loss`; gradients `features`
/// and `weights`.
pub fn evaluate(case: &MultiplicativeCase, prec: u32) -> Answer<Interval> {
    let x = points(&case.features, prec);
    let w = points(&case.weights, prec);
    let (n, classes, d) = (x.rows(), w.rows(), x.cols());
    let sphere = case.normalized_weights();
    let xs = row_norms(&x, prec);
    let ws = row_norms(&w, prec);
    let lambda = Interval::from_f64(prec, case.lambda);
    let one = Interval::from_i64(prec, 1);
    let blend = one.add(&lambda);
    // Per pair: the dot product x_i·w_j and cos θ_ij (only where a norm is defined).
    let pair = |i: usize, j: usize| {
        let (dot, cos) = cosine(x.row(i), w.row(j), &xs[i], &ws[j], prec);
        (dot, cos.value)
    };
    // lsoftmax needs cos θ at the targets only (a weight row of norm 0 is valid elsewhere).
    let pairs: Matrix<Option<(Interval, Interval)>> = Matrix::from_fn(n, classes, |i, j| {
        (sphere || case.labels[i] == j).then(|| pair(i, j))
    });
    // h(c) and h′(c) at each row's target.
    let targets: Vec<(Interval, Interval)> = (0..n)
        .map(|i| {
            let c = &pairs
                .get(i, case.labels[i])
                .as_ref()
                .expect("target pair")
                .1;
            let (psi, dpsi) = psi(case.margin, c);
            (
                lambda.mul(c).add(&psi).div(&blend),
                lambda.add(&dpsi).div(&blend),
            )
        })
        .collect();
    let nu = |j: usize| {
        if sphere {
            one.clone()
        } else {
            ws[j].norm.clone()
        }
    };
    let logits = Matrix::from_fn(n, classes, |i, j| {
        if j == case.labels[i] {
            nu(j).mul(&xs[i].norm).mul(&targets[i].0)
        } else if sphere {
            xs[i].norm.mul(&pairs.get(i, j).as_ref().expect("pair").1)
        } else {
            // w_j·x_i, also for a zero row
            dot(x.row(i), w.row(j), prec)
        }
    });
    let loss = reduce(&cross_entropies(&logits, &case.labels), case.reduction);
    let g = softmax_ce_grad(&logits, &case.labels, case.reduction);
    let zero = Interval::from_i64(prec, 0);
    let unit = |v: &Interval, r: &RowNorm| v.div(&r.norm);
    let grad_features = Matrix::from_fn(n, d, |i, k| {
        let mut acc = zero.clone();
        for (j, wj) in ws.iter().enumerate() {
            let term = if j == case.labels[i] {
                let (h, dh) = &targets[i];
                let (dot, _) = pairs.get(i, j).as_ref().expect("target pair");
                let p = direction_numerator(x.row(i), w.row(j), &xs[i].squared, dot, k, prec);
                let along = h.mul(&unit(x.get(i, k), &xs[i]));
                let across = dh.mul(&p).div(&xs[i].squared.mul(&wj.norm));
                nu(j).mul(&along.add(&across))
            } else if sphere {
                unit(w.get(j, k), wj)
            } else {
                w.get(j, k).clone()
            };
            acc = acc.add(&g.get(i, j).mul(&term));
        }
        acc
    });
    let grad_weights = Matrix::from_fn(classes, d, |j, k| {
        let mut acc = zero.clone();
        for i in 0..n {
            let target = j == case.labels[i];
            let term = if !sphere && !target {
                x.get(i, k).clone()
            } else {
                let (dot, _) = pairs.get(i, j).as_ref().expect("pair");
                let p = direction_numerator(w.row(j), x.row(i), &ws[j].squared, dot, k, prec);
                let slope = if target {
                    targets[i].1.clone()
                } else {
                    one.clone()
                };
                if sphere {
                    slope.mul(&p).div(&ws[j].cubed)
                } else {
                    let along = xs[i]
                        .norm
                        .mul(&targets[i].0)
                        .mul(&unit(w.get(j, k), &ws[j]));
                    along.add(&slope.mul(&p).div(&ws[j].squared))
                }
            };
            acc = acc.add(&g.get(i, j).mul(&term));
        }
        acc
    });
    Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients: vec![
            ("features", Tensor::Matrix(grad_features)),
            ("weights", Tensor::Matrix(grad_weights)),
        ],
    }
}
