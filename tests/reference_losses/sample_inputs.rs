//! SPEC §5's inputs of the normalized-margin family: per-sample `margins` (ElasticFace) and
//! class subsets `classes` (Partial FC). Their gradients against central differences of a
//! naive loss written here from SPEC §5 (each row's rule by hand, the softmax over the
//! subset's columns only), and the T7-style identities: constant per-sample margins are the
//! scalar margin, the full subset is no subset, and a subset is the loss on its rows of W
//! with ∂L/∂w_j = 0 elsewhere.

use crate::common;
use crate::normalized_reference::{assert_same, certify, check_numdiff, same_order};

use common::deterministic_runner;
use common::geometry::{case, margin_variants, problem, sized_problem, Angle, ARC_M};
use lossref::family::normalized::reference as normalized;
use lossref::matrix::Matrix;
use lossref::spec::{LossId, Margin, MarginSlot, NormalizedCase, Reduction};
use proptest::prelude::*;

/// Per-sample margins around `m`, spread by up to ±`spread` (ElasticFace's σ is 0.0125 to
/// 0.1), drawn by proptest.
fn margins_around(n: usize, m: f64, spread: f64) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-1.0f64..1.0, n)
        .prop_map(move |u| u.iter().map(|t| m + spread * t).collect())
}

/// The margin of a rule that per-sample margins replace.
fn scalar_margin(c: &NormalizedCase) -> f64 {
    match (c.margin, c.margins_as) {
        (Margin::Additive { m }, _) | (Margin::Angular { m, .. }, _) => m,
        (Margin::Combined { m2, .. }, MarginSlot::M2) => m2,
        (Margin::Combined { m3, .. }, MarginSlot::M3) => m3,
        (Margin::None, _) => 0.0,
    }
}

/// A class subset of `c` from `keep` (one flag per class), with every label added, and
/// the first other class where that leaves one (a softmax needs two).
fn subset_of(c: &NormalizedCase, keep: &[bool]) -> Vec<usize> {
    let mut subset: Vec<usize> = (0..c.weights.rows())
        .filter(|j| keep[*j % keep.len()] || c.labels.contains(j))
        .collect();
    if subset.len() < 2 {
        let other = (0..c.weights.rows()).find(|j| !subset.contains(j)).unwrap();
        subset.push(other);
        subset.sort_unstable();
    }
    subset
}

#[test]
fn per_sample_margins_and_subsets_match_numerical_differentiation() {
    for (k, (loss, margin, scale)) in margin_variants().into_iter().enumerate() {
        if loss == LossId::NormFace {
            continue;
        }
        for angle in [Angle::Moderate, Angle::NearThmm, Angle::NearZeroCos] {
            let mut runner = deterministic_runner(common::cases(2));
            let strategy = sized_problem(angle, ARC_M, false, (3, 6, 4)).prop_flat_map(|p| {
                let n = p.labels.len();
                let c = p.weights.rows();
                (
                    Just(p),
                    margins_around(n, 0.0, 0.1),
                    proptest::collection::vec(any::<bool>(), c),
                )
            });
            runner
                .run(&strategy, |(p, spread, keep)| {
                    let reduction = if k % 2 == 0 {
                        Reduction::Mean
                    } else {
                        Reduction::Sum
                    };
                    let mut c = case(&p, loss, margin, scale, reduction);
                    let m = scalar_margin(&c);
                    c.margins = Some(spread.iter().map(|d| m + d).collect());
                    if k % 3 == 0 && loss == LossId::Combined {
                        c.margins_as = MarginSlot::M3;
                    }
                    c.classes = Some(subset_of(&c, &keep));
                    // a target at a pole of a full angular gradient is an undefined point;
                    // these regimes stay away from it
                    check_numdiff(&c);
                    Ok(())
                })
                .unwrap();
        }
    }
}

#[test]
fn constant_per_sample_margins_are_the_scalar_margin() {
    let mut runner = deterministic_runner(common::cases(3));
    for (loss, margin, scale) in margin_variants() {
        if loss == LossId::NormFace {
            continue;
        }
        for slot in MarginSlot::ALL {
            if slot == MarginSlot::M3 && loss != LossId::Combined {
                continue;
            }
            runner
                .run(&problem(Angle::Moderate, ARC_M, false), |p| {
                    let scalar = NormalizedCase {
                        margins_as: slot,
                        ..case(&p, loss, margin, scale, Reduction::Mean)
                    };
                    let m = scalar_margin(&scalar);
                    let per_sample = NormalizedCase {
                        margins: Some(vec![m; p.labels.len()]),
                        ..scalar.clone()
                    };
                    assert_same(
                        &format!("{loss} {margin:?} margins [{m}; N] as {slot:?}"),
                        &certify(&per_sample),
                        &certify(&scalar),
                        same_order,
                    );
                    Ok(())
                })
                .unwrap();
        }
    }
}

#[test]
fn the_full_class_subset_is_no_subset() {
    let mut runner = deterministic_runner(common::cases(3));
    for (loss, margin, scale) in margin_variants() {
        runner
            .run(&problem(Angle::Moderate, ARC_M, false), |p| {
                let none = case(&p, loss, margin, scale, Reduction::Sum);
                let full = NormalizedCase {
                    classes: Some((0..p.weights.rows()).collect()),
                    ..none.clone()
                };
                assert_same(
                    &format!("{loss} full subset"),
                    &certify(&full),
                    &certify(&none),
                    same_order,
                );
                Ok(())
            })
            .unwrap();
    }
}

/// A subset's answer is the case on the subset's rows of W (gathered here, labels
/// renumbered), with those rows' weight gradients in place and exact zeros elsewhere.
#[test]
fn a_subset_is_the_loss_on_its_rows_with_zero_gradients_elsewhere() {
    let mut runner = deterministic_runner(common::cases(4));
    for (loss, margin, scale) in margin_variants() {
        let strategy = sized_problem(Angle::Moderate, ARC_M, false, (3, 8, 4)).prop_flat_map(|p| {
            let c = p.weights.rows();
            (Just(p), proptest::collection::vec(any::<bool>(), c))
        });
        runner
            .run(&strategy, |(p, keep)| {
                let whole = case(&p, loss, margin, scale, Reduction::Mean);
                let subset = subset_of(&whole, &keep);
                let with_subset = NormalizedCase {
                    classes: Some(subset.clone()),
                    ..whole.clone()
                };
                let d = whole.weights.cols();
                let gathered = NormalizedCase {
                    weights: Matrix::from_fn(subset.len(), d, |r, k| *whole.weights.get(subset[r], k)),
                    labels: whole
                        .labels
                        .iter()
                        .map(|y| subset.iter().position(|j| j == y).unwrap())
                        .collect(),
                    ..whole.clone()
                };
                let (a, b) = (certify(&with_subset), certify(&gathered));
                let zeros = |name: &str, k: usize| {
                    if name == "weights" {
                        subset.iter().position(|&j| j == k / d).map(|r| r * d + k % d)
                    } else {
                        Some(k)
                    }
                };
                for (section, name, ta) in a.answer.sections() {
                    let tb = if section == "outputs" { b.answer.output(name) } else { b.answer.gradient(name) };
                    let tb = tb.unwrap();
                    for (k, x) in ta.values().iter().enumerate() {
                        match zeros(name, k) {
                            Some(kb) => {
                                let y = &tb.values()[kb];
                                assert!(
                                    x.enclosure.overlaps(&y.enclosure) && x.f64.to_bits() == y.f64.to_bits(),
                                    "{loss}: {section}.{name}[{k}]: {} vs {}",
                                    x.decimal,
                                    y.decimal
                                );
                            }
                            None => assert!(
                                x.f64 == 0.0 && x.enclosure.is_point(),
                                "{loss}: weights[{}] is off the subset {subset:?} but its gradient is {}",
                                k / d,
                                x.decimal
                            ),
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}

/// The per-sample margin moves only its own row's target: per-row margins of a one-row
/// batch are the scalar margin of that row (the plain and batch-scale paths agree).
#[test]
fn the_plain_and_batch_scale_references_agree_with_per_sample_margins() {
    let mut runner = deterministic_runner(common::cases(3));
    for (loss, margin, scale) in margin_variants() {
        if loss == LossId::NormFace {
            continue;
        }
        let strategy = problem(Angle::Moderate, ARC_M, false).prop_flat_map(|p| {
            let n = p.labels.len();
            (Just(p), margins_around(n, 0.0, 0.2))
        });
        runner
            .run(&strategy, |(p, spread)| {
                let mut c = case(&p, loss, margin, scale, Reduction::Mean);
                let m = scalar_margin(&c);
                c.margins = Some(spread.iter().map(|d| m + d).collect());
                let plain = normalized::evaluate_plain(&c, 256).unwrap();
                let batch = normalized::evaluate(&c, 256).unwrap();
                for ((_, _, a), (_, _, b)) in plain.sections().zip(batch.sections()) {
                    for (x, y) in a.values().iter().zip(b.values()) {
                        assert!(x.overlaps(y), "{loss}: {x:?} vs {y:?}");
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
