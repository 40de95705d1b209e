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

use crate::fast::Real;
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

/// The angle θ ∈ [0, π] between two rows in binary64 and its sine, by Kahan's
/// θ = 2·atan2(‖x̂ − ŵ‖, ‖x̂ + ŵ‖): accurate to a few ulps of θ at every angle, where acos
/// of a rounded cos θ is 0 (or π) for every θ below √ε (about 10⁻⁸ in binary64). sin θ is
/// taken from the smaller of θ and π − θ = 2·atan2(‖x̂ + ŵ‖, ‖x̂ − ŵ‖), so that it stays
/// exact to a few ulps near π too, where θ itself rounds to π; it is 0 exactly at the poles
/// only. Each row is scaled by its largest |entry| first, so that no square overflows or
/// underflows.
///
/// Rows of either dtype are read in binary64 (exactly), entry by entry, with no copy: the
/// fast path calls this once per batch row.
pub(crate) fn angle<T: Real>(x: &[T], w: &[T]) -> (f64, f64) {
    // (largest |entry|, ‖v/largest‖) of a row; a zero row's unit entries are 0
    let scale = |v: &[T]| {
        let top = v.iter().fold(0.0f64, |a, e| a.max(e.as_f64().abs()));
        let n = v
            .iter()
            .map(|e| (e.as_f64() / top) * (e.as_f64() / top))
            .sum::<f64>()
            .sqrt();
        (top, n)
    };
    let unit = |e: &T, (top, n): (f64, f64)| {
        if top == 0.0 {
            0.0
        } else {
            e.as_f64() / top / n
        }
    };
    let (sx, sw) = (scale(x), scale(w));
    let (mut minus, mut plus) = (0.0, 0.0);
    for (a, b) in x.iter().zip(w) {
        let (a, b) = (unit(a, sx), unit(b, sw));
        minus += (a - b) * (a - b);
        plus += (a + b) * (a + b);
    }
    let (minus, plus) = (minus.sqrt(), plus.sqrt());
    let theta = 2.0 * minus.atan2(plus);
    let sin = if minus <= plus {
        theta.sin()
    } else {
        (2.0 * plus.atan2(minus)).sin()
    };
    (theta, sin)
}

/// g(`c`) and dg/dcos θ of `margin` in binary64, where `c` is cos θ and `(theta,
/// sin_theta)` the caller's θ and sin θ (by [`angle`], accurate where `c` has rounded to
/// ±1); the switches compare `c` itself. sin θ = 0 (θ exactly 0 or π) is a pole.
pub(crate) fn target(margin: &Margin, c: f64, (theta, sin_theta): (f64, f64)) -> Target {
    let angular = |m1: f64, m2: f64, m3: f64| -> (f64, Option<f64>) {
        let a = m1 * theta + m2;
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
