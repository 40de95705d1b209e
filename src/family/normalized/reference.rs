//! Reference `normface`, `cosface`, `amsoftmax`, `arcface` and `combined` (SPEC §1) on the
//! certified interval core.
//!
//! With x̂_i = x_i/‖x_i‖, ŵ_j = w_j/‖w_j‖ and c_ij = cos θ_ij = x̂_i·ŵ_j, the logits are
//! z_ij = s·c_ij for j ≠ y_i and z_iy = s·g(c_iy), where g is the target rule of
//! [`Margin`]:
//!
//! | loss | g(θ) | dg/dcos θ |
//! |---|---|---|
//! | normface | cos θ | 1 |
//! | cosface, amsoftmax | cos θ − m | 1 |
//! | arcface (`none`) | cos(θ + m) | sin(θ + m)/sin θ |
//! | arcface (`thmm`) | as `none` if cos θ > cos(π − m), else cos θ − m·sin m | …, else 1 |
//! | arcface (`easy`) | as `none` if cos θ > 0, else cos θ | …, else 1 |
//! | combined | cos(m1·θ + m2) − m3 | m1·sin(m1·θ + m2)/sin θ |
//!
//! (`margin_grad = detached` takes dg/dcos θ = 1: the offset g − cos θ is held constant.)
//! The loss is `reduction` over CE(z_i, y_i) (the softmax module). Its gradient goes back
//! through the chain G_ij = ∂L/∂c_ij = s·∂L/∂z_ij (times dg/dcos θ at the target) and the
//! normalization:
//!
//! ∂c_ij/∂x_i = (ŵ_j − c_ij x̂_i)/‖x_i‖,   ∂c_ij/∂w_j = (x̂_i − c_ij ŵ_j)/‖w_j‖,
//!
//! and, for `normface`, ∂L/∂s = Σ_ij ∂L/∂z_ij · c_ij. Each pair's direction term is
//! computed as written, so that a pair with cos θ exactly ±1 contributes an exact zero.
//!
//! **Deciding exactly.** Three questions have exact answers that an enclosure alone cannot
//! give, and the answers change the formula:
//! * whether x_i·w_j is 0 (the `easy` switch): when the enclosure of the dot product
//!   contains 0, it is recomputed exactly from the binary64 inputs;
//! * whether cos θ is exactly ±1 (x_i and w_j parallel), where dθ/dcos θ is infinite: tested
//!   exactly by the 2×2 minors x_k·w_p − x_p·w_k; at such a point a target rule that needs
//!   dθ is an error naming the row (SPEC §1, undefined points), except where the limit of
//!   dg/dcos θ exists (m1 = 0, or m2 = 0 at θ = 0, or m2 = 0 and integer m1 at θ = π);
//! * which side of the `thmm` switch cos θ is on: cos θ is algebraic in the inputs and
//!   cos(π − m) is transcendental for m ≠ 0 (Lindemann), so they never tie, and the
//!   escalation loop decides. While the enclosures overlap, the value is the hull of both
//!   branches, which no precision certifies. At the exact `easy` tie cos θ = 0 (with m ≠ 0)
//!   the loss jumps by sin m, so the full gradient does not exist: an error.

use crate::answer::{Answer, Tensor};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::geometry::{cosine, direction_numerator, row_norms, Cosine, RowNorm};
use crate::reference::per_sample;
use crate::reference::softmax::{ce_row, cross_entropies, points, reduce, softmax_ce_grad};
use crate::spec::{Boundary, Margin, MarginGrad, NormalizedCase, Reduction};
use std::cmp::Ordering;

/// Why a target rule has no derivative at a pole; the caller names the row.
struct NoSlope;

/// g = cos(m1·θ + m2) − m3 and dg/dcos θ = m1·sin(m1·θ + m2)/sin θ, with the limits at
/// θ ∈ {0, π} where they exist.
fn angular(
    c: &Cosine,
    m1: f64,
    m2: f64,
    m3: f64,
) -> std::result::Result<(Interval, Interval), NoSlope> {
    let prec = c.value.prec();
    let num = |x: f64| Interval::from_f64(prec, x);
    let angle = num(m1).mul(&c.value.acos()).add(&num(m2));
    let value = angle.cos().sub(&num(m3));
    let slope = if m1 == 0.0 {
        num(0.0)
    } else if let Some(sign) = c.pole {
        // θ → 0: cos(m1θ) = 1 − m1²θ²/2 + …, cos θ = 1 − θ²/2 + …, so the slope → m1².
        // θ → π, integer m1: sin(m1θ)/sin θ → −m1·(−1)^m1, so the slope → m1²·(−1)^(m1+1).
        if m2 != 0.0 || (sign < 0 && m1.fract() != 0.0) {
            return Err(NoSlope);
        }
        let square = num(m1).powi(2);
        if sign < 0 && m1 % 2.0 == 0.0 {
            square.neg()
        } else {
            square
        }
    } else {
        let one = num(1.0);
        let sin_theta = one.sub(&c.value).mul(&one.add(&c.value)).sqrt();
        num(m1).mul(&angle.sin()).div(&sin_theta)
    };
    Ok((value, slope))
}

/// The target logit's g and dg/dcos θ for row `i` (see the module docs).
pub(crate) fn target(
    margin: &Margin,
    c: &Cosine,
    i: usize,
    y: usize,
) -> Result<(Interval, Interval)> {
    let prec = c.value.prec();
    let one = Interval::from_i64(prec, 1);
    let num = |x: f64| Interval::from_f64(prec, x);
    let pole_error = |what: &str, remedy: &str| {
        let side = if c.pole == Some(1) {
            "1 (x ∥ w)"
        } else {
            "−1 (x ∥ −w)"
        };
        Error::invalid(
            format!("inputs.features[{i}]"),
            format!(
                "cos θ to its class weight inputs.weights[{y}] is exactly {side}, where {what} has no \
                 derivative with respect to cos θ (dθ/dcos θ is infinite): the gradient does not \
                 exist (SPEC §1, undefined points){remedy}"
            ),
        )
    };
    match *margin {
        Margin::None => Ok((c.value.clone(), one)),
        Margin::Additive { m } => Ok((c.value.sub(&num(m)), one)),
        Margin::Combined { m1, m2, m3 } => angular(c, m1, m2, m3)
            .map_err(|NoSlope| pole_error("the target logit cos(m1·θ + m2) − m3", "")),
        Margin::Angular { m, boundary, grad } => {
            let zero = num(0.0);
            let m_iv = num(m);
            let margin_branch = || match angular(c, 1.0, m, 0.0) {
                Ok(v) => Ok(v),
                // The value exists at a pole; only the slope does not.
                Err(NoSlope) if grad == MarginGrad::Detached => {
                    Ok((c.value.acos().add(&m_iv).cos(), one.clone()))
                }
                Err(NoSlope) => Err(pole_error(
                    "arcface's cos(θ + m)",
                    "; margin_grad = \"detached\" defines it",
                )),
            };
            let (fallback_shift, threshold) = match boundary {
                Boundary::None => {
                    let (g, slope) = margin_branch()?;
                    return Ok(detach(grad, g, slope, &one));
                }
                // cos θ − m·sin m when cos θ ≤ cos(π − m)
                Boundary::Thmm => (m_iv.mul(&m_iv.sin()), Interval::pi(prec).sub(&m_iv).cos()),
                // cos θ when cos θ ≤ 0
                Boundary::Easy => (zero.clone(), zero.clone()),
            };
            let fallback = (c.value.sub(&fallback_shift), one.clone());
            let (g, slope) = match c.value.compare(&threshold) {
                Some(Ordering::Greater) => margin_branch()?,
                Some(Ordering::Equal)
                    if boundary == Boundary::Easy && m != 0.0 && grad == MarginGrad::Full =>
                {
                    return Err(Error::invalid(
                        format!("inputs.features[{i}]"),
                        format!(
                            "cos θ to its class weight inputs.weights[{y}] is exactly 0, the `easy` \
                             switch, where arcface's target logit jumps from cos θ to cos(θ + m) = −sin m: \
                             the gradient does not exist (SPEC §1, undefined points); margin_grad = \
                             \"detached\" defines it"
                        ),
                    ));
                }
                Some(_) => fallback,
                // Undecided at this precision: the hull of both branches, which the escalation
                // loop refines (the `thmm` switch is never an exact tie for m ≠ 0).
                None => {
                    let (g, slope) = margin_branch()?;
                    (g.hull(&fallback.0), slope.hull(&fallback.1))
                }
            };
            Ok(detach(grad, g, slope, &one))
        }
    }
}

fn detach(grad: MarginGrad, g: Interval, slope: Interval, one: &Interval) -> (Interval, Interval) {
    match grad {
        MarginGrad::Full => (g, slope),
        MarginGrad::Detached => (g, one.clone()),
    }
}

/// Everything the loss and its gradients share: the geometry and the logits.
struct Forward {
    xs: Vec<RowNorm>,
    ws: Vec<RowNorm>,
    dots: Matrix<Interval>,
    cos: Matrix<Cosine>,
    /// dg/dcos θ at each row's target.
    slopes: Vec<Interval>,
    logits: Matrix<Interval>,
}

/// The parameters of a normalized-margin loss, apart from its inputs.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The target rule.
    pub margin: Margin,
    /// `mean` or `sum`.
    pub reduction: Reduction,
}

/// The geometry and logits, with row i's target rule `margin_of(i)`.
fn forward(
    margin_of: &dyn Fn(usize) -> Margin,
    features: &Matrix<Interval>,
    weights: &Matrix<Interval>,
    labels: &[usize],
    scale: &Interval,
    prec: u32,
) -> Result<Forward> {
    let xs = row_norms(features, prec);
    let ws = row_norms(weights, prec);
    let pairs = Matrix::from_fn(features.rows(), weights.rows(), |i, j| {
        cosine(features.row(i), weights.row(j), &xs[i], &ws[j], prec)
    });
    let dots = pairs.map(|(d, _)| d.clone());
    let cos = pairs.map(|(_, c)| c.clone());
    let mut slopes = Vec::with_capacity(labels.len());
    let mut targets = Vec::with_capacity(labels.len());
    for (i, &y) in labels.iter().enumerate() {
        let (g, slope) = target(&margin_of(i), cos.get(i, y), i, y)?;
        targets.push(g);
        slopes.push(slope);
    }
    let logits = Matrix::from_fn(features.rows(), weights.rows(), |i, j| {
        let c = if j == labels[i] {
            &targets[i]
        } else {
            &cos.get(i, j).value
        };
        scale.mul(c)
    });
    Ok(Forward {
        xs,
        ws,
        dots,
        cos,
        slopes,
        logits,
    })
}

/// The reduced loss at arbitrary enclosures of the inputs and the scale (used by
/// numerical differentiation, which perturbs them).
///
/// # Errors
/// An undefined point of the target rule, naming the row.
pub fn loss(
    rule: &Rule,
    features: &Matrix<Interval>,
    weights: &Matrix<Interval>,
    labels: &[usize],
    scale: &Interval,
) -> Result<Interval> {
    let prec = features
        .as_slice()
        .iter()
        .chain(weights.as_slice())
        .map(Interval::prec)
        .max()
        .unwrap_or(64);
    let f = forward(&|_| rule.margin, features, weights, labels, scale, prec)?;
    Ok(reduce(&cross_entropies(&f.logits, labels), rule.reduction))
}

/// A normalized-margin case at `prec` bits, written as the formulas of the module docs,
/// one MPFR operation per term: the plain path, which [`evaluate`] must agree with (and
/// falls back to when the inputs cannot be sliced).
///
/// # Errors
/// An undefined point, naming the row.
pub fn evaluate_plain(case: &NormalizedCase, prec: u32) -> Result<Answer<Interval>> {
    let features = points(&case.features, prec);
    let weights = points(&case.weights, prec);
    let scale = Interval::from_f64(prec, case.scale);
    let labels = &case.labels;
    let f = forward(
        &|i| case.margin_of(i),
        &features,
        &weights,
        labels,
        &scale,
        prec,
    )?;
    let loss = reduce(&cross_entropies(&f.logits, labels), case.reduction);
    let dz = softmax_ce_grad(&f.logits, labels, case.reduction);
    // G_ij = ∂L/∂c_ij
    let g = Matrix::from_fn(dz.rows(), dz.cols(), |i, j| {
        let d = scale.mul(dz.get(i, j));
        if j == labels[i] {
            d.mul(&f.slopes[i])
        } else {
            d
        }
    });
    let zero = Interval::from_i64(prec, 0);
    // ∂L/∂x_ik = Σ_j G_ij/‖w_j‖ · (‖x_i‖²w_jk − (x_i·w_j)x_ik) / ‖x_i‖³, and symmetrically.
    let grad_features = Matrix::from_fn(features.rows(), features.cols(), |i, k| {
        let mut acc = zero.clone();
        for (j, wj) in f.ws.iter().enumerate() {
            if f.cos.get(i, j).pole.is_none() {
                let n = direction_numerator(
                    features.row(i),
                    weights.row(j),
                    &f.xs[i].squared,
                    f.dots.get(i, j),
                    k,
                    prec,
                );
                acc = acc.add(&g.get(i, j).div(&wj.norm).mul(&n));
            }
        }
        acc.div(&f.xs[i].cubed)
    });
    let grad_weights = Matrix::from_fn(weights.rows(), weights.cols(), |j, k| {
        let mut acc = zero.clone();
        for (i, xi) in f.xs.iter().enumerate() {
            if f.cos.get(i, j).pole.is_none() {
                let n = direction_numerator(
                    weights.row(j),
                    features.row(i),
                    &f.ws[j].squared,
                    f.dots.get(i, j),
                    k,
                    prec,
                );
                acc = acc.add(&g.get(i, j).div(&xi.norm).mul(&n));
            }
        }
        acc.div(&f.ws[j].cubed)
    });
    let mut gradients = vec![
        ("features", Tensor::Matrix(grad_features)),
        ("weights", Tensor::Matrix(grad_weights)),
    ];
    if case.learns_scale() {
        // ∂L/∂s = Σ_ij ∂L/∂z_ij · z_ij/s, and z/s = cos θ for normface.
        let terms: Vec<Interval> = (0..dz.rows())
            .flat_map(|i| (0..dz.cols()).map(move |j| (i, j)))
            .map(|(i, j)| dz.get(i, j).mul(&f.cos.get(i, j).value))
            .collect();
        gradients.push(("scale", Tensor::Scalar(Interval::sum(prec, &terms))));
    }
    Ok(Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients,
    })
}

/// One pair's share of the gradients (proofs/certified_products.md §5), from ∂CE/∂z_ij and
/// cos θ_ij.
pub(super) struct PairShare {
    /// ∂CE/∂z_ij·cos θ_ij (normface's ∂L/∂s term), where it was asked for.
    pub(super) term: Option<Interval>,
    /// The along term σ_j·∂CE/∂z_ij·cos θ_ij, σ the target's dg/dcos θ and 1 elsewhere.
    pub(super) along: Interval,
    /// A_ij = ∂CE/∂z_ij·σ_j·f_i/‖w_j‖.
    pub(super) a: Interval,
}

impl PairShare {
    /// The share of a pair with ∂CE/∂z = `dz` and cosine `cos`; `slope` is dg/dcos θ at the
    /// target (`None` elsewhere), `(f, inv_w)` are f_i = r·s/‖x_i‖ and 1/‖w_j‖, `keep_term`
    /// asks for normface's term. A pair at a pole has no direction term: its along term and
    /// A_ij are the exact 0, in both sums.
    pub(super) fn of(
        dz: &Interval,
        cos: &Cosine,
        slope: Option<&Interval>,
        (f, inv_w): (&Interval, &Interval),
        keep_term: bool,
    ) -> PairShare {
        let term = dz.mul(&cos.value);
        let (term, along) = if keep_term {
            (Some(term.clone()), term)
        } else {
            (None, term)
        };
        if cos.pole.is_some() {
            let zero = Interval::from_i64(along.prec(), 0);
            return PairShare {
                term,
                along: zero.clone(),
                a: zero,
            };
        }
        let a = dz.mul(f).mul(inv_w);
        match slope {
            Some(slope) => PairShare {
                term,
                along: along.mul(slope),
                a: a.mul(slope),
            },
            None => PairShare { term, along, a },
        }
    }
}

/// Batch rows per block of the fast evaluation's row pass.
const ROW_BLOCK: usize = 8;

/// One batch row's share of the fast evaluation.
struct RowShare {
    /// CE(z_i, y_i)
    loss: Interval,
    /// A_ij = G_ij/(‖x_i‖‖w_j‖), the exact 0 for a pair at a pole.
    a: Vec<Interval>,
    /// Σ_j A_ij·d_ij
    along: Interval,
    /// Σ_j ∂L/∂z_ij·cos θ_ij (normface's ∂L/∂s)
    scale: Interval,
}

/// A normalized-margin case at `prec` bits: output `loss`; gradients `features`,
/// `weights` and, for `normface`, `scale`. The same enclosures' mathematics as
/// [`evaluate_plain`], at batch scale (`proofs/certified_products.md`):
///
/// * d_ij = x_i·w_j and ‖x_i‖², ‖w_j‖² are computed exactly (slices on binary64 GEMMs,
///   [`crate::mp::products`]), so every exact decision of the module docs is unchanged;
/// * each batch row's logits, loss and A_ij = G_ij/(‖x_i‖‖w_j‖) are computed in parallel;
/// * the gradients are regrouped around two products,
///   ∂L/∂x_ik = (A·W)_ik − x_ik·(Σ_j A_ij d_ij)/‖x_i‖² and
///   ∂L/∂w_jk = (Aᵀ·X)_jk − w_jk·(Σ_i A_ij d_ij)/‖w_j‖²,
///   enclosed by [`crate::mp::products::product`];
/// * an entry whose enclosure contains 0, or lost more than 48 bits to the regrouping's
///   cancellation, is recomputed by the plain formula
///   Σ_j A_ij·(‖x_i‖²w_jk − d_ij x_ik)/‖x_i‖², whose numerators vanish exactly along the
///   row, so exact zeros come out exactly as in [`evaluate_plain`].
///
/// # Errors
/// An undefined point, naming the row.
pub fn evaluate(case: &NormalizedCase, prec: u32) -> Result<Answer<Interval>> {
    use crate::mp::products::{product, Slices};
    use crate::reference::geometry::{cosine_of_rows, exact_row_norm};
    use rayon::prelude::*;

    let (x, w) = (&case.features, &case.weights);
    let (n, c, d) = (x.rows(), w.rows(), x.cols());
    let sliced = (
        Slices::binary64(n, d, |i, k| *x.get(i, k)),
        Slices::binary64(c, d, |j, k| *w.get(j, k)),
        Slices::binary64(d, c, |k, j| *w.get(j, k)),
        Slices::binary64(d, n, |k, i| *x.get(i, k)),
    );
    let (Some(x_rows), Some(w_rows), Some(w_cols), Some(x_cols)) = sliced else {
        return evaluate_plain(case, prec);
    };
    let dots = product(&x_rows, &w_rows, prec);
    drop((x_rows, w_rows));
    let xs: Vec<RowNorm> = (0..n)
        .into_par_iter()
        .map(|i| exact_row_norm(x.row(i), prec))
        .collect();
    let ws: Vec<RowNorm> = (0..c)
        .into_par_iter()
        .map(|j| exact_row_norm(w.row(j), prec))
        .collect();
    let scale = Interval::from_f64(prec, case.scale);
    let zero = Interval::from_i64(prec, 0);
    let one = Interval::from_i64(prec, 1);
    // r = 1/N for `mean`, 1 for `sum`
    let r = per_sample(&one, case.reduction, n);
    let rs = r.mul(&scale);
    let inv_w: Vec<Interval> = ws.iter().map(|v| one.div(&v.norm)).collect();
    // One batch row: its share, and its terms σ_j·∂CE/∂z_ij·cos θ_ij (0 at a pole), whose
    // r·s multiples are A_ij·d_ij.
    let row_share = |i: usize| -> Result<(RowShare, Vec<Interval>)> {
        let y = case.labels[i];
        let inv_x = one.div(&xs[i].norm);
        let cos: Vec<Cosine> = (0..c)
            .map(|j| {
                cosine_of_rows(
                    dots.get(i, j),
                    &inv_x,
                    &inv_w[j],
                    (x.row(i), w.row(j)),
                    prec,
                )
            })
            .collect();
        let (g, slope) = target(&case.margin_of(i), &cos[y], i, y)?;
        let logits: Vec<Interval> = (0..c)
            .map(|j| scale.mul(if j == y { &g } else { &cos[j].value }))
            .collect();
        let (loss, dz) = ce_row(&logits, y);
        drop(logits);
        // Σ_j ∂CE/∂z_j·cos θ_j is normface's ∂L/∂s share (times r).
        let mut plain_terms = Vec::with_capacity(if case.learns_scale() { c } else { 0 });
        let mut along_terms = Vec::with_capacity(c);
        let f = rs.mul(&inv_x);
        let a: Vec<Interval> = (0..c)
            .map(|j| {
                let pair = PairShare::of(
                    &dz[j],
                    &cos[j],
                    (j == y).then_some(&slope),
                    (&f, &inv_w[j]),
                    case.learns_scale(),
                );
                plain_terms.extend(pair.term);
                along_terms.push(pair.along);
                pair.a
            })
            .collect();
        let share = RowShare {
            loss,
            along: Interval::sum(prec, &along_terms).mul(&rs),
            a,
            scale: Interval::sum(prec, &plain_terms).mul(&r),
        };
        Ok((share, along_terms))
    };
    // Rows in parallel, in fixed blocks whose column sums Σ_i (terms) are added in block
    // order, so the enclosures do not depend on the thread count.
    let rows: Vec<usize> = (0..n).collect();
    let blocks: Vec<(Vec<RowShare>, Vec<Interval>)> = rows
        .par_chunks(ROW_BLOCK)
        .map(|block| {
            let mut columns = vec![zero.clone(); c];
            let mut shares = Vec::with_capacity(block.len());
            for &i in block {
                let (share, terms) = row_share(i)?;
                for (col, t) in columns.iter_mut().zip(&terms) {
                    col.add_assign(t);
                }
                shares.push(share);
            }
            Ok((shares, columns))
        })
        .collect::<Result<_>>()?;
    let mut along_w: Vec<Interval> = vec![zero.clone(); c];
    let mut shares: Vec<RowShare> = Vec::with_capacity(n);
    for (block_shares, columns) in blocks {
        for (acc, col) in along_w.iter_mut().zip(&columns) {
            acc.add_assign(col);
        }
        shares.extend(block_shares);
    }
    let along_w: Vec<Interval> = along_w.iter().map(|t| t.mul(&rs)).collect();
    let losses: Vec<Interval> = shares.iter().map(|r| r.loss.clone()).collect();
    let loss = reduce(&losses, case.reduction);
    let a = |i: usize, j: usize| &shares[i].a[j];
    let Some(a_rows) = Slices::enclosures(n, c, prec, a) else {
        return evaluate_plain(case, prec);
    };
    let aw = product(&a_rows, &w_cols, prec);
    drop((a_rows, w_cols));
    let Some(a_cols) = Slices::enclosures(c, n, prec, |j, i| a(i, j)) else {
        return evaluate_plain(case, prec);
    };
    let atx = product(&a_cols, &x_cols, prec);
    drop((a_cols, x_cols));
    let along_x: Vec<Interval> = shares.iter().map(|r| r.along.clone()).collect();
    let grad_features = Regrouped {
        product: aw,
        own: x,
        norms: &xs,
        along: &along_x,
        prec,
    }
    .gradient(w, |i, j| a(i, j), |i, j| dots.get(i, j));
    let grad_weights = Regrouped {
        product: atx,
        own: w,
        norms: &ws,
        along: &along_w,
        prec,
    }
    .gradient(x, |j, i| a(i, j), |j, i| dots.get(i, j));
    let mut gradients = vec![
        ("features", Tensor::Matrix(grad_features)),
        ("weights", Tensor::Matrix(grad_weights)),
    ];
    if case.learns_scale() {
        let shares: Vec<Interval> = shares.iter().map(|r| r.scale.clone()).collect();
        gradients.push(("scale", Tensor::Scalar(Interval::sum(prec, &shares))));
    }
    Ok(Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients,
    })
}

/// The regrouped gradient subtracts two sums that cancel where the gradient is small
/// (it is orthogonal to its own row); an entry that lost more than this many bits, or
/// whose enclosure contains 0, is recomputed by the plain formula.
pub(super) const CANCELLATION_BITS: u32 = 48;

/// One gradient of the fast path, ∂L/∂v_rk = P_rk − v_rk·along_r/‖v_r‖² for the rows v of
/// `own` (features or weights), with P the regrouped product.
pub(super) struct Regrouped<'a> {
    pub(super) product: Matrix<Interval>,
    pub(super) own: &'a Matrix<f64>,
    pub(super) norms: &'a [RowNorm],
    pub(super) along: &'a [Interval],
    pub(super) prec: u32,
}

impl Regrouped<'_> {
    /// Every entry P_rk − v_rk·along_r/‖v_r‖², or `None` where its enclosure contains 0
    /// or is wider than 2^−(prec − [`CANCELLATION_BITS`]) relative: that entry is
    /// recomputed by the plain formula ([`plain_entry`]).
    pub(super) fn regrouped(self) -> Vec<Option<Interval>> {
        use rayon::prelude::*;
        let (rows, d, prec) = (self.own.rows(), self.own.cols(), self.prec);
        let per_norm: Vec<Interval> = (0..rows)
            .map(|r| self.along[r].div(&self.norms[r].squared))
            .collect();
        let own = self.own;
        self.product
            .into_vec()
            .into_par_iter()
            .enumerate()
            .map(|(idx, product)| {
                let (r, k) = (idx / d, idx % d);
                let correction = per_norm[r].mul_f64(*own.get(r, k));
                let v = product.sub(&correction);
                drop(product);
                // (an enclosure that contains 0 is never below a relative width)
                v.relative_width_below(prec.saturating_sub(CANCELLATION_BITS))
                    .then_some(v)
            })
            .collect()
    }

    /// Every entry: [`Regrouped::regrouped`], with the plain formula over every row of
    /// `other` where it is needed. `weight(r, q)` is A for own row r and other row q,
    /// `dot(r, q)` their dot product.
    pub(super) fn gradient<'w>(
        self,
        other: &Matrix<f64>,
        weight: impl Fn(usize, usize) -> &'w Interval + Sync,
        dot: impl Fn(usize, usize) -> &'w Interval + Sync,
    ) -> Matrix<Interval> {
        use rayon::prelude::*;
        let (rows, d, prec) = (self.own.rows(), self.own.cols(), self.prec);
        let (own, norms) = (self.own, self.norms);
        let values: Vec<Interval> = self
            .regrouped()
            .into_par_iter()
            .enumerate()
            .map(|(idx, v)| {
                v.unwrap_or_else(|| {
                    let (r, k) = (idx / d, idx % d);
                    let terms = plain_terms(own.row(r), other, 0, k, &norms[r], prec, |q| {
                        (weight(r, q), dot(r, q))
                    });
                    Interval::sum(prec, &terms).div(&norms[r].squared)
                })
            })
            .collect();
        Matrix::from_vec(rows, d, values).expect("one value per entry")
    }
}

/// The plain formula's terms A_rq·(‖v_r‖²u_qk − d_rq v_rk) of entry (r, k) of `own_row` = v_r, for the rows
/// u_q of `other` (numbered from `first`), whose numerators vanish exactly along the row:
/// ∂L/∂v_rk = Σ_q (these terms)/‖v_r‖². `pair(q)` gives A_rq and d_rq; a pair whose A is
/// the exact 0 (at a pole) adds nothing.
pub(super) fn plain_terms<'w>(
    own_row: &[f64],
    other: &Matrix<f64>,
    first: usize,
    k: usize,
    norm: &RowNorm,
    prec: u32,
    pair: impl Fn(usize) -> (&'w Interval, &'w Interval),
) -> Vec<Interval> {
    use crate::reference::geometry::binary64_points;
    let own_row = binary64_points(own_row);
    (0..other.rows())
        .filter_map(|q| {
            let (weight, dot) = pair(first + q);
            if weight.is_point() && weight.lo().is_zero() {
                return None;
            }
            let other_row = binary64_points(other.row(q));
            let num = direction_numerator(&own_row, &other_row, &norm.squared, dot, k, prec);
            Some(weight.mul(&num))
        })
        .collect()
}
