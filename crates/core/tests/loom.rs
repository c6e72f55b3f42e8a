//! Loom checks of the RCU extended-quiescent-state counter protocol, on the core's own atomics
//! (`RUSTFLAGS="--cfg loom" cargo test -p ctxtrack-core --test loom --release`).
//!
//! The store-buffering shape Linux's full barriers exist for:
//!
//! ```text
//! CPU (nohz_full, in user mode = EQS)        grace period
//! ct_state_inc(+2): user_exit (fully ordered) rcu_assign_pointer(gp, NEW)
//! rcu_read_lock(); p = rcu_dereference(gp)    smp_mb()             <- synchronize_rcu()'s barrier
//!   ... use p ...                             snap = rcu_watching_snap_save(cpu)
//! rcu_read_unlock()                           if in EQS: QS; GP ends; free(OLD)
//! ```
//!
//! No grace period may end (and free `OLD`) while the CPU is inside a read-side section it entered
//! after leaving the EQS and in which it saw `OLD`.
#![cfg(loom)]

use ctxtrack_core::rcu::{rcu_watching_snap_in_eqs, rcu_watching_snap_save};
use ctxtrack_core::state::{CT_RCU_WATCHING, CT_STATE_INIT};
use ctxtrack_core::sync::{smp_mb, AtomicBool, AtomicU32, Ordering};
use ctxtrack_core::{ContextTracking, CtState};
use loom::sync::Arc;
use loom::thread;

const OLD: u32 = 1;
const NEW: u32 = 2;

/// Runs the scenario; `gp_barrier` is the grace period's `smp_mb()` between publishing the update
/// and snapshotting the CPU's counter.
fn scenario(gp_barrier: bool) {
    loom::model(move || {
        let ct = Arc::new(ContextTracking::new());
        // The CPU sits in user mode on a nohz_full CPU: USER, not watching.
        ct.set_state_word(CT_STATE_INIT + CT_RCU_WATCHING + CtState::User.bits());
        let gp = Arc::new(AtomicU32::new(OLD));
        let freed_old = Arc::new(AtomicBool::new(false));

        let cpu = {
            let (ct, gp, freed_old) = (ct.clone(), gp.clone(), freed_old.clone());
            thread::spawn(move || {
                // __ct_user_exit() → ct_kernel_enter_state(CT_RCU_WATCHING - CT_STATE_USER)
                ct.ct_state_inc(CT_RCU_WATCHING - CtState::User.bits());
                // rcu_read_lock(); p = rcu_dereference(gp);
                let p = gp.load(Ordering::Acquire);
                if p == OLD {
                    assert!(
                        !freed_old.load(Ordering::Acquire),
                        "a grace period ended inside a read-side section that saw OLD"
                    );
                }
            })
        };
        // rcu_assign_pointer(gp, NEW); synchronize_rcu(): barrier, snapshot, maybe report QS.
        gp.store(NEW, Ordering::Release);
        if gp_barrier {
            smp_mb();
        }
        let snap = rcu_watching_snap_save(&ct);
        if rcu_watching_snap_in_eqs(snap) {
            freed_old.store(true, Ordering::Release);
        }
        cpu.join().unwrap();
    });
}

#[test]
fn no_grace_period_ends_inside_a_reader_that_left_eqs() {
    scenario(true);
}

#[test]
fn without_the_grace_periods_smp_mb_loom_finds_the_bug() {
    let err = std::panic::catch_unwind(|| scenario(false))
        .expect_err("loom must find the store-buffering execution once the barrier is gone");
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(
        msg.contains("a grace period ended inside a read-side section"),
        "unexpected failure: {msg:?}"
    );
}
