//! The checker on deferred IPIs (CT_WORK): the housekeeping CPU's `ct_set_cpu_work()` (its read
//! and its cmpxchg as separate actions) interleaved with every entry, exit, IRQ, NMI, fault and
//! preemption. As the series writes it, an NMI between an entry's fully ordered add and its
//! `ct_work_flush()` runs its handler before the deferred work; with NMIs that flush too
//! (`CtLayout::with_nmi_flush`), generic entry never runs a patchable step while it owes work,
//! and three broken variants are refuted, each with its invariant and shortest trace.

use ctxtrack_check::model::{CheckConfig, Events};
use ctxtrack_check::{check, DesignResult};
use ctxtrack_sim::design::{lang, Design};
use ctxtrack_sim::driver::Setter;

fn run_with(d: &'static Design, setter: Setter, torture: bool, nmi_flush: bool) -> DesignResult {
    let cfg = CheckConfig {
        depth: 2,
        events: Events::ALL,
        ct_work: true,
        work_setter: setter,
        rcu_counter_torture: torture,
        ct_work_nmi_flush: nmi_flush,
        ..CheckConfig::new(d)
    };
    let r = check(cfg, &mut |_| {}).expect("check runs");
    println!("{}", ctxtrack_check::render(&r, None));
    r
}

/// With NMIs flushing too: what remains is each variant's own bug.
fn run(d: &'static Design, setter: Setter, torture: bool) -> DesignResult {
    run_with(d, setter, torture, true)
}

fn generic() -> &'static Design {
    ctxtrack_sim::design::by_name("generic-entry").unwrap()
}

/// The shipped generic-entry text with `from` (once) replaced by `to`.
fn mutant(name: &str, from: &str, to: &str) -> &'static Design {
    lang::shipped_mutant("generic-entry.c", name, from, to).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_nmi_between_the_entrys_add_and_its_flush_runs_before_the_work() {
    // Work deferred to the worker in user mode; its syscall's user_exit_irqoff() makes RCU
    // watch (the add); an NMI lands before ct_work_flush(): ct_nmi_enter() sees RCU watching and
    // does not flush, and the NMI handler runs first.
    let r = run_with(generic(), Setter::Linux, false, false);
    assert_eq!(r.verdict, "violated");
    let nmi = r
        .violations
        .iter()
        .find(|v| v.site == "asm_exc_nmi: default_do_nmi(regs)")
        .unwrap_or_else(|| panic!("{r:#?}"));
    assert_eq!(
        (nmi.invariant.as_str(), nmi.length),
        ("ct_work_unflushed", 9)
    );
    assert!(r.events.ends_with(",ct_set_cpu_work"), "{}", r.events);
}

#[test]
fn generic_entry_with_deferral_and_nmi_flushes_holds() {
    let r = run(generic(), Setter::Linux, false);
    assert_eq!(r.verdict, "ok", "{r:#?}");
    assert!(r.complete);
    assert!(
        r.events.ends_with(",ct_set_cpu_work,nmi_flush"),
        "{}",
        r.events
    );
    // The setter's actions multiply the states of the plain check several times over.
    let plain = check(
        CheckConfig {
            depth: 2,
            ..CheckConfig::new(generic())
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(
        r.states > 3 * plain.states,
        "{} vs {}",
        r.states,
        plain.states
    );
}

#[test]
fn a_setter_that_ignores_watching_is_refuted() {
    let r = run(generic(), Setter::IgnoresWatching, false);
    assert_eq!(r.verdict, "violated");
    // Read and cmpxchg at boot, while the idle loop runs in the kernel: the bit lands on a
    // watching CPU ...
    assert_eq!(r.shortest("ct_work_set_while_watching"), Some(2), "{r:#?}");
    // ... whose next instrumentable step runs with the work owed (its entry flushed long ago;
    // the next exit clears the bit unflushed).
    assert_eq!(r.shortest("ct_work_unflushed"), Some(3), "{r:#?}");
}

#[test]
fn an_nmi_handler_before_ct_nmi_enter_is_refuted() {
    let d = mutant(
        "ct-work-nmi-handler-first",
        "\tirqentry_nmi_enter: __nmi_enter(), ct_nmi_enter();\n\tinstrumentation_begin();\n\tdefault_do_nmi(regs);\n\tinstrumentation_end();\n",
        "\tirqentry_nmi_enter: __nmi_enter();\n\tinstrumentation_begin();\n\tdefault_do_nmi(regs);\n\tinstrumentation_end();\n\tct_nmi_enter();\n",
    );
    let r = run(d, Setter::Linux, false);
    assert_eq!(r.verdict, "violated");
    // Work deferred to the CPU in user mode (read, cmpxchg), an NMI, its delivery, its
    // `__nmi_enter()` step, then the handler.
    assert_eq!(r.shortest("ct_work_unflushed"), Some(6), "{r:#?}");
    // The same handler without deferred work is an RCU bug first.
    assert_eq!(r.shortest("rcu_watching_in_kernel"), Some(4), "{r:#?}");
}

#[test]
fn a_traced_irq_disable_before_ct_idle_exit_is_refuted() {
    // Linux 6.1's default_idle_call() ran a traced local_irq_disable() in the EQS (6.3 made it
    // raw); with deferred work, that is patchable code before the flush.
    let d = mutant(
        "ct-work-traced-irq-disable-in-idle",
        "\traw_local_irq_disable();\n\tct_idle_exit();",
        "\tinstrumentation_begin();\n\tlocal_irq_disable();\n\tinstrumentation_end();\n\tct_idle_exit();",
    );
    let r = run(d, Setter::Linux, false);
    assert_eq!(r.verdict, "violated");
    // The worker blocks, the CPU idles (trace_cpu_idle() first), a wakeup brings it out of
    // `hlt`: 21 transitions to the traced call in the EQS (an RCU bug, as in 6.1), two more
    // with work deferred to the idle EQS first (read, cmpxchg).
    assert_eq!(r.shortest("rcu_watching_in_kernel"), Some(21), "{r:#?}");
    assert_eq!(r.shortest("ct_work_unflushed"), Some(23), "{r:#?}");
}

#[test]
fn the_two_bit_counter_lengthens_grace_periods_but_breaks_nothing() {
    let r = run(generic(), Setter::Linux, true);
    assert_eq!(r.verdict, "ok", "{r:#?}");
    assert!(
        r.events.ends_with(",nmi_flush,rcu_counter_torture"),
        "{}",
        r.events
    );
}

#[test]
fn a_patchable_static_branch_in_the_idle_eqs_is_refuted() {
    // mwait_idle_with_hints() runs mds_idle_clear_cpu_buffers() (static key cpu_buf_idle_clear)
    // in the EQS, before ct_idle_exit() flushes: patchable text the series may only keep if
    // flipping it always IPIs. Marked in the file, the checker finds work deferred to the idle
    // EQS reaching it unflushed.
    let d = mutant(
        "ct-work-mds-clear-in-idle",
        "\tct_idle_enter();\n\tarch_cpu_idle: safe_halt();",
        "\tct_idle_enter();\n\tmds_idle_clear_cpu_buffers: static_branch_noinstr();\n\tarch_cpu_idle: safe_halt();",
    );
    let r = run(d, Setter::Linux, false);
    assert_eq!(r.verdict, "violated");
    let v = r
        .violations
        .iter()
        .find(|v| v.invariant == "ct_work_unflushed")
        .unwrap_or_else(|| panic!("{r:#?}"));
    assert_eq!(v.site, "default_idle_call: mds_idle_clear_cpu_buffers");
    // (trace_cpu_idle()'s reader is one step before ct_idle_enter().)
    assert_eq!(v.length, 15, "{v:#?}");
    // Without deferred work the same file is fine: the step is noinstr.
    let plain = check(
        CheckConfig {
            depth: 2,
            ..CheckConfig::new(d)
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(plain.verdict, "ok", "{plain:#?}");
}
