//! A positive real enclosed without the heap: a ball (m ± r)·2^e with a 256-bit midpoint m
//! and an integer radius r, for the certified layer's hot loops (proofs/certified_products.md
//! §11).
//!
//! A [`Ball`] stands for one unknown real x with (m − r)·2^e ≤ x ≤ (m + r)·2^e, where m is
//! normalized (2^255 ≤ m < 2^256) and r < 2^127. It is built from the fixed-point
//! exponential ([`crate::mp::fast_exp::exp_fixed`]) or from an MPFR enclosure, multiplied
//! exactly and truncated with the truncation counted in r, and decides its roundings to
//! binary64, binary32, bfloat16 and float16 from its two ends with integer arithmetic
//! only: the same decisions as [`crate::mp::certify`]'s on an [`Interval`] holding the same
//! reals, since a rounding that both ends share is every point's between them. Anything a
//! ball cannot decide is handed back (`None`): its caller certifies that value through
//! MPFR.

use crate::mp::fast_exp::{Fixed, FRACTION_BITS};
use crate::mp::interval::Interval;
use crate::mp::limbs;
use crate::spec::Dtype;
use rug::float::Round;
use rug::{Float, Integer};

/// The largest radius a ball keeps (beyond it every operation gives `None`).
const MAX_RADIUS: u128 = 1 << 120;

/// (m ± r)·2^e, positive (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ball {
    /// m, little-endian limbs, with its top bit set.
    mid: [u64; 4],
    /// r, in units of 2^e.
    rad: u128,
    /// e.
    exp: i64,
}

/// Leading zeros of a 256-bit number (256 for 0).
fn leading_zeros(x: &[u64; 4]) -> u32 {
    for (k, &limb) in x.iter().enumerate().rev() {
        if limb != 0 {
            return (3 - k as u32) * 64 + limb.leading_zeros();
        }
    }
    256
}

/// x << s for s < 64, the bits shifted out of the top returned beside it.
fn shl_small(x: &[u64; 4], s: u32) -> [u64; 4] {
    if s == 0 {
        return *x;
    }
    let mut out = [0u64; 4];
    for k in (0..4).rev() {
        out[k] = x[k] << s;
        if k > 0 {
            out[k] |= x[k - 1] >> (64 - s);
        }
    }
    out
}

/// A 320-bit number (five limbs): an end m ± r of a ball, which may pass 2^256.
type Wide = [u64; 5];

/// m, five limbs.
fn widen(m: &[u64; 4]) -> Wide {
    [m[0], m[1], m[2], m[3], 0]
}

/// r, five limbs.
fn of_radius(r: u128) -> Wide {
    [r as u64, (r >> 64) as u64, 0, 0, 0]
}

/// a − b, for a ≥ b.
fn difference(a: &Wide, b: &Wide) -> Wide {
    let mut out = [0u64; 5];
    let mut borrow = 0u128;
    for k in 0..5 {
        let t = u128::from(a[k])
            .wrapping_sub(u128::from(b[k]))
            .wrapping_sub(borrow);
        out[k] = t as u64;
        borrow = u128::from(t >> 64 != 0);
    }
    out
}

/// m + r.
fn plus(m: &[u64; 4], r: u128) -> Wide {
    limbs::add(&widen(m), &of_radius(r))
}

/// m − r (m ≥ 2^255 > r).
fn minus(m: &[u64; 4], r: u128) -> Wide {
    difference(&widen(m), &of_radius(r))
}

fn bit_length(x: &Wide) -> u32 {
    for (k, &limb) in x.iter().enumerate().rev() {
        if limb != 0 {
            return k as u32 * 64 + (64 - limb.leading_zeros());
        }
    }
    0
}

fn bit(x: &Wide, i: u32) -> bool {
    x[(i / 64) as usize] >> (i % 64) & 1 == 1
}

/// Whether any of the bits below bit `i` is set.
fn any_below(x: &Wide, i: u32) -> bool {
    let (limb, within) = ((i / 64) as usize, i % 64);
    x[..limb].iter().any(|&l| l != 0) || (within > 0 && x[limb] << (64 - within) != 0)
}

/// Bits `from … from + 63` of x.
fn bits_from(x: &Wide, from: u32) -> u64 {
    let (limb, within) = ((from / 64) as usize, from % 64);
    let lo = x[limb] >> within;
    let hi = if within > 0 && limb + 1 < 5 {
        x[limb + 1] << (64 - within)
    } else {
        0
    };
    lo | hi
}

/// q·2^u exactly in binary64, for a q < 2^54 and a result that is a binary64 number or
/// beyond the largest one (then +∞): two exact power-of-two scalings.
fn scaled(q: u64, u: i64) -> f64 {
    let mut v = q as f64;
    let mut u = u;
    while u != 0 {
        let step = u.clamp(-1000, 1000);
        v *= f64::from_bits(((1023 + step) as u64) << 52);
        u -= step;
    }
    v
}

/// The positive number x·2^e rounded to nearest (ties to even) in `format`, as a binary64
/// (exact: every number of these formats is one); +∞ past the overflow threshold.
fn round_nearest(x: &Wide, e: i64, format: Dtype) -> f64 {
    let n = bit_length(x);
    if n == 0 {
        return 0.0;
    }
    // x·2^e ∈ [2^b, 2^(b+1)): its unit in the last place is 2^u
    let b = i64::from(n) - 1 + e;
    let u =
        (b - i64::from(format.significand_bits()) + 1).max(i64::from(format.min_subnormal_exp()));
    let shift = u - e;
    let (q, u) = if shift <= 0 {
        // exact: no more bits than the format holds at this magnitude (n ≤ 53)
        (x[0], e)
    } else if shift > i64::from(n) {
        // below half a unit: rounds to 0
        (0, u)
    } else {
        let s = shift as u32;
        let q = bits_from(x, s);
        let half = bit(x, s - 1);
        let up = half && (any_below(x, s - 1) || q & 1 == 1);
        (q + u64::from(up), u)
    };
    let v = scaled(q, u);
    // the overflow threshold of round-to-nearest: max + ½ unit rounds to ∞ (to even), so
    // anything rounded past max is ∞
    if v > format.max_finite() {
        f64::INFINITY
    } else {
        v
    }
}

/// The grid of [`sum_enclosure`]'s accumulators: units of 2^−480.
const SUM_GRID: i64 = 480;

/// Limbs of a sum's accumulator: values below 2^(576 − 480) = 2^96.
const SUM_LIMBS: usize = 9;

/// acc += ⌊x·2^left⌋, or ⌈x·2^left⌉ when `ceil`; `None` should the sum leave the
/// accumulator.
fn add_shifted(acc: &mut [u64; SUM_LIMBS], x: &Wide, left: i64, ceil: bool) -> Option<()> {
    let (shifted, inexact) = limbs::shifted::<SUM_LIMBS>(x, left)?;
    let mut carry = u64::from(ceil && inexact);
    for (a, &b) in acc.iter_mut().zip(&shifted) {
        let (t, c1) = a.overflowing_add(b);
        let (t, c2) = t.overflowing_add(carry);
        *a = t;
        carry = u64::from(c1) + u64::from(c2);
    }
    (carry == 0).then_some(())
}

/// An enclosure at `prec` bits of the sum of the balls' reals: their lower ends summed
/// rounded down, their upper ends rounded up, on the grid of 2^−480 (a ball below it
/// adds one unit to the upper sum); `None` for a sum of 2^96 or more.
pub fn sum_enclosure<'a>(balls: impl IntoIterator<Item = &'a Ball>, prec: u32) -> Option<Interval> {
    let (mut lo, mut hi) = ([0u64; SUM_LIMBS], [0u64; SUM_LIMBS]);
    for b in balls {
        let left = b.exp + SUM_GRID;
        add_shifted(&mut lo, &minus(&b.mid, b.rad), left, false)?;
        add_shifted(&mut hi, &plus(&b.mid, b.rad), left, true)?;
    }
    let end = |acc: &[u64; SUM_LIMBS], round: Round| {
        let n = Integer::from_digits(acc, rug::integer::Order::Lsf);
        let mut f = Float::with_val_round(prec, &n, round).0;
        f >>= SUM_GRID as i32;
        f
    };
    Interval::new(end(&lo, Round::Down), end(&hi, Round::Up))
}

impl Ball {
    /// The exact 1.
    pub const ONE: Ball = Ball {
        mid: [0, 0, 0, 1 << 63],
        rad: 0,
        exp: -255,
    };

    /// e^x from [`crate::mp::fast_exp::exp_fixed`]'s (V, k): [(V − err)·2^(k − 254),
    /// (V + err)·2^(k − 254)].
    pub fn from_fixed(v: &Fixed, err: u64, k: i64) -> Option<Ball> {
        let lz = leading_zeros(v);
        if lz >= 64 {
            return None;
        }
        Some(Ball {
            mid: shl_small(v, lz),
            rad: u128::from(err) << lz,
            exp: k - i64::from(FRACTION_BITS) - i64::from(lz),
        })
    }

    /// The ball holding every point of a positive, finite enclosure (its ends ⌊lo⌋ and ⌈hi⌉
    /// on the grid of 2^(E − 256), with 2^(E − 1) ≤ hi < 2^E); `None` for any other or for
    /// one too wide for a ball.
    pub fn enclosing(iv: &Interval) -> Option<Ball> {
        if !(iv.lo().is_normal() && iv.hi().is_normal() && *iv.lo() > 0) {
            return None;
        }
        let e = i64::from(iv.hi().get_exp()?);
        let shift = i32::try_from(256 - e).ok()?;
        let on_grid = |x: &Float, round: Round| -> Option<[u64; 4]> {
            let mut scaled = x.clone();
            scaled <<= shift;
            let mut n = Integer::new();
            scaled.to_integer_round_in_place(&mut n, round)?;
            if n.significant_bits() > 256 {
                return None;
            }
            let mut limbs = [0u64; 4];
            n.write_digits(&mut limbs, rug::integer::Order::Lsf);
            Some(limbs)
        };
        let (lo, hi) = (on_grid(iv.lo(), Round::Down)?, on_grid(iv.hi(), Round::Up)?);
        // hi ≥ 2^255 (normalized); the radius is hi − lo
        let diff = difference(&widen(&hi), &widen(&lo));
        if bit_length(&diff) > 120 || leading_zeros(&hi) != 0 {
            return None;
        }
        Some(Ball {
            mid: hi,
            rad: u128::from(diff[0]) | u128::from(diff[1]) << 64,
            exp: e - 256,
        })
    }

    /// The product: m·m' truncated to 256 bits, with the radius grown by the truncation and
    /// by m·r' + m'·r + r·r' (proofs/certified_products.md §11).
    pub fn mul(&self, other: &Ball) -> Option<Ball> {
        let wide = limbs::product::<0>(&self.mid, &other.mid);
        // m·m' ∈ [2^510, 2^512): keep its top 256 bits
        let top = wide[7] >> 63 == 1;
        let drop = if top { 256 } else { 255 };
        let mut mid = [0u64; 4];
        for (k, limb) in mid.iter_mut().enumerate() {
            *limb = if top {
                wide[k + 4]
            } else {
                wide[k + 4] << 1 | wide[k + 3] >> 63
            };
        }
        // in units of 2^drop: (m·r' + m'·r + r·r')/2^drop < (r + r')·2^(256 − drop) + 1, and
        // the truncation is below one unit
        let spread = self.rad.checked_add(other.rad)?;
        let spread = if top { spread } else { spread.checked_mul(2)? };
        let rad = spread.checked_add(2)?;
        if rad > MAX_RADIUS {
            return None;
        }
        Some(Ball {
            mid,
            rad,
            exp: self.exp + other.exp + drop,
        })
    }

    /// The rounding to nearest of every point of the ball to `format`, where its two ends
    /// share it; `None` where they do not (or at an overflow, which the caller certifies).
    pub fn round(&self, format: Dtype) -> Option<f64> {
        let lo = round_nearest(&minus(&self.mid, self.rad), self.exp, format);
        let hi = round_nearest(&plus(&self.mid, self.rad), self.exp, format);
        (lo == hi && lo.is_finite()).then_some(lo)
    }

    /// True when the ball's relative width, 2r/(m − r), is at most 2^−`bits`.
    pub fn narrower_than(&self, bits: u32) -> bool {
        // m − r ≥ 2^254, so 2r ≤ 2^(254 − bits) suffices
        bits <= 253 && self.rad <= (1u128 << (253 - bits).min(127))
    }

    /// The ball as an MPFR enclosure at `prec` bits (for its decimal string).
    pub fn to_interval(&self, prec: u32) -> Option<Interval> {
        let end = |x: Wide, round: Round| -> Option<Float> {
            let n = Integer::from_digits(&x, rug::integer::Order::Lsf);
            let mut f = Float::with_val_round(prec, &n, round).0;
            f <<= i32::try_from(self.exp).ok()?;
            Some(f)
        };
        Interval::new(
            end(minus(&self.mid, self.rad), Round::Down)?,
            end(plus(&self.mid, self.rad), Round::Up)?,
        )
    }
}

#[cfg(test)]
mod tests {
    //! Each operation against MPFR on the ends it claims: roundings equal to MPFR's own
    //! rounding of both ends (`crate::mp::certify::round_to_format`), products, sums and
    //! enclosures holding the exact results of every end combination.
    use super::*;
    use crate::mp::certify::round_to_format;
    use proptest::prelude::*;

    /// An end (m ± r)·2^e exactly, as MPFR holds it.
    fn exact(x: &Wide, e: i64) -> Float {
        let n = Integer::from_digits(x, rug::integer::Order::Lsf);
        let mut f = Float::with_val(330, &n);
        f <<= i32::try_from(e).unwrap();
        f
    }

    fn ends(b: &Ball) -> (Float, Float) {
        (
            exact(&minus(&b.mid, b.rad), b.exp),
            exact(&plus(&b.mid, b.rad), b.exp),
        )
    }

    fn any_ball() -> impl Strategy<Value = Ball> {
        (
            any::<[u64; 4]>(),
            prop_oneof![Just(0u128), 0u128..1 << 20, 0u128..1 << 100],
            -1400i64..300,
        )
            .prop_map(|(mut mid, rad, exp)| {
                mid[3] |= 1 << 63;
                Ball { mid, rad, exp }
            })
    }

    /// A ball whose ends straddle, or touch, a rounding boundary of `format`: the
    /// midpoint of two of its neighbours, or a number of it, nudged by a few units.
    fn near_boundary(format: Dtype) -> impl Strategy<Value = Ball> {
        (
            any::<u64>(),
            -1100i64..140,
            0u128..4,
            -3i64..4,
            any::<bool>(),
        )
            .prop_map(move |(bits, binade, rad, nudge, midpoint)| {
                // m = (2^p + q + ½·midpoint)·2^(256 − p − 1) + nudge, for q < 2^p
                let p = format.significand_bits();
                let q = bits & ((1u64 << (p - 1)) - 1);
                let top = (1u64 << (p - 1)) | q;
                let mut wide = [0u64; 5];
                wide[0] = top << 1 | u64::from(midpoint);
                // shift left by 256 − (p + 1) bits
                let shift = 256 - (p + 1);
                let mut mid = [0u64; 4];
                for (k, m) in mid.iter_mut().enumerate() {
                    let from = k as i64 * 64 - i64::from(shift);
                    *m = if from >= 0 {
                        bits_from(&wide, from as u32)
                    } else if from > -64 {
                        wide[0] << (-from)
                    } else {
                        0
                    };
                }
                let mid = if nudge >= 0 {
                    let w = plus(&mid, nudge as u128);
                    [w[0], w[1], w[2], w[3]]
                } else {
                    let w = minus(&mid, nudge.unsigned_abs() as u128);
                    [w[0], w[1], w[2], w[3]]
                };
                Ball {
                    mid,
                    rad,
                    exp: binade - 255,
                }
            })
    }

    fn check_rounding(b: &Ball, format: Dtype) {
        let (lo, hi) = ends(b);
        let (l, h) = (
            round_to_format(&lo, Round::Nearest, format),
            round_to_format(&hi, Round::Nearest, format),
        );
        let expected = (l == h && l.is_finite()).then_some(l);
        assert_eq!(b.round(format), expected, "{b:?} in {format:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn rounding_decides_what_mpfr_decides_on_both_ends(b in any_ball()) {
            for format in [Dtype::Float64, Dtype::Float32, Dtype::BFloat16, Dtype::Float16] {
                check_rounding(&b, format);
            }
        }

        #[test]
        fn rounding_at_the_boundaries_of_each_format(
            b64 in near_boundary(Dtype::Float64),
            b32 in near_boundary(Dtype::Float32),
            b16 in near_boundary(Dtype::BFloat16),
            h16 in near_boundary(Dtype::Float16),
        ) {
            check_rounding(&b64, Dtype::Float64);
            check_rounding(&b32, Dtype::Float32);
            check_rounding(&b16, Dtype::BFloat16);
            check_rounding(&h16, Dtype::Float16);
        }

        #[test]
        fn a_product_holds_every_product_of_the_ends(a in any_ball(), b in any_ball()) {
            let Some(p) = a.mul(&b) else {
                prop_assert!(a.rad + b.rad > MAX_RADIUS / 4);
                return Ok(());
            };
            let ((al, ah), (bl, bh), (pl, ph)) = (ends(&a), ends(&b), ends(&p));
            let low = Float::with_val(700, &al * &bl);
            let high = Float::with_val(700, &ah * &bh);
            prop_assert!(pl <= low && high <= ph, "{a:?} × {b:?} = {p:?}");
            prop_assert!(p.rad <= 2 * (a.rad + b.rad) + 2);
        }

        #[test]
        fn an_enclosure_becomes_a_ball_holding_it(
            b in any_ball().prop_filter("inside MPFR's range", |b| b.exp > -1300),
            prec in 140u32..=256,
        ) {
            // a point: its enclosure is the two outward roundings alone
            let b = Ball { rad: 0, ..b };
            let iv = b.to_interval(prec).expect("a positive ball");
            let c = Ball::enclosing(&iv).expect("a narrow positive enclosure");
            let (cl, ch) = ends(&c);
            prop_assert!(cl <= *iv.lo() && *iv.hi() <= ch);
            // no wider than the enclosure's outward rounding: about 2^−(prec − 1) relative
            prop_assert!(c.narrower_than(prec - 5));
        }

        #[test]
        fn a_sum_holds_the_sum_of_the_ends(balls in prop::collection::vec(any_ball(), 1..20)) {
            let balls: Vec<Ball> = balls
                .into_iter()
                .map(|mut b| {
                    b.exp = b.exp.clamp(-700, -250);
                    b
                })
                .collect();
            let sum = sum_enclosure(&balls, 200).expect("a small sum");
            let mut low = Float::with_val(2000, 0);
            let mut high = Float::with_val(2000, 0);
            for b in &balls {
                let (l, h) = ends(b);
                low += &l;
                high += &h;
            }
            prop_assert!(*sum.lo() <= low && high <= *sum.hi());
            // within the grid's units and the rounding to 200 bits
            let slack = Float::with_val(64, Float::i_exp(balls.len() as i32 + 2, -480));
            let room = Float::with_val(2000, &high * Float::with_val(64, Float::i_exp(1, -195)));
            prop_assert!(Float::with_val(2000, sum.hi() - &high) <= Float::with_val(2000, &slack + &room));
        }
    }

    #[test]
    fn one_is_exact() {
        assert_eq!(Ball::ONE.round(Dtype::Float64), Some(1.0));
        let (lo, hi) = ends(&Ball::ONE);
        assert!(lo == 1 && hi == 1);
    }
}
