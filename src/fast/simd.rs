//! One run-time dispatch for the fast paths' row kernels.
//!
//! Each row kernel is written once, as portable Rust marked `#[inline(always)]`.
//! [`row_kernel!`](crate::row_kernel) wraps it in a function that calls the best of three
//! copies the CPU runs: one compiled with AVX-512 (F, VL, BW, DQ, with AVX2 and FMA), whose
//! loops the compiler vectorizes 16 f32 or 8 f64 lanes wide; one with AVX2 + FMA (after
//! faer's AVX kernels, plain SSE code pays a state-transition penalty on every instruction,
//! ten times a row loop's cost); and the portable code elsewhere. Every copy computes the
//! same operations in the same order: no kernel calls `mul_add`, Rust never contracts a
//! multiply and an add into an FMA by itself, and without fast-math flags the compiler
//! never reorders a floating-point sum, whatever the vector width. So the results are
//! bit-identical (tested by `tests/fast_paths` for every set the CPU has).
//! [`limit_kernels`] caps the set used: to test exactly that, and to measure an AVX2-only
//! or portable machine on an AVX-512 one (`lossref bench --kernels`).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction sets of the row kernels' copies, from the least to the best.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernels {
    /// Plain Rust for the target's baseline (SSE2 on x86-64).
    Portable,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512 F, VL, BW and DQ (with AVX2 + FMA).
    Avx512,
}

impl Kernels {
    /// Every set, from the least to the best.
    pub const ALL: [Kernels; 3] = [Kernels::Portable, Kernels::Avx2, Kernels::Avx512];

    /// The name `lossref bench --kernels` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            Kernels::Avx2 => "avx2",
            Kernels::Avx512 => "avx512",
        }
    }

    /// The set named `name` (`None`: no such set).
    pub fn parse(name: &str) -> Option<Kernels> {
        Kernels::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The best set this CPU runs.
    pub fn detected() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            if avx2 && has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512dq") {
                return Kernels::Avx512;
            }
            if avx2 {
                return Kernels::Avx2;
            }
        }
        Kernels::Portable
    }
}

impl fmt::Display for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

static LIMIT: AtomicU8 = AtomicU8::new(Kernels::Avx512 as u8);

/// Caps the row kernels at `best`: each then runs the best copy that is at most `best` and
/// that the CPU has. The results are the same bits whatever the cap.
pub fn limit_kernels(best: Kernels) {
    LIMIT.store(best as u8, Ordering::Relaxed);
}

/// The set the row kernels run now: the best the CPU has, within [`limit_kernels`]'s cap.
pub fn kernels() -> Kernels {
    let limit = match LIMIT.load(Ordering::Relaxed) {
        0 => Kernels::Portable,
        1 => Kernels::Avx2,
        _ => Kernels::Avx512,
    };
    limit.min(Kernels::detected())
}

/// `true`: every row kernel runs its portable copy; `false`: the best copy the CPU has.
pub fn force_portable(on: bool) {
    limit_kernels(if on {
        Kernels::Portable
    } else {
        Kernels::Avx512
    });
}

/// True when the row kernels run their AVX2 + FMA or AVX-512 copies.
pub fn avx2_enabled() -> bool {
    kernels() >= Kernels::Avx2
}

/// `row_kernel!(fn name<T: Bound>(arg: Type, …) -> Ret => kernel);` defines `name`,
/// which calls `kernel(arg, …)` compiled with AVX-512 or AVX2 + FMA as [`kernels`] says,
/// and the portable `kernel` otherwise. `kernel` should be `#[inline(always)]` so that it
/// is compiled into each copy with that copy's target features.
#[macro_export]
#[doc(hidden)]
macro_rules! row_kernel {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$t:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty => $kernel:path) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$t: $bound>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512<$t: $bound>($($arg: $ty),*) -> $ret {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2<$t: $bound>($($arg: $ty),*) -> $ret {
                    $kernel($($arg),*)
                }
                match $crate::fast::simd::kernels() {
                    // SAFETY: kernels() detected AVX-512 F/VL/BW/DQ, AVX2 and FMA at run time.
                    $crate::fast::simd::Kernels::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: kernels() detected AVX2 and FMA at run time.
                    $crate::fast::simd::Kernels::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::fast::simd::Kernels::Portable => {}
                }
            }
            $kernel($($arg),*)
        }
    };
}
