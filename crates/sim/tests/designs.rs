//! Per-path counts of every design, from running the design's steps (`probe`), against counts
//! worked out by hand from the seed thread and the reference notes (`shared/reference`).
//!
//! Columns: CT calls, calls while inactive, RCU hooks, vtime hooks, irq save/restore, static
//! branch tests, user_exit, user_enter. "on" = CPU 1 is nohz_full (context tracking active);
//! "off" = built in, key off.

use ctxtrack_sim::design;
use ctxtrack_sim::probe::{run_probe, PathCounts, Probe};

type Row = (&'static str, Probe, bool, [u64; 8]);

fn counts(c: &PathCounts) -> [u64; 8] {
    [
        c.ct_calls,
        c.ct_calls_inactive,
        c.rcu_hooks,
        c.vtime_hooks,
        c.irq_save_restore,
        c.static_branches,
        c.user_exit,
        c.user_enter,
    ]
}

use Probe::*;
const ON: bool = true;
const OFF: bool = false;

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // generic-entry: one user_exit_irqoff/user_enter_irqoff pair per user entry, both behind the
    // static key (no call while off); ct_irq_enter only from idle; check_tick from kernel.
    ("generic-entry", Syscall,           ON,  [2, 0, 2, 2, 0, 2, 1, 1]),
    ("generic-entry", Syscall,           OFF, [0, 0, 0, 0, 0, 2, 0, 0]),
    ("generic-entry", IrqFromUser,       ON,  [2, 0, 2, 2, 0, 2, 1, 1]),
    ("generic-entry", IrqFromUser,       OFF, [0, 0, 0, 0, 0, 2, 0, 0]),
    ("generic-entry", IrqFromIdle,       ON,  [2, 0, 2, 0, 0, 0, 0, 0]),
    ("generic-entry", IrqFromIdle,       OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    ("generic-entry", IrqFromKernel,     ON,  [0, 0, 1, 0, 0, 1, 0, 0]),
    ("generic-entry", IrqFromKernel,     OFF, [0, 0, 0, 0, 0, 1, 0, 0]),
    ("generic-entry", ExceptionFromUser, ON,  [2, 0, 2, 2, 0, 2, 1, 1]),
    ("generic-entry", ExceptionFromUser, OFF, [0, 0, 0, 0, 0, 2, 0, 0]),
    ("generic-entry", Nmi,               ON,  [2, 0, 2, 0, 0, 0, 0, 0]),
    ("generic-entry", Nmi,               OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    // linux-4.3: TIF_NOHZ slow path with the irq-saving user_exit()/user_enter(); the fast path
    // does nothing. IRQs: enter_from_user_mode called even when off (1 wasted call), then
    // rcu_irq_enter/exit and vtime IRQ accounting again: 4 RCU + 4 vtime hooks from user.
    ("linux-4.3", Syscall,               ON,  [3, 0, 2, 2, 2, 2, 1, 1]),
    ("linux-4.3", Syscall,               OFF, [0, 0, 0, 0, 0, 0, 0, 0]),
    ("linux-4.3", IrqFromUser,           ON,  [5, 0, 4, 4, 2, 2, 1, 1]),
    ("linux-4.3", IrqFromUser,           OFF, [3, 1, 2, 0, 0, 2, 0, 0]),
    ("linux-4.3", IrqFromIdle,           ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("linux-4.3", IrqFromIdle,           OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    ("linux-4.3", IrqFromKernel,         ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("linux-4.3", IrqFromKernel,         OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    ("linux-4.3", ExceptionFromUser,     ON,  [3, 0, 2, 2, 2, 4, 1, 1]),
    ("linux-4.3", ExceptionFromUser,     OFF, [1, 1, 0, 0, 0, 4, 0, 0]),
    ("linux-4.3", Nmi,                   ON,  [2, 0, 2, 0, 0, 0, 0, 0]),
    ("linux-4.3", Nmi,                   OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    // weisbecker-2015: IRQs call only rcu_irq_enter/exit + vtime (2 + 2), context tracking stays
    // USER; no wasted call while off. Syscalls and exceptions as 4.3 (the _track return).
    ("weisbecker-2015", Syscall,         ON,  [3, 0, 2, 2, 2, 2, 1, 1]),
    ("weisbecker-2015", Syscall,         OFF, [0, 0, 0, 0, 0, 0, 0, 0]),
    ("weisbecker-2015", IrqFromUser,     ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("weisbecker-2015", IrqFromUser,     OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    ("weisbecker-2015", IrqFromIdle,     ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("weisbecker-2015", IrqFromKernel,   ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("weisbecker-2015", ExceptionFromUser, ON,  [3, 0, 2, 2, 2, 4, 1, 1]),
    ("weisbecker-2015", ExceptionFromUser, OFF, [1, 1, 0, 0, 0, 4, 0, 0]),
    ("weisbecker-2015", Nmi,             ON,  [2, 0, 2, 0, 0, 0, 0, 0]),
    // weisbecker-hoisted: identical when there is no exit work (the loop is not entered).
    ("weisbecker-hoisted", Syscall,      ON,  [3, 0, 2, 2, 2, 2, 1, 1]),
    ("weisbecker-hoisted", IrqFromUser,  ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("weisbecker-hoisted", IrqFromUser,  OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    ("weisbecker-hoisted", ExceptionFromUser, ON, [3, 0, 2, 2, 2, 4, 1, 1]),
    // lutomirski-2015: irqoff forms behind the static key (no irq save, no call while off), but
    // irq_enter/irq_exit still reach RCU and vtime: 4 + 4 from user.
    ("lutomirski-2015", Syscall,         ON,  [2, 0, 2, 2, 0, 2, 1, 1]),
    ("lutomirski-2015", Syscall,         OFF, [0, 0, 0, 0, 0, 2, 0, 0]),
    ("lutomirski-2015", IrqFromUser,     ON,  [4, 0, 4, 4, 0, 2, 1, 1]),
    ("lutomirski-2015", IrqFromUser,     OFF, [2, 0, 2, 0, 0, 2, 0, 0]),
    ("lutomirski-2015", IrqFromIdle,     ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("lutomirski-2015", IrqFromKernel,   ON,  [2, 0, 2, 2, 0, 0, 0, 0]),
    ("lutomirski-2015", IrqFromKernel,   OFF, [2, 0, 2, 0, 0, 0, 0, 0]),
    ("lutomirski-2015", ExceptionFromUser, ON,  [2, 0, 2, 2, 0, 2, 1, 1]),
    ("lutomirski-2015", ExceptionFromUser, OFF, [0, 0, 0, 0, 0, 2, 0, 0]),
    ("lutomirski-2015", Nmi,             ON,  [2, 0, 2, 0, 0, 0, 0, 0]),
];

#[test]
fn per_path_counts_match_the_hand_derived_table() {
    let mut bad = Vec::new();
    for &(name, probe, ct_on, want) in TABLE {
        let d = design::by_name(name).unwrap();
        let got = counts(&run_probe(d, probe, ct_on).unwrap());
        if got != want {
            bad.push(format!(
                "{name} {} ct={}: got {got:?}, want {want:?}",
                probe.name(),
                if ct_on { "on" } else { "off" }
            ));
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

#[test]
fn every_design_and_probe_runs_to_completion() {
    for d in design::all() {
        for p in Probe::ALL {
            for ct in [ON, OFF] {
                let c =
                    run_probe(d, p, ct).unwrap_or_else(|e| panic!("{} {}: {e}", d.name, p.name()));
                assert!(c.steps > 0);
            }
        }
    }
}

#[test]
fn the_seeds_claims_by_counting() {
    let p = |d: &str, probe, ct| run_probe(design::by_name(d).unwrap(), probe, ct).unwrap();
    // "calling RCU/vtime hooks twice": 4.3 reaches RCU and vtime twice per IRQ from user.
    let l43 = p("linux-4.3", IrqFromUser, ON);
    let gen = p("generic-entry", IrqFromUser, ON);
    assert_eq!(
        (l43.rcu_hooks, l43.vtime_hooks),
        (2 * gen.rcu_hooks, 2 * gen.vtime_hooks)
    );
    // "breaking the static key optimizations": a call while inactive on every IRQ and exception.
    assert_eq!(p("linux-4.3", IrqFromUser, OFF).ct_calls_inactive, 1);
    assert_eq!(p("linux-4.3", ExceptionFromUser, OFF).ct_calls_inactive, 1);
    for d in ["weisbecker-2015", "lutomirski-2015", "generic-entry"] {
        assert_eq!(p(d, IrqFromUser, OFF).ct_calls_inactive, 0, "{d}");
    }
    // Rik's "irq save/restore is a large fraction": only the designs with the irq-saving forms.
    assert!(p("linux-4.3", Syscall, ON).irq_save_restore > 0);
    assert_eq!(p("lutomirski-2015", Syscall, ON).irq_save_restore, 0);
    assert_eq!(p("generic-entry", Syscall, ON).irq_save_restore, 0);
    // Andy's "single remaining exception": the 4.3 native syscall runs with IRQs on in USER.
    for d in ["linux-4.3", "weisbecker-2015", "weisbecker-hoisted"] {
        assert_eq!(p(d, Syscall, ON).violations, 1, "{d}");
    }
    for d in ["lutomirski-2015", "generic-entry"] {
        assert_eq!(p(d, Syscall, ON).violations, 0, "{d}");
    }
    // Context-tracking cycles per IRQ from user: 4.3 costs more than generic entry.
    assert!(
        l43.ct_cycles > gen.ct_cycles,
        "{} vs {}",
        l43.ct_cycles,
        gen.ct_cycles
    );
}
