//! Asynchronous events a driver injects between two steps, for drivers that pick the moment
//! themselves (the model checker) instead of the event loop's clock.
//!
//! Each event goes through the same code as in a simulation run: an IRQ or NMI is posted and
//! taken by [`Machine::advance`] exactly as the loop would take it (only when the hardware
//! allows: IRQs on, no NMI in progress); an exception pushes the design's path on the spot; remote
//! actions run the scheduler's and RCU's own functions as another CPU.

use crate::machine::program::{Program, Then};
use crate::machine::{
    tif, ChanId, CpuId, EntryKind, Machine, Mode, Regs, Task, TaskId, Vector, NEVER,
};
pub use crate::os::ct_work::Setter;
use crate::os::{self, K};

/// A synchronous exception taken at a step boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exception {
    /// A page fault: from user mode, or from instrumentable kernel code (`copy_from_user`).
    PageFault,
    /// A breakpoint or debug trap (`int3`, `#DB`): anywhere, entry code included.
    Breakpoint,
}

impl Machine {
    /// Creates a user task that starts in `ret_from_fork` on `cpu`'s run queue.
    pub fn spawn(&mut self, comm: &str, prog: Program, cpu: CpuId) -> TaskId {
        let pid = self.alloc_pid();
        let cpu = self.cfg.taskset.unwrap_or(cpu);
        let mut t = Task::new(pid, comm, prog, cpu);
        t.pinned = self.cfg.taskset;
        t.push_entry(
            EntryKind::Fork,
            Regs {
                user: true,
                irqs_on: true,
                vector: None,
            },
            self.design.ret_from_fork,
        );
        self.tasks.push(crate::machine::Shared::new(t));
        let id = self.tasks.len() - 1;
        crate::os::enqueue_new(self, id, cpu);
        id
    }

    /// Raises vector `v` on CPU `c`, arrived now; it is taken at the next
    /// [`Machine::advance`] if IRQs are on (or the CPU is in user mode or halted).
    pub fn raise_irq(&mut self, c: CpuId, v: Vector) {
        let now = self.cpus[c].hw.now;
        match v {
            Vector::LocalTimer => self.cpus[c].next_tick = now,
            _ => self.cpus[c].pending[v as usize] = now,
        }
        self.refresh_next(c);
    }

    /// Raises an NMI on CPU `c`, arrived now.
    pub fn raise_nmi(&mut self, c: CpuId) {
        self.cpus[c].nmi_at = self.cpus[c].hw.now;
        self.refresh_next(c);
    }

    /// The housekeeping CPU's `ct_set_cpu_work(c, work)` reads CPU `c`'s state word (the first
    /// of its two actions; a model checker runs the cmpxchg apart).
    pub fn work_set_read(&mut self, c: CpuId, work: ctxtrack_core::CtWork, setter: Setter) {
        crate::os::ct_work::setter_read(self, c, work, setter);
    }

    /// ... and its `atomic_try_cmpxchg()` (set, IPI, or back to the next try).
    pub fn work_set_cmpxchg(&mut self, c: CpuId, work: ctxtrack_core::CtWork, setter: Setter) {
        crate::os::ct_work::setter_cmpxchg(self, c, work, setter);
    }

    /// Flushes the trace outputs, if any (after a run).
    pub fn finish_trace(&mut self) -> std::io::Result<()> {
        match self.trace.as_mut() {
            Some(t) => t.finish(),
            None => Ok(()),
        }
    }

    /// CPU `c`'s user burst ends now (the program's next system call or fault comes next).
    pub fn end_user_burst(&mut self, c: CpuId) {
        self.cpus[c].user_until = self.cpus[c].hw.now;
        self.refresh_next(c);
    }

    /// CPU `c`'s user burst ends now and `then` comes next instead of the program's choice (a
    /// page fault: [`Then::Fault`]).
    pub fn end_user_burst_then(&mut self, c: CpuId, then: Then) {
        let cur = self.cpus[c].current;
        self.tasks[cur].then = then;
        self.end_user_burst(c);
    }

    /// No periodic tick on any CPU from now on (until something restarts it): a probe runs one
    /// path alone.
    pub fn stop_periodic_ticks(&mut self) {
        for cpu in &mut self.cpus {
            cpu.next_tick = NEVER;
        }
    }

    /// Task `t` registers a user-return notifier every `every` syscalls (0: never), as KVM
    /// does for its user-return MSRs.
    pub fn register_user_return_notifier(&mut self, t: TaskId, every: u64) {
        self.tasks[t].urn_every = every;
    }

    /// CPU `c`'s user burst, if it is in one, lasts until an action ends it
    /// ([`Self::end_user_burst`], an interrupt): time out of the state, for model checkers.
    ///
    /// A held burst does not shrink as clocks move (another CPU's steps advance the one clock):
    /// the time that passed is user time, but what is left of the burst stays, so whether the
    /// burst is over never depends on time. (Shrinking it made the two-CPU abstraction inexact:
    /// two states with one fingerprint could differ in whether an IRQ from user finds the burst
    /// done.)
    pub fn hold_user_burst(&mut self, c: CpuId) {
        if self.cpus[c].mode == Mode::User {
            let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
            let ran = cpu.hw.now.saturating_sub(cpu.user_since);
            cpu.times.user_ns += ran;
            cpu.user_since = cpu.hw.now;
            let cur = cpu.current;
            self.tasks[cur].user_ns += ran;
            self.cpus[c].user_until = NEVER;
            self.refresh_next(c);
        }
    }

    /// Binds task `t` to CPU `c` (`sched_setaffinity` to one CPU).
    pub fn pin(&mut self, t: TaskId, c: CpuId) {
        self.tasks[t].pinned = Some(c);
    }

    /// Sets thread-info flags `bits` ([`tif`]) on task `t`, as a syscall body or a remote CPU
    /// may leave them.
    pub fn set_thread_flags(&mut self, t: TaskId, bits: u32) {
        self.tasks[t].ti_flags |= bits;
    }

    /// CPU `c` reports a quiescent state to the running grace period (`rcu_report_qs_rdp()`).
    pub fn gp_report_qs(&mut self, c: CpuId) {
        crate::os::rcu::rcu_report_qs(self, c);
    }

    /// Keeps each CPU's last steps for violation reports.
    pub fn record_history(&mut self, on: bool) {
        self.monitor.record_history = on;
    }

    /// Takes the violation reports made after the first `before` and forgets every report, so
    /// copies of this machine stay cheap (the count of violations stays).
    pub fn drain_reports_from(&mut self, before: usize) -> Vec<crate::monitor::ViolationReport> {
        let out = self.monitor.reports.split_off(before);
        self.monitor.reports.clear();
        self.monitor.by_site.clear();
        self.monitor.by_invariant.clear();
        out
    }

    /// CPU `c` takes exception `e` now, at a step boundary (or in user mode). Returns false when
    /// it cannot: a halted CPU executes nothing. From user mode every exception takes the
    /// design's exception path; from kernel mode a breakpoint takes its debug path.
    pub fn raise_exception(&mut self, c: CpuId, e: Exception) -> bool {
        let path = match (self.cpus[c].mode, e) {
            (Mode::Halted, _) => return false,
            (Mode::User, _) => {
                let now = self.cpus[c].hw.now;
                self.account_user(c, now);
                self.design.exception
            }
            (Mode::Kernel, Exception::PageFault) => self.design.exception,
            (Mode::Kernel, Exception::Breakpoint) => self.design.debug,
        };
        self.cpus[c].counters.exceptions += 1;
        self.enter_kernel(c, EntryKind::Exception, None, path);
        self.refresh_next(c);
        true
    }

    /// `resched_curr()` of CPU `target` from CPU `from` (e.g. RCU's `resched_cpu()`, a wakeup
    /// preemption): `TIF_NEED_RESCHED` and a reschedule IPI.
    pub fn remote_resched(&mut self, from: CpuId, target: CpuId) {
        let cur = self.cpus[target].current;
        self.tasks[cur].ti_flags |= tif::NEED_RESCHED;
        os::send_ipi(self, from, target, Vector::Reschedule);
    }

    /// `signal_wake_up(t)` from CPU `from`: `TIF_SIGPENDING`, then `kick_process()` (a
    /// reschedule IPI if `t` is running elsewhere) or a wakeup if it sleeps.
    pub fn remote_signal(&mut self, from: CpuId, t: TaskId) {
        self.tasks[t].ti_flags |= tif::SIGPENDING;
        let mut k = K::new(self, from);
        k.signal_wake_up(t);
    }

    /// `write(ch, 1)` by a task on CPU `from`: a byte arrives and sleeping readers are woken
    /// (`try_to_wake_up()` → IPI to an idle target).
    pub fn remote_write(&mut self, from: CpuId, ch: ChanId) {
        let mut k = K::new(self, from);
        k.write_wake(ch, 1);
    }

    /// The grace-period kthread starts a grace period at `t`; CPUs in `done` (housekeeping CPUs
    /// the driver does not model) report their quiescent state at once.
    pub fn gp_start(&mut self, t: u64, done: u64) {
        if self.rcu.in_progress() {
            return;
        }
        self.rcu.start_at_ns = t;
        crate::os::rcu::rcu_gp_kthread(self, t);
        for c in 0..self.cpus.len() {
            if done & (1 << c) != 0 {
                crate::os::rcu::rcu_report_qs(self, c);
            }
        }
    }

    /// One force-quiescent-state scan of the running grace period at `t` (snapshot, or recheck
    /// of an earlier snapshot); the grace period ends if it finds every CPU quiescent.
    pub fn gp_fqs(&mut self, t: u64) {
        if !self.rcu.in_progress() {
            return;
        }
        self.rcu.next_fqs_ns = t;
        crate::os::rcu::rcu_gp_kthread(self, t);
    }

    /// The grace-period kthread finds CPU `c` still holding out after `jiffies_to_sched_qs`
    /// and sets its `rcu_urgent_qs` (its next kernel entry then forces the tick on).
    pub fn gp_urgent(&mut self, c: CpuId) {
        if self.rcu.scan.holds_out(c) {
            self.cpus[c].own().pcpu.rcu.set_urgent_qs(true);
            self.rcu.stats.urgent_qs_set += 1;
        }
    }

    /// Puts every CPU's clock at the latest one (one global clock, so events posted by one CPU
    /// have arrived on all) and drops the tick and device interrupts their handlers re-armed
    /// for the future: a driver that picks every event itself raises those when it wants them.
    pub fn sync_clocks_drop_timers(&mut self) {
        let now = self.cpus.iter().map(|c| c.hw.now).max().unwrap_or(0);
        for c in 0..self.cpus.len() {
            let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
            cpu.hw.now = now;
            if cpu.next_tick > now {
                cpu.next_tick = NEVER;
            }
            if cpu.pending[Vector::Device as usize] > now {
                cpu.pending[Vector::Device as usize] = NEVER;
            }
            self.refresh_next(c);
        }
    }
}
