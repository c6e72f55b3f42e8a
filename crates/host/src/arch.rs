//! [`HostArch`]: the core's hardware hooks for one OS thread playing one CPU.

use crate::clock::Clock;
use crate::key::KeyBackend;
use crate::machine::SharedCpu;
use ctxtrack_core::{Arch, StaticKey};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One host "CPU": the thread's software IRQ flag, its preempt-count bits, its clock and the
/// shared per-CPU array (for `tick_kick`). Nothing here is touched by another thread.
pub struct HostArch<K: KeyBackend> {
    cpu: usize,
    irqs_off: bool,
    /// Hardirq nesting (`preempt_count() & HARDIRQ_MASK`).
    pub hardirq: u32,
    /// NMI nesting.
    pub nmi: u32,
    /// `current` is this CPU's idle task.
    pub idle: bool,
    clock: Clock,
    cpus: Arc<[SharedCpu]>,
    _key: PhantomData<K>,
}

impl<K: KeyBackend> HostArch<K> {
    /// CPU `cpu` of `cpus`, starting in the kernel with IRQs off (as a CPU coming online).
    pub fn new(cpu: usize, cpus: Arc<[SharedCpu]>) -> Self {
        HostArch {
            cpu,
            irqs_off: true,
            hardirq: 0,
            nmi: 0,
            idle: false,
            clock: Clock::get(),
            cpus,
            _key: PhantomData,
        }
    }
}

impl<K: KeyBackend> HostArch<K> {
    /// What the CPU does on IRQ/exception delivery and on `SYSCALL`: clear IF.
    #[inline(always)]
    pub fn hw_irq_entry(&mut self) {
        self.irqs_off = true;
    }
    /// `IRET`/`SYSRET` to a context that had IRQs on (user mode always has).
    #[inline(always)]
    pub fn hw_iret(&mut self) {
        self.irqs_off = false;
    }
}

impl<K: KeyBackend> Arch for HostArch<K> {
    /// A real CPU is measured, not priced: no counting on the hot paths.
    const COUNTS: bool = false;

    #[inline(always)]
    fn static_branch_unlikely(&self, _key: &StaticKey) -> bool {
        K::static_branch_unlikely()
    }
    #[inline(always)]
    fn irqs_disabled(&self) -> bool {
        self.irqs_off
    }
    #[inline(always)]
    fn local_irq_disable(&mut self) {
        self.irqs_off = true;
    }
    #[inline(always)]
    fn local_irq_enable(&mut self) {
        self.irqs_off = false;
    }
    #[inline(always)]
    fn sched_clock(&mut self) -> u64 {
        self.clock.sched_clock()
    }
    #[inline(always)]
    fn smp_processor_id(&self) -> usize {
        self.cpu
    }
    #[inline(always)]
    fn in_interrupt(&self) -> bool {
        self.hardirq > 0 || self.nmi > 0
    }
    #[inline(always)]
    fn in_nmi(&self) -> bool {
        self.nmi > 0
    }
    #[inline(always)]
    fn current_has_mm(&self) -> bool {
        !self.idle
    }
    #[inline(always)]
    fn is_idle_task(&self) -> bool {
        self.idle
    }
    /// `irq_work_queue_on()`: a pending kick the target thread takes as an IRQ.
    fn tick_kick(&mut self, cpu: usize) {
        self.cpus[cpu].kick.store(true, Ordering::Release);
    }
}
