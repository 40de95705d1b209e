//! Exact zeros (SPEC.md "Exact zeros"; the argument is proofs/exact_zeros.md).
//!
//! Symmetry and special angles make many gradient entries exactly 0: a pair of class
//! weights w₁ = −w₂ orthogonal to x, dψ/dcos θ = ±m·U_{m−1}(cos θ) at θ = kπ/m, two rows
//! that mirror each other. No enclosure of such a value ever excludes 0, so precision
//! alone cannot certify it. This module decides it exactly:
//!
//! * [`surd`]: exact arithmetic in the multi-quadratic fields where cos θ, norms and
//!   Chebyshev polynomials of cos θ live, with a zero test (Besicovitch);
//! * [`lindemann`]: the value as Σ_r Σ_l p_rl·B_rl over softmax rows, proven 0 when the
//!   coefficients of equal logits cancel (complete for algebraic data by
//!   Lindemann–Weierstrass);
//! * each family's gradients in that form, in the family's home ([`crate::family`]),
//!   through its `exact_form`.
//!
//! Every loss value, and the families whose `exact_form` is `None`, need none of this: a
//! probability lies in (0, 1), CE(z, y) > 0 for C ≥ 2, and a polynomial in the inputs is
//! evaluated exactly once the precision covers the exponent range of binary64 (its zeros
//! are points).

pub mod geometry;
pub mod lindemann;
pub mod surd;

use crate::exact::lindemann::{vanishes, Combination, Row};
use crate::spec::Case;

/// The most multiply-adds (N·C·D) of the exact geometry that a zero test may spend: about
/// a second of exact rational arithmetic. Larger cases keep today's escalation (a value
/// that stays undecided at the cap is an error naming it).
pub const MAX_EXACT_WORK: usize = 4_000_000;

/// One family's gradients as combinations of softmax probabilities.
pub trait ExactForm {
    /// The softmax rows, logits exact.
    fn rows(&self) -> &[Row];
    /// Gradient `name`, value number `index` (row-major) as Σ_r Σ_l p_rl·B_rl up to a
    /// factor; `None` for a value not of that form.
    fn gradient(&self, name: &str, index: usize) -> Option<Combination>;
}

/// The exact form of `case` at working precision `prec` (which decides the few
/// comparisons with transcendental thresholds), or `None` for families without exact
/// zeros to prove, cases beyond [`MAX_EXACT_WORK`], or an undecided comparison.
pub fn form(case: &Case, prec: u32) -> Option<Box<dyn ExactForm>> {
    crate::family::exact_form(case, prec)
}

/// `Some` when N·C·D is within [`MAX_EXACT_WORK`].
pub(crate) fn within_budget(n: usize, c: usize, d: usize) -> Option<()> {
    let work = n.checked_mul(c)?.checked_mul(d.max(1))?;
    (work <= MAX_EXACT_WORK).then_some(())
}

/// The exact zero test of one case across the rounds of the escalation loop. The exact
/// form is built once it can be (every comparison it makes decided, at some precision)
/// and then reused: a decided comparison stays true at every higher precision, and the
/// exact geometry (N·C·D rational multiply-adds) and the rows' partitions are computed once.
pub struct ZeroTest<'a> {
    case: &'a Case,
    form: Option<Box<dyn ExactForm>>,
}

impl<'a> ZeroTest<'a> {
    /// The test of `case`; nothing is computed until a value needs it.
    pub fn new(case: &'a Case) -> ZeroTest<'a> {
        ZeroTest { case, form: None }
    }

    /// Which of the given values are proven exactly 0: `places` are (section, name,
    /// row-major index) of the answer, `prec` the working precision of this round; each
    /// answer is `true` only with a proof.
    pub fn proven(&mut self, prec: u32, places: &[(&str, &str, usize)]) -> Vec<bool> {
        if self.form.is_none() {
            self.form = form(self.case, prec);
        }
        let Some(form) = &self.form else {
            return vec![false; places.len()];
        };
        places
            .iter()
            .map(|&(section, name, index)| {
                section == "gradients"
                    && form
                        .gradient(name, index)
                        .is_some_and(|c| vanishes(form.rows(), &c))
            })
            .collect()
    }
}
