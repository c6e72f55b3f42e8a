/*
 * weisbecker-hoisted: the seed's "Ideally we should do" -- one
 * exception_enter()/exception_exit() around the whole exit loop, entered only
 * when there is work, instead of one pair per iteration:
 *
 *	if (cached_flags) {
 *		exception_enter()
 *		while (true) { do the exit loop }
 *		exception_exit()
 *	}
 *
 * Everything else is weisbecker-2015's (the shared entry paths). Choice where
 * the seed is silent: exception_enter() runs with IRQs still off (before the
 * loop enables them), as the pseudo-code places it before the loop.
 */
#design  "weisbecker-hoisted"
#summary "the seed's 'ideally': one exception_enter/exit around the whole exit loop, only with work"
#era     "pre-noinstr"
#include "weisbecker-2015-entry.h"

#entry syscall        entry_SYSCALL_64
#entry irq            interrupt
#entry exception      page_fault
#entry nmi            asm_exc_nmi
#entry debug          int3_paranoid
#entry ret_from_fork  ret_from_fork
#entry idle           do_idle

static noinstr void prepare_exit_to_usermode(struct pt_regs *regs)
{
	enum ctx_state prev_state;

	if (read_thread_flags() & (EXIT_TO_USER_MODE_WORK | _TIF_USER_RETURN_NOTIFY)) {
		prev_state = exception_enter();
		do {
			local_irq_enable(), exit_to_usermode_loop_work(regs);
			local_irq_disable();
		} while (read_thread_flags() & (EXIT_TO_USER_MODE_WORK | _TIF_USER_RETURN_NOTIFY));
		exception_exit(prev_state);
	}
}
