//! The escalation loop and its tiers (SPEC §3): exact values end at once, hard values
//! escalate, ties at the cap are `faithful`, and values that cannot be certified are
//! errors naming the place, never a guess.

use lossref::answer::{Answer, Tensor};
use lossref::error::ErrorKind;
use lossref::mp::certify::{
    certify, certify_to, certify_with_cap, certify_with_zeros, decide_sign, decided_decimal,
    decimal_string, Goal, Tier, DECIMAL_WIDTH_BITS, START_PRECISION,
};
use lossref::mp::interval::Interval;
use rug::Float;
use std::cmp::Ordering;

fn scalar(iv: Interval) -> lossref::error::Result<Answer<Interval>> {
    Ok(Answer {
        outputs: vec![("value", Tensor::Scalar(iv))],
        gradients: vec![],
    })
}

#[test]
fn exact_values_end_at_the_first_precision() {
    for x in [0.0, 0.5, -3.0, 1e-310] {
        let ans = certify(|p| scalar(Interval::from_f64(p, x))).unwrap();
        let v = &ans.answer.output("value").unwrap().values()[0];
        assert_eq!(v.f64, x);
        assert_eq!(ans.certificate.tier, Tier::CorrectlyRounded);
        assert_eq!(ans.certificate.precision_bits, START_PRECISION);
    }
}

#[test]
fn cancellation_escalates_until_the_value_is_decided() {
    // e^{ln(1 + 2^−400)} − 1 = 2^−400, which needs more than 400 bits to see.
    let ans = certify(|p| {
        let tiny = Interval::from_float(Float::with_val(p, Float::i_exp(1, -400)));
        scalar(
            Interval::from_i64(p, 1)
                .add(&tiny)
                .ln()
                .exp()
                .sub(&Interval::from_i64(p, 1)),
        )
    })
    .unwrap();
    let v = &ans.answer.output("value").unwrap().values()[0];
    assert_eq!(v.f64, 2f64.powi(-400));
    assert_eq!(ans.certificate.tier, Tier::CorrectlyRounded);
    assert!(
        ans.certificate.precision_bits > 400,
        "{:?}",
        ans.certificate
    );
}

#[test]
fn an_exact_tie_is_faithful_at_the_cap() {
    // 1 + 2^−53 lies exactly halfway between 1 and 1 + 2^−52; computed through exp∘ln its
    // enclosure is never a point, so it straddles the rounding boundary at every precision.
    let ans = certify_with_cap(768, |p| {
        let x = Interval::from_i64(p, 1).add(&Interval::from_float(Float::with_val(
            p,
            Float::i_exp(1, -53),
        )));
        scalar(x.ln().exp())
    })
    .unwrap();
    let v = &ans.answer.output("value").unwrap().values()[0];
    assert_eq!(ans.certificate.tier, Tier::Faithful);
    assert_eq!(ans.certificate.precision_bits, 768);
    assert!(v.f64 == 1.0 || v.f64 == 1.0 + f64::EPSILON);
    assert!(
        v.decimal
            .starts_with("1.00000000000000011102230246251565404"),
        "{}",
        v.decimal
    );
}

/// sin(π) as a gradient entry beside an ordinary value: an enclosure that never excludes 0.
fn sine_of_pi(p: u32) -> lossref::error::Result<Answer<Interval>> {
    Ok(Answer {
        outputs: vec![("ok", Tensor::Scalar(Interval::from_f64(p, 1.0)))],
        gradients: vec![(
            "features",
            Tensor::Matrix(
                lossref::matrix::Matrix::from_rows(vec![vec![
                    Interval::from_f64(p, 2.0),
                    Interval::pi(p).sin(),
                ]])
                .unwrap(),
            ),
        )],
    })
}

#[test]
fn a_proven_zero_is_the_exact_zero_and_nothing_else_is_asked() {
    // The zero test is asked about exactly the value whose enclosure contains 0, once per
    // round until it proves it; the value is then the exact 0, tier correctly_rounded.
    let mut asked = Vec::new();
    let ans = certify_with_zeros(Goal::EVAL, sine_of_pi, |p, places| {
        asked.push((
            p,
            places
                .iter()
                .map(|&(s, n, k)| format!("{s}.{n}[{k}]"))
                .collect::<Vec<_>>(),
        ));
        vec![p >= 2 * START_PRECISION; places.len()]
    })
    .unwrap();
    assert_eq!(
        asked,
        vec![
            (START_PRECISION, vec!["gradients.features[1]".to_string()]),
            (
                2 * START_PRECISION,
                vec!["gradients.features[1]".to_string()]
            ),
        ]
    );
    let v = &ans.answer.gradient("features").unwrap().values()[1];
    assert_eq!(v.decimal, "0");
    assert_eq!(v.f64.to_bits(), 0.0f64.to_bits());
    assert_eq!(v.f32.to_bits(), 0.0f32.to_bits());
    assert!(v.enclosure.is_point());
    assert_eq!(ans.certificate.tier, Tier::CorrectlyRounded);
    assert_eq!(ans.certificate.precision_bits, 2 * START_PRECISION);
}

#[test]
fn an_undecidable_zero_is_an_error_naming_the_value() {
    // sin(π) = 0, but an enclosure of π is never a point, so sin straddles 0 forever.
    let err = certify_with_cap(768, sine_of_pi).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Uncertified);
    assert_eq!(err.place, "gradients.features[0][1]");
    assert!(err.reason.contains("768 bits"), "{err}");
}

/// An enclosure `[lo, hi]` of the given ends, at `p` bits.
fn between(p: u32, lo: Float, hi: Float) -> Interval {
    Interval::new(Float::with_val(p, lo), Float::with_val(p, hi)).unwrap()
}

#[test]
fn a_value_too_small_for_every_subnormal_is_bounded_at_the_cap() {
    // sin(π)·2^−1100 straddles 0 forever, but every point of it rounds to a zero: tier
    // `bounded`, the roundings ±0 certified, the enclosure printed outward.
    let ans = certify_with_cap(768, |p| {
        let tiny = Interval::from_float(Float::with_val(p, Float::i_exp(1, -1100)));
        scalar(Interval::pi(p).sin().mul(&tiny))
    })
    .unwrap();
    let v = &ans.answer.output("value").unwrap().values()[0];
    assert_eq!(ans.certificate.tier, Tier::Bounded);
    assert_eq!(
        ans.certificate.precision_bits, 768,
        "settled only at the cap"
    );
    assert_eq!(v.f64, 0.0);
    assert_eq!(v.f32, 0.0);
    assert!(
        v.decimal.starts_with("[-") && v.decimal.contains("e-"),
        "{}",
        v.decimal
    );
    // the printed ends enclose the enclosure
    let ends: Vec<f64> = v.decimal[1..v.decimal.len() - 1]
        .split(", ")
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(ends[0] <= v.enclosure.lo().to_f64() && v.enclosure.hi().to_f64() <= ends[1]);
}

#[test]
fn only_magnitudes_below_half_the_least_subnormal_are_bounded() {
    // wholly negative and tiny: −0
    let ans = certify_with_cap(768, |p| {
        scalar(between(
            p,
            -Float::with_val(p, Float::i_exp(3, -1200)),
            -Float::with_val(p, Float::i_exp(1, -1200)),
        ))
    })
    .unwrap();
    let v = &ans.answer.output("value").unwrap().values()[0];
    assert_eq!(
        (ans.certificate.tier, v.f64.to_bits()),
        (Tier::Bounded, (-0.0f64).to_bits())
    );
    // [0, 2^−1074] reaches the least subnormal, which a point of it rounds to: an error
    let err = certify_with_cap(768, |p| {
        scalar(between(
            p,
            Float::new(p),
            Float::with_val(p, Float::i_exp(1, -1074)),
        ))
    })
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Uncertified);
    // [0, 2^−1075]: the tie rounds to the even 0, so every point rounds to +0
    let ans = certify_with_cap(768, |p| {
        scalar(between(
            p,
            Float::new(p),
            Float::with_val(p, Float::i_exp(1, -1075)),
        ))
    })
    .unwrap();
    assert_eq!(ans.certificate.tier, Tier::Bounded);
}

#[test]
fn an_underflow_settles_at_once_without_escalating() {
    // e^(−2^40) underflows MPFR's exponent range (2^−1073741824): [0, least positive].
    // More precision cannot narrow it, so the first precision settles it.
    let ans = certify(|p| {
        let x = Interval::from_f64(p, -(2f64.powi(40)));
        scalar(x.exp())
    })
    .unwrap();
    let v = &ans.answer.output("value").unwrap().values()[0];
    assert_eq!(ans.certificate.tier, Tier::Bounded);
    assert_eq!(ans.certificate.precision_bits, START_PRECISION);
    assert_eq!(v.f64.to_bits(), 0.0f64.to_bits());
    assert!(
        v.decimal.starts_with("[0, ") && v.decimal.ends_with("e-323228497]"),
        "{}",
        v.decimal
    );
}

#[test]
fn decimal_strings_are_positional_or_scientific() {
    let f = |x: f64| decimal_string(&Float::with_val(53, x), 5);
    assert_eq!(f(123.456), "123.46");
    assert_eq!(f(-0.00012345), "-0.00012345");
    assert_eq!(f(1e-300), "1.0000e-300");
    assert_eq!(f(2.5e25), "2.5000e25");
    assert_eq!(f(0.0), "0");
    assert_eq!(f(100000.0), "100000");
}

#[test]
fn subnormal_results_round_to_nearest_even() {
    // Exact points between subnormals: 1.5 and 2.5 units of 2^−1074 are ties (to even: 2, 2),
    // 1.25 units rounds down to 1 unit; far below the smallest subnormal rounds to +0.
    let unit = |k: f64| -> lossref::error::Result<Answer<Interval>> {
        let mut x = Float::with_val(64, k);
        x >>= 1074;
        scalar(Interval::from_float(x))
    };
    for (k, want) in [(1.5, 2.0), (2.5, 2.0), (1.25, 1.0), (1e-30, 0.0)] {
        let ans = certify(|_| unit(k)).unwrap();
        let v = &ans.answer.output("value").unwrap().values()[0];
        assert_eq!(v.f64, want * 2f64.powi(-1074), "{k} units of 2^-1074");
        assert_eq!(ans.certificate.tier, Tier::CorrectlyRounded);
    }
}

/// π to 120 significant digits (a published constant, not computed by MPFR here).
const PI_120: &str = "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706798214808651328230664";

#[test]
fn a_goal_of_more_digits_prints_them_true_to_the_last() {
    // The eval goal is the loop's historical one: 36 digits, 2^-128 width, start at 192.
    assert_eq!(Goal::digits(36).width_bits(), DECIMAL_WIDTH_BITS);
    assert_eq!(Goal::digits(36).start_precision(), START_PRECISION);
    assert_eq!(Goal::EVAL.digits, 36);
    for digits in [36usize, 50, 100, 119] {
        let ans = certify_to(Goal::digits(digits), |p| scalar(Interval::pi(p))).unwrap();
        let d = &ans.answer.output("value").unwrap().values()[0].decimal;
        let want = &PI_120[..digits + 1];
        // within one unit of the last digit of the published digits
        let got = Float::with_val(600, Float::parse(d).unwrap());
        let exact = Float::with_val(600, Float::parse(PI_120).unwrap());
        let unit = Float::with_val(600, Float::parse(format!("1e-{}", digits - 1)).unwrap());
        assert!(
            Float::with_val(600, &got - &exact).abs() <= unit,
            "{digits}: {d} vs {want}"
        );
        assert_eq!(d.len(), digits + 1, "{d}");
        assert!(ans.certificate.precision_bits >= Goal::digits(digits).start_precision());
    }
    // the cap grows with the goal
    assert!(Goal::digits(100_000).cap > Goal::digits(100_000).start_precision());
}

#[test]
fn signs_are_decided_at_rising_precision_or_reported_undecided() {
    // π − 355/113 ≈ −2.7e−7: negative, decided at once.
    let (sign, _) = decide_sign(1024, |p| {
        let q = Interval::from_i64(p, 355).div(&Interval::from_i64(p, 113));
        Ok(Interval::pi(p).sub(&q))
    })
    .unwrap();
    assert_eq!(sign, Some(Ordering::Less));
    // e^{2^-300} − 1 > 0 needs more than 300 bits
    let (sign, iv) = decide_sign(1024, |p| {
        let tiny = Interval::from_f64(p, 2f64.powi(-300));
        Ok(tiny.exp().sub(&Interval::from_i64(p, 1)))
    })
    .unwrap();
    assert_eq!(sign, Some(Ordering::Greater));
    assert!(iv.prec() > 300);
    // an exact zero is decided as Equal; a zero that is only ever enclosed is undecided
    assert_eq!(
        decide_sign(1024, |p| Ok(Interval::from_i64(p, 0)))
            .unwrap()
            .0,
        Some(Ordering::Equal)
    );
    let (sign, _) = decide_sign(1024, |p| Ok(Interval::pi(p).sub(&Interval::pi(p)))).unwrap();
    assert_eq!(sign, None);
}

/// [x − r, x + r] at 256 bits around the decimal `x` (parsed exactly at 400 bits first).
fn around(x: &str, r_bits: i32) -> Interval {
    let mid = Float::with_val(400, Float::parse(x).unwrap());
    let mut r = Float::with_val(400, 1);
    r >>= r_bits;
    let r = r * Float::with_val(400, mid.abs_ref());
    Interval::new(
        Float::with_val_round(256, &mid - &r, rug::float::Round::Down).0,
        Float::with_val_round(256, &mid + &r, rug::float::Round::Up).0,
    )
    .unwrap()
}

/// The printed decimal is a function of the value: it is what both ends of the enclosure
/// round to (checked here by converting both ends, independently of the one-conversion
/// shortcut), and when they differ the decision is refused and the even neighbour given.
#[test]
fn decimals_are_correctly_rounded_or_refused() {
    let digits = 36;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut decided, mut refused) = (0, 0);
    for k in 0..20_000 {
        // A random 40-digit decimal; every 50th draw is put on a rounding boundary
        // (digit 37 = 5, then zeros) so that the enclosure straddles it.
        let mut m = format!(
            "{:019}{:019}",
            next() % 10u64.pow(19),
            next() % 10u64.pow(19)
        );
        m.truncate(39);
        let mut m = format!("{}{m}", 1 + next() % 9);
        if k % 50 == 0 {
            m.replace_range(36.., "5000");
        }
        let e = (next() % 80) as i32 - 40;
        let x = format!("{}0.{m}e{e}", if k % 3 == 0 { "-" } else { "" });
        let iv = around(&x, 180 + (next() % 60) as i32);
        let (s, ok) = decided_decimal(&iv, digits);
        let low = decimal_string(iv.lo(), digits);
        let high = decimal_string(iv.hi(), digits);
        if low == high {
            assert!(ok && s == low, "{x}: {s} (decided {ok}), ends {low} {high}");
            decided += 1;
        } else {
            assert!(
                !ok && (s == low || s == high),
                "{x}: {s}, ends {low} {high}"
            );
            let last = s.split('e').next().unwrap().chars().last().unwrap();
            assert!(
                (last as u8 - b'0') % 2 == 0,
                "{x}: {s} should end in an even digit"
            );
            refused += 1;
        }
    }
    assert!(
        decided > 19_000 && refused >= 400,
        "{decided} decided, {refused} refused"
    );
}

#[test]
fn a_value_near_a_decimal_boundary_escalates_until_its_rounding_is_decided() {
    // 17167.35236117313615977764129638671875 is a boundary t of the 36-digit grid (a
    // binary64); a value 2^−400 above it rounds to …7188.
    let boundary = Float::with_val(
        64,
        Float::parse("17167.35236117313615977764129638671875").unwrap(),
    );
    assert_eq!(
        decimal_string(&boundary, 38),
        "17167.352361173136159777641296386718750"
    );
    let value = |prec: u32| {
        let mut eps = Float::with_val(prec, 1);
        eps >>= 400;
        let lo = Float::with_val_round(prec, &boundary + &eps, rug::float::Round::Down).0;
        let hi = Float::with_val_round(prec, &boundary + &eps, rug::float::Round::Up).0;
        let mut hi = hi;
        if lo == hi {
            hi.next_up();
        }
        scalar(Interval::new(lo, hi).unwrap())
    };
    let ans = certify(value).unwrap();
    let v = &ans.answer.output("value").unwrap().values()[0];
    assert_eq!(v.decimal, "17167.3523611731361597776412963867188");
    // Below the boundary by 2^−400 it rounds the other way; an enclosure [t − ulp, t]
    // cannot say so (t itself rounds to even, …7188), so the loop escalates past 400 bits.
    let below = |prec: u32| {
        let mut eps = Float::with_val(prec, 1);
        eps >>= 400;
        let lo = Float::with_val_round(prec, &boundary - &eps, rug::float::Round::Down).0;
        let mut hi = Float::with_val_round(prec, &boundary - &eps, rug::float::Round::Up).0;
        if lo == hi {
            hi.next_up();
        }
        scalar(Interval::new(lo, hi).unwrap())
    };
    let ans = certify(below).unwrap();
    assert_eq!(
        ans.answer.output("value").unwrap().values()[0].decimal,
        "17167.3523611731361597776412963867187"
    );
    assert!(
        ans.certificate.precision_bits > 400,
        "{:?}",
        ans.certificate
    );
    // A value on the boundary itself, enclosed on both sides, is never decided: at the cap
    // it prints the even neighbour.
    let on = |prec: u32| {
        let mut lo = Float::with_val(prec, &boundary);
        let mut hi = lo.clone();
        lo.next_down();
        hi.next_up();
        scalar(Interval::new(lo, hi).unwrap())
    };
    let ans = certify_with_cap(1024, on).unwrap();
    assert_eq!(
        ans.answer.output("value").unwrap().values()[0].decimal,
        "17167.3523611731361597776412963867188"
    );
}

/// SPEC §6: a value's bfloat16 and float16 roundings come from its enclosure, once: a
/// value just above a 16-bit midpoint, whose binary64 rounding is that midpoint (so that
/// rounding the binary64 again would tie to even), rounds up; an exact midpoint ties to
/// even; subnormals, the smallest subnormal's half and float16's overflow threshold too.
#[test]
fn the_16_bit_roundings_are_decided_from_the_enclosure_never_twice() {
    let p2 = |e: i32| Float::with_val(256, Float::i_exp(1, e));
    let half_of = |x: Float| {
        let ans =
            certify(|p| scalar(Interval::from_float(Float::with_val(p.max(256), &x)))).unwrap();
        ans.answer.output("value").unwrap().values()[0].half
    };
    // 1 + 2^−8 is bfloat16's midpoint between 1 and 1 + 2^−7; 2^−60 above it, binary64 says
    // the midpoint itself
    let above = Float::with_val(256, 1 + p2(-8)) + p2(-60);
    assert_eq!(above.to_f64(), 1.0 + 2f64.powi(-8));
    assert_eq!(
        half::bf16::from_f64(above.to_f64()).to_f64(),
        1.0,
        "twice: ties to even"
    );
    assert_eq!(half_of(above).bf16.to_f64(), 1.0 + 2f64.powi(-7));
    assert_eq!(half_of(Float::with_val(256, 1 + p2(-8))).bf16.to_f64(), 1.0);
    // float16: 1 + 2^−11 between 1 and 1 + 2^−10
    let above = Float::with_val(256, 1 + p2(-11)) + p2(-60);
    assert_eq!(half_of(above).f16.to_f64(), 1.0 + 2f64.powi(-10));
    assert_eq!(half_of(Float::with_val(256, 1 + p2(-11))).f16.to_f64(), 1.0);
    // half float16's smallest subnormal 2^−24 ties to 0; just above it rounds up
    assert_eq!(half_of(p2(-25)).f16.to_f64(), 0.0);
    assert_eq!(half_of(p2(-25) + p2(-90)).f16.to_f64(), 2f64.powi(-24));
    assert_eq!(half_of(p2(-134) + p2(-200)).bf16.to_f64(), 2f64.powi(-133));
    // float16's largest is 65504; 65520 ties to 65536, past it: ∞; 65519 stays
    assert!(half_of(Float::with_val(256, 65520)).f16.is_infinite());
    assert_eq!(half_of(Float::with_val(256, 65519)).f16.to_f64(), 65504.0);
    assert_eq!(half_of(Float::with_val(256, -65519)).f16.to_f64(), -65504.0);
}

/// The nearest 16-bit number to `x` (ties to even) by exact comparison with the three
/// candidates around binary64's guess: an oracle independent of the certifier's rounding.
fn nearest_16<T: Copy + PartialEq>(
    x: &Float,
    from: impl Fn(f64) -> T,
    to: impl Fn(T) -> f64,
    bits: impl Fn(T) -> u16,
    step: impl Fn(T, bool) -> T,
) -> T {
    let guess = from(x.to_f64());
    let mut best: Option<(Float, T)> = None;
    for c in [step(guess, false), guess, step(guess, true)] {
        let v = to(c);
        if !v.is_finite() {
            continue;
        }
        let d = Float::with_val(600, x - Float::with_val(64, v)).abs();
        best = match best {
            Some((bd, b)) if bd < d || (bd == d && bits(b) % 2 == 0) => Some((bd, b)),
            _ => Some((d, c)),
        };
    }
    best.expect("a finite candidate").1
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
    /// The 16-bit roundings read from the binary32 rounding (where it is not a 16-bit
    /// midpoint) are those of the real, on reals at and near 16-bit midpoints, in every
    /// binade the formats have (subnormals included).
    #[test]
    fn the_16_bit_roundings_agree_with_an_exact_oracle(
        m in 0u32..2048, e in -30i32..14, offset in -3i32..4, tiny in 40i32..120, neg: bool,
    ) {
        // m/2048·2^e lies on the 12-bit grid of a binade: every float16 midpoint and, for
        // e in range, bfloat16's; offset·2^−tiny moves it just off
        let p2 = |k: i32| Float::with_val(64, Float::i_exp(1, k));
        let base = Float::with_val(600, (1 + Float::with_val(64, m) / 2048u32) * p2(e));
        let x = Float::with_val(600, &base + Float::with_val(64, offset) * p2(e - tiny));
        let x = if neg { -x } else { x };
        let ans = certify(|p| scalar(Interval::from_float(Float::with_val(p.max(600), &x)))).unwrap();
        let v = &ans.answer.output("value").unwrap().values()[0];
        let bf = nearest_16(&x, half::bf16::from_f64, half::bf16::to_f64, half::bf16::to_bits,
            |h, up| half::bf16::from_bits(if (h.to_f64() >= 0.0) == up { h.to_bits().wrapping_add(1) } else { h.to_bits().wrapping_sub(1) }));
        let hf = nearest_16(&x, half::f16::from_f64, half::f16::to_f64, half::f16::to_bits,
            |h, up| half::f16::from_bits(if (h.to_f64() >= 0.0) == up { h.to_bits().wrapping_add(1) } else { h.to_bits().wrapping_sub(1) }));
        proptest::prop_assert_eq!(v.half.bf16.to_bits(), bf.to_bits(), "bf16 of {}", x);
        proptest::prop_assert_eq!(v.half.f16.to_bits(), hf.to_bits(), "f16 of {}", x);
    }
}
