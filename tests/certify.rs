//! The escalation loop and its tiers (SPEC §3): exact values end at once, hard values
//! escalate, ties at the cap are `faithful`, and values that cannot be certified are
//! errors naming the place, never a guess.

use lossref::answer::{Answer, Tensor};
use lossref::error::ErrorKind;
use lossref::mp::certify::{certify, certify_with_cap, decimal_string, Tier, START_PRECISION};
use lossref::mp::interval::Interval;
use rug::Float;

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

#[test]
fn an_undecidable_zero_is_an_error_naming_the_value() {
    // sin(π) = 0, but an enclosure of π is never a point, so sin straddles 0 forever.
    let err = certify_with_cap(768, |p| {
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
    })
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Uncertified);
    assert_eq!(err.place, "gradients.features[0][1]");
    assert!(err.reason.contains("768 bits"), "{err}");
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
