//! `check-bench`: runs the same model (a design, depth, events) through ctxtrack's own
//! breadth-first explorer and through the `stateright` crate's BFS checker, and prints states,
//! wall time and states per second of each, measured in one run. The figures behind the choice
//! recorded in ARCHITECTURE.md ("Why our own explorer").
//!
//! `cargo run --release -p ctxtrack-check-bench -- [DESIGN] [DEPTH]`

use ctxtrack_check::model::{Action, CheckConfig, Model, Root};
use ctxtrack_sim::Machine;
use stateright::{Checker, Model as _, Property};
use std::hash::{Hash, Hasher};
use std::time::Instant;

/// A machine with its fingerprint: stateright hashes states itself, so the hash is the
/// fingerprint (the same abstraction as ours).
#[derive(Clone)]
struct St {
    m: Machine,
    fp: u64,
}

impl Hash for St {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.fp.hash(h);
    }
}

impl std::fmt::Debug for St {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "state {:016x}", self.fp)
    }
}

struct Sr {
    model: Model,
    roots: Vec<Root>,
}

impl stateright::Model for Sr {
    type State = St;
    type Action = Action;

    fn init_states(&self) -> Vec<St> {
        self.roots
            .iter()
            .map(|r| St {
                fp: self.model.fingerprint(&r.machine),
                m: r.machine.clone(),
            })
            .collect()
    }

    fn actions(&self, s: &St, out: &mut Vec<Action>) {
        self.model.actions(&s.m, out);
    }

    fn next_state(&self, s: &St, a: Action) -> Option<St> {
        let mut m = s.m.clone();
        self.model.apply(&mut m, a);
        Some(St {
            fp: self.model.fingerprint(&m),
            m,
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::always("no violation", |_, s: &St| {
            s.m.monitor().count == 0
        })]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let design = args.first().map_or("generic-entry", |s| s.as_str());
    let depth: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let d = match ctxtrack_sim::design::by_name(design) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("check-bench: {e}");
            std::process::exit(2);
        }
    };
    let cfg = CheckConfig {
        depth,
        keep_going: 0,
        ..CheckConfig::new(d)
    };
    println!("model: {design}, depth {depth}, one CPU, every event");

    let mut own = 0.0;
    for threads in [1, 2] {
        let model = Model::new(CheckConfig {
            threads,
            ..cfg.clone()
        })
        .expect("model");
        let roots = model.roots().expect("roots");
        let t = Instant::now();
        let o = ctxtrack_check::explore::explore(&model, &roots, &mut |_| {});
        let secs = t.elapsed().as_secs_f64();
        if threads == 1 {
            own = secs;
        }
        println!(
            "ctxtrack explorer ({threads} thread{}): {:>9} states  {:>7.2} s  {:>8.0} states/s  ({:.2}x our 1-thread time)",
            if threads == 1 { "" } else { "s" },
            o.states,
            secs,
            o.states as f64 / secs,
            secs / own
        );
    }
    for threads in [1, 2] {
        let model = Model::new(cfg.clone()).expect("model");
        let roots = model.roots().expect("roots");
        let t = Instant::now();
        let c = Sr { model, roots }
            .checker()
            .threads(threads)
            .spawn_bfs()
            .join();
        let secs = t.elapsed().as_secs_f64();
        let states = c.unique_state_count();
        println!(
            "stateright BFS ({threads} thread{}):    {:>9} states  {:>7.2} s  {:>8.0} states/s  ({:.2}x our 1-thread time)",
            if threads == 1 { "" } else { "s" },
            states,
            secs,
            states as f64 / secs,
            secs / own
        );
    }
}
