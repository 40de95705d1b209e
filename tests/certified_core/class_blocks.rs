//! A normalized-margin case certified a block of classes at a time
//! (`reference::blocks::certified_in_blocks` below its size limit, what `lossref eval` does
//! for a case whose N·C logits and C·D weight gradients exceed `BLOCK_VALUES`, so that
//! memory stays O((B + C)·D + B·block) at any C): an online log-sum-exp over the blocks in
//! pass 1, the gradients in pass 2, ∂L/∂W certified block by block
//! (`src/family/normalized/stream.rs`). It is the whole case's certified answer value for
//! value (the same decimal strings, binary64, binary32 and 16-bit roundings and tiers, in
//! the same order, with the same certificate) on every generated corpus case of the family,
//! with blocks of one class, of a few classes (a thousand at C = 10⁵) and of about half the
//! classes; and the same error where there is no answer.

use crate::common::{assert_same_values, rounded};
use lossref::case::case_from_json;
use lossref::corpus::all_cases;
use lossref::mp::certify::{CertifiedAnswer, Rounded};
use lossref::reference::blocks::{certified_in_blocks, certified_streaming, streamed_shape};
use lossref::reference::certified;
use lossref::spec::Case;

fn whole(case: &Case) -> lossref::error::Result<CertifiedAnswer<Rounded>> {
    Ok(rounded(&certified(case)?))
}

/// The block sizes (in values) that give blocks of one class, of three classes and of
/// about half the classes; for the C = 10⁵ cases, blocks of a thousand classes and of half
/// (10⁵ blocks of one class each would take ten minutes in the dev profile and test
/// nothing that the 10⁴-class cases do not: the blocks' merging is the same at any count).
fn block_sizes(case: &Case) -> Vec<usize> {
    let Case::Normalized(c) = case else {
        return vec![];
    };
    let per_class = c.features.rows() + c.features.cols();
    // a class subset streams over its own classes
    let classes = c.classes.as_ref().map_or(c.weights.rows(), Vec::len);
    let half = per_class * classes.div_ceil(2);
    if classes > 10_000 {
        vec![1000 * per_class, half]
    } else {
        vec![1, 3 * per_class, half]
    }
}

#[test]
fn blocks_of_classes_give_the_whole_answer_on_every_generated_case() {
    let (mut cases, mut values, mut errors) = (0, 0, 0);
    for g in all_cases() {
        let case = case_from_json(&g.case).unwrap_or_else(|e| panic!("{}: {e}", g.id));
        if !matches!(case, Case::Normalized(_)) {
            continue;
        }
        cases += 1;
        let reference = whole(&case);
        for block_values in block_sizes(&case) {
            assert!(
                streamed_shape(&case, block_values).is_some(),
                "{}: streams at {block_values}",
                g.id
            );
            match (certified_in_blocks(&case, true, block_values), &reference) {
                (Ok(a), Ok(b)) => {
                    values += assert_same_values(&g.id, &a, b);
                    assert_eq!(a.certificate, b.certificate, "{}: certificate", g.id);
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a.to_string(), b.to_string(), "{}", g.id);
                    errors += 1;
                }
                (a, b) => panic!(
                    "{}: classes {:?}, whole {:?}",
                    g.id,
                    a.err(),
                    b.as_ref().err()
                ),
            }
        }
    }
    println!("{cases} cases, {values} values identical, {errors} identical errors");
    assert!(
        cases > 200 && values > 100_000,
        "{cases} cases, {values} values"
    );
}

#[test]
fn the_sink_receives_every_class_once_in_order() {
    let case = case_from_json(&serde_json::json!({
        "loss": "arcface",
        "params": {"margin": 0.5, "scale": 30},
        "inputs": {
            "features": [[1, 2, 0.5], [-1, 0.25, 3], [0.5, -2, 1]],
            "weights": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [-1, 2, 0.5]],
            "labels": [0, 3, 4]
        }
    }))
    .unwrap();
    let mut seen = Vec::new();
    let (rest, (name, position, rows, cols)) =
        certified_streaming(&case, false, 7, &mut |first, values| {
            seen.push((first, values.len()));
            Ok(())
        })
        .unwrap()
        .expect("streams");
    assert_eq!((name, position, rows, cols), ("weights", 1, 5, 3));
    // 7 values per block of (3 rows + 3 columns) per class: one class each
    let firsts: Vec<usize> = seen.iter().map(|s| s.0).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3, 4]);
    assert!(seen.iter().all(|s| s.1 == 3));
    let names: Vec<&str> = rest.answer.sections().map(|(_, n, _)| n).collect();
    assert_eq!(names, vec!["loss", "features"]);
    // a small case at the default size does not stream
    assert!(streamed_shape(&case, lossref::reference::blocks::BLOCK_VALUES).is_none());
}

#[test]
fn an_undefined_point_is_the_same_error_in_blocks_of_classes() {
    // rows 1 and 2 are parallel to their class weights: arcface's full gradient does not
    // exist there, and the first such row is named
    let case = case_from_json(&serde_json::json!({
        "loss": "arcface",
        "inputs": {
            "features": [[1, 2, 0.5], [0, 2, 0], [3, 0, 0]],
            "weights": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]],
            "labels": [3, 1, 0]
        }
    }))
    .unwrap();
    let whole_error = certified(&case).unwrap_err().to_string();
    assert!(whole_error.contains("inputs.features[1]"), "{whole_error}");
    for block_values in [1, 7, 13] {
        let blocks_error = certified_in_blocks(&case, true, block_values)
            .unwrap_err()
            .to_string();
        assert_eq!(blocks_error, whole_error);
    }
}
