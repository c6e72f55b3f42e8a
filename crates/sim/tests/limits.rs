//! Limits: a run that goes past its task or memory limit ends with a `model_limit` verdict naming
//! the limit, and a workload's up-front footprint bounds what the run really allocates.
//! One test per concern; the allocator measurement is alone in its own function and nothing else
//! in this binary allocates while it runs (the other tests take the same lock).

use ctxtrack_sim::limits::{Footprint, Limits};
use ctxtrack_sim::{design, run, Config, TraceOutputs, Workload};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Serializes the tests of this binary so the allocator figures are one test's own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn messaging(groups: u32, loops: u64) -> Workload {
    Workload::Messaging {
        groups,
        loops,
        pipe: false,
        thread: false,
    }
}

fn cfg() -> Config {
    Config::new(design::by_name("generic-entry").unwrap())
}

#[test]
fn forking_past_max_tasks_ends_the_run_naming_the_limit() {
    let _g = ONE_AT_A_TIME.lock().unwrap();
    let mut c = cfg();
    // 1 parent + 40 workers + 8 idle tasks = 49: the parent's 30th fork is refused.
    c.limits = Limits {
        max_tasks: 38,
        ..Limits::default()
    };
    let (r, m) = run(c, &messaging(1, 5), TraceOutputs::none());
    assert_eq!(m.tasks().len(), 38);
    assert_eq!(r.violations, 1);
    let v = &r.violation_reports[0];
    assert_eq!(v.invariant, "model_limit");
    assert!(v.site.contains("--max-tasks 38"), "{v:?}");
    assert!(r.render_text().contains("--max-tasks 38"));
    // Enough room: the same run is clean.
    let mut c = cfg();
    c.limits.max_tasks = 49;
    let (r, _) = run(c, &messaging(1, 5), TraceOutputs::none());
    assert_eq!(r.violations, 0, "{:?}", r.violation_reports);
}

#[test]
fn growing_past_max_memory_ends_the_run_naming_the_limit() {
    let _g = ONE_AT_A_TIME.lock().unwrap();
    // No probe is installed in this binary: the machine's own estimate of its heap is used.
    let w = messaging(60, 2);
    let need = Footprint::of(&cfg(), &w);
    let mut c = cfg();
    c.limits.max_memory_bytes = need.bytes / 2;
    assert!(c.limits.admit(&need).is_err());
    let (r, m) = run(c, &w, TraceOutputs::none());
    assert_eq!(r.violation_reports.len(), 1);
    let v = &r.violation_reports[0];
    assert_eq!(v.invariant, "model_limit");
    assert!(
        v.site
            .contains(&format!("--max-memory {} MiB", (need.bytes / 2) >> 20)),
        "{v:?}"
    );
    assert!(
        m.tasks().len() < need.tasks as usize,
        "stopped while forking"
    );
}

/// The footprint is an upper bound of the real peak heap (allocator-measured), and not a wild one.
#[test]
fn footprint_bounds_the_measured_heap() {
    let _g = ONE_AT_A_TIME.lock().unwrap();
    for (groups, cpus) in [(10u32, 8usize), (50, 4), (200, 8)] {
        let w = messaging(groups, 1);
        let mut c = cfg();
        c.cpus = cpus;
        c.nohz_full = ctxtrack_sim::CpuSet::all_but_0(cpus);
        let f = Footprint::of(&c, &w);
        static PEAK: AtomicUsize = AtomicUsize::new(0);
        PEAK.store(0, Ordering::Relaxed);
        let before = ALLOC.allocated();
        let mut m = ctxtrack_sim::Machine::new(c);
        ctxtrack_sim::workload::install(&mut m, &w);
        // Sample the heap as the run goes (every checkpoint) and at the end.
        m.set_progress(Some(Box::new(move |_| {
            PEAK.fetch_max(ALLOC.allocated() - before, Ordering::Relaxed);
        })));
        m.run();
        let peak = PEAK.load(Ordering::Relaxed).max(ALLOC.allocated() - before);
        assert_eq!(m.tasks().len() as u64, f.tasks, "g={groups}");
        assert!(
            f.bytes as usize >= peak,
            "g={groups}: footprint {} < heap {peak}",
            f.bytes
        );
        assert!(
            (f.bytes as usize) < 4 * peak,
            "g={groups}: footprint {} is over 4x the heap {peak}",
            f.bytes
        );
    }
}
