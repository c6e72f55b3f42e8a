//! "This CPU": the handle every step and kernel service works through. Defined with the state
//! (designs name it in their steps); the services it offers are [`crate::os`]'s.

use crate::design::Path;
use crate::machine::{CpuId, Machine};

/// "This CPU" for a step: the machine plus the CPU the step runs on.
pub struct K<'m> {
    /// The machine.
    pub m: &'m mut Machine,
    /// The CPU.
    pub cpu: CpuId,
    /// Cycles of bodies run by this step (syscall bodies, handlers, schedule).
    pub extra_cycles: u64,
    /// A kernel path a primitive of this step calls once the step is done (`irq_exit_rcu()`'s
    /// `__do_softirq()`, a handler's read-side section): the machine pushes it, whatever
    /// statement of the design called the primitive, so the callee's steps are instruction
    /// boundaries of their own.
    pub then_call: Option<&'static Path>,
}

impl<'m> K<'m> {
    /// This CPU of `m`, before a step.
    #[inline]
    pub fn new(m: &'m mut Machine, cpu: CpuId) -> K<'m> {
        K {
            m,
            cpu,
            extra_cycles: 0,
            then_call: None,
        }
    }
}
