//! Reference `softmax` and `softmax_ce` (SPEC §1): the answers of the two losses, built on
//! the interval softmax of [`crate::reference::softmax`] (whose docs state the formulas and
//! how they stay accurate).

use crate::answer::{Answer, Tensor};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::blocks::RowsPart;
use crate::reference::per_sample;
use crate::reference::softmax::{
    ce_row_as, points, reduce, softmax, softmax_ce_grad, softmax_ce_loss, RowLoss,
};
use crate::spec::{SoftmaxCase, SoftmaxCeCase};
use std::ops::Range;

/// A `softmax` case at `prec` bits: outputs `probabilities` and `log_probabilities`.
pub fn evaluate_softmax(case: &SoftmaxCase, prec: u32) -> Answer<Interval> {
    softmax_rows(case, 0..case.logits.rows(), prec).answer
}

/// [`evaluate_softmax`] for the rows in `rows` alone (every output is row-wise: SPEC §1's
/// softmax is one row at a time).
pub(crate) fn softmax_rows(case: &SoftmaxCase, rows: Range<usize>, prec: u32) -> RowsPart {
    let block = Matrix::from_fn(rows.len(), case.logits.cols(), |i, j| {
        Interval::from_f64(prec, *case.logits.get(rows.start + i, j))
    });
    let (p, logp) = softmax(&block, &Interval::from_f64(prec, case.temperature));
    RowsPart {
        answer: Answer {
            outputs: vec![
                ("probabilities", Tensor::Matrix(p)),
                ("log_probabilities", Tensor::Matrix(logp)),
            ],
            gradients: vec![],
        },
        terms: vec![],
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
    let part = softmax_ce_rows_as(case, 0..case.logits.rows(), how, prec);
    Answer {
        outputs: softmax_ce_reduce(case, &part.terms).outputs,
        gradients: part.answer.gradients,
    }
}

/// The gradient rows of `softmax_ce` for the rows in `rows` (divided by the whole case's N
/// for `mean`), and each row's cross-entropy: the loss is their reduction
/// ([`softmax_ce_reduce`]).
pub(crate) fn softmax_ce_rows(case: &SoftmaxCeCase, rows: Range<usize>, prec: u32) -> RowsPart {
    softmax_ce_rows_as(case, rows, RowLoss::Exact, prec)
}

fn softmax_ce_rows_as(
    case: &SoftmaxCeCase,
    rows: Range<usize>,
    how: RowLoss,
    prec: u32,
) -> RowsPart {
    use rayon::prelude::*;
    let n = case.logits.rows();
    let count = rows.len();
    let per_row: Vec<(Interval, Vec<Interval>)> = rows
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
    let mut terms = Vec::with_capacity(count);
    let mut grad = Vec::with_capacity(count * case.logits.cols());
    for (loss, g) in per_row {
        terms.push(loss);
        grad.extend(g.iter().map(|g| per_sample(g, case.reduction, n)));
    }
    let grad = Matrix::from_vec(count, case.logits.cols(), grad).expect("one value per logit");
    RowsPart {
        answer: Answer {
            outputs: vec![],
            gradients: vec![("logits", Tensor::Matrix(grad))],
        },
        terms,
    }
}

/// The `softmax_ce` loss from every row's cross-entropy, reduced as the case says.
pub(crate) fn softmax_ce_reduce(case: &SoftmaxCeCase, terms: &[Interval]) -> Answer<Interval> {
    Answer {
        outputs: vec![("loss", Tensor::Scalar(reduce(terms, case.reduction)))],
        gradients: vec![],
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
