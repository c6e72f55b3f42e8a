//! ftrace-style text output of simulated events, in the layout of `/sys/kernel/tracing/trace`
//! (`comm-pid [cpu] flags timestamp: event: fields`) with Linux's event names and field formats.

use crate::machine::{preempt, tif, CpuId, Machine, TaskId};
use ctxtrack_core::stats::TRANSITION_COUNT;
use ctxtrack_core::Transition;
use std::io::Write;

/// Where trace text goes (`Send + Sync` so a machine can move between threads, as model
/// checkers do with states).
pub type TraceOut = Box<dyn Write + Send + Sync>;

/// The ftrace text writer of a machine.
pub struct TraceSink {
    out: TraceOut,
    /// Lines written.
    pub lines: u64,
    /// First write error (reported at the end, never a panic).
    pub error: Option<std::io::Error>,
}

/// The header Linux prints (`print_trace_header` for the `nop` tracer with latency flags).
pub const HEADER: &str = "# tracer: nop
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
";

impl TraceSink {
    /// A sink writing to `out`; writes the header.
    pub fn new(out: TraceOut) -> TraceSink {
        let mut s = TraceSink {
            out,
            lines: 0,
            error: None,
        };
        s.write(HEADER.as_bytes());
        s
    }

    fn write(&mut self, b: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(b) {
                self.error = Some(e);
            }
        }
    }

    /// Flushes; returns the first error seen.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// The five latency-format flag characters for CPU `c` running task `t`.
pub fn flags(m: &Machine, c: CpuId, t: TaskId) -> [u8; 5] {
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
    [irqs, nr, ctx, d, b'.']
}

fn line(m: &mut Machine, c: CpuId, t: TaskId, ts_ns: u64, event: &str, fields: &str) {
    let f = flags(m, c, t);
    let task = &m.tasks[t];
    let comm = if task.is_idle { "<idle>" } else { &*task.comm };
    let comm = if comm.len() > 16 { &comm[..16] } else { comm };
    let ts = format!(
        "{}.{:06}",
        ts_ns / 1_000_000_000,
        (ts_ns % 1_000_000_000) / 1000
    );
    let s = format!(
        "{comm:>16}-{pid:<7} [{c:03}] {flags} {ts:>12}: {event}: {fields}\n",
        pid = task.pid,
        flags = std::str::from_utf8(&f).unwrap()
    );
    let sink = m.trace.as_mut().expect("trace enabled");
    sink.write(s.as_bytes());
    sink.lines += 1;
}

/// Emits `event: fields` for the current task of CPU `c` at its clock.
pub fn event(m: &mut Machine, c: CpuId, event: &str, fields: &str) {
    let t = m.cpus[c].current;
    let now = m.cpus[c].hw.now;
    line(m, c, t, now, event, fields);
}

/// Emits `user_enter`/`user_exit` for the context-tracking transitions a step made.
pub fn transitions(
    m: &mut Machine,
    c: CpuId,
    t: TaskId,
    before: &[u64; TRANSITION_COUNT],
    ts: u64,
) {
    let after = m.cpus[c].pcpu.stats.transitions;
    for (tr, name) in [
        (Transition::UserExit, "user_exit"),
        (Transition::UserEnter, "user_enter"),
    ] {
        for _ in before[tr as usize]..after[tr as usize] {
            line(m, c, t, ts, name, "");
        }
    }
}
