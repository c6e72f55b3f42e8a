//! A host machine: one OS thread per nohz_full "CPU" running user code, syscalls with RCU readers
//! and IRQs through the core's generic-entry functions, and one grace-period thread that reads the
//! CPUs' state words the way Linux's RCU does. Real atomics, real concurrency, real clocks.
//!
//! The grace period is `synchronize_rcu()` reduced to its counter protocol
//! (`kernel/rcu/tree.c`): publish a new version (`rcu_assign_pointer`), `smp_mb()`, snapshot each
//! CPU (`rcu_watching_snap_save`, an acquire load of the state word), report at once for a CPU in
//! an EQS (`rcu_watching_snap_in_eqs`), otherwise re-check until the counter moved
//! (`rcu_watching_snap_stopped_since`); after a while set `rcu_urgent_qs` and kick the CPU (the
//! forcing IPI), each decision the core's grace-period scan (`ctxtrack_core::gp::GpScan`, also
//! driven by the simulator and the bare-metal kernel). Then `smp_mb()` and free the old version. Readers check, at the end of every
//! read-side section, that the version they dereferenced was not freed: the property the
//! counter's full barriers exist for.

use crate::arch::HostArch;
use crate::clock::Clock;
use crate::key::{CpuThreadGuard, KeyBackend};
use ctxtrack_core::context_tracking::{ct_cpu_track_user, CpuLocal};
use ctxtrack_core::entry::{
    enter_from_user_mode, exit_to_user_mode, irqentry_enter, irqentry_exit,
};
use ctxtrack_core::gp::{FqsVerdict, GpPolicy, GpScan};
use ctxtrack_core::rcu::RcuCpu;
use ctxtrack_core::sync::smp_mb;
use ctxtrack_core::tick::TickDepBit;
use ctxtrack_core::vtime::{TaskVtime, VtimeState};
use ctxtrack_core::{ContextTracking, Ct, CtState, StaticKey, Violation};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// `TICK_NSEC` at HZ=1000.
pub const TICK_NSEC: u64 = 1_000_000;

/// The part of a CPU other threads see: its `struct context_tracking` (the grace period reads the
/// state word), its RCU flags (the grace period sets `rcu_urgent_qs`), a pending kick (the IPI)
/// and a few flags for the driver. Cache-line aligned so CPUs do not false-share.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct SharedCpu {
    /// `per_cpu(context_tracking, cpu)`.
    pub ct: ContextTracking,
    /// `per_cpu(rcu_data, cpu)`'s entry-path fields.
    pub rcu: RcuCpu,
    /// A pending IPI / irq_work (taken as an IRQ when the CPU's IRQ flag allows).
    pub kick: AtomicBool,
    /// The CPU thread has returned to user mode at least once since the last reset (driver
    /// handshake, not used by the protocol).
    pub in_user: AtomicBool,
    /// The CPU thread has finished (the CPU is offline: no more readers).
    pub done: AtomicBool,
}

/// One CPU's private state, owned by its thread.
pub struct HostCpu<K: KeyBackend> {
    cpu: usize,
    cpus: Arc<[SharedCpu]>,
    /// Tick, cputime, warnings (the core's `CpuLocal`).
    pub local: CpuLocal,
    /// `current`'s vtime (one user task per CPU).
    pub task: TaskVtime,
    /// The hardware hooks.
    pub arch: HostArch<K>,
}

impl<K: KeyBackend> HostCpu<K> {
    /// CPU `cpu`, booted: in the kernel with IRQs off, its task's vtime running as SYS from now.
    /// With `nohz_full` the CPU tracks user mode (`ct_cpu_track_user`, bumping `key`).
    pub fn boot(cpu: usize, cpus: Arc<[SharedCpu]>, key: &StaticKey, nohz_full: bool) -> Self {
        if nohz_full {
            ct_cpu_track_user(&cpus[cpu].ct, key);
        }
        let mut arch = HostArch::new(cpu, cpus.clone());
        let now = ctxtrack_core::Arch::sched_clock(&mut arch);
        let mut local = CpuLocal::new(TICK_NSEC);
        local.cputime.vtime_since_ns = Some(now);
        let mut task = TaskVtime::default();
        task.vtime.state = VtimeState::Sys;
        task.vtime.cpu = cpu as i32;
        task.vtime.starttime = now;
        HostCpu {
            cpu,
            cpus,
            local,
            task,
            arch,
        }
    }

    /// "This CPU running `current`" for the core's APIs.
    #[inline(always)]
    pub fn ct<'a>(&'a mut self, key: &'a StaticKey) -> Ct<'a, HostArch<K>> {
        let shared = &self.cpus[self.cpu];
        Ct::from_parts(
            key,
            &shared.ct,
            &shared.rcu,
            &mut self.local,
            &mut self.task,
            &mut self.arch,
        )
    }

    /// `user_exit_irqoff()` as Linux compiles it at a call site: the static branch inline, the
    /// out-of-line `__ct_user_exit()` only when taken. (Building a [`Ct`] first and testing the
    /// key inside it costs its construction even with the key off.)
    #[inline(always)]
    pub fn user_exit_irqoff(&mut self, key: &StaticKey) {
        if K::static_branch_unlikely() {
            self.ct_user_exit_slow(key);
        }
    }

    /// `user_enter_irqoff()`, as [`Self::user_exit_irqoff`].
    #[inline(always)]
    pub fn user_enter_irqoff(&mut self, key: &StaticKey) {
        if K::static_branch_unlikely() {
            self.ct_user_enter_slow(key);
        }
    }

    #[inline(never)]
    fn ct_user_exit_slow(&mut self, key: &StaticKey) {
        self.ct(key).__ct_user_exit(CtState::User);
    }

    #[inline(never)]
    fn ct_user_enter_slow(&mut self, key: &StaticKey) {
        self.ct(key).__ct_user_enter(CtState::User);
    }

    /// This CPU's shared half.
    pub fn shared(&self) -> &SharedCpu {
        &self.cpus[self.cpu]
    }

    /// An IRQ (the kick) through `irqentry_enter/exit`: from user or from kernel code with IRQs
    /// on. The handler is `rcu_disable_urgency_upon_qs()`'s local half: drop a forced tick once
    /// RCU no longer needs it.
    pub fn take_kick(&mut self, key: &StaticKey, user_mode: bool) {
        self.arch.hw_irq_entry();
        let mut ct = self.ct(key);
        let st = irqentry_enter(&mut ct, user_mode);
        ct.arch.hardirq += 1;
        if ct.rcu.forced_tick() && !ct.rcu.urgent_qs() {
            ct.rcu.set_forced_tick(false);
            ct.local.tick.tick_nohz_dep_clear_cpu(TickDepBit::Rcu);
        }
        ct.arch.hardirq -= 1;
        // Both callers take the kick where IRQs were on (user mode, or a read-side section).
        irqentry_exit(&mut ct, user_mode, true, st);
        self.arch.hw_iret();
    }
}

/// What a host run does.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// nohz_full CPUs, one thread each.
    pub cpus: usize,
    /// Syscalls each CPU makes (ignored with `park_in_user`).
    pub syscalls: u64,
    /// Nanoseconds of user-mode spinning before each syscall.
    pub user_ns: u64,
    /// Nanoseconds spent inside each syscall's RCU read-side section.
    pub reader_ns: u64,
    /// Re-checks of a holdout CPU before the grace period sets `rcu_urgent_qs` and kicks it.
    pub fqs_polls: u64,
    /// Each CPU returns to user mode once and stays there (spinning) until the grace-period
    /// thread has run `grace_periods` grace periods.
    pub park_in_user: bool,
    /// Grace periods to run with `park_in_user`.
    pub grace_periods: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cpus: 2,
            syscalls: 20_000,
            user_ns: 2_000,
            reader_ns: 500,
            fqs_polls: 100_000,
            park_in_user: false,
            grace_periods: 10,
        }
    }
}

/// Per-CPU results.
#[derive(Clone, Debug, Default)]
pub struct HostCpuReport {
    /// Syscalls made.
    pub syscalls: u64,
    /// IRQs (kicks) taken from user mode.
    pub irqs_from_user: u64,
    /// IRQs taken inside the kernel.
    pub irqs_from_kernel: u64,
    /// Kicks (forcing IPIs) the grace period sent to this CPU.
    pub ipis: u64,
    /// Context-tracking violations the core recorded (count, first).
    pub warnings: (u32, Option<Violation>),
    /// Exact user and system nanoseconds from vtime.
    pub user_ns: u64,
    /// See `user_ns`.
    pub sys_ns: u64,
    /// Vtime conservation: `Some((accounted, elapsed))` on mismatch.
    pub conservation_error: Option<(u64, u64)>,
    /// State word at the end.
    pub final_state: u32,
}

/// Results of a host run.
#[derive(Clone, Debug, Default)]
pub struct HostReport {
    /// Per CPU.
    pub cpus: Vec<HostCpuReport>,
    /// Grace periods completed.
    pub grace_periods: u64,
    /// Grace periods that completed because a CPU had gone offline rather than through a
    /// quiescent state.
    pub gp_offline_qs: u64,
    /// Longest grace period, ns.
    pub gp_max_ns: u64,
    /// Read-side sections that found their version freed: must be 0.
    pub reader_failures: u64,
    /// Read-side sections run.
    pub readers: u64,
}

/// The RCU-protected "pointer": the version a reader dereferences.
struct Published {
    current: AtomicU64,
    /// Every version `<= freed` has been freed.
    freed: AtomicU64,
    readers: AtomicU64,
    failures: AtomicU64,
}

fn spin_ns(clock: &Clock, ns: u64, mut poll: impl FnMut() -> bool) {
    let end = clock.sched_clock() + ns;
    let mut n = 0u32;
    while clock.sched_clock() < end {
        if poll() {
            return;
        }
        n = n.wrapping_add(1);
        if n.is_multiple_of(4096) {
            // Two cores, more threads: let the others run (politeness, not synchronization).
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
}

/// Runs `cfg` on host threads with the key backend `K`. `key` must be fresh (count 0); it is
/// synced into `K`'s call sites before any thread starts.
pub fn run<K: KeyBackend>(cfg: &HostConfig, key: &StaticKey) -> Result<HostReport, String> {
    let cpus: Arc<[SharedCpu]> = (0..cfg.cpus).map(|_| SharedCpu::default()).collect();
    let mut boot: Vec<HostCpu<K>> = (0..cfg.cpus)
        .map(|c| HostCpu::boot(c, cpus.clone(), key, true))
        .collect();
    crate::key::sync_keys(key).map_err(|e| e.to_string())?;
    let published = Arc::new(Published {
        current: AtomicU64::new(1),
        freed: AtomicU64::new(0),
        readers: AtomicU64::new(0),
        failures: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ipis: Arc<[AtomicU64]> = (0..cfg.cpus).map(|_| AtomicU64::new(0)).collect();
    let clock = Clock::get();

    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for mut cpu in boot.drain(..) {
            let (published, stop, cfg) = (published.clone(), stop.clone(), cfg.clone());
            // Registered before the thread starts, released when it has finished.
            let guard = CpuThreadGuard::new();
            handles.push(s.spawn(move || {
                let r = cpu_thread(&mut cpu, key, &cfg, &published, &stop, &clock);
                drop(guard);
                r
            }));
        }
        let gp = gp_thread(cfg, &cpus, &published, &stop, &ipis, &clock);
        let mut report = HostReport {
            grace_periods: gp.0,
            gp_offline_qs: gp.1,
            gp_max_ns: gp.2,
            ..HostReport::default()
        };
        for (c, h) in handles.into_iter().enumerate() {
            let mut r = h.join().map_err(|_| format!("CPU {c} thread panicked"))?;
            r.ipis = ipis[c].load(Ordering::Relaxed);
            report.cpus.push(r);
        }
        report.readers = published.readers.load(Ordering::Relaxed);
        report.reader_failures = published.failures.load(Ordering::Relaxed);
        Ok(report)
    })
}

/// `rcu_read_lock()` ... `rcu_read_unlock()` around a dereference of the published version.
fn read_side(p: &Published, clock: &Clock, ns: u64, mut irq: impl FnMut()) {
    let v = p.current.load(Ordering::Acquire); // rcu_dereference()
    spin_ns(clock, ns, || {
        irq();
        false
    });
    if p.freed.load(Ordering::Acquire) >= v {
        p.failures.fetch_add(1, Ordering::Relaxed);
    }
    p.readers.fetch_add(1, Ordering::Relaxed);
}

fn cpu_thread<K: KeyBackend>(
    cpu: &mut HostCpu<K>,
    key: &StaticKey,
    cfg: &HostConfig,
    published: &Published,
    stop: &AtomicBool,
    clock: &Clock,
) -> HostCpuReport {
    let mut r = HostCpuReport::default();
    // Boot: first return to user mode (ret_from_fork: exit_to_user_mode with IRQs off).
    exit_to_user_mode(&mut cpu.ct(key));
    cpu.arch.hw_iret();
    cpu.shared().in_user.store(true, Ordering::Release);
    let mut iteration = 0u64;
    loop {
        if cfg.park_in_user {
            if stop.load(Ordering::Acquire) {
                break;
            }
        } else if iteration == cfg.syscalls {
            break;
        }
        iteration += 1;
        // User mode: IRQs on; a pending kick is delivered as an IRQ from user.
        spin_ns(clock, cfg.user_ns, || {
            if cpu.shared().kick.swap(false, Ordering::Acquire) {
                cpu.take_kick(key, true);
                r.irqs_from_user += 1;
            }
            cfg.park_in_user && stop.load(Ordering::Relaxed)
        });
        if cfg.park_in_user {
            continue;
        }
        // A syscall: entry_SYSCALL_64 → do_syscall_64 → sysretq.
        cpu.arch.hw_irq_entry(); // SYSCALL masks IF (MSR_SYSCALL_MASK)
        enter_from_user_mode(&mut cpu.ct(key));
        ctxtrack_core::Arch::local_irq_enable(&mut cpu.arch);
        {
            let mut kicks = 0;
            read_side(published, clock, cfg.reader_ns, || {
                if cpu.shared().kick.swap(false, Ordering::Acquire) {
                    cpu.take_kick(key, false);
                    kicks += 1;
                }
            });
            r.irqs_from_kernel += kicks;
        }
        ctxtrack_core::Arch::local_irq_disable(&mut cpu.arch);
        exit_to_user_mode(&mut cpu.ct(key));
        cpu.arch.hw_iret(); // SYSRET restores the user's IF
        r.syscalls += 1;
    }
    // The task exits: back into the kernel for good; the CPU goes offline.
    cpu.arch.hw_irq_entry();
    enter_from_user_mode(&mut cpu.ct(key));
    cpu.shared().done.store(true, Ordering::Release);
    let now = ctxtrack_core::Arch::sched_clock(&mut cpu.arch);
    r.conservation_error = cpu
        .local
        .cputime
        .check_conservation(now, &cpu.task, cpu.cpu)
        .err();
    r.user_ns = cpu.local.cputime.vtime_ns[0];
    r.sys_ns = cpu.local.cputime.vtime_ns[1];
    r.warnings = (cpu.local.warn.count, cpu.local.warn.first);
    r.final_state = cpu.shared().ct.state_word();
    debug_assert_eq!(cpu.shared().ct.ct_state_bits(), CtState::Kernel);
    r
}

/// Returns (grace periods, GPs ended by an offline CPU, longest GP in ns).
fn gp_thread(
    cfg: &HostConfig,
    cpus: &[SharedCpu],
    p: &Published,
    stop: &AtomicBool,
    ipis: &[AtomicU64],
    clock: &Clock,
) -> (u64, u64, u64) {
    if cfg.park_in_user {
        // Wait until every CPU sits in user mode (a handshake on atomics, no sleeping).
        while !cpus.iter().all(|c| c.in_user.load(Ordering::Acquire)) {
            std::thread::yield_now();
        }
    }
    let (mut gps, mut offline, mut max_ns) = (0u64, 0u64, 0u64);
    let mut scan = GpScan::new(vec![0u32; cpus.len()]);
    loop {
        let all_done = cpus.iter().all(|c| c.done.load(Ordering::Acquire));
        if all_done || (cfg.park_in_user && gps == cfg.grace_periods) {
            break;
        }
        let t0 = clock.sched_clock();
        // rcu_assign_pointer(gp, new); synchronize_rcu():
        let old = p.current.fetch_add(1, Ordering::Release);
        // rcu_gp_init()'s full barrier: the update is visible before any snapshot is taken.
        smp_mb();
        // The protocol is the core's scan; this thread adds the order (one CPU at a time, in
        // polls) and the kick. Age is in polls of the CPU being waited for.
        let policy = GpPolicy {
            urgent_after: cfg.fqs_polls,
            resched_after: cfg.fqs_polls,
            resched_nohz_full_only: false,
            resched_once: true,
        };
        scan.start(0, ((1u128 << cpus.len()) - 1) as u64);
        for (i, c) in cpus.iter().enumerate() {
            // The first pass snapshots everyone right after the barrier.
            if let FqsVerdict::Qs(_) = scan.fqs_cpu(i, 0, &policy, &c.ct, &c.rcu, true) {
                scan.report_qs(i, &c.rcu);
            }
        }
        let mut ended_offline = false;
        for (i, c) in cpus.iter().enumerate() {
            let mut polls = 0u64;
            // rcu_watching_snap_recheck() until the CPU reports.
            while scan.holds_out(i) {
                if c.done.load(Ordering::Acquire) {
                    ended_offline = true;
                    scan.report_qs(i, &c.rcu);
                    break;
                }
                polls += 1;
                match scan.fqs_cpu(i, polls, &policy, &c.ct, &c.rcu, true) {
                    FqsVerdict::Qs(_) => {
                        scan.report_qs(i, &c.rcu);
                    }
                    FqsVerdict::Holdout { resched, .. } => {
                        if resched {
                            // resched_cpu(): the scan set the urgency; the IPI is ours.
                            c.kick.store(true, Ordering::Release);
                            ipis[i].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if polls.is_multiple_of(1024) {
                    std::thread::yield_now(); // two cores, more threads
                }
                std::hint::spin_loop();
            }
        }
        debug_assert!(!scan.in_progress());
        // rcu_gp_cleanup()'s barrier, then the callbacks: free the old version.
        smp_mb();
        p.freed.store(old, Ordering::Release);
        gps += 1;
        offline += ended_offline as u64;
        max_ns = max_ns.max(clock.sched_clock() - t0);
    }
    stop.store(true, Ordering::Release);
    (gps, offline, max_ns)
}
