//! The certified answer of a large case a block of rows at a time (SPEC §3's answer,
//! unchanged), so that `lossref eval` never holds every enclosure of it at once.
//!
//! A family whose every output is either row-wise (one row of the output per row of the
//! case: probabilities, the gradient of the logits) or reduced from one term per row (the
//! loss, Σ_i ℓ_i or Σ_i ℓ_i / N) states so with its `row_blocks`. Each block of rows is then
//! evaluated and certified on its own, with its own escalation, and only the certified
//! roundings ([`Rounded`]) are kept; the rows' terms of the reduced outputs are kept as
//! enclosures (N of them) and reduced once every block is done. The result is the whole
//! case's answer value for value: a correctly rounded binary64 or binary32 and a decided
//! decimal are unique, and a value that reaches the precision cap is evaluated there by
//! either path, from the same row. The certificate's precision is the largest that any
//! block needed, which is what the whole case needs.
//!
//! A family with a gradient whose rows are classes (∂L/∂W of the normalized-margin losses,
//! which every batch row shares) states its `ClassBlocks` instead: a case too large to
//! hold whole is certified a block of classes at a time, that gradient's rows handed to a
//! [`ClassSink`] as they are certified (`lossref eval --output` writes them straight into
//! the archive), the rest kept as [`Rounded`] values. The other families are certified
//! whole, keeping [`Rounded`] values too.

use crate::answer::{Answer, Tensor};
use crate::error::Result;
use crate::exact::ZeroTest;
use crate::matrix::Matrix;
use crate::mp::certify::{
    certify_kept, certify_kept_from, Certificate, Certified, CertifiedAnswer, Goal, Rounded, Tier,
};
use crate::mp::interval::Interval;
use crate::reference::softmax_balls::FirstRound;
use crate::spec::Case;
use std::ops::Range;
use std::sync::Mutex;

/// Where a streamed gradient's rows go, a block at a time: the block's first row and its
/// values (rows × columns, row-major), in row order.
pub type ClassSink<'s> = dyn FnMut(usize, Vec<Rounded>) -> Result<()> + 's;

/// How a family's answer streams over blocks of classes (see the module docs).
pub(crate) struct ClassBlocks<C> {
    /// The gradient whose rows are classes, its place among the answer's gradients, and
    /// its shape.
    pub name: &'static str,
    pub position: usize,
    pub rows: usize,
    pub cols: usize,
    /// The certified answer without that gradient (`with_decimals`, blocks of about
    /// `block_values` values), its rows handed to the sink; `Ok(None)` where the case
    /// cannot stream after all (the caller certifies it whole).
    pub certify: CertifyClasses<C>,
}

/// [`ClassBlocks::certify`]: the case, the same case as a [`Case`] (for its zero test),
/// `with_decimals`, the block size in values, and the sink.
pub(crate) type CertifyClasses<C> = fn(&C, &Case, bool, usize, &mut ClassSink<'_>) -> Streamed;

/// A streamed answer without its streamed gradient; `Ok(None)` where the case cannot
/// stream after all.
pub(crate) type Streamed = Result<Option<CertifiedAnswer<Rounded>>>;

/// The shape of a case's streamed gradient: its name, its place among the gradients, its
/// rows and columns.
pub type StreamedShape = (&'static str, usize, usize, usize);

/// The values a block holds at most (its enclosures: about 130 bytes each at the first
/// precision), unless one row alone has more.
pub const BLOCK_VALUES: usize = 1 << 18;

/// [`RowBlocks::first_round`]: the case, the block's rows, and the loop's goal.
pub(crate) type FirstRoundFn<C> = fn(&C, Range<usize>, Goal) -> Option<FirstRound>;

/// How a family's answer splits by rows (see the module docs).
pub(crate) struct RowBlocks<C> {
    /// The case's rows.
    pub rows: usize,
    /// The values of the row-wise outputs and gradients in one row.
    pub values_per_row: usize,
    /// The enclosures of the rows in the range at `prec` bits.
    pub evaluate: fn(&C, Range<usize>, u32) -> Result<RowsPart>,
    /// The reduced outputs from every row's term, in row order (empty where there are none).
    pub reduce: fn(&C, &[Interval]) -> Answer<Interval>,
    /// The first round of the loop for the rows in the range without MPFR per value
    /// (`crate::reference::softmax_balls`), where the family has one: `None` from it sends
    /// the block through the MPFR loop.
    pub first_round: Option<FirstRoundFn<C>>,
}

/// One block's enclosures: the row-wise outputs and gradients of its rows (one matrix row
/// per case row), and each row's term of the reduced outputs.
pub(crate) struct RowsPart {
    /// The row-wise tensors of the block's rows.
    pub answer: Answer<Interval>,
    /// One term per row (empty for a family without reduced outputs).
    pub terms: Vec<Interval>,
}

impl RowsPart {
    /// The rows `rows` of an N×C `logits` matrix, in parallel, each by `row_fn` (the row's
    /// logits as point enclosures at `prec` bits, and its index) giving the row's term and
    /// unreduced gradient: the terms, and the gradient `name` divided by `divisor` (the
    /// reduction's, for the whole case) where there is one. The shape of every
    /// cross-entropy-like family's row blocks.
    pub(crate) fn of_logit_rows(
        logits: &Matrix<f64>,
        rows: Range<usize>,
        prec: u32,
        name: &'static str,
        divisor: Option<&Interval>,
        row_fn: impl Fn(&[Interval], usize) -> (Interval, Vec<Interval>) + Sync,
    ) -> RowsPart {
        use rayon::prelude::*;
        let (count, cols) = (rows.len(), logits.cols());
        let per_row: Vec<(Interval, Vec<Interval>)> = rows
            .into_par_iter()
            .map(|i| {
                let row: Vec<Interval> = logits
                    .row(i)
                    .iter()
                    .map(|&z| Interval::from_f64(prec, z))
                    .collect();
                row_fn(&row, i)
            })
            .collect();
        let mut terms = Vec::with_capacity(count);
        let mut grad = Vec::with_capacity(count * cols);
        for (term, g) in per_row {
            terms.push(term);
            match divisor {
                Some(d) => grad.extend(g.iter().map(|g| g.div(d))),
                None => grad.extend(g),
            }
        }
        let grad = Matrix::from_vec(count, cols, grad).expect("one value per logit");
        RowsPart {
            answer: Answer {
                outputs: vec![],
                gradients: vec![(name, Tensor::Matrix(grad))],
            },
            terms,
        }
    }
}

/// The certified answer of `case` as `lossref eval` prints it: each value's roundings,
/// tier and (`with_decimals`) decimal string, without its enclosure; a case of more than
/// [`BLOCK_VALUES`] values whose family splits by rows is certified a block at a time.
///
/// # Errors
/// As [`crate::reference::certified`].
pub fn certified_rounded(case: &Case, with_decimals: bool) -> Result<CertifiedAnswer<Rounded>> {
    certified_in_blocks(case, with_decimals, BLOCK_VALUES)
}

/// [`certified_rounded`] with blocks of about `block_values` values (the tests use small
/// blocks, so that small cases split).
///
/// # Errors
/// As [`crate::reference::certified`].
pub fn certified_in_blocks(
    case: &Case,
    with_decimals: bool,
    block_values: usize,
) -> Result<CertifiedAnswer<Rounded>> {
    case.validate()?;
    if let Some(answer) = crate::family::certified_in_row_blocks(case, with_decimals, block_values)
    {
        return answer;
    }
    let mut rows: Vec<Rounded> = Vec::new();
    let streamed = certified_streaming(case, with_decimals, block_values, &mut |_, block| {
        rows.extend(block);
        Ok(())
    })?;
    if let Some((mut answer, (name, position, count, cols))) = streamed {
        let grad = Matrix::from_vec(count, cols, rows).expect("every block fills whole rows");
        let at = position.min(answer.answer.gradients.len());
        answer
            .answer
            .gradients
            .insert(at, (name, Tensor::Matrix(grad)));
        return Ok(answer);
    }
    certified_whole(case, with_decimals)
}

/// The certified answer of `case`, kept as [`Rounded`] values, without blocks.
fn certified_whole(case: &Case, with_decimals: bool) -> Result<CertifiedAnswer<Rounded>> {
    let mut zeros = ZeroTest::new(case);
    certify_kept(
        Goal::eval(with_decimals),
        |prec| crate::family::reference(case, prec),
        |prec, places| zeros.proven(prec, places),
        |c: Certified| c.rounded(with_decimals),
    )
}

/// The certified answer of a case that streams over blocks of classes (about
/// `block_values` values each; [`BLOCK_VALUES`] is what `lossref eval` uses): its streamed
/// gradient goes to `sink` block by block, and the answer returned holds the rest, with the
/// gradient's [`StreamedShape`] (insert it at that place for the whole answer). `Ok(None)`
/// where the case does not stream (its family does not, it is small enough to certify
/// whole, or an operand cannot be sliced exactly): [`certified_rounded`] certifies it, and
/// whatever the sink received (a block certified before an unsliceable one was met) is to
/// be discarded.
///
/// # Errors
/// As [`crate::reference::certified`], and the sink's own errors.
pub fn certified_streaming(
    case: &Case,
    with_decimals: bool,
    block_values: usize,
    sink: &mut ClassSink<'_>,
) -> Result<Option<(CertifiedAnswer<Rounded>, StreamedShape)>> {
    case.validate()?;
    let Some(shape) = crate::family::class_blocks_shape(case, block_values) else {
        return Ok(None);
    };
    Ok(
        crate::family::certified_in_class_blocks(case, with_decimals, block_values, sink)?
            .map(|answer| (answer, shape)),
    )
}

/// The shape of `case`'s streamed gradient where it streams at `block_values` (see
/// [`certified_streaming`]); `None` otherwise.
pub fn streamed_shape(case: &Case, block_values: usize) -> Option<StreamedShape> {
    crate::family::class_blocks_shape(case, block_values)
}

/// One row-wise tensor as the blocks fill it.
struct Filling {
    section: &'static str,
    name: &'static str,
    cols: usize,
    values: Vec<Rounded>,
}

/// The driver of the module docs for one family's case (`whole` is the same case as a
/// [`Case`], for its zero test).
pub(crate) fn certify_rows<C: Sync>(
    case: &C,
    whole: &Case,
    blocks: RowBlocks<C>,
    with_decimals: bool,
    block_values: usize,
) -> Result<CertifiedAnswer<Rounded>> {
    let keep = |c: Certified| c.rounded(with_decimals);
    let goal = Goal::eval(with_decimals);
    let per_block = (block_values / blocks.values_per_row.max(1)).max(1);
    let mut zeros = ZeroTest::new(whole);
    let mut filling: Vec<Filling> = Vec::new();
    let mut terms: Vec<Interval> = Vec::with_capacity(blocks.rows);
    let mut certificate = Certificate {
        tier: Tier::CorrectlyRounded,
        precision_bits: 0,
    };
    let first_round = goal.first_precision();
    for first in (0..blocks.rows).step_by(per_block) {
        let rows = first..(first + per_block).min(blocks.rows);
        if let Some(part) = blocks.first_round.and_then(|f| f(case, rows.clone(), goal)) {
            merge(
                &mut certificate,
                Certificate {
                    tier: Tier::CorrectlyRounded,
                    precision_bits: first_round,
                },
            );
            terms.extend(part.terms);
            fill(&mut filling, part.answer);
            continue;
        }
        let last_terms = Mutex::new(Vec::new());
        let shapes: Mutex<Vec<(&'static str, &'static str, usize)>> = Mutex::new(Vec::new());
        let part = certify_kept_from(
            goal,
            |prec| {
                let part = (blocks.evaluate)(case, rows.clone(), prec)?;
                *shapes.lock().unwrap_or_else(|p| p.into_inner()) = part
                    .answer
                    .sections()
                    .map(|(section, name, t)| (section, name, columns(t)))
                    .collect();
                *last_terms.lock().unwrap_or_else(|p| p.into_inner()) = part.terms;
                Ok(part.answer)
            },
            |prec, places| {
                // the block's places, as places of the whole answer
                let shapes = shapes.lock().unwrap_or_else(|p| p.into_inner());
                let whole_places: Vec<(&str, &str, usize)> = places
                    .iter()
                    .map(|&(section, name, index)| {
                        let cols = shapes
                            .iter()
                            .find(|(s, n, _)| *s == section && *n == name)
                            .map_or(0, |&(_, _, c)| c);
                        (section, name, index + rows.start * cols)
                    })
                    .collect();
                zeros.proven(prec, &whole_places)
            },
            keep,
            rows.start,
        )?;
        merge(&mut certificate, part.certificate);
        terms.extend(last_terms.into_inner().unwrap_or_else(|p| p.into_inner()));
        fill(&mut filling, part.answer);
    }

    // The reduced outputs: in the loop's first round from the terms the blocks left (each
    // enclosing its row's term, at that block's last precision), then, should that not
    // certify, from every row's term again at the loop's precision.
    let reduced = certify_kept(
        goal,
        |prec| {
            if prec == first_round {
                return Ok((blocks.reduce)(case, &terms));
            }
            let mut again = Vec::with_capacity(blocks.rows);
            for first in (0..blocks.rows).step_by(per_block) {
                let rows = first..(first + per_block).min(blocks.rows);
                again.extend((blocks.evaluate)(case, rows, prec)?.terms);
            }
            Ok((blocks.reduce)(case, &again))
        },
        |_, places| vec![false; places.len()],
        keep,
    )?;
    merge(&mut certificate, reduced.certificate);

    let mut answer = reduced.answer;
    for f in filling {
        let rows = f.values.len().checked_div(f.cols).unwrap_or(0);
        let tensor = Tensor::Matrix(
            Matrix::from_vec(rows, f.cols, f.values).expect("every block fills whole rows"),
        );
        match f.section {
            "outputs" => answer.outputs.push((f.name, tensor)),
            _ => answer.gradients.push((f.name, tensor)),
        }
    }
    Ok(CertifiedAnswer {
        answer,
        certificate,
    })
}

/// A block's certified row-wise tensors appended to the tensors being filled.
fn fill(filling: &mut Vec<Filling>, block: Answer<Rounded>) {
    for (section, name, tensor) in block.into_sections() {
        let cols = columns(&tensor);
        let values = tensor.into_values();
        match filling
            .iter_mut()
            .find(|f| f.section == section && f.name == name)
        {
            Some(f) => f.values.extend(values),
            None => filling.push(Filling {
                section,
                name,
                cols,
                values,
            }),
        }
    }
}

/// The weakest tier and the largest precision of two certificates.
pub(crate) fn merge(into: &mut Certificate, other: Certificate) {
    into.tier = into.tier.min(other.tier);
    into.precision_bits = into.precision_bits.max(other.precision_bits);
}

/// A tensor's columns (0 for a scalar).
fn columns<V>(t: &Tensor<V>) -> usize {
    match t {
        Tensor::Scalar(_) => 0,
        Tensor::Matrix(m) => m.cols(),
    }
}
