//! The fast `distill`, `center`, `lsoftmax` and `sphereface` paths as a training loop uses
//! them: invalid inputs are errors that name the place, never panics or NaNs.
//! (Accuracy against the reference: `tests/fast_paths/precision_table_seed_losses.rs`.)

use lossref::family::center::fast::center;
use lossref::family::distill::fast::Distill;
use lossref::family::psi::fast::{psi_f64, MultiplicativeLoss};
use lossref::spec::{Reduction, SoftTerm};

fn message<T: std::fmt::Debug>(r: lossref::error::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn distill_rejects_bad_inputs_by_name() {
    let d = Distill {
        temperature: 4.0,
        alpha: 0.9,
        soft: SoftTerm::Kl,
        reduction: Reduction::Mean,
    };
    let s = [1.0f64, 2.0, 3.0, 0.5, 0.25, -1.0];
    assert!(message(d.forward_backward(&s, &s[..3], 3, &[0, 1]))
        .starts_with("teacher_logits: has 3 values but student_logits has 6"));
    assert!(message(d.forward_backward(&s, &s, 3, &[0, 3])).contains("labels[1]"));
    let bad = Distill {
        temperature: 0.0,
        ..d
    };
    assert!(message(bad.forward_backward(&s, &s, 3, &[0, 1]))
        .starts_with("params: needs temperature > 0"));
    let nan = [1.0f64, f64::NAN, 3.0, 0.5, 0.25, -1.0];
    assert!(message(d.forward_backward(&s, &nan, 3, &[0, 1]))
        .starts_with("teacher_logits[0][1]: is not finite"));
    assert!(message(d.forward_backward(&nan, &s, 3, &[0, 1]))
        .starts_with("student_logits[0][1]: is not finite"));
    let (loss, grad) = d.forward_backward(&s, &s, 3, &[0, 1]).unwrap();
    assert!(loss.is_finite() && grad.iter().all(|g| g.is_finite()));
}

#[test]
fn center_rejects_bad_inputs_by_name() {
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let c = [0.0f32, 0.0, 1.0, 1.0];
    assert!(message(center(&x, &c, &[0, 2], 2, 0.5, Reduction::Mean))
        .starts_with("labels[1]: label 2 is out of range 0..2"));
    assert!(message(center(&x, &c, &[0, 1], 2, 1.5, Reduction::Mean))
        .starts_with("alpha: must be in [0, 1]"));
    assert!(
        message(center(&x, &c[..3], &[0, 1], 2, 0.5, Reduction::Mean)).starts_with("features:")
    );
    let nan = [1.0f32, f32::NAN, 3.0, 4.0];
    assert!(message(center(&nan, &c, &[0, 1], 2, 0.5, Reduction::Mean))
        .starts_with("features[0][1]: is not finite"));
    assert!(message(center(&x, &nan, &[0, 1], 2, 0.5, Reduction::Mean))
        .starts_with("centers[0][1]: is not finite"));
    // an empty batch has no mean: an error, not NaN
    assert!(
        message(center::<f32>(&[], &c, &[], 2, 0.5, Reduction::Mean))
            .starts_with("labels: the batch is empty (N = 0)")
    );
    let out = center(&x, &c, &[0, 0], 2, 0.5, Reduction::Sum).unwrap();
    // class 1 has no sample: it does not move
    assert_eq!(&out.centers_next[2..], &c[2..]);
}

#[test]
fn psi_paths_reject_bad_inputs_by_name() {
    let loss = |sphere| MultiplicativeLoss {
        margin: 4,
        lambda: 0.0,
        normalized_weights: sphere,
        reduction: Reduction::Mean,
    };
    let x = [1.0f64, 2.0, 0.5, -1.0];
    let w = [1.0f64, 0.0, 0.0, 0.0, 0.5, 0.5];
    assert!(message(loss(true).forward_backward(&x, &w, &[0, 1], 2, 1))
        .starts_with("weights[1]: is a zero-norm row"));
    // lsoftmax needs cos θ only at the targets: a zero row elsewhere is fine
    let ok = loss(false).forward_backward(&x, &w, &[0, 2], 2, 1).unwrap();
    assert!(ok.loss.is_finite() && ok.features.iter().chain(&ok.weights).all(|v| v.is_finite()));
    assert!(message(loss(false).forward_backward(&x, &w, &[0, 1], 2, 1))
        .starts_with("weights[1]: is a zero-norm row"));
    assert!(
        message(loss(false).forward_backward(&[0.0, 0.0, 1.0, 1.0], &w, &[0, 2], 2, 1))
            .starts_with("features[0]: is a zero-norm row")
    );
    assert!(message(loss(false).forward_backward(&x, &w, &[0, 3], 2, 1))
        .starts_with("labels[1]: label 3 is out of range 0..3"));
    let nan = [f64::NAN, 1.0, 0.5, -1.0];
    assert!(
        message(loss(false).forward_backward(&nan, &w, &[0, 2], 2, 1))
            .starts_with("features[0]: has a non-finite entry")
    );
}

#[test]
fn psi_f64_has_the_spec_values_at_the_segment_ends() {
    for m in 1..=8u32 {
        assert_eq!(psi_f64(m, 1.0).0, 1.0);
        assert_eq!(psi_f64(m, -1.0).0, 1.0 - 2.0 * f64::from(m));
        // |dψ/dcos θ| ≤ m² (Markov), with m² at cos θ = 1
        assert_eq!(psi_f64(m, 1.0).1, f64::from(m * m));
    }
}
