//! The batch-scale reference (`reference::certified`: exact products on binary64 GEMMs,
//! one exponential per logit, rows in parallel; proofs/certified_products.md) and the plain
//! MPFR path (`reference::certified_plain`, one MPFR operation per term of the formulas)
//! give the same certified answers: identical decimal strings, binary64 and binary32
//! roundings and tiers, value for value, on every generated corpus case of the losses that
//! have both paths (softmax_ce and the normalized-margin family, every variant), in every
//! regime the generator draws (moderate, large, near-tie, dominant, huge norms, exact
//! zeros, both dtypes), and identical errors where there is no answer.

use crate::common::{assert_same_values, rounded};
use lossref::case::case_from_json;
use lossref::corpus::all_cases;
use lossref::mp::certify::CertifiedAnswer;
use lossref::reference::{certified, certified_plain};
use lossref::spec::Case;

/// The values the same, and the answers' tiers (the two paths may need different precisions).
fn assert_same(id: &str, fast: &CertifiedAnswer, plain: &CertifiedAnswer) -> usize {
    let compared = assert_same_values(id, &rounded(fast), &rounded(plain));
    assert_eq!(fast.certificate.tier, plain.certificate.tier, "{id}: tier");
    compared
}

#[test]
fn batch_scale_and_plain_references_agree_on_every_generated_case() {
    let (mut cases, mut values, mut errors) = (0, 0, 0);
    for g in all_cases() {
        let case = case_from_json(&g.case).unwrap_or_else(|e| panic!("{}: {e}", g.id));
        if !matches!(case, Case::SoftmaxCe(_) | Case::Normalized(_)) {
            continue;
        }
        cases += 1;
        match (certified(&case), certified_plain(&case)) {
            (Ok(fast), Ok(plain)) => values += assert_same(&g.id, &fast, &plain),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{}: errors differ", g.id);
                errors += 1;
            }
            (fast, plain) => panic!(
                "{}: one path answers and the other does not: fast {:?}, plain {:?}",
                g.id,
                fast.err(),
                plain.err()
            ),
        }
    }
    println!("{cases} cases, {values} values identical, {errors} identical errors");
    assert!(
        cases > 300 && values > 100_000,
        "the generator covers the two families"
    );
}

/// A deterministic value in (−1, 1) scaled by 2^(e) with e cycling through `spread` bits.
fn entry(i: usize, spread: i32) -> f64 {
    let t = ((i as f64 + 1.0) * 0.618_033_988_749_894_9).fract() * 2.0 - 1.0;
    let e = if spread == 0 {
        0
    } else {
        (i as i32 * 7) % spread - spread / 2
    };
    t * 2f64.powi(e)
}

fn matrix(rows: usize, cols: usize, offset: usize, spread: i32) -> Vec<Vec<f64>> {
    (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| entry(offset + r * cols + c, spread))
                .collect()
        })
        .collect()
}

/// Shapes the corpus does not hold: long rows and many classes (a longer inner dimension
/// means narrower slices), rows whose magnitudes span 60 bits (many slices), and rows
/// spanning 2^±600, which cannot be sliced and take the plain path inside `evaluate` too.
#[test]
fn batch_scale_and_plain_references_agree_on_wide_shapes_and_spreads() {
    let variants = [
        serde_json::json!({"loss": "cosface", "params": {"reduction": "sum"}}),
        serde_json::json!({"loss": "normface", "params": {"scale": 8}}),
        serde_json::json!({"loss": "arcface", "params": {"boundary": "easy"}}),
        serde_json::json!({"loss": "combined", "params": {"m1": 0.9, "m2": 0.3, "m3": 0.2}}),
    ];
    let shapes = [
        (3, 70, 300, 0),
        (2, 9, 40, 60),
        (2, 5, 6, 1200),
        (40, 3, 5, 0),
    ];
    let mut values = 0;
    for (v, variant) in variants.iter().enumerate() {
        for &(n, d, c, spread) in &shapes {
            let mut case = variant.clone();
            let labels: Vec<usize> = (0..n).map(|i| (i * 7 + v) % c).collect();
            case["inputs"] = serde_json::json!({
                "features": matrix(n, d, 0, spread),
                "weights": matrix(c, d, 1000, spread),
                "labels": labels,
            });
            let id = format!("{} n={n} d={d} c={c} spread={spread}", variant["loss"]);
            let case = case_from_json(&case).unwrap_or_else(|e| panic!("{id}: {e}"));
            let fast = certified(&case).unwrap_or_else(|e| panic!("{id}: {e}"));
            let plain = certified_plain(&case).unwrap_or_else(|e| panic!("{id}: {e}"));
            values += assert_same(&id, &fast, &plain);
        }
    }
    println!("{values} values identical");
}
