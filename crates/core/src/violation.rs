//! Misuse detection. Linux warns (`CT_WARN_ON`, `WARN_ON_ONCE`, `RCU_LOCKDEP_WARN`); the core
//! records a typed [`Violation`] in a per-CPU [`WarnLog`] instead, so the caller (simulator,
//! checker, test kernel) decides whether to stop, count or panic. Never a panic, never silence.
//!
//! The checks that Linux compiles only under `CONFIG_RCU_EQS_DEBUG` / `CONFIG_PROVE_RCU` are on
//! by default ([`crate::arch::Arch::RCU_EQS_DEBUG`]): the simulator, the checker and the test
//! kernels keep them, a model exists to catch exactly those bugs; a production build (the
//! bare-metal kernel's benchmark image) turns them off as Debian's kernel does.

/// One detected misuse, named after the Linux check it mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Violation {
    /// `__ct_user_enter`: `lockdep_assert_irqs_disabled()` failed.
    UserEnterIrqsEnabled,
    /// `__ct_user_enter`: `WARN_ON_ONCE(!current->mm)`, a kernel thread entering user mode.
    UserEnterKthread,
    /// `context_tracking_recursion_enter`: `WARN_ONCE(recursion < 1)`.
    InvalidRecursion(i32),
    /// `ct_kernel_exit`: `WARN_ON_ONCE(ct_nmi_nesting() != CT_NESTING_IRQ_NONIDLE)`.
    KernelExitNmiNesting,
    /// `ct_kernel_exit` (EQS_DEBUG): `WARN_ON_ONCE(ct_nesting() == 0)`, entering an EQS twice.
    KernelExitNestingZero,
    /// `ct_kernel_exit`: `lockdep_assert_irqs_disabled()`.
    KernelExitIrqsEnabled,
    /// `ct_kernel_exit` (EQS_DEBUG): idle EQS entered by a task that is not the idle task.
    KernelExitNotIdleTask,
    /// `ct_kernel_exit_state` (EQS_DEBUG): still watching after the increment.
    ExitStateStillWatching,
    /// `ct_kernel_enter` (EQS_DEBUG): `!raw_irqs_disabled()`.
    KernelEnterIrqsEnabled,
    /// `ct_kernel_enter` (EQS_DEBUG): `oldval < 0`, nesting went negative.
    NestingNegative,
    /// `ct_kernel_enter_state` (EQS_DEBUG): not watching after the increment.
    EnterStateNotWatching,
    /// `ct_kernel_enter`: `WARN_ON_ONCE(ct_nmi_nesting())` before the reset.
    KernelEnterNmiNesting,
    /// `ct_nmi_enter`: `WARN_ON_ONCE(ct_nmi_nesting() < 0)`.
    NmiNestingNegative,
    /// `ct_nmi_exit`: `WARN_ON_ONCE(ct_nmi_nesting() <= 0)`.
    NmiExitNestingNotPositive,
    /// `ct_nmi_exit`: `WARN_ON_ONCE(!rcu_is_watching_curr_cpu())`.
    NmiExitNotWatching,
    /// `ct_irq_enter`/`ct_irq_exit`: `lockdep_assert_irqs_disabled()`.
    IrqIrqsEnabled,
    /// `rcu_momentary_eqs`: `WARN_ON_ONCE(!(seq & CT_RCU_WATCHING))`.
    MomentaryEqsNotWatching,
    /// `__rcu_irq_enter_check_tick`: "Illegal rcu_irq_enter_check_tick() from extended quiescent state".
    CheckTickFromEqs,
    /// `enter_from_user_mode`: `CT_WARN_ON(__ct_state() != CT_STATE_USER)`.
    EnterFromUserNotUser,
    /// `syscall_exit_to_user_mode_work`: `CT_WARN_ON(ct_state() != CT_STATE_KERNEL)`.
    SyscallExitNotKernel,
    /// `schedule_debug`: `SCHED_WARN_ON(ct_state() == CT_STATE_USER)`.
    ScheduleInUser,
    /// `rcu_irq_exit_check_preempt`: nesting counter underflow/zero or bad `nmi_nesting`.
    CheckPreemptBadNesting,
    /// `get_vtime_delta`: `WARN_ON_ONCE(vtime->state == VTIME_INACTIVE)`.
    VtimeInactive,
}

impl Violation {
    /// Stable identifier used in reports and JSON (`snake_case`).
    pub const fn name(&self) -> &'static str {
        match self {
            Violation::UserEnterIrqsEnabled => "ct_user_enter_irqs_enabled",
            Violation::UserEnterKthread => "ct_user_enter_kthread",
            Violation::InvalidRecursion(_) => "ct_invalid_recursion",
            Violation::KernelExitNmiNesting => "ct_kernel_exit_nmi_nesting",
            Violation::KernelExitNestingZero => "ct_kernel_exit_nesting_zero",
            Violation::KernelExitIrqsEnabled => "ct_kernel_exit_irqs_enabled",
            Violation::KernelExitNotIdleTask => "ct_kernel_exit_not_idle_task",
            Violation::ExitStateStillWatching => "ct_exit_state_still_watching",
            Violation::KernelEnterIrqsEnabled => "ct_kernel_enter_irqs_enabled",
            Violation::NestingNegative => "ct_nesting_negative",
            Violation::EnterStateNotWatching => "ct_enter_state_not_watching",
            Violation::KernelEnterNmiNesting => "ct_kernel_enter_nmi_nesting",
            Violation::NmiNestingNegative => "ct_nmi_nesting_negative",
            Violation::NmiExitNestingNotPositive => "ct_nmi_exit_nesting_not_positive",
            Violation::NmiExitNotWatching => "ct_nmi_exit_not_watching",
            Violation::IrqIrqsEnabled => "ct_irq_irqs_enabled",
            Violation::MomentaryEqsNotWatching => "rcu_momentary_eqs_not_watching",
            Violation::CheckTickFromEqs => "rcu_irq_enter_check_tick_from_eqs",
            Violation::EnterFromUserNotUser => "enter_from_user_mode_not_user",
            Violation::SyscallExitNotKernel => "syscall_exit_not_kernel",
            Violation::ScheduleInUser => "schedule_in_user",
            Violation::CheckPreemptBadNesting => "rcu_irq_exit_check_preempt",
            Violation::VtimeInactive => "vtime_inactive",
        }
    }

    /// The Linux function whose check this is.
    pub const fn linux_site(&self) -> &'static str {
        match self {
            Violation::UserEnterIrqsEnabled | Violation::UserEnterKthread => "__ct_user_enter",
            Violation::InvalidRecursion(_) => "context_tracking_recursion_enter",
            Violation::KernelExitNmiNesting
            | Violation::KernelExitNestingZero
            | Violation::KernelExitIrqsEnabled
            | Violation::KernelExitNotIdleTask => "ct_kernel_exit",
            Violation::ExitStateStillWatching => "ct_kernel_exit_state",
            Violation::KernelEnterIrqsEnabled
            | Violation::NestingNegative
            | Violation::KernelEnterNmiNesting => "ct_kernel_enter",
            Violation::EnterStateNotWatching => "ct_kernel_enter_state",
            Violation::NmiNestingNegative => "ct_nmi_enter",
            Violation::NmiExitNestingNotPositive | Violation::NmiExitNotWatching => "ct_nmi_exit",
            Violation::IrqIrqsEnabled => "ct_irq_enter/ct_irq_exit",
            Violation::MomentaryEqsNotWatching => "rcu_momentary_eqs",
            Violation::CheckTickFromEqs => "__rcu_irq_enter_check_tick",
            Violation::EnterFromUserNotUser => "enter_from_user_mode",
            Violation::SyscallExitNotKernel => "syscall_exit_to_user_mode_work",
            Violation::ScheduleInUser => "schedule_debug",
            Violation::CheckPreemptBadNesting => "rcu_irq_exit_check_preempt",
            Violation::VtimeInactive => "get_vtime_delta",
        }
    }
}

/// Per-CPU record of violations, the model's `dmesg`. Fixed size: it keeps the first and the last
/// violation and a count, never allocates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WarnLog {
    /// Number of violations recorded since the CPU started.
    pub count: u32,
    /// The first violation (the interesting one: later ones are often consequences).
    pub first: Option<Violation>,
    /// The most recent violation.
    pub last: Option<Violation>,
}

impl WarnLog {
    /// Records `v` (Linux: the `WARN` fires).
    #[inline]
    pub fn warn(&mut self, v: Violation) {
        self.count = self.count.saturating_add(1);
        if self.first.is_none() {
            self.first = Some(v);
        }
        self.last = Some(v);
    }

    /// `WARN_ON(cond)`: records `v` when `cond` holds; returns `cond` like the C macro.
    #[inline]
    pub fn warn_on(&mut self, cond: bool, v: Violation) -> bool {
        if cond {
            self.warn(v);
        }
        cond
    }
}
