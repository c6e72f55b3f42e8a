//! The checker on design files: the shipped generic-entry file holds, and each mutant — the
//! shipped text with one change, as a kernel engineer would edit it — is refuted with the same
//! invariants as the Rust mutant of `mutants.rs` that makes the same change, and a fixed
//! shortest length. The mutants exercise the language: a file is all a change takes.

use ctxtrack_check::model::{CheckConfig, Events};
use ctxtrack_check::{check, DesignResult};
use ctxtrack_sim::design::{lang, Design};

/// generic-entry.c with its header pasted in place of the `#include` (one text to edit, as a
/// kernel engineer would edit a copy).
fn shipped() -> String {
    lang::shipped_text("generic-entry.c")
        .expect("shipped")
        .replace(
            "#include \"nmi-idle.h\"",
            lang::shipped_text("nmi-idle.h").expect("shipped"),
        )
}

/// The shipped generic-entry text with `from` (which must occur once) replaced by `to`.
fn mutant(name: &str, from: &str, to: &str) -> &'static Design {
    assert_eq!(
        shipped().matches(from).count(),
        1,
        "{from:?} must occur once"
    );
    let text = shipped()
        .replace(from, to)
        .replace("#design  \"generic-entry\"", &format!("#design \"{name}\""));
    lang::analyze(name, &text, &lang::include_shipped)
        .unwrap_or_else(|e| panic!("{e}"))
        .leak()
}

fn run(d: &'static Design, depth: u32) -> DesignResult {
    let cfg = CheckConfig {
        depth,
        events: Events::ALL,
        ..CheckConfig::new(d)
    };
    let r = check(cfg, &mut |_| {}).expect("check runs");
    println!("{}", ctxtrack_check::render(&r, None));
    r
}

fn shortest(r: &DesignResult, inv: &str) -> Option<usize> {
    r.violations
        .iter()
        .filter(|v| v.invariant == inv)
        .map(|v| v.length)
        .min()
}

#[test]
fn the_shipped_file_holds_at_depth_3() {
    let d = lang::load_shipped("generic-entry.c").unwrap();
    let r = run(d, 3);
    assert_eq!(r.verdict, "ok", "{r:#?}");
    assert!(r.complete && r.states > 100_000);
}

#[test]
fn user_enter_before_the_work_loop_is_refuted() {
    let d = mutant(
        "file-user-enter-before-work-loop",
        "\tlocal_irq_disable_exit_to_user: local_irq_disable();\n\texit_to_user_mode_prepare(regs);\n\tinstrumentation_end();\n\texit_to_user_mode: user_enter_irqoff();\n\tsysretq();",
        "\tlocal_irq_disable_exit_to_user: local_irq_disable();\n\texit_to_user_mode: user_enter_irqoff();\n\texit_to_user_mode_prepare(regs);\n\tinstrumentation_end();\n\tsysretq();",
    );
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    // As the Rust mutant: a woken read returns and the loop's first step runs in the EQS (the
    // file keeps the syscall's tracepoint steps the Rust mutant dropped: two more steps).
    assert_eq!(shortest(&r, "rcu_watching_in_kernel"), Some(24), "{r:#?}");
}

#[test]
fn forgotten_exit_rcu_is_refuted() {
    let d = mutant(
        "file-exit-rcu-forgotten",
        "\t\tif (state.exit_rcu) {\n\t\t\t/* Coming from idle/EQS: no preemption, just leave RCU. */\n\t\t\tct_irq_exit();\n\t\t\treturn;\n\t\t}\n",
        "",
    );
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    // Same as the Rust mutant: an IRQ on the idle task before its EQS; the iretq finds the
    // nesting raised, and the idle EQS entry later warns.
    assert_eq!(shortest(&r, "entry_exit_state"), Some(8), "{r:#?}");
    assert!(
        shortest(&r, "ct_kernel_exit_nmi_nesting").is_some(),
        "{r:#?}"
    );
}

#[test]
fn nmi_nesting_not_restored_is_refuted() {
    let d = mutant(
        "file-nmi-nesting-not-restored",
        "\tdefault_do_nmi(regs);\n\tinstrumentation_end();\n\tirqentry_nmi_exit: ct_nmi_exit(), __nmi_exit();",
        "\tdefault_do_nmi(regs);\n\tinstrumentation_end();\n\tirqentry_nmi_exit: __nmi_exit();",
    );
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    assert_eq!(shortest(&r, "entry_exit_state"), Some(6), "{r:#?}");
}

/// The 2015 thread's case: IRQs enabled before the switch out of USER. Written naively, the
/// loader refuses it as objtool would (an instrumentable call in noinstr code); wrapped in
/// instrumentation_begin()/end(), the checker refutes it.
#[test]
fn irq_enable_before_enter_from_user_mode_is_refuted() {
    let from = "\tentry_SYSCALL_64: hw_syscall();\n\tenter_from_user_mode(regs);\n\tinstrumentation_begin();\n\tlocal_irq_enable();\n";
    let naive = shipped().replace(from, "\tentry_SYSCALL_64: hw_syscall();\n\tlocal_irq_enable();\n\tenter_from_user_mode(regs);\n\tinstrumentation_begin();\n");
    let e = lang::analyze("naive.c", &naive, &lang::include_shipped).unwrap_err();
    assert!(
        e.msg
            .contains("`local_irq_enable` is instrumentable but `do_syscall_64` is noinstr"),
        "{e}"
    );
    let line = naive
        .lines()
        .position(|l| l == "\tlocal_irq_enable();")
        .unwrap()
        + 1;
    assert_eq!((e.pos.line, e.pos.col), (line as u32, 2), "{e}");
    let d = mutant(
        "file-irq-enable-before-user-exit",
        from,
        "\tentry_SYSCALL_64: hw_syscall();\n\tinstrumentation_begin();\n\tlocal_irq_enable();\n\tinstrumentation_end();\n\tenter_from_user_mode(regs);\n\tinstrumentation_begin();\n",
    );
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    assert_eq!(shortest(&r, "rcu_watching_in_kernel"), Some(3), "{r:#?}");
    assert_eq!(shortest(&r, "ct_kernel_with_irqs_on"), Some(4), "{r:#?}");
}

/// A check's findings as one line: verdict, completeness, and the sorted (invariant, shortest
/// length) of every violated site (site names follow the file's statements, so not them).
fn findings(r: &DesignResult) -> String {
    let mut v: Vec<(String, usize)> = r
        .violations
        .iter()
        .map(|v| (v.invariant.clone(), v.length))
        .collect();
    v.sort();
    format!("{} complete={} {v:?}", r.verdict, r.complete)
}

const GOLDEN: &str = "tests/golden/checks.txt";

/// Every shipped design file checks at depth 2 as the Rust design of the same name did:
/// recorded in `tests/golden/checks.txt` at the commit that deleted the Rust designs, after
/// the side-by-side comparison had passed. `CTXTRACK_BLESS=1` re-records (the README's
/// depth-3 table is the same comparison one level deeper).
#[test]
fn every_design_file_checks_as_recorded() {
    let mut now = String::new();
    for (file, _) in lang::SHIPPED.iter().filter(|f| f.0.ends_with(".c")) {
        let fd = lang::load_shipped(file).unwrap();
        now.push_str(&format!("{}: {}\n", fd.name, findings(&run(fd, 2))));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("CTXTRACK_BLESS").is_some() {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(now, recorded, "findings differ from {GOLDEN}");
}

/// Every shipped design file against the Rust design of the same name, side by side.
#[test]
fn every_design_file_checks_like_its_rust_design() {
    for (file, _) in lang::SHIPPED.iter().filter(|f| f.0.ends_with(".c")) {
        let fd = lang::load_shipped(file).unwrap();
        let rust = ctxtrack_sim::design::by_name(fd.name).unwrap();
        assert_eq!(findings(&run(rust, 2)), findings(&run(fd, 2)), "{file}");
    }
}
