//! The context-tracking half of Linux 6.x generic entry (`kernel/entry/common.c`,
//! `include/linux/irq-entry-common.h`) as straight-line functions, for drivers that run on real
//! CPUs (the host-thread backend, the bare-metal kernel).
//!
//! The simulator runs the same paths as interruptible step lists (the design file
//! `designs/generic-entry.c`, loaded by `ctxtrack-sim`), so the checker can inject events between any two steps; a real CPU
//! cannot be stopped between steps, so here each function is one call. The two sources agree:
//! `ctxtrack-sim`'s `lab::core_equivalence` tests run both from the same CPU state for every
//! entry kind and require the same core states, in the same order, at the same end. What is left to the driver
//! is what Linux leaves to the arch and scheduler code: the syscall body, `irq_enter_rcu()` and the
//! handler, and `exit_to_user_mode_loop()`'s work (scheduling switches `current`, hence the [`Ct`]
//! borrow, so the loop cannot live inside one).
//!
//! A syscall is:
//! ```text
//! enter_from_user_mode(ct); local_irq_enable(); <body>; local_irq_disable();
//! <exit_to_user_mode_loop, in the driver>; exit_to_user_mode(ct); sysret
//! ```
//! and an interrupt `let st = irqentry_enter(ct, user); <handler>; irqentry_exit(ct, user, st)`.

use crate::arch::Arch;
use crate::context_tracking::Ct;
use crate::state::CtState;
use crate::violation::Violation;

/// `irqentry_state_t`: what `irqentry_exit()` must undo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqentryState {
    /// `exit_rcu`: the entry made RCU watch (`ct_irq_enter()`), so the exit must call
    /// `ct_irq_exit()`.
    pub exit_rcu: bool,
}

/// `enter_from_user_mode(regs)` (noinstr, IRQs off): user → kernel.
#[inline(always)]
pub fn enter_from_user_mode<A: Arch>(ct: &mut Ct<'_, A>) {
    // arch_enter_from_user_mode(), lockdep_hardirqs_off(): nothing to model.
    let not_user = ct.__ct_state() != CtState::User;
    ct.ct_warn_on(not_user, Violation::EnterFromUserNotUser);
    ct.user_exit_irqoff();
}

/// `exit_to_user_mode()` (noinstr, IRQs off): the last thing before `sysret`/`iret` to user, after
/// the driver has run `exit_to_user_mode_loop()` until no work is left.
#[inline(always)]
pub fn exit_to_user_mode<A: Arch>(ct: &mut Ct<'_, A>) {
    ct.user_enter_irqoff();
}

/// `irqentry_enter(regs)`. `user_mode` is `user_mode(regs)`. From user: `enter_from_user_mode()`;
/// from the idle task: `ct_irq_enter()` unconditionally (x86's `arch_in_rcu_eqs()` is false);
/// otherwise RCU already watches and only `rcu_irq_enter_check_tick()` runs.
#[inline(always)]
pub fn irqentry_enter<A: Arch>(ct: &mut Ct<'_, A>, user_mode: bool) -> IrqentryState {
    if user_mode {
        enter_from_user_mode(ct);
        return IrqentryState::default();
    }
    if ct.arch.is_idle_task() {
        ct.ct_irq_enter();
        return IrqentryState { exit_rcu: true };
    }
    ct.rcu_irq_enter_check_tick();
    IrqentryState::default()
}

/// `irqentry_exit(regs, state)` for a return to kernel mode, or to user mode once the driver has
/// run the exit work. Returns whether `irqentry_exit_cond_resched()` may preempt (the driver
/// decides, with `need_resched()` and its preempt count): only when returning to kernel code that
/// had IRQs on and RCU watching before the IRQ.
#[inline(always)]
pub fn irqentry_exit<A: Arch>(
    ct: &mut Ct<'_, A>,
    user_mode: bool,
    regs_irqs_on: bool,
    state: IrqentryState,
) -> bool {
    if user_mode {
        exit_to_user_mode(ct);
        return false;
    }
    if state.exit_rcu {
        // From idle/EQS: no preemption, just leave RCU.
        ct.ct_irq_exit();
        return false;
    }
    if regs_irqs_on {
        ct.rcu_irq_exit_check_preempt();
        return true;
    }
    false
}

/// `irqentry_nmi_enter(regs)`: NMIs (and kernel-mode `#BP`/`#DB`) may hit anywhere, entry code
/// included, so they only make RCU watch.
#[inline(always)]
pub fn irqentry_nmi_enter<A: Arch>(ct: &mut Ct<'_, A>) {
    ct.ct_nmi_enter();
}

/// `irqentry_nmi_exit(regs, irq_state)`.
#[inline(always)]
pub fn irqentry_nmi_exit<A: Arch>(ct: &mut Ct<'_, A>) {
    ct.ct_nmi_exit();
}
