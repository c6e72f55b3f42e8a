//! The command line: JSON output, determinism, and clear errors for bad input.

use std::process::{Command, Output};

fn ctxtrack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctxtrack"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// A per-process scratch directory for files a test hands to the binary.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_messaging_json_has_the_documented_keys() {
    let o = ctxtrack(&["run", "messaging", "-g", "1", "-l", "5", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "design",
        "workload",
        "cpus",
        "nohz_full",
        "ct",
        "hz",
        "seed",
        "end",
        "sim_time_ns",
        "bench_time_ns",
        "steps",
        "messages_written",
        "messages_expected",
        "bytes_read",
        "totals",
        "per_cpu",
        "rcu",
        "rcu_ipis_to_nohz_full",
        "violations",
        "violation_reports",
    ] {
        assert!(v.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(v["workload"]["name"], "messaging");
    assert_eq!(v["workload"]["groups"], 1);
    assert_eq!(v["messages_written"], v["messages_expected"]);
    assert_eq!(v["per_cpu"].as_array().unwrap().len(), 8);
    assert_eq!(v["per_cpu"][1]["nohz_full"], true);
    assert!(v["per_cpu"][1]["ct_transitions"]["user_exit"]
        .as_u64()
        .is_some());
    assert_eq!(v["violations"], 0);
}

#[test]
fn run_text_looks_like_perf() {
    let o = ctxtrack(&["run", "messaging", "-g", "1", "-l", "5", "-p"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.starts_with("# Running 'sched/messaging' benchmark:\n# 20 sender and receiver processes per group\n# 1 groups == 40 processes run\n"));
    assert!(s.contains("     Total time: 0."));
    assert!(s.contains("invariants: OK"));
}

#[test]
fn same_seed_same_json() {
    let a = ctxtrack(&[
        "run",
        "messaging",
        "-g",
        "1",
        "-l",
        "10",
        "--json",
        "--seed",
        "3",
    ]);
    let b = ctxtrack(&[
        "run",
        "messaging",
        "-g",
        "1",
        "-l",
        "10",
        "--json",
        "--seed",
        "3",
    ]);
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn other_workloads_run() {
    for w in ["cpu-bound", "syscall-storm"] {
        let o = ctxtrack(&[
            "run",
            w,
            "--duration",
            "3ms",
            "--cpus",
            "4",
            "--nohz-full",
            "2-3",
        ]);
        assert!(o.status.success(), "{w}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("nohz_full=2-3"));
    }
}

#[test]
fn bad_options_are_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "messaging", "--cpus", "0"],
            "--cpus must be between 1 and 64",
        ),
        (
            &["run", "messaging", "--nohz-full", "1-9"],
            "CPU 9 does not exist",
        ),
        (&["run", "messaging", "--nohz-full", "0-3"], "CPU 0"),
        (
            &["run", "messaging", "--design", "nope"],
            "valid designs: linux-4.3, weisbecker-2015, weisbecker-hoisted, lutomirski-2015, generic-entry",
        ),
        (&["run", "cpu-bound", "--duration", "5"], "needs a unit"),
        (
            &["run", "messaging", "--ct", "maybe"],
            "possible values: on, off",
        ),
        (
            &["run", "messaging", "--cost-model", "/nonexistent.toml"],
            "--cost-model /nonexistent.toml",
        ),
        (&["run", "fizz"], "unrecognized subcommand"),
    ];
    for (args, want) in cases {
        let o = ctxtrack(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn cost_model_file_errors_name_the_key() {
    let dir = scratch_dir("ctxtrack-cli");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "call = 5\natomic_rmw = -1\n").unwrap();
    let o = ctxtrack(&[
        "run",
        "messaging",
        "-g",
        "1",
        "-l",
        "1",
        "--cost-model",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains(
            "bad.toml (line 2): key `atomic_rmw`: cost must be a non-negative integer, got -1"
        ),
        "{e}"
    );
    let good = dir.join("good.toml");
    std::fs::write(&good, "atomic_rmw = 200\n").unwrap();
    let base = ctxtrack(&["run", "syscall-storm", "--duration", "1ms", "--json"]);
    let o = ctxtrack(&[
        "run",
        "syscall-storm",
        "--duration",
        "1ms",
        "--json",
        "--cost-model",
        good.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a: serde_json::Value = serde_json::from_slice(&base.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cyc = |v: &serde_json::Value| v["totals"]["ct_cycles_per_syscall"].as_f64().unwrap();
    assert!(
        (cyc(&b) - cyc(&a) - 2.0 * 180.0).abs() < 1.0,
        "{} vs {}",
        cyc(&a),
        cyc(&b)
    );
}

#[test]
fn trace_file_is_written() {
    let dir = scratch_dir("ctxtrack-cli-trace");
    let f = dir.join("t.txt");
    let o = ctxtrack(&[
        "run",
        "syscall-storm",
        "--duration",
        "1ms",
        "--trace",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(t.starts_with("# tracer: nop"));
    assert!(t.contains(": user_exit: \n"));
    let o = ctxtrack(&[
        "run",
        "syscall-storm",
        "--duration",
        "1ms",
        "--trace",
        "/nonexistent/dir/t.txt",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--trace /nonexistent/dir/t.txt"));
}

#[test]
fn designs_are_listed() {
    let o = ctxtrack(&["designs"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("generic-entry"));
}

#[test]
fn compare_rejects_bad_design_names_listing_the_valid_ones() {
    let o = ctxtrack(&["compare", "--designs", "linux-4.3,nope"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("--designs: unknown design \"nope\"; valid designs: linux-4.3, weisbecker-2015, weisbecker-hoisted, lutomirski-2015, generic-entry"), "{e}");
}

#[test]
fn compare_prints_json_and_writes_svg() {
    let dir = scratch_dir("ctxtrack-cli-cmp");
    let svg = dir.join("c.svg");
    let o = ctxtrack(&[
        "compare",
        "--designs",
        "linux-4.3,generic-entry",
        "--stress-seeds",
        "0",
        "--json",
        "--svg",
        svg.to_str().unwrap(),
        "messaging",
        "-g",
        "1",
        "-l",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stderr.is_empty(),
        "no progress output when stderr is not a TTY"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 4);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg") && s.contains("CT cycles per IRQ") && s.contains("generic-entry")
    );
}

#[test]
fn check_exit_codes_and_json() {
    // generic-entry holds: exit 0.
    let o = ctxtrack(&[
        "check",
        "--design",
        "generic-entry",
        "--depth",
        "2",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v[0];
    assert_eq!(r["design"], "generic-entry");
    assert_eq!(r["verdict"], "ok");
    assert!(r["states"].as_u64().unwrap() > 1000);
    assert_eq!(r["violations"].as_array().unwrap().len(), 0);
    // linux-4.3 does not: exit 1, with numbered trace lines in the text form.
    let o = ctxtrack(&[
        "check",
        "--design",
        "linux-4.3",
        "--depth",
        "1",
        "--events",
        "irq",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("VIOLATED"), "{text}");
    assert!(text.contains("ct_kernel_with_irqs_on"), "{text}");
    assert!(
        text.contains("@ entry_SYSCALL_64_43: syscall_trace_enter_phase1"),
        "{text}"
    );
}

#[test]
fn check_writes_counterexamples_as_ftrace_text() {
    let dir = scratch_dir("ctxtrack-check-trace");
    let o = ctxtrack(&[
        "check",
        "--design",
        "linux-4.3",
        "--depth",
        "1",
        "--events",
        "none",
        "--trace-out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    let t = std::fs::read_to_string(&files[0]).unwrap();
    assert!(t.starts_with("# tracer: nop"), "{t}");
    assert!(t.contains("user_exit"), "{t}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_rejects_bad_options_clearly() {
    let o = ctxtrack(&["check", "--events", "irq,bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown event \"bogus\""),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("irq, nmi, exc, fault, preempt, signal"));
    let o = ctxtrack(&["check", "--cpus", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--cpus 3"), "{}", stderr(&o));
    let o = ctxtrack(&["check", "--softirq", "--softirq-restarts", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--softirq-restarts must be at least 1"),
        "{}",
        stderr(&o)
    );
    let o = ctxtrack(&["check", "--softirq-restarts", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--softirq"), "{}", stderr(&o));
    let o = ctxtrack(&["check", "--design", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("generic-entry"), "{}", stderr(&o));
    // A limit is reported, never a silent "ok".
    let o = ctxtrack(&["check", "--design", "generic-entry", "--max-states", "100"]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("INCOMPLETE"), "{text}");
    assert!(text.contains("--max-states 100"), "{text}");
}

fn repo_trace(name: &str) -> String {
    format!(
        "{}/../../traces/linux-6.1/{name}.trace.txt.gz",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn replay_of_a_real_trace_reports_tree_time_and_shapes() {
    let f = repo_trace("nohz-messaging-pipe-cpu1");
    let o = ctxtrack(&["replay", &f, "--tree", "206", "--shapes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("verdict: OK"), "{out}");
    assert!(out.contains("task 206 and its descendants"), "{out}");
    assert!(
        out.contains("user_exit → sys_enter → sys_exit → user_enter"),
        "{out}"
    );
    let o = ctxtrack(&["replay", &f, "--json", "--tree", "206"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["violation_count"], 0);
    assert!(v["tree"]["stime_ns"].as_u64().unwrap() > 300_000_000);
}

#[test]
fn replay_reads_standard_input_and_round_trips_our_own_trace() {
    let dir = scratch_dir("replay-stdin");
    let t = dir.join("t.txt");
    let o = ctxtrack(&[
        "run",
        "messaging",
        "-g",
        "1",
        "-l",
        "3",
        "--trace",
        t.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read(&t).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ctxtrack"))
        .args(["replay", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let lines = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count();
    assert_eq!(v["events"].as_u64().unwrap() as usize, lines);
}

#[test]
fn replay_errors_name_file_and_line() {
    let dir = scratch_dir("replay-bad");
    let p = dir.join("bad.txt");
    std::fs::write(
        &p,
        "# tracer: nop\n  a-1 [000] ..... 1.000001: user_exit: \nnot a trace line\n",
    )
    .unwrap();
    let o = ctxtrack(&["replay", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("bad.txt:3: expected `comm-pid [cpu]`"), "{e}");
    let o = ctxtrack(&["replay", "/nonexistent/trace.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/trace.txt"));
}

fn workload(name: &str) -> String {
    format!(
        "{}/../../traces/linux-6.1/workloads/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `noise` on a real capture: the TLB-shootdown IPIs a thread on CPU 0 sends to a spinner on
/// nohz_full CPU 3 are named, counted as CT_WORK-deferrable, charted and marked for Perfetto.
#[test]
fn noise_names_the_ipis_that_hit_an_isolated_cpu() {
    let dir = scratch_dir("noise");
    let svg = dir.join("n.svg");
    let json = dir.join("n.json");
    let f = workload("nohz-tlb-ipis-cpu3.trace.txt.gz");
    let o = ctxtrack(&[
        "noise",
        &f,
        "--svg",
        svg.to_str().unwrap(),
        "--chrome-trace",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("CPU 3 (nohz_full)"), "{out}");
    assert!(out.contains("IPI call_function"), "{out}");
    assert!(out.contains("CT_WORK:"), "{out}");
    assert!(out.contains("longest:"), "{out}");
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg") && s.contains("CPU 3"),
        "{}",
        &s[..s.len().min(200)]
    );
    let stats = ctxtrack_trace::chrome::validate(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        stats
            .names
            .iter()
            .any(|n| n.starts_with("IPI call_function")),
        "{stats:?}"
    );
    let o = ctxtrack(&["noise", &f, "--json", "--cpus", "0,3"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cpus = v["cpus"].as_array().unwrap();
    assert_eq!(cpus.len(), 2);
    let c3 = cpus.iter().find(|c| c["cpu"] == 3).unwrap();
    assert!(c3["ct_work_deferrable"].as_u64().unwrap() > 20, "{c3}");
}

/// `replay` and `noise` read trace.dat; a broken one is an error naming the byte offset.
#[test]
fn trace_dat_in_and_errors_with_offsets() {
    let f = workload("nohz-tlb-ipis-cpu3.v7.dat");
    let o = ctxtrack(&["replay", &f, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["events"].as_u64().unwrap() > 2000);
    let o = ctxtrack(&["noise", &f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = scratch_dir("dat-bad");
    let bytes = std::fs::read(&f).unwrap();
    let p = dir.join("cut.dat");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let o = ctxtrack(&["replay", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("cut.dat") && e.contains("byte "), "{e}");
}

/// `bench host` prints every loop and the goal ratios (a benchmark: nothing here asserts a speed),
/// and rejects options it cannot use.
#[test]
fn bench_host_prints_ratios() {
    let o = ctxtrack(&["bench", "host", "--iters", "2000", "--rounds", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "P1 round trip / floor",
        "P2 getppid: static key off / uninstrumented",
        "P2 getppid: atomic bool off / uninstrumented",
        "irq enter+exit from user",
        "nmi enter+exit from user",
        "idle enter+exit",
        "goal <= 1.30",
        "goal <= 1.02",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let o = ctxtrack(&["bench", "host", "--iters", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--iters"), "{}", stderr(&o));
}

#[test]
fn kernel_rejects_bad_options_and_says_how_to_get_qemu() {
    for (args, want) in [
        (&["kernel", "--smp", "9"][..], "--smp 9: expected 1 to 8"),
        (
            &["kernel", "--nohz-full", "0-1"][..],
            "CPU 0 is the housekeeping CPU",
        ),
        (&["kernel", "--nohz-full", "x"][..], "--nohz-full"),
        (
            &["kernel", "pingpong"][..],
            "expected one of messaging, syscalls, busy",
        ),
    ] {
        let o = ctxtrack(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // No QEMU on PATH: a clear error with the install command, not a panic.
    let o = Command::new(env!("CARGO_BIN_EXE_ctxtrack"))
        .args(["kernel", "--smp", "2"])
        .env("PATH", scratch_dir("no-qemu"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("apt-get install -y qemu-system-x86"),
        "{}",
        stderr(&o)
    );
}

/// Boots the real kernel under QEMU: per-CPU summary, replay verdict. Needs QEMU and the
/// x86_64-unknown-none target, which `scripts/test-all.sh` installs before it runs the ignored tests.
#[test]
#[ignore = "needs QEMU and x86_64-unknown-none: run by scripts/test-all.sh"]
fn kernel_boots_runs_syscalls_and_replays_its_trace() {
    let o = ctxtrack(&["kernel", "--smp", "2", "syscalls", "--loops", "1"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}\n{out}", stderr(&o));
    assert!(out.contains("2 CPUs"), "{out}");
    // CPU 1 (nohz_full): 1000 getpid + exit, each one user_exit; its summary row says so.
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("1  nohz_full"))
        .unwrap_or_else(|| panic!("no CPU 1 row in:\n{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "1001", "user_exit of CPU 1 in {row}");
    assert!(out.contains("verdict: OK"), "{out}");
}

/// The instruction-count benchmark boots both kernels (ct=off, ct=on) and finds that context
/// tracking adds instructions to both paths (deterministic under -icount). Needs QEMU.
#[test]
#[ignore = "needs QEMU and x86_64-unknown-none: run by scripts/test-all.sh"]
fn bench_kernel_prints_added_instructions() {
    let o = ctxtrack(&["bench", "kernel"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}\n{out}", stderr(&o));
    let row = |name: &str| -> Vec<f64> {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{out}"))
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect()
    };
    let (off, on, added) = (row("off"), row("on"), row("added"));
    for i in 0..2 {
        assert!(off[i] > 0.0 && on[i] > off[i], "{out}");
        assert!((added[i] - (on[i] - off[i])).abs() < 0.01, "{out}");
    }
}

/// A swarm from the command line, as a batch engine would run it: two workers write their
/// files, `check merge` gives one verdict (exit 1: a violation; the text never says ok), and a
/// missing or foreign file is named.
#[test]
fn check_swarm_workers_and_merge() {
    let dir = scratch_dir("ctxtrack-swarm");
    // Worker `i` of two with a 2^bits bit array, its file in `name`.
    let worker = |i: u32, bits: u32, name: &str| {
        let out = dir.join(name);
        let o = ctxtrack(&[
            "check",
            "--design",
            "weisbecker-2015",
            "--depth",
            "1",
            "--swarm",
            "2",
            "--worker",
            &i.to_string(),
            "--swarm-bits",
            &bits.to_string(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let (a, b) = (worker(0, 20, "w0.json"), worker(1, 20, "w1.json"));
    // Another process gives the same file, even with a bit array small enough that where each
    // state's bits fall decides what is explored (nothing may depend on where the designs
    // landed in memory).
    let tiny = |name: &str| std::fs::read(worker(1, 11, name)).unwrap();
    assert_eq!(tiny("t1.json"), tiny("t2.json"));
    let o = ctxtrack(&["check", "merge", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("VIOLATION ct_kernel_with_irqs_on"), "{text}");
    assert!(text.contains("not exhaustive"), "{text}");
    let o = ctxtrack(&["check", "merge", a.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["missing"], serde_json::json!([1]));
    assert_eq!(v["exhaustive"], false);
    // A file that is not a result, and an out-of-range worker, are errors naming them.
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{\"format\": 3}\n").unwrap();
    let o = ctxtrack(&["check", "merge", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("junk.json: line 1: not a swarm result file"),
        "{}",
        stderr(&o)
    );
    let o = ctxtrack(&[
        "check",
        "--design",
        "generic-entry",
        "--swarm",
        "2",
        "--worker",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--worker 2 is out of range"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `bench check` runs every shipped design as child searches on one thread and on two and
/// refuses to print a row whose spaces differ (the result must not depend on the thread count);
/// a small configuration is quick enough for a test. `check --threads 0` is an error.
#[test]
fn bench_check_measures_every_design_on_one_and_two_threads() {
    let o = ctxtrack(&[
        "bench",
        "check",
        "--depth",
        "1",
        "--cpus2-depth",
        "0",
        "--max-memory",
        "512",
        "--spin",
        "/nonexistent/model.pml",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}\n{out}", stderr(&o));
    for d in ctxtrack_sim::design::all() {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", d.name)))
            .unwrap_or_else(|| panic!("no {} row in:\n{out}", d.name));
        let states: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(states > 1_000, "{row}");
        assert_eq!(
            row.matches("/s (").count(),
            2,
            "a figure per thread count: {row}"
        );
    }
    assert!(out.contains("all designs: "), "{out}");
    // A missing model is reported, not fatal (SPIN is optional).
    assert!(
        out.contains("SPIN unavailable: /nonexistent/model.pml"),
        "{out}"
    );

    let o = ctxtrack(&[
        "check",
        "--design",
        "generic-entry",
        "--depth",
        "1",
        "--threads",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--threads must be at least 1"),
        "{}",
        stderr(&o)
    );
}
