//! The switch points walked one input ulp at a time (as libm-test walks domain edges): the
//! fast f32/f64 paths against the certified reference at every step across ArcFace's `thmm`
//! switch (cos θ = cos(π − m)), its `easy` switch (cos θ = 0, hit exactly) and the segment
//! boundaries θ = kπ/m of L-Softmax's ψ.
//!
//! At each step the fast answer must be within the precision table of the reference. The
//! one exception is a discontinuity: where the target rule jumps (the two switches), the fast
//! path decides the side from its own cos θ, a dot product of unit vectors that carries an
//! absolute error of a few ulps of 1, so within [`BAND_ULPS`] ulps of 1 of the switch it may
//! take the other side. There its answer must be within the table of the reference of that
//! other side's rule, and beyond the band it must never be. ψ is continuous with a
//! continuous slope at its boundaries (both sides' slopes vanish there), so it has no band.

use crate::common;

use common::table::within_table;
use lossref::answer::Answer;
use lossref::family::{switch_points, SwitchPoint};
use lossref::fast::{dispatch, Real};
use lossref::matrix::Matrix;
use lossref::mp::certify::CertifiedAnswer;
use lossref::reference::certified;
use lossref::spec::Arithmetic;
use lossref::spec::{
    Boundary, Case, Dtype, LossId, Margin, MarginGrad, MultiplicativeCase, NormalizedCase,
    Reduction,
};
use rug::float::Constant;
use rug::Float;
use serde_json::json;

/// Steps walked on each side of the switch.
const STEPS: i32 = 40;

/// The band around a jump, in ulps of 1 of the dtype, within which the fast path may take
/// the other side: its cos θ is within a few ulps of 1 of the exact one.
const BAND_ULPS: f64 = 4.0;

const PREC: u32 = 256;

/// The other class's weight and the target's, at generic angles (no coordinate near 0, so
/// an input ulp is a step of about an ulp in cos θ).
const PHI: f64 = 0.3;

fn unit(angle: f64) -> [f64; 2] {
    [angle.cos(), angle.sin()]
}

/// Features at angle θ from the target weight, the first coordinate moved `k` ulps of T.
fn features<T: Real>(theta: f64, k: i32) -> Matrix<f64> {
    let [a, b] = unit(PHI + theta);
    let mut a = T::of_f64(a).as_f64();
    for _ in 0..k.unsigned_abs() {
        a = neighbour(a, T::DTYPE, k > 0);
    }
    Matrix::from_vec(1, 2, vec![a, T::of_f64(b).as_f64()]).unwrap()
}

/// The neighbour of `x` (a number of `dtype`) in `dtype`, toward +∞ (`up`) or −∞.
fn neighbour(x: f64, dtype: Dtype, up: bool) -> f64 {
    match (dtype.column(), up) {
        (Arithmetic::Float32, true) => f64::from((x as f32).next_up()),
        (Arithmetic::Float32, false) => f64::from((x as f32).next_down()),
        (Arithmetic::Float64, true) => x.next_up(),
        (Arithmetic::Float64, false) => x.next_down(),
    }
}

fn weights<T: Real>() -> Matrix<f64> {
    let w: Vec<f64> = [unit(PHI), unit(PHI + 2.0)]
        .concat()
        .into_iter()
        .map(|v| T::of_f64(v).as_f64())
        .collect();
    Matrix::from_vec(2, 2, w).unwrap()
}

/// cos θ between the features and the target weight, at `PREC` bits.
fn exact_cos(x: &Matrix<f64>, w: &Matrix<f64>) -> Float {
    let f = |v: f64| Float::with_val(PREC, v);
    let (x, w) = (x.row(0), w.row(0));
    let dot = f(x[0]) * f(w[0]) + f(x[1]) * f(w[1]);
    let nx = (f(x[0]) * f(x[0]) + f(x[1]) * f(x[1])).sqrt();
    let nw = (f(w[0]) * f(w[0]) + f(w[1]) * f(w[1])).sqrt();
    dot / (nx * nw)
}

/// ulp(1) of the dtype: 2^−23 or 2^−52.
fn epsilon(dtype: Dtype) -> f64 {
    2f64.powi(1 - dtype.significand_bits() as i32)
}

/// The normalized-margin case of `margin`'s loss (the side rules of a walk are normface's
/// and combined's) on one sample of class 0.
fn normalized(margin: Margin, x: Matrix<f64>, w: Matrix<f64>) -> Case {
    let loss = match margin {
        Margin::None => LossId::NormFace,
        Margin::Additive { .. } => LossId::CosFace,
        Margin::Angular { .. } => LossId::ArcFace,
        Margin::Combined { .. } => LossId::Combined,
    };
    Case::Normalized(NormalizedCase {
        loss,
        scale: 32.0,
        margin,
        reduction: Reduction::Mean,
        features: x,
        weights: w,
        labels: vec![0],
        margins: None,
        margins_as: Default::default(),
        classes: None,
    })
}

/// What one walk saw.
#[derive(Debug, Default)]
struct Walk {
    /// Steps where the reference takes each side (a jump must show both).
    reference_sides: [usize; 2],
    /// Steps where the fast path took the other side than the reference.
    other_side: usize,
    /// The farthest such step from the switch, in ulps of 1.
    widest: f64,
    /// The steps where the reference is undefined (the full gradient at cos θ = 0 exactly).
    undefined: Vec<i32>,
    /// The steps where the fast path refused the case as undefined.
    fast_refused: Vec<i32>,
}

/// Walks a jump of ArcFace's target rule at cos θ* = `switch` in dtype T, with the features
/// of step k `x_at(k)` and the weights `w`. `sides` are the rules on each side everywhere
/// (the arc, and the rule the switch falls back to).
fn walk_jump<T: Real>(
    x_at: impl Fn(i32) -> Matrix<f64>,
    w: &Matrix<f64>,
    switch: &Float,
    margin: Margin,
    sides: [Margin; 2],
) -> Walk {
    let dtype = T::DTYPE;
    let mut seen = Walk::default();
    for k in -STEPS..=STEPS {
        let x = x_at(k);
        let case = normalized(margin, x.clone(), w.clone());
        let distance = Float::with_val(64, exact_cos(&x, w) - switch)
            .abs()
            .to_f64()
            / epsilon(dtype);
        let fast = dispatch::evaluate::<T>(&case);
        let side_answers: Vec<(CertifiedAnswer, Case)> = sides
            .iter()
            .map(|&m| {
                let c = normalized(m, x.clone(), w.clone());
                (certified(&c).expect("each side's rule is defined here"), c)
            })
            .collect();
        let Ok(exact) = certified(&case) else {
            // undefined here (the full gradient exactly at the easy switch): the fast path
            // says so, or answers as one side's rule does (its cos θ need not be 0)
            seen.undefined.push(k);
            match fast {
                Ok(got) => assert!(
                    matches_a_side(&side_answers, dtype, &got),
                    "{case:?} in {dtype:?}: undefined in the reference, and the fast answer \
                     matches neither side"
                ),
                Err(_) => seen.fast_refused.push(k),
            }
            continue;
        };
        let loss = |a: &CertifiedAnswer| a.answer.output("loss").unwrap().values()[0].f64;
        let side = usize::from(loss(&exact) != loss(&side_answers[0].0));
        seen.reference_sides[side] += 1;
        let got = fast.unwrap_or_else(|e| panic!("{case:?} in {dtype:?}: the fast path: {e}"));
        if let Err(why) = within_table(&case, dtype, &exact, &got) {
            assert!(
                distance <= BAND_ULPS,
                "{case:?} in {dtype:?}, {distance:.2} ulps of 1 from the switch: {why}"
            );
            let (other, other_case) = &side_answers[1 - side];
            within_table(other_case, dtype, other, &got).unwrap_or_else(|why_other| {
                panic!(
                    "{case:?} in {dtype:?}, {distance:.2} ulps of 1 from the switch: neither \
                     side: {why}; {why_other}"
                )
            });
            seen.other_side += 1;
            seen.widest = seen.widest.max(distance);
        }
    }
    seen
}

fn matches_a_side(sides: &[(CertifiedAnswer, Case)], dtype: Dtype, got: &Answer<f64>) -> bool {
    sides
        .iter()
        .any(|(a, c)| within_table(c, dtype, a, got).is_ok())
}

fn arc(m: f64, boundary: Boundary, grad: MarginGrad) -> Margin {
    Margin::Angular { m, boundary, grad }
}

/// The switch points of `loss` with `params` (`lossref::family::switch_points`).
fn points(loss: LossId, params: serde_json::Value) -> Vec<SwitchPoint> {
    switch_points(loss, &params).expect("valid parameters")
}

/// The θ of `loss`'s `edge:NAME-switch` point.
fn switch_point(loss: LossId, params: serde_json::Value, name: &str) -> f64 {
    let tag = format!("edge:{name}-switch");
    points(loss, params)
        .into_iter()
        .find(|p| p.tag == tag)
        .map(|p| p.theta)
        .unwrap_or_else(|| panic!("{loss} has no {tag}"))
}

#[test]
fn the_thmm_switch_walked_one_ulp_at_a_time() {
    let m = 0.5;
    // cos θ* = cos(π − m), and past it (θ > π − m) the rule falls back to cos θ − m·sin m
    let pi = Float::with_val(PREC, Constant::Pi);
    let switch = Float::with_val(PREC, pi - m).cos();
    // the switch where the family states it
    let theta = switch_point(
        LossId::ArcFace,
        json!({"margin": m, "boundary": "thmm"}),
        "thmm",
    );
    assert_eq!(theta, std::f64::consts::PI - m);
    let fallback = Margin::Combined {
        m1: 1.0,
        m2: 0.0,
        m3: m * m.sin(),
    };
    for grad in MarginGrad::ALL {
        let margin = arc(m, Boundary::Thmm, grad);
        let sides = [arc(m, Boundary::None, grad), fallback];
        for (dtype, seen) in [
            (
                "f32",
                walk_jump::<f32>(
                    |k| features::<f32>(theta, k),
                    &weights::<f32>(),
                    &switch,
                    margin,
                    sides,
                ),
            ),
            (
                "f64",
                walk_jump::<f64>(
                    |k| features::<f64>(theta, k),
                    &weights::<f64>(),
                    &switch,
                    margin,
                    sides,
                ),
            ),
        ] {
            eprintln!("thmm {grad:?} {dtype}: {seen:?}");
            assert!(
                seen.reference_sides.iter().all(|&n| n > 0),
                "{dtype}: the walk must cross the switch: {seen:?}"
            );
            assert!(seen.undefined.is_empty(), "{dtype}: {seen:?}");
        }
    }
}

/// The easy switch with features (t, −1) and a target weight (1, 1): cos θ ∝ t − 1, exactly
/// 0 at t = 1 and moved by one ulp of 1 per step (t − 1 is exact in both dtypes).
#[test]
fn the_easy_switch_walked_one_ulp_at_a_time_through_exactly_zero() {
    let m = 0.5;
    let switch = Float::with_val(PREC, 0);
    let w = Matrix::from_vec(2, 2, vec![1.0, 1.0, -1.0, 0.5]).unwrap();
    let x_at = |dtype: Dtype| {
        move |k: i32| {
            Matrix::from_vec(1, 2, vec![1.0 + f64::from(k) * epsilon(dtype), -1.0]).unwrap()
        }
    };
    for grad in MarginGrad::ALL {
        let margin = arc(m, Boundary::Easy, grad);
        let sides = [arc(m, Boundary::None, grad), Margin::None];
        // the family states the switch at cos θ = 0, undefined for the full gradient
        let params = json!({"margin": m, "boundary": "easy", "margin_grad": grad.as_str()});
        let easy = points(LossId::ArcFace, params)
            .into_iter()
            .find(|p| p.tag == "edge:easy-switch")
            .expect("an easy switch");
        assert_eq!((easy.cos, easy.undefined), (0.0, grad == MarginGrad::Full));
        for (dtype, seen) in [
            (
                "f32",
                walk_jump::<f32>(x_at(Dtype::Float32), &w, &switch, margin, sides),
            ),
            (
                "f64",
                walk_jump::<f64>(x_at(Dtype::Float64), &w, &switch, margin, sides),
            ),
        ] {
            eprintln!("easy {grad:?} {dtype}: {seen:?}");
            assert!(
                seen.reference_sides.iter().all(|&n| n > 0),
                "{dtype}: the walk must cross the switch: {seen:?}"
            );
            // cos θ = 0 exactly at step 0, undefined for the full gradient only
            let want = if grad == MarginGrad::Full {
                vec![0]
            } else {
                vec![]
            };
            assert_eq!(seen.undefined, want, "{dtype} {grad:?}");
            // the fast path's cos θ is exactly 0 there too (x̂ and ŵ are mirror images), so it
            // refuses the same step, and takes the reference's side at every other step
            assert_eq!(seen.fast_refused, want, "{dtype} {grad:?}");
            assert_eq!(seen.other_side, 0, "{dtype} {grad:?}: {seen:?}");
        }
    }
}

#[test]
fn psi_segment_boundaries_walked_one_ulp_at_a_time() {
    for margin in 2..=4u32 {
        // kπ/m for k = 1 … m − 1, as the family states them
        let boundaries = points(LossId::LSoftmax, json!({ "margin": margin }));
        assert_eq!(boundaries.len(), margin as usize - 1);
        for theta in boundaries.iter().map(|p| p.theta) {
            for lambda in [0.0, 0.5] {
                walk_psi::<f32>(theta, margin, lambda);
                walk_psi::<f64>(theta, margin, lambda);
            }
        }
    }
}

/// ψ is continuous with a continuous (vanishing) slope at θ = kπ/m: the table holds at
/// every step.
fn walk_psi<T: Real>(theta: f64, margin: u32, lambda: f64) {
    let w = weights::<T>();
    for k in -STEPS..=STEPS {
        let case = Case::Multiplicative(MultiplicativeCase {
            loss: LossId::LSoftmax,
            margin,
            lambda,
            reduction: Reduction::Mean,
            features: features::<T>(theta, k).map(|&v| v * 2.0),
            weights: w.clone(),
            labels: vec![0],
        });
        let exact = certified(&case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        let got = dispatch::evaluate::<T>(&case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        within_table(&case, T::DTYPE, &exact, &got)
            .unwrap_or_else(|why| panic!("{case:?} in {:?}, step {k}: {why}", T::DTYPE));
    }
}

/// acos's poles walked in: features (±1, 2^−k) against the target weight (1, 0), so that
/// 1 ∓ cos θ = 2^−(2k+1)(1 + O(2^−2k)) halves twice per step, from θ = 2^−4 to 2^−60, for
/// the angular rules with the full and the detached gradient. The fast path answers every
/// step within the table (whose measure carries acos's condition number 1/sin θ): θ > 0
/// exactly, and the fast path takes θ by Kahan's formula, not acos of a cosine that has
/// rounded to ±1 (corpus 0.4.0's `edge:cos-rounds-to-1`). At the pole itself (x ∥ w) it
/// refuses exactly the gradients that the family calls undefined there.
#[test]
fn acos_poles_walked_in_by_halving_the_angle() {
    let rules = [
        (
            LossId::ArcFace,
            json!({"margin": 0.5, "margin_grad": "full"}),
            arc(0.5, Boundary::None, MarginGrad::Full),
        ),
        (
            LossId::ArcFace,
            json!({"margin": 0.5, "margin_grad": "detached"}),
            arc(0.5, Boundary::None, MarginGrad::Detached),
        ),
        (
            LossId::Combined,
            json!({"m1": 1.0, "m2": 0.3, "m3": 0.2}),
            Margin::Combined {
                m1: 1.0,
                m2: 0.3,
                m3: 0.2,
            },
        ),
    ];
    for (loss, params, margin) in rules {
        // the poles where the family states them, with whether the gradient exists there
        let poles: Vec<SwitchPoint> = points(loss, params)
            .into_iter()
            .filter(|p| p.tag.starts_with("edge:acos-near-"))
            .collect();
        assert_eq!(poles.len(), 2, "{loss}");
        for pole in poles {
            let refused32 = walk_pole::<f32>(margin, pole.cos);
            let refused64 = walk_pole::<f64>(margin, pole.cos);
            for refused in [refused32, refused64] {
                assert_eq!(refused, 0, "{margin:?} at {}: {refused} refused", pole.cos);
            }
            // exactly at the pole, x = (±1, 0) ∥ w_0 = (1, 0): refused iff undefined there
            let x = Matrix::from_vec(1, 2, vec![pole.cos, 0.0]).unwrap();
            let w = Matrix::from_vec(2, 2, vec![1.0, 0.0, -0.25, 1.0]).unwrap();
            let case = normalized(margin, x, w);
            for answered in [
                dispatch::evaluate::<f32>(&case).is_ok(),
                dispatch::evaluate::<f64>(&case).is_ok(),
            ] {
                assert_eq!(
                    answered, !pole.undefined,
                    "{margin:?} at the pole {}",
                    pole.cos
                );
            }
        }
    }
}

/// One pole's walk in dtype T; the number of steps refused.
fn walk_pole<T: Real>(margin: Margin, pole: f64) -> usize {
    let dtype = T::DTYPE;
    let w = Matrix::from_vec(2, 2, vec![1.0, 0.0, -0.25, 1.0]).unwrap();
    let mut refused = 0;
    for k in 4..=60 {
        let x = Matrix::from_vec(1, 2, vec![pole, 2f64.powi(-k)]).unwrap();
        let case = normalized(margin, x.clone(), w.clone());
        let exact = certified(&case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        match dispatch::evaluate::<T>(&case) {
            Ok(got) => within_table(&case, dtype, &exact, &got)
                .unwrap_or_else(|why| panic!("{case:?} in {dtype:?}: {why}")),
            Err(e) => {
                let distance =
                    Float::with_val(64, exact_cos(&x, &w) - pole).abs().to_f64() / epsilon(dtype);
                assert!(
                    distance <= BAND_ULPS && e.to_string().contains("unbounded derivative"),
                    "{case:?} in {dtype:?}, {distance:e} ulps of 1 from the pole: {e}"
                );
                refused += 1;
            }
        }
    }
    refused
}
