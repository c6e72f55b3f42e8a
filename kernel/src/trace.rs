//! The ftrace ring buffer, per CPU: each CPU appends fixed-size records to its own buffer (no
//! locks; an NMI never traces), and at the end the BSP merges them by timestamp and writes them
//! over serial in the layout of `/sys/kernel/tracing/trace`, with the event names and fields of
//! Linux 6.1 (`context_tracking:user_enter/exit`, `irq_vectors:*_entry/exit`,
//! `sched:sched_switch`, `timer:tick_stop`), which `ctxtrack replay` checks.

use crate::acpi::MAX_CPUS;
use crate::percpu::{nr_cpus, this_cpu};
use crate::sched::task;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use ctxtrack_core::tick::TickDepBit;
use ctxtrack_trace::event::{vector_name, Comm, IrqVector, SchedSwitch, TickStop};

const CAP: usize = 1 << 15;

/// An event.
#[derive(Clone, Copy, Debug)]
pub enum Ev {
    /// `user_exit`.
    UserExit,
    /// `user_enter`.
    UserEnter,
    /// `<vector>_entry: vector=N`.
    IrqEntry(u8),
    /// `<vector>_exit: vector=N`.
    IrqExit(u8),
    /// `sched_switch` between two task indices.
    Switch {
        /// Task index switched out.
        prev: usize,
        /// Task index switched in.
        next: usize,
    },
    /// `tick_stop`: `None` = stopped (`success=1 dependency=NONE`), else restarted for `dep`.
    TickStop(Option<TickDepBit>),
}

#[derive(Clone, Copy)]
struct Rec {
    ts: u64,
    task: u16,
    flags: u8,
    ev: Ev,
}

struct Buf {
    recs: [Rec; CAP],
    len: usize,
    lost: usize,
}

const EMPTY: Rec = Rec {
    ts: 0,
    task: 0,
    flags: 0,
    ev: Ev::UserExit,
};
static mut BUFS: [Buf; MAX_CPUS] = [const {
    Buf {
        recs: [EMPTY; CAP],
        len: 0,
        lost: 0,
    }
}; MAX_CPUS];

/// TSC at boot: trace time 0.
pub static T0: AtomicU64 = AtomicU64::new(0);

const IRQS_OFF: u8 = 1;
const HARDIRQ: u8 = 2;
const NEED_RESCHED: u8 = 4;

/// Logs `ev` for `current` on this CPU.
pub fn emit(ev: Ev) {
    emit_as(crate::sched::current(), ev);
}

/// Logs `ev` as task `who` (`sched_switch` is logged by the task switched out).
pub fn emit_as(who: usize, ev: Ev) {
    if !cfg!(feature = "instrument") {
        return; // tracing off (the benchmark build), as a kernel with its events disabled
    }
    let c = this_cpu();
    let p = c.private();
    let mut flags = 0;
    if crate::cpu::irqs_disabled() {
        flags |= IRQS_OFF;
    }
    if p.arch.hardirq > 0 {
        flags |= HARDIRQ;
    }
    if c.need_resched.load(Ordering::Relaxed) {
        flags |= NEED_RESCHED;
    }
    let ts = crate::cpu::rdtsc() - T0.load(Ordering::Relaxed);
    // SAFETY: CPU c.id's buffer is written only by CPU c.id, never from NMI context.
    let b = unsafe { &mut (*core::ptr::addr_of_mut!(BUFS))[c.id] };
    if b.len == CAP {
        b.lost += 1;
        return;
    }
    b.recs[b.len] = Rec {
        ts,
        task: who as u16,
        flags,
        ev,
    };
    b.len += 1;
}

/// Writes every CPU's events, merged by time, in ftrace's text layout.
///
/// # Safety
/// Every other CPU must be parked (no more writers).
pub unsafe fn dump() {
    let n = nr_cpus();
    // SAFETY: per the contract, no CPU writes any more.
    let bufs = unsafe { &*core::ptr::addr_of!(BUFS) };
    let (mut entries, mut lost) = (0, 0);
    for b in &bufs[..n] {
        entries += b.len;
        lost += b.lost;
    }
    crate::serial::write_fmt(format_args!(
        "# tracer: nop\n#\n# entries-in-buffer/entries-written: {entries}/{}   #P:{n}\n#\n#                                _-----=> irqs-off/BH-disabled\n#                               / _----=> need-resched\n#                              | / _---=> hardirq/softirq\n#                              || / _--=> preempt-depth\n#                              ||| / _-=> migrate-disable\n#                              |||| /     delay\n#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n#              | |         |   |||||     |         |\n",
        entries + lost
    ));
    let mut pos = [0usize; MAX_CPUS];
    loop {
        let mut best: Option<usize> = None;
        for c in 0..n {
            if pos[c] < bufs[c].len
                && best.is_none_or(|b| bufs[c].recs[pos[c]].ts < bufs[b].recs[pos[b]].ts)
            {
                best = Some(c);
            }
        }
        let Some(c) = best else { break };
        line(c, &bufs[c].recs[pos[c]]);
        pos[c] += 1;
    }
    crate::serial::write_fmt(format_args!("# end of trace\n"));
}

fn line(cpu: usize, r: &Rec) {
    let t = task(r.task as usize);
    let comm = if t.idle { "<idle>" } else { t.comm };
    let mut l = Line { b: [0; 256], n: 0 };
    let ns = r.ts; // TSC cycles: QEMU TCG's TSC runs at a nominal GHz
    let _ = write!(
        l,
        "{:>16}-{:<7} [{:03}] {}{}{}.. {:>5}.{:06}: ",
        comm,
        t.pid,
        cpu,
        if r.flags & IRQS_OFF != 0 { 'd' } else { '.' },
        if r.flags & NEED_RESCHED != 0 {
            'n'
        } else {
            '.'
        },
        if r.flags & HARDIRQ != 0 { 'h' } else { '.' },
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1_000,
    );
    let _ = match r.ev {
        Ev::UserExit => write!(l, "user_exit: "),
        Ev::UserEnter => write!(l, "user_enter: "),
        Ev::IrqEntry(v) => write!(
            l,
            "{}_entry: {}",
            vector_name(v.into()),
            IrqVector { vector: v.into() }
        ),
        Ev::IrqExit(v) => write!(
            l,
            "{}_exit: {}",
            vector_name(v.into()),
            IrqVector { vector: v.into() }
        ),
        Ev::Switch { prev, next } => {
            let (p, nx) = (task(prev), task(next));
            let e = SchedSwitch {
                // The idle tasks are named swapper/N, as Linux's init_idle() names them.
                prev_comm: Comm::Task(p.comm),
                prev_pid: p.pid as i32,
                prev_prio: 120,
                prev_state: match p.state.load(Ordering::Relaxed) {
                    0 => "R",
                    1 => "S",
                    _ => "X",
                },
                next_comm: Comm::Task(nx.comm),
                next_pid: nx.pid as i32,
                next_prio: 120,
            };
            write!(l, "{}: {e}", SchedSwitch::NAME)
        }
        Ev::TickStop(d) => {
            let e = TickStop {
                success: d.is_none(),
                dependency: d.map_or("NONE", |d| d.name()),
            };
            write!(l, "{}: {e}", TickStop::NAME)
        }
    };
    let _ = writeln!(l);
    // SAFETY: Line only holds what write! produced from UTF-8 strings, cut at a char boundary
    // only if the line overflowed 256 bytes, which the formats above cannot.
    crate::serial::write_str(unsafe { core::str::from_utf8_unchecked(&l.b[..l.n]) });
}

struct Line {
    b: [u8; 256],
    n: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = (self.n + s.len()).min(self.b.len());
        let take = end - self.n;
        self.b[self.n..end].copy_from_slice(&s.as_bytes()[..take]);
        self.n = end;
        Ok(())
    }
}
