//! Enforces the `distill.*`, `center.*`, `lsoftmax.*` and `sphereface.*` rows of
//! `lossref::precision::TABLE` in both directions: the fast f32/f64 paths against the
//! certified reference (fixed seeds), in the scaled ulps that `lossref::precision`
//! defines. Each entry must be ≥ the measured maximum and at most `STALE_FACTOR` times it.

use crate::common;

use common::deterministic_runner;
use common::geometry::{problem, Angle};
use common::table::Worsts;
use lossref::fast::center::center;
use lossref::fast::distill::Distill;
use lossref::fast::psi::MultiplicativeLoss;
use lossref::fast::Real;
use lossref::matrix::Matrix;
use lossref::mp::certify::CertifiedAnswer;
use lossref::precision::scaled_ulps;
use lossref::reference::certified;
use lossref::spec::{
    Case, CenterCase, DistillCase, LossId, MultiplicativeCase, Reduction, SoftTerm,
};
use proptest::prelude::*;
use rug::Float;
use std::cell::RefCell;

const FAMILIES: [&str; 4] = ["distill.", "center.", "lsoftmax.", "sphereface."];

fn exact(a: &CertifiedAnswer, section: &str, name: &str) -> Vec<Float> {
    let t = if section == "outputs" {
        a.answer.output(name)
    } else {
        a.answer.gradient(name)
    };
    t.unwrap_or_else(|| panic!("no {name}"))
        .values()
        .iter()
        .map(|c| c.enclosure.mid())
        .collect()
}

fn conv<T: Real>(m: &Matrix<f64>) -> Vec<T> {
    m.as_slice().iter().map(|&v| T::of_f64(v)).collect()
}

fn err<T: Real>(got: T, want: &Float, scale: f64) -> f64 {
    scaled_ulps(
        got.as_f64(),
        want,
        &Float::with_val(64, scale),
        T::MANTISSA_BITS,
        T::MIN_SUBNORMAL_EXP,
    )
}

fn narrow(m: Matrix<f64>, f32: bool) -> Matrix<f64> {
    if f32 {
        m.map(|&v| f64::from(v as f32))
    } else {
        m
    }
}

fn softmax_row(z: &[f64], t: f64) -> Vec<f64> {
    let top = z.iter().copied().fold(f64::MIN, f64::max);
    let e: Vec<f64> = z.iter().map(|v| ((v - top) / t).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

/// distill: the loss in ulps of r·Σ_i (αT²·Σ_j q_t(|log q_t| + |log q_s|) + (1 − α)·CE_i) (the
/// magnitudes summed); each gradient entry in ulps of r·(αT(q_s + q_t) + (1 − α)(p + [j = y])).
fn measure_distill<T: Real>(c: &DistillCase, worst: &mut Worsts) {
    let a = certified(&Case::Distill(c.clone())).unwrap();
    let cols = c.student.cols();
    let (loss, grad) = Distill {
        temperature: c.temperature,
        alpha: c.alpha,
        soft: c.soft,
        reduction: c.reduction,
    }
    .forward_backward(
        &conv::<T>(&c.student),
        &conv::<T>(&c.teacher),
        cols,
        &c.labels,
    )
    .unwrap();
    let n = c.labels.len();
    let r = if c.reduction == Reduction::Mean {
        1.0 / n as f64
    } else {
        1.0
    };
    let (t, al) = (c.temperature, c.alpha);
    let mut loss_scale = 0.0;
    let mut grad_scale = Vec::new();
    for i in 0..n {
        let (qs, qt, p) = (
            softmax_row(c.student.row(i), t),
            softmax_row(c.teacher.row(i), t),
            softmax_row(c.student.row(i), 1.0),
        );
        let soft: f64 = qt
            .iter()
            .zip(&qs)
            .map(|(a, b)| a * (a.ln().abs() + b.ln().abs()))
            .sum();
        loss_scale += r * (al * t * t * soft + (1.0 - al) * p[c.labels[i]].ln().abs());
        for j in 0..cols {
            grad_scale.push(
                r * (al * t * (qs[j] + qt[j])
                    + (1.0 - al) * (p[j] + f64::from(u8::from(j == c.labels[i])))),
            );
        }
    }
    let want = &exact(&a, "outputs", "loss")[0];
    worst.record("distill.loss", T::NAME, err(loss, want, loss_scale), || {
        format!("{c:?}: got {:e} want {want}", loss.as_f64())
    });
    for (k, ((g, w), s)) in grad
        .iter()
        .zip(exact(&a, "gradients", "student_logits"))
        .zip(grad_scale)
        .enumerate()
    {
        worst.record("distill.grad", T::NAME, err(*g, &w, s), || {
            format!("{c:?} [{k}]: got {:e} want {w}", g.as_f64())
        });
    }
}

/// center: the loss and ∂L/∂features in ulps of their values; ∂L/∂centers in ulps of
/// r·Σ|x_i − c_j|; centers_next in ulps of |c_j| + α·Σ|x_i − c_j|/(1 + n_j).
fn measure_center<T: Real>(c: &CenterCase, worst: &mut Worsts) {
    let a = certified(&Case::Center(c.clone())).unwrap();
    let d = c.features.cols();
    let out = center(
        &conv::<T>(&c.features),
        &conv::<T>(&c.centers),
        &c.labels,
        d,
        c.alpha,
        c.reduction,
    )
    .unwrap();
    let n = c.labels.len();
    let r = if c.reduction == Reduction::Mean {
        1.0 / n as f64
    } else {
        1.0
    };
    let want = &exact(&a, "outputs", "loss")[0];
    let abs = |v: &Float| v.to_f64().abs();
    worst.record(
        "center.loss",
        T::NAME,
        err(out.loss, want, abs(want)),
        || format!("{c:?}: got {:e} want {want}", out.loss.as_f64()),
    );
    for (g, w) in out.features.iter().zip(exact(&a, "gradients", "features")) {
        worst.record("center.grad", T::NAME, err(*g, &w, abs(&w)), || {
            format!("{c:?}: features got {:e} want {w}", g.as_f64())
        });
    }
    let spread = |j: usize, k: usize| {
        (0..n)
            .filter(|&i| c.labels[i] == j)
            .map(|i| (c.features.get(i, k) - c.centers.get(j, k)).abs())
            .sum::<f64>()
    };
    let members = |j: usize| (0..n).filter(|&i| c.labels[i] == j).count() as f64;
    for (e, (g, w)) in out
        .centers
        .iter()
        .zip(exact(&a, "gradients", "centers"))
        .enumerate()
    {
        let (j, k) = (e / d, e % d);
        worst.record(
            "center.grad",
            T::NAME,
            err(*g, &w, r * spread(j, k)),
            || format!("{c:?}: centers[{e}] got {:e} want {w}", g.as_f64()),
        );
    }
    for (e, (g, w)) in out
        .centers_next
        .iter()
        .zip(exact(&a, "outputs", "centers_next"))
        .enumerate()
    {
        let (j, k) = (e / d, e % d);
        let scale = c.centers.get(j, k).abs() + c.alpha * spread(j, k) / (1.0 + members(j));
        worst.record("center.centers_next", T::NAME, err(*g, &w, scale), || {
            format!("{c:?}: centers_next[{e}] got {:e} want {w}", g.as_f64())
        });
    }
}

/// lsoftmax / sphereface. Row i's logits carry absolute errors of a few ulps of
/// Φ_i = max(max_j |f_ij|, ν_y‖x_i‖·(λ + m²)/(1 + λ)): the target logit moves with cos θ at
/// the slope ν‖x‖·h′, and |dψ/dcos θ| ≤ m² (Markov's inequality for T_m′). So the loss is
/// measured in ulps of max(|L|, r·Σ_i Φ_i), and each gradient entry in ulps of what its row
/// sums, Σ_j |G_ij|·|∂f_ij/∂v| (the target's slope counted as (λ + m²)/(1 + λ) + 1), times
/// max(1, Φ_i), because every G_ij of row i is a softmax of those logits.
fn measure_psi<T: Real>(c: &MultiplicativeCase, worst: &mut Worsts) {
    let a = certified(&Case::Multiplicative(c.clone())).unwrap();
    let d = c.features.cols();
    let fast = MultiplicativeLoss::of_case(c)
        .forward_backward(
            &conv::<T>(&c.features),
            &conv::<T>(&c.weights),
            &c.labels,
            d,
            1,
        )
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let name = if c.normalized_weights() {
        "sphereface"
    } else {
        "lsoftmax"
    };
    let (n, classes) = (c.labels.len(), c.weights.rows());
    let r = if c.reduction == Reduction::Mean {
        1.0 / n as f64
    } else {
        1.0
    };
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let m = f64::from(c.margin);
    let slope_bound = (c.lambda + m * m) / (1.0 + c.lambda);
    let mut row_scale = vec![0.0; n];
    let mut col_scale = vec![0.0; classes];
    let mut loss_terms = 0.0;
    for (i, row_sum) in row_scale.iter_mut().enumerate() {
        let x = c.features.row(i);
        let y = c.labels[i];
        let nu = |j: usize| {
            if c.normalized_weights() {
                1.0
            } else {
                norm(c.weights.row(j))
            }
        };
        let f: Vec<f64> = (0..classes)
            .map(|j| {
                let w = c.weights.row(j);
                let cos = x.iter().zip(w).map(|(p, q)| p * q).sum::<f64>()
                    / (norm(x) * norm(w)).max(f64::MIN_POSITIVE);
                let h = if j == y {
                    let theta = cos.clamp(-1.0, 1.0).acos();
                    let k = (theta * m / std::f64::consts::PI).floor().min(m - 1.0);
                    let psi = if k % 2.0 == 1.0 {
                        -(m * theta).cos()
                    } else {
                        (m * theta).cos()
                    } - 2.0 * k;
                    (c.lambda * cos + psi) / (1.0 + c.lambda)
                } else {
                    cos
                };
                nu(j) * norm(x) * h
            })
            .collect();
        let phi = f
            .iter()
            .fold(nu(y) * norm(x) * slope_bound, |a, v| a.max(v.abs()));
        loss_terms += r * phi;
        let p = softmax_row(&f, 1.0);
        let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
        for j in 0..classes {
            let w = c.weights.row(j);
            let (gij, slope) = if j == y {
                (r * rest, 1.0 + slope_bound)
            } else {
                (r * p[j], 1.0)
            };
            let g = gij * slope * phi.max(1.0);
            *row_sum += g * nu(j);
            col_scale[j] += g * if c.normalized_weights() {
                norm(x) / norm(w).max(f64::MIN_POSITIVE)
            } else {
                norm(x)
            };
        }
    }
    let want = &exact(&a, "outputs", "loss")[0];
    let loss_scale = want.to_f64().abs().max(loss_terms);
    worst.record(
        format!("{name}.loss"),
        T::NAME,
        err(fast.loss, want, loss_scale),
        || format!("{c:?}: got {:e} want {want}", fast.loss.as_f64()),
    );
    for (grad, got, scales) in [
        ("features", &fast.features, &row_scale),
        ("weights", &fast.weights, &col_scale),
    ] {
        for (e, (g, w)) in got.iter().zip(exact(&a, "gradients", grad)).enumerate() {
            worst.record(
                format!("{name}.grad"),
                T::NAME,
                err(*g, &w, scales[e / d]),
                || format!("{c:?}: {grad}[{e}] got {:e} want {w}", g.as_f64()),
            );
        }
    }
}

fn logits(n: usize, c: usize, lo: f64, hi: f64) -> impl Strategy<Value = Matrix<f64>> {
    proptest::collection::vec(lo..hi, n * c).prop_map(move |v| Matrix::from_vec(n, c, v).unwrap())
}

#[test]
fn seed_losses_precision_table_holds_and_is_tight() {
    let worst = RefCell::new(Worsts::default());
    for f32 in [false, true] {
        // distill: moderate logits, teacher close to the student, several T and α.
        let strategy = (1usize..=3, 2usize..=8).prop_flat_map(move |(n, c)| {
            (
                logits(n, c, -8.0, 8.0),
                logits(n, c, -8.0, 8.0),
                proptest::collection::vec(0..c, n),
                prop_oneof![Just(1.0), Just(4.0), Just(0.5), Just(20.0)],
                prop_oneof![Just(0.9), Just(0.5), Just(1.0), Just(0.0)],
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        });
        deterministic_runner(common::cases(40))
            .run(&strategy, |(s, t, labels, temp, alpha, kl, sum, close)| {
                let s = narrow(s, f32);
                let t = if close {
                    narrow(s.map(|v| v + 0.01 * v.sin()), f32)
                } else {
                    narrow(t, f32)
                };
                let c = DistillCase {
                    temperature: temp,
                    alpha,
                    soft: if kl { SoftTerm::Kl } else { SoftTerm::Ce },
                    reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                    student: s,
                    teacher: t,
                    labels,
                };
                if f32 {
                    measure_distill::<f32>(&c, &mut worst.borrow_mut())
                } else {
                    measure_distill::<f64>(&c, &mut worst.borrow_mut())
                }
                Ok(())
            })
            .unwrap();
        // center
        let strategy = (1usize..=6, 2usize..=4, 1usize..=5).prop_flat_map(move |(n, c, d)| {
            (
                logits(n, d, -10.0, 10.0),
                logits(c, d, -10.0, 10.0),
                proptest::collection::vec(0..c, n),
                0.0f64..=1.0,
                any::<bool>(),
            )
        });
        deterministic_runner(common::cases(40))
            .run(&strategy, |(x, centers, labels, alpha, sum)| {
                let c = CenterCase {
                    alpha: if f32 { f64::from(alpha as f32) } else { alpha },
                    reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                    features: narrow(x, f32),
                    centers: narrow(centers, f32),
                    labels,
                };
                if f32 {
                    measure_center::<f32>(&c, &mut worst.borrow_mut())
                } else {
                    measure_center::<f64>(&c, &mut worst.borrow_mut())
                }
                Ok(())
            })
            .unwrap();
        // lsoftmax / sphereface, m = 1..6, λ ∈ {0, 0.5, 5}, in every target-angle regime
        for angle in Angle::ALL {
            let strategy = (
                problem(angle, 0.5, f32),
                1u32..=6,
                prop_oneof![Just(0.0), Just(0.5), Just(5.0)],
                any::<bool>(),
                any::<bool>(),
            );
            deterministic_runner(common::cases(24))
                .run(&strategy, |(p, m, lambda, sphere, sum)| {
                    let c = MultiplicativeCase {
                        loss: if sphere {
                            LossId::SphereFace
                        } else {
                            LossId::LSoftmax
                        },
                        margin: m,
                        lambda,
                        reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                        features: p.features,
                        weights: p.weights,
                        labels: p.labels,
                    };
                    if f32 {
                        measure_psi::<f32>(&c, &mut worst.borrow_mut())
                    } else {
                        measure_psi::<f64>(&c, &mut worst.borrow_mut())
                    }
                    Ok(())
                })
                .unwrap();
        }
    }
    let worst = worst.into_inner();
    worst.enforce(
        |f| FAMILIES.iter().any(|family| f.starts_with(family)),
        Vec::new(),
    );
}
