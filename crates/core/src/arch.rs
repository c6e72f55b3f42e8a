//! The hardware the core needs, behind one small trait. The simulator implements it over its
//! model of a CPU; the host backend over OS threads; the bare-metal kernel over real registers.

/// Architecture hooks for the CPU the core is currently running on ("this CPU").
pub trait Arch {
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
}
