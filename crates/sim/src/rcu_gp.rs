//! RCU grace periods, driven from the housekeeping CPU (`kernel/rcu/tree.c`: `rcu_gp_kthread`,
//! `rcu_gp_fqs`, `force_qs_rnp`).
//!
//! A grace period needs a quiescent state from every CPU. CPUs report one themselves at a context
//! switch or on a tick that interrupted user mode or idle. For the others the force-quiescent-state
//! scan snapshots their context-tracking counter (`rcu_watching_snap_save`): a snapshot in an EQS
//! (user mode on a nohz_full CPU, idle) is a quiescent state at once; a later change of the counter
//! is one too. A CPU still holding out after `jiffies_to_sched_qs` gets `rcu_urgent_qs` (which makes
//! its next kernel entry turn its tick on), and a nohz_full holdout after three times that gets a
//! reschedule IPI (`resched_cpu`). The kthread's own CPU time is not simulated.

use crate::config::Config;
use crate::machine::{CpuId, Machine, Vector, NEVER};
use ctxtrack_core::gp::{FqsVerdict, GpPolicy, GpScan, QsHow};
use serde::Serialize;

/// Latency histogram bucket upper bounds (µs).
pub const LATENCY_BUCKETS_US: [u64; 8] =
    [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, u64::MAX];

/// Grace-period statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GpStats {
    /// Grace periods completed.
    pub completed: u64,
    /// Sum of latencies (ns).
    pub latency_sum_ns: u64,
    /// Worst latency (ns).
    pub latency_max_ns: u64,
    /// Counts per [`LATENCY_BUCKETS_US`] bucket.
    pub latency_hist: [u64; 8],
    /// Quiescent states found by FQS snapshots in an EQS (no IPI, no tick).
    pub qs_from_eqs_snapshot: u64,
    /// Quiescent states found because the counter moved since the snapshot.
    pub qs_from_counter_change: u64,
    /// Quiescent states reported by the CPUs themselves (context switch, tick).
    pub qs_self_reported: u64,
    /// `rcu_urgent_qs` set on a holdout.
    pub urgent_qs_set: u64,
    /// Reschedule IPIs sent to force a quiescent state.
    pub resched_ipis: u64,
    /// Callbacks queued.
    pub callbacks: u64,
}

/// Grace-period state: the core's scan ([`GpScan`], the protocol) plus the kthread's timers,
/// callbacks and statistics (the simulator's).
#[derive(Clone, Debug)]
pub struct RcuGp {
    ncpus: usize,
    /// The scan: grace-period number, holdouts, snapshots.
    pub scan: GpScan<Vec<u32>>,
    /// Next FQS scan.
    pub next_fqs_ns: u64,
    /// When a requested grace period starts.
    pub start_at_ns: u64,
    /// Callbacks waiting for the next grace period.
    pub cbs_next: u64,
    /// Next background `call_rcu()`.
    pub next_bg_ns: u64,
    bg_interval_ns: Option<u64>,
    fqs_period_ns: u64,
    policy: GpPolicy,
    /// Statistics.
    pub stats: GpStats,
}

impl RcuGp {
    /// `jiffies_till_first_fqs` = `jiffies_till_next_fqs` = 1 + (HZ > 250) + (HZ > 500) jiffies
    /// (`RCU_JIFFIES_TILL_FORCE_QS`); `jiffies_to_sched_qs` = first + 2 × next; a nohz_full
    /// holdout gets `resched_cpu()` after three times that, at every scan.
    pub fn new(ncpus: usize, cfg: &Config) -> RcuGp {
        let jiffy = 1_000_000_000 / cfg.hz;
        let fqs_j = 1 + u64::from(cfg.hz > 250) + u64::from(cfg.hz > 500);
        let jtsq_ns = 3 * fqs_j * jiffy;
        RcuGp {
            ncpus,
            scan: GpScan::new(vec![0; ncpus]),
            next_fqs_ns: NEVER,
            start_at_ns: NEVER,
            cbs_next: 0,
            next_bg_ns: cfg.rcu_cb_interval_ns.unwrap_or(NEVER),
            bg_interval_ns: cfg.rcu_cb_interval_ns,
            fqs_period_ns: fqs_j * jiffy,
            policy: GpPolicy {
                urgent_after: jtsq_ns,
                resched_after: 3 * jtsq_ns,
                resched_nohz_full_only: true,
                resched_once: false,
            },
            stats: GpStats::default(),
        }
    }

    /// A grace period is running.
    pub fn in_progress(&self) -> bool {
        self.scan.in_progress()
    }

    /// Grace periods started so far.
    pub fn gp_seq(&self) -> u64 {
        self.scan.gp_seq()
    }

    /// When the kthread next has something to do.
    pub fn next_event_ns(&self) -> u64 {
        let a = if self.in_progress() {
            self.next_fqs_ns
        } else {
            self.start_at_ns
        };
        a.min(self.next_bg_ns)
    }
}

/// A read-side section that `task` is in began before grace period `r.gp_seq` started: that
/// grace period may not end before it does (the one home of the rule the monitor checks and the
/// model checker's observer relies on). Ordered by grace-period number, not by clock: a reader
/// and a grace period may begin in the same nanosecond.
pub fn reader_predates(task: &crate::machine::Task, r: &RcuGp) -> bool {
    task.rcu_depth > 0 && task.rcu_since_gp < r.gp_seq()
}

/// `call_rcu()` at time `now`: queue a callback; request a grace period if none runs.
pub fn call_rcu(m: &mut Machine, now: u64) {
    let r = &mut m.rcu;
    r.cbs_next += 1;
    r.stats.callbacks += 1;
    if !r.in_progress() && r.start_at_ns == NEVER {
        r.start_at_ns = now;
        // The kthread's next event moved: end any same-CPU run of events in the machine loop.
        m.rescan = true;
    }
}

/// One wakeup of the grace-period kthread at time `t`.
pub fn rcu_gp_kthread(m: &mut Machine, t: u64) {
    if m.rcu.next_bg_ns <= t {
        m.rcu.next_bg_ns = m.rcu.bg_interval_ns.map(|i| t + i).unwrap_or(NEVER);
        call_rcu(m, t);
    }
    if !m.rcu.in_progress() && m.rcu.start_at_ns <= t {
        let r = &mut m.rcu;
        r.scan.start(t, ((1u128 << r.ncpus) - 1) as u64);
        r.cbs_next = 0;
        r.start_at_ns = NEVER;
        r.next_fqs_ns = t + r.fqs_period_ns;
        gp_event(m, "start");
        return;
    }
    if m.rcu.in_progress() && m.rcu.next_fqs_ns <= t {
        rcu_gp_fqs(m, t);
        if m.rcu.in_progress() {
            m.rcu.next_fqs_ns = t + m.rcu.fqs_period_ns;
        }
    }
}

/// `rcu_gp_fqs()` → `force_qs_rnp()` over the holdouts (the decisions are the core's
/// [`GpScan::fqs_cpu`]; the IPI, statistics and reports are the machine's).
fn rcu_gp_fqs(m: &mut Machine, t: u64) {
    for c in 0..m.rcu.ncpus {
        if !m.rcu.scan.holds_out(c) {
            continue;
        }
        let cpu = &m.cpus[c];
        let policy = m.rcu.policy;
        let v = m
            .rcu
            .scan
            .fqs_cpu(c, t, &policy, &cpu.pcpu.ct, &cpu.pcpu.rcu, cpu.nohz_full);
        match v {
            FqsVerdict::Qs(how) => {
                match how {
                    QsHow::EqsSnapshot => m.rcu.stats.qs_from_eqs_snapshot += 1,
                    QsHow::CounterMoved => m.rcu.stats.qs_from_counter_change += 1,
                }
                report(m, c, t);
            }
            FqsVerdict::Holdout {
                urgent_set,
                resched,
            } => {
                m.rcu.stats.urgent_qs_set += u64::from(urgent_set);
                if resched {
                    // resched_cpu(): make the holdout pass through the scheduler.
                    let cur = m.cpus[c].current;
                    m.tasks[cur].ti_flags |= crate::machine::tif::NEED_RESCHED;
                    let at = t + m.cost.ipi_latency_ns;
                    crate::kernel::post_irq(m, c, Vector::Reschedule, at);
                    m.cpus[c].counters.rcu_resched_ipis += 1;
                    m.rcu.stats.resched_ipis += 1;
                }
            }
        }
    }
}

/// A CPU reports its own quiescent state (context switch, tick in user/idle).
pub fn rcu_report_qs(m: &mut Machine, c: CpuId) {
    if m.rcu.scan.holds_out(c) {
        m.rcu.stats.qs_self_reported += 1;
        let now = m.cpus[c].hw.now;
        report(m, c, now);
    }
}

fn report(m: &mut Machine, c: CpuId, t: u64) {
    let ended = m.rcu.scan.report_qs(c, &m.cpus[c].pcpu.rcu);
    m.cpus[c].counters.rcu_qs += 1;
    // rcu_disable_urgency_upon_qs(): the scan cleared the urgency; the forced tick is ours.
    let p = &mut m.cpus[c].pcpu;
    if p.rcu.forced_tick() {
        p.rcu.set_forced_tick(false);
        p.local
            .tick
            .tick_nohz_dep_clear_cpu(ctxtrack_core::tick::TickDepBit::Rcu);
    }
    if ended {
        complete(m, t);
    }
}

/// `trace_rcu_grace_period(rcu_state.name, gp_seq, "start"|"end")`, logged by the
/// grace-period kthread on the housekeeping CPU.
fn gp_event(m: &mut Machine, what: &str) {
    if m.trace.is_some() {
        // rcu_seq: the counter advances by 4 per grace period (2 state bits).
        let seq = m.rcu.gp_seq() << 2 | u64::from(what == "start");
        crate::trace::event(m, 0, "rcu_grace_period", &format!("rcu_sched {seq} {what}"));
    }
}

fn complete(m: &mut Machine, t: u64) {
    crate::monitor::on_gp_end(m, t);
    gp_event(m, "end");
    let r = &mut m.rcu;
    r.next_fqs_ns = NEVER;
    let lat = t.saturating_sub(r.scan.started());
    r.stats.completed += 1;
    r.stats.latency_sum_ns += lat;
    r.stats.latency_max_ns = r.stats.latency_max_ns.max(lat);
    let b = LATENCY_BUCKETS_US
        .iter()
        .position(|&u| lat / 1000 < u)
        .unwrap_or(7);
    r.stats.latency_hist[b] += 1;
    if r.cbs_next > 0 {
        r.start_at_ns = t;
    }
}
