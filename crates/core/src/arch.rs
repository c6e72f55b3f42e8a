//! The hardware the core needs, behind one small trait. The simulator implements it over its
//! model of a CPU; the host backend over OS threads; the bare-metal kernel over real registers.

/// Architecture hooks for the CPU the core is currently running on ("this CPU").
pub trait Arch {
    /// Whether the core counts primitive operations in [`crate::CtStats`] on this backend. The
    /// simulator does (its cost model prices them); a real CPU is measured instead, so the host
    /// and bare-metal backends set this to `false` and the counting compiles away.
    const COUNTS: bool = true;

    /// Whether the checks Linux builds only with `CONFIG_RCU_EQS_DEBUG` or lockdep run
    /// (`lockdep_assert_irqs_disabled()` and the EQS-debug `WARN_ON_ONCE`s in `ct_kernel_*`). On
    /// by default: the simulator, the checker and the test kernels keep every invariant live. A
    /// production build (the bare-metal kernel's instruction-count benchmark) turns them off, as
    /// Debian's kernel is built without either.
    const RCU_EQS_DEBUG: bool = true;

    /// The state word's layout when this backend fixes it at build time, as Linux's
    /// `CONFIG_CONTEXT_TRACKING_WORK` does: every mask on the entry paths is then a constant.
    /// `None` (the default): each CPU's [`crate::ContextTracking::layout`], chosen at boot (the
    /// simulator runs both layouts side by side). A fixed layout must be the one the CPUs were
    /// created with.
    const CT_LAYOUT: Option<crate::CtLayout> = None;

    /// `static_branch_unlikely(&context_tracking_key)` at a guarded call site: Linux's
    /// `arch_static_branch()`, a patched NOP or jump. The default reads the key's enable count
    /// (an atomic-bool test); a backend that patches code returns its patched branch, which it
    /// keeps in step with `key`.
    #[inline(always)]
    fn static_branch_unlikely(&self, key: &crate::StaticKey) -> bool {
        key.static_branch_unlikely()
    }

    /// `raw_irqs_disabled()`.
    fn irqs_disabled(&self) -> bool;
    /// `raw_local_irq_disable()`.
    fn local_irq_disable(&mut self);
    /// `raw_local_irq_enable()`.
    fn local_irq_enable(&mut self);
    /// `sched_clock()`: monotonic nanoseconds on this CPU.
    fn sched_clock(&mut self) -> u64;
    /// `smp_processor_id()`.
    fn smp_processor_id(&self) -> usize;
    /// `in_interrupt()`: in hardirq, softirq or NMI context (from `preempt_count`).
    fn in_interrupt(&self) -> bool;
    /// `in_nmi()`.
    fn in_nmi(&self) -> bool;
    /// `current->mm != NULL`: the current task has a user address space (not a kthread).
    fn current_has_mm(&self) -> bool;
    /// `is_idle_task(current)`.
    fn is_idle_task(&self) -> bool;
    /// Wake `cpu` so it re-evaluates its tick (`irq_work_queue_on` / a self IPI for this CPU).
    fn tick_kick(&mut self, cpu: usize);

    /// `arch_context_tracking_work(work)`: run work deferred to this CPU's kernel entry
    /// (`sync_core()` for [`crate::state::CtWork::Sync`]). Called from `ct_kernel_enter_state()`,
    /// possibly in NMI context, before anything else of the entry: it must be noinstr,
    /// non-blocking and NMI-safe, and tolerate a spurious call. Only layouts with a work field
    /// call it; the default does nothing.
    #[inline(always)]
    fn arch_context_tracking_work(&mut self, work: crate::state::CtWork) {
        let _ = work;
    }
}
