//! `ctxtrack compare`: the same workload and seed under every design, with context tracking
//! inactive (built in, key off) and active (nohz_full CPUs), plus per-path counts from
//! [`crate::lab::probe`] and randomized stress runs with IRQs, NMIs and preemption everywhere.
//!
//! Every figure is counted from running the designs; nothing here is written per design.

use crate::config::Config;
use crate::design::Design;
use crate::lab::probe::{run_probe, PathCounts, Probe};
use crate::lab::workload::Workload;
use crate::monitor::HistEntry;
use crate::{run, Report};
use serde::Serialize;
use std::collections::BTreeMap;

/// One design in one mode.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Design name.
    pub design: &'static str,
    /// `off` (key off, no nohz_full) or `on`.
    pub ct: &'static str,
    /// Context-tracking API calls.
    pub ct_calls: u64,
    /// Calls while the key was off.
    pub ct_calls_inactive: u64,
    /// RCU hook calls.
    pub rcu_hooks: u64,
    /// vtime hook calls.
    pub vtime_hooks: u64,
    /// irq save/restore pairs in context tracking.
    pub irq_save_restore: u64,
    /// Context-tracking cycles per syscall.
    pub ct_cycles_per_syscall: f64,
    /// Context-tracking cycles per IRQ.
    pub ct_cycles_per_irq: f64,
    /// Entry/exit cycles per syscall (all entry glue).
    pub entry_cycles_per_syscall: f64,
    /// Entry/exit cycles per IRQ.
    pub entry_cycles_per_irq: f64,
    /// `ct_cycles_per_irq` as a share of the IRQ delivery cost (%).
    pub ct_share_of_irq_delivery_pct: f64,
    /// All context-tracking cycles as a share of all CPU time of the run (%).
    pub ct_share_of_run_pct: f64,
    /// The benchmark's own total time, if it has one (ns).
    pub bench_time_ns: Option<u64>,
    /// Grace periods completed.
    pub gp_completed: u64,
    /// Mean grace-period latency (ns).
    pub gp_latency_avg_ns: u64,
    /// Worst grace-period latency (ns).
    pub gp_latency_max_ns: u64,
    /// Reschedule IPIs RCU sent to nohz_full CPUs.
    pub rcu_ipis_to_nohz_full: u64,
    /// Invariant violations.
    pub violations: u64,
    /// The first one, with the steps of its entry.
    pub first_violation: Option<Found>,
    /// Deferred IPIs, in comparisons that run the CT_WORK rows ([`Options::ct_work`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_work: Option<RowWork>,
}

/// A row's deferred-IPI figures, summed over the nohz_full CPUs.
#[derive(Clone, Debug, Serialize)]
pub struct RowWork {
    /// Senders deferred where they could (`--ct-work`).
    pub deferral: bool,
    /// CALL_FUNCTION IPIs the nohz_full CPUs took for the senders' work.
    pub ipis_to_nohz_full: u64,
    /// Work deferred to them.
    pub deferred: u64,
    /// Flushes their entries ran.
    pub flushes: u64,
    /// The shortest of their longest stretches without an IRQ or NMI in user mode (ns).
    pub longest_quiet_ns: u64,
}

/// A violation and the steps of the entry it happened in.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    /// Invariant.
    pub invariant: String,
    /// Where.
    pub site: String,
    /// What the monitor saw.
    pub detail: String,
    /// Steps from the start of the entry to the violation.
    pub trace: Vec<HistEntry>,
}

/// Per-design stress result: which invariants random runs broke, with the shortest trace found.
#[derive(Clone, Debug, Serialize)]
pub struct Stress {
    /// Design.
    pub design: &'static str,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Events injected (device IRQs + NMIs) over all seeds.
    pub injected: u64,
    /// Violations per `invariant @ site` over all seeds.
    pub violations: BTreeMap<String, u64>,
    /// Shortest trace found per `invariant @ site`.
    pub shortest: BTreeMap<String, Found>,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Workload.
    pub workload: Workload,
    /// Seed.
    pub seed: u64,
    /// Rows: each design off then on.
    pub rows: Vec<Row>,
    /// Per-path counts: design → probe → mode → counts.
    pub paths: BTreeMap<&'static str, BTreeMap<&'static str, BTreeMap<&'static str, PathCounts>>>,
    /// Stress runs.
    pub stress: Vec<Stress>,
}

/// The steps of the entry a violation happened in: the history from the first step of the last
/// entry (nested entries that interrupted it stay in between).
pub fn entry_trace(h: &[HistEntry]) -> Vec<HistEntry> {
    let Some(last) = h.last() else {
        return Vec::new();
    };
    let i = h.iter().position(|e| e.entry == last.entry).unwrap_or(0);
    h[i..].to_vec()
}

fn found(r: &Report) -> Option<Found> {
    r.violation_reports.first().map(|v| Found {
        invariant: v.invariant.clone(),
        site: v.site.clone(),
        detail: v.detail.clone(),
        trace: entry_trace(&v.history),
    })
}

fn row(design: &'static Design, r: &Report, cfg: &Config) -> Row {
    let t = &r.totals;
    let ct_cycles: u64 = r
        .per_cpu
        .iter()
        .map(|c| c.ct_cycles.values().sum::<u64>())
        .sum();
    let cpu_cycles = r.sim_time_ns as f64 * r.cpus as f64 * cfg.cost.cpu_mhz as f64 / 1000.0;
    let pct = |a: f64, b: f64| {
        if b > 0.0 {
            (a / b * 10_000.0).round() / 100.0
        } else {
            0.0
        }
    };
    Row {
        design: design.name,
        ct: r.ct,
        ct_calls: t.ct_calls,
        ct_calls_inactive: t.ct_calls_inactive,
        rcu_hooks: t.rcu_hooks,
        vtime_hooks: t.vtime_hooks,
        irq_save_restore: t.prims["irq_save_restore"],
        ct_cycles_per_syscall: t.ct_cycles_per_syscall,
        ct_cycles_per_irq: t.ct_cycles_per_irq,
        entry_cycles_per_syscall: t.entry_cycles_per_syscall,
        entry_cycles_per_irq: t.entry_cycles_per_irq,
        ct_share_of_irq_delivery_pct: pct(t.ct_cycles_per_irq, cfg.cost.irq_delivery as f64),
        ct_share_of_run_pct: pct(ct_cycles as f64, cpu_cycles),
        bench_time_ns: r.bench_time_ns,
        gp_completed: r.rcu.completed,
        gp_latency_avg_ns: r
            .rcu
            .latency_sum_ns
            .checked_div(r.rcu.completed)
            .unwrap_or(0),
        gp_latency_max_ns: r.rcu.latency_max_ns,
        rcu_ipis_to_nohz_full: r.rcu_ipis_to_nohz_full,
        violations: r.violations,
        first_violation: found(r),
        ct_work: None,
    }
}

fn row_work(r: &Report, deferral: bool) -> RowWork {
    let nohz = r.per_cpu.iter().filter(|c| c.nohz_full);
    let works: Vec<&crate::lab::report::CpuWorkReport> =
        nohz.filter_map(|c| c.ct_work.as_ref()).collect();
    RowWork {
        deferral,
        ipis_to_nohz_full: works.iter().map(|w| w.ipis).sum(),
        deferred: works.iter().map(|w| w.deferred).sum(),
        flushes: works.iter().map(|w| w.flushes).sum(),
        longest_quiet_ns: works.iter().map(|w| w.longest_quiet_ns).min().unwrap_or(0),
    }
}

/// Options of a comparison.
#[derive(Clone, Debug)]
pub struct Options {
    /// Stress seeds per design (0: no stress runs).
    pub stress_seeds: u64,
    /// Simulated time limit of each stress run.
    pub stress_duration_ns: u64,
    /// Context tracking on twice per design, deferral of the senders' IPIs off and on (the
    /// senders are the base config's `text_poke_period_ns`/`tlbi_period_ns`).
    pub ct_work: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stress_seeds: 3,
            stress_duration_ns: 20_000_000,
            ct_work: false,
        }
    }
}

/// Runs the comparison. `base` supplies CPUs, nohz_full set, HZ, seed and costs; its design and
/// `ct_on` are overridden per row. `progress(done, total, label)` is called before each run.
pub fn compare(
    base: &Config,
    workload: &Workload,
    designs: &[&'static Design],
    opts: &Options,
    mut progress: impl FnMut(usize, usize, &str),
) -> Comparison {
    let modes: &[(bool, bool)] = if opts.ct_work {
        &[(false, false), (true, false), (true, true)]
    } else {
        &[(false, false), (true, false)]
    };
    let total = designs.len() * (modes.len() + opts.stress_seeds as usize);
    let mut done = 0;
    let mut rows = Vec::new();
    let mut paths = BTreeMap::new();
    let mut stress = Vec::new();
    for &d in designs {
        for &(ct_on, deferral) in modes {
            let label = match (ct_on, deferral) {
                (false, _) => "off",
                (true, false) => "on",
                (true, true) => "on, deferral",
            };
            progress(done, total, &format!("{} ct={label}", d.name));
            let mut cfg = base.clone();
            cfg.design = d;
            cfg.ct_on = ct_on;
            cfg.ct_work = deferral;
            // Count every violation instead of stopping at the first.
            cfg.stop_on_violation = false;
            let (r, _) = run(cfg.clone(), workload, crate::TraceOutputs::none());
            let mut rw = row(d, &r, &cfg);
            if opts.ct_work && ct_on {
                rw.ct_work = Some(row_work(&r, deferral));
            }
            rows.push(rw);
            done += 1;
        }
        let mut per_probe = BTreeMap::new();
        for p in Probe::ALL {
            let mut modes = BTreeMap::new();
            for (mode, ct_on) in [("off", false), ("on", true)] {
                if let Ok(c) = run_probe(d, p, ct_on) {
                    modes.insert(mode, c);
                }
            }
            per_probe.insert(p.name(), modes);
        }
        paths.insert(d.name, per_probe);
        let mut s = Stress {
            design: d.name,
            seeds: Vec::new(),
            injected: 0,
            violations: BTreeMap::new(),
            shortest: BTreeMap::new(),
        };
        for i in 0..opts.stress_seeds {
            let seed = base.seed.wrapping_add(1000 + i);
            progress(done, total, &format!("{} stress seed {seed}", d.name));
            let mut cfg = base.clone();
            cfg.design = d;
            cfg.ct_on = true;
            cfg.seed = seed;
            cfg.stop_on_violation = false;
            cfg.preempt = true;
            cfg.irq_period_ns = Some(20_000);
            cfg.nmi_period_ns = Some(97_000);
            cfg.duration_ns = Some(opts.stress_duration_ns);
            // Alternate a kernel-heavy and a user-heavy workload: IRQs must hit both.
            let w = if i % 2 == 0 {
                Workload::Messaging {
                    groups: 2,
                    loops: 10,
                    pipe: i % 4 == 2,
                    thread: false,
                }
            } else {
                Workload::SyscallStorm {
                    user_ns: 20_000,
                    urn_every: 5,
                    per_cpu: 2,
                }
            };
            let (r, m) = run(cfg, &w, crate::TraceOutputs::none());
            s.seeds.push(seed);
            s.injected += m
                .cpus
                .iter()
                .map(|c| c.counters.irqs[crate::machine::Vector::Device as usize] + c.counters.nmis)
                .sum::<u64>();
            for v in &r.violation_reports {
                let key = format!("{} @ {}", v.invariant, v.site);
                let f = Found {
                    invariant: v.invariant.clone(),
                    site: v.site.clone(),
                    detail: v.detail.clone(),
                    trace: entry_trace(&v.history),
                };
                let better = s
                    .shortest
                    .get(&key)
                    .is_none_or(|old| f.trace.len() < old.trace.len());
                if better {
                    s.shortest.insert(key, f);
                }
            }
            for (k, n) in &r.violations_by_site {
                *s.violations.entry(k.clone()).or_default() += n;
            }
            done += 1;
        }
        stress.push(s);
    }
    progress(done, total, "done");
    Comparison {
        workload: workload.clone(),
        seed: base.seed,
        rows,
        paths,
        stress,
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl Comparison {
    /// The text tables.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# ctxtrack compare: workload {}, seed {}\n",
            self.workload.name(),
            self.seed
        );
        let _ = writeln!(
            s,
            "{:<19} {:>3} {:>9} {:>8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>9} {:>8} {:>5} {:>10}",
            "design", "ct", "ct_calls", "inactive", "rcu_hooks", "vtime", "irq_s/r", "ent/sysc", "ct/sysc", "ent/irq", "ct/irq", "%irqdlv", "%run", "total_ms", "gp_avg", "ipis", "violations"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<19} {:>3} {:>9} {:>8} {:>9} {:>9} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.2} {:>6.2} {:>9.3} {:>8.3} {:>5} {:>10}",
                r.design,
                if r.ct_work.as_ref().is_some_and(|w| w.deferral) {
                    "on*"
                } else {
                    r.ct
                },
                r.ct_calls,
                r.ct_calls_inactive,
                r.rcu_hooks,
                r.vtime_hooks,
                r.irq_save_restore,
                r.entry_cycles_per_syscall,
                r.ct_cycles_per_syscall,
                r.entry_cycles_per_irq,
                r.ct_cycles_per_irq,
                r.ct_share_of_irq_delivery_pct,
                r.ct_share_of_run_pct,
                ms(r.bench_time_ns.unwrap_or(0)),
                ms(r.gp_latency_avg_ns),
                r.rcu_ipis_to_nohz_full,
                r.violations
            );
        }
        let work: Vec<&Row> = self.rows.iter().filter(|r| r.ct_work.is_some()).collect();
        if !work.is_empty() {
            let _ = writeln!(
                s,
                "\ndeferred IPIs (CT_WORK), ct on, deferral off | on, summed over the nohz_full CPUs:"
            );
            let _ = writeln!(
                s,
                "{:<19} {:>8} {:>9} {:>9} {:>8} {:>10} {:>8} {:>9} {:>10}",
                "design",
                "deferral",
                "work_ipis",
                "deferred",
                "flushes",
                "quiet_ms",
                "ct/sysc",
                "total_ms",
                "violations"
            );
            for r in work {
                let w = r.ct_work.as_ref().expect("filtered");
                let _ = writeln!(
                    s,
                    "{:<19} {:>8} {:>9} {:>9} {:>8} {:>10.3} {:>8.1} {:>9.3} {:>10}",
                    r.design,
                    if w.deferral { "on" } else { "off" },
                    w.ipis_to_nohz_full,
                    w.deferred,
                    w.flushes,
                    ms(w.longest_quiet_ns),
                    r.ct_cycles_per_syscall,
                    ms(r.bench_time_ns.unwrap_or(0)),
                    r.violations
                );
            }
            let _ = writeln!(s, "on*: context tracking on with deferral. work_ipis: CALL_FUNCTION IPIs for the senders' sync_core()/TLB flushes; deferred: ct_set_cpu_work() successes; flushes: arch_context_tracking_work() calls; quiet_ms: the shortest, over nohz_full CPUs, of each one's longest stretch without an IRQ or NMI in user mode.");
        }
        let _ = writeln!(s, "\nent/sysc, ent/irq: modeled entry/exit cycles per syscall / per IRQ (entry glue incl. syscall/sysret, IRQ delivery/iret, and context tracking); ct/sysc, ct/irq: the context-tracking part; %irqdlv: ct/irq as a share of IRQ delivery; %run: all context-tracking cycles as a share of all CPU time; gp_avg: grace-period latency (ms); ipis: RCU reschedule IPIs to nohz_full CPUs.");
        let _ = writeln!(s, "\nper path (one event on a nohz_full CPU, ct on | ct off): CT calls / RCU hooks / vtime hooks / irq save-restore, calls while inactive when off");
        let probes = [
            "syscall",
            "irq_from_user",
            "irq_from_idle",
            "irq_from_kernel",
            "exception_from_user",
            "nmi",
        ];
        let _ = write!(s, "{:<19}", "design");
        for p in probes {
            let _ = write!(s, " {:>21}", p);
        }
        let _ = writeln!(s);
        for (d, per) in &self.paths {
            let _ = write!(s, "{:<19}", d);
            for p in probes {
                let cell = match (
                    per.get(p).and_then(|m| m.get("on")),
                    per.get(p).and_then(|m| m.get("off")),
                ) {
                    (Some(a), Some(b)) => format!(
                        "{}/{}/{}/{} | {}",
                        a.ct_calls,
                        a.rcu_hooks,
                        a.vtime_hooks,
                        a.irq_save_restore,
                        b.ct_calls_inactive
                    ),
                    _ => "-".into(),
                };
                let _ = write!(s, " {:>21}", cell);
            }
            let _ = writeln!(s);
        }
        for r in self.rows.iter().filter(|r| r.violations > 0) {
            if let Some(f) = &r.first_violation {
                let _ = writeln!(
                    s,
                    "\nfirst violation, {} ct={}: {} — {}",
                    r.design, r.ct, f.invariant, f.detail
                );
                render_trace(&mut s, &f.trace);
            }
        }
        if !self.stress.is_empty() {
            let _ = writeln!(s, "\nstress (messaging -g 2 -l 10 and syscall-storm with 2 tasks per CPU, alternately; device IRQs every ~20 us, NMIs every 97 us, kernel preemption, ct on):");
            for st in &self.stress {
                if st.violations.is_empty() {
                    let _ = writeln!(
                        s,
                        "  {:<19} no violation ({} events injected, seeds {:?})",
                        st.design, st.injected, st.seeds
                    );
                    continue;
                }
                let _ = writeln!(
                    s,
                    "  {:<19} {} events injected; violations:",
                    st.design, st.injected
                );
                for (k, n) in &st.violations {
                    let _ = writeln!(s, "    {n:>8} x {k}");
                }
                for (k, f) in &st.shortest {
                    let _ = writeln!(
                        s,
                        "    shortest {k} ({} steps): {}",
                        f.trace.len(),
                        f.detail
                    );
                    render_trace(&mut s, &f.trace);
                }
            }
        }
        s
    }
}

fn render_trace(s: &mut String, t: &[HistEntry]) {
    use std::fmt::Write;
    for (i, h) in t.iter().enumerate() {
        let _ = writeln!(
            s,
            "      {:>2}. {:<30} {:<50} ct={:<6} irqs={} rcu={}",
            i + 1,
            h.path,
            h.step,
            h.ct_state.name(),
            if h.irqs_on { "on " } else { "off" },
            if h.watching { "watching" } else { "eqs" }
        );
    }
}
