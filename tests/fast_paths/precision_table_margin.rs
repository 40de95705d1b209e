//! Enforces the normalized-margin rows of `lossref::precision::entry` in both directions:
//! the fast f32/f64 forward + backward (`lossref::fast::MarginLoss`) is measured against
//! the certified reference over every variant and the target-angle regimes of
//! `common::geometry` (fixed seeds), in the scaled ulps that `lossref::precision` defines.
//! Each entry must be ≥ the measured maximum and at most `STALE_FACTOR` times it.

use crate::common;

use common::deterministic_runner;
use common::geometry::{case, margin_variants, problem, sized_problem, Angle, ARC_M};
use common::table::{Worsts, MARGIN_FAMILIES};
use lossref::answer::{Answer, Tensor};
use lossref::fast::{MarginLoss, Real};
use lossref::matrix::Matrix;
use lossref::reference::certified;
use lossref::spec::{Case, Dtype, LossId, Margin, NormalizedCase, Reduction};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Generated inputs per (variant, regime, dtype), times `LOSSREF_EXTENSIVE`.
const CASES: u32 = 12;

/// The regimes measured for a rule. The angular rules (arcface, combined) go through
/// θ = acos(cos θ), whose condition number 1/sin θ is unbounded near cos θ = ±1: an input
/// rounding moves cos θ by an ulp, θ by ulp/sin θ and the slope by ulp/sin²θ, which no
/// implementation can avoid. Those regimes are measured for the affine rules only.
fn regimes(margin: &Margin) -> Vec<Angle> {
    let conditioned = matches!(margin, Margin::None | Margin::Additive { .. });
    Angle::ALL
        .into_iter()
        .filter(|a| conditioned || !matches!(a, Angle::NearOne | Angle::NearMinusOne))
        .collect()
}

/// Measures one problem in dtype T; `tile` forces several row tiles when small.
fn measure<T: Real>(c: &NormalizedCase, tile: usize, worst: &mut Worsts) {
    let case = Case::Normalized(c.clone());
    let exact = certified(&case).unwrap_or_else(|e| panic!("reference failed on {c:?}: {e}"));
    let conv = |m: &Matrix<f64>| {
        m.as_slice()
            .iter()
            .map(|&v| T::of_f64(v))
            .collect::<Vec<T>>()
    };
    let d = c.features.cols();
    let fast = MarginLoss::of_case(c)
        .forward_backward_tiled(&conv(&c.features), &conv(&c.weights), &c.labels, d, 0, tile)
        .unwrap_or_else(|e| panic!("fast path failed on {c:?}: {e}"));
    let widen = |rows: usize, v: &[T]| {
        let wide = v.iter().map(|x| x.as_f64()).collect();
        Tensor::Matrix(Matrix::from_vec(rows, d, wide).expect("one value per entry"))
    };
    let mut gradients = vec![
        ("features", widen(c.features.rows(), &fast.features)),
        ("weights", widen(c.weights.rows(), &fast.weights)),
    ];
    if c.loss == LossId::NormFace {
        let s = fast.scale.expect("normface differentiates its scale");
        gradients.push(("scale", Tensor::Scalar(s.as_f64())));
    }
    let got = Answer {
        outputs: vec![("loss", Tensor::Scalar(fast.loss.as_f64()))],
        gradients,
    };
    worst.measure(&case, T::DTYPE, &exact, &got, &|| {
        format!("{c:?} tile {tile}")
    });
}

/// Measures one case in dtype T through the catalogue's fast path.
fn measure_catalogue<T: Real>(c: &NormalizedCase, worst: &mut Worsts) {
    let case = Case::Normalized(c.clone());
    let exact = certified(&case).unwrap_or_else(|e| panic!("reference failed on {c:?}: {e}"));
    let got = lossref::fast::dispatch::evaluate::<T>(&case)
        .unwrap_or_else(|e| panic!("fast path failed on {c:?}: {e}"));
    worst.measure(&case, T::DTYPE, &exact, &got, &|| format!("{c:?}"));
}

#[test]
fn margin_precision_table_holds_and_is_tight() {
    let worst = RefCell::new(Worsts::default());
    let reached = RefCell::new(BTreeSet::new());
    for (v, (loss, margin, scale)) in margin_variants().into_iter().enumerate() {
        for angle in regimes(&margin) {
            for f32 in [false, true] {
                let mut runner = deterministic_runner(common::cases(CASES));
                runner
                    .run(&problem(angle, ARC_M, f32), |p| {
                        if p.target_angles().iter().any(|&t| angle.reached(t, ARC_M)) {
                            reached.borrow_mut().insert(angle);
                        }
                        let reduction = if v % 2 == 0 {
                            Reduction::Mean
                        } else {
                            Reduction::Sum
                        };
                        let c = case(&p, loss, margin, scale, reduction);
                        // Alternate one tile with one row per tile.
                        let tile = if p.labels.len() % 2 == 0 {
                            1
                        } else {
                            usize::MAX
                        };
                        if f32 {
                            measure::<f32>(&c, tile, &mut worst.borrow_mut());
                        } else {
                            measure::<f64>(&c, tile, &mut worst.borrow_mut());
                        }
                        Ok(())
                    })
                    .unwrap();
            }
        }
    }
    // Wider problems (C up to 96, D up to 80), where the GEMMs block and vectorize.
    for (v, (loss, margin, scale)) in margin_variants().into_iter().enumerate().step_by(2) {
        for f32 in [false, true] {
            let mut runner = deterministic_runner(common::cases(1));
            runner
                .run(
                    &sized_problem(Angle::Moderate, ARC_M, f32, (6, 96, 80)),
                    |p| {
                        let c = case(
                            &p,
                            loss,
                            margin,
                            scale,
                            if v % 4 == 0 {
                                Reduction::Mean
                            } else {
                                Reduction::Sum
                            },
                        );
                        if f32 {
                            measure::<f32>(&c, usize::MAX, &mut worst.borrow_mut());
                        } else {
                            measure::<f64>(&c, 97, &mut worst.borrow_mut());
                        }
                        Ok(())
                    },
                )
                .unwrap();
        }
    }
    // SPEC §5's inputs: per-sample margins spread ±0.1 around the rule's (ElasticFace) and
    // class subsets (Partial FC), through the catalogue's fast path (which gathers the
    // subset's rows of W and scatters their gradients back)
    for (v, (loss, margin, scale)) in margin_variants().into_iter().enumerate() {
        for f32 in [false, true] {
            let mut runner = deterministic_runner(common::cases(3));
            runner
                .run(
                    &sized_problem(Angle::Moderate, ARC_M, f32, (5, 12, 6)),
                    |p| {
                        let mut c = case(&p, loss, margin, scale, Reduction::Mean);
                        let n = p.labels.len();
                        if loss != LossId::NormFace {
                            let m = match margin {
                                Margin::Additive { m } | Margin::Angular { m, .. } => m,
                                Margin::Combined { m2, .. } => m2,
                                Margin::None => 0.0,
                            };
                            // binary32 values, for the f32 cases
                            c.margins = Some(
                                (0..n)
                                    .map(|i| {
                                        f64::from(
                                            (m + 0.1 * ((i * 7 + v) % 5) as f64 / 2.5 - 0.1) as f32,
                                        )
                                    })
                                    .collect(),
                            );
                        }
                        let classes = p.weights.rows();
                        c.classes = Some(
                            (0..classes)
                                .filter(|j| j % 3 != v % 3 || p.labels.contains(j))
                                .collect(),
                        );
                        if c.classes.as_ref().is_some_and(|s| s.len() < 2) {
                            c.classes = None;
                        }
                        if f32 {
                            measure_catalogue::<f32>(&c, &mut worst.borrow_mut());
                        } else {
                            measure_catalogue::<f64>(&c, &mut worst.borrow_mut());
                        }
                        Ok(())
                    },
                )
                .unwrap();
        }
    }
    // sub-center ArcFace: K = 2 and 3 sub-centers per class, every arcface variant, through
    // the catalogue's fast path (one GEMM over the C·K rows and the max)
    for (v, (loss, margin, scale)) in margin_variants().into_iter().enumerate() {
        if loss != LossId::ArcFace {
            continue;
        }
        for (angle, f32) in [
            (Angle::Moderate, false),
            (Angle::Moderate, true),
            (Angle::NearThmm, false),
            (Angle::NearThmm, true),
        ] {
            let mut runner = deterministic_runner(common::cases(3));
            runner
                .run(&sized_problem(angle, ARC_M, f32, (5, 12, 6)), |p| {
                    let k = 2 + v % 2;
                    let classes = p.weights.rows() / k;
                    if classes < 2 {
                        return Ok(());
                    }
                    let c = lossref::spec::SubcenterCase {
                        scale,
                        margin,
                        reduction: Reduction::Mean,
                        features: p.features.clone(),
                        weights: Matrix::from_fn(classes * k, p.weights.cols(), |r, e| {
                            *p.weights.get(r, e)
                        }),
                        labels: p.labels.iter().map(|y| y % classes).collect(),
                        subcenters: k,
                    };
                    let case = Case::Subcenter(c);
                    let exact = match certified(&case) {
                        Ok(e) => e,
                        // a target at a pole of the full gradient: an undefined point
                        Err(_) => return Ok(()),
                    };
                    let got = if f32 {
                        lossref::fast::dispatch::evaluate::<f32>(&case)
                    } else {
                        lossref::fast::dispatch::evaluate::<f64>(&case)
                    }
                    .unwrap_or_else(|e| panic!("fast path failed on {case:?}: {e}"));
                    let dtype = if f32 { Dtype::Float32 } else { Dtype::Float64 };
                    worst
                        .borrow_mut()
                        .measure(&case, dtype, &exact, &got, &|| format!("{case:?}"));
                    Ok(())
                })
                .unwrap();
        }
    }
    let (worst, reached) = (worst.into_inner(), reached.into_inner());
    assert_eq!(
        reached,
        Angle::ALL.into_iter().collect(),
        "a regime was never reached"
    );
    worst.enforce(|q| MARGIN_FAMILIES.contains(&q.family()), Vec::new());
}
