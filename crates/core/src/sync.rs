//! The one place the core imports its atomics from (the tokio `loom` facade pattern), so that a
//! model checker can swap them for instrumented ones without touching the code under test.

pub use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Linux `smp_mb()`: a full barrier, written as an explicit SeqCst fence.
#[inline(always)]
pub fn smp_mb() {
    fence(Ordering::SeqCst);
}
