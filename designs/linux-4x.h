/*
 * linux-4x.h: kernel pieces the 2015 designs share, as they were in Linux
 * 4.3/4.4 (not the entry code under discussion: the generic irq_enter() /
 * irq_exit() of kernel/softirq.c, the x86 asm syscall entry and retint_kernel,
 * the exit work loop, the paranoid int3 entry).
 *
 * In 4.x irq_enter() called rcu_irq_enter() (RCU's own nesting, which the 6.0
 * merge turned into ct_irq_enter()) and account_irq_enter_time() (GEN vtime
 * flushes the interrupted context's time); irq_exit() undid both. That is why
 * an IRQ from user mode on a nohz_full CPU reached RCU and vtime twice when the
 * entry code also called user_exit()/user_enter().
 *
 * Code before noinstr existed (Linux 5.8) is modeled as noinstr glue: the
 * including designs say `#era "pre-noinstr"`, so the noinstr rule is a note.
 * Work steps (handlers, bodies, scheduling) are instrumentable and must run
 * with RCU watching. A design that includes this file defines
 * prepare_exit_to_usermode() and the entry paths.
 */


/*
 * The 4.3 syscall entry (entry_64.S), shared by the designs that did not touch
 * it: the asm enables IRQs, then TIF_NOHZ (on every task once the key is on)
 * sends the syscall to tracesys, where syscall_trace_enter_phase1() calls
 * enter_from_user_mode() with IRQs already on. Without it the fast path does no
 * context tracking. Returns whether the fast path may sysret directly.
 */
static noinstr bool entry_SYSCALL_64_43(struct pt_regs *regs)
{
	entry_SYSCALL_64: hw_syscall();
	ENABLE_INTERRUPTS: raw_local_irq_enable();
	if (read_thread_flags() & _TIF_NOHZ) {
		/* tracesys: enter_from_user_mode() is an out-of-line call testing the key */
		syscall_trace_enter_phase1: CT_WARN_ON(ct_state() != CT_STATE_USER), user_exit(), trace_sys_enter(regs);
		do_syscall_x64(regs);
		return false;	/* jmp int_ret_from_sys_call */
	}
	entry_SYSCALL_64_fastpath: call_sys_call_table(regs);
	DISABLE_INTERRUPTS: raw_local_irq_disable();
	return !(read_thread_flags() & (EXIT_TO_USER_MODE_WORK | _TIF_USER_RETURN_NOTIFY | _TIF_NOHZ));
}

/*
 * ret_from_intr / error_exit (4.x asm): back to user mode through the design's
 * prepare_exit_to_usermode(), or to the interrupted kernel code through
 * retint_kernel's preemption check.
 */
static __always_inline noinstr void ret_from_intr(struct pt_regs *regs)
{
	if (user_mode(regs)) {
		prepare_exit_to_usermode(regs);	/* retint_user */
		iretq();
	}
	retint_kernel(regs);
	iretq();
}

/*
 * syscall_return_slowpath() (4.3 arch/x86/entry/common.c): the CT_WARN_ON, the
 * exit tracepoint and IRQs off, then the design's prepare_exit_to_usermode(),
 * all one step as the Rust model priced it.
 */
static __always_inline noinstr void syscall_return_slowpath(struct pt_regs *regs)
{
	syscall_return_slowpath: CT_WARN_ON(ct_state() != CT_STATE_KERNEL), trace_sys_exit(regs), local_irq_disable(), prepare_exit_to_usermode(regs);
}

/* irq_enter() (4.x) */
static noinstr void irq_enter(void)
{
	rcu_irq_enter();
	__irq_enter: vtime_account_irq_enter(), irq_enter_rcu();
}

/* irq_exit() (4.x): preempt_count_sub(HARDIRQ_OFFSET) and tick_irq_exit() are irq_exit_rcu() here */
static noinstr void irq_exit(void)
{
	account_irq_exit_time: vtime_account_irq_exit(), irq_exit_rcu();
	rcu_irq_exit();
}

/*
 * The work section of the 2015 exit loops (prepare_exit_to_usermode in 4.3,
 * exit_to_usermode_loop in 4.4), in their order, each behind its flag.
 */
static void exit_to_usermode_loop_work(struct pt_regs *regs)
{
	if (read_thread_flags() & _TIF_NEED_RESCHED)
		schedule();
	if (read_thread_flags() & _TIF_SIGPENDING)
		do_signal(regs);
	if (read_thread_flags() & _TIF_NOTIFY_RESUME)
		tracehook_notify_resume(regs);
	if (read_thread_flags() & _TIF_USER_RETURN_NOTIFY)
		fire_user_return_notifiers();
}

/*
 * 4.3 do_int3()/do_debug() from kernel mode (idtentry ... paranoid=1):
 * ist_enter() calls rcu_nmi_enter() ("we might have interrupted pretty much
 * anything") and adds HARDIRQ_OFFSET; ist_exit() undoes both; paranoid_exit
 * never preempts. From user mode the same vectors go through error_entry, the
 * designs' exception path.
 */
noinstr void int3_paranoid(struct pt_regs *regs)
{
	paranoid_entry: hw_exception_delivery();
	ist_enter: ct_nmi_enter(), preempt_count_add(HARDIRQ_OFFSET);
	do_int3(regs);
	ist_exit: preempt_count_sub(HARDIRQ_OFFSET), ct_nmi_exit();
	paranoid_exit: iretq();
}
