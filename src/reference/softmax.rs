//! Softmax rows and cross-entropies (SPEC §1) on the certified interval core: the formulas
//! of `softmax` and `softmax_ce` that every family's reference builds on (the two losses'
//! answers are `crate::family::softmax::reference`).
//!
//! The formulas are the definitions, evaluated on enclosures:
//!
//! * `softmax`: p_ij = e^{z_ij/T} / Σ_k e^{z_ik/T}, log p_ij = z_ij/T − ln Σ_k e^{z_ik/T};
//! * `softmax_ce`: CE(z_i, y_i) = ln Σ_k e^{z_ik} − z_{i,y_i}, summed, or divided by N for
//!   `mean`; its gradient ∂L/∂z_ij = (p_ij − [j = y_i]) / N (or without /N for `sum`),
//!   which is SPEC §2 T5 and is checked against numerical differentiation in the tests.
//!
//! Every exponent is written as s_ij = (z_ij − m_i)/T with one exact number m_i per row
//! (the upper end of the largest logit's enclosure): the definition multiplied and divided
//! by e^{m/T}, because MPFR's exponent range ends near e^{±7·10^8} and a logit of 1e300 is
//! a valid case. The row sum is then 1 + R with R = (e^{s_j*} − 1) + Σ_{j≠j*} e^{s_j}, and
//! ln Σ = ln1p(R); the target's gradient p_y − 1 is expm1(ln p_y). Both are the same
//! mathematics through MPFR's `log1p`/`expm1`: without them a tiny R (a loss of 1e−5000
//! under a small temperature, say) would need tens of thousands of bits to escape the
//! cancellation in ln(1 + R) and e^{−R} − 1. Everything else is resolved by precision alone.

use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::per_sample;
use crate::spec::Reduction;

/// The working precision of a computation on these enclosures: the largest of theirs.
fn working_precision<'a>(xs: impl IntoIterator<Item = &'a Interval>) -> u32 {
    xs.into_iter().map(Interval::prec).max().unwrap_or(64)
}

/// Per row: the shifted exponents s_j = (z_j − m)/T, ln Σ_j e^{s_j}, and the shift m/T.
struct RowExponents {
    scaled: Vec<Interval>,
    log_sum: Interval,
    shift: Interval,
}

/// The row's exact shift: the index of the largest upper end, and that end as a point.
/// Any exact number would do; this one keeps every shifted exponent at most 0.
pub(crate) fn exact_shift(row: &[Interval]) -> (usize, Interval) {
    let top = (0..row.len())
        .reduce(|a, b| if row[b].hi() > row[a].hi() { b } else { a })
        .unwrap_or(0);
    (top, Interval::from_float(row[top].hi().clone()))
}

fn row_exponents(row: &[Interval], temperature: &Interval) -> RowExponents {
    let prec = working_precision(row).max(temperature.prec());
    let (top, m) = exact_shift(row);
    let scaled: Vec<Interval> = row.iter().map(|z| z.sub(&m).div(temperature)).collect();
    // Σ_j e^{s_j} − 1 = expm1(s_top) + Σ_{j≠top} e^{s_j}; s_top is exactly 0 for point inputs.
    let others: Vec<Interval> = (0..row.len())
        .filter(|&j| j != top)
        .map(|j| scaled[j].exp())
        .collect();
    let rest = Interval::sum(prec, others.iter()).add(&scaled[top].exp_m1());
    RowExponents {
        log_sum: rest.ln_1p(),
        shift: m.div(temperature),
        scaled,
    }
}

/// Row-wise softmax of `logits / temperature`: (probabilities, log-probabilities).
pub fn softmax(
    logits: &Matrix<Interval>,
    temperature: &Interval,
) -> (Matrix<Interval>, Matrix<Interval>) {
    let mut probs = Vec::with_capacity(logits.as_slice().len());
    let mut logs = Vec::with_capacity(logits.as_slice().len());
    for row in logits.iter_rows() {
        let r = row_exponents(row, temperature);
        for s in &r.scaled {
            let log_p = s.sub(&r.log_sum);
            probs.push(log_p.exp());
            logs.push(log_p);
        }
    }
    let shape = |v| Matrix::from_vec(logits.rows(), logits.cols(), v).expect("one value per logit");
    (shape(probs), shape(logs))
}

/// The per-sample cross-entropies CE(z_i, y_i) = ln Σ_k e^{z_ik} − z_{i,y_i}.
pub fn cross_entropies(logits: &Matrix<Interval>, labels: &[usize]) -> Vec<Interval> {
    let prec = working_precision(logits.as_slice());
    let one = Interval::from_i64(prec, 1);
    logits
        .iter_rows()
        .zip(labels)
        .map(|(row, &y)| {
            let r = row_exponents(row, &one);
            // ln Σ e^{z} − z_y = ln Σ e^{z−m} + (m − z_y); m − z_y first, so that it is exact
            r.log_sum.add(&r.shift.sub(&row[y]))
        })
        .collect()
}

/// One `softmax_ce` row at once, with one exponential per logit: CE(z, y) and the
/// unreduced gradient p_j − [j = y].
///
/// With the exact shift m (the largest upper end, as in the module docs), e_j = e^{z_j − m},
/// R = Σ_{j≠top} e_j + expm1(z_top − m) and ℓ = ln1p(R) = ln Σ_j e^{z_j − m}:
/// CE = ℓ + (m − z_y), p_j = e_j·e^{−ℓ}, and p_y − 1 = expm1(z_y − m − ℓ) without
/// cancellation. The same quantities as [`cross_entropies`] and [`softmax_ce_grad`], which
/// spend three exponentials per logit.
pub fn ce_row(row: &[Interval], y: usize) -> (Interval, Vec<Interval>) {
    ce_row_over(row, y, None)
}

/// [`ce_row`] with the gradient divided by `divisor` (the reduction's N, where there is
/// one) with one division per row: (p_j − [j = y])/N is e_j·(e^{−ℓ}/N) off the target and
/// expm1(z_y − m − ℓ)/N at it, the same reals as dividing each of [`ce_row`]'s entries.
pub fn ce_row_over(
    row: &[Interval],
    y: usize,
    divisor: Option<&Interval>,
) -> (Interval, Vec<Interval>) {
    let r = ShiftedRow::new(row);
    let loss = r.log_sum.add(&r.shift.sub(&row[y]));
    let over = |v: Interval| match divisor {
        Some(d) => v.div(d),
        None => v,
    };
    let inverse = match divisor {
        Some(d) => r.inverse.div(d),
        None => r.inverse.clone(),
    };
    let grad = (0..row.len())
        .map(|j| {
            if j == y {
                over(r.log_p(y).exp_m1())
            } else {
                r.e[j].mul(&inverse)
            }
        })
        .collect();
    (loss, grad)
}

/// One row with one exponential per logit ([`ce_row`]'s method): the exact shift m, the
/// shifted logits z_j − m, e_j = e^{z_j − m}, ℓ = ln Σ_j e_j (as ln1p of the sum less 1)
/// and e^{−ℓ}. What every cross-entropy-like row of the catalogue reads (`softmax_ce` with
/// or without SPEC §5's options, `focal`, `poly1`).
pub(crate) struct ShiftedRow<'a> {
    /// The row z.
    row: &'a [Interval],
    /// m, exact.
    pub(crate) shift: Interval,
    /// e^{z_j − m}.
    pub(crate) e: Vec<Interval>,
    /// ln Σ_j e^{z_j − m}.
    pub(crate) log_sum: Interval,
    /// e^{−ℓ}.
    pub(crate) inverse: Interval,
}

impl<'a> ShiftedRow<'a> {
    pub(crate) fn new(row: &'a [Interval]) -> ShiftedRow<'a> {
        let prec = working_precision(row);
        let (top, shift) = exact_shift(row);
        // z_j − m is formed where it is used (here and in log_p), the same enclosure each
        // time, rather than held for every j
        let e: Vec<Interval> = row.iter().map(|z| z.sub(&shift).exp()).collect();
        let others = (0..row.len()).filter(|&j| j != top).map(|j| &e[j]);
        let log_sum = Interval::sum(prec, others)
            .add(&row[top].sub(&shift).exp_m1())
            .ln_1p();
        ShiftedRow {
            row,
            inverse: log_sum.neg().exp(),
            shift,
            e,
            log_sum,
        }
    }

    /// p_j = e_j·e^{−ℓ}.
    pub(crate) fn p(&self, j: usize) -> Interval {
        self.e[j].mul(&self.inverse)
    }

    /// log p_j = (z_j − m) − ℓ.
    pub(crate) fn log_p(&self, j: usize) -> Interval {
        self.row[j].sub(&self.shift).sub(&self.log_sum)
    }
}

/// One row of `softmax_ce` with SPEC §5's options, given the row's coefficients a_c
/// (`crate::family::softmax::options`): the per-sample term l = −Σ_c a_c·log p_c and its
/// unreduced gradient A·p_j − a_j (A = Σ_c a_c), evaluated as
/// (A − a_j)·p_j − a_j·(1 − p_j) with 1 − p_j = −expm1(log p_j), so that neither term
/// cancels and an unsmoothed label (A − a_y exactly 0) gives [`ce_row`]'s p_y − 1.
pub fn weighted_ce_row(row: &[Interval], a: &[Interval]) -> (Interval, Vec<Interval>) {
    let prec = working_precision(row).max(working_precision(a));
    let r = ShiftedRow::new(row);
    let total = Interval::sum(prec, a);
    let is_zero = |x: &Interval| x.is_point() && x.contains_zero();
    let mut terms = Vec::with_capacity(row.len());
    let grad = (0..row.len())
        .map(|j| {
            if is_zero(&a[j]) {
                // a_j = 0: no loss term, and the gradient is A·p_j
                return total.mul(&r.p(j));
            }
            let log_p = r.log_p(j);
            terms.push(a[j].mul(&log_p).neg());
            let rest = log_p.exp_m1().neg();
            let others = total.sub(&a[j]);
            let first = if is_zero(&others) {
                Interval::from_i64(prec, 0)
            } else {
                others.mul(&r.p(j))
            };
            first.sub(&a[j].mul(&rest))
        })
        .collect();
    (Interval::sum(prec, &terms), grad)
}

/// The plain form of [`weighted_ce_row`], for the cross-check: l = −Σ_c a_c·log p_c and
/// A·p_j − a_j from the row's softmax, as written.
pub fn weighted_ce_row_plain(row: &[Interval], a: &[Interval]) -> (Interval, Vec<Interval>) {
    let prec = working_precision(row).max(working_precision(a));
    let block = Matrix::from_vec(1, row.len(), row.to_vec()).expect("one row");
    let (p, log_p) = softmax(&block, &Interval::from_i64(prec, 1));
    let total = Interval::sum(prec, a);
    let terms: Vec<Interval> = a
        .iter()
        .zip(log_p.as_slice())
        .map(|(a, l)| a.mul(l).neg())
        .collect();
    let grad = a
        .iter()
        .zip(p.as_slice())
        .map(|(a, p)| total.mul(p).sub(a))
        .collect();
    (Interval::sum(prec, &terms), grad)
}

/// How one row's cross-entropy is computed: as SPEC §1 defines it, or as real code does
/// instead (SPEC §4, "Conventions the diagnosis knows"), for the diagnosis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowLoss {
    /// CE(z, y) = ln Σ_k e^{z_k} − z_y.
    Exact,
    /// −ln max(p_y, floor) = min(CE, −ln floor), its gradient 0 where the floor holds
    /// (insightface's distributed cross-entropy, floor 1e-30).
    Floored(f64),
    /// CE = softplus(a) with a = ln Σ_{j≠y} e^{z_j − z_y}, by `torch.nn.functional.softplus`,
    /// which returns a itself for a > threshold (20): the gradient is then
    /// p_j/(1 − p_y) for j ≠ y and −1 at y, instead of p − onehot.
    SoftplusThreshold(f64),
}

/// [`ce_row`] under a [`RowLoss`]; which side of a floor or threshold a row is on is
/// decided at its enclosure's midpoint (the diagnosis judges midpoints).
pub fn ce_row_as(row: &[Interval], y: usize, how: RowLoss) -> (Interval, Vec<Interval>) {
    let (loss, grad) = ce_row(row, y);
    let prec = working_precision(row);
    match how {
        RowLoss::Exact => (loss, grad),
        RowLoss::Floored(floor) => {
            let cap = Interval::from_f64(prec, floor).ln().neg();
            if loss.mid() > cap.mid() {
                (cap, vec![Interval::from_i64(prec, 0); row.len()])
            } else {
                (loss, grad)
            }
        }
        RowLoss::SoftplusThreshold(threshold) => {
            // a = CE + ln(1 − e^{−CE})
            let a = loss.add(&loss.neg().exp().neg().ln_1p());
            if a.mid().to_f64() > threshold {
                // 1 − p_y = −(p_y − 1)
                let rest = grad[y].neg();
                let g = (0..row.len())
                    .map(|j| {
                        if j == y {
                            Interval::from_i64(prec, -1)
                        } else {
                            grad[j].div(&rest)
                        }
                    })
                    .collect();
                (a, g)
            } else {
                (loss, grad)
            }
        }
    }
}

/// Applies a reduction to per-sample terms.
pub fn reduce(terms: &[Interval], reduction: Reduction) -> Interval {
    let prec = working_precision(terms);
    let total = Interval::sum(prec, terms);
    per_sample(&total, reduction, terms.len())
}

/// The reduced `softmax_ce` loss.
pub fn softmax_ce_loss(
    logits: &Matrix<Interval>,
    labels: &[usize],
    reduction: Reduction,
) -> Interval {
    reduce(&cross_entropies(logits, labels), reduction)
}

/// ∂L/∂z for `softmax_ce`: (softmax(z) − onehot(y)), divided by N for `mean`.
pub fn softmax_ce_grad(
    logits: &Matrix<Interval>,
    labels: &[usize],
    reduction: Reduction,
) -> Matrix<Interval> {
    let prec = working_precision(logits.as_slice());
    let (probs, log_probs) = softmax(logits, &Interval::from_i64(prec, 1));
    let n = logits.rows();
    Matrix::from_fn(logits.rows(), logits.cols(), |i, j| {
        // p_y − 1 = expm1(ln p_y): no cancellation when p_y is within 1e−300 of 1.
        let g = if labels[i] == j {
            log_probs.get(i, j).exp_m1()
        } else {
            probs.get(i, j).clone()
        };
        per_sample(&g, reduction, n)
    })
}

/// The point enclosures of a binary64 matrix at `prec` bits (exact for `prec ≥ 53`).
pub fn points(m: &Matrix<f64>, prec: u32) -> Matrix<Interval> {
    m.map(|&x| Interval::from_f64(prec, x))
}
