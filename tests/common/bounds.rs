//! Support for the theorem tests (T1–T3): the reference `normface` loss on the theorems'
//! configurations, posteriors, digit agreement of enclosures, and strategies for weight sets.

use lossref::bounds::evidence;
use lossref::bounds::simplex::{features_at_weights, integer_simplex};
use lossref::family::normalized::reference::{loss, Rule};
use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::reference::softmax::points;
use lossref::spec::{Margin, Reduction};
use proptest::prelude::*;
use rug::Float;

/// The rule of the reference `normface` loss with the given reduction.
pub fn normface(reduction: Reduction) -> Rule {
    Rule {
        margin: Margin::None,
        reduction,
    }
}

/// T1's objective: the mean reference `normface` loss with `per_class` samples of each class
/// at its class weight.
pub fn loss_at_weights(weights: &Matrix<Interval>, scale: &Interval, per_class: usize) -> Interval {
    let c = features_at_weights(weights, per_class);
    loss(
        &normface(Reduction::Mean),
        &c.features,
        &c.weights,
        &c.labels,
        scale,
    )
    .expect("normface is defined for nonzero rows")
}

/// The same for binary64 weights, at `prec` bits.
pub fn loss_at_f64_weights(
    weights: &Matrix<f64>,
    scale: f64,
    per_class: usize,
    prec: u32,
) -> Interval {
    loss_at_weights(
        &points(weights, prec),
        &Interval::from_f64(prec, scale),
        per_class,
    )
}

/// p_y = e^{−CE} for one sample with feature `feature` and label `y`
/// (`lossref::bounds::evidence::posterior`).
pub fn posterior(
    feature: &[Interval],
    weights: &Matrix<Interval>,
    y: usize,
    scale: &Interval,
) -> Interval {
    evidence::posterior(feature, weights, y, scale).expect("normface is defined for nonzero rows")
}

/// The posterior of class `y` with its feature at its class weight.
pub fn posterior_at_weight(weights: &Matrix<Interval>, y: usize, scale: &Interval) -> Interval {
    posterior(weights.row(y), weights, y, scale)
}

/// True when a and b agree to `digits` significant digits: every point of a − b is at most
/// 10^−digits·|b|.
pub fn agree_to(a: &Interval, b: &Interval, digits: u32) -> bool {
    let diff = a.sub(b).mag();
    let prec = diff.prec().max(64);
    let mut tolerance = Float::with_val(
        prec,
        Float::parse(format!("1e-{digits}")).expect("a number"),
    );
    tolerance *= b.mag();
    !b.contains_zero() && diff <= tolerance
}

/// The number of significant digits to which a and b provably agree (for reports).
pub fn agreement(a: &Interval, b: &Interval) -> f64 {
    evidence::agreement_digits(a, b)
}

/// A binary64 weight set of `c` rows in R^`d` with no zero row: entries in [−4, 4].
pub fn weights(
    c: std::ops::RangeInclusive<usize>,
    d: std::ops::RangeInclusive<usize>,
) -> BoxedStrategy<Matrix<f64>> {
    (c, d)
        .prop_flat_map(|(c, d)| {
            proptest::collection::vec(-4.0f64..4.0, c * d).prop_map(move |v| (c, d, v))
        })
        .prop_filter("no zero row", |(_, d, v)| {
            v.chunks(*d).all(|r| r.iter().any(|&x| x != 0.0))
        })
        .prop_map(|(c, d, v)| Matrix::from_vec(c, d, v).expect("c×d entries"))
        .boxed()
}

/// A scale s, log-uniform in [2^−6, 2^7], rounded to a short binary64.
pub fn scale() -> impl Strategy<Value = f64> {
    (-6.0f64..7.0)
        .prop_map(|e| {
            let s = e.exp2();
            (s * 1024.0).round() / 1024.0
        })
        .prop_filter("positive", |s| *s > 0.0)
}

/// Unit weights with Σ_j w_j = 0 after normalization, exactly, in binary64: the classes are
/// split into parts of at least 2; a part of 2 is ±a for a random integer vector a; a part of
/// k ≥ 3 is the integer simplex k·e_i − 1 on k coordinates, placed by a random signed
/// permutation of the coordinates and scaled by a random power of two. Each part has rows
/// of one norm summing to 0, so the normalized rows do too.
pub fn zero_sum_weights(c: std::ops::RangeInclusive<usize>) -> BoxedStrategy<Matrix<f64>> {
    c.prop_flat_map(|c| {
        // part sizes: a random composition of c into parts ≥ 2
        proptest::collection::vec(2usize..=5, 1..=c).prop_map(move |sizes| {
            // Never leave a single class over: a part needs at least 2.
            let mut parts = Vec::new();
            let mut left = c;
            for s in sizes {
                if left == 0 {
                    break;
                }
                let mut s = s.min(left);
                if left - s == 1 {
                    s += 1;
                }
                parts.push(s);
                left -= s;
            }
            if left > 0 {
                parts.push(left);
            }
            parts
        })
    })
    .prop_flat_map(|parts| {
        let d = parts.iter().copied().max().unwrap_or(2) + 1;
        let n_parts = parts.len();
        (
            Just(parts),
            Just(d),
            proptest::collection::vec(proptest::collection::vec(-8i32..=8, d), n_parts),
            proptest::collection::vec(
                (
                    Just(()).prop_perturb(move |_, mut rng| {
                        let mut perm: Vec<usize> = (0..d).collect();
                        for i in (1..d).rev() {
                            let j = (rng.next_u32() as usize) % (i + 1);
                            perm.swap(i, j);
                        }
                        let signs: Vec<f64> = (0..d)
                            .map(|_| if rng.next_u32() % 2 == 0 { 1.0 } else { -1.0 })
                            .collect();
                        (perm, signs)
                    }),
                    -3i32..=3,
                ),
                n_parts,
            ),
        )
    })
    .prop_filter("pairs need a nonzero vector", |(parts, _, vecs, _)| {
        parts
            .iter()
            .zip(vecs)
            .all(|(&p, v)| p != 2 || v.iter().any(|&x| x != 0))
    })
    .prop_map(|(parts, d, vecs, placements)| {
        let mut rows: Vec<Vec<f64>> = Vec::new();
        for ((&k, a), ((perm, signs), e)) in parts.iter().zip(&vecs).zip(&placements) {
            let scale = f64::from(*e).exp2();
            let base: Vec<Vec<f64>> = if k == 2 {
                let a: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
                vec![a.clone(), a.iter().map(|x| -x).collect()]
            } else {
                let simplex = integer_simplex(k, d).expect("d > k");
                simplex.iter_rows().map(<[f64]>::to_vec).collect()
            };
            for r in base {
                rows.push((0..d).map(|j| signs[j] * r[perm[j]] * scale).collect());
            }
        }
        Matrix::from_rows(rows).expect("rows of one length")
    })
    .boxed()
}
