/*
 * weisbecker-2015: the patch in the seed (see weisbecker-2015-entry.h for its
 * entry paths). prepare_exit_to_usermode() runs the work loop; per iteration it
 * enables IRQs, then exception_enter(), does the work, exception_exit(), and
 * disables IRQs.
 */
#design  "weisbecker-2015"
#summary "the seed's patch: no CT on IRQs; exception_enter/exit around each exit-loop iteration"
#era     "pre-noinstr"
#include "weisbecker-2015-entry.h"

#entry syscall        entry_SYSCALL_64
#entry irq            interrupt
#entry exception      page_fault
#entry nmi            asm_exc_nmi
#entry debug          int3_paranoid
#entry ret_from_fork  ret_from_fork
#entry idle           do_idle

/* The patched prepare_exit_to_usermode(). */
static noinstr void prepare_exit_to_usermode(struct pt_regs *regs)
{
	enum ctx_state prev_state;

	while (read_thread_flags() & (EXIT_TO_USER_MODE_WORK | _TIF_USER_RETURN_NOTIFY)) {
		/* "We have work to do." */
		local_irq_enable();
		prev_state = exception_enter(), exit_to_usermode_loop_work(regs);
		exception_exit(prev_state);
		/* "Disable IRQs and retry" */
		local_irq_disable();
	}
}
