//! SPEC §5's options of `softmax_ce` (PyTorch's `cross_entropy` semantics): class weights
//! `weight`, `ignore_index`, `label_smoothing` ε and soft `targets`.
//!
//! Every option keeps the per-sample term linear in the log-probabilities:
//! l_i = −Σ_c a_ic·log p_ic, with the row's coefficients
//!
//! * a label y_i, not ignored: a_ic = (ε/C)·w_c + [c = y_i]·(1 − ε)·w_{y_i};
//! * an ignored row: a_ic = 0 (no loss, no gradient);
//! * soft targets t_i: a_ic = w_c·((1 − ε)·t_ic + ε/C);
//!
//! so that ∂l_i/∂z_ij = A_i·p_ij − a_ij with A_i = Σ_c a_ic. The reduction divides by
//! D = Σ_{i not ignored} w_{y_i} for `mean` with labels, by N for `mean` with soft targets
//! (never by a weight sum, as in PyTorch), and by 1 for `sum`.
//!
//! The gradient is evaluated as (A_i − a_ij)·p_ij − a_ij·(1 − p_ij), two non-negative terms
//! (for non-negative targets), each accurate: 1 − p_ij is Σ_{k≠j} p_ik, and A_i − a_ij is
//! Σ_{k≠j} a_ik, which is exactly 0 for an unsmoothed label. With ε = 0 and no weights the
//! formula is today's p − onehot.

use crate::case::{Fields, Inputs};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::spec::Reduction;

/// The options of a `softmax_ce` case (SPEC §5); [`CeOptions::default`] is SPEC §1's plain
/// cross-entropy.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CeOptions {
    /// Class weights w (length C, finite, ≥ 0); `None` is all 1.
    pub weight: Option<Vec<f64>>,
    /// The label value that marks an ignored row (any integer, PyTorch's default −100);
    /// `None` ignores nothing.
    pub ignore_index: Option<i64>,
    /// Which rows carry the ignore index (empty when none does). Such a row's entry of
    /// `labels` is the index itself where it lies in `0..C`, else 0, and is never used.
    pub ignored_rows: Vec<bool>,
    /// ε ∈ [0, 1]: the mass ε/C given to every class, the target included.
    pub label_smoothing: f64,
    /// Soft targets t (N×C, finite) replacing the labels (which are then empty).
    pub targets: Option<Matrix<f64>>,
}

impl CeOptions {
    /// SPEC §1's plain cross-entropy: no weights, no ignored row, ε = 0, labels.
    pub fn is_plain(&self) -> bool {
        self.weight.is_none()
            && !self.ignored_rows.iter().any(|&b| b)
            && self.label_smoothing == 0.0
            && self.targets.is_none()
    }

    /// Whether row `i` is ignored.
    pub fn ignored(&self, i: usize) -> bool {
        self.ignored_rows.get(i).copied().unwrap_or(false)
    }

    /// w_c (1 without weights).
    pub fn w(&self, c: usize) -> f64 {
        self.weight.as_ref().map_or(1.0, |w| w[c])
    }
}

/// The coefficients of one row, a_ic, in any arithmetic that can add, multiply and divide
/// by C: what the reference (intervals), the fast paths (f32, f64) and the exact zero test
/// (rationals) each evaluate.
pub(crate) trait Coefficients: Clone {
    /// self + other.
    fn plus(&self, other: &Self) -> Self;
    /// self − other.
    fn minus(&self, other: &Self) -> Self;
    /// self · other.
    fn times(&self, other: &Self) -> Self;
    /// self / k.
    fn over(&self, k: usize) -> Self;
}

/// How real implementations place the options instead (SPEC §5's conventions to diagnose);
/// [`Convention::Spec`] is SPEC §5 itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Convention {
    /// SPEC §5.
    #[default]
    Spec,
    /// ε spread over the C − 1 other classes: a_c = ε/(C − 1)·w_c off the target,
    /// a_y = (1 − ε)·w_y.
    SmoothingOverOthers,
    /// The class weight applied after smoothing: a_c = w_y·(ε/C + [c = y]·(1 − ε)).
    WeightAfterSmoothing,
    /// Ignored rows keep their smoothing term a_c = ε/C·w_c (PyTorch issue #73205).
    SmoothingOnIgnoredRows,
    /// `mean` over N, every row counted, instead of Σ w_y.
    MeanOverRows,
    /// `mean` over the number of rows not ignored instead of their Σ w_y.
    MeanOverKeptRows,
    /// Soft targets' `mean` over Σ_i Σ_c w_c·q_ic (as for labels) instead of N.
    MeanOverTargetWeights,
}

impl Convention {
    /// Every convention but SPEC §5's.
    pub(crate) const ALTERNATIVES: [Convention; 6] = [
        Convention::SmoothingOverOthers,
        Convention::WeightAfterSmoothing,
        Convention::SmoothingOnIgnoredRows,
        Convention::MeanOverRows,
        Convention::MeanOverKeptRows,
        Convention::MeanOverTargetWeights,
    ];

    /// Whether this convention gives another formula than SPEC §5's on a case with
    /// `options` and `reduction` (where it does not, it is no evidence).
    pub(crate) fn differs(self, options: &CeOptions, reduction: Reduction) -> bool {
        let (eps, weighted) = (options.label_smoothing > 0.0, options.weight.is_some());
        let (soft, mean) = (options.targets.is_some(), reduction == Reduction::Mean);
        let ignoring = options.ignored_rows.iter().any(|&b| b);
        match self {
            Convention::Spec => false,
            Convention::SmoothingOverOthers => eps && !soft,
            Convention::WeightAfterSmoothing => eps && weighted && !soft,
            Convention::SmoothingOnIgnoredRows => eps && ignoring,
            Convention::MeanOverRows => mean && !soft && (weighted || ignoring),
            Convention::MeanOverKeptRows => mean && !soft && weighted,
            Convention::MeanOverTargetWeights => mean && soft && weighted,
        }
    }

    /// What an implementation following this convention does, for the diagnosis.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Convention::Spec => "SPEC §5",
            Convention::SmoothingOverOthers => "label smoothing spreads ε over the C − 1 other classes (the target excluded), not ε/C over all C",
            Convention::WeightAfterSmoothing => "the class weight w_y multiplies the whole smoothed term, w_y·((1 − ε)·CE + ε/C·Σ_c −log p_c), instead of each class's smoothing term being weighted by its own w_c (PyTorch)",
            Convention::SmoothingOnIgnoredRows => "ignored rows still add their smoothing term ε/C·Σ_c w_c·(−log p_c) (PyTorch's bug #73205)",
            Convention::MeanOverRows => "`mean` divides by N, every row counted, instead of by Σ w_(y_i) over the rows not ignored",
            Convention::MeanOverKeptRows => "`mean` divides by the number of rows not ignored instead of by their Σ w_(y_i)",
            Convention::MeanOverTargetWeights => "`mean` divides soft targets by Σ_i Σ_c w_c·q_ic, as for labels, instead of by N (PyTorch)",
        }
    }
}

/// a_i (module docs) for row `i` of a case with `cols` classes and `labels`, the inputs
/// entering the arithmetic through `of` (exactly, or rounded to the fast path's dtype).
pub(crate) fn row_coefficients<K: Coefficients>(
    options: &CeOptions,
    labels: &[usize],
    i: usize,
    cols: usize,
    of: impl Fn(f64) -> K,
) -> Vec<K> {
    row_coefficients_as(options, labels, i, cols, of, Convention::Spec)
}

/// [`row_coefficients`] as `convention` places them.
pub(crate) fn row_coefficients_as<K: Coefficients>(
    options: &CeOptions,
    labels: &[usize],
    i: usize,
    cols: usize,
    of: impl Fn(f64) -> K,
    convention: Convention,
) -> Vec<K> {
    let zero = of(0.0);
    if options.ignored(i) {
        if convention == Convention::SmoothingOnIgnoredRows && options.targets.is_none() {
            let smooth = of(options.label_smoothing).over(cols);
            return (0..cols).map(|c| smooth.times(&of(options.w(c)))).collect();
        }
        return vec![zero; cols];
    }
    let eps = of(options.label_smoothing);
    // 1 − ε in the arithmetic itself (exact for intervals and rationals)
    let keep = of(1.0).minus(&eps);
    // ε/C, the smoothing mass of one class; 0 exactly without smoothing
    let smooth = eps.over(cols);
    let w = |c: usize| of(options.w(c));
    match &options.targets {
        Some(t) => (0..cols)
            .map(|c| {
                let q = keep.times(&of(*t.get(i, c))).plus(&smooth);
                w(c).times(&q)
            })
            .collect(),
        None if convention == Convention::SmoothingOverOthers && cols > 1 => {
            let y = labels[i];
            let others = eps.over(cols - 1);
            (0..cols)
                .map(|c| {
                    if c == y {
                        keep.times(&w(y))
                    } else {
                        others.times(&w(c))
                    }
                })
                .collect()
        }
        None if convention == Convention::WeightAfterSmoothing => {
            let y = labels[i];
            (0..cols)
                .map(|c| {
                    let share = if c == y {
                        smooth.plus(&keep)
                    } else {
                        smooth.clone()
                    };
                    w(y).times(&share)
                })
                .collect()
        }
        None => {
            let y = labels[i];
            (0..cols)
                .map(|c| {
                    let spread = if options.label_smoothing == 0.0 {
                        zero.clone()
                    } else {
                        smooth.times(&w(c))
                    };
                    if c == y {
                        spread.plus(&keep.times(&w(y)))
                    } else {
                        spread
                    }
                })
                .collect()
        }
    }
}

/// D, the reduction's divisor (module docs), in binary64 for the tolerance: Σ w_{y_i} over
/// the rows not ignored (labels, `mean`), N (soft targets, `mean`) or 1 (`sum`).
pub(crate) fn divisor_f64(options: &CeOptions, labels: &[usize], n: usize, red: Reduction) -> f64 {
    match divisor_terms(options, labels, red) {
        Some(w) => w.iter().sum(),
        None if red == Reduction::Sum => 1.0,
        None => n as f64,
    }
}

/// The divisor's terms: one weight per row not ignored (labels, `mean`), or `None` for a
/// divisor N or 1.
pub(crate) fn divisor_terms(
    options: &CeOptions,
    labels: &[usize],
    red: Reduction,
) -> Option<Vec<f64>> {
    (red == Reduction::Mean && options.targets.is_none()).then(|| {
        (0..labels.len())
            .filter(|&i| !options.ignored(i))
            .map(|i| options.w(labels[i]))
            .collect()
    })
}

/// The divisor's terms as `convention` takes them (`None`: N for `mean`, 1 for `sum`); an
/// empty list for a convention whose divisor is a count of rows is that count's 1s.
pub(crate) fn divisor_terms_as(
    options: &CeOptions,
    labels: &[usize],
    n: usize,
    red: Reduction,
    convention: Convention,
) -> Option<Vec<f64>> {
    if red == Reduction::Sum {
        return None;
    }
    match convention {
        Convention::MeanOverRows if options.targets.is_none() => Some(vec![1.0; n]),
        Convention::MeanOverKeptRows if options.targets.is_none() => Some(
            (0..n)
                .filter(|&i| !options.ignored(i))
                .map(|_| 1.0)
                .collect(),
        ),
        // Σ_i Σ_c w_c·q_ic: every soft row's coefficients
        Convention::MeanOverTargetWeights => options.targets.as_ref().map(|t| {
            (0..n)
                .flat_map(|i| row_coefficients(options, labels, i, t.cols(), |x| x))
                .collect()
        }),
        _ => divisor_terms(options, labels, red),
    }
}

/// Reads the options and the labels or targets of a `softmax_ce` case (SPEC §5), with
/// the logits' shape N×C: `(labels, options)`, labels empty for soft targets.
pub(crate) fn parse(
    params: &mut Fields,
    inputs: &mut Inputs,
    n: usize,
    cols: usize,
) -> Result<(Vec<usize>, CeOptions)> {
    let label_smoothing = params.unit_interval("label_smoothing", 0.0)?;
    let ignore_index = params.optional_integer("ignore_index")?;
    let weight = inputs.class_weights("weight", cols, "weights")?;
    let (has_labels, has_targets) = (inputs.contains("labels"), inputs.contains("targets"));
    let (labels, ignored_rows, targets) = match (has_labels, has_targets) {
        (true, true) => {
            return Err(Error::invalid(
                inputs.place("targets"),
                "given with labels; a case has either labels (class indices) or soft targets (N×C)",
            ))
        }
        (false, true) => {
            if let Some(i) = ignore_index {
                return Err(Error::invalid(
                    params.place("ignore_index"),
                    format!("is {i}, but soft targets have no labels to ignore (PyTorch refuses ignore_index with probability targets)"),
                ));
            }
            let place = inputs.place("targets");
            let t = inputs.matrix("targets")?;
            if (t.rows(), t.cols()) != (n, cols) {
                return Err(Error::invalid(
                    place,
                    format!(
                        "has shape {}×{} but the logits are {n}×{cols}; soft targets need one row of C probabilities per sample",
                        t.rows(),
                        t.cols()
                    ),
                ));
            }
            (Vec::new(), Vec::new(), Some(t))
        }
        _ => {
            let (labels, ignored) = inputs.labels_ignoring("labels", n, cols, ignore_index)?;
            let ignored = if ignored.iter().any(|&b| b) {
                ignored
            } else {
                Vec::new()
            };
            (labels, ignored, None)
        }
    };
    Ok((
        labels,
        CeOptions {
            weight,
            ignore_index,
            ignored_rows,
            label_smoothing,
            targets,
        },
    ))
}

/// Checks the options of a case however it was built (SPEC §5): shapes, ranges, and a
/// `mean` with nothing to average.
pub(crate) fn validate(
    options: &CeOptions,
    labels: &[usize],
    n: usize,
    cols: usize,
    reduction: Reduction,
) -> Result<()> {
    let eps = options.label_smoothing;
    crate::case::validate::unit_interval("params.label_smoothing", eps)?;
    if let Some(w) = &options.weight {
        crate::case::validate::class_weights("inputs.weight", w, cols)?;
    }
    match &options.targets {
        Some(t) => {
            if !labels.is_empty() {
                return Err(Error::invalid(
                    "inputs.targets",
                    "given with labels; a case has either labels or soft targets",
                ));
            }
            if options.ignore_index.is_some() || !options.ignored_rows.is_empty() {
                return Err(Error::invalid(
                    "params.ignore_index",
                    "soft targets have no labels to ignore",
                ));
            }
            if (t.rows(), t.cols()) != (n, cols) {
                return Err(Error::invalid(
                    "inputs.targets",
                    format!(
                        "has shape {}×{} but the logits are {n}×{cols}",
                        t.rows(),
                        t.cols()
                    ),
                ));
            }
            crate::case::validate::finite_matrix("inputs.targets", t)?;
        }
        None => {
            crate::case::validate::labels("labels", labels, n, cols)?;
            if !options.ignored_rows.is_empty() {
                if options.ignored_rows.len() != n {
                    return Err(Error::invalid(
                        "ignored_rows",
                        format!(
                            "has {} entries for N = {n} rows",
                            options.ignored_rows.len()
                        ),
                    ));
                }
                if options.ignore_index.is_none() {
                    return Err(Error::invalid(
                        "params.ignore_index",
                        "rows are marked ignored but no ignore_index is set",
                    ));
                }
            }
            check_mean_divisor(options, labels, reduction)?;
        }
    }
    Ok(())
}

/// A `mean` with labels divides by D = Σ w_(y_i) over the rows not ignored: D = 0 (every row
/// ignored, or every kept row's class weight 0) is an undefined point (SPEC §5), refused.
pub(crate) fn check_mean_divisor(
    options: &CeOptions,
    labels: &[usize],
    reduction: Reduction,
) -> Result<()> {
    let Some(weights) = divisor_terms(options, labels, reduction) else {
        return Ok(());
    };
    // a sum of non-negative weights is 0 exactly when every one is
    if weights.iter().any(|&w| w > 0.0) {
        return Ok(());
    }
    let why = if weights.is_empty() {
        "every row is ignored"
    } else {
        "every row not ignored has a class weight of 0"
    };
    Err(Error::invalid(
        "params.reduction",
        format!("`mean` divides by Σ w_(y_i) over the rows not ignored, which is 0 here ({why}): the mean is undefined (PyTorch returns NaN); use `sum`"),
    ))
}

impl<T: crate::fast::Real> Coefficients for T {
    fn plus(&self, other: &Self) -> Self {
        *self + *other
    }
    fn minus(&self, other: &Self) -> Self {
        *self - *other
    }
    fn times(&self, other: &Self) -> Self {
        *self * *other
    }
    fn over(&self, k: usize) -> Self {
        *self / T::of_usize(k)
    }
}
