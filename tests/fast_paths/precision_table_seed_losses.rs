//! Enforces the `distill.*`, `center.*`, `lsoftmax.*` and `sphereface.*` rows of
//! `lossref::precision::entry` in both directions: the fast f32/f64 paths against the
//! certified reference (fixed seeds), in the scaled ulps that `lossref::precision`
//! defines. Each entry must be ≥ the measured maximum and at most `STALE_FACTOR` times it.

use crate::common;

use common::deterministic_runner;
use common::geometry::{problem, Angle};
use common::table::{Worsts, SEED_FAMILIES};
use lossref::fast::{dispatch, Real};
use lossref::matrix::Matrix;
use lossref::reference::certified;
use lossref::spec::{
    Case, CenterCase, DistillCase, LossId, MultiplicativeCase, Reduction, SoftTerm,
};
use proptest::prelude::*;
use std::cell::RefCell;

fn narrow(m: Matrix<f64>, f32: bool) -> Matrix<f64> {
    if f32 {
        m.map(|&v| f64::from(v as f32))
    } else {
        m
    }
}

/// The fast path of `case` in dtype T against the certified reference, in the table's
/// measures (`lossref::precision::measures` states each).
fn measure<T: Real>(case: &Case, worst: &mut Worsts) {
    let exact = certified(case).unwrap_or_else(|e| panic!("reference failed on {case:?}: {e}"));
    let fast = dispatch::evaluate::<T>(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    worst.measure(case, T::DTYPE, &exact, &fast, &|| format!("{case:?}"));
}

/// In f32 or f64 as `f32` says.
fn measure_in(f32: bool, case: Case, worst: &RefCell<Worsts>) {
    if f32 {
        measure::<f32>(&case, &mut worst.borrow_mut())
    } else {
        measure::<f64>(&case, &mut worst.borrow_mut())
    }
}

fn logits(n: usize, c: usize, lo: f64, hi: f64) -> impl Strategy<Value = Matrix<f64>> {
    proptest::collection::vec(lo..hi, n * c).prop_map(move |v| Matrix::from_vec(n, c, v).unwrap())
}

#[test]
fn seed_losses_precision_table_holds_and_is_tight() {
    let worst = RefCell::new(Worsts::default());
    for f32 in [false, true] {
        // distill: moderate logits, teacher close to the student, several T and α.
        let strategy = (1usize..=3, 2usize..=8).prop_flat_map(move |(n, c)| {
            (
                logits(n, c, -8.0, 8.0),
                logits(n, c, -8.0, 8.0),
                proptest::collection::vec(0..c, n),
                prop_oneof![Just(1.0), Just(4.0), Just(0.5), Just(20.0)],
                prop_oneof![Just(0.9), Just(0.5), Just(1.0), Just(0.0)],
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        });
        deterministic_runner(common::cases(40))
            .run(&strategy, |(s, t, labels, temp, alpha, kl, sum, close)| {
                let s = narrow(s, f32);
                let t = if close {
                    narrow(s.map(|v| v + 0.01 * v.sin()), f32)
                } else {
                    narrow(t, f32)
                };
                let c = DistillCase {
                    temperature: temp,
                    alpha,
                    soft: if kl { SoftTerm::Kl } else { SoftTerm::Ce },
                    reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                    student: s,
                    teacher: t,
                    labels,
                };
                measure_in(f32, Case::Distill(c), &worst);
                Ok(())
            })
            .unwrap();
        // center
        let strategy = (1usize..=6, 2usize..=4, 1usize..=5).prop_flat_map(move |(n, c, d)| {
            (
                logits(n, d, -10.0, 10.0),
                logits(c, d, -10.0, 10.0),
                proptest::collection::vec(0..c, n),
                0.0f64..=1.0,
                any::<bool>(),
            )
        });
        deterministic_runner(common::cases(40))
            .run(&strategy, |(x, centers, labels, alpha, sum)| {
                let c = CenterCase {
                    alpha: if f32 { f64::from(alpha as f32) } else { alpha },
                    reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                    features: narrow(x, f32),
                    centers: narrow(centers, f32),
                    labels,
                };
                measure_in(f32, Case::Center(c), &worst);
                Ok(())
            })
            .unwrap();
        // lsoftmax / sphereface, m = 1..6, λ ∈ {0, 0.5, 5}, in every target-angle regime
        for angle in Angle::ALL {
            let strategy = (
                problem(angle, 0.5, f32),
                1u32..=6,
                prop_oneof![Just(0.0), Just(0.5), Just(5.0)],
                any::<bool>(),
                any::<bool>(),
            );
            deterministic_runner(common::cases(24))
                .run(&strategy, |(p, m, lambda, sphere, sum)| {
                    let c = MultiplicativeCase {
                        loss: if sphere {
                            LossId::SphereFace
                        } else {
                            LossId::LSoftmax
                        },
                        margin: m,
                        lambda,
                        reduction: if sum { Reduction::Sum } else { Reduction::Mean },
                        features: p.features,
                        weights: p.weights,
                        labels: p.labels,
                    };
                    measure_in(f32, Case::Multiplicative(c), &worst);
                    Ok(())
                })
                .unwrap();
        }
    }
    let worst = worst.into_inner();
    worst.enforce(|q| SEED_FAMILIES.contains(&q.family()), Vec::new());
}
