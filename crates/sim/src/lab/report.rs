//! What a run produced: a serializable [`Report`] (the `--json` output, stable keys) and its
//! human-readable rendering.

use crate::lab::workload::{Workload, NUM_FDS};
use crate::machine::{EndReason, EntryKind, Machine};
use crate::monitor::ViolationReport;
use crate::os::rcu::GpStats;
use ctxtrack_core::stats::{Prim, Transition};
use ctxtrack_core::CtStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Per-CPU figures.
#[derive(Clone, Debug, Serialize)]
pub struct CpuReport {
    /// CPU id.
    pub cpu: usize,
    /// In the effective nohz_full set.
    pub nohz_full: bool,
    /// Ground truth user time.
    pub user_ns: u64,
    /// Ground truth kernel time of tasks.
    pub sys_ns: u64,
    /// Halted or idle-task time.
    pub idle_ns: u64,
    /// Tick stopped.
    pub tick_stopped_ns: u64,
    /// vtime accounted (vtime CPUs only): user, system, guest, idle.
    pub vtime_ns: [u64; 4],
    /// Context-tracking transitions by kind (stable names).
    pub ct_transitions: BTreeMap<&'static str, u64>,
    /// Sum of `ct_transitions`.
    pub ct_transitions_total: u64,
    /// Context-tracking API calls.
    pub ct_calls: u64,
    /// Calls made while the key was off.
    pub ct_calls_inactive: u64,
    /// RCU hook calls.
    pub rcu_hooks: u64,
    /// vtime hook calls.
    pub vtime_hooks: u64,
    /// IRQ save/restore pairs.
    pub irq_save_restore: u64,
    /// Static-key checks (taken + not taken).
    pub static_key_checks: u64,
    /// Static-key checks taken.
    pub static_key_taken: u64,
    /// Ticks handled.
    pub ticks: u64,
    /// IPIs received (all vectors).
    pub ipis: u64,
    /// Reschedule IPIs sent by RCU to force a quiescent state.
    pub rcu_resched_ipis: u64,
    /// Quiescent states reported for this CPU.
    pub rcu_qs: u64,
    /// Syscalls.
    pub syscalls: u64,
    /// IRQs delivered.
    pub irqs: u64,
    /// IRQs that hit user / kernel / idle.
    pub irqs_from: [u64; 3],
    /// Context switches.
    pub context_switches: u64,
    /// Modeled entry/exit cycles, by entry kind.
    pub entry_cycles: BTreeMap<&'static str, u64>,
    /// Cycles of context-tracking primitives, by entry kind.
    pub ct_cycles: BTreeMap<&'static str, u64>,
    /// Completed entries, by kind.
    pub entries: BTreeMap<&'static str, u64>,
    /// Steps executed.
    pub steps: u64,
    /// Deferred IPIs (present when the run has CT_WORK or its senders).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_work: Option<CpuWorkReport>,
}

/// One CPU's side of deferred IPIs ([`crate::os::ct_work`]).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CpuWorkReport {
    /// Work deferred to it (`ct_set_cpu_work()` succeeded).
    pub deferred: u64,
    /// CALL_FUNCTION IPIs it took for work that could not be deferred.
    pub ipis: u64,
    /// Every IPI it received, by kind (`call_function_single`, `reschedule`, `irq_work`).
    pub ipis_by_kind: BTreeMap<&'static str, u64>,
    /// `arch_context_tracking_work()` calls its entries made.
    pub flushes: u64,
    /// IRQs and NMIs that interrupted its user mode (any vector).
    pub user_interruptions: u64,
    /// Longest time between two of them, or from the start or to the end of the run.
    pub longest_quiet_ns: u64,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Design name.
    pub design: &'static str,
    /// Workload and options.
    pub workload: Workload,
    /// CPUs.
    pub cpus: usize,
    /// Effective nohz_full set.
    pub nohz_full: String,
    /// `on` or `off`.
    pub ct: &'static str,
    /// HZ.
    pub hz: u64,
    /// Seed.
    pub seed: u64,
    /// Why it ended.
    pub end: String,
    /// Simulated time of the whole run.
    pub sim_time_ns: u64,
    /// The benchmark's own `Total time` (between the start and stop marks), if it has one.
    pub bench_time_ns: Option<u64>,
    /// Steps executed.
    pub steps: u64,
    /// The per-step invariant monitor was on.
    pub monitor: bool,
    /// Messages written and read (messaging).
    pub messages_written: u64,
    /// Messages expected.
    pub messages_expected: u64,
    /// Bytes read by receivers (messaging).
    pub bytes_read: u64,
    /// Core counters summed over CPUs.
    pub totals: TotalsReport,
    /// Per CPU.
    pub per_cpu: Vec<CpuReport>,
    /// Grace periods.
    pub rcu: GpStats,
    /// IPIs to nohz_full CPUs from RCU.
    pub rcu_ipis_to_nohz_full: u64,
    /// Violations seen.
    pub violations: u64,
    /// Violations per invariant.
    pub violations_by_invariant: BTreeMap<String, u64>,
    /// Violations per `invariant @ site`.
    pub violations_by_site: BTreeMap<String, u64>,
    /// The first violations in detail.
    pub violation_reports: Vec<ViolationReport>,
}

/// Machine-wide counters.
#[derive(Clone, Debug, Serialize)]
pub struct TotalsReport {
    /// Primitive operations by name.
    pub prims: BTreeMap<&'static str, u64>,
    /// Transitions by name.
    pub ct_transitions: BTreeMap<&'static str, u64>,
    /// Context-tracking API calls.
    pub ct_calls: u64,
    /// Calls while inactive.
    pub ct_calls_inactive: u64,
    /// RCU hooks.
    pub rcu_hooks: u64,
    /// vtime hooks.
    pub vtime_hooks: u64,
    /// Syscalls.
    pub syscalls: u64,
    /// IRQs.
    pub irqs: u64,
    /// Entry/exit cycles per completed syscall (0 if none).
    pub entry_cycles_per_syscall: f64,
    /// Entry/exit cycles per completed IRQ.
    pub entry_cycles_per_irq: f64,
    /// Context-tracking primitive cycles per syscall.
    pub ct_cycles_per_syscall: f64,
    /// Context-tracking primitive cycles per IRQ.
    pub ct_cycles_per_irq: f64,
}

fn by_kind(v: &[u64; 6]) -> BTreeMap<&'static str, u64> {
    EntryKind::NAMES
        .iter()
        .zip(v)
        .map(|(n, &x)| (*n, x))
        .collect()
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 / b as f64 * 100.0).round() / 100.0
    }
}

impl Report {
    /// Collects the report of a finished machine.
    pub fn from_machine(m: &Machine, workload: &Workload, end: &EndReason) -> Report {
        let mut totals = CtStats::default();
        let mut per_cpu = Vec::new();
        let (mut sys, mut irq) = (0u64, 0u64);
        let (mut esys, mut eirq, mut csys, mut cirq) = (0u64, 0u64, 0u64, 0u64);
        let mut rcu_ipis_nohz = 0;
        for (c, cpu) in m.cpus().iter().enumerate() {
            let st = &cpu.pcpu.local.stats;
            totals.add(st);
            let k = &cpu.counters;
            sys += k.entries[EntryKind::Syscall as usize];
            irq += k.entries[EntryKind::Irq as usize];
            esys += k.entry_cycles[EntryKind::Syscall as usize];
            eirq += k.entry_cycles[EntryKind::Irq as usize];
            csys += k.ct_cycles[EntryKind::Syscall as usize];
            cirq += k.ct_cycles[EntryKind::Irq as usize];
            if cpu.nohz_full {
                rcu_ipis_nohz += k.rcu_resched_ipis;
            }
            per_cpu.push(CpuReport {
                cpu: c,
                nohz_full: cpu.nohz_full,
                user_ns: cpu.times.user_ns,
                sys_ns: cpu.times.sys_ns,
                idle_ns: cpu.times.idle_ns,
                tick_stopped_ns: cpu.times.tick_stopped_ns,
                vtime_ns: cpu.pcpu.local.cputime.vtime_ns,
                ct_transitions: Transition::ALL
                    .iter()
                    .map(|t| (t.name(), st.transitions[*t as usize]))
                    .collect(),
                ct_transitions_total: st.transitions_total(),
                ct_calls: st.ct_calls,
                ct_calls_inactive: st.ct_calls_inactive,
                rcu_hooks: st.rcu_hooks,
                vtime_hooks: st.vtime_hooks,
                irq_save_restore: st.prims[Prim::IrqSaveRestore as usize],
                static_key_checks: st.static_branch_taken + st.static_branch_not_taken,
                static_key_taken: st.static_branch_taken,
                ticks: k.ticks,
                ipis: k.ipis_received.iter().sum(),
                rcu_resched_ipis: k.rcu_resched_ipis,
                rcu_qs: k.rcu_qs,
                syscalls: k.syscalls,
                irqs: k.irqs.iter().sum(),
                irqs_from: k.irqs_from,
                context_switches: k.context_switches,
                entry_cycles: by_kind(&k.entry_cycles),
                ct_cycles: by_kind(&k.ct_cycles),
                entries: by_kind(&k.entries),
                steps: k.steps,
                ct_work: (m.config().ct_work
                    || m.config().text_poke_period_ns.is_some()
                    || m.config().tlbi_period_ns.is_some())
                .then(|| CpuWorkReport {
                    deferred: k.work_deferred,
                    ipis: k.work_ipis,
                    ipis_by_kind: crate::machine::Vector::ALL
                        .iter()
                        .filter(|v| {
                            !matches!(
                                v,
                                crate::machine::Vector::LocalTimer | crate::machine::Vector::Device
                            )
                        })
                        .map(|v| (v.trace_name(), k.ipis_received[*v as usize]))
                        .collect(),
                    flushes: cpu.hw.work_flushes,
                    user_interruptions: k.user_interruptions,
                    longest_quiet_ns: k
                        .longest_quiet_ns
                        .max(cpu.hw.now.saturating_sub(k.last_interruption_ns)),
                }),
            });
        }
        let (expected, written, bytes_read) = match workload {
            Workload::Messaging { groups, loops, .. } => {
                let exp = *groups as u64 * (NUM_FDS * NUM_FDS) as u64 * loops;
                // Data channels are all but the first two (ready, wake).
                let w: u64 = m.chans().iter().skip(2).map(|c| c.written_total).sum();
                let r: u64 = m.chans().iter().skip(2).map(|c| c.read_total).sum();
                (exp, w, r)
            }
            _ => (0, 0, 0),
        };
        Report {
            design: m.design().name,
            workload: workload.clone(),
            cpus: m.config().cpus,
            nohz_full: m.config().effective_nohz_full().to_string(),
            ct: if m.config().ct_on { "on" } else { "off" },
            hz: m.config().hz,
            seed: m.config().seed,
            end: format!("{end:?}"),
            sim_time_ns: m.now_max,
            bench_time_ns: match (m.mark_start_ns, m.mark_stop_ns) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            steps: m.steps,
            monitor: m.monitor().enabled,
            messages_written: written,
            messages_expected: expected,
            bytes_read,
            totals: TotalsReport {
                prims: Prim::ALL
                    .iter()
                    .map(|p| (p.name(), totals.prims[*p as usize]))
                    .collect(),
                ct_transitions: Transition::ALL
                    .iter()
                    .map(|t| (t.name(), totals.transitions[*t as usize]))
                    .collect(),
                ct_calls: totals.ct_calls,
                ct_calls_inactive: totals.ct_calls_inactive,
                rcu_hooks: totals.rcu_hooks,
                vtime_hooks: totals.vtime_hooks,
                syscalls: sys,
                irqs: irq,
                entry_cycles_per_syscall: ratio(esys, sys),
                entry_cycles_per_irq: ratio(eirq, irq),
                ct_cycles_per_syscall: ratio(csys, sys),
                ct_cycles_per_irq: ratio(cirq, irq),
            },
            per_cpu,
            rcu: m.rcu().stats.clone(),
            rcu_ipis_to_nohz_full: rcu_ipis_nohz,
            violations: m.monitor().count,
            violations_by_invariant: m.monitor().by_invariant.clone(),
            violations_by_site: m.monitor().by_site.clone(),
            violation_reports: m.monitor().reports.clone(),
        }
    }

    /// Human-readable text, headed like perf's output for messaging.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let ms = |ns: u64| ns as f64 / 1e6;
        if let Workload::Messaging { groups, thread, .. } = &self.workload {
            let what = if *thread { "threads" } else { "processes" };
            let _ = writeln!(s, "# Running 'sched/messaging' benchmark:");
            let _ = writeln!(s, "# {NUM_FDS} sender and receiver {what} per group");
            let _ = writeln!(
                s,
                "# {groups} groups == {} {what} run\n",
                *groups as usize * 2 * NUM_FDS
            );
            let t = self.bench_time_ns.unwrap_or(0);
            let _ = writeln!(
                s,
                "     Total time: {}.{:03} [sec]  (simulated)\n",
                t / 1_000_000_000,
                (t % 1_000_000_000) / 1_000_000
            );
        } else {
            let _ = writeln!(s, "# ctxtrack run {}\n", self.workload.name());
        }
        let _ = writeln!(
            s,
            "design {}, CT {}, {} CPUs, nohz_full={}, HZ={}, seed {}; {} steps, {:.3} ms simulated, ended: {}",
            self.design, self.ct, self.cpus, self.nohz_full, self.hz, self.seed, self.steps, ms(self.sim_time_ns), self.end
        );
        if self.messages_expected > 0 {
            let _ = writeln!(
                s,
                "messages: {} written, {} bytes read, {} expected",
                self.messages_written, self.bytes_read, self.messages_expected
            );
        }
        let _ = writeln!(
            s,
            "\n{:>3} {:>5} {:>10} {:>10} {:>10} {:>12} {:>9} {:>7} {:>6} {:>6} {:>8} {:>7}",
            "cpu",
            "nohz",
            "user_ms",
            "sys_ms",
            "idle_ms",
            "tick_off_ms",
            "ct_trans",
            "ticks",
            "ipis",
            "rcu_qs",
            "syscalls",
            "ctxsw"
        );
        for c in &self.per_cpu {
            let _ = writeln!(
                s,
                "{:>3} {:>5} {:>10.3} {:>10.3} {:>10.3} {:>12.3} {:>9} {:>7} {:>6} {:>6} {:>8} {:>7}",
                c.cpu,
                if c.nohz_full { "yes" } else { "-" },
                ms(c.user_ns),
                ms(c.sys_ns),
                ms(c.idle_ns),
                ms(c.tick_stopped_ns),
                c.ct_transitions_total,
                c.ticks,
                c.ipis,
                c.rcu_qs,
                c.syscalls,
                c.context_switches
            );
        }
        let t = &self.totals;
        let _ = writeln!(
            s,
            "\ncontext tracking: {} calls ({} while inactive), {} RCU hooks, {} vtime hooks, {} irq save/restore",
            t.ct_calls, t.ct_calls_inactive, t.rcu_hooks, t.vtime_hooks, t.prims["irq_save_restore"]
        );
        let _ = writeln!(
            s,
            "entry/exit cycles: {:.1} per syscall ({:.1} in CT), {:.1} per IRQ ({:.1} in CT)",
            t.entry_cycles_per_syscall,
            t.ct_cycles_per_syscall,
            t.entry_cycles_per_irq,
            t.ct_cycles_per_irq
        );
        let r = &self.rcu;
        let avg = r.latency_sum_ns.checked_div(r.completed).unwrap_or(0);
        let _ = writeln!(
            s,
            "grace periods: {} completed, latency avg {:.3} ms max {:.3} ms; QS from EQS snapshots {}, counter changes {}, self-reported {}; resched IPIs to nohz_full CPUs: {}",
            r.completed, ms(avg), ms(r.latency_max_ns), r.qs_from_eqs_snapshot, r.qs_from_counter_change, r.qs_self_reported, self.rcu_ipis_to_nohz_full
        );
        if self.violations == 0 && !self.monitor {
            let _ = writeln!(
                s,
                "invariants: per-step monitor off (--no-monitor); core WARNs: none"
            );
        } else if self.violations == 0 {
            let _ = writeln!(s, "invariants: OK ({} steps checked)", self.steps);
        } else {
            let _ = writeln!(s, "invariants: {} VIOLATION(S)", self.violations);
            for v in self.violation_reports.iter().take(1) {
                let _ = writeln!(
                    s,
                    "  {} on CPU {} at {} ns: {}",
                    v.invariant, v.cpu, v.time_ns, v.detail
                );
                let _ = writeln!(s, "  last steps of CPU {}:", v.cpu);
                for h in &v.history {
                    let _ = writeln!(
                        s,
                        "    {:>12} pid {:>4} {:<28} {:<40} ct={:<6} irqs={} rcu={}",
                        h.time_ns,
                        h.pid,
                        h.path,
                        h.step,
                        h.ct_state.name(),
                        if h.irqs_on { "on " } else { "off" },
                        if h.watching { "watching" } else { "eqs" }
                    );
                }
            }
        }
        s
    }
}
