//! The fixed-point exponential (`mp::fast_exp`, proofs/certified_products.md §10) against
//! MPFR's: its ends enclose e^x computed at 1000 bits, and are MPFR's own rounded-down and
//! rounded-up values except where e^x lies within the proof's error bound of a float, on
//! arguments across the whole range it serves (tiny, near the k·ln 2 / 2 rounding
//! boundaries of its reduction, near its table boundaries, up to ±2^20), at every
//! precision up to 200 bits and for arguments of up to 400 bits.

use lossref::mp::fast_exp::{exp_bounds, FAST_EXP_MAX_PRECISION};
use proptest::prelude::*;
use rug::float::Round;
use rug::ops::AssignRound;
use rug::Float;

/// MPFR's [RD(e^x), RU(e^x)] at `prec`, and e^x at 1000 bits.
fn mpfr(x: &Float, prec: u32) -> (Float, Float, Float) {
    let exact = Float::with_val(1000, x.exp_ref());
    let mut lo = Float::new(prec);
    lo.assign_round(&exact, Round::Down);
    let mut hi = Float::new(prec);
    hi.assign_round(&exact, Round::Up);
    (lo, hi, exact)
}

/// Checks one argument; returns whether the ends are MPFR's.
fn check(x: &Float, prec: u32) -> Result<bool, TestCaseError> {
    let (lo, hi) = exp_bounds(x, prec).ok_or_else(|| TestCaseError::fail("not served"))?;
    let (mlo, mhi, exact) = mpfr(x, prec);
    prop_assert!(
        lo <= exact && exact <= hi,
        "x = {x}: [{lo}, {hi}] misses e^x"
    );
    prop_assert_eq!(lo.prec(), prec);
    prop_assert_eq!(hi.prec(), prec);
    // never looser than one float beyond MPFR's ends
    let (mut below, mut above) = (mlo.clone(), mhi.clone());
    below.next_down();
    above.next_up();
    prop_assert!(lo >= below && hi <= above, "x = {x}: [{lo}, {hi}] too wide");
    Ok(lo == mlo && hi == mhi)
}

fn argument() -> impl Strategy<Value = (f64, i32)> {
    prop_oneof![
        (-1.0e6f64..1.0e6, Just(0)),
        (-100.0f64..100.0, Just(0)),
        (-1.0f64..1.0, -80i32..0),
        // the reduction's rounding boundaries, (k + 1/2)·ln 2, and the tables' j/256 − 1/2
        (-40i32..40, -60i32..-20).prop_map(|(k, e)| (
            (f64::from(k) + 0.5) * std::f64::consts::LN_2 + 2f64.powi(e),
            0
        )),
        (0i32..256, -60i32..-10).prop_map(|(j, e)| (f64::from(j) / 256.0 - 0.5 + 2f64.powi(e), 0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn fast_exp_encloses_and_matches_mpfr(
        (x, e) in argument(),
        prec in prop_oneof![Just(192u32), Just(53), Just(64), Just(128), Just(200)],
        extra in 0u32..3,
    ) {
        let x = Float::with_val(53, x) * Float::with_val(53, 2f64.powi(e));
        // a binary64 argument, or one with up to 400 bits
        let x = match extra {
            0 => Float::with_val(53, x),
            1 => Float::with_val(192, &x + Float::with_val(192, 1.0 / 3.0) * Float::with_val(53, 2f64.powi(-60))),
            _ => Float::with_val(400, &x / Float::with_val(400, 7)),
        };
        if x.to_f64().abs() >= 1_048_576.0 {
            prop_assert!(exp_bounds(&x, prec).is_none());
        } else {
            let same = check(&x, prec)?;
            // within the bound of a float only with probability ~2^−50
            prop_assert!(same, "x = {x}: ends differ from MPFR's");
        }
    }
}

#[test]
fn exp_of_zero_is_exact_and_unserved_arguments_are_refused() {
    let (lo, hi) = exp_bounds(&Float::with_val(53, 0), 192).unwrap();
    assert!(lo == 1 && hi == 1);
    assert!(exp_bounds(&Float::with_val(53, 1.0), FAST_EXP_MAX_PRECISION + 1).is_none());
    assert!(exp_bounds(&Float::with_val(53, f64::INFINITY), 192).is_none());
    assert!(exp_bounds(&Float::with_val(53, -2.0e6), 192).is_none());
    // the largest and smallest served arguments
    for x in [1_048_575.5, -1_048_575.5, 1e-300, -1e-300] {
        check(&Float::with_val(53, x), 192).unwrap();
    }
}
