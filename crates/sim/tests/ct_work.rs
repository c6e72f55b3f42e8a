//! Deferred IPIs (CT_WORK) in simulated runs: the senders stop interrupting isolated CPUs in
//! user mode, every deferral is paid by a flush before any patchable step (the monitor is on
//! throughout), and the figures say so per CPU.

use ctxtrack_sim::report::CpuWorkReport;
use ctxtrack_sim::{design, run, Config, Report, TraceOutputs, Workload};

fn cfg(ct_work: bool) -> Config {
    let mut c = Config::new(design::by_name("generic-entry").unwrap());
    c.ct_work = ct_work;
    c.text_poke_period_ns = Some(1_000_000);
    c.tlbi_period_ns = Some(3_000_000);
    c.duration_ns = Some(50_000_000);
    c
}

fn work(r: &Report, cpu: usize) -> &CpuWorkReport {
    r.per_cpu[cpu].ct_work.as_ref().expect("work figures")
}

#[test]
fn deferral_removes_the_ipis_to_isolated_cpus_in_user_mode() {
    let (off, _) = run(cfg(false), &Workload::CpuBound, TraceOutputs::none());
    let (on, _) = run(cfg(true), &Workload::CpuBound, TraceOutputs::none());
    assert_eq!((off.violations, on.violations), (0, 0));
    for c in 1..8 {
        let (a, b) = (work(&off, c), work(&on, c));
        // 50 text pokes and 16 TLB flushes by 50 ms; the 16 that coincide share one IPI, and
        // the last one is still in flight when the run ends.
        assert_eq!((a.deferred, a.ipis, a.flushes), (0, 49, 0), "CPU {c}");
        assert!(a.longest_quiet_ns <= 1_000_000, "CPU {c}: {a:?}");
        // With deferral: no IPI at all; the spinning task never enters the kernel again, so
        // the work stays owed (coalesced into the state word) and nothing patchable runs.
        assert_eq!((b.deferred, b.ipis), (66, 0), "CPU {c}");
        assert!(b.longest_quiet_ns >= 45_000_000, "CPU {c}: {b:?}");
        assert!(b.user_interruptions < a.user_interruptions);
    }
    // The housekeeping CPU is never deferred to (it is not tracked).
    assert_eq!(work(&on, 0).deferred, 0);
}

#[test]
fn every_deferral_is_flushed_before_patchable_code_under_interrupts() {
    // Messaging: tasks block and wake, IRQs and NMIs land in user mode, idle and the kernel;
    // the monitor's ct_work_unflushed is checked before every instrumentable step.
    let mut c = cfg(true);
    c.irq_period_ns = Some(200_000);
    c.nmi_period_ns = Some(500_000);
    c.text_poke_period_ns = Some(100_000);
    c.tlbi_period_ns = Some(300_000);
    c.duration_ns = None;
    let w = Workload::Messaging {
        groups: 2,
        loops: 20,
        pipe: false,
        thread: false,
    };
    let (r, _) = run(c, &w, TraceOutputs::none());
    assert_eq!(r.violations, 0, "{:?}", r.violations_by_invariant);
    let sum = |f: fn(&CpuWorkReport) -> u64| (0..8).map(|c| f(work(&r, c))).sum::<u64>();
    let (deferred, ipis, flushes) = (sum(|w| w.deferred), sum(|w| w.ipis), sum(|w| w.flushes));
    assert!(
        deferred > 100 && ipis > 100,
        "{deferred} deferred, {ipis} IPIs"
    );
    // Deferrals of one type coalesce in the word until a flush: never more flushes than
    // deferrals, and most are paid.
    assert!(
        flushes <= deferred && flushes * 2 > deferred,
        "{flushes} of {deferred}"
    );
}

#[test]
fn runs_with_deferral_are_deterministic() {
    let json = || {
        let (r, _) = run(cfg(true), &Workload::CpuBound, TraceOutputs::none());
        serde_json::to_string(&r).unwrap()
    };
    assert_eq!(json(), json());
}
