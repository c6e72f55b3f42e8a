//! The noise report: exact net durations on a trace written here, and what it finds in real
//! captures (`traces/linux-6.1/workloads/`).

use ctxtrack_trace::noise::{noise_path, Noise, NoiseReport, Options};
use ctxtrack_trace::source::visit_reader;
use std::path::PathBuf;

fn report(text: &str, opts: Options) -> NoiseReport {
    let mut n = Noise::new(opts);
    visit_reader("t", text.as_bytes(), |k, item| {
        n.item(k, item);
        Ok(())
    })
    .unwrap();
    n.finish()
}

fn line(pid: i32, cpu: u32, us: u64, ev: &str, fields: &str) -> String {
    format!(
        "  spin-{pid} [{cpu:03}] d.... {}.{:06}: {ev}: {fields}\n",
        us / 1_000_000,
        us % 1_000_000
    )
}

/// A call-function IPI sent from CPU 0 (6.6+ `ipi_send_cpu`), a tick kept by POSIX_TIMER, and a
/// page fault with a tick nested inside it (its time comes off the fault's).
#[test]
fn net_durations_causes_senders_and_dependencies() {
    let mut t = String::new();
    t += &line(9, 1, 10, "user_enter", "");
    t += &line(
        5,
        0,
        100,
        "ipi_send_cpu",
        "cpu=1 callsite=on_each_cpu_cond_mask+0x1 callback=do_flush_tlb_all+0x0",
    );
    t += &line(9, 1, 110, "user_exit", "");
    t += &line(9, 1, 112, "call_function_single_entry", "vector=251");
    t += &line(9, 1, 130, "call_function_single_exit", "vector=251");
    t += &line(9, 1, 140, "user_enter", "");
    t += &line(9, 1, 1000, "user_exit", "");
    t += &line(9, 1, 1002, "local_timer_entry", "vector=236");
    t += &line(9, 1, 1010, "tick_stop", "success=0 dependency=POSIX_TIMER");
    t += &line(9, 1, 1020, "local_timer_exit", "vector=236");
    t += &line(9, 1, 1030, "user_enter", "");
    t += &line(9, 1, 2000, "user_exit", "");
    t += &line(
        9,
        1,
        2001,
        "page_fault_user",
        "address=0x1000 ip=0x400000 error_code=0x6",
    );
    t += &line(9, 1, 2010, "local_timer_entry", "vector=236");
    t += &line(9, 1, 2040, "local_timer_exit", "vector=236");
    t += &line(9, 1, 2100, "user_enter", "");
    t += &line(9, 1, 3000, "user_exit", "");
    t += &line(9, 1, 3001, "sys_enter", "NR 39 (0, 0, 0, 0, 0, 0)");
    t += &line(9, 1, 3005, "sys_exit", "NR 39 = 9");
    t += &line(9, 1, 3010, "user_enter", "");
    t += &line(
        9,
        1,
        3500,
        "nmi_handler",
        "handler=perf_event_nmi_handler delta_ns=4000 handled=1",
    );
    t += &line(9, 1, 4000, "sched_switch", "prev_comm=spin prev_pid=9 prev_prio=120 prev_state=R ==> next_comm=x next_pid=3 next_prio=120");
    let r = report(&t, Options::default());
    assert!(r.ipi_senders_traced);
    assert_eq!(r.cpus.len(), 1, "only the nohz_full CPU");
    let c = &r.cpus[0];
    assert_eq!(c.cpu, 1);
    assert_eq!(c.interruptions, 5);
    let nmi = c
        .causes
        .iter()
        .find(|s| s.cause == "NMI perf_event_nmi_handler")
        .unwrap();
    assert_eq!((nmi.count, nmi.total_ns), (1, 4_000));
    let by = |name: &str| {
        c.causes
            .iter()
            .find(|s| s.cause == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", c.causes))
    };
    let ipi = by("IPI call_function_single");
    assert_eq!(
        (ipi.count, ipi.total_ns, ipi.ct_work_deferrable),
        (1, 30_000, 1)
    );
    assert_eq!(ipi.senders.get("CPU 0 (spin-5)"), Some(&1));
    let tick = by("timer tick");
    // the tick from user mode (user_exit to user_enter: 30 us) and the one nested in the
    // fault (30 us)
    assert_eq!(
        (tick.count, tick.total_ns, tick.max_ns),
        (2, 60_000, 30_000)
    );
    assert_eq!(tick.kept_by.get("POSIX_TIMER"), Some(&1));
    let pf = by("page fault");
    // 100 us gross, less the nested tick's 30 us
    assert_eq!((pf.count, pf.total_ns), (1, 70_000));
    assert!(pf.self_inflicted);
    let sc = by("syscalls (self-inflicted)");
    assert_eq!((sc.count, sc.total_ns), (1, 10_000));
    assert_eq!(c.longest[0].cause, "page fault");
    assert_eq!((c.longest[0].line, c.longest[0].end_line), (12, 16));
    // user time: 10..110, 140..1000, 1030..2000, 2100..3000, 3010..4000, less the NMI's 4 us
    assert_eq!(c.user_ns, (100 + 860 + 970 + 900 + 990 - 4) * 1000);
    // five interruptions and the tick nested in the fault
    assert_eq!(c.histogram.iter().sum::<u64>(), 6);
    // Causes other than self-inflicted come first.
    assert!(!c.causes[0].self_inflicted && c.causes.last().unwrap().self_inflicted);
}

/// A CPU without nohz_full, asked for with `--cpus`: edges inferred from syscalls and vectors.
#[test]
fn untracked_cpu_edges_are_inferred() {
    let mut t = String::new();
    t += &line(9, 2, 10, "sys_exit", "NR 1 = 1");
    t += &line(9, 2, 500, "local_timer_entry", "vector=236");
    t += &line(9, 2, 520, "local_timer_exit", "vector=236");
    t += &line(9, 2, 900, "sys_enter", "NR 1 (1, 0, 0, 0, 0, 0)");
    t += &line(9, 2, 950, "sys_exit", "NR 1 = 1");
    t += &line(9, 2, 1000, "reschedule_entry", "vector=253");
    t += &line(9, 2, 1001, "reschedule_exit", "vector=253");
    let none = report(&t, Options::default());
    assert!(none.cpus.is_empty(), "no nohz_full CPU unless asked");
    let r = report(
        &t,
        Options {
            cpus: Some(vec![2]),
            top: 5,
        },
    );
    let c = &r.cpus[0];
    assert!(!c.nohz_full);
    assert_eq!(c.interruptions, 3);
    assert_eq!(c.user_ns, (490 + 380 + 50) * 1000);
    assert!(c
        .causes
        .iter()
        .any(|s| s.cause == "IPI reschedule" && s.total_ns == 1000));
}

fn workloads() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../traces/linux-6.1/workloads")
}

/// Real captures: a spinner hit by TLB-shootdown IPIs, one hit by static-key flips, a busy loop
/// left alone, and messaging whose ticks the scheduler kept.
#[test]
fn real_captures() {
    let r = noise_path(
        &workloads().join("nohz-tlb-ipis-cpu3.trace.txt.gz"),
        Options::default(),
    )
    .unwrap();
    let c = r.cpus.iter().find(|c| c.cpu == 3).unwrap();
    let cf: u64 = c
        .causes
        .iter()
        .filter(|s| s.cause.starts_with("IPI call_function"))
        .map(|s| s.count)
        .sum();
    assert!(cf > 20, "{:?}", c.causes);
    assert!(c.ct_work_deferrable > 20 && c.ct_work_deferrable <= cf);
    let r = noise_path(
        &workloads().join("nohz-sysctl-ipis-cpu3.trace.txt.gz"),
        Options::default(),
    )
    .unwrap();
    let c = r.cpus.iter().find(|c| c.cpu == 3).unwrap();
    assert!(
        c.causes
            .iter()
            .any(|s| s.cause.starts_with("IPI call_function") && s.count >= 10),
        "{:?}",
        c.causes
    );
    let r = noise_path(
        &workloads().join("nohz-busyloop-cpu3.trace.txt.gz"),
        Options::default(),
    )
    .unwrap();
    let c = r.cpus.iter().find(|c| c.cpu == 3).unwrap();
    assert!(
        c.user_ns * 100 > c.span_ns * 90,
        "{} of {}",
        c.user_ns,
        c.span_ns
    );
    let r = noise_path(
        &workloads().join("nohz-messaging-socket-cpu3.trace.txt.gz"),
        Options::default(),
    )
    .unwrap();
    let c = r.cpus.iter().find(|c| c.cpu == 3).unwrap();
    let tick = c.causes.iter().find(|s| s.cause == "timer tick").unwrap();
    assert!(
        tick.kept_by.get("SCHED").copied().unwrap_or(0) > 10,
        "{tick:?}"
    );
}

/// The same capture read as trace.dat and as `trace-cmd report -l` text gives the same report
/// (task names in `longest` compared on the 8 characters `-l` prints).
#[test]
fn trace_dat_and_its_report_text_agree() {
    for stem in ["nohz-tlb-ipis-cpu3.v7", "nohz-messaging-socket-cpu3.v7"] {
        let a = noise_path(&workloads().join(format!("{stem}.dat")), Options::default()).unwrap();
        let b = noise_path(
            &workloads().join(format!("{stem}.report.txt.gz")),
            Options::default(),
        )
        .unwrap();
        let norm = |r: &NoiseReport| {
            let mut v = serde_json::to_value(r).unwrap();
            v["lines"] = 0.into();
            for c in v["cpus"].as_array_mut().unwrap() {
                for i in c["longest"].as_array_mut().unwrap() {
                    let t = i["task"].as_str().unwrap().to_string();
                    let (comm, pid) = t.rsplit_once('-').unwrap();
                    i["task"] =
                        format!("{}-{pid}", comm.chars().take(8).collect::<String>()).into();
                    i["line"] = 0.into();
                    i["end_line"] = 0.into();
                }
            }
            v
        };
        assert!(!a.cpus.is_empty());
        assert_eq!(norm(&a), norm(&b), "{stem}");
    }
}

/// `--cpus all` (an empty list): every CPU of the trace, tracked or not.
#[test]
fn every_cpu_on_request() {
    let r = noise_path(
        &workloads().join("nohz-tlb-ipis-cpu3.trace.txt.gz"),
        Options {
            cpus: Some(Vec::new()),
            top: 3,
        },
    )
    .unwrap();
    let cpus: Vec<u32> = r.cpus.iter().map(|c| c.cpu).collect();
    assert_eq!(cpus, vec![0, 3]);
    assert!(!r.cpus[0].nohz_full && r.cpus[1].nohz_full);
}

/// Lost events announced for a CPU before its first event (trace-cmd marks the first page of a
/// CPU that lost events; ftrace prints `CPU:N [LOST M EVENTS]`): a warning, not a panic.
#[test]
fn lost_events_before_a_cpus_first_event() {
    let t = "CPU:2 [LOST 3 EVENTS]\n  a-1 [002] d.... 1.000001: user_exit: \nCPU:5 [7 EVENTS DROPPED]\n";
    let r = report(
        t,
        Options {
            cpus: Some(Vec::new()),
            top: 1,
        },
    );
    assert_eq!(r.cpus.len(), 1);
    let rep = ctxtrack_trace::replay::replay_reader("t", t.as_bytes(), Default::default()).unwrap();
    assert_eq!(rep.warnings.len(), 2, "{:?}", rep.warnings);
    assert!(rep.warnings[0].detail.contains("lost 3 events"));
    assert!(rep.warnings[1].detail.contains("lost 7 events"));
}

/// A reordered line that puts a tick before the `tick_stop` it follows (found by the fuzz
/// target): a warning about the reordering, no arithmetic underflow.
#[test]
fn reordered_tick_after_tick_stop() {
    let t = "  a-1 [001] d.... 1.000005: tick_stop: success=1 dependency=NONE\n  a-1 [001] d.h.. 1.000004: local_timer_entry: vector=236\n  a-1 [001] d.... 1.000003: tick_stop: success=0 dependency=SCHED\n  a-1 [001] d.h.. 1.000002: local_timer_exit: vector=236\n";
    let rep = ctxtrack_trace::replay::replay_reader("t", t.as_bytes(), Default::default()).unwrap();
    assert!(
        rep.warnings.iter().any(|w| w.detail.contains("reordered")),
        "{:?}",
        rep.warnings
    );
    let r = report(
        t,
        Options {
            cpus: Some(Vec::new()),
            top: 1,
        },
    );
    assert_eq!(r.cpus.len(), 1);
}
