//! T3 (SPEC §2), CosFace's scale bound, checked from both sides with the reference
//! `normface` loss: for unit weights summing to 0 and a feature at its class weight the
//! target posterior never exceeds e^s/(e^s + (C−1)e^{−s/(C−1)}); the regular simplex
//! reaches it; at s equal to the scale bound the simplex reaches P exactly, and below it
//! nothing tried does; without Σw = 0 the bound fails. Each test is a step of
//! `proofs/t3_cosface_scale.md`.

use crate::common;

use common::bounds::{agree_to, agreement, posterior_at_weight, zero_sum_weights};
use common::deterministic_runner;
use lossref::bounds::simplex::{reflect, regular_simplex};
use lossref::bounds::{
    adacos_scale, cosface_posterior_ceiling, cosface_scale_bound, cosface_scale_for, Bound,
    BoundId, ExactNumber,
};
use lossref::family::normalized::reference::{loss, Rule};
use lossref::matrix::Matrix;
use lossref::mp::certify::{decide_sign, Goal};
use lossref::mp::interval::Interval;
use lossref::reference::softmax::points;
use lossref::spec::{Margin, Reduction};
use proptest::prelude::*;
use std::cmp::Ordering;

#[test]
fn t3_the_scale_bound_inverts_the_posterior_ceiling() {
    // f(C, s(C, P)) = P for the exact decimal P, to 60 digits, C from 2 to 10^12.
    let mut runner = deterministic_runner(common::cases(200));
    let strategy = (1u32..=12, 1.0f64..10.0, 1u64..1_000_000, 1u32..=7);
    runner
        .run(&strategy, |(e, m, digits, len)| {
            let c = ((m * 10f64.powi(e as i32)) as u64).max(2);
            let frac = digits % 10u64.pow(len);
            if frac == 0 {
                return Ok(());
            }
            let text = format!("0.{frac:0width$}", width = len as usize);
            let p = ExactNumber::parse("P", &text).unwrap();
            let prec = 320;
            let s = cosface_scale_bound(c, &p.value, prec);
            let back = cosface_posterior_ceiling(c, &s);
            let p_iv = Interval::from_rational(prec, &p.value);
            prop_assert!(
                back.overlaps(&p_iv) && agree_to(&back, &p_iv, 60),
                "C={} P={}: {:?}",
                c,
                text,
                back
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn t3_zero_sum_unit_weights_never_exceed_the_ceiling() {
    let mut runner = deterministic_runner(common::cases(96));
    let strategy = (zero_sum_weights(2..=12), common::bounds::scale());
    let equal = std::cell::Cell::new(0);
    runner
        .run(&strategy, |(w, s)| {
            let c = w.rows() as u64;
            for y in 0..w.rows() {
                let (sign, gap) = decide_sign(2048, |p| {
                    let s_iv = Interval::from_f64(p, s);
                    Ok(
                        cosface_posterior_ceiling(c, &s_iv).sub(&posterior_at_weight(
                            &points(&w, p),
                            y,
                            &s_iv,
                        )),
                    )
                })
                .unwrap();
                prop_assert!(
                    sign != Some(Ordering::Less),
                    "p_{} above the ceiling by {:?}; W = {:?}",
                    y,
                    gap,
                    w
                );
                if sign.is_none() {
                    // equality: w_y is at −1/(C−1) from every other weight (a simplex part of
                    // size C, or C = 2); the enclosure at 2048 bits is the point's width
                    prop_assert!(gap.mag().get_exp().is_none_or(|e| e < -1500), "{:?}", gap);
                    equal.set(equal.get() + 1);
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "{} targets met the ceiling with equality (whole-set simplices)",
        equal.get()
    );
}

#[test]
fn t3_the_regular_simplex_attains_the_ceiling() {
    let prec = 320;
    for c in [2usize, 3, 5, 10, 31] {
        let v: Vec<f64> = (0..c + 1).map(|k| 0.5 + (k as f64).cos()).collect();
        let w = reflect(&regular_simplex(c, c + 1, prec).unwrap(), &v).unwrap();
        for s in [1i64, 16, 64] {
            let s_iv = Interval::from_i64(prec, s);
            let ceiling = cosface_posterior_ceiling(c as u64, &s_iv);
            for y in [0, c / 2, c - 1] {
                let py = posterior_at_weight(&w, y, &s_iv);
                assert!(
                    agree_to(&py, &ceiling, 40),
                    "C={c} s={s} y={y}: {:.1} digits",
                    agreement(&py, &ceiling)
                );
            }
        }
    }
}

fn simplex_posterior(c: usize, s: &Interval) -> Interval {
    let w = regular_simplex(c, c - 1, s.prec()).unwrap();
    posterior_at_weight(&w, c / 2, s)
}

#[test]
fn t3_at_the_scale_bound_the_simplex_reaches_p_exactly() {
    let prec = 320;
    for c in [2usize, 3, 10, 100, 200] {
        for p in ["0.5", "0.9", "0.99", "0.999999", "0.123"] {
            let p_exact = ExactNumber::parse("P", p).unwrap();
            let s = cosface_scale_bound(c as u64, &p_exact.value, prec);
            let py = simplex_posterior(c, &s);
            let p_iv = Interval::from_rational(prec, &p_exact.value);
            assert!(py.overlaps(&p_iv), "C={c} P={p}: {py:?}");
            assert!(
                agree_to(&py, &p_iv, 40),
                "C={c} P={p}: only {:.1} digits",
                agreement(&py, &p_iv)
            );
        }
    }
}

#[test]
fn t3_below_the_scale_bound_nothing_tried_reaches_p() {
    let prec = 320;
    let mut runner = deterministic_runner(common::cases(24));
    for (c, p) in [(2usize, "0.9"), (5, "0.9"), (10, "0.99"), (12, "0.999")] {
        let p_exact = ExactNumber::parse("P", p).unwrap();
        let p_iv = Interval::from_rational(prec, &p_exact.value);
        let s_p = cosface_scale_bound(c as u64, &p_exact.value, prec);
        // The simplex, the best configuration, just below the bound: s·(1 − 10^−k).
        for k in [1, 6, 30] {
            let one = Interval::from_i64(prec, 1);
            let shrink = one.sub(&one.div(&Interval::from_i64(prec, 10).powi(k)));
            let s = s_p.mul(&shrink);
            let py = simplex_posterior(c, &s);
            assert_eq!(py.compare(&p_iv), Some(Ordering::Less), "C={c} P={p} k={k}");
        }
        // Random zero-sum sets of C unit weights, at the binary64 just below the bound.
        let s = s_p.lo().to_f64_round(rug::float::Round::Down) * (1.0 - 1e-9);
        runner
            .run(&zero_sum_weights(c..=c), |w| {
                for y in 0..c {
                    let py =
                        posterior_at_weight(&points(&w, prec), y, &Interval::from_f64(prec, s));
                    prop_assert_eq!(
                        py.compare(&p_iv),
                        Some(Ordering::Less),
                        "y={}, W = {:?}",
                        y,
                        w
                    );
                }
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn t3_needs_weights_that_sum_to_zero() {
    // Every other weight at −w_y (Σw ≠ 0 for C ≥ 3): p_y = e^s/(e^s + (C−1)e^{−s}), above
    // the ceiling, and at 90 % of the scale bound it already exceeds P.
    let prec = 256;
    for (c, p) in [(3usize, "0.9"), (10, "0.9"), (100, "0.99")] {
        let w = Matrix::from_fn(c, 2, |j, k| match (j, k) {
            (0, 0) => 1.0,
            (_, 0) => -1.0,
            _ => 0.0,
        });
        let p_exact = ExactNumber::parse("P", p).unwrap();
        let s = cosface_scale_bound(c as u64, &p_exact.value, prec).mul(&Interval::from_rational(
            prec,
            &rug::Rational::from((9, 10)),
        ));
        let py = posterior_at_weight(&points(&w, prec), 0, &s);
        assert_eq!(
            py.compare(&cosface_posterior_ceiling(c as u64, &s)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            py.compare(&Interval::from_rational(prec, &p_exact.value)),
            Some(Ordering::Greater),
            "C={c}"
        );
    }
}

#[test]
fn adacos_scale_is_the_cosface_bound_at_its_own_posterior() {
    // AdaCos: s = √2·log(C−1), posterior f(C, s). Inverting T3 at that posterior gives s
    // back: the two formulas of `adacos-scale` agree with `cosface-scale`.
    for c in [2u64, 3, 10, 1000, 10575, 85742, 1_000_000_000] {
        let b = Bound::new(BoundId::AdaCosScale, c, None, None).unwrap();
        let ans = b.certified(Goal::digits(50)).unwrap();
        let s = ans.answer.output("value").unwrap().values()[0]
            .enclosure
            .clone();
        let post = ans.answer.output("posterior").unwrap().values()[0]
            .enclosure
            .clone();
        let expected = adacos_scale(c, 400);
        assert!(s.overlaps(&expected));
        if c == 2 {
            assert!(
                s.is_point() && s.contains_zero(),
                "C = 2: √2·log 1 = 0 exactly"
            );
            let half = Interval::from_f64(64, 0.5);
            assert!(
                post.is_point() && post.overlaps(&half),
                "C = 2: P = 1/(1 + e^0) = ½ exactly"
            );
            continue;
        }
        let back = cosface_scale_for(c, &post);
        assert!(agree_to(&back, &s, 40), "C={c}: {back:?} vs {s:?}");
    }
    // the scale AdaCos gives CASIA-WebFace
    let b = Bound::new(BoundId::AdaCosScale, 10575, None, None).unwrap();
    let v = b
        .certified(Goal::EVAL)
        .unwrap()
        .answer
        .output("value")
        .unwrap()
        .values()[0]
        .f64;
    assert!((v - std::f64::consts::SQRT_2 * 10574f64.ln()).abs() < 1e-14 * v);
}

#[test]
fn t3_a_margin_only_lowers_the_posterior() {
    // cosface's target logit s(cos θ − m) is below s·cos θ for m > 0, so its posterior is
    // below normface's, which T3 bounds: the scale bound holds a fortiori with a margin.
    let mut runner = deterministic_runner(common::cases(48));
    let strategy = (
        zero_sum_weights(2..=8),
        common::bounds::scale(),
        0.01f64..0.8,
    );
    runner
        .run(&strategy, |(w, s, m)| {
            let prec = 256;
            let wi = points(&w, prec);
            let s_iv = Interval::from_f64(prec, s);
            let rule = Rule {
                margin: Margin::Additive { m },
                reduction: Reduction::Sum,
            };
            for y in 0..w.rows() {
                let x = Matrix::from_vec(1, w.cols(), wi.row(y).to_vec()).unwrap();
                let with_margin = loss(&rule, &x, &wi, &[y], &s_iv).unwrap().neg().exp();
                let without = posterior_at_weight(&wi, y, &s_iv);
                prop_assert_eq!(with_margin.compare(&without), Some(Ordering::Less));
                prop_assert!(
                    with_margin.compare(&cosface_posterior_ceiling(w.rows() as u64, &s_iv))
                        == Some(Ordering::Less)
                );
            }
            Ok(())
        })
        .unwrap();
}
