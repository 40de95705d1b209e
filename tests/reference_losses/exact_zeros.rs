//! Exact zeros (SPEC.md "Exact zeros", proofs/exact_zeros.md): the values that symmetry and
//! special angles make exactly 0 are certified as "0", every other value of those cases
//! as before, and all of them agree with an independent evaluation.

use crate::common;

use lossref::case::parse_case;
use lossref::corpus::exact_zero::{cases, Frame};
use lossref::corpus::generate::Generated;
use lossref::mp::certify::{CertifiedAnswer, Tier};
use lossref::reference::certified;
use lossref::spec::Dtype;
use std::collections::BTreeMap;

fn certify(g: &Generated) -> CertifiedAnswer {
    let case = parse_case(&g.case.to_string()).unwrap_or_else(|e| panic!("{}: {e}", g.id));
    certified(&case).unwrap_or_else(|e| panic!("{}: {e}", g.id))
}

/// Every generated case, in every frame: certified, tier `correctly_rounded`; the proven
/// zeros counted per loss.
#[test]
fn every_exact_zero_case_certifies() {
    let all = cases(Dtype::Float64, &Frame::ALL);
    let mut zeros: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for g in &all {
        let answer = certify(g);
        assert_eq!(answer.certificate.tier, Tier::CorrectlyRounded, "{}", g.id);
        let n = answer
            .answer
            .sections()
            .flat_map(|(_, _, t)| t.values())
            .filter(|c| c.decimal == "0")
            .count();
        let loss = g.case["loss"].as_str().unwrap_or("?").to_string();
        let entry = zeros.entry(loss).or_default();
        entry.0 += 1;
        entry.1 += n;
    }
    eprintln!("exact-zero cases (cases, values proven 0): {zeros:?}");
    assert!(all.len() >= 500, "{} cases", all.len());
    for (loss, (_, n)) in &zeros {
        if !matches!(loss.as_str(), "softmax" | "softmax_ce") {
            assert!(*n > 0, "{loss}: no exact zero among its cases");
        }
    }
}

/// The `permuted` frame against mpmath (tests/mpmath_reference.py: literal formulas, central
/// differences at 400 digits), together with each case perturbed so that its symmetry
/// breaks (the first feature gains 2⁻¹⁰ along the axis of the ±e₅ pair): every "0" must be
/// an mpmath value below 1e−100, and no perturbed value that is not 0 may be printed as 0.
#[test]
fn exact_zero_cases_agree_with_mpmath() {
    let mut all: Vec<serde_json::Value> = cases(Dtype::Float64, &[Frame::Permuted])
        .into_iter()
        .map(|g| g.case)
        .collect();
    let perturbed: Vec<serde_json::Value> = all
        .iter()
        .filter(|c| {
            c["inputs"].get("features").is_some()
                && c["inputs"]["weights"][0]
                    .as_array()
                    .is_some_and(|r| r.len() == 5)
        })
        .map(|c| {
            let mut c = c.clone();
            c["inputs"]["features"][0][4] = serde_json::json!(1.0 / 1024.0);
            c
        })
        .collect();
    all.extend(perturbed);
    let worst = common::mpmath::eval_agrees(&all);
    eprintln!(
        "{} cases; the least agreement was {worst:.1} digits",
        all.len()
    );
}

/// Step 1 of proofs/exact_zeros.md: each gradient value equals its stated factor times
/// Σ_r Σ_l p_rl·B_rl, the exact form the zero test reads. Checked at 320 bits for every
/// variant, on the exact-zero configurations and on the same configurations made generic
/// (every input moved by a different small dyadic amount), against the reference's own
/// enclosures. The target logits and slopes that the form leaves symbolic are evaluated
/// here from SPEC §1's formulas.
#[test]
fn exact_form_matches_reference() {
    use lossref::exact::form;
    use lossref::mp::interval::Interval;
    use lossref::reference::evaluate;
    use lossref::spec::{Case, Margin, Reduction};
    const PREC: u32 = 320;
    let num = |x: f64| Interval::from_f64(PREC, x);
    let mut generic = cases(Dtype::Float64, &[Frame::Axis, Frame::Permuted]);
    let nudged: Vec<Generated> = generic
        .iter()
        .map(|g| {
            let mut g = g.clone();
            let mut k = 0u32;
            if let Some(inputs) = g.case["inputs"].as_object_mut() {
                for (name, m) in inputs.iter_mut() {
                    if name == "labels" {
                        continue;
                    }
                    for row in m.as_array_mut().into_iter().flatten() {
                        for v in row.as_array_mut().into_iter().flatten() {
                            k += 1;
                            let x = v.as_f64().unwrap_or(0.0) + f64::from(k % 7 + 1) / 64.0;
                            *v = serde_json::json!(x);
                        }
                    }
                }
            }
            g
        })
        .collect();
    generic.extend(nudged);
    let mut checked = 0usize;
    for g in &generic {
        let case = parse_case(&g.case.to_string()).unwrap();
        let Some(form) = form(&case, PREC) else {
            continue;
        };
        let answer = evaluate(&case, PREC).unwrap();
        // the factor in front of the combination, by SPEC §1's chain rule
        let norm = |v: &[f64]| {
            let sq: Vec<Interval> = v.iter().map(|&a| num(a).powi(2)).collect();
            Interval::sum(PREC, &sq).sqrt()
        };
        type Target = Box<dyn Fn(u8, &lossref::exact::surd::Surd) -> Interval>;
        type Slope = Box<dyn Fn(&lossref::exact::surd::Surd) -> Interval>;
        type Factor<'a> = Box<dyn Fn(&str, usize) -> Interval + 'a>;
        let (factor, target, slope): (Factor<'_>, Target, Slope) = match &case {
            Case::Normalized(c) => {
                let s = c.scale;
                let per = if c.reduction == Reduction::Mean {
                    c.features.rows() as f64
                } else {
                    1.0
                };
                let d = c.features.cols();
                let f = c.features.clone();
                let w = c.weights.clone();
                let margin = c.margin;
                let theta = |cos: &lossref::exact::surd::Surd| cos.enclose(PREC).acos();
                let target: Target = Box::new(move |rule, cos| {
                    let t = theta(cos);
                    let g = match (rule, margin) {
                        (0, Margin::Angular { m, .. }) => t.add(&num(m)).cos(),
                        (1, Margin::Angular { m, .. }) => {
                            cos.enclose(PREC).sub(&num(m).mul(&num(m).sin()))
                        }
                        (2, Margin::Combined { m2, m3, .. }) => num(m2).cos().sub(&num(m3)),
                        (3, Margin::Combined { m1, m2, m3 }) => {
                            num(m1).mul(&t).add(&num(m2)).cos().sub(&num(m3))
                        }
                        other => panic!("no target rule {other:?}"),
                    };
                    num(s).mul(&g)
                });
                let slope: Slope = Box::new(move |cos| {
                    let t = theta(cos);
                    let (m1, m2) = match margin {
                        Margin::Angular { m, .. } => (1.0, m),
                        Margin::Combined { m1, m2, .. } => (m1, m2),
                        other => panic!("no slope symbol for {other:?}"),
                    };
                    num(m1)
                        .mul(&num(m1).mul(&t).add(&num(m2)).sin())
                        .div(&t.sin())
                });
                let factor = Box::new(move |name: &str, index: usize| match name {
                    "features" => num(s).div(&num(per)).div(&norm(f.row(index / d)).powi(3)),
                    "weights" => num(s).div(&num(per)).div(&norm(w.row(index / d)).powi(3)),
                    _ => num(1.0).div(&num(per)),
                });
                (factor as Factor, target, slope)
            }
            Case::Multiplicative(c) => {
                let per = if c.reduction == Reduction::Mean {
                    c.features.rows() as f64
                } else {
                    1.0
                };
                (
                    Box::new(move |_: &str, _| num(1.0).div(&num(per))) as Factor,
                    Box::new(|_: u8, _: &lossref::exact::surd::Surd| -> Interval {
                        panic!("ψ logits are algebraic")
                    }) as Target,
                    Box::new(|_: &lossref::exact::surd::Surd| -> Interval {
                        panic!("ψ slopes are algebraic")
                    }) as Slope,
                )
            }
            Case::Distill(c) => {
                let per = if c.reduction == Reduction::Mean {
                    c.student.rows() as f64
                } else {
                    1.0
                };
                (
                    Box::new(move |_: &str, _| num(1.0).div(&num(per))) as Factor,
                    Box::new(|_: u8, _: &lossref::exact::surd::Surd| -> Interval {
                        panic!("distill logits are rational")
                    }) as Target,
                    Box::new(|_: &lossref::exact::surd::Surd| -> Interval {
                        panic!("distill has no slopes")
                    }) as Slope,
                )
            }
            _ => continue,
        };
        for (name, tensor) in &answer.gradients {
            for (index, want) in tensor.values().iter().enumerate() {
                let Some(combination) = form.gradient(name, index) else {
                    panic!("{}: gradients.{name}[{index}] has no exact form", g.id)
                };
                let got = factor(name, index).mul(&combination.enclose(
                    form.rows(),
                    PREC,
                    &*target,
                    &*slope,
                ));
                let scale = got
                    .mag()
                    .max(&want.mag())
                    .max(&rug::Float::with_val(PREC, 1e-30));
                let gap = got.sub(want).mag();
                assert!(
                    gap <= scale.clone() * rug::Float::with_val(PREC, 1e-60),
                    "{}: gradients.{name}[{index}]: form {got:?} vs reference {want:?}",
                    g.id
                );
                checked += 1;
            }
        }
    }
    eprintln!(
        "{checked} gradient values of {} cases matched their exact form",
        generic.len()
    );
    assert!(checked > 10_000, "{checked}");
}

/// A small rational: n/d with |n| ≤ 60, 1 ≤ d ≤ 12.
fn small_rational() -> impl proptest::strategy::Strategy<Value = rug::Rational> {
    use proptest::prelude::*;
    (-60i64..=60, 1i64..=12).prop_map(|(n, d)| rug::Rational::from((n, d)))
}

/// A random element of a multi-quadratic field: Σ q_k·√r_k over a few small radicands.
fn small_surd() -> impl proptest::strategy::Strategy<Value = lossref::exact::surd::Surd> {
    use lossref::exact::surd::Surd;
    use proptest::prelude::*;
    proptest::collection::vec((small_rational(), 0i64..=50, 1i64..=4), 0..5).prop_map(|terms| {
        terms.into_iter().fold(Surd::zero(), |acc, (q, r, d)| {
            let root = Surd::sqrt(&rug::Rational::from((r, d))).unwrap();
            acc.add(&root.scale(&q))
        })
    })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(common::cases(256)))]

    /// Step 2 of proofs/exact_zeros.md: the field arithmetic is exact (its enclosures agree
    /// with interval arithmetic on the same expression), ring identities hold exactly, and
    /// the zero test decides: a + b − b is 0 only when a is, (a + b)² = a² + 2ab + b², and a
    /// number with a term is never 0 (its enclosure excludes 0 at 256 bits).
    #[test]
    fn surd_arithmetic_is_exact(a in small_surd(), b in small_surd(), q in small_rational()) {
        use lossref::exact::surd::Surd;
        let prec = 256;
        let sum = a.add(&b);
        let product = a.mul(&b);
        let near = |x: &lossref::mp::interval::Interval, y: &lossref::mp::interval::Interval| {
            let gap = x.sub(y).mag();
            gap <= rug::Float::with_val(prec, 1e-60) * x.mag().max(&rug::Float::with_val(prec, 1.0))
        };
        proptest::prop_assert!(near(&sum.enclose(prec), &a.enclose(prec).add(&b.enclose(prec))));
        proptest::prop_assert!(near(&product.enclose(prec), &a.enclose(prec).mul(&b.enclose(prec))));
        proptest::prop_assert!(near(&a.scale(&q).enclose(prec), &a.enclose(prec).mul(&lossref::mp::interval::Interval::from_rational(prec, &q))));
        proptest::prop_assert_eq!(sum.sub(&b).is_zero(), a.is_zero());
        let two = rug::Rational::from(2);
        let square = sum.mul(&sum);
        let expanded = a.mul(&a).add(&product.scale(&two)).add(&b.mul(&b));
        proptest::prop_assert!(square.sub(&expanded).is_zero());
        for x in [&a, &b, &sum, &product, &square] {
            if !x.is_zero() {
                proptest::prop_assert!(!x.enclose(prec).contains_zero(), "{x:?} has terms but may be 0");
            }
        }
        proptest::prop_assert!(Surd::zero().enclose(prec).is_point());
    }
}

/// Step 7 of proofs/exact_zeros.md (Niven): for every m ≤ 64 and 0 < k < m, cos²(kπ/m) is
/// rational exactly when `niven_boundary` says so, with the value and the sign of
/// cos(kπ/m) it says (checked against 512-bit enclosures: a rational with denominator ≤ 4
/// within 2⁻⁴⁰⁰ of an irrational algebraic number of degree ≤ 64 would contradict
/// Liouville-type bounds by far).
#[test]
fn niven_boundaries_are_the_rational_cos_squares() {
    use lossref::family::psi::exact::niven_boundary;
    use lossref::mp::interval::Interval;
    let prec = 512;
    let mut rational = 0;
    for m in 1..=64u32 {
        for k in 1..m {
            let c = Interval::pi(prec)
                .mul(&Interval::from_i64(prec, i64::from(k)))
                .div(&Interval::from_i64(prec, i64::from(m)))
                .cos();
            let sq = c.powi(2);
            let candidates = [(0, 1), (1, 4), (1, 2), (3, 4), (1, 1)];
            let near = candidates.iter().find(|&&(n, d)| {
                let q = Interval::from_rational(prec, &rug::Rational::from((n, d)));
                sq.sub(&q).mag() < rug::Float::with_val(prec, rug::Float::i_exp(1, -400))
            });
            match (niven_boundary(k, m), near) {
                (Some((q, sign)), Some(&(n, d))) => {
                    assert_eq!(q, rug::Rational::from((n, d)), "k = {k}, m = {m}");
                    let want = if n == 0 {
                        std::cmp::Ordering::Equal
                    } else {
                        c.sign().unwrap()
                    };
                    assert_eq!(sign, want, "k = {k}, m = {m}");
                    rational += 1;
                }
                (None, None) => {}
                (said, seen) => {
                    panic!("k = {k}, m = {m}: niven_boundary {said:?}, numerically {seen:?}")
                }
            }
        }
    }
    // 2k/m ∈ {1/3, 1/2, 2/3, 1, 4/3, 3/2, 5/3}: m divisible by 2, 3, 4 or 6 gives those k
    assert!(rational > 100, "{rational}");
}

/// A random symmetric configuration: N ≤ 3 integer features and 1–3 integer class weights in
/// the first four coordinates, a pair of classes ±k·e₅ orthogonal to all of them, optionally
/// rotated by H/2, under one of several losses.
fn symmetric_case() -> impl proptest::strategy::Strategy<Value = (serde_json::Value, usize)> {
    use proptest::prelude::*;
    let vector = || proptest::collection::vec(-3i32..=3, 4);
    (
        proptest::collection::vec(vector(), 1..=3),
        proptest::collection::vec(vector(), 1..=3),
        1i32..=3,
        any::<bool>(),
        0usize..6,
        any::<u64>(),
    )
        .prop_filter_map("a zero row", |(xs, ws, k, rotated, loss, seed)| {
            let nonzero = |v: &Vec<i32>| v.iter().any(|&a| a != 0);
            if !xs.iter().all(nonzero) || !ws.iter().all(nonzero) {
                return None;
            }
            let five = |v: &Vec<i32>, last: i32| {
                let mut r: Vec<f64> = v.iter().map(|&a| f64::from(a)).collect();
                r.push(f64::from(last));
                if rotated {
                    let h = [
                        [1.0, 1.0, 1.0, 1.0],
                        [1.0, -1.0, 1.0, -1.0],
                        [1.0, 1.0, -1.0, -1.0],
                        [1.0, -1.0, -1.0, 1.0],
                    ];
                    let mut out: Vec<f64> = h
                        .iter()
                        .map(|row: &[f64; 4]| {
                            row.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>() / 2.0
                        })
                        .collect();
                    out.push(r[4]);
                    out
                } else {
                    r
                }
            };
            let features: Vec<Vec<f64>> = xs.iter().map(|v| five(v, 0)).collect();
            let mut weights: Vec<Vec<f64>> = ws.iter().map(|v| five(v, 0)).collect();
            weights.push(five(&vec![0; 4], k));
            weights.push(five(&vec![0; 4], -k));
            let labels: Vec<usize> = (0..xs.len())
                .map(|i| (seed as usize >> (2 * i)) % ws.len())
                .collect();
            let (name, params) = [
                ("normface", serde_json::json!({"scale": 8})),
                ("cosface", serde_json::json!({"scale": 16, "margin": 0.25})),
                (
                    "arcface",
                    serde_json::json!({"scale": 16, "margin_grad": "detached"}),
                ),
                (
                    "combined",
                    serde_json::json!({"scale": 16, "m1": 1.5, "m2": 0.25, "m3": 0.125}),
                ),
                ("sphereface", serde_json::json!({"margin": 4})),
                ("lsoftmax", serde_json::json!({"margin": 2, "lambda": 0.5})),
            ][loss]
                .clone();
            Some((
                serde_json::json!({"loss": name, "params": params,
                    "inputs": {"features": features, "weights": weights, "labels": labels}}),
                xs.len(),
            ))
        })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(common::cases(64)))]

    /// Steps 3 and 6 of proofs/exact_zeros.md on random configurations: the gradient along
    /// the axis of a ±e₅ class pair is proven exactly 0 for every feature (the pair's
    /// logits are equal and their coefficients opposite; no other class has a component
    /// there), every value certifies with tier `correctly_rounded`, and once a feature
    /// leaves the symmetry (x₀ gains 1/8 along e₅) the case still certifies.
    #[test]
    fn symmetric_pairs_give_proven_zeros((case, n) in symmetric_case()) {
        let text = case.to_string();
        let parsed = parse_case(&text).unwrap();
        // an arcface/combined target exactly parallel or antiparallel is an undefined point
        let answer = match certified(&parsed) {
            Ok(a) => a,
            Err(e) if e.to_string().contains("undefined points") => return Ok(()),
            Err(e) => panic!("{text}: {e}"),
        };
        proptest::prop_assert_eq!(answer.certificate.tier, Tier::CorrectlyRounded);
        let features = answer.answer.gradient("features").unwrap().values();
        for i in 0..n {
            proptest::prop_assert_eq!(&features[5 * i + 4].decimal, "0", "{}", text);
        }
        let mut moved = case.clone();
        moved["inputs"]["features"][0][4] = serde_json::json!(0.125);
        let moved_text = moved.to_string();
        match certified(&parse_case(&moved_text).unwrap()) {
            Ok(a) => proptest::prop_assert_eq!(a.certificate.tier, Tier::CorrectlyRounded),
            Err(e) if e.to_string().contains("undefined points") => {}
            Err(e) => panic!("{moved_text}: {e}"),
        }
    }
}
