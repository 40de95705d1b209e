//! Geometry on exact inputs, shared by the losses that normalize rows (SPEC §1:
//! `normface` … `combined`, `lsoftmax`, `sphereface`): norms, cos θ with the exact
//! decisions an enclosure cannot make (a dot product of 0, parallel rows), and the
//! direction terms of ∂cos θ, which vanish exactly along a row.

use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::mp::products::{binary64_parts, bit_length};
use rug::{Assign, Float};
use std::cmp::Ordering;

/// A row's squared norm ‖v‖², its norm, and ‖v‖³.
pub struct RowNorm {
    /// ‖v‖²
    pub squared: Interval,
    /// ‖v‖
    pub norm: Interval,
    /// ‖v‖³
    pub cubed: Interval,
}

impl RowNorm {
    /// ‖v‖ and ‖v‖³ from an enclosure of ‖v‖².
    pub fn from_squared(squared: Interval) -> RowNorm {
        let norm = squared.sqrt();
        let cubed = squared.mul(&norm);
        RowNorm {
            squared,
            norm,
            cubed,
        }
    }
}

/// The [`RowNorm`] of every row of `m` at `prec` bits, each from the exact binary64 parts
/// of its entries.
pub fn row_norms(m: &Matrix<Interval>, prec: u32) -> Vec<RowNorm> {
    m.iter_rows()
        .map(|row| {
            let squares: Vec<Interval> = row.iter().map(|v| v.powi(2)).collect();
            RowNorm::from_squared(Interval::sum(prec, &squares))
        })
        .collect()
}

/// cos θ of one pair; `pole` is `Some(±1)` when the vectors are exactly (anti)parallel.
#[derive(Clone)]
pub struct Cosine {
    /// The enclosure of cos θ, within [−1, 1].
    pub value: Interval,
    /// `Some(±1)` when cos θ is exactly ±1.
    pub pole: Option<i32>,
}

/// x·w as the enclosure of the sum of the products' enclosures.
pub fn dot(x: &[Interval], w: &[Interval], prec: u32) -> Interval {
    let parts: Vec<Interval> = x.iter().zip(w).map(|(a, b)| a.mul(b)).collect();
    Interval::sum(prec, &parts)
}

/// The exact product of point enclosures (`None` if one is not a point).
pub fn exact_product(factors: &[&Interval]) -> Option<Float> {
    let mut p = Float::with_val(64, 1);
    for f in factors {
        if !f.is_point() {
            return None;
        }
        p = Float::with_val(p.prec() + f.prec(), &p * f.lo());
    }
    Some(p)
}

/// The exact dot product of two rows of point enclosures, rounded outward to `prec` bits;
/// `None` if an entry is not a point.
pub fn exact_dot(x: &[Interval], w: &[Interval], prec: u32) -> Option<Interval> {
    let products: Option<Vec<Float>> = x
        .iter()
        .zip(w)
        .map(|(a, b)| exact_product(&[a, b]))
        .collect();
    exact_sum(&products?, prec)
}

/// The exact sum of exact numbers, rounded outward to `prec` bits.
pub fn exact_sum(products: &[Float], prec: u32) -> Option<Interval> {
    let exps = products.iter().filter_map(Float::get_exp);
    let (lo, hi) = exps.fold((i32::MAX, i32::MIN), |(l, h), e| (l.min(e), h.max(e)));
    if lo > hi {
        return Some(Interval::from_i64(prec, 0));
    }
    let width = products.iter().map(Float::prec).max().unwrap_or(64);
    // Every product is a multiple of 2^(lo − width) below 2^hi, so their sum (with carries
    // from at most 2^64 terms) is exact at this precision.
    let exact_prec = u32::try_from(i64::from(hi) - i64::from(lo)).ok()? + width + 66;
    let mut sum = Float::with_val(exact_prec, 0);
    for p in products {
        sum += p;
    }
    Some(Interval::enclosing(prec, &sum))
}

/// `Some(+1)` when x = λw with λ > 0, `Some(−1)` when λ < 0, `None` otherwise (or when an
/// entry is not a point). Exact: all 2×2 minors x_k·w_p − x_p·w_k vanish.
pub fn parallel(x: &[Interval], w: &[Interval]) -> Option<i32> {
    if !x.iter().chain(w).all(Interval::is_point) {
        return None;
    }
    let p = (0..w.len()).max_by(|&a, &b| {
        let (a, b) = (w[a].lo().clone().abs(), w[b].lo().clone().abs());
        a.partial_cmp(&b).unwrap_or(Ordering::Equal)
    })?;
    let (xp, wp) = (x[p].lo(), w[p].lo());
    if xp.is_zero() || wp.is_zero() {
        return None;
    }
    let exact = |a: &Float, b: &Float| Float::with_val(a.prec() + b.prec(), a * b);
    let minors_vanish = (0..w.len()).all(|k| exact(x[k].lo(), wp) == exact(xp, w[k].lo()));
    minors_vanish.then(|| {
        if xp.is_sign_negative() == wp.is_sign_negative() {
            1
        } else {
            -1
        }
    })
}

/// cos θ = x·w/(‖x‖‖w‖) at `prec` bits, with what the enclosure cannot decide decided
/// exactly from the inputs: a dot product of exactly 0, and parallel rows ([`Cosine`]).
pub fn cosine(
    x: &[Interval],
    w: &[Interval],
    xn: &RowNorm,
    wn: &RowNorm,
    prec: u32,
) -> (Interval, Cosine) {
    let mut dot = Interval::from_i64(prec, 0);
    for (a, b) in x.iter().zip(w) {
        dot = dot.add(&a.mul(b));
    }
    if dot.contains_zero() {
        dot = exact_dot(x, w, prec).unwrap_or(dot);
    }
    let cos = cosine_from(dot.div(&xn.norm.mul(&wn.norm)), || parallel(x, w), prec);
    (dot, cos)
}

/// cos θ from an enclosure `c` of d/(‖x‖‖w‖), clamped to [−1, 1]; `parallel` decides
/// exactly whether the rows are (anti)parallel, and is asked only when the enclosure
/// reaches ±1.
pub fn cosine_from(c: Interval, parallel: impl FnOnce() -> Option<i32>, prec: u32) -> Cosine {
    let c = c.clamp_unit();
    let may_be_pole = *c.hi() >= 1 || *c.lo() <= -1;
    match may_be_pole.then(parallel).flatten() {
        Some(sign) => Cosine {
            value: Interval::from_i64(prec, i64::from(sign)),
            pole: Some(sign),
        },
        None => Cosine {
            value: c,
            pole: None,
        },
    }
}

/// cos θ of the binary64 rows `x` and `w` from an enclosure of their dot product and of
/// 1/‖x‖ and 1/‖w‖: [`cosine_from`] of d·(1/‖x‖)·(1/‖w‖), the rows' exact parallel test
/// asked only where the enclosure reaches ±1.
pub fn cosine_of_rows(
    dot: &Interval,
    inv_x: &Interval,
    inv_w: &Interval,
    (x, w): (&[f64], &[f64]),
    prec: u32,
) -> Cosine {
    let parallel = || parallel(&binary64_points(x), &binary64_points(w));
    cosine_from(dot.mul(inv_x).mul(inv_w), parallel, prec)
}

/// The point enclosures of binary64 values at 53 bits (exact).
pub fn binary64_points(row: &[f64]) -> Vec<Interval> {
    row.iter().map(|&v| Interval::from_f64(53, v)).collect()
}

/// A binary64 row's ‖v‖², computed exactly (each square is exact in 106 bits and the sum
/// is accumulated at a precision that holds every bit), rounded outward to `prec` bits;
/// then ‖v‖ and ‖v‖³ as in [`row_norms`].
pub fn exact_row_norm(row: &[f64], prec: u32) -> RowNorm {
    // Every bit of an entry m·2^e (m odd) lies in [e, e + bitlength(m)).
    let spans = row
        .iter()
        .filter_map(|&v| binary64_parts(v))
        .map(|(_, m, e)| (e, e + bit_length(m)));
    let (lo, hi) = spans.fold((i64::MAX, i64::MIN), |(l, h), (low, top)| {
        (l.min(low), h.max(top))
    });
    let squared = if lo > hi {
        Interval::from_i64(prec, 0)
    } else {
        // squares' bits lie in [2lo, 2hi); the sum carries at most 64 more bits.
        let bits = u32::try_from(2 * (hi - lo) + 66).unwrap_or(u32::MAX / 2);
        let mut acc = Float::with_val(bits, 0);
        let mut t = Float::new(53);
        for &v in row {
            t.assign(v);
            acc += &t * &t;
        }
        Interval::enclosing(prec, &acc)
    };
    RowNorm::from_squared(squared)
}

/// ‖a‖²·b_k − (a·b)·a_k, the numerator of ∂cos θ/∂a_k = (b̂_k − cos θ·â_k)/‖a‖ =
/// (‖a‖²b_k − (a·b)a_k)/(‖a‖³‖b‖). It vanishes exactly in the direction of a (an
/// axis-aligned a has exact zeros), so an enclosure that contains 0 is recomputed exactly
/// as Σ_l a_l·(a_l·b_k − b_l·a_k).
pub fn direction_numerator(
    a: &[Interval],
    b: &[Interval],
    a_sq: &Interval,
    dot: &Interval,
    k: usize,
    prec: u32,
) -> Interval {
    let p = a_sq.mul(&b[k]).sub(&dot.mul(&a[k]));
    if !p.contains_zero() {
        return p;
    }
    let terms: Option<Vec<Float>> = (0..a.len())
        .flat_map(|l| {
            let plus = exact_product(&[&a[l], &a[l], &b[k]]);
            let minus = exact_product(&[&a[l], &b[l], &a[k]]).map(|m| -m);
            [plus, minus]
        })
        .collect();
    terms.and_then(|t| exact_sum(&t, prec)).unwrap_or(p)
}
