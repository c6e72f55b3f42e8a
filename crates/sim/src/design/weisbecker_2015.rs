//! `weisbecker-2015`: the patch in the seed, "x86: Don't call context tracking APIs on IRQs"
//! (Frederic Weisbecker, October 2015), on top of Linux 4.3.
//!
//! - IRQs no longer call `enter_from_user_mode()`: `irq_enter()`/`irq_exit()` alone take care of
//!   RCU (`rcu_irq_enter/exit`) and vtime, so an IRQ from user mode runs with context tracking
//!   still saying USER.
//! - `prepare_exit_to_usermode()` runs the work loop; per iteration it enables IRQs, then
//!   `exception_enter()`, does the work, `exception_exit(prev_state)`, disables IRQs.
//! - Only `prepare_exit_to_usermode_track()` (the syscall return) calls `user_enter()`.
//! - Syscalls, exceptions and NMIs are as in 4.3.
//!
//! Choice where the seed is silent: exceptions from user mode still call
//! `enter_from_user_mode()` in `error_entry` (the patch only touched the `interrupt` macro), so
//! they return through the `_track` version, as "only those interested in calling user_enter()
//! actually call the _track version" says; `ret_from_fork` is a syscall return (`_track`).

use super::{generic_entry, linux_4x, Design, Flow, Path, Step};
use crate::cost::CostKey as C;
use crate::kernel::K;

/// The design.
pub static DESIGN: Design = Design {
    name: "weisbecker-2015",
    summary:
        "the seed's patch: no CT on IRQs; exception_enter/exit around each exit-loop iteration",
    syscall: &SYSCALL,
    irq: &IRQ,
    exception: &EXCEPTION,
    nmi: &generic_entry::NMI,
    debug: &linux_4x::DEBUG_KERNEL,
    ret_from_fork: &RET_FROM_FORK,
    idle: &generic_entry::IDLE,
    exit_to_usermode: Some(&PREPARE_EXIT_TO_USERMODE),
};

/// The running design's `prepare_exit_to_usermode()`: this one, or the loop of a variant that
/// reuses these entry paths (`weisbecker-hoisted`).
fn prepare_exit_to_usermode(k: &mut K) -> &'static Path {
    k.m.design
        .exit_to_usermode
        .unwrap_or(&PREPARE_EXIT_TO_USERMODE)
}

/// `entry_SYSCALL_64` (4.3 entry) → `syscall_return_slowpath()` → `_track`.
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
            Flow::Call(&PREPARE_EXIT_TO_USERMODE_TRACK)
        }),
        Step::noinstr("USERGS_SYSRET64", C::Sysret, |_| Flow::ReturnToUser),
    ],
};

/// `ret_from_fork` → `syscall_return_slowpath()` → `_track`.
pub static RET_FROM_FORK: Path = Path {
    name: "ret_from_fork",
    steps: &[
        Step::noinstr("schedule_tail", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::noinstr("syscall_return_slowpath", C::Glue, |k| {
            linux_4x::syscall_return_slowpath(k);
            Flow::Call(&PREPARE_EXIT_TO_USERMODE_TRACK)
        }),
        Step::noinstr("iretq", C::Iret, |_| Flow::ReturnToUser),
    ],
};

/// The patched `prepare_exit_to_usermode()`.
pub static PREPARE_EXIT_TO_USERMODE: Path = Path {
    name: "prepare_exit_to_usermode",
    steps: &[
        Step::branch("cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS", |k| {
            if linux_4x::exit_work(k) {
                Flow::Next
            } else {
                Flow::Return
            }
        }),
        // "We have work to do."
        Step::noinstr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::noinstr("prev_state = exception_enter()", C::Glue, |k| {
            let prev = k.ct().exception_enter();
            k.locals().prev_ctx = prev;
            Flow::Call(&linux_4x::LOOP_WORK)
        }),
        Step::noinstr("exception_exit(prev_state)", C::Glue, |k| {
            let prev = k.locals().prev_ctx;
            k.ct().exception_exit(prev);
            Flow::Next
        }),
        // "Disable IRQs and retry"
        Step::noinstr("local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Goto("cached_flags & EXIT_TO_USERMODE_LOOP_FLAGS")
        }),
    ],
};

/// `prepare_exit_to_usermode_track()`: the loop, then `user_enter()`.
pub static PREPARE_EXIT_TO_USERMODE_TRACK: Path = Path {
    name: "prepare_exit_to_usermode_track",
    steps: &[
        Step::branch("prepare_exit_to_usermode", |k| {
            Flow::Call(prepare_exit_to_usermode(k))
        }),
        Step::noinstr("user_enter", C::Glue, |k| {
            k.ct().user_enter();
            Flow::Return
        }),
    ],
};

/// The `interrupt` macro without `enter_from_user_mode` → `do_IRQ` → `ret_from_intr`.
pub static IRQ: Path = Path {
    name: "interrupt",
    steps: &[
        Step::noinstr("interrupt (hw delivery)", C::IrqDelivery, |_| Flow::Next),
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
        Step::branch("retint_user: prepare_exit_to_usermode", |k| {
            Flow::Call(prepare_exit_to_usermode(k))
        }),
        Step::noinstr("iretq (to user)", C::Iret, |_| Flow::ReturnToUser),
        linux_4x::RETINT_KERNEL,
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

/// `page_fault` as in 4.3, returning through `_track`.
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
                linux_4x::enter_from_user_mode(k);
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
        Step::branch("retint_user: prepare_exit_to_usermode_track", |_| {
            Flow::Call(&PREPARE_EXIT_TO_USERMODE_TRACK)
        }),
        Step::noinstr("iretq (to user)", C::Iret, |_| Flow::ReturnToUser),
        linux_4x::RETINT_KERNEL,
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};
