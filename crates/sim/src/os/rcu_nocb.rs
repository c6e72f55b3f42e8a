//! Callback offloading (`kernel/rcu/tree_nocb.h`), reduced to what entry code sees.
//!
//! On an offloaded CPU (`rcu_nocbs=`, which `nohz_full=` implies) callbacks are queued for the
//! rcuog kthread, which lives on the housekeeping CPU 0. `call_rcu()` wakes it at once, unless
//! the caller had IRQs off: then `wake_nocb_gp_defer()` leaves `rdp->nocb_defer_wakeup` set and
//! a later `do_nocb_deferred_wakeup()` must do it. Linux flushes it
//! - on return to user, in `tick_nohz_user_enter_prepare()` (generic entry, before the last
//!   `need_resched()` check, and again after the exit loop's work), or from `rcu_user_enter()` /
//!   `__ct_user_enter()` through `rcu_irq_work_resched()` (other entry code: a wakeup that needs
//!   a reschedule raises an irq_work self-IPI that brings the task back through the exit work);
//! - on entry to idle, in `do_idle()` before `cpuidle_idle_call()`'s last `need_resched()`
//!   check;
//! - in 4.x, on every EQS entry instead: `rcu_eqs_enter_common()` (from `rcu_user_enter()`,
//!   `rcu_irq_exit()` and `rcu_idle_enter()`) flushed first ([`K::rcu_eqs_enter_common_4x`]).
//!   The 5.12 fixes moved the flush before the last `need_resched()` checks because a wakeup
//!   issued after them may need a reschedule nobody does.
//!
//! The monitor holds every entry to the rule that matters: no return to user and no halt with a
//! deferred wakeup still pending (the rcuog kthread would sleep on callbacks until the
//! `nocb_timer` backstop, which is not modeled). Where we simplify: the rcuog kthread is not a
//! simulated task. Its wakeup is priced and counted, and either wakes the housekeeping CPU 0
//! from idle, or, with [`crate::config::Config::rcuog_local`] (the checker's choice), sets
//! `TIF_NEED_RESCHED` on the CPU that flushes it: the case where a wakeup issued after the last
//! `need_resched()` check is lost (the 4.x `rcu_eqs_enter_common()` flush, fixed in 5.12 by
//! flushing earlier, or by `rcu_irq_work_resched()`'s irq_work self-IPI). The `nocb_timer`
//! backstop is not modeled, nor are `rcu_nocb_poll` and bypass lists.

use crate::machine::{Mode, Vector};
use crate::os::K;
use ctxtrack_core::CtState;

/// The housekeeping CPU that runs the rcuog kthreads.
pub const RCUOG_CPU: usize = 0;

impl K<'_> {
    /// `call_rcu()` from this CPU: queue a callback for the next grace period; on an offloaded
    /// CPU, wake rcuog now, or defer the wakeup when IRQs are off (`__call_rcu_nocb_wake()`).
    pub fn call_rcu(&mut self) {
        let now = self.m.cpus[self.cpu].hw.now;
        crate::os::rcu::call_rcu(self.m, now);
        let offloaded = self.m.cfg.nocb;
        let cpu = &mut self.m.cpus[self.cpu];
        if !cpu.nohz_full || !offloaded {
            return;
        }
        if cpu.hw.irqs_on {
            self.wake_nocb_gp();
        } else {
            cpu.nocb_defer_wakeup = true;
        }
    }

    /// `do_nocb_deferred_wakeup()`: do a deferred wakeup if one is pending; tells whether it did.
    pub fn do_nocb_deferred_wakeup(&mut self) -> bool {
        if !std::mem::take(&mut self.m.cpus[self.cpu].nocb_defer_wakeup) {
            return false;
        }
        self.wake_nocb_gp();
        true
    }

    /// `rcu_nocb_flush_deferred_wakeup()`.
    pub fn rcu_nocb_flush_deferred_wakeup(&mut self) {
        self.do_nocb_deferred_wakeup();
    }

    /// 4.x `rcu_eqs_enter_common()` begins with `do_nocb_deferred_wakeup()` (for each flavor),
    /// while RCU still watches: the 4.x primitives that enter an EQS call this first, so the
    /// flush happens exactly where 4.x did it, on every EQS entry and on nothing else.
    /// `to_user`: `rcu_user_enter()` (from `user_enter()`, `exception_exit()` back to USER),
    /// which enters the EQS when tracking is on here and the CPU is not already in USER;
    /// otherwise `rcu_irq_exit()`, which enters it when it leaves the outermost IRQ level.
    pub fn rcu_eqs_enter_common_4x(&mut self, to_user: bool) {
        let ct = &self.m.cpus[self.cpu].pcpu.ct;
        let enters = if to_user {
            self.m.key.is_enabled() && ct.active() && ct.ct_state_bits() != CtState::User
        } else {
            ct.nmi_nesting() == 1
        };
        if enters {
            self.do_nocb_deferred_wakeup();
        }
    }

    /// `rcu_irq_work_resched()` (6.1 `__ct_user_enter()` without generic entry; 5.12
    /// `rcu_user_enter()`): flush, and if that leaves a reschedule due, queue the
    /// `late_wakeup_work` irq_work, whose self-IPI brings the task back through the exit work.
    pub fn rcu_irq_work_resched(&mut self) {
        if self.do_nocb_deferred_wakeup() && self.need_resched() {
            crate::os::send_ipi(self.m, self.cpu, self.cpu, Vector::IrqWork);
        }
    }

    /// `wake_nocb_gp()`: wake the rcuog kthread. On the housekeeping CPU, a remote
    /// `try_to_wake_up()` (an IPI only when that CPU idles); with [`Config::rcuog_local`], on
    /// this CPU, where the woken kthread preempts the current task (`resched_curr()`, no IPI:
    /// only a later `need_resched()` check sees it).
    ///
    /// [`Config::rcuog_local`]: crate::config::Config::rcuog_local
    fn wake_nocb_gp(&mut self) {
        self.extra_cycles += self.m.cost.wakeup;
        self.m.cpus[self.cpu].counters.rcuog_wakeups += 1;
        if self.m.cfg.rcuog_local {
            crate::os::resched_curr(self.m, self.cpu, self.cpu);
        } else if self.cpu != RCUOG_CPU && self.m.cpus[RCUOG_CPU].mode == Mode::Halted {
            crate::os::send_ipi(self.m, self.cpu, RCUOG_CPU, Vector::Reschedule);
        }
    }
}
