//! `linux-4.3`: x86-64 entry as in Linux 4.3, the code the seed's regression report is about
//! (`arch/x86/entry/entry_64.S`, `arch/x86/entry/common.c` v4.3, `kernel/context_tracking.c`).
//!
//! - Every IRQ and exception from user mode calls `enter_from_user_mode()` from the asm entry,
//!   unconditionally: the call happens even while context tracking is inactive; the static key is
//!   tested only inside (`user_exit()`), which is "breaking the static key optimizations".
//! - Then `irq_enter()` does `rcu_irq_enter()` and vtime IRQ accounting again, and `irq_exit()`
//!   undoes both: RCU and vtime are reached twice per IRQ from user on a nohz_full CPU.
//! - Exceptions also run `exception_enter()`/`exception_exit()` (kept in `do_page_fault` until
//!   2020) with the saved previous state and irq save/restore inside context tracking.
//! - The native 64-bit syscall fast path does no context tracking; `TIF_NOHZ` (set on every task
//!   once the key is on) forces the slow path, where `syscall_trace_enter_phase1()` calls
//!   `enter_from_user_mode()` *after* the asm enabled IRQs: the window Andy Lutomirski called "the
//!   single remaining exception".
//! - Every return to user goes through `prepare_exit_to_usermode()`: the work loop with IRQs
//!   enabled per item, then `user_enter()` (irq-saving form).
//!
//! Choice where the seed is silent: `ret_from_fork` returns through `syscall_return_slowpath()`
//! as 4.3 did; code before `noinstr` existed is modeled as `noinstr` glue (see `linux_4x`).

use super::{generic_entry, linux_4x, Design, Flow, Path, Step};
use crate::cost::CostKey as C;

/// The design.
pub static DESIGN: Design = Design {
    name: "linux-4.3",
    summary: "Linux 4.3 x86: enter_from_user_mode called unconditionally on IRQs/exceptions, RCU+vtime hooked twice",
    syscall: &SYSCALL,
    irq: &IRQ,
    exception: &EXCEPTION,
    nmi: &generic_entry::NMI,
    debug: &linux_4x::DEBUG_KERNEL,
    ret_from_fork: &RET_FROM_FORK,
    idle: &generic_entry::IDLE,
    exit_to_usermode: None,
};

use linux_4x::enter_from_user_mode;

/// `entry_SYSCALL_64`: the 4.3 entry (fast path or `tracesys`), then the slow return.
pub static SYSCALL: Path = Path {
    name: "entry_SYSCALL_64",
    steps: &[
        Step::branch("entry_SYSCALL_64 ... call *sys_call_table", |_| {
            Flow::Call(&linux_4x::SYSCALL_ENTRY)
        }),
        Step::branch("fast path without work?", |k| {
            if k.locals().scratch == linux_4x::FAST_SYSRET {
                Flow::Goto("USERGS_SYSRET64")
            } else {
                Flow::Next
            }
        }),
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

/// 4.3 `prepare_exit_to_usermode()`: entered with IRQs off; the loop enables IRQs for the work;
/// ends with `user_enter()`.
pub static PREPARE_EXIT_TO_USERMODE: Path = Path {
    name: "prepare_exit_to_usermode",
    steps: &[
        Step::branch("cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS", |k| {
            if linux_4x::exit_work(k) {
                Flow::Next
            } else {
                Flow::Goto("user_enter")
            }
        }),
        Step::noinstr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Call(&linux_4x::LOOP_WORK)
        }),
        Step::noinstr("local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Goto("cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS")
        }),
        Step::noinstr("user_enter", C::Glue, |k| {
            k.ct().user_enter();
            Flow::Return
        }),
    ],
};

/// The `interrupt` macro → `do_IRQ` → `ret_from_intr`.
pub static IRQ: Path = Path {
    name: "interrupt",
    steps: &[
        Step::noinstr("interrupt (hw delivery)", C::IrqDelivery, |_| Flow::Next),
        Step::branch("testb $3, CS(%rsp)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("irq_enter")
            }
        }),
        Step::noinstr("SWAPGS; call enter_from_user_mode", C::Glue, |k| {
            enter_from_user_mode(k);
            Flow::Next
        }),
        Step::branch("irq_enter", |_| Flow::Call(&linux_4x::IRQ_ENTER)),
        linux_4x::HANDLER,
        Step::branch("irq_exit", |_| Flow::Call(&linux_4x::IRQ_EXIT)),
        Step::branch("ret_from_intr: testb $3, CS(%rsp)", |k| {
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

/// `idtentry page_fault` → `error_entry` → `do_page_fault` → `error_exit`.
pub static EXCEPTION: Path = Path {
    name: "page_fault",
    steps: &[
        Step::noinstr("idtentry (hw exception)", C::ExceptionDelivery, |_| {
            Flow::Next
        }),
        Step::branch("error_entry: testb $3, CS(%rsp)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("do_page_fault: exception_enter")
            }
        }),
        Step::noinstr(
            "error_entry: SWAPGS; call enter_from_user_mode",
            C::Glue,
            |k| {
                enter_from_user_mode(k);
                Flow::Next
            },
        ),
        Step::noinstr("do_page_fault: exception_enter", C::Glue, |k| {
            let prev = k.ct().exception_enter();
            k.locals().prev_ctx = prev;
            if k.regs_irqs_on() {
                k.local_irq_enable();
            }
            Flow::Next
        }),
        Step::work("handle_mm_fault", C::PageFault, |k| {
            k.handle_exception();
            Flow::Next
        }),
        Step::noinstr("exception_exit(prev_state)", C::Glue, |k| {
            k.local_irq_disable();
            let prev = k.locals().prev_ctx;
            k.ct().exception_exit(prev);
            Flow::Next
        }),
        Step::branch("error_exit: testb $3, CS(%rsp)", |k| {
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
