//! The tick (`tick_sched_timer()`), nohz_full tick stop and restart, and the scheduler's tick
//! dependency (`kernel/time/tick-sched.c`).

use super::*;
use crate::machine::*;
use ctxtrack_core::tick::{can_stop_full_tick, TickDepBit, TickDeps};
use ctxtrack_trace::event::TickStop;

impl K<'_> {
    /// `tick_sched_timer()` → `tick_sched_handle()` → `update_process_times()`, then re-arm.
    pub(crate) fn tick_sched_timer(&mut self) {
        let c = self.cpu;
        let user_tick = self.regs_user();
        self.extra_cycles += self.m.cost.tick;
        self.m.cpus[c].counters.ticks += 1;
        // account_process_tick(): vtime CPUs account nothing on the tick.
        let vtime_cpu = self.m.key.is_enabled() && self.m.cpus[c].pcpu.ct.active();
        if !vtime_cpu {
            let tick = self.m.tick_nsec();
            let bucket = if user_tick {
                0
            } else if self.is_idle_task() {
                3
            } else {
                1
            };
            self.m.cpus[c].pcpu.local.cputime.kcpustat[bucket] += tick;
        }
        // scheduler_tick(): slice expiry.
        let cur = self.current();
        let now = self.now();
        update_curr(self.m, c, now);
        let nr = self.m.cpus[c].rq.len();
        if !self.m.tasks[cur].is_idle && nr > 0 {
            let slice = (SCHED_LATENCY_NS / (nr as u64 + 1)).max(SCHED_MIN_GRAN_NS);
            if self.m.tasks[cur].slice_exec_ns >= slice {
                resched_curr(self.m, c, c);
            }
        }
        // rcu_sched_clock_irq(user): a tick from user mode, or one that interrupted the idle
        // loop at the first interrupt level, is a quiescent state (rcu_flavor_sched_clock_irq()).
        if user_tick || ctxtrack_core::rcu::rcu_is_cpu_rrupt_from_idle(&self.m.cpus[c].pcpu.ct) {
            crate::os::rcu::rcu_report_qs(self.m, c);
        }
        // Re-arm the periodic tick at the next jiffy boundary.
        let period = self.m.tick_nsec();
        self.m.cpus[c].next_tick = (now / period + 1) * period;
    }

    // ------------------------------------------------------------- nohz tick

    /// `tick_nohz_full_update_tick()`: stop or restart the tick of a busy nohz_full CPU.
    pub fn tick_nohz_full_update_tick(&mut self) {
        let c = self.cpu;
        let deps = TickDeps {
            global: 0,
            cpu: self.m.cpus[c].pcpu.local.tick.tick_dep_mask,
            task: 0,
            signal: 0,
        };
        let r = can_stop_full_tick(true, deps);
        let was = self.m.cpus[c].pcpu.local.tick.tick_stopped;
        if let Err(dep) = r {
            if self.m.trace.is_some() {
                let fields = TickStop {
                    success: false,
                    dependency: dep.name(),
                };
                crate::tracer::event(self.m, c, TickStop::NAME, &fields.to_string());
            }
            if was {
                restart_tick(self.m, c);
            }
        } else if !was {
            if self.m.trace.is_some() {
                let fields = TickStop {
                    success: true,
                    dependency: "NONE",
                };
                crate::tracer::event(self.m, c, TickStop::NAME, &fields.to_string());
            }
            stop_tick(self.m, c);
        }
    }

    /// `tick_nohz_idle_stop_tick()`: stop the tick in idle, except on the timekeeper while
    /// nohz_full CPUs depend on it.
    pub fn tick_nohz_idle_stop_tick(&mut self) {
        let c = self.cpu;
        let timekeeper = c == 0 && self.m.key.is_enabled();
        if !timekeeper && !self.m.cpus[c].pcpu.local.tick.tick_stopped {
            stop_tick(self.m, c);
        }
    }

    /// `tick_nohz_idle_exit()`: restart the tick when leaving idle.
    pub fn tick_nohz_idle_exit(&mut self) {
        if self.m.cpus[self.cpu].pcpu.local.tick.tick_stopped {
            restart_tick(self.m, self.cpu);
        }
    }

    // ------------------------------------------------------------- RCU readers
}

/// `sched_update_tick_dependency()`: on a nohz_full CPU, more than one runnable task needs the
/// tick (`TICK_DEP_BIT_SCHED`); the first setter kicks the CPU.
pub(crate) fn update_sched_tick_dep(m: &mut Machine, from: CpuId, c: CpuId) {
    if !m.cpus[c].nohz_full {
        return;
    }
    let running = usize::from(!m.tasks[m.cpus[c].current].is_idle);
    let nr = m.cpus[c].rq.len() + running;
    let tick = &mut m.cpus[c].pcpu.local.tick;
    if nr > 1 {
        if tick.tick_nohz_dep_set_cpu(TickDepBit::Sched) && tick.tick_stopped {
            send_ipi(m, from, c, Vector::IrqWork);
        }
    } else {
        tick.tick_nohz_dep_clear_cpu(TickDepBit::Sched);
    }
}

pub(crate) fn stop_tick(m: &mut Machine, c: CpuId) {
    let cpu: &mut crate::machine::Cpu = &mut m.cpus[c];
    if cpu.pcpu.local.tick.update(true) == Some(true) {
        cpu.next_tick = NEVER;
        cpu.tick_stopped_since = Some(cpu.hw.now);
    }
}

pub(crate) fn restart_tick(m: &mut Machine, c: CpuId) {
    let period = m.tick_nsec();
    let cpu: &mut crate::machine::Cpu = &mut m.cpus[c];
    if cpu.pcpu.local.tick.update(false) == Some(false) {
        let now = cpu.hw.now;
        if let Some(since) = cpu.tick_stopped_since.take() {
            cpu.times.tick_stopped_ns += now - since;
        }
        cpu.next_tick = (now / period + 1) * period;
    }
}
