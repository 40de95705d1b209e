//! Reference `softmax` and `softmax_ce` (SPEC §1): the answers of the two losses, built on
//! the interval softmax of [`crate::reference::softmax`] (whose docs state the formulas and
//! how they stay accurate).

use super::options::{divisor_terms_as, row_coefficients_as, Coefficients, Convention};
use crate::answer::{Answer, Tensor};
use crate::matrix::Matrix;
use crate::mp::certify::Goal;
use crate::mp::interval::Interval;
use crate::reference::blocks::RowsPart;
use crate::reference::softmax::{
    ce_row_as, ce_row_over, points, reduce, softmax, softmax_ce_grad, softmax_ce_loss,
    weighted_ce_row, weighted_ce_row_plain, RowLoss,
};
use crate::reference::softmax_balls::{softmax_ce_first_round as softmax_ce_balls, FirstRound};
use crate::spec::Reduction;
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

/// [`softmax_ce_rows`] in the certified loop's first round on balls
/// ([`crate::reference::softmax_balls`]): plain `softmax_ce` only, `None` for any other
/// case or any row a ball cannot settle.
pub(crate) fn softmax_ce_first_round(
    case: &SoftmaxCeCase,
    rows: Range<usize>,
    goal: Goal,
) -> Option<FirstRound> {
    if !case.options.is_plain() {
        return None;
    }
    let prec = goal.first_precision();
    let d = divisor(case, prec, Convention::Spec);
    softmax_ce_balls(&case.logits, &case.labels, rows, d.as_ref(), goal, "logits")
}

fn softmax_ce_rows_as(
    case: &SoftmaxCeCase,
    rows: Range<usize>,
    how: RowLoss,
    prec: u32,
) -> RowsPart {
    if case.options.is_plain() && how == RowLoss::Exact {
        // one division by N per row, not per logit
        let d = divisor(case, prec, Convention::Spec);
        return RowsPart::of_logit_rows(&case.logits, rows, prec, "logits", None, |row, i| {
            ce_row_over(row, case.labels[i], d.as_ref())
        });
    }
    rows_with(case, rows, prec, Convention::Spec, |row, i| {
        if case.options.is_plain() {
            ce_row_as(row, case.labels[i], how)
        } else {
            weighted_ce_row(row, &coefficients(case, i, prec, Convention::Spec))
        }
    })
}

/// A `softmax_ce` case with options as `convention` places them (SPEC §5's conventions,
/// for the diagnosis).
pub(crate) fn evaluate_softmax_ce_convention(
    case: &SoftmaxCeCase,
    convention: Convention,
    prec: u32,
) -> Answer<Interval> {
    let part = rows_with(case, 0..case.logits.rows(), prec, convention, |row, i| {
        weighted_ce_row(row, &coefficients(case, i, prec, convention))
    });
    Answer {
        outputs: reduce_as(case, &part.terms, convention).outputs,
        gradients: part.answer.gradients,
    }
}

impl Coefficients for Interval {
    fn plus(&self, other: &Self) -> Self {
        self.add(other)
    }
    fn minus(&self, other: &Self) -> Self {
        self.sub(other)
    }
    fn times(&self, other: &Self) -> Self {
        self.mul(other)
    }
    fn over(&self, k: usize) -> Self {
        self.div_i64(k as i64)
    }
}

/// Row `i`'s coefficients a_ic (SPEC §5, or as `convention` places them) as point
/// enclosures, combined at `prec` bits.
fn coefficients(
    case: &SoftmaxCeCase,
    i: usize,
    prec: u32,
    convention: Convention,
) -> Vec<Interval> {
    let of = |x| Interval::from_f64(prec, x);
    row_coefficients_as(
        &case.options,
        &case.labels,
        i,
        case.logits.cols(),
        of,
        convention,
    )
}

/// D, the divisor of the reduction (SPEC §5): N for plain `mean` or soft targets, Σ w_{y_i}
/// over the rows not ignored for `mean` with labels, `None` for `sum`.
fn divisor(case: &SoftmaxCeCase, prec: u32, convention: Convention) -> Option<Interval> {
    if case.reduction == Reduction::Sum {
        return None;
    }
    let n = case.logits.rows();
    Some(
        match divisor_terms_as(&case.options, &case.labels, n, case.reduction, convention) {
            Some(w) if !case.options.is_plain() => {
                let w: Vec<Interval> = w.iter().map(|&x| Interval::from_f64(prec, x)).collect();
                Interval::sum(prec, &w)
            }
            _ => Interval::from_i64(prec, case.logits.rows() as i64),
        },
    )
}

/// The rows in `rows`, each by `row_fn` (the row's logits as points, its index) giving its
/// term and unreduced gradient; the gradient divided by the case's divisor.
fn rows_with(
    case: &SoftmaxCeCase,
    rows: Range<usize>,
    prec: u32,
    convention: Convention,
    row_fn: impl Fn(&[Interval], usize) -> (Interval, Vec<Interval>) + Sync,
) -> RowsPart {
    let d = divisor(case, prec, convention);
    RowsPart::of_logit_rows(&case.logits, rows, prec, "logits", d.as_ref(), row_fn)
}

/// The `softmax_ce` loss from every row's cross-entropy, reduced as the case says.
pub(crate) fn softmax_ce_reduce(case: &SoftmaxCeCase, terms: &[Interval]) -> Answer<Interval> {
    reduce_as(case, terms, Convention::Spec)
}

fn reduce_as(case: &SoftmaxCeCase, terms: &[Interval], convention: Convention) -> Answer<Interval> {
    let loss = if case.options.is_plain() {
        reduce(terms, case.reduction)
    } else {
        let prec = terms.iter().map(Interval::prec).max().unwrap_or(64);
        let total = Interval::sum(prec, terms);
        match divisor(case, prec, convention) {
            Some(d) => total.div(&d),
            None => total,
        }
    };
    Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients: vec![],
    }
}

/// A `softmax_ce` case at `prec` bits as the plain formulas of the module docs (three
/// exponentials per logit): the path [`evaluate_softmax_ce`] must agree with.
pub fn evaluate_softmax_ce_plain(case: &SoftmaxCeCase, prec: u32) -> Answer<Interval> {
    if !case.options.is_plain() {
        // SPEC §5's options as written: −Σ a_c log p_c and A·p − a from the row's softmax
        let spec = Convention::Spec;
        let part = rows_with(case, 0..case.logits.rows(), prec, spec, |row, i| {
            weighted_ce_row_plain(row, &coefficients(case, i, prec, spec))
        });
        return Answer {
            outputs: softmax_ce_reduce(case, &part.terms).outputs,
            gradients: part.answer.gradients,
        };
    }
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
