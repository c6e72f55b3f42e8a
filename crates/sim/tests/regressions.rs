//! One test per fixed simulator bug, named after it.

use ctxtrack_sim::probe::{run_probe, Probe};
use ctxtrack_sim::{design, run, Config, Workload};

fn stress_cfg(design_name: &str) -> Config {
    let mut c = Config::new(design::by_name(design_name).unwrap());
    c.stop_on_violation = false;
    c.preempt = true;
    c.irq_period_ns = Some(20_000);
    c.nmi_period_ns = Some(97_000);
    c.duration_ns = Some(20_000_000);
    c
}

/// Wakeups that migrated a task kept its absolute vruntime, so per-CPU `min_vruntime` leaked
/// between run queues and grew without bound (1e12 ns after 70 ms; debug builds overflowed).
#[test]
fn vruntime_stays_bounded_under_migration() {
    let (r, m) = run(
        Config::new(design::by_name("generic-entry").unwrap()),
        &Workload::messaging_default(),
        ctxtrack_sim::TraceOutputs::none(),
    );
    assert_eq!(r.violations, 0);
    let max_vr = m.tasks().iter().map(|t| t.vruntime).max().unwrap();
    let max_min = m.cpus().iter().map(|c| c.min_vruntime).max().unwrap();
    // No task can be ahead of real time by more than the placement and migration lag bounds.
    assert!(
        max_vr <= r.sim_time_ns + 48_000_000,
        "vruntime {max_vr} after {} ns",
        r.sim_time_ns
    );
    assert!(
        max_min <= r.sim_time_ns + 48_000_000,
        "min_vruntime {max_min}"
    );
}

/// The 4.x `retint_kernel` preempted the idle task on return from an IRQ that hit `sti; hlt`,
/// scheduling from inside the idle EQS; Linux's idle task runs with preemption disabled.
#[test]
fn the_idle_task_is_never_preempted_from_an_irq() {
    for d in ["linux-4.3", "lutomirski-2015"] {
        let (r, _) = run(
            stress_cfg(d),
            &Workload::Messaging {
                groups: 2,
                loops: 10,
                pipe: false,
                thread: false,
            },
            ctxtrack_sim::TraceOutputs::none(),
        );
        // By invariant and path name, not by a substring a rename could silently miss: the
        // idle path must still be called do_idle for the site filter to mean anything.
        let design = design::by_name(d).unwrap();
        assert_eq!(design.idle.name, "do_idle");
        use ctxtrack_core::Violation as V;
        let nesting = [
            V::KernelExitNmiNesting,
            V::NestingNegative,
            V::NmiNestingNegative,
            V::NmiExitNestingNotPositive,
            V::KernelEnterNmiNesting,
        ]
        .map(|v| v.name());
        let bad: Vec<_> = r
            .violations_by_site
            .keys()
            .filter(|k| {
                let (inv, site) = k.split_once(" @ ").expect("invariant @ site");
                nesting.contains(&inv) || site.starts_with("do_idle:")
            })
            .collect();
        assert!(bad.is_empty(), "{d}: {bad:?}");
    }
}

/// An IPI that arrived while IRQs were off could be "earlier" than the user burst that followed,
/// and user time was computed as `arrival - burst start` (underflow). Debug builds (tests) check
/// overflow, so a stress run completing is the test; ground-truth time must also add up.
#[test]
fn late_ipis_never_move_a_cpu_clock_backwards() {
    let (r, _) = run(
        stress_cfg("generic-entry"),
        &Workload::SyscallStorm {
            user_ns: 20_000,
            urn_every: 5,
            per_cpu: 2,
        },
        ctxtrack_sim::TraceOutputs::none(),
    );
    assert_eq!(r.violations, 0);
    for c in &r.per_cpu {
        let total = c.user_ns + c.sys_ns + c.idle_ns;
        // A CPU in kernel mode at the end stops at its own clock, within one step of the end.
        assert!(
            total.abs_diff(r.sim_time_ns) <= 1_000_000,
            "cpu {}: {total} vs {}",
            c.cpu,
            r.sim_time_ns
        );
    }
}

/// Merging `rcu_read_unlock` into the blocking syscall body made `Flow::Retry` unlock twice; the
/// body is a step of its own. A blocked-and-retried read still unlocks exactly once.
#[test]
fn a_retried_syscall_body_unlocks_rcu_once() {
    let (r, m) = run(
        Config::new(design::by_name("generic-entry").unwrap()),
        &Workload::Messaging {
            groups: 1,
            loops: 20,
            pipe: true,
            thread: false,
        },
        ctxtrack_sim::TraceOutputs::none(),
    );
    assert_eq!(r.violations, 0);
    assert!(m.tasks().iter().all(|t| t.rcu_depth == 0));
    // And the probe path still has the reader section inside the syscall.
    assert!(run_probe(
        design::by_name("generic-entry").unwrap(),
        Probe::IrqFromKernel,
        true
    )
    .is_ok());
}
