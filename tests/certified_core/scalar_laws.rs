//! quickcheck laws for the scalar facts of softmax and cross-entropy, on the certified
//! reference: two classes reduce to the logistic function, and CE obeys its elementary
//! bounds max_j z_j − z_y ≤ CE ≤ max_j z_j − z_y + ln C.

use crate::common;

use common::{certify_ce, certify_softmax, values, Batch};
use lossref::matrix::Matrix;
use lossref::mp::interval::Interval;
use lossref::spec::Reduction;
use quickcheck::{quickcheck, TestResult};
use rug::Float;

/// Maps an arbitrary double into [−1000, 1000], keeping exact small values as they are.
fn logit(x: f64) -> Option<f64> {
    x.is_finite()
        .then(|| if x.abs() <= 1000.0 { x } else { x % 1000.0 })
}

#[test]
fn two_class_softmax_is_the_logistic_function() {
    fn prop(a: f64, b: f64) -> TestResult {
        let (Some(a), Some(b)) = (logit(a), logit(b)) else {
            return TestResult::discard();
        };
        let ans = certify_softmax(&Matrix::from_rows(vec![vec![a, b]]).unwrap(), 1.0);
        let p0 = &values(&ans, "outputs", "probabilities")[0].enclosure;
        // σ(a − b) = 1 / (1 + e^{b − a}), on intervals at 512 bits.
        let prec = 512;
        let one = Interval::from_i64(prec, 1);
        let logistic = one.div(
            &one.add(
                &Interval::from_f64(prec, b)
                    .sub(&Interval::from_f64(prec, a))
                    .exp(),
            ),
        );
        TestResult::from_bool(logistic.overlaps(p0))
    }
    quickcheck(prop as fn(f64, f64) -> TestResult);
}

#[test]
fn two_class_cross_entropy_is_softplus_of_the_margin() {
    fn prop(a: f64, b: f64, label: bool) -> TestResult {
        let (Some(a), Some(b)) = (logit(a), logit(b)) else {
            return TestResult::discard();
        };
        let y = usize::from(label);
        let batch = Batch {
            logits: Matrix::from_rows(vec![vec![a, b]]).unwrap(),
            labels: vec![y],
        };
        let loss = values(&certify_ce(&batch, Reduction::Mean), "outputs", "loss")[0]
            .enclosure
            .clone();
        // CE = ln(1 + e^{z_other − z_y}).
        let prec = 4096;
        let (zy, zo) = if y == 0 { (a, b) } else { (b, a) };
        let softplus = Interval::from_f64(prec, zo)
            .sub(&Interval::from_f64(prec, zy))
            .exp()
            .ln_1p();
        TestResult::from_bool(softplus.overlaps(&loss))
    }
    quickcheck(prop as fn(f64, f64, bool) -> TestResult);
}

#[test]
fn cross_entropy_lies_between_its_elementary_bounds() {
    fn prop(z: Vec<f64>, label: usize) -> TestResult {
        let z: Option<Vec<f64>> = z.into_iter().take(12).map(logit).collect();
        let Some(z) = z.filter(|z| z.len() >= 2) else {
            return TestResult::discard();
        };
        let y = label % z.len();
        let c = z.len();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let batch = Batch {
            logits: Matrix::from_rows(vec![z.clone()]).unwrap(),
            labels: vec![y],
        };
        let loss = values(&certify_ce(&batch, Reduction::Sum), "outputs", "loss")[0]
            .enclosure
            .clone();
        let prec = 256;
        let gap = Interval::from_f64(prec, max).sub(&Interval::from_f64(prec, z[y]));
        let upper = gap.add(&Interval::from_i64(prec, c as i64).ln());
        // gap ≤ CE ≤ gap + ln C, strictly unless all logits tie (then CE = ln C exactly).
        let lower_ok = loss.hi() >= gap.lo();
        let upper_ok = loss.lo() <= upper.hi();
        let positive = *loss.lo() > Float::with_val(prec, 0);
        TestResult::from_bool(lower_ok && upper_ok && positive)
    }
    quickcheck(prop as fn(Vec<f64>, usize) -> TestResult);
}
