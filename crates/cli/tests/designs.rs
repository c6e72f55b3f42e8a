//! Design files on the command line: list, show, lint, and --design-file on run, compare, check.

use std::process::{Command, Output};

fn ctxtrack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctxtrack"))
        .args(args)
        .env_remove("CTXTRACK_PROGRESS")
        .output()
        .expect("binary runs")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scratch(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ctxtrack-designs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn show_prints_a_shipped_file_that_lints_and_runs_like_the_shipped_design() {
    let o = ctxtrack(&["design", "show", "generic-entry"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("#design  \"generic-entry\""));
    // The copy loads (its include is found among the shipped files) and runs the same.
    let copy = scratch("copy.c", &out(&o));
    let lint = ctxtrack(&["design", "lint", &copy]);
    assert!(lint.status.success(), "{}", err(&lint));
    assert!(
        out(&lint).contains("design \"generic-entry\" loads"),
        "{}",
        out(&lint)
    );
    let a = ctxtrack(&["run", "messaging", "-g", "2", "-l", "10", "--json"]);
    let b = ctxtrack(&[
        "run",
        "messaging",
        "-g",
        "2",
        "-l",
        "10",
        "--json",
        "--design-file",
        &copy,
    ]);
    assert!(a.status.success() && b.status.success(), "{}", err(&b));
    assert_eq!(a.stdout, b.stdout);
    let o = ctxtrack(&["design", "show", "generic-entri"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("did you mean `generic-entry.c`"),
        "{}",
        err(&o)
    );
}

#[test]
fn designs_lists_one_line_each_and_prims_lists_the_table() {
    let o = ctxtrack(&["designs"]);
    assert!(o.status.success());
    let lines: Vec<String> = out(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("generic-entry ")));
    let o = ctxtrack(&["design", "prims"]);
    assert!(
        out(&o).contains("user_exit_irqoff()") && out(&o).contains("Noinstr"),
        "{}",
        out(&o)
    );
}

#[test]
fn bad_design_files_exit_2_with_file_line_col() {
    let text = String::from_utf8(ctxtrack(&["design", "show", "generic-entry"]).stdout).unwrap();
    let text = text.replacen("\tsysretq();", "\tsysretqq();", 1);
    let line = text.lines().position(|l| l == "\tsysretqq();").unwrap() + 1;
    let bad = scratch("bad.c", &text);
    for args in [
        vec!["design", "lint", bad.as_str()],
        vec!["run", "messaging", "--design-file", bad.as_str()],
        vec!["check", "--design-file", bad.as_str()],
        vec!["compare", "--design-file", bad.as_str()],
    ] {
        let o = ctxtrack(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = err(&o);
        let want = format!(
            "bad.c:{line}:2: unknown function or primitive `sysretqq` (did you mean `sysretq`?)"
        );
        assert!(e.contains(&want), "{args:?}: {e}");
        assert!(e.contains(&format!("{line:>5} |  sysretqq();")), "{e}");
        assert!(o.stdout.is_empty(), "{args:?} printed before failing");
    }
    let o = ctxtrack(&["design", "lint", "/nonexistent/x.c"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("cannot read"), "{}", err(&o));
}

#[test]
fn check_and_compare_take_design_files() {
    let text = ctxtrack(&["design", "show", "generic-entry"]).stdout;
    let f = scratch(
        "ge.c",
        &String::from_utf8(text)
            .unwrap()
            .replace("\"generic-entry\"", "\"my-entry\""),
    );
    let o = ctxtrack(&["check", "--design-file", &f, "--depth", "1", "--quiet"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).starts_with("my-entry: OK"), "{}", out(&o));
    let o = ctxtrack(&[
        "compare",
        "--design-file",
        &f,
        "--stress-seeds",
        "0",
        "--quiet",
        "--json",
        "messaging",
        "-g",
        "1",
        "-l",
        "5",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["design"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["my-entry", "my-entry"]);
    let o = ctxtrack(&["run", "messaging", "--design-file", &f, "--design-file", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("a run takes one design"), "{}", err(&o));
}
