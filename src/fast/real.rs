//! The floating-point types the fast paths are generic over (f32 and f64), and the
//! error-free transformations they use.

use crate::spec::Dtype;
use std::fmt::{Debug, Display};

/// f32 or f64.
pub trait Real:
    num_traits::Float + faer::traits::ComplexField + Debug + Display + Default + Send + Sync + 'static
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// The format as a [`Dtype`].
    const DTYPE: Dtype;
    /// Bits of significand precision (24 or 53).
    const MANTISSA_BITS: u32;
    /// Exponent of the smallest positive subnormal (−149 or −1074).
    const MIN_SUBNORMAL_EXP: i32;
    /// Rounds an f64 to this type (exact for f64).
    fn of_f64(x: f64) -> Self;
    /// Widens to f64 (exact).
    fn as_f64(self) -> f64;
    /// The integer `n` as this type (rounded if beyond 2^24 for f32).
    fn of_usize(n: usize) -> Self;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    const DTYPE: Dtype = Dtype::Float32;
    const MANTISSA_BITS: u32 = 24;
    const MIN_SUBNORMAL_EXP: i32 = -149;
    fn of_f64(x: f64) -> f32 {
        x as f32
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn of_usize(n: usize) -> f32 {
        n as f32
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    const DTYPE: Dtype = Dtype::Float64;
    const MANTISSA_BITS: u32 = 53;
    const MIN_SUBNORMAL_EXP: i32 = -1074;
    fn of_f64(x: f64) -> f64 {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn of_usize(n: usize) -> f64 {
        n as f64
    }
}

/// Knuth's TwoSum: `(s, e)` with `s = fl(a + b)` and `a + b = s + e` exactly (no overflow).
#[inline]
pub fn two_sum<T: Real>(a: T, b: T) -> (T, T) {
    let s = a + b;
    let a1 = s - b;
    let b1 = s - a1;
    (s, (a - a1) + (b - b1))
}

/// Neumaier's compensated sum: error ≈ one rounding plus u²·Σ|x|, independent of length.
pub fn compensated_sum<T: Real>(items: impl IntoIterator<Item = T>) -> T {
    let (mut sum, mut comp) = (T::zero(), T::zero());
    for x in items {
        let (s, e) = two_sum(sum, x);
        sum = s;
        comp += e;
    }
    // An infinite partial sum makes the error terms NaN; the sum itself is then the answer.
    if sum.is_finite() {
        sum + comp
    } else {
        sum
    }
}
