//! The simulated SMP machine: CPUs, tasks, channels, the event loop and step execution.
//!
//! One [`Machine`] owns the virtual clock of every CPU, the event sources and the PRNG; nothing
//! here reads the wall clock. The loop always advances the CPU whose next event is earliest (ties
//! to the lower CPU id), so a run is a pure function of its [`Config`].

use crate::config::Config;
use crate::cost::CostModel;
use crate::design::{Category, Design, Flow, Path, StepKind};
use crate::ipc::Channel;
use crate::kernel::K;
use crate::monitor::{HistEntry, History, Monitor};
use crate::program::{Mark, Program, Then};
use crate::rcu_gp::RcuGp;
use crate::rng::Xoshiro256;
use crate::trace::TraceSink;
use ctxtrack_core::arch::Arch;
use ctxtrack_core::{CtState, PerCpu, StaticKey, TaskVtime};
use smallvec::SmallVec;

/// Index of a CPU.
pub type CpuId = usize;
/// Index of a task in [`Machine::tasks`].
pub type TaskId = usize;
/// Index of a channel in [`Machine::chans`].
pub type ChanId = u32;

/// "Never" on the virtual clock.
pub const NEVER: u64 = u64::MAX;

/// Thread-info flags (`arch/x86/include/asm/thread_info.h`).
pub mod tif {
    /// `_TIF_NOTIFY_RESUME`.
    pub const NOTIFY_RESUME: u32 = 1 << 1;
    /// `_TIF_SIGPENDING`.
    pub const SIGPENDING: u32 = 1 << 2;
    /// `_TIF_NEED_RESCHED`.
    pub const NEED_RESCHED: u32 = 1 << 3;
    /// `_TIF_USER_RETURN_NOTIFY`.
    pub const USER_RETURN_NOTIFY: u32 = 1 << 11;
    /// `_TIF_POLLING_NRFLAG`: the idle task polls `TIF_NEED_RESCHED` (set in `do_idle()` until
    /// `current_clr_polling_and_test()` before the halt), so a remote `resched_curr()` sets the
    /// flag and sends no IPI (`set_nr_and_not_polling()`).
    pub const POLLING_NRFLAG: u32 = 1 << 21;
    /// `EXIT_TO_USER_MODE_WORK` (the flags `exit_to_user_mode_loop` handles).
    pub const EXIT_TO_USER_MODE_WORK: u32 = NOTIFY_RESUME | SIGPENDING | NEED_RESCHED;
}

/// `preempt_count` layout (`include/linux/preempt.h`).
pub mod preempt {
    /// `PREEMPT_MASK`.
    pub const PREEMPT_MASK: u32 = 0xff;
    /// `SOFTIRQ_OFFSET`: held while softirqs run.
    pub const SOFTIRQ_OFFSET: u32 = 1 << 8;
    /// `SOFTIRQ_MASK`.
    pub const SOFTIRQ_MASK: u32 = 0xff00;
    /// `HARDIRQ_OFFSET`.
    pub const HARDIRQ_OFFSET: u32 = 1 << 16;
    /// `HARDIRQ_MASK`.
    pub const HARDIRQ_MASK: u32 = 0xf << 16;
    /// `NMI_OFFSET`.
    pub const NMI_OFFSET: u32 = 1 << 20;
    /// `NMI_MASK`.
    pub const NMI_MASK: u32 = 0xf << 20;
}

/// Interrupt vectors the machine delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vector {
    /// `LOCAL_TIMER_VECTOR` (0xec).
    LocalTimer = 0,
    /// `IRQ_WORK_VECTOR` (0xf6): nohz kicks.
    IrqWork = 1,
    /// `RESCHEDULE_VECTOR` (0xfd).
    Reschedule = 2,
    /// A device interrupt (vector 0x22, Linux IRQ 11) arriving at random times (`--irq-period`).
    Device = 3,
    /// `CALL_FUNCTION_SINGLE_VECTOR` (0xfb): `smp_call_function` work (`sync_core()` after text
    /// patching, a kernel TLB flush) that could not be deferred ([`crate::ct_work`]).
    CallFunction = 4,
}

/// Number of [`Vector`]s.
pub const NVEC: usize = 5;

impl Vector {
    /// All vectors, by index.
    pub const ALL: [Vector; NVEC] = [
        Vector::LocalTimer,
        Vector::IrqWork,
        Vector::Reschedule,
        Vector::Device,
        Vector::CallFunction,
    ];
    /// The x86 vector number.
    pub fn number(self) -> u32 {
        match self {
            Vector::LocalTimer => 236,
            Vector::IrqWork => 246,
            Vector::Reschedule => 253,
            Vector::Device => 34,
            Vector::CallFunction => 251,
        }
    }
    /// Event-name prefix in `irq_vectors` (`local_timer`, `irq_work`, `reschedule`; the
    /// names are `ctxtrack_trace::event`'s), or `irq_handler` for the device interrupt.
    pub fn trace_name(self) -> &'static str {
        match self {
            Vector::Device => "irq_handler",
            v => ctxtrack_trace::event::vector_name(v.number()),
        }
    }
}

/// What a CPU is doing between events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Executing kernel steps.
    Kernel,
    /// Running user code of `current` until `user_until`.
    User,
    /// Halted in `arch_cpu_idle` until an interrupt.
    Halted,
}

/// The hardware state of one CPU as the core sees it (implements [`Arch`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hw {
    /// CPU id.
    pub cpu: CpuId,
    /// RFLAGS.IF.
    pub irqs_on: bool,
    /// This CPU's clock (ns).
    pub now: u64,
    /// `preempt_count`.
    pub preempt_count: u32,
    /// `current->mm != NULL`.
    pub cur_has_mm: bool,
    /// `is_idle_task(current)`.
    pub cur_is_idle: bool,
    /// CPUs the core asked to kick (processed after the step).
    pub kicks: u64,
    /// Deferred work this CPU owes ([`ctxtrack_core::CtWork`] bits): a sender deferred it and
    /// returned; the next kernel entry's flush (or a CALL_FUNCTION IPI) runs it. The monitor
    /// checks that no patchable step runs while any is owed.
    pub owed: u8,
    /// `arch_context_tracking_work()` calls so far.
    pub work_flushes: u64,
    /// Work a `ct_kernel_enter_state()` has just read from the word: its `ct_work_flush()` runs
    /// at the next instruction boundary of the same context ([`Hw::flush_depth`]), so an NMI
    /// can land between the add and the flush, as on real hardware.
    pub flush_pending: u8,
    /// The entry depth (`Task::entries.len()`) whose context runs the pending flush.
    pub flush_depth: u16,
}

impl Arch for Hw {
    fn irqs_disabled(&self) -> bool {
        !self.irqs_on
    }
    fn local_irq_disable(&mut self) {
        self.irqs_on = false;
    }
    fn local_irq_enable(&mut self) {
        self.irqs_on = true;
    }
    fn sched_clock(&mut self) -> u64 {
        self.now
    }
    fn smp_processor_id(&self) -> usize {
        self.cpu
    }
    fn in_interrupt(&self) -> bool {
        self.preempt_count & (preempt::HARDIRQ_MASK | preempt::SOFTIRQ_MASK | preempt::NMI_MASK)
            != 0
    }
    fn in_nmi(&self) -> bool {
        self.preempt_count & preempt::NMI_MASK != 0
    }
    fn current_has_mm(&self) -> bool {
        self.cur_has_mm
    }
    fn is_idle_task(&self) -> bool {
        self.cur_is_idle
    }
    fn tick_kick(&mut self, cpu: usize) {
        self.kicks |= 1 << cpu;
    }
    fn arch_context_tracking_work(&mut self, work: ctxtrack_core::CtWork) {
        // sync_core() / the kernel TLB flush runs as the next instruction of this context
        // (Machine::ct_work_flush_step); until then the CPU still owes it.
        self.flush_pending |= work.bit() as u8;
        self.work_flushes += 1;
    }
}

/// Counters the simulator keeps per CPU (the core's own are in `PerCpu::stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuCounters {
    /// Steps executed.
    pub steps: u64,
    /// Syscalls entered.
    pub syscalls: u64,
    /// IRQs delivered, by [`Vector`].
    pub irqs: [u64; NVEC],
    /// IRQs that interrupted user mode / kernel / the halted idle loop.
    pub irqs_from: [u64; 3],
    /// Exceptions (page faults) taken.
    pub exceptions: u64,
    /// NMIs taken.
    pub nmis: u64,
    /// Ticks handled.
    pub ticks: u64,
    /// IPIs received, by [`Vector`].
    pub ipis_received: [u64; NVEC],
    /// IPIs sent.
    pub ipis_sent: u64,
    /// Reschedule IPIs sent to this CPU by RCU forcing a quiescent state.
    pub rcu_resched_ipis: u64,
    /// Context switches.
    pub context_switches: u64,
    /// Wakeups performed by this CPU.
    pub wakeups: u64,
    /// RCU quiescent states reported for this CPU.
    pub rcu_qs: u64,
    /// Wakeups of the rcuog kthread for callbacks queued on this CPU ([`crate::rcu_nocb`]).
    pub rcuog_wakeups: u64,
    /// Cycles of entry/exit code, by entry kind ([`EntryKind`] index).
    pub entry_cycles: [u64; 6],
    /// Cycles of context-tracking primitives, by entry kind.
    pub ct_cycles: [u64; 6],
    /// Completed entries by kind (for per-entry averages).
    pub entries: [u64; 6],
    /// All cycles executed in kernel steps.
    pub kernel_cycles: u64,
    /// Work deferred to this CPU by `ct_set_cpu_work()` (one per sender and work type).
    pub work_deferred: u64,
    /// CALL_FUNCTION IPIs this CPU handled for work that could not be deferred.
    pub work_ipis: u64,
    /// IRQs and NMIs that interrupted user mode (what disturbs an isolated task).
    pub user_interruptions: u64,
    /// When the last one arrived (0: none yet).
    pub last_interruption_ns: u64,
    /// Longest time between two of them (or from the start of the run to the first).
    pub longest_quiet_ns: u64,
}

/// Ground-truth time per CPU (what the CPU really did, not what vtime says).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuTimes {
    /// User mode.
    pub user_ns: u64,
    /// Kernel code of non-idle tasks.
    pub sys_ns: u64,
    /// Halted, or kernel code of the idle task.
    pub idle_ns: u64,
    /// Time with the tick stopped.
    pub tick_stopped_ns: u64,
}

/// One CPU.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// The core's per-CPU data.
    pub pcpu: PerCpu,
    /// Hardware state.
    pub hw: Hw,
    /// What it is doing.
    pub mode: Mode,
    /// `rq->curr`.
    pub current: TaskId,
    /// This CPU's idle task.
    pub idle_task: TaskId,
    /// Runnable tasks waiting (not running), kept sorted by vruntime.
    pub rq: Vec<TaskId>,
    /// `cfs_rq->min_vruntime`.
    pub min_vruntime: u64,
    /// In the `nohz_full=` set (and context tracking on).
    pub nohz_full: bool,
    /// Next tick (NEVER while stopped).
    pub next_tick: u64,
    /// Arrival time of pending interrupts, by [`Vector`] (`LocalTimer` unused: see `next_tick`).
    pub pending: [u64; NVEC],
    /// Arrival of a pending NMI.
    pub nmi_at: u64,
    /// `call_single_queue`: [`ctxtrack_core::CtWork`] bits queued for the CALL_FUNCTION IPI.
    pub csd: u8,
    /// A remote `ct_set_cpu_work()` against this CPU between its read and its cmpxchg (the
    /// value it read): the model checker runs the two as separate actions
    /// ([`crate::ct_work::setter_read`], [`crate::ct_work::setter_cmpxchg`]).
    pub work_setter: Option<u32>,
    /// End of the current user burst (valid in [`Mode::User`]).
    pub user_until: u64,
    /// When the current user burst started or resumed.
    pub user_since: u64,
    /// Since when the tick is stopped.
    pub tick_stopped_since: Option<u64>,
    /// The core's weighted primitive count already priced into step costs.
    pub priced_cycles: u64,
    /// Sub-ns remainder of the cycles-to-ns conversion (32-bit fraction).
    pub cycle_rem: u64,
    /// Simulator counters.
    pub counters: CpuCounters,
    /// Ground-truth times.
    pub times: CpuTimes,
    /// Last steps (for violation reports).
    pub history: History,
    /// Kernel entries taken so far (numbers [`Entry::seq`]).
    pub entry_seq: u32,
    /// Softirqs raised and running ([`crate::softirq`]).
    pub softirq: crate::softirq::Softirq,
    /// `rdp->nocb_defer_wakeup`: a `call_rcu()` with IRQs off on this offloaded CPU left the
    /// wakeup of its rcuog kthread to a later flush ([`crate::rcu_nocb`]).
    pub nocb_defer_wakeup: bool,
    /// `ksoftirqd/N`, once a `__do_softirq()` first deferred to it.
    pub ksoftirqd: Option<TaskId>,
}

/// Task states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// `rq->curr` somewhere.
    Running,
    /// On a run queue.
    Runnable,
    /// `TASK_INTERRUPTIBLE`, on a wait queue.
    Sleeping,
    /// Exited.
    Dead,
}

/// Why a task entered the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// `syscall`.
    Syscall = 0,
    /// Device or IPI interrupt.
    Irq = 1,
    /// Exception (page fault).
    Exception = 2,
    /// NMI.
    Nmi = 3,
    /// First return of a forked task.
    Fork = 4,
    /// The idle loop (the idle task's base).
    Idle = 5,
}

impl EntryKind {
    /// Names by index.
    pub const NAMES: [&'static str; 6] = ["syscall", "irq", "exception", "nmi", "fork", "idle"];
}

/// Saved registers of an entry (the parts entry code looks at).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Regs {
    /// `user_mode(regs)`: CS RPL 3.
    pub user: bool,
    /// `!regs_irqs_disabled(regs)`: the interrupted context had IRQs on.
    pub irqs_on: bool,
    /// The vector for IRQs.
    pub vector: Option<Vector>,
}

/// Locals of an entry (`irqentry_state_t`, a saved `ctx_state`, scratch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Locals {
    /// `irqentry_state_t.exit_rcu`.
    pub exit_rcu: bool,
    /// `prev_state = exception_enter()`.
    pub prev_ctx: CtState,
    /// Free for designs (e.g. cached thread flags).
    pub scratch: u32,
    /// A loaded design's local variables ([`crate::design::lang::MAX_VARS`] slots).
    pub vars: [i32; crate::design::lang::MAX_VARS],
}

impl Default for Locals {
    fn default() -> Self {
        Locals {
            exit_rcu: false,
            prev_ctx: CtState::Kernel,
            scratch: 0,
            vars: [0; crate::design::lang::MAX_VARS],
        }
    }
}

/// One kernel entry on a task's stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Kind.
    pub kind: EntryKind,
    /// Saved registers.
    pub regs: Regs,
    /// Locals.
    pub locals: Locals,
    /// Frame depth at which this entry's outermost path sits.
    pub base: u16,
    /// Per-CPU sequence number of this entry (identifies its steps in the history).
    pub seq: u32,
    /// The CPU's context as the event found it (`None` for entries not made by hardware
    /// delivery, such as a new task's first return): a complete path must leave it as it was.
    pub saved: Option<CtSnap>,
}

/// The part of a CPU's context that an entry must restore on its way out: what the interrupted
/// code (or a fresh entry) expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtSnap {
    /// The CPU (a task that blocked inside the entry may finish it elsewhere: then only the
    /// return-to-user checks apply).
    pub cpu: CpuId,
    /// Context-tracking state (`CT_STATE_*`).
    pub state: CtState,
    /// `rcu_is_watching()`.
    pub watching: bool,
    /// `ct->nesting`.
    pub nesting: i64,
    /// `ct->nmi_nesting`.
    pub nmi_nesting: i64,
    /// `preempt_count`.
    pub preempt_count: u32,
}

impl CtSnap {
    /// The context of CPU `cpu` now.
    pub fn of(cpu: &Cpu) -> CtSnap {
        let ct = &cpu.pcpu.ct;
        CtSnap {
            cpu: cpu.hw.cpu,
            state: ct.ct_state_bits(),
            watching: ct.rcu_is_watching(),
            nesting: ct.nesting(),
            nmi_nesting: ct.nmi_nesting(),
            preempt_count: cpu.hw.preempt_count,
        }
    }
}

/// One path activation on a task's kernel stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The path.
    pub path: &'static Path,
    /// Kind of the entry this activation belongs to (cached from [`Entry::kind`]: the step
    /// loop prices by kind without a look at the entry stack).
    pub kind: EntryKind,
    /// Next step to run.
    pub pc: u16,
}

impl Frame {
    /// A fresh activation of `path` within an entry of `kind`.
    pub fn new(path: &'static Path, kind: EntryKind) -> Frame {
        Frame { path, kind, pc: 0 }
    }
}

/// Most decisions (free steps: `if`, calls, returns) one step may be preceded by.
pub const MAX_DECISIONS: u32 = 10_000;

/// Limit on kernel stack depth (frames): entries nest at most NMI-in-IRQ-in-exception.
pub const MAX_FRAMES: usize = 32;

/// A task.
#[derive(Clone, Debug)]
pub struct Task {
    /// PID (0 for idle tasks).
    pub pid: u32,
    /// `comm` (shared: tasks are copied often by the model checker, their names never change).
    pub comm: std::sync::Arc<str>,
    /// Scheduler state.
    pub state: TaskState,
    /// CPU it last ran on / is queued on.
    pub cpu: CpuId,
    /// Thread-info flags ([`tif`]).
    pub ti_flags: u32,
    /// vtime and cputime.
    pub vtime: TaskVtime,
    /// Kernel stack of path activations (inline, at most [`MAX_FRAMES`]: copying a task
    /// allocates nothing and a lookup has no spilled-or-not branch).
    pub frames: arrayvec::ArrayVec<Frame, MAX_FRAMES>,
    /// Entries on the kernel stack (inline up to 4).
    pub entries: SmallVec<[Entry; 4]>,
    /// User program.
    pub prog: Program,
    /// The idle task.
    pub is_idle: bool,
    /// Has an mm (user task).
    pub has_mm: bool,
    /// CFS virtual runtime.
    pub vruntime: u64,
    /// When it last started running (for runtime accounting).
    pub exec_start: u64,
    /// Total runtime.
    pub sum_exec_ns: u64,
    /// Runtime since it was last picked (slice accounting).
    pub slice_exec_ns: u64,
    /// Remaining user compute of the current op.
    pub user_left_ns: u64,
    /// What ends the current user op.
    pub then: Then,
    /// Return value of the last syscall, for the program.
    pub last_ret: Option<i64>,
    /// The syscall in progress.
    pub cur_syscall: Option<crate::program::Syscall>,
    /// Parent task.
    pub parent: Option<TaskId>,
    /// Exited children not yet reaped.
    pub zombies: u32,
    /// Live children.
    pub children_alive: u32,
    /// `rcu_read_lock()` nesting.
    pub rcu_depth: u32,
    /// When the outermost read-side section began.
    pub rcu_since_ns: u64,
    /// Grace periods started before the outermost read-side section began (`gp_seq` then): a
    /// grace period with a higher number must wait for it ([`crate::rcu_gp::reader_predates`]).
    pub rcu_since_gp: u64,
    /// Ground truth: user ns.
    pub user_ns: u64,
    /// Ground truth: kernel ns.
    pub sys_ns: u64,
    /// Syscalls made.
    pub syscalls: u64,
    /// Registered for user-return notifications every N syscalls (0: never).
    pub urn_every: u64,
    /// User-return notifiers fired for this task (statistics: not part of the checker's state).
    pub urn_fired: u64,
    /// Bound to one CPU (`sched_setaffinity` to a single CPU): wakeups and load balancing
    /// never move it.
    pub pinned: Option<CpuId>,
}

impl Task {
    /// A new task in the given state.
    pub fn new(pid: u32, comm: &str, prog: Program, cpu: CpuId) -> Task {
        let is_idle = matches!(prog, Program::Idle);
        Task {
            pid,
            comm: comm.into(),
            state: TaskState::Runnable,
            cpu,
            ti_flags: 0,
            vtime: TaskVtime::default(),
            frames: arrayvec::ArrayVec::new(),
            entries: SmallVec::new(),
            prog,
            is_idle,
            has_mm: !is_idle,
            vruntime: 0,
            exec_start: 0,
            sum_exec_ns: 0,
            slice_exec_ns: 0,
            user_left_ns: 0,
            then: Then::Continue,
            last_ret: None,
            cur_syscall: None,
            parent: None,
            zombies: 0,
            children_alive: 0,
            rcu_depth: 0,
            rcu_since_ns: 0,
            rcu_since_gp: 0,
            user_ns: 0,
            sys_ns: 0,
            syscalls: 0,
            urn_every: 0,
            urn_fired: 0,
            pinned: None,
        }
    }

    /// Gives a kernel thread (the idle task, `ksoftirqd`) its base: a kernel loop `path` that
    /// never returns, entered with IRQs on.
    pub fn push_kernel_loop(&mut self, path: &'static Path) {
        let regs = Regs {
            user: false,
            irqs_on: true,
            vector: None,
        };
        self.push_entry(EntryKind::Idle, regs, path);
    }

    /// Pushes a new kernel entry whose outermost path is `path` (sequence number 0: entries
    /// made outside the machine's delivery, such as a new task's first return).
    pub fn push_entry(&mut self, kind: EntryKind, regs: Regs, path: &'static Path) {
        self.push_entry_seq(kind, regs, path, 0);
    }

    /// [`Self::push_entry`] with the CPU's entry sequence number.
    pub fn push_entry_seq(&mut self, kind: EntryKind, regs: Regs, path: &'static Path, seq: u32) {
        self.entries.push(Entry {
            kind,
            regs,
            locals: Locals::default(),
            base: self.frames.len() as u16,
            seq,
            saved: None,
        });
        self.frames.push(Frame::new(path, kind));
    }
}

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
    pub cfg: Config,
    /// Cost model (copied out of the config for speed).
    pub cost: CostModel,
    /// Base cost of each [`crate::cost::CostKey`] (`cost.base_table()`).
    pub base_cost: [u64; crate::cost::CostKey::ALL.len()],
    /// Nanoseconds per cycle, 32.32 fixed point.
    pub ns_per_cycle_fp: u64,
    /// The design under test.
    pub design: &'static Design,
    /// `context_tracking_key`.
    pub key: StaticKey,
    /// CPUs.
    pub cpus: Vec<Cpu>,
    /// Tasks (never removed: dead tasks stay for reporting).
    pub tasks: Vec<Task>,
    /// Channels.
    pub chans: Vec<Channel>,
    /// The one PRNG.
    pub rng: Xoshiro256,
    /// RCU grace-period machinery.
    pub rcu: RcuGp,
    /// The senders of deferrable work ([`crate::ct_work`]).
    pub work: crate::ct_work::Senders,
    /// Invariant monitor.
    pub monitor: Monitor,
    /// ftrace-style output.
    pub trace: Option<TraceSink>,
    /// Benchmark timestamps.
    pub mark_start_ns: Option<u64>,
    /// Benchmark timestamps.
    pub mark_stop_ns: Option<u64>,
    /// The task whose exit ends the run.
    pub main_task: Option<TaskId>,
    /// Steps executed.
    pub steps: u64,
    /// Set when the run must stop.
    pub end: Option<EndReason>,
    /// Last time any CPU reached.
    pub now_max: u64,
    /// Set when another event source's next time moved (an IRQ posted to another CPU, a grace
    /// period requested): ends a same-CPU run of events so the loop rescans.
    pub rescan: bool,
    /// Cached next-event time of each CPU: refreshed after the CPU runs and when an IPI is posted
    /// to it ([`Machine::refresh_next`]); nothing else changes another CPU's next event.
    pub next_at: Vec<u64>,
    /// Called every [`CHECKPOINT_STEPS`] steps with where the run is (an output, like the trace:
    /// not copied by `clone`, never read by the simulation).
    pub progress: Option<ProgressFn>,
    /// What this machine's run is for, as progress reports name it (`run` by default).
    pub phase: &'static str,
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
            base_cost: self.base_cost,
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
    /// Builds a machine with idle tasks on every CPU and no workload.
    pub fn new(cfg: Config) -> Machine {
        let n = cfg.cpus;
        let cost = cfg.cost.clone();
        let tick_nsec = 1_000_000_000 / cfg.hz;
        let mut m = Machine {
            base_cost: cost.base_table(),
            ns_per_cycle_fp: (1000u64 << 32) / cost.cpu_mhz,
            cost,
            design: cfg.design,
            key: StaticKey::new_false(),
            cpus: Vec::with_capacity(n),
            tasks: Vec::new(),
            chans: Vec::new(),
            rng: Xoshiro256::seed(cfg.seed),
            rcu: RcuGp::new(n, &cfg),
            work: crate::ct_work::Senders::new(&cfg),
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
            cfg,
        };
        for c in 0..n {
            let idle = m.tasks.len();
            let mut t = Task::new(0, "<idle>", Program::Idle, c);
            t.state = TaskState::Running;
            t.push_kernel_loop(m.design.idle);
            m.tasks.push(t);
            let nohz = m.cfg.ct_on && m.cfg.nohz_full.contains(c);
            let mut pcpu = PerCpu::with_layout(tick_nsec, m.cfg.ct_layout());
            // The core prices primitives as it counts them (see `exec_step`).
            pcpu.local.stats.weights = m.cost.prim_table();
            if nohz {
                pcpu.ct_cpu_track_user(&m.key);
            }
            // Stagger nothing: all ticks are jiffy aligned (no skew_tick).
            m.cpus.push(Cpu {
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
            });
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
    pub fn new_chan(&mut self, kind: crate::ipc::ChanKind) -> ChanId {
        self.chans.push(Channel::new(kind));
        (self.chans.len() - 1) as ChanId
    }

    /// Creates a user task that starts in `ret_from_fork` on `cpu`'s run queue.
    pub fn spawn(&mut self, comm: &str, prog: Program, cpu: CpuId) -> TaskId {
        let pid = self.alloc_pid();
        let cpu = self.cfg.taskset.unwrap_or(cpu);
        let mut t = Task::new(pid, comm, prog, cpu);
        t.pinned = self.cfg.taskset;
        t.push_entry(
            EntryKind::Fork,
            Regs {
                user: true,
                irqs_on: true,
                vector: None,
            },
            self.design.ret_from_fork,
        );
        self.tasks.push(t);
        let id = self.tasks.len() - 1;
        crate::kernel::enqueue_new(self, id, cpu);
        id
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
    fn next_time(&self, c: CpuId) -> u64 {
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
    fn earliest_irq(cpu: &Cpu) -> u64 {
        cpu.next_tick
            .min(cpu.pending[1])
            .min(cpu.pending[2])
            .min(cpu.pending[3])
            .min(cpu.pending[4])
    }

    /// Runs until the workload ends, the duration passes, or an invariant fails.
    ///
    /// The CPU with the earliest next event runs; it keeps running without a rescan while its
    /// next event stays strictly before every other CPU's and the RCU kthread's (ties go to the
    /// lower CPU id, as a rescan would decide).
    pub fn run(&mut self) -> EndReason {
        let limit_ns = self.cfg.duration_ns.unwrap_or(NEVER);
        for c in 0..self.cpus.len() {
            self.next_at[c] = self.next_time(c);
        }
        // CPUs sorted by (next event, id), packed in one word so a compare is one instruction:
        // after the earliest CPU runs, it is re-inserted and the others keep their order.
        let mut order = EventOrder::new(&self.next_at);
        while self.end.is_none() {
            let (bc, second) = order.first_two();
            let best = self.next_at[bc];
            let second = second.map_or(NEVER, |c| self.next_at[c]);
            let rcu_t = self.rcu.next_event_ns();
            let work_t = self.work.next_event_ns();
            let ev_t = rcu_t.min(work_t);
            if ev_t <= best && ev_t != NEVER {
                if ev_t > limit_ns {
                    self.end = Some(EndReason::Duration);
                    break;
                }
                if work_t < rcu_t {
                    crate::ct_work::run_senders(self, work_t);
                } else {
                    crate::rcu_gp::rcu_gp_kthread(self, rcu_t);
                }
                if std::mem::take(&mut self.rescan) {
                    order = EventOrder::new(&self.next_at);
                }
                continue;
            }
            if best == NEVER {
                self.end = Some(EndReason::Quiescent);
                break;
            }
            // Other CPUs with a lower id win ties, so stay only while strictly earlier than them.
            let horizon = second.min(ev_t);
            let mut t = best;
            loop {
                if t > limit_ns {
                    self.end = Some(EndReason::Duration);
                    break;
                }
                if self.steps >= self.next_checkpoint && self.checkpoint() {
                    break;
                }
                self.run_cpu(bc, t);
                t = self.next_time(bc);
                self.next_at[bc] = t;
                if self.end.is_some() {
                    break;
                }
                // Running this CPU may have sent IPIs that change other CPUs' next events.
                if self.rescan {
                    self.rescan = false;
                    order = EventOrder::new(&self.next_at);
                    break;
                }
                if t >= horizon {
                    order.reinsert_first(bc, t);
                    break;
                }
            }
        }
        let end = self.end.clone().unwrap();
        self.finish();
        end
    }

    /// Every [`CHECKPOINT_STEPS`] steps: the step limit, the task and memory limits, and a
    /// progress report. True when the run must end.
    #[cold]
    #[inline(never)]
    fn checkpoint(&mut self) -> bool {
        if self.steps >= self.cfg.max_steps {
            self.end = Some(EndReason::StepLimit);
            return true;
        }
        self.next_checkpoint = (self.steps + CHECKPOINT_STEPS).min(self.cfg.max_steps);
        if let Some(what) = crate::limits::exceeded(self) {
            let cpu = (0..self.cpus.len())
                .max_by_key(|&c| self.cpus[c].hw.now)
                .unwrap_or(0);
            self.monitor.fail_limit(cpu, &what, &mut self.end);
            return true;
        }
        let now_ns = self.furthest_clock();
        if let Some(f) = self.progress.as_mut() {
            f(&Progress {
                phase: self.phase,
                now_ns,
                duration_ns: self.cfg.duration_ns,
                steps: self.steps,
                tasks: self.tasks.len(),
            });
        }
        false
    }

    /// The furthest any CPU's clock has reached.
    fn furthest_clock(&self) -> u64 {
        self.cpus
            .iter()
            .map(|c| c.hw.now)
            .max()
            .unwrap_or(0)
            .max(self.now_max)
    }

    /// Brings every CPU to the same end time and closes open intervals, so the report covers
    /// the whole run on every CPU.
    fn finish(&mut self) {
        let mut end = self.furthest_clock();
        if let Some(d) = self.cfg.duration_ns {
            if self.end == Some(EndReason::Duration) {
                end = end.max(d);
            }
        }
        self.now_max = end;
        for cpu in self.cpus.iter_mut() {
            match cpu.mode {
                Mode::User => {
                    let d = end.saturating_sub(cpu.user_since);
                    cpu.times.user_ns += d;
                    self.tasks[cpu.current].user_ns += d;
                    cpu.user_since = end;
                    cpu.hw.now = end;
                }
                Mode::Halted => {
                    cpu.times.idle_ns += end.saturating_sub(cpu.hw.now);
                    cpu.hw.now = end;
                }
                // A CPU in kernel mode stops at its own clock (it may be past `end` by one step).
                Mode::Kernel => {}
            }
            if let Some(since) = cpu.tick_stopped_since {
                cpu.times.tick_stopped_ns += cpu.hw.now.saturating_sub(since);
                cpu.tick_stopped_since = Some(cpu.hw.now);
            }
        }
        if self.end != Some(EndReason::Violation) {
            crate::monitor::check_all_vtime(self);
        }
    }

    /// The limit on kernel stack depth: false (and the run ends with `model_limit`) when task `t`
    /// on CPU `c` has no room for another frame.
    fn frame_room(&mut self, c: CpuId, t: TaskId) -> bool {
        if self.tasks[t].frames.len() < MAX_FRAMES {
            return true;
        }
        self.monitor
            .fail_limit(c, "kernel stack depth (MAX_FRAMES)", &mut self.end);
        false
    }

    /// Pushes `f` on task `t`'s kernel stack within the limit; false if the run had to end.
    fn push_frame(&mut self, c: CpuId, t: TaskId, f: Frame) -> bool {
        let room = self.frame_room(c, t);
        if room {
            self.tasks[t].frames.push(f);
        }
        room
    }

    /// Performs the next event of CPU `c` alone, ignoring every other CPU and the RCU kthread
    /// (for drivers that stage one path at a time: [`crate::probe`], model checkers).
    pub fn advance(&mut self, c: CpuId) {
        let t = self.next_time(c);
        if t != NEVER {
            self.run_cpu(c, t);
        }
    }

    /// Advances CPU `c` to time `t` and performs its next event.
    fn run_cpu(&mut self, c: CpuId, t: u64) {
        match self.cpus[c].mode {
            Mode::User => {
                self.account_user(c, t);
                let cpu = &self.cpus[c];
                if cpu.nmi_at <= t {
                    self.deliver_nmi(c);
                } else if let Some(v) = self.deliverable_irq(c) {
                    self.deliver_irq(c, v);
                } else {
                    self.user_op_done(c);
                }
            }
            Mode::Halted => {
                let cpu = &mut self.cpus[c];
                cpu.times.idle_ns += t - cpu.hw.now;
                cpu.hw.now = t;
                if cpu.nmi_at <= t {
                    self.deliver_nmi(c);
                } else if let Some(v) = self.deliverable_irq(c) {
                    self.deliver_irq(c, v);
                }
            }
            Mode::Kernel => {
                let cpu = &self.cpus[c];
                if cpu.nmi_at <= cpu.hw.now && !self.in_nmi(c) {
                    self.deliver_nmi(c);
                } else if cpu.hw.irqs_on && Self::earliest_irq(cpu) <= cpu.hw.now {
                    let v = self.deliverable_irq(c).expect("pending irq");
                    self.deliver_irq(c, v);
                } else {
                    self.exec_step(c);
                }
            }
        }
        if self.cpus[c].hw.now > self.now_max {
            self.now_max = self.cpus[c].hw.now;
        }
    }

    /// User mode of CPU `c` ran until `t`: account it to the CPU and the task.
    pub(crate) fn account_user(&mut self, c: CpuId, t: u64) {
        let cpu = &mut self.cpus[c];
        let cur = cpu.current;
        let ran = t - cpu.user_since;
        cpu.times.user_ns += ran;
        cpu.hw.now = t;
        cpu.user_since = t;
        let task = &mut self.tasks[cur];
        task.user_ns += ran;
        task.user_left_ns = task.user_left_ns.saturating_sub(ran);
    }

    /// An NMI is being handled on CPU `c`: NMIs are blocked until its `iretq`.
    pub(crate) fn in_nmi(&self, c: CpuId) -> bool {
        let t = &self.tasks[self.cpus[c].current];
        t.entries.iter().any(|e| e.kind == EntryKind::Nmi)
    }

    /// Highest-priority IRQ that has arrived by now on `c`.
    fn deliverable_irq(&self, c: CpuId) -> Option<Vector> {
        let cpu = &self.cpus[c];
        let now = cpu.hw.now;
        // The local APIC delivers the highest pending vector first.
        if cpu.pending[2] <= now {
            Some(Vector::Reschedule)
        } else if cpu.pending[4] <= now {
            Some(Vector::CallFunction)
        } else if cpu.pending[1] <= now {
            Some(Vector::IrqWork)
        } else if cpu.next_tick <= now {
            Some(Vector::LocalTimer)
        } else if cpu.pending[3] <= now {
            Some(Vector::Device)
        } else {
            None
        }
    }

    #[inline(never)]
    pub(crate) fn enter_kernel(
        &mut self,
        c: CpuId,
        kind: EntryKind,
        vector: Option<Vector>,
        path: &'static Path,
    ) {
        let cpu = &mut self.cpus[c];
        let from = cpu.mode;
        let regs = Regs {
            user: from == Mode::User,
            irqs_on: from != Mode::Kernel || cpu.hw.irqs_on,
            vector,
        };
        let saved = CtSnap::of(cpu);
        cpu.hw.irqs_on = false;
        cpu.mode = Mode::Kernel;
        let cur = cpu.current;
        if !self.frame_room(c, cur) {
            return;
        }
        cpu_entry_seq_bump(&mut self.cpus[c]);
        let seq = self.cpus[c].entry_seq;
        self.tasks[cur].push_entry_seq(kind, regs, path, seq);
        self.tasks[cur].entries.last_mut().unwrap().saved = Some(saved);
        let from_idx = match from {
            Mode::User => 0,
            Mode::Kernel => 1,
            Mode::Halted => 2,
        };
        if kind == EntryKind::Irq {
            self.cpus[c].counters.irqs_from[from_idx] += 1;
        }
        if from == Mode::User && matches!(kind, EntryKind::Irq | EntryKind::Nmi) {
            let cpu = &mut self.cpus[c];
            let k = &mut cpu.counters;
            let now = cpu.hw.now;
            k.longest_quiet_ns = k.longest_quiet_ns.max(now - k.last_interruption_ns);
            k.last_interruption_ns = now;
            k.user_interruptions += 1;
        }
        if self.trace.is_some() {
            match kind {
                EntryKind::Nmi => crate::trace::chrome_slice(
                    self,
                    c,
                    ctxtrack_trace::chrome::Cat::Nmi,
                    "nmi",
                    true,
                ),
                EntryKind::Exception => crate::trace::chrome_slice(
                    self,
                    c,
                    ctxtrack_trace::chrome::Cat::Exception,
                    path.name,
                    true,
                ),
                _ => {}
            }
        }
    }

    #[inline(never)]
    fn deliver_irq(&mut self, c: CpuId, v: Vector) {
        let cpu = &mut self.cpus[c];
        match v {
            // The timer fires once per programmed expiry; the handler re-arms it.
            Vector::LocalTimer => cpu.next_tick = NEVER,
            // The next device interrupt comes after a uniformly random gap (mean: the period).
            Vector::Device => {
                let p = self.cfg.irq_period_ns.unwrap_or(NEVER / 4);
                cpu.pending[3] = cpu.hw.now + 1 + self.rng.below(2 * p);
            }
            _ => {
                cpu.pending[v as usize] = NEVER;
                cpu.counters.ipis_received[v as usize] += 1;
            }
        }
        cpu.counters.irqs[v as usize] += 1;
        let path = self.design.irq;
        self.enter_kernel(c, EntryKind::Irq, Some(v), path);
    }

    #[inline(never)]
    fn deliver_nmi(&mut self, c: CpuId) {
        let cpu = &mut self.cpus[c];
        cpu.nmi_at = match self.cfg.nmi_period_ns {
            Some(p) => cpu.nmi_at + p,
            None => NEVER,
        };
        cpu.counters.nmis += 1;
        let path = self.design.nmi;
        self.enter_kernel(c, EntryKind::Nmi, None, path);
    }

    /// The current user op's compute ended: do what comes next.
    #[inline(never)]
    fn user_op_done(&mut self, c: CpuId) {
        let cur = self.cpus[c].current;
        loop {
            match self.tasks[cur].then {
                Then::Syscall(s) => {
                    let task = &mut self.tasks[cur];
                    task.cur_syscall = Some(s);
                    task.syscalls += 1;
                    self.cpus[c].counters.syscalls += 1;
                    let path = self.design.syscall;
                    self.enter_kernel(c, EntryKind::Syscall, None, path);
                    return;
                }
                Then::Fault => {
                    self.cpus[c].counters.exceptions += 1;
                    let path = self.design.exception;
                    self.enter_kernel(c, EntryKind::Exception, None, path);
                    return;
                }
                Then::Mark(mk) => {
                    let now = self.cpus[c].hw.now;
                    match mk {
                        Mark::Start => self.mark_start_ns = Some(now),
                        Mark::Stop => self.mark_stop_ns = Some(now),
                    }
                    self.next_user_op(c);
                }
                Then::Continue => self.next_user_op(c),
            }
            if self.tasks[cur].user_left_ns > 0 {
                return;
            }
        }
    }

    /// Asks the program of `current` for its next op and starts its compute burst.
    pub(crate) fn next_user_op(&mut self, c: CpuId) {
        let cpu = &mut self.cpus[c];
        let task = &mut self.tasks[cpu.current];
        let ret = task.last_ret.take();
        let op = task.prog.next(ret);
        // User code never takes exactly the same time twice (caches, branch predictors): ±10 %
        // from the seeded PRNG, so different seeds give different schedules.
        let ns = if op.compute_ns > 0 && op.compute_ns < 1_000_000_000 {
            op.compute_ns * (90 + self.rng.below(21)) / 100
        } else {
            op.compute_ns
        };
        task.user_left_ns = ns;
        task.then = op.then;
        cpu.user_since = cpu.hw.now;
        cpu.user_until = cpu.hw.now.saturating_add(ns);
    }

    /// Executes the next step of `current` on CPU `c`. Branch steps on the way are evaluated
    /// inline: they are decisions, not instruction boundaries where an event could land.
    fn exec_step(&mut self, c: CpuId) {
        let cpu = &self.cpus[c];
        let t0 = cpu.current;
        if cpu.hw.flush_pending != 0
            && usize::from(cpu.hw.flush_depth) == self.tasks[t0].entries.len()
        {
            return self.ct_work_flush_step(c, t0);
        }
        // Decisions between two steps are bounded: a design whose loop never reaches a step
        // would spin here forever.
        let mut decisions = 0u32;
        let (path, pc, depth, step, kind) = loop {
            let depth = self.tasks[t0].frames.len() - 1;
            let Frame { path, pc, kind } = self.tasks[t0].frames[depth];
            let step = &path.steps[pc as usize];
            if step.kind != StepKind::Branch {
                break (path, pc, depth, step, kind);
            }
            let mut k = K::new(self, c);
            let flow = step.run.call(&mut k);
            decisions += 1;
            if decisions > MAX_DECISIONS {
                self.decision_limit(c, path);
                return;
            }
            let f = &mut self.tasks[t0].frames[depth];
            match flow {
                Flow::Next => f.pc = pc + 1,
                Flow::Jump(i) => f.pc = i,
                Flow::Return => {
                    self.tasks[t0].frames.pop();
                }
                // A branch may call a helper path (a C function call that is not itself an
                // instruction boundary of interest).
                Flow::Call(p) => {
                    f.pc = pc + 1;
                    if !self.push_frame(c, t0, Frame::new(p, kind)) {
                        return;
                    }
                }
                other => unreachable!(
                    "branch step {:?} in {} returned {other:?}",
                    step.name, path.name
                ),
            }
        };
        self.tasks[t0].frames[depth].pc = pc + 1;
        crate::monitor::before_step(self, c, path, step);
        if self.end.is_some() {
            return;
        }
        let cpu = &self.cpus[c];
        let flushes_before = cpu.hw.work_flushes;
        let vtime_before = cpu.pcpu.local.stats.vtime_hooks;
        let warn_before = cpu.pcpu.local.warn.count;
        // What the trace reports against (transitions made, RCU and nesting before the step).
        let trace_before = self.trace.is_some().then(|| {
            let ct = &cpu.pcpu.ct;
            (
                cpu.pcpu.local.stats.transitions,
                (ct.rcu_is_watching(), ct.nesting(), ct.nmi_nesting()),
            )
        });
        let mut k = K::new(self, c);
        let flow = step.run.call(&mut k);
        let extra = k.extra_cycles;
        let then_call = k.then_call;

        // Control flow applies to the task that ran the step, even if it was switched out.
        let mut leave: Option<Flow> = None;
        match flow {
            Flow::Next => {}
            Flow::Jump(i) => self.tasks[t0].frames[depth].pc = i,
            Flow::Retry => self.tasks[t0].frames[depth].pc = pc,
            Flow::Call(p) => {
                if !self.push_frame(c, t0, Frame::new(p, kind)) {
                    return;
                }
            }
            Flow::Return => {
                self.tasks[t0].frames.pop();
            }
            Flow::Halt => {
                self.cpus[c].hw.irqs_on = true;
                leave = Some(Flow::Halt);
            }
            Flow::ReturnToUser | Flow::ReturnToKernel => leave = Some(flow),
        }
        // A primitive's kernel call runs right after the step, before whatever the step's own
        // flow continues with (pushed last, it runs first). A step that also leaves the kernel
        // (`handle_irq(regs), iretq()` in one statement) has nowhere to run it: the model cannot
        // say what Linux would do, so the run ends with `model_limit` naming the step, never
        // with a reader left open or a softirq silently dropped.
        if let Some(p) = then_call {
            if leave.is_some() {
                let what = format!(
                    "step `{}` calls {} and leaves the kernel in the same step: split the statement",
                    step.name, p.name
                );
                self.monitor.fail_limit(c, &what, &mut self.end);
                return;
            }
            if !self.push_frame(c, t0, Frame::new(p, kind)) {
                return;
            }
        }

        // Price the step: base + primitives the core counted + bodies the kernel reported.
        let cpu = &mut self.cpus[c];
        if cpu.hw.work_flushes != flushes_before {
            // The step made RCU watch and read deferred work: this context flushes it next (an
            // inner context's flush covers an outer one's pending bits).
            cpu.hw.flush_depth = self.tasks[t0].entries.len() as u16;
        }
        let st = &cpu.pcpu.local.stats;
        // The core weighs each primitive with its price as it counts it (weights set in new()).
        let ct_cycles = st.weighted - cpu.priced_cycles;
        cpu.priced_cycles = st.weighted;
        let cycles = self.base_cost[step.cost as usize] + ct_cycles + extra;
        let kind = kind as usize;
        if step.category == Category::Entry {
            cpu.counters.entry_cycles[kind] += cycles - extra;
            cpu.counters.ct_cycles[kind] += ct_cycles;
        }
        let start = Self::spend_step(cpu, &mut self.tasks[t0], self.ns_per_cycle_fp, cycles);
        self.steps += 1;

        if cpu.hw.kicks != 0 {
            let kicks = std::mem::take(&mut cpu.hw.kicks);
            for target in 0..self.cpus.len() {
                if kicks & (1 << target) != 0 {
                    crate::kernel::send_ipi(self, c, target, Vector::IrqWork);
                }
            }
        }
        if let Some((transitions, ct_before)) = trace_before {
            crate::trace::transitions(self, c, t0, &transitions, start, ct_before);
        }
        if self.monitor.record_history {
            self.record_step(c, t0, start, path.name, step.name);
        }
        if self.monitor.enabled || self.cpus[c].pcpu.local.warn.count != warn_before {
            crate::monitor::after_step(self, c, vtime_before, warn_before);
        }
        if let Some(l) = leave {
            self.leave_kernel(c, t0, l);
        }
    }

    /// Runs `cycles` of a step on `cpu` for `task`: the clock advances (ns = cycles / GHz in
    /// 32.32 fixed point at `ns_per_cycle_fp`; the fraction carries over to the next step) and
    /// the time counts as the task's system time, or idle time for an idle task. Returns when
    /// the step started. (The caller counts the step in `Machine::steps`.)
    #[inline(always)]
    fn spend_step(cpu: &mut Cpu, task: &mut Task, ns_per_cycle_fp: u64, cycles: u64) -> u64 {
        cpu.counters.kernel_cycles += cycles;
        cpu.counters.steps += 1;
        let total = cycles as u128 * ns_per_cycle_fp as u128 + cpu.cycle_rem as u128;
        let dt = (total >> 32) as u64;
        cpu.cycle_rem = (total & 0xffff_ffff) as u64;
        let start = cpu.hw.now;
        cpu.hw.now += dt;
        if task.is_idle {
            cpu.times.idle_ns += dt;
        } else {
            cpu.times.sys_ns += dt;
            task.sys_ns += dt;
        }
        start
    }

    /// Remembers a step CPU `c` ran (for violation reports), with the context it left.
    fn record_step(
        &mut self,
        c: CpuId,
        t0: TaskId,
        start: u64,
        path: &'static str,
        step: &'static str,
    ) {
        let cpu = &mut self.cpus[c];
        let ct = &cpu.pcpu.ct;
        let entry = self.tasks[t0].entries.last().map_or(0, |e| e.seq);
        cpu.history.push(HistEntry {
            entry,
            time_ns: start,
            pid: self.tasks[t0].pid,
            path,
            step,
            ct_state: ct.ct_state_bits(),
            irqs_on: cpu.hw.irqs_on,
            watching: ct.rcu_is_watching(),
        });
    }

    /// `ct_work_flush()` → `arch_context_tracking_work()`: the instruction after the entry's fully
    /// ordered add, an instruction boundary of its own (an NMI may come first). Priced as glue.
    #[cold]
    #[inline(never)]
    fn ct_work_flush_step(&mut self, c: CpuId, t0: TaskId) {
        let hw = &mut self.cpus[c].hw;
        hw.owed &= !hw.flush_pending;
        hw.flush_pending = 0;
        hw.flush_depth = 0;
        let glue = self.base_cost[crate::cost::CostKey::Glue as usize];
        let cpu = &mut self.cpus[c];
        let start = Self::spend_step(cpu, &mut self.tasks[t0], self.ns_per_cycle_fp, glue);
        self.steps += 1;
        if self.monitor.record_history {
            self.record_step(c, t0, start, "ct_kernel_enter_state", "ct_work_flush");
        }
    }

    /// A design looped through [`MAX_DECISIONS`] decisions without reaching a step.
    #[cold]
    #[inline(never)]
    fn decision_limit(&mut self, c: CpuId, path: &'static crate::design::Path) {
        let what = format!(
            "{MAX_DECISIONS} decisions in a row without a step (in {}): the design loops without an instruction boundary",
            path.name
        );
        self.monitor.fail_limit(c, &what, &mut self.end);
    }

    /// Ends an entry: back to user mode, to the interrupted kernel context, or halt.
    #[inline(never)]
    fn leave_kernel(&mut self, c: CpuId, t0: TaskId, how: Flow) {
        match how {
            Flow::Halt => {
                crate::monitor::on_halt(self, c);
                self.cpus[c].mode = Mode::Halted;
            }
            Flow::ReturnToUser | Flow::ReturnToKernel => {
                let task = &mut self.tasks[t0];
                let e = task.entries.pop().expect("entry to leave");
                task.frames.truncate(e.base as usize);
                if self.trace.is_some() {
                    use ctxtrack_trace::chrome::Cat;
                    match e.kind {
                        EntryKind::Nmi => crate::trace::chrome_slice(self, c, Cat::Nmi, "", false),
                        EntryKind::Exception => {
                            crate::trace::chrome_slice(self, c, Cat::Exception, "", false)
                        }
                        _ => {}
                    }
                }
                self.cpus[c].counters.entries[e.kind as usize] += 1;
                if let Some(saved) = e.saved {
                    crate::monitor::on_entry_exit(self, c, &saved, how == Flow::ReturnToUser);
                }
                if how == Flow::ReturnToUser {
                    crate::monitor::on_return_to_user(self, c, t0, e.kind);
                    let cpu = &mut self.cpus[c];
                    cpu.hw.irqs_on = true;
                    cpu.mode = Mode::User;
                    cpu.user_since = cpu.hw.now;
                    // The fault the program asked for is done (next op); an asynchronous one
                    // (a breakpoint, an injected fault) resumes the interrupted burst.
                    let asked =
                        e.kind == EntryKind::Exception && self.tasks[t0].then == Then::Fault;
                    match e.kind {
                        EntryKind::Syscall | EntryKind::Fork => self.next_user_op(c),
                        EntryKind::Exception if asked => self.next_user_op(c),
                        _ => {
                            let left = self.tasks[t0].user_left_ns;
                            let cpu = &mut self.cpus[c];
                            cpu.user_until = cpu.hw.now.saturating_add(left);
                        }
                    }
                } else {
                    let cpu = &mut self.cpus[c];
                    cpu.hw.irqs_on = e.regs.irqs_on;
                    cpu.mode = Mode::Kernel;
                }
            }
            _ => unreachable!("leave_kernel called with {how:?}"),
        }
    }
}

fn cpu_entry_seq_bump(cpu: &mut Cpu) {
    cpu.entry_seq = cpu.entry_seq.wrapping_add(1);
}

fn cfg_nmi_first(cfg: &Config, c: CpuId) -> u64 {
    match cfg.nmi_period_ns {
        // Spread NMIs over the period so CPUs do not all take them at once.
        Some(p) => p + p * c as u64 / cfg.cpus.max(1) as u64,
        None => NEVER,
    }
}

/// The CPUs ordered by next-event time, ties to the lower id: what the run loop needs is the
/// earliest CPU and the runner-up, and after the earliest runs only its own time has moved.
///
/// Each entry is `(min(time, LIMIT) << 6) | cpu` (at most 64 CPUs), so entries are unique and
/// compare as (time, id) in one instruction; exact times stay in [`Machine::next_at`]. Times at
/// or past `LIMIT` (2^58 ns, nine years) compare by id only.
struct EventOrder {
    keys: Vec<u64>,
}

impl EventOrder {
    const LIMIT: u64 = (1 << 58) - 1;

    fn key(c: usize, t: u64) -> u64 {
        (t.min(Self::LIMIT) << 6) | c as u64
    }

    /// Sorts all CPUs from their next-event times.
    fn new(next_at: &[u64]) -> EventOrder {
        debug_assert!(next_at.len() <= 64);
        let mut keys: Vec<u64> = next_at
            .iter()
            .enumerate()
            .map(|(c, &t)| Self::key(c, t))
            .collect();
        keys.sort_unstable();
        EventOrder { keys }
    }

    /// The earliest CPU and the runner-up (if there are two CPUs).
    #[inline]
    fn first_two(&self) -> (usize, Option<usize>) {
        let c = (self.keys[0] & 63) as usize;
        (c, self.keys.get(1).map(|k| (k & 63) as usize))
    }

    /// The earliest CPU `c` now has next-event time `t`: move it to its place.
    #[inline]
    fn reinsert_first(&mut self, c: usize, t: u64) {
        let k = Self::key(c, t);
        debug_assert_eq!(self.keys[0] & 63, c as u64);
        // Branch-free count of the entries that stay before it.
        let p = self.keys[1..]
            .iter()
            .map(|&o| (o < k) as usize)
            .sum::<usize>();
        // Shift the first `p` of the others down by one, without a call to memmove for a
        // handful of words.
        for i in 0..self.keys.len() - 1 {
            let next = self.keys[i + 1];
            self.keys[i] = if i < p { next } else { self.keys[i] };
        }
        self.keys[p] = k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the order replaces: a linear scan for the earliest CPU (ties to the lower id) and
    /// the runner-up's time.
    fn scan(at: &[u64]) -> (usize, u64) {
        let (mut best, mut bc, mut second) = (NEVER, 0, NEVER);
        for (c, &t) in at.iter().enumerate() {
            if t < best {
                second = best;
                best = t;
                bc = c;
            } else {
                second = second.min(t);
            }
        }
        (bc, second)
    }

    #[test]
    fn event_order_agrees_with_a_linear_scan() {
        let mut rng = Xoshiro256::seed(11);
        for n in [1, 2, 3, 8, 13, 64] {
            let mut at: Vec<u64> = (0..n).map(|_| rng.below(50)).collect();
            let mut order = EventOrder::new(&at);
            for _ in 0..5000 {
                let (bc, second) = order.first_two();
                let want = scan(&at);
                let second = second.map_or(NEVER, |c| at[c]);
                if at[bc] != NEVER {
                    assert_eq!((bc, second), want, "n={n} at={at:?}");
                }
                // The earliest CPU runs and moves on (few values: many ties), or never again.
                let t = match rng.below(20) {
                    0 => NEVER,
                    _ => at[bc].min(NEVER - 100) + rng.below(30),
                };
                at[bc] = t;
                order.reinsert_first(bc, t);
                if rng.below(50) == 0 {
                    // An IPI moved another CPU's event: the machine rebuilds the order.
                    let c = rng.below(n as u64) as usize;
                    at[c] = rng.below(100);
                    order = EventOrder::new(&at);
                }
            }
        }
    }
}
