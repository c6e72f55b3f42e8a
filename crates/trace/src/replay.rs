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
//! On a tracked CPU `VIRT_CPU_ACCOUNTING_GEN` charges time exactly at each transition
//! (`vtime_user_enter` / `vtime_user_exit`, `vtime_task_switch`): user time is the time between
//! `user_enter` and `user_exit`, system time the rest of the task's running time. On an
//! untracked CPU the tick samples: each `local_timer_entry` charges one `TICK_NSEC` to user or
//! system time by the interrupted mode (`account_process_tick`). Either way the figures a
//! reader of `/proc` sees come from `cputime_adjust()`, which scales them so that they add up to
//! the task's precise runtime (`sum_exec_runtime`, here the time between its `sched_switch`es).

use crate::line::{parse_line, Line, Parsed};
use crate::shapes::is_vector_base;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::BufRead;

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
    /// The task that forked it (`sched_wakeup_new` seen on its parent), if in the trace.
    pub parent: Option<i32>,
    /// Time in user mode, as the trace shows it.
    pub user_ns: u64,
    /// Time in the kernel, as the trace shows it.
    pub sys_ns: u64,
    /// `sum_exec_runtime`: time between being switched in and out.
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
    /// It logged `sched_process_exit`.
    pub exited: bool,
    /// Its user/system split is exact (it ran only on tracked CPUs, where every transition is
    /// logged); otherwise the split is inferred from syscall boundaries and tick samples.
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
    /// The task `pid` and every descendant the trace saw it fork: (user, system) the way
    /// `cutime`/`cstime` of a waiting parent add them (each task adjusted on its own).
    pub fn tree_cputime(&self, pid: i32) -> (u64, u64) {
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
        self.tasks
            .iter()
            .filter(|t| set.contains(&t.pid))
            .fold((0, 0), |(u, s), t| (u + t.utime_ns, s + t.stime_ns))
    }
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
        write!(f, "{}:{}: {}", self.file, self.line, self.msg)
    }
}
impl std::error::Error for ReplayError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Unknown,
    User,
    Kernel,
}

#[derive(Default)]
struct Task {
    comm: String,
    parent: Option<i32>,
    user_ns: u64,
    sys_ns: u64,
    vt_user: u64,
    vt_sys: u64,
    tick_user: u64,
    tick_sys: u64,
    syscalls: u64,
    exited: bool,
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
    last_ts: u64,
    seen: bool,
    stopped_since: Option<u64>,
}

impl Cpu {
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
            last_ts: 0,
            seen: false,
            stopped_since: None,
        }
    }
}

/// A replay in progress: feed it lines, then [`Replayer::finish`].
pub struct Replayer {
    opts: Options,
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
                let what = count.map_or("events".into(), |c| format!("{c} events"));
                let cpus: Vec<u32> = match cpu {
                    Some(c) => vec![c],
                    None => self.cpus.keys().copied().collect(),
                };
                for c in cpus {
                    if let Some(st) = self.cpus.get_mut(&c) {
                        st.mode = Mode::Unknown;
                        st.irq_depth = 0;
                    }
                }
                self.warn(
                    n,
                    format!("lost {what} here: state reset, time until the CPU's next context event is not attributed"),
                );
                Ok(())
            }
            Parsed::Event(l) => {
                self.event(n, &l);
                Ok(())
            }
        }
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
        if pid == 0 {
            st.r.idle_ns += dt;
            return;
        }
        let mode = if st.irq_depth > 0 {
            Mode::Kernel
        } else {
            st.mode
        };
        let tracked = st.r.tracked;
        let t = self.tasks.entry(pid).or_default();
        match mode {
            Mode::User => {
                st.r.user_ns += dt;
                t.user_ns += dt;
                if tracked {
                    t.vt_user += dt;
                }
            }
            Mode::Kernel => {
                st.r.sys_ns += dt;
                t.sys_ns += dt;
                if tracked {
                    t.vt_sys += dt;
                }
            }
            Mode::Unknown => st.r.unknown_ns += dt,
        }
        t.cpus |= 1u128 << c.min(127);
    }

    fn event(&mut self, n: u64, l: &Line<'_>) {
        self.report.events += 1;
        let c = l.cpu;
        let declared = self.opts.nohz_full.as_ref().map(|v| v.contains(&c));
        self.cpus
            .entry(c)
            .or_insert_with(|| Cpu::new(c, declared.unwrap_or(false)));
        self.advance(n, c, l.ts_ns);
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
                    st.mode = Mode::Kernel;
                    st.inferred = true;
                } else {
                    // Untracked: back to user mode right after (the exit work is not visible).
                    st.mode = Mode::User;
                    st.inferred = true;
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
                }
            }
            "sched_switch" => {
                st.r.switches += 1;
                let mode = st.mode;
                let depth = st.irq_depth;
                let next = field(l.fields, "next_pid=").and_then(|x| x.parse::<i32>().ok());
                let next_comm = between(l.fields, "next_comm=", " next_pid=");
                let prev_state = field(l.fields, "prev_state=");
                st.cur = next;
                st.mode = Mode::Kernel;
                st.inferred = false;
                st.irq_depth = 0;
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
                if let Some(child) = field(l.fields, "pid=").and_then(|x| x.parse::<i32>().ok()) {
                    let name = between(l.fields, "comm=", " pid=")
                        .unwrap_or("")
                        .to_string();
                    let t = self.tasks.entry(child).or_default();
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
                let ok = field(l.fields, "success=") == Some("1");
                let now = l.ts_ns;
                if ok {
                    st.stopped_since.get_or_insert(now);
                } else if let Some(s) = st.stopped_since.take() {
                    st.r.tick_stopped_ns += now - s;
                }
            }
            ev if ev.ends_with("_entry") && is_irq_entry(ev) => {
                let from_user = st.irq_depth == 0 && st.mode == Mode::User;
                if st.irq_depth == 0 {
                    st.irq_saved = st.mode;
                }
                st.irq_depth += 1;
                if ev == "local_timer_entry" {
                    st.r.ticks += 1;
                    if let Some(s) = st.stopped_since.take() {
                        st.r.tick_stopped_ns += l.ts_ns - s;
                    }
                    if !tracked && st.irq_depth == 1 {
                        if let Some(p) = st.cur.filter(|&p| p != 0) {
                            let mode = st.irq_saved;
                            let t = self.tasks.entry(p).or_default();
                            match mode {
                                Mode::User => t.tick_user += 1,
                                Mode::Kernel => t.tick_sys += 1,
                                Mode::Unknown => {}
                            }
                        }
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
                        st.mode = st.irq_saved;
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
        let tick_ns = 1_000_000_000 / u64::from(self.opts.hz.max(1));
        for st in self.cpus.values_mut() {
            if let Some(s) = st.stopped_since.take() {
                st.r.tick_stopped_ns += st.last_ts.saturating_sub(s);
            }
            self.report.cpus.push(st.r.clone());
        }
        for (&pid, t) in &self.tasks {
            if pid == 0 {
                continue;
            }
            let rtime = t.user_ns + t.sys_ns;
            let u = t.vt_user + t.tick_user * tick_ns;
            let s = t.vt_sys + t.tick_sys * tick_ns;
            let (utime, stime) = cputime_adjust(u, s, rtime);
            self.report.tasks.push(TaskReport {
                pid,
                comm: t.comm.clone(),
                parent: t.parent,
                user_ns: t.user_ns,
                sys_ns: t.sys_ns,
                runtime_ns: rtime,
                utime_ns: utime,
                stime_ns: stime,
                syscalls: t.syscalls,
                tick_user: t.tick_user,
                tick_sys: t.tick_sys,
                exited: t.exited,
                exact: self
                    .cpus
                    .values()
                    .all(|st| st.r.tracked || t.cpus & (1u128 << st.r.cpu.min(127)) == 0),
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

/// The value after `key` up to the next space.
pub fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    let i = find_key(fields, key)?;
    let rest = &fields[i + key.len()..];
    Some(rest.split(' ').next().unwrap_or(""))
}

/// The text after `key` up to `end` (for values that may contain spaces, like comm).
fn between<'a>(fields: &'a str, key: &str, end: &str) -> Option<&'a str> {
    let i = find_key(fields, key)?;
    let rest = &fields[i + key.len()..];
    rest.find(end).map(|j| &rest[..j])
}

/// `key` at the start of `fields` or after a space (so `pid=` does not match `prev_pid=`).
fn find_key(fields: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = fields[from..].find(key) {
        let at = from + i;
        if at == 0 || fields.as_bytes()[at - 1] == b' ' {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Replays `input` (plain or gzip text; `name` is used in errors).
pub fn replay_reader(
    name: &str,
    input: impl std::io::Read,
    opts: Options,
) -> Result<Report, ReplayError> {
    let mut r = std::io::BufReader::with_capacity(1 << 16, input);
    let gz = {
        let buf = r.fill_buf().map_err(|e| ReplayError {
            file: name.into(),
            line: 0,
            msg: format!("cannot read: {e}"),
        })?;
        buf.starts_with(&[0x1f, 0x8b])
    };
    if gz {
        let d = flate2::bufread::MultiGzDecoder::new(r);
        replay_lines(name, std::io::BufReader::with_capacity(1 << 16, d), opts)
    } else {
        replay_lines(name, r, opts)
    }
}

fn replay_lines(name: &str, mut r: impl BufRead, opts: Options) -> Result<Report, ReplayError> {
    let mut rep = Replayer::new(opts);
    let mut buf = Vec::with_capacity(256);
    let mut n = 0u64;
    loop {
        buf.clear();
        let got = r.read_until(b'\n', &mut buf).map_err(|e| ReplayError {
            file: name.into(),
            line: n + 1,
            msg: format!("cannot read (truncated or corrupt compressed data?): {e}"),
        })?;
        if got == 0 {
            break;
        }
        n += 1;
        let complete = buf.last() == Some(&b'\n');
        let text = std::str::from_utf8(&buf).map_err(|e| ReplayError {
            file: name.into(),
            line: n,
            msg: format!("not UTF-8 text (byte {})", e.valid_up_to()),
        })?;
        if let Err(msg) = rep.feed(n, text) {
            let msg = if complete {
                format!("expected {msg}")
            } else {
                format!("the last line is cut short (truncated trace?): expected {msg}")
            };
            return Err(ReplayError {
                file: name.into(),
                line: n,
                msg,
            });
        }
    }
    Ok(rep.finish())
}
