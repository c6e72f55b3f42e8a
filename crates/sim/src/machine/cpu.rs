//! One CPU: its hardware as the core sees it ([`Hw`], the [`Arch`] implementation), what it is
//! doing, its pending events, counters and ground-truth times.

use super::*;
use crate::monitor::History;
use ctxtrack_core::arch::Arch;
use ctxtrack_core::PerCpu;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    /// patching, a kernel TLB flush) that could not be deferred ([`crate::os::ct_work`]).
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
    /// Wakeups of the rcuog kthread for callbacks queued on this CPU ([`crate::os::rcu_nocb`]).
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
    /// ([`crate::os::ct_work::setter_read`], [`crate::os::ct_work::setter_cmpxchg`]).
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
    /// Softirqs raised and running ([`crate::os::softirq`]).
    pub softirq: Softirq,
    /// `rdp->nocb_defer_wakeup`: a `call_rcu()` with IRQs off on this offloaded CPU left the
    /// wakeup of its rcuog kthread to a later flush ([`crate::os::rcu_nocb`]).
    pub nocb_defer_wakeup: bool,
    /// `ksoftirqd/N`, once a `__do_softirq()` first deferred to it.
    pub ksoftirqd: Option<TaskId>,
}

/// A CPU's softirq state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Softirq {
    /// `local_softirq_pending()`: raised vectors (bit = softirq number).
    pub pending: u16,
    /// Vectors the running `__do_softirq()` round took (what its handler steps run).
    pub running: u16,
    /// Rounds the running `__do_softirq()` may still restart.
    pub restarts: u8,
    /// The running `__do_softirq()` was called by `irq_exit_rcu()`, which ends with
    /// `tick_irq_exit()` (not by `ksoftirqd`).
    pub on_irq_exit: bool,
}
