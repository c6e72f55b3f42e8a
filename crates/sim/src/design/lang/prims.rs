//! The primitives a design file may call: the core's Linux-named API and the simulated kernel's
//! services, each with its instrumentation class and cost key, in one table ([`PRIMS`]).
//! ARCHITECTURE.md prints this table; `ctxtrack design prims` lists it.

use crate::cost::CostKey as C;
use crate::design::Flow;
use crate::machine::K;
use crate::machine::{preempt, tif};
use ctxtrack_core::{CtState, Violation};

/// How a primitive may be used and what the `noinstr` rule says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// May run where RCU is not watching (`noinstr` code): the core's entry API, raw IRQ flags.
    Noinstr,
    /// Instrumentable (tracepoints, lockdep, traced IRQ flags): in a `noinstr` function only
    /// between `instrumentation_begin()` and `instrumentation_end()`.
    Instr,
    /// The work an entry exists for (handlers, syscall bodies, scheduling): instrumentable, and
    /// priced as work rather than entry overhead.
    Work,
    /// A hardware action (`sysretq`, `iretq`, `sti; hlt`, the CPU's delivery of an entry):
    /// `noinstr` by nature.
    Hardware,
    /// A pure test, for conditions and values: never a step of its own.
    Query,
    /// A call into a kernel path that is not entry code (the syscall table): free when alone.
    KernelCall,
    /// Patchable text in `noinstr` code (a `DEFINE_STATIC_KEY_*_NOINSTR` key, a static call):
    /// allowed there, but the step that runs it counts as patchable for deferred work.
    Patchable,
}

/// What a primitive returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// Nothing.
    Void,
    /// `bool`.
    Bool,
    /// An integer (flags, counts).
    Int,
    /// `enum ctx_state`.
    CtxState,
}

/// What an argument must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// `regs` (the entry's `struct pt_regs *`).
    Regs,
    /// `current`.
    Current,
    /// A value (a variable or a constant).
    Value,
    /// A condition (for `CT_WARN_ON`).
    Cond,
}

/// One primitive.
pub struct Prim {
    /// Its Linux name.
    pub name: &'static str,
    /// Its arguments.
    pub args: &'static [Arg],
    /// Its result.
    pub ret: Ret,
    /// Instrumentation class.
    pub class: Class,
    /// Base cost of a step it belongs to (a step costs its first priced primitive's key).
    pub cost: C,
    /// What it models.
    pub doc: &'static str,
    /// What it does.
    pub run: Imp,
}

/// A primitive's implementation, by shape (the common shapes run without argument vectors or
/// result tuples).
#[derive(Clone, Copy)]
pub enum Imp {
    /// No argument, no result, falls through.
    Void(fn(&mut K)),
    /// Arguments evaluated in order; a result (0 for void ones); falls through.
    Value(fn(&mut K, &[i64]) -> i64),
    /// Decides where control goes (`sysretq`, `iretq`, `sti; hlt`, `schedule()`, a kernel call).
    Flow(fn(&mut K) -> Flow),
}

/// Primitives are compared by identity (one entry of [`PRIMS`] each).
impl PartialEq for Prim {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self, o)
    }
}

impl std::fmt::Debug for Prim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

const fn p(
    name: &'static str,
    args: &'static [Arg],
    ret: Ret,
    class: Class,
    cost: C,
    doc: &'static str,
    run: Imp,
) -> Prim {
    Prim {
        name,
        args,
        ret,
        class,
        cost,
        doc,
        run,
    }
}

fn ctx(s: CtState) -> i64 {
    s as i64
}

fn from_ctx(v: i64) -> CtState {
    match v {
        1 => CtState::Idle,
        2 => CtState::User,
        3 => CtState::Guest,
        _ => CtState::Kernel,
    }
}

/// `CT_STATE_DISABLED`: `ct_state()` while context tracking is off.
pub const CT_STATE_DISABLED: i64 = -1;

/// A synthetic thread flag: `TIF_NOHZ`, set on every task while the context-tracking key is on
/// (Linux < 5.x), so `read_thread_flags() & _TIF_NOHZ` reads like the 4.x asm test.
pub const TIF_NOHZ: u32 = 1 << 19;

/// Named constants a design may use.
pub const CONSTS: &[(&str, i64)] = &[
    ("true", 1),
    ("false", 0),
    ("NULL", 0),
    ("CT_STATE_DISABLED", CT_STATE_DISABLED),
    ("CT_STATE_KERNEL", CtState::Kernel as i64),
    ("CT_STATE_IDLE", CtState::Idle as i64),
    ("CT_STATE_USER", CtState::User as i64),
    ("CT_STATE_GUEST", CtState::Guest as i64),
    ("_TIF_NOTIFY_RESUME", tif::NOTIFY_RESUME as i64),
    ("_TIF_SIGPENDING", tif::SIGPENDING as i64),
    ("_TIF_NEED_RESCHED", tif::NEED_RESCHED as i64),
    ("_TIF_USER_RETURN_NOTIFY", tif::USER_RETURN_NOTIFY as i64),
    ("_TIF_NOHZ", TIF_NOHZ as i64),
    ("EXIT_TO_USER_MODE_WORK", tif::EXIT_TO_USER_MODE_WORK as i64),
    ("HARDIRQ_OFFSET", preempt::HARDIRQ_OFFSET as i64),
];

use Arg::*;
use Class::*;
use Ret::Void;

/// Every primitive, in the order ARCHITECTURE.md lists them.
pub static PRIMS: &[Prim] = &[
    // ---------------------------------------------------------------- context tracking (core)
    p("user_exit_irqoff", &[], Void, Noinstr, C::Glue, "ct_user_exit() behind the static key, IRQs off (generic entry)", Imp::Void(|k| k.ct().user_exit_irqoff())),
    p("user_enter_irqoff", &[], Void, Noinstr, C::Glue, "ct_user_enter() behind the static key, IRQs off", Imp::Void(|k| k.ct().user_enter_irqoff())),
    p("user_exit", &[], Void, Noinstr, C::Glue, "4.x user_exit(): out-of-line call, key tested inside, irq save/restore", Imp::Void(|k| k.ct().user_exit_callable())),
    p("user_enter", &[], Void, Noinstr, C::Glue, "4.x user_enter(): irq-saving form; rcu_user_enter() -> rcu_eqs_enter_common() flushes a deferred rcuog wakeup first", Imp::Void(|k| {
        k.rcu_eqs_enter_common_4x(true);
        k.ct().user_enter();
    })),
    p("exception_enter", &[], Ret::CtxState, Noinstr, C::Glue, "prev_state = exception_enter(): leave USER if in it, return the previous state", Imp::Value(|k, _| ctx(k.ct().exception_enter()))),
    p("exception_exit", &[Value], Void, Noinstr, C::Glue, "4.x exception_exit(prev_state): back to USER if prev_state was (rcu_user_enter() -> rcu_eqs_enter_common() flushes a deferred rcuog wakeup first)", Imp::Value(|k, a| {
        let prev = from_ctx(a[0]);
        if prev != CtState::Kernel {
            k.rcu_eqs_enter_common_4x(true);
        }
        k.ct().exception_exit(prev);
        0
    })),
    p("ct_irq_enter", &[], Void, Noinstr, C::Glue, "ct_irq_enter(): make RCU watch in an IRQ from idle/EQS", Imp::Void(|k| k.ct().ct_irq_enter())),
    p("ct_irq_exit", &[], Void, Noinstr, C::Glue, "ct_irq_exit()", Imp::Void(|k| k.ct().ct_irq_exit())),
    p("rcu_irq_enter", &[], Void, Noinstr, C::Glue, "4.x rcu_irq_enter() (now ct_irq_enter())", Imp::Void(|k| k.ct().rcu_irq_enter())),
    p("rcu_irq_exit", &[], Void, Noinstr, C::Glue, "4.x rcu_irq_exit(): leaving the outermost level, rcu_eqs_enter_common() flushes a deferred rcuog wakeup first", Imp::Void(|k| {
        k.rcu_eqs_enter_common_4x(false);
        k.ct().rcu_irq_exit();
    })),
    p("ct_nmi_enter", &[], Void, Noinstr, C::Glue, "ct_nmi_enter() (4.x rcu_nmi_enter())", Imp::Void(|k| k.ct().ct_nmi_enter())),
    p("ct_nmi_exit", &[], Void, Noinstr, C::Glue, "ct_nmi_exit()", Imp::Void(|k| k.ct().ct_nmi_exit())),
    p("ct_idle_enter", &[], Void, Noinstr, C::Glue, "ct_idle_enter(): the idle EQS", Imp::Void(|k| k.ct().ct_idle_enter())),
    p("ct_idle_exit", &[], Void, Noinstr, C::Glue, "ct_idle_exit()", Imp::Void(|k| k.ct().ct_idle_exit())),
    p("rcu_irq_enter_check_tick", &[], Void, Instr, C::Glue, "rcu_irq_enter_check_tick(): an IRQ that hit the kernel while RCU watches", Imp::Void(|k| k.ct().rcu_irq_enter_check_tick())),
    p("rcu_irq_exit_check_preempt", &[], Void, Instr, C::Glue, "rcu_irq_exit_check_preempt(): nesting sanity before preempting", Imp::Void(|k| k.ct().rcu_irq_exit_check_preempt())),
    p("vtime_account_irq_enter", &[], Void, Noinstr, C::Glue, "4.x account_irq_enter_time(): vtime flushes the interrupted context", Imp::Void(|k| k.ct().vtime_common_account_irq_enter())),
    p("vtime_account_irq_exit", &[], Void, Noinstr, C::Glue, "4.x account_irq_exit_time()", Imp::Void(|k| k.ct().vtime_account_irq_exit())),
    p("CT_WARN_ON", &[Cond], Void, Noinstr, C::None, "CT_WARN_ON(cond): WARN when context tracking is enabled and cond holds; cond is `ct_state() != CT_STATE_USER` (enter_from_user_mode) or `... != CT_STATE_KERNEL` (syscall exit)", Imp::Value(|k, a| {
        // a[0]: the condition; a[1]: the violation (filled in by the loader from the condition).
        let v = if a[1] == CtState::User as i64 { Violation::EnterFromUserNotUser } else { Violation::SyscallExitNotKernel };
        k.ct().ct_warn_on(a[0] != 0, v);
        0
    })),
    // ---------------------------------------------------------------- IRQ flags and counts
    p("local_irq_enable", &[], Void, Instr, C::Glue, "local_irq_enable() (traced)", Imp::Void(|k| k.local_irq_enable())),
    p("local_irq_disable", &[], Void, Instr, C::Glue, "local_irq_disable() (traced)", Imp::Void(|k| k.local_irq_disable())),
    p("static_branch_noinstr", &[], Void, Patchable, C::None, "static_branch_unlikely(&key) of a DEFINE_STATIC_KEY_*_NOINSTR key (or a static call) in noinstr code, e.g. mds_idle_clear_cpu_buffers()'s cpu_buf_idle_clear: patchable text that may run before an entry flushes deferred work (the CT_WORK series lets only such keys stay patchable in early entry, and flips them with IPIs)", Imp::Void(|_| {})),
    p("raw_local_irq_enable", &[], Void, Noinstr, C::Glue, "raw_local_irq_enable() (asm ENABLE_INTERRUPTS)", Imp::Void(|k| k.local_irq_enable())),
    p("raw_local_irq_disable", &[], Void, Noinstr, C::Glue, "raw_local_irq_disable() (asm DISABLE_INTERRUPTS)", Imp::Void(|k| k.local_irq_disable())),
    p("cond_local_irq_enable", &[Regs], Void, Instr, C::Glue, "if (!regs_irqs_disabled(regs)) local_irq_enable(): an exception handler re-enables what it interrupted", Imp::Void(|k| {
        if k.regs_irqs_on() {
            k.local_irq_enable();
        }
    })),
    p("irq_enter_rcu", &[], Void, Instr, C::Glue, "irq_enter_rcu(): preempt_count += HARDIRQ_OFFSET", Imp::Void(|k| k.irq_enter_rcu())),
    p("irq_exit_rcu", &[], Void, Instr, C::Glue, "irq_exit_rcu(): leave hardirq; run pending softirqs with IRQs on (invoke_softirq() -> __do_softirq(), steps of their own) unless in_interrupt() or ksoftirqd runs them; tick_irq_exit()", Imp::Void(|k| k.irq_exit_rcu())),
    p("__nmi_enter", &[], Void, Noinstr, C::None, "__nmi_enter(): preempt_count += NMI_OFFSET + HARDIRQ_OFFSET", Imp::Void(|k| k.nmi_enter_count())),
    p("__nmi_exit", &[], Void, Noinstr, C::None, "__nmi_exit()", Imp::Void(|k| k.nmi_exit_count())),
    p("preempt_count_add", &[Value], Void, Noinstr, C::None, "preempt_count_add(n)", Imp::Value(|k, a| {
        k.preempt_count_add(a[0] as u32);
        0
    })),
    p("preempt_count_sub", &[Value], Void, Noinstr, C::None, "preempt_count_sub(n)", Imp::Value(|k, a| {
        k.preempt_count_sub(a[0] as u32);
        0
    })),
    // ---------------------------------------------------------------- tracing, tick, exit work
    p("trace_sys_enter", &[Regs], Void, Instr, C::Glue, "syscall_enter_from_user_mode_work(): trace_sys_enter", Imp::Void(|k| k.trace_sys_enter())),
    p("trace_sys_exit", &[Regs], Void, Instr, C::Glue, "syscall_exit_work(): trace_sys_exit", Imp::Void(|k| k.trace_sys_exit())),
    p("tick_nohz_user_enter_prepare", &[], Void, Instr, C::Glue, "tick_nohz_user_enter_prepare()", Imp::Void(|k| k.tick_nohz_user_enter_prepare())),
    p("tick_nohz_idle_stop_tick", &[], Void, Instr, C::Glue, "tick_nohz_idle_stop_tick()", Imp::Void(|k| k.tick_nohz_idle_stop_tick())),
    p("__current_set_polling", &[], Void, Noinstr, C::None, "__current_set_polling(): the idle task polls TIF_NEED_RESCHED, remote wakers skip the IPI", Imp::Void(|k| k.current_set_polling())),
    p("__current_clr_polling", &[], Void, Noinstr, C::None, "__current_clr_polling()", Imp::Void(|k| k.current_clr_polling())),
    p("tick_nohz_idle_exit", &[], Void, Instr, C::Glue, "tick_nohz_idle_exit()", Imp::Void(|k| k.tick_nohz_idle_exit())),
    p("arch_exit_to_user_mode_prepare", &[Regs], Void, Instr, C::Glue, "arch_exit_to_user_mode_prepare(): _TIF_USER_RETURN_NOTIFY → fire_user_return_notifiers()", Imp::Void(|k| k.fire_user_return_notifiers())),
    p("fire_user_return_notifiers", &[], Void, Work, C::None, "fire_user_return_notifiers() (4.x exit loop)", Imp::Void(|k| k.fire_user_return_notifiers())),
    p("schedule", &[], Void, Work, C::None, "schedule()", Imp::Flow(|k| k.schedule())),
    p("schedule_idle", &[], Void, Work, C::None, "schedule_idle()", Imp::Void(|k| {
        k.schedule();
    })),
    p("preempt_schedule_irq", &[], Void, Work, C::None, "preempt_schedule_irq()", Imp::Void(|k| k.preempt_schedule_irq())),
    p("irqentry_exit_cond_resched", &[], Ret::Bool, Instr, C::Glue, "raw_irqentry_exit_cond_resched() up to its decision: if (!preempt_count()) { rcu_irq_exit_check_preempt(); return need_resched(); }", Imp::Value(|k, _| {
        let mut go = false;
        if k.preemption_enabled() {
            k.ct().rcu_irq_exit_check_preempt();
            go = k.need_resched();
        }
        go as i64
    })),
    p("arch_do_signal_or_restart", &[Regs], Void, Work, C::Signal, "arch_do_signal_or_restart()", Imp::Void(|k| k.arch_do_signal_or_restart())),
    p("do_signal", &[Regs], Void, Work, C::None, "4.x do_signal() (priced as a body)", Imp::Void(|k| {
        k.extra_cycles += k.m.cost.signal;
        k.arch_do_signal_or_restart();
    })),
    p("resume_user_mode_work", &[Regs], Void, Work, C::NotifyResume, "resume_user_mode_work()", Imp::Void(|k| k.resume_user_mode_work())),
    p("tracehook_notify_resume", &[Regs], Void, Work, C::None, "4.x tracehook_notify_resume() (priced as a body)", Imp::Void(|k| {
        k.extra_cycles += k.m.cost.notify_resume;
        k.resume_user_mode_work();
    })),
    // ---------------------------------------------------------------- RCU readers, offloaded callbacks
    p("rcu_read_lock", &[], Void, Instr, C::None, "rcu_read_lock() (non-preemptible RCU; also a tracepoint's rcu_read_lock_sched_notrace()): a read-side section a grace period must wait for", Imp::Void(|k| k.rcu_read_lock())),
    p("rcu_read_unlock", &[], Void, Instr, C::None, "rcu_read_unlock()", Imp::Void(|k| k.rcu_read_unlock())),
    p("rcu_nocb_flush_deferred_wakeup", &[], Void, Instr, C::None, "rcu_nocb_flush_deferred_wakeup(): wake the rcuog kthread if a call_rcu() with IRQs off deferred it (6.x do_idle(), tick_nohz_user_enter_prepare())", Imp::Void(|k| k.rcu_nocb_flush_deferred_wakeup())),
    p("do_nocb_deferred_wakeup", &[], Void, Instr, C::None, "do_nocb_deferred_wakeup(rdp): the same flush, as 4.x rcu_eqs_enter_common() calls it", Imp::Void(|k| {
        k.do_nocb_deferred_wakeup();
    })),
    p("rcu_irq_work_resched", &[], Void, Noinstr, C::None, "rcu_irq_work_resched() (noinstr, instrumentation inside; 6.1 __ct_user_enter() without generic entry, 5.12 rcu_user_enter()): flush the deferred wakeup; if a reschedule is then due, queue an irq_work self-IPI", Imp::Void(|k| k.rcu_irq_work_resched())),
    // ---------------------------------------------------------------- handlers
    p("handle_irq", &[Regs], Void, Work, C::None, "the vector's handler (sysvec_apic_timer_interrupt, reschedule, irq_work, call-function; a device's handle_irq_event() runs in steps of its own, in a read-side section, and raises NET_RX)", Imp::Void(|k| k.handle_irq_vector())),
    p("handle_mm_fault", &[Regs], Void, Work, C::PageFault, "exc_page_fault → handle_mm_fault (a minor fault)", Imp::Void(|k| k.handle_exception())),
    p("default_do_nmi", &[Regs], Void, Work, C::NmiHandler, "default_do_nmi() (a perf NMI; nmi_handle() runs the handlers in a read-side section, steps of their own)", Imp::Void(|k| k.default_do_nmi())),
    p("do_int3", &[Regs], Void, Work, C::Glue, "do_int3(): a breakpoint nobody owns", Imp::Void(|k| k.do_int3())),
        p("call_sys_call_table", &[Regs], Void, Work, C::None, "4.x asm fast path `call *sys_call_table(,%rax,8)`: a work step of its own that enters the syscall table", Imp::Flow(|k| Flow::Call(k.sys_call_table()))),
    p("retint_kernel", &[Regs], Void, Noinstr, C::Glue, "4.x asm retint_kernel: with CONFIG_PREEMPT, preempt_schedule_irq() when the interrupted kernel code had IRQs on and may be preempted (one step)", Imp::Void(|k| {
        if k.regs_irqs_on() && k.preemption_enabled() && k.need_resched() {
            k.preempt_schedule_irq();
        }
    })),
p("do_syscall_x64", &[Regs], Void, KernelCall, C::None, "do_syscall_x64(): sys_call_table (fd lookup under RCU, the body)", Imp::Flow(|k| Flow::Call(k.sys_call_table()))),
    // ---------------------------------------------------------------- hardware
    p("hw_syscall", &[], Void, Hardware, C::SyscallInsn, "the `syscall` instruction's entry (entry_SYSCALL_64)", Imp::Void(|_| {})),
    p("hw_irq_delivery", &[], Void, Hardware, C::IrqDelivery, "IDT delivery of an interrupt or NMI", Imp::Void(|_| {})),
    p("hw_exception_delivery", &[], Void, Hardware, C::ExceptionDelivery, "IDT delivery of an exception", Imp::Void(|_| {})),
    p("sysretq", &[], Void, Hardware, C::Sysret, "sysretq: back to user mode", Imp::Flow(|_| Flow::ReturnToUser)),
    p("iretq", &[], Void, Hardware, C::Iret, "iretq: to user or to the interrupted kernel context, as the saved CS says", Imp::Flow(|k| k.iret())),
    p("safe_halt", &[], Void, Hardware, C::Glue, "`sti; hlt` (arch_cpu_idle): wait for an interrupt", Imp::Flow(|_| Flow::Halt)),
    // ---------------------------------------------------------------- queries
    p("user_mode", &[Regs], Ret::Bool, Query, C::None, "user_mode(regs): the entry came from user mode", Imp::Value(|k, _| k.regs_user() as i64)),
    p("regs_irqs_disabled", &[Regs], Ret::Bool, Query, C::None, "regs_irqs_disabled(regs)", Imp::Value(|k, _| !k.regs_irqs_on() as i64)),
    p("is_idle_task", &[Current], Ret::Bool, Query, C::None, "is_idle_task(current)", Imp::Value(|k, _| k.is_idle_task() as i64)),
    p("need_resched", &[], Ret::Bool, Query, C::None, "need_resched()", Imp::Value(|k, _| k.need_resched() as i64)),
    p("current_clr_polling_and_test", &[], Ret::Bool, Query, C::None, "current_clr_polling_and_test(): stop polling TIF_NEED_RESCHED (wakers send IPIs again), then need_resched()", Imp::Value(|k, _| k.current_clr_polling_and_test() as i64)),
    p("read_thread_flags", &[], Ret::Int, Query, C::None, "read_thread_flags() (with the synthetic _TIF_NOHZ while the key is on)", Imp::Value(|k, _| {
        let f = k.read_thread_flags() | if k.tif_nohz() { TIF_NOHZ } else { 0 };
        f as i64
    })),
    p("preemption_enabled", &[], Ret::Bool, Query, C::None, "IS_ENABLED(CONFIG_PREEMPTION) && !preempt_count() (the idle task never is)", Imp::Value(|k, _| k.preemption_enabled() as i64)),
    p("in_interrupt", &[], Ret::Bool, Query, C::None, "in_interrupt(): hardirq, softirq or NMI context", Imp::Value(|k, _| {
        let pc = k.m.cpus[k.cpu].hw.preempt_count;
        (pc & (preempt::SOFTIRQ_MASK | preempt::HARDIRQ_MASK | preempt::NMI_MASK) != 0) as i64
    })),
    p("__ct_state", &[], Ret::CtxState, Query, C::None, "__ct_state(): the raw state", Imp::Value(|k, _| ctx(k.ct().__ct_state()))),
    p("ct_state", &[], Ret::CtxState, Query, C::None, "ct_state(): CT_STATE_DISABLED while the key is off", Imp::Value(|k, _| k.ct().ct_state().map_or(CT_STATE_DISABLED, ctx))),
    p("rcu_is_watching", &[], Ret::Bool, Query, C::None, "rcu_is_watching()", Imp::Value(|k, _| k.rcu_is_watching() as i64)),
    p("context_tracking_enabled", &[], Ret::Bool, Query, C::None, "context_tracking_enabled(): the static key", Imp::Value(|k, _| k.tif_nohz() as i64)),
];

#[test]
fn no_primitive_takes_more_than_max_args() {
    // CT_WARN_ON's one condition becomes two values (the condition and the warning it names).
    assert!(PRIMS
        .iter()
        .all(|p| p.args.len() + usize::from(p.args.contains(&Arg::Cond)) <= 2));
}

/// Looks a primitive up.
pub fn by_name(name: &str) -> Option<&'static Prim> {
    PRIMS.iter().find(|p| p.name == name)
}

/// A constant's value.
pub fn constant(name: &str) -> Option<i64> {
    CONSTS.iter().find(|c| c.0 == name).map(|c| c.1)
}
