//! The checker against designs with one known bug each, against generic-entry (no violation)
//! and against the 2015 designs (what the thread argued about).
//!
//! Each mutant is the shipped generic-entry text with one change, as a kernel engineer would
//! edit a copy: a file is all a change takes, so the mutants exercise the language too. Each
//! test asserts which invariant the checker refutes it with and the length of the shortest
//! trace (breadth-first, so a change of that length means the model or the checker changed,
//! not noise).

use ctxtrack_check::model::{CheckConfig, Events};
use ctxtrack_check::{check, DesignResult};
use ctxtrack_sim::design::{lang, Design};

/// generic-entry.c with its header pasted in place of the `#include` (one text to edit, as a
/// kernel engineer would edit a copy).
fn shipped() -> String {
    lang::shipped_flat("generic-entry.c").expect("shipped")
}

/// The shipped generic-entry text with `from` (which must occur once) replaced by `to`.
fn mutant(name: &str, from: &str, to: &str) -> &'static Design {
    lang::shipped_mutant("generic-entry.c", name, from, to).unwrap_or_else(|e| panic!("{e}"))
}

fn invariants(r: &DesignResult) -> Vec<&str> {
    let mut v: Vec<&str> = r.violations.iter().map(|v| v.invariant.as_str()).collect();
    v.sort();
    v.dedup();
    v
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
        "mutant-user-enter-before-work-loop",
        "\tlocal_irq_disable_exit_to_user: local_irq_disable();\n\texit_to_user_mode_prepare(regs);\n\tinstrumentation_end();\n\texit_to_user_mode: user_enter_irqoff();\n\tsysretq();",
        "\tlocal_irq_disable_exit_to_user: local_irq_disable();\n\texit_to_user_mode: user_enter_irqoff();\n\texit_to_user_mode_prepare(regs);\n\tinstrumentation_end();\n\tsysretq();",
    );
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    // A woken read returns and the work loop's first step runs in the EQS (after the
    // syscall's entry, tracepoint and body steps; the wakeup finds the idle task polling and
    // sends no IPI).
    assert_eq!(r.shortest("rcu_watching_in_kernel"), Some(19), "{r:#?}");
}

#[test]
fn forgotten_exit_rcu_is_refuted() {
    let d = mutant(
        "mutant-exit-rcu-forgotten",
        "\t\tif (state.exit_rcu) {\n\t\t\t/* Coming from idle/EQS: no preemption, just leave RCU. */\n\t\t\tct_irq_exit();\n\t\t\treturn;\n\t\t}\n",
        "",
    );
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    // An IRQ on the idle task before its EQS; the iretq finds the
    // nesting raised, and the idle EQS entry later warns.
    assert_eq!(r.shortest("entry_exit_state"), Some(8), "{r:#?}");
    assert!(r.shortest("ct_kernel_exit_nmi_nesting").is_some(), "{r:#?}");
}

#[test]
fn nmi_nesting_not_restored_is_refuted() {
    let d = mutant(
        "mutant-nmi-nesting-not-restored",
        "\tdefault_do_nmi(regs);\n\tinstrumentation_end();\n\tirqentry_nmi_exit: ct_nmi_exit(), __nmi_exit();",
        "\tdefault_do_nmi(regs);\n\tinstrumentation_end();\n\tirqentry_nmi_exit: __nmi_exit();",
    );
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    // NMI entry, nmi_handle()'s two steps (its read-side section), the exit, the iretq.
    assert_eq!(r.shortest("entry_exit_state"), Some(7), "{r:#?}");
}

/// The syscall entry with IRQs enabled before `enter_from_user_mode()`, wrapped in
/// instrumentation_begin()/end() so that the loader accepts it.
fn irq_enable_before_user_exit() -> &'static Design {
    mutant(
        "mutant-irq-enable-before-user-exit",
        IRQ_ON_LATE,
        "\tentry_SYSCALL_64: hw_syscall();\n\tinstrumentation_begin();\n\tlocal_irq_enable();\n\tinstrumentation_end();\n\tenter_from_user_mode(regs);\n\tinstrumentation_begin();\n",
    )
}

/// The shipped syscall entry: IRQs go on after the switch out of USER.
const IRQ_ON_LATE: &str = "\tentry_SYSCALL_64: hw_syscall();\n\tenter_from_user_mode(regs);\n\tinstrumentation_begin();\n\tlocal_irq_enable();\n";

/// The 2015 thread's case: IRQs enabled before the switch out of USER. Written naively, the
/// loader refuses it as objtool would (an instrumentable call in noinstr code); wrapped in
/// instrumentation_begin()/end(), the checker refutes it.
#[test]
fn irq_enable_before_enter_from_user_mode_is_refuted() {
    let naive = shipped().replace(IRQ_ON_LATE, "\tentry_SYSCALL_64: hw_syscall();\n\tlocal_irq_enable();\n\tenter_from_user_mode(regs);\n\tinstrumentation_begin();\n");
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
    let d = irq_enable_before_user_exit();
    let r = run(d, 2);
    assert_eq!(r.verdict, "violated");
    assert_eq!(r.shortest("rcu_watching_in_kernel"), Some(3), "{r:#?}");
    assert_eq!(r.shortest("ct_kernel_with_irqs_on"), Some(4), "{r:#?}");
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
/// recorded in `tests/golden/checks.txt` while the side-by-side comparison with the Rust
/// designs passed (the commit before the one that deleted them). `CTXTRACK_BLESS=1` re-records (the README's
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

// ----------------------------------------------------------------- real designs

#[test]
fn the_2015_designs_show_what_the_thread_argued_about() {
    let d = ctxtrack_sim::design::by_name("linux-4.3").unwrap();
    let r = run(d, 2);
    // Lutomirski's "single remaining exception": 4.3's syscall entry enables IRQs in USER.
    assert_eq!(r.shortest("ct_kernel_with_irqs_on"), Some(4), "{r:#?}");
    // ... and an IRQ in that window can preempt into schedule() while still in USER.
    assert_eq!(r.shortest("schedule_in_user"), Some(11), "{r:#?}");

    let d = ctxtrack_sim::design::by_name("weisbecker-2015").unwrap();
    let r = run(d, 2);
    // The patch's exit loop also runs exception_enter() with IRQs on while in USER.
    let site = r
        .violations
        .iter()
        .find(|v| v.site.contains("exception_enter"))
        .unwrap_or_else(|| panic!("no exception_enter site: {r:#?}"));
    assert_eq!(site.invariant, "ct_kernel_with_irqs_on");
    assert_eq!(site.length, 9);

    let d = ctxtrack_sim::design::by_name("lutomirski-2015").unwrap();
    let r = run(d, 2);
    assert_eq!(r.verdict, "ok", "{:?}", invariants(&r));
}

// ----------------------------------------------------------------- two CPUs

fn run2(d: &'static Design, symmetry: bool) -> DesignResult {
    let cfg = CheckConfig {
        depth: 2,
        cpus: 2,
        events: Events::NONE,
        symmetry,
        ..CheckConfig::new(d)
    };
    check(cfg, &mut |_| {}).expect("check runs")
}

#[test]
fn two_cpus_explore_wakeups_and_collapse_symmetric_states() {
    // The workers wake each other through pipes: IPIs, idle entry/exit, RCU snapshots of both.
    let generic = ctxtrack_sim::design::by_name("generic-entry").unwrap();
    let sym = run2(generic, true);
    let asym = run2(generic, false);
    assert_eq!(sym.verdict, "ok", "{sym:#?}");
    assert_eq!(asym.verdict, "ok", "{asym:#?}");
    assert!(sym.states > 10_000, "{}", sym.states);
    // Mirrored states count once: close to half as many.
    assert!(
        sym.states * 10 < asym.states * 6,
        "symmetry: {} vs {} states",
        sym.states,
        asym.states
    );
    // Same findings with and without the reduction, on a design that has some.
    let d = irq_enable_before_user_exit();
    let a = run2(d, true);
    let b = run2(d, false);
    let key = |r: &DesignResult| -> Vec<(String, usize)> {
        let mut v: Vec<_> = r
            .violations
            .iter()
            .map(|v| (v.invariant.clone(), v.length))
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&a), key(&b));
    assert!(!a.violations.is_empty());
}

#[test]
fn results_do_not_depend_on_threads() {
    let d = ctxtrack_sim::design::by_name("weisbecker-2015").unwrap();
    let json = |threads| {
        let cfg = CheckConfig {
            depth: 2,
            threads,
            ..CheckConfig::new(d)
        };
        let r = check(cfg, &mut |_| {}).expect("check runs");
        serde_json::to_string(&r).unwrap()
    };
    let one = json(1);
    assert_eq!(one, json(3));
    assert!(one.contains("exception_enter"));
}
