//! Kernel services the entry designs call, on "this CPU" ([`K`]): the scheduler (run queues,
//! wakeups, `__schedule`), syscall bodies (pipes, sockets, fork, exit, wait), IRQ handlers (tick,
//! reschedule IPI, irq_work), nohz tick stop/restart, signals, notify-resume and RCU readers.
//!
//! None of this is entry code: it is the same for every design. Costs of bodies are reported in
//! [`K::extra_cycles`], which the machine adds to the step that ran them.

use crate::cost::CostKey as C;
use crate::design::{Flow, Path, Step};
use crate::ipc::{ChanKind, Io};
use crate::machine::*;
use crate::program::Syscall;
use ctxtrack_core::tick::{can_stop_full_tick, TickDepBit, TickDeps};
use ctxtrack_core::{Ct, CtState};
use ctxtrack_trace::event::{Comm, IrqVector, SchedSwitch, SchedWakeup, TickStop};

/// CFS `sysctl_sched_latency` scaled for 8 CPUs (6 ms × (1 + ilog2(8))).
const SCHED_LATENCY_NS: u64 = 24_000_000;
/// CFS `sysctl_sched_min_granularity` scaled (0.75 ms × 4).
const SCHED_MIN_GRAN_NS: u64 = 3_000_000;
/// CFS `sysctl_sched_wakeup_granularity` scaled (1 ms × 4).
const SCHED_WAKEUP_GRAN_NS: u64 = 4_000_000;

/// "This CPU" for a step: the machine plus the CPU the step runs on.
pub struct K<'m> {
    /// The machine.
    pub m: &'m mut Machine,
    /// The CPU.
    pub cpu: CpuId,
    /// Cycles of bodies run by this step (syscall bodies, handlers, schedule).
    pub extra_cycles: u64,
    /// A kernel path a primitive of this step calls once the step is done (`irq_exit_rcu()`'s
    /// `__do_softirq()`, a handler's read-side section): the machine pushes it, whatever
    /// statement of the design called the primitive, so the callee's steps are instruction
    /// boundaries of their own.
    pub then_call: Option<&'static Path>,
}

impl<'m> K<'m> {
    /// This CPU of `m`, before a step.
    #[inline]
    pub fn new(m: &'m mut Machine, cpu: CpuId) -> K<'m> {
        K {
            m,
            cpu,
            extra_cycles: 0,
            then_call: None,
        }
    }
}

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
    // ------------------------------------------------------------- accessors

    /// The current task id.
    #[inline]
    pub fn current(&self) -> TaskId {
        self.m.cpus[self.cpu].current
    }

    fn cur(&mut self) -> &mut Task {
        let t = self.current();
        &mut self.m.tasks[t]
    }

    fn entry(&mut self) -> &mut Entry {
        self.cur()
            .entries
            .last_mut()
            .expect("step outside an entry")
    }

    /// The core's API bound to this CPU and `current`.
    pub fn ct(&mut self) -> Ct<'_, Hw> {
        let t = self.m.cpus[self.cpu].current;
        let m = &mut *self.m;
        let cpu = &mut m.cpus[self.cpu];
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

    fn now(&self) -> u64 {
        self.m.cpus[self.cpu].hw.now
    }

    // ------------------------------------------------------------- tracing hooks

    /// `trace_sys_enter` (from `syscall_trace_enter` when the tracepoint is on).
    pub fn trace_sys_enter(&mut self) {
        if self.m.trace.is_some() {
            let nr = self.cur().cur_syscall.map(|s| s.nr()).unwrap_or(0);
            crate::trace::event(
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
            crate::trace::event(self.m, self.cpu, "sys_exit", &format!("NR {nr} = {ret}"));
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
    /// IRQs on: [`crate::softirq::DO_SOFTIRQ`], which ends with `tick_irq_exit()`), or go
    /// straight to `tick_irq_exit()`.
    pub fn irq_exit_rcu(&mut self) {
        self.m.cpus[self.cpu].hw.preempt_count -= preempt::HARDIRQ_OFFSET;
        if self.softirq_due_on_irq_exit() {
            self.local_bh_disable_for_softirq(true);
            self.then_call = Some(&crate::softirq::DO_SOFTIRQ);
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
            crate::trace::event(self.m, self.cpu, "int3", "ip=0x0");
        }
    }

    /// `default_do_nmi()`: a perf NMI; its handlers run in `nmi_handle()`'s read-side section
    /// ([`crate::softirq::NMI_HANDLER`]).
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

    /// The handler of the innermost IRQ's vector.
    pub fn handle_irq_vector(&mut self) {
        let v = self.entry().regs.vector.expect("IRQ entry without vector");
        let name = v.trace_name();
        if self.m.trace.is_some() {
            // A device IRQ is logged by handle_irq_event (irq:irq_handler_entry), the system
            // vectors by their DEFINE_IDTENTRY_SYSVEC (irq_vectors:*_entry).
            let fields = if v == Vector::Device {
                "irq=11 name=virtio0".to_string()
            } else {
                IrqVector { vector: v.number() }.to_string()
            };
            crate::trace::event(self.m, self.cpu, &format!("{name}_entry"), &fields);
        }
        match v {
            Vector::LocalTimer => self.tick_sched_timer(),
            Vector::Reschedule => self.extra_cycles += self.m.cost.resched_ipi,
            // irq_work: nohz_full_kick_func() is empty; the re-evaluation happens at irq exit.
            Vector::IrqWork => self.extra_cycles += self.m.cost.irq_work,
            // handle_irq_event(): the driver's handler, in steps of its own (it logs the exit).
            Vector::Device => return self.handle_irq_event(),
            Vector::CallFunction => crate::ct_work::call_function_interrupt(self),
        }
        if self.m.trace.is_some() {
            let fields = IrqVector { vector: v.number() }.to_string();
            crate::trace::event(self.m, self.cpu, &format!("{name}_exit"), &fields);
        }
    }

    /// `handle_mm_fault` and friends: a minor fault (trace only; the cost is the step's).
    pub fn handle_exception(&mut self) {
        if self.m.trace.is_some() {
            let ev = if self.regs_user() {
                "page_fault_user"
            } else {
                "page_fault_kernel"
            };
            // exc_page_fault() logs before it enables IRQs.
            crate::trace::event_at(
                self.m,
                self.cpu,
                ev,
                "address=0x0 ip=0x0 error_code=0x6",
                crate::trace::At::IrqsOff,
            );
        }
    }

    /// `tick_sched_timer()` → `tick_sched_handle()` → `update_process_times()`, then re-arm.
    fn tick_sched_timer(&mut self) {
        let c = self.cpu;
        let user_tick = self.regs_user();
        self.extra_cycles += self.m.cost.tick;
        self.m.cpus[c].counters.ticks += 1;
        // account_process_tick(): vtime CPUs account nothing on the tick.
        let vtime_cpu = self.m.key.is_enabled() && self.m.cpus[c].pcpu.ct.active();
        if !vtime_cpu {
            let tick = self.m.tick_nsec();
            let bucket = if user_tick {
                0
            } else if self.is_idle_task() {
                3
            } else {
                1
            };
            self.m.cpus[c].pcpu.local.cputime.kcpustat[bucket] += tick;
        }
        // scheduler_tick(): slice expiry.
        let cur = self.current();
        let now = self.now();
        update_curr(self.m, c, now);
        let nr = self.m.cpus[c].rq.len();
        if !self.m.tasks[cur].is_idle && nr > 0 {
            let slice = (SCHED_LATENCY_NS / (nr as u64 + 1)).max(SCHED_MIN_GRAN_NS);
            if self.m.tasks[cur].slice_exec_ns >= slice {
                resched_curr(self.m, c, c);
            }
        }
        // rcu_sched_clock_irq(user): a tick from user mode, or one that interrupted the idle
        // loop at the first interrupt level, is a quiescent state (rcu_flavor_sched_clock_irq()).
        if user_tick || ctxtrack_core::rcu::rcu_is_cpu_rrupt_from_idle(&self.m.cpus[c].pcpu.ct) {
            crate::rcu_gp::rcu_report_qs(self.m, c);
        }
        // Re-arm the periodic tick at the next jiffy boundary.
        let period = self.m.tick_nsec();
        self.m.cpus[c].next_tick = (now / period + 1) * period;
    }

    // ------------------------------------------------------------- nohz tick

    /// `tick_nohz_full_update_tick()`: stop or restart the tick of a busy nohz_full CPU.
    pub fn tick_nohz_full_update_tick(&mut self) {
        let c = self.cpu;
        let deps = TickDeps {
            global: 0,
            cpu: self.m.cpus[c].pcpu.local.tick.tick_dep_mask,
            task: 0,
            signal: 0,
        };
        let r = can_stop_full_tick(true, deps);
        let was = self.m.cpus[c].pcpu.local.tick.tick_stopped;
        if let Err(dep) = r {
            if self.m.trace.is_some() {
                let fields = TickStop {
                    success: false,
                    dependency: dep.name(),
                };
                crate::trace::event(self.m, c, TickStop::NAME, &fields.to_string());
            }
            if was {
                restart_tick(self.m, c);
            }
        } else if !was {
            if self.m.trace.is_some() {
                let fields = TickStop {
                    success: true,
                    dependency: "NONE",
                };
                crate::trace::event(self.m, c, TickStop::NAME, &fields.to_string());
            }
            stop_tick(self.m, c);
        }
    }

    /// `tick_nohz_idle_stop_tick()`: stop the tick in idle, except on the timekeeper while
    /// nohz_full CPUs depend on it.
    pub fn tick_nohz_idle_stop_tick(&mut self) {
        let c = self.cpu;
        let timekeeper = c == 0 && self.m.key.is_enabled();
        if !timekeeper && !self.m.cpus[c].pcpu.local.tick.tick_stopped {
            stop_tick(self.m, c);
        }
    }

    /// `tick_nohz_idle_exit()`: restart the tick when leaving idle.
    pub fn tick_nohz_idle_exit(&mut self) {
        if self.m.cpus[self.cpu].pcpu.local.tick.tick_stopped {
            restart_tick(self.m, self.cpu);
        }
    }

    // ------------------------------------------------------------- RCU readers

    /// `rcu_read_lock()` (non-preemptible RCU: disables preemption).
    pub fn rcu_read_lock(&mut self) {
        if !self.m.cpus[self.cpu].pcpu.ct.rcu_is_watching() {
            crate::monitor::fail_rcu_read_lock_idle(self.m, self.cpu);
        }
        let now = self.now();
        let gp = self.m.rcu.gp_seq();
        self.m.cpus[self.cpu].hw.preempt_count += 1;
        let t = self.cur();
        if t.rcu_depth == 0 {
            t.rcu_since_ns = now;
            t.rcu_since_gp = gp;
        }
        t.rcu_depth += 1;
    }

    /// `rcu_read_unlock()`.
    pub fn rcu_read_unlock(&mut self) {
        self.m.cpus[self.cpu].hw.preempt_count -= 1;
        self.cur().rcu_depth -= 1;
    }

    // ------------------------------------------------------------- syscalls

    /// Whether the current syscall looks up an fd (under RCU).
    pub fn syscall_uses_fd(&mut self) -> bool {
        matches!(
            self.cur().cur_syscall,
            Some(Syscall::Read { .. } | Syscall::Write { .. } | Syscall::Poll { .. })
        )
    }

    /// Runs the current syscall's body: `Return` when done, `Retry` after blocking.
    pub fn syscall_body(&mut self) -> Flow {
        let t = self.current();
        let Some(sc) = self.m.tasks[t].cur_syscall else {
            return Flow::Return;
        };
        let cost = &self.m.cost;
        match sc {
            Syscall::Getpid => {
                self.extra_cycles += cost.getpid;
                if self.m.tasks[t].urn_every != 0
                    && self.m.tasks[t]
                        .syscalls
                        .is_multiple_of(self.m.tasks[t].urn_every)
                {
                    // A KVM-like user of user_return_notifier_register().
                    self.m.tasks[t].ti_flags |= tif::USER_RETURN_NOTIFY;
                }
                self.m.tasks[t].last_ret = Some(self.m.tasks[t].pid as i64);
                Flow::Return
            }
            Syscall::Read { ch, len } => {
                let kind = self.m.chans[ch as usize].kind;
                self.extra_cycles += if kind == ChanKind::Pipe {
                    cost.pipe_read
                } else {
                    cost.sock_read
                };
                match self.m.chans[ch as usize].read(len) {
                    Io::Done { bytes, wake } => {
                        self.m.tasks[t].last_ret = Some(bytes as i64);
                        if wake {
                            self.wake_writers(ch);
                        }
                        Flow::Return
                    }
                    Io::WouldBlock => self.block_on(ch, true),
                }
            }
            Syscall::Write { ch, len } => {
                let kind = self.m.chans[ch as usize].kind;
                self.extra_cycles += if kind == ChanKind::Pipe {
                    cost.pipe_write
                } else {
                    cost.sock_write
                };
                match self.write_wake(ch, len) {
                    Some(bytes) => {
                        self.m.tasks[t].last_ret = Some(bytes as i64);
                        Flow::Return
                    }
                    None => self.block_on(ch, false),
                }
            }
            Syscall::Poll { ch } => {
                self.extra_cycles += cost.poll;
                if self.m.chans[ch as usize].readable() {
                    self.m.tasks[t].last_ret = Some(1);
                    Flow::Return
                } else {
                    self.block_on(ch, true)
                }
            }
            Syscall::Fork { child, thread } => {
                // A thread shares the mm: clone() without copying page tables, ~1/4 of fork().
                self.extra_cycles += if thread { cost.fork / 4 } else { cost.fork };
                // Where Linux's fork() fails with -EAGAIN at pid_max, the run ends with the limit
                // named (a workload that half-forks would measure something else).
                let max = self.m.cfg.limits.max_tasks;
                if self.m.tasks.len() >= max {
                    let what = format!("--max-tasks {max}: fork() of task {} refused", max + 1);
                    self.m.monitor.fail_limit(self.cpu, &what, &mut self.m.end);
                    return Flow::Retry;
                }
                let prog = self.m.tasks[t].prog.fork_child(child).unwrap_or(
                    crate::program::Program::Spin {
                        chunk_ns: 1_000_000,
                    },
                );
                let comm = self.m.tasks[t].comm.clone();
                let pid = self.m.alloc_pid();
                let mut nt = Task::new(pid, &comm, prog, self.cpu);
                // Affinity is inherited across fork.
                nt.pinned = self.m.tasks[t].pinned;
                nt.parent = Some(t);
                nt.vruntime = self.m.cpus[self.cpu].min_vruntime;
                nt.push_entry(
                    EntryKind::Fork,
                    Regs {
                        user: true,
                        irqs_on: true,
                        vector: None,
                    },
                    self.m.design.ret_from_fork,
                );
                nt.last_ret = Some(0);
                nt.cur_syscall = Some(sc);
                self.m.tasks.push(nt);
                let id = self.m.tasks.len() - 1;
                self.m.tasks[t].children_alive += 1;
                self.m.tasks[t].last_ret = Some(pid as i64);
                // wake_up_new_task(): sched_balance_fork picks the idlest CPU.
                let target = idlest_cpu(self.m, self.cpu);
                self.m.tasks[id].cpu = target;
                self.m.tasks[id].state = TaskState::Sleeping;
                self.wake_up(id, target, true);
                Flow::Return
            }
            Syscall::Wait => {
                self.extra_cycles += cost.wait;
                let task = &mut self.m.tasks[t];
                if task.zombies > 0 {
                    task.zombies -= 1;
                    task.last_ret = Some(1);
                    Flow::Return
                } else if task.children_alive == 0 {
                    task.last_ret = Some(-10); // -ECHILD
                    Flow::Return
                } else {
                    task.state = TaskState::Sleeping;
                    self.schedule();
                    Flow::Retry
                }
            }
            Syscall::Exit => {
                self.extra_cycles += cost.exit;
                self.do_exit(t);
                Flow::Retry
            }
        }
    }

    /// The data-moving half of `write()`: writes up to `len` bytes, wakes the readers (and, for
    /// a pipe with room left, the next writer). `None` when the writer must sleep.
    pub(crate) fn write_wake(&mut self, ch: ChanId, len: u64) -> Option<u64> {
        let kind = self.m.chans[ch as usize].kind;
        match self.m.chans[ch as usize].write(len) {
            Io::Done { bytes, wake } => {
                if wake {
                    let readers = std::mem::take(&mut self.m.chans[ch as usize].readers);
                    for r in readers {
                        self.try_to_wake_up(r);
                    }
                }
                // pipe_write's wake_next_writer: pass the baton while there is room.
                if kind == ChanKind::Pipe && !self.m.chans[ch as usize].writers.is_empty() {
                    self.wake_writers(ch);
                }
                Some(bytes)
            }
            Io::WouldBlock => None,
        }
    }

    fn block_on(&mut self, ch: ChanId, reader: bool) -> Flow {
        let t = self.current();
        let chan = &mut self.m.chans[ch as usize];
        if reader {
            chan.readers.push(t);
        } else {
            chan.writers.push(t);
        }
        self.m.tasks[t].state = TaskState::Sleeping;
        self.schedule();
        Flow::Retry
    }

    fn wake_writers(&mut self, ch: ChanId) {
        let chan = &mut self.m.chans[ch as usize];
        if chan.writers.is_empty() {
            return;
        }
        match chan.kind {
            // Exclusive wait: one writer at a time.
            ChanKind::Pipe => {
                let w = chan.writers.remove(0);
                self.try_to_wake_up(w);
            }
            ChanKind::Socket => {
                let ws = std::mem::take(&mut chan.writers);
                for w in ws {
                    self.try_to_wake_up(w);
                }
            }
        }
    }

    /// `do_exit()`: notify the parent (SIGCHLD, wake from `wait4`), queue the task struct for
    /// RCU freeing, and schedule away for good.
    fn do_exit(&mut self, t: TaskId) {
        self.m.tasks[t].state = TaskState::Dead;
        if let Some(p) = self.m.tasks[t].parent {
            let parent = &mut self.m.tasks[p];
            parent.zombies += 1;
            parent.children_alive -= 1;
            self.signal_wake_up(p);
        }
        crate::rcu_gp::call_rcu(self.m, self.now());
        if self.m.main_task == Some(t) {
            self.m.end = Some(EndReason::WorkloadDone);
        }
        self.schedule();
    }

    /// `signal_wake_up()`: set `TIF_SIGPENDING` and wake the task if it sleeps interruptibly;
    /// a running task on another CPU is kicked (`kick_process`).
    pub(crate) fn signal_wake_up(&mut self, p: TaskId) {
        self.m.tasks[p].ti_flags |= tif::SIGPENDING;
        match self.m.tasks[p].state {
            TaskState::Sleeping => {
                // Remove from any channel wait queue it might be on.
                for ch in self.m.chans.iter_mut() {
                    ch.readers.retain(|&x| x != p);
                    ch.writers.retain(|&x| x != p);
                }
                self.try_to_wake_up(p);
            }
            TaskState::Running => {
                let pc = self.m.tasks[p].cpu;
                if pc != self.cpu {
                    send_ipi(self.m, self.cpu, pc, Vector::Reschedule);
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------- scheduler

    /// `try_to_wake_up(p)` with `select_task_rq()`.
    pub fn try_to_wake_up(&mut self, p: TaskId) {
        if self.m.tasks[p].state != TaskState::Sleeping {
            return;
        }
        let target = select_task_rq(self.m, p, self.cpu);
        self.wake_up(p, target, false);
    }

    fn wake_up(&mut self, p: TaskId, target: CpuId, new: bool) {
        self.extra_cycles += self.m.cost.wakeup;
        self.m.cpus[self.cpu].counters.wakeups += 1;
        let from_min = self.m.cpus[self.m.tasks[p].cpu].min_vruntime;
        let to_min = self.m.cpus[target].min_vruntime;
        let task = &mut self.m.tasks[p];
        if task.cpu != target {
            // rseq_migrate(): the task must fix up its rseq area on return to user.
            task.ti_flags |= tif::NOTIFY_RESUME;
            task.vruntime = migrate_vruntime(task.vruntime, from_min, to_min);
            task.cpu = target;
        }
        // place_entity(): a sleeper gets at most half a latency of credit.
        task.vruntime = task
            .vruntime
            .max(to_min.saturating_sub(SCHED_LATENCY_NS / 2));
        task.state = TaskState::Runnable;
        if self.m.trace.is_some() {
            let fields = SchedWakeup {
                comm: Comm::Task(&task.comm),
                pid: task.pid as i32,
                prio: 120,
                target_cpu: target as i32,
            }
            .to_string();
            let ev = if new {
                SchedWakeup::NAME_NEW
            } else {
                SchedWakeup::NAME
            };
            // try_to_wake_up() holds p->pi_lock and the runqueue lock.
            crate::trace::event_at(
                self.m,
                self.cpu,
                ev,
                &fields,
                crate::trace::At::Locked(2),
            );
        }
        enqueue(self.m, p, target);
        // check_preempt_curr()
        let curr = self.m.cpus[target].current;
        let preempt = self.m.tasks[curr].is_idle
            || self.m.tasks[curr].vruntime > self.m.tasks[p].vruntime + SCHED_WAKEUP_GRAN_NS;
        if preempt {
            resched_curr(self.m, self.cpu, target);
        }
    }

    /// `__schedule()`: pick the next task and switch to it (one step: runs with IRQs off).
    pub fn schedule(&mut self) -> Flow {
        let c = self.cpu;
        let now = self.now();
        self.extra_cycles += self.m.cost.schedule;
        // schedule_debug(): never schedule while context tracking says USER.
        let in_user = self.ct().ct_state() == Some(CtState::User);
        self.ct()
            .local
            .warn
            .warn_on(in_user, ctxtrack_core::Violation::ScheduleInUser);
        let prev = self.current();
        if self.m.tasks[prev].rcu_depth > 0 {
            crate::monitor::fail_schedule_in_rcu_reader(self.m, c);
        }
        // rcu_note_context_switch()
        crate::rcu_gp::rcu_report_qs(self.m, c);
        update_curr(self.m, c, now);
        self.m.tasks[prev].ti_flags &= !tif::NEED_RESCHED;
        if self.m.tasks[prev].state == TaskState::Running && !self.m.tasks[prev].is_idle {
            self.m.tasks[prev].state = TaskState::Runnable;
            enqueue(self.m, prev, c);
        }
        let next = pick_next_task(self.m, c);
        if next == prev {
            self.m.tasks[prev].state = TaskState::Running;
            update_sched_tick_dep(self.m, c, c);
            return Flow::Next;
        }
        // rseq_preempt(prev)
        if self.m.tasks[prev].has_mm {
            self.m.tasks[prev].ti_flags |= tif::NOTIFY_RESUME;
        }
        if self.m.trace.is_some() {
            let (p, n) = (&self.m.tasks[prev], &self.m.tasks[next]);
            fn comm(t: &Task, c: CpuId) -> Comm<'_> {
                if t.is_idle {
                    Comm::Swapper(Some(c))
                } else {
                    Comm::Task(&t.comm)
                }
            }
            let line = SchedSwitch {
                prev_comm: comm(p, c),
                prev_pid: p.pid as i32,
                prev_prio: 120,
                prev_state: match p.state {
                    TaskState::Sleeping => "S",
                    TaskState::Dead => "X",
                    _ => "R",
                },
                next_comm: comm(n, c),
                next_pid: n.pid as i32,
                next_prio: 120,
            }
            .to_string();
            crate::trace::event_at(
                self.m,
                c,
                SchedSwitch::NAME,
                &line,
                crate::trace::At::Locked(2),
            );
        }
        self.m.cpus[c].counters.context_switches += 1;
        // context_switch() + finish_task_switch()
        let m = &mut *self.m;
        let cpu = &mut m.cpus[c];
        cpu.current = next;
        cpu.hw.cur_has_mm = m.tasks[next].has_mm;
        cpu.hw.cur_is_idle = m.tasks[next].is_idle;
        m.tasks[next].state = TaskState::Running;
        m.tasks[next].cpu = c;
        m.tasks[next].exec_start = now;
        m.tasks[next].slice_exec_ns = 0;
        if m.key.is_enabled() && cpu.pcpu.ct.active() {
            // vtime_task_switch(prev): Ct is bound to prev; next gets its interval opened.
            let (a, b) = if prev < next {
                let (lo, hi) = m.tasks.split_at_mut(next);
                (&mut lo[prev], &mut hi[0])
            } else {
                let (lo, hi) = m.tasks.split_at_mut(prev);
                (&mut hi[0], &mut lo[next])
            };
            let next_idle = b.is_idle;
            let mut ct = Ct::new(&m.key, &mut cpu.pcpu, &mut a.vtime, &mut cpu.hw);
            ctxtrack_core::vtime::vtime_task_switch(&mut ct, &mut b.vtime, next_idle);
        }
        update_sched_tick_dep(self.m, c, c);
        Flow::Next
    }

    /// `preempt_schedule_irq()`: kernel preemption on IRQ exit.
    pub fn preempt_schedule_irq(&mut self) {
        self.schedule();
    }
}

// ----------------------------------------------------------------- run queues

fn update_curr(m: &mut Machine, c: CpuId, now: u64) {
    let cur = m.cpus[c].current;
    let t = &mut m.tasks[cur];
    let d = now.saturating_sub(t.exec_start);
    t.exec_start = now;
    t.sum_exec_ns += d;
    t.slice_exec_ns += d;
    if !t.is_idle {
        t.vruntime += d;
        let v = t.vruntime;
        let minv = m.cpus[c]
            .rq
            .first()
            .map(|&f| m.tasks[f].vruntime)
            .unwrap_or(v)
            .min(v);
        if minv > m.cpus[c].min_vruntime {
            m.cpus[c].min_vruntime = minv;
        }
    }
}

/// A task's vruntime moved from a run queue with `from_min` to one with `to_min`
/// (`migrate_task_rq_fair`: relative to `min_vruntime`; the lag is clamped to one latency so a
/// stale source queue cannot inflate the destination).
fn migrate_vruntime(v: u64, from_min: u64, to_min: u64) -> u64 {
    to_min + v.saturating_sub(from_min).min(SCHED_LATENCY_NS)
}

/// Inserts `p` into `c`'s run queue by vruntime (FIFO among equals).
pub(crate) fn enqueue(m: &mut Machine, p: TaskId, c: CpuId) {
    let v = m.tasks[p].vruntime;
    let pos = m.cpus[c].rq.partition_point(|&q| m.tasks[q].vruntime <= v);
    m.cpus[c].rq.insert(pos, p);
    m.tasks[p].cpu = c;
    update_sched_tick_dep(m, c, c);
}

/// Queues a freshly created task on `c` (machine setup, not a syscall).
pub(crate) fn enqueue_new(m: &mut Machine, p: TaskId, c: CpuId) {
    m.tasks[p].state = TaskState::Runnable;
    enqueue(m, p, c);
    let cur = m.cpus[c].current;
    if m.tasks[cur].is_idle {
        m.tasks[cur].ti_flags |= tif::NEED_RESCHED;
    }
}

fn pick_next_task(m: &mut Machine, c: CpuId) -> TaskId {
    if !m.cpus[c].rq.is_empty() {
        return m.cpus[c].rq.remove(0);
    }
    // newidle balance: pull the last movable queued task of the busiest other run queue.
    let movable = |m: &Machine, o: CpuId| {
        m.cpus[o]
            .rq
            .iter()
            .rposition(|&q| m.tasks[q].pinned.is_none())
    };
    let mut busiest = None;
    let mut most = 0;
    for o in 0..m.cpus.len() {
        if o != c && m.cpus[o].rq.len() > most && movable(m, o).is_some() {
            most = m.cpus[o].rq.len();
            busiest = Some(o);
        }
    }
    if let Some(o) = busiest {
        let i = movable(m, o).unwrap();
        let p = m.cpus[o].rq.remove(i);
        update_sched_tick_dep(m, c, o);
        let t = &mut m.tasks[p];
        t.ti_flags |= tif::NOTIFY_RESUME;
        t.vruntime = migrate_vruntime(t.vruntime, m.cpus[o].min_vruntime, m.cpus[c].min_vruntime);
        t.cpu = c;
        return p;
    }
    m.cpus[c].idle_task
}

fn cpu_idle(m: &Machine, c: CpuId) -> bool {
    m.tasks[m.cpus[c].current].is_idle && m.cpus[c].rq.is_empty()
}

/// `select_task_rq_fair()` simplified: previous CPU if idle, else any idle CPU (searching from
/// the previous one), else the shorter of the waker's and the previous run queue.
fn select_task_rq(m: &Machine, p: TaskId, waker: CpuId) -> CpuId {
    if let Some(c) = m.tasks[p].pinned {
        return c;
    }
    let prev = m.tasks[p].cpu;
    if cpu_idle(m, prev) {
        return prev;
    }
    let n = m.cpus.len();
    for i in 1..n {
        let c = (prev + i) % n;
        if cpu_idle(m, c) {
            return c;
        }
    }
    if m.cpus[waker].rq.len() < m.cpus[prev].rq.len() {
        waker
    } else {
        prev
    }
}

/// `sched_balance_fork`: the CPU with the fewest tasks (running + queued), ties to the lowest id
/// after `from`.
fn idlest_cpu(m: &Machine, from: CpuId) -> CpuId {
    let n = m.cpus.len();
    let load = |c: CpuId| m.cpus[c].rq.len() + usize::from(!m.tasks[m.cpus[c].current].is_idle);
    let mut best = from;
    for i in 1..=n {
        let c = (from + i) % n;
        if load(c) < load(best) {
            best = c;
        }
    }
    best
}

/// `resched_curr()`: set `TIF_NEED_RESCHED` on `target`'s current task and IPI it if remote.
pub(crate) fn resched_curr(m: &mut Machine, from: CpuId, target: CpuId) {
    let cur = m.cpus[target].current;
    if m.tasks[cur].ti_flags & tif::NEED_RESCHED != 0 {
        return;
    }
    // set_nr_and_not_polling(): a polling idle task sees the flag without an IPI.
    let polling = m.tasks[cur].ti_flags & tif::POLLING_NRFLAG != 0;
    m.tasks[cur].ti_flags |= tif::NEED_RESCHED;
    if target != from && polling {
        if m.trace.is_some() {
            crate::trace::event(
                m,
                from,
                "sched_wake_idle_without_ipi",
                &format!("cpu={target}"),
            );
        }
    } else if target != from {
        send_ipi(m, from, target, Vector::Reschedule);
    }
}

/// Sends an IPI; it arrives after `ipi_latency_ns`. A pending vector coalesces (one IRR bit).
pub(crate) fn send_ipi(m: &mut Machine, from: CpuId, target: CpuId, v: Vector) {
    let now = m.cpus[from].hw.now;
    if m.trace.is_some() && from != target {
        // ipi:ipi_send_cpu (Linux 6.6+).
        let (site, cb) = match v {
            Vector::Reschedule => ("resched_curr+0x0", "0x0"),
            Vector::IrqWork => ("irq_work_queue_on+0x0", "nohz_full_kick_func+0x0"),
            _ => ("send_ipi+0x0", "0x0"),
        };
        crate::trace::event(
            m,
            from,
            "ipi_send_cpu",
            &format!("cpu={target} callsite={site} callback={cb}"),
        );
    }
    let at = if from == target {
        now
    } else {
        now + m.cost.ipi_latency_ns
    };
    if post_irq(m, target, v, at) {
        m.cpus[from].counters.ipis_sent += 1;
    }
}

/// Raises vector `v` on `target`, arriving at `at`. A pending vector coalesces (one IRR bit):
/// returns false when it was already pending.
pub(crate) fn post_irq(m: &mut Machine, target: CpuId, v: Vector, at: u64) -> bool {
    let slot = &mut m.cpus[target].pending[v as usize];
    if *slot != NEVER {
        return false;
    }
    *slot = at;
    m.refresh_next(target);
    true
}

/// `sched_update_tick_dependency()`: on a nohz_full CPU, more than one runnable task needs the
/// tick (`TICK_DEP_BIT_SCHED`); the first setter kicks the CPU.
pub(crate) fn update_sched_tick_dep(m: &mut Machine, from: CpuId, c: CpuId) {
    if !m.cpus[c].nohz_full {
        return;
    }
    let running = usize::from(!m.tasks[m.cpus[c].current].is_idle);
    let nr = m.cpus[c].rq.len() + running;
    let tick = &mut m.cpus[c].pcpu.local.tick;
    if nr > 1 {
        if tick.tick_nohz_dep_set_cpu(TickDepBit::Sched) && tick.tick_stopped {
            send_ipi(m, from, c, Vector::IrqWork);
        }
    } else {
        tick.tick_nohz_dep_clear_cpu(TickDepBit::Sched);
    }
}

fn stop_tick(m: &mut Machine, c: CpuId) {
    let cpu = &mut m.cpus[c];
    if cpu.pcpu.local.tick.update(true) == Some(true) {
        cpu.next_tick = NEVER;
        cpu.tick_stopped_since = Some(cpu.hw.now);
    }
}

fn restart_tick(m: &mut Machine, c: CpuId) {
    let period = m.tick_nsec();
    let cpu = &mut m.cpus[c];
    if cpu.pcpu.local.tick.update(false) == Some(false) {
        let now = cpu.hw.now;
        if let Some(since) = cpu.tick_stopped_since.take() {
            cpu.times.tick_stopped_ns += now - since;
        }
        cpu.next_tick = (now / period + 1) * period;
    }
}
