/*
 * generic-entry: Linux 6.x generic entry code (kernel/entry/common.c,
 * include/linux/irq-entry-common.h, arch/x86/entry/syscall_64.c), as the
 * traces in traces/linux-6.1 show it on a 6.1 kernel.
 *
 * Every entry from user mode calls enter_from_user_mode() -> user_exit_irqoff()
 * and every exit to user mode exit_to_user_mode() -> user_enter_irqoff(), both
 * with IRQs off and behind the static key (inlined, so nothing is called while
 * context tracking is inactive). IRQs that hit the kernel use ct_irq_enter()
 * only when they interrupt the idle task (RCU may not be watching there);
 * otherwise RCU is known to watch and only rcu_irq_enter_check_tick() runs.
 * arch_in_rcu_eqs() is false on x86, so the idle test is is_idle_task(current).
 *
 * Each statement that calls primitives is one step (an instruction boundary
 * where an interrupt may land); `name:` names a step; `a(), b();` is one step.
 */
#design  "generic-entry"
#summary "Linux 6.x kernel/entry/common.c: CT on every user entry/exit, ct_irq_enter only from idle"

#include "nmi-idle.h"

#entry syscall        do_syscall_64
#entry irq            asm_sysvec
#entry exception      asm_exc_page_fault
#entry nmi            asm_exc_nmi
#entry debug          asm_exc_int3
#entry ret_from_fork  ret_from_fork
#entry idle           do_idle

/* IRQs off; arch_enter_from_user_mode() and lockdep have no model state. */
static __always_inline noinstr void enter_from_user_mode(struct pt_regs *regs)
{
	enter_from_user_mode: CT_WARN_ON(__ct_state() != CT_STATE_USER), user_exit_irqoff();
}

/* exit_to_user_mode_prepare() with exit_to_user_mode_loop() inlined; IRQs off. */
static __always_inline void exit_to_user_mode_prepare(struct pt_regs *regs)
{
	tick_nohz_user_enter_prepare();
	while (read_thread_flags() & EXIT_TO_USER_MODE_WORK) {
		local_irq_enable_exit_to_user: local_irq_enable();
		if (read_thread_flags() & _TIF_NEED_RESCHED)
			schedule();
		if (read_thread_flags() & _TIF_SIGPENDING)
			arch_do_signal_or_restart(regs);
		if (read_thread_flags() & _TIF_NOTIFY_RESUME)
			resume_user_mode_work(regs);
		local_irq_disable_exit_to_user: local_irq_disable();
		tick_nohz_user_enter_prepare: tick_nohz_user_enter_prepare();
	}
	/* arch_exit_work(): _TIF_USER_RETURN_NOTIFY -> fire_user_return_notifiers() */
	arch_exit_to_user_mode_prepare(regs);
}

/* entry_SYSCALL_64 -> do_syscall_64() -> sysretq */
noinstr void do_syscall_64(struct pt_regs *regs)
{
	entry_SYSCALL_64: hw_syscall();
	enter_from_user_mode(regs);
	instrumentation_begin();
	local_irq_enable();
	syscall_enter_from_user_mode_work: trace_sys_enter(regs);
	do_syscall_x64(regs);
	syscall_exit_to_user_mode_work: CT_WARN_ON(ct_state() != CT_STATE_KERNEL), trace_sys_exit(regs);
	local_irq_disable_exit_to_user: local_irq_disable();
	exit_to_user_mode_prepare(regs);
	instrumentation_end();
	exit_to_user_mode: user_enter_irqoff();
	sysretq();
}

/* A new task's first return to user mode: a user_enter with no user_exit before it. */
noinstr void ret_from_fork(struct pt_regs *regs)
{
	instrumentation_begin();
	schedule_tail: local_irq_enable();
	syscall_exit_to_user_mode_work: trace_sys_exit(regs);
	local_irq_disable_exit_to_user: local_irq_disable();
	exit_to_user_mode_prepare(regs);
	instrumentation_end();
	exit_to_user_mode: user_enter_irqoff();
	iretq();
}

noinstr irqentry_state_t irqentry_enter(struct pt_regs *regs)
{
	irqentry_state_t ret = { .exit_rcu = false };

	if (user_mode(regs)) {
		irqentry_enter_from_user_mode: CT_WARN_ON(__ct_state() != CT_STATE_USER), user_exit_irqoff();
		return ret;
	}
	/* Unconditionally, even if RCU is already watching. */
	if (is_idle_task(current)) {
		ct_irq_enter();
		ret.exit_rcu = true;
		return ret;
	}
	instrumentation_begin();
	rcu_irq_enter_check_tick();
	instrumentation_end();
	return ret;
}

noinstr void irqentry_exit(struct pt_regs *regs, irqentry_state_t state)
{
	bool resched;

	if (user_mode(regs)) {
		/* irqentry_exit_to_user_mode() */
		instrumentation_begin();
		exit_to_user_mode_prepare(regs);
		instrumentation_end();
		exit_to_user_mode: user_enter_irqoff();
	} else if (!regs_irqs_disabled(regs)) {
		if (state.exit_rcu) {
			/* Coming from idle/EQS: no preemption, just leave RCU. */
			ct_irq_exit();
			return;
		}
		instrumentation_begin();
		resched = irqentry_exit_cond_resched();
		if (resched)
			preempt_schedule_irq();
		instrumentation_end();
	} else {
		if (state.exit_rcu)
			ct_irq_exit();
	}
}

/* DEFINE_IDTENTRY_SYSVEC / DEFINE_IDTENTRY_IRQ: timer, reschedule IPI, irq_work, devices. */
noinstr void asm_sysvec(struct pt_regs *regs)
{
	idtentry: hw_irq_delivery();
	irqentry_state_t state = irqentry_enter(regs);
	instrumentation_begin();
	irq_enter_rcu();
	sysvec_handler: handle_irq(regs);
	irq_exit_rcu();
	instrumentation_end();
	irqentry_exit(regs, state);
	iretq();
}

/* DEFINE_IDTENTRY_RAW_ERRORCODE(exc_page_fault) (and other exceptions). */
noinstr void asm_exc_page_fault(struct pt_regs *regs)
{
	idtentry: hw_exception_delivery();
	irqentry_state_t state = irqentry_enter(regs);
	instrumentation_begin();
	cond_local_irq_enable(regs);
	handle_mm_fault(regs);
	local_irq_disable();
	instrumentation_end();
	irqentry_exit(regs, state);
	iretq();
}

/*
 * exc_int3()/exc_debug() from kernel mode: a breakpoint can hit anywhere, entry
 * code and noinstr windows included, so the kernel side enters like an NMI
 * (irqentry_nmi_enter()), never through irqentry_enter().
 */
noinstr void asm_exc_int3(struct pt_regs *regs)
{
	asm_exc_int3: hw_exception_delivery();
	irqentry_nmi_enter: __nmi_enter(), ct_nmi_enter();
	instrumentation_begin();
	do_int3(regs);
	instrumentation_end();
	irqentry_nmi_exit: ct_nmi_exit(), __nmi_exit();
	iretq();
}
