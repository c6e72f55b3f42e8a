//! Breadth-first exploration with state fingerprints.
//!
//! Level by level from the roots: every enabled action of every frontier state is applied to a
//! copy; a copy whose transition made the monitor report a violation is a counterexample (kept
//! if it is the first for its invariant, never expanded); otherwise it joins the next level
//! unless its fingerprint was seen. Breadth-first order makes the first counterexample of each
//! invariant a shortest one (fewest transitions from a root); actions are tried in
//! [`Model::actions`]'s fixed order, so the result is deterministic.
//!
//! Memory: one fingerprint (8 bytes in the set) and one parent link (12 bytes) per state, plus
//! the machines of two levels.

use crate::model::{Action, Model, Root};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A found violation: the invariant and the shortest way to it.
#[derive(Clone, Debug)]
pub struct Found {
    /// Invariant name (the monitor's).
    pub invariant: String,
    /// Where the monitor saw it.
    pub site: String,
    /// What it saw.
    pub detail: String,
    /// Index of the root state in [`Model::roots`].
    pub root: usize,
    /// The transitions from that root, the last one being the violating one.
    pub actions: Vec<Action>,
}

/// Progress of a running exploration.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Distinct states so far.
    pub states: u64,
    /// States waiting in the next level.
    pub frontier: usize,
    /// Current level (transitions from the roots).
    pub level: u32,
}

/// The result of one exploration.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Distinct states (fingerprints), roots included.
    pub states: u64,
    /// Transitions performed.
    pub transitions: u64,
    /// Deepest level reached (longest shortest path from a root, in transitions).
    pub depth: u32,
    /// Every reachable state was explored (false: a limit stopped it).
    pub complete: bool,
    /// The limit that stopped it, if one did.
    pub limit: Option<String>,
    /// The first (shortest) counterexample of each violated invariant and site, in order of
    /// discovery (so the first one of an invariant is its shortest).
    pub found: Vec<Found>,
}

/// Fingerprints are already hashes: the set uses them as they are.
#[derive(Default)]
struct Identity(u64);
impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 << 8) | u64::from(x);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

const NO_PARENT: u32 = u32::MAX;

struct Node {
    parent: u32,
    action: Option<Action>,
}

/// Explores `model` from `roots`; `progress` is called after each level and every 65 536 states.
pub fn explore(model: &Model, roots: &[Root], progress: &mut dyn FnMut(&Progress)) -> Outcome {
    let mut seen: HashSet<u64, BuildHasherDefault<Identity>> = HashSet::default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut frontier = Vec::new();
    for r in roots {
        if seen.insert(model.fingerprint(&r.machine)) {
            nodes.push(Node {
                parent: NO_PARENT,
                action: None,
            });
            frontier.push(((nodes.len() - 1) as u32, r.machine.clone()));
        }
    }
    // Which root each root node is (roots with equal fingerprints collapse to the first).
    let root_of_node: Vec<usize> = {
        let mut v = Vec::new();
        let mut fps = HashSet::<u64, BuildHasherDefault<Identity>>::default();
        for (i, r) in roots.iter().enumerate() {
            if fps.insert(model.fingerprint(&r.machine)) {
                v.push(i);
            }
        }
        v
    };
    let mut out = Outcome {
        states: seen.len() as u64,
        transitions: 0,
        depth: 0,
        complete: true,
        limit: None,
        found: Vec::new(),
    };
    let state_bytes = roots.first().map_or(1, |r| approx_bytes(&r.machine));
    let max_frontier = (model.cfg.max_memory_mb << 20) / state_bytes;
    let mut actions = Vec::with_capacity(16);
    let mut next = Vec::new();
    let mut level = 0u32;
    'levels: while !frontier.is_empty() {
        for (id, m) in frontier.drain(..) {
            actions.clear();
            model.actions(&m, &mut actions);
            let mut m = Some(m);
            for (i, &a) in actions.iter().enumerate() {
                // The last action takes the state itself: one copy fewer per state.
                let mut n = if i + 1 == actions.len() {
                    m.take().expect("state still here")
                } else {
                    m.as_ref().expect("state still here").clone()
                };
                let (count, reports) = (n.monitor.count, n.monitor.reports.len());
                model.apply(&mut n, a);
                out.transitions += 1;
                if n.monitor.count != count {
                    for r in &n.monitor.reports[reports..] {
                        let known = |f: &Found| f.invariant == r.invariant && f.site == r.site;
                        if !out.found.iter().any(known) {
                            let (root, mut path) = path_to(&nodes, &root_of_node, id);
                            path.push(a);
                            out.found.push(Found {
                                invariant: r.invariant.clone(),
                                site: r.site.clone(),
                                detail: r.detail.clone(),
                                root,
                                actions: path,
                            });
                        }
                    }
                    // Keep exploring past it: other invariants and sites may lie behind it. The
                    // copy forgets its reports (they are recorded here) so copies stay cheap.
                    n.monitor.reports.clear();
                    n.monitor.by_site.clear();
                    n.monitor.by_invariant.clear();
                }
                if n.monitor.count > u64::from(model.cfg.keep_going) {
                    continue;
                }
                if seen.insert(model.fingerprint(&n)) {
                    nodes.push(Node {
                        parent: id,
                        action: Some(a),
                    });
                    next.push(((nodes.len() - 1) as u32, n));
                    if seen.len() as u64 >= model.cfg.max_states {
                        out.complete = false;
                        out.limit = Some(format!("--max-states {}", model.cfg.max_states));
                        break 'levels;
                    }
                    if next.len() as u64 > max_frontier {
                        out.complete = false;
                        out.limit = Some(format!(
                            "--max-memory {} MiB ({} waiting states of ~{} bytes)",
                            model.cfg.max_memory_mb,
                            next.len(),
                            state_bytes
                        ));
                        break 'levels;
                    }
                    if seen.len().is_multiple_of(65_536) {
                        progress(&Progress {
                            states: seen.len() as u64,
                            frontier: next.len(),
                            level: level + 1,
                        });
                    }
                }
            }
        }
        if !next.is_empty() {
            level += 1;
        }
        std::mem::swap(&mut frontier, &mut next);
        progress(&Progress {
            states: seen.len() as u64,
            frontier: frontier.len(),
            level,
        });
    }
    out.states = seen.len() as u64;
    out.depth = level;
    out
}

/// Rough size of one stored state: the machine and what its vectors hold.
fn approx_bytes(m: &ctxtrack_sim::Machine) -> u64 {
    use std::mem::size_of;
    let b = size_of::<ctxtrack_sim::Machine>()
        + m.cpus.len() * size_of::<ctxtrack_sim::machine::Cpu>()
        + m.tasks.len() * (size_of::<ctxtrack_sim::machine::Task>() + 64)
        + m.chans.len() * size_of::<ctxtrack_sim::ipc::Channel>()
        + 256;
    b as u64
}

/// The root and the actions that lead to node `id`.
fn path_to(nodes: &[Node], root_of_node: &[usize], mut id: u32) -> (usize, Vec<Action>) {
    let mut path = Vec::new();
    loop {
        let n = &nodes[id as usize];
        match (n.parent, n.action) {
            (NO_PARENT, _) => break,
            (p, Some(a)) => {
                path.push(a);
                id = p;
            }
            (_, None) => unreachable!("a non-root node without an action"),
        }
    }
    path.reverse();
    (root_of_node[id as usize], path)
}
