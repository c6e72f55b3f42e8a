//! IRQ handlers (`DEFINE_IDTENTRY_SYSVEC` bodies), exceptions and IPIs.

use crate::machine::*;
use ctxtrack_trace::event::IrqVector;

impl K<'_> {
    /// The handler of the innermost IRQ's vector.
    pub fn handle_irq_vector(&mut self) {
        let v = self.entry().regs.vector.expect("IRQ entry without vector");
        let name = v.trace_name();
        if self.m.trace.is_some() {
            // A device IRQ is logged by handle_irq_event (irq:irq_handler_entry), the system
            // vectors by their DEFINE_IDTENTRY_SYSVEC (irq_vectors:*_entry).
            let fields = if v == Vector::Device {
                "irq=11 name=virtio0".to_string()
            } else {
                IrqVector { vector: v.number() }.to_string()
            };
            crate::tracer::event(self.m, self.cpu, &format!("{name}_entry"), &fields);
        }
        match v {
            Vector::LocalTimer => self.tick_sched_timer(),
            Vector::Reschedule => self.extra_cycles += self.m.cost.resched_ipi,
            // irq_work: nohz_full_kick_func() is empty; the re-evaluation happens at irq exit.
            Vector::IrqWork => self.extra_cycles += self.m.cost.irq_work,
            // handle_irq_event(): the driver's handler, in steps of its own (it logs the exit).
            Vector::Device => return self.handle_irq_event(),
            Vector::CallFunction => crate::os::ct_work::call_function_interrupt(self),
        }
        if self.m.trace.is_some() {
            let fields = IrqVector { vector: v.number() }.to_string();
            crate::tracer::event(self.m, self.cpu, &format!("{name}_exit"), &fields);
        }
    }

    /// `handle_mm_fault` and friends: a minor fault (trace only; the cost is the step's).
    pub fn handle_exception(&mut self) {
        if self.m.trace.is_some() {
            let ev = if self.regs_user() {
                "page_fault_user"
            } else {
                "page_fault_kernel"
            };
            // exc_page_fault() logs before it enables IRQs.
            crate::tracer::event_at(
                self.m,
                self.cpu,
                ev,
                "address=0x0 ip=0x0 error_code=0x6",
                crate::tracer::At::IrqsOff,
            );
        }
    }
}

/// Sends an IPI; it arrives after `ipi_latency_ns`. A pending vector coalesces (one IRR bit).
pub(crate) fn send_ipi(m: &mut Machine, from: CpuId, target: CpuId, v: Vector) {
    let now = m.cpus[from].hw.now;
    if m.trace.is_some() && from != target {
        // ipi:ipi_send_cpu (Linux 6.6+).
        let (site, cb) = match v {
            Vector::Reschedule => ("resched_curr+0x0", "0x0"),
            Vector::IrqWork => ("irq_work_queue_on+0x0", "nohz_full_kick_func+0x0"),
            _ => ("send_ipi+0x0", "0x0"),
        };
        crate::tracer::event(
            m,
            from,
            "ipi_send_cpu",
            &format!("cpu={target} callsite={site} callback={cb}"),
        );
    }
    let at = if from == target {
        now
    } else {
        now + m.cost.ipi_latency_ns
    };
    if post_irq(m, target, v, at) {
        m.cpus[from].counters.ipis_sent += 1;
    }
}

/// Raises vector `v` on `target`, arriving at `at`. A pending vector coalesces (one IRR bit):
/// returns false when it was already pending.
pub(crate) fn post_irq(m: &mut Machine, target: CpuId, v: Vector, at: u64) -> bool {
    let slot = &mut m.cpus[target].pending[v as usize];
    if *slot != NEVER {
        return false;
    }
    *slot = at;
    m.refresh_next(target);
    true
}
