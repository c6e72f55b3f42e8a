//! What disturbed each isolated CPU: every interruption of user mode, by cause, as `rtla
//! osnoise` counts noise from inside the kernel, computed from a trace.
//!
//! An interruption runs from the CPU leaving user mode (`user_exit` on a nohz_full CPU; on
//! other CPUs the inferred edge: the entry event itself) to its return (`user_enter`, or the
//! inferred return). Its cause is what the CPU entered first: a vector (`local_timer`,
//! `reschedule`, `call_function`, `irq_work`, ...), a device IRQ (by handler name), a page fault,
//! an NMI, or the task's own syscall (self-inflicted, shown apart). What nests inside it (a tick
//! during a fault, a softirq at IRQ exit) is an interruption of its own, and its time is taken
//! off the outer one: durations are net, as osnoise's are.
//!
//! A tick that did not stop says why: the `tick_stop: success=0 dependency=X` it logged.
//! An IPI names its sender where `ipi_send_cpu` / `ipi_send_cpumask` events (Linux 6.6+) show
//! it. Call-function IPIs that arrived while the CPU ran user code are the ones the CT_WORK
//! deferral (README, "Deferred IPIs to isolated CPUs") would have left for the next kernel entry.
//!
//! Streaming, deterministic, bounded memory: per CPU a stack of open intervals, a fixed
//! histogram and the longest [`Options::top`] interruptions.

use crate::event::field;
use crate::line::Line;
use crate::replay::ReplayError;
use crate::shapes::is_vector_base;
use crate::source::Item;
use serde::Serialize;
use std::collections::BTreeMap;

/// Options of the noise report.
#[derive(Clone, Debug)]
pub struct Options {
    /// CPUs to report. `None`: the nohz_full ones (those that log `user_enter`/`user_exit`);
    /// an empty list: every CPU in the trace.
    pub cpus: Option<Vec<u32>>,
    /// How many of the longest interruptions to keep per CPU.
    pub top: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cpus: None,
            top: 10,
        }
    }
}

/// Histogram bucket upper bounds in ns (the last bucket is everything above).
pub const HIST_BOUNDS_NS: [u64; 12] = [
    1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 1_024_000,
    4_096_000,
];

/// Counts per cause.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CauseStats {
    /// The cause (`timer tick`, `IPI call_function`, `IRQ virtio0-requests`, `page fault`, ...).
    pub cause: String,
    /// Interruptions.
    pub count: u64,
    /// Total time, net of nested interruptions (ns).
    pub total_ns: u64,
    /// Longest single one, net (ns).
    pub max_ns: u64,
    /// The task's own doing (syscalls, page faults): shown apart.
    pub self_inflicted: bool,
    /// For ticks: how many times each `tick_stop` dependency kept the tick.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kept_by: BTreeMap<String, u64>,
    /// For IPIs: senders as `CPU n (comm-pid)` where `ipi_send_*` shows them, with counts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub senders: BTreeMap<String, u64>,
    /// IPIs that hit user mode and that CT_WORK would have deferred (call-function ones).
    pub ct_work_deferrable: u64,
}

/// One interruption, for the longest-first list.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Interruption {
    /// Its cause.
    pub cause: String,
    /// Start (ns, trace clock).
    pub start_ns: u64,
    /// Net duration (ns).
    pub net_ns: u64,
    /// Gross duration including nested interruptions (ns).
    pub gross_ns: u64,
    /// Line (or trace.dat record) where it starts and where it ends.
    pub line: u64,
    /// Where it ends.
    pub end_line: u64,
    /// The task that was interrupted.
    pub task: String,
}

/// One CPU's report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuNoise {
    /// CPU number.
    pub cpu: u32,
    /// Context tracking was active on it (it logs `user_enter`/`user_exit`).
    pub nohz_full: bool,
    /// Time in user mode (ns).
    pub user_ns: u64,
    /// Time from the first to the last event on this CPU (ns).
    pub span_ns: u64,
    /// Interruptions of user mode (outermost ones).
    pub interruptions: u64,
    /// Their gross time (ns).
    pub interrupted_ns: u64,
    /// By cause, most time first.
    pub causes: Vec<CauseStats>,
    /// Net durations of every interruption (outer and nested) in [`HIST_BOUNDS_NS`] buckets.
    pub histogram: Vec<u64>,
    /// The longest interruptions (outermost, by gross time), longest first.
    pub longest: Vec<Interruption>,
    /// Call-function IPIs that hit user mode (CT_WORK would have deferred them).
    pub ct_work_deferrable: u64,
    /// Lost-events marks on this CPU (the report is incomplete around them).
    pub lost: u64,
}

/// The noise report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NoiseReport {
    /// Per reported CPU.
    pub cpus: Vec<CpuNoise>,
    /// Whether the trace had `ipi_send_*` events (IPI senders known).
    pub ipi_senders_traced: bool,
    /// Lines (or records) read.
    pub lines: u64,
    /// Every interruption of a reported CPU: (cpu, start ns, net ns, cause), for the chart and
    /// the Perfetto marks; at most [`MAX_MARKS`] (the first ones).
    #[serde(skip)]
    pub marks: Vec<(u32, u64, u64, String)>,
}

/// Most interruptions kept for the chart and Perfetto (memory bound).
pub const MAX_MARKS: usize = 200_000;

#[derive(Clone, Debug)]
struct Open {
    cause: String,
    start: u64,
    line: u64,
    /// Time of nested interruptions, taken off this one.
    nested: u64,
    /// Closes on this event (`local_timer_exit`, `softirq_exit`, ... or `user_enter` for the
    /// outermost one).
    closer: Closer,
    /// A call-function IPI that arrived in user mode.
    deferrable: bool,
    sender: Option<String>,
    kept_by: Option<String>,
}

impl Open {
    fn new(cause: String, start: u64, line: u64, closer: Closer) -> Open {
        Open {
            cause,
            start,
            line,
            nested: 0,
            closer,
            deferrable: false,
            sender: None,
            kept_by: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Closer {
    /// `user_enter` (tracked) or the inferred return to user mode.
    User,
    /// The matching `*_exit` event.
    Exit(String),
    /// Immediately (an untraced end).
    Now,
}

#[derive(Default)]
struct Cpu {
    r: CpuNoise,
    first: Option<u64>,
    last: u64,
    in_user: bool,
    user_since: u64,
    tracked: bool,
    stack: Vec<Open>,
    causes: BTreeMap<String, CauseStats>,
    task: String,
    task_pid: i32,
    /// IPI senders waiting for their IPI on this CPU (oldest first, bounded).
    senders: Vec<String>,
    /// NMI time inside user-mode windows (taken off the user time).
    nmi_in_user: u64,
}

/// A noise report in progress.
pub struct Noise {
    opts: Options,
    cpus: BTreeMap<u32, Cpu>,
    ipi_senders: bool,
    marks: Vec<(u32, u64, u64, String)>,
    lines: u64,
}

fn vector_cause(base: &str) -> String {
    match base {
        "local_timer" => "timer tick".into(),
        "reschedule" | "call_function" | "call_function_single" | "irq_work" => {
            format!("IPI {base}")
        }
        other => format!("vector {other}"),
    }
}

fn hist_bucket(ns: u64) -> usize {
    HIST_BOUNDS_NS
        .iter()
        .position(|&b| ns < b)
        .unwrap_or(HIST_BOUNDS_NS.len())
}

impl Noise {
    /// A report with `opts`.
    pub fn new(opts: Options) -> Noise {
        Noise {
            opts,
            cpus: BTreeMap::new(),
            ipi_senders: false,
            marks: Vec::new(),
            lines: 0,
        }
    }

    /// Feeds one item (`n`: its line or record number).
    pub fn item(&mut self, n: u64, item: Item<'_>) {
        self.lines = n;
        match item {
            Item::Event(l) => self.event(n, &l),
            Item::Lost { cpu, count: _ } => {
                for (c, st) in self.cpus.iter_mut() {
                    if cpu.is_none_or(|x| x == *c) {
                        // Open intervals cannot be closed truthfully: drop them.
                        st.stack.clear();
                        st.in_user = false;
                        st.r.lost += 1;
                    }
                }
            }
        }
    }

    fn wanted(&self, c: u32, tracked: bool) -> bool {
        match &self.opts.cpus {
            Some(v) => v.is_empty() || v.contains(&c),
            None => tracked,
        }
    }

    fn event(&mut self, n: u64, l: &Line<'_>) {
        let ev = l.event;
        // IPI senders (Linux 6.6+): remember them on the target CPUs.
        if ev == "ipi_send_cpu" || ev == "ipi_send_cpumask" {
            self.ipi_senders = true;
            let who = format!("CPU {} ({}-{})", l.cpu, l.comm, l.pid);
            let mut targets = Vec::new();
            if let Some(c) = field(l.fields, "cpu=").and_then(|x| x.parse::<u32>().ok()) {
                targets.push(c);
            } else if let Some(m) = field(l.fields, "cpumask=") {
                targets.extend(parse_cpumask(m));
            }
            for t in targets {
                let st = self.cpus.entry(t).or_default();
                if st.senders.len() < 64 {
                    st.senders.push(who.clone());
                }
            }
        }
        let c = l.cpu;
        let st = self.cpus.entry(c).or_default();
        st.r.cpu = c;
        if st.first.is_none() {
            st.first = Some(l.ts_ns);
        }
        st.last = st.last.max(l.ts_ns);
        // The interrupted task's name, rebuilt only when the CPU runs another one.
        if l.pid != 0
            && (l.pid != st.task_pid || st.task.rsplit_once('-').map(|(c, _)| c) != Some(l.comm))
        {
            use std::fmt::Write as _;
            st.task_pid = l.pid;
            st.task.clear();
            let _ = write!(st.task, "{}-{}", l.comm, l.pid);
        }
        let ts = l.ts_ns;
        match ev {
            "user_exit" => {
                st.tracked = true;
                if st.in_user {
                    st.r.user_ns += ts.saturating_sub(st.user_since);
                    st.in_user = false;
                }
                // The cause is what comes next; open with a placeholder.
                st.stack.clear();
                st.stack.push(Open::new(String::new(), ts, n, Closer::User));
                return;
            }
            "user_enter" => {
                st.tracked = true;
                self.close_to_user(c, ts, n);
                return;
            }
            "sched_switch" => {
                // The interrupted task is switched out: its interruption goes on (counted
                // until it returns to user mode); a task switched in starts in the kernel.
                let st = self.cpus.get_mut(&c).expect("cpu");
                if !st.tracked && st.in_user {
                    st.r.user_ns += ts.saturating_sub(st.user_since);
                    st.in_user = false;
                }
                return;
            }
            _ => {}
        }
        // Entry events: the cause of an interruption, or one nested in it.
        let entry: Option<(String, Option<String>)> = if let Some(base) = ev.strip_suffix("_entry")
        {
            if is_vector_base(base) {
                Some((vector_cause(base), Some(format!("{base}_exit"))))
            } else if ev == "irq_handler_entry" {
                let name = field(l.fields, "name=").unwrap_or("?");
                Some((format!("IRQ {name}"), Some("irq_handler_exit".into())))
            } else if ev == "softirq_entry" {
                let vec = l
                    .fields
                    .split("action=")
                    .nth(1)
                    .map_or("?", |x| x.trim_end_matches(']'));
                Some((format!("softirq {vec}"), Some("softirq_exit".into())))
            } else {
                None
            }
        } else {
            match ev {
                "page_fault_user" => Some(("page fault".into(), None)),
                "sys_enter" => {
                    let nr = l
                        .fields
                        .strip_prefix("NR ")
                        .and_then(|x| x.split(' ').next())
                        .unwrap_or("?");
                    Some((format!("syscall {nr}"), None))
                }
                _ => None,
            }
        };
        if ev == "nmi_handler" {
            // Logged at the end of each NMI handler with its duration; an NMI does not leave
            // user mode through user_exit (ct_nmi_enter), so it is an interruption of its own,
            // or one nested in whatever it hit.
            let d = field(l.fields, "delta_ns=")
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
            let handler = field(l.fields, "handler=").unwrap_or("?");
            let st = self.cpus.get_mut(&c).expect("cpu");
            let outermost = st.stack.is_empty();
            if let Some(parent) = st.stack.last_mut() {
                parent.nested += d;
            }
            if st.in_user {
                st.nmi_in_user += d;
            }
            let o = Open::new(
                format!("NMI {handler}"),
                ts.saturating_sub(d),
                n,
                Closer::Now,
            );
            self.record(c, o, ts, n, outermost);
            return;
        }
        let st = self.cpus.get_mut(&c).expect("cpu");
        if !st.tracked && ev == "sys_exit" {
            // Untracked: a syscall's interruption ends here (the exit work is not traced).
            if st.stack.is_empty() {
                st.in_user = true;
                st.user_since = ts;
            } else {
                self.close_to_user(c, ts, n);
            }
            return;
        }
        if let Some((cause, closer)) = entry {
            let st = self.cpus.get_mut(&c).expect("cpu");
            let is_ipi = cause.starts_with("IPI ");
            let sender = if is_ipi && !st.senders.is_empty() {
                Some(st.senders.remove(0))
            } else {
                None
            };
            let deferrable = cause == "IPI call_function" || cause == "IPI call_function_single";
            if !st.tracked && st.in_user {
                // Untracked, in user mode: this entry starts the interruption.
                st.r.user_ns += ts.saturating_sub(st.user_since);
                st.in_user = false;
                let closer = match (closer, ev) {
                    (Some(x), _) => Closer::Exit(x),
                    (None, "sys_enter") => Closer::User,
                    // A fault's end is not traced without context tracking: zero length.
                    (None, _) => Closer::Now,
                };
                let now = closer == Closer::Now;
                st.stack.push(Open {
                    deferrable,
                    sender,
                    ..Open::new(cause, ts, n, closer)
                });
                if now {
                    self.close_to_user(c, ts, n);
                }
                return;
            }
            match st.stack.last_mut() {
                Some(top) if top.cause.is_empty() => {
                    // The first thing after leaving user mode: the interruption's cause.
                    top.cause = cause;
                    top.deferrable = deferrable;
                    top.sender = sender;
                }
                Some(_) => {
                    if let Some(x) = closer {
                        st.stack.push(Open {
                            sender,
                            ..Open::new(cause, ts, n, Closer::Exit(x))
                        });
                    }
                }
                None => {}
            }
            return;
        }
        if ev == "tick_stop" {
            let st = self.cpus.get_mut(&c).expect("cpu");
            if let Some(t) = crate::event::TickStop::parse(l.fields).filter(|t| !t.success) {
                let dep = match t.dependency {
                    "" => "?".to_string(),
                    d => d.to_string(),
                };
                if let Some(o) = st.stack.iter_mut().rev().find(|o| o.cause == "timer tick") {
                    o.kept_by = Some(dep);
                }
            }
            return;
        }
        // Exits close the matching interval (and anything left open inside it).
        let Some(pos) = self.cpus[&c]
            .stack
            .iter()
            .rposition(|o| matches!(&o.closer, Closer::Exit(x) if x == ev))
        else {
            return;
        };
        loop {
            let st = self.cpus.get_mut(&c).expect("cpu");
            if st.stack.len() <= pos {
                break;
            }
            let o = st.stack.pop().expect("open");
            let gross = ts.saturating_sub(o.start);
            if let Some(parent) = st.stack.last_mut() {
                parent.nested += gross;
            }
            let outermost = st.stack.is_empty();
            self.record(c, o, ts, n, outermost);
            if outermost {
                // An untracked interruption that was this vector: back to user mode.
                let st = self.cpus.get_mut(&c).expect("cpu");
                st.in_user = true;
                st.user_since = ts;
            }
        }
    }

    fn close_to_user(&mut self, c: u32, ts: u64, n: u64) {
        let st = self.cpus.get_mut(&c).expect("cpu");
        let mut stack = std::mem::take(&mut st.stack);
        while let Some(o) = stack.pop() {
            let gross = ts.saturating_sub(o.start);
            if let Some(parent) = stack.last_mut() {
                parent.nested += gross;
            }
            let outermost = stack.is_empty();
            self.record(c, o, ts, n, outermost);
        }
        let st = self.cpus.get_mut(&c).expect("cpu");
        st.in_user = true;
        st.user_since = ts;
    }

    fn record(&mut self, c: u32, mut o: Open, end: u64, n: u64, outermost: bool) {
        let top = self.opts.top;
        let st = self.cpus.get_mut(&c).expect("cpu");
        if o.cause.is_empty() {
            o.cause = "other (kernel entry with no traced cause)".into();
        }
        let gross = end.saturating_sub(o.start);
        let net = gross.saturating_sub(o.nested);
        let self_inflicted = o.cause.starts_with("syscall") || o.cause == "page fault";
        let key = if self_inflicted && o.cause.starts_with("syscall") {
            "syscalls (self-inflicted)".to_string()
        } else {
            o.cause.clone()
        };
        let cs = st.causes.entry(key.clone()).or_insert_with(|| CauseStats {
            cause: key,
            self_inflicted,
            ..Default::default()
        });
        cs.count += 1;
        cs.total_ns += net;
        cs.max_ns = cs.max_ns.max(net);
        if let Some(k) = &o.kept_by {
            *cs.kept_by.entry(k.clone()).or_default() += 1;
        }
        if let Some(s) = &o.sender {
            *cs.senders.entry(s.clone()).or_default() += 1;
        }
        if o.deferrable && outermost {
            cs.ct_work_deferrable += 1;
            st.r.ct_work_deferrable += 1;
        }
        if st.r.histogram.is_empty() {
            st.r.histogram = vec![0; HIST_BOUNDS_NS.len() + 1];
        }
        st.r.histogram[hist_bucket(net)] += 1;
        if outermost {
            st.r.interruptions += 1;
            st.r.interrupted_ns += gross;
            let i = Interruption {
                cause: o.cause.clone(),
                start_ns: o.start,
                net_ns: net,
                gross_ns: gross,
                line: o.line,
                end_line: n,
                task: st.task.clone(),
            };
            // Keep the `top` longest (ties: the earlier one).
            let pos = st.r.longest.partition_point(|x| x.gross_ns >= gross);
            if pos < top {
                st.r.longest.insert(pos, i);
                st.r.longest.truncate(top);
            }
            if self.marks.len() < MAX_MARKS {
                self.marks.push((c, o.start, gross, o.cause));
            }
        }
    }

    /// The report.
    pub fn finish(mut self) -> NoiseReport {
        let mut out = NoiseReport {
            ipi_senders_traced: self.ipi_senders,
            lines: self.lines,
            ..Default::default()
        };
        let keep: Vec<u32> = self
            .cpus
            .iter()
            .filter(|(c, st)| self.wanted(**c, st.tracked))
            .map(|(c, _)| *c)
            .collect();
        for c in keep {
            let st = self.cpus.get_mut(&c).expect("cpu");
            if st.in_user {
                st.r.user_ns += st.last.saturating_sub(st.user_since);
            }
            st.r.user_ns = st.r.user_ns.saturating_sub(st.nmi_in_user);
            let mut r = std::mem::take(&mut st.r);
            r.nohz_full = st.tracked;
            r.span_ns = st.last.saturating_sub(st.first.unwrap_or(st.last));
            if r.histogram.is_empty() {
                r.histogram = vec![0; HIST_BOUNDS_NS.len() + 1];
            }
            let mut causes: Vec<CauseStats> =
                std::mem::take(&mut st.causes).into_values().collect();
            causes.sort_by(|a, b| {
                a.self_inflicted
                    .cmp(&b.self_inflicted)
                    .then(b.total_ns.cmp(&a.total_ns))
                    .then(a.cause.cmp(&b.cause))
            });
            r.causes = causes;
            out.cpus.push(r);
        }
        let wanted: Vec<u32> = out.cpus.iter().map(|c| c.cpu).collect();
        out.marks = self
            .marks
            .into_iter()
            .filter(|m| wanted.contains(&m.0))
            .collect();
        out
    }
}

/// `cpumask=0-3,5` or a hex mask `0000000f` into CPU numbers.
fn parse_cpumask(m: &str) -> Vec<u32> {
    let mut v = Vec::new();
    if m.contains(['-', ',']) || m.len() <= 3 && m.parse::<u32>().is_ok() {
        for part in m.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                        v.extend(a..=b.min(a + 4096));
                    }
                }
                None => v.extend(part.parse::<u32>().ok()),
            }
        }
    } else {
        let hex = m.trim_start_matches("0x").replace(',', "");
        for (i, ch) in hex.chars().rev().enumerate() {
            if let Some(d) = ch.to_digit(16) {
                for b in 0..4 {
                    if d & (1 << b) != 0 {
                        v.push((i * 4 + b) as u32);
                    }
                }
            }
        }
    }
    v
}

/// The noise report of the trace at `path` (text, gzip, trace.dat; `-`: stdin).
pub fn noise_path(path: &std::path::Path, opts: Options) -> Result<NoiseReport, ReplayError> {
    let mut n = Noise::new(opts);
    crate::source::visit_path(path, |k, item| {
        n.item(k, item);
        Ok(())
    })?;
    Ok(n.finish())
}
