//! Typed trace events: each with one format (its `TP_printk`, byte for byte as Linux 6.1 prints
//! it) and one parse (of the kernel's format and, where trace-cmd's plugins print another, of
//! that too). The simulator and the bare-metal kernel write events through [`core::fmt::Display`];
//! replay and the Chrome writer read them through `parse`. `no_std`: the kernel formats into a
//! fixed buffer.
//!
//! Only the fields' text is here; the line around it (task, CPU, flags, timestamp, event name)
//! is [`crate::line`]'s.

use core::fmt;

/// A task name as `sched` events print it. The idle task is `swapper/N` in Linux
/// (`init_idle()` names each CPU's), `swapper` where the CPU is not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comm<'a> {
    /// A named task.
    Task(&'a str),
    /// CPU `n`'s idle task (`None`: `swapper`).
    Swapper(Option<usize>),
}

impl fmt::Display for Comm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Comm::Task(s) => f.write_str(s),
            Comm::Swapper(Some(n)) => write!(f, "swapper/{n}"),
            Comm::Swapper(None) => f.write_str("swapper"),
        }
    }
}

impl<'a> Comm<'a> {
    /// The name as printed (`swapper/N` comes back as a [`Comm::Task`]).
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Comm::Task(s) => Some(s),
            Comm::Swapper(_) => None,
        }
    }
}

/// `sched:sched_switch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedSwitch<'a> {
    /// `prev_comm`.
    pub prev_comm: Comm<'a>,
    /// `prev_pid`.
    pub prev_pid: i32,
    /// `prev_prio`.
    pub prev_prio: i32,
    /// `prev_state`: `R`, `S`, `D`, `X`, ... (`R+` when preempted, on some kernels).
    pub prev_state: &'a str,
    /// `next_comm`.
    pub next_comm: Comm<'a>,
    /// `next_pid`.
    pub next_pid: i32,
    /// `next_prio`.
    pub next_prio: i32,
}

impl SchedSwitch<'_> {
    /// The event's name.
    pub const NAME: &'static str = "sched_switch";
}

impl fmt::Display for SchedSwitch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prev_comm={} prev_pid={} prev_prio={} prev_state={} ==> next_comm={} next_pid={} next_prio={}",
            self.prev_comm,
            self.prev_pid,
            self.prev_prio,
            self.prev_state,
            self.next_comm,
            self.next_pid,
            self.next_prio
        )
    }
}

impl<'a> SchedSwitch<'a> {
    /// Parses the kernel's format, or trace-cmd's sched plugin's
    /// (`a:1 [120] S ==> b:2 [120]`). Comms may hold spaces. `None` if `next_pid` is unreadable;
    /// other unreadable fields are empty or -1.
    pub fn parse(f: &'a str) -> Option<SchedSwitch<'a>> {
        if let Some(p) = field(f, "next_pid=") {
            return Some(SchedSwitch {
                prev_comm: Comm::Task(between(f, "prev_comm=", " prev_pid=").unwrap_or("")),
                prev_pid: num(field(f, "prev_pid=")),
                prev_prio: num(field(f, "prev_prio=")),
                prev_state: field(f, "prev_state=").unwrap_or(""),
                next_comm: Comm::Task(between(f, "next_comm=", " next_pid=").unwrap_or("")),
                next_pid: p.parse().ok()?,
                next_prio: num(field(f, "next_prio=")),
            });
        }
        let (prev, next) = f.split_once(" ==> ")?;
        let (prev_who, prev_rest) = prev.split_once(" [").unwrap_or((prev, ""));
        let (prev_prio, prev_state) = prev_rest.split_once("] ").unwrap_or(("", ""));
        let (pc, pp) = prev_who.rsplit_once(':').unwrap_or((prev_who, ""));
        let (next_who, next_rest) = next.split_once(" [").unwrap_or((next, ""));
        let (nc, np) = next_who.rsplit_once(':')?;
        Some(SchedSwitch {
            prev_comm: Comm::Task(pc),
            prev_pid: num(Some(pp)),
            prev_prio: num(Some(prev_prio)),
            prev_state: prev_state.trim(),
            next_comm: Comm::Task(nc),
            next_pid: np.parse().ok()?,
            next_prio: num(next_rest.strip_suffix(']')),
        })
    }
}

/// `sched:sched_wakeup` and `sched:sched_wakeup_new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedWakeup<'a> {
    /// `comm`.
    pub comm: Comm<'a>,
    /// `pid`.
    pub pid: i32,
    /// `prio`.
    pub prio: i32,
    /// `target_cpu` (printed `%03d`).
    pub target_cpu: i32,
}

impl SchedWakeup<'_> {
    /// A wakeup.
    pub const NAME: &'static str = "sched_wakeup";
    /// A new task's first wakeup.
    pub const NAME_NEW: &'static str = "sched_wakeup_new";
}

impl fmt::Display for SchedWakeup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "comm={} pid={} prio={} target_cpu={:03}",
            self.comm, self.pid, self.prio, self.target_cpu
        )
    }
}

impl<'a> SchedWakeup<'a> {
    /// Parses the kernel's format or trace-cmd's (`a:1 [120] CPU:003`). `None` without a
    /// readable pid.
    pub fn parse(f: &'a str) -> Option<SchedWakeup<'a>> {
        if let Some(p) = field(f, "pid=") {
            return Some(SchedWakeup {
                comm: Comm::Task(between(f, "comm=", " pid=").unwrap_or("")),
                pid: p.parse().ok()?,
                prio: num(field(f, "prio=")),
                target_cpu: num(field(f, "target_cpu=")),
            });
        }
        let (who, rest) = f.split_once(" [")?;
        let (comm, pid) = who.rsplit_once(':')?;
        let (prio, cpu) = rest.split_once("] ").unwrap_or((rest, ""));
        Some(SchedWakeup {
            comm: Comm::Task(comm),
            pid: pid.parse().ok()?,
            prio: num(Some(prio)),
            target_cpu: num(cpu.strip_prefix("CPU:")),
        })
    }
}

/// `timer:tick_stop`: `success=1 dependency=NONE` when the tick stopped, `success=0
/// dependency=SCHED` (the bit that kept it) when it could not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickStop<'a> {
    /// `success`.
    pub success: bool,
    /// `dependency`: `NONE`, `POSIX_TIMER`, `PERF_EVENTS`, `SCHED`, `CLOCK_UNSTABLE`, `RCU`, ...
    pub dependency: &'a str,
}

impl TickStop<'_> {
    /// The event's name.
    pub const NAME: &'static str = "tick_stop";
}

impl fmt::Display for TickStop<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "success={} dependency={}",
            u8::from(self.success),
            self.dependency
        )
    }
}

impl<'a> TickStop<'a> {
    /// Parses `success=N dependency=NAME`.
    pub fn parse(f: &'a str) -> Option<TickStop<'a>> {
        Some(TickStop {
            success: field(f, "success=")? == "1",
            dependency: field(f, "dependency=").unwrap_or(""),
        })
    }
}

/// `irq_vectors:<name>_entry` / `_exit`: `vector=N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqVector {
    /// The x86 vector number.
    pub vector: u32,
}

impl fmt::Display for IrqVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vector={}", self.vector)
    }
}

impl IrqVector {
    /// Parses `vector=N`.
    pub fn parse(f: &str) -> Option<IrqVector> {
        Some(IrqVector {
            vector: field(f, "vector=")?.parse().ok()?,
        })
    }
}

/// `irq_vectors` event-name prefix of an x86 vector (`arch/x86/include/asm/irq_vectors.h`);
/// device vectors are `irq_handler_*` events, not `irq_vectors`.
pub fn vector_name(vector: u32) -> &'static str {
    match vector {
        0xec => "local_timer",
        0xf6 => "irq_work",
        0xfd => "reschedule",
        0xfb => "call_function_single",
        0xfc => "call_function",
        0xf7 => "x86_platform_ipi",
        0xfe => "error_apic",
        _ => "spurious_apic",
    }
}

/// `context_tracking:user_enter` / `user_exit`: no fields (`TP_printk("%s", "")`).
pub const USER_ENTER: &str = "user_enter";
/// See [`USER_ENTER`].
pub const USER_EXIT: &str = "user_exit";

/// The value after `key` up to the next space (a key must start the text or follow a space).
pub fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    let i = find_key(fields, key)?;
    let rest = &fields[i + key.len()..];
    Some(rest.split(' ').next().unwrap_or(""))
}

/// The text after `key` up to `end` (for values that may contain spaces, like comm).
pub fn between<'a>(fields: &'a str, key: &str, end: &str) -> Option<&'a str> {
    let i = find_key(fields, key)?;
    let rest = &fields[i + key.len()..];
    rest.find(end).map(|j| &rest[..j])
}

/// Where `key` starts as a whole key (at the start or after a space), not inside another
/// (`pid=` inside `next_pid=`).
fn find_key(fields: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(j) = fields[from..].find(key) {
        let i = from + j;
        if i == 0 || fields.as_bytes()[i - 1] == b' ' {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

fn num(s: Option<&str>) -> i32 {
    s.and_then(|s| s.trim().parse().ok()).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn sched_switch_round_trips_in_both_layouts() {
        let e = SchedSwitch {
            prev_comm: Comm::Swapper(Some(1)),
            prev_pid: 0,
            prev_prio: 120,
            prev_state: "R",
            next_comm: Comm::Task("kworker/u8:0 x"),
            next_pid: 206,
            next_prio: 120,
        };
        let s = format!("{e}");
        assert_eq!(
            s,
            "prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=kworker/u8:0 x next_pid=206 next_prio=120"
        );
        let p = SchedSwitch::parse(&s).unwrap();
        assert_eq!(p.prev_comm, Comm::Task("swapper/1"));
        assert_eq!(
            (p.next_comm, p.next_pid, p.prev_state, p.prev_pid),
            (Comm::Task("kworker/u8:0 x"), 206, "R", 0)
        );
        let p = SchedSwitch::parse("perf:12 [120] S ==> swapper/3:0 [120]").unwrap();
        assert_eq!(
            (p.prev_comm, p.prev_pid, p.prev_prio, p.prev_state),
            (Comm::Task("perf"), 12, 120, "S")
        );
        assert_eq!(
            (p.next_comm, p.next_pid, p.next_prio),
            (Comm::Task("swapper/3"), 0, 120)
        );
        assert_eq!(SchedSwitch::parse("prev_comm=a next_pid=x"), None);
        assert_eq!(SchedSwitch::parse("garbage"), None);
    }

    #[test]
    fn wakeups_tick_stops_and_vectors() {
        let w = SchedWakeup {
            comm: Comm::Task("sender 3"),
            pid: 42,
            prio: 120,
            target_cpu: 3,
        };
        let s = format!("{w}");
        assert_eq!(s, "comm=sender 3 pid=42 prio=120 target_cpu=003");
        assert_eq!(SchedWakeup::parse(&s), Some(w));
        let p = SchedWakeup::parse("perf:77 [120] CPU:002").unwrap();
        assert_eq!(
            (p.comm, p.pid, p.prio, p.target_cpu),
            (Comm::Task("perf"), 77, 120, 2)
        );
        let t = TickStop {
            success: false,
            dependency: "SCHED",
        };
        assert_eq!(format!("{t}"), "success=0 dependency=SCHED");
        assert_eq!(TickStop::parse("success=0 dependency=SCHED"), Some(t));
        assert_eq!(format!("{}", IrqVector { vector: 236 }), "vector=236");
        assert_eq!(
            IrqVector::parse("vector=253"),
            Some(IrqVector { vector: 253 })
        );
        assert_eq!(vector_name(0xfd), "reschedule");
    }
}
