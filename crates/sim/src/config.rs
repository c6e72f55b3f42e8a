//! Run configuration and CPU lists.

use crate::cost::CostModel;
use crate::design::Design;

/// `MAX_SOFTIRQ_RESTART`: rounds one `__do_softirq()` may run before it wakes `ksoftirqd`.
pub const MAX_SOFTIRQ_RESTART: u8 = 10;
use std::fmt;

/// A set of CPUs (at most 64), parsed from Linux cpulist syntax (`1-3,5`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuSet(pub u64);

impl CpuSet {
    /// Parses `"1-7"`, `"0,2-3"`, or `""` (empty). `ncpus` bounds the ids.
    pub fn parse(s: &str, ncpus: usize) -> Result<CpuSet, String> {
        let mut m = 0u64;
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(CpuSet(0));
        }
        for part in s.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let num = |x: &str| -> Result<usize, String> {
                x.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("invalid CPU list {s:?}: {x:?} is not a CPU number"))
            };
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!(
                    "invalid CPU list {s:?}: range {a}-{b} is backwards"
                ));
            }
            if b >= ncpus {
                return Err(format!("invalid CPU list {s:?}: CPU {b} does not exist (the machine has {ncpus} CPUs, 0-{})", ncpus - 1));
            }
            for c in a..=b {
                m |= 1 << c;
            }
        }
        Ok(CpuSet(m))
    }

    /// All CPUs but CPU 0 (the default `nohz_full=`).
    pub fn all_but_0(ncpus: usize) -> CpuSet {
        CpuSet(((1u128 << ncpus) - 1) as u64 & !1)
    }

    /// Membership.
    pub fn contains(&self, c: usize) -> bool {
        c < 64 && self.0 & (1 << c) != 0
    }

    /// Number of CPUs.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// Empty set.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Members in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..64).filter(move |&c| self.contains(c))
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v: Vec<usize> = self.iter().collect();
        if v.is_empty() {
            return f.write_str("none");
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let mut j = i;
            while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
                j += 1;
            }
            out.push(if i == j {
                format!("{}", v[i])
            } else {
                format!("{}-{}", v[i], v[j])
            });
            i = j + 1;
        }
        f.write_str(&out.join(","))
    }
}

/// Everything a run depends on. Same config ⇒ byte-identical output.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of CPUs (1..=64).
    pub cpus: usize,
    /// `nohz_full=` CPUs (ignored when `ct_on` is false).
    pub nohz_full: CpuSet,
    /// Tick rate.
    pub hz: u64,
    /// PRNG seed.
    pub seed: u64,
    /// Context tracking active (nohz_full CPUs tracked) or built in but inactive.
    pub ct_on: bool,
    /// Stop after this much simulated time.
    pub duration_ns: Option<u64>,
    /// Costs.
    pub cost: CostModel,
    /// Entry design.
    pub design: &'static Design,
    /// Check invariants on every step.
    pub monitor: bool,
    /// Stop at the first violation (else count them all).
    pub stop_on_violation: bool,
    /// `CONFIG_PREEMPTION`: preempt kernel code on IRQ exit.
    pub preempt: bool,
    /// A background `call_rcu()` every this many ns (kernel activity that needs grace periods).
    pub rcu_cb_interval_ns: Option<u64>,
    /// A perf NMI on every CPU every this many ns.
    pub nmi_period_ns: Option<u64>,
    /// Device interrupts on every CPU at random gaps with this mean.
    pub irq_period_ns: Option<u64>,
    /// Livelock guard.
    pub max_steps: u64,
    /// Pin every workload task, and every task it forks, to this CPU (`taskset -c N`).
    pub taskset: Option<usize>,
    /// Task and memory limits ([`crate::limits`]).
    pub limits: crate::limits::Limits,
    /// Deferred IPIs (the CT_WORK series, [`crate::os::ct_work`]): the state word gets a work field
    /// and senders defer to nohz_full CPUs that RCU does not watch instead of interrupting them.
    pub ct_work: bool,
    /// `CONFIG_RCU_DYNTICKS_TORTURE`: a 2-bit RCU watching counter (wraps after two round trips).
    pub rcu_counter_torture: bool,
    /// With [`Config::ct_work`]: an NMI that finds RCU watching flushes the word's work bits too
    /// ([`ctxtrack_core::CtLayout::with_nmi_flush`], a mitigation not in the series).
    pub ct_work_nmi_flush: bool,
    /// Softirqs: the device interrupt raises `NET_RX`, which `irq_exit_rcu()` runs with IRQs on
    /// (or `ksoftirqd` does, [`crate::os::softirq`]). Off, nothing is raised (the checker's default:
    /// IRQs on inside an interrupt multiply its state space).
    pub softirq: bool,
    /// Callback offloading on nohz_full CPUs (`rcu_nocbs=`, [`crate::os::rcu_nocb`]): `call_rcu()`
    /// wakes the rcuog kthread, or defers the wakeup with IRQs off. Off, callbacks stay on
    /// their CPU and nothing is deferred (the checker's default: a deferral lives until the
    /// next return to user or idle, and doubles every state on the way).
    pub nocb: bool,
    /// With [`Config::nocb`]: each offloaded CPU's rcuog kthread runs on that CPU itself (as on
    /// a `rcu_nocbs=` CPU without kthread affinity), so waking it needs a reschedule there and
    /// a wakeup issued after the last `need_resched()` check is lost. Off, rcuog lives on the
    /// housekeeping CPU 0 (the nohz_full setup). The checker turns it on with `nocb`.
    pub rcuog_local: bool,
    /// `MAX_SOFTIRQ_RESTART`: rounds one `__do_softirq()` may run before it leaves the rest to
    /// `ksoftirqd` (Linux: 10, also bounded by `MAX_SOFTIRQ_TIME`; the checker uses fewer, see
    /// [`crate::os::softirq`]).
    pub softirq_max_restart: u8,
    /// The housekeeping CPU patches kernel text (or flips a static key) every this many ns:
    /// `smp_text_poke_sync_each_cpu()`, every CPU must `sync_core()`.
    pub text_poke_period_ns: Option<u64>,
    /// The housekeeping CPU flushes a kernel TLB range every this many ns
    /// (`flush_tlb_kernel_range()` after a `vunmap`).
    pub tlbi_period_ns: Option<u64>,
}

impl Config {
    /// A machine with no time-driven event for drivers that pick every moment themselves (the
    /// model checker, path-by-path tests): `cpus` CPUs, those in `nohz_full` tracked, no
    /// background `call_rcu()`, no NMI or device-IRQ period, no duration, IPIs that arrive at
    /// once. The periodic tick is the driver's to drop ([`crate::Machine::sync_clocks_drop_timers`]).
    pub fn timeless(design: &'static Design, cpus: usize, nohz_full: CpuSet) -> Config {
        let mut c = Config::new(design);
        c.cpus = cpus;
        c.nohz_full = nohz_full;
        c.ct_on = true;
        c.rcu_cb_interval_ns = None;
        c.nmi_period_ns = None;
        c.irq_period_ns = None;
        c.duration_ns = None;
        c.cost.ipi_latency_ns = 0;
        c
    }

    /// Defaults: 8 CPUs, nohz_full=1-7, HZ=1000, seed 1, context tracking on, generic entry.
    pub fn new(design: &'static Design) -> Config {
        Config {
            cpus: 8,
            nohz_full: CpuSet::all_but_0(8),
            hz: 1000,
            seed: 1,
            ct_on: true,
            duration_ns: None,
            cost: CostModel::default(),
            design,
            monitor: true,
            stop_on_violation: true,
            preempt: false,
            rcu_cb_interval_ns: Some(4_000_000),
            nmi_period_ns: None,
            irq_period_ns: None,
            max_steps: 2_000_000_000,
            taskset: None,
            limits: crate::limits::Limits::default(),
            ct_work: false,
            rcu_counter_torture: false,
            ct_work_nmi_flush: false,
            text_poke_period_ns: None,
            tlbi_period_ns: None,
            softirq: true,
            nocb: true,
            rcuog_local: false,
            softirq_max_restart: MAX_SOFTIRQ_RESTART,
        }
    }

    /// The state word's layout every CPU uses: both work types with [`Config::ct_work`], the
    /// 2-bit counter with [`Config::rcu_counter_torture`].
    pub fn ct_layout(&self) -> ctxtrack_core::CtLayout {
        let types = if self.ct_work {
            ctxtrack_core::CtWork::ALL.len() as u32
        } else {
            0
        };
        let l = ctxtrack_core::CtLayout::new(types, self.rcu_counter_torture);
        if self.ct_work && self.ct_work_nmi_flush {
            l.with_nmi_flush()
        } else {
            l
        }
    }

    /// Checks ranges; the error says which option is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.cpus == 0 || self.cpus > 64 {
            return Err(format!(
                "--cpus must be between 1 and 64, got {}",
                self.cpus
            ));
        }
        if let Some(c) = self.taskset.filter(|&c| c >= self.cpus) {
            return Err(format!(
                "--taskset: CPU {c} does not exist (--cpus {})",
                self.cpus
            ));
        }
        if self.hz == 0 || self.hz > 10_000 {
            return Err(format!("--hz must be between 1 and 10000, got {}", self.hz));
        }
        if let Some(b) = self.nohz_full.iter().find(|&c| c >= self.cpus) {
            return Err(format!(
                "--nohz-full names CPU {b}, but the machine has {} CPUs",
                self.cpus
            ));
        }
        for (name, p) in [
            ("--text-poke-period", self.text_poke_period_ns),
            ("--tlbi-period", self.tlbi_period_ns),
        ] {
            if p == Some(0) {
                return Err(format!("{name} must be at least 1 ns"));
            }
        }
        if self.softirq_max_restart == 0 {
            return Err(
                "--softirq-restarts must be at least 1 (one round of __do_softirq())".into(),
            );
        }
        if self.nohz_full.contains(0) && self.ct_on {
            return Err(
                "--nohz-full must leave CPU 0 as the housekeeping (timekeeping) CPU".into(),
            );
        }
        Ok(())
    }

    /// The effective nohz_full set (empty when context tracking is off).
    pub fn effective_nohz_full(&self) -> CpuSet {
        if self.ct_on {
            self.nohz_full
        } else {
            CpuSet(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn cpulists() {
        assert_eq!(CpuSet::parse("1-3,5", 8).unwrap().0, 0b101110);
        assert_eq!(CpuSet::parse("1-3,5", 8).unwrap().to_string(), "1-3,5");
        assert_eq!(CpuSet::all_but_0(8).to_string(), "1-7");
        assert!(CpuSet::parse("1-9", 8)
            .unwrap_err()
            .contains("CPU 9 does not exist"));
        assert!(CpuSet::parse("3-1", 8).unwrap_err().contains("backwards"));
        assert!(CpuSet::parse("a", 8)
            .unwrap_err()
            .contains("not a CPU number"));
        assert!(CpuSet::parse("", 8).unwrap().is_empty());
    }
}
