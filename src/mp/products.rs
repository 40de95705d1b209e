//! Certified matrix products on a plain binary64 GEMM: the Ozaki scheme of error-free
//! slicing (`proofs/certified_products.md`, SPEC §3's certified core at batch scale).
//!
//! Every entry of a row is cut, relative to a power of two 2^E above the row's largest
//! magnitude, into `count` slices of β bits:
//!
//! a_rc = 2^{E_r} · Σ_{s<count} S_{s,rc} · 2^{−β(s+1)} + τ_rc,   S integers, |S| < 2^β,
//!
//! with τ_rc = 0 when the row's lowest bit is covered (always, for binary64 rows whose
//! exponent spread fits), and |τ_rc| < 2^{E_r − β·count} otherwise. For an inner dimension n,
//! β = ⌊(53 − ⌈log₂ n⌉)/2⌋, so every product of two slice entries and every partial sum of n
//! of them is an integer below 2^53: a binary64 GEMM of two slice matrices is exact in any
//! summation order, with or without FMA. The exact product of the sliced values is then
//!
//! (A·Bᵀ)_ij = 2^{E_i + F_j − β(ca + cb)} · Σ_{s,t} P^{st}_ij · 2^{β((ca−1−s) + (cb−1−t))},
//!
//! an integer sum that [`product`] accumulates exactly: the pairs of one level s + t in an
//! i64, the levels in a fixed-point register of 64-bit words, then rounds outward once to
//! the working precision. What slicing dropped (τ, and the
//! width of an enclosure operand) is bounded per row and added to the enclosure's radius:
//!
//! |Σ_k a_ik b_jk − Σ_k â_ik b̂_jk| ≤ e_i·Σ_k|b_jk| + f_j·Σ_k|a_ik| + n·e_i·f_j.
//!
//! Binary64 inputs make X·Wᵀ exact (the dot products an enclosure alone cannot decide);
//! an enclosure operand (the backward pass's ∂L/∂cos θ) gives its products to the working
//! precision at the cost of a few dozen f64 GEMMs instead of n MPFR operations per entry.

use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use rug::float::Round;
use rug::integer::Order;
use rug::ops::{AddAssignRound, AssignRound, MulAssignRound, SubAssignRound};
use rug::Assign;
use rug::{Float, Integer};

/// The most slices a binary64 row is cut into (β·16 ≥ 250 bits of exponent spread for
/// inner dimensions up to 2^13); a wider row is not sliced and its caller falls back to
/// MPFR.
pub const MAX_BINARY64_SLICES: usize = 16;

/// Precision of the error bounds: upper bounds only, so a few bits suffice.
const BOUND_PREC: u32 = 64;

/// The slice width β for an inner dimension `n`: n·(2^β − 1)² < 2^53.
pub fn slice_bits(n: usize) -> u32 {
    let log_n = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    (53u32.saturating_sub(log_n)) / 2
}

/// The rows of a matrix cut into slices (module docs): `rows` rows over an inner dimension
/// `inner`, each row with its scale E_r, an upper bound e_r of what slicing dropped per
/// entry, and an upper bound of Σ_c |a_rc|.
pub struct Slices {
    rows: usize,
    inner: usize,
    beta: u32,
    scale: Vec<i64>,
    /// `count` slice matrices, each `rows × inner`, row-major, integer-valued.
    slices: Vec<Vec<f64>>,
    /// e_r, or `None` when every entry of every row is exact.
    error: Option<Vec<Float>>,
    abs_sum: Vec<Float>,
}

/// A binary64 as sign, odd mantissa and exponent (|x| = m·2^e); `None` for 0 and for
/// values that are not finite.
pub(crate) fn binary64_parts(x: f64) -> Option<(bool, u64, i64)> {
    if x == 0.0 || !x.is_finite() {
        return None;
    }
    let bits = x.to_bits();
    let exp_field = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp_field == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_field - 1075)
    };
    let tz = m.trailing_zeros();
    Some((x < 0.0, m >> tz, e + i64::from(tz)))
}

/// β-bit slice `s` (0 = top) of m·2^e relative to 2^scale: ⌊m·2^{e + β(s+1) − scale}⌋ mod 2^β.
fn chunk(m: u64, e: i64, scale: i64, beta: u32, s: usize) -> u64 {
    let shift = e + i64::from(beta) * (s as i64 + 1) - scale;
    let mask = (1u64 << beta) - 1;
    if shift >= i64::from(beta) {
        0
    } else if shift >= 0 {
        ((u128::from(m) << shift) as u64) & mask
    } else if shift > -64 {
        (m >> (-shift)) & mask
    } else {
        0
    }
}

/// The number of significant bits of `m`: m < 2^bit_length.
pub(crate) fn bit_length(m: u64) -> i64 {
    i64::from(u64::BITS - m.leading_zeros())
}

/// The slice matrices (`count` of them, each `rows × inner`) from each row's slices, given
/// row by row as `count` vectors of `inner` values.
fn stack_rows<'a>(
    count: usize,
    rows: usize,
    inner: usize,
    per_row: impl Iterator<Item = &'a Vec<Vec<f64>>>,
) -> Vec<Vec<f64>> {
    let mut slices = vec![Vec::with_capacity(rows * inner); count];
    for row in per_row {
        for (slice, chunk) in slices.iter_mut().zip(row) {
            slice.extend_from_slice(chunk);
        }
    }
    slices
}

impl Slices {
    /// A binary64 matrix (`get(r, c)`, `rows × inner`) sliced exactly, or `None` when some
    /// row's exponent spread needs more than [`MAX_BINARY64_SLICES`] slices (or an entry is
    /// not finite).
    pub fn binary64(
        rows: usize,
        inner: usize,
        get: impl Fn(usize, usize) -> f64 + Sync,
    ) -> Option<Slices> {
        let beta = slice_bits(inner);
        if beta == 0 {
            return None;
        }
        // Per row: the scale (one above the top bit) and the lowest set bit.
        let spans: Vec<Option<(i64, i64)>> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let mut span: Option<(i64, i64)> = None;
                for c in 0..inner {
                    let x = get(r, c);
                    if !x.is_finite() {
                        return None;
                    }
                    if let Some((_, m, e)) = binary64_parts(x) {
                        let (top, low) = (e + bit_length(m), e);
                        span = Some(span.map_or((top, low), |(t, l)| (t.max(top), l.min(low))));
                    }
                }
                Some(span.unwrap_or((0, 0)))
            })
            .collect();
        let spans: Vec<(i64, i64)> = spans.into_iter().collect::<Option<_>>()?;
        let widest = spans.iter().map(|(t, l)| t - l).max().unwrap_or(0);
        let count = usize::try_from((widest + i64::from(beta) - 1) / i64::from(beta))
            .ok()?
            .max(1);
        if count > MAX_BINARY64_SLICES {
            return None;
        }
        let scale: Vec<i64> = spans.iter().map(|&(t, _)| t).collect();
        // Per row, in one pass: every entry taken apart once into all its slices, and
        // Σ|a| rounded up.
        let per_row: Vec<(Vec<Vec<f64>>, Float)> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let mut chunks = vec![vec![0.0; inner]; count];
                let mut abs_sum = Float::with_val(BOUND_PREC, 0);
                for c in 0..inner {
                    let x = get(r, c);
                    abs_sum.add_assign_round(x.abs(), Round::Up);
                    if let Some((negative, m, e)) = binary64_parts(x) {
                        for (s, chunk_row) in chunks.iter_mut().enumerate() {
                            let v = chunk(m, e, scale[r], beta, s) as f64;
                            chunk_row[c] = if negative { -v } else { v };
                        }
                    }
                }
                (chunks, abs_sum)
            })
            .collect();
        let slices = stack_rows(count, rows, inner, per_row.iter().map(|(chunks, _)| chunks));
        let abs_sum = per_row.into_iter().map(|(_, sum)| sum).collect();
        Some(Slices {
            rows,
            inner,
            beta,
            scale,
            slices,
            error: None,
            abs_sum,
        })
    }

    /// A matrix of enclosures (`get(r, c)`, `rows × inner`), each represented by its lower
    /// end, sliced to `bits` bits below its row's scale. e_r bounds the truncation plus the
    /// largest width.
    /// `None` if an entry is not finite.
    pub fn enclosures<'a>(
        rows: usize,
        inner: usize,
        bits: u32,
        get: impl Fn(usize, usize) -> &'a Interval + Sync,
    ) -> Option<Slices> {
        let beta = slice_bits(inner);
        if beta == 0 {
            return None;
        }
        let count = bits.div_ceil(beta).max(1) as usize;
        let total_bits = i64::from(beta) * count as i64;
        struct Row {
            scale: i64,
            error: Float,
            abs_sum: Float,
            chunks: Vec<Vec<f64>>,
        }
        let per_row: Option<Vec<Row>> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let entries: Vec<&Interval> = (0..inner).map(|c| get(r, c)).collect();
                if entries.iter().any(|iv| !iv.is_finite()) {
                    return None;
                }
                // Each entry is represented by its lower end (a point of the enclosure);
                // the scale bounds every lower end: |lo| < 2^scale.
                let scale = entries
                    .iter()
                    .filter_map(|iv| iv.lo().get_exp())
                    .map(i64::from)
                    .max()
                    .unwrap_or(0);
                let mut radius = Float::with_val(BOUND_PREC, 0);
                let mut abs_sum = Float::with_val(BOUND_PREC, 0);
                let mut width = Float::new(BOUND_PREC);
                let mut rest = Float::new(entries.iter().map(|iv| iv.prec()).max().unwrap_or(64));
                let mut truncated = false;
                let mut chunks = vec![vec![0.0; inner]; count];
                let mut bits_of = vec![0u64; count];
                for (c, iv) in entries.iter().enumerate() {
                    let (lo, hi) = (iv.lo(), iv.hi());
                    width.assign_round(hi - lo, Round::Up);
                    if width > radius {
                        radius.assign(&width);
                    }
                    // Σ|a| ≤ Σ max(|lo|, |hi|) ≤ Σ (|lo| + |hi|) over the signs present.
                    if *hi > 0 {
                        abs_sum.add_assign_round(hi, Round::Up);
                    }
                    if *lo < 0 {
                        abs_sum.sub_assign_round(lo, Round::Up);
                    }
                    if lo.is_zero() {
                        continue;
                    }
                    // |lo|·2^−scale ∈ (0, 1), taken apart into binary64 parts by truncation:
                    // each part is the top 53 bits of what remains, so the parts have
                    // disjoint bits and their β-bit chunks add without carries.
                    rest.assign(lo);
                    rest.abs_mut();
                    rest >>= clamp_exp(scale);
                    bits_of.fill(0);
                    while !rest.is_zero() {
                        if rest.get_exp().is_none_or(|e| i64::from(e) <= -total_bits) {
                            truncated = true; // below the last slice
                            break;
                        }
                        let part = rest.to_f64_round(Round::Zero);
                        let Some((_, m, e)) = binary64_parts(part) else {
                            truncated = true; // below binary64's range: bounded, not sliced
                            break;
                        };
                        for (s, b) in bits_of.iter_mut().enumerate() {
                            *b |= chunk(m, e, 0, beta, s);
                        }
                        rest -= part;
                    }
                    let negative = *lo < 0;
                    for (chunk_row, &b) in chunks.iter_mut().zip(&bits_of) {
                        let v = b as f64;
                        chunk_row[c] = if negative { -v } else { v };
                    }
                }
                let mut error = radius;
                if truncated {
                    let unit = Float::with_val(BOUND_PREC, 1) << clamp_exp(scale - total_bits);
                    error.add_assign_round(&unit, Round::Up);
                }
                Some(Row {
                    scale,
                    error,
                    abs_sum,
                    chunks,
                })
            })
            .collect();
        let per_row = per_row?;
        let slices = stack_rows(count, rows, inner, per_row.iter().map(|row| &row.chunks));
        Some(Slices {
            rows,
            inner,
            beta,
            scale: per_row.iter().map(|r| r.scale).collect(),
            slices,
            error: Some(per_row.iter().map(|r| r.error.clone()).collect()),
            abs_sum: per_row.into_iter().map(|r| r.abs_sum).collect(),
        })
    }

    /// Number of slices per row.
    pub fn count(&self) -> usize {
        self.slices.len()
    }

    /// True when the slices hold every entry exactly.
    pub fn is_exact(&self) -> bool {
        self.error.is_none()
    }
}

fn clamp_exp(e: i64) -> i32 {
    i32::try_from(e).unwrap_or(if e < 0 { i32::MIN / 2 } else { i32::MAX / 2 })
}

/// Adds `v·2^shift` to the little-endian unsigned register `acc`.
fn add_shifted(acc: &mut [u64], v: u64, shift: u32) {
    let w = (shift / 64) as usize;
    let wide = u128::from(v) << (shift % 64);
    let (lo, hi) = (wide as u64, (wide >> 64) as u64);
    let (s, mut carry) = acc[w].overflowing_add(lo);
    acc[w] = s;
    let mut k = w + 1;
    let (s, c1) = acc[k].overflowing_add(hi);
    let (s, c2) = s.overflowing_add(u64::from(carry));
    acc[k] = s;
    carry = c1 || c2;
    while carry {
        k += 1;
        let (s, c) = acc[k].overflowing_add(1);
        acc[k] = s;
        carry = c;
    }
}

/// The most level sums held at once (one i64 per output entry and shift level): 2^22,
/// 32 MiB.
const BLOCK_WORDS: usize = 1 << 22;

/// Enclosures at `prec` bits of every entry of A·Bᵀ, for `a` (m rows) and `b` (p rows)
/// sliced over the same inner dimension: an m × p matrix. Each enclosure is the exact
/// product of the sliced values, rounded outward once, widened by the bound of the module
/// docs; it is the exact product (rounded outward) when both operands are exact.
///
/// # Panics
/// If the operands' inner dimensions differ (a programming error).
pub fn product(a: &Slices, b: &Slices, prec: u32) -> Matrix<Interval> {
    assert_eq!(a.inner, b.inner, "product: inner dimensions differ");
    assert_eq!(a.beta, b.beta, "product: slice widths differ");
    let (m, p, beta) = (a.rows, b.rows, a.beta);
    let (ca, cb) = (a.count(), b.count());
    let top_shift = beta as usize * (ca + cb - 2);
    // The pairs (s, t) of one level s + t share a shift; at most min(ca, cb) ≤ 16 of them,
    // each below 2^53, sum exactly in an i64 (below 2^57). The register then holds
    // 57 + top_shift bits of level sums, plus carries: one spare word.
    let levels = ca + cb - 1;
    let words = (57 + top_shift + 64).div_ceil(64) + 1;
    let mut out: Vec<Interval> = Vec::with_capacity(m * p);
    let block_rows = (BLOCK_WORDS / (p.max(1) * levels)).clamp(1, m.max(1));
    let mut gemm = vec![0.0f64; block_rows * p];
    let mut level_sums = vec![0i64; block_rows * p * levels];
    for start in (0..m).step_by(block_rows) {
        let rows = block_rows.min(m - start);
        level_sums[..rows * p * levels].fill(0);
        for (s, a_s) in a.slices.iter().enumerate() {
            let a_block = MatRef::from_row_major_slice(
                &a_s[start * a.inner..(start + rows) * a.inner],
                rows,
                a.inner,
            );
            for (t, b_t) in b.slices.iter().enumerate() {
                let b_ref = MatRef::from_row_major_slice(b_t, p, b.inner);
                matmul(
                    MatMut::from_row_major_slice_mut(&mut gemm[..rows * p], rows, p),
                    Accum::Replace,
                    a_block,
                    b_ref.transpose(),
                    1.0,
                    Par::rayon(0),
                );
                let level = s + t;
                level_sums[..rows * p * levels]
                    .par_chunks_mut(p * levels)
                    .zip(gemm[..rows * p].par_chunks(p))
                    .for_each(|(sums, g_row)| {
                        for (j, &g) in g_row.iter().enumerate() {
                            // exact: an integer below 2^53
                            sums[j * levels + level] += g as i64;
                        }
                    });
            }
        }
        let block: Vec<Interval> = (0..rows * p)
            .into_par_iter()
            .map_init(
                || {
                    (
                        vec![0u64; words],
                        vec![0u64; words],
                        Integer::new(),
                        Integer::new(),
                        Float::new(BOUND_PREC),
                    )
                },
                |(pos, neg, sum, minus, bound), idx| {
                    let (i, j) = (start + idx / p, idx % p);
                    pos.fill(0);
                    neg.fill(0);
                    for (level, &v) in level_sums[idx * levels..(idx + 1) * levels]
                        .iter()
                        .enumerate()
                    {
                        if v != 0 {
                            let reg = if v > 0 { &mut *pos } else { &mut *neg };
                            let shift = beta * (levels - 1 - level) as u32;
                            add_shifted(reg, v.unsigned_abs(), shift);
                        }
                    }
                    sum.assign_digits(&pos[..], Order::Lsf);
                    minus.assign_digits(&neg[..], Order::Lsf);
                    *sum -= &*minus;
                    let exp =
                        clamp_exp(a.scale[i] + b.scale[j] - i64::from(beta) * (ca + cb) as i64);
                    let (mut lo, dir) = Float::with_val_round(prec, &*sum, Round::Down);
                    lo <<= exp;
                    let mut hi = lo.clone();
                    if dir != std::cmp::Ordering::Equal {
                        hi.next_up();
                    }
                    if error_bound(a, b, i, j, bound) {
                        lo.sub_assign_round(&*bound, Round::Down);
                        hi.add_assign_round(&*bound, Round::Up);
                    }
                    Interval::new(lo, hi).unwrap_or_else(|| Interval::entire(prec))
                },
            )
            .collect();
        out.extend(block);
    }
    Matrix::from_vec(m, p, out).expect("one enclosure per entry")
}

/// Sets `bound` to e_i·Σ|b_j| + f_j·Σ|a_i| + n·e_i·f_j, rounded up; false (and `bound`
/// untouched) when both operands are exact.
fn error_bound(a: &Slices, b: &Slices, i: usize, j: usize, bound: &mut Float) -> bool {
    match (&a.error, &b.error) {
        (None, None) => false,
        (Some(e), None) => {
            bound.assign_round(&e[i] * &b.abs_sum[j], Round::Up);
            true
        }
        (None, Some(f)) => {
            bound.assign_round(&f[j] * &a.abs_sum[i], Round::Up);
            true
        }
        (Some(e), Some(f)) => {
            let (e, f) = (&e[i], &f[j]);
            let mut t = Float::with_val_round(BOUND_PREC, e * f, Round::Up).0;
            t.mul_assign_round(a.inner as f64, Round::Up);
            bound.assign_round(e * &b.abs_sum[j], Round::Up);
            bound.add_assign_round(&t, Round::Up);
            t.assign_round(f * &a.abs_sum[i], Round::Up);
            bound.add_assign_round(&t, Round::Up);
            true
        }
    }
}
