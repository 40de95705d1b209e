//! Reference `center` loss (SPEC §1, Wen et al. 2016): per sample ½‖x_i − c_{y_i}‖²,
//! reduced, with
//!
//! * ∂L/∂x_i = r·(x_i − c_{y_i}) and ∂L/∂c_j = −r·Σ_{i: y_i = j} (x_i − c_j)
//!   (r = 1/N for `mean`);
//! * the output `centers_next` = c_j − α·Δc_j of the paper's update rule, with
//!   Δc_j = Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j) and n_j = #{i : y_i = j}: count-normalized,
//!   so a class with no sample in the batch does not move.
//!
//! Every difference of two binary64 values is exact at the working precision's scale once
//! the precision covers their exponent gap, so a sample at its center gives exact zeros.

use crate::answer::{Answer, Tensor};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::per_sample;
use crate::reference::softmax::{points, reduce};
use crate::spec::CenterCase;

/// A `center` case at `prec` bits: outputs `loss` and `centers_next`; gradients
/// `features` and `centers`.
pub fn evaluate(c: &CenterCase, prec: u32) -> Answer<Interval> {
    let x = points(&c.features, prec);
    let centers = points(&c.centers, prec);
    let (n, d) = (x.rows(), x.cols());
    let r = |v: Interval| per_sample(&v, c.reduction, n);
    // x_i − c_{y_i}
    let diff = Matrix::from_fn(n, d, |i, k| x.get(i, k).sub(centers.get(c.labels[i], k)));
    let half = Interval::from_f64(prec, 0.5);
    let terms: Vec<Interval> = diff
        .iter_rows()
        .map(|row| {
            let squares: Vec<Interval> = row.iter().map(|v| v.powi(2)).collect();
            half.mul(&Interval::sum(prec, &squares))
        })
        .collect();
    let loss = reduce(&terms, c.reduction);
    let grad_features = Matrix::from_fn(n, d, |i, k| r(diff.get(i, k).clone()));
    let members: Vec<Vec<usize>> = (0..centers.rows())
        .map(|j| (0..n).filter(|&i| c.labels[i] == j).collect())
        .collect();
    let column_sum = |j: usize, k: usize| {
        let parts: Vec<Interval> = members[j].iter().map(|&i| diff.get(i, k).clone()).collect();
        Interval::sum(prec, &parts)
    };
    let grad_centers = Matrix::from_fn(centers.rows(), d, |j, k| r(column_sum(j, k).neg()));
    let alpha = Interval::from_f64(prec, c.alpha);
    let centers_next = Matrix::from_fn(centers.rows(), d, |j, k| {
        // Δc_jk = Σ (c_jk − x_ik)/(1 + n_j) = −Σ (x_ik − c_jk)/(1 + n_j)
        let delta = column_sum(j, k).neg().div_i64(1 + members[j].len() as i64);
        centers.get(j, k).sub(&alpha.mul(&delta))
    });
    Answer {
        outputs: vec![
            ("loss", Tensor::Scalar(loss)),
            ("centers_next", Tensor::Matrix(centers_next)),
        ],
        gradients: vec![
            ("features", Tensor::Matrix(grad_features)),
            ("centers", Tensor::Matrix(grad_centers)),
        ],
    }
}
