//! Enforces the adaptive margins' rows of `lossref::precision::entry` (SPEC §5:
//! `curricularface`, `adaface`, `magface`, `adacos`) in both directions: the fast f32/f64
//! path is measured against the certified reference over every corpus case of these losses
//! (each regime of the family's generators) and over generated problems with each rule and
//! a drawn state (fixed seeds), in the scaled ulps that `lossref::precision` defines. Each
//! entry must be ≥ the measured maximum and at most `STALE_FACTOR` times it.

use crate::common;

use common::deterministic_runner;
use common::geometry::{adaptive_rules, sized_problem, Angle, ARC_M};
use common::table::{Worsts, ADAPTIVE_FAMILIES};
use lossref::fast::dispatch::evaluate;
use lossref::reference::certified;
use lossref::spec::{AdaptiveCase, Case, Dtype, Reduction};
use std::cell::RefCell;

/// Measures `case` through the fast path in `dtype` (float32 or float64).
fn measure(case: &Case, dtype: Dtype, worst: &mut Worsts) {
    let exact = certified(case).unwrap_or_else(|e| panic!("reference failed on {case:?}: {e}"));
    let got = if dtype == Dtype::Float32 {
        evaluate::<f32>(case)
    } else {
        evaluate::<f64>(case)
    }
    .unwrap_or_else(|e| panic!("fast path failed on {case:?}: {e}"));
    worst.measure(case, dtype, &exact, &got, &|| format!("{case:?}"));
}

#[test]
fn adaptive_precision_table_holds_and_is_tight() {
    let worst = RefCell::new(Worsts::default());
    let mut measured = 0;
    for g in lossref::corpus::all_cases() {
        let loss = g.case["loss"].as_str().unwrap_or_default();
        if !ADAPTIVE_FAMILIES.contains(&loss) || g.dtype.is_half() {
            continue;
        }
        let case = lossref::case::case_from_json(&g.case).expect("a corpus case parses");
        measure(&case, g.dtype, &mut worst.borrow_mut());
        measured += 1;
    }
    assert!(measured >= 70, "only {measured} corpus cases measured");
    for (rule, scale) in adaptive_rules() {
        for (angle, f32) in [
            (Angle::Moderate, false),
            (Angle::Moderate, true),
            (Angle::NearThmm, false),
            (Angle::NearThmm, true),
        ] {
            let mut runner = deterministic_runner(common::cases(4));
            runner
                .run(&sized_problem(angle, ARC_M, f32, (6, 8, 6)), |p| {
                    if p.labels.len() < 2 {
                        return Ok(());
                    }
                    let case = Case::Adaptive(AdaptiveCase {
                        scale,
                        rule,
                        reduction: Reduction::Mean,
                        features: p.features.clone(),
                        weights: p.weights.clone(),
                        labels: p.labels.clone(),
                    });
                    // a switch hit exactly (an undefined point) is not a measurement
                    if certified(&case).is_err() {
                        return Ok(());
                    }
                    let dtype = if f32 { Dtype::Float32 } else { Dtype::Float64 };
                    measure(&case, dtype, &mut worst.borrow_mut());
                    Ok(())
                })
                .unwrap();
        }
    }
    worst
        .into_inner()
        .enforce(|q| ADAPTIVE_FAMILIES.contains(&q.family()), Vec::new());
}
