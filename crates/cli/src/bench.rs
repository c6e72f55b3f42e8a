//! `ctxtrack bench`: wall-clock figures measured in one run and printed as ratios. Benchmarks,
//! not tests: nothing here asserts a speed.

use clap::Subcommand;
use ctxtrack_sim::{design, Config, Workload};
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
    /// Simulated steps per second and the wall time of the default messaging simulation, next to
    /// the real `perf bench sched messaging` on this machine (if `perf` is installed).
    Sim {
        /// Repetitions (the best wall time is reported).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Run the simulation with the invariant monitor off too.
        #[arg(long)]
        no_monitor: bool,
    },
    /// The core's hot paths on this machine's CPUs (real atomics, code-patched static key):
    /// P1 (CT round trip vs 2 fully ordered RMWs + 2 clock reads), P2 (call sites with the key
    /// off vs none, static key and atomic-bool fallback), IRQ/NMI/idle paths. Medians of
    /// interleaved rounds; ratios from one run. `cargo bench -p ctxtrack-host` is the criterion
    /// version of the same loops.
    Host {
        /// Iterations per timed batch.
        #[arg(long, default_value_t = 200_000)]
        iters: u64,
        /// Batches per loop (the median is reported).
        #[arg(long, default_value_t = 15)]
        rounds: u32,
    },
    /// Instructions context tracking adds to a syscall round trip and to an IRQ from user in the
    /// bare-metal kernel (ct=off vs ct=on, QEMU TCG -icount shift=0). Needs qemu-system-x86_64.
    Kernel {
        /// Give up on a boot after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Replay throughput in MB/s of trace text (decompressed first, so gzip is not timed), on
    /// one core. Default input: the simulator's own trace of the default messaging run.
    Replay {
        /// A trace file (plain or gzip) to measure instead.
        file: Option<std::path::PathBuf>,
        /// Repetitions (the best time is reported).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
    /// The model checker's speed and memory, measured in one run: every shipped design on one
    /// CPU at --depth with every event, on one thread and on two (states/s, wall, peak RSS);
    /// then two CPUs at --cpus2-depth for the designs of the 2015 thread and generic-entry,
    /// with and without CT_WORK. Each search is a child `ctxtrack check --json`, so each peak
    /// is its own. With --spin FILE and SPIN and a C compiler installed, SPIN's verifier on
    /// that Promela model too, for its states/s on this machine.
    Check {
        /// Nesting depth of the one-CPU searches.
        #[arg(long, default_value_t = 3)]
        depth: u32,
        /// Nesting depth of the two-CPU searches (0: skip them).
        #[arg(long, default_value_t = 1)]
        cpus2_depth: u32,
        /// Memory bound of each search's waiting states (MiB): a search past it stops, and the
        /// table says so.
        #[arg(long, default_value_t = 8192, value_name = "MIB")]
        max_memory: u64,
        /// A Promela model to run through SPIN (`spin -a`, `cc -O2 -DSAFETY`, `./pan`) beside
        /// ours, e.g. crates/check/spin/ct.pml.
        #[arg(long, value_name = "FILE")]
        spin: Option<std::path::PathBuf>,
    },
    /// trace.dat replay throughput against text replay of the same events, in one run: MB of
    /// text equivalent per second (the events rendered in ftrace's layout), and the ratio.
    /// Default input: the repository's capture of socket messaging on a nohz_full CPU.
    Dat {
        /// A trace.dat to measure instead.
        file: Option<std::path::PathBuf>,
        /// Repetitions (the best time of each is reported).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
}

/// `bench dat`: the binary reader and the text parser on the same events, back to back.
fn bench_dat(file: Option<&std::path::Path>, repeat: u32) -> Result<ExitCode, String> {
    let default = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../traces/linux-6.1/workloads/nohz-messaging-socket-cpu3.v7.dat"
    ));
    let path = file.unwrap_or(&default);
    let name = path.display().to_string();
    // The text equivalent: every record in ftrace's own layout (not timed).
    let mut text = String::new();
    let mut line = String::new();
    ctxtrack_trace::source::visit_path(path, |_, item| {
        if let ctxtrack_trace::source::Item::Event(l) = item {
            line.clear();
            ctxtrack_trace::line::format_line(&l, &mut line);
            text.push_str(&line);
            text.push('\n');
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let mb = text.len() as f64 / 1e6;
    let (mut best_dat, mut best_text) = (f64::MAX, f64::MAX);
    let mut events = (0, 0);
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let r = ctxtrack_trace::replay::replay_path(path, ctxtrack_trace::Options::default())
            .map_err(|e| e.to_string())?;
        best_dat = best_dat.min(t.elapsed().as_secs_f64());
        events.0 = r.events;
        let t = Instant::now();
        let r = ctxtrack_trace::replay_reader(
            &name,
            text.as_bytes(),
            ctxtrack_trace::Options::default(),
        )
        .map_err(|e| e.to_string())?;
        best_text = best_text.min(t.elapsed().as_secs_f64());
        events.1 = r.events;
    }
    if events.0 != events.1 {
        return Err(format!(
            "{name}: {} events from the binary, {} from its text",
            events.0, events.1
        ));
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "trace.dat {name}: {size:.1} MB on disk = {mb:.1} MB of text, {} events",
        events.0
    );
    println!(
        "  binary: {best_dat:.3} s = {:.0} MB text-equivalent/s; text: {best_text:.3} s = {:.0} MB/s (best of {repeat}); binary/text = {:.2}x (target: >= 1)",
        mb / best_dat,
        mb / best_text,
        best_text / best_dat
    );
    Ok(ExitCode::SUCCESS)
}

/// The text to replay: a file, or the simulator's trace of the default messaging run.
fn replay_input(file: Option<&std::path::Path>) -> Result<(String, Vec<u8>), String> {
    use std::io::Read;
    if let Some(p) = file {
        let mut raw = Vec::new();
        std::fs::File::open(p)
            .and_then(|mut f| f.read_to_end(&mut raw))
            .map_err(|e| format!("{}: {e}", p.display()))?;
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            raw = out;
        }
        return Ok((p.display().to_string(), raw));
    }
    let buf = ctxtrack_sim::tracer::SharedBuf::default();
    let cfg = Config::new(design::by_name("generic-entry").expect("design"));
    let out = ctxtrack_sim::TraceOutputs {
        ftrace: Some(Box::new(buf.clone())),
        chrome: None,
    };
    let (_, mut m) = ctxtrack_sim::run(cfg, &Workload::messaging_default(), out);
    m.finish_trace().map_err(|e| e.to_string())?;
    let v = buf.bytes();
    Ok(("the simulator's default messaging trace".into(), v))
}

fn time_sim(monitor: bool) -> (f64, u64) {
    time_sim_design(design::by_name("generic-entry").unwrap(), monitor)
}

fn time_sim_design(d: &'static design::Design, monitor: bool) -> (f64, u64) {
    let mut cfg = Config::new(d);
    cfg.monitor = monitor;
    let w = Workload::messaging_default();
    let t = Instant::now();
    let (r, _) = ctxtrack_sim::run(cfg, &w, ctxtrack_sim::TraceOutputs::none());
    (t.elapsed().as_secs_f64(), r.steps)
}

fn time_perf() -> Result<(f64, String), String> {
    let t = Instant::now();
    let out = Command::new("perf")
        .args(["bench", "sched", "messaging"])
        .output()
        .map_err(|e| format!("perf not runnable ({e}); install Debian's linux-perf"))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "perf bench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let total = stdout
        .lines()
        .find(|l| l.contains("Total time"))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((wall, total))
}

fn bench_host(iters: u64, rounds: u32) -> Result<ExitCode, String> {
    if iters < 8 || rounds == 0 {
        return Err("--iters must be at least 8 and --rounds at least 1".into());
    }
    let m = ctxtrack_host::hot::measure(iters, rounds);
    println!(
        "host hot paths: {} iterations x {} interleaved rounds (getppid loops: iterations / 8), medians; key backend: {}",
        m.iters, m.rounds, m.key_backend
    );
    for f in &m.figures {
        println!("  {:<58} {:>9.2} ns", f.name, f.ns);
    }
    println!("ratios (same run):");
    for r in &m.ratios {
        let goal = match r.goal {
            Some(g) if r.value <= g => format!("goal <= {g:.2}: met"),
            Some(g) => format!("goal <= {g:.2}: NOT met"),
            None => String::new(),
        };
        println!("  {:<48} {:>6.3}x  {goal}", r.name, r.value);
    }
    if m.warnings != 0 {
        return Err(format!(
            "the core recorded {} context-tracking violation(s) during the loops",
            m.warnings
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// One child search's figures.
struct Search {
    states: u64,
    transitions: u64,
    verdict: String,
    limit: Option<String>,
    wall: f64,
    peak_mib: f64,
}

/// Runs `ctxtrack check ARGS --json --quiet` as a child: its JSON result, wall time and peak
/// resident memory (`wait4()`'s `ru_maxrss`, the child's own).
fn child_check(args: &[String]) -> Result<Search, String> {
    use std::io::Read;
    let exe = std::env::current_exe().map_err(|e| format!("bench check: own executable: {e}"))?;
    let t = Instant::now();
    let mut child = Command::new(exe)
        .arg("check")
        .args(args)
        .args(["--json", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("bench check: spawning a search: {e}"))?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .map_err(|e| format!("bench check: reading a search's output: {e}"))?;
    // With --quiet a search writes to stderr only an error, which stays far below a pipe's
    // buffer: reading it after stdout cannot block the child.
    let mut err = String::new();
    let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child we spawned (std does not wait for it again).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    let wall = t.elapsed().as_secs_f64();
    if pid < 0 {
        return Err(format!(
            "bench check: wait4: {}",
            std::io::Error::last_os_error()
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
        format!(
            "bench check: `check {}` printed no result ({e}): {}",
            args.join(" "),
            err.trim()
        )
    })?;
    let r = v
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| format!("bench check: `check {}`: empty result", args.join(" ")))?;
    let num = |k: &str| r[k].as_u64().unwrap_or(0);
    Ok(Search {
        states: num("states"),
        transitions: num("transitions"),
        verdict: r["verdict"].as_str().unwrap_or("?").to_string(),
        limit: r["limit"].as_str().map(str::to_string),
        wall,
        // Linux reports ru_maxrss in KiB.
        peak_mib: ru.ru_maxrss as f64 / 1024.0,
    })
}

/// `k` thousands, `M` millions.
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else {
        format!("{:.0} k", x / 1e3)
    }
}

/// `bench check`: the table of the README's "Checker speed" section.
fn bench_check(
    depth: u32,
    cpus2_depth: u32,
    max_memory: u64,
    spin: Option<&std::path::Path>,
) -> Result<ExitCode, String> {
    // One search's arguments.
    let search = |d: &str, cpus: usize, depth: u32, threads: usize| -> Vec<String> {
        [
            "--design",
            d,
            "--cpus",
            &cpus.to_string(),
            "--depth",
            &depth.to_string(),
            "--threads",
            &threads.to_string(),
            "--max-memory",
            &max_memory.to_string(),
        ]
        .map(str::to_string)
        .into()
    };
    let one = |d: &str, threads: usize| search(d, 1, depth, threads);
    println!("one CPU, depth {depth}, every event: states/s on 1 thread and on 2 (wall, peak RSS)");
    println!(
        "  {:<20} {:>10} {:>11} {:>8}  {:>26}  {:>26}",
        "design", "states", "transitions", "verdict", "1 thread", "2 threads"
    );
    let mut total = [(0u64, 0f64); 2];
    for d in design::all() {
        let a = child_check(&one(d.name, 1))?;
        let b = child_check(&one(d.name, 2))?;
        if (a.states, a.transitions) != (b.states, b.transitions) {
            return Err(format!(
                "{}: 1 and 2 threads explored different spaces ({} vs {} states)",
                d.name, a.states, b.states
            ));
        }
        let cell = |s: &Search| {
            format!(
                "{}/s ({:.1} s, {:.0} MiB)",
                si(s.states as f64 / s.wall),
                s.wall,
                s.peak_mib
            )
        };
        println!(
            "  {:<20} {:>10} {:>11} {:>8}  {:>26}  {:>26}",
            d.name,
            a.states,
            a.transitions,
            a.verdict,
            cell(&a),
            cell(&b)
        );
        total[0].0 += a.states;
        total[0].1 += a.wall;
        total[1].0 += b.states;
        total[1].1 += b.wall;
    }
    println!(
        "  all designs: {}/s on 1 thread, {}/s on 2 (2 threads / 1: {:.2}x)",
        si(total[0].0 as f64 / total[0].1),
        si(total[1].0 as f64 / total[1].1),
        (total[1].0 as f64 / total[1].1) / (total[0].0 as f64 / total[0].1)
    );
    if cpus2_depth > 0 {
        println!("two CPUs, depth {cpus2_depth}, every event, 2 threads");
        let runs: &[(&str, bool)] = &[
            ("linux-4.3", false),
            ("weisbecker-2015", false),
            ("weisbecker-hoisted", false),
            ("lutomirski-2015", false),
            ("generic-entry", false),
            ("generic-entry", true),
        ];
        for &(d, ct_work) in runs {
            let mut args = search(d, 2, cpus2_depth, 2);
            if ct_work {
                args.push("--ct-work".into());
            }
            let s = child_check(&args)?;
            let label = if ct_work {
                format!("{d} --ct-work")
            } else {
                d.to_string()
            };
            println!(
                "  {:<28} {:>10} states {:>11} transitions  {:<10} {:>9}/s  {:>7.1} s  {:>7.0} MiB{}",
                label,
                s.states,
                s.transitions,
                s.verdict,
                si(s.states as f64 / s.wall),
                s.wall,
                s.peak_mib,
                s.limit.map(|l| format!("  stopped: {l}")).unwrap_or_default()
            );
        }
    }
    if let Some(pml) = spin {
        match spin_states_per_s(pml) {
            Ok((states, secs, line)) => println!(
                "SPIN on {}: {states} states in {secs:.2} s = {}/s ({line})",
                pml.display(),
                si(states as f64 / secs)
            ),
            Err(e) => println!("SPIN unavailable: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `spin -a FILE && cc -O2 -DSAFETY -o pan pan.c && ./pan`, in a scratch directory: the
/// states stored and pan's own elapsed time.
fn spin_states_per_s(pml: &std::path::Path) -> Result<(u64, f64, String), String> {
    let src = std::fs::read_to_string(pml).map_err(|e| format!("{}: {e}", pml.display()))?;
    let dir = std::env::temp_dir().join(format!("ctxtrack-spin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("model.pml"), src).map_err(|e| e.to_string())?;
    // `must_succeed`: pan exits non-zero when it finds an error, and its report is still the
    // figures.
    let run = |cmd: &str, args: &[&str], must_succeed: bool| -> Result<String, String> {
        let o = Command::new(cmd)
            .args(args)
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("{cmd}: {e}"))?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if must_succeed && !o.status.success() {
            return Err(format!(
                "{cmd} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(text)
    };
    let result = (|| {
        run("spin", &["-a", "model.pml"], true)?;
        run(
            "cc",
            &["-O2", "-DSAFETY", "-DMEMLIM=8192", "-o", "pan", "pan.c"],
            true,
        )?;
        let pan = dir.join("pan");
        let out = run(&pan.to_string_lossy(), &["-m100000"], false)?;
        let states = out
            .lines()
            .find(|l| l.contains("states, stored"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .ok_or("pan printed no `states, stored` line")? as u64;
        let secs = out
            .lines()
            .find_map(|l| l.split("elapsed time ").nth(1))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or("pan printed no elapsed time")?;
        let errors = out
            .lines()
            .find(|l| l.contains("errors:"))
            .unwrap_or("")
            .trim()
            .to_string();
        Ok((states, secs.max(1e-3), errors))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub(crate) fn run(cmd: &BenchCmd) -> Result<ExitCode, String> {
    match cmd {
        BenchCmd::Check {
            depth,
            cpus2_depth,
            max_memory,
            spin,
        } => bench_check(*depth, *cpus2_depth, *max_memory, spin.as_deref()),
        BenchCmd::Host { iters, rounds } => bench_host(*iters, *rounds),
        BenchCmd::Kernel { timeout } => crate::kernel::bench(*timeout),
        BenchCmd::Dat { file, repeat } => bench_dat(file.as_deref(), *repeat),
        BenchCmd::Replay { file, repeat } => {
            let (name, text) = replay_input(file.as_deref())?;
            let mut best = f64::MAX;
            let mut events = 0;
            for _ in 0..(*repeat).max(1) {
                let t = Instant::now();
                let r = ctxtrack_trace::replay_reader(
                    &name,
                    &text[..],
                    ctxtrack_trace::Options::default(),
                )
                .map_err(|e| e.to_string())?;
                best = best.min(t.elapsed().as_secs_f64());
                events = r.events;
            }
            let mb = text.len() as f64 / 1e6;
            println!(
                "replay of {name}: {mb:.1} MB, {events} events in {best:.3} s (best of {repeat}): {:.0} MB/s, {:.1} M events/s (target: >= 100 MB/s)",
                mb / best,
                events as f64 / best / 1e6
            );
            Ok(ExitCode::SUCCESS)
        }
        BenchCmd::Sim { repeat, no_monitor } => {
            let modes: &[bool] = if *no_monitor { &[true, false] } else { &[true] };
            let perf = (0..*repeat)
                .map(|_| time_perf())
                .collect::<Result<Vec<_>, _>>();
            for &mon in modes {
                let mut best = f64::MAX;
                let mut steps = 0;
                for _ in 0..*repeat {
                    let (w, s) = time_sim(mon);
                    best = best.min(w);
                    steps = s;
                }
                println!(
                    "simulation (messaging -g 10 -l 100, monitor {}): {steps} steps in {best:.3} s wall = {:.1} M steps/s",
                    if mon { "on" } else { "off" },
                    steps as f64 / best / 1e6
                );
                match &perf {
                    Ok(v) => {
                        let pw = v.iter().map(|x| x.0).fold(f64::MAX, f64::min);
                        println!(
                            "real perf bench sched messaging: {pw:.3} s wall ({})",
                            v[0].1
                        );
                        println!("ratio simulation / real: {:.2} (target <= 0.50)", best / pw);
                    }
                    Err(e) => println!("real benchmark unavailable: {e}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
