//! Swarm verification for what no single machine finishes (as SPIN's swarm does): `N`
//! independent randomized searches of the same model, each with its own seed, hash salt and
//! action order, in bounded memory, each writing a result file; [`merge`] combines the files
//! into one verdict, keeping the shortest counterexample found per invariant and site.
//!
//! One worker is a breadth-first search whose visited set is a bit array (bitstate hashing,
//! SPIN's `-DBITSTATE` with two hash functions, `-k2`): a state counts as seen when both of its
//! bits are set, so a state can be wrongly skipped when both collide with earlier states. The
//! result says how likely that was ([`WorkerResult::omission_probability`]: the chance that a
//! new state found both of its bits already set, at the end of the search). Each worker orders
//! the actions of every state by its own permutation and salts its hashes differently, so the
//! workers' omissions fall on different states; worker 0 keeps the model's own order. A worker
//! whose next level would exceed its frontier budget keeps a pseudo-random subset (by salted
//! hash) and counts what it dropped.
//!
//! A swarm never says OK: bitstate search is not exhaustive. Its verdict is the violations it
//! found (shortest per invariant and site, across workers) or "none found", with what it
//! covered. The same configuration and worker index give the same file, whatever the machine.

use crate::explore::Found;
use crate::model::{Action, Model, Root};
use ctxtrack_sim::Machine;
use serde::{Deserialize, Serialize};

/// The format tag of a result file.
pub const FORMAT: &str = "ctxtrack-swarm-1";

/// One worker's share of a swarm.
#[derive(Clone, Copy, Debug)]
pub struct SwarmConfig {
    /// Workers in the swarm (`--swarm N`).
    pub workers: u32,
    /// This worker (`--worker I`, `0..N`).
    pub worker: u32,
    /// The bit array has `2^bits_log2` bits (`--swarm-bits`).
    pub bits_log2: u32,
    /// Most states waiting in one level (the frontier budget).
    pub max_frontier: usize,
}

impl SwarmConfig {
    /// Checks the worker index and sizes; errors name the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("--swarm must be at least 1".into());
        }
        if self.worker >= self.workers {
            return Err(format!(
                "--worker {} is out of range: --swarm {} has workers 0 to {}",
                self.worker,
                self.workers,
                self.workers - 1
            ));
        }
        if !(10..=36).contains(&self.bits_log2) {
            return Err(format!(
                "--swarm-bits {} is out of range: 10 (128 bytes) to 36 (8 GiB)",
                self.bits_log2
            ));
        }
        Ok(())
    }
}

/// A counterexample as a result file carries it: enough to replay it from its root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmFound {
    /// Invariant name.
    pub invariant: String,
    /// Where it was detected.
    pub site: String,
    /// What was seen.
    pub detail: String,
    /// Index of the root in the model's roots.
    pub root: usize,
    /// The root's label.
    pub root_label: String,
    /// The transitions from the root (the last one violates).
    pub actions: Vec<Action>,
    /// The worker that found it.
    pub worker: u32,
}

/// What one worker did: its result file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerResult {
    /// [`FORMAT`].
    pub format: String,
    /// The model's configuration, as `check` names it (design, CPUs, depth, events, options):
    /// files merge only with files of the same.
    pub config: String,
    /// Workers in the swarm.
    pub workers: u32,
    /// This worker.
    pub worker: u32,
    /// Its seed (hash salt and action order).
    pub seed: u64,
    /// States it explored (new by its bit array).
    pub states: u64,
    /// Transitions it performed.
    pub transitions: u64,
    /// Deepest level reached.
    pub depth: u32,
    /// Size of its bit array.
    pub bits: u64,
    /// Bits set at the end.
    pub bits_set: u64,
    /// States dropped because a level exceeded the frontier budget.
    pub frontier_dropped: u64,
    /// Always false: bitstate search is not exhaustive.
    pub exhaustive: bool,
    /// The limit that stopped it early (`--max-states`: its parent links), if one did.
    pub limit: Option<String>,
    /// Shortest counterexample it found per invariant and site.
    pub found: Vec<SwarmFound>,
}

impl WorkerResult {
    /// Chance that a new state was taken for a seen one at the end of the search (both its
    /// bits already set: `(bits_set / bits)^2`); earlier in the search it was lower.
    pub fn omission_probability(&self) -> f64 {
        let fill = self.bits_set as f64 / self.bits.max(1) as f64;
        fill * fill
    }
}

/// SplitMix64: seeds and salts.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Bits {
    words: Vec<u64>,
    mask: u64,
    set: u64,
}

impl Bits {
    fn new(log2: u32) -> Bits {
        Bits {
            words: vec![0; 1usize << (log2 - 6)],
            mask: (1u64 << log2) - 1,
            set: 0,
        }
    }
    /// Sets the two bits of `h`; true if either was clear (the state is new).
    fn insert(&mut self, h: u64) -> bool {
        let mut new = false;
        for b in [h & self.mask, h.rotate_left(32) & self.mask] {
            let (w, bit) = ((b >> 6) as usize, 1u64 << (b & 63));
            if self.words[w] & bit == 0 {
                self.words[w] |= bit;
                self.set += 1;
                new = true;
            }
        }
        new
    }
}

struct Node {
    parent: u32,
    action: Option<Action>,
    root: u32,
}

/// Runs worker `sw.worker` of the swarm on `model` from `roots`. `config` names the model's
/// configuration in the result file.
pub fn run_worker(model: &Model, roots: &[Root], sw: &SwarmConfig, config: &str) -> WorkerResult {
    let seed = mix(u64::from(sw.worker) ^ u64::from(sw.workers) << 32);
    let salt = if sw.worker == 0 { 0 } else { mix(seed) };
    let mut bits = Bits::new(sw.bits_log2);
    let mut nodes: Vec<Node> = Vec::new();
    let mut frontier: Vec<(u32, Box<Machine>)> = Vec::new();
    for (i, r) in roots.iter().enumerate() {
        if bits.insert(mix(model.fingerprint(&r.machine) ^ salt)) {
            nodes.push(Node {
                parent: u32::MAX,
                action: None,
                root: i as u32,
            });
            frontier.push(((nodes.len() - 1) as u32, Box::new(r.machine.clone())));
        }
    }
    let mut found: Vec<Found> = Vec::new();
    let (mut transitions, mut dropped, mut depth) = (0u64, 0u64, 0u32);
    let mut actions = Vec::new();
    let mut limit = None;
    'levels: while !frontier.is_empty() {
        let mut next: Vec<(u64, u32, Box<Machine>)> = Vec::new();
        for (id, m) in std::mem::take(&mut frontier) {
            actions.clear();
            model.actions(&m, &mut actions);
            if sw.worker != 0 {
                // This worker's order of the state's actions: a permutation by salted rank.
                let f = model.fingerprint(&m);
                actions.sort_by_key(|a| mix(salt ^ f ^ action_key(a)));
            }
            let fp = crate::explore::debug_fingerprint(model, &m);
            let mut m = Some(m);
            for (i, &a) in actions.iter().enumerate() {
                let mut n = crate::explore::fork(model, &mut m, i + 1 == actions.len(), fp);
                let (count, before) = (n.monitor().count, n.monitor().reports.len());
                model.apply(&mut n, a);
                transitions += 1;
                if n.monitor().count != count {
                    for r in n.drain_reports_from(before) {
                        let known = |f: &Found| f.invariant == r.invariant && f.site == r.site;
                        if !found.iter().any(known) {
                            let (root, mut path) = path_to(&nodes, id);
                            path.push(a);
                            found.push(Found {
                                invariant: r.invariant.clone(),
                                site: r.site.clone(),
                                detail: r.detail.clone(),
                                root,
                                actions: path,
                            });
                        }
                    }
                }
                if n.monitor().count > u64::from(model.cfg.keep_going) {
                    continue;
                }
                let h = mix(model.fingerprint(&n) ^ salt);
                if bits.insert(h) {
                    nodes.push(Node {
                        parent: id,
                        action: Some(a),
                        root: nodes[id as usize].root,
                    });
                    next.push((h, (nodes.len() - 1) as u32, n));
                    if nodes.len() as u64 >= model.cfg.max_states {
                        limit = Some(format!("--max-states {}", model.cfg.max_states));
                        break 'levels;
                    }
                }
            }
        }
        if next.len() > sw.max_frontier {
            // Keep the states with the smallest salted hashes: a pseudo-random subset that
            // differs between workers.
            next.sort_by_key(|(h, id, _)| (mix(*h ^ salt), *id));
            dropped += (next.len() - sw.max_frontier) as u64;
            next.truncate(sw.max_frontier);
            next.sort_by_key(|(_, id, _)| *id);
        }
        if !next.is_empty() {
            depth += 1;
        }
        frontier = next.into_iter().map(|(_, id, m)| (id, m)).collect();
    }
    let total = bits.mask + 1;
    WorkerResult {
        format: FORMAT.into(),
        config: config.into(),
        workers: sw.workers,
        worker: sw.worker,
        seed,
        states: nodes.len() as u64,
        transitions,
        depth,
        bits: total,
        bits_set: bits.set,
        frontier_dropped: dropped,
        exhaustive: false,
        limit,
        found: found
            .into_iter()
            .map(|f| SwarmFound {
                invariant: f.invariant,
                site: f.site,
                detail: f.detail,
                root_label: roots[f.root].label.clone(),
                root: f.root,
                actions: f.actions,
                worker: sw.worker,
            })
            .collect(),
    }
}

/// A stable number for an action (its kind and CPU), for the workers' permutations.
fn action_key(a: &Action) -> u64 {
    let (kind, cpu, extra) = match *a {
        Action::Step(c) => (0, c, 0),
        Action::Syscall(c) => (1, c, 0),
        Action::Irq(c, v) => (2, c, v as u64),
        Action::Nmi(c) => (3, c, 0),
        Action::Breakpoint(c) => (4, c, 0),
        Action::PageFault(c) => (5, c, 0),
        Action::Preempt(c) => (6, c, 0),
        Action::Signal(c) => (7, c, 0),
        Action::GpStart => (8, 0, 0),
        Action::GpFqs => (9, 0, 0),
        Action::GpUrgent(c) => (10, c, 0),
        Action::WorkRead(c) => (11, c, 0),
        Action::WorkCmpxchg(c) => (12, c, 0),
    };
    kind << 40 | (cpu as u64) << 8 | extra
}

fn path_to(nodes: &[Node], mut id: u32) -> (usize, Vec<Action>) {
    let root = nodes[id as usize].root as usize;
    let mut path = Vec::new();
    while let Some(a) = nodes[id as usize].action {
        path.push(a);
        id = nodes[id as usize].parent;
    }
    path.reverse();
    (root, path)
}

/// The swarm's verdict from its workers' files.
#[derive(Clone, Debug, Serialize)]
pub struct Merged {
    /// The configuration every file names.
    pub config: String,
    /// Workers in the swarm.
    pub workers: u32,
    /// Workers whose files were merged.
    pub merged: Vec<u32>,
    /// Workers with no file (their share was not searched).
    pub missing: Vec<u32>,
    /// States explored, summed over workers (a state explored by two counts twice).
    pub states: u64,
    /// Transitions, summed.
    pub transitions: u64,
    /// Deepest level any worker reached.
    pub depth: u32,
    /// The highest omission probability of any worker.
    pub worst_omission_probability: f64,
    /// States dropped by frontier budgets, summed.
    pub frontier_dropped: u64,
    /// Always false: a swarm is never exhaustive.
    pub exhaustive: bool,
    /// `violated` or `none found` (never `ok`).
    pub verdict: &'static str,
    /// Workers a limit stopped early (`--max-states`): their share was searched in part.
    pub stopped_early: Vec<u32>,
    /// The shortest counterexample per invariant and site (ties: the lower worker).
    pub found: Vec<SwarmFound>,
}

/// Merges workers' results: they must be of one configuration and one swarm size, each worker
/// at most once. Errors name the file (by index in `names`) and what was expected.
pub fn merge(files: &[(String, WorkerResult)]) -> Result<Merged, String> {
    let (first_name, first) = files.first().ok_or("check merge: no result files given")?;
    let mut seen = vec![false; first.workers as usize];
    let mut found: Vec<SwarmFound> = Vec::new();
    let mut m = Merged {
        config: first.config.clone(),
        workers: first.workers,
        merged: Vec::new(),
        missing: Vec::new(),
        states: 0,
        transitions: 0,
        depth: 0,
        worst_omission_probability: 0.0,
        frontier_dropped: 0,
        exhaustive: false,
        verdict: "none found",
        stopped_early: Vec::new(),
        found: Vec::new(),
    };
    for (name, r) in files {
        if r.format != FORMAT {
            return Err(format!(
                "{name}: format {:?}, expected {FORMAT:?}",
                r.format
            ));
        }
        if r.config != first.config {
            return Err(format!(
                "{name}: a different configuration ({:?}) from {first_name} ({:?})",
                r.config, first.config
            ));
        }
        if r.workers != first.workers {
            return Err(format!(
                "{name}: worker of --swarm {}, {first_name} of --swarm {}",
                r.workers, first.workers
            ));
        }
        let w = r.worker as usize;
        if w >= seen.len() {
            return Err(format!("{name}: worker {w} of a swarm of {}", r.workers));
        }
        if std::mem::replace(&mut seen[w], true) {
            return Err(format!("{name}: worker {w} given twice"));
        }
        m.merged.push(r.worker);
        m.states += r.states;
        m.transitions += r.transitions;
        m.depth = m.depth.max(r.depth);
        m.worst_omission_probability = m.worst_omission_probability.max(r.omission_probability());
        m.frontier_dropped += r.frontier_dropped;
        if r.limit.is_some() {
            m.stopped_early.push(r.worker);
        }
        for f in &r.found {
            let key = |x: &SwarmFound| x.invariant == f.invariant && x.site == f.site;
            match found.iter_mut().find(|x| key(x)) {
                Some(x) => {
                    let better = (f.actions.len(), f.worker) < (x.actions.len(), x.worker);
                    if better {
                        *x = f.clone();
                    }
                }
                None => found.push(f.clone()),
            }
        }
    }
    m.merged.sort_unstable();
    m.stopped_early.sort_unstable();
    m.missing = (0..first.workers).filter(|&w| !seen[w as usize]).collect();
    found.sort_by(|a, b| {
        (&a.invariant, &a.site, a.actions.len()).cmp(&(&b.invariant, &b.site, b.actions.len()))
    });
    if !found.is_empty() {
        m.verdict = "violated";
    }
    m.found = found;
    Ok(m)
}

/// The merged verdict as text.
pub fn render(m: &Merged) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "swarm of {} workers: {}", m.workers, m.config);
    let _ = writeln!(
        s,
        "  merged {} worker(s){}; {} states, {} transitions, depth {}, {} dropped by frontier budgets",
        m.merged.len(),
        if m.missing.is_empty() {
            String::new()
        } else {
            format!(", MISSING {:?}", m.missing)
        },
        m.states,
        m.transitions,
        m.depth,
        m.frontier_dropped
    );
    if !m.stopped_early.is_empty() {
        let _ = writeln!(
            s,
            "  workers stopped early by --max-states: {:?}",
            m.stopped_early
        );
    }
    let _ = writeln!(
        s,
        "  not exhaustive (bitstate): a new state was taken for a seen one with probability at most {:.2e} per state",
        m.worst_omission_probability
    );
    if m.found.is_empty() {
        let _ = writeln!(s, "NONE FOUND (not a proof: see coverage above)");
    } else {
        for f in &m.found {
            let _ = writeln!(
                s,
                "VIOLATION {} @ {}: {} transitions from \"{}\" (worker {})",
                f.invariant,
                f.site,
                f.actions.len(),
                f.root_label,
                f.worker
            );
            for (i, a) in f.actions.iter().enumerate() {
                let _ = writeln!(s, "  {:3}. cpu {} {}", i + 1, a.cpu(), a.describe());
            }
        }
    }
    s
}
