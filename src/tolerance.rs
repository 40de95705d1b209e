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
//!   For center, lsoftmax/sphereface and the normalized margins these are the measures of
//!   `lossref::precision` (`precision::measures`), which the fast paths meet; softmax,
//!   softmax_ce and distill, whose fast paths are held to tighter measures, add the
//!   conditioning of the exp arguments. Each loss's is stated in [`scales`].
//! * F is the precision table's entry for that loss, output and dtype (`precision::entry`,
//!   keyed by a typed `precision::Quantity`; the fast path's
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
use crate::precision::{
    center_scales, entry, log_softmax_row, normalized_loss_scale, normalized_terms,
    normface_grad_scale_scale, psi_scales, quantities, softmax_row, Quantity,
};
use crate::spec::{Case, Dtype, LossId};

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

/// The allowed error of a value group, in ulps of its scale, before the summation factor:
/// the precision table's entry times [`IMPLEMENTATION_FACTOR`].
pub fn allowed_ulps(quantity: Quantity, dtype: Dtype) -> f64 {
    entry(quantity, dtype).max_ulps * IMPLEMENTATION_FACTOR
}

/// g(n) = max(1, √(n/16)).
pub fn summation_factor(terms: usize) -> f64 {
    (terms as f64 / 16.0).sqrt().max(1.0)
}

/// The scales of one value group of a case.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// `outputs/NAME` or `gradients/NAME`.
    pub name: String,
    /// Its row of the precision table.
    pub quantity: Quantity,
    /// One per value, in the answer's order.
    pub scales: Vec<Scale>,
}

/// The scales of every value of `case`, one [`Group`] per value group of its answer
/// ([`crate::precision::quantities`]), in the answer's order. `reference` holds the exact
/// values rounded to binary64.
///
/// Where the fast path's measure ([`crate::precision::measures`]) already states the
/// conditioning of the mathematics (center, lsoftmax/sphereface, the normalized margins) it is
/// the scale here, at binary64's floor for both dtypes (the stricter); for softmax,
/// softmax_ce and distill, whose fast paths are held to plain ulps or to the magnitudes
/// summed, the scale adds the relative error that the exp arguments of a straightforward
/// implementation carry (|z − max|·u in e^{z − max}).
pub fn scales(case: &Case, reference: &Answer<f64>) -> Vec<Group> {
    let loss = || {
        reference
            .output("loss")
            .and_then(|t| t.values().first())
            .map_or(0.0, |l| l.abs())
    };
    // one Vec<Scale> per group of `quantities(case)`, in its order
    let columns: Vec<Vec<Scale>> = match case {
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
            vec![probs, logs]
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
            let mut loss = Scale::plain(loss_scale.max(loss()), cols);
            loss.unstable = Some((naive, "logsumexp(z) − z_y cancels when the target dominates (softplus(lse_{j≠y}(z_j − z_y)) does not)"));
            vec![vec![loss], grads]
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
            vec![vec![Scale::plain(loss_scale, cols)], grads]
        }
        Case::Center(c) => {
            let (n, d) = (c.labels.len(), c.features.cols());
            let s = center_scales(c);
            let plain = |v: Vec<f64>| v.into_iter().map(|v| Scale::plain(v, n)).collect();
            vec![
                vec![Scale::plain(s.loss, n * d)],
                plain(s.centers_next),
                plain(s.features),
                plain(s.centers),
            ]
        }
        Case::Multiplicative(c) => {
            let (n, classes, d) = (c.labels.len(), c.weights.rows(), c.features.cols());
            let s = psi_scales(c);
            let loss = loss();
            let per_entry = |rows: &[f64], terms: usize| -> Vec<Scale> {
                rows.iter()
                    .flat_map(|&v| std::iter::repeat_n(Scale::plain(v, terms), d))
                    .collect()
            };
            vec![
                vec![Scale::plain(loss.max(s.loss), classes.max(d))],
                per_entry(&s.rows, classes.max(d)),
                per_entry(&s.cols, n.max(d)),
            ]
        }
        Case::Normalized(c) => {
            let (n, classes, d) = (c.labels.len(), c.weights.rows(), c.features.cols());
            let t = normalized_terms(c, f64::MIN_POSITIVE);
            let loss = loss();
            let mut loss_scale = Scale::plain(normalized_loss_scale(c, loss, &t), classes.max(d));
            loss_scale.kappa = t.kappa_max;
            let grad = |scale: f64, naive: f64, kappa: f64, terms: usize| Scale {
                scale,
                kappa,
                terms,
                unstable: Some((
                    naive,
                    "softmax(z) − onehot: p_y − 1 cancels when the target dominates its row",
                )),
            };
            let mut columns = vec![
                vec![loss_scale],
                (0..n * d)
                    .map(|e| {
                        grad(
                            t.rows[e / d],
                            t.naive_rows[e / d],
                            t.kappas[e / d],
                            classes.max(d),
                        )
                    })
                    .collect(),
                (0..classes * d)
                    .map(|e| grad(t.cols[e / d], t.naive_cols[e / d], t.kappa_max, n.max(d)))
                    .collect(),
            ];
            if c.loss == LossId::NormFace {
                columns.push(vec![Scale::plain(
                    normface_grad_scale_scale(c),
                    n * classes,
                )]);
            }
            columns
        }
    };
    let groups = quantities(case);
    debug_assert_eq!(groups.len(), columns.len(), "a group without scales");
    groups
        .into_iter()
        .zip(columns)
        .map(|((name, quantity), scales)| Group {
            name: name.to_string(),
            quantity,
            scales,
        })
        .collect()
}
