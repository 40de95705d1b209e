//! Closed intervals over `rug::Float` with directed rounding.
//!
//! An [`Interval`] `[lo, hi]` stands for one unknown real number `x` with `lo ≤ x ≤ hi`.
//! Every operation rounds its lower end toward −∞ and its upper end toward +∞ (MPFR's
//! `Round::Down` / `Round::Up` are correctly rounded in those directions), so the result
//! encloses the exact result of the operation applied to every point of the operands.
//! This is the certified core of SPEC §3: a reference value is an enclosure, and the
//! escalation loop in [`crate::mp::certify`] narrows it until it decides a binary64.
//!
//! Precision: each result is computed at the larger precision of its operands. Points
//! built from `f64` are exact whenever the precision is at least 53 bits.
//!
//! Operations that leave their domain do not panic: they return an enclosure that is
//! still valid (for example `[-∞, +∞]` for a division by an interval that contains 0,
//! or `log` of a non-positive lower end giving `-∞`), so the escalation loop can never
//! certify a value that is not defined. Callers reject undefined points before they get
//! here (SPEC §1, "Undefined points").

use rug::float::{Constant, Round, Special};
use rug::ops::{AssignRound, Pow};
use rug::Assign;
use rug::Float;
use std::cmp::Ordering;
use std::fmt;

thread_local! {
    /// A reusable scratch number for width tests (no allocation per test).
    static SCRATCH: std::cell::RefCell<Float> = std::cell::RefCell::new(Float::new(64));
}

/// An enclosure `[lo, hi]` of one real number.
#[derive(Clone, PartialEq)]
pub struct Interval {
    lo: Float,
    hi: Float,
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {}]",
            self.lo.to_string_radix(10, Some(25)),
            self.hi.to_string_radix(10, Some(25))
        )
    }
}

fn down<T>(prec: u32, val: T) -> Float
where
    Float: rug::ops::AssignRound<T, Round = Round, Ordering = Ordering>,
{
    Float::with_val_round(prec, val, Round::Down).0
}

fn up<T>(prec: u32, val: T) -> Float
where
    Float: rug::ops::AssignRound<T, Round = Round, Ordering = Ordering>,
{
    Float::with_val_round(prec, val, Round::Up).0
}

/// e^x rounded down and up at `p` bits: by [`crate::mp::fast_exp`] where it applies, else
/// by MPFR (rounded down, and the next float up unless exact).
fn exp_ends(x: &Float, p: u32) -> (Float, Float) {
    if let Some(ends) = crate::mp::fast_exp::exp_bounds(x, p) {
        return ends;
    }
    let (lo, dir) = Float::with_val_round(p, x.exp_ref(), Round::Down);
    let mut lo_up = lo.clone();
    if dir != Ordering::Equal {
        lo_up.next_up();
    }
    (lo, lo_up)
}

fn min_f(a: Float, b: Float) -> Float {
    if a <= b {
        a
    } else {
        b
    }
}

fn max_f(a: Float, b: Float) -> Float {
    if a >= b {
        a
    } else {
        b
    }
}

impl Interval {
    /// The exact point `x`, stored at `prec` bits (exact when `prec ≥ 53`; otherwise the
    /// tightest enclosure at `prec` bits).
    pub fn from_f64(prec: u32, x: f64) -> Interval {
        Interval {
            lo: down(prec, x),
            hi: up(prec, x),
        }
    }

    /// The exact integer `n` at `prec` bits (or its tightest enclosure).
    pub fn from_i64(prec: u32, n: i64) -> Interval {
        Interval {
            lo: down(prec, n),
            hi: up(prec, n),
        }
    }

    /// The tightest enclosure of the exact rational `q` at `prec` bits (the point itself
    /// when it fits).
    pub fn from_rational(prec: u32, q: &rug::Rational) -> Interval {
        Interval {
            lo: down(prec, q),
            hi: up(prec, q),
        }
    }

    /// The point given by an exact `Float`, kept at its own precision.
    pub fn from_float(x: Float) -> Interval {
        Interval {
            lo: x.clone(),
            hi: x,
        }
    }

    /// The interval `[lo, hi]`. Returns `None` if `lo > hi` or either end is NaN.
    pub fn new(lo: Float, hi: Float) -> Option<Interval> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            None
        } else {
            Some(Interval { lo, hi })
        }
    }

    /// The tightest enclosure of the exact `x` at `prec` bits (the point itself when it
    /// fits).
    pub fn enclosing(prec: u32, x: &Float) -> Interval {
        Interval {
            lo: down(prec, x),
            hi: up(prec, x),
        }
    }

    /// An enclosure of π at `prec` bits.
    pub fn pi(prec: u32) -> Interval {
        Interval {
            lo: down(prec, Constant::Pi),
            hi: up(prec, Constant::Pi),
        }
    }

    /// The whole extended real line, the enclosure of an undefined result.
    pub fn entire(prec: u32) -> Interval {
        Interval {
            lo: Float::with_val(prec, Special::NegInfinity),
            hi: Float::with_val(prec, Special::Infinity),
        }
    }

    /// Lower end.
    pub fn lo(&self) -> &Float {
        &self.lo
    }

    /// Upper end.
    pub fn hi(&self) -> &Float {
        &self.hi
    }

    /// The working precision of this interval: the larger of its ends' precisions.
    pub fn prec(&self) -> u32 {
        self.lo.prec().max(self.hi.prec())
    }

    fn prec2(&self, other: &Interval) -> u32 {
        self.prec().max(other.prec())
    }

    /// True when the enclosure is a single point (the value is known exactly).
    pub fn is_point(&self) -> bool {
        self.lo == self.hi
    }

    /// True when both ends are finite.
    pub fn is_finite(&self) -> bool {
        self.lo.is_finite() && self.hi.is_finite()
    }

    /// True when `x ∈ [lo, hi]`.
    pub fn contains(&self, x: &Float) -> bool {
        &self.lo <= x && x <= &self.hi
    }

    /// True when 0 lies in the enclosure.
    pub fn contains_zero(&self) -> bool {
        self.lo <= 0 && self.hi >= 0
    }

    /// True when the two enclosures share a point (so they may be the same number).
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// `hi − lo`, rounded up.
    pub fn width(&self) -> Float {
        up(self.prec(), &self.hi - &self.lo)
    }

    /// The midpoint `(lo + hi)/2`, exact (computed with one extra bit over the ends).
    pub fn mid(&self) -> Float {
        let p = self.prec() + 1;
        let mut m = Float::with_val(p, &self.lo + &self.hi);
        m /= 2u32;
        m
    }

    /// `max(|lo|, |hi|)`: the magnitude bound of the enclosure.
    pub fn mag(&self) -> Float {
        let a = Float::with_val(self.prec(), self.lo.abs_ref());
        let b = Float::with_val(self.prec(), self.hi.abs_ref());
        max_f(a, b)
    }

    /// Certified comparison. `Some(ordering)` when the enclosures decide it (`Equal` only
    /// when both are the same point); `None` when they overlap and the order is undecided.
    pub fn compare(&self, other: &Interval) -> Option<Ordering> {
        if self.hi < other.lo {
            Some(Ordering::Less)
        } else if self.lo > other.hi {
            Some(Ordering::Greater)
        } else if self.is_point() && other.is_point() && self.lo == other.lo {
            Some(Ordering::Equal)
        } else {
            None
        }
    }

    /// Certified sign: `Some(Less)` for negative, `Some(Greater)` for positive, `Some(Equal)`
    /// for the exact point 0, `None` when the enclosure straddles 0.
    pub fn sign(&self) -> Option<Ordering> {
        if self.hi < 0 {
            Some(Ordering::Less)
        } else if self.lo > 0 {
            Some(Ordering::Greater)
        } else if self.lo == 0 && self.hi == 0 {
            Some(Ordering::Equal)
        } else {
            None
        }
    }

    /// The smallest interval that contains both: the enclosure of a value known to be one of
    /// two (an undecided branch).
    pub fn hull(&self, other: &Interval) -> Interval {
        let p = self.prec2(other);
        Interval {
            lo: down(p, min_f(self.lo.clone(), other.lo.clone())),
            hi: up(p, max_f(self.hi.clone(), other.hi.clone())),
        }
    }

    /// `self ∩ other`: the enclosure narrowed by a known range (for instance cos θ ∈ [−1, 1]).
    /// `None` when they are disjoint.
    pub fn intersect(&self, other: &Interval) -> Option<Interval> {
        let lo = max_f(self.lo.clone(), other.lo.clone());
        let hi = min_f(self.hi.clone(), other.hi.clone());
        Interval::new(lo, hi)
    }

    /// True when the enclosure excludes 0 and its width is at most 2^−`bits` times its
    /// smallest magnitude.
    pub fn relative_width_below(&self, bits: u32) -> bool {
        if self.contains_zero() || !self.is_finite() {
            return false;
        }
        if self.is_point() {
            return true;
        }
        let smallest = if self.lo > 0 { &self.lo } else { &self.hi };
        SCRATCH.with(|scratch| {
            let mut width = scratch.borrow_mut();
            width.set_prec(self.prec());
            width.assign_round(&self.hi - &self.lo, Round::Up);
            let (Some(ew), Some(es)) = (width.get_exp(), smallest.get_exp()) else {
                return false;
            };
            // width < 2^ew and |smallest| ≥ 2^(es − 1): decided by the exponents unless
            // they are within two of the threshold, where the exact comparison decides.
            let margin = i64::from(es) - 1 - i64::from(bits) - i64::from(ew);
            if margin >= 0 {
                return true;
            }
            if margin < -2 {
                return false;
            }
            let mut bound = Float::with_val(self.prec(), smallest.abs_ref());
            bound >>= bits;
            *width <= bound
        })
    }

    /// The enclosure intersected with [−1, 1] when the two meet, unchanged otherwise (a
    /// cosine's enclosure overshoots ±1 by rounding only).
    pub fn clamp_unit(mut self) -> Interval {
        if self.lo <= 1 && self.hi >= -1 {
            if self.lo < -1 {
                self.lo.assign(-1);
            }
            if self.hi > 1 {
                self.hi.assign(1);
            }
        }
        self
    }

    /// `self + other`.
    pub fn add(&self, other: &Interval) -> Interval {
        let p = self.prec2(other);
        Interval {
            lo: down(p, &self.lo + &other.lo),
            hi: up(p, &self.hi + &other.hi),
        }
    }

    /// `*self = self.add(other)`, in place: the same two roundings, without allocating
    /// (an end below the working precision is first widened to it, exactly).
    pub fn add_assign(&mut self, other: &Interval) {
        use rug::ops::AddAssignRound;
        let p = self.prec2(other);
        for end in [&mut self.lo, &mut self.hi] {
            if end.prec() != p {
                end.set_prec(p);
            }
        }
        self.lo.add_assign_round(&other.lo, Round::Down);
        self.hi.add_assign_round(&other.hi, Round::Up);
    }

    /// `self − other`.
    pub fn sub(&self, other: &Interval) -> Interval {
        let p = self.prec2(other);
        Interval {
            lo: down(p, &self.lo - &other.hi),
            hi: up(p, &self.hi - &other.lo),
        }
    }

    /// `−self` (exact).
    pub fn neg(&self) -> Interval {
        Interval {
            lo: Float::with_val(self.lo.prec(), -&self.hi),
            hi: Float::with_val(self.hi.prec(), -&self.lo),
        }
    }

    /// `self × other`: the hull of the four end products.
    pub fn mul(&self, other: &Interval) -> Interval {
        let p = self.prec2(other);
        // Operands of one sign each: the extreme products are known, two roundings suffice
        // (the same ends that the four-product rule below picks, since rounding is monotone).
        let (s_pos, s_neg) = (self.lo >= 0, self.hi <= 0);
        let (o_pos, o_neg) = (other.lo >= 0, other.hi <= 0);
        let pair = match (s_pos, s_neg, o_pos, o_neg) {
            (true, _, true, _) => Some(((&self.lo, &other.lo), (&self.hi, &other.hi))),
            (true, _, _, true) => Some(((&self.hi, &other.lo), (&self.lo, &other.hi))),
            (_, true, true, _) => Some(((&self.lo, &other.hi), (&self.hi, &other.lo))),
            (_, true, _, true) => Some(((&self.hi, &other.hi), (&self.lo, &other.lo))),
            _ => None,
        };
        if let Some(((a, b), (c, d))) = pair {
            let lo = down(p, a * b);
            let hi = up(p, c * d);
            if !lo.is_nan() && !hi.is_nan() {
                return Interval { lo, hi };
            }
        }
        let ends = [
            (&self.lo, &other.lo),
            (&self.lo, &other.hi),
            (&self.hi, &other.lo),
            (&self.hi, &other.hi),
        ];
        let mut lo: Option<Float> = None;
        let mut hi: Option<Float> = None;
        for (a, b) in ends {
            // 0 × ∞ is NaN in MPFR; the true product of a finite number in a range with
            // an unbounded one is unbounded, so such a pair widens to the whole line.
            let l = down(p, a * b);
            let h = up(p, a * b);
            if l.is_nan() || h.is_nan() {
                return Interval::entire(p);
            }
            lo = Some(match lo {
                None => l,
                Some(x) => min_f(x, l),
            });
            hi = Some(match hi {
                None => h,
                Some(x) => max_f(x, h),
            });
        }
        match (lo, hi) {
            (Some(lo), Some(hi)) => Interval { lo, hi },
            _ => Interval::entire(p),
        }
    }

    /// `self × x` for an exact binary64 `x` (no enclosure of `x` is built).
    pub fn mul_f64(&self, x: f64) -> Interval {
        let p = self.prec();
        let (lo, hi) = if x >= 0.0 {
            (down(p, &self.lo * x), up(p, &self.hi * x))
        } else {
            (down(p, &self.hi * x), up(p, &self.lo * x))
        };
        if lo.is_nan() || hi.is_nan() || x.is_nan() {
            return Interval::entire(p);
        }
        Interval { lo, hi }
    }

    /// `self / other`. The whole line if `other` contains 0.
    pub fn div(&self, other: &Interval) -> Interval {
        let p = self.prec2(other);
        if other.contains_zero() {
            return Interval::entire(p);
        }
        // Divide directly for a tight result when the divisor is a point (the usual case).
        if other.is_point() {
            let d = &other.lo;
            return Interval {
                lo: min_f(down(p, &self.lo / d), down(p, &self.hi / d)),
                hi: max_f(up(p, &self.lo / d), up(p, &self.hi / d)),
            };
        }
        // 1/other is monotone decreasing on an interval of one sign.
        let recip = Interval {
            lo: down(p, 1 / &other.hi),
            hi: up(p, 1 / &other.lo),
        };
        self.mul(&recip)
    }

    /// `self / k` for an exact non-zero integer `k`.
    pub fn div_i64(&self, k: i64) -> Interval {
        self.div(&Interval::from_i64(self.prec().max(64), k))
    }

    /// `√self`; the lower end is clamped at 0 (callers pass non-negative quantities).
    pub fn sqrt(&self) -> Interval {
        let p = self.prec();
        if self.hi < 0 {
            return Interval::entire(p);
        }
        let lo = if self.lo < 0 {
            Float::with_val(p, 0)
        } else {
            down(p, self.lo.sqrt_ref())
        };
        Interval {
            lo,
            hi: up(p, self.hi.sqrt_ref()),
        }
    }

    /// `e^self` (increasing), with one exponential for a narrow enclosure: the lower end
    /// is e^lo rounded down and e^lo rounded up comes with it (from
    /// [`crate::mp::fast_exp`] at up to 200 bits, else MPFR's rounded-down value and the
    /// next float above it, as MPFR's ternary result says); since e^hi = e^lo·e^w with
    /// w = hi − lo, and e^w = 1 + w + w²(1/2 + w/6 + …) ≤ 1 + w + w² for 0 ≤ w ≤ 1, the upper
    /// end is (e^lo rounded up) + (e^lo rounded up)·w·(1 + w), each step rounded up (the
    /// correction, a bound, at 64 bits). Wider enclosures, and ends that are not normal
    /// numbers, take both exponentials.
    pub fn exp(&self) -> Interval {
        let p = self.prec();
        let (lo, lo_up) = exp_ends(&self.lo, p);
        if self.is_point() {
            return Interval { lo, hi: lo_up };
        }
        // w and the correction e^lo·w·(1 + w) are upper bounds, so 64 bits suffice for them.
        let w = up(64, &self.hi - &self.lo);
        if lo.is_normal() && w.is_finite() && w <= 0.0009765625 {
            let one_plus_w = up(64, &w + 1u32);
            let growth = up(64, &w * &one_plus_w);
            let correction = up(64, &lo_up * &growth);
            return Interval {
                hi: up(p, &lo_up + &correction),
                lo,
            };
        }
        Interval {
            lo,
            hi: exp_ends(&self.hi, p).1,
        }
    }

    /// `e^self − 1` (increasing), without the cancellation of `exp(x) − 1` near 0.
    pub fn exp_m1(&self) -> Interval {
        let p = self.prec();
        Interval {
            lo: down(p, self.lo.exp_m1_ref()),
            hi: up(p, self.hi.exp_m1_ref()),
        }
    }

    /// `ln self` (increasing); a non-positive lower end gives `−∞`.
    pub fn ln(&self) -> Interval {
        let p = self.prec();
        if self.hi <= 0 {
            return Interval::entire(p);
        }
        let lo = if self.lo <= 0 {
            Float::with_val(p, Special::NegInfinity)
        } else {
            down(p, self.lo.ln_ref())
        };
        Interval {
            lo,
            hi: up(p, self.hi.ln_ref()),
        }
    }

    /// `ln(1 + self)` (increasing); a lower end ≤ −1 gives `−∞`.
    pub fn ln_1p(&self) -> Interval {
        let p = self.prec();
        if self.hi <= -1 {
            return Interval::entire(p);
        }
        let lo = if self.lo <= -1 {
            Float::with_val(p, Special::NegInfinity)
        } else {
            down(p, self.lo.ln_1p_ref())
        };
        Interval {
            lo,
            hi: up(p, self.hi.ln_1p_ref()),
        }
    }

    /// `acos self` (decreasing on [−1, 1]); the operand is clamped to [−1, 1], since every
    /// caller passes a cosine whose enclosure may overshoot by rounding only.
    pub fn acos(&self) -> Interval {
        let p = self.prec();
        if self.lo > 1 || self.hi < -1 {
            return Interval::entire(p);
        }
        let top = min_f(self.hi.clone(), Float::with_val(p, 1));
        let bottom = max_f(self.lo.clone(), Float::with_val(p, -1));
        Interval {
            lo: down(p, top.acos_ref()),
            hi: up(p, bottom.acos_ref()),
        }
    }

    /// `cos self`. Exact extrema `cos(nπ) = (−1)^n` are included whenever `nπ` may lie in
    /// the enclosure; between them cos is monotone, so the ends decide the rest.
    pub fn cos(&self) -> Interval {
        self.periodic(0, |x, r| Float::with_val_round(x.prec(), x.cos_ref(), r).0)
    }

    /// `sin self`, with extrema `sin(π/2 + nπ) = (−1)^n` handled as in [`Interval::cos`].
    pub fn sin(&self) -> Interval {
        self.periodic(1, |x, r| Float::with_val_round(x.prec(), x.sin_ref(), r).0)
    }

    /// Shared range analysis for cos (`half_offset = 0`) and sin (`half_offset = 1`):
    /// the extrema lie at `t = x/π − half_offset/2 ∈ ℤ`, with value `(−1)^t`.
    fn periodic(&self, half_offset: u32, f: impl Fn(&Float, Round) -> Float) -> Interval {
        let p = self.prec();
        let unit = || Interval {
            lo: Float::with_val(p, -1),
            hi: Float::with_val(p, 1),
        };
        if !self.is_finite() {
            return unit();
        }
        let pi = Interval::pi(p + 16);
        let half = Interval::from_f64(p + 16, 0.5 * f64::from(half_offset));
        let t = self.div(&pi).sub(&half);
        // Candidate integers t in [⌈t.lo⌉, ⌊t.hi⌋], taken exactly in MPFR: rounding t to
        // binary64 first would admit an extremum within 2^−53 of the enclosure (cos near π
        // would then include −1 at every precision, and never certify).
        let first = Float::with_val(p + 16, t.lo.ceil_ref()).to_f64();
        let last = Float::with_val(p + 16, t.hi.floor_ref()).to_f64();
        // Beyond 2^50 half-turns the f64 bookkeeping of t would not be exact.
        let limit = 2f64.powi(50);
        if !(first.abs() <= limit && last.abs() <= limit) || last - first >= 2.0 {
            return unit();
        }
        let a = &self.lo;
        let b = &self.hi;
        let mut lo = min_f(f(a, Round::Down), f(b, Round::Down));
        let mut hi = max_f(f(a, Round::Up), f(b, Round::Up));
        let mut n = first;
        while n <= last {
            if n.rem_euclid(2.0) == 0.0 {
                hi = Float::with_val(p, 1);
            } else {
                lo = Float::with_val(p, -1);
            }
            n += 1.0;
        }
        Interval {
            lo: lo.max(&Float::with_val(p, -1)),
            hi: hi.min(&Float::with_val(p, 1)),
        }
    }

    /// `self^n` for an integer `n ≥ 0`, tight also for even powers of an interval that
    /// contains 0.
    pub fn powi(&self, n: u32) -> Interval {
        let p = self.prec();
        if n == 0 {
            return Interval::from_i64(p, 1);
        }
        let pow_down = |x: &Float| down(p, x.pow(n));
        let pow_up = |x: &Float| up(p, x.pow(n));
        if n % 2 == 1 || self.lo >= 0 {
            Interval {
                lo: pow_down(&self.lo),
                hi: pow_up(&self.hi),
            }
        } else if self.hi <= 0 {
            Interval {
                lo: pow_down(&self.hi),
                hi: pow_up(&self.lo),
            }
        } else {
            Interval {
                lo: Float::with_val(p, 0),
                hi: pow_up(&self.mag()),
            }
        }
    }

    /// Sum of a sequence (the exact 0 for an empty one).
    pub fn sum<'a>(prec: u32, items: impl IntoIterator<Item = &'a Interval>) -> Interval {
        let mut acc = Interval::from_i64(prec, 0);
        for x in items {
            acc.add_assign(x);
        }
        acc
    }
}
