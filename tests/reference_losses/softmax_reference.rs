//! The reference `softmax` / `softmax_ce` against answers from outside it: the seed
//! article's worked example, an independent evaluation of the definitions with plain MPFR
//! floats, numerical differentiation, and the laws of SPEC §2 T5.

use crate::common;

use common::gradient::check_gradient;
use common::{any_batch, certify_ce, certify_softmax, values, Batch};
use lossref::matrix::Matrix;
use lossref::mp::certify::{Certified, Tier};
use lossref::mp::interval::Interval;
use lossref::numdiff::agreement_digits;
use lossref::reference::softmax::softmax_ce_loss;
use lossref::spec::Reduction;
use proptest::prelude::*;
use rug::Float;

/// Precision of the independent evaluation: enough for the cancellations of the regimes
/// (|z| ≤ 1e3 with T ≥ ½ puts at most ≈ 5800 bits between the terms).
const INDEPENDENT_BITS: u32 = 8192;

fn decimal_as_float(c: &Certified) -> Float {
    Float::with_val(
        INDEPENDENT_BITS,
        Float::parse(&c.decimal).expect("a decimal string"),
    )
}

/// softmax by the literal definition e^{z_j/T} / Σ_k e^{z_k/T}, in plain round-to-nearest
/// MPFR arithmetic (no intervals, no shift, no ln1p/expm1): shares nothing with the reference.
fn independent_softmax(row: &[f64], t: f64) -> (Vec<Float>, Vec<Float>) {
    let p = INDEPENDENT_BITS;
    let scaled: Vec<Float> = row.iter().map(|&z| Float::with_val(p, z) / t).collect();
    let total = scaled.iter().fold(Float::with_val(p, 0), |acc, s| {
        acc + Float::with_val(p, s.exp_ref())
    });
    let log_total = total.clone().ln();
    let probs = scaled
        .iter()
        .map(|s| Float::with_val(p, s.exp_ref()) / &total)
        .collect();
    let logs = scaled
        .iter()
        .map(|s| Float::with_val(p, s - &log_total))
        .collect();
    (probs, logs)
}

/// softmax_ce loss and gradient by the definition: Σ_i (ln Σ_k e^{z_ik} − z_{i,y}) [/N] and
/// (p − onehot) [/N].
fn independent_ce(b: &Batch, reduction: Reduction) -> (Float, Vec<Float>) {
    let p = INDEPENDENT_BITS;
    let n = b.logits.rows() as u32;
    let mut loss = Float::with_val(p, 0);
    let mut grad = Vec::new();
    for (row, &y) in b.logits.iter_rows().zip(&b.labels) {
        let total = row.iter().fold(Float::with_val(p, 0), |acc, &z| {
            acc + Float::with_val(p, z).exp()
        });
        loss += Float::with_val(p, total.ln_ref()) - row[y];
        for (j, &z) in row.iter().enumerate() {
            let mut g = Float::with_val(p, z).exp() / &total;
            if j == y {
                g -= 1;
            }
            grad.push(g);
        }
    }
    if reduction == Reduction::Mean {
        loss /= n;
        for g in &mut grad {
            *g /= n;
        }
    }
    (loss, grad)
}

fn assert_agrees(what: &str, got: &Certified, want: &Float, digits: f64) {
    let d = agreement_digits(&decimal_as_float(got), want);
    assert!(
        d >= digits,
        "{what}: printed {} but the independent value is {} ({d:.1} digits agree, {digits} needed)",
        got.decimal,
        want.to_string_radix(10, Some(40))
    );
}

#[test]
fn seed_article_worked_example() {
    let logits = Matrix::from_rows(vec![vec![1.1, 2.2, 5.0, 10.1]]).unwrap();
    let ans = certify_softmax(&logits, 1.0);
    let printed: Vec<String> = values(&ans, "outputs", "probabilities")
        .iter()
        .map(|c| format!("{:.4e}", c.f64))
        .collect();
    assert_eq!(
        printed,
        ["1.2260e-4", "3.6832e-4", "6.0568e-3", "9.9345e-1"]
    );
    assert_eq!(ans.certificate.tier, Tier::CorrectlyRounded);
}

#[test]
fn decimal_strings_have_at_least_34_significant_digits() {
    let logits = Matrix::from_rows(vec![vec![1.1, 2.2, 5.0, 10.1]]).unwrap();
    let ans = certify_softmax(&logits, 1.0);
    for c in values(&ans, "outputs", "probabilities") {
        let digits = c
            .decimal
            .split('e')
            .next()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .skip_while(|&ch| ch == '0')
            .count();
        assert!(
            digits >= 34,
            "{} has {digits} significant digits",
            c.decimal
        );
    }
}

#[test]
fn tiny_loss_of_1e_minus_300_is_certified() {
    // Gap g = 690.8: loss = ln(1 + e^{−g}) ≈ e^{−g} ≈ 1e−300.
    let b = Batch {
        logits: Matrix::from_rows(vec![vec![690.8, 0.0, -5.0]]).unwrap(),
        labels: vec![0],
    };
    let ans = certify_ce(&b, Reduction::Sum);
    let loss = &values(&ans, "outputs", "loss")[0];
    assert!(
        loss.f64 > 1e-301 && loss.f64 < 1e-299,
        "loss {}",
        loss.decimal
    );
    assert_eq!(ans.certificate.tier, Tier::CorrectlyRounded);
    let (want, _) = independent_ce(&b, Reduction::Sum);
    assert_agrees("loss 1e-300", loss, &want, 34.0);
}

fn check_softmax_against_independent(logits: &Matrix<f64>, t: f64) {
    let ans = certify_softmax(logits, t);
    let probs = values(&ans, "outputs", "probabilities");
    let logs = values(&ans, "outputs", "log_probabilities");
    for (i, row) in logits.iter_rows().enumerate() {
        let (p, lp) = independent_softmax(row, t);
        for j in 0..row.len() {
            let k = i * row.len() + j;
            assert_agrees(
                &format!("T={t} {logits:?} probabilities[{i}][{j}]"),
                &probs[k],
                &p[j],
                30.0,
            );
            assert_agrees(
                &format!("T={t} {logits:?} log_probabilities[{i}][{j}]"),
                &logs[k],
                &lp[j],
                30.0,
            );
        }
    }
}

fn check_ce_against_independent(b: &Batch, reduction: Reduction) {
    let ans = certify_ce(b, reduction);
    let (loss, grad) = independent_ce(b, reduction);
    assert_agrees(
        &format!("{reduction:?} {b:?} loss"),
        &values(&ans, "outputs", "loss")[0],
        &loss,
        30.0,
    );
    for (k, (g, want)) in values(&ans, "gradients", "logits")
        .iter()
        .zip(&grad)
        .enumerate()
    {
        assert_agrees(
            &format!("{reduction:?} {b:?} gradient entry {k}"),
            g,
            want,
            30.0,
        );
    }
}

/// ∂L/∂z of the certified answer against central differences of the loss
/// (`common::gradient::check_gradient`).
fn check_gradient_by_numdiff(b: &Batch, reduction: Reduction) {
    let ans = certify_ce(b, reduction);
    let enclosures = |group: &[Certified]| -> Vec<Interval> {
        group.iter().map(|c| c.enclosure.clone()).collect()
    };
    let loss = &enclosures(values(&ans, "outputs", "loss"))[0];
    let grads = enclosures(values(&ans, "gradients", "logits"));
    let what = format!("{reduction:?} {b:?} logits");
    check_gradient(&what, loss, &grads, &b.logits, |z, _| {
        softmax_ce_loss(z, &b.labels, reduction)
    });
}

#[test]
fn softmax_ce_gradient_matches_numdiff_on_the_example() {
    let b = Batch {
        logits: Matrix::from_rows(vec![vec![1.1, 2.2, 5.0, 10.1], vec![3.0, -1.5, 0.25, 2.0]])
            .unwrap(),
        labels: vec![3, 0],
    };
    check_gradient_by_numdiff(&b, Reduction::Mean);
    check_gradient_by_numdiff(&b, Reduction::Sum);
}

/// Promoted from a shrunk proptest failure: the smallest gradient entry (≈ e^{−1248}) is
/// below binary64's range, which the precision choice must read off the enclosures.
#[test]
fn numdiff_with_a_gradient_entry_below_binary64_range() {
    let b = Batch {
        logits: Matrix::from_rows(vec![vec![724.1004508261831, 0.0, -524.6144412507151]]).unwrap(),
        labels: vec![0],
    };
    check_gradient_by_numdiff(&b, Reduction::Mean);
}

fn any_temperature() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), Just(0.5), Just(2.0), Just(0.75), Just(3.0)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(32)))]

    #[test]
    fn softmax_ce_agrees_with_independent_definition(b in any_batch(false), sum in any::<bool>()) {
        check_ce_against_independent(&b, if sum { Reduction::Sum } else { Reduction::Mean });
    }

    #[test]
    fn softmax_agrees_with_independent_definition(b in any_batch(false), t in any_temperature()) {
        check_softmax_against_independent(&b.logits, t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(12)))]

    #[test]
    fn softmax_ce_gradient_matches_numdiff(b in any_batch(false), sum in any::<bool>()) {
        check_gradient_by_numdiff(&b, if sum { Reduction::Sum } else { Reduction::Mean });
    }
}
