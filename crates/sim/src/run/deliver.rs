//! Delivery: user time accounting, which interrupt a CPU takes, kernel entry by hardware
//! (IRQ, NMI, exception), and what a user op's end does.

use super::step::cpu_entry_seq_bump;
use crate::design::Path;
use crate::machine::program::{Mark, Then};
use crate::machine::*;

impl Machine {
    /// User mode of CPU `c` ran until `t`: account it to the CPU and the task.
    pub(crate) fn account_user(&mut self, c: CpuId, t: u64) {
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        let cur = cpu.current;
        let ran = t - cpu.user_since;
        cpu.times.user_ns += ran;
        cpu.hw.now = t;
        cpu.user_since = t;
        let task = &mut self.tasks[cur];
        task.user_ns += ran;
        task.user_left_ns = task.user_left_ns.saturating_sub(ran);
    }

    /// An NMI is being handled on CPU `c`: NMIs are blocked until its `iretq`.
    pub(crate) fn in_nmi(&self, c: CpuId) -> bool {
        let t = &self.tasks[self.cpus[c].current];
        t.entries.iter().any(|e| e.kind == EntryKind::Nmi)
    }

    /// Highest-priority IRQ that has arrived by now on `c`.
    pub(crate) fn deliverable_irq(&self, c: CpuId) -> Option<Vector> {
        let cpu = &self.cpus[c];
        let now = cpu.hw.now;
        // The local APIC delivers the highest pending vector first.
        if cpu.pending[2] <= now {
            Some(Vector::Reschedule)
        } else if cpu.pending[4] <= now {
            Some(Vector::CallFunction)
        } else if cpu.pending[1] <= now {
            Some(Vector::IrqWork)
        } else if cpu.next_tick <= now {
            Some(Vector::LocalTimer)
        } else if cpu.pending[3] <= now {
            Some(Vector::Device)
        } else {
            None
        }
    }

    #[inline(never)]
    pub(crate) fn enter_kernel(
        &mut self,
        c: CpuId,
        kind: EntryKind,
        vector: Option<Vector>,
        path: &'static Path,
    ) {
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        let from = cpu.mode;
        let regs = Regs {
            user: from == Mode::User,
            irqs_on: from != Mode::Kernel || cpu.hw.irqs_on,
            vector,
        };
        let saved = CtSnap::of(cpu);
        cpu.hw.irqs_on = false;
        cpu.mode = Mode::Kernel;
        let cur = cpu.current;
        if !self.frame_room(c, cur) {
            return;
        }
        cpu_entry_seq_bump(&mut self.cpus[c]);
        let seq = self.cpus[c].entry_seq;
        self.tasks[cur].push_entry_seq(kind, regs, path, seq);
        self.tasks[cur].entries.last_mut().unwrap().saved = Some(saved);
        let from_idx = match from {
            Mode::User => 0,
            Mode::Kernel => 1,
            Mode::Halted => 2,
        };
        if kind == EntryKind::Irq {
            self.cpus[c].counters.irqs_from[from_idx] += 1;
        }
        if from == Mode::User && matches!(kind, EntryKind::Irq | EntryKind::Nmi) {
            let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
            let k = &mut cpu.counters;
            let now = cpu.hw.now;
            k.longest_quiet_ns = k.longest_quiet_ns.max(now - k.last_interruption_ns);
            k.last_interruption_ns = now;
            k.user_interruptions += 1;
        }
        if self.trace.is_some() {
            match kind {
                EntryKind::Nmi => crate::tracer::chrome_slice(
                    self,
                    c,
                    ctxtrack_trace::chrome::Cat::Nmi,
                    "nmi",
                    true,
                ),
                EntryKind::Exception => crate::tracer::chrome_slice(
                    self,
                    c,
                    ctxtrack_trace::chrome::Cat::Exception,
                    path.name,
                    true,
                ),
                _ => {}
            }
        }
    }

    #[inline(never)]
    pub(crate) fn deliver_irq(&mut self, c: CpuId, v: Vector) {
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        match v {
            // The timer fires once per programmed expiry; the handler re-arms it.
            Vector::LocalTimer => cpu.next_tick = NEVER,
            // The next device interrupt comes after a uniformly random gap (mean: the period).
            Vector::Device => {
                let p = self.cfg.irq_period_ns.unwrap_or(NEVER / 4);
                cpu.pending[3] = cpu.hw.now + 1 + self.rng.below(2 * p);
            }
            _ => {
                cpu.pending[v as usize] = NEVER;
                cpu.counters.ipis_received[v as usize] += 1;
            }
        }
        cpu.counters.irqs[v as usize] += 1;
        let path = self.design.irq;
        self.enter_kernel(c, EntryKind::Irq, Some(v), path);
    }

    #[inline(never)]
    pub(crate) fn deliver_nmi(&mut self, c: CpuId) {
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        cpu.nmi_at = match self.cfg.nmi_period_ns {
            Some(p) => cpu.nmi_at + p,
            None => NEVER,
        };
        cpu.counters.nmis += 1;
        let path = self.design.nmi;
        self.enter_kernel(c, EntryKind::Nmi, None, path);
    }

    /// The current user op's compute ended: do what comes next.
    #[inline(never)]
    pub(crate) fn user_op_done(&mut self, c: CpuId) {
        let cur = self.cpus[c].current;
        loop {
            match self.tasks[cur].then {
                Then::Syscall(s) => {
                    let task = &mut self.tasks[cur];
                    task.cur_syscall = Some(s);
                    task.syscalls += 1;
                    self.cpus[c].counters.syscalls += 1;
                    let path = self.design.syscall;
                    self.enter_kernel(c, EntryKind::Syscall, None, path);
                    return;
                }
                Then::Fault => {
                    self.cpus[c].counters.exceptions += 1;
                    let path = self.design.exception;
                    self.enter_kernel(c, EntryKind::Exception, None, path);
                    return;
                }
                Then::Mark(mk) => {
                    let now = self.cpus[c].hw.now;
                    match mk {
                        Mark::Start => self.mark_start_ns = Some(now),
                        Mark::Stop => self.mark_stop_ns = Some(now),
                    }
                    self.next_user_op(c);
                }
                Then::Continue => self.next_user_op(c),
            }
            if self.tasks[cur].user_left_ns > 0 {
                return;
            }
        }
    }

    /// Asks the program of `current` for its next op and starts its compute burst.
    pub(crate) fn next_user_op(&mut self, c: CpuId) {
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        let task = &mut self.tasks[cpu.current];
        let ret = task.last_ret.take();
        let op = task.prog.next(ret);
        // User code never takes exactly the same time twice (caches, branch predictors): ±10 %
        // from the seeded PRNG, so different seeds give different schedules.
        let ns = if op.compute_ns > 0 && op.compute_ns < 1_000_000_000 {
            op.compute_ns * (90 + self.rng.below(21)) / 100
        } else {
            op.compute_ns
        };
        task.user_left_ns = ns;
        task.then = op.then;
        cpu.user_since = cpu.hw.now;
        cpu.user_until = cpu.hw.now.saturating_add(ns);
    }
}
