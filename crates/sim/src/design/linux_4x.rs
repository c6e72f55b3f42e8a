//! Kernel pieces the 2015 designs share, as they were in Linux 4.3/4.4 (not entry code: the
//! generic `irq_enter()`/`irq_exit()` of `kernel/softirq.c` and the x86 `retint_kernel` exit).
//!
//! In 4.x `irq_enter()` called `rcu_irq_enter()` (RCU's own nesting, which the 6.0 merge turned
//! into `ct_irq_enter()`) and `account_irq_enter_time()` (GEN vtime flushes the interrupted
//! context's time); `irq_exit()` undid both. That is why an IRQ from user mode on a nohz_full CPU
//! reached RCU and vtime twice when the entry code also called `user_exit()`/`user_enter()`.
//! Code before `noinstr` existed is modeled as `noinstr` glue; work steps (handlers, bodies,
//! scheduling) are instrumentable and must run with RCU watching.

use super::{Flow, Path, Step};
use crate::cost::CostKey as C;
use crate::kernel::{K, SYSCALL_BODY};
use ctxtrack_core::{CtState, Violation};

/// 4.3 `enter_from_user_mode()`: `CT_WARN_ON(ct_state() != CONTEXT_USER); user_exit();`, an
/// out-of-line call whose static key is tested inside.
pub fn enter_from_user_mode(k: &mut K) {
    let not_user = k.ct().ct_state().is_some_and(|s| s != CtState::User);
    k.ct().ct_warn_on(not_user, Violation::EnterFromUserNotUser);
    k.ct().user_exit_callable();
}

/// 4.3 `syscall_return_slowpath()` up to `prepare_exit_to_usermode()`: the `CT_WARN_ON`, the
/// exit tracepoint, IRQs off.
pub fn syscall_return_slowpath(k: &mut K) {
    let not_kernel = k.ct().ct_state().is_some_and(|s| s != CtState::Kernel);
    k.ct()
        .ct_warn_on(not_kernel, Violation::SyscallExitNotKernel);
    k.trace_sys_exit();
    k.local_irq_disable();
}

/// `locals.scratch` value [`SYSCALL_ENTRY`] leaves when the fast path may `sysret` directly.
pub const FAST_SYSRET: u32 = 1;

/// The 4.3 syscall entry, shared by the designs that did not touch it (`linux-4.3`,
/// `weisbecker-2015`, `weisbecker-hoisted`): the asm enables IRQs, then `TIF_NOHZ` (on every task
/// once the key is on) sends the syscall to `tracesys`, where `syscall_trace_enter_phase1()`
/// calls `enter_from_user_mode()` with IRQs already on. Without it, the fast path does no context
/// tracking and returns with [`FAST_SYSRET`] unless exit work is pending.
pub static SYSCALL_ENTRY: Path = Path {
    name: "entry_SYSCALL_64 (4.3 entry)",
    steps: &[
        Step::noinstr("entry_SYSCALL_64", C::SyscallInsn, |k| {
            k.locals().scratch = 0;
            Flow::Next
        }),
        Step::noinstr("ENABLE_INTERRUPTS(CLBR_NONE)", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::branch("testl $_TIF_WORK_SYSCALL_ENTRY (TIF_NOHZ)", |k| {
            if k.tif_nohz() {
                Flow::Next
            } else {
                Flow::Goto("entry_SYSCALL_64_fastpath: call *sys_call_table")
            }
        }),
        // tracesys:
        Step::noinstr(
            "syscall_trace_enter_phase1: enter_from_user_mode",
            C::Glue,
            |k| {
                enter_from_user_mode(k);
                k.trace_sys_enter();
                Flow::Next
            },
        ),
        Step::branch("call *sys_call_table (slow path)", |_| {
            Flow::Call(&SYSCALL_BODY)
        }),
        Step::branch("jmp int_ret_from_sys_call", |_| Flow::Return),
        // The fast path: no context tracking at all.
        Step::work(
            "entry_SYSCALL_64_fastpath: call *sys_call_table",
            C::None,
            |_| Flow::Call(&SYSCALL_BODY),
        ),
        Step::noinstr("DISABLE_INTERRUPTS (fastpath)", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::branch("testl $_TIF_ALLWORK_MASK", |k| {
            if !exit_work(k) && !k.tif_nohz() {
                k.locals().scratch = FAST_SYSRET;
            }
            Flow::Return
        }),
    ],
};

/// `irq_enter()` (4.x).
pub static IRQ_ENTER: Path = Path {
    name: "irq_enter",
    steps: &[
        Step::noinstr("rcu_irq_enter", C::Glue, |k| {
            k.ct().rcu_irq_enter();
            Flow::Next
        }),
        Step::noinstr("__irq_enter: account_irq_enter_time", C::Glue, |k| {
            k.ct().vtime_common_account_irq_enter();
            k.irq_enter_rcu();
            Flow::Return
        }),
    ],
};

/// `irq_exit()` (4.x).
pub static IRQ_EXIT: Path = Path {
    name: "irq_exit",
    steps: &[
        Step::noinstr("account_irq_exit_time", C::Glue, |k| {
            k.ct().vtime_account_irq_exit();
            // preempt_count_sub(HARDIRQ_OFFSET); tick_irq_exit()
            k.irq_exit_rcu();
            Flow::Next
        }),
        Step::noinstr("rcu_irq_exit", C::Glue, |k| {
            k.ct().rcu_irq_exit();
            Flow::Return
        }),
    ],
};

/// The IRQ handler proper (`do_IRQ` / `smp_apic_timer_interrupt` / `smp_reschedule_interrupt`).
pub const HANDLER: Step = Step::work("do_IRQ handler", C::None, |k| {
    k.handle_irq_vector();
    Flow::Next
});

/// `retint_kernel`: with `CONFIG_PREEMPT`, preempt on return to kernel code that had IRQs on.
pub const RETINT_KERNEL: Step = Step::noinstr("retint_kernel", C::Glue, |k| {
    if k.regs_irqs_on() && k.preemption_enabled() && k.need_resched() {
        k.preempt_schedule_irq();
    }
    Flow::Next
});

/// The 4.x exit-work test (`EXIT_TO_USERMODE_LOOP_FLAGS` includes `_TIF_USER_RETURN_NOTIFY`).
pub fn exit_work(k: &mut K) -> bool {
    k.exit_work_pending() || k.read_thread_flags() & crate::machine::tif::USER_RETURN_NOTIFY != 0
}

/// Signal delivery inside a 2015 exit loop (cost reported as a body).
pub fn do_signal(k: &mut K) {
    k.extra_cycles += k.m.cost.signal;
    k.arch_do_signal_or_restart();
}

/// `tracehook_notify_resume()` inside a 2015 exit loop.
pub fn notify_resume(k: &mut K) {
    k.extra_cycles += k.m.cost.notify_resume;
    k.resume_user_mode_work();
}

/// The work section of the 2015 exit loops (`prepare_exit_to_usermode` in 4.3,
/// `exit_to_usermode_loop` in 4.4), in their order: `schedule()`, `do_signal()`,
/// `tracehook_notify_resume()`, `fire_user_return_notifiers()`, each behind its flag.
pub static LOOP_WORK: Path = Path {
    name: "exit_to_usermode_loop work",
    steps: &[
        Step::branch("cached_flags & _TIF_NEED_RESCHED", |k| {
            if k.need_resched() {
                Flow::Next
            } else {
                Flow::Goto("cached_flags & _TIF_SIGPENDING")
            }
        }),
        Step::work("schedule", C::None, |k| k.schedule()),
        Step::branch("cached_flags & _TIF_SIGPENDING", |k| {
            if k.signal_pending() {
                Flow::Next
            } else {
                Flow::Goto("cached_flags & _TIF_NOTIFY_RESUME")
            }
        }),
        Step::work("do_signal", C::None, |k| {
            do_signal(k);
            Flow::Next
        }),
        Step::branch("cached_flags & _TIF_NOTIFY_RESUME", |k| {
            if k.notify_resume_pending() {
                Flow::Next
            } else {
                Flow::Goto("cached_flags & _TIF_USER_RETURN_NOTIFY")
            }
        }),
        Step::work("tracehook_notify_resume", C::None, |k| {
            notify_resume(k);
            Flow::Next
        }),
        Step::branch("cached_flags & _TIF_USER_RETURN_NOTIFY", |k| {
            if k.read_thread_flags() & crate::machine::tif::USER_RETURN_NOTIFY != 0 {
                Flow::Next
            } else {
                Flow::Return
            }
        }),
        Step::work("fire_user_return_notifiers", C::None, |k| {
            k.fire_user_return_notifiers();
            Flow::Return
        }),
    ],
};

/// 4.3 `do_int3()`/`do_debug()` from kernel mode (`idtentry ... paranoid=1`): `ist_enter()`
/// calls `rcu_nmi_enter()` ("we might have interrupted pretty much anything") and adds
/// `HARDIRQ_OFFSET`; `ist_exit()` undoes both; `paranoid_exit` never preempts. From user mode the
/// same vectors went through `error_entry`/`error_exit`, the designs' exception path.
pub static DEBUG_KERNEL: Path = Path {
    name: "int3 (paranoid)",
    steps: &[
        Step::noinstr(
            "paranoid_entry (hw exception)",
            C::ExceptionDelivery,
            |_| Flow::Next,
        ),
        Step::noinstr("ist_enter: rcu_nmi_enter", C::Glue, |k| {
            k.ct().ct_nmi_enter();
            k.preempt_count_add(crate::machine::preempt::HARDIRQ_OFFSET);
            Flow::Next
        }),
        Step::work("do_int3", C::Glue, |k| {
            k.do_int3();
            Flow::Next
        }),
        Step::noinstr("ist_exit: rcu_nmi_exit", C::Glue, |k| {
            k.preempt_count_sub(crate::machine::preempt::HARDIRQ_OFFSET);
            k.ct().ct_nmi_exit();
            Flow::Next
        }),
        Step::noinstr("paranoid_exit: iretq", C::Iret, |k| k.iret()),
    ],
};
