//! Malformed, truncated and reordered traces: a clear error or a warning with its line, never a
//! panic and never a silently wrong total.

use ctxtrack_trace::replay::{replay_reader, Options};

const GOOD: &str = "# tracer: nop
              dd-295     [003] d....     8.565020: user_enter: 
              dd-295     [003] d....     8.565038: user_exit: 
              dd-295     [003] .....     8.565040: sys_enter: NR 0 (0, 0, 0, 0, 0, 0)
              dd-295     [003] .....     8.565050: sys_exit: NR 0 = 1
              dd-295     [003] d....     8.565052: user_enter: 
";

fn run(s: &str) -> Result<ctxtrack_trace::Report, String> {
    replay_reader("t.txt", s.as_bytes(), Options::default()).map_err(|e| e.to_string())
}

#[test]
fn good_trace_replays() {
    let r = run(GOOD).unwrap();
    assert_eq!((r.events, r.violation_count), (5, 0));
    assert_eq!(r.tasks[0].user_ns, 18_000);
    assert_eq!(r.tasks[0].sys_ns, 14_000);
}

#[test]
fn malformed_line_names_file_and_line() {
    let bad = GOOD.replace("8.565040: sys_enter", "8.56x040: sys_enter");
    let e = run(&bad).unwrap_err();
    assert!(e.starts_with("t.txt:4: expected a timestamp"), "{e}");
}

#[test]
fn truncated_last_line_is_an_error() {
    let cut = &GOOD[..GOOD.len() - 30];
    let e = run(cut).unwrap_err();
    assert!(e.contains("t.txt:6") && e.contains("cut short"), "{e}");
}

#[test]
fn truncated_gzip_is_an_error() {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(GOOD.repeat(50).as_bytes()).unwrap();
    let v = z.finish().unwrap();
    let r = replay_reader("t.gz", &v[..], Options::default()).unwrap();
    assert_eq!(r.events, 250);
    let e = replay_reader("t.gz", &v[..v.len() / 2], Options::default()).unwrap_err();
    assert!(
        e.to_string().starts_with("t.gz:") && e.to_string().contains("truncated"),
        "{e}"
    );
}

#[test]
fn reordered_lines_warn_with_line_numbers() {
    let mut lines: Vec<&str> = GOOD.lines().collect();
    lines.swap(3, 4);
    let r = run(&(lines.join("\n") + "\n")).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.line == 5 && w.detail.contains("goes back")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn broken_alternation_is_a_violation_with_its_line() {
    let bad = GOOD.replace("8.565038: user_exit", "8.565038: user_enter");
    let r = run(&bad).unwrap();
    assert_eq!(r.violations[0].invariant, "ct_alternation");
    assert_eq!(r.violations[0].line, 3);
    let bad = GOOD.replace(
        "d....     8.565052: user_enter",
        ".....     8.565052: user_enter",
    );
    let r = run(&bad).unwrap();
    assert_eq!(
        (r.violations[0].invariant, r.violations[0].line),
        ("ct_event_irqs_on", 6)
    );
    let irq = GOOD.replace(
        "              dd-295     [003] d....     8.565038: user_exit: \n",
        "              dd-295     [003] d.h..     8.565038: local_timer_entry: vector=236\n              dd-295     [003] d.h..     8.565039: local_timer_exit: vector=236\n",
    );
    let r = run(&irq).unwrap();
    let inv: Vec<_> = r.violations.iter().map(|v| (v.invariant, v.line)).collect();
    assert!(
        inv.contains(&("entry_in_user", 3)) && inv.contains(&("syscall_in_user", 5)),
        "{inv:?}"
    );
}
