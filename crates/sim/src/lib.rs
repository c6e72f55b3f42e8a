//! # ctxtrack-sim: a deterministic simulated nohz_full SMP machine
//!
//! Runs the `ctxtrack-core` context tracking under workloads on N simulated CPUs, with the entry
//! code of a [`design::Design`] executed step by step so events can land between any two steps,
//! an always-on invariant [`monitor`], a [`cost`] model and counters.
//!
//! Architecture invariants:
//! - no wall clock, no `HashMap` iteration, one named PRNG ([`rng::Xoshiro256`]): a
//!   [`config::Config`] determines the run byte for byte;
//! - designs are data ([`design`]); the machine never branches on a design's name;
//! - each invariant has one home ([`monitor`]).

pub mod compare;
pub mod config;
pub mod cost;
pub mod ct_work;
pub mod design;
pub mod fingerprint;
pub mod inject;
pub mod ipc;
pub mod kernel;
pub mod limits;
pub mod machine;
pub mod monitor;
pub mod probe;
pub mod program;
pub mod rcu_gp;
pub mod rcu_nocb;
pub mod report;
pub mod rng;
pub mod softirq;
pub mod trace;
pub mod workload;

pub use config::{Config, CpuSet};
pub use cost::CostModel;
pub use machine::{EndReason, Machine, Progress, ProgressFn};
pub use report::Report;
pub use workload::Workload;

/// Where a run writes its traces (none by default).
#[derive(Default)]
pub struct TraceOutputs {
    /// ftrace `trace` text.
    pub ftrace: Option<trace::TraceOut>,
    /// Chrome/Perfetto trace-event JSON.
    pub chrome: Option<trace::TraceOut>,
}

impl TraceOutputs {
    /// No trace.
    pub fn none() -> TraceOutputs {
        TraceOutputs::default()
    }

    /// The machine's sink; `count` gives the number of ftrace lines (for the header) and is
    /// called only if ftrace text is wanted.
    pub fn sink(self, count: impl FnOnce() -> u64, ncpus: usize) -> Option<trace::TraceSink> {
        let s = match self.ftrace {
            Some(o) => Some(trace::TraceSink::ftrace(o, count(), ncpus)),
            None if self.chrome.is_some() => Some(trace::TraceSink::counting()),
            None => None,
        };
        match (s, self.chrome) {
            (Some(s), Some(c)) => Some(s.with_chrome(c)),
            (s, _) => s,
        }
    }
}

/// Builds a machine for `cfg`, installs `workload`, runs it and reports.
///
/// If the run found violations, the same configuration is replayed with step history on up to
/// the last reported violation (the run is deterministic, so the replay is the same run), and the
/// reports get the last steps of their CPU.
pub fn run(cfg: Config, workload: &Workload, out: TraceOutputs) -> (Report, Machine) {
    run_with_progress(cfg, workload, out, None)
}

/// [`run`], reporting progress to `progress` in each pass (the trace-line count, the run, the
/// replay for violation history), which [`Progress::phase`] names.
pub fn run_with_progress(
    cfg: Config,
    workload: &Workload,
    out: TraceOutputs,
    mut progress: Option<ProgressFn>,
) -> (Report, Machine) {
    let mut m = Machine::new(cfg.clone());
    m.trace = out.sink(
        || {
            // Linux's header says how many entries follow: count them in an identical run first.
            let mut count = Machine::new(cfg.clone());
            count.trace = Some(trace::TraceSink::counting());
            count.progress = progress.take();
            count.phase = "counting trace lines";
            workload::install(&mut count, workload);
            count.run();
            progress = count.progress.take();
            count.trace.map_or(0, |t| t.lines)
        },
        cfg.cpus,
    );
    m.progress = progress.take();
    workload::install(&mut m, workload);
    let end = m.run();
    progress = m.progress.take();
    let wanted = m
        .monitor
        .reports
        .iter()
        .filter(|r| r.invariant != "model_limit")
        .count();
    if wanted > 0 {
        let mut replay = Machine::new(cfg);
        replay.progress = progress.take();
        replay.phase = "replaying for violation history";
        replay.monitor.record_history = true;
        replay.monitor.stop_after_reports = Some(wanted);
        workload::install(&mut replay, workload);
        replay.run();
        for (a, b) in m.monitor.reports.iter_mut().zip(replay.monitor.reports) {
            let same = (&a.invariant, &a.site, a.time_ns, a.cpu)
                == (&b.invariant, &b.site, b.time_ns, b.cpu);
            debug_assert!(same, "replay diverged: {a:?} vs {b:?}");
            if same {
                a.history = b.history;
            }
        }
    }
    let r = Report::from_machine(&m, workload, &end);
    (r, m)
}
