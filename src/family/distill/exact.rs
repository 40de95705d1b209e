//! The exact form of the `distill` gradient (SPEC §1) for the zero test
//! (proofs/exact_zeros.md, step 8).
//!
//! ∂L/∂s_ij = r·(α·T·(q_s,ij − q_t,ij) + (1 − α)·(p_ij − δ_{j,y_i})) involves three softmax
//! rows per sample, all with rational logits: the student's s_i/T, the teacher's t_i/T
//! and the student's s_i. Rows equal up to a shift and a permutation share their
//! probabilities, so q_s,ij − q_t,ij is proven 0 when the teacher's row is a shifted
//! permutation of the student's that keeps s_ij's place, and the hard term joins in when
//! T = 1.

use crate::exact::lindemann::{Coefficient, Combination, Logit, Row, RowTerm};
use crate::exact::surd::Surd;
use crate::exact::ExactForm;
use crate::matrix::Matrix;
use crate::spec::DistillCase;
use rug::Rational;

/// The exact form of one `distill` case: rows 3i (q_s), 3i + 1 (q_t), 3i + 2 (p).
pub struct DistillForm {
    rows: Vec<Row>,
    labels: Vec<usize>,
    classes: usize,
    /// α·T
    soft: Rational,
    /// 1 − α
    hard: Rational,
}

fn row(logits: &[f64], temperature: &Rational) -> Option<Row> {
    let keys = logits
        .iter()
        .map(|&z| {
            Some(Logit::Algebraic(Surd::rational(
                Rational::from_f64(z)? / temperature,
            )))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Row::new(keys))
}

impl DistillForm {
    /// The form of `case` (`None` only for non-finite numbers, which a case cannot hold).
    pub fn new(case: &DistillCase) -> Option<DistillForm> {
        let t = Rational::from_f64(case.temperature)?;
        let alpha = Rational::from_f64(case.alpha)?;
        let one = Rational::from(1);
        let mut rows = Vec::with_capacity(3 * case.student.rows());
        let pair = |m: &Matrix<f64>, i| m.row(i).to_vec();
        for i in 0..case.student.rows() {
            rows.push(row(&pair(&case.student, i), &t)?);
            rows.push(row(&pair(&case.teacher, i), &t)?);
            rows.push(row(&pair(&case.student, i), &one)?);
        }
        Some(DistillForm {
            rows,
            labels: case.labels.clone(),
            classes: case.student.cols(),
            soft: Rational::from(&alpha * &t),
            hard: one - alpha,
        })
    }
}

impl ExactForm for DistillForm {
    fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn gradient(&self, name: &str, index: usize) -> Option<Combination> {
        if name != "student_logits" {
            return None;
        }
        let (i, j) = (index / self.classes.max(1), index % self.classes.max(1));
        let plain = |q: Rational| Coefficient::plain(Surd::rational(q));
        // q_s,ij − q_t,ij: the soft rows, no label; p_ij − δ: the hard row, with it
        Some(Combination {
            terms: vec![
                RowTerm::one_class(3 * i, j, plain(self.soft.clone()), false),
                RowTerm::one_class(3 * i + 1, j, plain(-self.soft.clone()), false),
                RowTerm::one_class(3 * i + 2, j, plain(self.hard.clone()), self.labels[i] == j),
            ],
        })
    }
}
