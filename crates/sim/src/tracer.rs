//! Trace output of simulated events: ftrace `trace` text byte-compatible with Linux's (through
//! `ctxtrack-trace`'s formatter, so the same code writes and reads it) and Chrome/Perfetto JSON.
//!
//! Events carry Linux's names and `TP_printk` formats; the latency flags are the simulated
//! CPU's (IRQ flag, `TIF_NEED_RESCHED`, hardirq/NMI/softirq bits and preempt depth of its
//! preempt count). The ftrace header states the number of entries, as Linux's does, so a run
//! that writes a trace is made twice: once counting the lines, once writing them (the
//! simulator is deterministic, so both runs are the same run).

use crate::machine::{preempt, tif, CpuId, Machine, TaskId};
use ctxtrack_core::stats::TRANSITION_COUNT;
use ctxtrack_core::Transition;
use ctxtrack_trace::chrome::{Cat, ChromeWriter};
use ctxtrack_trace::{Flags, Line};
use std::io::Write;

/// Where trace text goes (`Send + Sync` so a machine can move between threads, as model
/// checkers do with states).
pub type TraceOut = Box<dyn Write + Send + Sync>;

/// An in-memory trace output whose bytes can be read after the run (tests, benchmarks).
#[derive(Clone, Default)]
pub struct SharedBuf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    /// A copy of what was written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("trace buffer poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The trace writers of a machine.
pub struct TraceSink {
    /// ftrace text; `None` while counting lines.
    ftrace: Option<TraceOut>,
    chrome: Option<ChromeWriter<TraceOut>>,
    /// ftrace lines written (or counted).
    pub lines: u64,
    /// First write error (reported at the end, never a panic).
    pub error: Option<std::io::Error>,
    buf: String,
}

impl TraceSink {
    /// Counts ftrace lines without writing them (the first of the two runs).
    pub fn counting() -> TraceSink {
        TraceSink {
            ftrace: None,
            chrome: None,
            lines: 0,
            error: None,
            buf: String::new(),
        }
    }

    /// Writes ftrace text to `out`, starting with Linux's header for `entries` lines on
    /// `ncpus` CPUs.
    pub fn ftrace(out: TraceOut, entries: u64, ncpus: usize) -> TraceSink {
        let mut s = TraceSink::counting();
        s.ftrace = Some(out);
        s.write(ctxtrack_trace::header(entries, ncpus).as_bytes());
        s
    }

    /// Also writes Chrome trace-event JSON to `out`.
    pub fn with_chrome(mut self, out: TraceOut) -> TraceSink {
        self.chrome = Some(ChromeWriter::new(out));
        self
    }

    fn write(&mut self, b: &[u8]) {
        if let (None, Some(out)) = (&self.error, self.ftrace.as_mut()) {
            if let Err(e) = out.write_all(b) {
                self.error = Some(e);
            }
        }
    }

    /// Flushes and closes both outputs; returns the first error seen.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(c) = self.chrome.take() {
            if let Err(e) = c.finish() {
                self.error.get_or_insert(e);
            }
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.ftrace.as_mut() {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

/// The five latency-format flag characters for CPU `c` running task `t`.
pub fn flags(m: &Machine, c: CpuId, t: TaskId) -> Flags {
    let hw = &m.cpus[c].hw;
    let irqs = if hw.irqs_on { b'.' } else { b'd' };
    let nr = if m.tasks[t].ti_flags & tif::NEED_RESCHED != 0 {
        b'N'
    } else {
        b'.'
    };
    let pc = hw.preempt_count;
    let nmi = pc & preempt::NMI_MASK != 0;
    let hard = pc & preempt::HARDIRQ_MASK != 0;
    let soft = pc & preempt::SOFTIRQ_MASK != 0;
    let ctx = match (nmi, hard, soft) {
        (true, true, _) => b'Z',
        (true, false, _) => b'z',
        (false, true, true) => b'H',
        (false, true, false) => b'h',
        (false, false, true) => b's',
        _ => b'.',
    };
    let depth = pc & preempt::PREEMPT_MASK;
    let d = if depth == 0 {
        b'.'
    } else {
        b"0123456789abcdef"[depth.min(15) as usize]
    };
    Flags([irqs, nr, ctx, d, b'.'])
}

/// How an event's flags differ from the CPU's modeled state, where Linux logs it inside a
/// region the model runs as one step.
#[derive(Clone, Copy)]
pub enum At {
    /// As the CPU is.
    Cpu,
    /// IRQs off (`exc_page_fault` logs before `local_irq_enable`).
    IrqsOff,
    /// IRQs off, preempt depth `n` (`__schedule` holds the runqueue lock: `sched_switch` and
    /// `sched_wakeup_new` show depth 2).
    Locked(u8),
}

fn line(m: &mut Machine, c: CpuId, t: TaskId, ts_ns: u64, event: &str, fields: &str, at: At) {
    let mut f = flags(m, c, t);
    match at {
        At::Cpu => {}
        At::IrqsOff => f.0[0] = b'd',
        At::Locked(n) => {
            f.0[0] = b'd';
            f.0[3] = b'0' + n.min(9);
        }
    }
    let task = &m.tasks[t];
    let comm: &str = if task.is_idle { "<idle>" } else { &task.comm };
    let pid = task.pid as i32;
    let l = Line {
        comm,
        pid,
        tgid: None,
        cpu: c as u32,
        flags: Some(f),
        ts_ns,
        event,
        fields,
    };
    let sink = m.trace.as_mut().expect("trace enabled");
    sink.lines += 1;
    if let Some(ch) = sink.chrome.as_mut() {
        ch.line(&l);
    }
    if sink.ftrace.is_some() {
        let mut buf = std::mem::take(&mut sink.buf);
        buf.clear();
        ctxtrack_trace::format_line(&l, &mut buf);
        sink.write(buf.as_bytes());
        sink.buf = buf;
    }
}

/// Emits `event: fields` for the current task of CPU `c` at its clock.
pub fn event(m: &mut Machine, c: CpuId, event: &str, fields: &str) {
    event_at(m, c, event, fields, At::Cpu);
}

/// [`event`] with the flags Linux logs it with.
pub fn event_at(m: &mut Machine, c: CpuId, event: &str, fields: &str, at: At) {
    let t = m.cpus[c].current;
    let now = m.cpus[c].hw.now;
    line(m, c, t, now, event, fields, at);
}

/// Opens (`begin`) or closes a Chrome slice ftrace has no event for (NMI, exception).
pub fn chrome_slice(m: &mut Machine, c: CpuId, cat: Cat, name: &str, begin: bool) {
    let now = m.cpus[c].hw.now;
    if let Some(ch) = m.trace.as_mut().and_then(|s| s.chrome.as_mut()) {
        if begin {
            ch.slice_begin(c as u32, now, cat, name);
        } else {
            ch.slice_end(c as u32, now, cat);
        }
    }
}

/// Emits what a step changed in context tracking: `user_enter`/`user_exit` for the
/// transitions it made (in order), the `rcu_watching` event when RCU started or stopped
/// watching (modern name and polarity: "Start" when RCU starts watching, "End" when it stops;
/// "Startirq"/"Endirq" from `ct_nmi_enter`/`ct_nmi_exit`), and a Chrome nesting counter.
pub fn transitions(
    m: &mut Machine,
    c: CpuId,
    t: TaskId,
    before: &[u64; TRANSITION_COUNT],
    ts: u64,
    was: (bool, i64, i64),
) {
    let after = m.cpus[c].pcpu.local.stats.transitions;
    let ct = &m.cpus[c].pcpu.ct;
    let (watching, nesting, nmi) = (ct.rcu_is_watching(), ct.nesting(), ct.nmi_nesting());
    let post = ct.state_word() & !3;
    let rcu = (watching != was.0).then(|| {
        // ct_kernel_enter/exit move `nesting` (task level); ct_nmi_* move only `nmi_nesting`.
        let by_nmi = nesting == was.1;
        let (pol, old, new) = match (watching, by_nmi) {
            (true, false) => ("Start", was.1, nesting),
            (false, false) => ("End", was.1, nesting),
            (true, true) => ("Startirq", was.2, nmi),
            (false, true) => ("Endirq", was.2, nmi),
        };
        // Linux traces "End"/"Endirq" before the counter moves, "Start"/"Startirq" after.
        let counter = if watching { post } else { post.wrapping_sub(4) } & 0xfff;
        format!("{pol} {old:x} {new:x} {counter:#3x}")
    });
    // __ct_user_exit: ct_kernel_enter (rcu_watching Start), then trace_user_exit;
    // __ct_user_enter: trace_user_enter, then ct_kernel_exit (rcu_watching End).
    if let (Some(f), true) = (&rcu, watching) {
        line(m, c, t, ts, "rcu_watching", f, At::Cpu);
    }
    for (tr, name) in [
        (Transition::UserExit, "user_exit"),
        (Transition::UserEnter, "user_enter"),
    ] {
        // Every design logs them with IRQs off: generic entry calls the _irqoff forms, 4.x
        // context_tracking_enter/exit wrap them in local_irq_save.
        for _ in before[tr as usize]..after[tr as usize] {
            line(m, c, t, ts, name, "", At::IrqsOff);
        }
    }
    if let (Some(f), false) = (&rcu, watching) {
        line(m, c, t, ts, "rcu_watching", f, At::Cpu);
    }
    if (nesting, nmi) != (was.1, was.2) {
        if let Some(ch) = m.trace.as_mut().and_then(|s| s.chrome.as_mut()) {
            ch.nesting(c as u32, ts, nesting, nmi);
        }
    }
}
