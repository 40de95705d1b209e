//! The `distill` and `center` references against independent checks: numerical
//! differentiation of the definitions (≥ 40 digits), SPEC §2 T4 (the soft gradient is
//! (q_s − q_t)/T, and its T → ∞ limit with the O(1/T) rate), T7 (α = 0 is softmax_ce),
//! and the center update rule of Wen et al.

use crate::common;

use common::gradient::{check_gradient, points};

use lossref::family::{center, distill};
use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::numdiff::agreement_digits;
use lossref::reference::certified;
use lossref::spec::{Case, CenterCase, DistillCase, Reduction, SoftTerm, SoftmaxCeCase};
use proptest::prelude::*;

fn rows(n: usize, c: usize, lo: f64, hi: f64) -> impl Strategy<Value = Matrix<f64>> {
    proptest::collection::vec(lo..hi, n * c).prop_map(move |v| Matrix::from_vec(n, c, v).unwrap())
}

/// (student, teacher, labels) with N ≤ 3, C ≤ 6, logits in ±8.
fn distill_inputs() -> impl Strategy<Value = (Matrix<f64>, Matrix<f64>, Vec<usize>)> {
    (1usize..=3, 2usize..=6).prop_flat_map(|(n, c)| {
        (
            rows(n, c, -8.0, 8.0),
            rows(n, c, -8.0, 8.0),
            proptest::collection::vec(0..c, n),
        )
    })
}

/// softmax(z/T) of one row, from the definition, on intervals.
fn naive_softmax(z: &[Interval], t: &Interval) -> Vec<Interval> {
    let p = t.prec();
    let e: Vec<Interval> = z.iter().map(|v| v.div(t).exp()).collect();
    let total = Interval::sum(p, &e);
    e.iter().map(|v| v.div(&total)).collect()
}

/// The distillation loss from its definition (SPEC §1).
fn naive_distill(c: &DistillCase, s: &Matrix<Interval>) -> Interval {
    let p = s.get(0, 0).prec();
    let num = |x: f64| Interval::from_f64(p, x);
    let t = num(c.temperature);
    let one = num(1.0);
    let mut total = num(0.0);
    for i in 0..s.rows() {
        let qs = naive_softmax(s.row(i), &t);
        let tr: Vec<Interval> = c.teacher.row(i).iter().map(|&v| num(v)).collect();
        let qt = naive_softmax(&tr, &t);
        let soft_parts: Vec<Interval> = qt
            .iter()
            .zip(&qs)
            .map(|(a, b)| match c.soft {
                SoftTerm::Kl => a.mul(&a.ln().sub(&b.ln())),
                SoftTerm::Ce => a.mul(&b.ln()).neg(),
            })
            .collect();
        let soft = Interval::sum(p, &soft_parts);
        let ps = naive_softmax(s.row(i), &one);
        let ce = ps[c.labels[i]].ln().neg();
        let a = num(c.alpha);
        total = total.add(&a.mul(&t.powi(2)).mul(&soft).add(&one.sub(&a).mul(&ce)));
    }
    match c.reduction {
        Reduction::Sum => total,
        Reduction::Mean => total.div_i64(s.rows() as i64),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(24), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn distill_gradient_matches_numerical_differentiation(
        (student, teacher, labels) in distill_inputs(),
        t in prop_oneof![Just(1.0), Just(4.0), Just(0.5), Just(20.0)],
        alpha in prop_oneof![Just(0.0), Just(0.9), Just(1.0), 0.0f64..1.0],
        kl in any::<bool>(),
        sum in any::<bool>(),
    ) {
        let c = DistillCase {
            temperature: t,
            alpha,
            soft: if kl { SoftTerm::Kl } else { SoftTerm::Ce },
            reduction: if sum { Reduction::Sum } else { Reduction::Mean },
            student,
            teacher,
            labels,
        };
        let prec = 640;
        let answer = distill::reference::evaluate(&c, prec);
        let loss = &answer.output("loss").unwrap().values()[0];
        let analytic = answer.gradient("student_logits").unwrap().values();
        check_gradient(&format!("{c:?} student_logits"), loss, analytic, &c.student, |s, _| naive_distill(&c, s));
        // the loss itself against the definition
        let naive = naive_distill(&c, &c.student.map(|&v| Interval::from_f64(prec, v)));
        let loss = &answer.output("loss").unwrap().values()[0];
        prop_assert!(agreement_digits(&loss.mid(), &naive.mid()) >= 40.0 || naive.contains(&loss.mid()));
    }

    #[test]
    fn t7_distill_with_alpha_zero_is_softmax_ce((student, teacher, labels) in distill_inputs(), kl in any::<bool>()) {
        let d = DistillCase {
            temperature: 4.0, alpha: 0.0, soft: if kl { SoftTerm::Kl } else { SoftTerm::Ce },
            reduction: Reduction::Mean, student: student.clone(), teacher, labels: labels.clone(),
        };
        let ce = SoftmaxCeCase { reduction: Reduction::Mean, logits: student, labels, options: Default::default() };
        let a = certified(&Case::Distill(d)).unwrap();
        let b = certified(&Case::SoftmaxCe(ce)).unwrap();
        let la = &a.answer.output("loss").unwrap().values()[0];
        let lb = &b.answer.output("loss").unwrap().values()[0];
        prop_assert_eq!(la.f64, lb.f64);
        for (x, y) in a.answer.gradient("student_logits").unwrap().values().iter()
            .zip(b.answer.gradient("logits").unwrap().values()) {
            prop_assert_eq!(x.f64, y.f64);
        }
    }

    #[test]
    fn t4_the_soft_gradient_is_q_s_minus_q_t_over_t((student, teacher, labels) in distill_inputs(), t in 0.25f64..50.0) {
        // α = 1 and `sum`: L = T²·Σ soft_i, so ∂soft/∂s = ∂L/∂s / T².
        let c = DistillCase { temperature: t, alpha: 1.0, soft: SoftTerm::Kl, reduction: Reduction::Sum,
            student: student.clone(), teacher: teacher.clone(), labels };
        let prec = 512;
        let answer = distill::reference::evaluate(&c, prec);
        let tt = Interval::from_f64(prec, t);
        for i in 0..student.rows() {
            let s: Vec<Interval> = student.row(i).iter().map(|&v| Interval::from_f64(prec, v)).collect();
            let te: Vec<Interval> = teacher.row(i).iter().map(|&v| Interval::from_f64(prec, v)).collect();
            let (qs, qt) = (naive_softmax(&s, &tt), naive_softmax(&te, &tt));
            for j in 0..student.cols() {
                let got = answer.gradient("student_logits").unwrap().values()[i * student.cols() + j].div(&tt.powi(2));
                let want = qs[j].sub(&qt[j]).div(&tt);
                prop_assert!(got.overlaps(&want) || agreement_digits(&got.mid(), &want.mid()) >= 40.0,
                    "row {} class {}: {:?} vs {:?}", i, j, got, want);
            }
        }
    }
}

#[test]
fn t4_limit_t_squared_soft_gradient_approaches_logit_matching_at_rate_one_over_t() {
    // Zero-mean rows: T²·∂soft/∂s_j → (s_j − t_j)/C, with error O(1/T): the error times T
    // stays bounded and converges (to a second-order constant), so it shrinks 10× per decade.
    let s = [1.5, -0.25, 0.75, -2.0];
    let t = [-1.0, 0.5, 1.25, -0.75];
    let c_len = s.len() as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ms, mt) = (mean(&s), mean(&t));
    let s: Vec<f64> = s.iter().map(|v| v - ms).collect();
    let t: Vec<f64> = t.iter().map(|v| v - mt).collect();
    let mut errors = Vec::new();
    for temp in [10.0, 100.0, 1000.0, 1e4] {
        let c = DistillCase {
            temperature: temp,
            alpha: 1.0,
            soft: SoftTerm::Kl,
            reduction: Reduction::Sum,
            student: Matrix::from_vec(1, 4, s.clone()).unwrap(),
            teacher: Matrix::from_vec(1, 4, t.clone()).unwrap(),
            labels: vec![0],
        };
        let g = certified(&Case::Distill(c)).unwrap();
        // ∂L/∂s = T²·∂soft/∂s with α = 1.
        let grad = g.answer.gradient("student_logits").unwrap().values();
        let err = grad
            .iter()
            .zip(s.iter().zip(&t))
            .map(|(gj, (sj, tj))| (gj.f64 - (sj - tj) / c_len).abs())
            .fold(0.0, f64::max);
        errors.push((temp, err));
    }
    for pair in errors.windows(2) {
        let ((t0, e0), (t1, e1)) = (pair[0], pair[1]);
        let ratio = e0 / e1;
        assert!(
            (8.0..12.5).contains(&ratio),
            "error {e0:e} at T = {t0} vs {e1:e} at T = {t1}: ratio {ratio}, not ≈ 10 (O(1/T))"
        );
    }
    assert!(errors[3].1 < 1e-4, "{errors:?}");
}

#[test]
fn a_teacher_equal_to_the_student_up_to_a_shift_gives_exact_zeros() {
    let c = DistillCase {
        temperature: 4.0,
        alpha: 1.0,
        soft: SoftTerm::Kl,
        reduction: Reduction::Mean,
        student: Matrix::from_rows(vec![vec![0.1, 2.5, -3.0]]).unwrap(),
        teacher: Matrix::from_rows(vec![vec![1.1, 3.5, -2.0]]).unwrap(),
        labels: vec![1],
    };
    let a = certified(&Case::Distill(c)).unwrap();
    assert_eq!(a.answer.output("loss").unwrap().values()[0].decimal, "0");
    assert!(a
        .answer
        .gradient("student_logits")
        .unwrap()
        .values()
        .iter()
        .all(|v| v.decimal == "0"));
}

fn center_inputs() -> impl Strategy<Value = CenterCase> {
    (1usize..=5, 2usize..=4, 1usize..=4).prop_flat_map(|(n, c, d)| {
        (
            rows(n, d, -5.0, 5.0),
            rows(c, d, -5.0, 5.0),
            proptest::collection::vec(0..c, n),
            0.0f64..=1.0,
            any::<bool>(),
        )
            .prop_map(|(features, centers, labels, alpha, sum)| CenterCase {
                alpha,
                reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                features,
                centers,
                labels,
            })
    })
}

fn naive_center(c: &CenterCase, x: &Matrix<Interval>, centers: &Matrix<Interval>) -> Interval {
    let p = x.get(0, 0).prec();
    let mut total = Interval::from_i64(p, 0);
    for i in 0..x.rows() {
        for k in 0..x.cols() {
            total = total.add(
                &x.get(i, k)
                    .sub(centers.get(c.labels[i], k))
                    .powi(2)
                    .div_i64(2),
            );
        }
    }
    match c.reduction {
        Reduction::Sum => total,
        Reduction::Mean => total.div_i64(x.rows() as i64),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(24), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn center_gradients_match_numerical_differentiation(c in center_inputs()) {
        let a = center::reference::evaluate(&c, 512);
        let loss = &a.output("loss").unwrap().values()[0];
        let features = a.gradient("features").unwrap().values();
        check_gradient(&format!("{c:?} features"), loss, features, &c.features, |x, p| naive_center(&c, x, &points(&c.centers, p)));
        let centers = a.gradient("centers").unwrap().values();
        check_gradient(&format!("{c:?} centers"), loss, centers, &c.centers, |cc, p| naive_center(&c, &points(&c.features, p), cc));
    }

    #[test]
    fn the_center_update_moves_each_center_toward_its_class_mean_at_rate_alpha_n_over_1_plus_n(c in center_inputs()) {
        // c_next − c = α·n/(1 + n)·(mean of the class's samples − c), and 0 for an empty class.
        let a = certified(&Case::Center(c.clone())).unwrap();
        let next = a.answer.output("centers_next").unwrap().values();
        let d = c.centers.cols();
        for j in 0..c.centers.rows() {
            let members: Vec<usize> = (0..c.labels.len()).filter(|&i| c.labels[i] == j).collect();
            let n = members.len() as f64;
            for k in 0..d {
                let cj = *c.centers.get(j, k);
                let want = if members.is_empty() { cj } else {
                    let mean = members.iter().map(|&i| c.features.get(i, k)).sum::<f64>() / n;
                    cj + c.alpha * n / (1.0 + n) * (mean - cj)
                };
                let got = next[j * d + k].f64;
                prop_assert!((got - want).abs() <= 1e-13 * (1.0 + want.abs()), "center {} dim {}: {} vs {}", j, k, got, want);
            }
        }
    }
}

#[test]
fn a_sample_exactly_at_its_center_changes_nothing() {
    let c = CenterCase {
        alpha: 0.5,
        reduction: Reduction::Mean,
        features: Matrix::from_rows(vec![vec![1.5, -2.25], vec![0.1, 0.2]]).unwrap(),
        centers: Matrix::from_rows(vec![vec![1.5, -2.25], vec![0.1, 0.2], vec![7.0, 7.0]]).unwrap(),
        labels: vec![0, 1],
    };
    let a = certified(&Case::Center(c.clone())).unwrap();
    assert_eq!(a.answer.output("loss").unwrap().values()[0].decimal, "0");
    for (v, want) in a
        .answer
        .output("centers_next")
        .unwrap()
        .values()
        .iter()
        .zip(c.centers.as_slice())
    {
        assert_eq!(v.f64, *want);
        assert!(v.enclosure.is_point());
    }
    for name in ["features", "centers"] {
        assert!(a
            .answer
            .gradient(name)
            .unwrap()
            .values()
            .iter()
            .all(|v| v.decimal == "0"));
    }
}

#[test]
fn center_update_by_hand() {
    // Class 0: center (0, 0), samples (2, 4) and (4, 8): n = 2, Δc = ((0−2)+(0−4), (0−4)+(0−8))/3
    // = (−2, −4); with α = 0.5 the center moves to (1, 2) = α·n/(1+n)·mean.
    let c = CenterCase {
        alpha: 0.5,
        reduction: Reduction::Sum,
        features: Matrix::from_rows(vec![vec![2.0, 4.0], vec![4.0, 8.0]]).unwrap(),
        centers: Matrix::from_rows(vec![vec![0.0, 0.0], vec![1.0, 1.0]]).unwrap(),
        labels: vec![0, 0],
    };
    let a = certified(&Case::Center(c)).unwrap();
    let next: Vec<f64> = a
        .answer
        .output("centers_next")
        .unwrap()
        .values()
        .iter()
        .map(|v| v.f64)
        .collect();
    assert_eq!(next, vec![1.0, 2.0, 1.0, 1.0]);
    // ½(4 + 16) + ½(16 + 64) = 50
    assert_eq!(a.answer.output("loss").unwrap().values()[0].f64, 50.0);
    let gc: Vec<f64> = a
        .answer
        .gradient("centers")
        .unwrap()
        .values()
        .iter()
        .map(|v| v.f64)
        .collect();
    assert_eq!(gc, vec![-6.0, -12.0, 0.0, 0.0]);
}
