//! `subcenter_arcface` (SPEC §5) against independent checks: central differences of a naive
//! loss written here (every cosine, the max over each class's sub-centers by midpoint,
//! arcface's rule), K = 1 as `arcface` (T7), a near tie of the maximum decided as the loss
//! without the losing sub-center says, and an exact tie refused as an undefined point.

use crate::common;
use crate::normalized_reference::{assert_same, certify, naive_cosines, naive_target, same_order};

use common::deterministic_runner;
use common::geometry::{case, margin_variants, sized_problem, Angle, ARC_M};
use common::gradient::{check_gradient, points};
use lossref::matrix::Matrix;
use lossref::mp::certify::CertifiedAnswer;
use lossref::mp::interval::Interval;
use lossref::reference::certified;
use lossref::reference::softmax::{cross_entropies, reduce};
use lossref::spec::{Case, LossId, Margin, MarginGrad, Reduction, SubcenterCase};
use proptest::prelude::*;

fn certify_subcenter(c: &SubcenterCase) -> CertifiedAnswer {
    certified(&Case::Subcenter(c.clone()))
        .unwrap_or_else(|e| panic!("reference failed on {c:?}: {e}"))
}

/// The classes' cosines by SPEC §5: the largest of each class's K sub-centers' (compared by
/// midpoint; the generated inputs stay far from ties at the scale of a step).
fn class_cosines(
    c: &SubcenterCase,
    x: &Matrix<Interval>,
    w: &Matrix<Interval>,
) -> Matrix<Interval> {
    let all = naive_cosines(x, w);
    let k = c.subcenters;
    Matrix::from_fn(all.rows(), c.classes(), |i, j| {
        (j * k..(j + 1) * k)
            .map(|r| all.get(i, r).clone())
            .max_by(|a, b| a.mid().partial_cmp(&b.mid()).unwrap())
            .unwrap()
    })
}

/// The loss from its definition; with `shifts`, arcface's detached target s·(cos θ + shift).
fn naive_loss(
    c: &SubcenterCase,
    x: &Matrix<Interval>,
    w: &Matrix<Interval>,
    shifts: Option<&[Interval]>,
) -> Interval {
    let p = x.get(0, 0).prec();
    let s = Interval::from_f64(p, c.scale);
    let cos = class_cosines(c, x, w);
    let logits = Matrix::from_fn(cos.rows(), cos.cols(), |i, j| {
        let v = cos.get(i, j);
        if j != c.labels[i] {
            s.mul(v)
        } else if let Some(shift) = shifts {
            s.mul(&v.add(&shift[i]))
        } else {
            s.mul(&naive_target(&c.margin, v))
        }
    });
    reduce(&cross_entropies(&logits, &c.labels), c.reduction)
}

/// A sub-center case from a problem whose weights hold C·K rows.
fn subcenter(
    x: &Matrix<f64>,
    w: &Matrix<f64>,
    labels: &[usize],
    k: usize,
    margin: Margin,
    reduction: Reduction,
) -> SubcenterCase {
    SubcenterCase {
        scale: 32.0,
        margin,
        reduction,
        features: x.clone(),
        weights: w.clone(),
        labels: labels.to_vec(),
        subcenters: k,
    }
}

#[test]
fn subcenter_gradients_match_numerical_differentiation() {
    let arcs: Vec<Margin> = margin_variants()
        .into_iter()
        .filter(|(l, _, _)| *l == LossId::ArcFace)
        .map(|(_, m, _)| m)
        .collect();
    for (v, margin) in arcs.into_iter().enumerate() {
        for k in [2usize, 3] {
            let mut runner = deterministic_runner(common::cases(2));
            // C·K weight rows; the labels index classes 0..C
            let strategy = sized_problem(Angle::Moderate, ARC_M, false, (3, 9, 4))
                .prop_filter("at least two classes of K rows", move |p| {
                    p.weights.rows() >= 2 * k
                });
            runner
                .run(&strategy, |p| {
                    let classes = p.weights.rows() / k;
                    let w =
                        Matrix::from_fn(classes * k, p.weights.cols(), |r, e| *p.weights.get(r, e));
                    let labels: Vec<usize> = p.labels.iter().map(|y| y % classes).collect();
                    let reduction = if v % 2 == 0 {
                        Reduction::Mean
                    } else {
                        Reduction::Sum
                    };
                    let c = subcenter(&p.features, &w, &labels, k, margin, reduction);
                    let prec = 1024;
                    let answer = lossref::reference::evaluate(&Case::Subcenter(c.clone()), prec)
                        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
                    let detached = matches!(
                        margin,
                        Margin::Angular {
                            grad: MarginGrad::Detached,
                            ..
                        }
                    );
                    let shifts: Option<Vec<Interval>> = detached.then(|| {
                        let cos = class_cosines(
                            &c,
                            &points(&c.features, prec),
                            &points(&c.weights, prec),
                        );
                        (0..labels.len())
                            .map(|i| {
                                let v = cos.get(i, labels[i]);
                                naive_target(&margin, v).sub(v)
                            })
                            .collect()
                    });
                    let sh = shifts.as_deref();
                    let loss = &answer.output("loss").unwrap().values()[0];
                    for (name, tensor) in answer.gradients.iter() {
                        let at = if *name == "features" {
                            &c.features
                        } else {
                            &c.weights
                        };
                        check_gradient(
                            &format!("{c:?} {name}"),
                            loss,
                            tensor.values(),
                            at,
                            |v, p| {
                                if *name == "features" {
                                    naive_loss(&c, v, &points(&c.weights, p), sh)
                                } else {
                                    naive_loss(&c, &points(&c.features, p), v, sh)
                                }
                            },
                        );
                    }
                    Ok(())
                })
                .unwrap();
        }
    }
}

#[test]
fn one_subcenter_is_arcface() {
    let mut runner = deterministic_runner(common::cases(3));
    for (loss, margin, scale) in margin_variants() {
        if loss != LossId::ArcFace {
            continue;
        }
        runner
            .run(
                &sized_problem(Angle::Moderate, ARC_M, false, (3, 6, 4)),
                |p| {
                    let arcface = case(&p, loss, margin, scale, Reduction::Mean);
                    let sub = SubcenterCase {
                        scale,
                        margin,
                        reduction: Reduction::Mean,
                        features: p.features.clone(),
                        weights: p.weights.clone(),
                        labels: p.labels.clone(),
                        subcenters: 1,
                    };
                    assert_same(
                        &format!("subcenter_arcface K = 1 = arcface {margin:?}"),
                        &certify_subcenter(&sub),
                        &certify(&arcface),
                        same_order,
                    );
                    Ok(())
                },
            )
            .unwrap();
    }
}

/// Sub-center 1 of class 0 is sub-center 0 turned towards the feature by 2^−48 (cosines
/// about 10^−15 apart, within the binary64 estimate's slack), or away from it: the exact decision
/// picks the nearer one, as the loss with the maximizing sub-centers alone (K = 1) says,
/// value for value, and the losing sub-centers' gradients are exact zeros. A sub-center
/// that is a positive multiple of another ties exactly: an error naming both.
#[test]
fn a_near_tie_of_the_maximum_is_decided_exactly_and_an_exact_tie_is_refused() {
    let x = Matrix::from_rows(vec![vec![0.8, 0.3, -0.5]]).unwrap();
    let base = vec![0.6, 0.5, -0.2];
    // class 1: the second sub-center is the nearer to x (cosines far apart)
    let (far, near) = (vec![0.1, -0.7, 0.6], vec![0.5, 0.9, 0.1]);
    let margin = Margin::Angular {
        m: 0.5,
        boundary: Default::default(),
        grad: MarginGrad::Full,
    };
    for sign in [1.0, -1.0] {
        let t = sign * 2f64.powi(-48);
        let turned: Vec<f64> = base.iter().zip(x.row(0)).map(|(a, b)| a + t * b).collect();
        let w = Matrix::from_rows(vec![
            base.clone(),
            turned.clone(),
            far.clone(),
            near.clone(),
        ])
        .unwrap();
        let sub = subcenter(&x, &w, &[0], 2, margin, Reduction::Sum);
        let answer = certify_subcenter(&sub);
        let winner = if sign > 0.0 { 1 } else { 0 };
        let single = SubcenterCase {
            weights: Matrix::from_rows(vec![w.row(winner).to_vec(), near.clone()]).unwrap(),
            subcenters: 1,
            ..sub.clone()
        };
        let alone = certify_subcenter(&single);
        // rows of the sub-center gradient: the winner's is row 0 of the single case, the
        // near class-1 sub-center's row 1; the losers' are exact zeros
        let map = |name: &str, k: usize| -> usize {
            if name != "weights" {
                return k;
            }
            let (row, e) = (k / 3, k % 3);
            match row {
                r if r == winner => e,
                3 => 3 + e,
                _ => usize::MAX,
            }
        };
        for (section, name, ta) in answer.answer.sections() {
            let tb = if section == "outputs" {
                alone.answer.output(name)
            } else {
                alone.answer.gradient(name)
            }
            .unwrap();
            for (k, u) in ta.values().iter().enumerate() {
                match map(name, k) {
                    usize::MAX => assert!(
                        u.f64 == 0.0 && u.enclosure.is_point(),
                        "t = {t}: {name}[{k}] of a losing sub-center is {}",
                        u.decimal
                    ),
                    kb => assert_eq!(
                        u.f64.to_bits(),
                        tb.values()[kb].f64.to_bits(),
                        "t = {t}: {name}[{k}] {} vs {}",
                        u.decimal,
                        tb.values()[kb].decimal
                    ),
                }
            }
        }
    }
    // a positive multiple: the same direction, an exact tie
    let w = Matrix::from_rows(vec![
        base.clone(),
        base.iter().map(|v| 2.0 * v).collect(),
        far,
        near,
    ])
    .unwrap();
    let sub = subcenter(&x, &w, &[0], 2, margin, Reduction::Mean);
    let e = lossref::reference::evaluate(&Case::Subcenter(sub), 128).unwrap_err();
    assert_eq!(e.place, "inputs.features[0]", "{e}");
    assert!(
        e.reason
            .contains("inputs.weights[0] and inputs.weights[1] of class 0 tie exactly"),
        "{e}"
    );
}
