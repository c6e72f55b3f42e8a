//! The engine: the event loop (the CPU whose next event is earliest runs; ties to the lower CPU
//! id, so a run is a pure function of its [`crate::Config`]), interrupt delivery ([`deliver`])
//! and step execution ([`step`]).

mod deliver;
pub mod limits;
mod step;

use crate::machine::*;

impl Machine {
    /// Runs until the workload ends, the duration passes, or an invariant fails.
    ///
    /// The CPU with the earliest next event runs; it keeps running without a rescan while its
    /// next event stays strictly before every other CPU's and the RCU kthread's (ties go to the
    /// lower CPU id, as a rescan would decide).
    pub fn run(&mut self) -> EndReason {
        let limit_ns = self.cfg.duration_ns.unwrap_or(NEVER);
        for c in 0..self.cpus.len() {
            self.next_at[c] = self.next_time(c);
        }
        // CPUs sorted by (next event, id), packed in one word so a compare is one instruction:
        // after the earliest CPU runs, it is re-inserted and the others keep their order.
        let mut order = EventOrder::new(&self.next_at);
        while self.end.is_none() {
            let (bc, second) = order.first_two();
            let best = self.next_at[bc];
            let second = second.map_or(NEVER, |c| self.next_at[c]);
            let rcu_t = self.rcu.next_event_ns();
            let work_t = self.work.next_event_ns();
            let ev_t = rcu_t.min(work_t);
            if ev_t <= best && ev_t != NEVER {
                if ev_t > limit_ns {
                    self.end = Some(EndReason::Duration);
                    break;
                }
                if work_t < rcu_t {
                    crate::os::ct_work::run_senders(self, work_t);
                } else {
                    crate::os::rcu::rcu_gp_kthread(self, rcu_t);
                }
                if std::mem::take(&mut self.rescan) {
                    order = EventOrder::new(&self.next_at);
                }
                continue;
            }
            if best == NEVER {
                self.end = Some(EndReason::Quiescent);
                break;
            }
            // Other CPUs with a lower id win ties, so stay only while strictly earlier than them.
            let horizon = second.min(ev_t);
            let mut t = best;
            loop {
                if t > limit_ns {
                    self.end = Some(EndReason::Duration);
                    break;
                }
                if self.steps >= self.next_checkpoint && self.checkpoint() {
                    break;
                }
                self.run_cpu(bc, t);
                t = self.next_time(bc);
                self.next_at[bc] = t;
                if self.end.is_some() {
                    break;
                }
                // Running this CPU may have sent IPIs that change other CPUs' next events.
                if self.rescan {
                    self.rescan = false;
                    order = EventOrder::new(&self.next_at);
                    break;
                }
                if t >= horizon {
                    order.reinsert_first(bc, t);
                    break;
                }
            }
        }
        let end = self.end.clone().unwrap();
        self.finish();
        end
    }

    /// Every [`CHECKPOINT_STEPS`] steps: the step limit, the task and memory limits, and a
    /// progress report. True when the run must end.
    #[cold]
    #[inline(never)]
    pub(crate) fn checkpoint(&mut self) -> bool {
        if self.steps >= self.cfg.max_steps {
            self.end = Some(EndReason::StepLimit);
            return true;
        }
        self.next_checkpoint = (self.steps + CHECKPOINT_STEPS).min(self.cfg.max_steps);
        if let Some(what) = limits::exceeded(self) {
            let cpu = (0..self.cpus.len())
                .max_by_key(|&c| self.cpus[c].hw.now)
                .unwrap_or(0);
            self.monitor.fail_limit(cpu, &what, &mut self.end);
            return true;
        }
        let now_ns = self.furthest_clock();
        if let Some(f) = self.progress.as_mut() {
            f(&Progress {
                phase: self.phase,
                now_ns,
                duration_ns: self.cfg.duration_ns,
                steps: self.steps,
                tasks: self.tasks.len(),
            });
        }
        false
    }

    /// The furthest any CPU's clock has reached.
    pub(crate) fn furthest_clock(&self) -> u64 {
        self.cpus
            .iter()
            .map(|c| c.hw.now)
            .max()
            .unwrap_or(0)
            .max(self.now_max)
    }

    /// Brings every CPU to the same end time and closes open intervals, so the report covers
    /// the whole run on every CPU.
    pub(crate) fn finish(&mut self) {
        let mut end = self.furthest_clock();
        if let Some(d) = self.cfg.duration_ns {
            if self.end == Some(EndReason::Duration) {
                end = end.max(d);
            }
        }
        self.now_max = end;
        for cpu in self.cpus.iter_mut() {
            match cpu.mode {
                Mode::User => {
                    let d = end.saturating_sub(cpu.user_since);
                    cpu.times.user_ns += d;
                    self.tasks[cpu.current].user_ns += d;
                    cpu.user_since = end;
                    cpu.hw.now = end;
                }
                Mode::Halted => {
                    cpu.times.idle_ns += end.saturating_sub(cpu.hw.now);
                    cpu.hw.now = end;
                }
                // A CPU in kernel mode stops at its own clock (it may be past `end` by one step).
                Mode::Kernel => {}
            }
            if let Some(since) = cpu.tick_stopped_since {
                cpu.times.tick_stopped_ns += cpu.hw.now.saturating_sub(since);
                cpu.tick_stopped_since = Some(cpu.hw.now);
            }
        }
        if self.end != Some(EndReason::Violation) {
            crate::monitor::check_all_vtime(self);
        }
    }

    /// Performs the next event of CPU `c` alone, ignoring every other CPU and the RCU kthread
    /// (for drivers that stage one path at a time: [`crate::lab::probe`], model checkers).
    pub fn advance(&mut self, c: CpuId) {
        let t = self.next_time(c);
        if t != NEVER {
            self.run_cpu(c, t);
        }
    }

    /// Advances CPU `c` to time `t` and performs its next event.
    pub(crate) fn run_cpu(&mut self, c: CpuId, t: u64) {
        match self.cpus[c].mode {
            Mode::User => {
                self.account_user(c, t);
                let cpu = &self.cpus[c];
                if cpu.nmi_at <= t {
                    self.deliver_nmi(c);
                } else if let Some(v) = self.deliverable_irq(c) {
                    self.deliver_irq(c, v);
                } else {
                    self.user_op_done(c);
                }
            }
            Mode::Halted => {
                let cpu: &mut crate::machine::Cpu = &mut self.cpus[c];
                cpu.times.idle_ns += t - cpu.hw.now;
                cpu.hw.now = t;
                if cpu.nmi_at <= t {
                    self.deliver_nmi(c);
                } else if let Some(v) = self.deliverable_irq(c) {
                    self.deliver_irq(c, v);
                }
            }
            Mode::Kernel => {
                let cpu = &self.cpus[c];
                if cpu.nmi_at <= cpu.hw.now && !self.in_nmi(c) {
                    self.deliver_nmi(c);
                } else if cpu.hw.irqs_on && Self::earliest_irq(cpu) <= cpu.hw.now {
                    let v = self.deliverable_irq(c).expect("pending irq");
                    self.deliver_irq(c, v);
                } else {
                    self.exec_step(c);
                }
            }
        }
        if self.cpus[c].hw.now > self.now_max {
            self.now_max = self.cpus[c].hw.now;
        }
    }
}

/// The CPUs ordered by next-event time, ties to the lower id: what the run loop needs is the
/// earliest CPU and the runner-up, and after the earliest runs only its own time has moved.
///
/// Each entry is `(min(time, LIMIT) << 6) | cpu` (at most 64 CPUs), so entries are unique and
/// compare as (time, id) in one instruction; exact times stay in [`Machine::next_at`]. Times at
/// or past `LIMIT` (2^58 ns, nine years) compare by id only.
struct EventOrder {
    keys: Vec<u64>,
}

impl EventOrder {
    const LIMIT: u64 = (1 << 58) - 1;

    fn key(c: usize, t: u64) -> u64 {
        (t.min(Self::LIMIT) << 6) | c as u64
    }

    /// Sorts all CPUs from their next-event times.
    fn new(next_at: &[u64]) -> EventOrder {
        debug_assert!(next_at.len() <= 64);
        let mut keys: Vec<u64> = next_at
            .iter()
            .enumerate()
            .map(|(c, &t)| Self::key(c, t))
            .collect();
        keys.sort_unstable();
        EventOrder { keys }
    }

    /// The earliest CPU and the runner-up (if there are two CPUs).
    #[inline]
    fn first_two(&self) -> (usize, Option<usize>) {
        let c = (self.keys[0] & 63) as usize;
        (c, self.keys.get(1).map(|k| (k & 63) as usize))
    }

    /// The earliest CPU `c` now has next-event time `t`: move it to its place.
    #[inline]
    fn reinsert_first(&mut self, c: usize, t: u64) {
        let k = Self::key(c, t);
        debug_assert_eq!(self.keys[0] & 63, c as u64);
        // Branch-free count of the entries that stay before it.
        let p = self.keys[1..]
            .iter()
            .map(|&o| (o < k) as usize)
            .sum::<usize>();
        // Shift the first `p` of the others down by one, without a call to memmove for a
        // handful of words.
        for i in 0..self.keys.len() - 1 {
            let next = self.keys[i + 1];
            self.keys[i] = if i < p { next } else { self.keys[i] };
        }
        self.keys[p] = k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Xoshiro256;

    /// What the order replaces: a linear scan for the earliest CPU (ties to the lower id) and
    /// the runner-up's time.
    fn scan(at: &[u64]) -> (usize, u64) {
        let (mut best, mut bc, mut second) = (NEVER, 0, NEVER);
        for (c, &t) in at.iter().enumerate() {
            if t < best {
                second = best;
                best = t;
                bc = c;
            } else {
                second = second.min(t);
            }
        }
        (bc, second)
    }

    #[test]
    fn event_order_agrees_with_a_linear_scan() {
        let mut rng = Xoshiro256::seed(11);
        for n in [1, 2, 3, 8, 13, 64] {
            let mut at: Vec<u64> = (0..n).map(|_| rng.below(50)).collect();
            let mut order = EventOrder::new(&at);
            for _ in 0..5000 {
                let (bc, second) = order.first_two();
                let want = scan(&at);
                let second = second.map_or(NEVER, |c| at[c]);
                if at[bc] != NEVER {
                    assert_eq!((bc, second), want, "n={n} at={at:?}");
                }
                // The earliest CPU runs and moves on (few values: many ties), or never again.
                let t = match rng.below(20) {
                    0 => NEVER,
                    _ => at[bc].min(NEVER - 100) + rng.below(30),
                };
                at[bc] = t;
                order.reinsert_first(bc, t);
                if rng.below(50) == 0 {
                    // An IPI moved another CPU's event: the machine rebuilds the order.
                    let c = rng.below(n as u64) as usize;
                    at[c] = rng.below(100);
                    order = EventOrder::new(&at);
                }
            }
        }
    }
}
