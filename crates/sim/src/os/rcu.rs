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

use super::K;
use crate::machine::*;
use ctxtrack_core::gp::{FqsVerdict, QsHow};

pub use crate::machine::rcu::{reader_predates, GpStats, LATENCY_BUCKETS_US};

impl K<'_> {
    /// `rcu_read_lock()` (non-preemptible RCU: disables preemption).
    pub fn rcu_read_lock(&mut self) {
        crate::monitor::on_rcu_read_lock(self.m, self.cpu);
        let now = self.now();
        let gp = self.m.rcu.gp_seq();
        self.m.cpus[self.cpu].hw.preempt_count += 1;
        let t = self.cur();
        if t.rcu_depth == 0 {
            t.rcu_since_ns = now;
            t.rcu_since_gp = gp;
        }
        t.rcu_depth += 1;
    }

    /// `rcu_read_unlock()`.
    pub fn rcu_read_unlock(&mut self) {
        self.m.cpus[self.cpu].hw.preempt_count -= 1;
        self.cur().rcu_depth -= 1;
    }

    // ------------------------------------------------------------- syscalls
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
        // fqs_cpu() writes rcu_urgent_qs through a shared reference, as the kthread does.
        let cpu = &*m.cpus[c].own();
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
                    crate::os::post_irq(m, c, Vector::Reschedule, at);
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
    let ended = m.rcu.scan.report_qs(c, &m.cpus[c].own().pcpu.rcu);
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
        crate::tracer::event(m, 0, "rcu_grace_period", &format!("rcu_sched {seq} {what}"));
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
