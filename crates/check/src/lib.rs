//! # ctxtrack-check: exhaustive interleaving checker for entry designs
//!
//! Explores every interleaving of a design's entry/exit paths with asynchronous events (IRQs,
//! NMIs, breakpoints, page faults, remote reschedules and signals, a remote grace-period
//! observer) up to a nesting depth, breadth-first with state fingerprints, and returns for each
//! violated invariant a shortest counterexample.
//!
//! - [`model`]: the state (the simulator's `Machine`), the actions, the fingerprint.
//! - [`explore`]: the breadth-first explorer.
//! - [`check`]: one design end to end, counterexamples replayed into readable traces.
//! - [`swarm`]: randomized bitstate workers for searches one machine does not finish, and the
//!   merge of their result files.
//!
//! The invariants are the simulator monitor's (`ctxtrack_sim::monitor`): the checker adds none of
//! its own, so a simulation and a check judge a design by the same code.

pub mod explore;
pub mod model;
pub mod swarm;

use ctxtrack_sim::machine::Machine;
use ctxtrack_sim::tracer::TraceSink;
use explore::{Found, Outcome, Progress};
use model::{Action, CheckConfig, Model};
use serde::Serialize;

/// One numbered line of a counterexample.
#[derive(Clone, Debug, Serialize)]
pub struct TraceLine {
    /// 1-based position.
    pub n: usize,
    /// CPU the transition happened on.
    pub cpu: usize,
    /// The transition (`step`, `irq device`, `nmi`, `gp fqs scan`, ...).
    pub event: String,
    /// Path of the step run or the entry taken (`-` if neither).
    pub path: String,
    /// Step run (`-` if none; `(entry)` when the transition entered the kernel).
    pub step: String,
    /// Context-tracking state of the explored CPU afterwards.
    pub ct_state: String,
    /// IRQs enabled afterwards.
    pub irqs_on: bool,
    /// RCU watching afterwards.
    pub rcu_watching: bool,
}

/// A violated invariant with its shortest trace.
#[derive(Clone, Debug, Serialize)]
pub struct Counterexample {
    /// Invariant name.
    pub invariant: String,
    /// Where it was detected.
    pub site: String,
    /// What was seen.
    pub detail: String,
    /// The starting state.
    pub root: String,
    /// Length of the trace (transitions).
    pub length: usize,
    /// The trace.
    pub trace: Vec<TraceLine>,
    #[serde(skip)]
    found: Found,
}

/// The verdict on one design.
#[derive(Clone, Debug, Serialize)]
pub struct DesignResult {
    /// Design name.
    pub design: String,
    /// Nesting depth.
    pub depth: u32,
    /// Explored CPUs.
    pub cpus: usize,
    /// Events injected.
    pub events: String,
    /// Distinct states.
    pub states: u64,
    /// Transitions.
    pub transitions: u64,
    /// Deepest breadth-first level reached.
    pub depth_reached: u32,
    /// All reachable states explored.
    pub complete: bool,
    /// The limit that stopped the exploration, if one did.
    pub limit: Option<String>,
    /// `ok`, `violated` or `incomplete`.
    pub verdict: &'static str,
    /// One shortest counterexample per violated invariant.
    pub violations: Vec<Counterexample>,
}

impl DesignResult {
    /// The length of the shortest counterexample found for invariant `inv`, if any.
    pub fn shortest(&self, inv: &str) -> Option<usize> {
        self.violations
            .iter()
            .filter(|v| v.invariant == inv)
            .map(|v| v.length)
            .min()
    }
}

/// The events a check injects, as its output names them: the `--events` and what else acts
/// (the remote setter, the counter's width, the richer mechanisms).
pub fn events_name(c: &CheckConfig) -> String {
    let mut e = c.events.names();
    if c.ct_work {
        e.push_str(",ct_set_cpu_work");
        if c.ct_work_nmi_flush {
            e.push_str(",nmi_flush");
        }
    }
    for (on, name) in [
        (c.rcu_counter_torture, "rcu_counter_torture"),
        (c.softirq, "softirq"),
        (c.nocb, "nocb"),
        (c.gp_in_hardirq, "gp_in_hardirq"),
    ] {
        if on {
            e.push(',');
            e.push_str(name);
        }
    }
    e
}

/// Everything that decides a check's state space, in one line: swarm result files merge only
/// when theirs are equal.
pub fn config_key(c: &CheckConfig) -> String {
    format!(
        "design={} cpus={} depth={} events={} keep_going={} softirq_restarts={} max_states={} setter={:?} symmetry={}",
        c.design.name,
        c.cpus,
        c.depth,
        events_name(c),
        c.keep_going,
        c.softirq_max_restart,
        c.max_states,
        c.work_setter,
        c.symmetry
    )
}

/// Runs one worker of a swarm ([`swarm`]) on one design.
pub fn swarm_worker(
    cfg: CheckConfig,
    sw: &swarm::SwarmConfig,
) -> Result<swarm::WorkerResult, String> {
    sw.validate()?;
    let key = config_key(&cfg);
    let model = Model::new(cfg)?;
    let roots = model.roots()?;
    // The frontier gets what --max-memory leaves after the bit array.
    let mut sw = *sw;
    let budget = (model.cfg.max_memory_mb << 20).saturating_sub(1 << (sw.bits_log2 - 3));
    // A root shares nothing: its size bounds what a waiting state holds.
    let per = roots
        .first()
        .map_or(1, |r| r.machine.bytes_held(&[]).1 as u64);
    sw.max_frontier = sw.max_frontier.min((budget / per).max(1) as usize);
    Ok(swarm::run_worker(&model, &roots, &sw, &key))
}

/// Checks one design: builds the model, explores it and replays each counterexample into a
/// readable trace.
pub fn check(
    cfg: CheckConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DesignResult, String> {
    let model = Model::new(cfg)?;
    let roots = model.roots()?;
    let o: Outcome = explore::explore(&model, &roots, progress);
    let mut violations = Vec::new();
    for f in &o.found {
        let trace = replay(&model, &roots[f.root].machine, &f.actions, None);
        violations.push(Counterexample {
            invariant: f.invariant.clone(),
            site: f.site.clone(),
            detail: f.detail.clone(),
            root: roots[f.root].label.clone(),
            length: f.actions.len(),
            trace,
            found: f.clone(),
        });
    }
    let verdict = if !violations.is_empty() {
        "violated"
    } else if o.complete {
        "ok"
    } else {
        "incomplete"
    };
    Ok(DesignResult {
        design: model.cfg.design.name.to_string(),
        depth: model.cfg.depth,
        cpus: model.cfg.cpus,
        events: events_name(&model.cfg),
        states: o.states,
        transitions: o.transitions,
        depth_reached: o.depth,
        complete: o.complete,
        limit: o.limit.clone(),
        verdict,
        violations,
    })
}

/// Writes counterexample `cx` of a check made with `cfg` as ftrace text and/or Chrome JSON
/// (the simulator's trace formats, replayed from the counterexample's root).
pub fn write_traces(
    cfg: CheckConfig,
    cx: &Counterexample,
    out: ctxtrack_sim::TraceOutputs,
) -> Result<(), String> {
    let model = Model::new(cfg)?;
    let roots = model.roots()?;
    let f = &cx.found;
    let root = &roots[f.root].machine;
    let count = || {
        let mut s = Some(TraceSink::counting());
        replay(&model, root, &f.actions, Some(&mut s));
        s.map_or(0, |s| s.lines)
    };
    let mut sink = out.sink(count, root.cpus().len());
    replay(&model, root, &f.actions, Some(&mut sink));
    match sink {
        Some(mut s) => s.finish().map_err(|e| format!("writing the trace: {e}")),
        None => Ok(()),
    }
}

/// Replays `actions` from `root` with step history on (and the trace sink, if given), one line
/// per transition.
fn replay(
    model: &Model,
    root: &Machine,
    actions: &[Action],
    sink: Option<&mut Option<TraceSink>>,
) -> Vec<TraceLine> {
    let mut m = root.clone();
    m.record_history(true);
    let tracing = sink.is_some();
    let mut sink = sink;
    if let Some(s) = sink.as_mut() {
        m.set_trace(s.take());
    }
    let mut lines = Vec::new();
    for (i, &a) in actions.iter().enumerate() {
        let c = match a.cpu() {
            model::HOUSEKEEPING => model.cpus[0],
            c => c,
        };
        let hist = m.cpus()[c].history.len();
        let entries = m.tasks()[m.cpus()[c].current].entries.len();
        model.apply(&mut m, a);
        let cpu = &m.cpus()[c];
        let task = &m.tasks()[cpu.current];
        let (path, step) = if cpu.history.len() != hist {
            let e = cpu.history.last().expect("history just grew");
            (e.path.to_string(), e.step.to_string())
        } else if task.entries.len() > entries {
            let f = task.frames.last().expect("an entry has a frame");
            (f.path.name.to_string(), "(entry)".to_string())
        } else {
            ("-".to_string(), "-".to_string())
        };
        // A plain step that entered the kernel took an interrupt that had arrived earlier.
        let event = match (a, task.entries.last()) {
            (Action::Step(_), Some(e)) if task.entries.len() > entries => match e.regs.vector {
                Some(v) => format!("takes irq {}", v.trace_name()),
                None if e.kind == ctxtrack_sim::machine::EntryKind::Nmi => "takes nmi".into(),
                None => "enters kernel".into(),
            },
            _ => a.describe(),
        };
        let ct = &cpu.pcpu.ct;
        lines.push(TraceLine {
            n: i + 1,
            cpu: a.cpu(),
            event,
            path,
            step,
            ct_state: ct.ct_state_bits().name().to_string(),
            irqs_on: cpu.hw.irqs_on,
            rcu_watching: ct.rcu_is_watching(),
        });
    }
    if tracing {
        if let Some(s) = sink {
            *s = m.set_trace(None);
        }
    }
    lines
}

/// The text form of a result.
pub fn render(r: &DesignResult, secs: Option<f64>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let time = secs.map_or(String::new(), |t| {
        format!(", {t:.2} s ({:.0} states/s)", r.states as f64 / t.max(1e-9))
    });
    let _ = writeln!(
        s,
        "{}: {} — {} states, {} transitions, depth reached {} (nesting ≤ {}, cpus {}, events {}){time}",
        r.design,
        r.verdict.to_uppercase(),
        r.states,
        r.transitions,
        r.depth_reached,
        r.depth,
        r.cpus,
        r.events
    );
    if let Some(l) = &r.limit {
        let _ = writeln!(
            s,
            "  stopped by {l}: not every reachable state was explored (no proof; lower --depth or narrow --events)"
        );
    }
    for v in &r.violations {
        let _ = writeln!(
            s,
            "  violated {} @ {} (shortest trace: {} transitions, from \"{}\")\n    {}",
            v.invariant, v.site, v.length, v.root, v.detail
        );
        let _ = writeln!(
            s,
            "    {:>3}  {:>3}  {:<22} {:<28} {:<44} {:<6} {:<5} rcu",
            "#", "cpu", "event", "path", "step", "ct", "irqs"
        );
        for l in &v.trace {
            let _ = writeln!(
                s,
                "    {:>3}  {:>3}  {:<22} {:<28} {:<44} {:<6} {:<5} {}",
                l.n,
                l.cpu,
                l.event,
                truncate(&l.path, 28),
                truncate(&l.step, 44),
                l.ct_state,
                if l.irqs_on { "on" } else { "off" },
                if l.rcu_watching { "watching" } else { "eqs" }
            );
        }
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
