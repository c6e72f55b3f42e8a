//! `ctxtrack kernel` and `ctxtrack bench kernel`: build the bare-metal kernel (`kernel/`), boot
//! it under QEMU TCG, print its log and per-CPU summary, and replay the trace it dumps with the
//! same code that checks real Linux traces.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::progress::Progress;

/// The workloads of the general kernel image (`kernel/src/main.rs`).
pub(crate) const WORKLOADS: [&str; 3] = ["messaging", "syscalls", "busy"];

/// Options of `ctxtrack kernel`.
pub(crate) struct Args<'a> {
    pub smp: usize,
    pub nohz_full: Option<&'a str>,
    pub ct: bool,
    pub workload: &'a str,
    pub loops: Option<u64>,
    pub icount: bool,
    pub trace_out: Option<&'a Path>,
    pub timeout_s: u64,
    pub quiet: bool,
}

/// Waits for `child`, showing `what` on the progress line; kills it after `timeout_s` seconds
/// (`None`: no limit).
fn wait_for(
    child: &mut std::process::Child,
    pb: &Progress,
    what: &str,
    timeout_s: Option<u64>,
) -> Result<std::process::ExitStatus, String> {
    let deadline = timeout_s.map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(st);
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{what}: did not finish within {} s (--timeout)",
                timeout_s.unwrap_or(0)
            ));
        }
        pb.update(|b| b.set_message(what.to_string()));
        // Polling a child process (no portable wait-with-timeout in std).
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kernel_dir() -> PathBuf {
    std::env::var_os("CTXTRACK_KERNEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernel"))
}

/// Fails with how to install QEMU when it is missing.
fn require_qemu() -> Result<(), String> {
    match Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
            "qemu-system-x86_64 not found: install QEMU with `apt-get install -y qemu-system-x86` (Debian/Ubuntu) and retry".into(),
        ),
        Err(e) => Err(format!("cannot run qemu-system-x86_64: {e}")),
    }
}

/// Builds the general image; `instrument` off for the instruction-count benchmark.
fn build(instrument: bool, pb: &Progress) -> Result<PathBuf, String> {
    build_with(instrument, false, pb)
}

/// [`build`], optionally with the `ct-work` feature (a benchmark image whose state word has the
/// CT_WORK field at build time), into its own target directory.
fn build_with(instrument: bool, ct_work: bool, pb: &Progress) -> Result<PathBuf, String> {
    let dir = kernel_dir();
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!(
            "{}: the kernel sources are not there (set CTXTRACK_KERNEL_DIR to the repository's kernel/ folder)",
            manifest.display()
        ));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&dir)
        .args(["build", "--release", "-q", "--bin", "ctxtrack-kernel"]);
    if !instrument {
        cmd.arg("--no-default-features");
    }
    let target = if ct_work {
        cmd.args(["--features", "ct-work"]);
        dir.join("target/ct-work")
    } else {
        dir.join("target")
    };
    cmd.env("CARGO_TARGET_DIR", &target);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo to build the kernel: {e}"))?;
    let st = wait_for(&mut child, pb, "building the kernel (cargo build)", None)?;
    if !st.success() {
        return Err("building the kernel failed (is the target installed? `rustup target add x86_64-unknown-none`)".into());
    }
    Ok(target.join("x86_64-unknown-none/release/ctxtrack-kernel"))
}

/// What a boot printed, split into the log and the ftrace text.
struct Boot {
    log: String,
    trace: String,
}

fn boot(
    image: &Path,
    smp: usize,
    cmdline: &str,
    icount: bool,
    timeout_s: u64,
    pb: &Progress,
) -> Result<Boot, String> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        "tcg",
        "-m",
        "256",
        "-display",
        "none",
        "-no-reboot",
    ])
    .args(["-smp", &smp.to_string(), "-serial", "stdio"])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .arg("-kernel")
    .arg(image)
    .args(["-append", cmdline])
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    if icount {
        cmd.args(["-icount", "shift=0"]);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let what = format!("booting the kernel under QEMU ({cmdline})");
    let status = wait_for(&mut child, pb, &what, Some(timeout_s))?;
    let text = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let (mut log, mut trace, mut in_trace) = (String::new(), String::new(), false);
    for l in text.lines() {
        if l.starts_with("# tracer:") {
            in_trace = true;
        }
        if in_trace {
            trace.push_str(l);
            trace.push('\n');
        } else {
            log.push_str(l);
            log.push('\n');
        }
        if l.starts_with("# end of trace") {
            in_trace = false;
        }
    }
    // isa-debug-exit: (code << 1) | 1; the kernel writes 0x10 on success, 0x11 on panic.
    match status.code() {
        Some(33) => Ok(Boot { log, trace }),
        Some(35) => Err(format!("{log}the kernel panicked (message above)")),
        c => Err(format!(
            "{log}QEMU exited with {c:?} (not through the kernel's exit device)"
        )),
    }
}

/// `ctxtrack kernel`.
pub(crate) fn run(a: Args<'_>) -> Result<ExitCode, String> {
    if !(1..=8).contains(&a.smp) {
        return Err(format!("--smp {}: expected 1 to 8 CPUs", a.smp));
    }
    if !WORKLOADS.contains(&a.workload) {
        return Err(format!(
            "workload {:?}: expected one of {}",
            a.workload,
            WORKLOADS.join(", ")
        ));
    }
    let nohz = match a.nohz_full {
        Some(l) => {
            let set =
                ctxtrack_sim::CpuSet::parse(l, a.smp).map_err(|e| format!("--nohz-full: {e}"))?;
            if set.contains(0) {
                return Err("--nohz-full: CPU 0 is the housekeeping CPU (timekeeping, RCU grace periods); list CPUs from 1".into());
            }
            set.to_string()
        }
        None if a.smp > 1 => format!("1-{}", a.smp - 1).replace("1-1", "1"),
        None => String::new(),
    };
    require_qemu()?;
    let pb = Progress::spinner(a.quiet);
    let image = build(true, &pb)?;
    let mut cmdline = format!(
        "ct={} workload={}",
        if a.ct { "on" } else { "off" },
        a.workload
    );
    if !nohz.is_empty() {
        cmdline = format!("nohz_full={nohz} {cmdline}");
    }
    if let Some(l) = a.loops {
        cmdline.push_str(&format!(" loops={l}"));
    }
    println!(
        "qemu-system-x86_64 -smp {} -kernel {} -append \"{cmdline}\"",
        a.smp,
        image.display()
    );
    let b = boot(&image, a.smp, &cmdline, a.icount, a.timeout_s, &pb);
    pb.finish();
    let b = b?;
    print!("{}", b.log);
    if b.trace.is_empty() {
        return Err("the kernel dumped no trace".into());
    }
    let tmp;
    let path = match a.trace_out {
        Some(p) => p,
        None => {
            tmp =
                std::env::temp_dir().join(format!("ctxtrack-kernel-{}.trace", std::process::id()));
            &tmp
        }
    };
    std::fs::write(path, &b.trace).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("\nreplay of the kernel's trace ({}):", path.display());
    let r = crate::replay::run(crate::replay::Args {
        file: path,
        json: false,
        shapes: false,
        nohz_full: (!nohz.is_empty() && a.ct).then_some(nohz.as_str()),
        hz: 1000,
        tree: None,
        chrome: None,
        quiet: a.quiet,
    });
    if a.trace_out.is_none() {
        let _ = std::fs::remove_file(path);
    }
    r
}

fn field(log: &str, key: &str) -> Option<f64> {
    log.lines()
        .filter(|l| l.starts_with("bench:"))
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(key)))
        .and_then(|v| v.parse().ok())
}

/// `ctxtrack bench kernel`: the instructions context tracking adds to a syscall round trip and an
/// IRQ from user, ct=off vs ct=on on the same kernel, under `-icount shift=0`.
pub(crate) fn bench(timeout_s: u64) -> Result<ExitCode, String> {
    require_qemu()?;
    let pb = Progress::spinner(false);
    let image = build(false, &pb)?;
    let work_image = build_with(false, true, &pb)?;
    let mut rows = Vec::new();
    let mut flush = (0.0, 0.0);
    for (name, args, image) in [
        ("off", "ct=off", &image),
        ("on", "ct=on", &image),
        ("on+work", "ct=on ct_work=on", &work_image),
    ] {
        let cmdline = format!("nohz_full=1 {args} workload=bench");
        let b = boot(image, 2, &cmdline, true, timeout_s, &pb)?;
        let rt = field(&b.log, "syscall_round_trip=").ok_or("the kernel printed no bench line")?;
        let irq = field(&b.log, "irq_from_user=").ok_or("the kernel printed no bench line")?;
        if name == "on+work" {
            let single = field(&b.log, "syscall_single=").ok_or("no syscall_single figure")?;
            let flushing =
                field(&b.log, "flushing_syscall=").ok_or("no flushing_syscall figure")?;
            flush = (single, flushing);
        }
        rows.push((name, rt, irq));
    }
    pb.finish();
    println!("instructions (QEMU TCG -icount shift=0, rdtsc in ring 3), kernel built without counters, tracing or debug checks:");
    println!(
        "{:<8} {:>20} {:>16}",
        "ct", "syscall round trip", "IRQ from user"
    );
    for (ct, rt, irq) in &rows {
        println!("{ct:<8} {rt:>20.2} {irq:>16.0}");
    }
    println!(
        "{:<8} {:>20.2} {:>16.0}",
        "added",
        rows[1].1 - rows[0].1,
        rows[1].2 - rows[0].2
    );
    println!(
        "{:<8} {:>20.2} {:>16.0}   (a kernel built with the CT_WORK field, no work pending, over ct=on)",
        "work",
        rows[2].1 - rows[1].1,
        rows[2].2 - rows[1].2
    );
    println!(
        "a syscall whose entry flushes a deferred sync_core(): {:.0} instructions vs {:.0} alone (+{:.0}; one syscall timed, minimum of 20)",
        flush.1,
        flush.0,
        flush.1 - flush.0
    );
    println!("Linux 6.1 nohz_full vs off under the same QEMU settings: bash kernel/bench-linux.sh");
    Ok(ExitCode::SUCCESS)
}
