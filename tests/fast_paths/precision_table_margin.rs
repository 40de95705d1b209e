//! Enforces the normalized-margin rows of `lossref::precision::TABLE` in both directions:
//! the fast f32/f64 forward + backward (`lossref::fast::MarginLoss`) is measured against
//! the certified reference over every variant and the target-angle regimes of
//! `common::geometry` (fixed seeds), in the scaled ulps that `lossref::precision` defines.
//! Each entry must be ≥ the measured maximum and at most `STALE_FACTOR` times it.

use crate::common;

use common::deterministic_runner;
use common::geometry::{margin_variants, problem, sized_problem, Angle, Problem, ARC_M};
use common::table::Worsts;
use lossref::fast::{MarginLoss, Real};
use lossref::matrix::Matrix;
use lossref::mp::certify::CertifiedAnswer;
use lossref::precision::scaled_ulps;
use lossref::reference::certified;
use lossref::spec::{Boundary, Case, LossId, Margin, MarginGrad, NormalizedCase, Reduction};
use rug::Float;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Generated inputs per (variant, regime, dtype), times `LOSSREF_EXTENSIVE`.
const CASES: u32 = 12;

/// The table's name for a loss (amsoftmax is cosface's mathematics).
fn family(loss: LossId) -> &'static str {
    match loss {
        LossId::NormFace => "normface",
        LossId::CosFace | LossId::AmSoftmax => "cosface",
        LossId::ArcFace => "arcface",
        _ => "combined",
    }
}

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

fn exact(answer: &CertifiedAnswer, name: &str) -> Vec<Float> {
    let t = if name == "loss" {
        answer.answer.output(name)
    } else {
        answer.answer.gradient(name)
    };
    t.unwrap_or_else(|| panic!("no {name}"))
        .values()
        .iter()
        .map(|c| c.enclosure.mid())
        .collect()
}

/// Measures one problem in dtype T; `tile` forces several row tiles when small.
fn measure<T: Real>(c: &NormalizedCase, tile: usize, worst: &mut Worsts) {
    let answer = certified(&Case::Normalized(c.clone()))
        .unwrap_or_else(|e| panic!("reference failed on {c:?}: {e}"));
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
    let name = family(c.loss);
    let err = |got: T, v: &Float, scale: &Float| {
        scaled_ulps(
            got.as_f64(),
            v,
            scale,
            T::MANTISSA_BITS,
            T::MIN_SUBNORMAL_EXP,
        )
    };
    let loss = &exact(&answer, "loss")[0];
    // max(|L|, s·max κ_i): each logit carries an error of a few ulps of s, times κ_i.
    let k = (0..c.labels.len())
        .map(|i| kappa(&c.margin, cosine(c, i)))
        .fold(1.0, f64::max);
    let loss_scale = Float::with_val(64, loss.clone().abs()).max(&Float::with_val(64, c.scale * k));
    worst.record(
        format!("{name}.loss"),
        T::NAME,
        err(fast.loss, loss, &loss_scale),
        || format!("{c:?}: got {:e} want {loss}", fast.loss.as_f64()),
    );
    let min_normal = if T::NAME == "f32" {
        f64::from(f32::MIN_POSITIVE)
    } else {
        f64::MIN_POSITIVE
    };
    let (row_scales, col_scales) = term_scales(c, min_normal);
    for (grad, got, scales) in [
        ("features", &fast.features, &row_scales),
        ("weights", &fast.weights, &col_scales),
    ] {
        let want = exact(&answer, grad);
        for (row, (g, w)) in got.chunks(d).zip(want.chunks(d)).enumerate() {
            let scale = Float::with_val(64, scales[row]);
            for (k, (gk, wk)) in g.iter().zip(w).enumerate() {
                worst.record(
                    format!("{name}.grad"),
                    T::NAME,
                    err(*gk, wk, &scale),
                    || format!("{c:?}: {grad}[{row}][{k}] got {:e} want {wk}", gk.as_f64()),
                );
            }
        }
    }
    if let Some(got) = fast.scale {
        let want = &exact(&answer, "scale")[0];
        // Σ|∂L/∂z · cos θ| ≤ Σ_i 2r·max|cos θ| ≤ 2 (mean) or 2N (sum): a bound of the terms summed.
        let terms = if c.reduction == Reduction::Mean {
            2.0
        } else {
            2.0 * c.labels.len() as f64
        };
        worst.record(
            "normface.grad_scale",
            T::NAME,
            err(got, want, &Float::with_val(64, terms)),
            || format!("{c:?}: got {:e} want {want}", got.as_f64()),
        );
    }
}

/// The condition factor of row i's target rule: κ_i = 1/sin θ_iy for the angular rules
/// (arcface, combined), which go through θ = acos(cos θ) and so turn an error δ in cos θ into
/// δ/sin θ in θ; 1 for the affine rules (normface, cosface).
fn kappa(margin: &Margin, cos_y: f64) -> f64 {
    match margin {
        Margin::None | Margin::Additive { .. } => 1.0,
        _ => 1.0 / (1.0 - cos_y * cos_y).sqrt().max(f64::MIN_POSITIVE),
    }
}

/// The magnitudes the gradients sum, weighted by their conditioning (f64, from the
/// definitions; a scale needs no more). ∂L/∂x_i sums G_ij(ŵ_j − cos θ_ij x̂_i)/‖x_i‖ over j and
/// ∂L/∂w_j sums G_ij(x̂_i − cos θ_ij ŵ_j)/‖w_j‖ over i, with G_ij = ∂L/∂cos θ_ij; the scales
/// are Σ_j |G_ij|'/‖x_i‖ and Σ_i |G_ij|'/‖w_j‖, where |G_ij|' is the natural size of G_ij:
/// * r·s·p_ij·κ_i off the target (an error in the target logit moves every p_ij of the row);
/// * r·s·(1 − p_y)·max(1, |dg/dcos θ|)·κ_i² at the target for a full gradient (the slope is
///   computed from θ with an absolute error ~ulp/sin²θ, so its natural size is at least 1
///   even where it vanishes, as cos(θ + m) does at θ = π − m), κ_i for a detached one;
/// * never below r·s·`min_normal`: probabilities under the dtype's normal range are
///   subnormal, with absolute, not relative, resolution.
fn term_scales(c: &NormalizedCase, min_normal: f64) -> (Vec<f64>, Vec<f64>) {
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let (n, classes) = (c.features.rows(), c.weights.rows());
    let r = if c.reduction == Reduction::Mean {
        1.0 / n as f64
    } else {
        1.0
    };
    let detached = matches!(
        c.margin,
        Margin::Angular {
            grad: MarginGrad::Detached,
            ..
        }
    );
    let mut rows = vec![0.0; n];
    let mut cols = vec![0.0; classes];
    for (i, row_scale) in rows.iter_mut().enumerate() {
        let x = c.features.row(i);
        let cos: Vec<f64> = (0..classes)
            .map(|j| {
                let w = c.weights.row(j);
                x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / (norm(x) * norm(w))
            })
            .collect();
        let y = c.labels[i];
        let (g, slope) = rule(&c.margin, cos[y]);
        let k = kappa(&c.margin, cos[y]);
        let z: Vec<f64> = (0..classes)
            .map(|j| c.scale * if j == y { g } else { cos[j] })
            .collect();
        let top = z.iter().copied().fold(f64::MIN, f64::max);
        let total: f64 = z.iter().map(|v| (v - top).exp()).sum();
        let p: Vec<f64> = z.iter().map(|v| (v - top).exp() / total).collect();
        // 1 − p_y as Σ_{j≠y} p_j: no cancellation when the target dominates.
        let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
        for j in 0..classes {
            let size = if j != y {
                p[j] * k
            } else if detached {
                rest * k
            } else {
                rest * slope.abs().max(1.0) * k * k
            };
            let gij = r * c.scale * size.max(min_normal);
            *row_scale += gij / norm(x);
            cols[j] += gij / norm(c.weights.row(j));
        }
    }
    (rows, cols)
}

/// g and dg/dcos θ of SPEC §1 in f64, away from the poles.
fn rule(margin: &Margin, c: f64) -> (f64, f64) {
    let angular = |m1: f64, m2: f64, m3: f64| {
        let a = m1 * c.acos() + m2;
        (a.cos() - m3, m1 * a.sin() / (1.0 - c * c).sqrt())
    };
    match *margin {
        Margin::None => (c, 1.0),
        Margin::Additive { m } => (c - m, 1.0),
        Margin::Combined { m1, m2, m3 } => angular(m1, m2, m3),
        Margin::Angular { m, boundary, grad } => {
            let arc = match boundary {
                Boundary::None => true,
                Boundary::Thmm => c > (std::f64::consts::PI - m).cos(),
                Boundary::Easy => c > 0.0,
            };
            let (g, slope) = if arc { angular(1.0, m, 0.0) } else { (c, 1.0) };
            (
                g,
                if grad == MarginGrad::Detached {
                    1.0
                } else {
                    slope
                },
            )
        }
    }
}

/// cos θ_iy in f64.
fn cosine(c: &NormalizedCase, i: usize) -> f64 {
    let (x, w) = (c.features.row(i), c.weights.row(c.labels[i]));
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / (norm(x) * norm(w))
}

fn case(
    p: &Problem,
    loss: LossId,
    margin: Margin,
    scale: f64,
    reduction: Reduction,
) -> NormalizedCase {
    NormalizedCase {
        loss,
        scale,
        margin,
        reduction,
        features: p.features.clone(),
        weights: p.weights.clone(),
        labels: p.labels.clone(),
    }
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
    let (worst, reached) = (worst.into_inner(), reached.into_inner());
    assert_eq!(
        reached,
        Angle::ALL.into_iter().collect(),
        "a regime was never reached"
    );
    worst.enforce(
        |f| {
            ["normface.", "cosface.", "arcface.", "combined."]
                .iter()
                .any(|family| f.starts_with(family))
        },
        Vec::new(),
    );
}
