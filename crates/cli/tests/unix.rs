//! The command line as a Unix tool: a closed stdout, progress on stderr only, bounded runs.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ctxtrack"));
    c.env_remove("CTXTRACK_PROGRESS");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn trace_file() -> String {
    format!(
        "{}/../../traces/linux-6.1/nohz-busyloop-cpu2.trace.txt.gz",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Every subcommand whose stdout is a pipe already closed by its reader (`| head -c0`) ends
/// quietly: killed by SIGPIPE as `cat` is (status 141 in a shell), nothing on stderr, no panic.
#[test]
fn closed_stdout_ends_quietly_with_sigpipe() {
    let trace = trace_file();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "messaging", "-g", "1", "-l", "2", "--json"],
        vec!["run", "messaging", "-g", "1", "-l", "2"],
        vec![
            "compare",
            "--quiet",
            "--stress-seeds",
            "0",
            "--designs",
            "generic-entry",
            "messaging",
            "-g",
            "1",
            "-l",
            "2",
        ],
        vec![
            "check",
            "--design",
            "generic-entry",
            "--depth",
            "1",
            "--quiet",
        ],
        vec!["replay", &trace],
        vec!["designs"],
        vec!["--help"],
    ];
    for args in cases {
        // The read end is closed before the child starts: its first write meets EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = bin()
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(libc_sigpipe()),
            "{args:?}: {:?} {}",
            o.status,
            stderr(&o)
        );
        assert!(
            o.stderr.is_empty(),
            "{args:?} wrote to stderr: {}",
            stderr(&o)
        );
    }
}

/// SIGPIPE's number on Linux (and every Unix this runs on).
fn libc_sigpipe() -> i32 {
    13
}

/// Progress goes to stderr only: forced on (`CTXTRACK_PROGRESS=always`) it shows the simulated
/// time, and stdout is byte-identical to a `--quiet` run's; off a terminal nothing is drawn.
#[test]
fn progress_is_on_stderr_only_and_never_changes_stdout() {
    let args = ["run", "messaging", "-g", "2", "-l", "20", "--json"];
    let quiet = bin().args(args).arg("--quiet").output().unwrap();
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    let forced = bin()
        .args(args)
        .env("CTXTRACK_PROGRESS", "always")
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert_eq!(quiet.stdout, forced.stdout, "progress changed stdout");
    assert!(
        stderr(&forced).contains("simulated"),
        "no progress: {:?}",
        stderr(&forced)
    );
    // --quiet wins over the environment; stderr not a terminal means no progress by default.
    let both = bin()
        .args(args)
        .arg("--quiet")
        .env("CTXTRACK_PROGRESS", "always")
        .output()
        .unwrap();
    assert!(both.stderr.is_empty(), "{}", stderr(&both));
    let plain = bin().args(args).output().unwrap();
    assert!(plain.stderr.is_empty(), "{}", stderr(&plain));
    assert_eq!(plain.stdout, quiet.stdout);
    // Replay and compare draw too when forced, and leave stdout alone.
    let trace = trace_file();
    let r1 = bin().args(["replay", &trace, "--quiet"]).output().unwrap();
    let r2 = bin()
        .args(["replay", &trace])
        .env("CTXTRACK_PROGRESS", "always")
        .output()
        .unwrap();
    assert_eq!(r1.stdout, r2.stdout);
    assert!(!r2.stderr.is_empty(), "replay drew no progress");
    let c = [
        "compare",
        "--stress-seeds",
        "0",
        "--designs",
        "generic-entry",
        "messaging",
        "-g",
        "1",
        "-l",
        "5",
    ];
    let c1 = bin().args(c).arg("--quiet").output().unwrap();
    let c2 = bin()
        .args(c)
        .env("CTXTRACK_PROGRESS", "always")
        .output()
        .unwrap();
    assert_eq!(c1.stdout, c2.stdout);
    assert!(stderr(&c2).contains("generic-entry"), "{}", stderr(&c2));
}

/// A workload over a limit is refused before any work, with the figure it would need and the
/// option to raise; under the limit the same workload runs.
#[test]
fn oversized_workloads_are_refused_up_front_with_what_they_need() {
    let o = bin()
        .args(["run", "messaging", "-g", "100000"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let e = stderr(&o);
    assert!(
        e.contains("needs 4000009 tasks") && e.contains("--max-tasks 32768"),
        "{e}"
    );
    let o = bin()
        .args(["run", "messaging", "-g", "300", "--max-memory", "10"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("MiB to simulate") && e.contains("--max-memory 10 MiB"),
        "{e}"
    );
    // compare refuses the same way.
    let o = bin()
        .args(["compare", "messaging", "-g", "20", "--max-tasks", "100"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs 809 tasks"), "{}", stderr(&o));
    // Bad limits are option errors.
    for (a, want) in [
        ("--max-memory", "at least 1 MiB"),
        ("--max-tasks", "must be positive"),
    ] {
        let o = bin().args(["run", "messaging", a, "0"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
    let o = bin()
        .args([
            "run",
            "messaging",
            "-g",
            "2",
            "-l",
            "1",
            "--max-tasks",
            "89",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}
