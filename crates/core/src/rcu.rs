//! The RCU side of extended quiescent states (`kernel/rcu/tree.c`): what a remote grace period
//! reads from another CPU's state word, and the per-CPU flags the entry hooks look at.
//!
//! A grace period snapshots each CPU's counter with [`rcu_watching_snap_save`]; a snapshot taken in
//! an EQS is a quiescent state at once (no IPI, no tick needed), and any later change of the
//! counter ([`rcu_watching_snap_stopped_since`]) proves the CPU passed through an EQS.

use crate::context_tracking::ContextTracking;
use crate::state::CT_RCU_WATCHING;
use crate::sync::{AtomicBool, Ordering};

/// `rcu_watching_snap_save()`: the acquire snapshot of a remote CPU's counter.
#[inline]
pub fn rcu_watching_snap_save(remote: &ContextTracking) -> u32 {
    remote.ct_rcu_watching_acquire()
}

/// `rcu_watching_snap_in_eqs(snap)`: the snapshot was taken while the CPU was in an EQS.
#[inline]
pub fn rcu_watching_snap_in_eqs(snap: u32) -> bool {
    snap & CT_RCU_WATCHING == 0
}

/// `rcu_watching_snap_stopped_since(rdp, snap)`: has the CPU been in, or passed through, an EQS
/// since `snap`? (Linux WARNs if `snap` itself was in an EQS: that case was reported at once.)
#[inline]
pub fn rcu_watching_snap_stopped_since(remote: &ContextTracking, snap: u32) -> bool {
    snap != remote.ct_rcu_watching_acquire()
}

/// Has this CPU been quiescent since `snap`, by either test? The full "does this CPU still hold
/// up the grace period" question a remote grace period asks.
#[inline]
pub fn rcu_cpu_quiescent_since(remote: &ContextTracking, snap: u32) -> bool {
    rcu_watching_snap_in_eqs(snap) || rcu_watching_snap_stopped_since(remote, snap)
}

/// Per-CPU RCU data touched from the entry path (`struct rcu_data` fields).
#[derive(Debug, Default)]
pub struct RcuCpu {
    /// `rcu_urgent_qs`: the grace period wants a quiescent state from this CPU soon. Set remotely.
    urgent_qs: AtomicBool,
    /// `rcu_forced_tick`: this CPU's tick was forced on for RCU (`TICK_DEP_BIT_RCU` set). Set
    /// by this CPU, cleared by the grace period.
    forced_tick: AtomicBool,
}

impl RcuCpu {
    /// Reads `rcu_urgent_qs`.
    pub fn urgent_qs(&self) -> bool {
        self.urgent_qs.load(Ordering::Relaxed)
    }
    /// Sets or clears `rcu_urgent_qs` (`WRITE_ONCE` from the grace-period kthread).
    pub fn set_urgent_qs(&self, v: bool) {
        self.urgent_qs.store(v, Ordering::Relaxed);
    }
    /// Reads `rcu_forced_tick`.
    pub fn forced_tick(&self) -> bool {
        self.forced_tick.load(Ordering::Relaxed)
    }
    /// Sets or clears `rcu_forced_tick`.
    pub fn set_forced_tick(&self, v: bool) {
        self.forced_tick.store(v, Ordering::Relaxed);
    }
}

impl Clone for RcuCpu {
    fn clone(&self) -> Self {
        RcuCpu {
            urgent_qs: AtomicBool::new(self.urgent_qs()),
            forced_tick: AtomicBool::new(self.forced_tick()),
        }
    }
}
impl PartialEq for RcuCpu {
    fn eq(&self, o: &Self) -> bool {
        self.urgent_qs() == o.urgent_qs() && self.forced_tick() == o.forced_tick()
    }
}
impl Eq for RcuCpu {}
impl core::hash::Hash for RcuCpu {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        (self.urgent_qs(), self.forced_tick()).hash(h);
    }
}
