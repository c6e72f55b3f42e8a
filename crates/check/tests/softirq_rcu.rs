//! The mechanisms where real entry/RCU bugs lived, each against a mutant that breaks it and
//! the shipped (or fixed) version that keeps it: softirqs on IRQ exit, RCU readers in every
//! context, Linux's idle test in the tick, and deferred rcuog wakeups (`rcu_nocbs`).
//!
//! Every mutant is a shipped file edited as a kernel engineer edits a copy
//! ([`lang::shipped_mutant`]); each test asserts the invariant that refutes it and the length
//! of its shortest trace (breadth-first: a different length means the model changed).

use ctxtrack_check::model::{Action, CheckConfig, Events, Model};
use ctxtrack_check::{check, DesignResult};
use ctxtrack_sim::design::{lang, Design};
use ctxtrack_sim::machine::{preempt, Machine, Mode, Vector};

/// The shipped generic-entry text (its headers pasted in) with `from` replaced by `to`.
fn mutant(name: &str, from: &str, to: &str) -> &'static Design {
    lang::shipped_mutant("generic-entry.c", name, from, to).unwrap_or_else(|e| panic!("{e}"))
}

/// A shipped design with several edits `(from, to, occurrences of from)`, named `name`.
fn edited(file: &str, name: &str, edits: &[(&str, &str, usize)]) -> &'static Design {
    let mut text = lang::shipped_flat(file).unwrap();
    for (from, to, n) in edits {
        assert_eq!(text.matches(from).count(), *n, "{from:?}");
        text = text.replace(from, to);
    }
    let text: String = text
        .lines()
        .map(|l| match l.starts_with("#design") {
            true => format!("#design \"{name}\"\n"),
            false => format!("{l}\n"),
        })
        .collect();
    lang::analyze(name, &text, &lang::include_shipped)
        .unwrap_or_else(|e| panic!("{e}"))
        .leak()
}

/// Which of the richer mechanisms a check turns on.
#[derive(Clone, Copy, Default)]
struct Mech {
    softirq: bool,
    nocb: bool,
}

const NOCB: Mech = Mech {
    softirq: false,
    nocb: true,
};
const SOFTIRQ: Mech = Mech {
    softirq: true,
    nocb: false,
};

fn run(d: &'static Design, depth: u32, mech: Mech) -> DesignResult {
    let cfg = CheckConfig {
        depth,
        events: Events::ALL,
        softirq: mech.softirq,
        nocb: mech.nocb,
        ..CheckConfig::new(d)
    };
    let r = check(cfg, &mut |_| {}).expect("check runs");
    println!("{}", ctxtrack_check::render(&r, None));
    r
}

fn invariants(r: &DesignResult) -> Vec<&str> {
    let mut v: Vec<&str> = r.violations.iter().map(|v| v.invariant.as_str()).collect();
    v.sort();
    v.dedup();
    v
}

fn assert_clean(r: &DesignResult) {
    assert_eq!(r.verdict, "ok", "{:?}", invariants(r));
    assert!(r.complete, "{r:#?}");
}

// ----------------------------------------------------------------- deferred rcuog wakeups

/// generic-entry's first flush: `exit_to_user_mode_prepare()` begins with
/// `tick_nohz_user_enter_prepare()`.
const FLUSH_BEFORE_LOOP: &str =
    "\ttick_nohz_user_enter_prepare();\n\twhile (read_thread_flags() & EXIT_TO_USER_MODE_WORK) {";
/// ... and flushes again after each round of work, with IRQs off again.
const FLUSH_IN_LOOP: &str = "\t\ttick_nohz_user_enter_prepare: tick_nohz_user_enter_prepare();\n";

#[test]
fn generic_entry_flushes_every_deferred_wakeup_before_user_mode() {
    let d = lang::load_shipped("generic-entry.c").unwrap();
    assert_clean(&run(d, 2, NOCB));
}

#[test]
fn no_flush_before_the_exit_loop_is_refuted() {
    let d = mutant(
        "mutant-no-flush-before-exit-loop",
        FLUSH_BEFORE_LOOP,
        "\twhile (read_thread_flags() & EXIT_TO_USER_MODE_WORK) {",
    );
    let r = run(d, 2, NOCB);
    // A device IRQ from user mode queues a callback with IRQs off; nothing flushes it.
    assert_eq!(
        r.shortest("user_return_deferred_wakeup"),
        Some(10),
        "{r:#?}"
    );
    assert_eq!(invariants(&r), ["user_return_deferred_wakeup"]);
}

#[test]
fn no_flush_after_the_exit_loop_work_is_refuted() {
    let d = mutant("mutant-no-flush-in-exit-loop", FLUSH_IN_LOOP, "");
    let r = run(d, 2, NOCB);
    // The device IRQ lands in the exit loop's work (IRQs on), returns to it, and the loop
    // ends without another flush.
    assert_eq!(
        r.shortest("user_return_deferred_wakeup"),
        Some(22),
        "{r:#?}"
    );
    assert_eq!(invariants(&r), ["user_return_deferred_wakeup"]);
}

/// The 4.x placement in a 6.x exit path: the flush (`fix`) in the EQS entry, after the exit
/// loop's last `need_resched()` check. With rcuog on this CPU its wakeup needs a reschedule
/// that nothing does before user mode (the bug 5.12 fixed).
fn late_flush(fix: &str) -> &'static Design {
    let name = format!("mutant-late-{}", fix.split('(').next().unwrap());
    edited(
        "generic-entry.c",
        &name,
        &[
            (FLUSH_IN_LOOP, "", 1),
            (FLUSH_BEFORE_LOOP, "\twhile (read_thread_flags() & EXIT_TO_USER_MODE_WORK) {", 1),
            (
                "exit_to_user_mode: user_enter_irqoff();",
                &format!("instrumentation_begin();\n{fix};\ninstrumentation_end();\nexit_to_user_mode: user_enter_irqoff();"),
                3,
            ),
        ],
    )
}

#[test]
fn a_flush_after_the_last_need_resched_check_loses_the_wakeup() {
    let r = run(late_flush("do_nocb_deferred_wakeup()"), 2, NOCB);
    // The woken rcuog needs this CPU: TIF_NEED_RESCHED set, no IPI on its way, user mode.
    assert_eq!(r.shortest("return_to_user"), Some(11), "{r:#?}");
    assert_eq!(invariants(&r), ["return_to_user"]);
}

#[test]
fn rcu_irq_work_resched_makes_the_late_flush_safe() {
    // 5.12's fix for entry code without generic entry: a wakeup that leaves a reschedule due
    // queues an irq_work whose self-IPI brings the task back through its exit work.
    // return_to_user accepts that IPI as in flight.
    assert_clean(&run(late_flush("rcu_irq_work_resched()"), 2, NOCB));
}

#[test]
fn the_2015_designs_lose_the_late_wakeup_and_the_fix_holds() {
    // 4.x flushed in rcu_eqs_enter_common(), after the exit loop: the bug 5.12 fixed.
    let d = ctxtrack_sim::design::by_name("lutomirski-2015").unwrap();
    let r = run(d, 2, NOCB);
    assert_eq!(r.shortest("return_to_user"), Some(11), "{r:#?}");
    assert_eq!(invariants(&r), ["return_to_user"]);
    let fixed = lang::shipped_mutant(
        "lutomirski-2015.c",
        "lutomirski-2015-irq-work-resched",
        "user_enter_irqoff: do_nocb_deferred_wakeup(), user_enter_irqoff();",
        "user_enter_irqoff: rcu_irq_work_resched(), user_enter_irqoff();",
    )
    .unwrap();
    assert_clean(&run(fixed, 2, NOCB));
}

// ----------------------------------------------------------------- idle

#[test]
fn no_flush_in_do_idle_is_refuted() {
    let d = mutant(
        "mutant-no-flush-in-do-idle",
        "local_irq_disable(), __current_set_polling(), rcu_nocb_flush_deferred_wakeup();",
        "local_irq_disable(), __current_set_polling();",
    );
    let r = run(d, 2, NOCB);
    // A device IRQ on the idle task queues a callback; the idle loop halts with it deferred.
    assert_eq!(r.shortest("idle_halt_with_work"), Some(22), "{r:#?}");
    assert_eq!(invariants(&r), ["idle_halt_with_work"]);
}

#[test]
fn a_flush_in_the_idle_eqs_entry_loses_the_wakeup() {
    // The 4.x place (rcu_idle_enter() -> rcu_eqs_enter_common()): after the idle loop's last
    // need_resched() check, so the wakeup's TIF_NEED_RESCHED comes too late for the halt.
    let d = edited(
        "generic-entry.c",
        "mutant-flush-in-idle-eqs-entry",
        &[
            ("local_irq_disable(), __current_set_polling(), rcu_nocb_flush_deferred_wakeup();", "local_irq_disable(), __current_set_polling();", 1),
            (
                "\ttrace_cpu_idle: rcu_read_lock(), rcu_read_unlock();\n",
                "\ttrace_cpu_idle: rcu_read_lock(), rcu_read_unlock();\n\trcu_nocb_flush_deferred_wakeup();\n",
                1,
            ),
        ],
    );
    let r = run(d, 2, NOCB);
    assert_eq!(r.shortest("idle_halt_with_work"), Some(23), "{r:#?}");
    assert_eq!(invariants(&r), ["idle_halt_with_work"]);
}

#[test]
fn halting_with_need_resched_set_is_refuted() {
    // do_idle() without current_clr_polling_and_test(): the idle task still polls, so the
    // housekeeping CPU's wakeup sets TIF_NEED_RESCHED without an IPI, and the halt loses it.
    let d = mutant(
        "mutant-idle-halts-without-need-resched-check",
        "\t\t\tif (!current_clr_polling_and_test())\n\t\t\t\tdefault_idle_call();",
        "\t\t\tdefault_idle_call();",
    );
    let r = run(d, 2, Mech::default());
    assert_eq!(r.shortest("idle_halt_with_work"), Some(14), "{r:#?}");
    assert_eq!(invariants(&r), ["idle_halt_with_work"]);
    // Testing need_resched() without clearing the polling flag first leaves the same window.
    let d = mutant(
        "mutant-idle-tests-without-clearing-polling",
        "\t\t\tif (!current_clr_polling_and_test())",
        "\t\t\tif (!need_resched())",
    );
    let r = run(d, 2, Mech::default());
    assert_eq!(r.shortest("idle_halt_with_work"), Some(14), "{r:#?}");
}

// ----------------------------------------------------------------- readers in every context

#[test]
fn a_tracepoint_reader_inside_the_idle_eqs_is_refuted() {
    // trace_cpu_idle() after ct_idle_enter(): "RCU used illegally from idle CPU" (the class of
    // bugs that made tracepoints in idle use the _rcuidle forms, then moved them out of the EQS).
    let d = mutant(
        "mutant-trace-cpu-idle-in-eqs",
        "\tinstrumentation_begin();\n\ttrace_cpu_idle: rcu_read_lock(), rcu_read_unlock();\n\tinstrumentation_end();\n\tct_idle_enter();\n",
        "\tct_idle_enter();\n\tinstrumentation_begin();\n\ttrace_cpu_idle: rcu_read_lock(), rcu_read_unlock();\n\tinstrumentation_end();\n",
    );
    let r = run(d, 2, Mech::default());
    assert_eq!(r.shortest("rcu_read_lock_idle"), Some(12), "{r:#?}");
    // The tracepoint is instrumentable code in the EQS too.
    assert_eq!(
        invariants(&r),
        ["rcu_read_lock_idle", "rcu_watching_in_kernel"]
    );
}

#[test]
fn softirqs_from_idle_keep_generic_entry_clean() {
    // Softirqs run by irq_exit_rcu() on the idle task, with IRQs on, readers in them and in
    // the handlers, and grace periods starting in any of them.
    let d = lang::load_shipped("generic-entry.c").unwrap();
    let r = run(d, 2, SOFTIRQ);
    assert_clean(&r);
}

#[test]
fn softirqs_on_irq_exit_from_user_run_in_user_context_in_4_3() {
    // 4.3's IRQ entry from user mode left context tracking in USER (only rcu_irq_enter()), so
    // irq_exit()'s softirqs ran kernel code with IRQs on while it said USER: Lutomirski's
    // invariant, broken by a mechanism the model did not have before. lutomirski-2015 enters
    // kernel context first and holds.
    let d = ctxtrack_sim::design::by_name("linux-4.3").unwrap();
    let r = run(d, 2, SOFTIRQ);
    let softirq: Vec<_> = r
        .violations
        .iter()
        .filter(|v| v.site.starts_with("__do_softirq:"))
        .map(|v| (v.invariant.as_str(), v.length))
        .collect();
    assert_eq!(softirq, [("ct_kernel_with_irqs_on", 12)]);
    // ksoftirqd is a second task to switch to: 4.3's preemption in USER (schedule_in_user)
    // now runs a kthread with RCU not watching, a consequence of the same bug.
    assert_eq!(
        r.violations
            .iter()
            .find(|v| v.site.starts_with("run_ksoftirqd:"))
            .map(|v| (v.invariant.as_str(), v.length)),
        Some(("rcu_watching_in_kernel", 46))
    );
    let d = ctxtrack_sim::design::by_name("lutomirski-2015").unwrap();
    assert_clean(&run(d, 2, SOFTIRQ));
}

/// `irqentry_enter()` on the idle task calls `ct_irq_enter()` "whether RCU is watching or not":
/// an IRQ nested in the softirq that an IRQ from idle runs must raise `nmi_nesting`, or the
/// tick in it passes `rcu_is_cpu_rrupt_from_idle()` as a first-level interrupt and ends a grace
/// period under the softirq's reader (the comment in Linux's `irqentry_enter()`). Depth 3
/// (idle, its IRQ, the nested tick) with only IRQ events is enough, and cheap.
#[test]
fn ct_irq_enter_only_when_rcu_is_not_watching_ends_a_grace_period_early() {
    let cfg = |d| CheckConfig {
        depth: 3,
        events: Events::NONE.with(ctxtrack_check::model::Event::Irq),
        softirq: true,
        ..CheckConfig::new(d)
    };
    let d = mutant(
        "mutant-idle-ct-irq-enter-if-not-watching",
        "\tif (is_idle_task(current)) {\n\t\tct_irq_enter();",
        "\tif (is_idle_task(current) && !rcu_is_watching()) {\n\t\tct_irq_enter();",
    );
    let r = check(cfg(d), &mut |_| {}).expect("check runs");
    assert_eq!(r.shortest("rcu_gp_safety"), Some(27), "{r:#?}");
    let shipped = lang::load_shipped("generic-entry.c").unwrap();
    assert_clean(&check(cfg(shipped), &mut |_| {}).expect("check runs"));
}

// ----------------------------------------------------------------- the tick's idle test

/// Runs CPU 1's next steps (and its worker's next system call when it is in user mode)
/// until `done` holds (at most `limit` steps).
fn step_until(model: &Model, m: &mut Machine, limit: usize, done: impl Fn(&Machine) -> bool) {
    for _ in 0..limit {
        if done(m) {
            return;
        }
        let a = match m.cpus()[1].mode {
            Mode::User => Action::Syscall(1),
            _ => Action::Step(1),
        };
        model.apply(m, a);
    }
    let c = &m.cpus()[1];
    assert!(
        done(m),
        "not reached in {limit} steps: {:?}, {}, preempt_count {:#x}",
        c.mode,
        m.tasks()[c.current].comm,
        c.hw.preempt_count
    );
}

/// `rcu_sched_clock_irq()` asks `rcu_is_cpu_rrupt_from_idle()`, not `is_idle_task()`: a tick
/// that interrupts a softirq the idle task runs on IRQ exit is not a quiescent state (the
/// softirq is in a read-side section). The rule's other cases are `ctxtrack-core`'s tests.
#[test]
fn a_tick_in_a_softirq_on_the_idle_task_is_not_a_quiescent_state() {
    let d = lang::load_shipped("generic-entry.c").unwrap();
    let cfg = CheckConfig {
        depth: 3,
        softirq: true,
        ..CheckConfig::new(d)
    };
    let model = Model::new(cfg).unwrap();
    let mut m = model.roots().unwrap().remove(0).machine;
    let idle = m.cpus()[1].current;
    // Boot: the worker runs; let it block so that the idle task halts.
    step_until(&model, &mut m, 10_000, |m| {
        m.cpus()[1].mode == Mode::Halted && m.cpus()[1].current == idle
    });
    // A device IRQ; its softirq runs net_rx_action() in a read-side section, IRQs on.
    model.apply(&mut m, Action::Irq(1, Vector::Device));
    step_until(&model, &mut m, 1_000, |m| {
        m.tasks()[m.cpus()[1].current].rcu_depth > 0
            && m.cpus()[1].hw.preempt_count & preempt::SOFTIRQ_OFFSET != 0
            && m.cpus()[1].hw.irqs_on
    });
    // A grace period starts inside the reader; the tick lands in the softirq.
    model.apply(&mut m, Action::GpStart);
    assert!(m.rcu().scan.holds_out(1));
    let qs = m.cpus()[1].counters.rcu_qs;
    model.apply(&mut m, Action::Irq(1, Vector::LocalTimer));
    // The tick's IRQ nests (nmi_nesting 1 + 2), runs and leaves; the reader still runs.
    step_until(&model, &mut m, 1_000, |m| {
        m.cpus()[1].pcpu.ct.nmi_nesting() == 3
    });
    step_until(&model, &mut m, 1_000, |m| {
        m.cpus()[1].pcpu.ct.nmi_nesting() == 1
    });
    assert_eq!(m.tasks()[m.cpus()[1].current].rcu_depth, 1);
    assert_eq!(
        m.cpus()[1].counters.rcu_qs,
        qs,
        "the nested tick reported a QS"
    );
    assert!(m.rcu().scan.holds_out(1));
    step_until(&model, &mut m, 1_000, |m| m.cpus()[1].mode == Mode::Halted);
    assert_eq!(m.monitor().count, 0);
}

/// Every mechanism at once, grace periods starting in IRQ and NMI handlers' readers too:
/// generic-entry (the reference) holds.
#[test]
fn generic_entry_holds_with_every_mechanism() {
    let d = lang::load_shipped("generic-entry.c").unwrap();
    let cfg = CheckConfig {
        depth: 2,
        softirq: true,
        nocb: true,
        gp_in_hardirq: true,
        ..CheckConfig::new(d)
    };
    let r = check(cfg, &mut |_| {}).expect("check runs");
    assert_clean(&r);
    assert!(
        r.events.ends_with(",softirq,nocb,gp_in_hardirq"),
        "{}",
        r.events
    );
}
