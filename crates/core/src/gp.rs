//! The grace-period scan (`kernel/rcu/tree.c`: `rcu_gp_init()`, `rcu_gp_fqs()` →
//! `force_qs_rnp()` → `rcu_watching_snap_save()` / `rcu_watching_snap_recheck()`,
//! `rcu_report_qs_rdp()`), as one state machine that the simulator, the host-thread backend and
//! the bare-metal kernel all drive.
//!
//! What it decides, and nothing else: which CPUs still hold up the grace period, whether a
//! holdout's snapshot (first scan) or the change of its counter since (later scans) is a
//! quiescent state, and when a holdout is old enough to get `rcu_urgent_qs` and a
//! `resched_cpu()` IPI. The driver owns time (ns, ticks or polls: [`GpPolicy`] is in the same
//! unit), the IPI itself, callbacks, statistics and tracing, so each backend keeps its own
//! clock and delivery while the protocol has one home.
//!
//! A driver's force-quiescent-state pass is, like `force_qs_rnp()`:
//!
//! ```text
//! for cpu in 0..n {
//!     if !scan.holds_out(cpu) { continue; }
//!     match scan.fqs_cpu(cpu, now, &policy, ct_of(cpu), rcu_of(cpu), nohz_full(cpu)) {
//!         FqsVerdict::Qs(_) => if driver_report(cpu) { /* grace period ended */ },
//!         FqsVerdict::Holdout { resched: true, .. } => resched_cpu(cpu),
//!         FqsVerdict::Holdout { .. } => {}
//!     }
//! }
//! ```
//!
//! and a CPU's own quiescent state (context switch, tick from user or idle) goes through
//! [`GpScan::report_qs`], which also clears the urgency the scan set
//! (`rcu_disable_urgency_upon_qs()`).

use crate::context_tracking::ContextTracking;
use crate::rcu::{
    rcu_watching_snap_in_eqs, rcu_watching_snap_save, rcu_watching_snap_stopped_since, RcuCpu,
};

/// When a holdout is pushed (`jiffies_to_sched_qs` and the `resched_cpu()` threshold in
/// `rcu_watching_snap_recheck()`), in the driver's unit of time since the grace period started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GpPolicy {
    /// Age after which a holdout gets `rcu_urgent_qs` (its next kernel entry turns its tick on).
    pub urgent_after: u64,
    /// Age after which a holdout gets a `resched_cpu()` IPI.
    pub resched_after: u64,
    /// Only nohz_full holdouts get the IPI (Linux: the tick of the others reports for them).
    pub resched_nohz_full_only: bool,
    /// At most one IPI per holdout and grace period (otherwise one per scan past the threshold;
    /// pending IPIs coalesce in the receiver's IRR).
    pub resched_once: bool,
}

/// How a holdout was found quiescent by the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QsHow {
    /// The first snapshot was taken in an extended quiescent state (user on nohz_full, idle).
    EqsSnapshot,
    /// The counter moved since the snapshot: the CPU passed through an EQS.
    CounterMoved,
}

/// What one look at a holdout found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FqsVerdict {
    /// Quiescent: the driver reports it ([`GpScan::report_qs`]).
    Qs(QsHow),
    /// Still holding out.
    Holdout {
        /// `rcu_urgent_qs` was set by this look (it was clear before).
        urgent_set: bool,
        /// The driver must send a `resched_cpu()` IPI (after setting `TIF_NEED_RESCHED`).
        resched: bool,
    },
}

/// One grace period's scan state. `S` holds a snapshot per CPU (`rdp->watching_snap`): a
/// `Vec<u32>` in the simulator and host, a fixed array in the bare-metal kernel. At most 64
/// CPUs (CPU masks are `u64`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GpScan<S> {
    gp_seq: u64,
    in_progress: bool,
    started: u64,
    qs_mask: u64,
    snapped: u64,
    resched_sent: u64,
    snaps: S,
}

impl<S> GpScan<S> {
    /// No grace period yet; `snaps` has one slot per CPU (at most 64). `const`: a fixed array
    /// makes a scan usable in a `static`.
    pub const fn new(snaps: S) -> GpScan<S> {
        GpScan {
            gp_seq: 0,
            in_progress: false,
            started: 0,
            qs_mask: 0,
            snapped: 0,
            resched_sent: 0,
            snaps,
        }
    }
}

impl<S: AsRef<[u32]> + AsMut<[u32]>> GpScan<S> {
    /// Grace periods started so far (`rcu_seq_current()` without the state bits).
    pub fn gp_seq(&self) -> u64 {
        self.gp_seq
    }

    /// A grace period is running.
    pub fn in_progress(&self) -> bool {
        self.in_progress
    }

    /// When the running grace period started (driver's time).
    pub fn started(&self) -> u64 {
        self.started
    }

    /// CPUs that still owe a quiescent state (`rnp->qsmask`).
    pub fn qs_mask(&self) -> u64 {
        self.qs_mask
    }

    /// Whether `cpu` still holds up the running grace period.
    pub fn holds_out(&self, cpu: usize) -> bool {
        self.in_progress && self.qs_mask & (1 << cpu) != 0
    }

    /// Whether the scan has snapshotted `cpu` in this grace period.
    pub fn snapped(&self, cpu: usize) -> bool {
        self.snapped & (1 << cpu) != 0
    }

    /// `cpu`'s snapshot (meaningful when [`Self::snapped`]).
    pub fn snap(&self, cpu: usize) -> u32 {
        self.snaps.as_ref()[cpu]
    }

    /// `rcu_gp_init()`: a new grace period at `now` that every CPU in `cpus` must report for.
    /// Snapshots come with the first scan ([`Self::fqs_cpu`]), as `rcu_gp_fqs()`'s first pass.
    pub fn start(&mut self, now: u64, cpus: u64) {
        debug_assert!(!self.in_progress, "a grace period is already running");
        debug_assert!(self.snaps.as_ref().len() <= 64, "CPU masks are u64");
        self.in_progress = true;
        self.gp_seq += 1;
        self.started = now;
        self.qs_mask = cpus;
        self.snapped = 0;
        self.resched_sent = 0;
    }

    /// One look at holdout `cpu` at `now` (`force_qs_rnp()` calling `rcu_watching_snap_save()`
    /// the first time, `rcu_watching_snap_recheck()` after): `ct` is its state word, `rcu` its
    /// `rcu_data` flags, `nohz_full` whether it is in the `nohz_full=` set. A quiescent verdict
    /// is not reported yet: the driver reports it with [`Self::report_qs`] (and may count how).
    pub fn fqs_cpu(
        &mut self,
        cpu: usize,
        now: u64,
        policy: &GpPolicy,
        ct: &ContextTracking,
        rcu: &RcuCpu,
        nohz_full: bool,
    ) -> FqsVerdict {
        debug_assert!(self.holds_out(cpu), "CPU {cpu} is not a holdout");
        let bit = 1u64 << cpu;
        if self.snapped & bit == 0 {
            // rcu_watching_snap_save(): an EQS snapshot is a quiescent state at once.
            let snap = rcu_watching_snap_save(ct);
            self.snaps.as_mut()[cpu] = snap;
            self.snapped |= bit;
            if rcu_watching_snap_in_eqs(snap) {
                return FqsVerdict::Qs(QsHow::EqsSnapshot);
            }
            return FqsVerdict::Holdout {
                urgent_set: false,
                resched: false,
            };
        }
        // rcu_watching_snap_recheck()
        if rcu_watching_snap_stopped_since(ct, self.snaps.as_ref()[cpu]) {
            return FqsVerdict::Qs(QsHow::CounterMoved);
        }
        let age = now.saturating_sub(self.started);
        let urgent_set = age >= policy.urgent_after && !rcu.urgent_qs();
        if urgent_set {
            rcu.set_urgent_qs(true);
        }
        let resched = age >= policy.resched_after
            && (nohz_full || !policy.resched_nohz_full_only)
            && !(policy.resched_once && self.resched_sent & bit != 0);
        if resched {
            self.resched_sent |= bit;
        }
        FqsVerdict::Holdout {
            urgent_set,
            resched,
        }
    }

    /// `rcu_report_qs_rdp()`: `cpu` passed a quiescent state. Clears the urgency the scan set
    /// (`rcu_disable_urgency_upon_qs()`; the forced tick, a per-CPU tick dependency, is the
    /// driver's to drop). Returns true when this report ended the grace period
    /// (`rcu_gp_cleanup()` is then the driver's). A CPU that owes nothing is ignored.
    pub fn report_qs(&mut self, cpu: usize, rcu: &RcuCpu) -> bool {
        if !self.holds_out(cpu) {
            return false;
        }
        self.qs_mask &= !(1 << cpu);
        rcu.set_urgent_qs(false);
        if self.qs_mask == 0 {
            self.in_progress = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::CT_RCU_WATCHING;

    /// An EQS entry or exit: the counter's watching bit flips (`ct_state_inc()`).
    fn flip(ct: &ContextTracking) {
        ct.ct_state_inc(CT_RCU_WATCHING);
    }

    const POLICY: GpPolicy = GpPolicy {
        urgent_after: 10,
        resched_after: 30,
        resched_nohz_full_only: true,
        resched_once: false,
    };

    #[test]
    fn an_eqs_snapshot_is_a_quiescent_state_at_once() {
        let ct = ContextTracking::new();
        if ct.rcu_is_watching() {
            flip(&ct);
        }
        let rcu = RcuCpu::default();
        let mut s = GpScan::new([0u32; 2]);
        s.start(0, 0b10);
        assert_eq!(
            s.fqs_cpu(1, 0, &POLICY, &ct, &rcu, true),
            FqsVerdict::Qs(QsHow::EqsSnapshot)
        );
        assert!(s.report_qs(1, &rcu));
        assert!(!s.in_progress());
        assert_eq!(s.gp_seq(), 1);
    }

    #[test]
    fn a_kernel_holdout_is_pushed_then_released_by_its_counter() {
        let ct = ContextTracking::new();
        if !ct.rcu_is_watching() {
            flip(&ct);
        }
        let rcu = RcuCpu::default();
        let mut s = GpScan::new([0u32; 2]);
        s.start(100, 0b11);
        let hold = |u, r| FqsVerdict::Holdout {
            urgent_set: u,
            resched: r,
        };
        assert_eq!(
            s.fqs_cpu(1, 100, &POLICY, &ct, &rcu, true),
            hold(false, false)
        );
        assert_eq!(
            s.fqs_cpu(1, 105, &POLICY, &ct, &rcu, true),
            hold(false, false)
        );
        assert_eq!(
            s.fqs_cpu(1, 110, &POLICY, &ct, &rcu, true),
            hold(true, false)
        );
        assert!(rcu.urgent_qs());
        assert_eq!(
            s.fqs_cpu(1, 130, &POLICY, &ct, &rcu, true),
            hold(false, true)
        );
        // Not nohz_full: no IPI (its tick reports for it).
        assert_eq!(
            s.fqs_cpu(1, 140, &POLICY, &ct, &rcu, false),
            hold(false, false)
        );
        // The CPU goes through user mode and back: the counter moved.
        flip(&ct);
        flip(&ct);
        assert_eq!(
            s.fqs_cpu(1, 150, &POLICY, &ct, &rcu, true),
            FqsVerdict::Qs(QsHow::CounterMoved)
        );
        assert!(!s.report_qs(1, &rcu), "CPU 0 still owes one");
        assert!(!rcu.urgent_qs(), "the report clears the urgency");
        assert!(s.report_qs(0, &rcu));
        assert!(!s.report_qs(0, &rcu), "a second report is ignored");
    }

    #[test]
    fn resched_once_sends_one_ipi_per_grace_period() {
        let ct = ContextTracking::new();
        if !ct.rcu_is_watching() {
            flip(&ct);
        }
        let rcu = RcuCpu::default();
        let once = GpPolicy {
            resched_once: true,
            ..POLICY
        };
        let mut s = GpScan::new([0u32; 4]);
        s.start(0, 0b10);
        s.fqs_cpu(1, 0, &once, &ct, &rcu, true);
        let ipis = (30..40)
            .filter(|&t| {
                matches!(
                    s.fqs_cpu(1, t, &once, &ct, &rcu, true),
                    FqsVerdict::Holdout { resched: true, .. }
                )
            })
            .count();
        assert_eq!(ipis, 1);
    }
}
