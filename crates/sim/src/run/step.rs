//! Step execution: the next step of a design's path on a CPU, its price, its record in the
//! history, and leaving the kernel.

use crate::design::{Category, Flow, StepKind};
use crate::machine::program::Then;
use crate::machine::*;
use crate::monitor::HistEntry;
use crate::os::K;

impl Machine {
    /// The limit on kernel stack depth: false (and the run ends with `model_limit`) when task `t`
    /// on CPU `c` has no room for another frame.
    pub(crate) fn frame_room(&mut self, c: CpuId, t: TaskId) -> bool {
        if self.tasks[t].frames.len() < MAX_FRAMES {
            return true;
        }
        self.monitor
            .fail_limit(c, "kernel stack depth (MAX_FRAMES)", &mut self.end);
        false
    }

    /// Pushes `f` on task `t`'s kernel stack within the limit; false if the run had to end.
    pub(crate) fn push_frame(&mut self, c: CpuId, t: TaskId, f: Frame) -> bool {
        let room = self.frame_room(c, t);
        if room {
            self.tasks[t].frames.push(f);
        }
        room
    }

    /// Executes the next step of `current` on CPU `c`. Branch steps on the way are evaluated
    /// inline: they are decisions, not instruction boundaries where an event could land.
    pub(crate) fn exec_step(&mut self, c: CpuId) {
        let cpu = &self.cpus[c];
        let t0 = cpu.current;
        if cpu.hw.flush_pending != 0
            && usize::from(cpu.hw.flush_depth) == self.tasks[t0].entries.len()
        {
            return self.ct_work_flush_step(c, t0);
        }
        // Decisions between two steps are bounded: a design whose loop never reaches a step
        // would spin here forever.
        let mut decisions = 0u32;
        let (path, pc, depth, step, kind) = loop {
            let depth = self.tasks[t0].frames.len() - 1;
            let Frame { path, pc, kind } = self.tasks[t0].frames[depth];
            let step = &path.steps[pc as usize];
            if step.kind != StepKind::Branch {
                break (path, pc, depth, step, kind);
            }
            let mut k = K::new(self, c);
            let flow = step.run.call(&mut k);
            decisions += 1;
            if decisions > MAX_DECISIONS {
                self.decision_limit(c, path);
                return;
            }
            let f = &mut self.tasks[t0].frames[depth];
            match flow {
                Flow::Next => f.pc = pc + 1,
                Flow::Jump(i) => f.pc = i,
                Flow::Return => {
                    self.tasks[t0].frames.pop();
                }
                // A branch may call a helper path (a C function call that is not itself an
                // instruction boundary of interest).
                Flow::Call(p) => {
                    f.pc = pc + 1;
                    if !self.push_frame(c, t0, Frame::new(p, kind)) {
                        return;
                    }
                }
                other => unreachable!(
                    "branch step {:?} in {} returned {other:?}",
                    step.name, path.name
                ),
            }
        };
        self.tasks[t0].frames[depth].pc = pc + 1;
        crate::monitor::before_step(self, c, path, step);
        if self.end.is_some() {
            return;
        }
        let cpu = &self.cpus[c];
        let flushes_before = cpu.hw.work_flushes;
        let vtime_before = cpu.pcpu.local.stats.vtime_hooks;
        let warn_before = cpu.pcpu.local.warn.count;
        // What the trace reports against (transitions made, RCU and nesting before the step).
        let trace_before = self.trace.is_some().then(|| {
            let ct = &cpu.pcpu.ct;
            (
                cpu.pcpu.local.stats.transitions,
                (ct.rcu_is_watching(), ct.nesting(), ct.nmi_nesting()),
            )
        });
        let mut k = K::new(self, c);
        let flow = step.run.call(&mut k);
        let extra = k.extra_cycles;
        let then_call = k.then_call;

        // Control flow applies to the task that ran the step, even if it was switched out.
        let mut leave: Option<Flow> = None;
        match flow {
            Flow::Next => {}
            Flow::Jump(i) => self.tasks[t0].frames[depth].pc = i,
            Flow::Retry => self.tasks[t0].frames[depth].pc = pc,
            Flow::Call(p) => {
                if !self.push_frame(c, t0, Frame::new(p, kind)) {
                    return;
                }
            }
            Flow::Return => {
                self.tasks[t0].frames.pop();
            }
            Flow::Halt => {
                self.cpus[c].hw.irqs_on = true;
                leave = Some(Flow::Halt);
            }
            Flow::ReturnToUser | Flow::ReturnToKernel => leave = Some(flow),
        }
        // A primitive's kernel call runs right after the step, before whatever the step's own
        // flow continues with (pushed last, it runs first). A step that also leaves the kernel
        // (`handle_irq(regs), iretq()` in one statement) has nowhere to run it: the model cannot
        // say what Linux would do, so the run ends with `model_limit` naming the step, never
        // with a reader left open or a softirq silently dropped.
        if let Some(p) = then_call {
            if leave.is_some() {
                let what = format!(
                    "step `{}` calls {} and leaves the kernel in the same step: split the statement",
                    step.name, p.name
                );
                self.monitor.fail_limit(c, &what, &mut self.end);
                return;
            }
            if !self.push_frame(c, t0, Frame::new(p, kind)) {
                return;
            }
        }

        // Price the step: base + primitives the core counted + bodies the kernel reported.
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        if cpu.hw.work_flushes != flushes_before {
            // The step made RCU watch and read deferred work: this context flushes it next (an
            // inner context's flush covers an outer one's pending bits).
            cpu.hw.flush_depth = self.tasks[t0].entries.len() as u16;
        }
        let st = &cpu.pcpu.local.stats;
        // The core weighs each primitive with its price as it counts it (weights set in new()).
        let ct_cycles = st.weighted - cpu.priced_cycles;
        cpu.priced_cycles = st.weighted;
        let cycles = self.base_cost[step.cost as usize] + ct_cycles + extra;
        let kind = kind as usize;
        if step.category == Category::Entry {
            cpu.counters.entry_cycles[kind] += cycles - extra;
            cpu.counters.ct_cycles[kind] += ct_cycles;
        }
        let start = Self::spend_step(cpu, &mut self.tasks[t0], self.ns_per_cycle_fp, cycles);
        self.steps += 1;

        if cpu.hw.kicks != 0 {
            let kicks = std::mem::take(&mut cpu.hw.kicks);
            for target in 0..self.cpus.len() {
                if kicks & (1 << target) != 0 {
                    crate::os::send_ipi(self, c, target, Vector::IrqWork);
                }
            }
        }
        if let Some((transitions, ct_before)) = trace_before {
            crate::tracer::transitions(self, c, t0, &transitions, start, ct_before);
        }
        if self.monitor.record_history {
            self.record_step(c, t0, start, path.name, step.name);
        }
        if self.monitor.enabled || self.cpus[c].pcpu.local.warn.count != warn_before {
            crate::monitor::after_step(self, c, vtime_before, warn_before);
        }
        if let Some(l) = leave {
            self.leave_kernel(c, t0, l);
        }
    }

    /// Runs `cycles` of a step on `cpu` for `task`: the clock advances (ns = cycles / GHz in
    /// 32.32 fixed point at `ns_per_cycle_fp`; the fraction carries over to the next step) and
    /// the time counts as the task's system time, or idle time for an idle task. Returns when
    /// the step started. (The caller counts the step in `Machine::steps`.)
    #[inline(always)]
    pub(crate) fn spend_step(
        cpu: &mut Cpu,
        task: &mut Task,
        ns_per_cycle_fp: u64,
        cycles: u64,
    ) -> u64 {
        cpu.counters.kernel_cycles += cycles;
        cpu.counters.steps += 1;
        let total = cycles as u128 * ns_per_cycle_fp as u128 + cpu.cycle_rem as u128;
        let dt = (total >> 32) as u64;
        cpu.cycle_rem = (total & 0xffff_ffff) as u64;
        let start = cpu.hw.now;
        cpu.hw.now += dt;
        if task.is_idle {
            cpu.times.idle_ns += dt;
        } else {
            cpu.times.sys_ns += dt;
            task.sys_ns += dt;
        }
        start
    }

    /// Remembers a step CPU `c` ran (for violation reports), with the context it left.
    pub(crate) fn record_step(
        &mut self,
        c: CpuId,
        t0: TaskId,
        start: u64,
        path: &'static str,
        step: &'static str,
    ) {
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        let ct = &cpu.pcpu.ct;
        let entry = self.tasks[t0].entries.last().map_or(0, |e| e.seq);
        cpu.history.push(HistEntry {
            entry,
            time_ns: start,
            pid: self.tasks[t0].pid,
            path,
            step,
            ct_state: ct.ct_state_bits(),
            irqs_on: cpu.hw.irqs_on,
            watching: ct.rcu_is_watching(),
        });
    }

    /// `ct_work_flush()` → `arch_context_tracking_work()`: the instruction after the entry's fully
    /// ordered add, an instruction boundary of its own (an NMI may come first). Priced as glue.
    #[cold]
    #[inline(never)]
    pub(crate) fn ct_work_flush_step(&mut self, c: CpuId, t0: TaskId) {
        let hw = &mut self.cpus[c].hw;
        hw.owed &= !hw.flush_pending;
        hw.flush_pending = 0;
        hw.flush_depth = 0;
        let glue = self.base_cost[crate::cost::CostKey::Glue as usize];
        let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
        let start = Self::spend_step(cpu, &mut self.tasks[t0], self.ns_per_cycle_fp, glue);
        self.steps += 1;
        if self.monitor.record_history {
            self.record_step(c, t0, start, "ct_kernel_enter_state", "ct_work_flush");
        }
    }

    /// A design looped through [`MAX_DECISIONS`] decisions without reaching a step.
    #[cold]
    #[inline(never)]
    pub(crate) fn decision_limit(&mut self, c: CpuId, path: &'static crate::design::Path) {
        let what = format!(
            "{MAX_DECISIONS} decisions in a row without a step (in {}): the design loops without an instruction boundary",
            path.name
        );
        self.monitor.fail_limit(c, &what, &mut self.end);
    }

    /// Ends an entry: back to user mode, to the interrupted kernel context, or halt.
    #[inline(never)]
    pub(crate) fn leave_kernel(&mut self, c: CpuId, t0: TaskId, how: Flow) {
        match how {
            Flow::Halt => {
                crate::monitor::on_halt(self, c);
                self.cpus[c].mode = Mode::Halted;
            }
            Flow::ReturnToUser | Flow::ReturnToKernel => {
                let task = &mut self.tasks[t0];
                let e = task.entries.pop().expect("entry to leave");
                task.frames.truncate(e.base as usize);
                if self.trace.is_some() {
                    use ctxtrack_trace::chrome::Cat;
                    match e.kind {
                        EntryKind::Nmi => crate::tracer::chrome_slice(self, c, Cat::Nmi, "", false),
                        EntryKind::Exception => {
                            crate::tracer::chrome_slice(self, c, Cat::Exception, "", false)
                        }
                        _ => {}
                    }
                }
                self.cpus[c].counters.entries[e.kind as usize] += 1;
                if let Some(saved) = e.saved {
                    crate::monitor::on_entry_exit(self, c, &saved, how == Flow::ReturnToUser);
                }
                if how == Flow::ReturnToUser {
                    crate::monitor::on_return_to_user(self, c, t0, e.kind);
                    let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
                    cpu.hw.irqs_on = true;
                    cpu.mode = Mode::User;
                    cpu.user_since = cpu.hw.now;
                    // The fault the program asked for is done (next op); an asynchronous one
                    // (a breakpoint, an injected fault) resumes the interrupted burst.
                    let asked =
                        e.kind == EntryKind::Exception && self.tasks[t0].then == Then::Fault;
                    match e.kind {
                        EntryKind::Syscall | EntryKind::Fork => self.next_user_op(c),
                        EntryKind::Exception if asked => self.next_user_op(c),
                        _ => {
                            let left = self.tasks[t0].user_left_ns;
                            let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
                            cpu.user_until = cpu.hw.now.saturating_add(left);
                        }
                    }
                } else {
                    let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
                    cpu.hw.irqs_on = e.regs.irqs_on;
                    cpu.mode = Mode::Kernel;
                }
            }
            _ => unreachable!("leave_kernel called with {how:?}"),
        }
    }
}

pub(crate) fn cpu_entry_seq_bump(cpu: &mut Cpu) {
    cpu.entry_seq = cpu.entry_seq.wrapping_add(1);
}
