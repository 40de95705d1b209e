//! Reference `softmax` and `softmax_ce` (SPEC §1): the answers of the two losses, built on
//! the interval softmax of [`crate::reference::softmax`] (whose docs state the formulas and
//! how they stay accurate).

use crate::answer::{Answer, Tensor};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::per_sample;
use crate::reference::softmax::{
    ce_row_as, points, reduce, softmax, softmax_ce_grad, softmax_ce_loss, RowLoss,
};
use crate::spec::{SoftmaxCase, SoftmaxCeCase};

/// A `softmax` case at `prec` bits: outputs `probabilities` and `log_probabilities`.
pub fn evaluate_softmax(case: &SoftmaxCase, prec: u32) -> Answer<Interval> {
    let (p, logp) = softmax(
        &points(&case.logits, prec),
        &Interval::from_f64(prec, case.temperature),
    );
    Answer {
        outputs: vec![
            ("probabilities", Tensor::Matrix(p)),
            ("log_probabilities", Tensor::Matrix(logp)),
        ],
        gradients: vec![],
    }
}

/// A `softmax_ce` case at `prec` bits: output `loss`, gradient `logits`. Rows in
/// parallel, each by [`ce_row`](crate::reference::softmax::ce_row) (one exponential per logit); the same quantities as
/// [`evaluate_softmax_ce_plain`].
pub fn evaluate_softmax_ce(case: &SoftmaxCeCase, prec: u32) -> Answer<Interval> {
    evaluate_softmax_ce_as(case, RowLoss::Exact, prec)
}

/// [`evaluate_softmax_ce`] with each row's cross-entropy computed as `how` says: SPEC §1's
/// own, or a convention of real code that the diagnosis tries (SPEC §4).
pub(crate) fn evaluate_softmax_ce_as(
    case: &SoftmaxCeCase,
    how: RowLoss,
    prec: u32,
) -> Answer<Interval> {
    use rayon::prelude::*;
    let n = case.logits.rows();
    let rows: Vec<(Interval, Vec<Interval>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let row: Vec<Interval> = case
                .logits
                .row(i)
                .iter()
                .map(|&z| Interval::from_f64(prec, z))
                .collect();
            ce_row_as(&row, case.labels[i], how)
        })
        .collect();
    let losses: Vec<Interval> = rows.iter().map(|(l, _)| l.clone()).collect();
    let grad: Vec<Interval> = rows
        .into_iter()
        .flat_map(|(_, g)| g)
        .map(|g| per_sample(&g, case.reduction, n))
        .collect();
    let grad = Matrix::from_vec(n, case.logits.cols(), grad).expect("one value per logit");
    Answer {
        outputs: vec![("loss", Tensor::Scalar(reduce(&losses, case.reduction)))],
        gradients: vec![("logits", Tensor::Matrix(grad))],
    }
}

/// A `softmax_ce` case at `prec` bits as the plain formulas of the module docs (three
/// exponentials per logit): the path [`evaluate_softmax_ce`] must agree with.
pub fn evaluate_softmax_ce_plain(case: &SoftmaxCeCase, prec: u32) -> Answer<Interval> {
    let z = points(&case.logits, prec);
    Answer {
        outputs: vec![(
            "loss",
            Tensor::Scalar(softmax_ce_loss(&z, &case.labels, case.reduction)),
        )],
        gradients: vec![(
            "logits",
            Tensor::Matrix(softmax_ce_grad(&z, &case.labels, case.reduction)),
        )],
    }
}
