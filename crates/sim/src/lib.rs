//! # ctxtrack-sim: a deterministic simulated nohz_full SMP machine
//!
//! Runs the `ctxtrack-core` context tracking under workloads on N simulated CPUs, with the entry
//! code of a [`design::Design`] executed step by step so events can land between any two steps,
//! an always-on invariant [`monitor`], a [`cost`] model and counters.
//!
//! Rooms, bottom up (`tests/rooms.rs` checks that none uses a room above it):
//! - [`config`], [`cost`], [`rng`], [`limits`]: what a run is given;
//! - [`machine`]: the state (CPUs, tasks, programs, channels, RCU's and the senders' data, `K`,
//!   "this CPU") and the smallest operations on it; [`design`]: entry paths as data;
//! - [`os`]: the kernel services steps call (scheduler, syscalls, IRQs, tick, RCU, softirqs,
//!   deferred work); [`monitor`]: every invariant; [`tracer`]: ftrace and Chrome output;
//! - [`run`]: the engine (event loop, delivery, step execution);
//! - [`driver`]: the API outside code drives a machine through; [`fingerprint`]: the model
//!   checker's state abstraction, with its completeness test;
//! - [`lab`]: workloads, probes, the side-by-side comparison and reports.
//!
//! Architecture invariants:
//! - no wall clock, no `HashMap` iteration, one named PRNG ([`rng::Xoshiro256`]): a
//!   [`config::Config`] determines the run byte for byte;
//! - designs are data ([`design`]); the machine never branches on a design's name;
//! - each invariant has one home ([`monitor`]);
//! - [`Machine`]'s fields are private to the crate: outside code reads it through accessors and
//!   acts on it through [`driver`].

pub mod config;
pub mod cost;
pub mod design;
pub mod driver;
pub mod fingerprint;
pub mod lab;
pub mod limits;
pub mod machine;
pub mod monitor;
pub mod os;
pub mod rng;
pub mod run;
pub mod tracer;

pub use config::{Config, CpuSet};
pub use cost::CostModel;
pub use lab::report::Report;
pub use lab::workload::Workload;
pub use lab::{compare, probe, report, workload};
pub use machine::program;
pub use machine::{EndReason, Machine, Progress, ProgressFn};

/// Where a run writes its traces (none by default).
#[derive(Default)]
pub struct TraceOutputs {
    /// ftrace `trace` text.
    pub ftrace: Option<tracer::TraceOut>,
    /// Chrome/Perfetto trace-event JSON.
    pub chrome: Option<tracer::TraceOut>,
}

impl TraceOutputs {
    /// No trace.
    pub fn none() -> TraceOutputs {
        TraceOutputs::default()
    }

    /// The machine's sink; `count` gives the number of ftrace lines (for the header) and is
    /// called only if ftrace text is wanted.
    pub fn sink(self, count: impl FnOnce() -> u64, ncpus: usize) -> Option<tracer::TraceSink> {
        let s = match self.ftrace {
            Some(o) => Some(tracer::TraceSink::ftrace(o, count(), ncpus)),
            None if self.chrome.is_some() => Some(tracer::TraceSink::counting()),
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
            count.trace = Some(tracer::TraceSink::counting());
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
