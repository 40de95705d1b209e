//! The exact form of `softmax_ce`'s gradient with SPEC §5's options for the zero test
//! (proofs/exact_zeros.md, step 8's pattern): ∂L/∂z_ij = (A_i·p_ij − a_ij)/D is
//! Σ_l p_il·B_l with B_l = A_i·[l = j] − a_ij (Σ_l p_il = 1 folds the constant in), all
//! coefficients rational. It vanishes exactly where equal logits meet coefficients in
//! proportion (ε = 1 with equal weights, uniform soft targets): the row's logits are
//! rational, so the zero test is complete there.

use super::options::{row_coefficients, Coefficients};
use crate::exact::lindemann::{Coefficient, Combination, Logit, Row, RowTerm};
use crate::exact::surd::Surd;
use crate::exact::ExactForm;
use crate::spec::SoftmaxCeCase;
use rug::Rational;

impl Coefficients for Rational {
    fn plus(&self, other: &Self) -> Self {
        Rational::from(self + other)
    }
    fn minus(&self, other: &Self) -> Self {
        Rational::from(self - other)
    }
    fn times(&self, other: &Self) -> Self {
        Rational::from(self * other)
    }
    fn over(&self, k: usize) -> Self {
        self / Rational::from(k)
    }
}

/// The exact form of one `softmax_ce` case with options: one softmax row per sample.
pub struct OptionsForm {
    rows: Vec<Row>,
    /// a_i per row, and A_i.
    coefficients: Vec<(Vec<Rational>, Rational)>,
    classes: usize,
}

impl OptionsForm {
    /// The form of `case` (`None` only for non-finite numbers, which a case cannot hold).
    pub fn new(case: &SoftmaxCeCase) -> Option<OptionsForm> {
        let cols = case.logits.cols();
        let mut rows = Vec::with_capacity(case.logits.rows());
        let mut coefficients = Vec::with_capacity(case.logits.rows());
        for i in 0..case.logits.rows() {
            let keys = case
                .logits
                .row(i)
                .iter()
                .map(|&z| Some(Logit::Algebraic(Surd::rational(Rational::from_f64(z)?))))
                .collect::<Option<Vec<_>>>()?;
            rows.push(Row::new(keys));
            let finite = |x: f64| Rational::from_f64(x).unwrap_or_default();
            let a: Vec<Rational> = row_coefficients(&case.options, &case.labels, i, cols, finite);
            let total = a.iter().fold(Rational::new(), |s, x| s + x);
            coefficients.push((a, total));
        }
        Some(OptionsForm {
            rows,
            coefficients,
            classes: cols,
        })
    }
}

impl ExactForm for OptionsForm {
    fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn gradient(&self, name: &str, index: usize) -> Option<Combination> {
        if name != "logits" {
            return None;
        }
        let (i, j) = (index / self.classes.max(1), index % self.classes.max(1));
        let (a, total) = &self.coefficients[i];
        let plain = |q: Rational| Coefficient::plain(Surd::rational(q));
        Some(Combination {
            terms: vec![RowTerm {
                row: i,
                base: plain(-a[j].clone()),
                at: vec![(j, plain(total.clone()))],
            }],
        })
    }
}
