//! Any case of SPEC §1 through the fast f32/f64 paths, as an [`Answer`] shaped like the
//! reference's (the same outputs and gradients, by the same names), so that `lossref report`
//! and the tests judge them like any implementation.

use crate::answer::{Answer, Tensor};
use crate::error::Result;
use crate::fast::center::center;
use crate::fast::distill::Distill;
use crate::fast::normalized::MarginLoss;
use crate::fast::psi::MultiplicativeLoss;
use crate::fast::real::Real;
use crate::fast::softmax::{log_softmax, softmax, softmax_ce};
use crate::matrix::Matrix;
use crate::spec::{Case, LossId};

fn narrow<T: Real>(m: &Matrix<f64>) -> Vec<T> {
    m.as_slice().iter().map(|&v| T::of_f64(v)).collect()
}

fn matrix<T: Real>(rows: usize, cols: usize, v: Vec<T>) -> Tensor<f64> {
    let wide = v.into_iter().map(Real::as_f64).collect();
    Tensor::Matrix(
        Matrix::from_vec(rows, cols, wide).expect("the fast path returns one value per entry"),
    )
}

fn scalar<T: Real>(v: T) -> Tensor<f64> {
    Tensor::Scalar(v.as_f64())
}

/// The fast path's answer for `case` in dtype `T`, widened exactly to f64.
///
/// # Errors
/// The fast path's own errors (shapes, non-finite values, undefined points).
pub fn evaluate<T: Real>(case: &Case) -> Result<Answer<f64>> {
    Ok(match case {
        Case::Softmax(c) => {
            let (n, cols) = (c.logits.rows(), c.logits.cols());
            let z = narrow::<T>(&c.logits);
            let t = T::of_f64(c.temperature);
            let mut p = vec![T::zero(); z.len()];
            let mut lp = vec![T::zero(); z.len()];
            softmax(&z, cols, t, &mut p)?;
            log_softmax(&z, cols, t, &mut lp)?;
            Answer {
                outputs: vec![
                    ("probabilities", matrix(n, cols, p)),
                    ("log_probabilities", matrix(n, cols, lp)),
                ],
                gradients: vec![],
            }
        }
        Case::SoftmaxCe(c) => {
            let (n, cols) = (c.logits.rows(), c.logits.cols());
            let (loss, grad) = softmax_ce(&narrow::<T>(&c.logits), cols, &c.labels, c.reduction)?;
            Answer {
                outputs: vec![("loss", scalar(loss))],
                gradients: vec![("logits", matrix(n, cols, grad))],
            }
        }
        Case::Distill(c) => {
            let (n, cols) = (c.student.rows(), c.student.cols());
            let d = Distill {
                temperature: c.temperature,
                alpha: c.alpha,
                soft: c.soft,
                reduction: c.reduction,
            };
            let (loss, grad) = d.forward_backward(
                &narrow::<T>(&c.student),
                &narrow::<T>(&c.teacher),
                cols,
                &c.labels,
            )?;
            Answer {
                outputs: vec![("loss", scalar(loss))],
                gradients: vec![("student_logits", matrix(n, cols, grad))],
            }
        }
        Case::Center(c) => {
            let d = c.features.cols();
            let out = center(
                &narrow::<T>(&c.features),
                &narrow::<T>(&c.centers),
                &c.labels,
                d,
                c.alpha,
                c.reduction,
            )?;
            let k = c.centers.rows();
            Answer {
                outputs: vec![
                    ("loss", scalar(out.loss)),
                    ("centers_next", matrix(k, d, out.centers_next)),
                ],
                gradients: vec![
                    ("features", matrix(c.features.rows(), d, out.features)),
                    ("centers", matrix(k, d, out.centers)),
                ],
            }
        }
        Case::Multiplicative(c) => {
            let d = c.features.cols();
            let g = MultiplicativeLoss::of_case(c).forward_backward(
                &narrow::<T>(&c.features),
                &narrow::<T>(&c.weights),
                &c.labels,
                d,
                0,
            )?;
            Answer {
                outputs: vec![("loss", scalar(g.loss))],
                gradients: vec![
                    ("features", matrix(c.features.rows(), d, g.features)),
                    ("weights", matrix(c.weights.rows(), d, g.weights)),
                ],
            }
        }
        Case::Normalized(c) => {
            let d = c.features.cols();
            let g = MarginLoss::of_case(c).forward_backward(
                &narrow::<T>(&c.features),
                &narrow::<T>(&c.weights),
                &c.labels,
                d,
                0,
            )?;
            let mut gradients = vec![
                ("features", matrix(c.features.rows(), d, g.features)),
                ("weights", matrix(c.weights.rows(), d, g.weights)),
            ];
            if c.loss == LossId::NormFace {
                if let Some(s) = g.scale {
                    gradients.push(("scale", scalar(s)));
                }
            }
            Answer {
                outputs: vec![("loss", scalar(g.loss))],
                gradients,
            }
        }
    })
}
