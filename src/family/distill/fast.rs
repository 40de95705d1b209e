//! Fast f32/f64 `distill` (SPEC §1): α·T²·soft + (1 − α)·CE of the student, with its
//! gradient r·(α·T·(q_s − q_t) + (1 − α)·(p − onehot)) (SPEC §2 T4), built on the fast
//! softmax: the hard term is [`softmax_ce_into`],
//! the soft term uses q = softmax(·/T) and log q from the same split exponentials.
//! `kl` sums q_t·(log q_t − log q_s) per row, compensated; `ce` sums −q_t·log q_s.

use crate::error::{Error, Result};
use crate::family::softmax::fast::{log_softmax, softmax, softmax_ce_into};
use crate::fast::real::{compensated_sum, Real};
use crate::spec::{Reduction, SoftTerm};

/// The parameters of a distillation loss (SPEC §1).
///
/// With α = 0 only the hard term is left, the cross-entropy with the labels; with α = 1 and
/// a student equal to its teacher, the KL term and its gradient vanish:
///
/// ```
/// use lossref::family::distill::fast::Distill;
/// use lossref::family::softmax::fast::softmax_ce;
/// use lossref::spec::{Reduction, SoftTerm};
///
/// let student: [f64; 6] = [1.5, -0.25, 3.0, 0.5, 0.5, -2.0];
/// let teacher: [f64; 6] = [2.0, 0.0, 1.0, -1.0, 4.0, 0.25];
/// let labels = [2, 0];
/// let hard = Distill { temperature: 4.0, alpha: 0.0, soft: SoftTerm::Kl, reduction: Reduction::Mean };
/// let (loss, grad) = hard.forward_backward(&student, &teacher, 3, &labels).unwrap();
/// let (ce, ce_grad) = softmax_ce(&student, 3, &labels, Reduction::Mean).unwrap();
/// assert!((loss - ce).abs() < 1e-15);
/// assert!(grad.iter().zip(&ce_grad).all(|(a, b)| (a - b).abs() < 1e-15));
///
/// let soft = Distill { alpha: 1.0, ..hard };
/// let (loss, grad) = soft.forward_backward(&teacher, &teacher, 3, &labels).unwrap();
/// assert!(loss.abs() < 1e-15);
/// assert!(grad.iter().all(|g| g.abs() < 1e-15));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distill {
    /// T > 0.
    pub temperature: f64,
    /// α ∈ [0, 1].
    pub alpha: f64,
    /// `kl` or `ce`.
    pub soft: SoftTerm,
    /// `mean` or `sum`.
    pub reduction: Reduction,
}

impl Distill {
    /// The loss and ∂L/∂student for N×C row-major logits.
    ///
    /// # Errors
    /// Shapes that disagree, a label out of range, non-finite logits (named by the
    /// softmax), or parameters out of range.
    pub fn forward_backward<T: Real>(
        &self,
        student: &[T],
        teacher: &[T],
        cols: usize,
        labels: &[usize],
    ) -> Result<(T, Vec<T>)> {
        if teacher.len() != student.len() {
            return Err(Error::invalid(
                "teacher_logits",
                format!(
                    "has {} values but student_logits has {}",
                    teacher.len(),
                    student.len()
                ),
            ));
        }
        if self.temperature.is_nan()
            || self.temperature <= 0.0
            || !(0.0..=1.0).contains(&self.alpha)
        {
            return Err(Error::invalid(
                "params",
                "needs temperature > 0 and alpha in [0, 1]",
            ));
        }
        for (name, m) in [("student_logits", student), ("teacher_logits", teacher)] {
            if let Some(k) = m.iter().position(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    format!("{name}[{}][{}]", k / cols.max(1), k % cols.max(1)),
                    "is not finite",
                ));
            }
        }
        let t = T::of_f64(self.temperature);
        let alpha = T::of_f64(self.alpha);
        let mut grad = vec![T::zero(); student.len()];
        let hard = softmax_ce_into(student, cols, labels, self.reduction, &mut grad)?;
        let (mut qs, mut qt) = (
            vec![T::zero(); student.len()],
            vec![T::zero(); student.len()],
        );
        let (mut log_qs, mut log_qt) = (qs.clone(), qt.clone());
        softmax(student, cols, t, &mut qs)?;
        softmax(teacher, cols, t, &mut qt)?;
        log_softmax(student, cols, t, &mut log_qs)?;
        log_softmax(teacher, cols, t, &mut log_qt)?;
        let n = labels.len();
        let r = match self.reduction {
            Reduction::Mean => T::one() / T::of_usize(n),
            Reduction::Sum => T::one(),
        };
        let soft_rows = (0..n).map(|i| {
            let row = i * cols..(i + 1) * cols;
            let terms = row.map(|k| match self.soft {
                SoftTerm::Kl => qt[k] * (log_qt[k] - log_qs[k]),
                SoftTerm::Ce => -(qt[k] * log_qs[k]),
            });
            compensated_sum(terms)
        });
        let soft = compensated_sum(soft_rows);
        let hard_weight = T::one() - alpha;
        let loss = alpha * t * t * soft * r + hard_weight * hard;
        let soft_scale = alpha * t * r;
        for (k, g) in grad.iter_mut().enumerate() {
            *g = soft_scale * (qs[k] - qt[k]) + hard_weight * *g;
        }
        Ok((loss, grad))
    }
}
