//! Kernel services the entry designs call, on "this CPU" ([`K`]): the scheduler (run queues,
//! wakeups, `__schedule`), syscall bodies (pipes, sockets, fork, exit, wait), IRQ handlers (tick,
//! reschedule IPI, irq_work), nohz tick stop/restart, signals, notify-resume and RCU readers.
//!
//! The services are split as Linux splits `kernel/`: [`sched`] (run queues, wakeups,
//! `__schedule()`), [`syscall`] (bodies: pipes, sockets, fork, exit, wait, signals), [`irq`]
//! (vector handlers, exceptions, IPIs), [`tick`] (the tick and nohz), [`rcu`] (readers and the
//! grace-period kthread), [`rcu_nocb`], [`softirq`] and [`ct_work`] (deferred IPIs).
//!
//! None of this is entry code: it is the same for every design. Costs of bodies are reported in
//! [`K::extra_cycles`], which the machine adds to the step that ran them.

pub mod ct_work;
pub mod irq;
pub mod rcu;
pub mod rcu_nocb;
pub mod sched;
pub mod softirq;
pub mod syscall;
pub mod tick;

pub(crate) use irq::*;
pub(crate) use sched::*;
pub(crate) use tick::*;

use crate::cost::CostKey as C;
use crate::design::{Flow, Path, Step};
use crate::machine::*;
use ctxtrack_core::Ct;

/// CFS `sysctl_sched_latency` scaled for 8 CPUs (6 ms × (1 + ilog2(8))).
const SCHED_LATENCY_NS: u64 = 24_000_000;
/// CFS `sysctl_sched_min_granularity` scaled (0.75 ms × 4).
const SCHED_MIN_GRAN_NS: u64 = 3_000_000;
/// CFS `sysctl_sched_wakeup_granularity` scaled (1 ms × 4).
const SCHED_WAKEUP_GRAN_NS: u64 = 4_000_000;

pub use crate::machine::K;

/// The syscall body shared by all designs: `__fget_light()` looks the fd up under
/// `rcu_read_lock()`, so an event can land inside that read-side section; then the work.
pub static SYSCALL_BODY: Path = Path {
    name: "ksys_call",
    steps: &[
        Step::work("__fget_light: rcu_read_lock", C::Glue, |k| {
            if k.syscall_uses_fd() {
                k.rcu_read_lock();
            }
            Flow::Next
        }),
        Step::work("__fget_light: rcu_read_unlock", C::Glue, |k| {
            if k.syscall_uses_fd() {
                k.rcu_read_unlock();
            }
            Flow::Next
        }),
        // A blocked body is re-run when the task is woken (Flow::Retry), so it is a step of its own.
        Step::work("syscall body", C::None, |k| k.syscall_body()),
    ],
};

impl<'m> K<'m> {
    /// The kernel's syscall path (`sys_call_table`: the fd lookup under RCU, then the body),
    /// which designs call from their syscall entry.
    pub fn sys_call_table(&self) -> &'static Path {
        &SYSCALL_BODY
    }

    // ------------------------------------------------------------- accessors

    /// The current task id.
    #[inline]
    pub fn current(&self) -> TaskId {
        self.m.cpus[self.cpu].current
    }

    pub(crate) fn cur(&mut self) -> &mut Task {
        let t = self.current();
        &mut self.m.tasks[t]
    }

    pub(crate) fn entry(&mut self) -> &mut Entry {
        self.cur()
            .entries
            .last_mut()
            .expect("step outside an entry")
    }

    /// The core's API bound to this CPU and `current`.
    pub fn ct(&mut self) -> Ct<'_, Hw> {
        let t = self.m.cpus[self.cpu].current;
        let m = &mut *self.m;
        let cpu: &mut crate::machine::Cpu = &mut m.cpus[self.cpu];
        Ct::new(&m.key, &mut cpu.pcpu, &mut m.tasks[t].vtime, &mut cpu.hw)
    }

    /// `user_mode(regs)` of the innermost entry.
    pub fn regs_user(&mut self) -> bool {
        self.entry().regs.user
    }

    /// `!regs_irqs_disabled(regs)` of the innermost entry.
    pub fn regs_irqs_on(&mut self) -> bool {
        self.entry().regs.irqs_on
    }

    /// The innermost entry's locals.
    pub fn locals(&mut self) -> &mut Locals {
        &mut self.entry().locals
    }

    /// `is_idle_task(current)`.
    pub fn is_idle_task(&self) -> bool {
        self.m.tasks[self.current()].is_idle
    }

    /// `rcu_is_watching()`.
    pub fn rcu_is_watching(&self) -> bool {
        self.m.cpus[self.cpu].pcpu.ct.rcu_is_watching()
    }

    /// `local_irq_enable()`.
    pub fn local_irq_enable(&mut self) {
        self.m.cpus[self.cpu].hw.irqs_on = true;
    }

    /// `local_irq_disable()`.
    pub fn local_irq_disable(&mut self) {
        self.m.cpus[self.cpu].hw.irqs_on = false;
    }

    /// `read_thread_flags()`.
    pub fn read_thread_flags(&mut self) -> u32 {
        self.cur().ti_flags
    }

    /// `ti_work & EXIT_TO_USER_MODE_WORK`.
    pub fn exit_work_pending(&mut self) -> bool {
        self.read_thread_flags() & tif::EXIT_TO_USER_MODE_WORK != 0
    }

    /// `need_resched()`.
    pub fn need_resched(&mut self) -> bool {
        self.read_thread_flags() & tif::NEED_RESCHED != 0
    }

    /// `__current_set_polling()`: the idle task will notice `TIF_NEED_RESCHED` without an IPI.
    pub fn current_set_polling(&mut self) {
        self.cur().ti_flags |= tif::POLLING_NRFLAG;
    }

    /// `__current_clr_polling()`: from now on a wakeup must send an IPI.
    pub fn current_clr_polling(&mut self) {
        self.cur().ti_flags &= !tif::POLLING_NRFLAG;
    }

    /// `current_clr_polling_and_test()`: stop polling, then test `need_resched()` (the barrier
    /// between them orders the wakers' flag against our test: a waker that saw us polling set
    /// the flag before we look, one that did not sends an IPI).
    pub fn current_clr_polling_and_test(&mut self) -> bool {
        self.current_clr_polling();
        self.need_resched()
    }

    /// `_TIF_SIGPENDING`.
    pub fn signal_pending(&mut self) -> bool {
        self.read_thread_flags() & tif::SIGPENDING != 0
    }

    /// `_TIF_NOTIFY_RESUME`.
    pub fn notify_resume_pending(&mut self) -> bool {
        self.read_thread_flags() & tif::NOTIFY_RESUME != 0
    }

    /// `TIF_NOHZ`: set on every task once context tracking is enabled anywhere (Linux < 5.x
    /// inherited it from `init_task`); it forced syscalls onto the slow path.
    pub fn tif_nohz(&self) -> bool {
        self.m.key.is_enabled()
    }

    /// Kernel preemption possible here (`CONFIG_PREEMPTION` and `preempt_count() == 0`). The
    /// idle task always runs with preemption disabled (`init_idle_preempt_count`); it schedules
    /// only through `schedule_idle()`.
    pub fn preemption_enabled(&self) -> bool {
        self.m.cfg.preempt && self.m.cpus[self.cpu].hw.preempt_count == 0 && !self.is_idle_task()
    }

    pub(crate) fn now(&self) -> u64 {
        self.m.cpus[self.cpu].hw.now
    }

    // ------------------------------------------------------------- tracing hooks

    /// `trace_sys_enter` (from `syscall_trace_enter` when the tracepoint is on).
    pub fn trace_sys_enter(&mut self) {
        if self.m.trace.is_some() {
            let nr = self.cur().cur_syscall.map(|s| s.nr()).unwrap_or(0);
            crate::tracer::event(
                self.m,
                self.cpu,
                "sys_enter",
                &format!("NR {nr} (0, 0, 0, 0, 0, 0)"),
            );
        }
    }

    /// `trace_sys_exit`.
    pub fn trace_sys_exit(&mut self) {
        if self.m.trace.is_some() {
            let t = self.cur();
            let nr = t.cur_syscall.map(|s| s.nr()).unwrap_or(56);
            let ret = t.last_ret.unwrap_or(0);
            crate::tracer::event(self.m, self.cpu, "sys_exit", &format!("NR {nr} = {ret}"));
        }
    }

    // ------------------------------------------------------------- exit work

    /// `tick_nohz_user_enter_prepare()`: on a nohz_full CPU, flush a deferred rcuog wakeup
    /// (`rcu_nocb_flush_deferred_wakeup()`) before the exit path's last `need_resched()` check.
    pub fn tick_nohz_user_enter_prepare(&mut self) {
        if self.m.cpus[self.cpu].nohz_full {
            self.rcu_nocb_flush_deferred_wakeup();
        }
    }

    /// `arch_do_signal_or_restart()`: the only signal is SIGCHLD, ignored by default.
    pub fn arch_do_signal_or_restart(&mut self) {
        self.cur().ti_flags &= !tif::SIGPENDING;
    }

    /// `resume_user_mode_work()`: rseq fixup after preemption or migration.
    pub fn resume_user_mode_work(&mut self) {
        self.cur().ti_flags &= !tif::NOTIFY_RESUME;
    }

    /// `fire_user_return_notifiers()` when `_TIF_USER_RETURN_NOTIFY` is set.
    pub fn fire_user_return_notifiers(&mut self) {
        if self.cur().ti_flags & tif::USER_RETURN_NOTIFY != 0 {
            self.cur().ti_flags &= !tif::USER_RETURN_NOTIFY;
            self.cur().urn_fired += 1;
            self.extra_cycles += self.m.cost.notify_resume;
        }
    }

    // ------------------------------------------------------------- IRQ context

    /// `irq_enter_rcu()`: enter hardirq context.
    pub fn irq_enter_rcu(&mut self) {
        self.m.cpus[self.cpu].hw.preempt_count += preempt::HARDIRQ_OFFSET;
    }

    /// `irq_exit_rcu()`: leave hardirq context; run pending softirqs (`invoke_softirq()`, with
    /// IRQs on: [`crate::os::softirq::DO_SOFTIRQ`], which ends with `tick_irq_exit()`), or go
    /// straight to `tick_irq_exit()`.
    pub fn irq_exit_rcu(&mut self) {
        self.m.cpus[self.cpu].hw.preempt_count -= preempt::HARDIRQ_OFFSET;
        if self.softirq_due_on_irq_exit() {
            self.local_bh_disable_for_softirq(true);
            self.then_call = Some(&crate::os::softirq::DO_SOFTIRQ);
        } else {
            self.tick_irq_exit();
        }
    }

    /// `tick_irq_exit()`: idle CPUs re-evaluate their tick in the idle loop; busy nohz_full CPUs
    /// here.
    pub fn tick_irq_exit(&mut self) {
        if !self.is_idle_task() && self.m.cpus[self.cpu].nohz_full {
            self.tick_nohz_full_update_tick();
        }
    }

    /// `__nmi_enter()`.
    pub fn nmi_enter_count(&mut self) {
        self.m.cpus[self.cpu].hw.preempt_count += preempt::NMI_OFFSET + preempt::HARDIRQ_OFFSET;
    }

    /// `__nmi_exit()`.
    pub fn nmi_exit_count(&mut self) {
        self.m.cpus[self.cpu].hw.preempt_count -= preempt::NMI_OFFSET + preempt::HARDIRQ_OFFSET;
    }

    /// `preempt_count_add(n)`.
    pub fn preempt_count_add(&mut self, n: u32) {
        self.m.cpus[self.cpu].hw.preempt_count += n;
    }

    /// `preempt_count_sub(n)`.
    pub fn preempt_count_sub(&mut self, n: u32) {
        self.m.cpus[self.cpu].hw.preempt_count -= n;
    }

    /// `do_int3()`: a breakpoint nobody claimed to own, such as a kprobe that is not ours (trace
    /// only; the cost is the step's).
    pub fn do_int3(&mut self) {
        if self.m.trace.is_some() {
            crate::tracer::event(self.m, self.cpu, "int3", "ip=0x0");
        }
    }

    /// `default_do_nmi()`: a perf NMI; its handlers run in `nmi_handle()`'s read-side section
    /// ([`crate::os::softirq::NMI_HANDLER`]).
    pub fn default_do_nmi(&mut self) {
        self.nmi_handle();
    }

    /// `iretq`: to user or to the interrupted kernel context, as the saved CS says.
    pub fn iret(&mut self) -> Flow {
        if self.regs_user() {
            Flow::ReturnToUser
        } else {
            Flow::ReturnToKernel
        }
    }
}
