//! SphereFace's annealing schedule for λ (Liu et al. 2017, the authors' Caffe
//! `MarginInnerProduct` layer): training starts close to the plain softmax (λ large, so
//! f_iy ≈ ‖x‖cos θ) and moves towards the full A-Softmax margin as λ decays,
//!
//! λ(iter) = max(λ_min, base·(1 + γ·iter)^(−power)),
//!
//! with the published defaults base = 1000, γ = 0.12, power = 1, λ_min = 5. The value is
//! the `lambda` parameter of `lsoftmax` and `sphereface` cases (SPEC §1).

/// The λ schedule's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LambdaSchedule {
    /// λ at iteration 0.
    pub base: f64,
    /// The decay rate γ.
    pub gamma: f64,
    /// The decay exponent.
    pub power: f64,
    /// The floor λ_min.
    pub min: f64,
}

impl Default for LambdaSchedule {
    /// SphereFace's published defaults: base 1000, γ 0.12, power 1, λ_min 5.
    fn default() -> LambdaSchedule {
        LambdaSchedule {
            base: 1000.0,
            gamma: 0.12,
            power: 1.0,
            min: 5.0,
        }
    }
}

impl LambdaSchedule {
    /// λ at training iteration `iter`: max(λ_min, base·(1 + γ·iter)^(−power)).
    ///
    /// ```
    /// let s = lossref::schedule::LambdaSchedule::default();
    /// assert_eq!(s.at(0), 1000.0);
    /// assert_eq!(s.at(1_000_000), 5.0);
    /// ```
    pub fn at(&self, iter: u64) -> f64 {
        // base / (1 + γ·iter)^power: one rounding fewer than multiplying by a negative power.
        let decayed = self.base / (1.0 + self.gamma * iter as f64).powf(self.power);
        decayed.max(self.min)
    }

    /// The first iteration at which λ reaches its floor λ_min (`None` if it never does:
    /// γ or the power is not positive while base > λ_min).
    pub fn floor_reached_at(&self) -> Option<u64> {
        if self.base <= self.min {
            return Some(0);
        }
        if self.gamma <= 0.0 || self.power <= 0.0 || self.min <= 0.0 {
            return None;
        }
        // base·(1 + γi)^(−p) ≤ λ_min ⇔ i ≥ ((base/λ_min)^(1/p) − 1)/γ
        let estimate = (((self.base / self.min).powf(1.0 / self.power) - 1.0) / self.gamma).ceil();
        let mut i = estimate.max(0.0) as u64;
        // Settle the rounding of powf exactly against `at`.
        while i > 0 && self.at(i - 1) <= self.min {
            i -= 1;
        }
        while self.at(i) > self.min {
            i += 1;
        }
        Some(i)
    }
}
