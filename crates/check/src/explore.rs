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
//! the machines of two levels. A machine's copies share the constants and tasks nobody wrote
//! ([`ctxtrack_sim::machine::Shared`], SPIN's `-DCOLLAPSE` idea), so a waiting state holds
//! about what its last transition wrote: its machine's own fields, the CPUs (the one clock
//! moves on all of them) and the tasks the transition ran.

use crate::model::{Action, Model, Root};
use ctxtrack_sim::Machine;
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
    let mut seen: Seen = HashSet::default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut frontier = Vec::new();
    for r in roots {
        if seen.insert(model.fingerprint(&r.machine)) {
            nodes.push(Node {
                parent: NO_PARENT,
                action: None,
            });
            frontier.push(((nodes.len() - 1) as u32, Box::new(r.machine.clone())));
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
    // What the waiting states hold, counted deterministically: the first kept child of a state
    // all it holds (its parent's unwritten components may end up held by it alone), each
    // further kept child what its transition wrote (copies share the rest).
    let max_bytes = (model.cfg.max_memory_mb << 20) as usize;
    let mut next_bytes = 0usize;
    let mut last_parent = NO_PARENT;
    let threads = model.cfg.threads.max(1);
    let mut next = Vec::new();
    let mut level = 0u32;
    'levels: while !frontier.is_empty() {
        // Expand the level batch by batch, each batch in parallel (read-only: the seen set is not
        // written meanwhile), and merge the children in frontier order, so the result does not
        // depend on the number of threads. Batches keep the children's buffers small and reused.
        let mut states = std::mem::take(&mut frontier).into_iter();
        loop {
            let batch: Vec<(u32, Box<Machine>)> = states.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let parts = split(batch, threads);
            let expanded: Vec<Vec<Child>> = if parts.len() == 1 {
                parts.into_iter().map(|p| expand(model, p, &seen)).collect()
            } else {
                let seen = &seen;
                std::thread::scope(|sc| {
                    let hs: Vec<_> = parts
                        .into_iter()
                        .map(|p| sc.spawn(move || expand(model, p, seen)))
                        .collect();
                    hs.into_iter()
                        .map(|h| h.join().expect("explorer thread panicked"))
                        .collect()
                })
            };
            for child in expanded.into_iter().flatten() {
                out.transitions += 1;
                for r in &child.reports {
                    let known = |f: &Found| f.invariant == r.invariant && f.site == r.site;
                    if !out.found.iter().any(known) {
                        let (root, mut path) = path_to(&nodes, &root_of_node, child.parent);
                        path.push(child.action);
                        out.found.push(Found {
                            invariant: r.invariant.clone(),
                            site: r.site.clone(),
                            detail: r.detail.clone(),
                            root,
                            actions: path,
                        });
                    }
                }
                let Some(n) = child.state else { continue };
                if seen.insert(child.fp) {
                    let (apart, total) = child.bytes;
                    next_bytes += if child.parent != last_parent {
                        total
                    } else {
                        apart
                    };
                    last_parent = child.parent;
                    nodes.push(Node {
                        parent: child.parent,
                        action: Some(child.action),
                    });
                    next.push(((nodes.len() - 1) as u32, n));
                    if seen.len() as u64 >= model.cfg.max_states {
                        out.complete = false;
                        out.limit = Some(format!("--max-states {}", model.cfg.max_states));
                        break 'levels;
                    }
                    if next_bytes > max_bytes {
                        out.complete = false;
                        out.limit = Some(format!(
                            "--max-memory {} MiB ({} waiting states of ~{} bytes)",
                            model.cfg.max_memory_mb,
                            next.len(),
                            next_bytes / next.len()
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
        next_bytes = 0;
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

/// One successor, as an expanding thread leaves it for the merge.
struct Child {
    parent: u32,
    action: Action,
    /// Violations the transition reported.
    reports: Vec<ctxtrack_sim::monitor::ViolationReport>,
    /// The state, unless it is not to be explored (seen before the level, or past
    /// `keep_going` violations).
    state: Option<Box<Machine>>,
    fp: u64,
    /// What the state holds apart from its parent, and in all ([`Machine::bytes_held`]).
    bytes: (usize, usize),
}

type Seen = HashSet<u64, BuildHasherDefault<Identity>>;

/// States expanded per parallel batch.
const BATCH: usize = 2048;

/// Splits `v` into at most `n` contiguous parts, in order (one part if it is small).
fn split<T>(mut v: Vec<T>, n: usize) -> Vec<Vec<T>> {
    if n == 1 || v.len() < 256 {
        return vec![v];
    }
    let per = v.len().div_ceil(n);
    let mut parts = Vec::with_capacity(n);
    while v.len() > per {
        let tail = v.split_off(per);
        parts.push(v);
        v = tail;
    }
    parts.push(v);
    parts
}

/// Applies every enabled action to every state of `part`, in order.
fn expand(model: &Model, part: Vec<(u32, Box<Machine>)>, seen: &Seen) -> Vec<Child> {
    let mut out = Vec::with_capacity(part.len() * 2);
    let mut actions = Vec::with_capacity(16);
    let mut addrs = Vec::with_capacity(16);
    for (id, m) in part {
        actions.clear();
        model.actions(&m, &mut actions);
        m.component_addrs(&mut addrs);
        let fp = debug_fingerprint(model, &m);
        let mut m = Some(m);
        for (i, &a) in actions.iter().enumerate() {
            let mut n = fork(model, &mut m, i + 1 == actions.len(), fp);
            let (count, before) = (n.monitor().count, n.monitor().reports.len());
            model.apply(&mut n, a);
            let mut reports = Vec::new();
            if n.monitor().count != count {
                // Keep exploring past it (other invariants and sites may lie behind it); the
                // copy forgets its reports (they travel in `reports`) so copies stay cheap.
                reports = n.drain_reports_from(before);
            }
            let fp = model.fingerprint(&n);
            let keep = n.monitor().count <= u64::from(model.cfg.keep_going) && !seen.contains(&fp);
            out.push(Child {
                parent: id,
                action: a,
                reports,
                bytes: if keep { n.bytes_held(&addrs) } else { (0, 0) },
                state: keep.then_some(n),
                fp,
            });
        }
    }
    out
}

/// The state's fingerprint in debug builds (for [`fork`]'s check), 0 otherwise.
pub(crate) fn debug_fingerprint(model: &Model, m: &Machine) -> u64 {
    if cfg!(debug_assertions) {
        model.fingerprint(m)
    } else {
        0
    }
}

/// The machine one successor of `m` starts from: a copy, or for the last action `m` itself
/// (one copy fewer per state). A copy shares the CPUs and tasks it does not write
/// ([`ctxtrack_sim::machine::Shared`]), so a write through a shared reference would change
/// the state and all its copies: debug builds check, before handing the state over, that its
/// other successors left its fingerprint (`fp`, from [`debug_fingerprint`]) alone.
pub(crate) fn fork(
    model: &Model,
    m: &mut Option<Box<Machine>>,
    last: bool,
    fp: u64,
) -> Box<Machine> {
    if last {
        let m = m.take().expect("state still here");
        debug_assert_eq!(
            model.fingerprint(&m),
            fp,
            "expanding a state changed it: a write through a shared component (see Shared::own)"
        );
        m
    } else {
        Box::new(Machine::clone(m.as_ref().expect("state still here")))
    }
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
