//! The target rules of the normalized-margin family (SPEC §1) in binary64: the one binary64
//! form of g(cos θ) and dg/dcos θ, used by the fast paths (which evaluate the rule in f64
//! for both dtypes) and by the error scales of [`crate::precision`] and
//! [`crate::tolerance`]. The interval form is the reference's
//! ([`crate::family::normalized::reference`]).
//!
//! | rule | g(cos θ) | dg/dcos θ |
//! |---|---|---|
//! | normface | cos θ | 1 |
//! | cosface, amsoftmax | cos θ − m | 1 |
//! | arcface `none` | cos(θ + m) | sin(θ + m)/sin θ |
//! | arcface `thmm` | as `none` if cos θ > cos(π − m), else cos θ − m·sin m | …, else 1 |
//! | arcface `easy` | as `none` if cos θ > 0, else cos θ | …, else 1 |
//! | combined | cos(m1·θ + m2) − m3 | m1·sin(m1·θ + m2)/sin θ |
//!
//! With `margin_grad = detached` the slope of arcface is 1 on both sides.

use crate::spec::{Boundary, Margin, MarginGrad};

/// The target rule at one cosine: its value, its slope, and why the full gradient does
/// not exist there, if it does not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Target {
    /// g(cos θ).
    pub value: f64,
    /// dg/dcos θ (+∞ where it is unbounded).
    pub slope: f64,
    /// Why the requested gradient does not exist at this cosine (SPEC §1, undefined points):
    /// a slope that is unbounded when sin θ is 0, or the `easy` switch hit exactly
    /// (cos θ = 0), where the target logit jumps. The value and slope are then those of
    /// the side the rule's comparison takes.
    pub undefined: Option<&'static str>,
}

/// g(`c`) and dg/dcos θ of `margin` in binary64, where `c` is cos θ and `sin_theta` the
/// caller's sin θ (the fast path's √((1 − c)(1 + c)) of a clamped cosine; the error
/// scales floor it away from 0). θ is acos of `c` clamped to [−1, 1]; the switches
/// compare `c` itself.
pub(crate) fn target(margin: &Margin, c: f64, sin_theta: f64) -> Target {
    let angular = |m1: f64, m2: f64, m3: f64| -> (f64, Option<f64>) {
        let a = m1 * c.clamp(-1.0, 1.0).acos() + m2;
        let value = a.cos() - m3;
        if m1 == 0.0 {
            return (value, Some(0.0));
        }
        if sin_theta == 0.0 {
            // the limits of m1·sin(m1θ + m2)/sin θ, as in the reference
            if m2 != 0.0 || (c < 0.0 && m1.fract() != 0.0) {
                return (value, None);
            }
            let sq = m1 * m1;
            return (
                value,
                Some(if c < 0.0 && m1 % 2.0 == 0.0 { -sq } else { sq }),
            );
        }
        (value, Some(m1 * a.sin() / sin_theta))
    };
    let defined = |value: f64, slope: f64| Target {
        value,
        slope,
        undefined: None,
    };
    match *margin {
        Margin::None => defined(c, 1.0),
        Margin::Additive { m } => defined(c - m, 1.0),
        Margin::Combined { m1, m2, m3 } => match angular(m1, m2, m3) {
            (value, Some(slope)) => defined(value, slope),
            (value, None) => Target {
                value,
                slope: f64::INFINITY,
                undefined: Some(
                    "cos(m1·θ + m2) − m3 has an unbounded derivative (dθ/dcos θ is infinite)",
                ),
            },
        },
        Margin::Angular { m, boundary, grad } => {
            let use_margin = match boundary {
                Boundary::None => true,
                Boundary::Thmm => c > (std::f64::consts::PI - m).cos(),
                Boundary::Easy => c > 0.0,
            };
            let (value, slope) = if use_margin {
                angular(1.0, m, 0.0)
            } else if boundary == Boundary::Thmm {
                (c - m * m.sin(), Some(1.0))
            } else {
                (c, Some(1.0))
            };
            let mut t = defined(value, slope.unwrap_or(f64::INFINITY));
            if grad == MarginGrad::Detached {
                t.slope = 1.0;
            } else if slope.is_none() {
                t.undefined = Some(
                    "arcface's cos(θ + m) has an unbounded derivative (dθ/dcos θ is infinite)",
                );
            } else if boundary == Boundary::Easy && c == 0.0 {
                t.undefined = Some(
                    "cos θ = 0 is the `easy` switch: arcface's target logit jumps from \
                     cos θ to cos(θ + m) = −sin m and the gradient does not exist",
                );
            }
            t
        }
    }
}
