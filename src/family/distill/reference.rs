//! Reference `distill` (SPEC §1): knowledge distillation, per sample
//! α·T²·soft_i + (1 − α)·CE(s_i, y_i), with q_s = softmax(s/T), q_t = softmax(t/T) and
//! soft_i = KL(q_t ‖ q_s) = Σ_j q_t,j (log q_t,j − log q_s,j) (`kl`) or
//! −Σ_j q_t,j log q_s,j (`ce`).
//!
//! Gradient with respect to the student's logits (SPEC §2 T4): ∂soft_i/∂s_ij =
//! (q_s,ij − q_t,ij)/T for both modes (they differ by the teacher's entropy, a constant),
//! so ∂L/∂s_ij = r·(α·T·(q_s,ij − q_t,ij) + (1 − α)·(p_ij − [j = y_i])) with p = softmax(s)
//! and r = 1/N for `mean`.
//!
//! When a teacher row is the student row plus a constant (the same distribution), the
//! KL term and q_s − q_t are exactly 0; that is decided exactly from the binary64 inputs,
//! since no enclosure of a difference of equal unknowns is a point.

use crate::answer::{Answer, Tensor};
use crate::matrix::Matrix;
use crate::mp::interval::Interval;
use crate::reference::per_sample;
use crate::reference::softmax::{cross_entropies, points, reduce, softmax, softmax_ce_grad};
use crate::spec::{DistillCase, Reduction, SoftTerm};
use rug::Float;

/// Whether t_j − s_j is the same for every j (exactly, from the binary64 values).
fn same_distribution(student: &[f64], teacher: &[f64]) -> bool {
    // A difference of two binary64 values is exact at 2200 bits.
    let diff =
        |a: f64, b: f64| Float::with_val(2200, Float::with_val(53, a) - Float::with_val(53, b));
    let first = diff(teacher[0], student[0]);
    student
        .iter()
        .zip(teacher)
        .all(|(&s, &t)| diff(t, s) == first)
}

/// A `distill` case at `prec` bits: output `loss`, gradient `student_logits`.
pub fn evaluate(c: &DistillCase, prec: u32) -> Answer<Interval> {
    let s = points(&c.student, prec);
    let t = points(&c.teacher, prec);
    let temp = Interval::from_f64(prec, c.temperature);
    let alpha = Interval::from_f64(prec, c.alpha);
    let one = Interval::from_i64(prec, 1);
    let hard_weight = one.sub(&alpha);
    let soft_weight = alpha.mul(&temp.powi(2));
    let (qs, log_qs) = softmax(&s, &temp);
    let (qt, log_qt) = softmax(&t, &temp);
    let ce = cross_entropies(&s, &c.labels);
    let zero = Interval::from_i64(prec, 0);
    let same: Vec<bool> = (0..s.rows())
        .map(|i| same_distribution(c.student.row(i), c.teacher.row(i)))
        .collect();
    let terms: Vec<Interval> = (0..s.rows())
        .map(|i| {
            let soft = match c.soft {
                SoftTerm::Kl if same[i] => zero.clone(),
                SoftTerm::Kl => {
                    let parts: Vec<Interval> = (0..s.cols())
                        .map(|j| qt.get(i, j).mul(&log_qt.get(i, j).sub(log_qs.get(i, j))))
                        .collect();
                    Interval::sum(prec, &parts)
                }
                SoftTerm::Ce => {
                    let parts: Vec<Interval> = (0..s.cols())
                        .map(|j| qt.get(i, j).mul(log_qs.get(i, j)))
                        .collect();
                    Interval::sum(prec, &parts).neg()
                }
            };
            soft_weight.mul(&soft).add(&hard_weight.mul(&ce[i]))
        })
        .collect();
    let loss = reduce(&terms, c.reduction);
    let hard = softmax_ce_grad(&s, &c.labels, Reduction::Sum);
    let n = s.rows();
    let soft_scale = alpha.mul(&temp);
    let grad = Matrix::from_fn(s.rows(), s.cols(), |i, j| {
        let dq = if same[i] {
            zero.clone()
        } else {
            qs.get(i, j).sub(qt.get(i, j))
        };
        let g = soft_scale.mul(&dq).add(&hard_weight.mul(hard.get(i, j)));
        per_sample(&g, c.reduction, n)
    });
    Answer {
        outputs: vec![("loss", Tensor::Scalar(loss))],
        gradients: vec![("student_logits", Tensor::Matrix(grad))],
    }
}
