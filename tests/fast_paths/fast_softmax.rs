//! The fast f32/f64 paths as a training loop calls them: errors are reported (never a
//! panic), extreme but finite logits stay finite, and the T5 laws hold to rounding.
//! Accuracy in ulps is `tests/fast_paths/precision_table.rs`'s job.

use crate::common;

use common::any_batch;
use lossref::family::softmax::fast::{log_softmax, softmax, softmax_ce, softmax_ce_into};
use lossref::fast::Real;
use lossref::spec::Reduction;
use proptest::prelude::*;

#[test]
fn invalid_inputs_are_errors_naming_the_place() {
    let mut out = vec![0.0f64; 4];
    let err = |r: lossref::error::Result<()>| r.unwrap_err().to_string();
    assert!(err(softmax(&[1.0, 2.0], 1, 1.0, &mut out[..2])).contains("C ≥ 2"));
    assert!(err(softmax(&[1.0, 2.0, 3.0], 2, 1.0, &mut out[..3]))
        .contains("not a positive multiple of C = 2"));
    assert!(err(softmax(&[], 2, 1.0, &mut out[..0])).contains("not a positive multiple"));
    assert_eq!(
        err(softmax(&[1.0, 2.0, f64::NAN, 0.0], 2, 1.0, &mut out)),
        "logits[1][0]: NaN is not finite"
    );
    assert!(
        err(log_softmax(&[1.0, f64::INFINITY], 2, 1.0, &mut out[..2])).starts_with("logits[0][1]")
    );
    assert!(err(softmax(&[1.0, 2.0], 2, 0.0, &mut out[..2])).contains("temperature"));
    assert!(err(softmax(&[1.0, 2.0], 2, f64::NAN, &mut out[..2])).contains("temperature"));
    assert!(err(softmax(&[1.0, 2.0], 2, 1.0, &mut out[..3])).starts_with("out:"));
    let ce = |labels: &[usize]| {
        softmax_ce(&[1.0f32, 2.0, 3.0, 4.0], 2, labels, Reduction::Mean)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(ce(&[0, 2]), "labels[1]: label 2 is out of range 0..2");
    assert_eq!(
        ce(&[0]),
        "labels: has 1 labels but the batch has N = 2 rows"
    );
    let mut short = vec![0.0f32; 3];
    assert!(softmax_ce_into(
        &[1.0f32, 2.0, 3.0, 4.0],
        2,
        &[0, 1],
        Reduction::Sum,
        &mut short
    )
    .is_err());
}

fn extreme_logits_stay_finite<T: Real>() {
    let big = T::max_value();
    let z = [big, -big, T::zero(), big, -big, -big];
    let (loss, grad) = softmax_ce(&z, 3, &[1, 0], Reduction::Sum).unwrap();
    // row 0: lse − z₁ = 2·MAX (+ log(1 + …)), beyond the format: +∞, the correct rounding;
    // row 1: lse − z₀ = log(1 + 2e^(−2·MAX)), which rounds to 0
    assert!(loss.is_infinite() && loss > T::zero(), "{loss}");
    // p − onehot: row 0 puts all its mass on class 0, row 1 is exactly right
    let expected = [1.0, -1.0, 0.0, 0.0, 0.0, 0.0];
    let got: Vec<f64> = grad.iter().map(|g| g.as_f64()).collect();
    assert_eq!(got, expected, "{grad:?}");
    let mut p = vec![T::zero(); 6];
    for t in [T::one(), T::of_f64(1e-3), T::of_f64(1e3)] {
        softmax(&z, 3, t, &mut p).unwrap();
        assert!(
            p.iter()
                .all(|x| x.is_finite() && *x >= T::zero() && *x <= T::one()),
            "T={t}: {p:?}"
        );
        log_softmax(&z, 3, t, &mut p).unwrap();
        assert!(
            p.iter().all(|x| !x.is_nan() && *x <= T::zero()),
            "T={t}: {p:?}"
        );
    }
}

#[test]
fn extreme_logits_stay_finite_f32() {
    extreme_logits_stay_finite::<f32>();
}

#[test]
fn extreme_logits_stay_finite_f64() {
    extreme_logits_stay_finite::<f64>();
}

#[test]
fn a_dominant_target_gives_a_tiny_positive_loss_not_zero() {
    let (loss, grad) = softmax_ce(&[690.8f64, 0.0, -5.0], 3, &[0], Reduction::Sum).unwrap();
    assert!(loss > 9e-301 && loss < 1.1e-300, "{loss:e}");
    assert_eq!(grad[0], -grad[1] - grad[2]);
    let (loss32, _) = softmax_ce(&[95.0f32, 0.0], 2, &[0], Reduction::Sum).unwrap();
    assert!(loss32 > 0.0 && loss32 < 1e-40, "{loss32:e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    /// T5 on the fast path: probabilities sum to 1 and gradient rows sum to 0, to rounding.
    #[test]
    fn fast_rows_sum_to_one_and_gradients_to_zero(b in any_batch(false), sum in any::<bool>()) {
        let c = b.logits.cols();
        let mut p = vec![0.0; b.logits.as_slice().len()];
        softmax(b.logits.as_slice(), c, 1.0, &mut p).unwrap();
        let reduction = if sum { Reduction::Sum } else { Reduction::Mean };
        let (loss, grad) = softmax_ce(b.logits.as_slice(), c, &b.labels, reduction).unwrap();
        prop_assert!(loss >= 0.0);
        for (row_p, row_g) in p.chunks(c).zip(grad.chunks(c)) {
            let total: f64 = row_p.iter().sum();
            prop_assert!((total - 1.0).abs() <= 4.0 * c as f64 * f64::EPSILON, "row sums to {}", total);
            let g_sum: f64 = row_g.iter().sum();
            let g_max = row_g.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            prop_assert!(g_sum.abs() <= 4.0 * c as f64 * f64::EPSILON * g_max, "gradient row sums to {:e}", g_sum);
        }
    }

    /// T5 on the fast path: softmax(z + c) = softmax(z) to a few ulps, for an exact shift.
    #[test]
    fn fast_softmax_is_shift_invariant(ticks in proptest::collection::vec(-100_000i32..100_000, 2..10), shift in -1000i32..1000) {
        let z: Vec<f64> = ticks.iter().map(|&t| f64::from(t) / 128.0).collect();
        let zs: Vec<f64> = z.iter().map(|&x| x + f64::from(shift)).collect();
        let (mut a, mut b) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        softmax(&z, z.len(), 1.0, &mut a).unwrap();
        softmax(&zs, z.len(), 1.0, &mut b).unwrap();
        for (x, y) in a.iter().zip(&b) {
            prop_assert!((x - y).abs() <= 8.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE), "{} vs {}", x, y);
        }
    }
}
