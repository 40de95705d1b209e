//! The normalized-margin family's reference (`normface`, `cosface`, `amsoftmax`, `arcface`,
//! `combined`) against independent checks: numerical differentiation of a naive formula
//! (≥ 40 digits), SPEC §2 T7's degenerate parameters, invariance under positive rescaling
//! of any row, class-permutation equivariance, the `thmm` jump and the undefined points
//! of SPEC §1. Inputs come from the target-angle regimes of `common::geometry`, each of
//! which must be reached.

use crate::common;

use common::deterministic_runner;
use common::geometry::{case, margin_variants, problem, Angle, Problem, ARC_M};
use common::gradient::{check_gradient, points};
use common::textbook::rule_of_row;
use lossref::family::normalized::reference as normalized;
use lossref::matrix::Matrix;
use lossref::mp::certify::{Certified, CertifiedAnswer};
use lossref::mp::interval::Interval;
use lossref::reference::certified;
use lossref::reference::softmax::{cross_entropies, reduce};
use lossref::spec::{Boundary, Case, LossId, Margin, MarginGrad, NormalizedCase, Reduction};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::f64::consts::PI;

pub(crate) fn certify(c: &NormalizedCase) -> CertifiedAnswer {
    certified(&Case::Normalized(c.clone()))
        .unwrap_or_else(|e| panic!("reference failed on {c:?}: {e}"))
}

/// The target rule written directly from SPEC §1 on intervals: no exact tie-breaking, no
/// pole handling, branches chosen on midpoints (the generated inputs stay far from the
/// switches at the scale of a numerical-differentiation step).
pub(crate) fn naive_target(margin: &Margin, c: &Interval) -> Interval {
    let p = c.prec();
    let num = |x: f64| Interval::from_f64(p, x);
    let arc = |m: f64| c.acos().add(&num(m)).cos();
    match *margin {
        Margin::None => c.clone(),
        Margin::Additive { m } => c.sub(&num(m)),
        Margin::Combined { m1, m2, m3 } => num(m1).mul(&c.acos()).add(&num(m2)).cos().sub(&num(m3)),
        Margin::Angular { m, boundary, .. } => {
            let threshold = match boundary {
                Boundary::None => return arc(m),
                Boundary::Thmm => Interval::pi(p).sub(&num(m)).cos(),
                Boundary::Easy => num(0.0),
            };
            if c.mid() > threshold.mid() {
                arc(m)
            } else if boundary == Boundary::Thmm {
                c.sub(&num(m).mul(&num(m).sin()))
            } else {
                c.clone()
            }
        }
    }
}

pub(crate) fn naive_cosines(x: &Matrix<Interval>, w: &Matrix<Interval>) -> Matrix<Interval> {
    let p = x.get(0, 0).prec();
    let norm =
        |v: &[Interval]| Interval::sum(p, &v.iter().map(|a| a.mul(a)).collect::<Vec<_>>()).sqrt();
    Matrix::from_fn(x.rows(), w.rows(), |i, j| {
        let dot: Vec<Interval> = x
            .row(i)
            .iter()
            .zip(w.row(j))
            .map(|(a, b)| a.mul(b))
            .collect();
        Interval::sum(p, &dot).div(&norm(x.row(i)).mul(&norm(w.row(j))))
    })
}

/// The loss from its definition (SPEC §1, and §5's inputs): every row's rule (its
/// per-sample margin where given, substituted by `common::textbook::rule_of_row`), and the
/// softmax over the subset's classes (all of them without one). With `shifts`, row i's
/// target logit is s·(cos θ + shift_i), the shifts held constant: the function whose
/// gradient `margin_grad = detached` defines.
fn naive_loss(
    c: &NormalizedCase,
    x: &Matrix<Interval>,
    w: &Matrix<Interval>,
    s: &Interval,
    shifts: Option<&[Interval]>,
) -> Interval {
    let all: Vec<usize> = (0..c.weights.rows()).collect();
    let subset = c.classes.as_ref().unwrap_or(&all);
    let cos = naive_cosines(x, w);
    let logits = Matrix::from_fn(cos.rows(), subset.len(), |i, k| {
        let (j, v) = (subset[k], cos.get(i, subset[k]));
        if j != c.labels[i] {
            s.mul(v)
        } else if let Some(shift) = shifts {
            s.mul(&v.add(&shift[i]))
        } else {
            s.mul(&naive_target(&rule_of_row(c, i), v))
        }
    });
    let labels: Vec<usize> = c
        .labels
        .iter()
        .map(|y| {
            subset
                .iter()
                .position(|j| j == y)
                .expect("the subset holds every label")
        })
        .collect();
    reduce(&cross_entropies(&logits, &labels), c.reduction)
}

/// Every reference gradient against central differences of [`naive_loss`]
/// (`common::gradient::check_gradient`); off a class subset, the weights' gradient must be
/// an exact 0 whose quotient vanishes.
pub(crate) fn check_numdiff(c: &NormalizedCase) {
    let prec = 1024;
    let answer = lossref::reference::evaluate(&Case::Normalized(c.clone()), prec)
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let detached = matches!(
        c.margin,
        Margin::Angular {
            grad: MarginGrad::Detached,
            ..
        }
    );
    let shifts: Option<Vec<Interval>> = detached.then(|| {
        let cos = naive_cosines(&points(&c.features, prec), &points(&c.weights, prec));
        (0..c.labels.len())
            .map(|i| {
                let v = cos.get(i, c.labels[i]);
                naive_target(&rule_of_row(c, i), v).sub(v)
            })
            .collect()
    });
    let sh = shifts.as_deref();
    let loss = &answer.output("loss").unwrap().values()[0];
    for (name, tensor) in answer.gradients.iter() {
        let what = format!("{c:?} {name}");
        let scale = Matrix::from_vec(1, 1, vec![c.scale]).unwrap();
        let at = match *name {
            "features" => &c.features,
            "weights" => &c.weights,
            "scale" => &scale,
            other => panic!("unexpected gradient {other}"),
        };
        check_gradient(&what, loss, tensor.values(), at, |v, p| {
            let s = Interval::from_f64(p, c.scale);
            match *name {
                "features" => naive_loss(c, v, &points(&c.weights, p), &s, sh),
                "weights" => naive_loss(c, &points(&c.features, p), v, &s, sh),
                _ => naive_loss(
                    c,
                    &points(&c.features, p),
                    &points(&c.weights, p),
                    v.get(0, 0),
                    sh,
                ),
            }
        });
    }
}

#[test]
fn gradients_match_numerical_differentiation_in_every_regime_and_variant() {
    let reached = RefCell::new(BTreeSet::new());
    for (k, (loss, margin, scale)) in margin_variants().into_iter().enumerate() {
        for angle in Angle::ALL {
            let mut runner = deterministic_runner(common::cases(3));
            runner
                .run(&problem(angle, ARC_M, false), |p| {
                    if p.target_angles().iter().any(|&t| angle.reached(t, ARC_M)) {
                        reached.borrow_mut().insert(angle);
                    }
                    let reduction = if k % 2 == 0 {
                        Reduction::Mean
                    } else {
                        Reduction::Sum
                    };
                    check_numdiff(&case(&p, loss, margin, scale, reduction));
                    Ok(())
                })
                .unwrap();
        }
    }
    assert_eq!(
        reached.into_inner(),
        Angle::ALL.into_iter().collect::<BTreeSet<_>>(),
        "a regime was never reached"
    );
}

/// Two certified answers are the same real numbers: every enclosure overlaps and every
/// value rounds to the same binary64.
pub(crate) fn assert_same(
    what: &str,
    a: &CertifiedAnswer,
    b: &CertifiedAnswer,
    map: impl Fn(&str, usize) -> usize,
) {
    for (section, name, ta) in a.answer.sections() {
        let tb = if section == "outputs" {
            b.answer.output(name)
        } else {
            b.answer.gradient(name)
        };
        let Some(tb) = tb else { continue };
        let (va, vb): (&[Certified], &[Certified]) = (ta.values(), tb.values());
        assert_eq!(va.len(), vb.len());
        for (k, x) in va.iter().enumerate() {
            let y = &vb[map(name, k)];
            assert!(
                x.enclosure.overlaps(&y.enclosure) && x.f64.to_bits() == y.f64.to_bits(),
                "{what}: {section}.{name}[{k}]: {} vs {}",
                x.decimal,
                y.decimal
            );
        }
    }
}

pub(crate) fn same_order(_: &str, k: usize) -> usize {
    k
}

#[test]
fn t7_degenerate_margins_reduce_to_normface_cosface_and_arcface() {
    let mut runner = deterministic_runner(common::cases(12));
    let angles = proptest::sample::select(Angle::ALL.to_vec());
    let strategy = (angles, 0.05f64..1.2, 1.0f64..64.0)
        .prop_flat_map(|(a, m, s)| (problem(a, m, false), Just((m, s))));
    runner
        .run(&strategy, |(p, (m, s))| {
            let r = Reduction::Mean;
            let normface = certify(&case(&p, LossId::NormFace, Margin::None, s, r));
            let cosface0 = certify(&case(
                &p,
                LossId::CosFace,
                Margin::Additive { m: 0.0 },
                s,
                r,
            ));
            assert_same("cosface(0) = normface", &cosface0, &normface, same_order);
            for boundary in Boundary::ALL {
                let arc0 = Margin::Angular {
                    m: 0.0,
                    boundary,
                    grad: MarginGrad::Full,
                };
                assert_same(
                    "arcface(0) = normface",
                    &certify(&case(&p, LossId::ArcFace, arc0, s, r)),
                    &normface,
                    same_order,
                );
            }
            let comb = |m1, m2, m3| {
                certify(&case(
                    &p,
                    LossId::Combined,
                    Margin::Combined { m1, m2, m3 },
                    s,
                    r,
                ))
            };
            assert_same(
                "combined(1,0,0) = normface",
                &comb(1.0, 0.0, 0.0),
                &normface,
                same_order,
            );
            let cosface = certify(&case(&p, LossId::CosFace, Margin::Additive { m }, s, r));
            assert_same(
                "combined(1,0,m) = cosface(m)",
                &comb(1.0, 0.0, m),
                &cosface,
                same_order,
            );
            let arc = Margin::Angular {
                m,
                boundary: Boundary::None,
                grad: MarginGrad::Full,
            };
            match normalized::evaluate(&case(&p, LossId::ArcFace, arc, s, r), 256) {
                Ok(_) => {
                    let arcface = certify(&case(&p, LossId::ArcFace, arc, s, r));
                    assert_same(
                        "combined(1,m,0) = arcface(m, none)",
                        &comb(1.0, m, 0.0),
                        &arcface,
                        same_order,
                    );
                }
                // A target at θ = 0 is an undefined point of the full margin gradient (SPEC
                // §1), and then of combined(1, m, 0) too, at the same place.
                Err(e) => {
                    assert_eq!(e.kind, lossref::error::ErrorKind::Invalid, "{e}");
                    let combined = Margin::Combined {
                        m1: 1.0,
                        m2: m,
                        m3: 0.0,
                    };
                    let c = normalized::evaluate(&case(&p, LossId::Combined, combined, s, r), 256)
                        .expect_err("combined(1, m, 0) has arcface's undefined point");
                    assert_eq!((c.kind, &c.place), (e.kind, &e.place), "{c} vs {e}");
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Scales row `i` of a matrix by 2^k (exact).
fn scale_row(m: &Matrix<f64>, i: usize, k: i32) -> Matrix<f64> {
    Matrix::from_fn(m.rows(), m.cols(), |r, c| {
        if r == i {
            m.get(r, c) * 2f64.powi(k)
        } else {
            *m.get(r, c)
        }
    })
}

#[test]
fn positive_rescaling_of_any_row_changes_nothing_but_that_rows_gradient() {
    let mut runner = deterministic_runner(common::cases(10));
    let strategy = drawn();
    runner
        .run(&strategy, |((angle, v, k, row, on_weights), p)| {
            let _ = angle;
            let (loss, margin, s) = margin_variants()[v];
            let base = case(&p, loss, margin, s, Reduction::Sum);
            let mut moved = base.clone();
            let (rows, name) = if on_weights { (p.weights.rows(), "weights") } else { (p.features.rows(), "features") };
            let i = row % rows;
            if on_weights {
                moved.weights = scale_row(&p.weights, i, k);
            } else {
                moved.features = scale_row(&p.features, i, k);
            }
            let a = certify(&base);
            let b = certify(&moved);
            let cols = p.features.cols();
            // ∂L/∂(λv) = (1/λ)·∂L/∂v on the rescaled row; everything else is unchanged.
            for (section, n, ta) in a.answer.sections() {
                let tb = if section == "outputs" { b.answer.output(n) } else { b.answer.gradient(n) }.unwrap();
                for (e, (x, y)) in ta.values().iter().zip(tb.values()).enumerate() {
                    let on_row = n == name && e / cols == i;
                    let want = if on_row { x.f64 * 2f64.powi(-k) } else { x.f64 };
                    assert!(
                        y.f64 == want || (want.abs() < f64::MIN_POSITIVE && (y.f64 - want).abs() <= f64::MIN_POSITIVE * f64::EPSILON),
                        "{loss} {margin:?}: {section}.{n}[{e}] after scaling {name}[{i}] by 2^{k}: {} vs {want:e}",
                        y.f64
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

/// (regime, variant index, exponent k, row, whether the weights are rescaled)
type Draw = (Angle, usize, i32, usize, bool);

/// Draws the parameters and then a problem in the drawn regime.
fn drawn() -> BoxedStrategy<(Draw, Problem)> {
    (
        proptest::sample::select(Angle::ALL.to_vec()),
        0usize..margin_variants().len(),
        -30i32..30,
        0usize..8,
        proptest::bool::ANY,
    )
        .prop_flat_map(|params| (Just(params), problem(params.0, ARC_M, false)))
        .boxed()
}

#[test]
fn permuting_classes_permutes_the_answer() {
    let mut runner = deterministic_runner(common::cases(10));
    let strategy = drawn();
    runner
        .run(&strategy, |((_, v, _, rot, _), p)| {
            let (loss, margin, s) = margin_variants()[v];
            let c = p.weights.rows();
            // class j moves to position (j + rot) mod C
            let perm = |j: usize| (j + rot) % c;
            let mut inverse = vec![0; c];
            for j in 0..c {
                inverse[perm(j)] = j;
            }
            let base = case(&p, loss, margin, s, Reduction::Mean);
            let mut moved = base.clone();
            moved.weights =
                Matrix::from_fn(c, p.weights.cols(), |r, k| *p.weights.get(inverse[r], k));
            moved.labels = p.labels.iter().map(|&y| perm(y)).collect();
            let d = p.weights.cols();
            let a = certify(&base);
            let b = certify(&moved);
            assert_same("class permutation", &a, &b, |name, k| {
                if name == "weights" {
                    perm(k / d) * d + k % d
                } else {
                    k
                }
            });
            Ok(())
        })
        .unwrap();
}

/// A unit-norm feature at angle θ from w = (1, 0, 0), in the plane of the second axis.
fn at_angle(theta: f64) -> Vec<f64> {
    vec![theta.cos(), theta.sin(), 0.0]
}

#[test]
fn a_1e_minus_12_step_across_the_thmm_switch_jumps_by_cos_theta_minus_m_sin_m_against_cos_theta_plus_m(
) {
    let m = ARC_M;
    let weights = Matrix::from_rows(vec![vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]]).unwrap();
    let mk = |theta: f64, boundary| NormalizedCase {
        loss: LossId::ArcFace,
        scale: 64.0,
        margin: Margin::Angular {
            m,
            boundary,
            grad: MarginGrad::Full,
        },
        reduction: Reduction::Sum,
        features: Matrix::from_rows(vec![at_angle(theta)]).unwrap(),
        weights: weights.clone(),
        labels: vec![0],
        margins: None,
        margins_as: Default::default(),
        classes: None,
    };
    let switch = PI - m;
    let (below, above) = (switch - 1e-12, switch + 1e-12);
    let loss = |c: &NormalizedCase| certify(c).answer.output("loss").unwrap().values()[0].f64;
    // Before the switch (θ < π − m) thmm is the paper's formula; after it, the fallback.
    assert_eq!(
        loss(&mk(below, Boundary::Thmm)),
        loss(&mk(below, Boundary::None))
    );
    assert_ne!(
        loss(&mk(above, Boundary::Thmm)),
        loss(&mk(above, Boundary::None))
    );
    // The jump: target logit s·cos(θ+m) → s·(cos θ − m sin m) at θ = π − m, i.e. from −s to
    // s(−cos m − m sin m); the other logit is s·cos(π/2) = 0. So the loss goes from
    // ln(1 + e^{s}) to ln(1 + e^{s(cos m + m sin m)}).
    let s = 64.0f64;
    let want_below = (1.0 + s.exp()).ln();
    let want_above = (1.0 + (s * (m.cos() + m * m.sin())).exp()).ln();
    let jump = loss(&mk(above, Boundary::Thmm)) - loss(&mk(below, Boundary::Thmm));
    assert!(
        (jump - (want_above - want_below)).abs() < 1e-9,
        "jump {jump} vs {}",
        want_above - want_below
    );
    assert!(
        jump.abs() > 7.0,
        "the documented jump of s·(1 − cos m − m sin m) ≈ −7.5 is missing: {jump}"
    );
}

fn error_of(c: &NormalizedCase) -> String {
    match certified(&Case::Normalized(c.clone())) {
        Ok(_) => panic!("{c:?} should be undefined"),
        Err(e) => e.to_string(),
    }
}

fn pole_case(feature: Vec<f64>, margin: Margin) -> NormalizedCase {
    NormalizedCase {
        // the loss whose rule the margin is (the case is validated)
        loss: if matches!(margin, Margin::Combined { .. }) {
            LossId::Combined
        } else {
            LossId::ArcFace
        },
        scale: 64.0,
        margin,
        reduction: Reduction::Mean,
        features: Matrix::from_rows(vec![vec![0.5, 0.25, 3.0], feature]).unwrap(),
        weights: Matrix::from_rows(vec![vec![1.0, 2.0, -1.5], vec![0.25, -1.0, 0.125]]).unwrap(),
        labels: vec![1, 0],
        margins: None,
        margins_as: Default::default(),
        classes: None,
    }
}

#[test]
fn a_target_at_cos_theta_plus_or_minus_one_is_undefined_where_the_margin_needs_dtheta() {
    let parallel = vec![3.0, 6.0, -4.5]; // 3 × weights[0]
    let anti = vec![-0.5, -1.0, 0.75]; // −½ × weights[0]
    let full = |boundary| Margin::Angular {
        m: ARC_M,
        boundary,
        grad: MarginGrad::Full,
    };
    for (x, boundary) in [
        (&parallel, Boundary::None),
        (&anti, Boundary::None),
        (&parallel, Boundary::Thmm),
        (&parallel, Boundary::Easy),
    ] {
        let e = error_of(&pole_case(x.clone(), full(boundary)));
        assert!(
            e.starts_with(
                "inputs.features[1]: cos θ to its class weight inputs.weights[0] is exactly"
            ),
            "{e}"
        );
        assert!(e.contains("detached"), "{e}");
    }
    // Defined: the fallbacks at cos θ = −1 are affine in cos θ, detached never needs dθ,
    // and combined(m1, 0, ·) has a limit at θ = 0 (and at θ = π for integer m1).
    for c in [
        pole_case(anti.clone(), full(Boundary::Thmm)),
        pole_case(anti.clone(), full(Boundary::Easy)),
        pole_case(
            parallel.clone(),
            Margin::Angular {
                m: ARC_M,
                boundary: Boundary::None,
                grad: MarginGrad::Detached,
            },
        ),
        pole_case(
            parallel.clone(),
            Margin::Combined {
                m1: 2.0,
                m2: 0.0,
                m3: 0.1,
            },
        ),
        pole_case(
            parallel.clone(),
            Margin::Combined {
                m1: 1.5,
                m2: 0.0,
                m3: 0.0,
            },
        ),
        pole_case(
            anti.clone(),
            Margin::Combined {
                m1: 3.0,
                m2: 0.0,
                m3: 0.2,
            },
        ),
    ] {
        certify(&c);
        check_numdiff(&c);
    }
    let e = error_of(&pole_case(
        anti.clone(),
        Margin::Combined {
            m1: 1.5,
            m2: 0.0,
            m3: 0.0,
        },
    ));
    assert!(e.contains("cos(m1·θ + m2) − m3"), "{e}");
    let e = error_of(&pole_case(
        parallel,
        Margin::Combined {
            m1: 1.0,
            m2: 0.5,
            m3: 0.0,
        },
    ));
    assert!(e.contains("is exactly 1 (x ∥ w)"), "{e}");
}

#[test]
fn the_easy_switch_at_exactly_orthogonal_vectors_is_undefined_for_the_full_gradient() {
    // x·w_0 = 2·1 + (−1)·2 + 0·(−1.5) = 0 exactly, though neither vector is axis-aligned.
    let orthogonal = vec![2.0, -1.0, 0.0];
    let mut c = pole_case(
        orthogonal,
        Margin::Angular {
            m: ARC_M,
            boundary: Boundary::Easy,
            grad: MarginGrad::Full,
        },
    );
    let e = error_of(&c);
    assert!(e.contains("is exactly 0, the `easy` switch"), "{e}");
    c.margin = Margin::Angular {
        m: ARC_M,
        boundary: Boundary::Easy,
        grad: MarginGrad::Detached,
    };
    certify(&c);
    check_numdiff(&c);
    c.margin = Margin::Angular {
        m: 0.0,
        boundary: Boundary::Easy,
        grad: MarginGrad::Full,
    };
    certify(&c);
}

#[test]
fn the_spec_example_certifies_with_exact_zeros_orthogonal_to_axis_aligned_weights() {
    let c = NormalizedCase {
        loss: LossId::CosFace,
        scale: 64.0,
        margin: Margin::Additive { m: 0.35 },
        reduction: Reduction::Mean,
        features: Matrix::from_rows(vec![vec![0.5, -1.25], vec![2.0, 0.75]]).unwrap(),
        weights: Matrix::from_rows(vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![-1.0, -1.0]]).unwrap(),
        labels: vec![0, 2],
        margins: None,
        margins_as: Default::default(),
        classes: None,
    };
    let a = certify(&c);
    // ∂L/∂w_j ⟂ w_j: the gradient of weights[0] = e_0 has an exact 0 in column 0.
    let gw = a.answer.gradient("weights").unwrap().values();
    assert!(gw[0].enclosure.is_point() && gw[0].f64 == 0.0);
    assert!(gw[3].enclosure.is_point() && gw[3].f64 == 0.0);
    check_numdiff(&c);
}
