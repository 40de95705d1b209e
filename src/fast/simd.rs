//! One run-time dispatch for the fast paths' row kernels.
//!
//! Each row kernel is written once, as portable Rust marked `#[inline(always)]`.
//! [`avx2_dispatch!`](crate::avx2_dispatch) wraps it in a function that, on x86-64 CPUs with AVX2 and FMA,
//! calls a copy compiled with those target features (after faer's AVX kernels, plain SSE
//! code pays a state-transition penalty on every instruction, ten times a row loop's cost),
//! and the portable code elsewhere. Both copies compute the same operations in the same
//! order: no kernel calls `mul_add`, and Rust never contracts a multiply and an add into an
//! FMA by itself, so the results are bit-identical (tested by `tests/fast_paths`).
//! [`force_portable`] turns the AVX2 copies off, to test exactly that.

use std::sync::atomic::{AtomicBool, Ordering};

static PORTABLE: AtomicBool = AtomicBool::new(false);

/// `true`: every row kernel runs its portable copy; `false` (the default): the AVX2 + FMA
/// copy where the CPU has them. The results are the same bits either way.
pub fn force_portable(on: bool) {
    PORTABLE.store(on, Ordering::Relaxed);
}

/// True when the row kernels run their AVX2 + FMA copies.
pub fn avx2_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !PORTABLE.load(Ordering::Relaxed)
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `avx2_dispatch!(fn name<T: Bound>(arg: Type, …) -> Ret => kernel);` defines `name`,
/// which calls `kernel(arg, …)` compiled with AVX2 + FMA when [`avx2_enabled`], and the
/// portable `kernel` otherwise. `kernel` should be `#[inline(always)]` so that it is
/// compiled into each copy with that copy's target features.
#[macro_export]
#[doc(hidden)]
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$t:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty => $kernel:path) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$t: $bound>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2<$t: $bound>($($arg: $ty),*) -> $ret {
                    $kernel($($arg),*)
                }
                if $crate::fast::simd::avx2_enabled() {
                    // SAFETY: avx2_enabled() detected AVX2 and FMA at run time.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}
