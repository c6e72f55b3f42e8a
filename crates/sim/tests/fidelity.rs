//! Fidelity to Linux: the simulator (generic-entry design) runs a workload shaped like each real
//! Linux 6.1 trace in `traces/linux-6.1/`; both traces go through the same parser and shape
//! collector, and the path shapes must match event for event.

use ctxtrack_sim::tracer::SharedBuf;
use ctxtrack_sim::{design, run, Config, CpuSet, TraceOutputs, Workload};
use ctxtrack_trace::replay::{replay_reader, Options, Report};
use std::collections::BTreeSet;

fn real(name: &str) -> Report {
    let p = format!(
        "{}/../../traces/linux-6.1/{name}.trace.txt.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let f = std::fs::File::open(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    replay_reader(
        name,
        f,
        Options {
            shapes: true,
            ..Options::default()
        },
    )
    .unwrap()
}

/// Runs `w` on 4 CPUs, nohz_full 1-3, HZ 250 (Debian's), and replays the simulator's own trace.
fn simulated(w: Workload, duration_ms: Option<u64>) -> (Report, String) {
    simulated_on(w, duration_ms, None)
}

/// [`simulated`] with every task pinned to one CPU, as `taskset -c N` did for the capture.
fn simulated_on(w: Workload, duration_ms: Option<u64>, taskset: Option<usize>) -> (Report, String) {
    simulated_hz(w, duration_ms, taskset, 250)
}

fn simulated_hz(
    w: Workload,
    duration_ms: Option<u64>,
    taskset: Option<usize>,
    hz: u64,
) -> (Report, String) {
    let mut cfg = Config::new(design::by_name("generic-entry").unwrap());
    cfg.cpus = 4;
    cfg.nohz_full = CpuSet::parse("1-3", 4).unwrap();
    cfg.hz = hz;
    cfg.duration_ns = duration_ms.map(|m| m * 1_000_000);
    cfg.taskset = taskset;
    let buf = SharedBuf::default();
    let out = TraceOutputs {
        ftrace: Some(Box::new(buf.clone())),
        chrome: None,
    };
    let (_, mut m) = run(cfg, &w, out);
    assert!(m.trace().is_some());
    m.finish_trace().unwrap();
    let text = String::from_utf8(buf.bytes()).unwrap();
    let r = replay_reader(
        "sim",
        text.as_bytes(),
        Options {
            shapes: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(
        r.violation_count, 0,
        "the simulator's own trace: {:?}",
        r.violations
    );
    (r, text)
}

/// For each path kind seen in both (at least 3 times in the real trace, so a one-off such as
/// the reschedule IPI that starts the workload does not count as typical): the real kernel's most frequent sequence is one the model
/// produces, and the model's most frequent one is one the kernel produces. Returns the kinds
/// compared.
fn same_shapes(real: &Report, sim: &Report, what: &str) -> BTreeSet<String> {
    let kinds: BTreeSet<String> = real
        .shapes
        .iter()
        .filter(|s| s.count >= 3)
        .map(|s| s.kind.clone())
        .collect();
    let mut compared = BTreeSet::new();
    for k in kinds {
        let of = |r: &Report| -> Vec<Vec<String>> {
            r.shapes
                .iter()
                .filter(|s| s.kind == k)
                .map(|s| s.events.clone())
                .collect()
        };
        let (rs, ss) = (of(real), of(sim));
        if ss.is_empty() {
            continue;
        }
        assert!(
            ss.contains(&rs[0]),
            "{what}: {k}: Linux's typical {:?} never appears in the model's {:?}",
            rs[0],
            ss
        );
        assert!(
            rs.contains(&ss[0]),
            "{what}: {k}: the model's typical {:?} never appears in Linux's {:?}",
            ss[0],
            rs
        );
        compared.insert(k);
    }
    compared
}

#[test]
fn path_shapes_match_linux() {
    let mut compared = BTreeSet::new();
    let (sim, _) = simulated(
        Workload::SyscallStorm {
            user_ns: 1_400,
            urn_every: 0,
            per_cpu: 1,
        },
        Some(20),
    );
    compared.extend(same_shapes(&real("nohz-dd-syscalls-cpu3"), &sim, "dd"));
    let (sim, _) = simulated(Workload::CpuBound, Some(50));
    compared.extend(same_shapes(&real("nohz-busyloop-cpu2"), &sim, "busy loop"));
    // `taskset -c 1 perf bench sched messaging -p -g 1 -l 20` ran 270 ms under TCG; the model's
    // run is 40x shorter, so it makes 10x the loops at HZ 1000 to see as many ticks from user.
    let msg = Workload::Messaging {
        groups: 1,
        loops: 200,
        pipe: true,
        thread: false,
    };
    let (sim, _) = simulated_hz(msg, None, Some(1), 1000);
    compared.extend(same_shapes(
        &real("nohz-messaging-pipe-cpu1"),
        &sim,
        "messaging",
    ));
    for k in [
        "syscall",
        "irq_from_user",
        "irq_from_idle",
        "tick_nohz_full",
        "context_switch",
    ] {
        assert!(
            compared.contains(k),
            "{k} was never compared (compared: {compared:?})"
        );
    }
}

#[test]
fn exported_trace_is_linux_format_and_replays_clean() {
    let msg = Workload::Messaging {
        groups: 1,
        loops: 5,
        pipe: true,
        thread: false,
    };
    let (r, text) = simulated(msg, None);
    let entries = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(text.contains(&format!(
        "# entries-in-buffer/entries-written: {entries}/{entries}   #P:4\n"
    )));
    // Every tracked CPU's transitions pair up, and RCU watching is logged with the modern polarity.
    for c in r.cpus.iter().filter(|c| c.tracked) {
        assert!(c.user_enter.abs_diff(c.user_exit) <= 1, "{c:?}");
    }
    assert!(
        text.contains(": rcu_watching: End 1 0 "),
        "ct_kernel_exit logs End"
    );
    assert!(
        text.contains(": rcu_watching: Start 0 1 "),
        "ct_kernel_enter logs Start"
    );
    let sw = text
        .lines()
        .find(|l| l.contains(": sched_switch: "))
        .unwrap();
    assert!(
        sw.contains("] d..2. "),
        "sched_switch runs under the rq lock: {sw}"
    );
}

#[test]
fn chrome_trace_of_a_run_nests() {
    let mut cfg = Config::new(design::by_name("generic-entry").unwrap());
    cfg.cpus = 2;
    cfg.nohz_full = CpuSet::parse("1", 2).unwrap();
    cfg.irq_period_ns = Some(50_000);
    cfg.nmi_period_ns = Some(1_000_000);
    let buf = SharedBuf::default();
    let out = TraceOutputs {
        ftrace: None,
        chrome: Some(Box::new(buf.clone())),
    };
    let w = Workload::Messaging {
        groups: 1,
        loops: 5,
        pipe: true,
        thread: false,
    };
    let (_, mut m) = run(cfg, &w, out);
    assert!(m.trace().is_some());
    m.finish_trace().unwrap();
    let json = buf.bytes();
    let v = ctxtrack_trace::chrome::validate(&json).unwrap();
    for name in ["USER", "KERNEL", "IDLE", "nmi", "irq virtio0", "reschedule"] {
        assert!(v.names.contains(name), "no {name} slice: {:?}", v.names);
    }
    let text = String::from_utf8(json).unwrap();
    for instant in ["\"IPI to CPU", "\"GP ", "\"tick_stop\"", "ct nesting CPU 1"] {
        assert!(text.contains(instant), "no {instant}");
    }
}
