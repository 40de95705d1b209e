//! Generators for the normalized-margin family: features, weights and labels whose target
//! angles θ_iy land in named regimes on purpose (SPEC §1's switch points and poles).

use lossref::matrix::Matrix;
use lossref::spec::{Boundary, LossId, Margin, MarginGrad, NormalizedCase, Reduction};
use proptest::prelude::*;
use std::f64::consts::PI;

/// ArcFace's margin in the generated variants (and the place of the `thmm` switch).
pub const ARC_M: f64 = 0.5;

/// Every variant of the normalized-margin family with a representative scale: normface,
/// cosface, amsoftmax, two combined margins and arcface with every boundary and margin
/// gradient. All parameters are exact in f32.
pub fn margin_variants() -> Vec<(LossId, Margin, f64)> {
    let mut v = vec![
        (LossId::NormFace, Margin::None, 16.0),
        (LossId::CosFace, Margin::Additive { m: 0.35 }, 64.0),
        (LossId::AmSoftmax, Margin::Additive { m: 0.35 }, 30.0),
        (
            LossId::Combined,
            Margin::Combined {
                m1: 1.0,
                m2: 0.3,
                m3: 0.2,
            },
            64.0,
        ),
        (
            LossId::Combined,
            Margin::Combined {
                m1: 1.25,
                m2: 0.25,
                m3: 0.125,
            },
            32.0,
        ),
    ];
    for boundary in Boundary::ALL {
        for grad in MarginGrad::ALL {
            v.push((
                LossId::ArcFace,
                Margin::Angular {
                    m: ARC_M,
                    boundary,
                    grad,
                },
                64.0,
            ));
        }
    }
    v
}

/// Where the target angles θ_iy are put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Angle {
    /// Independent random features and weights.
    Moderate,
    /// θ within 10^−1 … 10^−12 of π − m: the `thmm` switch.
    NearThmm,
    /// θ within 10^−1 … 10^−12 of π/2: cos θ near 0, the `easy` switch.
    NearZeroCos,
    /// θ = 10^−1 … 10^−6: cos θ near 1.
    NearOne,
    /// θ = π − 10^−1 … π − 10^−6: cos θ near −1.
    NearMinusOne,
}

impl Angle {
    /// Every regime.
    pub const ALL: [Angle; 5] = [
        Angle::Moderate,
        Angle::NearThmm,
        Angle::NearZeroCos,
        Angle::NearOne,
        Angle::NearMinusOne,
    ];

    /// Whether a realized target angle `theta` is in this regime (for the coverage counts).
    pub fn reached(self, theta: f64, margin: f64) -> bool {
        match self {
            Angle::Moderate => true,
            Angle::NearThmm => (theta - (PI - margin)).abs() < 0.11,
            Angle::NearZeroCos => (theta - PI / 2.0).abs() < 0.11,
            Angle::NearOne => theta < 0.11,
            Angle::NearMinusOne => theta > PI - 0.11,
        }
    }
}

/// A batch for a normalized-margin loss.
#[derive(Clone, Debug)]
pub struct Problem {
    pub features: Matrix<f64>,
    pub weights: Matrix<f64>,
    pub labels: Vec<usize>,
    pub angle: Angle,
}

/// The normalized-margin case of `loss` with `margin`, `scale` and `reduction` on a
/// problem's batch.
pub fn case(
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
        margins: None,
        margins_as: Default::default(),
        classes: None,
    }
}

impl Problem {
    /// The realized target angles, in f64 (for regime counts only).
    pub fn target_angles(&self) -> Vec<f64> {
        self.labels
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                let (x, w) = (self.features.row(i), self.weights.row(y));
                let dot: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
                let n = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
                (dot / (n(x) * n(w))).clamp(-1.0, 1.0).acos()
            })
            .collect()
    }
}

/// SplitMix64: a tiny deterministic generator driven by one proptest seed.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [−1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A vector of `d` entries in [−1, 1), scaled by 2^k with k in −3..=3.
    fn vector(&mut self, d: usize) -> Vec<f64> {
        let scale = 2f64.powi(self.below(7) as i32 - 3);
        loop {
            let v: Vec<f64> = (0..d).map(|_| self.unit() * scale).collect();
            if v.iter().any(|&x| x.abs() > 0.05 * scale) {
                return v;
            }
        }
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// A vector at angle `theta` from `w`, of norm `length`.
fn at_angle(w: &[f64], theta: f64, length: f64, mix: &mut Mix) -> Vec<f64> {
    let nw = norm(w);
    let w_hat: Vec<f64> = w.iter().map(|a| a / nw).collect();
    loop {
        let r = mix.vector(w.len());
        let along: f64 = r.iter().zip(&w_hat).map(|(a, b)| a * b).sum();
        let u: Vec<f64> = r.iter().zip(&w_hat).map(|(a, b)| a - along * b).collect();
        let nu = norm(&u);
        if nu > 1e-3 * norm(&r) {
            return w_hat
                .iter()
                .zip(&u)
                .map(|(a, b)| length * (theta.cos() * a + theta.sin() * b / nu))
                .collect();
        }
    }
}

/// Rounds to f32 when `f32` is set (the value is then exactly representable there).
fn narrow(x: f64, f32: bool) -> f64 {
    if f32 {
        f64::from(x as f32)
    } else {
        x
    }
}

/// N = 1..=3 samples, C = 2..=5 classes, D = 2..=4, with target angles in `angle`
/// (`margin` places the `thmm` switch). With `f32`, every entry is an f32 value, and the
/// closest approaches are 10^−5 rather than 10^−12 (f32 cannot resolve more).
pub fn problem(angle: Angle, margin: f64, f32: bool) -> BoxedStrategy<Problem> {
    sized_problem(angle, margin, f32, (3, 5, 4))
}

/// As [`problem`], with N, C and D up to `most` = (N, C, D).
pub fn sized_problem(
    angle: Angle,
    margin: f64,
    f32: bool,
    most: (usize, usize, usize),
) -> BoxedStrategy<Problem> {
    (
        1usize..=most.0,
        2usize..=most.1,
        2usize..=most.2,
        any::<u64>(),
    )
        .prop_map(move |(n, c, d, seed)| {
            let mut mix = Mix(seed);
            let weights: Vec<Vec<f64>> = (0..c).map(|_| mix.vector(d)).collect();
            let labels: Vec<usize> = (0..n).map(|_| mix.below(c)).collect();
            let closest = if f32 { 5 } else { 12 };
            let tiny = |mix: &mut Mix, most: i32| {
                let e = 1 + mix.below(most as usize) as i32;
                let sign = if mix.next() % 2 == 0 { 1.0 } else { -1.0 };
                sign * 10f64.powi(-e) * (1.0 + 0.5 * mix.unit())
            };
            let features: Vec<Vec<f64>> = labels
                .iter()
                .map(|&y| {
                    let length = 2f64.powi(mix.below(7) as i32 - 3) * (1.0 + 0.4 * mix.unit());
                    let w = &weights[y];
                    match angle {
                        Angle::Moderate => mix.vector(d),
                        Angle::NearThmm => {
                            let t = PI - margin + tiny(&mut mix, closest);
                            at_angle(w, t.clamp(0.0, PI), length, &mut mix)
                        }
                        Angle::NearZeroCos => {
                            let t = PI / 2.0 + tiny(&mut mix, closest);
                            at_angle(w, t, length, &mut mix)
                        }
                        Angle::NearOne => {
                            let t = tiny(&mut mix, if f32 { 3 } else { 6 }).abs();
                            at_angle(w, t, length, &mut mix)
                        }
                        Angle::NearMinusOne => {
                            let t = PI - tiny(&mut mix, if f32 { 3 } else { 6 }).abs();
                            at_angle(w, t, length, &mut mix)
                        }
                    }
                })
                .collect();
            let shape = |rows: Vec<Vec<f64>>| {
                let rows = rows
                    .into_iter()
                    .map(|r| r.into_iter().map(|x| narrow(x, f32)).collect())
                    .collect();
                Matrix::from_rows(rows).expect("rectangular")
            };
            Problem {
                features: shape(features),
                weights: shape(weights),
                labels,
                angle,
            }
        })
        .boxed()
}

/// A rule of each adaptive margin (SPEC §5), with a state before the step and a
/// representative scale: CurricularFace, AdaFace, MagFace (`easy` and `thmm`, its norm clamp
/// [0.75, 2] met by the problems' norms), AdaCos. All parameters are exact in f32.
pub fn adaptive_rules() -> Vec<(lossref::spec::AdaptiveRule, f64)> {
    vec![
        (
            lossref::spec::AdaptiveRule::CurricularFace {
                m: 0.5,
                momentum: 0.25,
                t: 0.5,
            },
            32.0,
        ),
        (
            lossref::spec::AdaptiveRule::AdaFace {
                m: 0.4,
                h: 0.333,
                t_alpha: 0.25,
                eps: 1e-3,
                batch_mean: 1.0,
                batch_std: 0.25,
            },
            64.0,
        ),
        (
            lossref::spec::AdaptiveRule::MagFace {
                l_a: 0.75,
                u_a: 2.0,
                l_m: 0.25,
                u_m: 0.75,
                lambda_g: 4.0,
                boundary: lossref::spec::Boundary::Easy,
            },
            32.0,
        ),
        (
            lossref::spec::AdaptiveRule::MagFace {
                l_a: 0.75,
                u_a: 2.0,
                l_m: 0.25,
                u_m: 0.75,
                lambda_g: 4.0,
                boundary: lossref::spec::Boundary::Thmm,
            },
            16.0,
        ),
        (lossref::spec::AdaptiveRule::AdaCos, 4.0),
    ]
}
