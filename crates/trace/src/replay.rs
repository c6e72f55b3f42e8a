//! Replay of an ftrace text trace: per-CPU context-state timelines rebuilt from the events,
//! every invariant a trace can show checked with its line number, and per-task CPU time
//! reconstructed the way the kernel accounts it.
//!
//! Streaming: one pass, memory bounded by the number of CPUs and tasks (never by the trace
//! length). Deterministic: maps are ordered.
//!
//! # Context state per CPU
//!
//! `user_exit` / `user_enter` (`trace_user_exit` / `trace_user_enter` in `__ct_user_exit` /
//! `__ct_user_enter`) move a CPU between KERNEL and USER. A CPU that logs them is *tracked*
//! (nohz_full, context tracking active); on the others there is no such event and user mode is
//! inferred from the syscall boundaries (after `sys_exit` until the next kernel entry).
//!
//! # Accounting (`kernel/sched/cputime.c`)
//!
//! On a tracked CPU `VIRT_CPU_ACCOUNTING_GEN` measures time at each transition
//! (`vtime_user_enter` / `vtime_user_exit`, `vtime_task_switch`): user time is the time between
//! `user_enter` and `user_exit`, system time the rest of the task's running time. It only
//! *flushes* a bucket into `tsk->utime`/`stime` once it holds a whole tick
//! ([`ctxtrack_core::vtime::vtime_accumulate`]); what stays pending is invisible once the task
//! sleeps or exits (`task_cputime()`), so a short-lived task's minority bucket under-reports.
//!
//! On an untracked CPU the tick samples (`account_process_tick()`, no `IRQ_TIME_ACCOUNTING`):
//! the tick is `hrtimer_expire_entry: function=tick_sched_timer` when the trace has hrtimer
//! events (a local timer interrupt may serve other hrtimers only), else `local_timer_entry`; it
//! charges one `TICK_NSEC` to user time if `user_mode(regs)` (the interrupted context was user
//! mode), else to system time, or to idle for the idle task outside softirqs. User mode is
//! inferred: after `sys_exit`, after an IRQ or softirq that interrupted user mode, and when a task
//! preempted on its way back to user mode runs again. The one thing the trace cannot show is
//! where a page fault's handler returns; a tick in that window is *ambiguous*, counted apart,
//! guessed (user if the fault began longer ago than the shortest fault-to-fault gap seen on that
//! CPU), and the task marked inexact with the bound.
//!
//! Either way the figures a reader of `/proc` sees come from `cputime_adjust()`, which scales them
//! so that they add up to the task's precise runtime (`sum_exec_runtime`, here the time between
//! its `sched_switch`es). Per CPU, [`CpuReport`]'s `stat_*` fields are what `/proc/stat` adds:
//! flushed vtime and tick samples charged on that CPU, and idle as `tick_sched`'s idle sleep
//! time (the idle task's time outside IRQs and softirqs).

pub use crate::event::field;
use crate::event::{SchedSwitch, SchedWakeup, TickStop};
use crate::line::{parse_line, Flags, Line, Parsed};
use crate::shapes::is_vector_base;
use ctxtrack_core::vtime::{task_cputime, vtime_accumulate, TaskVtime, VtimeState};
use serde::Serialize;
use std::collections::BTreeMap;

/// Replay options.
#[derive(Clone, Debug)]
pub struct Options {
    /// CPUs known to be nohz_full (tracked). `None`: a CPU is tracked once it logs a
    /// `user_enter` or `user_exit`.
    pub nohz_full: Option<Vec<u32>>,
    /// The kernel's `HZ`, for tick-sampled accounting on untracked CPUs (Debian: 250).
    pub hz: u32,
    /// Stop after this many violations are recorded (they are still counted).
    pub max_reports: usize,
    /// Collect path shapes ([`crate::shapes`]).
    pub shapes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nohz_full: None,
            hz: 250,
            max_reports: 100,
            shapes: false,
        }
    }
}

/// A broken invariant, where the trace shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Violation {
    /// Invariant name (see [`INVARIANTS`]).
    pub invariant: &'static str,
    /// 1-based line number in the trace text.
    pub line: u64,
    /// CPU of the offending event.
    pub cpu: u32,
    /// What was seen.
    pub detail: String,
}

/// Something that makes the totals less certain (lost events, reordering), with its line.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line number.
    pub line: u64,
    /// What was seen and what it means for the totals.
    pub detail: String,
}

/// The invariants a trace can show, with what each one means.
pub const INVARIANTS: &[(&str, &str)] = &[
    ("ct_alternation", "user_enter and user_exit alternate on each CPU"),
    ("ct_event_irqs_on", "user_enter/user_exit are logged with IRQs disabled"),
    ("ct_event_in_irq", "user_enter/user_exit are never logged in hard IRQ or NMI context"),
    ("sched_switch_in_user", "no sched_switch while the CPU is in USER"),
    ("syscall_in_user", "on a tracked CPU a syscall sits inside user_exit ... user_enter"),
    ("entry_in_user", "on a tracked CPU an IRQ or exception from user mode comes after user_exit (generic entry's enter_from_user_mode)"),
    ("irq_nesting", "IRQ vector entry/exit events pair up on each CPU"),
];

/// Per-CPU figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuReport {
    /// CPU number.
    pub cpu: u32,
    /// Context tracking was seen active on it (or it was declared nohz_full).
    pub tracked: bool,
    /// `user_enter` events.
    pub user_enter: u64,
    /// `user_exit` events.
    pub user_exit: u64,
    /// Local timer interrupts (`local_timer_entry`).
    pub ticks: u64,
    /// Other IRQ vectors and device IRQs.
    pub irqs: u64,
    /// Syscalls entered.
    pub syscalls: u64,
    /// Context switches.
    pub switches: u64,
    /// Time with the tick stopped (`tick_stop: success=1` until the next tick or failed stop).
    pub tick_stopped_ns: u64,
    /// Time in user mode (all tasks).
    pub user_ns: u64,
    /// Time in the kernel for tasks (idle excluded).
    pub sys_ns: u64,
    /// Time running the idle task.
    pub idle_ns: u64,
    /// Of `idle_ns`, the time inside IRQs and softirqs (not idle for `/proc/stat`).
    pub idle_irq_ns: u64,
    /// Tick samples taken on this CPU (untracked only; `account_process_tick()`).
    pub tick_samples: u64,
    /// Of those, samples whose mode the trace cannot tell (inside a page fault's window).
    pub tick_ambiguous: u64,
    /// What `/proc/stat`'s `user` column gains on this CPU over the trace (flushed vtime, user
    /// tick samples).
    pub stat_user_ns: u64,
    /// The range of `stat_user_ns` over the tracing-cost bounds and every ambiguous tick
    /// sample (see [`TaskReport::utime_bounds_ns`]).
    pub stat_user_bounds_ns: (u64, u64),
    /// What its `system` column gains.
    pub stat_system_ns: u64,
    /// What its `softirq` column gains (ticks that sampled a softirq: `account_system_time()`
    /// files them under `CPUTIME_SOFTIRQ`).
    pub stat_softirq_ns: u64,
    /// What its `idle` + `iowait` columns gain (`tick_sched` idle sleep time: the idle task
    /// outside IRQs and softirqs).
    pub stat_idle_ns: u64,
    /// Time the trace cannot attribute (before the CPU's first event fixes its state, after
    /// lost events).
    pub unknown_ns: u64,
    /// First and last event timestamps on this CPU.
    pub first_ns: u64,
    /// Last event timestamp.
    pub last_ns: u64,
}

/// Per-task figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TaskReport {
    /// Task id.
    pub pid: i32,
    /// Last name seen (exec changes it).
    pub comm: String,
    /// Thread group (`tgid`) when the trace records it, else the pid.
    pub tgid: i32,
    /// The task that forked it (`sched_wakeup_new` seen on its parent), if in the trace.
    pub parent: Option<i32>,
    /// Time in user mode, as the trace shows it.
    pub user_ns: u64,
    /// Time in the kernel, as the trace shows it.
    pub sys_ns: u64,
    /// `sum_exec_runtime`: time between being switched in and out (including time whose mode
    /// the trace does not fix).
    pub runtime_ns: u64,
    /// What `/proc/PID/stat` would report (`cputime_adjust` of vtime on tracked CPUs plus tick
    /// samples on untracked ones), user part.
    pub utime_ns: u64,
    /// The same, system part.
    pub stime_ns: u64,
    /// Syscalls entered.
    pub syscalls: u64,
    /// Ticks that sampled it in user / in the kernel on untracked CPUs.
    pub tick_user: u64,
    /// Tick samples in the kernel.
    pub tick_sys: u64,
    /// Tick samples the trace cannot place (counted in `tick_user` or `tick_sys` by a guess).
    pub tick_ambiguous: u64,
    /// vtime flushed into `tsk->utime` (ns), on tracked CPUs.
    pub vtime_utime_ns: u64,
    /// vtime flushed into `tsk->stime`.
    pub vtime_stime_ns: u64,
    /// The range `utime_ns` could take if every ambiguous tick sample went the other way
    /// (equal to `utime_ns` when `exact`).
    pub utime_bounds_ns: (u64, u64),
    /// What `task_cputime()` gives before `cputime_adjust()`: flushed vtime, pending vtime of
    /// the state it runs in at the end, tick samples; user part.
    pub sample_utime_ns: u64,
    /// The same, system part.
    pub sample_stime_ns: u64,
    /// (user, system) samples at the low end of `utime_bounds_ns`: ambiguous ticks counted
    /// system, twice the estimated tracing cost per transition.
    pub sample_lo_ns: (u64, u64),
    /// The same at the high end: ambiguous ticks counted user, no tracing cost.
    pub sample_hi_ns: (u64, u64),
    /// It logged `sched_process_exit`.
    pub exited: bool,
    /// Its parent reaped it: a `wait4()` returned its pid (`sys_exit: NR 61 = pid`, x86-64).
    pub reaped: bool,
    /// `utime_ns`/`stime_ns` are exactly what the kernel computes from this trace: every
    /// transition was logged (tracked CPUs) or every tick sample's mode is known (untracked).
    /// Otherwise see `utime_bounds_ns`.
    pub exact: bool,
}

/// The result of a replay.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Lines read.
    pub lines: u64,
    /// Event lines.
    pub events: u64,
    /// Per CPU, by number.
    pub cpus: Vec<CpuReport>,
    /// Per task, by pid (idle tasks excluded).
    pub tasks: Vec<TaskReport>,
    /// Violations found (at most `max_reports`; `violation_count` has them all).
    pub violations: Vec<Violation>,
    /// All violations, including those not listed.
    pub violation_count: u64,
    /// Warnings (lost events, reordering).
    pub warnings: Vec<Warning>,
    /// Path shapes, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<crate::shapes::Shape>,
}

impl Report {
    /// What `pid`'s `cutime`/`cstime` gain once it has reaped every descendant the trace saw it
    /// fork (`wait_task_zombie()`): per thread group, `thread_group_cputime()` adds the threads'
    /// samples and runtimes, `cputime_adjust()` scales once, and the groups add up. `pid`'s own
    /// group is left out. Returns (user, system) and the bounds of user over every ambiguous
    /// tick sample (equal to user when all are exact).
    pub fn children_cputime(&self, pid: i32) -> ChildrenTime {
        let own = self
            .tasks
            .iter()
            .find(|t| t.pid == pid)
            .map_or(pid, |t| t.tgid);
        let mut set = self.tree(pid);
        // When the trace shows `wait4()` returns, only what was reaped by its end counts (a
        // child still running, e.g. the `cat` reading the parent's stat, adds nothing yet);
        // threads count with their process.
        if self.tasks.iter().any(|t| t.reaped) {
            let reaped_groups: Vec<i32> = self
                .tasks
                .iter()
                .filter(|t| t.reaped && set.contains(&t.pid))
                .map(|t| t.tgid)
                .collect();
            set.retain(|p| {
                self.tasks
                    .iter()
                    .find(|t| t.pid == *p)
                    .is_some_and(|t| reaped_groups.contains(&t.tgid))
            });
        }
        self.reaped(&set, Some(own))
    }

    /// `pid` and every task the trace saw it (or them) fork.
    pub fn descendants(&self, pid: i32) -> Vec<i32> {
        self.tree(pid)
    }

    /// The tasks in `set` (and their threads) as reaped processes add them to a parent's
    /// `cutime`/`cstime`: grouped by thread group, each group adjusted once.
    pub fn cputime_of(&self, set: &[i32]) -> ChildrenTime {
        let groups: Vec<i32> = self
            .tasks
            .iter()
            .filter(|t| set.contains(&t.pid))
            .map(|t| t.tgid)
            .collect();
        let all: Vec<i32> = self
            .tasks
            .iter()
            .filter(|t| groups.contains(&t.tgid))
            .map(|t| t.pid)
            .collect();
        self.reaped(&all, None)
    }

    /// The tasks in `set` as reaped processes: grouped by thread group (except `skip`), each
    /// group adjusted once.
    fn reaped(&self, set: &[i32], skip: Option<i32>) -> ChildrenTime {
        let mut groups: BTreeMap<i32, [u64; 7]> = BTreeMap::new();
        for t in self
            .tasks
            .iter()
            .filter(|t| set.contains(&t.pid) && Some(t.tgid) != skip)
        {
            let g = groups.entry(t.tgid).or_default();
            g[0] += t.sample_utime_ns;
            g[1] += t.sample_stime_ns;
            g[2] += t.runtime_ns;
            g[3] += t.sample_lo_ns.0;
            g[4] += t.sample_lo_ns.1;
            g[5] += t.sample_hi_ns.0;
            g[6] += t.sample_hi_ns.1;
        }
        let mut r = ChildrenTime::default();
        for [u, s, rt, lu, ls, hu, hs] in groups.into_values() {
            let (au, as_) = cputime_adjust(u, s, rt);
            r.utime_ns += au;
            r.stime_ns += as_;
            let lo = cputime_adjust(lu, ls, rt).0;
            let hi = cputime_adjust(hu, hs, rt).0;
            r.utime_bounds_ns.0 += lo.min(au);
            r.utime_bounds_ns.1 += hi.max(au);
            r.groups += 1;
        }
        r
    }

    fn tree(&self, pid: i32) -> Vec<i32> {
        let mut set = vec![pid];
        let mut grew = true;
        while grew {
            grew = false;
            for t in &self.tasks {
                if let Some(p) = t.parent {
                    if set.contains(&p) && !set.contains(&t.pid) {
                        set.push(t.pid);
                        grew = true;
                    }
                }
            }
        }
        set
    }

    /// The task `pid` and every descendant the trace saw it fork: (user, system) the way
    /// `cutime`/`cstime` of `pid`'s waiting parent add them (each thread group adjusted once).
    pub fn tree_cputime(&self, pid: i32) -> (u64, u64) {
        let r = self.reaped(&self.tree(pid), None);
        (r.utime_ns, r.stime_ns)
    }
}

/// What a waiting parent's `cutime`/`cstime` gain ([`Report::children_cputime`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChildrenTime {
    /// `cutime` gained (ns).
    pub utime_ns: u64,
    /// `cstime` gained.
    pub stime_ns: u64,
    /// The range of `utime_ns` over every ambiguous tick sample.
    pub utime_bounds_ns: (u64, u64),
    /// Thread groups (processes) added.
    pub groups: u32,
}

/// Reading or parsing failed: the file, the line and what was expected.
#[derive(Debug)]
pub struct ReplayError {
    /// The input's name.
    pub file: String,
    /// 1-based line (0: before the first line).
    pub line: u64,
    /// What went wrong.
    pub msg: String,
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            // Before the first line, or a byte offset in a trace.dat (named in `msg`).
            write!(f, "{}: {}", self.file, self.msg)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.msg)
        }
    }
}
impl std::error::Error for ReplayError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Unknown,
    User,
    Kernel,
}

/// One task's vtime as the kernel keeps it, under one assumption on the tracing cost.
#[derive(Clone, Debug, Default)]
struct VtModel {
    /// `tsk->vtime` (pending buckets, state) and the flushed `tsk->utime`/`stime`.
    vt: TaskVtime,
    /// Time since the last vtime hook (what `get_vtime_delta()` would return).
    open: u64,
}

/// Multipliers of the tracing-cost estimate for [`Task::vt`]: estimate, lower, upper.
const BIAS_MULT: [u64; 3] = [1, 0, 2];

#[derive(Default)]
struct Task {
    comm: String,
    tgid: Option<i32>,
    parent: Option<i32>,
    user_ns: u64,
    sys_ns: u64,
    /// Running with a mode the trace does not fix (counted in its runtime only).
    unknown_ns: u64,
    /// `tsk->vtime` and the flushed `utime`/`stime` (tracked CPUs), three times: with the
    /// estimated cost of tracing a transition, and with none and twice it (the bounds).
    vt: [VtModel; 3],
    tick_user: u64,
    tick_sys: u64,
    /// Ambiguous samples, and how many of them were guessed user.
    tick_ambiguous: u64,
    tick_guessed_user: u64,
    /// Untracked CPUs: the mode it goes back to when switched in again (a task preempted on
    /// its way back to user mode returns there without an event).
    resume: Option<Mode>,
    syscalls: u64,
    exited: bool,
    reaped: bool,
    /// CPUs it ran on (bit per CPU, the last bit for CPU 127 and above).
    cpus: u128,
}

struct Cpu {
    r: CpuReport,
    cur: Option<i32>,
    mode: Mode,
    /// `mode` was inferred from syscall boundaries (untracked CPU), not logged.
    inferred: bool,
    /// Mode before the outermost IRQ (restored at its exit).
    irq_saved: Mode,
    irq_depth: u32,
    /// Open softirqs outside any IRQ (kernel mode on behalf of whoever was interrupted).
    softirq_depth: u32,
    softirq_saved: Mode,
    /// Untracked: a user page fault began here and its end is not logged.
    fault_at: Option<u64>,
    last_fault: Option<u64>,
    /// The last [`FAULT_GAPS`] gaps between two page faults of one task on this CPU (a ring):
    /// the longest bounds how long a fault's handler runs when faults come back to back.
    fault_gaps: [u64; FAULT_GAPS],
    fault_gap_n: usize,
    /// The sample of the local timer interrupt in progress, committed when it turns out to be
    /// the tick (`tick_sched_timer`).
    pending_tick: Option<(Option<i32>, Sample)>,
    /// Untracked: when the current inferred user-mode window began (`sys_exit`, or a task
    /// preempted on its way to user mode running again), and `irq_time` then.
    user_since: Option<u64>,
    user_since_irq: u64,
    /// Time spent in IRQs and softirqs on this CPU so far: a window's user part excludes it.
    irq_time: u64,
    /// Tracked: the timestamp of a `user_exit` that is this CPU's last event.
    after_user_exit: Option<u64>,
    /// The last local timer entry: (time, `irq_time` then).
    tick_entry: (u64, u64),
    /// User tick samples not yet known to be clear of the window's closing kernel edge
    /// (time, `irq_time` at it, task); settled when the window ends.
    candidates: Vec<(u64, u64, i32)>,
    last_ts: u64,
    seen: bool,
    stopped_since: Option<u64>,
}

/// How many fault-to-fault gaps a CPU remembers.
const FAULT_GAPS: usize = 63;

impl Cpu {
    /// The longest remembered fault-to-fault gap (`u64::MAX` before any): a fault that began
    /// longer ago than that has surely ended.
    fn fault_len_bound(&self) -> u64 {
        let n = self.fault_gap_n.min(FAULT_GAPS);
        self.fault_gaps[..n]
            .iter()
            .copied()
            .max()
            .unwrap_or(u64::MAX)
    }

    fn new(cpu: u32, tracked: bool) -> Cpu {
        Cpu {
            r: CpuReport {
                cpu,
                tracked,
                ..Default::default()
            },
            cur: None,
            mode: Mode::Unknown,
            inferred: false,
            irq_saved: Mode::Unknown,
            irq_depth: 0,
            softirq_depth: 0,
            softirq_saved: Mode::Unknown,
            fault_at: None,
            last_fault: None,
            fault_gaps: [0; FAULT_GAPS],
            fault_gap_n: 0,
            pending_tick: None,
            user_since: None,
            user_since_irq: 0,
            irq_time: 0,
            after_user_exit: None,
            tick_entry: (0, 0),
            candidates: Vec::new(),
            last_ts: 0,
            seen: false,
            stopped_since: None,
        }
    }
}

/// The cost of tracing one context transition, estimated from the trace: the median gap from
/// a `user_exit` to the next event on its CPU (the rest of `__ct_user_exit` after
/// `vtime_user_exit()`, the event's commit, the return to the entry code). It is what the trace's
/// user interval holds that vtime charges to the system: the commit of `user_enter` before
/// `vtime_user_enter()` reads the clock, and the time from `vtime_user_exit()`'s read to
/// `user_exit`'s timestamp. Deterministic: the median of the last [`COST_SAMPLES`] gaps,
/// refreshed every 64.
#[derive(Clone, Debug)]
struct TraceCost {
    ring: [u64; COST_SAMPLES],
    n: usize,
    cached: u64,
}

const COST_SAMPLES: usize = 255;

impl TraceCost {
    fn push(&mut self, gap: u64) {
        self.ring[self.n % COST_SAMPLES] = gap;
        self.n += 1;
        if self.n <= 64 || self.n.is_multiple_of(64) {
            let k = self.n.min(COST_SAMPLES);
            let mut g = self.ring;
            g[..k].sort_unstable();
            self.cached = g[k / 2];
        }
    }
    fn estimate(&self) -> u64 {
        self.cached
    }
}

/// What one tick charges (`account_process_tick()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sample {
    User,
    System,
    /// System time, sampled inside a softirq.
    Softirq,
    Idle,
    /// The trace cannot tell; the guess.
    Ambiguous {
        guess_user: bool,
    },
}

/// A replay in progress: feed it lines, then [`Replayer::finish`].
pub struct Replayer {
    opts: Options,
    /// `TICK_NSEC` for `opts.hz`.
    tick_nsec: u64,
    /// The trace has `hrtimer_expire_entry` events: the tick is `tick_sched_timer`'s.
    saw_hrtimer: bool,
    /// The estimated cost of tracing a transition.
    trace_cost: TraceCost,
    /// Shortest `sys_exit` -> next `sys_enter` gap of one task on an untracked CPU so far: an
    /// upper bound on the kernel's exit path after `trace_sys_exit()` plus its entry path before
    /// `trace_sys_enter()`, the kernel edges of every inferred user window (the same code on
    /// every CPU).
    min_user_gap: u64,
    cpus: BTreeMap<u32, Cpu>,
    tasks: BTreeMap<i32, Task>,
    report: Report,
    shapes: Option<crate::shapes::ShapeCollector>,
}

/// `kernel/sched/cputime.c: cputime_adjust()`: scale (utime, stime) so they sum to `rtime`.
pub fn cputime_adjust(utime: u64, stime: u64, rtime: u64) -> (u64, u64) {
    if stime == 0 {
        return (rtime, 0);
    }
    if utime == 0 {
        return (0, rtime);
    }
    let s = (stime as u128 * rtime as u128 / (stime as u128 + utime as u128)) as u64;
    (rtime - s, s)
}

impl Replayer {
    /// A replay with `opts`.
    pub fn new(opts: Options) -> Replayer {
        Replayer {
            shapes: opts.shapes.then(crate::shapes::ShapeCollector::new),
            // TICK_NSEC = (NSEC_PER_SEC + HZ/2) / HZ
            tick_nsec: (1_000_000_000 + u64::from(opts.hz.max(1)) / 2) / u64::from(opts.hz.max(1)),
            saw_hrtimer: false,
            min_user_gap: u64::MAX,
            trace_cost: TraceCost {
                ring: [0; COST_SAMPLES],
                n: 0,
                cached: 0,
            },
            opts,
            cpus: BTreeMap::new(),
            tasks: BTreeMap::new(),
            report: Report::default(),
        }
    }

    fn violation(&mut self, invariant: &'static str, line: u64, cpu: u32, detail: String) {
        self.report.violation_count += 1;
        if self.report.violations.len() < self.opts.max_reports {
            self.report.violations.push(Violation {
                invariant,
                line,
                cpu,
                detail,
            });
        }
    }

    fn warn(&mut self, line: u64, detail: String) {
        if self.report.warnings.len() < self.opts.max_reports {
            self.report.warnings.push(Warning { line, detail });
        }
    }

    /// Feeds one line (1-based number `n`, no newline). Errors name what was expected.
    pub fn feed(&mut self, n: u64, text: &str) -> Result<(), String> {
        self.report.lines = n;
        match parse_line(text)? {
            Parsed::Header => Ok(()),
            Parsed::Lost { cpu, count } => {
                self.lost(n, cpu, count);
                Ok(())
            }
            Parsed::Event(l) => {
                self.event(n, &l);
                Ok(())
            }
        }
    }

    /// Feeds one item of a trace (`n`: its line, or its record number in a `trace.dat`).
    pub fn item(&mut self, n: u64, item: crate::source::Item<'_>) {
        match item {
            crate::source::Item::Event(l) => self.feed_line(n, &l),
            crate::source::Item::Lost { cpu, count } => self.lost(n, cpu, count),
        }
    }

    /// Feeds one event already parsed (from `trace.dat`: `n` is its record number).
    pub fn feed_line(&mut self, n: u64, l: &Line<'_>) {
        self.report.lines = n;
        self.event(n, l);
    }

    /// Events were lost before record/line `n` on `cpu` (all CPUs when `None`).
    pub fn lost(&mut self, n: u64, cpu: Option<u32>, count: Option<u64>) {
        self.report.lines = n;
        let what = count.map_or("events".into(), |c| format!("{c} events"));
        let cpus: Vec<u32> = match cpu {
            Some(c) => vec![c],
            None => self.cpus.keys().copied().collect(),
        };
        for c in cpus {
            self.close_user_window(c, None);
            if let Some(st) = self.cpus.get_mut(&c) {
                st.mode = Mode::Unknown;
                st.irq_depth = 0;
                st.softirq_depth = 0;
                st.fault_at = None;
                st.user_since = None;
                st.pending_tick = None;
            }
        }
        self.warn(
            n,
            format!("lost {what} here: state reset, time until the CPU's next context event is not attributed"),
        );
    }

    /// Charges the time since the CPU's last event to its current task.
    fn advance(&mut self, n: u64, c: u32, ts: u64) {
        let st = self.cpus.get_mut(&c).expect("cpu present");
        if !st.seen {
            st.seen = true;
            st.r.first_ns = ts;
            st.last_ts = ts;
            return;
        }
        if ts < st.last_ts {
            let back = st.last_ts - ts;
            self.warn(
                n,
                format!("timestamp goes back {back} ns on CPU {c} (reordered lines?): no time charged for this step"),
            );
            return;
        }
        let dt = ts - st.last_ts;
        st.last_ts = ts;
        let Some(pid) = st.cur else {
            st.r.unknown_ns += dt;
            return;
        };
        let in_irq = st.irq_depth > 0 || st.softirq_depth > 0;
        if in_irq {
            st.irq_time += dt;
        }
        if pid == 0 {
            st.r.idle_ns += dt;
            if in_irq {
                st.r.idle_irq_ns += dt;
            } else {
                st.r.stat_idle_ns += dt;
            }
            return;
        }
        let mode = if in_irq { Mode::Kernel } else { st.mode };
        let tracked = st.r.tracked;
        let t = self.tasks.entry(pid).or_default();
        // vtime's open interval (sched_clock() - vtime->starttime): the next hook accounts it.
        if tracked {
            for m in &mut t.vt {
                m.open += dt;
            }
        }
        match mode {
            Mode::User => {
                st.r.user_ns += dt;
                t.user_ns += dt;
            }
            Mode::Kernel => {
                st.r.sys_ns += dt;
                t.sys_ns += dt;
            }
            Mode::Unknown => {
                // Running, mode unknown: still its runtime.
                st.r.unknown_ns += dt;
                t.unknown_ns += dt;
            }
        }
        t.cpus |= 1u128 << c.min(127);
    }

    /// A vtime hook on tracked CPU `c` for task `pid`: flush its user (`vtime_user_exit`) or
    /// system (`vtime_user_enter`, `vtime_task_switch`) bucket if it holds a tick, then enter
    /// `next` state.
    fn vtime_hook(&mut self, c: u32, pid: i32, user: bool, next: VtimeState) {
        if pid == 0 {
            return;
        }
        let tick = self.tick_nsec;
        let cost = self.trace_cost.estimate();
        let st = self.cpus.get_mut(&c).expect("cpu");
        let t = self.tasks.entry(pid).or_default();
        for (i, m) in t.vt.iter_mut().enumerate() {
            let mut delta = std::mem::take(&mut m.open);
            if user {
                // The trace's user interval holds the commit of `user_enter` before
                // vtime_user_enter() reads the clock and vtime_user_exit() before `user_exit`'s
                // timestamp: that much of it is the kernel's system time.
                let b = (cost * BIAS_MULT[i]).min(delta);
                delta -= b;
                m.open = b;
            }
            let bucket = if user {
                &mut m.vt.vtime.utime
            } else {
                &mut m.vt.vtime.stime
            };
            if let Some(x) = vtime_accumulate(bucket, delta, tick) {
                if user {
                    m.vt.utime += x;
                } else {
                    m.vt.stime += x;
                }
                match (i, user) {
                    (0, true) => st.r.stat_user_ns += x,
                    (0, false) => st.r.stat_system_ns += x,
                    (1, true) => st.r.stat_user_bounds_ns.1 += x,
                    (2, true) => st.r.stat_user_bounds_ns.0 += x,
                    _ => {}
                }
            }
            m.vt.vtime.state = next;
        }
    }

    /// What a tick would charge now on untracked CPU `c`, for the IRQ just entered (its line's
    /// latency flags in `flags`).
    fn tick_sample(&self, c: u32, ts: u64, flags: Option<Flags>) -> (Option<i32>, Sample) {
        let st = &self.cpus[&c];
        let p = st.cur;
        // account_system_time() files a tick that interrupted a softirq under SOFTIRQ, for
        // any task; the idle task's other ticks are idle.
        if st.softirq_depth > 0 {
            return (p, Sample::Softirq);
        }
        if p == Some(0) {
            return (p, Sample::Idle);
        }
        // A preempt count in the interrupted context: it was kernel code, whatever we inferred.
        if flags.is_some_and(|f| f.preempt_depth() > 0) {
            return (p, Sample::System);
        }
        let sample = match (st.fault_at, st.irq_saved) {
            // Inside a page fault's window: ticks land in long intervals more often than
            // in short ones, and a fault's handler is the long part of the window under
            // any fault-heavy load; guess the kernel unless the fault began longer ago
            // than the longest recent fault-to-fault gap.
            (Some(f), _) => Sample::Ambiguous {
                guess_user: ts.saturating_sub(f) > st.fault_len_bound(),
            },
            (None, Mode::User) => match st.user_since {
                // Within the exit path's reach of the window's start (IRQ time excluded).
                Some(t0)
                    if ts
                        .saturating_sub(t0)
                        .saturating_sub(st.irq_time - st.user_since_irq)
                        < self.min_user_gap =>
                {
                    Sample::Ambiguous { guess_user: false }
                }
                _ => Sample::User,
            },
            (None, Mode::Kernel) => Sample::System,
            (None, Mode::Unknown) => Sample::Ambiguous { guess_user: false },
        };
        (p, sample)
    }

    /// A tick sample taken: a user one waits until its window closes (it may sit on the
    /// closing kernel edge); others are charged now.
    fn settle_tick(&mut self, c: u32, p: Option<i32>, sample: Sample) {
        let st = self.cpus.get_mut(&c).expect("cpu");
        match (sample, p) {
            (Sample::User, Some(p)) if st.user_since.is_some() => {
                if st.candidates.len() >= 16 {
                    // Ticks are far apart: the oldest is clear of any edge.
                    let (_, _, q) = st.candidates.remove(0);
                    self.commit_tick(c, Some(q), Sample::User);
                }
                let st = self.cpus.get_mut(&c).expect("cpu");
                // The tick's own IRQ time counts from its entry: `irq_time` then.
                let (ts, irq) = st.tick_entry;
                st.candidates.push((ts, irq, p));
            }
            _ => self.commit_tick(c, p, sample),
        }
    }

    /// Charges a tick sample (`account_user_time` / `account_system_time` / idle).
    fn commit_tick(&mut self, c: u32, p: Option<i32>, sample: Sample) {
        let tick = self.tick_nsec;
        let st = self.cpus.get_mut(&c).expect("cpu");
        st.r.tick_samples += 1;
        let user = match sample {
            Sample::User => true,
            Sample::System => false,
            Sample::Softirq => {
                st.r.stat_softirq_ns += tick;
                if let Some(p) = p.filter(|&p| p != 0) {
                    self.tasks.entry(p).or_default().tick_sys += 1;
                }
                return;
            }
            Sample::Idle => return,
            Sample::Ambiguous { guess_user } => {
                st.r.tick_ambiguous += 1;
                guess_user
            }
        };
        if user {
            st.r.stat_user_ns += tick;
        } else {
            st.r.stat_system_ns += tick;
        }
        match sample {
            Sample::User => {
                st.r.stat_user_bounds_ns.0 += tick;
                st.r.stat_user_bounds_ns.1 += tick;
            }
            Sample::Ambiguous { .. } => st.r.stat_user_bounds_ns.1 += tick,
            _ => {}
        }
        let Some(p) = p.filter(|&p| p != 0) else {
            return;
        };
        let t = self.tasks.entry(p).or_default();
        if user {
            t.tick_user += 1;
        } else {
            t.tick_sys += 1;
        }
        if let Sample::Ambiguous { guess_user } = sample {
            t.tick_ambiguous += 1;
            t.tick_guessed_user += u64::from(guess_user);
        }
    }

    /// Untracked CPU `c`'s user window closes at `end` (`None`: the task left it through an
    /// interrupt, e.g. preempted at IRQ exit, so nothing is near its end): user samples within
    /// `min_user_gap` of `end` may have hit the entry path and become ambiguous.
    fn close_user_window(&mut self, c: u32, end: Option<u64>) {
        let gap = self.min_user_gap;
        // A CPU the trace has not shown yet (lost events before its first one) has no window.
        let Some(st) = self.cpus.get_mut(&c) else {
            return;
        };
        let cands = std::mem::take(&mut st.candidates);
        let irq_now = st.irq_time;
        for &(t, irq_at, p) in &cands {
            let near =
                end.is_some_and(|e| e.saturating_sub(t).saturating_sub(irq_now - irq_at) < gap);
            let sample = if near {
                Sample::Ambiguous { guess_user: false }
            } else {
                Sample::User
            };
            self.commit_tick(c, Some(p), sample);
        }
        let st = self.cpus.get_mut(&c).expect("cpu");
        st.candidates = cands;
        st.candidates.clear();
        st.user_since = None;
    }

    fn event(&mut self, n: u64, l: &Line<'_>) {
        self.report.events += 1;
        let c = l.cpu;
        let declared = self.opts.nohz_full.as_ref().map(|v| v.contains(&c));
        self.cpus
            .entry(c)
            .or_insert_with(|| Cpu::new(c, declared.unwrap_or(false)));
        self.advance(n, c, l.ts_ns);
        {
            let st = self.cpus.get_mut(&c).expect("cpu");
            if let Some(t0) = st.after_user_exit.take() {
                self.trace_cost.push(l.ts_ns.saturating_sub(t0));
            }
            if l.event == "user_exit" {
                st.after_user_exit = Some(l.ts_ns);
            }
        }
        // Who runs: the line's task, unless a sched_switch said otherwise.
        {
            let st = self.cpus.get_mut(&c).expect("cpu");
            // Earliest and latest, even when lines are reordered (warned in `advance`).
            st.r.last_ns = st.r.last_ns.max(l.ts_ns);
            st.r.first_ns = st.r.first_ns.min(l.ts_ns);
            match st.cur {
                None => st.cur = Some(l.pid),
                Some(p) if p != l.pid && l.event != "sched_switch" => {
                    st.cur = Some(l.pid);
                    st.mode = Mode::Unknown;
                    let msg = format!(
                        "CPU {c} runs {}-{} without a sched_switch from pid {p} (missing or reordered lines): its mode is unknown until the next context event",
                        l.comm, l.pid
                    );
                    self.warn(n, msg);
                }
                _ => {}
            }
        }
        if l.pid != 0 {
            let t = self.tasks.entry(l.pid).or_default();
            if l.tgid.is_some_and(|g| g > 0) {
                t.tgid = l.tgid;
            }
            if t.comm.is_empty() || t.comm != l.comm && !l.comm.starts_with('<') {
                t.comm = l.comm.to_string();
            }
        }
        let flags = l.flags;
        let st = self.cpus.get_mut(&c).expect("cpu");
        if let Some(sc) = self.shapes.as_mut() {
            sc.feed(l, st.cur.unwrap_or(l.pid));
        }
        let tracked = st.r.tracked;
        match l.event {
            "user_enter" | "user_exit" => {
                let enter = l.event == "user_enter";
                if declared != Some(false) {
                    st.r.tracked = true;
                }
                let prev = if st.inferred { Mode::Unknown } else { st.mode };
                st.inferred = false;
                let in_irq = st.irq_depth > 0;
                if enter {
                    st.r.user_enter += 1;
                    st.mode = Mode::User;
                } else {
                    st.r.user_exit += 1;
                    st.mode = Mode::Kernel;
                }
                if let Some(p) = st.cur {
                    if enter {
                        self.vtime_hook(c, p, false, VtimeState::User);
                    } else {
                        self.vtime_hook(c, p, true, VtimeState::Sys);
                    }
                }
                let want_prev = if enter { Mode::Kernel } else { Mode::User };
                // A task's first event after being switched in is Kernel by construction, so
                // a fork child's first user_enter (no user_exit before it) alternates too.
                if prev != Mode::Unknown && prev != want_prev {
                    let d = format!(
                        "{} while the CPU is already in {}",
                        l.event,
                        if enter { "USER" } else { "KERNEL" }
                    );
                    self.violation("ct_alternation", n, c, d);
                }
                if let Some(f) = flags {
                    if !f.irqs_off() && f.0[0] != b'X' {
                        self.violation(
                            "ct_event_irqs_on",
                            n,
                            c,
                            format!("{} logged with IRQs enabled", l.event),
                        );
                    }
                    if f.hardirq() || in_irq {
                        self.violation(
                            "ct_event_in_irq",
                            n,
                            c,
                            format!("{} logged in IRQ context", l.event),
                        );
                    }
                } else if in_irq {
                    self.violation(
                        "ct_event_in_irq",
                        n,
                        c,
                        format!("{} inside an IRQ vector", l.event),
                    );
                }
            }
            "sys_enter" | "sys_exit" => {
                let enter = l.event == "sys_enter";
                if enter {
                    st.r.syscalls += 1;
                }
                let mode = st.mode;
                if enter && l.pid != 0 {
                    self.tasks.entry(l.pid).or_default().syscalls += 1;
                }
                // `wait4()` (x86-64 NR 61) returning a pid: that child is reaped.
                if !enter && l.fields.starts_with("NR 61 = ") {
                    if let Ok(child) = l.fields["NR 61 = ".len()..].trim().parse::<i32>() {
                        if child > 0 {
                            self.tasks.entry(child).or_default().reaped = true;
                        }
                    }
                }
                let st = self.cpus.get_mut(&c).expect("cpu");
                if tracked {
                    if mode == Mode::User {
                        self.violation(
                            "syscall_in_user",
                            n,
                            c,
                            format!("{} while the CPU is in USER", l.event),
                        );
                    }
                } else if enter {
                    if let Some(t0) = st.user_since {
                        let gap = l
                            .ts_ns
                            .saturating_sub(t0)
                            .saturating_sub(st.irq_time - st.user_since_irq);
                        self.min_user_gap = self.min_user_gap.min(gap);
                    }
                    st.mode = Mode::Kernel;
                    st.inferred = true;
                    st.fault_at = None;
                    st.last_fault = None;
                    self.close_user_window(c, Some(l.ts_ns));
                } else {
                    // Untracked: back to user mode right after (the exit work is not visible).
                    st.mode = Mode::User;
                    st.inferred = true;
                    st.fault_at = None;
                    st.last_fault = None;
                    st.user_since = Some(l.ts_ns);
                    st.user_since_irq = st.irq_time;
                }
            }
            "page_fault_user" => {
                if tracked {
                    if st.mode == Mode::User {
                        self.violation(
                            "entry_in_user",
                            n,
                            c,
                            "page_fault_user while the CPU is in USER".into(),
                        );
                    }
                } else if st.irq_depth == 0 {
                    // Untracked: the fault handler runs now; its end is not logged.
                    st.mode = Mode::Kernel;
                    st.inferred = true;
                    st.fault_at = Some(l.ts_ns);
                    if let Some(prev) = st.last_fault.replace(l.ts_ns) {
                        st.fault_gaps[st.fault_gap_n % FAULT_GAPS] = l.ts_ns.saturating_sub(prev);
                        st.fault_gap_n += 1;
                    }
                    self.close_user_window(c, Some(l.ts_ns));
                }
            }
            "sched_switch" => {
                st.r.switches += 1;
                let mode = st.mode;
                let depth = st.irq_depth;
                let (next, next_comm, prev_state) = match SchedSwitch::parse(l.fields) {
                    Some(s) => (Some(s.next_pid), s.next_comm.as_str(), Some(s.prev_state)),
                    None => (None, None, None),
                };
                let prev = st.cur.unwrap_or(l.pid);
                if !tracked {
                    self.close_user_window(c, None);
                }
                let st = self.cpus.get_mut(&c).expect("cpu");
                // Untracked: where the task goes back to when it runs again (a fault's window
                // stays open as Kernel; the tick sample logic treats it as ambiguous).
                let resume = if st.fault_at.is_some() {
                    Mode::Kernel
                } else {
                    mode
                };
                st.cur = next;
                st.inferred = false;
                st.irq_depth = 0;
                st.softirq_depth = 0;
                st.fault_at = None;
                st.last_fault = None;
                st.pending_tick = None;
                if tracked {
                    // vtime_task_switch(prev): flush its system bucket, INACTIVE; next: SYS
                    self.vtime_hook(c, prev, false, VtimeState::Inactive);
                    if let Some(p) = next.filter(|&p| p != 0) {
                        let t = self.tasks.entry(p).or_default();
                        for m in &mut t.vt {
                            m.vt.vtime.state = VtimeState::Sys;
                            m.open = 0;
                        }
                    }
                } else if prev != 0 {
                    self.tasks.entry(prev).or_default().resume = Some(resume);
                }
                let back = match next {
                    Some(p) if !tracked && p != 0 => self
                        .tasks
                        .get(&p)
                        .and_then(|t| t.resume)
                        .unwrap_or(Mode::Kernel),
                    _ => Mode::Kernel,
                };
                let st = self.cpus.get_mut(&c).expect("cpu");
                st.mode = back;
                st.inferred = back != Mode::Kernel;
                if back == Mode::User {
                    st.user_since = Some(l.ts_ns);
                    st.user_since_irq = st.irq_time;
                }
                if tracked && mode == Mode::User {
                    self.violation(
                        "sched_switch_in_user",
                        n,
                        c,
                        "sched_switch while the CPU is in USER".into(),
                    );
                }
                if depth > 0 {
                    self.warn(
                        n,
                        format!("sched_switch inside {depth} open IRQ vector(s) on CPU {c}"),
                    );
                }
                if l.pid != 0 && matches!(prev_state, Some("X" | "Z" | "X+" | "Z+")) {
                    self.tasks.entry(l.pid).or_default().exited = true;
                }
                match (next, next_comm) {
                    (Some(p), Some(name)) if p != 0 => {
                        let t = self.tasks.entry(p).or_default();
                        if t.comm.is_empty() {
                            t.comm = name.to_string();
                        }
                    }
                    (None, _) => self.warn(
                        n,
                        "sched_switch without a readable next_pid: task unknown".into(),
                    ),
                    _ => {}
                }
            }
            "sched_wakeup_new" => {
                if let Some((name, child)) =
                    SchedWakeup::parse(l.fields).map(|w| (w.comm.as_str().unwrap_or(""), w.pid))
                {
                    let name = name.to_string();
                    // copy_process() zeroes utime/stime but not the vtime buckets that
                    // dup_task_struct() copied: the child starts with its parent's sub-tick
                    // pending time (as of the parent's last vtime hook).
                    let inherited = self.tasks.get(&l.pid).map(|p| p.vt.clone());
                    let t = self.tasks.entry(child).or_default();
                    if let Some(v) = inherited {
                        if t.parent.is_none() {
                            for (m, p) in t.vt.iter_mut().zip(v.iter()) {
                                m.vt.vtime.utime = p.vt.vtime.utime;
                                m.vt.vtime.stime = p.vt.vtime.stime;
                                m.vt.vtime.gtime = p.vt.vtime.gtime;
                            }
                        }
                    }
                    t.parent = Some(l.pid);
                    if t.comm.is_empty() {
                        t.comm = name;
                    }
                }
            }
            "sched_process_exit" if l.pid != 0 => {
                self.tasks.entry(l.pid).or_default().exited = true;
            }
            "tick_stop" => {
                let ok = TickStop::parse(l.fields).is_some_and(|t| t.success);
                let now = l.ts_ns;
                if ok {
                    st.stopped_since.get_or_insert(now);
                } else if let Some(s) = st.stopped_since.take() {
                    st.r.tick_stopped_ns += now.saturating_sub(s);
                }
            }
            "softirq_entry" if st.irq_depth == 0 => {
                if st.softirq_depth == 0 {
                    st.softirq_saved = st.mode;
                }
                st.softirq_depth += 1;
            }
            "softirq_exit" if st.irq_depth == 0 && st.softirq_depth > 0 => {
                st.softirq_depth -= 1;
                if st.softirq_depth == 0 {
                    st.mode = st.softirq_saved;
                }
            }
            "hrtimer_expire_entry" => {
                self.saw_hrtimer = true;
                // trace-cmd prints `%ps` as `tick_sched_timer/0x0`
                let f =
                    field(l.fields, "function=").map(|f| f.split(['/', '+']).next().unwrap_or(f));
                if matches!(f, Some("tick_sched_timer" | "tick_nohz_handler")) {
                    if let Some((p, sample)) = st.pending_tick.take() {
                        self.settle_tick(c, p, sample);
                    }
                }
            }
            ev if ev.ends_with("_entry") && is_irq_entry(ev) => {
                let from_user = st.irq_depth == 0 && st.mode == Mode::User;
                if st.irq_depth == 0 {
                    // A softirq interrupted counts as kernel mode.
                    st.irq_saved = if st.softirq_depth > 0 {
                        Mode::Kernel
                    } else {
                        st.mode
                    };
                }
                st.irq_depth += 1;
                if ev == "local_timer_entry" {
                    st.r.ticks += 1;
                    if let Some(s) = st.stopped_since.take() {
                        st.r.tick_stopped_ns += l.ts_ns.saturating_sub(s);
                    }
                    if !tracked && st.irq_depth == 1 {
                        st.tick_entry = (l.ts_ns, st.irq_time);
                        let (p, sample) = self.tick_sample(c, l.ts_ns, l.flags);
                        let st = self.cpus.get_mut(&c).expect("cpu");
                        if sample == (Sample::Ambiguous { guess_user: true }) {
                            // The fault has ended: from here on the task is in user mode.
                            st.fault_at = None;
                            st.irq_saved = Mode::User;
                        }
                        st.pending_tick = Some((p, sample));
                    }
                } else {
                    st.r.irqs += 1;
                }
                if tracked && from_user {
                    self.violation(
                        "entry_in_user",
                        n,
                        c,
                        format!("{ev} while the CPU is in USER (no user_exit before it)"),
                    );
                }
            }
            ev if ev.ends_with("_exit") && is_irq_exit(ev) => {
                if st.irq_depth == 0 {
                    // Opened before the trace started: only a problem in the middle of a trace.
                    if st.r.user_enter + st.r.user_exit + st.r.switches > 0 {
                        self.violation("irq_nesting", n, c, format!("{ev} without its entry"));
                    }
                } else {
                    st.irq_depth -= 1;
                    if st.irq_depth == 0 {
                        st.mode = if st.softirq_depth > 0 {
                            Mode::Kernel
                        } else {
                            st.irq_saved
                        };
                        if ev == "local_timer_exit" {
                            // No hrtimer events in this trace: every local timer IRQ is a tick.
                            if let Some((p, sample)) = st.pending_tick.take() {
                                if !self.saw_hrtimer {
                                    self.settle_tick(c, p, sample);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Ends the replay: closes open intervals and computes the kernel-style figures.
    pub fn finish(mut self) -> Report {
        if let Some(sc) = self.shapes.take() {
            self.report.shapes = sc.shapes();
        }
        let tick_ns = self.tick_nsec;
        let cpus: Vec<u32> = self.cpus.keys().copied().collect();
        for c in cpus {
            self.close_user_window(c, None);
        }
        for st in self.cpus.values_mut() {
            if let Some(s) = st.stopped_since.take() {
                st.r.tick_stopped_ns += st.last_ts.saturating_sub(s);
            }
            self.report.cpus.push(st.r.clone());
        }
        // Without recorded tgids: a task that exited, was never reaped, and whose creator is
        // known was a thread of its creator (threads are not waited for).
        let mut tgid: BTreeMap<i32, i32> = BTreeMap::new();
        for (&pid, t) in &self.tasks {
            let g = match (t.tgid, t.parent) {
                (Some(g), _) => g,
                (None, Some(p)) if t.exited && !t.reaped => p,
                _ => pid,
            };
            tgid.insert(pid, g);
        }
        for _ in 0..8 {
            // a thread's creator may itself be a thread
            let snapshot = tgid.clone();
            for g in tgid.values_mut() {
                if let Some(&h) = snapshot.get(g) {
                    *g = h;
                }
            }
        }
        for (&pid, t) in &self.tasks {
            if pid == 0 {
                continue;
            }
            let rtime = t.user_ns + t.sys_ns + t.unknown_ns;
            // task_cputime(): flushed vtime plus what is pending in the state it runs in now
            // (nothing for a task that sleeps or has exited); the clock is where it stopped.
            let read = |m: &VtModel| {
                let mut vt = m.vt.clone();
                vt.vtime.starttime = 0;
                task_cputime(&vt, m.open).unwrap_or((vt.utime, vt.stime))
            };
            let (vu, vs) = read(&t.vt[0]);
            let u = vu + t.tick_user * tick_ns;
            let s = vs + t.tick_sys * tick_ns;
            let (utime, stime) = cputime_adjust(u, s, rtime);
            // Bounds: every ambiguous sample the other way, and the tracing cost at 0 / 2x.
            let guessed_user = t.tick_guessed_user * tick_ns;
            let guessed_sys = (t.tick_ambiguous - t.tick_guessed_user) * tick_ns;
            let (vu_hi, vs_hi) = read(&t.vt[1]);
            let (vu_lo, vs_lo) = read(&t.vt[2]);
            let tu = t.tick_user * tick_ns;
            let ts_ = t.tick_sys * tick_ns;
            let sample_lo = (vu_lo + tu - guessed_user, vs_lo + ts_ + guessed_user);
            let sample_hi = (vu_hi + tu + guessed_sys, vs_hi + ts_ - guessed_sys);
            let lo = cputime_adjust(sample_lo.0, sample_lo.1, rtime).0;
            let hi = cputime_adjust(sample_hi.0, sample_hi.1, rtime).0;
            self.report.tasks.push(TaskReport {
                pid,
                comm: t.comm.clone(),
                tgid: tgid[&pid],
                sample_utime_ns: u,
                sample_stime_ns: s,
                sample_lo_ns: sample_lo,
                sample_hi_ns: sample_hi,
                parent: t.parent,
                user_ns: t.user_ns,
                sys_ns: t.sys_ns,
                runtime_ns: rtime,
                utime_ns: utime,
                stime_ns: stime,
                syscalls: t.syscalls,
                tick_user: t.tick_user,
                tick_sys: t.tick_sys,
                tick_ambiguous: t.tick_ambiguous,
                vtime_utime_ns: t.vt[0].vt.utime,
                vtime_stime_ns: t.vt[0].vt.stime,
                utime_bounds_ns: (lo.min(utime), hi.max(utime)),
                exited: t.exited,
                reaped: t.reaped,
                // Exact to the kernel's own granularity: nothing ambiguous, and the tracing
                // cost moves it by less than a tick either way.
                exact: t.tick_ambiguous == 0 && hi.max(utime) - lo.min(utime) < tick_ns,
            });
        }
        self.report
    }
}

/// IRQ-class entry events: `irq_vectors:*_entry` and `irq:irq_handler_entry`.
fn is_irq_entry(ev: &str) -> bool {
    ev == "irq_handler_entry" || ev.strip_suffix("_entry").is_some_and(is_vector_base)
}
fn is_irq_exit(ev: &str) -> bool {
    ev == "irq_handler_exit" || ev.strip_suffix("_exit").is_some_and(is_vector_base)
}

/// Replays the file at `path`: ftrace or `trace-cmd report` text (plain or gzip), or
/// trace-cmd's binary `trace.dat` (plain or gzip); `-` reads text from stdin. Errors name the
/// file and the line, or the byte offset in a `trace.dat`.
pub fn replay_path(path: &std::path::Path, opts: Options) -> Result<Report, ReplayError> {
    let mut rep = Replayer::new(opts);
    let lines = crate::source::visit_path(path, |n, item| {
        rep.item(n, item);
        Ok(())
    })?;
    rep.report.lines = lines;
    Ok(rep.finish())
}

/// Replays `input` (plain or gzip text; `name` is used in errors).
pub fn replay_reader(
    name: &str,
    input: impl std::io::Read,
    opts: Options,
) -> Result<Report, ReplayError> {
    let mut rep = Replayer::new(opts);
    let lines = crate::source::visit_reader(name, input, |n, item| {
        rep.item(n, item);
        Ok(())
    })?;
    rep.report.lines = lines;
    Ok(rep.finish())
}
