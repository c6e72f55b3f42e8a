//! One task: scheduler state, its kernel stack of entries and path activations, its program,
//! vtime and RCU read-side state.

use super::*;
use crate::design::Path;
use crate::machine::program::{Program, Then};
use ctxtrack_core::{CtState, TaskVtime};
use smallvec::SmallVec;

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
    pub cur_syscall: Option<crate::machine::program::Syscall>,
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
    /// grace period with a higher number must wait for it ([`crate::os::rcu::reader_predates`]).
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
