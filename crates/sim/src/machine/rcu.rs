//! RCU's grace-period state (`struct rcu_state`: the core's scan plus the kthread's timers and
//! callbacks) and the one rule about readers; the kthread that drives it is
//! [`crate::os::rcu`].

use crate::config::Config;
use crate::machine::NEVER;
use ctxtrack_core::gp::{GpPolicy, GpScan};
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
    pub(crate) ncpus: usize,
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
    pub(crate) bg_interval_ns: Option<u64>,
    pub(crate) fqs_period_ns: u64,
    pub(crate) policy: GpPolicy,
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
