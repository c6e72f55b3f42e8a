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
pub mod design;
pub mod ipc;
pub mod kernel;
pub mod machine;
pub mod monitor;
pub mod probe;
pub mod program;
pub mod rcu_gp;
pub mod report;
pub mod rng;
pub mod trace;
pub mod workload;

pub use config::{Config, CpuSet};
pub use cost::CostModel;
pub use machine::{EndReason, Machine};
pub use report::Report;
pub use workload::Workload;

/// Builds a machine for `cfg`, installs `workload`, runs it and reports.
pub fn run(
    cfg: Config,
    workload: &Workload,
    trace: Option<Box<dyn std::io::Write>>,
) -> (Report, Machine) {
    let mut m = Machine::new(cfg);
    if let Some(out) = trace {
        m.trace = Some(trace::TraceSink::new(out));
    }
    workload::install(&mut m, workload);
    let end = m.run();
    let r = Report::from_machine(&m, workload, &end);
    (r, m)
}
