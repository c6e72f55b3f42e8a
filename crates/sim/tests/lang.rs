//! Design files: the shipped files load, each gives exactly what the Rust design it replaced
//! gave (run JSON, per-path counts, the whole comparison with stress runs, recorded), and bad
//! files are refused with their place.

use ctxtrack_sim::compare::{compare, Options};
use ctxtrack_sim::design::{self, lang, Design};
use ctxtrack_sim::probe::{run_probe, Probe};
use ctxtrack_sim::{run, Config, TraceOutputs, Workload};

fn file_design(file: &str) -> &'static Design {
    lang::load_shipped(file).unwrap_or_else(|e| panic!("{e}"))
}

fn report_json(d: &'static Design, w: &Workload, ct_on: bool, preempt: bool) -> String {
    let mut c = Config::new(d);
    c.ct_on = ct_on;
    c.preempt = preempt;
    c.irq_period_ns = Some(50_000);
    c.nmi_period_ns = Some(300_000);
    c.stop_on_violation = false;
    // Endless workloads end at 20 ms, as `--duration` would end them.
    c.duration_ns = (!w.finite()).then_some(20_000_000);
    let (r, _) = run(c, w, TraceOutputs::none());
    let mut v = serde_json::to_value(&r).unwrap();
    strip_names(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

/// What a design gives, as (what, stripped JSON): run reports with device IRQs, NMIs, CT off
/// and on, preemption off and on, three workloads; each path alone; the whole comparison with
/// its stress runs. Step and path names are stripped (a file names its steps after its
/// statements).
fn observations(d: &'static Design) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // perf's default messaging runs in full in the comparison below; here a quarter of it
    // under each combination of options.
    for w in [
        Workload::Messaging {
            groups: 5,
            loops: 50,
            pipe: false,
            thread: false,
        },
        Workload::Messaging {
            groups: 2,
            loops: 20,
            pipe: true,
            thread: true,
        },
        Workload::SyscallStorm {
            user_ns: 300,
            urn_every: 3,
            per_cpu: 2,
        },
    ] {
        for ct_on in [false, true] {
            for preempt in [false, true] {
                out.push((
                    format!("run {w:?} ct_on={ct_on} preempt={preempt}"),
                    report_json(d, &w, ct_on, preempt),
                ));
            }
        }
    }
    for p in Probe::ALL {
        for ct_on in [false, true] {
            let counts = run_probe(d, p, ct_on).map_err(|e| e.to_string());
            out.push((
                format!("probe {p:?} ct_on={ct_on}"),
                serde_json::to_string(&counts.map_err(|e| e.to_string())).unwrap(),
            ));
        }
    }
    let opts = Options {
        stress_seeds: 3,
        ..Options::default()
    };
    let c = compare(
        &Config::new(d),
        &Workload::messaging_default(),
        &[d],
        &opts,
        |_, _, _| {},
    );
    let mut v = serde_json::to_value(&c).unwrap();
    strip_names(&mut v);
    out.push(("compare".into(), serde_json::to_string(&v).unwrap()));
    out
}

/// FNV-1a, 64 bits: a stable digest for the recorded observations (std's hasher may change
/// between Rust releases).
fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const GOLDEN: &str = "tests/golden/designs.txt";

/// Every shipped design file gives, byte for byte (names aside), what the Rust design of the
/// same name gave: recorded in `tests/golden/designs.txt` while these same observations were
/// compared with the Rust designs side by side (the commit before the one that deleted them). A model change that
/// is meant to change the figures re-records them: `CTXTRACK_BLESS=1 cargo test -p
/// ctxtrack-sim --test lang`, and the diff of that file shows which figures moved.
#[test]
fn every_design_file_gives_the_recorded_figures() {
    let files: Vec<&str> = lang::SHIPPED
        .iter()
        .map(|f| f.0)
        .filter(|f| f.ends_with(".c"))
        .collect();
    assert_eq!(files.len(), design::all().len());
    let mut now = String::new();
    for file in files {
        let fd = file_design(file);
        for (what, json) in observations(fd) {
            now.push_str(&format!("{:016x} {} {what}\n", fnv64(&json), fd.name));
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("CTXTRACK_BLESS").is_some() {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    let differ: Vec<String> = now
        .lines()
        .zip(recorded.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("now {a}\n was {b}"))
        .collect();
    assert!(
        differ.is_empty() && now.lines().count() == recorded.lines().count(),
        "{} observation(s) differ from {GOLDEN} ({} now, {} recorded):\n{}",
        differ.len(),
        now.lines().count(),
        recorded.lines().count(),
        differ.join("\n")
    );
}

/// Removes step and path names (and sites built from them) from a report's or comparison's
/// JSON: a file names its steps after its statements.
fn strip_names(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            // Names of steps and paths, and what is built from them (sites, details, traces).
            for k in [
                "trace",
                "site",
                "detail",
                "history",
                "shortest",
                "violations_by_site",
            ] {
                m.remove(k);
            }
            // "invariant @ site" keys: keep the invariant (counts summed per invariant).
            for val in m.values_mut() {
                if let serde_json::Value::Object(inner) = val {
                    if inner.keys().any(|k| k.contains(" @ ")) {
                        let mut by_inv = serde_json::Map::new();
                        for (k, n) in inner.iter() {
                            let inv = k.split(" @ ").next().unwrap_or(k).to_string();
                            let sum = by_inv.get(&inv).and_then(|x| x.as_u64()).unwrap_or(0)
                                + n.as_u64().unwrap_or(0);
                            by_inv.insert(inv, sum.into());
                        }
                        *inner = by_inv;
                    }
                }
            }
            m.values_mut().for_each(strip_names);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_names),
        _ => {}
    }
}

fn shipped() -> String {
    lang::shipped_flat("generic-entry.c").expect("shipped")
}

fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        shipped().matches(from).count(),
        1,
        "{from:?} must occur once"
    );
    shipped().replace(from, to)
}

fn load_err(text: &str) -> lang::Error {
    let inc = |n: &str| Err(format!("no file {n:?} here"));
    lang::analyze("t.c", text, &inc).expect_err("must be refused")
}

/// Every kind of mistake is refused at load time with file:line:col, the source line, what was
/// expected and, for names, the nearest one.
#[test]
fn loader_errors_name_the_place_and_suggest() {
    let cases: Vec<(String, &str, (u32, u32))> = vec![
        (edit("\tlocal_irq_enable();\n\tsyscall_enter", "\tlocal_irq_enabel();\n\tsyscall_enter"), "unknown function or primitive `local_irq_enabel` (did you mean `local_irq_enable`?)", (128, 2)),
        (edit("if (user_mode(regs)) {\n\t\tirqentry_enter_from", "if (user_mod(regs)) {\n\t\tirqentry_enter_from"), "unknown test `user_mod` (did you mean `user_mode`?)", (156, 6)),
        (edit("\tirqentry_exit(regs, state);\n\tiretq();\n}\n\n/* DEFINE_IDTENTRY_RAW", "\tirqentry_exit(regs, stat);\n\tiretq();\n}\n\n/* DEFINE_IDTENTRY_RAW"), "unknown variable or constant `stat` (did you mean `state`?)", (209, 22)),
        (edit("\tirqentry_exit(regs, state);\n\tiretq();\n}\n\n/* DEFINE_IDTENTRY_RAW", "\tirqentry_exit(regs);\n\tiretq();\n}\n\n/* DEFINE_IDTENTRY_RAW"), "`irqentry_exit` takes 2 argument(s), 1 given", (209, 2)),
        (edit("\tirqentry_state_t state = irqentry_enter(regs);\n\tinstrumentation_begin();\n\tirq_enter_rcu();", "\tirqentry_enter(regs);\n\tinstrumentation_begin();\n\tirq_enter_rcu();"), "the value `irqentry_enter()` returns is discarded", (203, 2)),
        (edit("#entry nmi            asm_exc_nmi\n", ""), "missing entry point: `#entry nmi FUNCTION`", (1, 1)),
        (edit("#entry nmi            asm_exc_nmi", "#entry nmi            asm_exc_nmmi"), "entry `nmi`: no function `asm_exc_nmmi` (did you mean `asm_exc_nmi`?)", (92, 23)),
        (edit("#entry nmi ", "#entry nmii"), "unknown entry kind `nmii` (did you mean `nmi`?)", (92, 8)),
        (edit("\tct_irq_exit();\n\t\t\treturn;", "\tct_irq_exit();\n\t\t\treturn state;"), "`irqentry_exit` is void: `return` takes no value here", (186, 4)),
        (edit("\tinstrumentation_end();\n\texit_to_user_mode: user_enter_irqoff();\n\tsysretq();", "\texit_to_user_mode: user_enter_irqoff();\n\tsysretq();"), "`do_syscall_64` ends inside instrumentation_begin()", (123, 14)),
        (edit("\tct_idle_enter();\n", "\tct_idle_enter();\n\tschedule();\n"), "`schedule` is instrumentable but `default_idle_call` is noinstr", (50, 2)),
        (edit("\tct_idle_enter();\n", "\tct_idle_enter();\n\tinstrumentation_begin();\n\tdo_idle();\n\tinstrumentation_end();\n"), "recursive call: `do_idle` calls `default_idle_call`, which is already on the call chain", (82, 5)),
        (edit("\t\ttick_nohz_idle_exit: ", "\t\twhile (need_resched()) {\n\t\t}\n\t\ttick_nohz_idle_exit: "), "has no step in its body", (83, 3)),
        (edit("#design  \"generic-entry\"", "#desing \"x\""), "unknown directive `#desing` (did you mean `#design`?)", (17, 1)),
        (shipped().replace("#design  \"generic-entry\"", "#design \"x\"\n#include \"nope.h\""), "#include \"nope.h\": no file \"nope.h\" here", (18, 1)),
        (edit("\tinstrumentation_begin();\n\tdefault_do_nmi", "\tinstrumentation_begin();\n\tCT_WARN_ON(need_resched());\n\tdefault_do_nmi"), "CT_WARN_ON takes `ct_state() != CT_STATE_USER`", (32, 13)),
        (edit("ret.exit_rcu = true;", "ret.exit_rc = true;"), "only `irqentry_state_t` has a field, `exit_rcu` (did you mean `exit_rcu`?)", (163, 3)),
        (edit("\tarch_cpu_idle: safe_halt();", "\tarch_cpu_idle: safe_halt(;"), "expected an expression, found `;`", (50, 27)),
    ];
    let mut bad = Vec::new();
    for (text, want, (line, col)) in &cases {
        let e = load_err(text);
        if !e.msg.contains(want) || (e.pos.line, e.pos.col) != (*line, *col) {
            bad.push(format!("want {want:?} at {line}:{col}, got: {e}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    for (text, _, (line, col)) in cases {
        let e = load_err(&text);
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("t.c:{line}:{col}: ")), "{shown}");
        if line > 1 {
            assert!(
                shown.contains(&format!("{line:>5} | ")),
                "no source line in: {shown}"
            );
        }
    }
}

/// A hostile file is refused at load time or stopped at run time with a verdict, never a hang
/// or a panic.
#[test]
fn pathological_files_are_refused_or_stopped() {
    let inc = |n: &str| Err(format!("no file {n:?}"));
    // Deep nesting.
    let deep = format!(
        "#design \"d\"\nvoid f(void) {{ {}x(); {} }}",
        "if (true) { ".repeat(200),
        "} ".repeat(200)
    );
    let e = lang::analyze("t.c", &deep, &inc).unwrap_err();
    assert!(e.msg.contains("nesting deeper than"), "{e}");
    // A huge file.
    let huge = "/".repeat(2 << 20);
    assert!(lang::analyze("t.c", &huge, &inc)
        .unwrap_err()
        .msg
        .contains("at most"));
    // Mutual recursion.
    let rec = edit("\tct_idle_exit();\n", "\tct_idle_exit();\n\tping();\n")
        + "\nnoinstr void ping(void) { pong(); }\nnoinstr void pong(void) { ping(); }\n";
    assert!(load_err(&rec).msg.contains("recursive call"));
    // A loop whose only statement is a call of a function without steps loads (the call is
    // progress as far as the loader can tell) and is stopped at run time with model_limit.
    let spin = edit(
        "\t\ttick_nohz_idle_exit: tick_nohz_idle_exit(), __current_clr_polling();\n\t\tschedule_idle();",
        "\t\twhile (true)\n\t\t\tnothing();\n\t\tschedule_idle();",
    ) + "\nstatic void nothing(void)\n{\n}\n";
    let d = lang::analyze("spin.c", &spin, &inc)
        .unwrap_or_else(|e| panic!("{e}"))
        .leak();
    let mut c = Config::new(d);
    c.duration_ns = Some(1_000_000);
    let (r, _) = run(c, &Workload::CpuBound, TraceOutputs::none());
    assert_eq!(
        r.violation_reports[0].invariant, "model_limit",
        "{:?}",
        r.violation_reports
    );
    assert!(
        r.violation_reports[0].site.contains("without a step"),
        "{:?}",
        r.violation_reports
    );
    // A primitive that calls kernel code after its step (default_do_nmi(): nmi_handle()'s
    // reader ends a step later) written in the same statement as the return from the entry:
    // nowhere to run it. Stopped with model_limit naming the step, never a reader left open.
    let both = edit(
        "\tinstrumentation_begin();\n\tdefault_do_nmi(regs);\n\tinstrumentation_end();\n\tirqentry_nmi_exit: ct_nmi_exit(), __nmi_exit();\n\tiretq();",
        "\tinstrumentation_begin();\n\tlast: default_do_nmi(regs), ct_nmi_exit(), __nmi_exit(), iretq();\n\tinstrumentation_end();",
    );
    let d = lang::analyze("both.c", &both, &inc)
        .unwrap_or_else(|e| panic!("{e}"))
        .leak();
    let mut c = Config::new(d);
    c.duration_ns = Some(5_000_000);
    c.nmi_period_ns = Some(100_000);
    let (r, _) = run(c, &Workload::CpuBound, TraceOutputs::none());
    let limit = r
        .violation_reports
        .iter()
        .find(|v| v.invariant == "model_limit")
        .unwrap_or_else(|| panic!("{:?}", r.violation_reports));
    assert!(
        limit.site.contains("step `last` calls nmi_handle"),
        "{}",
        limit.site
    );
    // Inline functions calling inline functions twice over grow exponentially: refused by size
    // before anything is built.
    let mut chain = String::from("static inline void f0(void) { a0: local_irq_enable(); }\n");
    for k in 1..40 {
        chain.push_str(&format!(
            "static inline void f{k}(void) {{ f{}(); f{}(); }}\n",
            k - 1,
            k - 1
        ));
    }
    let exp = edit(
        "\t\ttick_nohz_idle_exit: ",
        "\t\tf39();\n\t\ttick_nohz_idle_exit: ",
    ) + &chain;
    let e = lang::analyze("t.c", &exp, &inc).unwrap_err();
    assert!(
        e.msg
            .contains("statements with its inline functions expanded"),
        "{e}"
    );
    // Garbage never panics.
    for junk in [
        "",
        "#",
        "void",
        "void f(",
        "void f() {",
        "#entry",
        "\"",
        "/*",
        "int x = ;",
        "noinstr noinstr",
        "void f(void) { a = ; }",
        "void f(void) { if }",
        "}}}}",
    ] {
        let r = lang::analyze("junk.c", junk, &inc);
        assert!(r.is_err(), "{junk:?} was accepted as a design");
    }
}

/// Compilation leaves no decision that decides nothing: no jump to the very next statement
/// (an inlined function's `return`), and every target is inside its function. Each such jump
/// would cost the machine a dispatch per run through it.
#[test]
fn compiled_designs_have_no_jump_to_the_next_statement() {
    use ctxtrack_sim::design::lang::{Op, Then};
    for (file, _) in lang::SHIPPED.iter().filter(|f| f.0.ends_with(".c")) {
        let inc = |n: &str| lang::include_shipped(n);
        let a = lang::analyze(file, lang::shipped_text(file).expect("shipped"), &inc)
            .unwrap_or_else(|e| panic!("{e}"));
        for f in &a.funcs {
            let n = f.steps.len();
            for (i, s) in f.steps.iter().enumerate() {
                let target = match &s.op {
                    Op::Jump(t) => {
                        assert_ne!(
                            *t as usize,
                            i + 1,
                            "{file}: {}: {} jumps to the next statement",
                            f.name,
                            s.name
                        );
                        Some(*t)
                    }
                    Op::Branch(_, t) | Op::Step(_, Then::Jump(t)) | Op::Do(_, Then::Jump(t)) => {
                        Some(*t)
                    }
                    _ => None,
                };
                if let Some(t) = target {
                    assert!(
                        (t as usize) < n,
                        "{file}: {}: {} jumps to {t} of {n}",
                        f.name,
                        s.name
                    );
                }
            }
        }
    }
}

/// `shipped_flat` expands headers that include headers; `shipped_mutant` refuses an edit that
/// does not match exactly once, and renames what it loads.
#[test]
fn shipped_designs_flatten_and_take_one_edit() {
    for (file, _) in lang::SHIPPED.iter().filter(|f| f.0.ends_with(".c")) {
        let flat = lang::shipped_flat(file).unwrap();
        assert!(!flat.contains("#include"), "{file}");
        let inc = |n: &str| Err(format!("no file {n:?}"));
        lang::analyze(file, &flat, &inc).unwrap_or_else(|e| panic!("{e}"));
    }
    let e = lang::shipped_mutant("generic-entry.c", "m", "no such text", "x").unwrap_err();
    assert!(e.contains("occurs 0 times"), "{e}");
    let e = lang::shipped_mutant("generic-entry.c", "m", "\t", "x").unwrap_err();
    assert!(e.contains("not once"), "{e}");
    let d = lang::shipped_mutant(
        "generic-entry.c",
        "renamed",
        "safe_halt();",
        "safe_halt(); ",
    )
    .unwrap();
    assert_eq!(d.name, "renamed");
}
