//! Design files: the shipped files load, and each gives exactly what the Rust design it replaces
//! gives (run JSON, per-path counts, the whole comparison with stress runs), byte for byte.

use ctxtrack_sim::compare::{compare, Options};
use ctxtrack_sim::design::{self, lang, Design};
use ctxtrack_sim::probe::{run_probe, Probe};
use ctxtrack_sim::{run, Config, TraceOutputs, Workload};

fn file_design(file: &str) -> &'static Design {
    lang::load_shipped(file).unwrap_or_else(|e| panic!("{e}"))
}

fn report_json(d: &'static Design, w: &Workload, ct_on: bool, preempt: bool) -> String {
    let mut c = Config::new(d);
    c.ct_on = ct_on;
    c.preempt = preempt;
    c.irq_period_ns = Some(50_000);
    c.nmi_period_ns = Some(300_000);
    c.stop_on_violation = false;
    // Endless workloads end at 20 ms, as `--duration` would end them.
    c.duration_ns = (!w.finite()).then_some(20_000_000);
    let (r, _) = run(c, w, TraceOutputs::none());
    serde_json::to_string_pretty(&r).unwrap()
}

#[test]
fn generic_entry_file_equals_the_rust_design() {
    let rust = design::by_name("generic-entry").unwrap();
    let file = file_design("generic-entry.c");
    assert_eq!(file.name, rust.name);
    for w in [
        Workload::messaging_default(),
        Workload::Messaging {
            groups: 2,
            loops: 20,
            pipe: true,
            thread: true,
        },
        Workload::SyscallStorm {
            user_ns: 300,
            urn_every: 3,
            per_cpu: 2,
        },
    ] {
        for ct_on in [false, true] {
            for preempt in [false, true] {
                assert_eq!(
                    report_json(rust, &w, ct_on, preempt),
                    report_json(file, &w, ct_on, preempt),
                    "{w:?} ct_on={ct_on} preempt={preempt}"
                );
            }
        }
    }
    for p in Probe::ALL {
        for ct_on in [false, true] {
            assert_eq!(
                run_probe(rust, p, ct_on),
                run_probe(file, p, ct_on),
                "{p:?} ct_on={ct_on}"
            );
        }
    }
    let base = Config::new(rust);
    let opts = Options {
        stress_seeds: 3,
        ..Options::default()
    };
    let a = compare(
        &base,
        &Workload::messaging_default(),
        &[rust],
        &opts,
        |_, _, _| {},
    );
    let b = compare(
        &base,
        &Workload::messaging_default(),
        &[file],
        &opts,
        |_, _, _| {},
    );
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}
