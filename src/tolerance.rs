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
use crate::precision::{entry, quantities, Quantity};
use crate::spec::{Case, Dtype};

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
    /// How far the value moves per smallest normal number lost to flushed subnormals: 1
    /// for a subnormal result flushed itself; Σ |∂v/∂p| over the probabilities p it is
    /// made of where those intermediates may be flushed and then scaled up (a
    /// normalized-margin gradient multiplies each p_ij by s/‖x_i‖ or s/‖w_j‖).
    pub flush: f64,
}

impl Scale {
    /// The scale of a value with no condition number and no unstable formula to name.
    pub(crate) fn plain(scale: f64, terms: usize) -> Scale {
        Scale {
            scale,
            kappa: 1.0,
            terms,
            unstable: None,
            flush: 1.0,
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

/// The scales of every value of `case`, a case of `dtype`, one [`Group`] per value group of
/// its answer ([`crate::precision::quantities`]), in the answer's order. `reference` holds
/// the exact values rounded to binary64.
///
/// Where the fast path's measure ([`crate::precision::measures`]) already states the
/// conditioning of the mathematics (center, lsoftmax/sphereface, the normalized margins) it is
/// the scale here, at binary64's floor for every dtype (the stricter), except that the
/// normalized margins floor each probability of a float32 case at float32's smallest
/// normal number (gradual underflow keeps only the absolute resolution below it, and the
/// gradients scale that by s/‖x_i‖ or s/‖w_j‖); for softmax,
/// softmax_ce and distill, whose fast paths are held to plain ulps or to the magnitudes
/// summed, the scale adds the relative error that the exp arguments of a straightforward
/// implementation carry (|z − max|·u in e^{z − max}).
pub fn scales(case: &Case, reference: &Answer<f64>, dtype: Dtype) -> Vec<Group> {
    // one Vec<Scale> per group of `quantities(case)`, in its order
    let columns = crate::family::tolerance(case, reference, dtype);
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

/// How the values of one case are judged: SPEC §4's model in the case's dtype, or the
/// limits a precision tier derives (SPEC §6, [`crate::tier`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// F·g(n) ulps of S(v) in this dtype.
    Plain(Dtype),
    /// A tier's A + L + O.
    Tier(crate::tier::TierRule),
}

impl Rule {
    /// The rule of `case` (of corpus dtype `dtype`) in `tier`: the plain model where the
    /// tier adds nothing to it ([`crate::tier::Tier::is_plain`]), else the tier's, with the
    /// stage coefficients the case's family states.
    pub fn of(case: &Case, tier: crate::tier::Tier) -> Rule {
        use crate::tier::TierRule;
        if tier.is_plain() {
            return Rule::Plain(tier.dtype);
        }
        let stages = crate::family::logit_stages(case, TierRule::stage_roundoff(tier));
        Rule::Tier(TierRule::new(tier, &stages))
    }

    /// The dtype of the case the rule judges.
    pub fn dtype(&self) -> Dtype {
        match self {
            Rule::Plain(dtype) => *dtype,
            Rule::Tier(t) => t.tier.dtype,
        }
    }

    /// The allowed ulps of `quantity`'s row in the column the case computes in (float32's
    /// for a 16-bit case).
    fn allowed(&self, quantity: Quantity) -> f64 {
        allowed_ulps(quantity, self.dtype().arithmetic())
    }

    /// The largest error allowed for a value `want` of `group` (row `quantity` of the
    /// table) whose error scale is `scale` and longest sum `terms`.
    pub fn limit(
        &self,
        group: &str,
        quantity: Quantity,
        scale: f64,
        terms: usize,
        want: f64,
    ) -> f64 {
        let allowed = self.allowed(quantity);
        match self {
            Rule::Plain(dtype) => allowed * summation_factor(terms) * dtype.ulp(scale),
            Rule::Tier(t) => t.limit(group, allowed, terms, scale, want),
        }
    }

    /// The limit were subnormals flushed: the tolerance in units of the smallest normal
    /// number of the format the value is returned in (F·g(n) of them), times what a
    /// flushed intermediate moves the value by ([`Scale::flush`]), beside a tier's own
    /// limit.
    pub fn flushed_limit(&self, group: &str, quantity: Quantity, s: &Scale, want: f64) -> f64 {
        let (format, own) = match self {
            Rule::Plain(dtype) => (*dtype, 0.0),
            Rule::Tier(t) => (
                t.returned_in(group),
                self.limit(group, quantity, s.scale, s.terms, want),
            ),
        };
        own + self.allowed(quantity) * summation_factor(s.terms) * format.min_normal() * s.flush
    }
}
