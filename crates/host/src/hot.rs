//! The measured loops: one iteration of each hot path on one host CPU, with no threads around.
//! `cargo bench -p ctxtrack-host` (criterion) and `ctxtrack bench host` ([`measure`]) time the
//! same functions, so the two agree on what is measured.
//!
//! - P1: `user_exit_irqoff()` + `user_enter_irqoff()` with context tracking active (the counter's
//!   two fully ordered RMWs, vtime's two clock reads and its accounting) against a floor of
//!   exactly two fully ordered atomic RMWs and two clock reads.
//! - P2: the same call sites with the key off, against the same loop without them. The loop body
//!   is a syscall round trip: the host's entry skeleton around a real `getppid()` system call,
//!   which is what an uninstrumented kernel's syscall costs relative to the call sites. The bare
//!   skeleton (no system call) is also measured, where any per-call-site cost shows most.
//! - IRQ enter/exit from user and from kernel, NMI enter/exit from user, idle enter/exit.

use crate::key::{sync_keys, AtomicBoolKey, DefaultKey, KeyBackend};
use crate::machine::{HostCpu, SharedCpu};
use ctxtrack_core::entry::{irqentry_enter, irqentry_exit, irqentry_nmi_enter, irqentry_nmi_exit};
use ctxtrack_core::sync::{atomic_add_return, AtomicU32};
use ctxtrack_core::{Arch, StaticKey};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One host CPU set up for a hot-path loop, with its own key state.
pub struct HotCpu<K: KeyBackend> {
    key: StaticKey,
    cpu: HostCpu<K>,
    /// `current_thread_info()->flags`: read on every exit, never set here.
    ti_flags: AtomicU64,
    floor: [AtomicU32; 2],
    clock: crate::clock::Clock,
}

impl<K: KeyBackend> HotCpu<K> {
    /// A CPU with context tracking active (`ct_on`, a nohz_full CPU) or off (key count 0), in
    /// user mode as after a return to user.
    pub fn new(ct_on: bool) -> Self {
        Self::with_layout(ct_on, ctxtrack_core::CtLayout::MAINLINE)
    }

    /// [`HotCpu::new`] with a state word of `layout` (the CT_WORK field).
    pub fn with_layout(ct_on: bool, layout: ctxtrack_core::CtLayout) -> Self {
        let key = StaticKey::new_false();
        let cpus: Arc<[SharedCpu]> = Arc::from([SharedCpu {
            ct: ctxtrack_core::ContextTracking::with_layout(layout),
            ..SharedCpu::default()
        }]);
        let cpu = HostCpu::boot(0, cpus, &key, ct_on);
        let mut h = HotCpu {
            key,
            cpu,
            ti_flags: AtomicU64::new(0),
            floor: [AtomicU32::new(0), AtomicU32::new(0)],
            clock: crate::clock::Clock::get(),
        };
        h.activate();
        ctxtrack_core::entry::exit_to_user_mode(&mut h.cpu.ct(&h.key));
        h.cpu.arch.hw_iret();
        h
    }

    /// Patches the call sites to this CPU's key state. Call before timing (single-threaded).
    pub fn activate(&mut self) {
        sync_keys(&self.key).expect("hot loops run without CPU threads");
    }

    /// This CPU's context-tracking state word.
    pub fn state_word(&self) -> u32 {
        self.cpu.shared().ct.state_word()
    }

    /// Violations the core recorded so far (a hot loop must leave none).
    pub fn warnings(&self) -> u32 {
        self.cpu.local.warn.count
    }

    /// P1: `user_exit_irqoff()` + `user_enter_irqoff()` (IRQs off, as generic entry calls them).
    #[inline(never)]
    pub fn p1_round_trip(&mut self) {
        self.cpu.arch.hw_irq_entry();
        self.cpu.user_exit_irqoff(&self.key);
        self.cpu.user_enter_irqoff(&self.key);
        self.cpu.arch.hw_iret();
    }

    /// P1 after a remote CPU deferred `sync_core()` to this one (`ct_set_cpu_work()` while it
    /// runs user code): the entry flushes it, the exit clears the bit.
    #[inline(never)]
    pub fn p1_flushing_round_trip(&mut self) {
        let set =
            ctxtrack_core::ct_set_cpu_work(&self.cpu.shared().ct, ctxtrack_core::CtWork::Sync);
        debug_assert!(set);
        self.p1_round_trip();
    }

    /// P1's floor: exactly two fully ordered atomic RMWs (`atomic_add_return`, what
    /// `ct_state_inc()` is) and two `sched_clock()` reads.
    #[inline(never)]
    pub fn p1_floor(&mut self) {
        black_box(atomic_add_return(&self.floor[0], 4));
        black_box(self.clock.sched_clock());
        black_box(self.clock.sched_clock());
        black_box(atomic_add_return(&self.floor[1], 4));
    }

    /// The entry skeleton of a syscall round trip from user mode, with `body` as the system
    /// call and, when `call_sites`, context tracking's two call sites where generic entry has them.
    #[inline(always)]
    fn syscall<const CALL_SITES: bool>(&mut self, body: impl FnOnce() -> u64) {
        self.cpu.arch.hw_irq_entry(); // SYSCALL
        if CALL_SITES {
            self.cpu.user_exit_irqoff(&self.key); // enter_from_user_mode()
        }
        self.cpu.arch.local_irq_enable();
        black_box(body());
        self.cpu.arch.local_irq_disable();
        // exit_to_user_mode_prepare(): read the work flags; no work.
        if self.ti_flags.load(Ordering::Relaxed) != 0 {
            black_box(());
        }
        if CALL_SITES {
            self.cpu.user_enter_irqoff(&self.key); // exit_to_user_mode()
        }
        self.cpu.arch.hw_iret(); // SYSRET
    }

    /// P2: a `getppid()` round trip with the call sites (key as set up: off for P2).
    #[inline(never)]
    pub fn p2_syscall_instrumented(&mut self) {
        self.syscall::<true>(getppid);
    }

    /// P2's baseline: the same round trip without the call sites.
    #[inline(never)]
    pub fn p2_syscall_uninstrumented(&mut self) {
        self.syscall::<false>(getppid);
    }

    /// The bare skeleton (no system call) with the call sites.
    #[inline(never)]
    pub fn skeleton_instrumented(&mut self) {
        self.syscall::<true>(|| 0);
    }

    /// The bare skeleton without the call sites.
    #[inline(never)]
    pub fn skeleton_uninstrumented(&mut self) {
        self.syscall::<false>(|| 0);
    }

    /// `irqentry_enter()` + `irqentry_exit()` for an IRQ from user mode.
    #[inline(never)]
    pub fn irq_from_user(&mut self) {
        self.cpu.arch.hw_irq_entry();
        let mut ct = self.cpu.ct(&self.key);
        let st = irqentry_enter(&mut ct, true);
        black_box(&st);
        irqentry_exit(&mut ct, true, true, st);
        self.cpu.arch.hw_iret();
    }

    /// `irqentry_enter()` + `irqentry_exit()` for an IRQ from kernel code (RCU already watching).
    #[inline(never)]
    pub fn irq_from_kernel(&mut self) {
        self.cpu.arch.hw_irq_entry();
        let mut ct = self.cpu.ct(&self.key);
        let st = irqentry_enter(&mut ct, false);
        black_box(&st);
        black_box(irqentry_exit(&mut ct, false, true, st));
        self.cpu.arch.hw_iret();
    }

    /// `irqentry_nmi_enter()` + `irqentry_nmi_exit()` for an NMI that hits user mode (an EQS).
    #[inline(never)]
    pub fn nmi_from_user(&mut self) {
        self.cpu.arch.nmi += 1;
        let mut ct = self.cpu.ct(&self.key);
        irqentry_nmi_enter(&mut ct);
        irqentry_nmi_exit(&mut ct);
        self.cpu.arch.nmi -= 1;
    }

    /// `ct_idle_enter()` + `ct_idle_exit()` (the idle task, IRQs off around the EQS).
    #[inline(never)]
    pub fn idle_round_trip(&mut self) {
        self.cpu.arch.local_irq_disable();
        let mut ct = self.cpu.ct(&self.key);
        ct.ct_idle_enter();
        ct.ct_idle_exit();
        self.cpu.arch.local_irq_enable();
    }

    /// Puts the CPU in the kernel (for [`Self::irq_from_kernel`]) or in its idle task (for
    /// [`Self::idle_round_trip`]): a syscall entry, optionally switching to idle.
    pub fn enter_kernel(&mut self, idle: bool) {
        self.cpu.arch.hw_irq_entry();
        ctxtrack_core::entry::enter_from_user_mode(&mut self.cpu.ct(&self.key));
        self.cpu.arch.idle = idle;
        self.cpu.arch.local_irq_enable();
    }
}

/// `getppid()`: a real, minimal system call.
#[inline(always)]
fn getppid() -> u64 {
    std::os::unix::process::parent_id() as u64
}

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Figure {
    /// What was measured.
    pub name: &'static str,
    /// Median nanoseconds per iteration over the rounds.
    pub ns: f64,
}

/// A ratio the issue sets a goal for.
#[derive(Clone, Debug)]
pub struct Ratio {
    /// What over what.
    pub name: &'static str,
    /// The ratio of medians, measured in the same run.
    pub value: f64,
    /// The goal (`value <= goal`), if there is one.
    pub goal: Option<f64>,
}

/// What [`measure`] found.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Per loop.
    pub figures: Vec<Figure>,
    /// Ratios from the figures.
    pub ratios: Vec<Ratio>,
    /// Iterations per timed batch and batches (rounds) per loop.
    pub iters: u64,
    /// See `iters`.
    pub rounds: u32,
    /// The call-site backend behind "static key".
    pub key_backend: &'static str,
    /// Violations recorded by the core during the loops (must be 0).
    pub warnings: u32,
}

fn time(iters: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Times every loop in interleaved rounds (each round runs every loop once for `iters`
/// iterations, so slow drifts of a noisy machine hit all loops alike) and reports medians and
/// their ratios. Single-threaded: it patches the key between loops.
pub fn measure(iters: u64, rounds: u32) -> Measurement {
    let mut on = HotCpu::<DefaultKey>::new(true);
    let mut off = HotCpu::<DefaultKey>::new(false);
    let mut off_bool = HotCpu::<AtomicBoolKey>::new(false);
    let mut kernel = HotCpu::<DefaultKey>::new(true);
    kernel.enter_kernel(false);
    let mut idle = HotCpu::<DefaultKey>::new(true);
    idle.enter_kernel(true);
    let mut work = HotCpu::<DefaultKey>::with_layout(true, ctxtrack_core::CtLayout::new(1, false));

    /// The loops, in the order of `NAMES`.
    #[derive(Clone, Copy)]
    enum L {
        P1,
        Floor,
        P2Key,
        P2Bool,
        P2None,
        SkKey,
        SkBool,
        SkNone,
        IrqUser,
        IrqKernel,
        Nmi,
        Idle,
        P1Work,
        P1Flush,
    }
    const NAMES: [&str; 14] = [
        "p1 ct_user_exit+ct_user_enter (CT active)",
        "p1 floor: 2 fully ordered RMW + 2 clock reads",
        "p2 getppid round trip, call sites, key off (static key)",
        "p2 getppid round trip, call sites, key off (atomic bool)",
        "p2 getppid round trip, uninstrumented",
        "skeleton round trip, call sites, key off (static key)",
        "skeleton round trip, call sites, key off (atomic bool)",
        "skeleton round trip, uninstrumented",
        "irq enter+exit from user (CT active)",
        "irq enter+exit from kernel (RCU watching)",
        "nmi enter+exit from user (EQS)",
        "idle enter+exit (CT active)",
        "p1 with the CT_WORK field, no work pending (CT active)",
        "p1 with the CT_WORK field, a ct_set_cpu_work() before each (the entry flushes)",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
    for _ in 0..rounds {
        // All CPUs share the binary's one patched key: each patches it to its state first.
        on.activate();
        samples[L::P1 as usize].push(time(iters, || on.p1_round_trip()));
        samples[L::Floor as usize].push(time(iters, || on.p1_floor()));
        off.activate();
        samples[L::P2Key as usize].push(time(iters / 8, || off.p2_syscall_instrumented()));
        off_bool.activate();
        samples[L::P2Bool as usize].push(time(iters / 8, || off_bool.p2_syscall_instrumented()));
        samples[L::P2None as usize].push(time(iters / 8, || off.p2_syscall_uninstrumented()));
        off.activate();
        samples[L::SkKey as usize].push(time(iters, || off.skeleton_instrumented()));
        off_bool.activate();
        samples[L::SkBool as usize].push(time(iters, || off_bool.skeleton_instrumented()));
        samples[L::SkNone as usize].push(time(iters, || off.skeleton_uninstrumented()));
        on.activate();
        samples[L::IrqUser as usize].push(time(iters, || on.irq_from_user()));
        samples[L::IrqKernel as usize].push(time(iters, || kernel.irq_from_kernel()));
        samples[L::Nmi as usize].push(time(iters, || on.nmi_from_user()));
        samples[L::Idle as usize].push(time(iters, || idle.idle_round_trip()));
        work.activate();
        samples[L::P1Work as usize].push(time(iters, || work.p1_round_trip()));
        samples[L::P1Flush as usize].push(time(iters, || work.p1_flushing_round_trip()));
    }
    let figures: Vec<Figure> = NAMES
        .iter()
        .zip(samples.iter_mut())
        .map(|(name, s)| Figure {
            name,
            ns: median(s),
        })
        .collect();
    let f = |l: L| figures[l as usize].ns;
    let ratios = vec![
        Ratio {
            name: "P1 round trip / floor",
            value: f(L::P1) / f(L::Floor),
            goal: Some(1.3),
        },
        Ratio {
            name: "P1 with the CT_WORK field / P1",
            value: f(L::P1Work) / f(L::P1),
            goal: None,
        },
        Ratio {
            name: "P1 setting and flushing CT_WORK_SYNC / P1 with the field",
            value: f(L::P1Flush) / f(L::P1Work),
            goal: None,
        },
        Ratio {
            name: "P2 getppid: static key off / uninstrumented",
            value: f(L::P2Key) / f(L::P2None),
            goal: Some(1.02),
        },
        Ratio {
            name: "P2 getppid: atomic bool off / uninstrumented",
            value: f(L::P2Bool) / f(L::P2None),
            goal: None,
        },
        Ratio {
            name: "skeleton: static key off / uninstrumented",
            value: f(L::SkKey) / f(L::SkNone),
            goal: None,
        },
        Ratio {
            name: "skeleton: atomic bool off / uninstrumented",
            value: f(L::SkBool) / f(L::SkNone),
            goal: None,
        },
    ];
    let warnings = on.warnings()
        + kernel.warnings()
        + idle.warnings()
        + off.warnings()
        + off_bool.warnings()
        + work.warnings();
    Measurement {
        figures,
        ratios,
        iters,
        rounds,
        key_backend: DefaultKey::NAME,
        warnings,
    }
}
