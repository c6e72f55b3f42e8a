//! Every context-tracking API transition and misuse path, against the state-word arithmetic of
//! the reference notes (section 1.5) and the checks of `kernel/context_tracking.c`.

use ctxtrack_core::rcu::*;
use ctxtrack_core::state::*;
use ctxtrack_core::stats::{Prim, Transition};
use ctxtrack_core::tick::*;
use ctxtrack_core::vtime::*;
use ctxtrack_core::*;

/// A CPU for tests: IRQ flag, clock, preempt context, current task kind, kicks. `DEBUG` is
/// [`Arch::RCU_EQS_DEBUG`] (false: a production build).
#[derive(Default)]
struct MockArch<const DEBUG: bool = true> {
    irqs_off: bool,
    now: u64,
    in_irq: bool,
    in_nmi: bool,
    kthread: bool,
    idle_task: bool,
    kicks: Vec<usize>,
    /// `arch_context_tracking_work()` calls, in order.
    flushed: Vec<CtWork>,
}

impl<const DEBUG: bool> Arch for MockArch<DEBUG> {
    const RCU_EQS_DEBUG: bool = DEBUG;
    fn irqs_disabled(&self) -> bool {
        self.irqs_off
    }
    fn local_irq_disable(&mut self) {
        self.irqs_off = true;
    }
    fn local_irq_enable(&mut self) {
        self.irqs_off = false;
    }
    fn sched_clock(&mut self) -> u64 {
        self.now
    }
    fn smp_processor_id(&self) -> usize {
        1
    }
    fn in_interrupt(&self) -> bool {
        self.in_irq || self.in_nmi
    }
    fn in_nmi(&self) -> bool {
        self.in_nmi
    }
    fn current_has_mm(&self) -> bool {
        !self.kthread
    }
    fn is_idle_task(&self) -> bool {
        self.idle_task
    }
    fn tick_kick(&mut self, cpu: usize) {
        self.kicks.push(cpu);
    }
    fn arch_context_tracking_work(&mut self, work: CtWork) {
        self.flushed.push(work);
    }
}

struct World {
    key: StaticKey,
    pcpu: PerCpu,
    task: TaskVtime,
    arch: MockArch,
}

const TICK: u64 = 4_000_000;

impl World {
    /// [`World::active`] with a state word of `layout`.
    fn active_with(layout: CtLayout) -> World {
        let mut w = World::active();
        let key = StaticKey::new_false();
        let mut pcpu = PerCpu::with_layout(TICK, layout);
        pcpu.ct_cpu_track_user(&key);
        pcpu.local.cputime.vtime_since_ns = Some(0);
        w.key = key;
        w.pcpu = pcpu;
        w
    }
    /// A nohz_full CPU (active, key on) running a user task that is in the kernel with IRQs off,
    /// vtime in SYS since t=0.
    fn active() -> World {
        let key = StaticKey::new_false();
        let mut pcpu = PerCpu::new(TICK);
        pcpu.ct_cpu_track_user(&key);
        let mut task = TaskVtime::default();
        task.vtime.state = VtimeState::Sys;
        task.vtime.cpu = 1;
        pcpu.local.cputime.vtime_since_ns = Some(0);
        World {
            key,
            pcpu,
            task,
            arch: MockArch {
                irqs_off: true,
                ..Default::default()
            },
        }
    }
    /// Key on (another CPU is nohz_full) but this CPU is housekeeping.
    fn inactive_cpu() -> World {
        let w = World::active();
        w.pcpu.ct.set_active(false);
        w
    }
    /// Context tracking built in but off.
    fn off() -> World {
        let mut w = World::active();
        w.pcpu.ct_cpu_untrack_user(&w.key);
        w
    }
    fn ct(&mut self) -> Ct<'_, MockArch> {
        Ct::new(&self.key, &mut self.pcpu, &mut self.task, &mut self.arch)
    }
    fn word(&self) -> u32 {
        self.pcpu.ct.state_word()
    }
    fn state(&self) -> CtState {
        self.pcpu.ct.ct_state_bits()
    }
    fn warns(&self) -> (u32, Option<Violation>) {
        (self.pcpu.local.warn.count, self.pcpu.local.warn.first)
    }
}

#[test]
fn initial_state_is_kernel_watching() {
    let ct = ContextTracking::new();
    assert_eq!(ct.state_word(), 4);
    assert_eq!(ct.ct_state_bits(), CtState::Kernel);
    assert!(ct.rcu_is_watching());
    assert_eq!(
        (ct.nesting(), ct.nmi_nesting()),
        (1, CT_NESTING_IRQ_NONIDLE)
    );
}

#[test]
fn user_enter_exit_on_active_cpu_follows_the_reference_arithmetic() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    assert_eq!(w.word(), 10, "4 + 4 + 2");
    assert_eq!(w.state(), CtState::User);
    assert!(!w.pcpu.ct.rcu_is_watching());
    assert_eq!((w.pcpu.ct.nesting(), w.pcpu.ct.nmi_nesting()), (0, 0));
    assert_eq!(w.task.vtime.state, VtimeState::User);
    w.ct().user_exit_irqoff();
    assert_eq!(w.word(), 12, "10 + 4 - 2");
    assert_eq!(w.state(), CtState::Kernel);
    assert!(w.pcpu.ct.rcu_is_watching());
    assert_eq!(
        (w.pcpu.ct.nesting(), w.pcpu.ct.nmi_nesting()),
        (1, CT_NESTING_IRQ_NONIDLE)
    );
    assert_eq!(w.task.vtime.state, VtimeState::Sys);
    let s = &w.pcpu.local.stats;
    assert_eq!(s.transitions[Transition::UserEnter as usize], 1);
    assert_eq!(s.transitions[Transition::UserExit as usize], 1);
    assert_eq!(
        s.prims[Prim::AtomicRmw as usize],
        2,
        "one fully ordered RMW each way"
    );
    assert_eq!(s.rcu_hooks, 2);
    assert_eq!(s.vtime_hooks, 2);
    assert_eq!(
        s.prims[Prim::IrqSaveRestore as usize],
        0,
        "the _irqoff forms save nothing"
    );
    assert_eq!(w.warns(), (0, None));
}

#[test]
fn weighted_count_prices_each_primitive_as_it_is_counted() {
    let mut w = World::active();
    let weights = [3, 5, 7, 11, 13, 17, 19, 23];
    w.pcpu.local.stats.weights = weights;
    w.ct().user_enter_irqoff();
    w.ct().user_exit();
    let s = &w.pcpu.local.stats;
    let dot: u64 = (0..weights.len()).map(|i| s.prims[i] * weights[i]).sum();
    assert!(
        s.prims_total >= 4,
        "the paths count primitives: {:?}",
        s.prims
    );
    assert_eq!(s.weighted, dot);
}

#[test]
fn user_enter_twice_is_a_no_op() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    let word = w.word();
    w.ct().user_enter_irqoff();
    assert_eq!(w.word(), word);
    assert_eq!(
        w.pcpu.local.stats.transitions[Transition::UserEnter as usize],
        1
    );
    w.ct().user_exit_irqoff();
    w.ct().user_exit_irqoff();
    assert_eq!(w.word(), 12);
    assert_eq!(w.warns().0, 0);
}

#[test]
fn inactive_cpu_tracks_context_bits_only() {
    let mut w = World::inactive_cpu();
    w.ct().user_enter_irqoff();
    assert_eq!(w.word(), 6, "4 + USER, watching untouched");
    assert_eq!(w.state(), CtState::User);
    assert!(w.pcpu.ct.rcu_is_watching());
    assert_eq!(
        w.task.vtime.state,
        VtimeState::Sys,
        "no vtime on a housekeeping CPU"
    );
    w.ct().user_exit_irqoff();
    assert_eq!(w.word(), 4);
    assert_eq!(w.pcpu.local.stats.transitions_total(), 0);
    assert_eq!(w.pcpu.local.stats.prims[Prim::AtomicRmw as usize], 0);
    assert_eq!(w.pcpu.local.stats.prims[Prim::AtomicPlain as usize], 2);
}

#[test]
fn key_off_means_no_call_at_all_for_inline_forms_but_a_wasted_call_for_callable_forms() {
    let mut w = World::off();
    w.ct().user_exit_irqoff();
    w.ct().user_enter_irqoff();
    assert_eq!(w.word(), 4);
    assert_eq!(w.pcpu.local.stats.ct_calls, 0);
    assert_eq!(w.pcpu.local.stats.static_branch_not_taken, 2);
    assert_eq!(w.pcpu.local.stats.prims[Prim::Call as usize], 0);
    // 4.3's asm called enter_from_user_mode unconditionally; the key was tested inside.
    w.ct().user_exit_callable();
    assert_eq!(w.pcpu.local.stats.ct_calls_inactive, 1);
    assert_eq!(w.pcpu.local.stats.prims[Prim::Call as usize], 1);
    assert_eq!(w.word(), 4);
    assert_eq!(w.ct().ct_state(), None, "CT_STATE_DISABLED");
}

#[test]
fn guest_enter_exit() {
    let mut w = World::active();
    assert!(w.ct().context_tracking_guest_enter());
    assert_eq!(w.word(), 4 + 7);
    assert_eq!(w.state(), CtState::Guest);
    assert!(!w.pcpu.ct.rcu_is_watching());
    w.ct().context_tracking_guest_exit();
    assert_eq!(w.word(), 4 + 8);
    assert_eq!(
        w.pcpu.local.stats.transitions[Transition::GuestEnter as usize],
        1
    );
    assert_eq!(
        w.pcpu.local.stats.transitions[Transition::GuestExit as usize],
        1
    );
    // Guest vtime is separate (guest_timing_enter_irqoff).
    w.arch.now = 100;
    w.ct().vtime_guest_enter();
    assert_eq!(w.task.vtime.state, VtimeState::Guest);
    assert!(w.task.pf_vcpu);
    w.arch.now = 300;
    w.ct().vtime_guest_exit();
    assert_eq!((w.task.vtime.stime, w.task.vtime.gtime), (100, 200));
    assert!(!w.task.pf_vcpu);
}

#[test]
fn idle_enter_exit_and_irq_from_idle() {
    let mut w = World::active();
    w.arch.idle_task = true;
    w.ct().ct_idle_enter();
    assert_eq!(w.word(), 4 + 5);
    assert_eq!(w.state(), CtState::Idle);
    assert!(!w.pcpu.ct.rcu_is_watching());
    // An IRQ from idle: watching again, context bits untouched, nmi_nesting 1.
    w.ct().ct_irq_enter();
    assert_eq!(w.word(), 4 + 5 + 4);
    assert_eq!(w.state(), CtState::Idle);
    assert!(w.pcpu.ct.rcu_is_watching());
    assert_eq!(w.pcpu.ct.nmi_nesting(), 1);
    // A nested NMI: +2, no counter change.
    w.arch.in_nmi = true;
    w.ct().ct_nmi_enter();
    assert_eq!(w.pcpu.ct.nmi_nesting(), 3);
    assert_eq!(w.word(), 13);
    w.ct().ct_nmi_exit();
    w.arch.in_nmi = false;
    assert_eq!(w.pcpu.ct.nmi_nesting(), 1);
    w.ct().ct_irq_exit();
    assert_eq!(w.pcpu.ct.nmi_nesting(), 0);
    assert!(!w.pcpu.ct.rcu_is_watching());
    assert_eq!(w.word(), 17);
    w.ct().ct_idle_exit();
    assert_eq!(w.word(), 20);
    assert_eq!(w.state(), CtState::Kernel);
    assert_eq!(
        (w.pcpu.ct.nesting(), w.pcpu.ct.nmi_nesting()),
        (1, CT_NESTING_IRQ_NONIDLE)
    );
    let s = &w.pcpu.local.stats;
    assert_eq!(s.transitions[Transition::IdleEnter as usize], 1);
    assert_eq!(s.transitions[Transition::IdleExit as usize], 1);
    assert_eq!(s.transitions[Transition::IrqEqsExit as usize], 1);
    assert_eq!(s.transitions[Transition::IrqEqsEnter as usize], 1);
    assert_eq!(w.warns().0, 0);
}

#[test]
fn irq_from_kernel_only_nests() {
    let mut w = World::active();
    w.ct().ct_irq_enter();
    assert_eq!(w.pcpu.ct.nmi_nesting(), CT_NESTING_IRQ_NONIDLE + 2);
    assert_eq!(w.word(), 4);
    w.ct().ct_irq_exit();
    assert_eq!(w.pcpu.ct.nmi_nesting(), CT_NESTING_IRQ_NONIDLE);
    assert_eq!(w.pcpu.local.stats.transitions_total(), 0);
    assert_eq!(w.warns().0, 0);
}

#[test]
fn nmi_from_user_makes_rcu_watch_without_leaving_user() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.arch.in_nmi = true;
    w.ct().ct_nmi_enter();
    assert!(w.pcpu.ct.rcu_is_watching());
    assert_eq!(w.state(), CtState::User);
    assert_eq!(w.pcpu.ct.nmi_nesting(), 1);
    w.ct().ct_nmi_exit();
    assert!(!w.pcpu.ct.rcu_is_watching());
    assert_eq!(w.word(), 18, "10 + 4 + 4");
    assert_eq!(w.warns().0, 0);
}

#[test]
fn momentary_eqs_moves_the_counter_only() {
    let mut w = World::active();
    w.ct().rcu_momentary_eqs();
    assert_eq!(w.word(), 12);
    assert!(w.pcpu.ct.rcu_is_watching());
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.ct().rcu_momentary_eqs();
    assert_eq!(w.warns().1, Some(Violation::MomentaryEqsNotWatching));
}

#[test]
fn exception_enter_saves_and_exception_exit_restores() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.arch.irqs_off = false; // exceptions run with the interrupted context's IRQ state
    let prev = w.ct().exception_enter();
    assert_eq!(prev, CtState::User);
    assert_eq!(w.state(), CtState::Kernel);
    assert!(
        !w.arch.irqs_off,
        "irq save/restore inside ct_user_exit restores IRQs"
    );
    assert_eq!(w.pcpu.local.stats.prims[Prim::IrqSaveRestore as usize], 1);
    w.ct().exception_exit(prev);
    assert_eq!(w.state(), CtState::User);
    // From kernel: nothing to do.
    let mut w = World::active();
    assert_eq!(w.ct().exception_enter(), CtState::Kernel);
    w.ct().exception_exit(CtState::Kernel);
    assert_eq!(w.word(), 4);
    assert_eq!(w.pcpu.local.stats.ct_calls, 0);
    // Key off: returns KERNEL (0) without reading the state.
    let mut w = World::off();
    assert_eq!(w.ct().exception_enter(), CtState::Kernel);
}

#[test]
fn irq_saving_forms_bail_out_in_interrupt_context() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.arch.in_irq = true;
    w.ct().user_exit();
    assert_eq!(
        w.state(),
        CtState::User,
        "ct_user_exit returns early in_interrupt()"
    );
    w.arch.in_irq = false;
    w.ct().user_exit();
    assert_eq!(w.state(), CtState::Kernel);
}

#[test]
fn misuse_user_enter_with_irqs_on() {
    let mut w = World::active();
    w.arch.irqs_off = false;
    w.ct().__ct_user_enter(CtState::User);
    assert_eq!(w.warns().1, Some(Violation::UserEnterIrqsEnabled));
    assert_eq!(
        w.pcpu.local.warn.last,
        Some(Violation::KernelExitIrqsEnabled),
        "ct_kernel_exit asserts too"
    );
}

#[test]
fn misuse_kthread_enters_user() {
    let mut w = World::active();
    w.arch.kthread = true;
    w.ct().user_enter_irqoff();
    assert_eq!(w.warns().1, Some(Violation::UserEnterKthread));
}

#[test]
fn misuse_recursion() {
    let mut w = World::active();
    w.pcpu.ct.set_recursion(1);
    w.ct().user_enter_irqoff();
    assert_eq!(w.word(), 4, "nested call is a silent no-op");
    assert_eq!(w.warns().0, 0);
    assert_eq!(w.pcpu.ct.recursion(), 1);
    w.pcpu.ct.set_recursion(-1);
    w.ct().user_enter_irqoff();
    assert_eq!(w.warns().1, Some(Violation::InvalidRecursion(0)));
    assert_eq!(w.pcpu.ct.recursion(), -1);
}

#[test]
fn misuse_double_idle_enter() {
    let mut w = World::active();
    w.arch.idle_task = true;
    w.ct().ct_idle_enter();
    w.ct().ct_idle_enter();
    assert_eq!(w.warns().1, Some(Violation::KernelExitNmiNesting));
    assert!(w.pcpu.local.warn.count >= 2, "nesting == 0 is reported too");
    assert_eq!(w.pcpu.ct.nesting(), -1);
}

#[test]
fn misuse_idle_enter_from_a_normal_task() {
    let mut w = World::active();
    w.ct().ct_idle_enter();
    assert_eq!(w.warns().1, Some(Violation::KernelExitNotIdleTask));
}

#[test]
fn misuse_unbalanced_nmi_exit_from_eqs() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.ct().ct_nmi_exit();
    assert_eq!(w.warns().1, Some(Violation::NmiExitNestingNotPositive));
    assert_eq!(w.pcpu.local.warn.last, Some(Violation::NmiExitNotWatching));
}

#[test]
fn misuse_negative_nmi_nesting() {
    let mut w = World::active();
    w.pcpu.ct.set_nmi_nesting(-2);
    w.ct().ct_nmi_enter();
    assert_eq!(w.warns().1, Some(Violation::NmiNestingNegative));
}

#[test]
fn misuse_irq_enter_with_irqs_on() {
    let mut w = World::active();
    w.arch.irqs_off = false;
    w.ct().ct_irq_enter();
    assert_eq!(w.warns().1, Some(Violation::IrqIrqsEnabled));
}

#[test]
fn misuse_kernel_enter_with_leftover_nmi_nesting() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.pcpu.ct.set_nmi_nesting(2);
    w.ct().user_exit_irqoff();
    assert_eq!(w.warns().1, Some(Violation::KernelEnterNmiNesting));
}

#[test]
fn misuse_negative_nesting_on_kernel_enter() {
    let mut w = World::active();
    w.pcpu.ct.set_nesting(-1);
    w.ct().ct_idle_exit();
    assert_eq!(w.warns().1, Some(Violation::NestingNegative));
}

#[test]
fn ct_warn_on_only_fires_with_the_key_on() {
    let mut w = World::off();
    assert!(!w.ct().ct_warn_on(true, Violation::EnterFromUserNotUser));
    let mut w = World::active();
    assert!(w.ct().ct_warn_on(true, Violation::EnterFromUserNotUser));
    assert_eq!(w.warns().1, Some(Violation::EnterFromUserNotUser));
}

#[test]
fn check_tick_turns_the_tick_on_for_urgent_rcu_and_warns_from_eqs() {
    let mut w = World::active();
    w.pcpu.rcu.set_urgent_qs(true);
    w.ct().rcu_irq_enter_check_tick();
    assert!(w.pcpu.rcu.forced_tick());
    assert_eq!(w.pcpu.local.tick.tick_dep_mask, TickDepBit::Rcu.mask());
    assert_eq!(w.arch.kicks, vec![1]);
    // Second time: already forced, no second kick.
    w.ct().rcu_irq_enter_check_tick();
    assert_eq!(w.arch.kicks.len(), 1);
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.ct().rcu_irq_enter_check_tick();
    assert_eq!(w.warns().1, Some(Violation::CheckTickFromEqs));
}

#[test]
fn check_preempt_wants_process_level_nesting() {
    let mut w = World::active();
    w.ct().rcu_irq_exit_check_preempt();
    assert_eq!(w.warns().0, 0);
    w.ct().ct_irq_enter();
    w.ct().rcu_irq_exit_check_preempt();
    assert_eq!(w.warns().1, Some(Violation::CheckPreemptBadNesting));
}

#[test]
fn remote_snapshot_protocol() {
    let mut w = World::active();
    // Watching: not quiescent yet.
    let snap = rcu_watching_snap_save(&w.pcpu.ct);
    assert!(!rcu_watching_snap_in_eqs(snap));
    assert!(!rcu_watching_snap_stopped_since(&w.pcpu.ct, snap));
    assert!(!rcu_cpu_quiescent_since(&w.pcpu.ct, snap));
    // The CPU passes through user mode and back: the counter moved.
    w.ct().user_enter_irqoff();
    w.ct().user_exit_irqoff();
    assert!(rcu_watching_snap_stopped_since(&w.pcpu.ct, snap));
    // A snapshot taken in user mode is a quiescent state at once.
    w.ct().user_enter_irqoff();
    let snap = rcu_watching_snap_save(&w.pcpu.ct);
    assert!(rcu_watching_snap_in_eqs(snap));
    assert!(rcu_cpu_quiescent_since(&w.pcpu.ct, snap));
    // An IRQ from user alone (ct_irq_enter) also moves the counter.
    let mut w = World::active();
    let snap = rcu_watching_snap_save(&w.pcpu.ct);
    w.ct().rcu_momentary_eqs();
    assert!(rcu_watching_snap_stopped_since(&w.pcpu.ct, snap));
}

#[test]
fn vtime_accounts_each_interval_to_its_state_and_flushes_at_a_tick() {
    let mut w = World::active();
    w.arch.now = 1_000;
    w.ct().user_enter_irqoff(); // 1000 ns of kernel
    assert_eq!(w.task.vtime.stime, 1_000);
    w.arch.now = 1_000 + TICK; // a tick of user time: flushed
    w.ct().user_exit_irqoff();
    assert_eq!((w.task.utime, w.task.vtime.utime), (TICK, 0));
    assert_eq!(w.pcpu.local.cputime.kcpustat[Bucket::User as usize], TICK);
    w.arch.now += 500;
    w.ct().user_enter_irqoff();
    assert_eq!(
        w.task.vtime.stime, 1_500,
        "sub-tick system time stays pending"
    );
    assert_eq!(w.task.stime, 0);
    assert_eq!(w.pcpu.local.cputime.vtime_ns, [TICK, 1_500, 0, 0]);
    // Conservation: accounted + open interval == elapsed, exactly.
    w.arch.now += 77;
    assert_eq!(
        w.pcpu
            .local
            .cputime
            .check_conservation(w.arch.now, &w.task, 1),
        Ok(())
    );
    // Remote reader: in USER, pending utime + delta are visible, pending stime is not.
    let (u, s) = task_cputime(&w.task, w.arch.now).unwrap();
    assert_eq!((u, s), (TICK + 77, 0));
}

#[test]
fn vtime_reader_sees_a_writer_in_progress() {
    let w = World::active();
    w.task.vtime.seqcount.write_begin();
    assert_eq!(task_cputime(&w.task, 5), None);
    w.task.vtime.seqcount.write_end();
    assert!(task_cputime(&w.task, 5).is_some());
}

#[test]
fn vtime_task_switch_closes_prev_and_opens_next() {
    let mut w = World::active();
    let mut next = TaskVtime::default();
    w.arch.now = 700;
    {
        let mut ct = w.ct();
        vtime_task_switch(&mut ct, &mut next, false);
    }
    assert_eq!(w.task.vtime.state, VtimeState::Inactive);
    assert_eq!(w.task.vtime.cpu, -1);
    assert_eq!(w.task.vtime.stime, 700);
    assert_eq!(next.vtime.state, VtimeState::Sys);
    assert_eq!((next.vtime.starttime, next.vtime.cpu), (700, 1));
    w.arch.now = 900;
    assert_eq!(
        w.pcpu.local.cputime.check_conservation(900, &next, 1),
        Ok(())
    );
    // The idle task gets VTIME_IDLE and its time goes to idle.
    let mut idle = TaskVtime::default();
    let mut w2 = World::active();
    vtime_init_idle(&mut idle, &mut w2.pcpu.local.cputime, 1, 0);
    w2.arch.now = 50;
    let mut ct = Ct::new(&w2.key, &mut w2.pcpu, &mut idle, &mut w2.arch);
    let mut t = TaskVtime::default();
    vtime_task_switch(&mut ct, &mut t, false);
    assert_eq!(w2.pcpu.local.cputime.vtime_ns[Bucket::Idle as usize], 50);
    assert_eq!(w2.pcpu.local.cputime.kcpustat[Bucket::Idle as usize], 50);
}

#[test]
fn vtime_conservation_detects_a_lost_interval() {
    let mut w = World::active();
    w.arch.now = 100;
    w.ct().user_enter_irqoff();
    // A buggy caller resets the interval start without accounting it.
    w.task.vtime.starttime = 150;
    assert_eq!(
        w.pcpu.local.cputime.check_conservation(200, &w.task, 1),
        Err((150, 200))
    );
}

#[test]
fn vtime_delta_on_inactive_task_warns() {
    let mut w = World::active();
    w.task.vtime.state = VtimeState::Inactive;
    w.ct().vtime_user_exit();
    assert_eq!(w.warns().1, Some(Violation::VtimeInactive));
}

#[test]
fn vtime_irq_hooks_of_linux_4x() {
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    w.arch.now = 40;
    // An IRQ that did not exit user context flushes user time.
    w.ct().vtime_common_account_irq_enter();
    assert_eq!(w.task.vtime.utime, 40);
    w.arch.now = 60;
    w.ct().vtime_account_irq_exit();
    assert_eq!(w.pcpu.local.stats.vtime_hooks, 3);
    // Inactive: nothing.
    let mut w = World::off();
    w.ct().vtime_common_account_irq_enter();
    assert_eq!(w.pcpu.local.stats.vtime_hooks, 0);
}

#[test]
fn tick_dependencies() {
    assert_eq!(can_stop_full_tick(true, TickDeps::default()), Ok(()));
    let deps = TickDeps {
        cpu: TickDepBit::Rcu.mask() | TickDepBit::Sched.mask(),
        ..Default::default()
    };
    assert_eq!(
        can_stop_full_tick(true, deps),
        Err(TickDepBit::Sched),
        "first bit in Linux's order"
    );
    let deps = TickDeps {
        signal: TickDepBit::PosixTimer.mask(),
        ..Default::default()
    };
    assert_eq!(can_stop_full_tick(true, deps), Err(TickDepBit::PosixTimer));
    let mut ts = TickSched::default();
    assert!(
        ts.tick_nohz_dep_set_cpu(TickDepBit::Sched),
        "first setter kicks"
    );
    assert!(!ts.tick_nohz_dep_set_cpu(TickDepBit::Rcu));
    ts.tick_nohz_dep_clear_cpu(TickDepBit::Sched);
    ts.tick_nohz_dep_clear_cpu(TickDepBit::Rcu);
    assert_eq!(ts.tick_dep_mask, 0);
    assert_eq!(ts.update(true), Some(true));
    assert_eq!(ts.update(true), None);
    assert_eq!(ts.update(false), Some(false));
    assert_eq!(TickDepBit::RcuExp.name(), "RCU_EXP");
}

#[test]
fn static_key_counts_call_sites() {
    let key = StaticKey::new_false();
    let mut st = CtStats::default();
    st.static_branch(key.static_branch_unlikely());
    key.static_branch_inc();
    key.static_branch_inc();
    st.static_branch(key.static_branch_unlikely());
    key.static_branch_dec();
    assert!(key.is_enabled());
    key.static_branch_dec();
    key.static_branch_dec(); // saturates
    assert_eq!(key.count(), 0);
    assert_eq!((st.static_branch_taken, st.static_branch_not_taken), (1, 1));
    // ct_cpu_track_user bumps the key once per CPU.
    let mut p = PerCpu::new(TICK);
    p.ct_cpu_track_user(&key);
    p.ct_cpu_track_user(&key);
    assert_eq!(key.count(), 1);
}

// ------------------------------------------------------------------ entry.rs (straight-line paths)

/// A syscall round trip through `entry.rs` from user mode: one user_exit, one user_enter, RCU
/// watching only in between, vtime split user/sys at the clock readings.
#[test]
fn entry_syscall_round_trip_is_one_pair() {
    use ctxtrack_core::entry::*;
    let mut w = World::active();
    w.ct().user_enter_irqoff(); // in user at t=0
    w.arch.now = 1_000;
    enter_from_user_mode(&mut w.ct());
    assert!(w.pcpu.ct.rcu_is_watching());
    assert_eq!(w.state(), CtState::Kernel);
    w.arch.now = 1_600;
    exit_to_user_mode(&mut w.ct());
    assert_eq!(w.state(), CtState::User);
    assert!(!w.pcpu.ct.rcu_is_watching());
    let s = &w.pcpu.local.stats;
    assert_eq!(s.transitions[Transition::UserExit as usize], 1);
    assert_eq!(s.transitions[Transition::UserEnter as usize], 2);
    // Sub-tick times stay pending in tsk->vtime (flushed at TICK_NSEC).
    assert_eq!((w.task.vtime.utime, w.task.vtime.stime), (1_000, 600));
    assert_eq!(w.warns(), (0, None));
}

/// IRQs through `irqentry_enter/exit`: from user one pair; from the idle task ct_irq_enter/exit
/// (exit_rcu); from kernel with RCU watching no transition and preemption allowed.
#[test]
fn entry_irq_from_user_idle_and_kernel() {
    use ctxtrack_core::entry::*;
    let mut w = World::active();
    w.ct().user_enter_irqoff();
    let st = irqentry_enter(&mut w.ct(), true);
    assert_eq!(st, IrqentryState { exit_rcu: false });
    assert_eq!(w.state(), CtState::Kernel);
    assert!(!irqentry_exit(&mut w.ct(), true, true, st));
    assert_eq!(w.state(), CtState::User);

    // From kernel code with IRQs on (a task in the kernel): RCU watches already.
    w.ct().user_exit_irqoff();
    let before = w.pcpu.local.stats.transitions_total();
    let st = irqentry_enter(&mut w.ct(), false);
    assert!(!st.exit_rcu);
    assert!(irqentry_exit(&mut w.ct(), false, true, st), "may preempt");
    assert_eq!(w.pcpu.local.stats.transitions_total(), before);

    // From the idle task in its EQS.
    w.arch.idle_task = true;
    w.ct().ct_idle_enter();
    assert!(!w.pcpu.ct.rcu_is_watching());
    let st = irqentry_enter(&mut w.ct(), false);
    assert!(st.exit_rcu && w.pcpu.ct.rcu_is_watching());
    assert!(
        !irqentry_exit(&mut w.ct(), false, true, st),
        "no preemption from idle"
    );
    assert!(!w.pcpu.ct.rcu_is_watching());
    assert_eq!(
        w.pcpu.local.stats.transitions[Transition::IrqEqsExit as usize],
        1
    );
    assert_eq!(
        w.pcpu.local.stats.transitions[Transition::IrqEqsEnter as usize],
        1
    );

    // An NMI on top of the idle EQS.
    irqentry_nmi_enter(&mut w.ct());
    assert!(w.pcpu.ct.rcu_is_watching());
    irqentry_nmi_exit(&mut w.ct());
    assert!(!w.pcpu.ct.rcu_is_watching());
    assert_eq!(w.warns(), (0, None));
}

/// enter_from_user_mode() when context tracking does not say USER is the CT_WARN_ON it has.
#[test]
fn entry_from_user_when_not_user_warns() {
    use ctxtrack_core::entry::*;
    let mut w = World::active();
    enter_from_user_mode(&mut w.ct());
    assert_eq!(w.warns().1, Some(Violation::EnterFromUserNotUser));
}

/// A backend that does not count (`Arch::COUNTS = false`) leaves the counters at zero while the
/// context-tracking state moves exactly as on a counting one.
#[test]
fn non_counting_backend_leaves_stats_untouched() {
    struct Quiet(MockArch);
    impl Arch for Quiet {
        const COUNTS: bool = false;
        fn irqs_disabled(&self) -> bool {
            self.0.irqs_disabled()
        }
        fn local_irq_disable(&mut self) {
            self.0.local_irq_disable()
        }
        fn local_irq_enable(&mut self) {
            self.0.local_irq_enable()
        }
        fn sched_clock(&mut self) -> u64 {
            self.0.now
        }
        fn smp_processor_id(&self) -> usize {
            1
        }
        fn in_interrupt(&self) -> bool {
            false
        }
        fn in_nmi(&self) -> bool {
            false
        }
        fn current_has_mm(&self) -> bool {
            true
        }
        fn is_idle_task(&self) -> bool {
            false
        }
        fn tick_kick(&mut self, _cpu: usize) {}
    }
    let mut w = World::active();
    let mut q = Quiet(MockArch {
        irqs_off: true,
        ..Default::default()
    });
    let mut ct = Ct::new(&w.key, &mut w.pcpu, &mut w.task, &mut q);
    ct.user_enter_irqoff();
    ct.user_exit_irqoff();
    assert_eq!(w.pcpu.local.stats, CtStats::default());
    assert_eq!(w.state(), CtState::Kernel);
    assert_eq!(w.word() & CT_RCU_WATCHING_MASK, 3 * CT_RCU_WATCHING);
}

#[test]
fn eqs_debug_checks_run_by_default_and_compile_out_in_a_production_build() {
    // User entry with IRQs on: lockdep_assert_irqs_disabled() in __ct_user_enter().
    let mut w = World::active();
    w.arch.irqs_off = false;
    w.ct().user_enter_irqoff();
    assert_eq!(w.warns().1, Some(Violation::UserEnterIrqsEnabled));
    assert_eq!(
        w.state(),
        CtState::User,
        "the transition itself still happens"
    );

    let mut w = World::active();
    let mut arch = MockArch::<false>::default(); // IRQs on
    let mut ct = Ct::new(&w.key, &mut w.pcpu, &mut w.task, &mut arch);
    ct.user_enter_irqoff();
    ct.user_exit_irqoff();
    assert_eq!(w.warns(), (0, None), "no debug check in a production build");
    assert_eq!(w.state(), CtState::Kernel);
    // The unconditional checks stay: user_enter from a kthread.
    let mut arch = MockArch::<false> {
        kthread: true,
        irqs_off: true,
        ..Default::default()
    };
    Ct::new(&w.key, &mut w.pcpu, &mut w.task, &mut arch).user_enter_irqoff();
    assert_eq!(w.warns().1, Some(Violation::UserEnterKthread));
}

// ---------------------------------------------------------------- deferred work (CT_WORK)

#[test]
fn work_layout_is_the_series_macros() {
    // Mainline: no work field, CT_RCU_WATCHING == 4.
    let m = CtLayout::MAINLINE;
    assert_eq!((m.work_width(), m.work_mask(), m.watching()), (0, 0, 4));
    assert_eq!(m.watching_mask(), CT_RCU_WATCHING_MASK);
    assert_eq!(m.init(), CT_STATE_INIT);
    // One work type (v5-v7: CT_WORK_SYNC): CT_WORK_MASK 0x4, CT_RCU_WATCHING 0x8.
    let one = CtLayout::new(1, false);
    assert_eq!(
        (one.work_width(), one.work_mask(), one.watching()),
        (1, 0x4, 0x8)
    );
    assert!(one.holds(CtWork::Sync) && !one.holds(CtWork::Tlbi));
    // Two types (RFC v1-v4: SYNC and TLBI): the counter from bit 4.
    let two = CtLayout::new(2, false);
    assert_eq!((two.work_mask(), two.watching()), (0xc, 0x10));
    assert_eq!(two.watching_mask(), !0xf);
    // CONFIG_RCU_DYNTICKS_TORTURE: a 2-bit counter right above the work field.
    let t = CtLayout::new(1, true);
    assert_eq!(t.watching_mask(), 0x18);
    // The counter a reader sees sits at mainline's position in every layout.
    let word = 0x10 | 0x8 | 0x4 | 2; // counter 3 (watching), SYNC pending, USER
    assert_eq!(one.counter(word), 0xc);
    assert_eq!(one.work(word), CtWork::Sync.bit());
}

#[test]
fn work_is_set_only_on_an_active_cpu_that_rcu_does_not_watch() {
    let layout = CtLayout::new(2, false);
    let mut w = World::active_with(layout);
    // In the kernel: RCU watches, the setter must IPI.
    assert!(!ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
    assert_eq!(w.pcpu.ct.ct_work(), 0);
    w.ct().user_enter_irqoff();
    assert!(!w.pcpu.ct.rcu_is_watching());
    // In user mode: deferred, twice for two types, idempotent for the same one.
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Tlbi));
    assert_eq!(w.pcpu.ct.ct_work(), 0b11);
    assert_eq!(w.state(), CtState::User, "the context bits are untouched");
    // An inactive (housekeeping) CPU never defers; nor does a layout without the type.
    let h = ContextTracking::with_layout(layout);
    assert!(!ct_set_cpu_work(&h, CtWork::Sync));
    let mut m = World::active();
    m.ct().user_enter_irqoff();
    assert!(
        !ct_set_cpu_work(&m.pcpu.ct, CtWork::Sync),
        "mainline: the stub"
    );
    assert_eq!(m.word() & 0b1100, 0b1000, "mainline: counter bits only");
}

#[test]
fn the_entry_flushes_right_after_rcu_watches_and_the_exit_clears() {
    let mut w = World::active_with(CtLayout::new(2, false));
    w.ct().user_enter_irqoff();
    let before = w.pcpu.ct.ct_rcu_watching();
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Tlbi));
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
    w.ct().user_exit_irqoff();
    // One call per bit, in bit order, and RCU watches (one counter step, mainline's size).
    assert_eq!(w.arch.flushed, [CtWork::Sync, CtWork::Tlbi]);
    assert!(w.pcpu.ct.rcu_is_watching());
    assert_eq!(
        w.pcpu.ct.ct_rcu_watching(),
        before.wrapping_add(CT_RCU_WATCHING)
    );
    // Stale until the exit: a setter cannot add bits while RCU watches.
    assert_eq!(w.pcpu.ct.ct_work(), 0b11);
    assert!(!ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
    w.ct().user_enter_irqoff();
    assert_eq!(
        w.pcpu.ct.ct_work(),
        0,
        "cleared in the same update that enters the EQS"
    );
    w.ct().user_exit_irqoff();
    assert_eq!(w.arch.flushed.len(), 2, "nothing flushed twice");
    assert_eq!(w.warns(), (0, None));
}

#[test]
fn an_nmi_from_user_flushes_and_the_outer_entry_flushes_only_later_work() {
    let mut w = World::active_with(CtLayout::new(2, false));
    w.ct().user_enter_irqoff();
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
    // The NMI makes RCU watch: ct_kernel_enter_state() flushes, in NMI context.
    w.arch.in_nmi = true;
    w.ct().ct_nmi_enter();
    assert_eq!(w.arch.flushed, [CtWork::Sync]);
    assert!(
        !ct_set_cpu_work(&w.pcpu.ct, CtWork::Tlbi),
        "watching inside the NMI"
    );
    w.ct().ct_nmi_exit();
    w.arch.in_nmi = false;
    assert_eq!(
        w.pcpu.ct.ct_work(),
        0,
        "the NMI's exit cleared what it flushed"
    );
    // Back in the EQS: new work is deferred again and the syscall entry flushes only it.
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Tlbi));
    w.ct().user_exit_irqoff();
    assert_eq!(w.arch.flushed, [CtWork::Sync, CtWork::Tlbi]);
    // Idle's EQS accepts work too; ct_idle_exit() flushes it.
    w.arch.idle_task = true;
    w.ct().ct_idle_enter();
    assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
    w.ct().ct_idle_exit();
    assert_eq!(w.arch.flushed.last(), Some(&CtWork::Sync));
    assert_eq!(w.warns(), (0, None));
}

#[test]
fn a_two_bit_counter_wraps_after_two_round_trips() {
    // CONFIG_RCU_DYNTICKS_TORTURE: a grace period that snapshots a watching CPU, then finds the
    // same counter after two EQS round trips, misses those quiescent states (a longer grace
    // period, not a wrong one: it finds the next one).
    let mut w = World::active_with(CtLayout::new(1, true));
    let snap = rcu_watching_snap_save(&w.pcpu.ct);
    assert!(!rcu_watching_snap_in_eqs(snap));
    for _ in 0..2 {
        w.ct().user_enter_irqoff();
        w.ct().user_exit_irqoff();
    }
    assert!(
        !rcu_cpu_quiescent_since(&w.pcpu.ct, snap),
        "wrapped: the passes are invisible"
    );
    w.ct().user_enter_irqoff();
    assert!(rcu_cpu_quiescent_since(&w.pcpu.ct, snap));
    // The full-width counter never wraps that fast.
    let mut m = World::active_with(CtLayout::new(1, false));
    let snap = rcu_watching_snap_save(&m.pcpu.ct);
    for _ in 0..2 {
        m.ct().user_enter_irqoff();
        m.ct().user_exit_irqoff();
    }
    assert!(rcu_cpu_quiescent_since(&m.pcpu.ct, snap));
    assert_eq!(w.warns(), (0, None));
}

#[test]
fn an_nmi_that_finds_rcu_watching_flushes_only_with_the_mitigation() {
    for nmi_flush in [false, true] {
        let layout = CtLayout::new(1, false);
        let layout = if nmi_flush {
            layout.with_nmi_flush()
        } else {
            layout
        };
        let mut w = World::active_with(layout);
        w.ct().user_enter_irqoff();
        assert!(ct_set_cpu_work(&w.pcpu.ct, CtWork::Sync));
        w.ct().user_exit_irqoff();
        assert_eq!(w.arch.flushed, [CtWork::Sync], "the entry flushed");
        // An NMI in the kernel (RCU watching; the bit is stale until the next exit).
        w.arch.in_nmi = true;
        w.ct().ct_nmi_enter();
        w.ct().ct_nmi_exit();
        w.arch.in_nmi = false;
        let want: &[CtWork] = if nmi_flush {
            &[CtWork::Sync, CtWork::Sync] // spurious, harmless: callbacks tolerate it
        } else {
            &[CtWork::Sync]
        };
        assert_eq!(w.arch.flushed, want, "nmi_flush={nmi_flush}");
        assert_eq!(w.warns(), (0, None));
    }
}
