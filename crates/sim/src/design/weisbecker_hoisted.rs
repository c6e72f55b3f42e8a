//! `weisbecker-hoisted`: the seed's "Ideally we should do" — one `exception_enter()` /
//! `exception_exit()` around the whole exit loop, entered only when there is work, instead of
//! one pair per iteration:
//!
//! ```text
//! if (cached_flags) {
//!     exception_enter()
//!     while (true) { do the exit loop }
//!     exception_exit()
//! }
//! ```
//!
//! Everything else is [`super::weisbecker_2015`]. Choice where the seed is silent:
//! `exception_enter()` runs with IRQs still off (before the loop enables them), as the pseudo-code
//! places it before the loop.

#[allow(unused_imports)]
use super::weisbecker_2015 as w;
use super::{generic_entry, linux_4x, Design, Flow, Path, Step};
use crate::cost::CostKey as C;

/// The design.
pub static DESIGN: Design = Design {
    name: "weisbecker-hoisted",
    summary:
        "the seed's 'ideally': one exception_enter/exit around the whole exit loop, only with work",
    syscall: &SYSCALL,
    irq: &IRQ,
    exception: &EXCEPTION,
    nmi: &generic_entry::NMI,
    ret_from_fork: &RET_FROM_FORK,
    idle: &generic_entry::IDLE,
};

/// `prepare_exit_to_usermode()` with the context-tracking calls hoisted out of the loop.
pub static PREPARE_EXIT_TO_USERMODE: Path = Path {
    name: "prepare_exit_to_usermode",
    steps: &[
        Step::branch("if (cached_flags)", |k| {
            if linux_4x::exit_work(k) {
                Flow::Next
            } else {
                Flow::Return
            }
        }),
        Step::noinstr("prev_state = exception_enter()", C::Glue, |k| {
            let prev = k.ct().exception_enter();
            k.locals().prev_ctx = prev;
            Flow::Next
        }),
        // while (true) { do the exit loop }
        Step::noinstr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Call(&linux_4x::LOOP_WORK)
        }),
        Step::noinstr("local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::branch("cached_flags = READ_ONCE(ti->flags)", |k| {
            if linux_4x::exit_work(k) {
                Flow::Goto("local_irq_enable")
            } else {
                Flow::Next
            }
        }),
        Step::noinstr("exception_exit(prev_state)", C::Glue, |k| {
            let prev = k.locals().prev_ctx;
            k.ct().exception_exit(prev);
            Flow::Return
        }),
    ],
};

/// `prepare_exit_to_usermode_track()`.
pub static PREPARE_EXIT_TO_USERMODE_TRACK: Path = Path {
    name: "prepare_exit_to_usermode_track",
    steps: &[
        Step::branch("prepare_exit_to_usermode", |_| {
            Flow::Call(&PREPARE_EXIT_TO_USERMODE)
        }),
        Step::noinstr("user_enter", C::Glue, |k| {
            k.ct().user_enter();
            Flow::Return
        }),
    ],
};

/// As [`w::SYSCALL`], with the hoisted loop.
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

/// As [`w::RET_FROM_FORK`], with the hoisted loop.
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

/// As [`w::IRQ`], with the hoisted loop.
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
        Step::branch("retint_user: prepare_exit_to_usermode", |_| {
            Flow::Call(&PREPARE_EXIT_TO_USERMODE)
        }),
        Step::noinstr("iretq (to user)", C::Iret, |_| Flow::ReturnToUser),
        linux_4x::RETINT_KERNEL,
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

/// As [`w::EXCEPTION`], with the hoisted loop.
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
        Step::noinstr(
            "retint_user: prepare_exit_to_usermode_track",
            C::None,
            |_| Flow::Call(&PREPARE_EXIT_TO_USERMODE_TRACK),
        ),
        Step::noinstr("iretq (to user)", C::Iret, |_| Flow::ReturnToUser),
        linux_4x::RETINT_KERNEL,
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};
