//! The simulated SMP machine's state: CPUs ([`cpu`]), tasks ([`task`]), channels, the
//! subsystems' data, and the [`Machine`] that owns them all. This room holds data and the
//! smallest operations on it (construction, ids, the next-event cache); the engine that runs it
//! is [`crate::run`], the kernel services it runs are [`crate::os`], and outside code drives
//! it through [`crate::driver`].
//!
//! One [`Machine`] owns the virtual clock of every CPU, the event sources and the PRNG; nothing
//! here reads the wall clock.

pub mod cpu;
pub mod ipc;
mod k;
pub mod program;
pub mod rcu;
pub mod shared;
pub mod task;
pub mod work;

pub use cpu::*;
pub use k::K;
pub use shared::Shared;
pub use task::*;

use crate::config::Config;
use crate::cost::CostModel;
use crate::design::Design;
use crate::machine::ipc::Channel;
use crate::machine::program::Program;
use crate::machine::rcu::RcuGp;
use crate::monitor::{History, Monitor};
use crate::rng::Xoshiro256;
use crate::tracer::TraceSink;
use ctxtrack_core::{PerCpu, StaticKey};

/// Index of a CPU.
pub type CpuId = usize;
/// Index of a task in [`Machine::tasks`].
pub type TaskId = usize;
/// Index of a channel in [`Machine::chans`].
pub type ChanId = u32;

/// "Never" on the virtual clock.
pub const NEVER: u64 = u64::MAX;

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The workload finished.
    WorkloadDone,
    /// `--duration` reached.
    Duration,
    /// An invariant failed (the monitor has the details).
    Violation,
    /// The step limit was hit (a livelock guard).
    StepLimit,
    /// No CPU had anything left to do.
    Quiescent,
}

/// Where a run is, for a progress display ([`Machine::progress`]).
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Which pass of the run this is ([`Machine::phase`]).
    pub phase: &'static str,
    /// Simulated time reached (the furthest CPU), ns.
    pub now_ns: u64,
    /// The `--duration` limit, if any.
    pub duration_ns: Option<u64>,
    /// Steps executed.
    pub steps: u64,
    /// Tasks created (idle tasks included).
    pub tasks: usize,
}

/// Receives a run's [`Progress`] every [`CHECKPOINT_STEPS`] steps.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send + Sync>;

/// Steps between two checks of the run's limits (and progress reports): rare enough to cost
/// nothing per step, frequent enough that a run cannot allocate much past a limit in between.
pub const CHECKPOINT_STEPS: u64 = 1 << 16;

/// The machine.
pub struct Machine {
    /// Configuration.
    pub(crate) cfg: Shared<Config>,
    /// Cost model (copied out of the config for speed).
    pub(crate) cost: Shared<CostModel>,
    /// Base cost of each [`crate::cost::CostKey`] (`cost.base_table()`).
    pub(crate) base_cost: Shared<[u64; crate::cost::CostKey::ALL.len()]>,
    /// Nanoseconds per cycle, 32.32 fixed point.
    pub(crate) ns_per_cycle_fp: u64,
    /// The design under test.
    pub(crate) design: &'static Design,
    /// `context_tracking_key`.
    pub(crate) key: StaticKey,
    /// CPUs.
    pub(crate) cpus: Vec<Shared<Cpu>>,
    /// Tasks (never removed: dead tasks stay for reporting).
    pub(crate) tasks: Vec<Shared<Task>>,
    /// Channels.
    pub(crate) chans: Vec<Channel>,
    /// The one PRNG.
    pub(crate) rng: Xoshiro256,
    /// RCU grace-period machinery.
    pub(crate) rcu: RcuGp,
    /// The senders of deferrable work ([`crate::os::ct_work`]).
    pub(crate) work: crate::machine::work::Senders,
    /// Invariant monitor.
    pub(crate) monitor: Monitor,
    /// ftrace-style output.
    pub(crate) trace: Option<TraceSink>,
    /// Benchmark timestamps.
    pub(crate) mark_start_ns: Option<u64>,
    /// Benchmark timestamps.
    pub(crate) mark_stop_ns: Option<u64>,
    /// The task whose exit ends the run.
    pub(crate) main_task: Option<TaskId>,
    /// Steps executed.
    pub(crate) steps: u64,
    /// Set when the run must stop.
    pub(crate) end: Option<EndReason>,
    /// Last time any CPU reached.
    pub(crate) now_max: u64,
    /// Set when another event source's next time moved (an IRQ posted to another CPU, a grace
    /// period requested): ends a same-CPU run of events so the loop rescans.
    pub(crate) rescan: bool,
    /// Cached next-event time of each CPU: refreshed after the CPU runs and when an IPI is posted
    /// to it ([`Machine::refresh_next`]); nothing else changes another CPU's next event.
    pub(crate) next_at: Vec<u64>,
    /// Called every [`CHECKPOINT_STEPS`] steps with where the run is (an output, like the trace:
    /// not copied by `clone`, never read by the simulation).
    pub(crate) progress: Option<ProgressFn>,
    /// What this machine's run is for, as progress reports name it (`run` by default).
    pub(crate) phase: &'static str,
    /// Step count at which the run loop next checks limits and reports progress.
    pub(crate) next_checkpoint: u64,
    pub(crate) next_pid: u32,
}

/// A copy of the whole machine state, without the trace sink (an output, not state): the model
/// checker forks states this way.
impl Clone for Machine {
    fn clone(&self) -> Machine {
        Machine {
            cfg: self.cfg.clone(),
            cost: self.cost.clone(),
            base_cost: self.base_cost.clone(),
            ns_per_cycle_fp: self.ns_per_cycle_fp,
            design: self.design,
            key: self.key.clone(),
            cpus: self.cpus.clone(),
            tasks: self.tasks.clone(),
            chans: self.chans.clone(),
            rng: self.rng.clone(),
            rcu: self.rcu.clone(),
            work: self.work.clone(),
            monitor: self.monitor.clone(),
            trace: None,
            mark_start_ns: self.mark_start_ns,
            mark_stop_ns: self.mark_stop_ns,
            main_task: self.main_task,
            steps: self.steps,
            end: self.end.clone(),
            now_max: self.now_max,
            rescan: self.rescan,
            next_at: self.next_at.clone(),
            progress: None,
            phase: self.phase,
            next_checkpoint: self.next_checkpoint,
            next_pid: self.next_pid,
        }
    }
}
impl Machine {
    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The design under test.
    pub fn design(&self) -> &'static Design {
        self.design
    }

    /// The CPUs (read-only: drive them through [`crate::driver`]).
    pub fn cpus(&self) -> &[Shared<Cpu>] {
        &self.cpus
    }

    /// The tasks, dead ones included (read-only).
    pub fn tasks(&self) -> &[Shared<Task>] {
        &self.tasks
    }

    /// The pipes and sockets (read-only).
    pub fn chans(&self) -> &[Channel] {
        &self.chans
    }

    /// The addresses of this machine's shared components ([`Shared`]: its constants, CPUs and
    /// tasks), in a fixed order, for [`Machine::bytes_held`].
    pub fn component_addrs(&self, out: &mut Vec<usize>) {
        out.clear();
        out.push(self.cfg.addr());
        out.push(self.cost.addr());
        out.push(self.base_cost.addr());
        out.extend(self.cpus.iter().map(|c| c.addr()));
        out.extend(self.tasks.iter().map(|t| t.addr()));
    }

    /// What this copy holds, roughly, in bytes: `(apart, total)`. `total` is its own struct and
    /// vectors and every component; `apart` counts, of the components, only those it no longer
    /// shares with the machine whose [`Machine::component_addrs`] are `before` (the ones it
    /// wrote). The model checker's memory bound counts its waiting states with them: they
    /// depend only on the transitions, not on which other copies happen to be alive.
    pub fn bytes_held(&self, before: &[usize]) -> (usize, usize) {
        use std::mem::size_of;
        let own = size_of::<Machine>()
            + (self.cpus.capacity() + self.tasks.capacity()) * size_of::<Shared<Cpu>>()
            + self.next_at.capacity() * size_of::<u64>()
            + self
                .chans
                .iter()
                .map(|ch| {
                    size_of::<Channel>()
                        + (ch.readers.capacity() + ch.writers.capacity()) * size_of::<TaskId>()
                })
                .sum::<usize>();
        let constants = [
            (self.cfg.addr(), size_of::<Config>()),
            (self.cost.addr(), size_of::<CostModel>()),
            (self.base_cost.addr(), size_of_val(&*self.base_cost)),
        ];
        let cpus = self.cpus.iter().map(|c| {
            (
                c.addr(),
                size_of::<Cpu>() + c.rq.capacity() * size_of::<TaskId>(),
            )
        });
        let tasks = self.tasks.iter().map(|t| {
            let spilled = if t.entries.spilled() {
                t.entries.capacity() * size_of::<Entry>()
            } else {
                0
            };
            (t.addr(), size_of::<Task>() + spilled)
        });
        // The same order as component_addrs().
        let (mut apart, mut total) = (own, own);
        for (i, (addr, size)) in constants.into_iter().chain(cpus).chain(tasks).enumerate() {
            total += size;
            if before.get(i) != Some(&addr) {
                apart += size;
            }
        }
        (apart, total)
    }

    /// RCU's grace-period state (read-only).
    pub fn rcu(&self) -> &RcuGp {
        &self.rcu
    }

    /// The invariant monitor: violations found so far (read-only).
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Steps executed.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Why the run ended, once it has.
    pub fn end(&self) -> Option<&EndReason> {
        self.end.as_ref()
    }

    /// The trace output, if any.
    pub fn trace(&self) -> Option<&TraceSink> {
        self.trace.as_ref()
    }

    /// Replaces the trace output (`None`: no trace), returning the old one.
    pub fn set_trace(&mut self, t: Option<TraceSink>) -> Option<TraceSink> {
        std::mem::replace(&mut self.trace, t)
    }

    /// Replaces the progress callback, returning the old one.
    pub fn set_progress(&mut self, p: Option<ProgressFn>) -> Option<ProgressFn> {
        std::mem::replace(&mut self.progress, p)
    }

    /// Builds a machine with idle tasks on every CPU and no workload.
    pub fn new(cfg: Config) -> Machine {
        let n = cfg.cpus;
        let cost = cfg.cost.clone();
        let tick_nsec = 1_000_000_000 / cfg.hz;
        let mut m = Machine {
            base_cost: Shared::new(cost.base_table()),
            ns_per_cycle_fp: (1000u64 << 32) / cost.cpu_mhz,
            cost: Shared::new(cost),
            design: cfg.design,
            key: StaticKey::new_false(),
            cpus: Vec::with_capacity(n),
            tasks: Vec::new(),
            chans: Vec::new(),
            rng: Xoshiro256::seed(cfg.seed),
            rcu: RcuGp::new(n, &cfg),
            work: crate::machine::work::Senders::new(&cfg),
            monitor: Monitor {
                stop_on_violation: cfg.stop_on_violation,
                ..Monitor::new(cfg.monitor)
            },
            trace: None,
            mark_start_ns: None,
            mark_stop_ns: None,
            main_task: None,
            steps: 0,
            end: None,
            now_max: 0,
            rescan: false,
            next_at: vec![0; n],
            progress: None,
            phase: "run",
            next_checkpoint: 0,
            next_pid: 1,
            cfg: Shared::new(cfg),
        };
        for c in 0..n {
            let idle = m.tasks.len();
            let mut t = Task::new(0, "<idle>", Program::Idle, c);
            t.state = TaskState::Running;
            t.push_kernel_loop(m.design.idle);
            m.tasks.push(Shared::new(t));
            let nohz = m.cfg.ct_on && m.cfg.nohz_full.contains(c);
            let mut pcpu = PerCpu::with_layout(tick_nsec, m.cfg.ct_layout());
            // The core prices primitives as it counts them (see `exec_step`).
            pcpu.local.stats.weights = m.cost.prim_table();
            if nohz {
                pcpu.ct_cpu_track_user(&m.key);
            }
            // Stagger nothing: all ticks are jiffy aligned (no skew_tick).
            m.cpus.push(Shared::new(Cpu {
                pcpu,
                hw: Hw {
                    cpu: c,
                    irqs_on: true,
                    now: 0,
                    preempt_count: 0,
                    cur_has_mm: false,
                    cur_is_idle: true,
                    kicks: 0,
                    owed: 0,
                    work_flushes: 0,
                    flush_pending: 0,
                    flush_depth: 0,
                },
                mode: Mode::Kernel,
                current: idle,
                idle_task: idle,
                rq: Vec::new(),
                min_vruntime: 0,
                nohz_full: nohz,
                next_tick: tick_nsec,
                pending: [
                    NEVER,
                    NEVER,
                    NEVER,
                    m.cfg
                        .irq_period_ns
                        .map(|p| p / 2 + p * c as u64 / n as u64)
                        .unwrap_or(NEVER),
                    NEVER,
                ],
                nmi_at: cfg_nmi_first(&m.cfg, c),
                csd: 0,
                work_setter: None,
                user_until: NEVER,
                user_since: 0,
                tick_stopped_since: None,
                priced_cycles: 0,
                cycle_rem: 0,
                counters: CpuCounters::default(),
                times: CpuTimes::default(),
                history: History::default(),
                entry_seq: 0,
                softirq: Default::default(),
                nocb_defer_wakeup: false,
                ksoftirqd: None,
            }));
        }
        for c in 0..n {
            if m.key.is_enabled() && m.cpus[c].pcpu.ct.active() {
                let idle = m.cpus[c].idle_task;
                ctxtrack_core::vtime::vtime_init_idle(
                    &mut m.tasks[idle].vtime,
                    &mut m.cpus[c].pcpu.local.cputime,
                    c,
                    0,
                );
            }
        }
        m
    }

    /// `TICK_NSEC`.
    pub fn tick_nsec(&self) -> u64 {
        1_000_000_000 / self.cfg.hz
    }

    /// Creates a channel.
    pub fn new_chan(&mut self, kind: crate::machine::ipc::ChanKind) -> ChanId {
        self.chans.push(Channel::new(kind));
        (self.chans.len() - 1) as ChanId
    }

    pub(crate) fn alloc_pid(&mut self) -> u32 {
        let p = self.next_pid;
        self.next_pid += 1;
        p
    }

    /// Recomputes the cached next-event time of CPU `c` (after posting an event to it).
    #[inline]
    pub fn refresh_next(&mut self, c: CpuId) {
        self.next_at[c] = self.next_time(c);
        self.rescan = true;
    }

    /// Next event time of CPU `c`.
    #[inline]
    pub(crate) fn next_time(&self, c: CpuId) -> u64 {
        let cpu = &self.cpus[c];
        match cpu.mode {
            Mode::Kernel => cpu.hw.now,
            // An IPI may have arrived while IRQs were off: it is taken at once, not in the past.
            Mode::User => cpu
                .user_until
                .min(Self::earliest_irq(cpu))
                .min(cpu.nmi_at)
                .max(cpu.hw.now),
            Mode::Halted => Self::earliest_irq(cpu).min(cpu.nmi_at).max(cpu.hw.now),
        }
    }

    #[inline]
    pub(crate) fn earliest_irq(cpu: &Cpu) -> u64 {
        cpu.next_tick
            .min(cpu.pending[1])
            .min(cpu.pending[2])
            .min(cpu.pending[3])
            .min(cpu.pending[4])
    }
}

fn cfg_nmi_first(cfg: &Config, c: CpuId) -> u64 {
    match cfg.nmi_period_ns {
        // Spread NMIs over the period so CPUs do not all take them at once.
        Some(p) => p + p * c as u64 / cfg.cpus.max(1) as u64,
        None => NEVER,
    }
}
