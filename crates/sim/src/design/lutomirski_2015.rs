//! `lutomirski-2015`: Andy Lutomirski's direction in the seed thread, as his x86 entry work of
//! late 2015 (Linux 4.4/4.5) implemented it:
//!
//! - Kernel code with IRQs on is always tracked as kernel: the 64-bit native syscall calls
//!   `enter_from_user_mode()` with IRQs still off, before enabling them ("x86/entry: Call
//!   enter_from_user_mode() with IRQs off").
//! - The entry decides from the saved registers (`user_mode(regs)`, CS privilege) whether it
//!   came from user mode; there is no `exception_enter()` anywhere.
//! - Context tracking is called without irq save/restore (`__ct_user_enter/exit`), and the call
//!   itself is skipped through the static key when tracking is inactive ("x86/entry/64: Bypass
//!   enter_from_user_mode on non-context-tracking boots").
//! - `irq_enter()`/`irq_exit()` are unchanged from 4.x, so an IRQ from user mode on a nohz_full
//!   CPU still reaches RCU and vtime twice: Frederic's objection, which only the later move of
//!   that work into generic entry code removed.
//!
//! Choice where the seed is silent: the loop is 4.4's `exit_to_usermode_loop()` (same flags and
//! order as 4.3's inline loop), followed by `user_enter_irqoff()`.

use super::{generic_entry, linux_4x, Design, Flow, Path, Step};
use crate::cost::CostKey as C;
use crate::kernel::{K, SYSCALL_BODY};
use ctxtrack_core::{CtState, Violation};

/// The design.
pub static DESIGN: Design = Design {
    name: "lutomirski-2015",
    summary: "Andy's direction: CT from pt_regs with IRQs off, no exception_enter, no irq save, static-key bypass",
    syscall: &SYSCALL,
    irq: &IRQ,
    exception: &EXCEPTION,
    nmi: &generic_entry::NMI,
    debug: &linux_4x::DEBUG_KERNEL,
    ret_from_fork: &RET_FROM_FORK,
    idle: &generic_entry::IDLE,
    exit_to_usermode: None,
};

/// `enter_from_user_mode()` behind a static jump (`CALL_enter_from_user_mode`), IRQs off.
fn enter_from_user_mode(k: &mut K) {
    let not_user = k.ct().ct_state().is_some_and(|s| s != CtState::User);
    k.ct().ct_warn_on(not_user, Violation::EnterFromUserNotUser);
    k.ct().user_exit_irqoff();
}

/// `prepare_exit_to_usermode()` (4.4): the loop, then `user_enter_irqoff()`.
pub static PREPARE_EXIT_TO_USERMODE: Path = Path {
    name: "prepare_exit_to_usermode",
    steps: &[
        Step::branch("cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS", |k| {
            if linux_4x::exit_work(k) {
                Flow::Next
            } else {
                Flow::Goto("user_enter_irqoff")
            }
        }),
        // exit_to_usermode_loop():
        Step::noinstr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Call(&linux_4x::LOOP_WORK)
        }),
        Step::noinstr("local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Goto("cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS")
        }),
        Step::noinstr("user_enter_irqoff", C::Glue, |k| {
            k.ct().user_enter_irqoff();
            Flow::Return
        }),
    ],
};

/// `entry_SYSCALL_64` → `do_syscall_64`-style C entry with context tracking before IRQs go on.
pub static SYSCALL: Path = Path {
    name: "entry_SYSCALL_64",
    steps: &[
        Step::noinstr("entry_SYSCALL_64", C::SyscallInsn, |_| Flow::Next),
        Step::noinstr("enter_from_user_mode", C::Glue, |k| {
            enter_from_user_mode(k);
            Flow::Next
        }),
        Step::noinstr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            k.trace_sys_enter();
            Flow::Next
        }),
        Step::branch("call *sys_call_table", |_| Flow::Call(&SYSCALL_BODY)),
        Step::noinstr("syscall_return_slowpath", C::Glue, |k| {
            linux_4x::syscall_return_slowpath(k);
            Flow::Call(&PREPARE_EXIT_TO_USERMODE)
        }),
        Step::noinstr("USERGS_SYSRET64", C::Sysret, |_| Flow::ReturnToUser),
    ],
};

/// `ret_from_fork` → `syscall_return_slowpath()`.
pub static RET_FROM_FORK: Path = Path {
    name: "ret_from_fork",
    steps: &[
        Step::noinstr("schedule_tail", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::noinstr("syscall_return_slowpath", C::Glue, |k| {
            linux_4x::syscall_return_slowpath(k);
            Flow::Call(&PREPARE_EXIT_TO_USERMODE)
        }),
        Step::noinstr("iretq", C::Iret, |_| Flow::ReturnToUser),
    ],
};

/// The `interrupt` macro with the static-key-gated `enter_from_user_mode`.
pub static IRQ: Path = Path {
    name: "interrupt",
    steps: &[
        Step::noinstr("interrupt (hw delivery)", C::IrqDelivery, |_| Flow::Next),
        Step::branch("user_mode(regs)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("irq_enter")
            }
        }),
        Step::noinstr("CALL_enter_from_user_mode", C::Glue, |k| {
            enter_from_user_mode(k);
            Flow::Next
        }),
        Step::branch("irq_enter", |_| Flow::Call(&linux_4x::IRQ_ENTER)),
        linux_4x::HANDLER,
        Step::branch("irq_exit", |_| Flow::Call(&linux_4x::IRQ_EXIT)),
        Step::branch("ret_from_intr: user_mode(regs)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("retint_kernel")
            }
        }),
        Step::branch("retint_user: prepare_exit_to_usermode", |_| {
            Flow::Call(&PREPARE_EXIT_TO_USERMODE)
        }),
        Step::noinstr("iretq (to user)", C::Iret, |_| Flow::ReturnToUser),
        linux_4x::RETINT_KERNEL,
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

/// `page_fault`: context tracking from `user_mode(regs)` only, no `exception_enter()`.
pub static EXCEPTION: Path = Path {
    name: "page_fault",
    steps: &[
        Step::noinstr("idtentry (hw exception)", C::ExceptionDelivery, |_| {
            Flow::Next
        }),
        Step::branch("user_mode(regs)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("do_page_fault")
            }
        }),
        Step::noinstr("CALL_enter_from_user_mode", C::Glue, |k| {
            enter_from_user_mode(k);
            Flow::Next
        }),
        Step::noinstr("do_page_fault", C::Glue, |k| {
            if k.regs_irqs_on() {
                k.local_irq_enable();
            }
            Flow::Next
        }),
        Step::work("handle_mm_fault", C::PageFault, |k| {
            k.handle_exception();
            Flow::Next
        }),
        Step::noinstr("local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::branch("error_exit: user_mode(regs)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("retint_kernel")
            }
        }),
        Step::branch("retint_user: prepare_exit_to_usermode", |_| {
            Flow::Call(&PREPARE_EXIT_TO_USERMODE)
        }),
        Step::noinstr("iretq (to user)", C::Iret, |_| Flow::ReturnToUser),
        linux_4x::RETINT_KERNEL,
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};
