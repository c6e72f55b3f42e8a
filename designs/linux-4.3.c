/*
 * linux-4.3: x86-64 entry as in Linux 4.3, the code the seed's regression
 * report is about (arch/x86/entry/entry_64.S, arch/x86/entry/common.c v4.3,
 * kernel/context_tracking.c).
 *
 * - Every IRQ and exception from user mode calls enter_from_user_mode() from
 *   the asm entry, unconditionally: the call happens even while context
 *   tracking is inactive; the static key is tested only inside (user_exit()),
 *   which is "breaking the static key optimizations".
 * - Then irq_enter() does rcu_irq_enter() and vtime IRQ accounting again, and
 *   irq_exit() undoes both: RCU and vtime are reached twice per IRQ from user
 *   on a nohz_full CPU.
 * - Exceptions also run exception_enter()/exception_exit() (kept in
 *   do_page_fault until 2020) with the saved previous state and irq
 *   save/restore inside context tracking.
 * - The native 64-bit syscall fast path does no context tracking; TIF_NOHZ
 *   forces the slow path, where syscall_trace_enter_phase1() calls
 *   enter_from_user_mode() *after* the asm enabled IRQs: the window Andy
 *   Lutomirski called "the single remaining exception".
 * - Every return to user goes through prepare_exit_to_usermode(): the work
 *   loop with IRQs enabled per item, then user_enter() (irq-saving form).
 *
 * Choice where the seed is silent: ret_from_fork returns through
 * syscall_return_slowpath() as 4.3 did.
 */
#design  "linux-4.3"
#summary "Linux 4.3 x86: enter_from_user_mode called unconditionally on IRQs/exceptions, RCU+vtime hooked twice"
#era     "pre-noinstr"
#include "linux-4x.h"
#include "nmi-idle.h"

#entry syscall        entry_SYSCALL_64
#entry irq            interrupt
#entry exception      page_fault
#entry nmi            asm_exc_nmi
#entry debug          int3_paranoid
#entry ret_from_fork  ret_from_fork
#entry idle           do_idle

/* 4.3 prepare_exit_to_usermode(): entered with IRQs off; the loop enables IRQs for the work. */
static noinstr void prepare_exit_to_usermode(struct pt_regs *regs)
{
	while (read_thread_flags() & (EXIT_TO_USER_MODE_WORK | _TIF_USER_RETURN_NOTIFY)) {
		local_irq_enable(), exit_to_usermode_loop_work(regs);
		local_irq_disable();
	}
	user_enter();
}

/* entry_SYSCALL_64: the 4.3 entry (fast path or tracesys), then the slow return. */
noinstr void entry_SYSCALL_64(struct pt_regs *regs)
{
	bool fast = entry_SYSCALL_64_43(regs);

	if (!fast)
		syscall_return_slowpath(regs);
	USERGS_SYSRET64: sysretq();
}

noinstr void ret_from_fork(struct pt_regs *regs)
{
	schedule_tail: local_irq_enable();
	syscall_return_slowpath(regs);
	iretq();
}

/* The interrupt macro -> do_IRQ -> ret_from_intr. */
noinstr void interrupt(struct pt_regs *regs)
{
	interrupt: hw_irq_delivery();
	if (user_mode(regs))
		SWAPGS_call_enter_from_user_mode: CT_WARN_ON(ct_state() != CT_STATE_USER), user_exit();
	irq_enter();
	do_IRQ: handle_irq(regs);
	irq_exit();
	ret_from_intr(regs);
}

/* idtentry page_fault -> error_entry -> do_page_fault -> error_exit. */
noinstr void page_fault(struct pt_regs *regs)
{
	enum ctx_state prev_state;

	idtentry: hw_exception_delivery();
	if (user_mode(regs))
		error_entry: CT_WARN_ON(ct_state() != CT_STATE_USER), user_exit();
	do_page_fault: prev_state = exception_enter(), cond_local_irq_enable(regs);
	handle_mm_fault(regs);
	exception_exit: local_irq_disable(), exception_exit(prev_state);
	ret_from_intr(regs);
}
