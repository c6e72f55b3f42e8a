//! One line of ftrace `trace` text: parse (lenient) and format (byte-compatible with Linux).
//!
//! Linux prints, for the `nop` tracer with latency flags (`print_trace_fmt` /
//! `trace_print_lat_context` in `kernel/trace/trace_output.c`):
//!
//! ```text
//!           <idle>-0       [003] dnh1.     8.564792: reschedule_entry: vector=253
//! ```
//!
//! `comm` right-aligned in 16 columns, `-pid` left-aligned in 7, optionally `(tgid)`, the CPU in
//! three digits, five latency-flag characters, the timestamp in seconds with microseconds, the
//! event name and its `TP_printk` fields. `trace-cmd report` prints the same columns with other
//! widths and often without flags; the parser accepts both.

use std::fmt::Write as _;

/// The five latency-format flag characters (`irqs-off`, `need-resched`, `hardirq/softirq`,
/// `preempt-depth`, `migrate-disable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(pub [u8; 5]);

impl Flags {
    /// No flag set: `.....`.
    pub const NONE: Flags = Flags(*b".....");

    /// IRQs were disabled (`d`; `D` = also BH disabled; `X` = not supported).
    pub fn irqs_off(&self) -> bool {
        matches!(self.0[0], b'd' | b'D')
    }
    /// In hard IRQ context (`h`, `H`) or NMI (`z`, `Z`).
    pub fn hardirq(&self) -> bool {
        matches!(self.0[2], b'h' | b'H' | b'z' | b'Z')
    }
    /// In NMI context.
    pub fn nmi(&self) -> bool {
        matches!(self.0[2], b'z' | b'Z')
    }
    /// `TIF_NEED_RESCHED` (`N`, `n` = only the lazy bit, `p`/`P` = preempt-need-resched forms).
    pub fn need_resched(&self) -> bool {
        matches!(self.0[1], b'N' | b'n' | b'p' | b'P' | b'L' | b'B')
    }
    /// The preempt depth column (0 when `.`).
    pub fn preempt_depth(&self) -> u8 {
        match self.0[3] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            _ => 0,
        }
    }
    fn valid(s: &[u8]) -> bool {
        (4..=5).contains(&s.len())
            && s.iter().all(|c| {
                matches!(c, b'.' | b'd' | b'D' | b'X' | b'b' | b'n' | b'N' | b'p' | b'P' | b'L'
                    | b'B' | b'h' | b'H' | b's' | b'z' | b'Z' | b'0'..=b'9' | b'a'..=b'f')
            })
    }
}

/// One event line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// Task name (`<idle>` for the idle tasks, `<...>` when ftrace lost it).
    pub comm: &'a str,
    /// Task id (0 for the idle tasks).
    pub pid: i32,
    /// Thread-group id, when the trace records it (`options/record-tgid`: `comm-pid (tgid)`;
    /// `-----` when ftrace did not know it).
    pub tgid: Option<i32>,
    /// CPU number.
    pub cpu: u32,
    /// Latency flags, when the trace has them.
    pub flags: Option<Flags>,
    /// Timestamp in nanoseconds (the text has microseconds, or nanoseconds with 9 digits).
    pub ts_ns: u64,
    /// Event name (`user_enter`, `sys_enter`, ...).
    pub event: &'a str,
    /// The event's fields as printed (`TP_printk`), trailing spaces removed.
    pub fields: &'a str,
}

/// What a text line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// An event.
    Event(Line<'a>),
    /// A header or comment line (`# ...`), a `cpus=N` line (trace-cmd), or an empty line.
    Header,
    /// `CPU:N [LOST M EVENTS]` or `##### CPU N buffer started ####`: events are missing here.
    Lost {
        /// The CPU, when the line names it.
        cpu: Option<u32>,
        /// How many events were lost, when the line says.
        count: Option<u64>,
    },
}

/// Parses one line (without its newline). The error says what was expected.
pub fn parse_line(s: &str) -> Result<Parsed<'_>, String> {
    let t = s.trim_end_matches(['\r', '\n']);
    let trimmed = t.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') && !trimmed.starts_with("#####") {
        return Ok(Parsed::Header);
    }
    if let Some(rest) = trimmed.strip_prefix("cpus=") {
        return if rest.trim().parse::<u32>().is_ok() {
            Ok(Parsed::Header)
        } else {
            Err("`cpus=` followed by a number".into())
        };
    }
    if trimmed.starts_with("#####") {
        // `##### CPU 2 buffer started ####`
        let cpu = trimmed
            .split_whitespace()
            .nth(2)
            .and_then(|x| x.parse().ok());
        return Ok(Parsed::Lost { cpu, count: None });
    }
    if let Some(rest) = trimmed.strip_prefix("CPU:") {
        // ftrace: `CPU:2 [LOST 123 EVENTS]`; trace-cmd report: `CPU:2 [123 EVENTS DROPPED]` or
        // `CPU:2 [EVENTS DROPPED]`.
        let cpu = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|x| x.parse().ok());
        if rest.contains("LOST") {
            let count = rest
                .split_once("LOST ")
                .and_then(|(_, r)| r.split_whitespace().next())
                .and_then(|x| x.parse().ok());
            return Ok(Parsed::Lost { cpu, count });
        }
        if rest.contains("EVENTS DROPPED]") {
            let count = rest
                .split_once('[')
                .and_then(|(_, r)| r.split_whitespace().next())
                .and_then(|x| x.parse().ok());
            return Ok(Parsed::Lost { cpu, count });
        }
    }
    let b = t.as_bytes();
    // The CPU column: the first ` [digits]` after a `-pid`, before the timestamp (a ` [120]`
    // further on belongs to the fields of trace-cmd's `-l` format).
    let ts_at = timestamp_token(t).map_or(t.len(), |(at, _)| at);
    let mut i = 0;
    let (cpu_open, cpu_close) = loop {
        let Some(off) = t[i..].find(" [") else {
            return parse_latency(t);
        };
        let open = i + off + 1;
        if open > ts_at {
            return parse_latency(t);
        }
        let mut j = open + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > open + 1 && j < b.len() && b[j] == b']' && t[..open].contains('-') {
            break (open, j);
        }
        i = open + 1;
    };
    let cpu: u32 = t[cpu_open + 1..cpu_close]
        .parse()
        .map_err(|_| "a CPU number in `[...]`".to_string())?;
    // Task: `comm-pid`, optionally followed by `(tgid)`.
    let mut task = t[..cpu_open].trim();
    let mut tgid = None;
    if task.ends_with(')') {
        if let Some(p) = task.rfind('(') {
            tgid = task[p + 1..task.len() - 1].trim().parse::<i32>().ok();
            task = task[..p].trim_end();
        }
    }
    let dash = task
        .rfind('-')
        .ok_or_else(|| "`comm-pid` before the CPU column".to_string())?;
    let comm = task[..dash].trim_start();
    let pid: i32 = task[dash + 1..]
        .parse()
        .map_err(|_| format!("a pid after `{comm}-`, found `{}`", &task[dash + 1..]))?;
    // After the CPU: optional flags, the timestamp, `event:` and the fields.
    let mut rest = t[cpu_close + 1..].trim_start();
    let mut flags = None;
    let first = rest.split(' ').next().unwrap_or("");
    if !first.ends_with(':') && Flags::valid(first.as_bytes()) {
        let mut f = [b'.'; 5];
        f[..first.len()].copy_from_slice(first.as_bytes());
        flags = Some(Flags(f));
        rest = rest[first.len()..].trim_start();
    }
    let colon = rest
        .find(": ")
        .or_else(|| rest.strip_suffix(':').map(|r| r.len()))
        .ok_or_else(|| "`timestamp: event: fields` after the CPU column".to_string())?;
    let ts_ns = parse_ts(&rest[..colon])?;
    let rest = rest.get(colon + 1..).unwrap_or("").trim_start();
    let (event, fields) = event_and_fields(rest)?;
    Ok(Parsed::Event(Line {
        comm,
        pid,
        tgid,
        cpu,
        flags,
        ts_ns,
        event,
        fields,
    }))
}

/// `event: fields` after the timestamp (both layouts).
fn event_and_fields(rest: &str) -> Result<(&str, &str), String> {
    let (event, fields) = match rest.find(':') {
        Some(c) => (&rest[..c], rest[c + 1..].trim()),
        None => return Err("`event:` after the timestamp".into()),
    };
    if event.is_empty() || event.contains(' ') {
        return Err(format!(
            "an event name after the timestamp, found `{event}`"
        ));
    }
    Ok((event, fields))
}

/// The first `digits.digits:` token: (byte offset, token).
fn timestamp_token(t: &str) -> Option<(usize, &str)> {
    let mut pos = 0;
    for tok in t.split(' ') {
        let start = pos;
        pos += tok.len() + 1;
        let is_ts = tok.len() > 3
            && tok.ends_with(':')
            && tok[..tok.len() - 1].split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && !b.is_empty()
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
        if is_ts {
            return Some((start, tok));
        }
    }
    None
}

/// `trace-cmd report -l`: `comm-pid CPUflags timestamp: event: fields` (no brackets; the CPU
/// number runs into the latency flags, e.g. `sh-768     0d.h..    68.867823286: ...`).
fn parse_latency(t: &str) -> Result<Parsed<'_>, String> {
    let what = || {
        "`comm-pid [cpu]` (or trace-cmd -l's `comm-pid CPUflags`) at the start of an event line"
            .to_string()
    };
    // The timestamp is the first `digits.digits:` token; the token before it is CPU+flags.
    let (ts_at, tok) = timestamp_token(t).ok_or_else(what)?;
    let before = t[..ts_at].trim_end();
    let cf_at = before.rfind(' ').map_or(0, |i| i + 1);
    let cf = &before[cf_at..];
    let digits = cf.bytes().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || !Flags::valid(&cf.as_bytes()[digits..]) {
        return Err(what());
    }
    let cpu: u32 = cf[..digits].parse().map_err(|_| what())?;
    let mut f = [b'.'; 5];
    let fl = &cf.as_bytes()[digits..];
    f[..fl.len()].copy_from_slice(fl);
    let task = t[..cf_at].trim();
    let dash = task.rfind('-').ok_or_else(what)?;
    let comm = task[..dash].trim_start();
    let pid: i32 = task[dash + 1..].parse().map_err(|_| what())?;
    let ts_ns = parse_ts(&tok[..tok.len() - 1])?;
    let rest = t[ts_at + tok.len()..].trim_start();
    let (event, fields) = event_and_fields(rest)?;
    Ok(Parsed::Event(Line {
        comm,
        pid,
        tgid: None,
        cpu,
        flags: Some(Flags(f)),
        ts_ns,
        event,
        fields,
    }))
}

/// `seconds.micros` (or `.nanos`) into nanoseconds.
fn parse_ts(s: &str) -> Result<u64, String> {
    let err = || format!("a timestamp `seconds.micro`, found `{s}`");
    let (sec, frac) = s.split_once('.').ok_or_else(err)?;
    if sec.is_empty() || frac.is_empty() || frac.len() > 9 {
        return Err(err());
    }
    let sec: u64 = sec.parse().map_err(|_| err())?;
    let f: u64 = frac.parse().map_err(|_| err())?;
    let scale = 10u64.pow(9 - frac.len() as u32);
    sec.checked_mul(1_000_000_000)
        .and_then(|x| x.checked_add(f * scale))
        .ok_or_else(err)
}

/// The header Linux prints before the events (`print_trace_header` for the `nop` tracer with
/// the latency-format columns, as in `/sys/kernel/tracing/trace`).
pub fn header(entries: u64, ncpus: usize) -> String {
    format!(
        "# tracer: nop
#
# entries-in-buffer/entries-written: {entries}/{entries}   #P:{ncpus}
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"
    )
}

/// Appends `l` as Linux prints it (with a newline). Linux's `comm` column is 16 wide and the
/// pid 7 wide, left-aligned after the `-`; an empty field list still has its space after the
/// colon (`user_enter: `).
pub fn format_line(l: &Line<'_>, out: &mut String) {
    let comm = if l.comm.len() > 16 {
        &l.comm[..16]
    } else {
        l.comm
    };
    let flags = l.flags.unwrap_or(Flags::NONE);
    let _ = writeln!(
        out,
        "{comm:>16}-{pid:<7} [{cpu:03}] {f} {s:>5}.{us:06}: {ev}: {fields}",
        pid = l.pid,
        cpu = l.cpu,
        f = std::str::from_utf8(&flags.0).unwrap_or("....."),
        s = l.ts_ns / 1_000_000_000,
        us = (l.ts_ns % 1_000_000_000) / 1000,
        ev = l.event,
        fields = l.fields,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_lines_round_trip_byte_for_byte() {
        for s in [
            "          <idle>-0       [003] dnh1.     8.564792: reschedule_entry: vector=253",
            "              dd-295     [003] d....     8.565020: user_enter: ",
            " sched-messaging-206     [001] .....     5.895601: sys_enter: NR 59 (7ffedbee7890, 7ffedbee7bc0, 7ffedbee7c10, 7ffedbee8fc0, 7ffedbee7fc9, 10400000000)",
            "          <idle>-0       [001] d..2.     5.894852: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=taskset next_pid=206 next_prio=120",
        ] {
            let Parsed::Event(l) = parse_line(s).unwrap() else { panic!("{s}") };
            let mut o = String::new();
            format_line(&l, &mut o);
            // Linux keeps the trailing space of an empty field list; we trim fields on input.
            assert_eq!(o.trim_end(), s.trim_end());
        }
    }

    #[test]
    fn lenient_about_optional_columns() {
        let Parsed::Event(l) = parse_line(
            "           bash-1234    (   1234) [001] d..1.  123.456789: sys_exit: NR 0 = 1",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (l.comm, l.pid, l.cpu, l.ts_ns),
            ("bash", 1234, 1, 123_456_789_000)
        );
        let Parsed::Event(l) =
            parse_line("  kworker/u8:0-12  [002]  1234.567890123: sched_switch:   prev_comm=a")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (l.comm, l.pid, l.flags, l.ts_ns, l.event, l.fields),
            (
                "kworker/u8:0",
                12,
                None,
                1_234_567_890_123,
                "sched_switch",
                "prev_comm=a"
            )
        );
        let Parsed::Event(l) =
            parse_line("sched-messaging-206 [001] d.... 5.1: user_exit:").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (l.comm, l.pid, l.event, l.fields),
            ("sched-messaging", 206, "user_exit", "")
        );
        assert_eq!(parse_line("cpus=4").unwrap(), Parsed::Header);
        assert_eq!(
            parse_line("CPU:2 [LOST 17 EVENTS]").unwrap(),
            Parsed::Lost {
                cpu: Some(2),
                count: Some(17)
            }
        );
    }

    #[test]
    fn malformed_lines_say_what_was_expected() {
        for (s, want) in [
            ("hello", "comm-pid [cpu]"),
            ("a-1 [000] ..... x.y: e: f", "timestamp"),
            ("a-b [000] ..... 1.0: e: f", "a pid"),
            ("a-1 [000] ..... 1.0 e", "timestamp: event"),
        ] {
            let e = parse_line(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
