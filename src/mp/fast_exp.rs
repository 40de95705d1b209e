//! e^x enclosed at up to [`FAST_EXP_MAX_PRECISION`] bits without MPFR's exponential:
//! argument reduction in integers on a grid of 2^−320 (in MPFR where that cannot tell), then
//! fixed-point arithmetic on 256-bit integers with a proven error bound
//! (proofs/certified_products.md §10), about 0.27 µs where MPFR's takes 2 µs at 192 bits,
//! and the exponential is most of a logit's work.
//!
//! With k = round(x/ln 2) and r = x − k·ln 2 (|r| ≤ 0.35), u = r + 1/2 ∈ [0, 1) is written
//! as u = j/2^8 + i/2^16 + t with 0 ≤ t < 2^−16, and
//!
//!   e^x = 2^k · e^{j/2^8 − 1/2} · e^{i/2^16} · Σ_{n ≤ 13} t^n/n!  (+ the series' tail),
//!
//! the two exponentials read from tables of 256 entries each, the sum by Horner's rule.
//! Every fixed-point number is an unsigned integer N standing for N·2^−254 (values below 4);
//! a product is truncated to that grid. The result V ≈ e^{u − 1/2} ∈ [0.6, 1.7] is within
//! [`ERROR_UNITS`]·2^−254 of it, so [RD(2^k(V − E)), RU(2^k(V + E))] encloses e^x; at 192
//! bits that is almost always MPFR's own [RD(e^x), RU(e^x)] (it is wider only where e^x lies
//! within 2^−247 relative of a 192-bit number).

use crate::mp::limbs;
use rug::float::Round;
use rug::ops::{AssignRound, SubFrom};
use rug::Assign;
use rug::{Float, Integer};
use std::sync::OnceLock;

/// The most bits [`exp_bounds`] serves; above them (and for |x| ≥ 2^20) MPFR computes.
pub const FAST_EXP_MAX_PRECISION: u32 = 200;

/// Fraction bits of the fixed-point grid.
pub const FRACTION_BITS: u32 = 254;

/// The bound on |V − e^{u − 1/2}| in units of 2^−254 (proofs/certified_products.md §10
/// derives 8.1; about twice that is used).
pub const ERROR_UNITS: u64 = 16;

/// The terms of the Taylor sum: t^n/n! for n ≤ 13, whose tail past n = 13 is below
/// 2^−260 for t < 2^−16.
const TERMS: usize = 13;

/// The limb products each Horner step drops (step n forms S_n = c_n + t·S_(n+1)): the
/// largest q with (q + 1)·2^(64q − 190) ≤ 2^(16n − 8) units, so that the dropped part, times the
/// t^n < 2^−16n that later steps multiply it by, is below 2^−8 units
/// (proofs/certified_products.md §10, step 3).
const HORNER_SKIP: [usize; TERMS] = [2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5];

/// A fixed-point number N·2^−254, N < 2^256, little-endian limbs.
pub type Fixed = [u64; 4];

/// The tables and coefficients, each rounded to nearest on the grid (within ½ unit).
struct Tables {
    /// e^{j/2^8 − 1/2}, j < 256
    coarse: Vec<Fixed>,
    /// e^{i/2^16}, i < 256
    fine: Vec<Fixed>,
    /// 1/n!, n ≤ TERMS
    inverse_factorials: Vec<Fixed>,
    /// ln 2 at 400 bits
    ln2: Float,
    /// ⌊ln 2·2^320⌉, for the reduction in integers
    ln2_fixed: [u64; 5],
}

/// `x` (in place: it is scaled by 2^254) rounded in direction `round` to the grid, with
/// `integer` as scratch; `None` for a value that is not finite.
fn on_grid(x: &mut Float, round: Round, integer: &mut Integer) -> Option<Fixed> {
    *x <<= FRACTION_BITS;
    x.to_integer_round_in_place(integer, round)?;
    let mut limbs = [0u64; 4];
    integer.write_digits(&mut limbs, rug::integer::Order::Lsf);
    Some(limbs)
}

/// A real value at 400 bits rounded to nearest on the grid.
fn to_fixed(x: &Float) -> Fixed {
    on_grid(&mut x.clone(), Round::Nearest, &mut Integer::new()).expect("a finite table value")
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let p = 400;
        // e^{start + k·step} for k < 256 by repeated multiplication at 400 bits: 255
        // roundings, a relative error below 2^−391, far below the grid's ½ unit
        let powers = |start: f64, step: f64| -> Vec<Fixed> {
            let factor = Float::with_val(p, Float::with_val(p, step).exp_ref());
            let mut v = Float::with_val(p, Float::with_val(p, start).exp_ref());
            (0..256)
                .map(|k| {
                    if k > 0 {
                        v *= &factor;
                    }
                    to_fixed(&v)
                })
                .collect()
        };
        let coarse = powers(-0.5, 1.0 / 256.0);
        let fine = powers(0.0, 1.0 / 65536.0);
        let mut factorial = Integer::from(1);
        let inverse_factorials = (0..=TERMS)
            .map(|n| {
                if n > 0 {
                    factorial *= n as u32;
                }
                to_fixed(&Float::with_val(p, 1 / Float::with_val(p, &factorial)))
            })
            .collect();
        Tables {
            coarse,
            fine,
            inverse_factorials,
            ln2: Float::with_val(p, rug::float::Constant::Log2),
            ln2_fixed: {
                let mut x = Float::with_val(p, rug::float::Constant::Log2);
                x <<= REDUCTION_BITS as i32;
                let n = x.to_integer().expect("a finite constant");
                let mut limbs = [0u64; 5];
                n.write_digits(&mut limbs, rug::integer::Order::Lsf);
                limbs
            },
        }
    })
}

/// ⌊a·b·2^−254⌋: the product on the grid, truncated (a, b < 4, so the result is < 16 and
/// fits).
fn mul(a: &Fixed, b: &Fixed) -> Fixed {
    mul_skipping::<0>(a, b)
}

/// The limb products a_i·b_j with i + j < `SKIP` dropped from the product
/// ([`limbs::product`]: below (`SKIP` + 1)·2^(64·SKIP − 190) units of the grid), then the
/// product truncated to the grid as [`mul`]: a product whose error later steps shrink need
/// not be formed whole.
fn mul_skipping<const SKIP: usize>(a: &Fixed, b: &Fixed) -> Fixed {
    let wide = limbs::product::<SKIP>(a, b);
    // bits 254 … 509 of the 512-bit product
    let mut out = [0u64; 4];
    for (k, o) in out.iter_mut().enumerate() {
        let lo = wide[k + 3] >> 62;
        let hi = wide[k + 4] << 2;
        *o = lo | hi;
    }
    out
}

fn add(a: &Fixed, b: &Fixed) -> Fixed {
    limbs::add(a, b)
}

/// a ± e for a small e (a − e saturating at 0).
fn offset(a: &Fixed, e: u64, up: bool) -> Fixed {
    let mut out = *a;
    if up {
        return add(a, &[e, 0, 0, 0]);
    }
    let mut borrow = e;
    for limb in out.iter_mut() {
        let (d, b) = limb.overflowing_sub(borrow);
        *limb = d;
        borrow = u64::from(b);
        if borrow == 0 {
            return out;
        }
    }
    [0; 4]
}

/// The grid of the reduction in integers: units of 2^−320.
const REDUCTION_BITS: i64 = 320;

/// A signed number on the reduction's grid, two's complement, little-endian: values below
/// 2^383 in magnitude.
type Reduction = [u64; 6];

fn negate(x: &Reduction) -> Reduction {
    let mut out = [0u64; 6];
    let mut carry = 1u64;
    for (o, &limb) in out.iter_mut().zip(x) {
        let (v, c) = (!limb).overflowing_add(carry);
        *o = v;
        carry = u64::from(c);
    }
    out
}

/// ⌊u·2^254⌋ for u = x − k·ln 2 + 1/2, with x read exactly from its limbs and ln 2 from its
/// rounding `ln2` to the grid of 2^−320 (proofs/certified_products.md §10, step 1): |x|·2^320
/// truncated toward 0 (within one unit of 2^−320), minus k·⌊ln 2·2^320⌉ (within |k|/2 units),
/// plus 2^319; the sum within 2^21 units of 2^−320 = 2^−45 units of the exponential's grid.
/// `None` where that sum is not in [0, 2^320) (u outside [0, 1), or too close to its ends
/// to tell): the caller reduces in MPFR.
fn reduced_in_integers(x: &Float, k: i64, ln2: &[u64; 5]) -> Option<Fixed> {
    let significand = x.get_significand()?;
    let digits = significand.as_limbs();
    // |x| = significand·2^(exp − 64·limbs), on the grid truncated toward 0
    let shift = i64::from(x.get_exp()?) - 64 * digits.len() as i64 + REDUCTION_BITS;
    let (magnitude, _): (Reduction, bool) = limbs::shifted(digits, shift)?;
    if magnitude[5] >> 62 != 0 {
        return None;
    }
    let signed_x = if x.is_sign_negative() {
        negate(&magnitude)
    } else {
        magnitude
    };
    // |k|·ln2, six limbs
    let mut kl: Reduction = [0; 6];
    let mut carry = 0u128;
    for (o, &limb) in kl.iter_mut().zip(ln2) {
        let t = u128::from(limb) * u128::from(k.unsigned_abs()) + carry;
        *o = t as u64;
        carry = t >> 64;
    }
    kl[5] = carry as u64;
    let minus_kl = if k < 0 { kl } else { negate(&kl) };
    let mut half: Reduction = [0; 6];
    half[4] = 1 << 63;
    let u = limbs::add(&limbs::add(&signed_x, &minus_kl), &half);
    // 0 ≤ u < 2^320
    if u[5] != 0 {
        return None;
    }
    // bits 66 … 319
    let mut grid = [0u64; 4];
    for (k, g) in grid.iter_mut().enumerate() {
        *g = u[k + 1] >> 2 | u[k + 2] << 62;
    }
    grid[3] &= (1u64 << 62) - 1;
    Some(grid)
}

/// Per-thread scratch numbers, so that an exponential allocates only its two results.
struct Scratch {
    reduced: Float,
    integer: Integer,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        reduced: Float::new(400),
        integer: Integer::new(),
    });
}

/// RD or RU of N·2^(k − 254) at `prec` bits.
fn rounded(n: &Fixed, k: i64, prec: u32, round: Round, integer: &mut Integer) -> Float {
    integer.assign_digits(n, rug::integer::Order::Lsf);
    let mut f = Float::new(prec);
    f.assign_round(&*integer, round);
    // exact: a power-of-two scaling (k is within ±2^21, far inside MPFR's exponent range)
    let shift = i32::try_from(k - i64::from(FRACTION_BITS)).unwrap_or(i32::MIN);
    f <<= shift;
    f
}

/// e^x on the fixed-point grid: (V, k) with |V·2^−254 − e^{u − 1/2}| ≤ [`ERROR_UNITS`]·2^−254,
/// so that e^x lies in [(V − E)·2^(k − 254), (V + E)·2^(k − 254)] with E = [`ERROR_UNITS`]
/// and V ∈ [0.6, 1.7]·2^254 (module docs); `None` for x = 0, a value that is not finite,
/// |x| ≥ 2^20, or an `x` of more than 400 bits. No allocation: the reduction runs on
/// per-thread scratch numbers.
pub fn exp_fixed(x: &Float) -> Option<(Fixed, i64)> {
    if !x.is_finite() || x.is_zero() || x.prec() > 400 {
        return None;
    }
    let approx = x.to_f64();
    if approx.abs() >= 1_048_576.0 {
        return None;
    }
    let t = tables();
    SCRATCH.with(|scratch| {
        let Scratch { reduced, integer } = &mut *scratch.borrow_mut();
        let k = (approx / std::f64::consts::LN_2).round();
        // u = x − k·ln 2 + 1/2 on the grid, truncated (within one unit and 2^−45 of one)
        let grid = match reduced_in_integers(x, k as i64, &t.ln2_fixed) {
            Some(grid) => grid,
            None => {
                // r = x − k·ln 2 at 400 bits: |error| ≤ 2^−376, far below a unit of the grid
                reduced.assign(&t.ln2 * k);
                reduced.sub_from(x);
                // u = r + 1/2
                *reduced += 0.5f64;
                if !(0.0..1.0).contains(&*reduced) {
                    return None;
                }
                // u on the grid, truncated (within one unit)
                on_grid(reduced, Round::Down, integer)?
            }
        };
        // u < 1 = 2^254 units: bits 253 … 246 are j, 245 … 238 are i, the rest is t
        let top = grid[3];
        let j = ((top >> 54) & 0xff) as usize;
        let i = ((top >> 46) & 0xff) as usize;
        let tail: Fixed = [grid[0], grid[1], grid[2], top & ((1u64 << 46) - 1)];
        // Horner: Σ_{n ≤ 13} t^n/n!, the step that forms S_n = c_n + t·S_(n+1) dropping the
        // limb products below HORNER_SKIP[n] (its error is shrunk by t^n < 2^−16n after it)
        let mut sum = t.inverse_factorials[TERMS];
        for (n, c) in t.inverse_factorials[..TERMS].iter().enumerate().rev() {
            let product = match HORNER_SKIP[n] {
                5 => mul_skipping::<5>(&sum, &tail),
                4 => mul_skipping::<4>(&sum, &tail),
                3 => mul_skipping::<3>(&sum, &tail),
                2 => mul_skipping::<2>(&sum, &tail),
                _ => mul(&sum, &tail),
            };
            sum = add(&product, c);
        }
        // the two table products drop the limb products below 2 (under 3·2^−62 units each)
        let tables = mul_skipping::<2>(&t.coarse[j], &t.fine[i]);
        Some((mul_skipping::<2>(&tables, &sum), k as i64))
    })
}

/// [RD(e^x), RU(e^x)] at `prec` bits (or a slightly wider enclosure, see the module docs),
/// for a finite `x` with |x| < 2^20 and `prec` ≤ [`FAST_EXP_MAX_PRECISION`]; `None`
/// otherwise (the caller asks MPFR). e^0 is the exact 1.
pub fn exp_bounds(x: &Float, prec: u32) -> Option<(Float, Float)> {
    if prec > FAST_EXP_MAX_PRECISION {
        return None;
    }
    if x.is_zero() {
        let one = Float::with_val(prec, 1);
        return Some((one.clone(), one));
    }
    let (v, k) = exp_fixed(x)?;
    SCRATCH.with(|scratch| {
        let integer = &mut scratch.borrow_mut().integer;
        let lo = rounded(
            &offset(&v, ERROR_UNITS, false),
            k,
            prec,
            Round::Down,
            integer,
        );
        let hi = rounded(&offset(&v, ERROR_UNITS, true), k, prec, Round::Up, integer);
        Some((lo, hi))
    })
}
