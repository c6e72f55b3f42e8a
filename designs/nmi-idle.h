/*
 * nmi-idle.h: the NMI entry and the idle loop of Linux 6.x, shared by every
 * shipped design (the 2015 designs differ in syscall, IRQ, exception and exit
 * paths only; their NMI and idle handling is modeled as 6.x's).
 */

/* exc_nmi: irqentry_nmi_enter() / irqentry_nmi_exit(). */
noinstr void asm_exc_nmi(struct pt_regs *regs)
{
	asm_exc_nmi: hw_irq_delivery();
	irqentry_nmi_enter: __nmi_enter(), ct_nmi_enter();
	instrumentation_begin();
	default_do_nmi(regs);
	instrumentation_end();
	irqentry_nmi_exit: ct_nmi_exit(), __nmi_exit();
	iretq();
}

/*
 * default_idle_call() -> arch_cpu_idle() without a cpuidle driver (as under QEMU).
 * trace_cpu_idle() runs its probes under rcu_read_lock_sched_notrace(): a read-side
 * section in idle, legal only while RCU watches (before ct_idle_enter(), after
 * ct_idle_exit()). One step each: a probe is a short atomic section.
 */
static noinstr void default_idle_call(void)
{
	instrumentation_begin();
	trace_cpu_idle: rcu_read_lock(), rcu_read_unlock();
	instrumentation_end();
	ct_idle_enter();
	arch_cpu_idle: safe_halt();
	/* Linux >= 6.3 disables IRQs before leaving the EQS (6.1 left them on across
	 * ct_idle_exit(), which saved/restored them itself). */
	raw_local_irq_disable();
	ct_idle_exit();
	instrumentation_begin();
	trace_cpu_idle_exit: rcu_read_lock(), rcu_read_unlock();
	instrumentation_end();
}

/*
 * do_idle(): the idle task runs this forever. While it polls TIF_NEED_RESCHED
 * (__current_set_polling()), a remote wakeup sets the flag without an IPI; so
 * the last need_resched() test before the halt is current_clr_polling_and_test(),
 * after which wakers send IPIs again. Linux sets polling on entry to do_idle();
 * here the first iteration sets it with IRQs off (a wakeup just before that sends
 * an IPI Linux would skip, no more).
 */
void do_idle(void)
{
	while (true) {
		while (!need_resched()) {
			/* 5.12+: a deferred rcuog wakeup is done before cpuidle_idle_call()'s
			 * last need_resched() check, not in the EQS entry after it (one step:
			 * with IRQs off, only an NMI could come between, and NMIs queue no
			 * callbacks). */
			local_irq_disable(), __current_set_polling(), rcu_nocb_flush_deferred_wakeup();
			tick_nohz_idle_stop_tick();
			if (!current_clr_polling_and_test())
				default_idle_call();
			/* cpuidle_idle_call()'s exit_idle */
			local_irq_enable: __current_set_polling(), local_irq_enable();
		}
		tick_nohz_idle_exit: tick_nohz_idle_exit(), __current_clr_polling();
		schedule_idle();
	}
}
