//! The invariant monitor: every invariant the simulator checks has its one home here.
//!
//! | name | where checked | what |
//! |---|---|---|
//! | `rcu_watching_in_kernel` | before every instrumentable step | RCU watches whenever kernel code that may use RCU runs |
//! | `ct_kernel_with_irqs_on` | before every non-branch step | on a tracked CPU, kernel code with IRQs enabled runs in `CT_STATE_KERNEL` (the idle task may also be in `CT_STATE_IDLE`: `sti; hlt` returns with IRQs on into its EQS) |
//! | `return_to_user` | every return to user mode | context tracking says USER (key on), IRQs off, and no exit work pending unless an IPI that re-runs it is already in flight (a reschedule IPI, or an irq_work self-IPI) |
//! | `nesting_non_negative` | after every step | `nesting >= 0`, `nmi_nesting >= 0` |
//! | `nesting_balanced` | every return to user mode | `nesting`/`nmi_nesting` are what user mode has: 0/0 on a tracked CPU, 1/`CT_NESTING_IRQ_NONIDLE` otherwise |
//! | `entry_exit_state` | every end of an entry the hardware made | the CPU's context (CT state, RCU watching, `nesting`, `nmi_nesting`, `preempt_count`) is what the event found: what the interrupted code, or the next fresh entry, expects |
//! | `vtime_conservation` | after every step that ran a vtime hook, and at the end | user + sys + guest + idle accounted == elapsed, exactly, per vtime CPU |
//! | `user_return_deferred_wakeup` | every return to user mode (but from an NMI) | no deferred rcuog wakeup is pending ([`crate::os::rcu_nocb`]) |
//! | `idle_halt_with_work` | every halt of the idle loop | neither `TIF_NEED_RESCHED` without a reschedule or irq_work IPI in flight (a lost wakeup), nor a deferred rcuog wakeup |
//! | `rcu_gp_safety` | at every grace-period end | no read-side section that began before the grace period is still running |
//! | `rcu_read_lock_idle` | at every `rcu_read_lock()` | RCU is watching (Linux's lockdep check "rcu_read_lock() used illegally while idle") |
//! | `rcu_reader_schedule` | in `__schedule` | no context switch inside a (non-preemptible) read-side section |
//! | `ct_work_unflushed` | before every patchable step (instrumentable, or `noinstr` running `static_branch_noinstr()`) | no deferred work is owed: the CPU ran the `sync_core()`/TLB flush a sender deferred to it ([`crate::os::ct_work`]) before any patchable code. A lost work bit, or an entry that runs patchable code before its flush, breaks it |
//! | `ct_work_set_while_watching` | every successful `ct_set_cpu_work()` | the target was not watching (its next `ct_kernel_enter_state()` will flush the bit) |
//! | `ct_work_sync_incomplete` | every return of a synchronizing sender | every other CPU was either IPI'd or owes the work |
//! | core `WARN`s | after every step | every `CT_WARN_ON`/`WARN_ON_ONCE` of the core ([`ctxtrack_core::Violation`]) |
//!
//! `ct_kernel_with_irqs_on` is Andy Lutomirski's "any kernel code with IRQs on is *always* tracked
//! as kernel mode" from the seed thread, for user/guest tracking. The idle EQS is a different
//! state: Linux runs the `cli` after `hlt` (and, in 6.1, `ct_idle_exit()` itself) with IRQs on in
//! `CT_STATE_IDLE`.

use crate::design::{Path, Step, StepKind};
use crate::machine::{tif, CpuId, CtSnap, EndReason, EntryKind, Machine, TaskId, Vector, NEVER};
use ctxtrack_core::state::CT_NESTING_IRQ_NONIDLE;
use ctxtrack_core::CtState;
use serde::Serialize;

/// Steps kept per CPU for violation reports (a power of two).
pub const HISTORY_LEN: usize = 32;
/// Violation reports kept (the count goes on).
pub const MAX_REPORTS: usize = 16;

/// One executed step, as remembered for a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HistEntry {
    /// Sequence number of the kernel entry the step belongs to.
    pub entry: u32,
    /// CPU clock when the step started.
    pub time_ns: u64,
    /// PID of the task that ran it.
    pub pid: u32,
    /// Path name.
    pub path: &'static str,
    /// Step name.
    pub step: &'static str,
    /// Context after the step.
    #[serde(serialize_with = "ser_state")]
    pub ct_state: CtState,
    /// IRQ flag after the step.
    pub irqs_on: bool,
    /// RCU watching after the step.
    pub watching: bool,
}

fn ser_state<S: serde::Serializer>(s: &CtState, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.name())
}

/// Ring buffer of the last [`HISTORY_LEN`] steps of a CPU (allocated on the first push: a
/// machine that does not record history, or a checker's copy of one, carries none).
#[derive(Clone, Debug, Default)]
pub struct History {
    buf: Vec<HistEntry>,
    /// Steps pushed so far.
    len: u64,
}

impl History {
    /// Records a step.
    #[inline]
    pub fn push(&mut self, e: HistEntry) {
        if self.buf.len() < HISTORY_LEN {
            self.buf.push(e);
        } else {
            self.buf[(self.len as usize) & (HISTORY_LEN - 1)] = e;
        }
        self.len += 1;
    }
    /// Steps pushed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// No step pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The newest step.
    pub fn last(&self) -> Option<&HistEntry> {
        (self.len > 0).then(|| &self.buf[((self.len - 1) as usize) & (HISTORY_LEN - 1)])
    }
    /// Oldest first.
    pub fn entries(&self) -> Vec<HistEntry> {
        let n = (self.len as usize).min(HISTORY_LEN);
        (0..n)
            .map(|i| self.buf[((self.len as usize) - n + i) & (HISTORY_LEN - 1)])
            .collect()
    }
}

/// One violation, with the steps that led to it.
#[derive(Clone, Debug, Serialize)]
pub struct ViolationReport {
    /// Invariant name.
    pub invariant: String,
    /// Where it was detected (`path: step`, or the check's place).
    pub site: String,
    /// CPU.
    pub cpu: CpuId,
    /// Time.
    pub time_ns: u64,
    /// What was seen.
    pub detail: String,
    /// Last steps of that CPU, oldest first.
    pub history: Vec<HistEntry>,
}

/// Monitor state.
#[derive(Clone, Debug)]
pub struct Monitor {
    /// Per-step checks on.
    pub enabled: bool,
    /// Total violations.
    pub count: u64,
    /// Violations per invariant.
    pub by_invariant: std::collections::BTreeMap<String, u64>,
    /// Violations per `invariant @ site`.
    pub by_site: std::collections::BTreeMap<String, u64>,
    /// The first violation of each distinct `invariant @ site`, at most [`MAX_REPORTS`].
    pub reports: Vec<ViolationReport>,
    /// Stop the run at the first violation.
    pub stop_on_violation: bool,
    /// Record each CPU's last steps. Off in a first run (it costs ~10 % of the simulator's
    /// time); [`crate::run`] replays a run that found violations with it on, which reproduces
    /// the same run step for step and fills in the reports' histories.
    pub record_history: bool,
    /// End the run once this many reports exist (the replay stops where the first run's last
    /// report was made).
    pub stop_after_reports: Option<usize>,
}

impl Monitor {
    /// A monitor; `enabled` turns the per-step checks on.
    pub fn new(enabled: bool) -> Monitor {
        Monitor {
            enabled,
            count: 0,
            by_invariant: Default::default(),
            by_site: Default::default(),
            reports: Vec::new(),
            stop_on_violation: true,
            record_history: false,
            stop_after_reports: None,
        }
    }

    /// A limit of the model was hit: reported like a violation, because a silent truncation would
    /// be a wrong result.
    pub fn fail_limit(&mut self, cpu: CpuId, what: &str, end: &mut Option<EndReason>) {
        self.count += 1;
        *self.by_invariant.entry("model_limit".into()).or_default() += 1;
        self.reports.push(ViolationReport {
            invariant: "model_limit".into(),
            site: what.to_string(),
            cpu,
            time_ns: 0,
            detail: format!("limit reached: {what}"),
            history: Vec::new(),
        });
        *end = Some(EndReason::Violation);
    }
}

fn fail(m: &mut Machine, c: CpuId, invariant: &str, site: &str, detail: String) {
    let mon = &mut m.monitor;
    mon.count += 1;
    *mon.by_invariant.entry(invariant.to_string()).or_default() += 1;
    let key = format!("{invariant} @ {site}");
    let n = mon.by_site.entry(key).or_default();
    *n += 1;
    if *n == 1 && mon.reports.len() < MAX_REPORTS {
        mon.reports.push(ViolationReport {
            invariant: invariant.to_string(),
            site: site.to_string(),
            cpu: c,
            time_ns: m.cpus[c].hw.now,
            detail,
            history: m.cpus[c].history.entries(),
        });
    }
    if m.monitor.stop_on_violation || m.monitor.stop_after_reports == Some(m.monitor.reports.len())
    {
        m.end = Some(EndReason::Violation);
    }
}

/// Checks before a non-branch step runs.
#[inline]
pub fn before_step(m: &mut Machine, c: CpuId, path: &Path, step: &Step) {
    if !m.monitor.enabled {
        return;
    }
    let cpu = &m.cpus[c];
    let ct = &cpu.pcpu.ct;
    if cpu.hw.owed != 0 && (step.kind == StepKind::Instr || step.patchable) {
        return fail_ct_work_unflushed(m, c, path, step);
    }
    if step.kind == StepKind::Instr && !ct.rcu_is_watching() {
        return fail_rcu_watching_in_kernel(m, c, path, step);
    }
    let state = ct.ct_state_bits();
    let idle_eqs = state == CtState::Idle && cpu.hw.cur_is_idle;
    if cpu.hw.irqs_on && ct.active() && m.key.is_enabled() && state != CtState::Kernel && !idle_eqs
    {
        fail_ct_kernel_with_irqs_on(m, c, path, step);
    }
}

// The failure paths are out of line and cold: formatting a report must not weigh on the
// per-step checks, which run ten million times in the default simulation.

#[cold]
#[inline(never)]
fn fail_rcu_watching_in_kernel(m: &mut Machine, c: CpuId, path: &Path, step: &Step) {
    let ct = &m.cpus[c].pcpu.ct;
    let d = format!(
        "instrumentable step `{}` runs while RCU is not watching (ct state {})",
        step.name,
        ct.ct_state_bits().name()
    );
    let site = format!("{}: {}", path.name, step.name);
    fail(m, c, "rcu_watching_in_kernel", &site, d);
}

#[cold]
#[inline(never)]
fn fail_ct_kernel_with_irqs_on(m: &mut Machine, c: CpuId, path: &Path, step: &Step) {
    let ct = &m.cpus[c].pcpu.ct;
    let d = format!(
        "step `{}` runs with IRQs on while context tracking says {}",
        step.name,
        ct.ct_state_bits().name()
    );
    let site = format!("{}: {}", path.name, step.name);
    fail(m, c, "ct_kernel_with_irqs_on", &site, d);
}

#[cold]
#[inline(never)]
fn fail_ct_work_unflushed(m: &mut Machine, c: CpuId, path: &Path, step: &Step) {
    let owed: Vec<&str> = ctxtrack_core::CtWork::ALL
        .iter()
        .filter(|w| m.cpus[c].hw.owed & w.bit() as u8 != 0)
        .map(|w| w.name())
        .collect();
    let d = format!(
        "patchable step `{}` runs before the deferred {} ran (ct state {}, work bits {:#x} in the state word)",
        step.name,
        owed.join("|"),
        m.cpus[c].pcpu.ct.ct_state_bits().name(),
        m.cpus[c].pcpu.ct.ct_work()
    );
    let site = format!("{}: {}", path.name, step.name);
    fail(m, c, "ct_work_unflushed", &site, d);
}

/// A `ct_set_cpu_work()` on CPU `c` succeeded: the target must not be watching (else its entry
/// has flushed already and the bit waits for the one after).
pub fn on_work_set(m: &mut Machine, c: CpuId, work: ctxtrack_core::CtWork) {
    if m.monitor.enabled && m.cpus[c].pcpu.ct.rcu_is_watching() {
        let d = format!(
            "{} deferred to CPU {c} while RCU watches it (ct state {})",
            work.name(),
            m.cpus[c].pcpu.ct.ct_state_bits().name()
        );
        fail(m, c, "ct_work_set_while_watching", "ct_set_cpu_work", d);
    }
}

/// A synchronizing sender is done with CPU `c`: it interrupted it or `c` owes the work.
pub fn on_sync_done_for(m: &mut Machine, c: CpuId, work: ctxtrack_core::CtWork) {
    let bit = work.bit() as u8;
    if m.monitor.enabled && (m.cpus[c].hw.owed | m.cpus[c].csd) & bit == 0 {
        let d = format!("CPU {c} neither got the IPI nor owes {}", work.name());
        fail(m, c, "ct_work_sync_incomplete", "on_each_cpu_cond", d);
    }
}

/// Checks after a step: `vtime_before` and `warn_before` are the CPU's vtime hook and WARN
/// counts before it ran.
#[inline]
pub fn after_step(m: &mut Machine, c: CpuId, vtime_before: u64, warn_before: u32) {
    let cpu = &m.cpus[c];
    if cpu.pcpu.local.warn.count != warn_before {
        return fail_core_warn(m, c);
    }
    if !m.monitor.enabled {
        return;
    }
    let ct = &cpu.pcpu.ct;
    if ct.nesting() < 0 || ct.nmi_nesting() < 0 {
        return fail_nesting(m, c);
    }
    if cpu.pcpu.local.stats.vtime_hooks != vtime_before {
        check_vtime(m, c);
    }
}

#[cold]
#[inline(never)]
fn fail_core_warn(m: &mut Machine, c: CpuId) {
    let v = m.cpus[c]
        .pcpu
        .local
        .warn
        .last
        .expect("warn count moved without a violation");
    let d = format!("{} in {} (WARN in the core)", v.name(), v.linux_site());
    fail(m, c, v.name(), v.linux_site(), d);
}

#[cold]
#[inline(never)]
fn fail_nesting(m: &mut Machine, c: CpuId) {
    let ct = &m.cpus[c].pcpu.ct;
    let d = format!("nesting {} nmi_nesting {}", ct.nesting(), ct.nmi_nesting());
    fail(m, c, "nesting_non_negative", "after a step", d);
}

#[inline]
fn check_vtime(m: &mut Machine, c: CpuId) {
    let cpu = &m.cpus[c];
    let cur = &m.tasks[cpu.current].vtime;
    if let Err((acc, el)) = cpu
        .pcpu
        .local
        .cputime
        .check_conservation(cpu.hw.now, cur, c)
    {
        let d = format!("vtime accounted {acc} ns but {el} ns elapsed");
        fail(m, c, "vtime_conservation", "vtime hook", d);
    }
}

/// Vtime conservation on every CPU (end of run).
pub fn check_all_vtime(m: &mut Machine) {
    for c in 0..m.cpus.len() {
        check_vtime(m, c);
    }
}

/// Checks at a return to user mode.
pub fn on_return_to_user(m: &mut Machine, c: CpuId, t: TaskId, kind: EntryKind) {
    if !m.monitor.enabled {
        return;
    }
    let cpu = &m.cpus[c];
    let state = cpu.pcpu.ct.ct_state_bits();
    if m.key.is_enabled() && state != CtState::User {
        let d = format!(
            "returning to user mode with context tracking in {}",
            state.name()
        );
        return fail(m, c, "return_to_user", "sysret/iret: context state", d);
    }
    if cpu.hw.irqs_on {
        let d = "returning to user mode with IRQs enabled before sysret/iret".into();
        return fail(m, c, "return_to_user", "sysret/iret: IRQ flag", d);
    }
    let ct = &cpu.pcpu.ct;
    let want = if m.key.is_enabled() && ct.active() {
        (0, 0)
    } else {
        (1, CT_NESTING_IRQ_NONIDLE)
    };
    if (ct.nesting(), ct.nmi_nesting()) != want {
        let d = format!(
            "returning to user mode with nesting {} nmi_nesting {} (user mode has {} / {})",
            ct.nesting(),
            ct.nmi_nesting(),
            want.0,
            want.1
        );
        return fail(m, c, "nesting_balanced", "sysret/iret", d);
    }
    // Work set remotely comes with an IPI that will bring the task straight back; NMIs never
    // process work.
    let work = m.tasks[t].ti_flags & tif::EXIT_TO_USER_MODE_WORK;
    if work != 0 && kind != EntryKind::Nmi && !exit_work_ipi_in_flight(m, c) {
        let d = format!("returning to user mode with exit work pending (ti_flags {work:#x}) and no IPI in flight");
        return fail(m, c, "return_to_user", "sysret/iret: exit work", d);
    }
    if m.cpus[c].nocb_defer_wakeup && kind != EntryKind::Nmi {
        let d = "returning to user mode with a deferred rcuog wakeup pending (rdp->nocb_defer_wakeup): no flush after the last call_rcu() with IRQs off".into();
        fail(m, c, "user_return_deferred_wakeup", "sysret/iret", d);
    }
}

/// An IPI that will bring CPU `c` back through its exit work is on its way: a reschedule IPI
/// (a remote `resched_curr()`), or an irq_work self-IPI (`irq_work_queue()`: Linux's
/// `rcu_irq_work_resched()` relies on it, as nohz kicks do). Nothing else counts: a timer or
/// device interrupt may never come.
fn exit_work_ipi_in_flight(m: &Machine, c: CpuId) -> bool {
    let p = &m.cpus[c].pending;
    p[Vector::Reschedule as usize] != NEVER || p[Vector::IrqWork as usize] != NEVER
}

/// Checks when CPU `c`'s idle loop halts (`sti; hlt`): nothing the idle loop must handle first
/// is pending. A `TIF_NEED_RESCHED` with no IPI on its way is a lost wakeup (the task waits for
/// an interrupt that may never come on a tickless CPU); a deferred rcuog wakeup must have been
/// flushed before the last `need_resched()` check (`do_idle()`).
pub fn on_halt(m: &mut Machine, c: CpuId) {
    if !m.monitor.enabled {
        return;
    }
    let t = m.cpus[c].current;
    if m.tasks[t].ti_flags & tif::NEED_RESCHED != 0 && !exit_work_ipi_in_flight(m, c) {
        let d = "halting in the idle loop with TIF_NEED_RESCHED set and no IPI in flight (a lost wakeup)".into();
        return fail(m, c, "idle_halt_with_work", "safe_halt", d);
    }
    if m.cpus[c].nocb_defer_wakeup {
        let d = "halting in the idle loop with a deferred rcuog wakeup pending (rdp->nocb_defer_wakeup)".into();
        fail(m, c, "idle_halt_with_work", "safe_halt", d);
    }
}

/// Checks at the end of an entry made by the hardware (syscall, IRQ, exception, NMI): the CPU's
/// context must be back to `saved`, what the event found.
pub fn on_entry_exit(m: &mut Machine, c: CpuId, saved: &CtSnap, to_user: bool) {
    if !m.monitor.enabled {
        return;
    }
    let now = CtSnap::of(&m.cpus[c]);
    if now.cpu == saved.cpu && now != *saved {
        let d = format!(
            "entry left {} with {} watching={} nesting={} nmi_nesting={} preempt_count={:#x}, \
             but the event found {} watching={} nesting={} nmi_nesting={} preempt_count={:#x}",
            if to_user {
                "to user mode"
            } else {
                "to the interrupted kernel"
            },
            now.state.name(),
            now.watching,
            now.nesting,
            now.nmi_nesting,
            now.preempt_count,
            saved.state.name(),
            saved.watching,
            saved.nesting,
            saved.nmi_nesting,
            saved.preempt_count
        );
        let site = if to_user {
            "sysret/iret to user"
        } else {
            "iret to kernel"
        };
        fail(m, c, "entry_exit_state", site, d);
    }
}

/// Checks at the end of a grace period that started at `m.rcu.scan.started()`.
pub fn on_gp_end(m: &mut Machine, t: u64) {
    let start = m.rcu.scan.started();
    let bad = m
        .tasks
        .iter()
        .position(|task| crate::machine::rcu::reader_predates(task, &m.rcu));
    if let Some(i) = bad {
        let c = m.tasks[i].cpu;
        let d = format!(
            "grace period {} (started {start} ns) completed at {t} ns while pid {} is in a read-side section begun at {} ns",
            m.rcu.gp_seq(), m.tasks[i].pid, m.tasks[i].rcu_since_ns
        );
        fail(m, c, "rcu_gp_safety", "grace period end", d);
    }
}

/// `rcu_read_lock()` while RCU is not watching (Linux's `RCU_LOCKDEP_WARN(!rcu_is_watching(),
/// "rcu_read_lock() used illegally while idle")`): the reader is invisible to grace periods,
/// whatever the kind of the step that takes it.
#[inline]
pub fn on_rcu_read_lock(m: &mut Machine, c: CpuId) {
    if !m.monitor.enabled || m.cpus[c].pcpu.ct.rcu_is_watching() {
        return;
    }
    let d = "rcu_read_lock() used illegally while idle: RCU is not watching this CPU".into();
    fail(m, c, "rcu_read_lock_idle", "rcu_read_lock", d);
}

/// `__schedule()` of task `prev` on CPU `c` inside a read-side section (`rcu_reader_schedule`).
#[inline]
pub fn on_schedule(m: &mut Machine, c: CpuId, prev: TaskId) {
    if m.tasks[prev].rcu_depth == 0 {
        return;
    }
    let d = "context switch inside an rcu_read_lock() section".into();
    fail(m, c, "rcu_reader_schedule", "__schedule", d);
}
