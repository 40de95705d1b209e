//! The `lsoftmax` and `sphereface` references against independent checks: SPEC §2 T6 (the
//! Chebyshev expansion is cos(mθ); ψ_m is continuous and decreasing with range [1 − 2m, 1];
//! ψ_1 = cos), numerical differentiation of a naive formula (acos, cos(mθ), the segment
//! from θ) to ≥ 40 digits for m = 1..6 and several λ, also next to the segment boundaries
//! θ = kπ/m, and T7 (m = 1 is softmax_ce on W·x, resp. on ‖x‖·cos θ).

use crate::common;

use common::geometry::{problem, Angle};
use common::gradient::{check_gradient, points};
use lossref::family::psi::reference as psi_ref;
use lossref::family::psi::reference::{chebyshev, psi};
use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::reference::certified;
use lossref::schedule::LambdaSchedule;
use lossref::spec::{Case, LossId, MultiplicativeCase, Reduction, SoftmaxCeCase};
use proptest::prelude::*;
use std::f64::consts::PI;

#[test]
fn t6_the_chebyshev_expansion_is_cos_m_theta() {
    let prec = 256;
    for m in 1..=12u32 {
        for step in 0..=200 {
            let theta = Interval::from_f64(prec, PI * f64::from(step) / 200.0);
            // cos of the exact point θ, rounded outward (tight even where cos is extremal)
            let exact = rug::Float::with_val(prec, PI * f64::from(step) / 200.0);
            let round = |r| rug::Float::with_val_round(prec, exact.cos_ref(), r).0;
            let c = Interval::new(round(rug::float::Round::Down), round(rug::float::Round::Up))
                .unwrap();
            let want = theta.mul(&Interval::from_i64(prec, i64::from(m))).cos();
            let got = chebyshev(m, &c);
            // Both enclose cos(mθ) for the same exact θ, so they must overlap; and the
            // expansion must be tight.
            assert!(
                got.overlaps(&want),
                "m = {m}, θ = {step}π/200: {got:?} vs cos(mθ) = {want:?}"
            );
            let width = got.width().to_f64();
            assert!(
                width < 1e-60,
                "m = {m}, θ = {step}π/200: T_m(cos θ) is {width:e} wide"
            );
        }
    }
}

#[test]
fn t6_psi_is_continuous_decreasing_from_1_to_1_minus_2m_and_psi_1_is_cos() {
    let prec = 256;
    for m in 1..=8u32 {
        let mut previous: Option<f64> = None;
        for step in 0..=2000 {
            let theta = PI * f64::from(step) / 2000.0;
            let c = Interval::from_f64(prec, theta.cos());
            let (v, _) = psi(m, &c);
            let v = v.mid().to_f64();
            if let Some(p) = previous {
                assert!(
                    v < p,
                    "m = {m}: ψ is not decreasing at θ = {theta}: {p} then {v}"
                );
                // continuity: a step of π/2000 moves ψ by at most m·π/2000 (|dψ/dθ| ≤ m)
                assert!(
                    p - v <= f64::from(m) * PI / 2000.0 * 1.0001,
                    "m = {m}: jump at θ = {theta}"
                );
            }
            previous = Some(v);
        }
        let ends = [
            psi(m, &Interval::from_f64(prec, 1.0)).0,
            psi(m, &Interval::from_f64(prec, -1.0)).0,
        ];
        assert_eq!(ends[0].mid().to_f64(), 1.0, "ψ_{m}(0)");
        assert_eq!(ends[1].mid().to_f64(), 1.0 - 2.0 * f64::from(m), "ψ_{m}(π)");
    }
    for k in 0..=100 {
        let c = Interval::from_f64(prec, -1.0 + f64::from(k) / 50.0);
        let (v, d) = psi(1, &c);
        assert!(v.overlaps(&c), "ψ_1 = cos θ");
        assert_eq!(d.mid().to_f64(), 1.0);
    }
}

/// The target term h from the definitions: θ = acos(c), k = ⌊θm/π⌋, ψ = (−1)^k cos(mθ) − 2k.
fn naive_h(m: u32, lambda: &Interval, c: &Interval) -> Interval {
    let p = c.prec();
    let theta = c.acos();
    let k = (theta.mid().to_f64() * f64::from(m) / PI)
        .floor()
        .min(f64::from(m - 1)) as i64;
    let cos_m = theta.mul(&Interval::from_i64(p, i64::from(m))).cos();
    let psi = if k % 2 == 1 { cos_m.neg() } else { cos_m }.sub(&Interval::from_i64(p, 2 * k));
    lambda
        .mul(c)
        .add(&psi)
        .div(&Interval::from_i64(p, 1).add(lambda))
}

fn naive_loss(case: &MultiplicativeCase, x: &Matrix<Interval>, w: &Matrix<Interval>) -> Interval {
    let p = x.get(0, 0).prec();
    let norm =
        |v: &[Interval]| Interval::sum(p, &v.iter().map(|a| a.mul(a)).collect::<Vec<_>>()).sqrt();
    let lambda = Interval::from_f64(p, case.lambda);
    let mut total = Interval::from_i64(p, 0);
    for i in 0..x.rows() {
        let nx = norm(x.row(i));
        let logits: Vec<Interval> = (0..w.rows())
            .map(|j| {
                let nw = norm(w.row(j));
                let dot = Interval::sum(
                    p,
                    &x.row(i)
                        .iter()
                        .zip(w.row(j))
                        .map(|(a, b)| a.mul(b))
                        .collect::<Vec<_>>(),
                );
                let c = dot.div(&nx.mul(&nw));
                let nu = if case.loss == LossId::SphereFace {
                    Interval::from_i64(p, 1)
                } else {
                    nw
                };
                let h = if j == case.labels[i] {
                    naive_h(case.margin, &lambda, &c)
                } else {
                    c
                };
                nu.mul(&nx).mul(&h)
            })
            .collect();
        let lse = Interval::sum(p, &logits.iter().map(Interval::exp).collect::<Vec<_>>()).ln();
        total = total.add(&lse.sub(&logits[case.labels[i]]));
    }
    match case.reduction {
        Reduction::Sum => total,
        Reduction::Mean => total.div_i64(x.rows() as i64),
    }
}

fn check_numdiff(case: &MultiplicativeCase) {
    let answer = psi_ref::evaluate(case, 768);
    let loss = &answer.output("loss").unwrap().values()[0];
    for (name, at) in [("features", &case.features), ("weights", &case.weights)] {
        let what = format!("{case:?} {name}");
        let analytic = answer.gradient(name).unwrap().values();
        check_gradient(&what, loss, analytic, at, |v, p| {
            if name == "features" {
                naive_loss(case, v, &points(&case.weights, p))
            } else {
                naive_loss(case, &points(&case.features, p), v)
            }
        });
    }
}

/// Features placed at θ within 10^−e of a segment boundary kπ/m of their target (or anywhere).
fn cases(loss: LossId) -> impl Strategy<Value = MultiplicativeCase> {
    (
        1u32..=6,
        prop_oneof![Just(0.0), Just(0.5), Just(5.0)],
        any::<bool>(),
        any::<bool>(),
        1u32..=12,
        any::<u64>(),
    )
        .prop_flat_map(move |(m, lambda, near, sum, e, seed)| {
            let angle = if near {
                Angle::Moderate
            } else {
                Angle::NearZeroCos
            };
            problem(angle, 0.5, false).prop_map(move |p| {
                let mut features = p.features.clone();
                if near && m > 1 {
                    // Rotate each feature onto the boundary kπ/m ± 10^−e of its target, in the
                    // plane of the target weight and the feature.
                    for i in 0..features.rows() {
                        let k = 1 + (seed as u32 + i as u32) % (m - 1);
                        let sign = if (seed >> i) & 1 == 0 { 1.0 } else { -1.0 };
                        let theta =
                            PI * f64::from(k) / f64::from(m) + sign * 10f64.powi(-(e as i32));
                        let w = p.weights.row(p.labels[i]);
                        let x = p.features.row(i);
                        let nw = w.iter().map(|a| a * a).sum::<f64>().sqrt();
                        let wh: Vec<f64> = w.iter().map(|a| a / nw).collect();
                        let along: f64 = x.iter().zip(&wh).map(|(a, b)| a * b).sum();
                        let u: Vec<f64> = x.iter().zip(&wh).map(|(a, b)| a - along * b).collect();
                        let nu = u.iter().map(|a| a * a).sum::<f64>().sqrt();
                        if nu > 1e-6 {
                            for (kk, v) in features.row(i).to_vec().iter().enumerate() {
                                let _ = v;
                                *features.get_mut(i, kk) =
                                    1.5 * (theta.cos() * wh[kk] + theta.sin() * u[kk] / nu);
                            }
                        }
                    }
                }
                MultiplicativeCase {
                    loss,
                    margin: m,
                    lambda,
                    reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                    features,
                    weights: p.weights.clone(),
                    labels: p.labels.clone(),
                }
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(24), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lsoftmax_gradients_match_numerical_differentiation(c in cases(LossId::LSoftmax)) {
        check_numdiff(&c);
    }

    #[test]
    fn sphereface_gradients_match_numerical_differentiation(c in cases(LossId::SphereFace)) {
        check_numdiff(&c);
    }

    #[test]
    fn t7_margin_one_is_softmax_ce_on_w_x_or_on_norm_x_cos_theta(c in cases(LossId::LSoftmax), sphere in any::<bool>()) {
        let mut c = c;
        c.margin = 1;
        c.loss = if sphere { LossId::SphereFace } else { LossId::LSoftmax };
        let logits = Matrix::from_fn(c.features.rows(), c.weights.rows(), |i, j| {
            let (x, w) = (c.features.row(i), c.weights.row(j));
            let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
            let dot: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
            if sphere { dot / norm(w) } else { dot }
        });
        // The f64 logits are rounded; compare the losses to ~1e−13, not bit for bit.
        let ce = SoftmaxCeCase { reduction: c.reduction, logits, labels: c.labels.clone(), options: Default::default() };
        let a = certified(&Case::Multiplicative(c.clone())).unwrap().answer.output("loss").unwrap().values()[0].f64;
        let b = certified(&Case::SoftmaxCe(ce)).unwrap().answer.output("loss").unwrap().values()[0].f64;
        prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{} vs {}", a, b);
    }
}

#[test]
fn t7_lsoftmax_with_m_1_matches_softmax_ce_exactly_on_integer_dot_products() {
    // Integer inputs make W·x exact in binary64, so the two certified losses are equal.
    let features = Matrix::from_rows(vec![vec![1.0, 2.0, -1.0], vec![0.0, 3.0, 1.0]]).unwrap();
    let weights = Matrix::from_rows(vec![
        vec![1.0, 0.0, 2.0],
        vec![-1.0, 1.0, 1.0],
        vec![2.0, 2.0, 0.0],
    ])
    .unwrap();
    let labels = vec![2, 1];
    let logits = Matrix::from_fn(2, 3, |i, j| {
        features
            .row(i)
            .iter()
            .zip(weights.row(j))
            .map(|(a, b)| a * b)
            .sum()
    });
    for lambda in [0.0, 3.0] {
        let c = MultiplicativeCase {
            loss: LossId::LSoftmax,
            margin: 1,
            lambda,
            reduction: Reduction::Mean,
            features: features.clone(),
            weights: weights.clone(),
            labels: labels.clone(),
        };
        let ce = SoftmaxCeCase {
            reduction: Reduction::Mean,
            logits: logits.clone(),
            labels: labels.clone(),
            options: Default::default(),
        };
        let a = certified(&Case::Multiplicative(c)).unwrap();
        let b = certified(&Case::SoftmaxCe(ce)).unwrap();
        assert_eq!(
            a.answer.output("loss").unwrap().values()[0].decimal,
            b.answer.output("loss").unwrap().values()[0].decimal
        );
    }
}

#[test]
fn a_feature_exactly_on_a_segment_boundary_certifies() {
    // x ⟂ w_y gives cos θ = 0 = cos(π/2), the boundary k = 1 of ψ_2 (and k = 2 of ψ_4).
    for (loss, m) in [(LossId::LSoftmax, 2), (LossId::SphereFace, 4)] {
        let c = MultiplicativeCase {
            loss,
            margin: m,
            lambda: 0.0,
            reduction: Reduction::Sum,
            features: Matrix::from_rows(vec![vec![2.0, -1.0]]).unwrap(),
            weights: Matrix::from_rows(vec![vec![1.0, 2.0], vec![1.0, -1.0]]).unwrap(),
            labels: vec![0],
        };
        certified(&Case::Multiplicative(c.clone())).unwrap_or_else(|e| panic!("{loss}: {e}"));
        check_numdiff(&c);
    }
}

#[test]
fn the_sphereface_lambda_schedule_has_the_published_defaults() {
    let s = LambdaSchedule::default();
    assert_eq!((s.base, s.gamma, s.power, s.min), (1000.0, 0.12, 1.0, 5.0));
    assert_eq!(s.at(0), 1000.0);
    assert_eq!(s.at(1), 1000.0 / 1.12);
    assert_eq!(s.at(100), 1000.0 / 13.0);
    // 1000/(1 + 0.12 i) = 5 ⇔ i = 1658.33…: the floor is reached at iteration 1659.
    assert_eq!(s.floor_reached_at(), Some(1659));
    assert!(s.at(1658) > 5.0 && s.at(1659) == 5.0 && s.at(10_000_000) == 5.0);
    let mut previous = f64::INFINITY;
    for i in 0..3000 {
        assert!(s.at(i) <= previous);
        previous = s.at(i);
    }
}
