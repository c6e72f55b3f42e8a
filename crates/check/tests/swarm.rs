//! Swarm mode: workers are deterministic, find what the exhaustive search finds on a model they
//! cover, never call a search OK, and merge into the shortest counterexample per site.

use ctxtrack_check::model::{CheckConfig, Events};
use ctxtrack_check::swarm::{merge, render, SwarmConfig, WorkerResult};
use ctxtrack_check::{check, swarm_worker};
use ctxtrack_sim::design;

fn cfg(name: &str, depth: u32) -> CheckConfig {
    CheckConfig {
        depth,
        events: Events::ALL,
        ..CheckConfig::new(design::by_name(name).unwrap())
    }
}

fn worker(name: &str, depth: u32, workers: u32, i: u32) -> WorkerResult {
    let sw = SwarmConfig {
        workers,
        worker: i,
        bits_log2: 24,
        max_frontier: usize::MAX,
    };
    swarm_worker(cfg(name, depth), &sw).expect("worker runs")
}

fn named(rs: Vec<WorkerResult>) -> Vec<(String, WorkerResult)> {
    rs.into_iter()
        .map(|r| (format!("w{}.json", r.worker), r))
        .collect()
}

#[test]
fn a_worker_is_deterministic_and_its_file_round_trips() {
    let a = worker("weisbecker-2015", 1, 3, 1);
    let b = worker("weisbecker-2015", 1, 3, 1);
    let ja = serde_json::to_string(&a).unwrap();
    assert_eq!(ja, serde_json::to_string(&b).unwrap());
    let back: WorkerResult = serde_json::from_str(&ja).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), ja);
    assert!(!a.exhaustive);
    // Another worker searches in another order with another salt.
    let c = worker("weisbecker-2015", 1, 3, 2);
    assert_ne!(a.seed, c.seed);
}

#[test]
fn a_swarm_finds_every_site_the_exhaustive_search_finds_at_its_shortest() {
    // Depth 2: a few thousand states, far below the bit array, so every worker covers the
    // model; worker 0 keeps the model's order, so its breadth-first traces are the shortest.
    let full = check(cfg("weisbecker-2015", 2), &mut |_| {}).unwrap();
    assert!(full.complete && !full.violations.is_empty());
    let m = merge(&named(
        (0..3).map(|i| worker("weisbecker-2015", 2, 3, i)).collect(),
    ))
    .unwrap();
    assert_eq!(m.verdict, "violated");
    assert!(m.missing.is_empty());
    let mut want: Vec<(String, String, usize)> = full
        .violations
        .iter()
        .map(|v| (v.invariant.clone(), v.site.clone(), v.length))
        .collect();
    let mut got: Vec<(String, String, usize)> = m
        .found
        .iter()
        .map(|f| (f.invariant.clone(), f.site.clone(), f.actions.len()))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn a_clean_swarm_says_none_found_never_ok() {
    let rs = vec![
        worker("generic-entry", 1, 2, 0),
        worker("generic-entry", 1, 2, 1),
    ];
    assert!(rs.iter().all(|r| r.found.is_empty() && r.states > 0));
    let m = merge(&named(rs)).unwrap();
    assert_eq!(m.verdict, "none found");
    assert!(!m.exhaustive);
    let text = render(&m);
    assert!(text.contains("NONE FOUND (not a proof"), "{text}");
    assert!(!text.to_lowercase().contains(" ok"), "{text}");
}

#[test]
fn merge_keeps_the_shortest_reports_missing_workers_and_refuses_mixed_files() {
    let w0 = worker("weisbecker-2015", 1, 4, 0);
    let mut w2 = worker("weisbecker-2015", 1, 4, 2);
    // Make worker 2's first counterexample longer than worker 0's: the merge keeps worker 0's.
    let f0 = w0.found[0].clone();
    let i = w2
        .found
        .iter()
        .position(|f| f.invariant == f0.invariant && f.site == f0.site)
        .expect("both found the first site");
    let extra = w2.found[i].actions[0];
    w2.found[i].actions.insert(0, extra);
    let m = merge(&named(vec![w2.clone(), w0.clone()])).unwrap();
    assert_eq!(m.missing, vec![1, 3]);
    assert_eq!(m.merged, vec![0, 2]);
    let kept = m
        .found
        .iter()
        .find(|f| f.invariant == f0.invariant && f.site == f0.site)
        .unwrap();
    assert_eq!((kept.worker, kept.actions.len()), (0, f0.actions.len()));
    assert!(render(&m).contains("MISSING [1, 3]"));
    assert!(m.stopped_early.is_empty());
    // A worker a limit stopped is named as such.
    let mut w0s = w0.clone();
    w0s.limit = Some("--max-states 10".into());
    let m = merge(&named(vec![w0s])).unwrap();
    assert_eq!(m.stopped_early, vec![0]);
    assert!(render(&m).contains("stopped early by --max-states: [0]"));
    // The same worker twice, another configuration, another swarm size: errors naming the file.
    let e = merge(&named(vec![w0.clone(), w0.clone()])).unwrap_err();
    assert!(e.contains("w0.json: worker 0 given twice"), "{e}");
    let other = worker("weisbecker-2015", 2, 4, 1);
    let e = merge(&named(vec![w0.clone(), other])).unwrap_err();
    assert!(e.contains("w1.json: a different configuration"), "{e}");
    let e = merge(&named(vec![w0, worker("weisbecker-2015", 1, 2, 1)])).unwrap_err();
    assert!(e.contains("--swarm 2"), "{e}");
    assert!(merge(&[]).is_err());
}

#[test]
fn bad_swarm_options_are_errors_naming_them() {
    let bad = |workers, worker, bits_log2| {
        SwarmConfig {
            workers,
            worker,
            bits_log2,
            max_frontier: 1,
        }
        .validate()
        .unwrap_err()
    };
    assert!(bad(0, 0, 20).contains("--swarm"));
    assert!(bad(4, 4, 20).contains("--worker 4 is out of range"));
    assert!(bad(4, 0, 5).contains("--swarm-bits"));
}

#[test]
fn a_worker_stops_at_max_states_and_says_so() {
    let sw = SwarmConfig {
        workers: 2,
        worker: 1,
        bits_log2: 20,
        max_frontier: usize::MAX,
    };
    let c = CheckConfig {
        max_states: 50,
        ..cfg("generic-entry", 1)
    };
    let r = swarm_worker(c, &sw).unwrap();
    assert_eq!(r.states, 50);
    assert_eq!(r.limit.as_deref(), Some("--max-states 50"));
}
