/*
 * lutomirski-2015: Andy Lutomirski's direction in the seed thread, as his x86
 * entry work of late 2015 (Linux 4.4/4.5) implemented it:
 *
 * - Kernel code with IRQs on is always tracked as kernel: the 64-bit native
 *   syscall calls enter_from_user_mode() with IRQs still off, before enabling
 *   them ("x86/entry: Call enter_from_user_mode() with IRQs off").
 * - The entry decides from the saved registers (user_mode(regs)) whether it
 *   came from user mode; there is no exception_enter() anywhere.
 * - Context tracking is called without irq save/restore (the _irqoff forms),
 *   and the call itself is skipped through the static key when tracking is
 *   inactive ("x86/entry/64: Bypass enter_from_user_mode on
 *   non-context-tracking boots").
 * - irq_enter()/irq_exit() are unchanged from 4.x, so an IRQ from user mode on
 *   a nohz_full CPU still reaches RCU and vtime twice: Frederic's objection,
 *   which only the later move of that work into generic entry code removed.
 *
 * Choice where the seed is silent: the loop is 4.4's exit_to_usermode_loop()
 * (same flags and order as 4.3's inline loop), followed by user_enter_irqoff().
 */
#design  "lutomirski-2015"
#summary "Andy's direction: CT from pt_regs with IRQs off, no exception_enter, no irq save, static-key bypass"
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

/* prepare_exit_to_usermode() (4.4): the loop, then user_enter_irqoff(). */
static noinstr void prepare_exit_to_usermode(struct pt_regs *regs)
{
	while (read_thread_flags() & (EXIT_TO_USER_MODE_WORK | _TIF_USER_RETURN_NOTIFY)) {
		local_irq_enable(), exit_to_usermode_loop_work(regs);
		local_irq_disable();
	}
	/* 4.4's user_enter() -> rcu_user_enter() -> rcu_eqs_enter_common() flushed a deferred
	 * rcuog wakeup first; user_enter_irqoff() is the 6.x primitive, so the flush is written. */
	user_enter_irqoff: do_nocb_deferred_wakeup(), user_enter_irqoff();
}

/* entry_SYSCALL_64 -> a do_syscall_64-style C entry with context tracking before IRQs go on. */
noinstr void entry_SYSCALL_64(struct pt_regs *regs)
{
	entry_SYSCALL_64: hw_syscall();
	enter_from_user_mode: CT_WARN_ON(ct_state() != CT_STATE_USER), user_exit_irqoff();
	local_irq_enable: local_irq_enable(), trace_sys_enter(regs);
	do_syscall_x64(regs);
	syscall_return_slowpath(regs);
	USERGS_SYSRET64: sysretq();
}

noinstr void ret_from_fork(struct pt_regs *regs)
{
	schedule_tail: local_irq_enable();
	syscall_return_slowpath(regs);
	iretq();
}

/* The interrupt macro with the static-key-gated enter_from_user_mode. */
noinstr void interrupt(struct pt_regs *regs)
{
	interrupt: hw_irq_delivery();
	if (user_mode(regs))
		CALL_enter_from_user_mode: CT_WARN_ON(ct_state() != CT_STATE_USER), user_exit_irqoff();
	irq_enter();
	do_IRQ: handle_irq(regs);
	irq_exit();
	ret_from_intr(regs);
}

/* page_fault: context tracking from user_mode(regs) only, no exception_enter(). */
noinstr void page_fault(struct pt_regs *regs)
{
	idtentry: hw_exception_delivery();
	if (user_mode(regs))
		CALL_enter_from_user_mode: CT_WARN_ON(ct_state() != CT_STATE_USER), user_exit_irqoff();
	do_page_fault: cond_local_irq_enable(regs);
	handle_mm_fault(regs);
	local_irq_disable();
	ret_from_intr(regs);
}
