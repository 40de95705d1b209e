//! `lsoftmax` and `sphereface` under what real code does instead of SPEC §1 (SPEC §4,
//! "Conventions the diagnosis knows"): cos θ from rows normalized as v/max(‖v‖, ε)
//! (`torch.nn.functional.normalize`), the norms that scale the logits taken as they are
//! (`torch.norm`), as pytorch-metric-learning's LargeMarginSoftmaxLoss and SphereFaceLoss
//! compute them. Only the diagnosis evaluates this, by the plain formulas.
//!
//! With n_x = max(‖x‖, ε), n_w likewise, c = x·w/(n_x n_w), ν_j = ‖w_j‖ (`lsoftmax`) or 1
//! (`sphereface`), H = h(c) at the target and c elsewhere (h of [`super::reference`]):
//! f_ij = ν_j‖x_i‖H_ij, and
//!
//! ∂f/∂x_k = ν(x_k/‖x‖·H + ‖x‖H′·∂c/∂x_k),  ∂f/∂w_k = [lsoftmax] w_k/‖w‖·‖x‖H + ν‖x‖H′·∂c/∂w_k,
//!
//! with ∂c/∂x_k = w_k/(n_x n_w) − [n_x = ‖x‖]·c·x_k/‖x‖² and symmetrically for w.

use super::reference::psi;
use crate::answer::{Answer, Tensor};
use crate::check::diagnose::Alternative;
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::precision::smallest_row_norm;
use crate::reference::geometry::{dot, row_norms, RowNorm};
use crate::reference::per_sample;
use crate::reference::softmax::{ce_row, points, reduce};
use crate::spec::MultiplicativeCase;

/// The case with cos θ from rows normalized with the clamp `eps`, at `prec` bits.
fn evaluate(case: &MultiplicativeCase, eps: f64, prec: u32) -> Answer<Interval> {
    let x = points(&case.features, prec);
    let w = points(&case.weights, prec);
    let (n, classes, d) = (x.rows(), w.rows(), x.cols());
    let sphere = case.normalized_weights();
    let xs = row_norms(&x, prec);
    let ws = row_norms(&w, prec);
    let one = Interval::from_i64(prec, 1);
    let e = Interval::from_f64(prec, eps);
    let free = |v: &Interval| v.mid().to_f64() >= eps;
    let clamped = |v: &Interval| if free(v) { v.clone() } else { e.clone() };
    let lambda = Interval::from_f64(prec, case.lambda);
    let blend = one.add(&lambda);
    let u: Matrix<Interval> = Matrix::from_fn(n, classes, |i, j| {
        one.div(&clamped(&xs[i].norm).mul(&clamped(&ws[j].norm)))
    });
    let c: Matrix<Interval> = Matrix::from_fn(n, classes, |i, j| {
        dot(x.row(i), w.row(j), prec).mul(u.get(i, j))
    });
    let nu = |j: usize| {
        if sphere {
            one.clone()
        } else {
            ws[j].norm.clone()
        }
    };
    // (H, H′) per pair
    let h: Matrix<(Interval, Interval)> = Matrix::from_fn(n, classes, |i, j| {
        if j == case.labels[i] {
            let (p, dp) = psi(case.margin, &c.get(i, j).clone().clamp_unit());
            (
                lambda.mul(c.get(i, j)).add(&p).div(&blend),
                lambda.add(&dp).div(&blend),
            )
        } else {
            (c.get(i, j).clone(), one.clone())
        }
    });
    let r = per_sample(&one, case.reduction, n);
    let mut losses = Vec::with_capacity(n);
    let mut g = Vec::with_capacity(n);
    for (i, xi) in xs.iter().enumerate() {
        let logits: Vec<Interval> = (0..classes)
            .map(|j| nu(j).mul(&xi.norm).mul(&h.get(i, j).0))
            .collect();
        let (loss, dz) = ce_row(&logits, case.labels[i]);
        losses.push(loss);
        g.push(dz.into_iter().map(|v| v.mul(&r)).collect::<Vec<_>>());
    }
    let loss = reduce(&losses, case.reduction);
    // ∂c/∂v_k for a row v (its entry `own`, its norms `v`) against the other row's entry
    // `other`: u·other, less c·v_k/‖v‖² where the norm is not clamped
    let dcos = |i: usize, j: usize, other: &Interval, own: &Interval, v: &RowNorm| {
        let dc = u.get(i, j).mul(other);
        if free(&v.norm) {
            dc.sub(&c.get(i, j).mul(own).div(&v.squared))
        } else {
            dc
        }
    };
    let grad_features = Matrix::from_fn(n, d, |i, k| {
        let xk = x.get(i, k);
        let terms: Vec<Interval> = (0..classes)
            .map(|j| {
                let (hv, hd) = h.get(i, j);
                let dc = dcos(i, j, w.get(j, k), xk, &xs[i]);
                let along = xk.div(&xs[i].norm).mul(hv);
                let across = xs[i].norm.mul(hd).mul(&dc);
                g[i][j].mul(&nu(j).mul(&along.add(&across)))
            })
            .collect();
        Interval::sum(prec, &terms)
    });
    let grad_weights = Matrix::from_fn(classes, d, |j, k| {
        let wk = w.get(j, k);
        let terms: Vec<Interval> = (0..n)
            .map(|i| {
                let (hv, hd) = h.get(i, j);
                let dc = dcos(i, j, x.get(i, k), wk, &ws[j]);
                let mut t = nu(j).mul(&xs[i].norm).mul(hd).mul(&dc);
                if !sphere {
                    t = t.add(&wk.div(&ws[j].norm).mul(&xs[i].norm).mul(hv));
                }
                g[i][j].mul(&t)
            })
            .collect();
        Interval::sum(prec, &terms)
    });
    Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients: vec![
            ("features", Tensor::Matrix(grad_features)),
            ("weights", Tensor::Matrix(grad_weights)),
        ],
    }
}

/// The ε-clamped normalization where some row's norm is below ε (1e-12, 1e-8), each
/// evaluated at 160 bits and judged on the case's own scales (`None`).
pub(crate) fn conventions(c: &MultiplicativeCase) -> Vec<Alternative> {
    let least = smallest_row_norm(&c.features).min(smallest_row_norm(&c.weights));
    let mut out = Vec::new();
    for (eps, whose) in [
        (1e-12, "torch.nn.functional.normalize's default"),
        (
            1e-8,
            "as torch.nn.functional.cosine_similarity's ε, per row",
        ),
    ] {
        if least < eps {
            let a = evaluate(c, eps, 160);
            if let Some(a) = crate::check::diagnose::midpoints_of(&a) {
                out.push((
                    format!(
                        "cos θ comes from rows normalized as v/max(‖v‖, ε) with ε = {eps:e} ({whose}), the logits scaled by the norms themselves"
                    ),
                    a,
                    None,
                ));
            }
        }
    }
    out
}
