//! The checker against designs with one known bug each (defined here, never shipped), against
//! generic-entry (no violation) and against the 2015 designs (what the thread argued about).
//!
//! Each mutant is generic-entry with one path changed; the test asserts which invariant the
//! checker refutes it with and the length of the shortest trace (breadth-first, so a change of
//! that length means the model or the checker changed, not noise).

use ctxtrack_check::model::{CheckConfig, Events};
use ctxtrack_check::{check, DesignResult};
use ctxtrack_sim::cost::CostKey as C;
use ctxtrack_sim::design::{generic_entry as g, Design, Flow, Path, Step};
use ctxtrack_sim::kernel::SYSCALL_BODY;

fn run(d: &'static Design, depth: u32) -> DesignResult {
    let cfg = CheckConfig {
        depth,
        events: Events::ALL,
        ..CheckConfig::new(d)
    };
    let r = check(cfg, &mut |_| {}).expect("check runs");
    // Shown when a test fails.
    println!("{}", ctxtrack_check::render(&r, None));
    r
}

/// The shortest counterexample of `inv`, if the checker found one.
fn shortest(r: &DesignResult, inv: &str) -> Option<usize> {
    r.violations
        .iter()
        .filter(|v| v.invariant == inv)
        .map(|v| v.length)
        .min()
}

fn invariants(r: &DesignResult) -> Vec<&str> {
    let mut v: Vec<&str> = r.violations.iter().map(|v| v.invariant.as_str()).collect();
    v.sort();
    v.dedup();
    v
}

// ----------------------------------------------------------------- mutant 1

/// `do_syscall_64` with `exit_to_user_mode()` (→ `user_enter_irqoff()`) moved before the exit
/// work loop: the loop's instrumentable code and `schedule()` run in CT_STATE_USER.
static SYSCALL_USER_ENTER_EARLY: Path = Path {
    name: "do_syscall_64",
    steps: &[
        Step::noinstr("entry_SYSCALL_64", C::SyscallInsn, |_| Flow::Next),
        Step::noinstr("enter_from_user_mode", C::Glue, |k| {
            k.ct().user_exit_irqoff();
            Flow::Next
        }),
        Step::instr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::branch("do_syscall_x64", |_| Flow::Call(&SYSCALL_BODY)),
        Step::instr("local_irq_disable_exit_to_user", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::noinstr("exit_to_user_mode (moved up)", C::Glue, |k| {
            k.ct().user_enter_irqoff();
            Flow::Next
        }),
        Step::branch("exit_to_user_mode_prepare", |_| {
            Flow::Call(&g::EXIT_TO_USER_MODE_PREPARE)
        }),
        Step::noinstr("sysretq", C::Sysret, |_| Flow::ReturnToUser),
    ],
};

static USER_ENTER_EARLY: Design = Design {
    name: "mutant-user-enter-before-work-loop",
    syscall: &SYSCALL_USER_ENTER_EARLY,
    ..g::DESIGN
};

#[test]
fn user_enter_before_the_work_loop_is_refuted() {
    let r = run(&USER_ENTER_EARLY, 2);
    assert_eq!(r.verdict, "violated");
    // The worker's read blocks on its empty pipe, a remote write wakes it (IPI to the idle
    // task), the read returns, exit_to_user_mode (moved up) enters USER and the loop's first
    // instrumentable step, tick_nohz_user_enter_prepare, runs in the EQS.
    assert_eq!(shortest(&r, "rcu_watching_in_kernel"), Some(22), "{r:#?}");
}

// ----------------------------------------------------------------- mutant 2

/// `irqentry_exit()` that forgets `state.exit_rcu` for an IRQ that hit the idle EQS: the
/// `ct_irq_enter()` of `irqentry_enter()` is never undone.
static IRQENTRY_EXIT_NO_EXIT_RCU: Path = Path {
    name: "irqentry_exit",
    steps: &[
        Step::branch("user_mode(regs)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("irqentry_exit_cond_resched")
            }
        }),
        Step::branch("exit_to_user_mode_prepare", |_| {
            Flow::Call(&g::EXIT_TO_USER_MODE_PREPARE)
        }),
        Step::noinstr("exit_to_user_mode", C::Glue, |k| {
            k.ct().user_enter_irqoff();
            Flow::Return
        }),
        Step::instr("irqentry_exit_cond_resched", C::Glue, |k| {
            if k.preemption_enabled() {
                k.ct().rcu_irq_exit_check_preempt();
                if k.need_resched() {
                    return Flow::Goto("preempt_schedule_irq");
                }
            }
            Flow::Return
        }),
        Step::work("preempt_schedule_irq", C::None, |k| {
            k.preempt_schedule_irq();
            Flow::Return
        }),
    ],
};

static IRQ_NO_EXIT_RCU: Path = Path {
    name: "asm_sysvec",
    steps: &[
        Step::noinstr("idtentry (hw delivery)", C::IrqDelivery, |_| Flow::Next),
        Step::branch("irqentry_enter", |_| Flow::Call(&g::IRQENTRY_ENTER)),
        Step::instr("irq_enter_rcu", C::Glue, |k| {
            k.irq_enter_rcu();
            Flow::Next
        }),
        Step::work("sysvec handler", C::None, |k| {
            k.handle_irq_vector();
            Flow::Next
        }),
        Step::instr("irq_exit_rcu", C::Glue, |k| {
            k.irq_exit_rcu();
            Flow::Next
        }),
        Step::branch("irqentry_exit", |_| Flow::Call(&IRQENTRY_EXIT_NO_EXIT_RCU)),
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

static NO_EXIT_RCU: Design = Design {
    name: "mutant-idle-exit-rcu-forgotten",
    irq: &IRQ_NO_EXIT_RCU,
    ..g::DESIGN
};

#[test]
fn forgotten_exit_rcu_on_the_idle_path_is_refuted() {
    let r = run(&NO_EXIT_RCU, 2);
    assert_eq!(r.verdict, "violated");
    // Shortest: an IRQ on the idle task before it enters the EQS (ct_irq_enter is
    // unconditional for the idle task): the iretq finds nmi_nesting 2 too high.
    assert_eq!(shortest(&r, "entry_exit_state"), Some(8), "{r:#?}");
    // Later the idle EQS entry itself warns about the leftover nesting.
    assert!(
        shortest(&r, "ct_kernel_exit_nmi_nesting").is_some(),
        "{r:#?}"
    );
}

// ----------------------------------------------------------------- mutant 3

/// `exc_nmi` whose exit does not undo `ct_nmi_enter()`: the NMI nesting count (and the RCU
/// state it guards) is never restored.
static NMI_NOT_RESTORED: Path = Path {
    name: "asm_exc_nmi",
    steps: &[
        Step::noinstr("asm_exc_nmi (hw delivery)", C::IrqDelivery, |_| Flow::Next),
        Step::noinstr("irqentry_nmi_enter", C::Glue, |k| {
            k.nmi_enter_count();
            k.ct().ct_nmi_enter();
            Flow::Next
        }),
        Step::work("default_do_nmi", C::NmiHandler, |k| {
            k.default_do_nmi();
            Flow::Next
        }),
        Step::noinstr("irqentry_nmi_exit (no ct_nmi_exit)", C::Glue, |k| {
            k.nmi_exit_count();
            Flow::Next
        }),
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

static NMI_NESTING: Design = Design {
    name: "mutant-nmi-nesting-not-restored",
    nmi: &NMI_NOT_RESTORED,
    ..g::DESIGN
};

#[test]
fn nmi_nesting_not_restored_is_refuted() {
    let r = run(&NMI_NESTING, 2);
    assert_eq!(r.verdict, "violated");
    // An NMI (delivery and its 5 steps): the iretq finds the nesting count still raised.
    assert_eq!(shortest(&r, "entry_exit_state"), Some(6), "{r:#?}");
}

// ----------------------------------------------------------------- mutant 4

/// `do_syscall_64` enabling IRQs before `enter_from_user_mode()`.
static SYSCALL_IRQ_ON_EARLY: Path = Path {
    name: "do_syscall_64",
    steps: &[
        Step::noinstr("entry_SYSCALL_64", C::SyscallInsn, |_| Flow::Next),
        Step::instr("local_irq_enable (moved up)", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::noinstr("enter_from_user_mode", C::Glue, |k| {
            k.ct().user_exit_irqoff();
            Flow::Next
        }),
        Step::branch("do_syscall_x64", |_| Flow::Call(&SYSCALL_BODY)),
        Step::instr("local_irq_disable_exit_to_user", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::branch("exit_to_user_mode_prepare", |_| {
            Flow::Call(&g::EXIT_TO_USER_MODE_PREPARE)
        }),
        Step::noinstr("exit_to_user_mode", C::Glue, |k| {
            k.ct().user_enter_irqoff();
            Flow::Next
        }),
        Step::noinstr("sysretq", C::Sysret, |_| Flow::ReturnToUser),
    ],
};

static IRQ_ON_EARLY: Design = Design {
    name: "mutant-irq-enable-before-user-exit",
    syscall: &SYSCALL_IRQ_ON_EARLY,
    ..g::DESIGN
};

#[test]
fn irq_enable_before_the_switch_to_kernel_is_refuted() {
    let r = run(&IRQ_ON_EARLY, 2);
    assert_eq!(r.verdict, "violated");
    // local_irq_enable is instrumentable and runs in the EQS (syscall, entry step, the enable);
    // the next step runs with IRQs on while context tracking says USER.
    assert_eq!(shortest(&r, "rcu_watching_in_kernel"), Some(3), "{r:#?}");
    assert_eq!(shortest(&r, "ct_kernel_with_irqs_on"), Some(4), "{r:#?}");
}

// ----------------------------------------------------------------- real designs

#[test]
fn generic_entry_holds_at_depth_3_with_every_event() {
    let r = run(&g::DESIGN, 3);
    assert_eq!(r.verdict, "ok", "{r:#?}");
    assert!(r.complete);
    assert!(r.states > 100_000, "explored only {} states", r.states);
}

#[test]
fn the_2015_designs_show_what_the_thread_argued_about() {
    let d = ctxtrack_sim::design::by_name("linux-4.3").unwrap();
    let r = run(d, 2);
    // Lutomirski's "single remaining exception": 4.3's syscall entry enables IRQs in USER.
    assert_eq!(shortest(&r, "ct_kernel_with_irqs_on"), Some(4), "{r:#?}");
    // ... and an IRQ in that window can preempt into schedule() while still in USER.
    assert_eq!(shortest(&r, "schedule_in_user"), Some(11), "{r:#?}");

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
    let sym = run2(&g::DESIGN, true);
    let asym = run2(&g::DESIGN, false);
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
    let a = run2(&IRQ_ON_EARLY, true);
    let b = run2(&IRQ_ON_EARLY, false);
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
