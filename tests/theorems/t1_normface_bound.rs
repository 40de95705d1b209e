//! T1 (SPEC §2), NormFace's lower bound, checked from both sides with the reference
//! `normface` loss: never below it (random weight sets, near the simplex, and a descent that
//! tries), equal to it at the regular simplex to ≥ 40 digits, strictly above it when
//! D < n − 1, and false without balanced classes. Each test is a step of
//! `proofs/t1_normface_bound.md`.

use crate::common;

use common::bounds::{agree_to, agreement, loss_at_f64_weights, loss_at_weights, weights};
use common::deterministic_runner;
use lossref::bounds::search::{descend, seeded_start, Descent, TiedNormFace};
use lossref::bounds::simplex::{integer_simplex, reflect, regular_simplex};
use lossref::bounds::{normface_lower_bound, Bound, BoundId, ExactNumber};
use lossref::matrix::Matrix;
use lossref::mp::certify::{certify, decide_sign, Goal};
use lossref::mp::interval::Interval;
use lossref::reference::{certified, evaluate};
use lossref::spec::{Case, LossId, Margin, NormalizedCase, Reduction};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rug::Rational;
use std::cmp::Ordering;

fn bound(n: usize, s: &Interval) -> Interval {
    normface_lower_bound(n as u64, s)
}

/// The sign of loss − bound for binary64 weights, decided at rising precision.
fn gap_sign(w: &Matrix<f64>, s: f64, per_class: usize) -> (Option<Ordering>, Interval) {
    decide_sign(4096, |p| {
        let s_iv = Interval::from_f64(p, s);
        Ok(loss_at_f64_weights(w, s, per_class, p).sub(&bound(w.rows(), &s_iv)))
    })
    .unwrap()
}

#[test]
fn simplex_rows_are_unit_sum_to_zero_and_meet_at_minus_one_over_n_minus_1() {
    let prec = 256;
    for n in [2usize, 3, 4, 5, 7, 10, 16, 33] {
        for d in [n - 1, n + 2] {
            let plain = regular_simplex(n, d, prec).unwrap();
            let v: Vec<f64> = (0..d).map(|k| (k as f64 * 0.37 + 1.0).sin()).collect();
            for w in [reflect(&plain, &v).unwrap(), plain] {
                let one = Interval::from_i64(prec, 1);
                let zero = Interval::from_i64(prec, 0);
                let minus = Interval::from_rational(prec, &Rational::from((-1, n as i64 - 1)));
                let dot = |a: &[Interval], b: &[Interval]| {
                    let t: Vec<Interval> = a.iter().zip(b).map(|(x, y)| x.mul(y)).collect();
                    Interval::sum(prec, &t)
                };
                for i in 0..n {
                    let norm = dot(w.row(i), w.row(i));
                    assert!(
                        norm.overlaps(&one) && agree_to(&norm, &one, 70),
                        "n={n} d={d}: ‖v_{i}‖² = {norm:?}"
                    );
                    for j in 0..i {
                        let c = dot(w.row(i), w.row(j));
                        assert!(
                            c.overlaps(&minus) && agree_to(&c, &minus, 70),
                            "n={n} d={d}: v_{i}·v_{j} = {c:?}"
                        );
                    }
                }
                for k in 0..d {
                    let col: Vec<Interval> = (0..n).map(|i| w.get(i, k).clone()).collect();
                    let sum = Interval::sum(prec, &col);
                    assert!(
                        sum.contains_zero() && sum.mag() < 1e-70,
                        "n={n} d={d}: Σ_i v_i[{k}] = {sum:?}"
                    );
                    assert!(sum.overlaps(&zero));
                }
            }
        }
        // The integer simplex: exact binary64 arithmetic on small integers.
        let w = integer_simplex(n, n + 1).unwrap();
        for i in 0..n {
            let sq: f64 = w.row(i).iter().map(|a| a * a).sum();
            assert_eq!(sq, (n * (n - 1)) as f64);
            for j in 0..i {
                let d: f64 = w.row(i).iter().zip(w.row(j)).map(|(a, b)| a * b).sum();
                assert_eq!(d, -(n as f64));
            }
        }
        for k in 0..n + 1 {
            assert_eq!((0..n).map(|i| w.get(i, k)).sum::<f64>(), 0.0);
        }
    }
    assert!(regular_simplex(5, 3, 128).is_err(), "5 points need D ≥ 4");
    assert!(
        integer_simplex(5, 4).is_err(),
        "the integer simplex needs D ≥ n"
    );
}

#[test]
fn t1_the_regular_simplex_attains_the_bound_to_40_digits() {
    // 512 bits: at n = 2, s = 64 the loss is about e^{−128} = 10^{−56}, and its relative
    // accuracy needs absolute accuracy in s·cos θ far below that.
    let prec = 512;
    let mut least = f64::INFINITY;
    for n in [2usize, 3, 4, 5, 7, 10, 16, 32] {
        for (d, per_class) in [(n - 1, 1), (n + 3, 2)] {
            let mut w = regular_simplex(n, d, prec).unwrap();
            if d > n - 1 {
                // general position: no coordinate is special any more
                let v: Vec<f64> = (0..d).map(|k| 1.0 + k as f64 * 0.5).collect();
                w = reflect(&w, &v).unwrap();
            }
            for s in ["0", "0.5", "1", "16", "64"] {
                let s_exact = ExactNumber::parse("s", s).unwrap();
                let s_iv = Interval::from_rational(prec, &s_exact.value);
                let l = loss_at_weights(&w, &s_iv, per_class);
                let b = bound(n, &s_iv);
                assert!(
                    l.overlaps(&b),
                    "n={n} d={d} s={s}: loss {l:?} vs bound {b:?}"
                );
                assert!(
                    agree_to(&l, &b, 40),
                    "n={n} d={d} s={s}: only {:.1} digits",
                    agreement(&l, &b)
                );
                least = least.min(agreement(&l, &b));
            }
        }
    }
    eprintln!("the simplex matched T1's bound to at least {least:.1} digits");
}

#[test]
fn t1_the_certified_loss_of_the_integer_simplex_prints_the_digits_of_lossref_bound() {
    // Binary64 inputs n·e_i − 1 through the reference and the certification loop of `lossref
    // eval`. Only the loss is certified: by symmetry some gradient entries are exactly 0,
    // which the reference cannot yet decide (it encloses them, but a 0 never certifies).
    for (n, s) in [(3usize, 1.0), (5, 16.0), (10, 1.0), (10, 64.0), (12, 0.25)] {
        let w = integer_simplex(n, n + 1).unwrap();
        let case = Case::Normalized(NormalizedCase {
            loss: LossId::NormFace,
            scale: s,
            margin: Margin::None,
            reduction: Reduction::Mean,
            features: w.clone(),
            weights: w,
            labels: (0..n).collect(),
            margins: None,
            margins_as: Default::default(),
            classes: None,
        });
        let printed = certify(|p| {
            let mut a = evaluate(&case, p)?;
            a.gradients.clear();
            Ok(a)
        })
        .unwrap();
        let loss = &printed.answer.output("loss").unwrap().values()[0];
        let b = Bound::new(
            BoundId::NormFace,
            n as u64,
            Some(ExactNumber::parse("s", &s.to_string()).unwrap()),
            None,
        )
        .unwrap()
        .certified(Goal::EVAL)
        .unwrap();
        let value = &b.answer.output("value").unwrap().values()[0];
        assert_eq!(loss.decimal, value.decimal, "n={n} s={s}");
        assert_eq!(loss.f64.to_bits(), value.f64.to_bits());
        // and at 512 bits the enclosures agree far beyond 40 digits
        let at = evaluate(&case, 512).unwrap();
        let l = at.output("loss").unwrap().values()[0].clone();
        assert!(agree_to(&l, &bound(n, &Interval::from_f64(512, s)), 100));
    }
}

#[test]
fn t1_random_weight_sets_never_go_below_the_bound() {
    let mut runner = deterministic_runner(common::cases(96));
    let strategy = (weights(2..=12, 1..=14), common::bounds::scale(), 1usize..=3);
    runner
        .run(&strategy, |(w, s, per_class)| {
            let (sign, gap) = gap_sign(&w, s, per_class);
            prop_assert_eq!(
                sign,
                Some(Ordering::Greater),
                "gap {:?} for s = {}, W = {:?}",
                gap,
                s,
                w
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn t1_near_the_simplex_the_gap_stays_positive() {
    // The integer simplex moved by ε·R, ε down to 1e-12: the gap is tiny (≈ ε²) but its
    // sign is still decided, and it is positive.
    let mut runner = deterministic_runner(common::cases(48));
    let strategy = (2usize..=10, 0usize..=3, 2i32..=12, common::bounds::scale()).prop_flat_map(
        |(n, extra, k, s)| {
            let d = n + extra;
            (
                Just((n, d, k, s)),
                proptest::collection::vec(-1.0f64..1.0, n * d),
            )
        },
    );
    let smallest = std::cell::Cell::new(f64::INFINITY);
    runner
        .run(&strategy, |((n, d, k, s), r)| {
            let eps = 10f64.powi(-k);
            let base = integer_simplex(n, d).unwrap();
            let w = Matrix::from_fn(n, d, |i, j| base.get(i, j) + eps * r[i * d + j]);
            if r.iter().all(|&x| x == 0.0) {
                return Err(TestCaseError::reject("no perturbation"));
            }
            let (sign, gap) = gap_sign(&w, s, 1);
            // A perturbation along a rotation leaves the gap at 0 to first and second order;
            // a random one almost never does, but equality would still not be a crossing.
            prop_assert!(
                sign != Some(Ordering::Less),
                "crossed: gap {:?} at ε = {}",
                gap,
                eps
            );
            if sign == Some(Ordering::Greater) {
                smallest.set(smallest.get().min(gap.lo().to_f64()));
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "smallest certified positive gap near the simplex: {:.3e}",
        smallest.get()
    );
}

#[test]
fn t1_the_gap_grows_quadratically_away_from_the_simplex() {
    // At a minimum the gap is a quadratic form: ten times closer, a hundred times smaller.
    let (n, d, s) = (6usize, 7usize, 2.0);
    let base = integer_simplex(n, d).unwrap();
    let r = Matrix::from_fn(n, d, |i, j| ((i * d + j) as f64 * 0.7).sin());
    let gap = |eps: f64| {
        let w = Matrix::from_fn(n, d, |i, j| base.get(i, j) + eps * r.get(i, j));
        let (sign, g) = gap_sign(&w, s, 1);
        assert_eq!(sign, Some(Ordering::Greater));
        g.mid().to_f64()
    };
    for k in 3..8 {
        let e = 10f64.powi(-k);
        let ratio = gap(e / 10.0) / gap(e);
        assert!((0.0099..=0.0101).contains(&ratio), "ε = {e}: ratio {ratio}");
    }
}

#[test]
fn t1_descent_approaches_the_bound_and_never_crosses_it() {
    let plan = Descent {
        steps: 4000,
        certify_every: 200,
        cap: 4096,
    };
    let mut report = Vec::new();
    for (n, d, s) in [
        (3usize, 2usize, 1.0),
        (4, 3, 1.0),
        (5, 4, 4.0),
        (6, 5, 1.0),
        (8, 7, 2.0),
        (10, 9, 1.0),
        (10, 12, 1.0),
    ] {
        let objective = TiedNormFace::new(s).unwrap();
        let r = descend(
            &objective,
            &seeded_start(n, d, n as u64 * 31 + d as u64),
            &plan,
        )
        .unwrap();
        assert_eq!(
            r.crossings, 0,
            "n={n} D={d} s={s}: an iterate went below the bound"
        );
        assert!(r.smallest_gap.lo() >= &0 || r.smallest_gap.contains_zero());
        let gap = r.smallest_gap.hi().to_f64();
        assert!(
            gap < 1e-20,
            "n={n} D={d} s={s}: the descent got only to a gap of {gap:.3e}"
        );
        report.push(format!("n={n} D={d} s={s}: smallest certified gap {gap:.2e} (step {}, {} checkpoints, {} undecided)", r.smallest_gap_step, r.checkpoints, r.undecided));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn t1_is_strict_below_dimension_n_minus_1() {
    // D = 1: unit vectors are ±1; every sign pattern stays above the bound.
    for n in 2usize..=8 {
        let mut least = f64::INFINITY;
        for pattern in 0u32..(1 << n) {
            let w = Matrix::from_fn(n, 1, |i, _| if pattern >> i & 1 == 1 { 1.0 } else { -1.0 });
            let (sign, gap) = gap_sign(&w, 1.0, 1);
            if n == 2 && pattern.count_ones() == 1 {
                // n = 2, D = 1 = n − 1: the antipodal pair is the simplex, where T1 is equal
                assert!(sign.is_none() || gap.mag().get_exp().is_none_or(|e| e < -1000));
                continue;
            }
            assert_eq!(sign, Some(Ordering::Greater), "n={n} pattern {pattern:b}");
            least = least.min(gap.lo().to_f64());
        }
        if n > 2 {
            eprintln!("n={n} D=1 s=1: least gap {least:.6}");
        }
    }
    // n = 4 in the plane: the descent finds the square, whose loss is 2·ln(1 + e^{−s}).
    for s in [0.5, 1.0, 4.0] {
        let objective = TiedNormFace::new(s).unwrap();
        let plan = Descent {
            steps: 3000,
            certify_every: 500,
            cap: 2048,
        };
        let best = (0..6)
            .map(|seed| descend(&objective, &seeded_start(4, 2, seed), &plan).unwrap())
            .min_by(|a, b| a.loss.total_cmp(&b.loss))
            .unwrap();
        let square = 2.0 * (-s).exp().ln_1p();
        assert!(
            (best.loss - square).abs() < 1e-12,
            "s={s}: descent {} vs square {square}",
            best.loss
        );
        assert_eq!(best.crossings, 0);
        let b = normface_lower_bound(4, &Interval::from_f64(128, s))
            .mid()
            .to_f64();
        eprintln!(
            "n=4 D=2 s={s}: least loss {square:.9} (the square), bound {b:.9}, gap {:.3e} ({:.2}%)",
            square - b,
            100.0 * (square - b) / b
        );
    }
    // n = 10 below D = 9: the least gap the descent finds.
    for (d, s) in [(2usize, 1.0), (3, 1.0), (5, 1.0), (8, 1.0), (8, 8.0)] {
        let objective = TiedNormFace::new(s).unwrap();
        let plan = Descent {
            steps: 4000,
            certify_every: 500,
            cap: 2048,
        };
        let best = (0..3)
            .map(|seed| descend(&objective, &seeded_start(10, d, 100 + seed), &plan).unwrap())
            .min_by(|a, b| a.loss.total_cmp(&b.loss))
            .unwrap();
        assert_eq!(best.crossings, 0);
        let (sign, gap) = objective.certified_gap(&best.weights, 2048).unwrap();
        assert_eq!(sign, Some(Ordering::Greater));
        let g = gap.mid().to_f64();
        let b = normface_lower_bound(10, &Interval::from_f64(128, s))
            .mid()
            .to_f64();
        assert!(
            g > 1e-6 * b,
            "n=10 D={d}: the gap {g:e} should be clearly positive"
        );
        eprintln!(
            "n=10 D={d} s={s}: least gap found {g:.3e} ({:.3}% of the bound {b:.6})",
            100.0 * g / b
        );
    }
}

#[test]
fn t1_reproduces_the_normface_paper_figure() {
    let b = Bound::new(
        BoundId::NormFace,
        10575,
        Some(ExactNumber::parse("s", "1").unwrap()),
        None,
    )
    .unwrap()
    .certified(Goal::EVAL)
    .unwrap();
    let v = &b.answer.output("value").unwrap().values()[0];
    assert!(v.decimal.starts_with("8.2663"), "{}", v.decimal);
    // NormFace's reported training losses sit above the bound.
    assert!(v.f64 < 8.50 && 8.50 < 9.27);
    // the closed form without ln1p, in plain f64: log(1 + 10574·e^{−10575/10574})
    let naive = (1.0 + 10574.0 * (-10575.0f64 / 10574.0).exp()).ln();
    assert!((v.f64 - naive).abs() < 1e-14 * naive);
}

#[test]
fn t1_needs_balanced_classes() {
    // Three classes, w1 = w2 = −w0, and 20 samples of class 0 against one each of 1 and 2:
    // the mean loss falls below log(1 + 2e^{−3s/2}). T1's balance assumption is necessary.
    let w = Matrix::from_rows(vec![vec![1.0, 0.0], vec![-1.0, 0.0], vec![-1.0, 0.0]]).unwrap();
    let mut labels = vec![0usize; 20];
    labels.extend([1, 2]);
    let features = Matrix::from_fn(labels.len(), 2, |r, k| *w.get(labels[r], k));
    let case = Case::Normalized(NormalizedCase {
        loss: LossId::NormFace,
        scale: 1.0,
        margin: Margin::None,
        reduction: Reduction::Mean,
        features,
        weights: w,
        labels,
        margins: None,
        margins_as: Default::default(),
        classes: None,
    });
    let loss = certified(&case)
        .unwrap()
        .answer
        .output("loss")
        .unwrap()
        .values()[0]
        .f64;
    let b = normface_lower_bound(3, &Interval::from_f64(128, 1.0))
        .mid()
        .to_f64();
    // closed form: (20·ln(1 + 2e^{−2}) + 2·ln(2 + e^{−2}))/22
    let closed =
        (20.0 * (2.0 * (-2.0f64).exp()).ln_1p() + 2.0 * (2.0 + (-2.0f64).exp()).ln()) / 22.0;
    assert!((loss - closed).abs() < 1e-15);
    assert!(
        loss < b,
        "unbalanced loss {loss} should be below the balanced bound {b}"
    );
}
