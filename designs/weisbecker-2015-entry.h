/*
 * weisbecker-2015-entry.h: the entry paths of the seed's patch, "x86: Don't
 * call context tracking APIs on IRQs" (Frederic Weisbecker, October 2015), on
 * top of Linux 4.3. Shared by weisbecker-2015.c and weisbecker-hoisted.c, which
 * differ only in prepare_exit_to_usermode() (each defines its own).
 *
 * - IRQs no longer call enter_from_user_mode(): irq_enter()/irq_exit() alone
 *   take care of RCU (rcu_irq_enter/exit) and vtime, so an IRQ from user mode
 *   runs with context tracking still saying USER.
 * - Only prepare_exit_to_usermode_track() (the syscall return) calls
 *   user_enter().
 * - Syscalls, exceptions and NMIs are as in 4.3.
 *
 * Choice where the seed is silent: exceptions from user mode still call
 * enter_from_user_mode() in error_entry (the patch only touched the interrupt
 * macro), so they return through the _track version, as "only those interested
 * in calling user_enter() actually call the _track version" says; ret_from_fork
 * is a syscall return (_track).
 */
#include "linux-4x.h"
#include "nmi-idle.h"

static noinstr void prepare_exit_to_usermode_track(struct pt_regs *regs)
{
	prepare_exit_to_usermode(regs);
	user_enter();
}

noinstr void entry_SYSCALL_64(struct pt_regs *regs)
{
	bool fast = entry_SYSCALL_64_43(regs);

	if (!fast)
		syscall_return_slowpath: CT_WARN_ON(ct_state() != CT_STATE_KERNEL), trace_sys_exit(regs), local_irq_disable(), prepare_exit_to_usermode_track(regs);
	USERGS_SYSRET64: sysretq();
}

noinstr void ret_from_fork(struct pt_regs *regs)
{
	schedule_tail: local_irq_enable();
	syscall_return_slowpath: CT_WARN_ON(ct_state() != CT_STATE_KERNEL), trace_sys_exit(regs), local_irq_disable(), prepare_exit_to_usermode_track(regs);
	iretq();
}

/* The interrupt macro without enter_from_user_mode -> do_IRQ -> ret_from_intr. */
noinstr void interrupt(struct pt_regs *regs)
{
	interrupt: hw_irq_delivery();
	irq_enter();
	do_IRQ: handle_irq(regs);
	irq_exit();
	ret_from_intr(regs);
}

/* page_fault as in 4.3, returning through _track. */
noinstr void page_fault(struct pt_regs *regs)
{
	enum ctx_state prev_state;

	idtentry: hw_exception_delivery();
	if (user_mode(regs))
		error_entry: CT_WARN_ON(ct_state() != CT_STATE_USER), user_exit();
	do_page_fault: prev_state = exception_enter(), cond_local_irq_enable(regs);
	handle_mm_fault(regs);
	exception_exit: local_irq_disable(), exception_exit(prev_state);
	if (user_mode(regs)) {
		prepare_exit_to_usermode_track(regs);	/* retint_user */
		iretq();
	}
	retint_kernel(regs);
	iretq();
}
