//! T2 (SPEC §2), NormFace's ceiling on the target probability without a scale, checked from
//! both sides with the reference `normface` loss at s = 1: no configuration of unit vectors
//! exceeds it, one sample reaches it, and a whole balanced set cannot. Each test is a step
//! of `proofs/t2_normface_ceiling.md`.

use crate::common;

use common::bounds::{agree_to, loss_at_f64_weights, posterior, weights};
use common::deterministic_runner;
use lossref::bounds::simplex::regular_simplex;
use lossref::bounds::{cosface_posterior_ceiling, normface_ceiling, Bound, BoundId};
use lossref::matrix::Matrix;
use lossref::mp::certify::{decide_sign, Goal};
use lossref::mp::interval::Interval;
use lossref::reference::softmax::points;
use proptest::prelude::*;
use rug::Float;
use std::cmp::Ordering;

fn certified_value(n: u64) -> f64 {
    let b = Bound::new(BoundId::NormFaceCeiling, n, None, None).unwrap();
    b.certified(Goal::EVAL)
        .unwrap()
        .answer
        .output("value")
        .unwrap()
        .values()[0]
        .f64
}

#[test]
fn t2_reproduces_the_normface_paper_numbers() {
    assert_eq!(format!("{:.4}", certified_value(10)), "0.4509");
    assert_eq!(format!("{:.6}", certified_value(1000)), "0.007342");
    // the same number written as e²/(e² + n − 1) in plain MPFR, round to nearest
    for n in [2u64, 10, 1000, 10575, 1_000_000] {
        let e2 = Float::with_val(300, 2).exp();
        let direct = Float::with_val(300, &e2 / Float::with_val(300, &e2 + (n - 1)));
        let iv = normface_ceiling(n, 300);
        assert!(
            agree_to(&iv, &Interval::from_float(direct.clone()), 85),
            "n={n}"
        );
        assert_eq!(certified_value(n), direct.to_f64());
    }
}

#[test]
fn t2_no_unit_configuration_exceeds_the_ceiling() {
    // Any feature, any weights (normalization makes them unit), s = 1: p_y ≤ e/(e + (n−1)/e).
    let mut runner = deterministic_runner(common::cases(128));
    let strategy = weights(2..=12, 1..=8).prop_flat_map(|w| {
        let (c, d) = (w.rows(), w.cols());
        (
            Just(w),
            proptest::collection::vec(-4.0f64..4.0, d)
                .prop_filter("nonzero", |x| x.iter().any(|&v| v != 0.0)),
            0..c,
        )
    });
    runner
        .run(&strategy, |(w, x, y)| {
            let n = w.rows() as u64;
            let (sign, gap) = decide_sign(4096, |p| {
                let xs: Vec<Interval> = x.iter().map(|&v| Interval::from_f64(p, v)).collect();
                let py = posterior(&xs, &points(&w, p), y, &Interval::from_i64(p, 1));
                Ok(normface_ceiling(n, p).sub(&py))
            })
            .unwrap();
            prop_assert!(
                sign != Some(Ordering::Less),
                "p_y above the ceiling by {:?}",
                gap
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn t2_one_sample_reaches_the_ceiling_when_every_other_weight_is_opposite() {
    // x ∥ w_y and every other w_j = −λ_j·x: cos θ_y = 1, cos θ_j = −1 exactly (the
    // reference decides parallel rows exactly), so p_y = e/(e + (n−1)/e).
    let x = [1.5, -2.0, 0.25];
    for n in [2usize, 3, 10, 57] {
        let w = Matrix::from_fn(n, 3, |j, k| {
            if j == 0 {
                2.0 * x[k]
            } else {
                -(j as f64) * x[k]
            }
        });
        let prec = 256;
        let xs: Vec<Interval> = x.iter().map(|&v| Interval::from_f64(prec, v)).collect();
        let py = posterior(&xs, &points(&w, prec), 0, &Interval::from_i64(prec, 1));
        let ceiling = normface_ceiling(n as u64, prec);
        assert!(
            py.overlaps(&ceiling) && agree_to(&py, &ceiling, 60),
            "n={n}: {py:?} vs {ceiling:?}"
        );
    }
}

#[test]
fn t2_is_not_reached_by_every_class_at_once() {
    // With every feature at its class weight, T1 says the mean of −ln p_i is at least
    // −ln f(1), f the T3 ceiling e/(e + (n−1)·e^{−1/(n−1)}): the geometric mean of the p_i,
    // and so the smallest p_i, is at most f(1), which for n ≥ 3 is below T2's ceiling.
    let prec = 256;
    let one = Interval::from_i64(prec, 1);
    for n in [3u64, 10, 1000, 10575] {
        let simplex = cosface_posterior_ceiling(n, &one);
        let t2 = normface_ceiling(n, prec);
        assert_eq!(simplex.compare(&t2), Some(Ordering::Less), "n={n}");
        if n == 10 {
            assert_eq!(format!("{:.4}", simplex.mid().to_f64()), "0.2524");
        }
    }
    // The simplex reaches f(1) for every class at once (to 40 digits) ...
    for n in [3usize, 10, 24] {
        let w = regular_simplex(n, n - 1, prec).unwrap();
        for y in [0, n - 1] {
            let py = common::bounds::posterior_at_weight(&w, y, &one);
            assert!(agree_to(
                &py,
                &cosface_posterior_ceiling(n as u64, &one),
                40
            ));
        }
    }
    // ... and random balanced sets at their weights stay at or below it in geometric mean.
    let mut runner = deterministic_runner(common::cases(48));
    runner
        .run(&weights(3..=10, 1..=10), |w| {
            let n = w.rows() as u64;
            let mean_ce = loss_at_f64_weights(&w, 1.0, 1, 256);
            let geometric_mean = mean_ce.neg().exp();
            let f1 = cosface_posterior_ceiling(n, &Interval::from_i64(256, 1));
            prop_assert!(geometric_mean.compare(&f1) != Some(Ordering::Greater));
            prop_assert_eq!(
                geometric_mean.compare(&normface_ceiling(n, 256)),
                Some(Ordering::Less)
            );
            Ok(())
        })
        .unwrap();
}
