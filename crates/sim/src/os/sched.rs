//! The scheduler: wakeups, `__schedule()`, run queues and CFS placement
//! (`kernel/sched/core.c`, `fair.c`).

use super::*;
use crate::design::Flow;
use crate::machine::*;
use ctxtrack_core::{Ct, CtState};
use ctxtrack_trace::event::{Comm, SchedSwitch, SchedWakeup};

impl K<'_> {
    /// `try_to_wake_up(p)` with `select_task_rq()`.
    pub fn try_to_wake_up(&mut self, p: TaskId) {
        if self.m.tasks[p].state != TaskState::Sleeping {
            return;
        }
        let target = select_task_rq(self.m, p, self.cpu);
        self.wake_up(p, target, false);
    }

    pub(crate) fn wake_up(&mut self, p: TaskId, target: CpuId, new: bool) {
        self.extra_cycles += self.m.cost.wakeup;
        self.m.cpus[self.cpu].counters.wakeups += 1;
        let from_min = self.m.cpus[self.m.tasks[p].cpu].min_vruntime;
        let to_min = self.m.cpus[target].min_vruntime;
        let task = &mut self.m.tasks[p];
        if task.cpu != target {
            // rseq_migrate(): the task must fix up its rseq area on return to user.
            task.ti_flags |= tif::NOTIFY_RESUME;
            task.vruntime = migrate_vruntime(task.vruntime, from_min, to_min);
            task.cpu = target;
        }
        // place_entity(): a sleeper gets at most half a latency of credit.
        task.vruntime = task
            .vruntime
            .max(to_min.saturating_sub(SCHED_LATENCY_NS / 2));
        task.state = TaskState::Runnable;
        if self.m.trace.is_some() {
            let fields = SchedWakeup {
                comm: Comm::Task(&task.comm),
                pid: task.pid as i32,
                prio: 120,
                target_cpu: target as i32,
            }
            .to_string();
            let ev = if new {
                SchedWakeup::NAME_NEW
            } else {
                SchedWakeup::NAME
            };
            // try_to_wake_up() holds p->pi_lock and the runqueue lock.
            crate::tracer::event_at(self.m, self.cpu, ev, &fields, crate::tracer::At::Locked(2));
        }
        enqueue(self.m, p, target);
        // check_preempt_curr()
        let curr = self.m.cpus[target].current;
        let preempt = self.m.tasks[curr].is_idle
            || self.m.tasks[curr].vruntime > self.m.tasks[p].vruntime + SCHED_WAKEUP_GRAN_NS;
        if preempt {
            resched_curr(self.m, self.cpu, target);
        }
    }

    /// `__schedule()`: pick the next task and switch to it (one step: runs with IRQs off).
    pub fn schedule(&mut self) -> Flow {
        let c = self.cpu;
        let now = self.now();
        self.extra_cycles += self.m.cost.schedule;
        // schedule_debug(): never schedule while context tracking says USER.
        let in_user = self.ct().ct_state() == Some(CtState::User);
        self.ct()
            .local
            .warn
            .warn_on(in_user, ctxtrack_core::Violation::ScheduleInUser);
        let prev = self.current();
        crate::monitor::on_schedule(self.m, c, prev);
        // rcu_note_context_switch()
        crate::os::rcu::rcu_report_qs(self.m, c);
        update_curr(self.m, c, now);
        self.m.tasks[prev].ti_flags &= !tif::NEED_RESCHED;
        if self.m.tasks[prev].state == TaskState::Running && !self.m.tasks[prev].is_idle {
            self.m.tasks[prev].state = TaskState::Runnable;
            enqueue(self.m, prev, c);
        }
        let next = pick_next_task(self.m, c);
        if next == prev {
            self.m.tasks[prev].state = TaskState::Running;
            update_sched_tick_dep(self.m, c, c);
            return Flow::Next;
        }
        // rseq_preempt(prev)
        if self.m.tasks[prev].has_mm {
            self.m.tasks[prev].ti_flags |= tif::NOTIFY_RESUME;
        }
        if self.m.trace.is_some() {
            let (p, n) = (&self.m.tasks[prev], &self.m.tasks[next]);
            fn comm(t: &Task, c: CpuId) -> Comm<'_> {
                if t.is_idle {
                    Comm::Swapper(Some(c))
                } else {
                    Comm::Task(&t.comm)
                }
            }
            let line = SchedSwitch {
                prev_comm: comm(p, c),
                prev_pid: p.pid as i32,
                prev_prio: 120,
                prev_state: match p.state {
                    TaskState::Sleeping => "S",
                    TaskState::Dead => "X",
                    _ => "R",
                },
                next_comm: comm(n, c),
                next_pid: n.pid as i32,
                next_prio: 120,
            }
            .to_string();
            crate::tracer::event_at(
                self.m,
                c,
                SchedSwitch::NAME,
                &line,
                crate::tracer::At::Locked(2),
            );
        }
        self.m.cpus[c].counters.context_switches += 1;
        // context_switch() + finish_task_switch()
        let m = &mut *self.m;
        let cpu: &mut crate::machine::Cpu = &mut m.cpus[c];
        cpu.current = next;
        cpu.hw.cur_has_mm = m.tasks[next].has_mm;
        cpu.hw.cur_is_idle = m.tasks[next].is_idle;
        m.tasks[next].state = TaskState::Running;
        m.tasks[next].cpu = c;
        m.tasks[next].exec_start = now;
        m.tasks[next].slice_exec_ns = 0;
        if m.key.is_enabled() && cpu.pcpu.ct.active() {
            // vtime_task_switch(prev): Ct is bound to prev; next gets its interval opened.
            let (a, b) = if prev < next {
                let (lo, hi) = m.tasks.split_at_mut(next);
                (&mut lo[prev], &mut hi[0])
            } else {
                let (lo, hi) = m.tasks.split_at_mut(prev);
                (&mut hi[0], &mut lo[next])
            };
            let next_idle = b.is_idle;
            let mut ct = Ct::new(&m.key, &mut cpu.pcpu, &mut a.vtime, &mut cpu.hw);
            ctxtrack_core::vtime::vtime_task_switch(&mut ct, &mut b.vtime, next_idle);
        }
        update_sched_tick_dep(self.m, c, c);
        Flow::Next
    }

    /// `preempt_schedule_irq()`: kernel preemption on IRQ exit.
    pub fn preempt_schedule_irq(&mut self) {
        self.schedule();
    }
}

// ----------------------------------------------------------------- run queues

pub(crate) fn update_curr(m: &mut Machine, c: CpuId, now: u64) {
    let cur = m.cpus[c].current;
    let t = &mut m.tasks[cur];
    let d = now.saturating_sub(t.exec_start);
    t.exec_start = now;
    t.sum_exec_ns += d;
    t.slice_exec_ns += d;
    if !t.is_idle {
        t.vruntime += d;
        let v = t.vruntime;
        let minv = m.cpus[c]
            .rq
            .first()
            .map(|&f| m.tasks[f].vruntime)
            .unwrap_or(v)
            .min(v);
        if minv > m.cpus[c].min_vruntime {
            m.cpus[c].min_vruntime = minv;
        }
    }
}

/// A task's vruntime moved from a run queue with `from_min` to one with `to_min`
/// (`migrate_task_rq_fair`: relative to `min_vruntime`; the lag is clamped to one latency so a
/// stale source queue cannot inflate the destination).
pub(crate) fn migrate_vruntime(v: u64, from_min: u64, to_min: u64) -> u64 {
    to_min + v.saturating_sub(from_min).min(SCHED_LATENCY_NS)
}

/// Inserts `p` into `c`'s run queue by vruntime (FIFO among equals).
pub(crate) fn enqueue(m: &mut Machine, p: TaskId, c: CpuId) {
    let v = m.tasks[p].vruntime;
    let pos = m.cpus[c].rq.partition_point(|&q| m.tasks[q].vruntime <= v);
    m.cpus[c].rq.insert(pos, p);
    m.tasks[p].cpu = c;
    update_sched_tick_dep(m, c, c);
}

/// Queues a freshly created task on `c` (machine setup, not a syscall).
pub(crate) fn enqueue_new(m: &mut Machine, p: TaskId, c: CpuId) {
    m.tasks[p].state = TaskState::Runnable;
    enqueue(m, p, c);
    let cur = m.cpus[c].current;
    if m.tasks[cur].is_idle {
        m.tasks[cur].ti_flags |= tif::NEED_RESCHED;
    }
}

pub(crate) fn pick_next_task(m: &mut Machine, c: CpuId) -> TaskId {
    if !m.cpus[c].rq.is_empty() {
        return m.cpus[c].rq.remove(0);
    }
    // newidle balance: pull the last movable queued task of the busiest other run queue.
    let movable = |m: &Machine, o: CpuId| {
        m.cpus[o]
            .rq
            .iter()
            .rposition(|&q| m.tasks[q].pinned.is_none())
    };
    let mut busiest = None;
    let mut most = 0;
    for o in 0..m.cpus.len() {
        if o != c && m.cpus[o].rq.len() > most && movable(m, o).is_some() {
            most = m.cpus[o].rq.len();
            busiest = Some(o);
        }
    }
    if let Some(o) = busiest {
        let i = movable(m, o).unwrap();
        let p = m.cpus[o].rq.remove(i);
        update_sched_tick_dep(m, c, o);
        let t = &mut m.tasks[p];
        t.ti_flags |= tif::NOTIFY_RESUME;
        t.vruntime = migrate_vruntime(t.vruntime, m.cpus[o].min_vruntime, m.cpus[c].min_vruntime);
        t.cpu = c;
        return p;
    }
    m.cpus[c].idle_task
}

pub(crate) fn cpu_idle(m: &Machine, c: CpuId) -> bool {
    m.tasks[m.cpus[c].current].is_idle && m.cpus[c].rq.is_empty()
}

/// `select_task_rq_fair()` simplified: previous CPU if idle, else any idle CPU (searching from
/// the previous one), else the shorter of the waker's and the previous run queue.
pub(crate) fn select_task_rq(m: &Machine, p: TaskId, waker: CpuId) -> CpuId {
    if let Some(c) = m.tasks[p].pinned {
        return c;
    }
    let prev = m.tasks[p].cpu;
    if cpu_idle(m, prev) {
        return prev;
    }
    let n = m.cpus.len();
    for i in 1..n {
        let c = (prev + i) % n;
        if cpu_idle(m, c) {
            return c;
        }
    }
    if m.cpus[waker].rq.len() < m.cpus[prev].rq.len() {
        waker
    } else {
        prev
    }
}

/// `sched_balance_fork`: the CPU with the fewest tasks (running + queued), ties to the lowest id
/// after `from`.
pub(crate) fn idlest_cpu(m: &Machine, from: CpuId) -> CpuId {
    let n = m.cpus.len();
    let load = |c: CpuId| m.cpus[c].rq.len() + usize::from(!m.tasks[m.cpus[c].current].is_idle);
    let mut best = from;
    for i in 1..=n {
        let c = (from + i) % n;
        if load(c) < load(best) {
            best = c;
        }
    }
    best
}

/// `resched_curr()`: set `TIF_NEED_RESCHED` on `target`'s current task and IPI it if remote.
pub(crate) fn resched_curr(m: &mut Machine, from: CpuId, target: CpuId) {
    let cur = m.cpus[target].current;
    if m.tasks[cur].ti_flags & tif::NEED_RESCHED != 0 {
        return;
    }
    // set_nr_and_not_polling(): a polling idle task sees the flag without an IPI.
    let polling = m.tasks[cur].ti_flags & tif::POLLING_NRFLAG != 0;
    m.tasks[cur].ti_flags |= tif::NEED_RESCHED;
    if target != from && polling {
        if m.trace.is_some() {
            crate::tracer::event(
                m,
                from,
                "sched_wake_idle_without_ipi",
                &format!("cpu={target}"),
            );
        }
    } else if target != from {
        send_ipi(m, from, target, Vector::Reschedule);
    }
}
