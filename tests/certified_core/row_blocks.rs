//! A case certified a block of rows at a time (`reference::blocks`, what `lossref eval`
//! does, so that a large case never holds every enclosure at once) is the whole case's
//! certified answer value for value: the same decimal strings, binary64 and binary32
//! roundings and tiers, in the same order, with the same certificate, on every generated
//! corpus case (blocks of one row, of a few rows, and the default) and on random batches
//! in every regime with random block sizes; and the same error where there is no answer.

use crate::common::{any_batch, assert_same_values, cases, deterministic_runner, rounded};
use lossref::case::case_from_json;
use lossref::corpus::all_cases;
use lossref::mp::certify::{CertifiedAnswer, Rounded};
use lossref::reference::blocks::{certified_in_blocks, certified_rounded, BLOCK_VALUES};
use lossref::reference::certified;
use lossref::spec::{Case, Reduction, SoftmaxCase, SoftmaxCeCase};
use proptest::prelude::*;

/// The whole case's answer, as `Rounded` values with their decimals.
fn whole(case: &Case) -> lossref::error::Result<CertifiedAnswer<Rounded>> {
    Ok(rounded(&certified(case)?))
}

/// The values and the certificate the same.
fn assert_same(
    id: &str,
    blocks: &CertifiedAnswer<Rounded>,
    whole: &CertifiedAnswer<Rounded>,
) -> usize {
    let compared = assert_same_values(id, blocks, whole);
    assert_eq!(blocks.certificate, whole.certificate, "{id}: certificate");
    compared
}

#[test]
fn blocks_of_rows_give_the_whole_answer_on_every_generated_case() {
    let (mut split, mut values) = (0, 0);
    for g in all_cases() {
        let case = case_from_json(&g.case).unwrap_or_else(|e| panic!("{}: {e}", g.id));
        if !matches!(case, Case::Softmax(_) | Case::SoftmaxCe(_)) {
            // one block: the whole path, kept as rounded values
            if g.id.ends_with("f64-0000") {
                let a = certified_rounded(&case, true).unwrap_or_else(|e| panic!("{}: {e}", g.id));
                values += assert_same(&g.id, &a, &whole(&case).unwrap());
            }
            continue;
        }
        let reference = whole(&case);
        // one row per block, a few rows per block, and the default
        for block_values in [1, 3 * row_values(&case) - 1, BLOCK_VALUES] {
            match (certified_in_blocks(&case, true, block_values), &reference) {
                (Ok(a), Ok(b)) => values += assert_same(&g.id, &a, b),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{}", g.id),
                (a, b) => panic!(
                    "{}: blocks {:?}, whole {:?}",
                    g.id,
                    a.err(),
                    b.as_ref().err()
                ),
            }
        }
        split += 1;
    }
    assert!(split >= 70, "only {split} softmax and softmax_ce cases");
    assert!(values > 10_000, "only {values} values compared");
}

/// Values in one row of the answer's row-wise tensors.
fn row_values(case: &Case) -> usize {
    match case {
        Case::Softmax(c) => 2 * c.logits.cols(),
        Case::SoftmaxCe(c) => c.logits.cols(),
        _ => 1,
    }
}

#[test]
fn blocks_of_rows_give_the_whole_answer_on_random_batches() {
    let strategy = (any_batch(false), 1usize..40, any::<bool>(), 1u32..5);
    deterministic_runner(cases(48))
        .run(&strategy, |(b, block_values, mean, t)| {
            let reduction = if mean {
                Reduction::Mean
            } else {
                Reduction::Sum
            };
            let ce = Case::SoftmaxCe(SoftmaxCeCase {
                reduction,
                logits: b.logits.clone(),
                labels: b.labels.clone(),
                options: Default::default(),
            });
            let softmax = Case::Softmax(SoftmaxCase {
                temperature: f64::from(t) / 2.0,
                logits: b.logits.clone(),
            });
            for case in [ce, softmax] {
                let a = certified_in_blocks(&case, true, block_values).unwrap();
                assert_same(&format!("{b:?}"), &a, &whole(&case).unwrap());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn without_decimals_the_blocks_keep_only_the_roundings() {
    let case = case_from_json(&serde_json::json!({
        "loss": "softmax_ce",
        "inputs": {"logits": [[1, 2, 3], [0, 0, 1], [5, -5, 0]], "labels": [2, 0, 1]}
    }))
    .unwrap();
    let a = certified_in_blocks(&case, false, 1).unwrap();
    let b = whole(&case).unwrap();
    for ((_, _, ta), (_, _, tb)) in a.answer.sections().zip(b.answer.sections()) {
        for (x, y) in ta.values().iter().zip(tb.values()) {
            assert_eq!(x.decimal, None);
            assert_eq!(
                (x.f64.to_bits(), x.f32.to_bits(), x.tier),
                (y.f64.to_bits(), y.f32.to_bits(), y.tier)
            );
        }
    }
}
