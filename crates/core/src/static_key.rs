//! Static keys modeled as data (`include/linux/jump_label.h`).
//!
//! In Linux `static_branch_unlikely(&context_tracking_key)` is a patched NOP that becomes a jump
//! when the key's enable count goes above zero. Here the key is an enable count (the truth every
//! backend agrees on) and each guarded call site asks [`crate::Arch::static_branch_unlikely`]: the
//! simulator reads the count and counts the test as taken or not in [`crate::CtStats`], so a
//! simulated machine can turn context tracking on and off and see what each call site costs; the
//! host backend answers from a code-patched key (the `static-keys` crate) kept in step with it.

use crate::sync::{AtomicU32, Ordering};

/// A static key: `DEFINE_STATIC_KEY_FALSE` with an enable count.
#[derive(Debug)]
pub struct StaticKey {
    enabled: AtomicU32,
}

impl StaticKey {
    /// `DEFINE_STATIC_KEY_FALSE`: a key that starts disabled.
    #[cfg(not(loom))]
    pub const fn new_false() -> StaticKey {
        StaticKey {
            enabled: AtomicU32::new(0),
        }
    }

    /// `DEFINE_STATIC_KEY_FALSE` (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    pub fn new_false() -> StaticKey {
        StaticKey {
            enabled: AtomicU32::new(0),
        }
    }

    /// `static_branch_inc`: one more user wants the branch taken.
    pub fn static_branch_inc(&self) {
        self.enabled.fetch_add(1, Ordering::SeqCst);
    }

    /// `static_branch_dec`; saturates at zero (Linux WARNs on underflow).
    pub fn static_branch_dec(&self) {
        let _ = self
            .enabled
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
    }

    /// `static_key_count`.
    pub fn count(&self) -> u32 {
        self.enabled.load(Ordering::Relaxed)
    }

    /// `static_key_enabled`: a plain read, not a guarded call site (not counted).
    #[inline(always)]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed) > 0
    }

    /// `static_branch_unlikely(&key)` evaluated as data: the enable count read with a relaxed
    /// load (an atomic-bool test). [`crate::Arch::static_branch_unlikely`] defaults to this; a
    /// backend that patches code overrides it.
    #[inline(always)]
    pub fn static_branch_unlikely(&self) -> bool {
        self.is_enabled()
    }
}

impl Clone for StaticKey {
    fn clone(&self) -> Self {
        StaticKey {
            enabled: AtomicU32::new(self.count()),
        }
    }
}

impl Default for StaticKey {
    fn default() -> Self {
        StaticKey::new_false()
    }
}
