/*
 * ct.pml: a reduced Promela model of the question `ctxtrack check` answers for generic-entry on
 * one nohz_full CPU, for calibrating SPIN's speed on this machine (`ctxtrack bench check --spin
 * crates/check/spin/ct.pml`). It is NOT equivalent to ctxtrack's model: it has system calls,
 * IRQs from user, kernel and idle, NMIs and breakpoints anywhere, nested to depth 3, the
 * exit-to-user work loop with TIF_NEED_RESCHED and TIF_SIGPENDING, the idle loop, an RCU reader
 * in the system call body and a grace-period observer; it has no page faults, preemption of
 * kernel code, vtime, tick dependencies, softirqs or CT_WORK, and one root state.
 *
 * The state word, ct->nesting and ct->nmi_nesting follow kernel/context_tracking.c
 * (ct_kernel_enter/exit, ct_nmi_enter/exit); the counter is kept modulo 4 (as
 * CONFIG_RCU_DYNTICKS_TORTURE's 2 bits). Each statement guarded by the running level is one
 * step, where an interrupt may land.
 */
#define USER    0
#define KERNEL  1
#define IDLE    2
#define HALTED  3
#define DEPTH   3
#define NONIDLE 8   /* CT_NESTING_IRQ_NONIDLE, scaled down: only "not 0 or 1" matters */

byte ctx = USER;        /* context bits of the state word */
byte cnt = 0;           /* RCU watching counter, mod 4: odd = watching (user: even) */
byte nesting = 0;       /* ct->nesting */
byte nmi_nesting = 0;   /* ct->nmi_nesting */
bit  irqs = 1;          /* IRQs enabled */
byte mode = USER;       /* what the CPU runs: USER, KERNEL, HALTED */
bit  is_idle = 0;       /* current is the idle task */
byte top = 0;           /* level now running (0: the task, 1..DEPTH: nested entries) */
byte depth = 0;         /* entries nested on the task */
bit  in_nmi = 0;
bit  need_resched = 0;
bit  sigpending = 0;
bit  reader = 0;        /* the task is inside rcu_read_lock() */
bit  gp = 0;            /* a grace period is running */
bit  old_reader = 0;    /* ... and the reader began before it */
byte snap = 0;          /* the grace period's snapshot of the counter */
bit  snapped = 0;

#define watching   (cnt & 1)
#define ct_kernel_enter(c)  cnt = (cnt + 1) % 4; nesting = 1; nmi_nesting = NONIDLE; ctx = c
#define ct_kernel_exit(c)   assert(nesting == 1); nesting = 0; nmi_nesting = 0; ctx = c; cnt = (cnt + 1) % 4

inline ct_nmi_enter() {
	if
	:: !watching -> cnt = (cnt + 1) % 4; nmi_nesting = nmi_nesting + 1
	:: else -> nmi_nesting = nmi_nesting + 2
	fi
}
inline ct_nmi_exit() {
	assert(watching);
	if
	:: nmi_nesting != 1 -> assert(nmi_nesting >= 2); nmi_nesting = nmi_nesting - 2
	:: else -> nmi_nesting = 0; cnt = (cnt + 1) % 4
	fi
}

/* An IRQ at level l (irqentry_enter/exit of kernel/entry/common.c). Each step runs only while
 * its level is the top one (the interrupted levels wait). */
proctype irq(byte l; byte from; bit was_irqs)
{
	bit exit_rcu = 0;
	d_step { top == l;
		if
		:: from == USER -> assert(ctx == USER); ct_kernel_enter(KERNEL)
		:: from != USER && is_idle -> ct_nmi_enter(); exit_rcu = 1
		:: else -> skip   /* rcu_irq_enter_check_tick(): RCU watches */
		fi }
	d_step { top == l; assert(watching); need_resched = need_resched | (from == HALTED) }
	d_step { top == l;
		if
		:: from == USER -> assert(ctx == KERNEL); ct_kernel_exit(USER)
		:: from != USER && exit_rcu -> ct_nmi_exit()
		:: else -> skip
		fi }
	d_step { top == l; mode = from; irqs = was_irqs; depth--; top = l - 1 }
}

/* An NMI at level l (irqentry_nmi_enter/exit). */
proctype nmi(byte l; byte from; bit was_irqs)
{
	d_step { top == l; ct_nmi_enter() }
	d_step { top == l; assert(watching) }
	d_step { top == l; ct_nmi_exit() }
	d_step { top == l; mode = from; irqs = was_irqs; in_nmi = 0; depth--; top = l - 1 }
}

/* A breakpoint at level l (exc_int3): from user mode it enters like an IRQ, from the kernel
 * (anywhere, noinstr windows included) like an NMI (irqentry_nmi_enter/exit). */
proctype exc(byte l; byte from; bit was_irqs)
{
	d_step { top == l;
		if
		:: from == USER -> assert(ctx == USER); ct_kernel_enter(KERNEL)
		:: else -> ct_nmi_enter()
		fi }
	d_step { top == l; assert(watching) }
	d_step { top == l;
		if
		:: from == USER -> assert(ctx == KERNEL); ct_kernel_exit(USER)
		:: else -> ct_nmi_exit()
		fi }
	d_step { top == l; mode = from; irqs = was_irqs; depth--; top = l - 1 }
}

/* Interrupts arrive between any two steps of the running level. */
active proctype hw()
{
end:	do
	/* (_nr_pr: a finished entry has died before the next one starts) */
	:: atomic { depth < DEPTH && irqs && _nr_pr == depth + 2 ->
		depth++; top = depth; run irq(depth, mode, irqs); mode = KERNEL; irqs = 0 }
	:: atomic { depth < DEPTH && !in_nmi && _nr_pr == depth + 2 ->
		depth++; top = depth; in_nmi = 1; run nmi(depth, mode, irqs); mode = KERNEL; irqs = 0 }
	:: atomic { depth < DEPTH && mode != HALTED && _nr_pr == depth + 2 ->
		depth++; top = depth; run exc(depth, mode, irqs); mode = KERNEL; irqs = 0 }
	:: need_resched == 0 -> need_resched = 1     /* a remote resched_curr() */
	:: sigpending == 0 -> sigpending = 1         /* a remote signal_wake_up() */
	/* The grace-period observer: starts while a reader runs, snapshots, scans. */
	:: atomic { !gp && reader -> gp = 1; old_reader = 1; snapped = 0 }
	:: atomic { gp && !snapped -> snap = cnt; snapped = 1;
		if :: !(snap & 1) -> assert(!old_reader); gp = 0 :: else -> skip fi }
	:: atomic { gp && snapped && cnt != snap -> assert(!old_reader); gp = 0 }
	od
}

/* The worker task on its CPU (level 0): system calls, whose body reads under RCU and may
 * block, which runs the idle loop until a wakeup. */
active proctype task() provided (top == 0)
{
user:
	atomic { mode = KERNEL; irqs = 0 }                  /* entry_SYSCALL_64 */
	d_step { assert(ctx == USER); ct_kernel_enter(KERNEL) }
	irqs = 1;
	d_step { assert(watching); reader = 1 }            /* rcu_read_lock() */
	d_step { assert(watching); reader = 0; old_reader = 0 }
	if
	:: goto idle                                       /* blocks: schedule() to idle */
	:: skip
	fi;
exit:
	irqs = 0;
	do                                                 /* exit_to_user_mode_loop() */
	:: need_resched -> irqs = 1; need_resched = 0; irqs = 0
	:: sigpending -> irqs = 1; sigpending = 0; irqs = 0
	:: else -> break
	od;
	atomic { assert(ctx == KERNEL); ct_kernel_exit(USER) }
	d_step { assert(!watching); mode = USER; irqs = 1 }
	goto user;
idle:
	atomic { is_idle = 1; irqs = 0 }
	d_step { ct_kernel_exit(IDLE) }                    /* ct_idle_enter() */
	d_step { mode = HALTED; irqs = 1 }                 /* sti; hlt */
	need_resched;                                      /* woken by an IRQ */
	d_step { mode = KERNEL; irqs = 0 }
	d_step { ct_kernel_enter(KERNEL) }                 /* ct_idle_exit() */
	d_step { is_idle = 0; need_resched = 0; irqs = 1 } /* schedule() back to the worker */
	goto exit
}
