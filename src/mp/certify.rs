//! Precision escalation (Ziv's strategy) and the tiers of SPEC §3.
//!
//! A reference evaluation at `p` bits returns enclosures. [`certify`] evaluates at
//! [`START_PRECISION`] bits and doubles `p` until every enclosure
//!
//! 1. rounds to a single binary64 under round-to-nearest-even — tier
//!    [`Tier::CorrectlyRounded`]; rounding is monotone, so when both ends round to the same
//!    double, so does every point between them, the exact value included; and
//! 2. is narrow enough to print [`DECIMAL_DIGITS`] significant digits that are true to within
//!    one unit of the last digit (relative width at most 2^−[`DECIMAL_WIDTH_BITS`]).
//!
//! An exact result is a point enclosure, which passes both tests at once, so exact values
//! (0, ½, …) end the loop at the first precision. The loop stops at [`MAX_PRECISION`]. There,
//! a value whose enclosure still straddles a rounding boundary (an exact tie, say) is tier
//! [`Tier::Faithful`] if the enclosure lies between two adjacent doubles; anything weaker is
//! an error naming the value. No answer is ever a silent guess.

use crate::answer::Answer;
use crate::error::{Error, ErrorKind, Result};
use crate::mp::ball::Ball;
use crate::mp::interval::Interval;
use crate::spec::Dtype;
use rug::float::Round;
use rug::Float;
use std::collections::HashSet;
use std::fmt;

/// First working precision, in bits: 64 guard bits over the 128 that printing needs.
pub const START_PRECISION: u32 = 192;

/// The precision cap, in bits. 16384 bits resolve a loss of 1e−300 beside logits of 1e3
/// (about 1100 bits of cancellation) with a wide margin, yet keep a small case under a second.
pub const MAX_PRECISION: u32 = 16384;

/// Significant decimal digits printed for every value (SPEC §3 asks for at least 34).
pub const DECIMAL_DIGITS: usize = 36;

/// A value is printable once its enclosure is narrower than 2^−128 relative, far below one
/// unit in the 36th digit (≥ 10^−36 relative), so the printed digits are true to ±1 unit.
pub const DECIMAL_WIDTH_BITS: i32 = 128;

/// The most significant digits a [`Goal`] may ask for (about 332 000 bits: MPFR's exp and
/// log still take well under a second there).
pub const MAX_DIGITS: usize = 100_000;

/// What a certified evaluation must reach: `digits` significant decimal digits, true to
/// within one unit of the last, found below the precision cap `cap`.
///
/// `lossref eval` uses [`Goal::EVAL`] (36 digits, [`MAX_PRECISION`]); `lossref bound
/// --digits N` asks for more. A value is printable once its enclosure's relative width is
/// at most 2^−w with w = ⌈N·log₂10⌉ + 8 (the 8 guard bits keep the enclosure below 1/256
/// of a unit in the last digit, so printing the midpoint rounded to N digits is within one
/// unit), and the loop starts 64 bits above w.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Goal {
    /// Significant decimal digits to print.
    pub digits: usize,
    /// The precision cap, in bits.
    pub cap: u32,
    /// Whether each value's decimal string is decided and kept (`false`: only its binary
    /// roundings are, for an answer written without decimals, and a value whose last digit
    /// alone is undecided does not escalate; the enclosure must still be narrow enough to
    /// print `digits` digits).
    pub decimals: bool,
}

impl Goal {
    /// The goal of `lossref eval`: [`DECIMAL_DIGITS`] digits below [`MAX_PRECISION`] bits.
    pub const EVAL: Goal = Goal {
        digits: DECIMAL_DIGITS,
        cap: MAX_PRECISION,
        decimals: true,
    };

    /// [`Goal::EVAL`], with or without the decimal strings (see [`Goal::decimals`]).
    pub const fn eval(decimals: bool) -> Goal {
        Goal {
            decimals,
            ..Goal::EVAL
        }
    }

    /// `digits` significant digits (clamped to 1..=[`MAX_DIGITS`]), with a cap of at least
    /// [`MAX_PRECISION`] and at least eight times the starting precision.
    pub fn digits(digits: usize) -> Goal {
        let digits = digits.clamp(1, MAX_DIGITS);
        let start = Goal {
            digits,
            cap: 0,
            decimals: true,
        }
        .start_precision();
        Goal {
            digits,
            cap: MAX_PRECISION.max(start.saturating_mul(8)),
            decimals: true,
        }
    }

    /// w: a printable enclosure is narrower than 2^−w relative.
    pub fn width_bits(self) -> i32 {
        // ⌈digits·log₂10⌉, from an upper bound of log₂10 = 3.32192809488736…
        let bits = (self.digits as u64 * 3_321_928_095).div_ceil(1_000_000_000);
        i32::try_from(bits).unwrap_or(i32::MAX - 8) + 8
    }

    /// The first working precision: 64 guard bits over [`Goal::width_bits`].
    pub fn start_precision(self) -> u32 {
        self.width_bits().unsigned_abs() + 64
    }

    /// The precision of the escalation loop's first round: [`Goal::start_precision`], or
    /// the cap where that is lower.
    pub fn first_precision(self) -> u32 {
        self.start_precision().min(self.cap)
    }
}

/// How strong a claim a value (or a whole answer, by its weakest value) makes (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Agreement at two precisions only, no enclosure (the weakest claim).
    Heuristic,
    /// A value of magnitude below 2^−1075 (half the least binary64 subnormal) whose
    /// enclosure cannot be narrowed enough to print its digits: it lies beyond MPFR's
    /// exponent range (below about 2^−1 073 741 824, e.g. e^(−10¹⁰)), or it may be 0 and no
    /// proof says so (SPEC.md "Exact zeros"). Its binary64 and binary32 roundings are still
    /// certified (±0: every point of the enclosure rounds to a zero), and its decimal
    /// string is the enclosure `[lo, hi]`, printed outward, instead of digits.
    Bounded,
    /// The enclosure lies between two adjacent binary64 numbers: both are faithful roundings.
    Faithful,
    /// The enclosure rounds to one binary64 under round-to-nearest-even.
    CorrectlyRounded,
}

impl Tier {
    /// The SPEC §3 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::CorrectlyRounded => "correctly_rounded",
            Tier::Faithful => "faithful",
            Tier::Bounded => "bounded",
            Tier::Heuristic => "heuristic",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One certified value.
#[derive(Clone, Debug)]
pub struct Certified {
    /// The enclosure that the claims below rest on.
    pub enclosure: Interval,
    /// The binary64 that the value rounds to (tier `correctly_rounded`), or the nearest
    /// double to the enclosure's midpoint (tier `faithful`).
    pub f64: f64,
    /// The binary32 that the value rounds to, decided the same way (a `correctly_rounded`
    /// value is correctly rounded to binary32 too; a `faithful` one may be only faithful
    /// there). Not a rounding of [`Certified::f64`], which could round twice.
    pub f32: f32,
    /// The bfloat16 and the float16 that the value rounds to (SPEC §6), decided the same way
    /// from the enclosure, never from another rounding.
    pub half: HalfRoundings,
    /// The claim this value makes.
    pub tier: Tier,
    /// [`DECIMAL_DIGITS`] significant digits, true to within one unit of the last digit.
    pub decimal: String,
}

/// The certificate printed with every answer (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// The weakest tier over all values of the answer.
    pub tier: Tier,
    /// The working precision at which every value met its tier.
    pub precision_bits: u32,
}

/// What is printed of a certified value, without the enclosure it rests on: its roundings,
/// its tier and (where asked for) its decimal string. `lossref eval` keeps only this, about
/// 16 bytes a value (plus the string), where a [`Certified`] holds two MPFR numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Rounded {
    /// As [`Certified::f64`].
    pub f64: f64,
    /// As [`Certified::f32`].
    pub f32: f32,
    /// As [`Certified::half`].
    pub half: HalfRoundings,
    /// As [`Certified::tier`].
    pub tier: Tier,
    /// As [`Certified::decimal`], where it was kept.
    pub decimal: Option<String>,
}

impl Certified {
    /// The value without its enclosure; the decimal string only `with_decimal`.
    pub fn rounded(self, with_decimal: bool) -> Rounded {
        Rounded {
            f64: self.f64,
            f32: self.f32,
            half: self.half,
            tier: self.tier,
            decimal: with_decimal.then_some(self.decimal),
        }
    }
}

/// A certified value in whichever form an answer keeps it, with the tier it reached.
pub trait Kept: Send {
    /// The claim the value makes.
    fn tier(&self) -> Tier;
}

impl Kept for Certified {
    fn tier(&self) -> Tier {
        self.tier
    }
}

impl Kept for Rounded {
    fn tier(&self) -> Tier {
        self.tier
    }
}

/// An answer whose every value is certified, each kept as a `V`: a [`Certified`] with its
/// enclosure, or a [`Rounded`] without.
#[derive(Clone, Debug)]
pub struct CertifiedAnswer<V = Certified> {
    /// The values.
    pub answer: Answer<V>,
    /// The weakest tier and the precision reached.
    pub certificate: Certificate,
}

/// binary64 or binary32, as a rounding target of an enclosure.
trait Binary: Copy + PartialEq {
    fn zero() -> Self;
    fn rounded(x: &Float, round: Round) -> Self;
    fn is_nan(self) -> bool;
    fn is_finite(self) -> bool;
    fn next_up(self) -> Self;
}

impl Binary for f64 {
    fn zero() -> f64 {
        0.0
    }
    fn rounded(x: &Float, round: Round) -> f64 {
        x.to_f64_round(round)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn next_up(self) -> f64 {
        f64::next_up(self)
    }
}

impl Binary for f32 {
    fn zero() -> f32 {
        0.0
    }
    fn rounded(x: &Float, round: Round) -> f32 {
        x.to_f32_round(round)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    fn next_up(self) -> f32 {
        f32::next_up(self)
    }
}

/// A value's roundings to the 16-bit formats of SPEC §6.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct HalfRoundings {
    /// To bfloat16.
    pub bf16: half::bf16,
    /// To IEEE binary16.
    pub f16: half::f16,
}

impl HalfRoundings {
    /// The rounding to `dtype` (one of [`crate::spec::Dtype::HALF`]) in binary64; the
    /// binary32 rounding `f32` for any other dtype.
    pub fn of(self, dtype: Dtype, f32: f32) -> f64 {
        match dtype {
            Dtype::BFloat16 => self.bf16.to_f64(),
            Dtype::Float16 => self.f16.to_f64(),
            _ => f64::from(f32),
        }
    }

    fn zero(negative: bool) -> HalfRoundings {
        if negative {
            HalfRoundings {
                bf16: half::bf16::NEG_ZERO,
                f16: half::f16::NEG_ZERO,
            }
        } else {
            HalfRoundings::default()
        }
    }
}

/// `x` rounded in direction `round` to the binary `format` (its significand bits, smallest
/// subnormal and largest finite number as [`Dtype`] states them), in binary64 (exact:
/// every such number is a binary64). One rounding from the MPFR value: the precision is
/// the bits the format has at x's magnitude, fewer in the subnormal range, and a result
/// past the largest finite number overflows as IEEE 754 says for the direction.
pub(crate) fn round_to_format(x: &Float, round: Round, format: Dtype) -> f64 {
    let (p, min_sub_exp, max) = (
        format.significand_bits() as i32,
        format.min_subnormal_exp(),
        format.max_finite(),
    );
    let Some(exp) = x.get_exp() else {
        // zero, ±∞ or NaN
        return x.to_f64();
    };
    // |x| = 0.1xxx₂ × 2^exp: its binade is [2^(exp − 1), 2^exp)
    let binade = exp - 1;
    let ulp_exp = (binade - (p - 1)).max(min_sub_exp);
    let bits = binade - ulp_exp + 1;
    let negative = x.is_sign_negative();
    let v = if bits >= 1 {
        Float::with_val_round(bits.unsigned_abs(), x, round)
            .0
            .to_f64()
    } else {
        // below the smallest subnormal s = 2^ulp_exp: 0 or ±s
        let s = Float::with_val(64, Float::i_exp(1, ulp_exp));
        let magnitude = Float::with_val(x.prec(), x.abs_ref());
        let half_s = Float::with_val(64, &s >> 1);
        let away = match round {
            Round::Nearest => magnitude > half_s,
            Round::Up => !negative,
            Round::Down => negative,
            _ => false,
        };
        let m = if away { s.to_f64() } else { 0.0 };
        if negative {
            -m
        } else {
            m
        }
    };
    if v.abs() <= max {
        return v;
    }
    let toward_infinity = match round {
        Round::Nearest => true,
        Round::Up => !negative,
        Round::Down => negative,
        _ => false,
    };
    let m = if toward_infinity { f64::INFINITY } else { max };
    if negative {
        -m
    } else {
        m
    }
}

impl Binary for half::bf16 {
    fn zero() -> half::bf16 {
        half::bf16::ZERO
    }
    fn rounded(x: &Float, round: Round) -> half::bf16 {
        half::bf16::from_f64(round_to_format(x, round, Dtype::BFloat16))
    }
    fn is_nan(self) -> bool {
        half::bf16::is_nan(self)
    }
    fn is_finite(self) -> bool {
        half::bf16::is_finite(self)
    }
    fn next_up(self) -> half::bf16 {
        half::bf16::from_bits(next_up_bits(self.to_bits(), 0x7f80))
    }
}

impl Binary for half::f16 {
    fn zero() -> half::f16 {
        half::f16::ZERO
    }
    fn rounded(x: &Float, round: Round) -> half::f16 {
        half::f16::from_f64(round_to_format(x, round, Dtype::Float16))
    }
    fn is_nan(self) -> bool {
        half::f16::is_nan(self)
    }
    fn is_finite(self) -> bool {
        half::f16::is_finite(self)
    }
    fn next_up(self) -> half::f16 {
        half::f16::from_bits(next_up_bits(self.to_bits(), 0x7c00))
    }
}

/// The next 16-bit pattern up (toward +∞) of a finite IEEE-style format whose +∞ has the
/// bits `infinity`: as `f32::next_up`, on the sign-magnitude encoding.
fn next_up_bits(bits: u16, infinity: u16) -> u16 {
    let magnitude = bits & 0x7fff;
    if bits == infinity || magnitude > infinity {
        bits
    } else if magnitude == 0 {
        1
    } else if bits & 0x8000 == 0 {
        bits + 1
    } else {
        bits - 1
    }
}

/// Round-to-nearest of both ends agrees: the value is correctly rounded to that number.
fn rounds_to_one<B: Binary>(iv: &Interval) -> Option<B> {
    let a = B::rounded(iv.lo(), Round::Nearest);
    let b = B::rounded(iv.hi(), Round::Nearest);
    // `==` identifies −0 and +0; an enclosure of a value too small for the format rounds to
    // a zero of either sign, and the value's own sign is taken from the midpoint.
    // Rounding is monotone, so a nonzero common rounding is the midpoint's too.
    (a == b && !a.is_nan()).then(|| {
        if a == B::zero() {
            B::rounded(&iv.mid(), Round::Nearest)
        } else {
            a
        }
    })
}

/// The enclosure lies within `[d, next_up(d)]` for some `d` of the format.
fn within_one_ulp<B: Binary>(iv: &Interval) -> bool {
    let d = B::rounded(iv.lo(), Round::Down);
    let u = B::rounded(iv.hi(), Round::Up);
    d.is_finite() && u.is_finite() && (u == d || u == d.next_up())
}

/// The enclosure is a point, or its relative width is at most 2^−`width_bits`.
fn printable(iv: &Interval, width_bits: i32) -> bool {
    if iv.is_point() {
        return iv.is_finite();
    }
    if !iv.is_finite() || iv.contains_zero() {
        return false;
    }
    iv.relative_width_below(width_bits.max(0).unsigned_abs())
}

/// `x` to `digits` significant decimal digits (MPFR's rounding to nearest, ties to even):
/// positional for moderate magnitudes, scientific (`1.5e-300`) otherwise. An exact zero
/// prints as `0`.
pub fn decimal_string(x: &Float, digits: usize) -> String {
    let (negative, mantissa, exp) = x.to_sign_string_exp(10, Some(digits));
    // An exact zero is the real number 0, which has no sign.
    let negative = negative && !x.is_zero();
    match exp {
        Some(exp) => layout(negative, &mantissa, exp),
        // zero, infinity or NaN: MPFR's own spelling.
        None => format!("{}{mantissa}", if negative { "-" } else { "" }),
    }
}

/// Extra digits read past the printed ones to decide the rounding in one conversion.
const GUARD_DIGITS: usize = 4;

/// The decimal that every point of `iv` rounds to at `digits` significant digits, with
/// `true` (so the string depends on the value only, not on the enclosure that certified
/// it); or, with `false`, when the enclosure straddles a rounding boundary of the decimal
/// grid, the one of the two neighbouring decimals whose last digit is even (the boundary
/// rounded half to even, within one unit of the value either way).
///
/// One conversion of the midpoint with four more digits decides it when the
/// guard digits are farther from the rounding boundary (…5000…) than the enclosure's
/// half-width; otherwise both ends are converted and compared.
pub fn decided_decimal(iv: &Interval, digits: usize) -> (String, bool) {
    if iv.is_point() {
        return (decimal_string(iv.lo(), digits), true);
    }
    let mid = iv.mid();
    let (negative, mantissa, exp) = mid.to_sign_string_exp(10, Some(digits + GUARD_DIGITS));
    if let (Some(exp), Ok(tail)) = (exp, mantissa[digits..].parse::<i64>()) {
        // value = 0.mantissa × 10^exp, so one guard unit is 10^(exp − digits − GUARD).
        // The enclosure's width is below 2^width_exp; one unit is at least
        // 2^(⌊(exp − digits − GUARD)·log₂10⌋ − 2) (two for the binary64 product's rounding).
        let unit_exp2 = ((i64::from(exp) - (digits + GUARD_DIGITS) as i64) as f64
            * std::f64::consts::LOG2_10)
            .floor() as i64
            - 2;
        let width_exp = iv.width().get_exp().map_or(i64::MIN / 4, i64::from);
        let half_width_units = width_exp - unit_exp2; // width/unit < 2^this
        let boundary = 5 * 10i64.pow(GUARD_DIGITS as u32 - 1);
        let distance = (tail - boundary).abs();
        // The midpoint's guard digits are rounded (±½ unit): 2 units of slack, plus the width.
        if half_width_units < 62 && distance > 2 + (1i64 << half_width_units.max(0)) {
            let negative = negative && !mid.is_zero();
            let (kept, bump) = (&mantissa[..digits], tail > boundary);
            let (rounded, carry) = round_up_digits(kept, bump);
            return (layout(negative, &rounded, exp + i32::from(carry)), true);
        }
    }
    let low = decimal_string(iv.lo(), digits);
    let high = decimal_string(iv.hi(), digits);
    if low == high {
        return (low, true);
    }
    let last_even = |s: &str| {
        let digit = s
            .split('e')
            .next()
            .and_then(|m| m.chars().rev().find(char::is_ascii_digit));
        digit.is_some_and(|d| (d as u8 - b'0') % 2 == 0)
    };
    (if last_even(&low) { low } else { high }, false)
}

/// The digit string `kept`, plus one unit in its last place when `bump`; the bool says
/// whether a carry ran out of the top (999 → 100, one decade up).
fn round_up_digits(kept: &str, bump: bool) -> (String, bool) {
    if !bump {
        return (kept.to_string(), false);
    }
    let mut bytes = kept.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return (String::from_utf8(bytes).unwrap_or_default(), false);
        }
    }
    // All nines: 0.999…9 × 10^e rounds up to 0.100…0 × 10^(e+1).
    let mut out = String::from("1");
    out.push_str(&"0".repeat(kept.len() - 1));
    (out, true)
}

/// Lays out `0.mantissa × 10^exp` with its sign: positional for moderate magnitudes,
/// scientific otherwise.
fn layout(negative: bool, mantissa: &str, exp: i32) -> String {
    let sign = if negative { "-" } else { "" };
    // value = 0.mantissa × 10^exp; the leading digit has decimal exponent exp − 1.
    let e = exp - 1;
    if (-6..21).contains(&e) {
        if e >= 0 {
            let int_len = (e + 1) as usize;
            let (int_part, frac) = mantissa.split_at(int_len.min(mantissa.len()));
            let pad = "0".repeat(int_len.saturating_sub(mantissa.len()));
            if frac.is_empty() {
                format!("{sign}{int_part}{pad}")
            } else {
                format!("{sign}{int_part}{pad}.{frac}")
            }
        } else {
            format!("{sign}0.{}{mantissa}", "0".repeat((-e - 1) as usize))
        }
    } else {
        let (first, rest) = mantissa.split_at(1);
        format!("{sign}{first}.{rest}e{e}")
    }
}

/// Half the least binary64 subnormal, 2^−1075: every real of smaller magnitude rounds to a
/// zero in binary64 (the tie 2^−1075 itself goes to the even 0) and in binary32.
fn below_every_subnormal(x: &Float) -> bool {
    *x.as_abs() <= Float::with_val(2, Float::i_exp(1, -1075))
}

/// True when MPFR's exponent range, not the precision, keeps `iv` wide: it holds 0 (an
/// end underflowed) and reaches no further than 2^64 times the least positive magnitude
/// MPFR represents, so more precision cannot narrow it.
fn at_exponent_floor(iv: &Interval) -> bool {
    let floor = rug::float::exp_min().saturating_add(64);
    iv.contains_zero()
        && [iv.lo(), iv.hi()]
            .into_iter()
            .all(|x| x.is_zero() || x.get_exp().is_some_and(|e| e <= floor))
}

/// The enclosure printed outward with six significant digits: `[lo, hi]`.
fn enclosure_string(iv: &Interval) -> String {
    let end = |x: &Float, round: Round| {
        if x.is_zero() {
            return "0".to_string();
        }
        let (negative, mantissa, exp) = x.to_sign_string_exp_round(10, Some(6), round);
        match exp {
            Some(exp) => layout(negative, &mantissa, exp),
            None => mantissa,
        }
    };
    format!(
        "[{}, {}]",
        end(iv.lo(), Round::Down),
        end(iv.hi(), Round::Up)
    )
}

/// A value that is not printable but lies, whole, within [−2^−1075, 2^−1075]: tier
/// [`Tier::Bounded`], rounding to a zero, once the precision cap is reached or MPFR's
/// exponent range is what keeps it wide. The zero is −0 for an enclosure in [−2^−1075, 0]
/// that is not the point 0, and takes the sign of the midpoint when the enclosure holds
/// both signs (−0 = +0: the sign of that zero is not certified, as in [`rounds_to_one`]).
fn bounded(iv: Interval, final_try: bool) -> std::result::Result<Certified, Interval> {
    let tiny = below_every_subnormal(iv.lo()) && below_every_subnormal(iv.hi());
    if !(tiny && iv.is_finite() && (final_try || at_exponent_floor(&iv))) {
        return Err(iv);
    }
    let negative = *iv.lo() < 0 && (*iv.hi() <= 0 || iv.mid() < 0);
    let (f64, f32) = if negative { (-0.0, -0.0) } else { (0.0, 0.0) };
    Ok(Certified {
        decimal: enclosure_string(&iv),
        enclosure: iv,
        f64,
        f32,
        half: HalfRoundings::zero(negative),
        tier: Tier::Bounded,
    })
}

/// True when every real whose binary32 rounding is `r` has the 16-bit roundings of `r`
/// itself, so that they need no look at the enclosure: `r` is finite, not 0, and not a
/// bfloat16 or float16 midpoint (their overflow thresholds included). Every such midpoint
/// is a binary32 number μ, and rounding is monotone: a real x < μ has RN₃₂(x) ≤ μ, so
/// RN₃₂(x) = r ≠ μ puts x and r on the same side of every midpoint. r is a midpoint exactly
/// when its two binary32 neighbours round apart (the only binary32 number between them is r).
fn single_rounding_suffices(r: f32) -> bool {
    if !r.is_finite() || r == 0.0 {
        return false;
    }
    let (below, above) = (r.next_down(), r.next_up());
    half::bf16::from_f32(below) == half::bf16::from_f32(above)
        && half::f16::from_f32(below) == half::f16::from_f32(above)
}

/// Certifies one enclosure at the tier it reaches; the enclosure back as the error if it
/// is not yet good enough for any tier, or only for `faithful` or `bounded` (or an
/// undecided decimal) while `final_try` is false.
fn certify_value(
    iv: Interval,
    goal: Goal,
    final_try: bool,
) -> std::result::Result<Certified, Interval> {
    if !printable(&iv, goal.width_bits()) {
        return bounded(iv, final_try);
    }
    // The exact 0 rounds to +0 (an enclosure's −0 end carries no sign of the real).
    let exact_zero = iv.is_point() && iv.lo().is_zero();
    let f32_rounding = rounds_to_one::<f32>(&iv).map(|x| if exact_zero { 0.0 } else { x });
    let (f64, f32, tier) = match (rounds_to_one::<f64>(&iv), f32_rounding) {
        (Some(f64), Some(f32)) => (
            if exact_zero { 0.0 } else { f64 },
            f32,
            Tier::CorrectlyRounded,
        ),
        // The binary64 is decided but the binary32 is not (the enclosure straddles a
        // binary32 rounding boundary): escalate, and at the cap settle for faithful.
        (Some(f64), None) if final_try && within_one_ulp::<f32>(&iv) => (
            if exact_zero { 0.0 } else { f64 },
            iv.mid().to_f32_round(Round::Nearest),
            Tier::Faithful,
        ),
        (None, f32) if final_try && within_one_ulp::<f64>(&iv) => (
            iv.mid().to_f64_round(Round::Nearest),
            f32.unwrap_or_else(|| iv.mid().to_f32_round(Round::Nearest)),
            Tier::Faithful,
        ),
        _ => return Err(iv),
    };
    // The 16-bit roundings (SPEC §6) escalate like binary32's, and settle for faithful at
    // the cap (the enclosure is then within one binary64 ulp, so within one of theirs).
    let (bf16, f16) = match f32_rounding.filter(|_| !exact_zero) {
        Some(r) if single_rounding_suffices(r) => {
            (Some(half::bf16::from_f32(r)), Some(half::f16::from_f32(r)))
        }
        _ => (
            rounds_to_one::<half::bf16>(&iv),
            rounds_to_one::<half::f16>(&iv),
        ),
    };
    let halves_decided = bf16.is_some() && f16.is_some();
    if !halves_decided && !final_try {
        return Err(iv);
    }
    let tier = if halves_decided { tier } else { Tier::Faithful };
    let half = if exact_zero {
        HalfRoundings::default()
    } else {
        let mid = iv.mid();
        HalfRoundings {
            bf16: bf16.unwrap_or_else(|| Binary::rounded(&mid, Round::Nearest)),
            f16: f16.unwrap_or_else(|| Binary::rounded(&mid, Round::Nearest)),
        }
    };
    let (decimal, decided) = if goal.decimals {
        decided_decimal(&iv, goal.digits)
    } else {
        (String::new(), true)
    };
    // An undecided decimal escalates like an undecided binary64; at the cap the boundary's
    // even neighbour stands (within one unit).
    if !decided && !final_try {
        return Err(iv);
    }
    Ok(Certified {
        enclosure: iv,
        f64,
        f32,
        half,
        tier,
        decimal,
    })
}

/// Certifies one positive value held as a [`Ball`] in the first round of the loop at
/// `prec` bits, as [`certify_value`] would certify an enclosure of the same reals (which it
/// does whenever this does: the decisions are the same tests, taken on the ball's two
/// ends); `None` where a ball cannot decide one of them, and the caller certifies the
/// value through MPFR instead.
pub(crate) fn certify_ball(ball: &Ball, goal: Goal, prec: u32) -> Option<Rounded> {
    if !ball.narrower_than(goal.width_bits().max(0).unsigned_abs()) {
        return None;
    }
    let f64 = ball.round(Dtype::Float64)?;
    let f32 = ball.round(Dtype::Float32)? as f32;
    let half = if single_rounding_suffices(f32) {
        HalfRoundings {
            bf16: half::bf16::from_f32(f32),
            f16: half::f16::from_f32(f32),
        }
    } else {
        HalfRoundings {
            bf16: half::bf16::from_f64(ball.round(Dtype::BFloat16)?),
            f16: half::f16::from_f64(ball.round(Dtype::Float16)?),
        }
    };
    let decimal = if goal.decimals {
        let (decimal, decided) = decided_decimal(&ball.to_interval(prec)?, goal.digits);
        Some(decimal).filter(|_| decided)?.into()
    } else {
        None
    };
    Some(Rounded {
        f64,
        f32,
        half,
        tier: Tier::CorrectlyRounded,
        decimal,
    })
}

/// [`certify_value`] in the loop's first round (`final_try` false: a value that only
/// reaches `faithful` is not settled), for the values of a first round that is not the
/// loop's own (`crate::reference::blocks`), its decimal string kept as the goal says;
/// `None` where the value would escalate.
pub(crate) fn certify_first_round(iv: Interval, goal: Goal) -> Option<Rounded> {
    certify_value(iv, goal, false)
        .ok()
        .filter(|c| c.tier == Tier::CorrectlyRounded)
        .map(|c| c.rounded(goal.decimals))
}

/// The escalation loop. `evaluate(p)` computes the answer's enclosures at `p` bits; it may
/// fail (an undefined point), which ends the loop with that error.
///
/// # Errors
/// The evaluator's own error, or [`ErrorKind::Uncertified`] naming the first value that is
/// neither correctly rounded nor faithful, or not printable, at [`MAX_PRECISION`].
pub fn certify(evaluate: impl Fn(u32) -> Result<Answer<Interval>>) -> Result<CertifiedAnswer> {
    certify_with_cap(MAX_PRECISION, evaluate)
}

/// [`certify`] with another cap (tests use a low cap to reach the final tiers quickly).
///
/// # Errors
/// As [`certify`].
pub fn certify_with_cap(
    cap: u32,
    evaluate: impl Fn(u32) -> Result<Answer<Interval>>,
) -> Result<CertifiedAnswer> {
    certify_to(
        Goal {
            digits: DECIMAL_DIGITS,
            cap,
            decimals: true,
        },
        evaluate,
    )
}

/// The escalation loop for another [`Goal`]: `goal.digits` significant digits below
/// `goal.cap` bits. [`certify`] is `certify_to(Goal::EVAL, …)`.
///
/// # Errors
/// As [`certify`].
pub fn certify_to(
    goal: Goal,
    evaluate: impl Fn(u32) -> Result<Answer<Interval>>,
) -> Result<CertifiedAnswer> {
    certify_with_zeros(goal, evaluate, |_, places| vec![false; places.len()])
}

/// A value proven exactly 0 (SPEC.md "Exact zeros"): the point 0, correctly rounded.
fn exact_zero(prec: u32) -> Certified {
    Certified {
        enclosure: Interval::from_i64(prec, 0),
        f64: 0.0,
        f32: 0.0,
        half: HalfRoundings::default(),
        tier: Tier::CorrectlyRounded,
        decimal: "0".to_string(),
    }
}

/// The escalation loop with an exact zero test: whenever a value's enclosure contains 0
/// without being the point 0, `zeros(prec, places)` is asked, once per round, about
/// every such value (section, name, row-major index). A value it proves 0 is the exact
/// 0 from then on; the others go on escalating. [`certify_to`] is this loop with a test
/// that proves nothing.
///
/// # Errors
/// As [`certify`].
pub fn certify_with_zeros(
    goal: Goal,
    evaluate: impl Fn(u32) -> Result<Answer<Interval>>,
    zeros: impl FnMut(u32, &[(&str, &str, usize)]) -> Vec<bool>,
) -> Result<CertifiedAnswer> {
    certify_kept(goal, evaluate, zeros, |c| c)
}

/// [`certify_with_zeros`], keeping each certified value as `keep` maps it: the values of the
/// answer are certified (and their enclosures, where `keep` drops them, freed) one by one,
/// so that the answer never holds both forms of every value at once.
///
/// # Errors
/// As [`certify`].
pub fn certify_kept<V: Kept>(
    goal: Goal,
    evaluate: impl Fn(u32) -> Result<Answer<Interval>>,
    zeros: impl FnMut(u32, &[(&str, &str, usize)]) -> Vec<bool>,
    keep: impl Fn(Certified) -> V + Sync,
) -> Result<CertifiedAnswer<V>> {
    certify_kept_from(goal, evaluate, zeros, keep, 0)
}

/// [`certify_kept`] for the rows of a case from `first_row` on (`crate::reference::blocks`):
/// an error names its value's row in the whole case.
///
/// # Errors
/// As [`certify`].
pub fn certify_kept_from<V: Kept>(
    goal: Goal,
    evaluate: impl Fn(u32) -> Result<Answer<Interval>>,
    mut zeros: impl FnMut(u32, &[(&str, &str, usize)]) -> Vec<bool>,
    keep: impl Fn(Certified) -> V + Sync,
    first_row: usize,
) -> Result<CertifiedAnswer<V>> {
    let cap = goal.cap;
    let digits = goal.digits;
    let mut prec = goal.first_precision();
    let mut proven: HashSet<(&'static str, &'static str, usize)> = HashSet::new();
    loop {
        let final_try = prec >= cap;
        let enclosures = evaluate(prec)?;
        let undecided: Vec<(&'static str, &'static str, usize)> = enclosures
            .sections()
            .flat_map(|(section, name, t)| {
                t.values()
                    .iter()
                    .enumerate()
                    .filter(|(_, iv)| iv.contains_zero() && !iv.is_point())
                    .map(move |(k, _)| (section, name, k))
            })
            .filter(|place| !proven.contains(place))
            .collect();
        if !undecided.is_empty() {
            let answers = zeros(prec, &undecided);
            for (place, zero) in undecided.into_iter().zip(answers) {
                if zero {
                    proven.insert(place);
                }
            }
        }
        let attempt = enclosures.into_try_map_at(|place, iv| {
            if proven.contains(&(place.section, place.name, place.index)) {
                return Ok(keep(exact_zero(prec)));
            }
            // A failure carries its place and enclosure; only the reported one is labelled.
            certify_value(iv, goal, final_try)
                .map(&keep)
                .map_err(|iv| (place.clone(), iv))
        });
        match attempt {
            Ok(answer) => {
                let tier = answer
                    .sections()
                    .flat_map(|(_, _, t)| t.values().iter().map(Kept::tier))
                    .min()
                    .unwrap_or(Tier::CorrectlyRounded);
                return Ok(CertifiedAnswer {
                    answer,
                    certificate: Certificate {
                        tier,
                        precision_bits: prec,
                    },
                });
            }
            Err((place, enclosure)) if final_try => {
                // Report what the last enclosure of that value looked like.
                let detail = format!("{enclosure:?}");
                return Err(Error::new(
                    ErrorKind::Uncertified,
                    place.label_from_row(first_row),
                    format!(
                        "the enclosure {detail} is still too wide at the precision cap of {cap} bits \
                         to decide a binary64 or print {digits} true digits (the value is not \
                         proven exactly 0 — see SPEC.md \"Exact zeros\" — or lies beyond MPFR's \
                         exponent range)"
                    ),
                ));
            }
            Err(_) => prec = (prec * 2).min(cap),
        }
    }
}

/// Decides the sign of one real number from its enclosures at rising precision:
/// `evaluate(p)` for p = 128, 256, … up to `cap`. Returns `Some(ordering)` against 0 as soon
/// as the enclosure excludes 0 (or is the point 0), with the enclosure that decided it;
/// `None` with the last enclosure when it still contains 0 at the cap, where the number
/// is 0 or closer to it than the cap resolves (the caller says which it can prove).
///
/// # Errors
/// The evaluator's own error.
pub fn decide_sign(
    cap: u32,
    evaluate: impl Fn(u32) -> Result<Interval>,
) -> Result<(Option<std::cmp::Ordering>, Interval)> {
    let mut prec = 128u32.min(cap);
    loop {
        let iv = evaluate(prec)?;
        if let Some(sign) = iv.sign() {
            return Ok((Some(sign), iv));
        }
        if prec >= cap {
            return Ok((None, iv));
        }
        prec = (prec * 2).min(cap);
    }
}
