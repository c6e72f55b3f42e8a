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
//!
//! Deferred work (CT_WORK): remote `ct_set_cpu_work()` calls against the target's exit to user
//! mode (`ct_state_inc_clear_work()`) and its next entry (the fully ordered add whose result is
//! flushed). A set that returns true is flushed by that entry; one that returns false is not
//! (the CPU was watching: the sender IPIs it). Negative controls: a setter that does not test
//! "watching", and an exit that clears the bits in a separate update after its add.
#![cfg(loom)]

use ctxtrack_core::rcu::{rcu_watching_snap_in_eqs, rcu_watching_snap_save};
use ctxtrack_core::state::{CT_RCU_WATCHING, CT_STATE_INIT};
use ctxtrack_core::sync::{smp_mb, AtomicBool, AtomicU32, Ordering};
use ctxtrack_core::{ct_set_cpu_work, ContextTracking, CtLayout, CtState, CtWork};
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

/// How the exit to user mode updates the word.
#[derive(Clone, Copy)]
enum Exit {
    /// `ct_state_inc_clear_work()`: clear and add in one compare-and-exchange.
    Atomic,
    /// Negative control: the add, then the clearing as a second update.
    AddThenClear,
}

/// The setter: `ct_set_cpu_work()`, or (negative control) its loop without the watching test.
fn set(ct: &ContextTracking, work: CtWork, blind: bool) -> bool {
    if !blind {
        return ct_set_cpu_work(ct, work);
    }
    let mut old = ct.state_word();
    loop {
        let new = old | work.bit() << ctxtrack_core::state::CT_WORK_START;
        if ct.state_try_cmpxchg(&mut old, new) {
            return true;
        }
    }
}

/// The target starts in the kernel (watching), returns to user mode, and enters the kernel
/// again; `setters` remote CPUs each try to defer one work type meanwhile.
fn work_scenario(exit: Exit, blind: bool, setters: &'static [CtWork]) {
    loom::model(move || {
        let layout = CtLayout::new(2, false);
        let ct = Arc::new(ContextTracking::with_layout(layout));
        ct.set_active(true);
        let target = {
            let ct = ct.clone();
            thread::spawn(move || {
                let to_user = layout.watching() + CtState::User.bits();
                match exit {
                    Exit::Atomic => {
                        ct.ct_state_inc_clear_work(to_user);
                    }
                    Exit::AddThenClear => {
                        let w = ct.ct_state_inc(to_user);
                        let mut old = w;
                        loop {
                            let new = old & !layout.work_mask();
                            if ct.state_try_cmpxchg(&mut old, new) {
                                break;
                            }
                        }
                    }
                }
                // The next entry: the add, then ct_work_flush(seq).
                let seq = ct.ct_state_inc(layout.watching().wrapping_sub(CtState::User.bits()));
                layout.work(seq)
            })
        };
        let others: Vec<_> = setters[1..]
            .iter()
            .map(|&w| {
                let ct = ct.clone();
                thread::spawn(move || (w, set(&ct, w, blind)))
            })
            .collect();
        let mut results = vec![(setters[0], set(&ct, setters[0], blind))];
        results.extend(others.into_iter().map(|h| h.join().unwrap()));
        let flushed = target.join().unwrap();
        for (w, ok) in results {
            assert!(
                !ok || flushed & w.bit() != 0,
                "deferred work {w:?} was lost"
            );
            assert!(
                ok || flushed & w.bit() == 0,
                "{w:?} flushed but the setter was told to IPI"
            );
        }
    });
}

#[test]
fn deferred_work_is_flushed_by_the_next_entry_or_the_setter_ipis() {
    work_scenario(Exit::Atomic, false, &[CtWork::Sync]);
}

#[test]
fn two_setters_of_two_types_each_get_a_flush_or_an_ipi() {
    work_scenario(Exit::Atomic, false, &[CtWork::Sync, CtWork::Tlbi]);
}

fn refuted(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("loom must find the lost work");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_setter_that_ignores_watching_loses_work_and_loom_finds_it() {
    let msg = refuted(|| work_scenario(Exit::Atomic, true, &[CtWork::Sync]));
    assert!(msg.contains("was lost"), "unexpected failure: {msg:?}");
}

#[test]
fn clearing_after_the_exits_add_loses_work_and_loom_finds_it() {
    let msg = refuted(|| work_scenario(Exit::AddThenClear, false, &[CtWork::Sync]));
    assert!(msg.contains("was lost"), "unexpected failure: {msg:?}");
}
