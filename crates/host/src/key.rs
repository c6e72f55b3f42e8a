//! How a host CPU answers `static_branch_unlikely(&context_tracking_key)`.
//!
//! The core's [`StaticKey`] (an enable count) stays the truth; a [`KeyBackend`] mirrors it into
//! what the call site tests. [`PatchedKey`] is a real static key (the `static-keys` crate rewrites
//! the call site into a 5-byte NOP or a JMP, as Linux's `arch_static_branch()`); [`AtomicBoolKey`]
//! is the fallback for platforms that crate does not support: a relaxed load and a branch.
//!
//! Code patching is only safe while no other thread can execute the patched code (the
//! `static-keys` crate's rule), so [`sync_keys`] refuses while host CPU threads run (Linux gets the
//! same guarantee from `text_poke_bp()` and `stop_machine`-like IPIs; a userspace process has no
//! such tool).

use ctxtrack_core::StaticKey;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How the key test at a guarded call site is made.
pub trait KeyBackend: Send + 'static {
    /// Short name for reports.
    const NAME: &'static str;
    /// The call site's test (`arch_static_branch`).
    fn static_branch_unlikely() -> bool;
}

/// The fallback: `context_tracking_enabled()` as a relaxed load of an `AtomicBool`.
#[derive(Debug)]
pub struct AtomicBoolKey;

static CT_ENABLED_BOOL: AtomicBool = AtomicBool::new(false);

impl KeyBackend for AtomicBoolKey {
    const NAME: &'static str = "atomic-bool";
    #[inline(always)]
    fn static_branch_unlikely() -> bool {
        CT_ENABLED_BOOL.load(Ordering::Relaxed)
    }
}

/// A code-patched static key (`DEFINE_STATIC_KEY_FALSE(context_tracking_key)`).
#[cfg(feature = "static-keys")]
#[derive(Debug)]
pub struct PatchedKey;

#[cfg(feature = "static-keys")]
static_keys::define_static_key_false!(CONTEXT_TRACKING_KEY);

#[cfg(feature = "static-keys")]
impl KeyBackend for PatchedKey {
    const NAME: &'static str = "static-key";
    #[inline(always)]
    fn static_branch_unlikely() -> bool {
        static_keys::static_branch_unlikely!(CONTEXT_TRACKING_KEY)
    }
}

/// The backend used by default: the patched key where the crate supports the platform.
#[cfg(feature = "static-keys")]
pub type DefaultKey = PatchedKey;
/// The backend used by default (the `static-keys` feature is off).
#[cfg(not(feature = "static-keys"))]
pub type DefaultKey = AtomicBoolKey;

/// Host CPU threads currently running (they may execute patched code).
static LIVE_CPU_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Registers a thread that executes patched call sites for as long as it lives, so
/// [`sync_keys`] refuses to patch meanwhile. Every host CPU thread holds one.
#[derive(Debug)]
pub struct CpuThreadGuard(());

impl CpuThreadGuard {
    /// Registers the calling context.
    pub fn new() -> CpuThreadGuard {
        LIVE_CPU_THREADS.fetch_add(1, Ordering::SeqCst);
        CpuThreadGuard(())
    }
}

impl Default for CpuThreadGuard {
    fn default() -> Self {
        CpuThreadGuard::new()
    }
}

impl Drop for CpuThreadGuard {
    fn drop(&mut self) {
        LIVE_CPU_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why the keys could not be changed.
#[derive(Debug, PartialEq, Eq)]
pub struct KeysBusy(pub usize);

impl std::fmt::Display for KeysBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot patch context_tracking_key while {} host CPU thread(s) run",
            self.0
        )
    }
}

impl std::error::Error for KeysBusy {}

/// Makes every backend's call-site test agree with `key` (enabled iff its count is above zero).
/// Call after `ct_cpu_track_user()` for every CPU and before starting CPU threads. Nothing is
/// written when the call sites already agree; a change while host CPU threads run is refused.
pub fn sync_keys(key: &StaticKey) -> Result<(), KeysBusy> {
    let on = key.is_enabled();
    #[cfg(feature = "static-keys")]
    let patched_differs = {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(static_keys::global_init);
        CONTEXT_TRACKING_KEY.is_enabled() != on
    };
    #[cfg(not(feature = "static-keys"))]
    let patched_differs = false;
    if !patched_differs && CT_ENABLED_BOOL.load(Ordering::SeqCst) == on {
        return Ok(()); // Nothing to change: safe whoever runs.
    }
    let live = LIVE_CPU_THREADS.load(Ordering::SeqCst);
    if live != 0 {
        return Err(KeysBusy(live));
    }
    CT_ENABLED_BOOL.store(on, Ordering::SeqCst);
    #[cfg(feature = "static-keys")]
    if patched_differs {
        // SAFETY: no host CPU thread runs (checked above), so no other thread executes the
        // patched call sites; the bench and test drivers that call this are single-threaded
        // at this point.
        unsafe {
            if on {
                CONTEXT_TRACKING_KEY.enable();
            } else {
                CONTEXT_TRACKING_KEY.disable();
            }
        }
    }
    Ok(())
}
