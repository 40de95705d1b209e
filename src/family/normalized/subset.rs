//! Class subsets (SPEC §5, Partial FC and sharded softmax): a case whose input `classes`
//! names the rows of W that the loss uses.
//!
//! With S = `classes` (sorted, distinct, every label in it), the loss is the family's loss
//! on the rows w_j, j ∈ S, alone: each row's softmax runs over S, and the label y_i is the
//! position of y_i in S. ∂L/∂w_j for j ∈ S is that case's gradient, and 0 for j ∉ S (the
//! loss does not read those rows). So every layer evaluates the *restricted* case
//! ([`restricted`]: W's rows in S, labels renumbered, no subset) and scatters its weight
//! gradient back into C rows ([`scatter`]), exact zeros outside S.

use super::NormalizedCase;
use crate::answer::{Answer, Tensor};
use crate::error::Result;
use crate::exact::lindemann::{Combination, Row};
use crate::exact::ExactForm;
use crate::matrix::Matrix;
use crate::mp::certify::{certify_first_round, Goal, Rounded};
use crate::mp::interval::Interval;
use crate::reference::blocks::{ClassSink, Streamed};
use crate::spec::Case;

/// The case on its subset's rows, or `None` for a case without a subset. Labels outside
/// the subset are a validation error ([`super::NormalizedFamily`]'s `validate`), so every
/// label has its position here.
pub(crate) fn restricted(case: &NormalizedCase) -> Option<NormalizedCase> {
    let classes = case.classes.as_ref()?;
    let d = case.weights.cols();
    let weights = Matrix::from_fn(classes.len(), d, |r, k| *case.weights.get(classes[r], k));
    let labels = case
        .labels
        .iter()
        .map(|y| classes.binary_search(y).unwrap_or(0))
        .collect();
    // field by field: the whole weights are never copied, only the subset's rows
    Some(NormalizedCase {
        loss: case.loss,
        scale: case.scale,
        margin: case.margin,
        reduction: case.reduction,
        features: case.features.clone(),
        weights,
        labels,
        margins: case.margins.clone(),
        margins_as: case.margins_as,
        classes: None,
    })
}

/// `evaluate` of `case`: of its restricted case, the weight gradient scattered back with
/// `zero` off the subset ([`scatter`]), where it has a subset.
pub(crate) fn through<V: Clone>(
    case: &NormalizedCase,
    zero: V,
    evaluate: impl FnOnce(&NormalizedCase) -> Result<Answer<V>>,
) -> Result<Answer<V>> {
    match restricted(case) {
        Some(sub) => Ok(scatter(case, evaluate(&sub)?, zero)),
        None => evaluate(case),
    }
}

/// The row of each of `rows` classes among `classes` (sorted, distinct), `None` for a class
/// outside them.
fn positions(classes: &[usize], rows: usize) -> Vec<Option<usize>> {
    let mut position = vec![None; rows];
    for (r, &j) in classes.iter().enumerate() {
        position[j] = Some(r);
    }
    position
}

/// `answer` of the restricted case with its `weights` gradient spread back over the C rows
/// of `case`: row r of the restricted gradient goes to row `classes[r]`, every other row is
/// `zero`.
pub(crate) fn scatter<V: Clone>(
    case: &NormalizedCase,
    mut answer: Answer<V>,
    zero: V,
) -> Answer<V> {
    let Some(classes) = &case.classes else {
        return answer;
    };
    for (name, tensor) in &mut answer.gradients {
        if *name != "weights" {
            continue;
        }
        if let Tensor::Matrix(m) = tensor {
            *tensor = Tensor::Matrix(scatter_rows(m, classes, case.weights.rows(), zero.clone()));
        }
    }
    answer
}

/// The rows of `m` placed at rows `classes` of a `rows`-row matrix of `zero`s.
pub(crate) fn scatter_rows<V: Clone>(
    m: &Matrix<V>,
    classes: &[usize],
    rows: usize,
    zero: V,
) -> Matrix<V> {
    let position = positions(classes, rows);
    Matrix::from_fn(rows, m.cols(), |j, k| match position[j] {
        Some(r) => m.get(r, k).clone(),
        None => zero.clone(),
    })
}

/// Per-row values of the restricted case's weight rows spread over the C rows of `case`
/// (`fill` outside the subset), for the precision table's and the tolerance's scales.
pub(crate) fn scatter_per_row<V: Clone>(case: &NormalizedCase, per_row: Vec<V>, fill: V) -> Vec<V> {
    let Some(classes) = &case.classes else {
        return per_row;
    };
    let d = case.weights.cols();
    let m = Matrix::from_vec(classes.len(), d, per_row).expect("one value per restricted entry");
    scatter_rows(&m, classes, case.weights.rows(), fill).into_vec()
}

/// The exact form of a subset's case: the restricted case's form, with ∂L/∂w_j the empty
/// combination (an exact 0) off the subset and the restricted row's elsewhere.
pub(crate) struct SubsetForm {
    form: Box<dyn ExactForm>,
    /// The restricted row of each of the case's C classes, `None` off the subset.
    position: Vec<Option<usize>>,
    d: usize,
}

impl SubsetForm {
    /// `form` of the case restricted to `classes`, for weights of `d` columns.
    pub(crate) fn new(form: Box<dyn ExactForm>, classes: Vec<usize>, d: usize) -> SubsetForm {
        let rows = classes.last().map_or(0, |&j| j + 1);
        SubsetForm {
            form,
            position: positions(&classes, rows),
            d,
        }
    }
}

impl ExactForm for SubsetForm {
    fn rows(&self) -> &[Row] {
        self.form.rows()
    }

    fn gradient(&self, name: &str, index: usize) -> Option<Combination> {
        if name != "weights" {
            return self.form.gradient(name, index);
        }
        let d = self.d.max(1);
        match self.position.get(index / d).copied().flatten() {
            Some(r) => self.form.gradient(name, r * d + index % d),
            None => Some(Combination::default()),
        }
    }
}

/// The streamed certification of a subset's case (`crate::reference::blocks`): its
/// restricted case `sub` streams over blocks of its rows, each row handed to `sink` at its
/// class in `case`, in order, with rows of exact zeros for the classes between and after
/// them.
pub(crate) fn stream(
    case: &NormalizedCase,
    sub: &NormalizedCase,
    with_decimals: bool,
    block_values: usize,
    sink: &mut ClassSink<'_>,
) -> Streamed {
    let (Some(classes), d) = (&case.classes, case.weights.cols()) else {
        return Ok(None);
    };
    let goal = Goal::eval(with_decimals);
    let zero = certify_first_round(Interval::from_i64(goal.first_precision(), 0), goal)
        .expect("an exact 0 rounds at once");
    let zeros = vec![zero; d];
    let mut next = 0;
    let mut placed = |first: usize, values: Vec<Rounded>| -> Result<()> {
        for (q, row) in values.chunks(d.max(1)).enumerate() {
            let j = classes[first + q];
            while next < j {
                sink(next, zeros.clone())?;
                next += 1;
            }
            sink(j, row.to_vec())?;
            next = j + 1;
        }
        Ok(())
    };
    let block_classes = super::stream::classes_per_block(sub, block_values);
    let whole = Case::Normalized(sub.clone());
    let answer = super::stream::certify(sub, &whole, with_decimals, block_classes, &mut placed)?;
    if answer.is_some() {
        while next < case.weights.rows() {
            sink(next, zeros.clone())?;
            next += 1;
        }
    }
    Ok(answer)
}
