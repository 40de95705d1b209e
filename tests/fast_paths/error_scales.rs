//! The error scales of the normalized-margin family (`lossref::precision::measures`, which
//! `lossref check`'s tolerances reuse) are built from the softmax of the case's own logits:
//! the target logit must be the rule's g(θ) on both sides of every switch, as the certified
//! reference computes it. A scale built from another rule (the `thmm` fallback taken as
//! cos θ instead of cos θ − m·sin m) misjudges the error of every value past the switch.
//!
//! On one sample with two unit classes in the plane, everything the scale of ∂L/∂x sums is
//! known from outside the scale code: 1 − p_y = −expm1(−L) from the certified loss, κ =
//! 1/sin θ, and the rule's slope from SPEC §1 written out here. The scale s = 4 keeps the
//! target's probability well above binary64's resolution of 1 − p_y on every side of
//! every switch (at s = 64, p_y past π − m is about e^−80, and any target logit gives the
//! same scales).

use lossref::answer::Answer;
use lossref::matrix::Matrix;
use lossref::precision::measures;
use lossref::reference::certified;
use lossref::spec::{Boundary, Case, Dtype, LossId, Margin, MarginGrad, NormalizedCase, Reduction};
use std::f64::consts::PI;

/// One sample at angle θ from its class weight w_0 = (1, 0); the other class is w_1 = (0, 1).
fn one_sample(loss: LossId, margin: Margin, scale: f64, theta: f64) -> NormalizedCase {
    NormalizedCase {
        loss,
        scale,
        margin,
        reduction: Reduction::Mean,
        features: Matrix::from_vec(1, 2, vec![theta.cos(), theta.sin()]).unwrap(),
        weights: Matrix::from_vec(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap(),
        labels: vec![0],
        margins: None,
        margins_as: Default::default(),
        classes: None,
    }
}

/// The scale of ∂L/∂x_0 by SPEC §1 and the measure's definition (precision.rs): r·s·Σ_j
/// |G_0j|' with ‖x‖ = 1, where 1 − p_y = −expm1(−L) comes from the certified loss.
fn expected_row_scale(margin: &Margin, scale: f64, theta: f64, loss: f64) -> f64 {
    let rest = -(-loss).exp_m1();
    let (c, sin) = (theta.cos(), theta.sin());
    let (angular, kappa) = match margin {
        Margin::Angular { .. } | Margin::Combined { .. } => (true, 1.0 / sin),
        _ => (false, 1.0),
    };
    // dg/dcos θ of SPEC §1
    let slope = match *margin {
        Margin::Angular {
            grad: MarginGrad::Detached,
            ..
        } => 1.0,
        Margin::Angular { m, boundary, .. } => {
            let arc = match boundary {
                Boundary::None => true,
                Boundary::Thmm => c > (PI - m).cos(),
                Boundary::Easy => c > 0.0,
            };
            if arc {
                (theta + m).sin() / sin
            } else {
                1.0
            }
        }
        Margin::Combined { m1, m2, .. } => m1 * (m1 * theta + m2).sin() / sin,
        _ => 1.0,
    };
    let detached = matches!(
        margin,
        Margin::Angular {
            grad: MarginGrad::Detached,
            ..
        }
    );
    let target = if angular && !detached {
        rest * slope.abs().max(1.0) * kappa * kappa
    } else {
        rest * kappa
    };
    // the other class: p_1 = 1 − p_y, weighted by κ
    scale * (target + rest * kappa)
}

#[test]
fn the_error_scales_use_the_rule_of_the_reference_on_both_sides_of_every_switch() {
    let m = 0.5;
    let arc = |boundary, grad| Margin::Angular { m, boundary, grad };
    let rules = [
        (LossId::NormFace, Margin::None, 4.0),
        (LossId::CosFace, Margin::Additive { m: 0.35 }, 4.0),
        (LossId::ArcFace, arc(Boundary::None, MarginGrad::Full), 4.0),
        (LossId::ArcFace, arc(Boundary::Thmm, MarginGrad::Full), 4.0),
        (
            LossId::ArcFace,
            arc(Boundary::Thmm, MarginGrad::Detached),
            4.0,
        ),
        (LossId::ArcFace, arc(Boundary::Easy, MarginGrad::Full), 4.0),
        (
            LossId::ArcFace,
            arc(Boundary::Easy, MarginGrad::Detached),
            4.0,
        ),
        (
            LossId::Combined,
            Margin::Combined {
                m1: 1.0,
                m2: 0.3,
                m3: 0.2,
            },
            4.0,
        ),
    ];
    // both sides of the thmm switch π − m and of the easy switch π/2, and a moderate angle
    let angles = [
        0.7,
        PI / 2.0 - 0.1,
        PI / 2.0 + 0.1,
        PI - m - 0.1,
        PI - m + 0.1,
        PI - 0.2,
    ];
    let mut checked = 0;
    for (loss, margin, scale) in rules {
        for theta in angles {
            let c = one_sample(loss, margin, scale, theta);
            let case = Case::Normalized(c.clone());
            let exact = certified(&case).expect("a defined point");
            let exact: Answer<f64> = exact.answer.try_map(|_, v| Ok::<_, ()>(v.f64)).unwrap();
            let l = exact.output("loss").unwrap().values()[0];
            let want = expected_row_scale(&margin, scale, theta, l);
            let measured = measures(&case, &exact, Dtype::Float64);
            let features = measured
                .iter()
                .find(|m| m.group == "gradients/features")
                .expect("a features group");
            for &got in &features.scales {
                assert!(
                    (got - want).abs() <= 1e-9 * want,
                    "{loss} {margin:?} at θ = {theta}: the scale of ∂L/∂x is {got:e}, but the \
                     reference's probabilities give {want:e}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
}
