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
//! Everything else is [`super::weisbecker_2015`]: this design reuses its entry paths, which call
//! the running design's loop ([`Design::exit_to_usermode`]). Choice where the seed is silent:
//! `exception_enter()` runs with IRQs still off (before the loop enables them), as the pseudo-code
//! places it before the loop.

use super::weisbecker_2015 as w;
use super::{generic_entry, linux_4x, Design, Flow, Path, Step};
use crate::cost::CostKey as C;

/// The design.
pub static DESIGN: Design = Design {
    name: "weisbecker-hoisted",
    summary:
        "the seed's 'ideally': one exception_enter/exit around the whole exit loop, only with work",
    syscall: &w::SYSCALL,
    irq: &w::IRQ,
    exception: &w::EXCEPTION,
    nmi: &generic_entry::NMI,
    debug: &linux_4x::DEBUG_KERNEL,
    ret_from_fork: &w::RET_FROM_FORK,
    idle: &generic_entry::IDLE,
    exit_to_usermode: Some(&PREPARE_EXIT_TO_USERMODE),
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
