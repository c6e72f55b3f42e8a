//! Softirqs (`kernel/softirq.c`, Linux 6.1) and the read-side sections of interrupt handlers.
//!
//! `irq_exit_rcu()` drops `HARDIRQ_OFFSET` and, when softirqs are pending and the CPU is not in
//! an interrupt any more, runs [`DO_SOFTIRQ`] **with IRQs enabled**, still inside the IRQ entry
//! (then `tick_irq_exit()`):
//! another interrupt may land in a softirq handler, including on the idle task between
//! `ct_irq_enter()` and `ct_irq_exit()` (where the tick must use `rcu_is_cpu_rrupt_from_idle()`,
//! not `is_idle_task()`). After [`MAX_SOFTIRQ_RESTART`] rounds, or when a reschedule is due with
//! work left, `__do_softirq()` wakes the CPU's `ksoftirqd` kthread ([`KSOFTIRQD`], spawned the
//! first time it is needed) and `invoke_softirq()` leaves everything to it while it is runnable.
//!
//! The only softirq raised is `NET_RX` by the device interrupt (virtio-net): the simulated tick
//! reports quiescent states itself (no `RCU_SOFTIRQ`) and there is no timer wheel (no
//! `TIMER_SOFTIRQ`). `net_rx_action()`, the device handler (`handle_irq_event()`) and the NMI
//! handler (`nmi_handle()`) each run a read-side section spanning steps, so a grace period can
//! begin and be checked inside them.

use crate::cost::CostKey as C;
use crate::design::{Flow, Path, Step};
use crate::machine::program::Program;
use crate::machine::{preempt, Machine, Task, TaskState};
use crate::os::K;
use ctxtrack_core::Arch;

/// `NET_RX_SOFTIRQ`.
pub const NET_RX_SOFTIRQ: u16 = 1 << 3;
pub use crate::config::MAX_SOFTIRQ_RESTART;
pub use crate::machine::cpu::Softirq;

impl K<'_> {
    /// `raise_softirq_irqoff(nr)`. Without [`Config::softirq`] nothing is raised: the softirq
    /// work counts as done in the handler (the checker's default, cheaper model).
    ///
    /// [`Config::softirq`]: crate::config::Config::softirq
    pub fn raise_softirq_irqoff(&mut self, vec: u16) {
        if !self.m.cfg.softirq {
            return;
        }
        self.m.cpus[self.cpu].softirq.pending |= vec;
    }

    /// `invoke_softirq()`'s decision at `irq_exit_rcu()`: softirqs are pending, this is not a
    /// nested interrupt (`!in_interrupt()`), and `ksoftirqd` is not already runnable for them.
    pub fn softirq_due_on_irq_exit(&self) -> bool {
        let cpu = &self.m.cpus[self.cpu];
        cpu.softirq.pending != 0 && !cpu.hw.in_interrupt() && !self.ksoftirqd_running()
    }

    /// `ksoftirqd_running()`: this CPU's `ksoftirqd` is runnable (it will handle what is pending).
    fn ksoftirqd_running(&self) -> bool {
        self.m.cpus[self.cpu].ksoftirqd.is_some_and(|t| {
            matches!(
                self.m.tasks[t].state,
                TaskState::Runnable | TaskState::Running
            )
        })
    }

    /// `__do_softirq()`'s `__local_bh_disable_ip(SOFTIRQ_OFFSET)` and its restart budget, done
    /// by the step that calls [`DO_SOFTIRQ`]; `on_irq_exit` when `irq_exit_rcu()` calls it (it
    /// ends with `tick_irq_exit()`).
    pub fn local_bh_disable_for_softirq(&mut self, on_irq_exit: bool) {
        let max = self.m.cfg.softirq_max_restart;
        let cpu = &mut self.m.cpus[self.cpu];
        cpu.hw.preempt_count += preempt::SOFTIRQ_OFFSET;
        cpu.softirq.restarts = max;
        cpu.softirq.on_irq_exit = on_irq_exit;
    }

    /// `wakeup_softirqd()`: wake (first spawn) this CPU's `ksoftirqd`.
    fn wakeup_softirqd(&mut self) {
        let t = match self.m.cpus[self.cpu].ksoftirqd {
            Some(t) => t,
            None => spawn_ksoftirqd(self.m, self.cpu),
        };
        self.try_to_wake_up(t);
    }
}

/// Creates `ksoftirqd/cpu`, asleep in `smpboot_thread_fn()`.
fn spawn_ksoftirqd(m: &mut Machine, cpu: usize) -> usize {
    let pid = m.alloc_pid();
    let mut t = Task::new(pid, &format!("ksoftirqd/{cpu}"), Program::Idle, cpu);
    t.has_mm = false;
    t.pinned = Some(cpu);
    t.state = TaskState::Sleeping;
    t.push_kernel_loop(&KSOFTIRQD);
    m.tasks.push(crate::machine::Shared::new(t));
    let id = m.tasks.len() - 1;
    m.cpus[cpu].ksoftirqd = Some(id);
    id
}

/// `__do_softirq()` in two steps, split where an interrupt can land: IRQs are on between them,
/// inside `net_rx_action()`'s read-side section. What lies between Linux's statements with IRQs
/// off (`set_softirq_pending(0)`; the restart test, `__local_bh_enable()`, and
/// `irq_exit_rcu()`'s `tick_irq_exit()` after it) cannot be interleaved with an IRQ, so it
/// shares a step; `__local_bh_disable_ip()` is done by the caller's step
/// ([`K::local_bh_disable_for_softirq`]), so that a fault or NMI before the first step already
/// finds `in_interrupt()`, as anything inside `__do_softirq()` does in Linux; an IRQ between `local_irq_enable()` and
/// `rcu_read_lock()` (or between the unlock and `local_irq_disable()`) sees what one inside the
/// section sees minus a reader, which can hold up no grace period, so nothing is lost. Restarts
/// (at most [`Config::softirq_max_restart`] rounds, and not when a reschedule is due) jump back
/// to the first step with `SOFTIRQ_OFFSET` still held; what is left goes to `ksoftirqd`.
///
/// [`Config::softirq_max_restart`]: crate::config::Config::softirq_max_restart
pub static DO_SOFTIRQ: Path = Path {
    name: "__do_softirq",
    steps: &[
        // (__local_bh_disable_ip() was the caller's: K::local_bh_disable_for_softirq.)
        // restart: set_softirq_pending(0); local_irq_enable(); net_rx_action() polls under
        // rcu_read_lock() (napi_poll -> the driver -> the stack).
        Step::work(
            "local_irq_enable, net_rx_action: rcu_read_lock, napi_poll",
            C::None,
            |k| {
                let s = &mut k.m.cpus[k.cpu].softirq;
                s.running = std::mem::take(&mut s.pending);
                k.local_irq_enable();
                if k.m.cpus[k.cpu].softirq.running & NET_RX_SOFTIRQ != 0 {
                    k.rcu_read_lock();
                    k.extra_cycles += k.m.cost.softirq;
                    if k.m.trace.is_some() {
                        crate::tracer::event(k.m, k.cpu, "softirq_entry", "vec=3 [action=NET_RX]");
                    }
                }
                Flow::Next
            },
        ),
        // rcu_read_unlock(); local_irq_disable(); pending = local_softirq_pending(); restart,
        // or wakeup_softirqd(); __local_bh_enable(SOFTIRQ_OFFSET); then, on IRQ exit,
        // tick_irq_exit().
        Step::work(
            "net_rx_action: rcu_read_unlock, local_irq_disable, __local_bh_enable",
            C::None,
            |k| {
                if k.m.cpus[k.cpu].softirq.running & NET_RX_SOFTIRQ != 0 {
                    k.rcu_read_unlock();
                    if k.m.trace.is_some() {
                        crate::tracer::event(k.m, k.cpu, "softirq_exit", "vec=3 [action=NET_RX]");
                    }
                }
                k.local_irq_disable();
                let s = &mut k.m.cpus[k.cpu].softirq;
                s.running = 0;
                if s.pending != 0 {
                    s.restarts = s.restarts.saturating_sub(1);
                    if s.restarts > 0 && !k.need_resched() {
                        return Flow::Jump(0);
                    }
                    k.wakeup_softirqd();
                }
                let cpu = &mut k.m.cpus[k.cpu];
                cpu.hw.preempt_count -= preempt::SOFTIRQ_OFFSET;
                cpu.softirq.restarts = 0;
                if std::mem::take(&mut cpu.softirq.on_irq_exit) {
                    k.tick_irq_exit();
                }
                Flow::Return
            },
        ),
    ],
};

/// `smpboot_thread_fn()` running `run_ksoftirqd()`: sleep until softirqs are pending, run them
/// with IRQs off around `__do_softirq()`, report a quiescent state (`rcu_softirq_qs()`), then
/// `cond_resched()`.
pub static KSOFTIRQD: Path = Path {
    name: "run_ksoftirqd",
    steps: &[
        Step::work("smpboot_thread_fn: ksoftirqd_should_run", C::None, |k| {
            if k.m.cpus[k.cpu].softirq.pending == 0 {
                let t = k.current();
                k.m.tasks[t].state = TaskState::Sleeping;
                k.schedule();
                return Flow::Retry;
            }
            Flow::Next
        }),
        Step::work("run_ksoftirqd: local_irq_disable", C::None, |k| {
            k.local_irq_disable();
            if k.m.cpus[k.cpu].softirq.pending == 0 {
                k.local_irq_enable();
                return Flow::Jump(0);
            }
            k.local_bh_disable_for_softirq(false);
            Flow::Call(&DO_SOFTIRQ)
        }),
        Step::work(
            "rcu_softirq_qs, local_irq_enable, cond_resched",
            C::None,
            |k| {
                crate::os::rcu::rcu_report_qs(k.m, k.cpu);
                k.local_irq_enable();
                if k.need_resched() {
                    k.schedule();
                }
                Flow::Jump(0)
            },
        ),
    ],
};

/// The rest of the device interrupt's `handle_irq_event()`: the driver's handler (virtio-net:
/// complete the transfer, raise `NET_RX`, free a buffer with `call_rcu()`) ran inside a read-side
/// section, as handlers that look up RCU-protected data do ([`K::handle_irq_event`]); here it
/// ends, a step later, so that a grace period can begin inside it. A `call_rcu()` with IRQs off
/// on an offloaded CPU defers the rcuog wakeup ([`crate::os::rcu_nocb`]).
pub static DEVICE_HANDLER: Path = Path {
    name: "handle_irq_event",
    steps: &[Step::work(
        "handle_irq_event: rcu_read_unlock",
        C::None,
        |k| {
            k.rcu_read_unlock();
            if k.m.trace.is_some() {
                crate::tracer::event(k.m, k.cpu, "irq_handler_exit", "irq=11 ret=handled");
            }
            Flow::Return
        },
    )],
};

/// The end of `nmi_handle()`'s read-side section (the registered NMI handlers, perf, run in it:
/// [`K::nmi_handle`]).
pub static NMI_HANDLER: Path = Path {
    name: "nmi_handle",
    steps: &[Step::work("nmi_handle: rcu_read_unlock", C::None, |k| {
        k.rcu_read_unlock();
        Flow::Return
    })],
};

impl K<'_> {
    /// `handle_irq_event()` of the device interrupt, up to its handler's end: `rcu_read_lock()`,
    /// `vp_interrupt()` (raise `NET_RX`, `call_rcu()`); [`DEVICE_HANDLER`] unlocks a step later.
    pub fn handle_irq_event(&mut self) {
        self.rcu_read_lock();
        self.extra_cycles += self.m.cost.device_irq;
        self.raise_softirq_irqoff(NET_RX_SOFTIRQ);
        self.call_rcu();
        self.then_call = Some(&DEVICE_HANDLER);
    }

    /// `nmi_handle()`: `rcu_read_lock()` and the handlers; [`NMI_HANDLER`] unlocks a step later.
    pub fn nmi_handle(&mut self) {
        self.rcu_read_lock();
        self.then_call = Some(&NMI_HANDLER);
    }
}
