//! Generic vtime accounting (`CONFIG_VIRT_CPU_ACCOUNTING_GEN`, `kernel/sched/cputime.c`).
//!
//! On a CPU with context tracking active the tick accounts nothing; instead every context
//! transition accounts the interval that just ended into the task's pending accumulators, which
//! are flushed into the task's `utime`/`stime`/`gtime` once they reach a tick (`TICK_NSEC`).
//! A sequence count lets a remote reader ([`task_cputime`]) see a consistent snapshot mid-interval.
//!
//! Besides Linux's sinks, [`CpuTime`] keeps the exact nanoseconds accounted per state on each CPU,
//! so "user + sys + guest + idle == elapsed" can be checked exactly (vtime conservation).

use crate::arch::Arch;
use crate::context_tracking::Ct;
use crate::stats::Prim;
use crate::sync::{fence, AtomicU32, Ordering};
use crate::violation::Violation;

/// `enum vtime_state`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VtimeState {
    /// `VTIME_INACTIVE`: not running on a vtime CPU.
    #[default]
    Inactive = 0,
    /// `VTIME_IDLE`: the idle task.
    Idle,
    /// `VTIME_SYS`: kernel.
    Sys,
    /// `VTIME_USER`: user.
    User,
    /// `VTIME_GUEST`: guest.
    Guest,
}

/// A sequence count (`seqcount_t`): odd while a writer is inside.
#[derive(Debug, Default)]
pub struct SeqCount(AtomicU32);

impl SeqCount {
    /// `write_seqcount_begin`: `s->sequence++; smp_wmb();`. Writers are serialized (the task's
    /// own CPU, IRQs off), so the increment is a plain load and store, not a locked RMW.
    #[inline(always)]
    pub fn write_begin(&self) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
    }
    /// `write_seqcount_end`: `smp_wmb(); s->sequence++;`.
    #[inline(always)]
    pub fn write_end(&self) {
        fence(Ordering::Release);
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(1), Ordering::Relaxed);
    }
    /// `read_seqcount_begin`: `None` while a write is in progress (the reader would spin).
    pub fn read_begin(&self) -> Option<u32> {
        let s = self.0.load(Ordering::Acquire);
        if s & 1 == 1 {
            None
        } else {
            Some(s)
        }
    }
    /// `read_seqcount_retry`.
    pub fn read_retry(&self, start: u32) -> bool {
        self.0.load(Ordering::Acquire) != start
    }
    /// Raw value.
    pub fn raw(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Clone for SeqCount {
    fn clone(&self) -> Self {
        SeqCount(AtomicU32::new(self.raw()))
    }
}
impl PartialEq for SeqCount {
    fn eq(&self, o: &Self) -> bool {
        self.raw() == o.raw()
    }
}
impl Eq for SeqCount {}
impl core::hash::Hash for SeqCount {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.raw().hash(h)
    }
}

/// `struct vtime`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Vtime {
    /// `seqcount`.
    pub seqcount: SeqCount,
    /// `starttime`: `sched_clock()` at the start of the current interval.
    pub starttime: u64,
    /// `state`.
    pub state: VtimeState,
    /// `cpu`: where the task runs with vtime, `-1` when inactive.
    pub cpu: i32,
    /// Pending user time (ns) below one tick.
    pub utime: u64,
    /// Pending system time.
    pub stime: u64,
    /// Pending guest time.
    pub gtime: u64,
}

/// The vtime-related part of a `task_struct`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TaskVtime {
    /// `tsk->vtime`.
    pub vtime: Vtime,
    /// `tsk->utime` (ns, flushed).
    pub utime: u64,
    /// `tsk->stime`.
    pub stime: u64,
    /// `tsk->gtime`.
    pub gtime: u64,
    /// `PF_VCPU`: running a guest.
    pub pf_vcpu: bool,
}

/// Indices of [`CpuTime::kcpustat`] and [`CpuTime::vtime_ns`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// `CPUTIME_USER`.
    User = 0,
    /// `CPUTIME_SYSTEM`.
    System = 1,
    /// `CPUTIME_GUEST` (also counted in user by Linux; kept apart here).
    Guest = 2,
    /// `CPUTIME_IDLE`.
    Idle = 3,
}

/// Per-CPU cputime: Linux's `kcpustat` sinks plus exact vtime totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuTime {
    /// `TICK_NSEC`: the flush threshold.
    pub tick_nsec: u64,
    /// `kcpustat_cpu(cpu).cpustat[]` as flushed by `account_*_time`, indexed by [`Bucket`].
    pub kcpustat: [u64; 4],
    /// Exact nanoseconds consumed by `get_vtime_delta` on this CPU, by [`Bucket`].
    pub vtime_ns: [u64; 4],
    /// When vtime accounting started on this CPU (`vtime_init_idle`); `None` if never.
    pub vtime_since_ns: Option<u64>,
}

impl CpuTime {
    /// A CPU with the given `TICK_NSEC`.
    pub fn new(tick_nsec: u64) -> CpuTime {
        CpuTime {
            tick_nsec,
            ..CpuTime::default()
        }
    }

    /// Total exact vtime accounted on this CPU.
    pub fn vtime_total_ns(&self) -> u64 {
        self.vtime_ns.iter().sum()
    }

    /// Vtime conservation: everything since `vtime_since_ns` is accounted, except the interval
    /// `current` has open (`now - starttime`). Returns `(accounted, elapsed)` on mismatch.
    pub fn check_conservation(
        &self,
        now: u64,
        current: &TaskVtime,
        cpu: usize,
    ) -> Result<(), (u64, u64)> {
        let Some(since) = self.vtime_since_ns else {
            return Ok(());
        };
        let open = if current.vtime.state != VtimeState::Inactive && current.vtime.cpu == cpu as i32
        {
            now.saturating_sub(current.vtime.starttime)
        } else {
            0
        };
        let accounted = self.vtime_total_ns() + open;
        let elapsed = now - since;
        if accounted == elapsed {
            Ok(())
        } else {
            Err((accounted, elapsed))
        }
    }
}

impl<A: Arch> Ct<'_, A> {
    fn vtime_clock(&mut self) -> u64 {
        self.prim(Prim::ClockRead);
        self.arch.sched_clock()
    }

    /// `get_vtime_delta(vtime)`: consume the open interval (no steal/irqtime in this model),
    /// recording it exactly in the bucket the caller accounts it to.
    fn get_vtime_delta(&mut self, bucket: Bucket) -> u64 {
        let now = self.vtime_clock();
        let inactive = self.task.vtime.state == VtimeState::Inactive;
        self.warn_on(inactive, Violation::VtimeInactive);
        let delta = now.saturating_sub(self.task.vtime.starttime);
        self.task.vtime.starttime += delta;
        self.local.cputime.vtime_ns[bucket as usize] += delta;
        delta
    }

    /// `vtime_account_system()`: accumulate kernel time, flush at a tick.
    fn vtime_account_system(&mut self) {
        let d = self.get_vtime_delta(Bucket::System);
        let tick = self.local.cputime.tick_nsec;
        if let Some(s) = vtime_accumulate(&mut self.task.vtime.stime, d, tick) {
            // account_system_time(tsk, irq_count(), vtime->stime)
            self.task.stime += s;
            self.local.cputime.kcpustat[Bucket::System as usize] += s;
        }
    }

    /// `vtime_account_guest()`.
    fn vtime_account_guest(&mut self) {
        let d = self.get_vtime_delta(Bucket::Guest);
        let tick = self.local.cputime.tick_nsec;
        if let Some(g) = vtime_accumulate(&mut self.task.vtime.gtime, d, tick) {
            // account_guest_time: utime and gtime both grow.
            self.task.utime += g;
            self.task.gtime += g;
            self.local.cputime.kcpustat[Bucket::Guest as usize] += g;
        }
    }

    /// `__vtime_account_kernel()`.
    fn vtime_account_kernel_inner(&mut self) {
        if self.task.vtime.state == VtimeState::Guest {
            self.vtime_account_guest();
        } else {
            self.vtime_account_system();
        }
    }

    fn vtime_hook(&mut self) {
        self.count(|s| s.vtime_hooks += 1);
        self.prim(Prim::VtimeAccount);
    }

    /// `vtime_user_enter(tsk)`: kernel -> user.
    pub fn vtime_user_enter(&mut self) {
        self.vtime_hook();
        self.task.vtime.seqcount.write_begin();
        self.vtime_account_system();
        self.task.vtime.state = VtimeState::User;
        self.task.vtime.seqcount.write_end();
    }

    /// `vtime_user_exit(tsk)`: user -> kernel.
    pub fn vtime_user_exit(&mut self) {
        self.vtime_hook();
        self.task.vtime.seqcount.write_begin();
        self.vtime_account_user();
        self.task.vtime.state = VtimeState::Sys;
        self.task.vtime.seqcount.write_end();
    }

    /// Accumulate user time, flush at a tick (`vtime_user_exit` body, 4.x `vtime_account_user`).
    fn vtime_account_user(&mut self) {
        let d = self.get_vtime_delta(Bucket::User);
        let tick = self.local.cputime.tick_nsec;
        if let Some(u) = vtime_accumulate(&mut self.task.vtime.utime, d, tick) {
            // account_user_time(tsk, vtime->utime)
            self.task.utime += u;
            self.local.cputime.kcpustat[Bucket::User as usize] += u;
        }
    }

    /// `vtime_guest_enter(tsk)`.
    pub fn vtime_guest_enter(&mut self) {
        self.vtime_hook();
        self.task.vtime.seqcount.write_begin();
        self.vtime_account_system();
        self.task.pf_vcpu = true;
        self.task.vtime.state = VtimeState::Guest;
        self.task.vtime.seqcount.write_end();
    }

    /// `vtime_guest_exit(tsk)`.
    pub fn vtime_guest_exit(&mut self) {
        self.vtime_hook();
        self.task.vtime.seqcount.write_begin();
        self.vtime_account_guest();
        self.task.pf_vcpu = false;
        self.task.vtime.state = VtimeState::Sys;
        self.task.vtime.seqcount.write_end();
    }

    /// `vtime_account_kernel(tsk)`: account pending kernel (or guest) time, state unchanged.
    pub fn vtime_account_kernel(&mut self) {
        self.vtime_hook();
        self.task.vtime.seqcount.write_begin();
        let now = self.arch.sched_clock();
        if now != self.task.vtime.starttime {
            self.vtime_account_kernel_inner();
        }
        self.task.vtime.seqcount.write_end();
    }

    /// `vtime_account_idle(tsk)`: no seqcount (the idle task has no remote readers).
    pub fn vtime_account_idle(&mut self) {
        let d = self.get_vtime_delta(Bucket::Idle);
        self.local.cputime.kcpustat[Bucket::Idle as usize] += d;
    }

    /// Linux 4.x `vtime_common_account_irq_enter(tsk)` (GEN): on IRQ entry, flush the interrupted
    /// context's time: user time if context tracking still says USER (the IRQ did not exit user
    /// context), idle time for the idle task, else system time. In 6.x GEN this hook is a no-op
    /// (only NATIVE accounts IRQ time this way); the 2015 designs use it.
    pub fn vtime_common_account_irq_enter(&mut self) {
        if !self.key.is_enabled() || !self.ct.active() {
            return;
        }
        self.vtime_hook();
        if !self.arch.in_interrupt() {
            if self.ct.ct_state_bits() == crate::CtState::User {
                // 4.x vtime_account_user(): account, then the IRQ runs as VTIME_SYS.
                self.task.vtime.seqcount.write_begin();
                self.vtime_account_user();
                self.task.vtime.state = VtimeState::Sys;
                self.task.vtime.seqcount.write_end();
                return;
            }
            if self.arch.is_idle_task() {
                self.vtime_account_idle();
                return;
            }
        }
        self.task.vtime.seqcount.write_begin();
        self.vtime_account_kernel_inner();
        self.task.vtime.seqcount.write_end();
    }

    /// Linux 4.x `vtime_account_irq_exit(tsk)` (GEN): account the IRQ as system time and return
    /// to VTIME_USER if the IRQ came from user context.
    pub fn vtime_account_irq_exit(&mut self) {
        if !self.key.is_enabled() || !self.ct.active() {
            return;
        }
        self.vtime_hook();
        self.task.vtime.seqcount.write_begin();
        // Even for the idle task: 4.x accounted IRQ time in idle as system time.
        self.vtime_account_kernel_inner();
        if self.ct.ct_state_bits() == crate::CtState::User {
            self.task.vtime.state = VtimeState::User;
        }
        self.task.vtime.seqcount.write_end();
    }
}

/// `vtime_init_idle(t, cpu)`: the idle task starts accounting idle time on `cpu` at `now`, and the
/// CPU starts its exact vtime totals.
pub fn vtime_init_idle(idle: &mut TaskVtime, cputime: &mut CpuTime, cpu: usize, now: u64) {
    idle.vtime.seqcount.write_begin();
    idle.vtime.state = VtimeState::Idle;
    idle.vtime.starttime = now;
    idle.vtime.cpu = cpu as i32;
    idle.vtime.seqcount.write_end();
    cputime.vtime_since_ns = Some(now);
}

/// `vtime_task_switch(prev)` → `vtime_task_switch_generic(prev)` (called from
/// `finish_task_switch` on vtime CPUs only): close `prev`'s interval, open `next`'s.
/// `ct` is bound to `prev`; `next_is_idle` selects `VTIME_IDLE` for the idle task.
pub fn vtime_task_switch<A: Arch>(ct: &mut Ct<'_, A>, next: &mut TaskVtime, next_is_idle: bool) {
    ct.count(|s| s.vtime_hooks += 1);
    ct.prim(Prim::VtimeAccount);
    ct.task.vtime.seqcount.write_begin();
    if ct.task.vtime.state == VtimeState::Idle {
        ct.vtime_account_idle();
    } else {
        ct.vtime_account_kernel_inner();
    }
    ct.task.vtime.state = VtimeState::Inactive;
    ct.task.vtime.cpu = -1;
    ct.task.vtime.seqcount.write_end();

    let now = ct.vtime_clock();
    next.vtime.seqcount.write_begin();
    next.vtime.state = if next_is_idle {
        VtimeState::Idle
    } else if next.pf_vcpu {
        VtimeState::Guest
    } else {
        VtimeState::Sys
    };
    next.vtime.starttime = now;
    next.vtime.cpu = ct.arch.smp_processor_id() as i32;
    next.vtime.seqcount.write_end();
}

/// The flush rule shared by `vtime_account_user()`, `vtime_account_system()` and
/// `vtime_account_guest()` (since 4.15, "sched/cputime: Accumulate vtime on top of nsec
/// clocksource"): `delta` joins the task's `pending` bucket, and only once the bucket holds a whole
/// tick (`TICK_NSEC`) is it flushed into `tsk->utime`/`stime`/`gtime`. Returns the flushed amount.
/// A remainder below a tick stays pending, visible to [`task_cputime`] only while the task runs in
/// that state, and is lost to readers once the task sleeps or exits: why `/proc` under-reports a
/// short-lived task's minority bucket. The replay of real traces applies the same rule.
pub fn vtime_accumulate(pending: &mut u64, delta: u64, tick_nsec: u64) -> Option<u64> {
    *pending += delta;
    if *pending >= tick_nsec {
        Some(core::mem::take(pending))
    } else {
        None
    }
}

/// `task_cputime(t, &utime, &stime)` for a remote reader at time `now`: flushed times plus the
/// pending part the current state allows (see the reference notes: the pending `stime` is not
/// added while in USER, and nothing pending while INACTIVE). Returns `None` if a writer is inside
/// the sequence count (the reader would retry).
pub fn task_cputime(t: &TaskVtime, now: u64) -> Option<(u64, u64)> {
    let seq = t.vtime.seqcount.read_begin()?;
    let mut u = t.utime;
    let mut s = t.stime;
    let v = &t.vtime;
    let delta = now.saturating_sub(v.starttime);
    match v.state {
        VtimeState::Inactive | VtimeState::Idle => {}
        VtimeState::Sys => s += v.stime + delta,
        VtimeState::User | VtimeState::Guest => u += v.utime + delta,
    }
    if t.vtime.seqcount.read_retry(seq) {
        return None;
    }
    Some((u, s))
}
