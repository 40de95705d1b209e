//! Losses written the way a PyTorch user writes them, differentiated the way autograd does,
//! in f32 or f64, independently of lossref's code: the calibration of the tolerance model
//! (`certified_core::textbook_calibration`) and, with [`Quirks`], the implementations that
//! follow a convention of real code instead of SPEC §1 (SPEC §4, "Conventions the
//! diagnosis knows"), whose diagnoses `cli::check` tests.

use lossref::check::Groups;
use lossref::fast::real::Real;
use lossref::matrix::Matrix;
use lossref::spec::{
    Boundary, LossId, Margin, MarginGrad, MarginSlot, MultiplicativeCase, NormalizedCase,
    Reduction, SubcenterCase,
};

fn t<T: Real>(x: f64) -> T {
    T::of_f64(x)
}

/// What real code does instead of SPEC §1; [`Quirks::NONE`] is the careful textbook.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quirks {
    /// Rows normalized as v/max(‖v‖, ε) (`torch.nn.functional.normalize`, ε = 1e-12).
    pub normalize_eps: Option<f64>,
    /// The target's cos θ clamped to [−1 + δ, 1 − δ] before acos (no gradient where it
    /// holds).
    pub clamp_cos: Option<f64>,
    /// Each row's loss is −log max(p_y, floor) (insightface's floor 1e-30).
    pub log_floor: Option<f64>,
    /// Each row's loss is `F.softplus(lse_{j≠y}(z_j − z_y))`, which returns its argument
    /// above this threshold (20).
    pub softplus_threshold: Option<f64>,
    /// Σ e^{z − max} over the classes summed left to right in T, as a hand-written loop
    /// does, instead of pairwise as numpy's and PyTorch's reductions add ([`reduce_sum`]):
    /// every term below half an ulp of the running sum is lost.
    pub sequential_sum: bool,
    /// The probabilities p_ij of ∂CE/∂z below this set to 0 (before the chain rule of the
    /// margin losses scales them by s/‖x_i‖ and s/‖w_j‖): float32's smallest normal number
    /// is what XLA on CPU does (flush to zero); a larger cut is a bug, not a flush.
    pub probabilities_below: Option<f64>,
}

impl Quirks {
    /// None: the careful textbook.
    pub const NONE: Quirks = Quirks {
        normalize_eps: None,
        clamp_cos: None,
        log_floor: None,
        softplus_threshold: None,
        sequential_sum: false,
        probabilities_below: None,
    };
}

/// Σ `values` as numpy's reductions add a row (pairwise summation, numpy's
/// `pairwise_sum` in `numpy/_core/src/umath/loops_utils.h.src`: eight accumulators over
/// blocks of at most 128 values, the halves of a longer row summed apart and then added;
/// an error growing like log n·u), where PyTorch's CPU kernels add in vector lanes and
/// cascades and its GPU kernels in trees, to the same effect. A long row summed left to
/// right loses every term below half an ulp of its running sum (Quirks::sequential_sum).
pub fn reduce_sum<T: Real>(values: &[T]) -> T {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        values.iter().fold(T::zero(), |a, &v| a + v)
    } else if n <= BLOCK {
        let mut r = [T::zero(); 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        for chunk in values[8..whole].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        values[whole..].iter().fold(head, |a, &v| a + v)
    } else {
        let half = n / 2 - (n / 2) % 8;
        reduce_sum(&values[..half]) + reduce_sum(&values[half..])
    }
}

/// Σ_j e^{z_j − top}: by [`reduce_sum`], or left to right under `quirks.sequential_sum`.
pub fn sum_exp<T: Real>(z: &[T], top: T, quirks: &Quirks) -> T {
    if quirks.sequential_sum {
        z.iter().fold(T::zero(), |a, &v| a + (v - top).exp())
    } else {
        reduce_sum(&z.iter().map(|&v| (v - top).exp()).collect::<Vec<T>>())
    }
}

/// max z + log Σ e^{z − max z}, the sum as [`sum_exp`] takes it.
pub fn logsumexp<T: Real>(z: &[T], quirks: &Quirks) -> T {
    let top = z.iter().fold(T::neg_infinity(), |a, &v| a.max(v));
    top + sum_exp(z, top, quirks).ln()
}

/// One row's cross-entropy from its logits and its gradient ∂CE/∂z, in T: log_softmax then
/// NLL (and softmax − onehot), or as `quirks` says.
fn ce_row<T: Real>(z: &[T], y: usize, quirks: &Quirks) -> (T, Vec<T>) {
    let lse = logsumexp(z, quirks);
    let onehot = |j: usize| if j == y { T::one() } else { T::zero() };
    if let Some(threshold) = quirks.softplus_threshold {
        // a = lse_{j≠y}(z_j − z_y); CE = softplus(a), ∂CE/∂a = σ(a) (1 above the threshold)
        let others: Vec<T> = (0..z.len())
            .filter(|&j| j != y)
            .map(|j| z[j] - z[y])
            .collect();
        let m = others.iter().fold(T::neg_infinity(), |a, &v| a.max(v));
        let q_sum = sum_exp(&others, m, quirks);
        let a = m + q_sum.ln();
        let (loss, sigma) = if a > t(threshold) {
            (a, T::one())
        } else {
            (
                (T::one() + a.exp()).ln(),
                T::one() / (T::one() + (-a).exp()),
            )
        };
        let grad = (0..z.len())
            .map(|j| {
                if j == y {
                    -sigma
                } else {
                    sigma * (z[j] - z[y] - m).exp() / q_sum
                }
            })
            .collect();
        return (loss, grad);
    }
    let log_py = z[y] - lse;
    if let Some(floor) = quirks.log_floor {
        if log_py < t::<T>(floor).ln() {
            return (-t::<T>(floor).ln(), vec![T::zero(); z.len()]);
        }
    }
    let probability = |j: usize| {
        let p = (z[j] - lse).exp();
        if quirks.probabilities_below.is_some_and(|cut| p < t(cut)) {
            T::zero()
        } else {
            p
        }
    };
    let grad = (0..z.len()).map(|j| probability(j) - onehot(j)).collect();
    (-log_py, grad)
}

/// The rows of `m` in T.
fn rows_in<T: Real>(m: &Matrix<f64>) -> Vec<Vec<T>> {
    m.iter_rows()
        .map(|r| r.iter().map(|&v| t::<T>(v)).collect())
        .collect()
}

/// ‖v‖ as the textbook computes it: √Σv².
fn norm<T: Real>(v: &[T]) -> T {
    v.iter().fold(T::zero(), |a, &b| a + b * b).sqrt()
}

/// a·b, summed in order.
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&p, &q)| s + p * q)
}

/// The reduction's weight r: 1/N for `mean`, 1 for `sum`.
fn per_sample<T: Real>(reduction: Reduction, n: usize) -> T {
    if reduction == Reduction::Mean {
        t::<T>(1.0) / t::<T>(n as f64)
    } else {
        T::one()
    }
}

/// Rows of `m` in T with their normalization v/n, n = ‖v‖ or max(‖v‖, ε): (v̂, n, whether
/// n = ‖v‖).
fn normalize<T: Real>(m: &Matrix<f64>, eps: Option<f64>) -> (Vec<Vec<T>>, Vec<T>, Vec<bool>) {
    let rows: Vec<Vec<T>> = rows_in(m);
    let mut unit = Vec::new();
    let mut norms = Vec::new();
    let mut free = Vec::new();
    for r in &rows {
        let length = norm(r);
        let n = match eps {
            Some(e) if length < t(e) => t(e),
            _ => length,
        };
        unit.push(r.iter().map(|&v| v / n).collect());
        norms.push(n);
        free.push(n == length);
    }
    (unit, norms, free)
}

/// Row i's target rule by SPEC §5, substituted by hand: its per-sample margin replaces
/// cosface's and arcface's m, combined's m2 (or m3 with `margins_as = m3`).
pub fn rule_of_row(c: &NormalizedCase, i: usize) -> Margin {
    let Some(m) = c.margins.as_ref().map(|v| v[i]) else {
        return c.margin;
    };
    match c.margin {
        Margin::None => panic!("normface takes no margins"),
        Margin::Additive { .. } => Margin::Additive { m },
        Margin::Angular { boundary, grad, .. } => Margin::Angular { m, boundary, grad },
        Margin::Combined { m1, m2, m3 } => match c.margins_as {
            MarginSlot::M2 => Margin::Combined { m1, m2: m, m3 },
            MarginSlot::M3 => Margin::Combined { m1, m2, m3: m },
        },
    }
}

/// A PyTorch-style normalized-margin loss in dtype T: x̂ = x/‖x‖, ŵ = w/‖w‖, c = x̂·ŵ, the
/// target logit by the rule (acos for the angular ones), z = s·c, loss = NLL(log_softmax(z))
/// reduced; gradients by the chain rule exactly as autograd composes it; with `quirks`.
/// Per-sample margins set each row's rule, and a class subset the softmax's columns
/// (`weight[classes]`, as Partial FC indexes it).
pub fn margin<T: Real>(c: &NormalizedCase, quirks: &Quirks) -> Groups {
    let all: Vec<usize> = (0..c.weights.rows()).collect();
    let columns = c.classes.clone().unwrap_or(all);
    margin_over::<T>(c, quirks, &|i, _| {
        let y = columns
            .iter()
            .position(|&j| j == c.labels[i])
            .expect("the subset holds every label");
        (columns.clone(), y)
    })
}

/// Sub-center ArcFace as PyTorch code writes it: the cosines to all C·K rows,
/// `view(-1, C, K).max(dim=2)` (the first of equal maxima), arcface on those; autograd's
/// gradient reaches each class's maximizing row.
pub fn subcenter<T: Real>(c: &SubcenterCase, quirks: &Quirks) -> Groups {
    let k = c.subcenters;
    let arcface = NormalizedCase {
        loss: LossId::ArcFace,
        scale: c.scale,
        margin: c.margin,
        reduction: c.reduction,
        features: c.features.clone(),
        weights: c.weights.clone(),
        labels: c.labels.clone(),
        margins: None,
        margins_as: Default::default(),
        classes: None,
    };
    margin_over::<T>(&arcface, quirks, &|i, cos: &[T]| {
        let best = (0..cos.len() / k)
            .map(|j| {
                (j * k..(j + 1) * k)
                    .fold(j * k, |best, r| if cos[r] > cos[best] { r } else { best })
            })
            .collect();
        (best, c.labels[i])
    })
}

/// Row i's classes as weight rows, in class order, and the target's place among them,
/// from i and its cosines to every row.
type Columns<'a, T> = &'a dyn Fn(usize, &[T]) -> (Vec<usize>, usize);

/// [`margin`] with row i's classes the weight rows `columns(i, cosines to every row)`.
fn margin_over<T: Real>(c: &NormalizedCase, quirks: &Quirks, columns: Columns<'_, T>) -> Groups {
    let (n, rows, d) = (c.features.rows(), c.weights.rows(), c.features.cols());
    let s: T = t(c.scale);
    let (xh, xn, x_free) = normalize::<T>(&c.features, quirks.normalize_eps);
    let (wh, wn, w_free) = normalize::<T>(&c.weights, quirks.normalize_eps);
    let r: T = per_sample(c.reduction, n);
    let mut loss = T::zero();
    let mut gx = vec![vec![T::zero(); d]; n];
    let mut gw = vec![vec![T::zero(); d]; rows];
    let mut gs = T::zero();
    for i in 0..n {
        let every: Vec<T> = (0..rows)
            .map(|j| (0..d).fold(T::zero(), |a, k| a + xh[i][k] * wh[j][k]))
            .collect();
        let (cols, y) = columns(i, &every);
        let classes = cols.len();
        let cos: Vec<T> = cols.iter().map(|&r| every[r]).collect();
        let wh: Vec<&Vec<T>> = cols.iter().map(|&r| &wh[r]).collect();
        let wn: Vec<T> = cols.iter().map(|&r| wn[r]).collect();
        let w_free: Vec<bool> = cols.iter().map(|&r| w_free[r]).collect();
        // the target rule and its derivative, as autograd sees the formula
        let (cy, clamped) = match quirks.clamp_cos {
            Some(delta) => {
                let (lo, hi) = (t::<T>(-1.0 + delta), t::<T>(1.0 - delta));
                let v = cos[y].max(lo).min(hi);
                (v, v != cos[y])
            }
            None => (cos[y], false),
        };
        let through_clamp = if clamped { T::zero() } else { T::one() };
        let (g, slope) = match rule_of_row(c, i) {
            Margin::None => (cos[y], T::one()),
            Margin::Additive { m } => (cos[y] - t::<T>(m), T::one()),
            Margin::Angular { m, boundary, grad } => {
                let theta: T = cy.acos();
                let arc = (theta + t::<T>(m)).cos();
                let arc_slope =
                    through_clamp * (theta + t::<T>(m)).sin() / (T::one() - cy * cy).sqrt();
                let use_arc = match boundary {
                    Boundary::None => true,
                    Boundary::Thmm => cos[y] > (t::<T>(std::f64::consts::PI) - t::<T>(m)).cos(),
                    Boundary::Easy => cos[y] > T::zero(),
                };
                let (g, sl) = if use_arc {
                    (arc, arc_slope)
                } else if boundary == Boundary::Thmm {
                    (cos[y] - t::<T>(m) * t::<T>(m).sin(), T::one())
                } else {
                    (cos[y], T::one())
                };
                (
                    g,
                    if grad == MarginGrad::Detached {
                        T::one()
                    } else {
                        sl
                    },
                )
            }
            Margin::Combined { m1, m2, m3 } => {
                let a: T = t::<T>(m1) * cy.acos() + t::<T>(m2);
                (
                    a.cos() - t::<T>(m3),
                    through_clamp * t::<T>(m1) * a.sin() / (T::one() - cy * cy).sqrt(),
                )
            }
        };
        let z: Vec<T> = (0..classes)
            .map(|j| s * if j == y { g } else { cos[j] })
            .collect();
        let (row_loss, dz_row) = ce_row(&z, y, quirks);
        loss += r * row_loss;
        for j in 0..classes {
            let dz = r * dz_row[j];
            let dc = s * dz * if j == y { slope } else { T::one() };
            // ∂z/∂s = cos θ (normface's logits are s·cos θ)
            gs += dz * cos[j];
            // ∂c/∂x̂ = ŵ, ∂x̂/∂x = (I − x̂x̂ᵀ)/‖x‖ (I/ε where the clamp holds), and
            // symmetrically for w
            for k in 0..d {
                let along_x = if x_free[i] {
                    cos[j] * xh[i][k]
                } else {
                    T::zero()
                };
                let along_w = if w_free[j] {
                    cos[j] * wh[j][k]
                } else {
                    T::zero()
                };
                gx[i][k] += dc * (wh[j][k] - along_x) / xn[i];
                gw[cols[j]][k] += dc * (xh[i][k] - along_w) / wn[j];
            }
        }
    }
    margin_groups(loss, gx, gw, (c.loss == LossId::NormFace).then_some(gs))
}

/// The results of a loss of features and weights: its loss, ∂L/∂x (N×D), ∂L/∂w (C×D)
/// and, for normface, ∂L/∂s.
pub fn margin_groups<T: Real>(loss: T, gx: Vec<Vec<T>>, gw: Vec<Vec<T>>, gs: Option<T>) -> Groups {
    let shape = |m: &Vec<Vec<T>>| vec![m.len(), m.first().map_or(0, Vec::len)];
    let flat = |m: Vec<Vec<T>>| {
        m.into_iter()
            .flatten()
            .map(Real::as_f64)
            .collect::<Vec<f64>>()
    };
    let mut out = Groups::new();
    out.insert("outputs/loss".into(), (vec![], vec![loss.as_f64()]));
    out.insert("gradients/features".into(), (shape(&gx), flat(gx)));
    out.insert("gradients/weights".into(), (shape(&gw), flat(gw)));
    if let Some(gs) = gs {
        out.insert("gradients/scale".into(), (vec![], vec![gs.as_f64()]));
    }
    out
}

/// L-Softmax / A-Softmax as re-implementations write them: θ = acos(ŵ_y·x̂),
/// k = ⌊mθ/π⌋, ψ = (−1)^k cos(mθ) − 2k, the target logit ν_y‖x‖(λ cos θ + ψ)/(1 + λ), the
/// others w_j·x (ŵ_j·x for A-Softmax), log_softmax + NLL, and autograd's chain rule
/// (dψ/dcos θ = (−1)^k m sin(mθ)/sin θ through acos). With `quirks.normalize_eps`, as
/// pytorch-metric-learning's LargeMarginSoftmaxLoss and SphereFaceLoss compute it
/// ([`psi_normalized_with`]).
pub fn psi<T: Real>(c: &MultiplicativeCase, quirks: &Quirks) -> Groups {
    if let Some(eps) = quirks.normalize_eps {
        return psi_normalized_with::<T>(c, eps);
    }
    let (n, classes, d) = (c.features.rows(), c.weights.rows(), c.features.cols());
    let sphere = c.normalized_weights();
    let (m, lambda): (T, T) = (t(f64::from(c.margin)), t(c.lambda));
    let r: T = per_sample(c.reduction, n);
    let (x, w): (Vec<Vec<T>>, Vec<Vec<T>>) = (rows_in(&c.features), rows_in(&c.weights));
    let mut loss = T::zero();
    let mut gx = vec![vec![T::zero(); d]; n];
    let mut gw = vec![vec![T::zero(); d]; classes];
    for i in 0..n {
        let y = c.labels[i];
        let xn = norm(&x[i]);
        let wn: Vec<T> = w.iter().map(|row| norm(row)).collect();
        let cy = dot(&x[i], &w[y]) / (xn * wn[y]);
        let (h, dh) = target_h(m, lambda, cy, cy);
        let nu = |j: usize| if sphere { T::one() } else { wn[j] };
        let f: Vec<T> = (0..classes)
            .map(|j| {
                if j == y {
                    nu(y) * xn * h
                } else {
                    dot(&x[i], &w[j]) / if sphere { wn[j] } else { T::one() }
                }
            })
            .collect();
        let lse = logsumexp(&f, quirks);
        loss += r * (lse - f[y]);
        for j in 0..classes {
            let df = r * ((f[j] - lse).exp() - if j == y { T::one() } else { T::zero() });
            for e in 0..d {
                let (xh, wh) = (x[i][e] / xn, w[j][e] / wn[j]);
                if j == y {
                    gx[i][e] += df * nu(y) * (h * xh + dh * (wh - cy * xh));
                    gw[j][e] += df
                        * xn
                        * if sphere {
                            dh * (xh - cy * wh) / wn[j]
                        } else {
                            h * wh + dh * (xh - cy * wh)
                        };
                } else if sphere {
                    let cj = dot(&x[i], &w[j]) / (xn * wn[j]);
                    gx[i][e] += df * wh;
                    gw[j][e] += df * xn * (xh - cj * wh) / wn[j];
                } else {
                    gx[i][e] += df * w[j][e];
                    gw[j][e] += df * x[i][e];
                }
            }
        }
    }
    margin_groups(loss, gx, gw, None)
}

/// h(c) = (λc + ψ_m(θ))/(1 + λ) and its derivative as autograd takes it through
/// θ = acos(`through`): k = ⌊mθ/π⌋, ψ = (−1)^k cos(mθ) − 2k, dψ/dc = (−1)^k m sin(mθ)/sin θ.
fn target_h<T: Real>(m: T, lambda: T, c: T, through: T) -> (T, T) {
    let pi: T = t(std::f64::consts::PI);
    let theta = through.acos();
    let k = (m * theta / pi).floor().min(m - T::one());
    let sign = if k.to_u32().unwrap_or(0) % 2 == 1 {
        -T::one()
    } else {
        T::one()
    };
    let psi = sign * (m * theta).cos() - t::<T>(2.0) * k;
    let dpsi = sign * m * (m * theta).sin() / theta.sin();
    (
        (lambda * c + psi) / (T::one() + lambda),
        (lambda + dpsi) / (T::one() + lambda),
    )
}

/// L-Softmax / A-Softmax with cos θ from rows normalized as v/max(‖v‖, ε) and the logits
/// scaled by the norms themselves (`torch.norm`): f_ij = ν_j‖x_i‖H_ij with H = h(c) at the
/// target and c elsewhere, c = x·w/(max(‖x‖, ε)·max(‖w‖, ε)), differentiated as autograd
/// does (no projection through a clamped norm).
fn psi_normalized_with<T: Real>(c: &MultiplicativeCase, eps: f64) -> Groups {
    let (n, classes, d) = (c.features.rows(), c.weights.rows(), c.features.cols());
    let sphere = c.normalized_weights();
    let (m, lambda, e): (T, T, T) = (t(f64::from(c.margin)), t(c.lambda), t(eps));
    let r: T = per_sample(c.reduction, n);
    let (x, w): (Vec<Vec<T>>, Vec<Vec<T>>) = (rows_in(&c.features), rows_in(&c.weights));
    let wn: Vec<T> = w.iter().map(|row| norm(row)).collect();
    let mut loss = T::zero();
    let mut gx = vec![vec![T::zero(); d]; n];
    let mut gw = vec![vec![T::zero(); d]; classes];
    for i in 0..n {
        let y = c.labels[i];
        let xn = norm(&x[i]);
        let nx = xn.max(e);
        let cos: Vec<T> = (0..classes)
            .map(|j| dot(&x[i], &w[j]) / (nx * wn[j].max(e)))
            .collect();
        // (H, H′) per class
        let hs: Vec<(T, T)> = (0..classes)
            .map(|j| {
                if j != y {
                    return (cos[j], T::one());
                }
                // acos of the cosine clamped to [−1, 1], as PML's get_angles does
                target_h(m, lambda, cos[y], cos[y].max(-T::one()).min(T::one()))
            })
            .collect();
        let nu = |j: usize| if sphere { T::one() } else { wn[j] };
        let f: Vec<T> = (0..classes).map(|j| nu(j) * xn * hs[j].0).collect();
        let lse = logsumexp(&f, &Quirks::NONE);
        loss += r * (lse - f[y]);
        for j in 0..classes {
            let df = r * ((f[j] - lse).exp() - if j == y { T::one() } else { T::zero() });
            let (h, dh) = hs[j];
            let nw = wn[j].max(e);
            for k in 0..d {
                let mut dcx = w[j][k] / (nx * nw);
                if xn >= e {
                    dcx -= cos[j] * x[i][k] / (xn * xn);
                }
                let mut dcw = x[i][k] / (nx * nw);
                if wn[j] >= e {
                    dcw -= cos[j] * w[j][k] / (wn[j] * wn[j]);
                }
                gx[i][k] += df * nu(j) * (x[i][k] / xn * h + xn * dh * dcx);
                let own = if sphere {
                    T::zero()
                } else {
                    w[j][k] / wn[j] * xn * h
                };
                gw[j][k] += df * (own + nu(j) * xn * dh * dcw);
            }
        }
    }
    margin_groups(loss, gx, gw, None)
}

/// PyTorch-style softmax cross-entropy: log_softmax, NLL, softmax − onehot; with `quirks`.
pub fn softmax_ce<T: Real>(
    logits: &Matrix<f64>,
    labels: &[usize],
    mean: bool,
    quirks: &Quirks,
) -> Groups {
    let (n, cols) = (logits.rows(), logits.cols());
    let r: T = per_sample(
        if mean {
            Reduction::Mean
        } else {
            Reduction::Sum
        },
        n,
    );
    let mut loss = T::zero();
    let mut grad = Vec::with_capacity(n * cols);
    for (row, &y) in logits.iter_rows().zip(labels) {
        let z: Vec<T> = row.iter().map(|&v| t::<T>(v)).collect();
        let (l, g) = ce_row(&z, y, quirks);
        loss += r * l;
        grad.extend(g.into_iter().map(|v| (r * v).as_f64()));
    }
    let mut out = Groups::new();
    out.insert("outputs/loss".into(), (vec![], vec![loss.as_f64()]));
    out.insert("gradients/logits".into(), (vec![n, cols], grad));
    out
}

/// How an implementation of `softmax_ce`'s options departs from SPEC §5 (PyTorch's
/// `cross_entropy`); the default is PyTorch's own placement.
#[derive(Clone, Copy, Debug, Default)]
pub struct OptionQuirks {
    /// ε spread over the C − 1 other classes.
    pub smoothing_over_others: bool,
    /// w_y times the whole smoothed term.
    pub weight_after_smoothing: bool,
    /// `mean` divides by N.
    pub mean_over_rows: bool,
    /// `mean` divides by the number of rows not ignored.
    pub mean_over_kept_rows: bool,
    /// Ignored rows keep their smoothing term (PyTorch's #73205).
    pub smoothing_on_ignored_rows: bool,
    /// Soft targets' `mean` divides by Σ_i Σ_c a_ic instead of N.
    pub soft_mean_over_weights: bool,
}

/// `softmax_ce` with SPEC §5's options as `F.cross_entropy` writes it: log_softmax = z − lse,
/// the per-class coefficients a (written out here from the options), l = −Σ_c a_c·lsm_c,
/// ∂l/∂z = softmax·Σa − a, `mean` over Σ w_y of the rows not ignored (labels) or N (soft).
pub fn softmax_ce_options<T: Real>(
    case: &lossref::spec::SoftmaxCeCase,
    quirks: &OptionQuirks,
) -> Groups {
    let o = &case.options;
    let (n, cols) = (case.logits.rows(), case.logits.cols());
    let eps = t::<T>(o.label_smoothing);
    let w = |c: usize| t::<T>(o.weight.as_ref().map_or(1.0, |w| w[c]));
    let ignored = |i: usize| o.ignored_rows.get(i).copied().unwrap_or(false);
    let mut total_loss = T::zero();
    let mut grad = Vec::with_capacity(n * cols);
    let mut divisor = T::zero();
    for i in 0..n {
        let z: Vec<T> = case.logits.row(i).iter().map(|&v| t::<T>(v)).collect();
        let lse = logsumexp(&z, &Quirks::NONE);
        let a: Vec<T> = match &o.targets {
            Some(tg) => (0..cols)
                .map(|c| {
                    w(c) * ((T::one() - eps) * t::<T>(*tg.get(i, c)) + eps / t::<T>(cols as f64))
                })
                .collect(),
            None if ignored(i) && quirks.smoothing_on_ignored_rows => (0..cols)
                .map(|c| w(c) * eps / t::<T>(cols as f64))
                .collect(),
            None if ignored(i) => vec![T::zero(); cols],
            None => {
                let y = case.labels[i];
                divisor += if quirks.mean_over_rows {
                    T::one()
                } else {
                    w(y)
                };
                let share = if quirks.smoothing_over_others {
                    eps / t::<T>((cols - 1) as f64)
                } else {
                    eps / t::<T>(cols as f64)
                };
                (0..cols)
                    .map(|c| {
                        let target = if c == y { T::one() - eps } else { T::zero() };
                        let off = if quirks.smoothing_over_others && c == y {
                            T::zero()
                        } else {
                            share
                        };
                        if quirks.weight_after_smoothing {
                            w(y) * (target + off)
                        } else {
                            w(y) * target + w(c) * off
                        }
                    })
                    .collect()
            }
        };
        if ignored(i) && quirks.mean_over_rows {
            divisor += T::one();
        }
        let total = reduce_sum(&a);
        if o.targets.is_some() && quirks.soft_mean_over_weights {
            divisor += total;
        }
        for (c, &ac) in a.iter().enumerate() {
            if ac != T::zero() {
                total_loss += -ac * (z[c] - lse);
            }
        }
        grad.extend((0..cols).map(|c| total * (z[c] - lse).exp() - a[c]));
    }
    let r = match (case.reduction, &o.targets) {
        (Reduction::Sum, _) => T::one(),
        (Reduction::Mean, Some(_)) if quirks.soft_mean_over_weights => T::one() / divisor,
        (Reduction::Mean, Some(_)) => T::one() / t::<T>(n as f64),
        (Reduction::Mean, None) => T::one() / divisor,
    };
    let mut out = Groups::new();
    out.insert(
        "outputs/loss".into(),
        (vec![], vec![(total_loss * r).as_f64()]),
    );
    out.insert(
        "gradients/logits".into(),
        (
            vec![n, cols],
            grad.into_iter().map(|g| (g * r).as_f64()).collect(),
        ),
    );
    out
}

/// `focal` and `poly1` as written from their papers on a softmax: p = e^{z − lse},
/// lsm_y = z_y − lse, r = 1 − p_y; focal l = −α_y·r^γ·lsm_y with the slope
/// k = α_y·(r^γ − γ·r^(γ−1)·p_y·lsm_y) (the second term 0 where r rounds to 0), poly1
/// l = −lsm_y + ε·r with k = 1 + ε·p_y; ∂l/∂z = k·(p − onehot). With `per_class_mean`,
/// kornia's N×C tensor averaged over N·C.
pub fn focal<T: Real>(case: &lossref::spec::FocalCase, per_class_mean: bool) -> Groups {
    use lossref::spec::TargetRule;
    let (n, cols) = (case.logits.rows(), case.logits.cols());
    let mut r_n = per_sample::<T>(case.reduction, n);
    if per_class_mean && case.reduction == Reduction::Mean {
        r_n /= t::<T>(cols as f64);
    }
    let mut loss = T::zero();
    let mut grad = Vec::with_capacity(n * cols);
    for (i, &y) in case.labels.iter().enumerate() {
        let z: Vec<T> = case.logits.row(i).iter().map(|&v| t::<T>(v)).collect();
        let lse = logsumexp(&z, &Quirks::NONE);
        let p: Vec<T> = z.iter().map(|&v| (v - lse).exp()).collect();
        let lsm = z[y] - lse;
        let r = T::one() - p[y];
        let (l, k) = match &case.rule {
            TargetRule::Focal { gamma, alpha } => {
                let a = t::<T>(alpha.as_ref().map_or(1.0, |a| a[y]));
                let g = t::<T>(*gamma);
                let rg = r.powf(g);
                let slope = if r == T::zero() || g == T::zero() {
                    T::zero()
                } else {
                    g * r.powf(g - T::one()) * p[y] * lsm
                };
                (-a * rg * lsm, a * (rg - slope))
            }
            TargetRule::Poly1 { epsilon } => {
                let e = t::<T>(*epsilon);
                (-lsm + e * r, T::one() + e * p[y])
            }
        };
        loss += r_n * l;
        grad.extend((0..cols).map(|j| {
            let onehot = if j == y { T::one() } else { T::zero() };
            (r_n * k * (p[j] - onehot)).as_f64()
        }));
    }
    let mut out = Groups::new();
    out.insert("outputs/loss".into(), (vec![], vec![loss.as_f64()]));
    out.insert("gradients/logits".into(), (vec![n, cols], grad));
    out
}

/// What real code does instead of SPEC §5 for the adaptive margins; the default is the
/// careful textbook of the official code.
#[derive(Clone, Copy, Debug, Default)]
pub struct AdaptiveQuirks {
    /// CurricularFace's mask compared with the final target logit, not cos(θ + m).
    pub mask_against_target: bool,
    /// CurricularFace's hard negatives weighted by the t before the step.
    pub old_t: bool,
    /// AdaFace's norms not detached: the gradient reaches ‖x‖ through ẑ.
    pub norms_not_detached: bool,
    /// AdaCos's median of an even batch averaged (numpy's `np.median`).
    pub averaged_median: bool,
    /// AdaCos's logits at the scale before the step.
    pub old_scale: bool,
}

/// `curricularface`, `adaface`, `magface` and `adacos` (SPEC §5) as their official code
/// writes them (HuangYG123/CurricularFace, mk-minchul/AdaFace, IrvingMeng/MagFace, and
/// 4uiiurz1's AdaCos), in T: cos θ = F.linear(normalize(x), normalize(W)), the state under
/// `torch.no_grad()`, log_softmax + NLL, and autograd's chain rule through each formula.
pub fn adaptive<T: Real>(c: &lossref::spec::AdaptiveCase, q: &AdaptiveQuirks) -> Groups {
    use lossref::spec::AdaptiveRule;
    let pi: T = t::<T>(std::f64::consts::PI);
    let (n, classes, d) = (c.features.rows(), c.weights.rows(), c.features.cols());
    let (xh, xn, _) = normalize::<T>(&c.features, None);
    let (wh, wn, _) = normalize::<T>(&c.weights, None);
    let r: T = per_sample(c.reduction, n);
    let s: T = t::<T>(c.scale);
    let cos: Vec<Vec<T>> = (0..n)
        .map(|i| (0..classes).map(|j| dot(&xh[i], &wh[j])).collect())
        .collect();
    let target = |i: usize| cos[i][c.labels[i]];
    let mut state: Vec<(&str, T)> = Vec::new();
    let (mut t_next, mut sigma, mut s_new) = (T::zero(), T::zero(), T::zero());
    let mut zhat: Vec<(T, bool)> = Vec::new();
    match c.rule {
        AdaptiveRule::CurricularFace {
            momentum, t: t0, ..
        } => {
            let mean = reduce_sum(&(0..n).map(target).collect::<Vec<T>>()) / t::<T>(n as f64);
            t_next = t::<T>(momentum) * mean + (T::one() - t::<T>(momentum)) * t::<T>(t0);
            state.push(("t_next", t_next));
        }
        AdaptiveRule::AdaFace {
            h,
            t_alpha,
            eps,
            batch_mean,
            batch_std,
            ..
        } => {
            let safe: Vec<T> = xn
                .iter()
                .map(|&v| v.max(t::<T>(0.001)).min(t::<T>(100.0)))
                .collect();
            let mean = reduce_sum(&safe) / t::<T>(n as f64);
            let dev: Vec<T> = safe.iter().map(|&v| (v - mean) * (v - mean)).collect();
            let std = (reduce_sum(&dev) / t::<T>((n - 1) as f64)).sqrt();
            let ta: T = t::<T>(t_alpha);
            let mu = mean * ta + (T::one() - ta) * t::<T>(batch_mean);
            sigma = std * ta + (T::one() - ta) * t::<T>(batch_std);
            for &v in &safe {
                let raw = (v - mu) / (sigma + t::<T>(eps)) * t::<T>(h);
                let free =
                    raw > -T::one() && raw < T::one() && v > t::<T>(0.001) && v < t::<T>(100.0);
                zhat.push((raw.max(-T::one()).min(T::one()), free));
            }
            state.push(("batch_mean_next", mu));
            state.push(("batch_std_next", sigma));
        }
        AdaptiveRule::MagFace { .. } => {}
        AdaptiveRule::AdaCos => {
            let mut terms = Vec::new();
            for (row, &y) in cos.iter().zip(&c.labels) {
                for (_, &v) in row.iter().enumerate().filter(|&(j, _)| j != y) {
                    terms.push((s * v).exp());
                }
            }
            let b = reduce_sum(&terms) / t::<T>(n as f64);
            let lim = T::one() - t::<T>(1e-7);
            let mut theta: Vec<T> = (0..n)
                .map(|i| target(i).max(-lim).min(lim).acos())
                .collect();
            theta.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let k = (n - 1) / 2;
            let med = if q.averaged_median && n % 2 == 0 {
                (theta[k] + theta[k + 1]) / t::<T>(2.0)
            } else {
                theta[k]
            };
            s_new = b.ln() / med.min(pi / t::<T>(4.0)).cos();
            state.push(("scale_next", s_new));
        }
    }
    let mut loss = T::zero();
    let mut gx = vec![vec![T::zero(); d]; n];
    let mut gw = vec![vec![T::zero(); d]; classes];
    for i in 0..n {
        let y = c.labels[i];
        let cy = target(i);
        let mut z: Vec<T> = cos[i].iter().map(|&v| s * v).collect();
        let mut slope: Vec<T> = vec![s; classes];
        let (mut target_norm, mut own, mut own_norm) = (T::zero(), T::zero(), T::zero());
        match c.rule {
            AdaptiveRule::CurricularFace { m, t: t0, .. } => {
                let (cm, sm): (T, T) = (t::<T>(m).cos(), t::<T>(m).sin());
                let sin = (T::one() - cy * cy).sqrt();
                let ctm = cy * cm - sin * sm;
                let on_margin = cy > (pi - t::<T>(m)).cos();
                let (fin, fin_slope) = if on_margin {
                    (ctm, cm + cy * sm / sin)
                } else {
                    (cy - (pi - t::<T>(m)).sin() * t::<T>(m), T::one())
                };
                let threshold = if q.mask_against_target { fin } else { ctm };
                let weight = if q.old_t { t::<T>(t0) } else { t_next };
                for j in 0..classes {
                    let v = cos[i][j];
                    if j == y {
                        z[j] = s * fin;
                        slope[j] = s * fin_slope;
                    } else if v > threshold {
                        z[j] = s * v * (weight + v);
                        slope[j] = s * (weight + v + v);
                    }
                }
            }
            AdaptiveRule::AdaFace { m, eps, h, .. } => {
                let (lo, hi) = (t::<T>(-1.0) + t::<T>(eps), T::one() - t::<T>(eps));
                let (zh, z_free) = zhat[i];
                let m: T = t::<T>(m);
                for j in 0..classes {
                    let v = cos[i][j];
                    let cc = v.max(lo).min(hi);
                    let free = v > lo && v < hi;
                    if j != y {
                        z[j] = s * cc;
                        slope[j] = if free { s } else { T::zero() };
                        continue;
                    }
                    let theta = cc.acos();
                    let phi = theta - m * zh;
                    let inner = phi > t::<T>(eps) && phi < pi - t::<T>(eps);
                    let phi_c = phi.max(t::<T>(eps)).min(pi - t::<T>(eps));
                    z[j] = s * (phi_c.cos() - (m + m * zh));
                    slope[j] = if free && inner {
                        s * phi.sin() / (T::one() - cc * cc).sqrt()
                    } else {
                        T::zero()
                    };
                    if q.norms_not_detached && z_free {
                        let dz = if inner { m * phi.sin() - m } else { -m };
                        target_norm = s * dz * t::<T>(h) / (sigma + t::<T>(eps));
                    }
                }
            }
            AdaptiveRule::MagFace {
                l_a,
                u_a,
                l_m,
                u_m,
                lambda_g,
                boundary,
            } => {
                let (la, ua): (T, T) = (t::<T>(l_a), t::<T>(u_a));
                let a = xn[i].max(la).min(ua);
                let free = xn[i] > la && xn[i] < ua;
                let k = (t::<T>(u_m) - t::<T>(l_m)) / (ua - la);
                let m = k * (a - la) + t::<T>(l_m);
                let sin = (T::one() - cy * cy).sqrt();
                let ctm = cy * m.cos() - sin * m.sin();
                let on_margin = match boundary {
                    Boundary::None => true,
                    Boundary::Easy => cy > T::zero(),
                    Boundary::Thmm => cy > (pi - m).cos(),
                };
                let (g, sl, dm) = if on_margin {
                    (
                        ctm,
                        m.cos() + cy * m.sin() / sin,
                        -(cy * m.sin() + sin * m.cos()),
                    )
                } else if boundary == Boundary::Thmm {
                    (
                        cy - (pi - m).sin() * m,
                        T::one(),
                        -((pi - m).sin() - m * (pi - m).cos()),
                    )
                } else {
                    (cy, T::one(), T::zero())
                };
                z[y] = s * g;
                slope[y] = s * sl;
                let lam: T = t::<T>(lambda_g);
                own = lam * (a / (ua * ua) + T::one() / a);
                if free {
                    target_norm = s * dm * k;
                    own_norm = lam * (T::one() / (ua * ua) - T::one() / (a * a));
                }
            }
            AdaptiveRule::AdaCos => {
                let scale = if q.old_scale { s } else { s_new };
                for j in 0..classes {
                    z[j] = scale * cos[i][j];
                    slope[j] = scale;
                }
            }
        }
        let (row_loss, dz) = ce_row(&z, y, &Quirks::NONE);
        loss += r * row_loss + r * own;
        for j in 0..classes {
            let dc = r * dz[j] * slope[j];
            let v = cos[i][j];
            for k in 0..d {
                gx[i][k] += dc * (wh[j][k] - v * xh[i][k]) / xn[i];
                gw[j][k] += dc * (xh[i][k] - v * wh[j][k]) / wn[j];
            }
        }
        let radial = r * (dz[y] * target_norm + own_norm);
        for k in 0..d {
            gx[i][k] += radial * xh[i][k];
        }
    }
    let mut out = margin_groups(loss, gx, gw, None);
    for (name, v) in state {
        out.insert(format!("outputs/{name}"), (vec![], vec![v.as_f64()]));
    }
    out
}
