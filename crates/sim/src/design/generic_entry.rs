//! `generic-entry`: Linux 6.x generic entry code (`kernel/entry/common.c`,
//! `include/linux/irq-entry-common.h`, `arch/x86/entry/syscall_64.c`), as the traces in
//! `traces/linux-6.1` show it on a 6.1 kernel.
//!
//! Every entry from user mode calls `enter_from_user_mode()` → `user_exit_irqoff()` and every exit
//! to user mode `exit_to_user_mode()` → `user_enter_irqoff()`, both with IRQs off and behind the
//! static key (inlined, so nothing is called while context tracking is inactive). IRQs that hit
//! the kernel use `ct_irq_enter()` only when they interrupt the idle task (RCU may not be watching
//! there); otherwise RCU is known to watch and only `rcu_irq_enter_check_tick()` runs.
//! `arch_in_rcu_eqs()` is false on x86, so the idle check is `is_idle_task(current)` alone.

use super::{Design, Flow, Path, Step};
use crate::cost::CostKey as C;
use crate::kernel::{K, SYSCALL_BODY};
use ctxtrack_core::{CtState, Violation};

/// The design.
pub static DESIGN: Design = Design {
    name: "generic-entry",
    summary:
        "Linux 6.x kernel/entry/common.c: CT on every user entry/exit, ct_irq_enter only from idle",
    syscall: &SYSCALL,
    irq: &IRQ,
    exception: &EXCEPTION,
    nmi: &NMI,
    debug: &DEBUG,
    ret_from_fork: &RET_FROM_FORK,
    idle: &IDLE,
    exit_to_usermode: None,
};

/// `enter_from_user_mode(regs)` (noinstr, IRQs off).
fn enter_from_user_mode(k: &mut K) {
    // arch_enter_from_user_mode(), lockdep_hardirqs_off(): no model state.
    let not_user = k.ct().__ct_state() != CtState::User;
    k.ct().ct_warn_on(not_user, Violation::EnterFromUserNotUser);
    k.ct().user_exit_irqoff();
}

/// `entry_SYSCALL_64` → `do_syscall_64()` → `sysretq`.
pub static SYSCALL: Path = Path {
    name: "do_syscall_64",
    steps: &[
        Step::noinstr("entry_SYSCALL_64", C::SyscallInsn, |_| Flow::Next),
        Step::noinstr("enter_from_user_mode", C::Glue, |k| {
            enter_from_user_mode(k);
            Flow::Next
        }),
        Step::instr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::instr("syscall_enter_from_user_mode_work", C::Glue, |k| {
            k.trace_sys_enter();
            Flow::Next
        }),
        Step::branch("do_syscall_x64", |_| Flow::Call(&SYSCALL_BODY)),
        Step::instr("syscall_exit_to_user_mode_work", C::Glue, |k| {
            let not_kernel = k.ct().ct_state().is_some_and(|s| s != CtState::Kernel);
            k.ct()
                .ct_warn_on(not_kernel, Violation::SyscallExitNotKernel);
            k.trace_sys_exit();
            Flow::Next
        }),
        Step::instr("local_irq_disable_exit_to_user", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::branch("exit_to_user_mode_prepare", |_| {
            Flow::Call(&EXIT_TO_USER_MODE_PREPARE)
        }),
        Step::noinstr("exit_to_user_mode", C::Glue, |k| {
            k.ct().user_enter_irqoff();
            Flow::Next
        }),
        Step::noinstr("sysretq", C::Sysret, |_| Flow::ReturnToUser),
    ],
};

/// `ret_from_fork` → `syscall_exit_to_user_mode()`: a new task's first return to user mode
/// (a `user_enter` with no `user_exit` before it, as the traces show).
pub static RET_FROM_FORK: Path = Path {
    name: "ret_from_fork",
    steps: &[
        Step::instr("schedule_tail", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::instr("syscall_exit_to_user_mode_work", C::Glue, |k| {
            k.trace_sys_exit();
            Flow::Next
        }),
        Step::instr("local_irq_disable_exit_to_user", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::branch("exit_to_user_mode_prepare", |_| {
            Flow::Call(&EXIT_TO_USER_MODE_PREPARE)
        }),
        Step::noinstr("exit_to_user_mode", C::Glue, |k| {
            k.ct().user_enter_irqoff();
            Flow::Next
        }),
        Step::noinstr("iretq", C::Iret, |_| Flow::ReturnToUser),
    ],
};

/// `exit_to_user_mode_prepare()` with `exit_to_user_mode_loop()` inlined, work flags in Linux's
/// order. Entered and left with IRQs off.
pub static EXIT_TO_USER_MODE_PREPARE: Path = Path {
    name: "exit_to_user_mode_prepare",
    steps: &[
        Step::instr("tick_nohz_user_enter_prepare", C::Glue, |k| {
            k.tick_nohz_user_enter_prepare();
            Flow::Next
        }),
        Step::branch("ti_work & EXIT_TO_USER_MODE_WORK", |k| {
            if k.exit_work_pending() {
                Flow::Next
            } else {
                Flow::Goto("arch_exit_to_user_mode_prepare")
            }
        }),
        // exit_to_user_mode_loop():
        Step::instr("local_irq_enable_exit_to_user", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Next
        }),
        Step::branch("ti_work & _TIF_NEED_RESCHED", |k| {
            if k.need_resched() {
                Flow::Next
            } else {
                Flow::Goto("ti_work & _TIF_SIGPENDING")
            }
        }),
        Step::work("schedule", C::None, |k| k.schedule()),
        Step::branch("ti_work & _TIF_SIGPENDING", |k| {
            if k.signal_pending() {
                Flow::Next
            } else {
                Flow::Goto("ti_work & _TIF_NOTIFY_RESUME")
            }
        }),
        Step::work("arch_do_signal_or_restart", C::Signal, |k| {
            k.arch_do_signal_or_restart();
            Flow::Next
        }),
        Step::branch("ti_work & _TIF_NOTIFY_RESUME", |k| {
            if k.notify_resume_pending() {
                Flow::Next
            } else {
                Flow::Goto("local_irq_disable_exit_to_user")
            }
        }),
        Step::work("resume_user_mode_work", C::NotifyResume, |k| {
            k.resume_user_mode_work();
            Flow::Next
        }),
        Step::instr("local_irq_disable_exit_to_user", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::instr("tick_nohz_user_enter_prepare (loop)", C::Glue, |k| {
            k.tick_nohz_user_enter_prepare();
            Flow::Next
        }),
        Step::branch("while (ti_work & EXIT_TO_USER_MODE_WORK)", |k| {
            if k.exit_work_pending() {
                Flow::Goto("local_irq_enable_exit_to_user")
            } else {
                Flow::Next
            }
        }),
        Step::instr("arch_exit_to_user_mode_prepare", C::Glue, |k| {
            // arch_exit_work(): _TIF_USER_RETURN_NOTIFY → fire_user_return_notifiers().
            k.fire_user_return_notifiers();
            Flow::Return
        }),
    ],
};

/// `irqentry_enter(regs)`; records `irqentry_state_t.exit_rcu` in the entry's locals.
pub static IRQENTRY_ENTER: Path = Path {
    name: "irqentry_enter",
    steps: &[
        Step::branch("user_mode(regs)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("is_idle_task(current)")
            }
        }),
        Step::noinstr("irqentry_enter_from_user_mode", C::Glue, |k| {
            enter_from_user_mode(k);
            Flow::Return
        }),
        Step::branch("is_idle_task(current)", |k| {
            if k.is_idle_task() {
                Flow::Next
            } else {
                Flow::Goto("rcu_irq_enter_check_tick")
            }
        }),
        // Unconditionally, even if RCU is already watching.
        Step::noinstr("ct_irq_enter", C::Glue, |k| {
            k.ct().ct_irq_enter();
            k.locals().exit_rcu = true;
            Flow::Return
        }),
        Step::instr("rcu_irq_enter_check_tick", C::Glue, |k| {
            k.ct().rcu_irq_enter_check_tick();
            Flow::Return
        }),
    ],
};

/// `irqentry_exit(regs, state)`.
pub static IRQENTRY_EXIT: Path = Path {
    name: "irqentry_exit",
    steps: &[
        Step::branch("user_mode(regs)", |k| {
            if k.regs_user() {
                Flow::Next
            } else {
                Flow::Goto("!regs_irqs_disabled(regs)")
            }
        }),
        // irqentry_exit_to_user_mode():
        Step::branch("exit_to_user_mode_prepare", |_| {
            Flow::Call(&EXIT_TO_USER_MODE_PREPARE)
        }),
        Step::noinstr("exit_to_user_mode", C::Glue, |k| {
            k.ct().user_enter_irqoff();
            Flow::Return
        }),
        Step::branch("!regs_irqs_disabled(regs)", |k| {
            if k.regs_irqs_on() {
                Flow::Next
            } else {
                Flow::Goto("if (state.exit_rcu) ct_irq_exit")
            }
        }),
        Step::branch("state.exit_rcu", |k| {
            if k.locals().exit_rcu {
                Flow::Next
            } else {
                Flow::Goto("irqentry_exit_cond_resched")
            }
        }),
        // Coming from idle/EQS: no preemption, just leave RCU.
        Step::noinstr("ct_irq_exit", C::Glue, |k| {
            k.ct().ct_irq_exit();
            Flow::Return
        }),
        Step::instr("irqentry_exit_cond_resched", C::Glue, |k| {
            if k.preemption_enabled() {
                k.ct().rcu_irq_exit_check_preempt();
                if k.need_resched() {
                    return Flow::Goto("preempt_schedule_irq");
                }
            }
            Flow::Return
        }),
        Step::work("preempt_schedule_irq", C::None, |k| {
            k.preempt_schedule_irq();
            Flow::Return
        }),
        Step::noinstr("if (state.exit_rcu) ct_irq_exit", C::Glue, |k| {
            if k.locals().exit_rcu {
                k.ct().ct_irq_exit();
            }
            Flow::Return
        }),
    ],
};

/// `DEFINE_IDTENTRY_SYSVEC` / `DEFINE_IDTENTRY_IRQ`: timer, reschedule IPI, irq_work, devices.
pub static IRQ: Path = Path {
    name: "asm_sysvec",
    steps: &[
        Step::noinstr("idtentry (hw delivery)", C::IrqDelivery, |_| Flow::Next),
        Step::branch("irqentry_enter", |_| Flow::Call(&IRQENTRY_ENTER)),
        Step::instr("irq_enter_rcu", C::Glue, |k| {
            k.irq_enter_rcu();
            Flow::Next
        }),
        Step::work("sysvec handler", C::None, |k| {
            k.handle_irq_vector();
            Flow::Next
        }),
        Step::instr("irq_exit_rcu", C::Glue, |k| {
            k.irq_exit_rcu();
            Flow::Next
        }),
        Step::branch("irqentry_exit", |_| Flow::Call(&IRQENTRY_EXIT)),
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

/// `DEFINE_IDTENTRY_RAW_ERRORCODE(exc_page_fault)` (and other exceptions).
pub static EXCEPTION: Path = Path {
    name: "asm_exc_page_fault",
    steps: &[
        Step::noinstr("idtentry (hw exception)", C::ExceptionDelivery, |_| {
            Flow::Next
        }),
        Step::branch("irqentry_enter", |_| Flow::Call(&IRQENTRY_ENTER)),
        Step::instr("local_irq_enable (if regs had IRQs on)", C::Glue, |k| {
            if k.regs_irqs_on() {
                k.local_irq_enable();
            }
            Flow::Next
        }),
        Step::work("handle_mm_fault", C::PageFault, |k| {
            k.handle_exception();
            Flow::Next
        }),
        Step::instr("local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::branch("irqentry_exit", |_| Flow::Call(&IRQENTRY_EXIT)),
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

/// `exc_nmi`: `irqentry_nmi_enter()` / `irqentry_nmi_exit()`.
pub static NMI: Path = Path {
    name: "asm_exc_nmi",
    steps: &[
        Step::noinstr("asm_exc_nmi (hw delivery)", C::IrqDelivery, |_| Flow::Next),
        Step::noinstr("irqentry_nmi_enter", C::Glue, |k| {
            k.nmi_enter_count();
            k.ct().ct_nmi_enter();
            Flow::Next
        }),
        Step::work("default_do_nmi", C::NmiHandler, |k| {
            k.default_do_nmi();
            Flow::Next
        }),
        Step::noinstr("irqentry_nmi_exit", C::Glue, |k| {
            k.ct().ct_nmi_exit();
            k.nmi_exit_count();
            Flow::Next
        }),
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

/// `exc_int3()`/`exc_debug()` from kernel mode: a breakpoint can hit anywhere, entry code and
/// `noinstr` windows included (text poking, hardware breakpoints), so the kernel side enters
/// like an NMI (`irqentry_nmi_enter()`), never through `irqentry_enter()`.
pub static DEBUG: Path = Path {
    name: "asm_exc_int3",
    steps: &[
        Step::noinstr("asm_exc_int3 (hw exception)", C::ExceptionDelivery, |_| {
            Flow::Next
        }),
        Step::noinstr("irqentry_nmi_enter", C::Glue, |k| {
            k.nmi_enter_count();
            k.ct().ct_nmi_enter();
            Flow::Next
        }),
        Step::work("do_int3", C::Glue, |k| {
            k.do_int3();
            Flow::Next
        }),
        Step::noinstr("irqentry_nmi_exit", C::Glue, |k| {
            k.ct().ct_nmi_exit();
            k.nmi_exit_count();
            Flow::Next
        }),
        Step::noinstr("iretq", C::Iret, |k| k.iret()),
    ],
};

/// `do_idle()` with `cpuidle_idle_call()` → `default_idle_call()` inlined (no cpuidle driver, as
/// under QEMU): the idle task runs this forever.
pub static IDLE: Path = Path {
    name: "do_idle",
    steps: &[
        Step::branch("while (!need_resched())", |k| {
            if k.need_resched() {
                Flow::Goto("tick_nohz_idle_exit")
            } else {
                Flow::Next
            }
        }),
        Step::instr("local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::instr("tick_nohz_idle_stop_tick", C::Glue, |k| {
            k.tick_nohz_idle_stop_tick();
            Flow::Next
        }),
        Step::branch("current_clr_polling_and_test", |k| {
            if k.need_resched() {
                Flow::Goto("local_irq_enable")
            } else {
                Flow::Next
            }
        }),
        Step::noinstr("ct_idle_enter", C::Glue, |k| {
            k.ct().ct_idle_enter();
            Flow::Next
        }),
        Step::noinstr("arch_cpu_idle (sti; hlt)", C::Glue, |_| Flow::Halt),
        // Linux >= 6.3 disables IRQs before leaving the EQS (6.1 left them on across
        // ct_idle_exit(), which saved/restored them itself).
        Step::noinstr("raw_local_irq_disable", C::Glue, |k| {
            k.local_irq_disable();
            Flow::Next
        }),
        Step::noinstr("ct_idle_exit", C::Glue, |k| {
            k.ct().ct_idle_exit();
            Flow::Next
        }),
        Step::instr("local_irq_enable", C::Glue, |k| {
            k.local_irq_enable();
            Flow::Goto("while (!need_resched())")
        }),
        Step::instr("tick_nohz_idle_exit", C::Glue, |k| {
            k.tick_nohz_idle_exit();
            Flow::Next
        }),
        Step::work("schedule_idle", C::None, |k| {
            k.schedule();
            Flow::Goto("while (!need_resched())")
        }),
    ],
};
