//! `compare`: deterministic per seed, and its stress runs tell the designs apart.

use ctxtrack_sim::compare::{compare, Options};
use ctxtrack_sim::{design, Config, Workload};

fn base() -> Config {
    Config::new(design::by_name("generic-entry").unwrap())
}

#[test]
fn compare_json_is_deterministic_per_seed() {
    let w = Workload::Messaging {
        groups: 1,
        loops: 5,
        pipe: true,
        thread: false,
    };
    let opts = Options {
        stress_seeds: 1,
        stress_duration_ns: 2_000_000,
        ..Options::default()
    };
    let go = |seed| {
        let mut c = base();
        c.seed = seed;
        serde_json::to_string(&compare(&c, &w, design::all(), &opts, |_, _, _| {})).unwrap()
    };
    let a = go(5);
    assert_eq!(a, go(5));
    assert_ne!(a, go(6));
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(
        v["rows"].as_array().unwrap().len(),
        10,
        "5 designs x ct off/on"
    );
    assert_eq!(v["rows"][0]["design"], "linux-4.3");
    assert_eq!(v["rows"][0]["ct"], "off");
    assert_eq!(
        v["paths"]["linux-4.3"]["irq_from_user"]["on"]["rcu_hooks"],
        4
    );
    assert_eq!(v["stress"].as_array().unwrap().len(), 5);
}

#[test]
fn compare_rows_show_the_static_key_breakage_and_the_double_hooks() {
    let w = Workload::SyscallStorm {
        user_ns: 2_000,
        urn_every: 0,
        per_cpu: 1,
    };
    let mut c = base();
    c.duration_ns = Some(5_000_000);
    c.irq_period_ns = Some(50_000);
    let designs = [
        design::by_name("linux-4.3").unwrap(),
        design::by_name("generic-entry").unwrap(),
    ];
    let r = compare(
        &c,
        &w,
        &designs,
        &Options {
            stress_seeds: 0,
            ..Options::default()
        },
        |_, _, _| {},
    );
    let row = |d: &str, ct: &str| {
        r.rows
            .iter()
            .find(|x| x.design == d && x.ct == ct)
            .unwrap()
            .clone()
    };
    assert!(
        row("linux-4.3", "off").ct_calls_inactive > 100,
        "one wasted call per device IRQ from user"
    );
    assert_eq!(row("generic-entry", "off").ct_calls_inactive, 0);
    // Per IRQ from user: 4.3 pays irq save/restore and a second RCU + vtime round (probe: ~2x).
    assert!(
        row("linux-4.3", "on").ct_cycles_per_irq
            > 1.8 * row("generic-entry", "on").ct_cycles_per_irq
    );
    assert!(row("linux-4.3", "on").violations > 0);
    assert_eq!(row("generic-entry", "on").violations, 0);
    let f = row("linux-4.3", "on").first_violation.unwrap();
    assert_eq!(f.invariant, "ct_kernel_with_irqs_on");
    let steps: Vec<&str> = f.trace.iter().map(|h| h.step).collect();
    assert_eq!(steps, ["entry_SYSCALL_64", "ENABLE_INTERRUPTS"]);
}

#[test]
fn stress_runs_find_the_exit_loop_window_of_weisbecker_2015_only() {
    let c = base();
    let designs = [
        design::by_name("weisbecker-2015").unwrap(),
        design::by_name("weisbecker-hoisted").unwrap(),
    ];
    let opts = Options {
        stress_seeds: 4,
        stress_duration_ns: 20_000_000,
        ..Options::default()
    };
    let r = compare(
        &c,
        &Workload::messaging_default(),
        &designs,
        &opts,
        |_, _, _| {},
    );
    let site = "ct_kernel_with_irqs_on @ prepare_exit_to_usermode: prev_state = exception_enter(), exit_to_usermode_loop_work(regs)";
    let w15 = &r.stress[0];
    let hoisted = &r.stress[1];
    assert!(
        w15.violations.get(site).copied().unwrap_or(0) > 0,
        "{:?}",
        w15.violations.keys()
    );
    let f = &w15.shortest[site];
    // The IRQ from user, irq_exit back to EQS, then the loop enables IRQs in USER.
    let steps: Vec<&str> = f.trace.iter().map(|h| h.step).collect();
    assert_eq!(steps.first(), Some(&"interrupt"), "{steps:?}");
    assert_eq!(steps.last(), Some(&"local_irq_enable()"), "{steps:?}");
    assert!(f
        .trace
        .iter()
        .all(|h| h.ct_state == ctxtrack_core::CtState::User));
    assert!(
        hoisted
            .violations
            .keys()
            .all(|k| !k.contains("prepare_exit_to_usermode")),
        "{:?}",
        hoisted.violations
    );
    // Both share 4.3's syscall entry window.
    assert!(hoisted
        .violations
        .keys()
        .any(|k| k.contains("syscall_trace_enter_phase1")));
}

/// `compare` with the CT_WORK rows: every design with deferral off and on side by side, under
/// senders that need every CPU synchronized.
#[test]
fn deferral_rows_show_the_ipis_that_deferral_removes() {
    let mut c = base();
    c.text_poke_period_ns = Some(100_000);
    c.tlbi_period_ns = Some(300_000);
    let designs = [
        design::by_name("generic-entry").unwrap(),
        design::by_name("lutomirski-2015").unwrap(),
    ];
    let w = Workload::Messaging {
        groups: 2,
        loops: 20,
        pipe: false,
        thread: false,
    };
    let opts = Options {
        stress_seeds: 0,
        ct_work: true,
        ..Options::default()
    };
    let r = compare(&c, &w, &designs, &opts, |_, _, _| {});
    assert_eq!(r.rows.len(), 6, "off, on, on with deferral per design");
    for d in ["generic-entry", "lutomirski-2015"] {
        let rows: Vec<_> = r.rows.iter().filter(|x| x.design == d).collect();
        assert!(rows[0].ct_work.is_none(), "ct off: no deferral row");
        let (off, on) = (
            rows[1].ct_work.as_ref().unwrap(),
            rows[2].ct_work.as_ref().unwrap(),
        );
        assert!(!off.deferral && on.deferral);
        assert_eq!((off.deferred, off.flushes), (0, 0));
        assert!(on.deferred > 0 && on.flushes > 0 && on.flushes <= on.deferred);
        assert!(
            on.ipis_to_nohz_full < off.ipis_to_nohz_full,
            "{d}: {} IPIs with deferral vs {} without",
            on.ipis_to_nohz_full,
            off.ipis_to_nohz_full
        );
        assert_eq!(rows[2].violations, 0, "{d}");
    }
    let text = r.render_text();
    assert!(text.contains("deferred IPIs (CT_WORK)"), "{text}");
    assert!(text.contains(" on* "), "{text}");
}
