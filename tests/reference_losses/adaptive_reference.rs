//! The adaptive margins' reference (SPEC §5: `curricularface`, `adaface`, `magface`,
//! `adacos`) against independent checks: every gradient against central differences of a
//! naive loss written here from SPEC §5 with the batch state held constant (≥ 40 digits,
//! the numerical-gradient harness of `common::gradient`), over generated problems and the
//! first f64 corpus case of every generator; SPEC §2 T7's identities (CurricularFace with
//! no hard negatives is arcface `thmm`, AdaFace with h = 0 is cosface where its clamps are
//! inactive, MagFace with l_m = u_m is arcface `easy` plus its regularizer, AdaCos is
//! normface at s'); and the undefined points and errors of SPEC §5.

use crate::common;

use common::deterministic_runner;
use common::geometry::{adaptive_rules, sized_problem, Angle, ARC_M};
use common::gradient::{check_gradient, points};
use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::reference::certified;
use lossref::reference::softmax::{cross_entropies, reduce};
use lossref::spec::{
    AdaptiveCase, AdaptiveRule, Boundary, Case, LossId, Margin, MarginGrad, NormalizedCase,
    Reduction,
};

fn num(p: u32, x: f64) -> Interval {
    Interval::from_f64(p, x)
}

fn norms(x: &Matrix<Interval>) -> Vec<Interval> {
    let p = x.get(0, 0).prec();
    (0..x.rows())
        .map(|i| {
            let sq: Vec<Interval> = x.row(i).iter().map(|a| a.mul(a)).collect();
            Interval::sum(p, &sq).sqrt()
        })
        .collect()
}

fn cosines(x: &Matrix<Interval>, w: &Matrix<Interval>) -> Matrix<Interval> {
    let p = x.get(0, 0).prec();
    let (nx, nw) = (norms(x), norms(w));
    Matrix::from_fn(x.rows(), w.rows(), |i, j| {
        let d: Vec<Interval> = x
            .row(i)
            .iter()
            .zip(w.row(j))
            .map(|(a, b)| a.mul(b))
            .collect();
        Interval::sum(p, &d).div(&nx[i].mul(&nw[j]))
    })
}

/// The clamp of SPEC §5 on midpoints (the generated inputs stay far from every bound at the
/// scale of a difference step).
fn clamp(v: &Interval, lo: &Interval, hi: &Interval) -> Interval {
    if v.mid() < lo.mid() {
        lo.clone()
    } else if v.mid() > hi.mid() {
        hi.clone()
    } else {
        v.clone()
    }
}

/// The batch state of SPEC §5 from the unperturbed inputs, written from its definitions:
/// (t', ẑ_i, s').
struct State {
    t_next: Interval,
    zhat: Vec<Interval>,
    scale_next: Interval,
}

fn state(c: &AdaptiveCase, p: u32) -> State {
    let (x, w) = (points(&c.features, p), points(&c.weights, p));
    let cos = cosines(&x, &w);
    let n = c.labels.len();
    let targets: Vec<Interval> = (0..n).map(|i| cos.get(i, c.labels[i]).clone()).collect();
    let one = num(p, 1.0);
    let mut st = State {
        t_next: num(p, 0.0),
        zhat: Vec::new(),
        scale_next: num(p, 0.0),
    };
    match c.rule {
        AdaptiveRule::CurricularFace { momentum, t, .. } => {
            let mean = Interval::sum(p, &targets).div_i64(n as i64);
            st.t_next = num(p, momentum)
                .mul(&mean)
                .add(&one.sub(&num(p, momentum)).mul(&num(p, t)));
        }
        AdaptiveRule::AdaFace {
            h,
            t_alpha,
            eps,
            batch_mean,
            batch_std,
            ..
        } => {
            let safe: Vec<Interval> = norms(&x)
                .iter()
                .map(|v| clamp(v, &num(p, 0.001), &num(p, 100.0)))
                .collect();
            let mean = Interval::sum(p, &safe).div_i64(n as i64);
            let dev: Vec<Interval> = safe
                .iter()
                .map(|v| v.sub(&mean).mul(&v.sub(&mean)))
                .collect();
            let std = Interval::sum(p, &dev).div_i64(n as i64 - 1).sqrt();
            let ta = num(p, t_alpha);
            let mu = ta.mul(&mean).add(&one.sub(&ta).mul(&num(p, batch_mean)));
            let sigma = ta.mul(&std).add(&one.sub(&ta).mul(&num(p, batch_std)));
            st.zhat = safe
                .iter()
                .map(|v| {
                    let raw = num(p, h).mul(&v.sub(&mu)).div(&sigma.add(&num(p, eps)));
                    clamp(&raw, &num(p, -1.0), &one)
                })
                .collect();
        }
        AdaptiveRule::MagFace { .. } => {}
        AdaptiveRule::AdaCos => {
            let mut terms = Vec::new();
            for i in 0..n {
                for j in (0..c.weights.rows()).filter(|&j| j != c.labels[i]) {
                    terms.push(num(p, c.scale).mul(cos.get(i, j)).exp());
                }
            }
            let b = Interval::sum(p, &terms).div_i64(n as i64);
            let mut theta: Vec<Interval> = targets.iter().map(Interval::acos).collect();
            theta.sort_by(|a, b| a.mid().partial_cmp(&b.mid()).unwrap());
            let med = theta[(n - 1) / 2].clone();
            let quarter = Interval::pi(p).div_i64(4);
            let m = if med.mid() < quarter.mid() {
                med
            } else {
                quarter
            };
            st.scale_next = b.ln().div(&m.cos());
        }
    }
    st
}

/// The loss of SPEC §5 at (x, w), the batch state `st` held constant.
fn naive_loss(
    c: &AdaptiveCase,
    st: &State,
    x: &Matrix<Interval>,
    w: &Matrix<Interval>,
) -> Interval {
    let p = x.get(0, 0).prec();
    let cos = cosines(x, w);
    let s = num(p, c.scale);
    let nx = norms(x);
    let mut owns = Vec::new();
    let logits = Matrix::from_fn(cos.rows(), cos.cols(), |i, j| {
        let y = c.labels[i];
        let v = cos.get(i, j);
        let cy = cos.get(i, y);
        match c.rule {
            AdaptiveRule::CurricularFace { m, .. } => {
                let arc = cy.acos().add(&num(p, m)).cos();
                if j == y {
                    let th = Interval::pi(p).sub(&num(p, m)).cos();
                    if cy.mid() > th.mid() {
                        s.mul(&arc)
                    } else {
                        s.mul(&cy.sub(&num(p, m).mul(&num(p, m).sin())))
                    }
                } else if v.mid() > arc.mid() {
                    s.mul(v).mul(&st.t_next.add(v))
                } else {
                    s.mul(v)
                }
            }
            AdaptiveRule::AdaFace { m, eps, .. } => {
                let (lo, hi) = (
                    num(p, -1.0).add(&num(p, eps)),
                    num(p, 1.0).sub(&num(p, eps)),
                );
                let cc = clamp(v, &lo, &hi);
                if j != y {
                    return s.mul(&cc);
                }
                let z = &st.zhat[i];
                let phi = clamp(
                    &cc.acos().sub(&num(p, m).mul(z)),
                    &num(p, eps),
                    &Interval::pi(p).sub(&num(p, eps)),
                );
                s.mul(&phi.cos().sub(&num(p, m)).sub(&num(p, m).mul(z)))
            }
            AdaptiveRule::MagFace {
                l_a,
                u_a,
                l_m,
                u_m,
                boundary,
                ..
            } => {
                if j != y {
                    return s.mul(v);
                }
                let a = clamp(&nx[i], &num(p, l_a), &num(p, u_a));
                let k = num(p, u_m).sub(&num(p, l_m)).div(&num(p, u_a - l_a));
                let m = k.mul(&a.sub(&num(p, l_a))).add(&num(p, l_m));
                let arc = v.acos().add(&m).cos();
                let g = match boundary {
                    Boundary::None => arc,
                    Boundary::Easy if v.mid() > 0 => arc,
                    Boundary::Easy => v.clone(),
                    Boundary::Thmm if v.mid() > Interval::pi(p).sub(&m).cos().mid() => arc,
                    Boundary::Thmm => v.sub(&m.mul(&m.sin())),
                };
                s.mul(&g)
            }
            AdaptiveRule::AdaCos => st.scale_next.mul(v),
        }
    });
    if let AdaptiveRule::MagFace {
        l_a, u_a, lambda_g, ..
    } = c.rule
    {
        for v in &nx {
            let a = clamp(v, &num(p, l_a), &num(p, u_a));
            owns.push(num(p, lambda_g).mul(&a.div(&num(p, u_a * u_a)).add(&num(p, 1.0).div(&a))));
        }
    }
    let ce = reduce(&cross_entropies(&logits, &c.labels), c.reduction);
    if owns.is_empty() {
        ce
    } else {
        ce.add(&reduce(&owns, c.reduction))
    }
}

/// Every gradient of `c` against central differences of [`naive_loss`].
fn check_numdiff(c: &AdaptiveCase) {
    let prec = 1024;
    let answer = lossref::reference::evaluate(&Case::Adaptive(c.clone()), prec)
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let loss = &answer.output("loss").unwrap().values()[0];
    for (name, tensor) in answer.gradients.iter() {
        let what = format!("{c:?} {name}");
        let at = if *name == "features" {
            &c.features
        } else {
            &c.weights
        };
        check_gradient(&what, loss, tensor.values(), at, |v, p| {
            let st = state(c, p);
            if *name == "features" {
                naive_loss(c, &st, v, &points(&c.weights, p))
            } else {
                naive_loss(c, &st, &points(&c.features, p), v)
            }
        });
    }
}

fn case_of(
    rule: AdaptiveRule,
    scale: f64,
    p: &common::geometry::Problem,
    reduction: Reduction,
) -> AdaptiveCase {
    AdaptiveCase {
        scale,
        rule,
        reduction,
        features: p.features.clone(),
        weights: p.weights.clone(),
        labels: p.labels.clone(),
    }
}

#[test]
fn gradients_match_numerical_differentiation() {
    for (k, (rule, scale)) in adaptive_rules().into_iter().enumerate() {
        for angle in [Angle::Moderate, Angle::NearThmm] {
            let mut runner = deterministic_runner(common::cases(2));
            runner
                .run(&sized_problem(angle, ARC_M, false, (4, 5, 3)), |p| {
                    if p.labels.len() < 2 {
                        return Ok(());
                    }
                    let reduction = if k % 2 == 0 {
                        Reduction::Mean
                    } else {
                        Reduction::Sum
                    };
                    let c = case_of(rule, scale, &p, reduction);
                    if certified(&Case::Adaptive(c.clone())).is_ok() {
                        check_numdiff(&c);
                    }
                    Ok(())
                })
                .unwrap();
        }
    }
}

/// The first float64 case of every corpus generator of these losses: each regime (hard
/// negatives on both sides of the mask, norms beyond the clamps, ẑ at ±1, cosines past
/// 1 − eps, the median on both sides of π/4).
#[test]
fn corpus_regimes_match_numerical_differentiation() {
    let mut checked = 0;
    for g in lossref::corpus::all_cases() {
        let loss = g.case["loss"].as_str().unwrap_or_default();
        let adaptive = ["curricularface", "adaface", "magface", "adacos"].contains(&loss);
        if adaptive && g.id.ends_with("f64-0000") {
            let Case::Adaptive(c) = lossref::case::case_from_json(&g.case).unwrap() else {
                panic!("{}: not an adaptive case", g.id);
            };
            check_numdiff(&c);
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} generators checked");
}

/// The loss and gradients of two certified answers, value for value (each correctly
/// rounded to binary64, so equal reals give equal doubles).
fn same_loss_and_gradients(a: &Case, b: &Case) {
    let (x, y) = (certified(a).unwrap(), certified(b).unwrap());
    let loss = |c: &lossref::CertifiedAnswer| c.answer.loss().unwrap().f64;
    assert_eq!(loss(&x), loss(&y), "{a:?} against {b:?}: loss");
    for name in ["features", "weights"] {
        let values = |c: &lossref::CertifiedAnswer| -> Vec<f64> {
            c.answer
                .gradient(name)
                .unwrap()
                .values()
                .iter()
                .map(|v| v.f64)
                .collect()
        };
        assert_eq!(values(&x), values(&y), "{a:?} against {b:?}: {name}");
    }
}

fn normalized(c: &AdaptiveCase, loss: LossId, margin: Margin) -> Case {
    Case::Normalized(NormalizedCase {
        loss,
        scale: c.scale,
        margin,
        reduction: c.reduction,
        features: c.features.clone(),
        weights: c.weights.clone(),
        labels: c.labels.clone(),
        margins: None,
        margins_as: Default::default(),
        classes: None,
    })
}

/// T7: CurricularFace with no hard negative (every negative's cosine below cos(θ_y + m)) is
/// arcface with the `thmm` boundary, whatever t.
#[test]
fn curricularface_without_hard_negatives_is_arcface_thmm() {
    // targets near their weights, negatives opposite
    let c = AdaptiveCase {
        scale: 16.0,
        rule: AdaptiveRule::CurricularFace {
            m: 0.5,
            momentum: 0.5,
            t: 0.75,
        },
        reduction: Reduction::Mean,
        features: Matrix::from_vec(3, 3, vec![1.0, 0.1, 0.0, 0.05, 2.0, -0.1, 0.0, 0.1, 3.0])
            .unwrap(),
        weights: Matrix::from_vec(
            4,
            3,
            vec![
                1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, -1.0, -1.0, -1.0,
            ],
        )
        .unwrap(),
        labels: vec![0, 1, 2],
    };
    let arc = Margin::Angular {
        m: 0.5,
        boundary: Boundary::Thmm,
        grad: MarginGrad::Full,
    };
    same_loss_and_gradients(
        &Case::Adaptive(c.clone()),
        &normalized(&c, LossId::ArcFace, arc),
    );
    // and a hard negative changes the loss
    let mut hard = c.clone();
    hard.weights = Matrix::from_vec(
        4,
        3,
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.12, 0.0],
    )
    .unwrap();
    let (a, b) = (
        certified(&Case::Adaptive(hard.clone())).unwrap(),
        certified(&normalized(&hard, LossId::ArcFace, arc)).unwrap(),
    );
    assert_ne!(a.answer.loss().unwrap().f64, b.answer.loss().unwrap().f64);
}

/// T7: AdaFace with h = 0 (ẑ = 0) is cosface at its m, where no clamp holds.
#[test]
fn adaface_with_h_zero_is_cosface() {
    let mut runner = deterministic_runner(common::cases(4));
    runner
        .run(
            &sized_problem(Angle::Moderate, ARC_M, false, (5, 6, 4)),
            |p| {
                if p.labels.len() < 2 {
                    return Ok(());
                }
                let rule = AdaptiveRule::AdaFace {
                    m: 0.4,
                    h: 0.0,
                    t_alpha: 0.3,
                    eps: 1e-3,
                    batch_mean: 1.0,
                    batch_std: 2.0,
                };
                let c = case_of(rule, 64.0, &p, Reduction::Mean);
                let far = (0..c.labels.len()).all(|i| {
                    p.target_angles()[i] > 0.05
                        && p.target_angles()[i] < std::f64::consts::PI - 0.05
                });
                // every cosine inside (−1 + eps, 1 − eps) in moderate draws of D ≥ 2
                if far {
                    same_loss_and_gradients(
                        &Case::Adaptive(c.clone()),
                        &normalized(&c, LossId::CosFace, Margin::Additive { m: 0.4 }),
                    );
                }
                Ok(())
            },
        )
        .unwrap();
}

/// T7: MagFace with l_m = u_m is arcface `easy` at that margin, plus λ_g·g(a) reduced; with
/// λ_g = 0, arcface itself.
#[test]
fn magface_with_a_constant_margin_is_arcface_easy_plus_its_regularizer() {
    let mut runner = deterministic_runner(common::cases(4));
    runner
        .run(
            &sized_problem(Angle::Moderate, ARC_M, false, (5, 6, 4)),
            |p| {
                let rule = |lambda_g| AdaptiveRule::MagFace {
                    l_a: 0.5,
                    u_a: 2.0,
                    l_m: 0.35,
                    u_m: 0.35,
                    lambda_g,
                    boundary: Boundary::Easy,
                };
                let arc = Margin::Angular {
                    m: 0.35,
                    boundary: Boundary::Easy,
                    grad: MarginGrad::Full,
                };
                let plain = case_of(rule(0.0), 32.0, &p, Reduction::Sum);
                let Ok(_) = certified(&Case::Adaptive(plain.clone())) else {
                    return Ok(());
                };
                same_loss_and_gradients(
                    &Case::Adaptive(plain.clone()),
                    &normalized(&plain, LossId::ArcFace, arc),
                );
                // with λ_g = 3: the loss moves by 3·Σ g(a_i), a_i = clamp(‖x_i‖, l_a, u_a)
                let with = case_of(rule(3.0), 32.0, &p, Reduction::Sum);
                let regularizer: f64 = p
                    .features
                    .iter_rows()
                    .map(|x| {
                        let a = x.iter().map(|v| v * v).sum::<f64>().sqrt().clamp(0.5, 2.0);
                        3.0 * (a / 4.0 + 1.0 / a)
                    })
                    .sum();
                let loss = |c: &AdaptiveCase| {
                    certified(&Case::Adaptive(c.clone()))
                        .unwrap()
                        .answer
                        .loss()
                        .unwrap()
                        .f64
                };
                let moved = loss(&with) - loss(&plain);
                assert!(
                    (moved - regularizer).abs() <= 1e-12 * regularizer.abs().max(1.0),
                    "{moved} against {regularizer}"
                );
                Ok(())
            },
        )
        .unwrap();
}

/// AdaCos is normface at s': its loss at the binary64 rounding of s' differs by at most
/// |∂L/∂s|·|s' − fl(s')|; its features' gradient likewise.
#[test]
fn adacos_is_normface_at_the_scale_it_computes() {
    let mut runner = deterministic_runner(common::cases(4));
    runner
        .run(
            &sized_problem(Angle::Moderate, ARC_M, false, (5, 6, 4)),
            |p| {
                let c = case_of(AdaptiveRule::AdaCos, 3.0, &p, Reduction::Mean);
                let a = certified(&Case::Adaptive(c.clone())).unwrap();
                let s_next = a.answer.output("scale_next").unwrap().values()[0].f64;
                let mut face = normalized(&c, LossId::NormFace, Margin::None);
                if let Case::Normalized(n) = &mut face {
                    n.scale = s_next.abs().max(1e-3);
                }
                if s_next <= 0.0 {
                    return Ok(());
                }
                let b = certified(&face).unwrap();
                let ds = b.answer.gradient("scale").unwrap().values()[0].f64.abs();
                let allowed = (ds + 1.0) * s_next * f64::EPSILON * 4.0;
                let (la, lb) = (a.answer.loss().unwrap().f64, b.answer.loss().unwrap().f64);
                assert!(
                    (la - lb).abs() <= allowed + 4.0 * f64::EPSILON * la.abs(),
                    "{la} against {lb}"
                );
                Ok(())
            },
        )
        .unwrap();
}

/// SPEC §5's errors: N = 1 for AdaFace's unbiased σ; a norm exactly at MagFace's l_a; a
/// cosine exactly at AdaFace's clamp bound; a tie at CurricularFace's mask with m = 0.
#[test]
fn undefined_points_and_malformed_cases_are_errors_naming_their_place() {
    let eval = |json: serde_json::Value| {
        lossref::case::case_from_json(&json).and_then(|c| certified(&c).map(|_| ()))
    };
    let err = eval(serde_json::json!({"loss": "adaface", "inputs": {
        "features": [[1.0, 2.0]], "weights": [[1.0, 0.0], [0.0, 1.0]], "labels": [0]}}))
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs N ≥ 2"), "{err}");
    // ‖(3, 4)‖ = 5 = l_a exactly
    let err = eval(serde_json::json!({"loss": "magface", "params": {"l_a": 5, "u_a": 10},
        "inputs": {"features": [[3.0, 4.0], [1.0, 7.0]], "weights": [[1.0, 0.0], [0.0, 1.0]], "labels": [0, 1]}}))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("inputs.features[0]") && err.contains("‖x‖ is exactly 5"),
        "{err}"
    );
    // cos θ = 7/8 = 1 − eps exactly for eps = 1/8: w = (7, 3, 2, 1, 1) has norm 8
    let err = eval(serde_json::json!({"loss": "adaface", "params": {"eps": 0.125},
        "inputs": {"features": [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0]],
                   "weights": [[7.0, 3.0, 2.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0, 0.0]], "labels": [1, 1]}}))
    .unwrap_err()
    .to_string();
    assert!(err.contains("exactly 1 − eps"), "{err}");
    let err = eval(
        serde_json::json!({"loss": "curricularface", "params": {"margin": 0},
        "inputs": {"features": [[1.0, 1.0]], "weights": [[1.0, 0.0], [0.0, 1.0]], "labels": [0]}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("hard-negative mask"), "{err}");
    let err = eval(
        serde_json::json!({"loss": "magface", "params": {"l_a": 5, "u_a": 2},
        "inputs": {"features": [[3.0, 4.0]], "weights": [[1.0, 0.0], [0.0, 1.0]], "labels": [0]}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("params.u_a"), "{err}");
}
