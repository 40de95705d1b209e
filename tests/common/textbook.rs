//! Losses written the way a PyTorch user writes them, differentiated the way autograd does,
//! in f32 or f64, independently of lossref's code: the calibration of the tolerance model
//! (`certified_core::textbook_calibration`) and, with [`Quirks`], the implementations that
//! follow a convention of real code instead of SPEC §1 (SPEC §4, "Conventions the
//! diagnosis knows"), whose diagnoses `cli::check` tests.

use lossref::check::Groups;
use lossref::fast::real::Real;
use lossref::matrix::Matrix;
use lossref::spec::{Boundary, LossId, Margin, MarginGrad, NormalizedCase, Reduction};

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
}

impl Quirks {
    /// None: the careful textbook.
    pub const NONE: Quirks = Quirks {
        normalize_eps: None,
        clamp_cos: None,
        log_floor: None,
        softplus_threshold: None,
    };
}

/// One row's cross-entropy from its logits and its gradient ∂CE/∂z, in T: log_softmax then
/// NLL (and softmax − onehot), or as `quirks` says.
fn ce_row<T: Real>(z: &[T], y: usize, quirks: &Quirks) -> (T, Vec<T>) {
    let top = z.iter().fold(T::neg_infinity(), |a, &v| a.max(v));
    let sum = z.iter().fold(T::zero(), |a, &v| a + (v - top).exp());
    let lse = top + sum.ln();
    let onehot = |j: usize| if j == y { T::one() } else { T::zero() };
    if let Some(threshold) = quirks.softplus_threshold {
        // a = lse_{j≠y}(z_j − z_y); CE = softplus(a), ∂CE/∂a = σ(a) (1 above the threshold)
        let others: Vec<T> = (0..z.len())
            .filter(|&j| j != y)
            .map(|j| z[j] - z[y])
            .collect();
        let m = others.iter().fold(T::neg_infinity(), |a, &v| a.max(v));
        let q_sum = others.iter().fold(T::zero(), |a, &v| a + (v - m).exp());
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
    let grad = (0..z.len())
        .map(|j| (z[j] - lse).exp() - onehot(j))
        .collect();
    (-log_py, grad)
}

/// Rows of `m` in T with their normalization v/n, n = ‖v‖ or max(‖v‖, ε): (v̂, n, whether
/// n = ‖v‖).
fn normalize<T: Real>(m: &Matrix<f64>, eps: Option<f64>) -> (Vec<Vec<T>>, Vec<T>, Vec<bool>) {
    let rows: Vec<Vec<T>> = m
        .iter_rows()
        .map(|r| r.iter().map(|&v| t::<T>(v)).collect())
        .collect();
    let mut unit = Vec::new();
    let mut norms = Vec::new();
    let mut free = Vec::new();
    for r in &rows {
        let norm = r.iter().fold(T::zero(), |a, &v| a + v * v).sqrt();
        let n = match eps {
            Some(e) if norm < t(e) => t(e),
            _ => norm,
        };
        unit.push(r.iter().map(|&v| v / n).collect());
        norms.push(n);
        free.push(n == norm);
    }
    (unit, norms, free)
}

/// A PyTorch-style normalized-margin loss in dtype T: x̂ = x/‖x‖, ŵ = w/‖w‖, c = x̂·ŵ, the
/// target logit by the rule (acos for the angular ones), z = s·c, loss = NLL(log_softmax(z))
/// reduced; gradients by the chain rule exactly as autograd composes it; with `quirks`.
pub fn margin<T: Real>(c: &NormalizedCase, quirks: &Quirks) -> Groups {
    let (n, classes, d) = (c.features.rows(), c.weights.rows(), c.features.cols());
    let s: T = t(c.scale);
    let (xh, xn, x_free) = normalize::<T>(&c.features, quirks.normalize_eps);
    let (wh, wn, w_free) = normalize::<T>(&c.weights, quirks.normalize_eps);
    let r: T = if c.reduction == Reduction::Mean {
        t::<T>(1.0) / t::<T>(n as f64)
    } else {
        T::one()
    };
    let mut loss = T::zero();
    let mut gx = vec![vec![T::zero(); d]; n];
    let mut gw = vec![vec![T::zero(); d]; classes];
    let mut gs = T::zero();
    for i in 0..n {
        let y = c.labels[i];
        let cos: Vec<T> = (0..classes)
            .map(|j| (0..d).fold(T::zero(), |a, k| a + xh[i][k] * wh[j][k]))
            .collect();
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
        let (g, slope) = match c.margin {
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
                gw[j][k] += dc * (xh[i][k] - along_w) / wn[j];
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

/// PyTorch-style softmax cross-entropy: log_softmax, NLL, softmax − onehot; with `quirks`.
pub fn softmax_ce<T: Real>(
    logits: &Matrix<f64>,
    labels: &[usize],
    mean: bool,
    quirks: &Quirks,
) -> Groups {
    let (n, cols) = (logits.rows(), logits.cols());
    let r: T = if mean {
        t::<T>(1.0) / t::<T>(n as f64)
    } else {
        T::one()
    };
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
