//! `ctxtrack replay`: replay a real ftrace text trace and print what it shows.

use ctxtrack_trace::replay::{replay_reader, Options, Report, INVARIANTS};
use ctxtrack_trace::shapes::KINDS;
use std::path::Path;
use std::process::ExitCode;

/// Options of `ctxtrack replay`.
pub(crate) struct Args<'a> {
    pub file: &'a Path,
    pub json: bool,
    pub shapes: bool,
    pub nohz_full: Option<&'a str>,
    pub hz: u32,
    pub tree: Option<i32>,
    pub chrome: Option<&'a Path>,
    pub quiet: bool,
}

/// A reader that reports how much of its input it has read to a progress line.
struct Counted<R> {
    inner: R,
    read: u64,
    reported: u64,
    pb: crate::progress::Progress,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.reported >= 1 << 20 {
            self.reported = self.read;
            let at = self.read;
            self.pb.update(|b| b.set_position(at));
        }
        Ok(n)
    }
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

pub(crate) fn run(a: Args<'_>) -> Result<ExitCode, String> {
    let nohz_full = match a.nohz_full {
        Some(l) => Some(
            ctxtrack_sim::CpuSet::parse(l, 128)
                .map_err(|e| format!("--nohz-full: {e}"))?
                .iter()
                .map(|c| c as u32)
                .collect(),
        ),
        None => None,
    };
    if a.hz == 0 {
        return Err("--hz must be positive".into());
    }
    let opts = Options {
        nohz_full,
        hz: a.hz,
        shapes: a.shapes,
        ..Options::default()
    };
    let name = a.file.display().to_string();
    // Progress counts the input's bytes as stored (compressed for a .gz), of the file's size.
    let pb = crate::progress::Progress::bytes(a.quiet);
    let report = if name == "-" {
        let input = Counted {
            inner: std::io::stdin().lock(),
            read: 0,
            reported: 0,
            pb: pb.clone(),
        };
        replay_reader("<stdin>", input, opts)
    } else if ctxtrack_trace::source::is_dat_path(a.file) {
        ctxtrack_trace::replay::replay_path(a.file, opts)
    } else {
        let f = std::fs::File::open(a.file).map_err(|e| format!("{name}: {e}"))?;
        if let Ok(md) = f.metadata() {
            pb.update(|b| b.set_length(md.len()));
        }
        let input = Counted {
            inner: f,
            read: 0,
            reported: 0,
            pb: pb.clone(),
        };
        replay_reader(&name, input, opts)
    };
    pb.finish();
    let report = report.map_err(|e| e.to_string())?;
    if let Some(p) = a.chrome {
        write_chrome(a.file, p, &[])?;
    }
    if a.json {
        let mut v = serde_json::to_value(&report).expect("report serializes");
        if let Some(pid) = a.tree {
            let (u, s) = report.tree_cputime(pid);
            v["tree"] = serde_json::json!({"pid": pid, "utime_ns": u, "stime_ns": s});
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print!("{}", render(&report, a.tree));
    }
    Ok(if report.violation_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Second pass for the Chrome JSON (the replay pass stays allocation-light).
/// Writes the trace at `input` (text or trace.dat) as Chrome/Perfetto JSON to `out`, with the
/// noise report's interruptions marked on their own tracks when given.
pub(crate) fn write_chrome(
    input: &Path,
    out: &Path,
    marks: &[(u32, u64, u64, String)],
) -> Result<(), String> {
    let name = input.display().to_string();
    if name == "-" {
        return Err(
            "--chrome-trace needs a file, not standard input (it reads the trace twice)".into(),
        );
    }
    let o =
        std::fs::File::create(out).map_err(|e| format!("--chrome-trace {}: {e}", out.display()))?;
    let mut w = ctxtrack_trace::chrome::ChromeWriter::new(std::io::BufWriter::new(o));
    ctxtrack_trace::source::visit_path(input, |_, item| {
        if let ctxtrack_trace::source::Item::Event(l) = item {
            w.line(&l);
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    for (cpu, ts, dur, cause) in marks {
        w.noise_mark(*cpu, *ts, *dur, cause);
    }
    w.finish()
        .map(|_| ())
        .map_err(|e| format!("--chrome-trace {}: {e}", out.display()))
}

/// The text report.
pub(crate) fn render(r: &Report, tree: Option<i32>) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} lines, {} events, {} CPUs, {} tasks",
        r.lines,
        r.events,
        r.cpus.len(),
        r.tasks.len()
    );
    let _ = writeln!(o, "\nper CPU          tracked  user_enter  user_exit  syscalls  ticks  irqs  switches  tick-stopped ms  user ms  sys ms  idle ms  unknown ms");
    for c in &r.cpus {
        let _ = writeln!(
            o,
            "  CPU {:<10} {:<8} {:>10} {:>10} {:>9} {:>6} {:>5} {:>9} {:>16} {:>8} {:>7} {:>8} {:>11}",
            c.cpu,
            if c.tracked { "yes" } else { "no" },
            c.user_enter, c.user_exit, c.syscalls, c.ticks, c.irqs, c.switches,
            ms(c.tick_stopped_ns), ms(c.user_ns), ms(c.sys_ns), ms(c.idle_ns), ms(c.unknown_ns)
        );
    }
    let _ = writeln!(o, "\nper task (utime/stime as /proc reports them: cputime_adjust of vtime or tick samples; ~ = not exact, utime within [bounds])");
    let _ = writeln!(
        o,
        "  {:>7} {:<16} {:>7} {:>10} {:>10} {:>10} {:>9}",
        "pid", "comm", "parent", "utime ms", "stime ms", "run ms", "syscalls"
    );
    for t in &r.tasks {
        let _ = writeln!(
            o,
            "  {:>7} {:<16} {:>7} {:>10} {:>10} {:>10} {:>9}{}",
            t.pid,
            t.comm,
            t.parent.map_or("-".into(), |p| p.to_string()),
            ms(t.utime_ns),
            ms(t.stime_ns),
            ms(t.runtime_ns),
            t.syscalls,
            if t.exact {
                String::new()
            } else {
                format!(
                    " ~ [{}, {}]",
                    ms(t.utime_bounds_ns.0),
                    ms(t.utime_bounds_ns.1)
                )
            }
        );
    }
    if let Some(pid) = tree {
        let (u, s) = r.tree_cputime(pid);
        let _ = writeln!(o, "\ntask {pid} and its descendants (what a waiting parent's cutime/cstime add): utime {} ms, stime {} ms", ms(u), ms(s));
    }
    if !r.shapes.is_empty() {
        let _ = writeln!(o, "\npath shapes (most frequent first):");
        for (k, what) in KINDS {
            let v: Vec<_> = r.shapes.iter().filter(|s| s.kind == *k).take(3).collect();
            if v.is_empty() {
                continue;
            }
            let _ = writeln!(o, "  {k} ({what}):");
            for s in v {
                let _ = writeln!(o, "    {:>7}x  {}", s.count, s.events.join(" → "));
            }
        }
    }
    for w in &r.warnings {
        let _ = writeln!(o, "warning: line {}: {}", w.line, w.detail);
    }
    if r.violation_count == 0 {
        let _ = writeln!(
            o,
            "\nverdict: OK (no violation of {} checked invariants)",
            INVARIANTS.len()
        );
    } else {
        let _ = writeln!(o, "\nverdict: VIOLATED ({} violations)", r.violation_count);
        for v in &r.violations {
            let doc = INVARIANTS
                .iter()
                .find(|(n, _)| *n == v.invariant)
                .map_or("", |(_, d)| d);
            let _ = writeln!(
                o,
                "  line {}: CPU {}: {}: {} ({doc})",
                v.line, v.cpu, v.invariant, v.detail
            );
        }
    }
    o
}
