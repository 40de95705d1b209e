//! The certified answer of a large normalized-margin case a block of classes at a time
//! (SPEC §3's answer, value for value), in memory O((B + C)·D + B·block) instead of the
//! O(B·C) enclosures of [`super::reference::evaluate`].
//!
//! The logits of row i are z_ij = s·c_ij (s·g at the target); the loss and every gradient
//! need ℓ_i = ln Σ_j e^{z_ij − m_i}, which couples all C classes of the row. Two passes over
//! blocks of classes J (each recomputing the exact dot products x_i·w_j of its block on
//! sliced binary64 GEMMs, [`crate::mp::products`]):
//!
//! 1. **Online log-sum-exp, as enclosures.** Each row carries an exact shift m (the largest
//!    upper end of the logits' enclosures seen so far, a point) and an enclosure of
//!    R = Σ_{j seen} e^{z_j − m} − 1. A block whose largest upper end M does not exceed m
//!    adds Σ_{j∈J} e^{z_j − m} to R. A block with M > m moves the shift:
//!    Σ_{j seen or in J} e^{z_j − M} − 1 = e^{m − M}·(1 + R) + expm1(z_t − M) + Σ_{j∈J, j≠t} e^{z_j − M},
//!    t the block's top, an identity whose terms are all positive but the small expm1, so no
//!    cancellation. After the last block m is the row's largest upper end, the exact shift
//!    of [`crate::reference::softmax`], and ℓ = ln1p(R) as there: the same real numbers.
//! 2. **The gradients.** With ℓ_i known, each block forms ∂CE/∂z_ij (e^{z_j − m}·e^{−ℓ}, and
//!    expm1(z_y − m − ℓ) at the target) and A_ij as [`super::reference::evaluate`] does; the
//!    block's rows of ∂L/∂W = Aᵀ·X − … are complete and certified at once (their escalation
//!    recomputes only that block, at the higher precision, after pass 1 at it), and handed
//!    to a sink; A_J·W_J, Σ_j A_ij·d_ij and normface's Σ_j ∂CE/∂z_ij·cos θ_ij are added into
//!    the batch rows' accumulators. The loss, ∂L/∂X and ∂L/∂s are certified after the
//!    last block; an entry of ∂L/∂X that the regrouping cannot certify is recomputed by the
//!    plain formula in a third pass over the blocks, and should any of them need more
//!    precision, both passes run again at it.
//!
//! Every enclosure encloses the same real number as the whole path's, and a certified
//! rounding is unique, so the answer is the whole path's (tested on every generated case
//! with blocks of one class and a few, `tests/certified_core/class_blocks.rs`). The
//! certificate's precision is the largest any part needed, which is what the whole case
//! needs.

use crate::answer::{Answer, Tensor};
use crate::error::{Error, Result};
use crate::exact::ZeroTest;
use crate::matrix::Matrix;
use crate::mp::certify::{
    certify_kept, certify_kept_from, Certificate, CertifiedAnswer, Goal, Rounded, Tier,
};
use crate::mp::interval::Interval;
use crate::mp::products::{product, Slices};
use crate::reference::blocks::{merge, ClassSink};
use crate::reference::geometry::{
    binary64_points, cosine_of_rows, exact_dot, exact_row_norm, Cosine, RowNorm,
};
use crate::reference::per_sample;
use crate::reference::softmax::exact_shift;
use crate::spec::{Case, NormalizedCase};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::reference::{plain_terms, target, PairShare, Regrouped};

/// The classes of one block: about `block_values` values of the block's working set
/// (N logits and D gradient entries per class), at least one class.
pub(crate) fn classes_per_block(case: &NormalizedCase, block_values: usize) -> usize {
    let per_class = case.features.rows() + case.features.cols();
    (block_values / per_class.max(1)).max(1)
}

/// True when the case's enclosures (N·C logits and C·D weight gradients, C the classes of
/// its subset where it has one) exceed `block_values`: it is then certified a block of
/// classes at a time.
pub(crate) fn streams(case: &NormalizedCase, block_values: usize) -> bool {
    let (n, c, d) = (
        case.features.rows(),
        case.classes.as_ref().map_or(case.weights.rows(), Vec::len),
        case.features.cols(),
    );
    n.saturating_mul(c).saturating_add(c.saturating_mul(d)) > block_values
}

/// The certified answer of `case` (`whole` is the same case, for its zero test) streamed
/// over blocks of `block_classes` classes: ∂L/∂W goes to `sink` block by block, and the
/// answer returned holds every other output and gradient, with the certificate of all of
/// them. `Ok(None)` where an operand cannot be sliced exactly
/// ([`crate::mp::products::Slices`]): the caller discards what the sink received and
/// certifies the case whole.
///
/// # Errors
/// An undefined point, naming the row; a value that cannot be certified below the cap.
pub(crate) fn certify(
    case: &NormalizedCase,
    whole: &Case,
    with_decimals: bool,
    block_classes: usize,
    sink: &mut ClassSink<'_>,
) -> Result<Option<CertifiedAnswer<Rounded>>> {
    let Some(inputs) = Inputs::new(case, block_classes) else {
        return Ok(None);
    };
    // Set where an operand cannot be sliced: the evaluation stops, and the case is
    // certified whole.
    let refused = AtomicBool::new(false);
    let refuse = || {
        refused.store(true, Ordering::Relaxed);
        Error::invalid(
            "class blocks",
            "an operand cannot be sliced exactly; the case is certified whole",
        )
    };
    let keep = |c: crate::mp::certify::Certified| c.rounded(with_decimals);
    let goal = Goal::eval(with_decimals);
    let p0 = goal.first_precision();
    let passes = Passes::new(&inputs);
    let mut zeros = ZeroTest::new(whole);
    let mut certificate = Certificate {
        tier: Tier::CorrectlyRounded,
        precision_bits: 0,
    };
    let Some(first) = passes.at(p0)? else {
        return Ok(None);
    };
    let mut sums = Sums::new(&inputs, p0);
    let d = inputs.d;
    for classes in inputs.blocks() {
        // The block at p0 adds into the sums; at a higher precision it only certifies.
        let added: Mutex<Option<Block>> = Mutex::new(None);
        let part = certify_kept_from(
            goal,
            |prec| {
                let setup = if prec == p0 {
                    first.clone()
                } else {
                    passes.at(prec)?.ok_or_else(refuse)?
                };
                let block = Block::evaluate(&inputs, &setup, classes.clone()).ok_or_else(refuse)?;
                let grad = block.weights_gradient(&inputs, &setup).ok_or_else(refuse)?;
                if prec == p0 {
                    *added.lock().unwrap_or_else(|p| p.into_inner()) = Some(block);
                }
                Ok(Answer {
                    outputs: vec![],
                    gradients: vec![("weights", Tensor::Matrix(grad))],
                })
            },
            |prec, places| {
                let whole_places: Vec<(&str, &str, usize)> = places
                    .iter()
                    .map(|&(s, n, k)| (s, n, k + classes.start * d))
                    .collect();
                zeros.proven(prec, &whole_places)
            },
            keep,
            classes.start,
        );
        if refused.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let part = part?;
        if let Some(block) = added.into_inner().unwrap_or_else(|p| p.into_inner()) {
            sums.add(&block);
        }
        merge(&mut certificate, part.certificate);
        for (_, _, tensor) in part.answer.into_sections() {
            sink(classes.start, tensor.into_values())?;
        }
    }
    let first_sums = Mutex::new(Some(sums));
    let reduced = certify_kept(
        goal,
        |prec| {
            let taken = if prec == p0 {
                first_sums.lock().unwrap_or_else(|p| p.into_inner()).take()
            } else {
                None
            };
            let (setup, sums) = match taken {
                Some(sums) => (first.clone(), sums),
                None => {
                    let setup = passes.at(prec)?.ok_or_else(refuse)?;
                    let mut sums = Sums::new(&inputs, prec);
                    for classes in inputs.blocks() {
                        let block = Block::evaluate(&inputs, &setup, classes).ok_or_else(refuse)?;
                        sums.add(&block);
                    }
                    (setup, sums)
                }
            };
            sums.finish(&inputs, &setup).ok_or_else(refuse)
        },
        |prec, places| zeros.proven(prec, places),
        keep,
    );
    if refused.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let reduced = reduced?;
    merge(&mut certificate, reduced.certificate);
    Ok(Some(CertifiedAnswer {
        answer: reduced.answer,
        certificate,
    }))
}

/// What every pass reads, at every precision: the case, its sliced features, and the
/// blocks.
struct Inputs<'a> {
    case: &'a NormalizedCase,
    n: usize,
    c: usize,
    d: usize,
    block_classes: usize,
    /// X (N × D), sliced for X·W_Jᵀ.
    x_rows: Slices,
    /// Xᵀ (D × N), sliced for A_Jᵀ·X.
    x_cols: Slices,
}

impl<'a> Inputs<'a> {
    fn new(case: &'a NormalizedCase, block_classes: usize) -> Option<Inputs<'a>> {
        let x = &case.features;
        let (n, d) = (x.rows(), x.cols());
        Some(Inputs {
            case,
            n,
            c: case.weights.rows(),
            d,
            block_classes: block_classes.max(1),
            x_rows: Slices::binary64(n, d, |i, k| *x.get(i, k))?,
            x_cols: Slices::binary64(d, n, |k, i| *x.get(i, k))?,
        })
    }

    fn blocks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.c)
            .step_by(self.block_classes)
            .map(|first| first..(first + self.block_classes).min(self.c))
    }

    /// The rows of W in `classes`, as a matrix.
    fn weights(&self, classes: &Range<usize>) -> Matrix<f64> {
        let d = self.d;
        let values = self.case.weights.as_slice()[classes.start * d..classes.end * d].to_vec();
        Matrix::from_vec(classes.len(), d, values).expect("whole rows")
    }
}

/// Pass 1 at each precision it is asked for, computed once.
struct Passes<'i, 'a> {
    inputs: &'i Inputs<'a>,
    done: Mutex<Vec<Arc<Setup>>>,
}

impl<'i, 'a> Passes<'i, 'a> {
    fn new(inputs: &'i Inputs<'a>) -> Passes<'i, 'a> {
        Passes {
            inputs,
            done: Mutex::new(Vec::new()),
        }
    }

    /// The setup and pass 1 at `prec` bits (`Ok(None)`: a block cannot be sliced).
    fn at(&self, prec: u32) -> Result<Option<Arc<Setup>>> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = done.iter().find(|s| s.prec == prec) {
            return Ok(Some(s.clone()));
        }
        let Some(setup) = Setup::new(self.inputs, prec)? else {
            return Ok(None);
        };
        let setup = Arc::new(setup);
        done.push(setup.clone());
        Ok(Some(setup))
    }
}

/// One row's softmax normalizer: the exact shift m and ℓ = ln Σ_j e^{z_j − m}.
struct Normalizer {
    shift: Interval,
    log_sum: Interval,
    /// e^{−ℓ}
    inverse: Interval,
}

/// Everything at one precision that does not depend on the block: the rows' norms, the
/// targets, the constants, and pass 1's normalizers.
struct Setup {
    prec: u32,
    xs: Vec<RowNorm>,
    inv_x: Vec<Interval>,
    scale: Interval,
    /// 1/N for `mean`, 1 for `sum`
    r: Interval,
    /// r·s
    rs: Interval,
    /// Each row's target g and dg/dcos θ.
    targets: Vec<(Interval, Interval)>,
    rows: Vec<Normalizer>,
}

impl Setup {
    /// The setup at `prec` and pass 1 (`None`: a block cannot be sliced).
    ///
    /// # Errors
    /// An undefined point of a target rule, naming the first such row.
    fn new(inputs: &Inputs<'_>, prec: u32) -> Result<Option<Setup>> {
        let case = inputs.case;
        let x = &case.features;
        let one = Interval::from_i64(prec, 1);
        let xs: Vec<RowNorm> = (0..inputs.n)
            .into_par_iter()
            .map(|i| exact_row_norm(x.row(i), prec))
            .collect();
        let inv_x: Vec<Interval> = xs.iter().map(|v| one.div(&v.norm)).collect();
        // The targets in row order, so that the first undefined row is the one named.
        let mut targets = Vec::with_capacity(inputs.n);
        for (i, &y) in case.labels.iter().enumerate() {
            let w = case.weights.row(y);
            let (xp, wp) = (binary64_points(x.row(i)), binary64_points(w));
            let dot = exact_dot(&xp, &wp, prec).expect("binary64 points are points");
            let inv_w = one.div(&exact_row_norm(w, prec).norm);
            let cos = cosine_of_rows(&dot, &inv_x[i], &inv_w, (x.row(i), w), prec);
            targets.push(target(&case.margin_of(i), &cos, i, y)?);
        }
        let scale = Interval::from_f64(prec, case.scale);
        let r = per_sample(&one, case.reduction, inputs.n);
        let rs = r.mul(&scale);
        let mut setup = Setup {
            prec,
            xs,
            inv_x,
            scale,
            r,
            rs,
            targets,
            rows: Vec::new(),
        };
        // Pass 1: the online log-sum-exp of the module docs.
        let mut running: Vec<Option<(Interval, Interval)>> = vec![None; inputs.n];
        for classes in inputs.blocks() {
            let Some(geometry) = Geometry::of(inputs, &setup, classes.clone()) else {
                return Ok(None);
            };
            running.par_iter_mut().enumerate().for_each(|(i, state)| {
                let logits = geometry.logits(inputs, &setup, i);
                *state = Some(absorb(state.take(), &logits, prec));
            });
        }
        setup.rows = running
            .into_iter()
            .map(|state| {
                let (shift, rest) = state.expect("at least one class");
                let log_sum = rest.ln_1p();
                Normalizer {
                    inverse: log_sum.neg().exp(),
                    shift,
                    log_sum,
                }
            })
            .collect();
        Ok(Some(setup))
    }

    /// The target logit s·g of row `i`.
    fn target_logit(&self, i: usize) -> Interval {
        self.scale.mul(&self.targets[i].0)
    }
}

/// One block's logits into a row's running (m, R) (module docs, pass 1).
fn absorb(
    state: Option<(Interval, Interval)>,
    logits: &[Interval],
    prec: u32,
) -> (Interval, Interval) {
    let (top, block_shift) = exact_shift(logits);
    let relative = |shift: &Interval, skip: Option<usize>| {
        let terms: Vec<Interval> = (0..logits.len())
            .filter(|&j| Some(j) != skip)
            .map(|j| logits[j].sub(shift).exp())
            .collect();
        Interval::sum(prec, &terms)
    };
    match state {
        Some((shift, rest)) if block_shift.lo() <= shift.lo() => {
            let added = relative(&shift, None);
            (shift, rest.add(&added))
        }
        previous => {
            let mut rest =
                relative(&block_shift, Some(top)).add(&logits[top].sub(&block_shift).exp_m1());
            if let Some((shift, old)) = previous {
                let one = Interval::from_i64(prec, 1);
                let carried = shift.sub(&block_shift).exp().mul(&old.add(&one));
                rest = carried.add(&rest);
            }
            (block_shift, rest)
        }
    }
}

/// One block's geometry at one precision: cos θ_ij for every row and the block's classes.
struct Geometry {
    classes: Range<usize>,
    ws: Vec<RowNorm>,
    inv_w: Vec<Interval>,
    /// x_i·w_j, N × |J|
    dots: Matrix<Interval>,
    /// cos θ_ij, N × |J| row-major
    cos: Vec<Cosine>,
}

impl Geometry {
    fn of(inputs: &Inputs<'_>, setup: &Setup, classes: Range<usize>) -> Option<Geometry> {
        let (w, d, prec) = (&inputs.case.weights, inputs.d, setup.prec);
        let first = classes.start;
        let w_rows = Slices::binary64(classes.len(), d, |j, k| *w.get(first + j, k))?;
        let dots = product(&inputs.x_rows, &w_rows, prec);
        drop(w_rows);
        let ws: Vec<RowNorm> = classes
            .clone()
            .into_par_iter()
            .map(|j| exact_row_norm(w.row(j), prec))
            .collect();
        let one = Interval::from_i64(prec, 1);
        let inv_w: Vec<Interval> = ws.iter().map(|v| one.div(&v.norm)).collect();
        let x = &inputs.case.features;
        let cos: Vec<Cosine> = (0..inputs.n)
            .into_par_iter()
            .flat_map_iter(|i| {
                let (dots, inv_w, classes) = (&dots, &inv_w, classes.clone());
                classes.enumerate().map(move |(jj, j)| {
                    let rows = (x.row(i), w.row(j));
                    cosine_of_rows(dots.get(i, jj), &setup.inv_x[i], &inv_w[jj], rows, prec)
                })
            })
            .collect();
        Some(Geometry {
            classes,
            ws,
            inv_w,
            dots,
            cos,
        })
    }

    fn cos(&self, i: usize, jj: usize) -> &Cosine {
        &self.cos[i * self.classes.len() + jj]
    }

    /// Row i's logits over the block: s·cos θ, and s·g at the target.
    fn logits(&self, inputs: &Inputs<'_>, setup: &Setup, i: usize) -> Vec<Interval> {
        let y = inputs.case.labels[i];
        self.classes
            .clone()
            .enumerate()
            .map(|(jj, j)| {
                if j == y {
                    setup.target_logit(i)
                } else {
                    setup.scale.mul(&self.cos(i, jj).value)
                }
            })
            .collect()
    }
}

/// Pass 2 of one block: A over its classes, its sums, and its share of A·W.
struct Block {
    geometry: Geometry,
    /// A_ij = ∂L/∂c_ij/(‖x_i‖‖w_j‖), N × |J| row-major (the exact 0 at a pole).
    a: Vec<Interval>,
    /// Per row, Σ_{j∈J} ∂CE/∂z_ij·cos θ_ij·(dg/dcos θ at the target) (0 at a pole).
    along_rows: Vec<Interval>,
    /// Per class of the block, r·s·Σ_i of the same terms.
    along_classes: Vec<Interval>,
    /// Per row, Σ_{j∈J} ∂CE/∂z_ij·cos θ_ij (normface's ∂L/∂s, before r).
    scale_rows: Vec<Interval>,
    /// A_J·W_J, N × D.
    aw: Matrix<Interval>,
}

impl Block {
    /// Pass 2 of `classes` (`None`: an operand cannot be sliced).
    fn evaluate(inputs: &Inputs<'_>, setup: &Setup, classes: Range<usize>) -> Option<Block> {
        let prec = setup.prec;
        let geometry = Geometry::of(inputs, setup, classes.clone())?;
        let cb = classes.len();
        let zero = Interval::from_i64(prec, 0);
        let case = inputs.case;
        let per_row: Vec<(Vec<Interval>, Vec<Interval>, Interval, Interval)> = (0..inputs.n)
            .into_par_iter()
            .map(|i| {
                let y = case.labels[i];
                let norm = &setup.rows[i];
                let slope = &setup.targets[i].1;
                let logits = geometry.logits(inputs, setup, i);
                let f = setup.rs.mul(&setup.inv_x[i]);
                let mut along = Vec::with_capacity(cb);
                let mut scale_terms = Vec::with_capacity(cb);
                let a = classes
                    .clone()
                    .enumerate()
                    .map(|(jj, j)| {
                        let shifted = logits[jj].sub(&norm.shift);
                        let dz = if j == y {
                            shifted.sub(&norm.log_sum).exp_m1()
                        } else {
                            shifted.exp().mul(&norm.inverse)
                        };
                        let pair = PairShare::of(
                            &dz,
                            geometry.cos(i, jj),
                            (j == y).then_some(slope),
                            (&f, &geometry.inv_w[jj]),
                            case.learns_scale(),
                        );
                        scale_terms.extend(pair.term);
                        along.push(pair.along);
                        pair.a
                    })
                    .collect();
                let along_sum = Interval::sum(prec, &along);
                (a, along, along_sum, Interval::sum(prec, &scale_terms))
            })
            .collect();
        let mut a = Vec::with_capacity(inputs.n * cb);
        let mut columns = vec![zero.clone(); cb];
        let mut along_rows = Vec::with_capacity(inputs.n);
        let mut scale_rows = Vec::with_capacity(inputs.n);
        for (row_a, along, along_sum, scale_sum) in per_row {
            for (col, t) in columns.iter_mut().zip(&along) {
                col.add_assign(t);
            }
            a.extend(row_a);
            along_rows.push(along_sum);
            scale_rows.push(scale_sum);
        }
        let along_classes = columns.iter().map(|t| t.mul(&setup.rs)).collect();
        let w = &case.weights;
        let first = classes.start;
        let a_rows = Slices::enclosures(inputs.n, cb, prec, |i, jj| &a[i * cb + jj])?;
        let w_cols = Slices::binary64(inputs.d, cb, |k, jj| *w.get(first + jj, k))?;
        let aw = product(&a_rows, &w_cols, prec);
        Some(Block {
            geometry,
            a,
            along_rows,
            along_classes,
            scale_rows,
            aw,
        })
    }

    fn a(&self, i: usize, jj: usize) -> &Interval {
        &self.a[i * self.geometry.classes.len() + jj]
    }

    /// The block's rows of ∂L/∂W, complete (`None`: A cannot be sliced).
    fn weights_gradient(&self, inputs: &Inputs<'_>, setup: &Setup) -> Option<Matrix<Interval>> {
        let classes = &self.geometry.classes;
        let cb = classes.len();
        let a_cols = Slices::enclosures(cb, inputs.n, setup.prec, |jj, i| self.a(i, jj))?;
        let atx = product(&a_cols, &inputs.x_cols, setup.prec);
        drop(a_cols);
        let own = inputs.weights(classes);
        Some(
            Regrouped {
                product: atx,
                own: &own,
                norms: &self.geometry.ws,
                along: &self.along_classes,
                prec: setup.prec,
            }
            .gradient(
                &inputs.case.features,
                |jj, i| self.a(i, jj),
                |jj, i| self.geometry.dots.get(i, jj),
            ),
        )
    }
}

/// The batch rows' accumulators over the blocks of one precision.
struct Sums {
    prec: u32,
    aw: Option<Matrix<Interval>>,
    along_rows: Vec<Interval>,
    scale_rows: Vec<Interval>,
}

impl Sums {
    fn new(inputs: &Inputs<'_>, prec: u32) -> Sums {
        let zero = Interval::from_i64(prec, 0);
        Sums {
            prec,
            aw: None,
            along_rows: vec![zero.clone(); inputs.n],
            scale_rows: vec![zero; inputs.n],
        }
    }

    fn add(&mut self, block: &Block) {
        let add_all = |acc: &mut Vec<Interval>, part: &[Interval]| {
            for (a, p) in acc.iter_mut().zip(part) {
                a.add_assign(p);
            }
        };
        add_all(&mut self.along_rows, &block.along_rows);
        add_all(&mut self.scale_rows, &block.scale_rows);
        self.aw = Some(match self.aw.take() {
            None => block.aw.clone(),
            Some(acc) => {
                let (rows, cols) = (acc.rows(), acc.cols());
                let summed = acc
                    .into_vec()
                    .into_par_iter()
                    .zip(block.aw.as_slice().par_iter())
                    .map(|(a, b)| a.add(b))
                    .collect();
                Matrix::from_vec(rows, cols, summed).expect("same shape")
            }
        });
    }

    /// The loss, ∂L/∂X and (normface) ∂L/∂s from every block's sums, with the third pass
    /// for the entries of ∂L/∂X the regrouping leaves (`None`: a block cannot be sliced).
    fn finish(self, inputs: &Inputs<'_>, setup: &Setup) -> Option<Answer<Interval>> {
        let (prec, case, d) = (self.prec, inputs.case, inputs.d);
        let losses: Vec<Interval> = (0..inputs.n)
            .map(|i| {
                let norm = &setup.rows[i];
                norm.log_sum.add(&norm.shift.sub(&setup.target_logit(i)))
            })
            .collect();
        let loss = crate::reference::softmax::reduce(&losses, case.reduction);
        let along_x: Vec<Interval> = self.along_rows.iter().map(|t| t.mul(&setup.rs)).collect();
        let x = &case.features;
        let regrouped = Regrouped {
            product: self.aw?,
            own: x,
            norms: &setup.xs,
            along: &along_x,
            prec,
        }
        .regrouped();
        // The third pass: the plain formula's terms for the entries the regrouping left.
        let left: Vec<usize> = (0..regrouped.len())
            .filter(|&k| regrouped[k].is_none())
            .collect();
        let mut terms: Vec<Vec<Interval>> = vec![Vec::new(); left.len()];
        if !left.is_empty() {
            for classes in inputs.blocks() {
                let block = Block::evaluate(inputs, setup, classes.clone())?;
                let own_weights = inputs.weights(&classes);
                let more: Vec<Vec<Interval>> = left
                    .par_iter()
                    .map(|&idx| {
                        let (i, k) = (idx / d, idx % d);
                        plain_terms(x.row(i), &own_weights, 0, k, &setup.xs[i], prec, |jj| {
                            (block.a(i, jj), block.geometry.dots.get(i, jj))
                        })
                    })
                    .collect();
                for (t, m) in terms.iter_mut().zip(more) {
                    t.extend(m);
                }
            }
        }
        let mut terms = terms.into_iter();
        let features: Vec<Interval> = regrouped
            .into_iter()
            .enumerate()
            .map(|(idx, v)| {
                v.unwrap_or_else(|| {
                    let t = terms.next().expect("one sum per entry left");
                    Interval::sum(prec, &t).div(&setup.xs[idx / d].squared)
                })
            })
            .collect();
        let mut gradients = vec![(
            "features",
            Tensor::Matrix(Matrix::from_vec(inputs.n, d, features).expect("N × D")),
        )];
        if case.learns_scale() {
            let shares: Vec<Interval> = self.scale_rows.iter().map(|t| t.mul(&setup.r)).collect();
            gradients.push(("scale", Tensor::Scalar(Interval::sum(prec, &shares))));
        }
        Some(Answer {
            outputs: vec![("loss", Tensor::Scalar(loss))],
            gradients,
        })
    }
}
