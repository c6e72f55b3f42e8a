//! Counters the core keeps per CPU. Primitive operations ([`Prim`]) are what a cost model prices;
//! the other counters are what the thread argued about (how many context-tracking, RCU and vtime
//! calls a path makes, and how many happen while context tracking is inactive).

/// A primitive operation whose cost a model can price. Counted where the core performs it.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prim {
    /// An out-of-line function call into context tracking (not an `__always_inline` wrapper).
    Call = 0,
    /// A static-branch test (`static_branch_unlikely`): a NOP or a jump.
    StaticBranch,
    /// A fully ordered atomic read-modify-write (`raw_atomic_add_return`, a `lock xadd`).
    AtomicRmw,
    /// An unordered atomic RMW (`raw_atomic_add`) used by inactive CPUs.
    AtomicPlain,
    /// `local_irq_save` + `local_irq_restore` (pushf/cli ... popf).
    IrqSaveRestore,
    /// One `sched_clock()` read.
    ClockRead,
    /// vtime bookkeeping: seqcount write section plus the accumulate/flush arithmetic.
    VtimeAccount,
    /// RCU bookkeeping around an EQS transition besides the atomic (nesting updates,
    /// `rcu_task_enter/exit`, `rcu_preempt_deferred_qs`, `rcu_irq_enter_check_tick`).
    RcuHook,
}

/// Number of [`Prim`] kinds.
pub const PRIM_COUNT: usize = 8;

impl Prim {
    /// All kinds, in index order.
    pub const ALL: [Prim; PRIM_COUNT] = [
        Prim::Call,
        Prim::StaticBranch,
        Prim::AtomicRmw,
        Prim::AtomicPlain,
        Prim::IrqSaveRestore,
        Prim::ClockRead,
        Prim::VtimeAccount,
        Prim::RcuHook,
    ];

    /// Stable `snake_case` name (cost-model keys, JSON).
    pub const fn name(self) -> &'static str {
        match self {
            Prim::Call => "call",
            Prim::StaticBranch => "static_branch",
            Prim::AtomicRmw => "atomic_rmw",
            Prim::AtomicPlain => "atomic_plain",
            Prim::IrqSaveRestore => "irq_save_restore",
            Prim::ClockRead => "clock_read",
            Prim::VtimeAccount => "vtime_account",
            Prim::RcuHook => "rcu_hook",
        }
    }
}

/// A context-tracking transition that actually changed the state word.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transition {
    /// KERNEL -> USER (`__ct_user_enter(CT_STATE_USER)`).
    UserEnter = 0,
    /// USER -> KERNEL.
    UserExit,
    /// KERNEL -> GUEST.
    GuestEnter,
    /// GUEST -> KERNEL.
    GuestExit,
    /// KERNEL -> IDLE (`ct_idle_enter`).
    IdleEnter,
    /// IDLE -> KERNEL.
    IdleExit,
    /// IRQ/NMI entry that left an EQS (`ct_nmi_enter` with `incby == 1`).
    IrqEqsExit,
    /// IRQ/NMI exit that re-entered the EQS (`ct_nmi_exit` with `nmi_nesting == 1`).
    IrqEqsEnter,
}

/// Number of [`Transition`] kinds.
pub const TRANSITION_COUNT: usize = 8;

impl Transition {
    /// All kinds, in index order.
    pub const ALL: [Transition; TRANSITION_COUNT] = [
        Transition::UserEnter,
        Transition::UserExit,
        Transition::GuestEnter,
        Transition::GuestExit,
        Transition::IdleEnter,
        Transition::IdleExit,
        Transition::IrqEqsExit,
        Transition::IrqEqsEnter,
    ];

    /// Stable `snake_case` name.
    pub const fn name(self) -> &'static str {
        match self {
            Transition::UserEnter => "user_enter",
            Transition::UserExit => "user_exit",
            Transition::GuestEnter => "guest_enter",
            Transition::GuestExit => "guest_exit",
            Transition::IdleEnter => "idle_enter",
            Transition::IdleExit => "idle_exit",
            Transition::IrqEqsExit => "irq_eqs_exit",
            Transition::IrqEqsEnter => "irq_eqs_enter",
        }
    }
}

/// Per-CPU counters. Plain integers: only the owning CPU writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtStats {
    /// Primitive operations, indexed by [`Prim`].
    pub prims: [u64; PRIM_COUNT],
    /// Sum of `prims`, so a caller can tell cheaply whether anything happened.
    pub prims_total: u64,
    /// Weight of each primitive, set by the host (a cost model's cycles per primitive; zero
    /// unless set).
    pub weights: [u64; PRIM_COUNT],
    /// Sum of `weights[p]` over the primitives counted: a host prices the primitives a piece
    /// of code performed with one subtraction instead of a loop over every kind.
    pub weighted: u64,
    /// State-changing transitions, indexed by [`Transition`].
    pub transitions: [u64; TRANSITION_COUNT],
    /// Entries into context-tracking APIs (user/exception/irq/nmi/idle/guest), inline or not.
    pub ct_calls: u64,
    /// Out-of-line context-tracking calls made while the static key was off (wasted work).
    pub ct_calls_inactive: u64,
    /// RCU hook invocations (`ct_kernel_enter/exit`, `ct_nmi_enter/exit`, `rcu_irq_enter_check_tick`).
    pub rcu_hooks: u64,
    /// vtime hook invocations (`vtime_user_enter/exit`, `vtime_guest_*`, `vtime_task_switch`, ...).
    pub vtime_hooks: u64,
    /// Static-branch tests that were taken (key on).
    pub static_branch_taken: u64,
    /// Static-branch tests that fell through (key off).
    pub static_branch_not_taken: u64,
}

impl CtStats {
    /// Counts one primitive.
    #[inline(always)]
    pub fn prim(&mut self, p: Prim) {
        self.prims[p as usize] += 1;
        self.prims_total += 1;
        self.weighted += self.weights[p as usize];
    }

    /// Counts one static-branch test at a guarded call site, taken or not.
    #[inline(always)]
    pub fn static_branch(&mut self, taken: bool) {
        self.prim(Prim::StaticBranch);
        if taken {
            self.static_branch_taken += 1;
        } else {
            self.static_branch_not_taken += 1;
        }
    }

    /// Counts a transition.
    #[inline(always)]
    pub fn transition(&mut self, t: Transition) {
        self.transitions[t as usize] += 1;
    }

    /// Total state-changing transitions.
    pub fn transitions_total(&self) -> u64 {
        self.transitions.iter().sum()
    }

    /// Adds `other` into `self` (for machine-wide totals).
    pub fn add(&mut self, other: &CtStats) {
        for i in 0..PRIM_COUNT {
            self.prims[i] += other.prims[i];
        }
        self.prims_total += other.prims_total;
        self.weighted += other.weighted;
        for i in 0..TRANSITION_COUNT {
            self.transitions[i] += other.transitions[i];
        }
        self.ct_calls += other.ct_calls;
        self.ct_calls_inactive += other.ct_calls_inactive;
        self.rcu_hooks += other.rcu_hooks;
        self.vtime_hooks += other.vtime_hooks;
        self.static_branch_taken += other.static_branch_taken;
        self.static_branch_not_taken += other.static_branch_not_taken;
    }
}
