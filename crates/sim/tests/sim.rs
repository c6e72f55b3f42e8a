//! Simulator features: the properties the foundation promises, each asserted on a real run.

use ctxtrack_core::stats::Transition;
use ctxtrack_sim::design::{self, lang, Design};
use ctxtrack_sim::{run, Config, CpuSet, Report, Workload};

fn cfg() -> Config {
    Config::new(design::by_name("generic-entry").unwrap())
}

fn ms(n: u64) -> Option<u64> {
    Some(n * 1_000_000)
}

use ctxtrack_sim::tracer::SharedBuf;

fn small_messaging() -> Workload {
    Workload::Messaging {
        groups: 2,
        loops: 20,
        pipe: false,
        thread: false,
    }
}

fn transitions(r: &Report, cpu: usize) -> u64 {
    r.per_cpu[cpu].ct_transitions_total
}

#[test]
fn cpu_bound_stops_the_tick_and_makes_no_transition_after_start() {
    let mut c = cfg();
    c.duration_ns = ms(20);
    let (short, _) = run(
        c.clone(),
        &Workload::CpuBound,
        ctxtrack_sim::TraceOutputs::none(),
    );
    c.duration_ns = ms(200);
    let (long, _) = run(c, &Workload::CpuBound, ctxtrack_sim::TraceOutputs::none());
    assert_eq!(long.violations, 0, "{:?}", long.violation_reports);
    for cpu in 1..8 {
        let r = &long.per_cpu[cpu];
        assert!(r.nohz_full);
        // Started by ret_from_fork, one tick taken before the tick stops: 2 user_enter, 1 user_exit.
        assert!(
            r.ct_transitions["user_enter"] <= 2,
            "cpu {cpu}: {:?}",
            r.ct_transitions
        );
        assert_eq!(
            transitions(&long, cpu),
            transitions(&short, cpu),
            "cpu {cpu}: transitions after 20 ms"
        );
        assert_eq!(
            r.ticks, short.per_cpu[cpu].ticks,
            "cpu {cpu}: ticks after 20 ms (the tick stayed stopped)"
        );
        assert!(r.ticks <= 2, "cpu {cpu} took {} ticks", r.ticks);
        assert!(
            r.tick_stopped_ns >= 195_000_000,
            "cpu {cpu}: tick stopped only {} ns",
            r.tick_stopped_ns
        );
        assert!(r.user_ns >= 195_000_000, "cpu {cpu}: user {} ns", r.user_ns);
    }
    // The housekeeping CPU keeps its tick.
    assert!(long.per_cpu[0].ticks >= 199);
}

#[test]
fn grace_periods_complete_without_ipis_to_nohz_full_cpus_in_user_mode() {
    let mut c = cfg();
    c.duration_ns = ms(100);
    let (r, _) = run(c, &Workload::CpuBound, ctxtrack_sim::TraceOutputs::none());
    assert!(r.rcu.completed >= 20, "{:?}", r.rcu);
    assert_eq!(r.rcu_ipis_to_nohz_full, 0);
    assert_eq!(r.rcu.resched_ipis, 0);
    for cpu in 1..8 {
        assert_eq!(r.per_cpu[cpu].ipis, 0, "cpu {cpu} was interrupted");
    }
    // They were found quiescent by their counters, remotely.
    assert!(r.rcu.qs_from_eqs_snapshot >= 7 * 20, "{:?}", r.rcu);
    // A GP needs the first FQS (3 jiffies at HZ=1000) to see the EQS snapshots.
    assert!(r.rcu.latency_max_ns <= 4_000_000, "{:?}", r.rcu);
}

#[test]
fn ct_off_tracks_nothing_and_keeps_ticks() {
    let mut c = cfg();
    c.ct_on = false;
    c.duration_ns = ms(50);
    let (r, _) = run(c, &Workload::CpuBound, ctxtrack_sim::TraceOutputs::none());
    assert_eq!(
        r.totals.ct_calls_inactive, 0,
        "generic entry never calls CT while the key is off"
    );
    assert_eq!(
        r.totals.ct_transitions["user_exit"] + r.totals.ct_transitions["user_enter"],
        0
    );
    assert_eq!(r.totals.vtime_hooks, 0);
    for cpu in 1..8 {
        assert!(!r.per_cpu[cpu].nohz_full);
        assert!(
            r.per_cpu[cpu].ticks >= 49,
            "cpu {cpu}: {} ticks",
            r.per_cpu[cpu].ticks
        );
        assert_eq!(r.per_cpu[cpu].vtime_ns, [0; 4]);
    }
    assert_eq!(r.nohz_full, "none");
}

#[test]
fn messaging_delivers_every_message_and_conserves_vtime() {
    for pipe in [false, true] {
        let w = Workload::Messaging {
            groups: 2,
            loops: 20,
            pipe,
            thread: false,
        };
        let (r, m) = run(cfg(), &w, ctxtrack_sim::TraceOutputs::none());
        assert_eq!(
            r.violations,
            0,
            "pipe={pipe}: {:?}",
            r.violation_reports.first()
        );
        assert_eq!(r.end, "WorkloadDone");
        assert_eq!(r.messages_expected, 2 * 400 * 20);
        assert_eq!(r.messages_written, r.messages_expected);
        assert_eq!(r.bytes_read, r.messages_expected * 100);
        assert!(r.bench_time_ns.unwrap() > 0);
        // Exact conservation on every vtime CPU at the end of the run.
        for (c, cpu) in m.cpus().iter().enumerate() {
            if cpu.nohz_full {
                let cur = &m.tasks()[cpu.current].vtime;
                assert_eq!(
                    cpu.pcpu
                        .local
                        .cputime
                        .check_conservation(cpu.hw.now, cur, c),
                    Ok(()),
                    "cpu {c}"
                );
                assert!(cpu.pcpu.local.cputime.vtime_total_ns() > 0);
            }
        }
        // Every worker ran and exited.
        assert!(m
            .tasks()
            .iter()
            .filter(|t| !t.is_idle)
            .all(|t| t.state == ctxtrack_sim::machine::TaskState::Dead));
    }
}

#[test]
fn every_syscall_on_a_nohz_full_cpu_is_one_user_exit_enter_pair() {
    let mut c = cfg();
    c.duration_ns = ms(5);
    let w = Workload::SyscallStorm {
        user_ns: 200,
        urn_every: 0,
        per_cpu: 1,
    };
    let (r, _) = run(c, &w, ctxtrack_sim::TraceOutputs::none());
    assert_eq!(r.violations, 0);
    for cpu in 1..8 {
        let p = &r.per_cpu[cpu];
        let exits = p.ct_transitions["user_exit"];
        let enters = p.ct_transitions["user_enter"];
        let irqs_from_user = p.irqs_from[0];
        assert_eq!(exits, p.syscalls + irqs_from_user, "cpu {cpu}");
        // ret_from_fork adds one user_enter without a user_exit; at most one entry is open.
        assert!(
            enters == exits + 1 || enters == exits,
            "cpu {cpu}: {enters} vs {exits}"
        );
        assert!(p.syscalls > 1000);
    }
}

#[test]
fn user_return_notifiers_fire_and_the_work_loop_stays_balanced() {
    let mut c = cfg();
    c.duration_ns = ms(2);
    let w = Workload::SyscallStorm {
        user_ns: 200,
        urn_every: 3,
        per_cpu: 1,
    };
    let (r, m) = run(c, &w, ctxtrack_sim::TraceOutputs::none());
    assert_eq!(r.violations, 0);
    // The flag never leaks to user mode: every task has it clear between syscalls.
    let flag = ctxtrack_sim::machine::tif::USER_RETURN_NOTIFY;
    for cpu in 1..8 {
        let t = &m.tasks()[m.cpus()[cpu].current];
        if m.cpus()[cpu].mode == ctxtrack_sim::machine::Mode::User {
            assert_eq!(t.ti_flags & flag, 0);
        }
        // Every third getpid() registers a notifier and its return to user fires it: as many
        // fired as registered (one fewer when the run ended inside a registering syscall).
        let registered = t.syscalls.div_ceil(3);
        assert!(t.syscalls > 30, "cpu {cpu}: only {} syscalls", t.syscalls);
        assert!(
            t.urn_fired == registered || t.urn_fired + 1 == registered,
            "cpu {cpu}: {} fired for {registered} registered ({} syscalls)",
            t.urn_fired,
            t.syscalls
        );
    }
}

#[test]
fn same_seed_is_byte_identical_and_different_seeds_differ() {
    let go = |seed: u64| {
        let mut c = cfg();
        c.seed = seed;
        let buf = SharedBuf::default();
        let (r, _) = run(
            c,
            &small_messaging(),
            ctxtrack_sim::TraceOutputs {
                ftrace: Some(Box::new(buf.clone())),
                chrome: None,
            },
        );
        let json = serde_json::to_string(&r).unwrap();
        let trace = buf.bytes();
        (json, trace)
    };
    let (j1, t1) = go(7);
    let (j2, t2) = go(7);
    assert_eq!(j1, j2);
    assert_eq!(t1, t2);
    assert!(t1.len() > 100_000);
    let (j3, t3) = go(8);
    assert_ne!(t1, t3, "a different seed must give a different schedule");
    assert_ne!(j1, j3);
}

#[test]
fn trace_has_linux_layout_and_pairs() {
    let buf = SharedBuf::default();
    let mut c = cfg();
    c.duration_ns = ms(1);
    let (r, _) = run(
        c,
        &Workload::SyscallStorm {
            user_ns: 200,
            urn_every: 0,
            per_cpu: 1,
        },
        ctxtrack_sim::TraceOutputs {
            ftrace: Some(Box::new(buf.clone())),
            chrome: None,
        },
    );
    let text = String::from_utf8(buf.bytes()).unwrap();
    assert!(text.starts_with("# tracer: nop\n"));
    let cpu3: Vec<&str> = text.lines().filter(|l| l.contains(" [003] ")).collect();
    assert!(cpu3.len() > 100);
    // `syscall-storm-N [003] d.... 0.000123: user_exit: ` then sys_enter with IRQs on.
    let i = cpu3
        .iter()
        .position(|l| l.ends_with("user_exit: "))
        .unwrap();
    assert!(cpu3[i].contains("] d.... "), "{}", cpu3[i]);
    assert!(
        cpu3[i + 1].contains("] ..... ") && cpu3[i + 1].contains(": sys_enter: NR 39 "),
        "{}",
        cpu3[i + 1]
    );
    assert!(
        cpu3[i + 2].contains(": sys_exit: NR 39 = "),
        "{}",
        cpu3[i + 2]
    );
    assert!(cpu3[i + 3].ends_with(": user_enter: "), "{}", cpu3[i + 3]);
    let exits = text.matches("user_exit: ").count() as u64;
    let total: u64 = r
        .per_cpu
        .iter()
        .map(|p| p.ct_transitions["user_exit"])
        .sum();
    assert_eq!(exits, total);
}

#[test]
fn cpu_list_and_config_validation() {
    let mut c = cfg();
    c.nohz_full = CpuSet::parse("0-3", 8).unwrap();
    assert!(c.validate().unwrap_err().contains("CPU 0"));
    c.cpus = 0;
    assert!(c.validate().is_err());
}

/// A broken design must be shown broken by the monitor, not by a label: generic entry with
/// `user_enter_irqoff()` moved before the exit work (which runs with IRQs on and may schedule),
/// written as a kernel engineer would edit a copy of the file.
fn broken() -> &'static Design {
    lang::shipped_mutant(
        "generic-entry.c",
        "broken",
        "\texit_to_user_mode_prepare(regs);\n\tinstrumentation_end();\n\texit_to_user_mode: user_enter_irqoff();\n\tsysretq();",
        "\tuser_enter_moved_up: user_enter_irqoff();\n\texit_to_user_mode_prepare(regs);\n\tinstrumentation_end();\n\tsysretq();",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_monitor_refutes_a_broken_design() {
    let mut c = Config::new(broken());
    c.duration_ns = ms(5);
    let (r, _) = run(
        c,
        &Workload::SyscallStorm {
            user_ns: 200,
            urn_every: 0,
            per_cpu: 1,
        },
        ctxtrack_sim::TraceOutputs::none(),
    );
    assert_eq!(r.end, "Violation");
    let v = &r.violation_reports[0];
    assert_eq!(v.invariant, "rcu_watching_in_kernel", "{v:?}");
    assert!(
        v.detail.contains(
            "`tick_nohz_user_enter_prepare()` runs while RCU is not watching (ct state USER)"
        ),
        "{}",
        v.detail
    );
    assert!(!v.history.is_empty());
    // The exit work's first step, right after the moved user_enter_irqoff().
    assert_eq!(v.history.last().unwrap().step, "user_enter_moved_up");
}

#[test]
fn designs_registry() {
    let names: Vec<&str> = design::all().iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "linux-4.3",
            "weisbecker-2015",
            "weisbecker-hoisted",
            "lutomirski-2015",
            "generic-entry"
        ]
    );
    let e = design::by_name("nope").unwrap_err();
    assert!(
        e.contains("valid designs: linux-4.3, weisbecker-2015"),
        "{e}"
    );
    // The report names every context-tracking transition the core counts, and only those.
    let (r, _) = run(
        cfg(),
        &small_messaging(),
        ctxtrack_sim::TraceOutputs::none(),
    );
    let names: Vec<&str> = Transition::ALL.iter().map(|t| t.name()).collect();
    let keys: Vec<&str> = r.per_cpu[1]
        .ct_transitions
        .keys()
        .map(|k| k.as_ref())
        .collect();
    let (mut a, mut b) = (names.clone(), keys);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// CPU-bound workers under a device interrupt every `period_ns`, softirqs bounded to
/// `restarts` rounds: the trace and the machine.
fn device_irqs(period_ns: u64, restarts: u8) -> (Report, ctxtrack_sim::machine::Machine, String) {
    let buf = SharedBuf::default();
    let mut c = cfg();
    c.duration_ns = ms(5);
    c.irq_period_ns = Some(period_ns);
    c.softirq_max_restart = restarts;
    let (r, m) = run(
        c,
        &Workload::CpuBound,
        ctxtrack_sim::TraceOutputs {
            ftrace: Some(Box::new(buf.clone())),
            chrome: None,
        },
    );
    (r, m, String::from_utf8(buf.bytes()).unwrap())
}

#[test]
fn device_interrupts_run_net_rx_softirqs_and_wake_rcuog() {
    let (r, m, text) = device_irqs(100_000, 10);
    assert_eq!(r.violations, 0, "{:?}", r.violation_reports);
    // irq_exit_rcu() ran NET_RX with IRQs on (".." in the flags column), each entry paired.
    let entries = text.matches("softirq_entry: vec=3 [action=NET_RX]").count();
    assert!(entries > 100, "{entries}");
    assert_eq!(
        entries,
        text.matches("softirq_exit: vec=3 [action=NET_RX]").count()
    );
    let line = text.lines().find(|l| l.contains("softirq_entry")).unwrap();
    assert!(line.contains("] ..s"), "{line}");
    // Each handler's call_rcu() on a nohz_full CPU wakes rcuog (deferred with IRQs off, then
    // flushed on the way back to user mode): every deferral was flushed.
    for c in 1..8 {
        assert!(m.cpus()[c].counters.rcuog_wakeups > 10, "cpu {c}");
        assert!(!m.cpus()[c].nocb_defer_wakeup, "cpu {c}");
    }
    // One round is always enough at this rate: ksoftirqd never woke.
    assert!(m.cpus().iter().all(|c| c.ksoftirqd.is_none()));
}

#[test]
fn softirqs_raised_faster_than_one_round_go_to_ksoftirqd() {
    // An interrupt every 300 ns lands in the softirq round it raised (IRQs are on there), so
    // NET_RX is pending again at its end: restart, and once the rounds are spent, ksoftirqd.
    let (r, m, text) = device_irqs(300, 1);
    assert_eq!(r.violations, 0, "{:?}", r.violation_reports);
    let woke: Vec<usize> = (1..8)
        .filter(|&c| m.cpus()[c].ksoftirqd.is_some())
        .collect();
    assert!(!woke.is_empty());
    assert!(text.contains("comm=ksoftirqd/"), "ksoftirqd never ran");
    // More rounds per __do_softirq(): fewer deferrals to ksoftirqd for the same interrupts.
    let (_, m10, _) = device_irqs(300, 10);
    let runs = |m: &ctxtrack_sim::machine::Machine| -> u64 {
        m.cpus()
            .iter()
            .filter_map(|c| c.ksoftirqd)
            .map(|t| m.tasks()[t].sum_exec_ns)
            .sum()
    };
    assert!(runs(&m10) < runs(&m), "{} vs {}", runs(&m10), runs(&m));
}
