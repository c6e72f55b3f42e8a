//! Per-CPU context tracking (`kernel/context_tracking.c`, Linux 6.x) with the RCU watching counter
//! merged into the same state word.
//!
//! [`ContextTracking`] is the per-CPU `struct context_tracking`; [`PerCpu`] bundles it with the
//! other per-CPU data the APIs touch; [`Ct`] is "this CPU, running `current`": every Linux API is a
//! method on it with the Linux name, so `ct.user_exit_irqoff()` reads like the kernel.
//!
//! Which checks are always on: all of them, including those Linux compiles only with
//! `CONFIG_RCU_EQS_DEBUG` (see [`crate::violation`]).

use crate::arch::Arch;
use crate::rcu::RcuCpu;
use crate::state::*;
use crate::static_key::StaticKey;
use crate::stats::{CtStats, Prim, Transition};
use crate::sync::{
    atomic_add_return, atomic_try_cmpxchg, AtomicBool, AtomicI32, AtomicI64, AtomicU32, Ordering,
};
use crate::tick::TickSched;
use crate::violation::{Violation, WarnLog};
use crate::vtime::{CpuTime, TaskVtime};

/// `struct context_tracking` (`include/linux/context_tracking_state.h`).
///
/// Every field is an atomic so one CPU's structure can be shared with remote readers (a grace
/// period snapshots `state`) without aliasing a `&mut`. Only `state` is ever read remotely; the
/// other fields are this CPU's alone and use relaxed loads and stores, which compile to the plain
/// `mov` of Linux's `__this_cpu_read`/`__this_cpu_write` (`ct_nesting()`, `ct_nmi_nesting()`).
#[derive(Debug)]
pub struct ContextTracking {
    /// This CPU does full user/guest tracking (RCU EQS + vtime); set by `ct_cpu_track_user()`.
    active: AtomicBool,
    /// Re-entrancy guard of `__ct_user_enter/exit`.
    recursion: AtomicI32,
    /// The merged word: low 2 bits context ([`CtState`]), bits 2.. the RCU watching counter.
    state: AtomicU32,
    /// Process-level nesting; 0 means in an EQS (idle/user/guest).
    nesting: AtomicI64,
    /// IRQ/NMI nesting; [`CT_NESTING_IRQ_NONIDLE`] in process context, 0 in an EQS, 1 in an IRQ/NMI
    /// that interrupted an EQS, +2 per further level.
    nmi_nesting: AtomicI64,
    /// The state word's layout (fixed at boot, as Linux's is at build time).
    layout: CtLayout,
}

macro_rules! ct_new {
    ($layout:expr) => {
        ContextTracking {
            active: AtomicBool::new(false),
            recursion: AtomicI32::new(0),
            state: AtomicU32::new($layout.init()),
            nesting: AtomicI64::new(1),
            nmi_nesting: AtomicI64::new(CT_NESTING_IRQ_NONIDLE),
            layout: $layout,
        }
    };
}

impl ContextTracking {
    /// Initial per-CPU value (`DEFINE_PER_CPU(struct context_tracking, context_tracking)`).
    #[cfg(not(loom))]
    pub const fn new() -> ContextTracking {
        ct_new!(CtLayout::MAINLINE)
    }

    /// Initial per-CPU value (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    pub fn new() -> ContextTracking {
        ct_new!(CtLayout::MAINLINE)
    }

    /// Initial per-CPU value with a state word of `layout` (deferred work, the 2-bit counter).
    #[cfg(not(loom))]
    pub const fn with_layout(layout: CtLayout) -> ContextTracking {
        ct_new!(layout)
    }

    /// Initial per-CPU value with a state word of `layout`.
    #[cfg(loom)]
    pub fn with_layout(layout: CtLayout) -> ContextTracking {
        ct_new!(layout)
    }

    /// The state word's layout.
    #[inline(always)]
    pub fn layout(&self) -> CtLayout {
        self.layout
    }

    /// `ct->active`: this CPU does full user tracking.
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }
    /// Sets `ct->active` (`ct_cpu_track_user()`; tests).
    #[inline(always)]
    pub fn set_active(&self, v: bool) {
        self.active.store(v, Ordering::Relaxed)
    }
    /// `ct->recursion`.
    #[inline(always)]
    pub fn recursion(&self) -> i32 {
        self.recursion.load(Ordering::Relaxed)
    }
    /// Sets `ct->recursion` (this CPU only).
    #[inline(always)]
    pub fn set_recursion(&self, v: i32) {
        self.recursion.store(v, Ordering::Relaxed)
    }
    /// `ct_nesting()`.
    #[inline(always)]
    pub fn nesting(&self) -> i64 {
        self.nesting.load(Ordering::Relaxed)
    }
    /// `raw_cpu_write(context_tracking.nesting, v)`.
    #[inline(always)]
    pub fn set_nesting(&self, v: i64) {
        self.nesting.store(v, Ordering::Relaxed)
    }
    /// `ct_nmi_nesting()`.
    #[inline(always)]
    pub fn nmi_nesting(&self) -> i64 {
        self.nmi_nesting.load(Ordering::Relaxed)
    }
    /// `WRITE_ONCE(ct->nmi_nesting, v)`.
    #[inline(always)]
    pub fn set_nmi_nesting(&self, v: i64) {
        self.nmi_nesting.store(v, Ordering::Relaxed)
    }

    /// `raw_atomic_read(&ct->state)`.
    #[inline(always)]
    pub fn state_word(&self) -> u32 {
        self.state.load(Ordering::Relaxed)
    }

    /// `__ct_state()`: the context bits, read raw.
    #[inline(always)]
    pub fn ct_state_bits(&self) -> CtState {
        CtState::from_bits(self.state_word())
    }

    /// `rcu_is_watching_curr_cpu()`.
    #[inline(always)]
    pub fn rcu_is_watching(&self) -> bool {
        self.state_word() & self.layout.watching() != 0
    }

    /// `ct_rcu_watching()`: the counter bits (at mainline's position, whatever the layout).
    #[inline(always)]
    pub fn ct_rcu_watching(&self) -> u32 {
        self.layout.counter(self.state_word())
    }

    /// `ct_rcu_watching_cpu_acquire(cpu)`: the remote read a grace period does. Pairs with the
    /// fully ordered [`Self::ct_state_inc`] (see `rcu_watching_snap_save`).
    #[inline(always)]
    pub fn ct_rcu_watching_acquire(&self) -> u32 {
        self.layout.counter(self.state.load(Ordering::Acquire))
    }

    /// The deferred work bits in the state word (stale between a flush and the next exit).
    #[inline(always)]
    pub fn ct_work(&self) -> u32 {
        self.layout.work(self.state_word())
    }

    /// `ct_state_inc(incby)`: `raw_atomic_add_return`, the only fully ordered update. Its full
    /// barriers order the EQS transition against the read-side accesses that follow (leaving an
    /// EQS) or precede (entering one); the grace period's `smp_mb()` and acquire snapshot pair
    /// with them (`tests/loom.rs` checks the protocol).
    #[inline(always)]
    pub fn ct_state_inc(&self, incby: u32) -> u32 {
        atomic_add_return(&self.state, incby)
    }

    /// `ct_state_inc_clear_work(incby)`: the EQS entry's update with deferred work: clear the work
    /// bits and add in one fully ordered compare-and-exchange loop, so no setter's bit can land
    /// between the clearing and the CPU becoming not-watching (it would be lost).
    #[inline(always)]
    pub fn ct_state_inc_clear_work(&self, incby: u32) -> u32 {
        self.state_inc_clear(incby, self.layout.work_mask())
    }

    /// [`Self::ct_state_inc_clear_work`] with the work mask given (a constant when the backend
    /// fixes the layout).
    #[inline(always)]
    fn state_inc_clear(&self, incby: u32, mask: u32) -> u32 {
        let mut old = self.state_word();
        loop {
            let new = (old & !mask).wrapping_add(incby);
            if atomic_try_cmpxchg(&self.state, &mut old, new) {
                return new;
            }
        }
    }

    /// `raw_atomic_add` (unordered) used by inactive CPUs for the context bits only.
    #[inline(always)]
    fn state_add_plain(&self, incby: u32) {
        // Relaxed is enough: "RCU only requires CT_RCU_WATCHING increments to be fully ordered".
        self.state.fetch_add(incby, Ordering::Relaxed);
    }

    /// `atomic_try_cmpxchg(&ct->state, old, new)`, fully ordered: the remote setter's update,
    /// exposed for model checkers that run its read and its compare-and-exchange as separate
    /// actions, and for loom's negative controls.
    pub fn state_try_cmpxchg(&self, old: &mut u32, new: u32) -> bool {
        atomic_try_cmpxchg(&self.state, old, new)
    }

    /// Overwrites the state word. For model checkers restoring a cloned state and for tests.
    pub fn set_state_word(&self, word: u32) {
        self.state.store(word, Ordering::Relaxed);
    }

    fn fields(&self) -> (bool, i32, u32, i64, i64, CtLayout) {
        (
            self.active(),
            self.recursion(),
            self.state_word(),
            self.nesting(),
            self.nmi_nesting(),
            self.layout,
        )
    }
}

impl Default for ContextTracking {
    fn default() -> Self {
        ContextTracking::new()
    }
}

impl Clone for ContextTracking {
    fn clone(&self) -> Self {
        let c = ContextTracking::with_layout(self.layout);
        c.set_active(self.active());
        c.set_recursion(self.recursion());
        c.set_state_word(self.state_word());
        c.set_nesting(self.nesting());
        c.set_nmi_nesting(self.nmi_nesting());
        c
    }
}

impl PartialEq for ContextTracking {
    fn eq(&self, o: &Self) -> bool {
        self.fields() == o.fields()
    }
}
impl Eq for ContextTracking {}

impl core::hash::Hash for ContextTracking {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.fields().hash(h);
    }
}

/// The per-CPU data only this CPU ever touches: nohz tick state, cputime sinks, counters and the
/// violation log. [`Ct`] borrows it `&mut`, while the shared parts ([`ContextTracking`],
/// [`RcuCpu`]) are borrowed `&`, so a remote grace period may read them at the same time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuLocal {
    /// nohz tick state and the per-CPU tick dependency mask.
    pub tick: TickSched,
    /// kcpustat sinks and exact vtime totals.
    pub cputime: CpuTime,
    /// Operation counters (kept only when [`Arch::COUNTS`]).
    pub stats: CtStats,
    /// Violations detected on this CPU.
    pub warn: WarnLog,
}

impl CpuLocal {
    /// A CPU with the given tick length (`TICK_NSEC`).
    pub fn new(tick_nsec: u64) -> CpuLocal {
        CpuLocal {
            cputime: CpuTime::new(tick_nsec),
            ..CpuLocal::default()
        }
    }
}

/// All per-CPU data the core owns for one CPU, for drivers that keep it in one place (the
/// simulator, the checker). A driver with real remote readers keeps [`ContextTracking`] and
/// [`RcuCpu`] where other threads can see them and builds [`Ct`] with [`Ct::from_parts`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PerCpu {
    /// `struct context_tracking`.
    pub ct: ContextTracking,
    /// The per-CPU RCU data the entry hooks touch (`rcu_urgent_qs`, `rcu_forced_tick`).
    pub rcu: RcuCpu,
    /// This CPU's private data.
    pub local: CpuLocal,
}

impl PerCpu {
    /// A CPU with the given tick length (`TICK_NSEC`).
    pub fn new(tick_nsec: u64) -> PerCpu {
        PerCpu {
            local: CpuLocal::new(tick_nsec),
            ..PerCpu::default()
        }
    }

    /// A CPU with the given tick length and state-word layout (deferred work, 2-bit counter).
    pub fn with_layout(tick_nsec: u64, layout: CtLayout) -> PerCpu {
        PerCpu {
            ct: ContextTracking::with_layout(layout),
            local: CpuLocal::new(tick_nsec),
            ..PerCpu::default()
        }
    }

    /// `ct_cpu_track_user(cpu)`: make this CPU do full user tracking and bump the key once.
    pub fn ct_cpu_track_user(&mut self, key: &StaticKey) {
        ct_cpu_track_user(&self.ct, key);
    }

    /// `ct_cpu_untrack_user(cpu)` (posted upstream for runtime nohz_full changes).
    pub fn ct_cpu_untrack_user(&mut self, key: &StaticKey) {
        if self.ct.active() {
            self.ct.set_active(false);
            key.static_branch_dec();
        }
    }
}

/// `ct_cpu_track_user(cpu)`: make `ct`'s CPU do full user tracking and bump the key once. Called
/// at boot, before the CPU runs (Linux: `context_tracking_init()` from `tick_nohz_init()`).
pub fn ct_cpu_track_user(ct: &ContextTracking, key: &StaticKey) {
    if !ct.active() {
        ct.set_active(true);
        key.static_branch_inc();
    }
}

/// `ct_set_cpu_work(cpu, work)` (the CT_WORK series): defer `work` to `ct`'s CPU's next kernel
/// entry instead of interrupting it. Succeeds only while that CPU does full tracking and RCU is
/// not watching it (user, guest, idle EQS); then the bit is set by a fully ordered
/// compare-and-exchange that the CPU's next `ct_kernel_enter_state()` add returns, so the work
/// runs right after RCU starts watching. `false`: the CPU is inactive, in the kernel, or the
/// layout has no bit for `work`; the caller must send the IPI (`on_each_cpu_cond()` takes the
/// negation as its condition). The caller has preemption off.
pub fn ct_set_cpu_work(ct: &ContextTracking, work: CtWork) -> bool {
    let Some(mut old) = ct_set_cpu_work_begin(ct, work) else {
        return false;
    };
    loop {
        if let Some(set) = ct_set_cpu_work_try(ct, &mut old, work) {
            return set;
        }
    }
}

/// The first half of [`ct_set_cpu_work`]: `None` when `ct`'s CPU cannot defer at all (inactive,
/// or no bit for `work`), else `old = atomic_read(&ct->state) & ~CT_RCU_WATCHING`. A model
/// checker runs this and [`ct_set_cpu_work_try`] as separate actions.
pub fn ct_set_cpu_work_begin(ct: &ContextTracking, work: CtWork) -> Option<u32> {
    let layout = ct.layout();
    if !layout.holds(work) || !ct.active() {
        return None;
    }
    Some(ct.state_word() & !layout.watching())
}

/// One `atomic_try_cmpxchg(&ct->state, &old, old | work)` of [`ct_set_cpu_work`]'s loop:
/// `Some(true)` set, `Some(false)` the CPU is watching (send the IPI), `None` retry with the
/// value found in `old`.
pub fn ct_set_cpu_work_try(ct: &ContextTracking, old: &mut u32, work: CtWork) -> Option<bool> {
    let new = *old | work.bit() << CT_WORK_START;
    if atomic_try_cmpxchg(&ct.state, old, new) {
        return Some(true);
    }
    (*old & ct.layout().watching() != 0).then_some(false)
}

/// "This CPU running `current`": the receiver of every context-tracking API.
pub struct Ct<'a, A: Arch> {
    /// `context_tracking_key`.
    pub key: &'a StaticKey,
    /// This CPU's `struct context_tracking` (shared: remote grace periods read its state word).
    pub ct: &'a ContextTracking,
    /// This CPU's RCU data (shared: the grace period sets `rcu_urgent_qs`).
    pub rcu: &'a RcuCpu,
    /// This CPU's private data.
    pub local: &'a mut CpuLocal,
    /// `current`'s vtime and cputime.
    pub task: &'a mut TaskVtime,
    /// The hardware.
    pub arch: &'a mut A,
}

impl<'a, A: Arch> Ct<'a, A> {
    /// Bundles the pieces of a [`PerCpu`].
    pub fn new(
        key: &'a StaticKey,
        pcpu: &'a mut PerCpu,
        task: &'a mut TaskVtime,
        arch: &'a mut A,
    ) -> Self {
        Ct {
            key,
            ct: &pcpu.ct,
            rcu: &pcpu.rcu,
            local: &mut pcpu.local,
            task,
            arch,
        }
    }

    /// Bundles pieces kept apart: the shared ones by `&`, the private ones by `&mut`.
    pub fn from_parts(
        key: &'a StaticKey,
        ct: &'a ContextTracking,
        rcu: &'a RcuCpu,
        local: &'a mut CpuLocal,
        task: &'a mut TaskVtime,
        arch: &'a mut A,
    ) -> Self {
        Ct {
            key,
            ct,
            rcu,
            local,
            task,
            arch,
        }
    }

    /// Bumps a counter, only on backends that count ([`Arch::COUNTS`]); compiled out elsewhere.
    #[inline(always)]
    pub(crate) fn count(&mut self, f: impl FnOnce(&mut CtStats)) {
        if A::COUNTS {
            f(&mut self.local.stats);
        }
    }

    /// Counts a transition that changed the state word.
    #[inline(always)]
    fn count_transition(&mut self, t: Transition) {
        self.count(|s| s.transition(t));
    }

    #[inline(always)]
    pub(crate) fn prim(&mut self, p: Prim) {
        self.count(|s| s.prim(p));
    }

    #[inline(always)]
    pub(crate) fn warn_on(&mut self, cond: bool, v: Violation) -> bool {
        self.local.warn.warn_on(cond, v)
    }

    /// An out-of-line call into user context tracking; counts wasted calls while the key is off.
    #[inline(always)]
    fn ct_call(&mut self) {
        self.ct_call_idle();
        if !self.key.is_enabled() {
            self.count(|s| s.ct_calls_inactive += 1);
        }
    }

    /// An out-of-line call into the RCU-idle half (`CONFIG_CONTEXT_TRACKING_IDLE`: idle, IRQ,
    /// NMI), which runs whether or not user tracking is on, so is never "wasted".
    #[inline(always)]
    fn ct_call_idle(&mut self) {
        self.prim(Prim::Call);
        self.count(|s| s.ct_calls += 1);
    }

    // ---------------------------------------------------------------- queries

    /// `context_tracking_enabled()`: a guarded static branch (counted).
    #[inline(always)]
    pub fn context_tracking_enabled(&mut self) -> bool {
        let on = self.arch.static_branch_unlikely(self.key);
        self.count(|s| s.static_branch(on));
        on
    }

    /// `context_tracking_enabled_this_cpu()`.
    #[inline(always)]
    pub fn context_tracking_enabled_this_cpu(&mut self) -> bool {
        self.context_tracking_enabled() && self.ct.active()
    }

    /// `__ct_state()`.
    #[inline(always)]
    pub fn __ct_state(&self) -> CtState {
        self.ct.ct_state_bits()
    }

    /// `ct_state()`: `None` is `CT_STATE_DISABLED` (key off).
    pub fn ct_state(&self) -> Option<CtState> {
        if self.key.is_enabled() {
            Some(self.__ct_state())
        } else {
            None
        }
    }

    /// `rcu_is_watching()`.
    #[inline(always)]
    pub fn rcu_is_watching(&self) -> bool {
        self.ct.state_word() & self.layout().watching() != 0
    }

    /// The state word's layout: the backend's, when it fixes one at build time
    /// ([`Arch::CT_LAYOUT`], so every mask is a constant as Linux's are), else this CPU's.
    #[inline(always)]
    pub fn layout(&self) -> CtLayout {
        match A::CT_LAYOUT {
            Some(l) => l,
            None => self.ct.layout(),
        }
    }

    /// `CT_WARN_ON(cond)`: `WARN_ON(context_tracking_enabled() && cond)`.
    pub fn ct_warn_on(&mut self, cond: bool, v: Violation) -> bool {
        let fire = self.key.is_enabled() && cond;
        self.warn_on(fire, v)
    }

    // ---------------------------------------------------------------- irq save/restore

    /// `local_irq_save(flags)`; returns whether IRQs were enabled.
    #[inline(always)]
    fn local_irq_save(&mut self) -> bool {
        self.prim(Prim::IrqSaveRestore);
        let was_enabled = !self.arch.irqs_disabled();
        self.arch.local_irq_disable();
        was_enabled
    }

    /// `local_irq_restore(flags)` (its cost is counted with the save).
    #[inline(always)]
    fn local_irq_restore(&mut self, was_enabled: bool) {
        if was_enabled {
            self.arch.local_irq_enable();
        }
    }

    // ---------------------------------------------------------------- recursion guard

    /// `context_tracking_recursion_enter()`.
    fn recursion_enter(&mut self) -> bool {
        // this_cpu_inc_return(): only this CPU writes it (an NMI in between restores it).
        let recursion = self.ct.recursion() + 1;
        self.ct.set_recursion(recursion);
        if recursion == 1 {
            return true;
        }
        self.warn_on(recursion < 1, Violation::InvalidRecursion(recursion));
        self.ct.set_recursion(recursion - 1);
        false
    }

    /// `context_tracking_recursion_exit()`.
    fn recursion_exit(&mut self) {
        self.ct.set_recursion(self.ct.recursion() - 1);
    }

    // ---------------------------------------------------------------- EQS core

    /// `ct_kernel_exit_state(offset)`: the fully ordered add that enters the EQS (with deferred
    /// work, `ct_state_inc_clear_work()`: the bits flushed at the last entry go in the same
    /// update).
    fn ct_kernel_exit_state(&mut self, offset: u32) {
        self.prim(Prim::AtomicRmw);
        let layout = self.layout();
        let watching_before = !A::RCU_EQS_DEBUG || self.rcu_is_watching();
        let seq = if layout.work_mask() != 0 {
            self.ct.state_inc_clear(offset, layout.work_mask())
        } else {
            self.ct.ct_state_inc(offset)
        };
        // WARN_ON_ONCE(IS_ENABLED(CONFIG_RCU_EQS_DEBUG) && (seq & CT_RCU_WATCHING))
        let bad = A::RCU_EQS_DEBUG && (!watching_before || seq & layout.watching() != 0);
        self.warn_on(bad, Violation::ExitStateStillWatching);
    }

    /// `ct_kernel_enter_state(offset)`: the fully ordered add that leaves the EQS, then, with
    /// deferred work, `ct_work_flush(seq)` at once: the bits come from the same update that made
    /// RCU watch, so a setter either landed before it (and its bit is here) or sees watching and
    /// sends its IPI.
    fn ct_kernel_enter_state(&mut self, offset: u32) {
        self.prim(Prim::AtomicRmw);
        let seq = self.ct.ct_state_inc(offset);
        let layout = self.layout();
        // WARN_ON_ONCE(IS_ENABLED(CONFIG_RCU_EQS_DEBUG) && !(seq & CT_RCU_WATCHING))
        let bad = A::RCU_EQS_DEBUG && seq & layout.watching() == 0;
        self.warn_on(bad, Violation::EnterStateNotWatching);
        let work = layout.work(seq);
        if work != 0 {
            self.ct_work_flush(work);
        }
    }

    /// `ct_work_flush(seq)` (noinstr): one `arch_context_tracking_work()` call per set bit.
    #[cold]
    fn ct_work_flush(&mut self, work: u32) {
        for w in CtWork::ALL {
            if work & w.bit() != 0 {
                self.arch.arch_context_tracking_work(w);
            }
        }
    }

    /// `ct_kernel_exit(user, offset)`: enter an EQS from process context (or just drop a nesting
    /// level if this is not the outermost one).
    fn ct_kernel_exit(&mut self, user: bool, offset: u32) {
        self.count(|s| s.rcu_hooks += 1);
        self.prim(Prim::RcuHook);
        let bad_nmi = self.ct.nmi_nesting() != CT_NESTING_IRQ_NONIDLE;
        self.warn_on(bad_nmi, Violation::KernelExitNmiNesting);
        self.ct.set_nmi_nesting(0);
        let nesting = self.ct.nesting();
        self.warn_on(nesting == 0, Violation::KernelExitNestingZero);
        if nesting != 1 {
            // RCU will still be watching, so just decrement nesting.
            self.ct.set_nesting(nesting - 1);
            return;
        }
        // lockdep_assert_irqs_disabled(); the idle-task check is CONFIG_RCU_EQS_DEBUG.
        let irqs_on = A::RCU_EQS_DEBUG && !self.arch.irqs_disabled();
        self.warn_on(irqs_on, Violation::KernelExitIrqsEnabled);
        let not_idle = A::RCU_EQS_DEBUG && !user && !self.arch.is_idle_task();
        self.warn_on(not_idle, Violation::KernelExitNotIdleTask);
        // rcu_preempt_deferred_qs(current): nothing deferred in this model.
        self.ct.set_nesting(0);
        self.ct_kernel_exit_state(offset);
        // rcu_task_exit()
    }

    /// `ct_kernel_enter(user, offset)`: leave an EQS to process context.
    fn ct_kernel_enter(&mut self, user: bool, offset: u32) {
        self.count(|s| s.rcu_hooks += 1);
        self.prim(Prim::RcuHook);
        // lockdep_assert_irqs_disabled(); the nesting and idle-task checks are
        // CONFIG_RCU_EQS_DEBUG.
        let irqs_on = A::RCU_EQS_DEBUG && !self.arch.irqs_disabled();
        self.warn_on(irqs_on, Violation::KernelEnterIrqsEnabled);
        let oldval = self.ct.nesting();
        self.warn_on(A::RCU_EQS_DEBUG && oldval < 0, Violation::NestingNegative);
        if oldval != 0 {
            // RCU was already watching, so just do accounting and leave.
            self.ct.set_nesting(oldval + 1);
            return;
        }
        // rcu_task_enter()
        self.ct_kernel_enter_state(offset);
        let not_idle = A::RCU_EQS_DEBUG && !user && !self.arch.is_idle_task();
        self.warn_on(not_idle, Violation::KernelExitNotIdleTask);
        self.ct.set_nesting(1);
        let nmi = self.ct.nmi_nesting() != 0;
        self.warn_on(nmi, Violation::KernelEnterNmiNesting);
        self.ct.set_nmi_nesting(CT_NESTING_IRQ_NONIDLE);
    }

    // ---------------------------------------------------------------- user / guest

    /// `__ct_user_enter(state)` (noinstr): kernel -> user or guest. IRQs must be off.
    pub fn __ct_user_enter(&mut self, state: CtState) {
        self.ct_call();
        self.ct_user_enter_body(state);
    }

    fn ct_user_enter_body(&mut self, state: CtState) {
        // lockdep_assert_irqs_disabled()
        let irqs_on = A::RCU_EQS_DEBUG && !self.arch.irqs_disabled();
        self.warn_on(irqs_on, Violation::UserEnterIrqsEnabled);
        // Kernel threads aren't supposed to go to userspace.
        let kthread = !self.arch.current_has_mm();
        self.warn_on(kthread, Violation::UserEnterKthread);
        if !self.recursion_enter() {
            return;
        }
        if self.__ct_state() != state {
            if self.ct.active() {
                // Only low-level entry code remains before user mode: account the kernel time
                // and let RCU ignore this CPU.
                if state == CtState::User {
                    // trace_user_enter(0)
                    self.vtime_user_enter();
                }
                // rcu_irq_work_resched(): generic entry already flushed deferred wakeups.
                self.ct_kernel_exit(true, self.layout().watching() + state.bits());
                self.count_transition(match state {
                    CtState::Guest => Transition::GuestEnter,
                    _ => Transition::UserEnter,
                });
            } else {
                // Inactive CPUs still track the context so exception_exit() elsewhere knows where
                // to return; RCU keeps watching, so no ordering is needed.
                self.prim(Prim::AtomicPlain);
                self.ct.state_add_plain(state.bits());
            }
        }
        self.recursion_exit();
    }

    /// `__ct_user_exit(state)` (noinstr): user or guest -> kernel.
    pub fn __ct_user_exit(&mut self, state: CtState) {
        self.ct_call();
        self.ct_user_exit_body(state);
    }

    fn ct_user_exit_body(&mut self, state: CtState) {
        if !self.recursion_enter() {
            return;
        }
        if self.__ct_state() == state {
            if self.ct.active() {
                // Exit RCU idle mode while entering the kernel: we may use RCU from here on.
                self.ct_kernel_enter(true, self.layout().watching().wrapping_sub(state.bits()));
                if state == CtState::User {
                    self.vtime_user_exit();
                    // trace_user_exit(0)
                }
                self.count_transition(match state {
                    CtState::Guest => Transition::GuestExit,
                    _ => Transition::UserExit,
                });
            } else {
                self.prim(Prim::AtomicPlain);
                self.ct.state_add_plain(0u32.wrapping_sub(state.bits()));
            }
        }
        self.recursion_exit();
    }

    /// `ct_user_enter(state)` (obsolete, irq-saving form): bails out in interrupt context.
    pub fn ct_user_enter(&mut self, state: CtState) {
        self.ct_call();
        // An exception in an IRQ would mess up the nesting; ct_irq_* cover RCU there.
        if self.arch.in_interrupt() {
            return;
        }
        let flags = self.local_irq_save();
        self.prim(Prim::Call);
        self.ct_user_enter_body(state);
        self.local_irq_restore(flags);
    }

    /// `ct_user_exit(state)` (obsolete, irq-saving form).
    pub fn ct_user_exit(&mut self, state: CtState) {
        self.ct_call();
        if self.arch.in_interrupt() {
            return;
        }
        let flags = self.local_irq_save();
        self.prim(Prim::Call);
        self.ct_user_exit_body(state);
        self.local_irq_restore(flags);
    }

    /// `user_enter()`: static key, then `ct_user_enter(CT_STATE_USER)`.
    pub fn user_enter(&mut self) {
        if self.context_tracking_enabled() {
            self.ct_user_enter(CtState::User);
        }
    }

    /// `user_exit()`.
    pub fn user_exit(&mut self) {
        if self.context_tracking_enabled() {
            self.ct_user_exit(CtState::User);
        }
    }

    /// `user_enter_irqoff()` (`__always_inline`, used by generic entry).
    #[inline(always)]
    pub fn user_enter_irqoff(&mut self) {
        if self.context_tracking_enabled() {
            self.__ct_user_enter(CtState::User);
        }
    }

    /// `user_exit_irqoff()`.
    #[inline(always)]
    pub fn user_exit_irqoff(&mut self) {
        if self.context_tracking_enabled() {
            self.__ct_user_exit(CtState::User);
        }
    }

    /// `user_enter_callable()` / 4.3's `context_tracking_user_enter()` called from asm: the call
    /// always happens; the static key is tested only inside.
    pub fn user_enter_callable(&mut self) {
        self.ct_call();
        if self.context_tracking_enabled() {
            self.ct_user_enter(CtState::User);
        }
    }

    /// `user_exit_callable()` / 4.3's `enter_from_user_mode()` called unconditionally from asm.
    pub fn user_exit_callable(&mut self) {
        self.ct_call();
        if self.context_tracking_enabled() {
            self.ct_user_exit(CtState::User);
        }
    }

    /// `exception_enter()`: returns the previous context (KERNEL if the key is off).
    pub fn exception_enter(&mut self) -> CtState {
        if !self.context_tracking_enabled() {
            return CtState::Kernel;
        }
        let prev = self.__ct_state();
        if prev != CtState::Kernel {
            self.ct_user_exit(prev);
        }
        prev
    }

    /// `exception_exit(prev)`: restore the context saved by [`Self::exception_enter`].
    pub fn exception_exit(&mut self, prev: CtState) {
        if self.context_tracking_enabled() && prev != CtState::Kernel {
            self.ct_user_enter(prev);
        }
    }

    /// `context_tracking_guest_enter()`: returns `context_tracking_enabled_this_cpu()`.
    pub fn context_tracking_guest_enter(&mut self) -> bool {
        if self.context_tracking_enabled() {
            self.__ct_user_enter(CtState::Guest);
        }
        self.key.is_enabled() && self.ct.active()
    }

    /// `context_tracking_guest_exit()`.
    pub fn context_tracking_guest_exit(&mut self) {
        if self.context_tracking_enabled() {
            self.__ct_user_exit(CtState::Guest);
        }
    }

    // ---------------------------------------------------------------- idle

    /// `ct_idle_enter()`: the idle loop enters its EQS (IRQs off).
    pub fn ct_idle_enter(&mut self) {
        self.ct_call_idle();
        let outermost = self.ct.nesting() == 1;
        self.ct_kernel_exit(false, self.layout().watching() + CtState::Idle.bits());
        if outermost {
            self.count_transition(Transition::IdleEnter);
        }
    }

    /// `ct_idle_exit()`: the idle loop leaves its EQS (`raw_local_irq_save` inside).
    pub fn ct_idle_exit(&mut self) {
        self.ct_call_idle();
        let flags = self.local_irq_save();
        let outermost = self.ct.nesting() == 0;
        self.ct_kernel_enter(
            false,
            self.ct
                .layout()
                .watching()
                .wrapping_sub(CtState::Idle.bits()),
        );
        if outermost {
            self.count_transition(Transition::IdleExit);
        }
        self.local_irq_restore(flags);
    }

    // ---------------------------------------------------------------- irq / nmi

    /// `ct_nmi_enter()`: make RCU watch for an NMI (or IRQ) from any context. The context bits
    /// are not changed: an IRQ from idle keeps `IDLE` and becomes watching.
    pub fn ct_nmi_enter(&mut self) {
        self.nmi_enter_common(true);
    }

    /// Linux 4.x `rcu_irq_enter()` (`kernel/rcu/tree.c` before the 6.0 merge): the same counter
    /// protocol as [`Self::ct_nmi_enter`] but without `rcu_irq_enter_check_tick()` (added in 5.x).
    pub fn rcu_irq_enter(&mut self) {
        let on = !self.arch.irqs_disabled();
        self.warn_on(on, Violation::IrqIrqsEnabled);
        self.nmi_enter_common(false);
    }

    /// Linux 4.x `rcu_irq_exit()`.
    pub fn rcu_irq_exit(&mut self) {
        let on = !self.arch.irqs_disabled();
        self.warn_on(on, Violation::IrqIrqsEnabled);
        self.ct_nmi_exit();
    }

    fn nmi_enter_common(&mut self, check_tick: bool) {
        self.ct_call_idle();
        self.count(|s| s.rcu_hooks += 1);
        self.prim(Prim::RcuHook);
        let neg = self.ct.nmi_nesting() < 0;
        self.warn_on(neg, Violation::NmiNestingNegative);
        let incby = if !self.rcu_is_watching() {
            // rcu_task_enter() if !in_nmi()
            self.ct_kernel_enter_state(self.layout().watching());
            self.count_transition(Transition::IrqEqsExit);
            1
        } else {
            let layout = self.layout();
            if layout.nmi_flush() {
                let work = layout.work(self.ct.state_word());
                if work != 0 {
                    self.ct_work_flush(work);
                }
            }
            if check_tick && !self.arch.in_nmi() {
                self.rcu_irq_enter_check_tick();
            }
            2
        };
        self.ct.set_nmi_nesting(self.ct.nmi_nesting() + incby);
    }

    /// `ct_nmi_exit()`.
    pub fn ct_nmi_exit(&mut self) {
        self.ct_call_idle();
        self.count(|s| s.rcu_hooks += 1);
        self.prim(Prim::RcuHook);
        let np = self.ct.nmi_nesting() <= 0;
        self.warn_on(np, Violation::NmiExitNestingNotPositive);
        let nw = !self.rcu_is_watching();
        self.warn_on(nw, Violation::NmiExitNotWatching);
        if self.ct.nmi_nesting() != 1 {
            self.ct.set_nmi_nesting(self.ct.nmi_nesting() - 2);
            return;
        }
        // This NMI interrupted an RCU-idle CPU: restore RCU-idleness.
        self.ct.set_nmi_nesting(0);
        self.ct_kernel_exit_state(self.layout().watching());
        self.count_transition(Transition::IrqEqsEnter);
    }

    /// `ct_irq_enter()`: IRQs must be off; same counter and code as NMIs.
    pub fn ct_irq_enter(&mut self) {
        let on = !self.arch.irqs_disabled();
        self.warn_on(on, Violation::IrqIrqsEnabled);
        self.ct_nmi_enter();
    }

    /// `ct_irq_exit()`.
    pub fn ct_irq_exit(&mut self) {
        let on = !self.arch.irqs_disabled();
        self.warn_on(on, Violation::IrqIrqsEnabled);
        self.ct_nmi_exit();
    }

    /// `ct_irq_enter_irqson()`.
    pub fn ct_irq_enter_irqson(&mut self) {
        let flags = self.local_irq_save();
        self.ct_irq_enter();
        self.local_irq_restore(flags);
    }

    /// `ct_irq_exit_irqson()`.
    pub fn ct_irq_exit_irqson(&mut self) {
        let flags = self.local_irq_save();
        self.ct_irq_exit();
        self.local_irq_restore(flags);
    }

    // ---------------------------------------------------------------- RCU entry hooks

    /// `rcu_irq_enter_check_tick()` (`__rcu_irq_enter_check_tick`): on a nohz_full CPU that RCU
    /// wants urgently, turn the tick on (`TICK_DEP_BIT_RCU`).
    pub fn rcu_irq_enter_check_tick(&mut self) {
        // include/linux/hardirq.h: a static-key wrapper around __rcu_irq_enter_check_tick().
        if !self.context_tracking_enabled() || self.arch.in_nmi() {
            return;
        }
        self.count(|s| s.rcu_hooks += 1);
        self.prim(Prim::RcuHook);
        let eqs = !self.rcu_is_watching();
        self.warn_on(eqs, Violation::CheckTickFromEqs);
        if !self.ct.active() || !self.rcu.urgent_qs() || self.rcu.forced_tick() {
            return;
        }
        self.rcu.set_forced_tick(true);
        let cpu = self.arch.smp_processor_id();
        if self
            .local
            .tick
            .tick_nohz_dep_set_cpu(crate::tick::TickDepBit::Rcu)
        {
            self.arch.tick_kick(cpu);
        }
    }

    /// `rcu_momentary_eqs()`: advance the counter by two steps without leaving "watching", so a
    /// remote snapshot sees a quiescent state.
    pub fn rcu_momentary_eqs(&mut self) {
        self.prim(Prim::AtomicRmw);
        let watching = self.layout().watching();
        let seq = self.ct.ct_state_inc(2 * watching);
        self.warn_on(seq & watching == 0, Violation::MomentaryEqsNotWatching);
    }

    /// `rcu_irq_exit_check_preempt()`: before preempting from an IRQ, nesting must be at process
    /// level and RCU watching.
    pub fn rcu_irq_exit_check_preempt(&mut self) {
        let ct = self.ct;
        let bad = ct.nesting() <= 0
            || ct.nmi_nesting() != CT_NESTING_IRQ_NONIDLE
            || !self.rcu_is_watching();
        self.warn_on(bad, Violation::CheckPreemptBadNesting);
    }
}
