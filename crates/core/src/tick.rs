//! nohz_full tick dependencies (`include/linux/tick.h`, `kernel/time/tick-sched.c`).
//!
//! A nohz_full CPU may stop its periodic tick only when no dependency bit is set in any of the
//! four masks `can_stop_full_tick()` checks (global, per-CPU, task, signal).

/// `enum tick_dep_bits`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TickDepBit {
    /// `TICK_DEP_BIT_POSIX_TIMER`.
    PosixTimer = 0,
    /// `TICK_DEP_BIT_PERF_EVENTS`.
    PerfEvents = 1,
    /// `TICK_DEP_BIT_SCHED`: more than one task runnable.
    Sched = 2,
    /// `TICK_DEP_BIT_CLOCK_UNSTABLE`.
    ClockUnstable = 3,
    /// `TICK_DEP_BIT_RCU`: RCU needs a quiescent state from this CPU.
    Rcu = 4,
    /// `TICK_DEP_BIT_RCU_EXP`: an expedited grace period waits on this CPU.
    RcuExp = 5,
}

impl TickDepBit {
    /// All bits in the order `check_tick_dependency()` tests them.
    pub const ALL: [TickDepBit; 6] = [
        TickDepBit::PosixTimer,
        TickDepBit::PerfEvents,
        TickDepBit::Sched,
        TickDepBit::ClockUnstable,
        TickDepBit::Rcu,
        TickDepBit::RcuExp,
    ];

    /// `1 << bit`.
    pub const fn mask(self) -> u32 {
        1 << (self as u32)
    }

    /// The symbol `trace_tick_stop` prints (`__print_symbolic` in the tick_stop format).
    pub const fn name(self) -> &'static str {
        match self {
            TickDepBit::PosixTimer => "POSIX_TIMER",
            TickDepBit::PerfEvents => "PERF_EVENTS",
            TickDepBit::Sched => "SCHED",
            TickDepBit::ClockUnstable => "CLOCK_UNSTABLE",
            TickDepBit::Rcu => "RCU",
            TickDepBit::RcuExp => "RCU_EXP",
        }
    }
}

/// `check_tick_dependency(dep)`: the first dependency bit set, in Linux's order, if any.
pub fn check_tick_dependency(dep: u32) -> Option<TickDepBit> {
    TickDepBit::ALL.into_iter().find(|b| dep & b.mask() != 0)
}

/// The inputs of `can_stop_full_tick()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TickDeps {
    /// Global `tick_dep_mask`.
    pub global: u32,
    /// Per-CPU `ts->tick_dep_mask`.
    pub cpu: u32,
    /// `current->tick_dep_mask`.
    pub task: u32,
    /// `current->signal->tick_dep_mask`.
    pub signal: u32,
}

/// `can_stop_full_tick(cpu, ts)`: `Ok(())` when the tick may stop, else the dependency that keeps
/// it (what `trace_tick_stop(0, mask)` reports).
pub fn can_stop_full_tick(cpu_online: bool, deps: TickDeps) -> Result<(), TickDepBit> {
    if !cpu_online {
        return Err(TickDepBit::Sched);
    }
    for m in [deps.global, deps.cpu, deps.task, deps.signal] {
        if let Some(b) = check_tick_dependency(m) {
            return Err(b);
        }
    }
    Ok(())
}

/// Per-CPU tick state (`struct tick_sched`, the parts nohz_full uses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TickSched {
    /// `ts->tick_stopped`.
    pub tick_stopped: bool,
    /// `ts->tick_dep_mask`.
    pub tick_dep_mask: u32,
    /// Times the tick was stopped (`tick_nohz_stop_tick` that switched it off).
    pub stops: u64,
    /// Times the tick was restarted.
    pub restarts: u64,
}

impl TickSched {
    /// `tick_nohz_dep_set_cpu(cpu, bit)`: returns true when this was the first bit set, i.e. when
    /// the caller must kick the CPU so it re-evaluates (and restarts) its tick.
    pub fn tick_nohz_dep_set_cpu(&mut self, bit: TickDepBit) -> bool {
        let prev = self.tick_dep_mask;
        self.tick_dep_mask |= bit.mask();
        prev == 0
    }

    /// `tick_nohz_dep_clear_cpu(cpu, bit)`: plain clear, no kick; the tick stops lazily.
    pub fn tick_nohz_dep_clear_cpu(&mut self, bit: TickDepBit) {
        self.tick_dep_mask &= !bit.mask();
    }

    /// Records the outcome of a re-evaluation (`tick_nohz_full_update_tick`): returns
    /// `Some(true)` if the tick was just stopped, `Some(false)` if just restarted, `None` if
    /// unchanged.
    pub fn update(&mut self, can_stop: bool) -> Option<bool> {
        match (self.tick_stopped, can_stop) {
            (false, true) => {
                self.tick_stopped = true;
                self.stops += 1;
                Some(true)
            }
            (true, false) => {
                self.tick_stopped = false;
                self.restarts += 1;
                Some(false)
            }
            _ => None,
        }
    }
}
