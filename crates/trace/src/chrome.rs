//! Chrome trace-event JSON (the format the Perfetto UI and `chrome://tracing` open).
//!
//! One track per CPU (`pid` 1, `tid` = CPU). On each track a top-level slice says the context
//! state (USER, KERNEL, IDLE, GUEST); syscalls, IRQs, NMIs and exceptions nest inside it as
//! slices. Slices of a task that is switched out are closed at the switch and reopened when it
//! runs again, so slices on a track always nest. Instant events mark IPIs, tick stop/start and
//! grace-period start/end; counter events carry the context-tracking nesting depth.
//!
//! The writer is fed ftrace [`Line`]s (so a simulator and a replayed Linux trace produce the
//! same picture) plus explicit slices for what ftrace does not show (exception exit, NMI).

use crate::event::field;
use crate::line::Line;
use std::collections::BTreeMap;
use std::io::Write;

/// Slice kinds (the category of the JSON event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cat {
    /// Context state (top level).
    State,
    /// A syscall.
    Syscall,
    /// An IRQ vector or device handler.
    Irq,
    /// An NMI.
    Nmi,
    /// An exception (page fault, breakpoint).
    Exception,
}

impl Cat {
    fn name(self) -> &'static str {
        match self {
            Cat::State => "ct_state",
            Cat::Syscall => "syscall",
            Cat::Irq => "irq",
            Cat::Nmi => "nmi",
            Cat::Exception => "exception",
        }
    }
}

#[derive(Clone)]
struct Open {
    cat: Cat,
    name: String,
}

#[derive(Default)]
struct Track {
    /// Open slices, outermost first (the first is the context state).
    stack: Vec<Open>,
    pid: i32,
    last_ts: u64,
    tick_stopped: bool,
}

/// Streams Chrome trace-event JSON to `W`.
pub struct ChromeWriter<W: Write> {
    out: W,
    first: bool,
    tracks: BTreeMap<u32, Track>,
    /// Nested slices of switched-out tasks, reopened when they run again.
    parked: BTreeMap<i32, Vec<Open>>,
    error: Option<std::io::Error>,
    /// CPUs whose noise track is named.
    noise_tracks: std::collections::BTreeSet<u32>,
    /// Events written.
    pub events: u64,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

fn us(ts_ns: u64) -> String {
    format!("{}.{:03}", ts_ns / 1000, ts_ns % 1000)
}

impl<W: Write> ChromeWriter<W> {
    /// A writer; each CPU's track is named when it first appears.
    pub fn new(out: W) -> Self {
        let mut w = ChromeWriter {
            out,
            first: true,
            tracks: BTreeMap::new(),
            parked: BTreeMap::new(),
            error: None,
            noise_tracks: Default::default(),
            events: 0,
        };
        w.raw("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
        w.emit(r#"{"ph":"M","pid":1,"name":"process_name","args":{"name":"CPUs"}}"#.into());
        w
    }

    /// A track's time never goes back: a reordered input line is pinned to the last time
    /// seen, so slices still nest.
    fn at(&mut self, c: u32, ts: u64) -> u64 {
        self.touch(c);
        let t = self.tracks.get_mut(&c).expect("touched");
        t.last_ts = t.last_ts.max(ts);
        t.last_ts
    }

    /// Names CPU `c`'s track the first time it is used.
    fn touch(&mut self, c: u32) {
        if self.tracks.contains_key(&c) {
            return;
        }
        self.tracks.insert(c, Track::default());
        self.emit(format!(
            r#"{{"ph":"M","pid":1,"tid":{c},"name":"thread_name","args":{{"name":"CPU {c}"}}}}"#
        ));
        self.emit(format!(
            r#"{{"ph":"M","pid":1,"tid":{c},"name":"thread_sort_index","args":{{"sort_index":{c}}}}}"#
        ));
    }

    fn raw(&mut self, s: &str) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(s.as_bytes()) {
                self.error = Some(e);
            }
        }
    }

    fn emit(&mut self, ev: String) {
        if !self.first {
            self.raw(",\n");
        }
        self.first = false;
        self.raw(&ev);
        self.events += 1;
    }

    fn track(&mut self, cpu: u32) -> &mut Track {
        self.tracks.entry(cpu).or_default()
    }

    fn begin(&mut self, cpu: u32, ts: u64, cat: Cat, name: &str, args: &str) {
        self.emit(format!(
            r#"{{"ph":"B","pid":1,"tid":{cpu},"ts":{},"cat":"{}","name":"{}","args":{{{args}}}}}"#,
            us(ts),
            cat.name(),
            esc(name)
        ));
        self.track(cpu).stack.push(Open {
            cat,
            name: name.into(),
        });
    }

    fn end(&mut self, cpu: u32, ts: u64) {
        if self.track(cpu).stack.pop().is_some() {
            self.emit(format!(
                r#"{{"ph":"E","pid":1,"tid":{cpu},"ts":{}}}"#,
                us(ts)
            ));
        }
    }

    /// Closes slices down to (and including) the innermost one of `cat`, if one is open.
    fn end_cat(&mut self, cpu: u32, ts: u64, cat: Cat) {
        if let Some(i) = self.track(cpu).stack.iter().rposition(|o| o.cat == cat) {
            while self.track(cpu).stack.len() > i {
                self.end(cpu, ts);
            }
        }
    }

    /// Replaces the context-state slice, keeping nested slices open around the change.
    fn set_state(&mut self, cpu: u32, ts: u64, state: &str, who: &str) {
        let nested: Vec<Open> = {
            let t = self.track(cpu);
            if t.stack.is_empty() {
                Vec::new()
            } else {
                t.stack[1..].to_vec()
            }
        };
        while !self.track(cpu).stack.is_empty() {
            self.end(cpu, ts);
        }
        self.begin(
            cpu,
            ts,
            Cat::State,
            state,
            &format!(r#""task":"{}""#, esc(who)),
        );
        for o in nested {
            self.begin(cpu, ts, o.cat, &o.name, "");
        }
    }

    /// An instant event on a CPU track.
    pub fn instant(&mut self, cpu: u32, ts: u64, name: &str, args: &str) {
        let ts = self.at(cpu, ts);
        self.emit(format!(
            r#"{{"ph":"i","s":"t","pid":1,"tid":{cpu},"ts":{},"name":"{}","args":{{{args}}}}}"#,
            us(ts),
            esc(name)
        ));
    }

    /// An interruption of user mode found by the noise report: a complete slice on the CPU's
    /// own "noise" track (process 2), named by its cause.
    pub fn noise_mark(&mut self, cpu: u32, ts: u64, dur: u64, cause: &str) {
        if !self.noise_tracks.contains(&cpu) {
            if self.noise_tracks.is_empty() {
                self.emit(
                    r#"{"ph":"M","pid":2,"name":"process_name","args":{"name":"noise (interruptions of user mode)"}}"#
                        .into(),
                );
            }
            self.noise_tracks.insert(cpu);
            self.emit(format!(
                r#"{{"ph":"M","pid":2,"tid":{cpu},"name":"thread_name","args":{{"name":"noise CPU {cpu}"}}}}"#
            ));
        }
        self.emit(format!(
            r#"{{"ph":"X","pid":2,"tid":{cpu},"ts":{},"dur":{},"cat":"noise","name":"{}","args":{{}}}}"#,
            us(ts),
            us(dur),
            esc(cause)
        ));
    }

    /// A counter sample (context-tracking nesting and NMI nesting) for a CPU.
    pub fn nesting(&mut self, cpu: u32, ts: u64, nesting: i64, nmi_nesting: i64) {
        let ts = self.at(cpu, ts);
        self.emit(format!(
            r#"{{"ph":"C","pid":1,"tid":{cpu},"ts":{},"name":"ct nesting CPU {cpu}","args":{{"nesting":{nesting},"nmi_nesting":{nmi_nesting}}}}}"#,
            us(ts)
        ));
    }

    /// Opens a slice ftrace does not show (an NMI, an exception).
    pub fn slice_begin(&mut self, cpu: u32, ts: u64, cat: Cat, name: &str) {
        let ts = self.at(cpu, ts);
        self.ensure_state(cpu, ts);
        self.begin(cpu, ts, cat, name, "");
    }

    /// Closes the innermost open slice of `cat`.
    pub fn slice_end(&mut self, cpu: u32, ts: u64, cat: Cat) {
        let ts = self.at(cpu, ts);
        self.end_cat(cpu, ts, cat);
    }

    fn ensure_state(&mut self, cpu: u32, ts: u64) {
        if self.track(cpu).stack.is_empty() {
            let idle = self.track(cpu).pid == 0;
            self.begin(
                cpu,
                ts,
                Cat::State,
                if idle { "IDLE" } else { "KERNEL" },
                "",
            );
        }
    }

    /// Feeds one ftrace event.
    pub fn line(&mut self, l: &Line<'_>) {
        let c = l.cpu;
        let ts = self.at(c, l.ts_ns);
        {
            let t = self.track(c);
            if t.stack.is_empty() {
                t.pid = l.pid;
            }
        }
        let who = format!("{}-{}", l.comm, l.pid);
        match l.event {
            "user_enter" => self.set_state(c, ts, "USER", &who),
            "user_exit" => self.set_state(c, ts, "KERNEL", &who),
            "sys_enter" => {
                self.ensure_state(c, ts);
                let nr = l.fields.split_whitespace().nth(1).unwrap_or("?");
                self.begin(c, ts, Cat::Syscall, &format!("syscall {nr}"), "");
            }
            "sys_exit" => self.end_cat(c, ts, Cat::Syscall),
            "sched_switch" => {
                // Park the outgoing task's nested slices; the new task's come back.
                let nested: Vec<Open> = {
                    let t = self.track(c);
                    if t.stack.len() > 1 {
                        t.stack[1..].to_vec()
                    } else {
                        Vec::new()
                    }
                };
                let nested: Vec<Open> = nested
                    .into_iter()
                    .filter(|o| o.cat == Cat::Syscall || o.cat == Cat::Exception)
                    .collect();
                if l.pid != 0 && !nested.is_empty() {
                    self.parked.insert(l.pid, nested);
                }
                while !self.track(c).stack.is_empty() {
                    self.end(c, ts);
                }
                let sw = crate::event::SchedSwitch::parse(l.fields);
                let next = sw.map_or(0, |s| s.next_pid);
                let comm = sw.and_then(|s| s.next_comm.as_str()).unwrap_or("?");
                self.track(c).pid = next;
                let state = if next == 0 { "IDLE" } else { "KERNEL" };
                self.begin(
                    c,
                    ts,
                    Cat::State,
                    state,
                    &format!(r#""task":"{}-{next}""#, esc(comm)),
                );
                for o in self.parked.remove(&next).unwrap_or_default() {
                    self.begin(c, ts, o.cat, &o.name, "");
                }
            }
            "tick_stop" => {
                if crate::event::TickStop::parse(l.fields).is_some_and(|t| t.success) {
                    self.track(c).tick_stopped = true;
                    self.instant(c, ts, "tick_stop", "");
                }
            }
            "ipi_send_cpu" => {
                let to = field(l.fields, "cpu=").unwrap_or("?").to_string();
                self.instant(c, ts, &format!("IPI to CPU {to}"), "");
            }
            "rcu_grace_period" => {
                let mut w = l.fields.split_whitespace();
                let (seq, what) = (w.nth(1).unwrap_or("?"), w.next().unwrap_or("?"));
                if what == "start" || what == "end" {
                    self.instant(c, ts, &format!("GP {seq} {what}"), "");
                }
            }
            "page_fault_user" | "page_fault_kernel" => {
                self.ensure_state(c, ts);
                self.instant(c, ts, l.event, "");
            }
            ev => {
                if let Some(base) = ev.strip_suffix("_entry") {
                    if ev == "irq_handler_entry" || crate::shapes::is_vector_base(base) {
                        if base == "local_timer" && std::mem::take(&mut self.track(c).tick_stopped)
                        {
                            self.instant(c, ts, "tick_start", "");
                        }
                        self.ensure_state(c, ts);
                        let name = if ev == "irq_handler_entry" {
                            format!("irq {}", field(l.fields, "name=").unwrap_or("?"))
                        } else {
                            base.to_string()
                        };
                        self.begin(c, ts, Cat::Irq, &name, "");
                    }
                } else if let Some(base) = ev.strip_suffix("_exit") {
                    if ev == "irq_handler_exit" || crate::shapes::is_vector_base(base) {
                        self.end_cat(c, ts, Cat::Irq);
                    }
                }
            }
        }
    }

    /// Closes every open slice at its track's last timestamp and ends the JSON.
    pub fn finish(mut self) -> std::io::Result<W> {
        let cpus: Vec<u32> = self.tracks.keys().copied().collect();
        for c in cpus {
            let ts = self.track(c).last_ts;
            while !self.track(c).stack.is_empty() {
                self.end(c, ts);
            }
        }
        self.raw("\n]}\n");
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// What [`validate`] found.
#[derive(Debug, Default)]
pub struct Validated {
    /// Complete slices (`B` matched by `E`).
    pub slices: u64,
    /// Deepest nesting on any track.
    pub max_depth: usize,
    /// Distinct slice names.
    pub names: std::collections::BTreeSet<String>,
}

/// Parses Chrome trace-event JSON and checks it: every event has `ph`, `pid`; `B`/`E` have
/// `tid` and `ts`; per track, timestamps never go back and every `E` closes an open `B`; no
/// slice is left open.
pub fn validate(json: &[u8]) -> Result<Validated, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let evs = v["traceEvents"].as_array().ok_or("no traceEvents array")?;
    let mut open: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    let mut last: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    let mut out = Validated::default();
    for (i, e) in evs.iter().enumerate() {
        let ph = e["ph"].as_str().ok_or(format!("event {i}: no ph"))?;
        let pid = e["pid"].as_i64().ok_or(format!("event {i}: no pid"))?;
        if ph == "M" {
            continue;
        }
        let tid = e["tid"].as_i64().ok_or(format!("event {i}: no tid"))?;
        let ts = e["ts"].as_f64().ok_or(format!("event {i}: no ts"))?;
        let k = (pid, tid);
        if ph == "B" || ph == "E" {
            let l = last.entry(k).or_insert(ts);
            if ts < *l {
                return Err(format!("event {i}: ts {ts} before {l} on track {tid}"));
            }
            *l = ts;
        }
        match ph {
            "B" => {
                let name = e["name"]
                    .as_str()
                    .ok_or(format!("event {i}: B without name"))?;
                out.names.insert(name.to_string());
                let st = open.entry(k).or_default();
                st.push(name.to_string());
                out.max_depth = out.max_depth.max(st.len());
            }
            "E" => {
                open.get_mut(&k)
                    .and_then(|s| s.pop())
                    .ok_or(format!("event {i}: E with no open slice on track {tid}"))?;
                out.slices += 1;
            }
            "X" => {
                let name = e["name"]
                    .as_str()
                    .ok_or(format!("event {i}: X without name"))?;
                e["dur"]
                    .as_f64()
                    .ok_or(format!("event {i}: X without dur"))?;
                out.names.insert(name.to_string());
                out.slices += 1;
            }
            "i" | "C" => {}
            other => return Err(format!("event {i}: unexpected ph {other}")),
        }
    }
    if let Some((k, s)) = open.iter().find(|(_, s)| !s.is_empty()) {
        return Err(format!(
            "track {k:?}: {} slices left open ({:?})",
            s.len(),
            s.last()
        ));
    }
    Ok(out)
}
