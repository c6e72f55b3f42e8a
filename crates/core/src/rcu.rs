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

/// `rcu_is_cpu_rrupt_from_idle()`: the tick (or an IPI handler) interrupted this CPU's idle
/// loop at the first interrupt level: `nmi_nesting` is at most 1 (one IRQ entered from an EQS,
/// or none at all in the idle task) and process-level `nesting` is 0 (RCU was not watching).
/// An IRQ that hit the idle task while RCU watched, or one nested in a softirq that an IRQ from
/// idle runs, is not a quiescent state: `rcu_sched_clock_irq()` asks this, not
/// `is_idle_task(current)`.
#[inline]
pub fn rcu_is_cpu_rrupt_from_idle(ct: &ContextTracking) -> bool {
    ct.nmi_nesting() <= 1 && ct.nesting() == 0
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

#[cfg(test)]
mod tests {
    use super::rcu_is_cpu_rrupt_from_idle;
    use crate::context_tracking::ContextTracking;
    use crate::state::CT_NESTING_IRQ_NONIDLE;

    fn ct(nesting: i64, nmi_nesting: i64) -> ContextTracking {
        let ct = ContextTracking::new();
        ct.set_nesting(nesting);
        ct.set_nmi_nesting(nmi_nesting);
        ct
    }

    #[test]
    fn only_the_first_interrupt_level_from_an_eqs_is_from_idle() {
        // The tick's IRQ entered the idle (or user) EQS: ct_irq_enter() made nmi_nesting 1.
        assert!(rcu_is_cpu_rrupt_from_idle(&ct(0, 1)));
        // An IRQ nested in a softirq that the first one runs with IRQs on (1 + 2).
        assert!(!rcu_is_cpu_rrupt_from_idle(&ct(0, 3)));
        // The idle task with RCU watching (before ct_idle_enter()): process-level nesting 1.
        assert!(!rcu_is_cpu_rrupt_from_idle(&ct(1, CT_NESTING_IRQ_NONIDLE)));
        // In the idle EQS with no interrupt at all (a caller outside an IRQ).
        assert!(rcu_is_cpu_rrupt_from_idle(&ct(0, 0)));
    }
}
