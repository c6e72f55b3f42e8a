//! The one place the core imports its atomics from (the tokio `loom` facade pattern): built with
//! `--cfg loom`, they are loom's instrumented atomics, so the code loom checks is the code that
//! ships.
//!
//! Linux's barriers map as follows (`Documentation/memory-barriers.txt`,
//! `include/linux/atomic/atomic-instrumented.h`):
//! - `smp_mb()` is an explicit SeqCst fence;
//! - value-returning atomics such as `atomic_add_return()` are *fully ordered*: an implied
//!   `smp_mb()` before and after. On x86 the `lock` prefix is that barrier, so
//!   `smp_mb__before_atomic()`/`smp_mb__after_atomic()` are compiler barriers there, as in Linux;
//!   everywhere else, and under loom (whose model knows nothing about `lock`), they are fences.

#[cfg(not(loom))]
pub use core::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering,
};
#[cfg(loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering,
};

/// Linux `smp_mb()`: a full barrier.
#[inline(always)]
pub fn smp_mb() {
    fence(Ordering::SeqCst);
}

/// Linux `smp_mb__before_atomic()`.
#[allow(non_snake_case)]
#[inline(always)]
pub fn smp_mb__before_atomic() {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(any(not(target_arch = "x86_64"), loom))]
    fence(Ordering::SeqCst);
}

/// Linux `smp_mb__after_atomic()`.
#[allow(non_snake_case)]
#[inline(always)]
pub fn smp_mb__after_atomic() {
    smp_mb__before_atomic();
}

/// Linux `atomic_add_return()` (`raw_atomic_add_return`): fully ordered, returns the new value.
#[inline(always)]
pub fn atomic_add_return(a: &AtomicU32, v: u32) -> u32 {
    smp_mb__before_atomic();
    let new = a.fetch_add(v, Ordering::SeqCst).wrapping_add(v);
    smp_mb__after_atomic();
    new
}

/// Linux `atomic_try_cmpxchg()`: fully ordered when it succeeds; on failure `old` becomes the
/// value found (relaxed, as Linux's failed cmpxchg orders nothing).
#[inline(always)]
pub fn atomic_try_cmpxchg(a: &AtomicU32, old: &mut u32, new: u32) -> bool {
    smp_mb__before_atomic();
    match a.compare_exchange(*old, new, Ordering::SeqCst, Ordering::Relaxed) {
        Ok(_) => {
            smp_mb__after_atomic();
            true
        }
        Err(found) => {
            *old = found;
            false
        }
    }
}
