//! The tolerance model of `lossref check` (SPEC §4): how far an implementation's value may be
//! from the exact one, per value, per dtype, and why.
//!
//! **The model.** A value v computed in a dtype with p significand bits is judged in ulps of
//! its *error scale* S(v) ≥ |v| (ulp(S) = 2^(⌊log₂ S⌋ − p + 1), floored at the dtype's
//! smallest subnormal):
//!
//!   err(v) = |got − v| / ulp(S(v)),   pass ⇔ err(v) ≤ F · g(n),
//!
//! * S(v) is the magnitude of what the value is computed from, times the condition number
//!   the mathematics imposes on any implementation of the usual shape: a softmax's exp of
//!   z − max (its argument carries a relative error, so p carries |z − max|·u), a sum's
//!   summands (a sum that cancels has an exact value far below what it sums, and no
//!   floating-point sum resolves it better), a normalized logit s·cos θ (an absolute error
//!   of a few ulps of s, since cos θ comes out of a dot product of unit vectors), and acos's
//!   1/sin θ for the angular margins (arcface, combined), which go through θ = acos(cos θ).
//!   These are the measures of `lossref::precision`, which the fast paths meet; each loss's
//!   is stated in [`scales`].
//! * F is the precision table's entry for that loss, output and dtype (the fast path's
//!   measured worst case with margin) times [`IMPLEMENTATION_FACTOR`], room for a
//!   straightforward implementation;
//! * g(n) = max(1, √(n/16)) grows with the longest sum n the value goes through (D, C or N):
//!   rounding errors of n terms accumulate like √n for ordinary summation orders, and the
//!   table was measured at n ≤ 16.
//!
//! A value that fails is further classified: **ill-conditioned** when its condition number
//! (S(v)/|v| beyond the magnitude of the value itself, or acos's 1/sin θ) exceeds
//! [`ILL_CONDITIONED`], so that small implementation errors are magnified by the
//! mathematics, and **unstable** when the error is within the tolerance of a named textbook
//! formula that is known to lose accuracy on that case (for example lse(z) − z_y, which
//! cancels when the target dominates): that implementation is "right in absolute terms,
//! unstable here".

use crate::answer::Answer;
use crate::corpus::generate::Dtype;
use crate::precision::lookup;
use crate::spec::{Case, Margin, MarginGrad, Reduction};

/// Room over the fast path's measured worst case for a straightforward implementation.
pub const IMPLEMENTATION_FACTOR: f64 = 4.0;

/// A condition number above this marks a case as ill-conditioned in the reports.
pub const ILL_CONDITIONED: f64 = 1e4;

/// The judgement data of one value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// S(v): errors are measured in ulps of it.
    pub scale: f64,
    /// The condition number folded into S(v) (1 when none).
    pub kappa: f64,
    /// The longest sum the value goes through.
    pub terms: usize,
    /// A named formula that is known to lose accuracy here, with the scale it achieves.
    pub unstable: Option<(f64, &'static str)>,
}

impl Scale {
    fn plain(scale: f64, terms: usize) -> Scale {
        Scale {
            scale,
            kappa: 1.0,
            terms,
            unstable: None,
        }
    }
}

/// The allowed error of a value group, in ulps of its scale, before the summation factor.
pub fn allowed_ulps(function: &str, dtype: Dtype) -> f64 {
    let d = if dtype == Dtype::Float32 {
        "f32"
    } else {
        "f64"
    };
    lookup(function, d).map_or(8.0, |e| e.max_ulps) * IMPLEMENTATION_FACTOR
}

/// g(n) = max(1, √(n/16)).
pub fn summation_factor(terms: usize) -> f64 {
    (terms as f64 / 16.0).sqrt().max(1.0)
}

/// The table's name for a loss's output group (`softmax_ce.loss`, `arcface.grad`, …).
pub fn table_function(case: &Case, section: &str, name: &str) -> String {
    let loss = match case {
        Case::Normalized(c) => match c.margin {
            Margin::None => "normface",
            Margin::Additive { .. } => "cosface",
            Margin::Angular { .. } => "arcface",
            Margin::Combined { .. } => "combined",
        },
        _ => case.loss().as_str(),
    };
    match (loss, section, name) {
        ("softmax", _, "probabilities") => "softmax".into(),
        ("softmax", _, "log_probabilities") => "log_softmax".into(),
        (_, "outputs", "loss") => format!("{loss}.loss"),
        ("normface", "gradients", "scale") => "normface.grad_scale".into(),
        ("center", "outputs", "centers_next") => "center.centers_next".into(),
        (_, "gradients", _) => format!("{loss}.grad"),
        _ => format!("{loss}.{name}"),
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

fn softmax_row(z: &[f64], t: f64) -> Vec<f64> {
    let top = z.iter().copied().fold(f64::MIN, f64::max);
    let e: Vec<f64> = z.iter().map(|v| ((v - top) / t).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

/// log-softmax of `z/t`, computed without underflow: (z_j − max)/t − ln Σ e^{(z_k − max)/t}.
fn log_softmax_row(z: &[f64], t: f64) -> Vec<f64> {
    let top = z.iter().copied().fold(f64::MIN, f64::max);
    let log_sum = z.iter().map(|v| ((v - top) / t).exp()).sum::<f64>().ln();
    z.iter().map(|v| (v - top) / t - log_sum).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The scales of every value of `case`, keyed `outputs/NAME` or `gradients/NAME`, in the
/// order of the answer's values. `reference` holds the exact values rounded to binary64.
pub fn scales(case: &Case, reference: &Answer<f64>) -> Vec<(String, Vec<Scale>)> {
    let value = |section: &str, name: &str| -> Vec<f64> {
        let t = if section == "outputs" {
            reference.output(name)
        } else {
            reference.gradient(name)
        };
        t.map(|t| t.values().to_vec()).unwrap_or_default()
    };
    let mut out = Vec::new();
    match case {
        Case::Softmax(c) => {
            let (t, cols) = (c.temperature, c.logits.cols());
            let mut probs = Vec::new();
            let mut logs = Vec::new();
            for row in c.logits.iter_rows() {
                let top = row.iter().copied().fold(f64::MIN, f64::max);
                let p = softmax_row(row, t);
                let args: Vec<f64> = row.iter().map(|z| (z - top).abs() / t).collect();
                let log_sum = row.iter().map(|z| ((z - top) / t).exp()).sum::<f64>().ln();
                // the error the exp arguments put into log Σ
                let spread: f64 = p.iter().zip(&args).map(|(pj, a)| pj * a).sum();
                for (pj, arg) in p.iter().zip(&args) {
                    probs.push(Scale::plain(pj * (1.0 + arg + spread), cols));
                    let mut lp = Scale::plain(arg + log_sum + spread, cols);
                    lp.unstable = Some((arg + log_sum + 1.0, "log(Σ e^{z−max}) without log1p loses the relative accuracy of a log-probability near 0"));
                    logs.push(lp);
                }
            }
            out.push(("outputs/probabilities".into(), probs));
            out.push(("outputs/log_probabilities".into(), logs));
        }
        Case::SoftmaxCe(c) => {
            let (n, cols) = (c.labels.len(), c.logits.cols());
            let r = c.reduction.weight(n);
            let mut loss_scale = 0.0;
            let mut naive = 0.0;
            let mut grads = Vec::new();
            for (row, &y) in c.logits.iter_rows().zip(&c.labels) {
                let top = row.iter().copied().fold(f64::MIN, f64::max);
                let p = softmax_row(row, 1.0);
                let lead = (top - row[y]).abs();
                // Σ_{j≠y} p_j·(1 + |z_j − max| + |z_y − max|): the exp arguments' errors
                let spread: f64 = (0..cols)
                    .filter(|&j| j != y)
                    .map(|j| p[j] * (1.0 + (row[j] - top).abs() + lead))
                    .sum();
                loss_scale += r * (-log_softmax_row(row, 1.0)[y] + spread + lead);
                naive += r * (row[y].abs().max(top.abs()) + 1.0);
                for j in 0..cols {
                    if j == y {
                        let mut sc = Scale::plain((r * spread).max(f64::MIN_POSITIVE), cols);
                        sc.unstable = Some((
                            r,
                            "softmax(z) − onehot: p_y − 1 cancels when the target dominates",
                        ));
                        grads.push(sc);
                    } else {
                        grads.push(Scale::plain(
                            (r * p[j] * (1.0 + (row[j] - top).abs())).max(f64::MIN_POSITIVE),
                            cols,
                        ));
                    }
                }
            }
            let mut loss = Scale::plain(loss_scale.max(value("outputs", "loss")[0].abs()), cols);
            loss.unstable = Some((naive, "logsumexp(z) − z_y cancels when the target dominates (softplus(lse_{j≠y}(z_j − z_y)) does not)"));
            out.push(("outputs/loss".into(), vec![loss]));
            out.push(("gradients/logits".into(), grads));
        }
        Case::Distill(c) => {
            let (n, cols) = (c.labels.len(), c.student.cols());
            let r = c.reduction.weight(n);
            let (t, al) = (c.temperature, c.alpha);
            let mut loss_scale = 0.0;
            let mut grads = Vec::new();
            for i in 0..n {
                let (qs, qt, p) = (
                    softmax_row(c.student.row(i), t),
                    softmax_row(c.teacher.row(i), t),
                    softmax_row(c.student.row(i), 1.0),
                );
                let ts = c.student.row(i).iter().copied().fold(f64::MIN, f64::max);
                let tt = c.teacher.row(i).iter().copied().fold(f64::MIN, f64::max);
                let lqs = log_softmax_row(c.student.row(i), t);
                let lqt = log_softmax_row(c.teacher.row(i), t);
                let soft: f64 = (0..cols)
                    .map(|j| {
                        qt[j]
                            * (lqt[j].abs()
                                + lqs[j].abs()
                                + ((c.student.row(i)[j] - ts).abs()
                                    + (c.teacher.row(i)[j] - tt).abs())
                                    / t)
                    })
                    .sum();
                let y = c.labels[i];
                let ce = log_softmax_row(c.student.row(i), 1.0)[y].abs();
                loss_scale += r * (al * t * t * soft + (1.0 - al) * (ce + 1.0));
                for j in 0..cols {
                    let arg =
                        ((c.student.row(i)[j] - ts).abs() + (c.teacher.row(i)[j] - tt).abs()) / t;
                    grads.push(Scale::plain(
                        r * (al * t * (qs[j] + qt[j]) * (1.0 + arg)
                            + (1.0 - al) * (p[j] + f64::from(u8::from(j == y)))),
                        cols,
                    ));
                }
            }
            out.push(("outputs/loss".into(), vec![Scale::plain(loss_scale, cols)]));
            out.push(("gradients/student_logits".into(), grads));
        }
        Case::Center(c) => {
            let (n, d) = (c.labels.len(), c.features.cols());
            let r = c.reduction.weight(n);
            let mut sums = vec![0.0; c.centers.rows() * d];
            let mut counts = vec![0usize; c.centers.rows()];
            let mut loss_scale = 0.0;
            let mut gx = Vec::new();
            for (i, &y) in c.labels.iter().enumerate() {
                counts[y] += 1;
                for k in 0..d {
                    let diff = (c.features.get(i, k) - c.centers.get(y, k)).abs();
                    loss_scale += r * 0.5 * diff * diff;
                    sums[y * d + k] += diff;
                    gx.push(Scale::plain(r * diff, n));
                }
            }
            let gc = sums.iter().map(|s| Scale::plain(r * s, n)).collect();
            let next = (0..c.centers.rows() * d)
                .map(|e| {
                    Scale::plain(
                        c.centers.as_slice()[e].abs()
                            + c.alpha * sums[e] / (1.0 + counts[e / d] as f64),
                        n,
                    )
                })
                .collect();
            out.push(("outputs/loss".into(), vec![Scale::plain(loss_scale, n * d)]));
            out.push(("outputs/centers_next".into(), next));
            out.push(("gradients/features".into(), gx));
            out.push(("gradients/centers".into(), gc));
        }
        Case::Multiplicative(c) => {
            let (n, classes, d) = (c.labels.len(), c.weights.rows(), c.features.cols());
            let r = c.reduction.weight(n);
            let m = f64::from(c.margin);
            let slope_bound = (c.lambda + m * m) / (1.0 + c.lambda);
            let nu = |j: usize| {
                if c.normalized_weights() {
                    1.0
                } else {
                    norm(c.weights.row(j))
                }
            };
            let mut rows = vec![0.0; n];
            let mut cols = vec![0.0; classes];
            let mut loss_terms = 0.0;
            for (i, row_scale) in rows.iter_mut().enumerate() {
                let x = c.features.row(i);
                let y = c.labels[i];
                let f: Vec<f64> = (0..classes)
                    .map(|j| {
                        let w = c.weights.row(j);
                        let cos = dot(x, w) / (norm(x) * norm(w)).max(f64::MIN_POSITIVE);
                        let h = if j == y {
                            let theta = cos.clamp(-1.0, 1.0).acos();
                            let k = (theta * m / std::f64::consts::PI).floor().min(m - 1.0);
                            let psi = if k % 2.0 == 1.0 {
                                -(m * theta).cos()
                            } else {
                                (m * theta).cos()
                            } - 2.0 * k;
                            (c.lambda * cos + psi) / (1.0 + c.lambda)
                        } else {
                            cos
                        };
                        nu(j) * norm(x) * h
                    })
                    .collect();
                let phi = f
                    .iter()
                    .fold(nu(y) * norm(x) * slope_bound, |a, v| a.max(v.abs()));
                loss_terms += r * phi;
                let p = softmax_row(&f, 1.0);
                let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
                for j in 0..classes {
                    let (gij, slope) = if j == y {
                        (r * rest, 1.0 + slope_bound)
                    } else {
                        (r * p[j], 1.0)
                    };
                    let g = gij * slope * phi.max(1.0);
                    *row_scale += g * nu(j);
                    cols[j] += g * if c.normalized_weights() {
                        norm(x) / norm(c.weights.row(j)).max(f64::MIN_POSITIVE)
                    } else {
                        norm(x)
                    };
                }
            }
            let loss = value("outputs", "loss")[0].abs().max(loss_terms);
            out.push((
                "outputs/loss".into(),
                vec![Scale::plain(loss, classes.max(d))],
            ));
            out.push((
                "gradients/features".into(),
                (0..n * d)
                    .map(|e| Scale::plain(rows[e / d].max(f64::MIN_POSITIVE), classes.max(d)))
                    .collect(),
            ));
            out.push((
                "gradients/weights".into(),
                (0..classes * d)
                    .map(|e| Scale::plain(cols[e / d].max(f64::MIN_POSITIVE), n.max(d)))
                    .collect(),
            ));
        }
        Case::Normalized(c) => {
            let (n, classes, d) = (c.labels.len(), c.weights.rows(), c.features.cols());
            let r = c.reduction.weight(n);
            let angular = matches!(c.margin, Margin::Angular { .. } | Margin::Combined { .. });
            let detached = matches!(
                c.margin,
                Margin::Angular {
                    grad: MarginGrad::Detached,
                    ..
                }
            );
            let mut rows = vec![0.0; n];
            let mut cols = vec![0.0; classes];
            // the same sums where the target's p_y − 1 is computed as softmax − onehot,
            // with the absolute error of a rounding of 1 (the textbook gradient)
            let mut naive_rows = vec![0.0; n];
            let mut naive_cols = vec![0.0; classes];
            let mut kappa_max: f64 = 1.0;
            let mut kappas = vec![1.0; n];
            for i in 0..n {
                let x = c.features.row(i);
                let cos: Vec<f64> = (0..classes)
                    .map(|j| dot(x, c.weights.row(j)) / (norm(x) * norm(c.weights.row(j))))
                    .collect();
                let y = c.labels[i];
                let k = if angular {
                    1.0 / (1.0 - cos[y] * cos[y]).max(0.0).sqrt().max(1e-300)
                } else {
                    1.0
                };
                kappas[i] = k;
                kappa_max = kappa_max.max(k);
                let (g, slope) = target_rule(&c.margin, cos[y]);
                let z: Vec<f64> = (0..classes)
                    .map(|j| c.scale * if j == y { g } else { cos[j] })
                    .collect();
                let p = softmax_row(&z, 1.0);
                let rest: f64 = (0..classes).filter(|&j| j != y).map(|j| p[j]).sum();
                for j in 0..classes {
                    let size = if j != y {
                        p[j] * k
                    } else if detached || !angular {
                        rest * k
                    } else {
                        rest * slope.abs().max(1.0) * k * k
                    };
                    let gij = r * c.scale * size.max(f64::MIN_POSITIVE);
                    rows[i] += gij / norm(x);
                    cols[j] += gij / norm(c.weights.row(j));
                    let naive = if j == y {
                        r * c.scale * (rest + 1.0) * slope.abs().max(1.0) * k * k
                    } else {
                        gij
                    };
                    naive_rows[i] += naive / norm(x);
                    naive_cols[j] += naive / norm(c.weights.row(j));
                }
            }
            let loss = value("outputs", "loss")[0].abs();
            let mut loss_scale = Scale::plain(loss.max(c.scale * kappa_max), classes.max(d));
            loss_scale.kappa = kappa_max;
            out.push(("outputs/loss".into(), vec![loss_scale]));
            let grad = |scale: f64, naive: f64, kappa: f64, terms: usize| Scale {
                scale: scale.max(f64::MIN_POSITIVE),
                kappa,
                terms,
                unstable: Some((
                    naive,
                    "softmax(z) − onehot: p_y − 1 cancels when the target dominates its row",
                )),
            };
            out.push((
                "gradients/features".into(),
                (0..n * d)
                    .map(|e| {
                        grad(
                            rows[e / d],
                            naive_rows[e / d],
                            kappas[e / d],
                            classes.max(d),
                        )
                    })
                    .collect(),
            ));
            out.push((
                "gradients/weights".into(),
                (0..classes * d)
                    .map(|e| grad(cols[e / d], naive_cols[e / d], kappa_max, n.max(d)))
                    .collect(),
            ));
            if value("gradients", "scale").len() == 1 {
                let terms = if c.reduction == Reduction::Mean {
                    2.0
                } else {
                    2.0 * n as f64
                };
                out.push((
                    "gradients/scale".into(),
                    vec![Scale::plain(terms, n * classes)],
                ));
            }
        }
    }
    out
}

/// g and dg/dcos θ of SPEC §1 in binary64, away from the poles.
fn target_rule(margin: &Margin, c: f64) -> (f64, f64) {
    let angular = |m1: f64, m2: f64, m3: f64| {
        let a = m1 * c.clamp(-1.0, 1.0).acos() + m2;
        (
            a.cos() - m3,
            m1 * a.sin() / (1.0 - c * c).max(1e-300).sqrt(),
        )
    };
    match *margin {
        Margin::None => (c, 1.0),
        Margin::Additive { m } => (c - m, 1.0),
        Margin::Combined { m1, m2, m3 } => angular(m1, m2, m3),
        Margin::Angular { m, boundary, grad } => {
            let arc = match boundary {
                crate::spec::Boundary::None => true,
                crate::spec::Boundary::Thmm => c > (std::f64::consts::PI - m).cos(),
                crate::spec::Boundary::Easy => c > 0.0,
            };
            let (g, slope) = if arc { angular(1.0, m, 0.0) } else { (c, 1.0) };
            (
                g,
                if grad == MarginGrad::Detached {
                    1.0
                } else {
                    slope
                },
            )
        }
    }
}
