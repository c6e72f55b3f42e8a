//! RCU across CPUs: grace periods driven from the housekeeping CPU's tick (the work Linux's
//! `rcu_gp_kthread` and `rcu_core` do there), readers in syscalls on every CPU.
//!
//! A grace period publishes a new object, then (`rcu_gp_init()` / `force_qs_rnp()`, through the
//! core's `ctxtrack_core::gp::GpScan`, the scan the simulator and the host backend drive too)
//! snapshots every other CPU's context-tracking counter with the core's `rcu_watching_snap_save()`: a CPU
//! in an extended quiescent state (user mode on a nohz_full CPU, or idle) is done at once,
//! without being interrupted; a CPU in the kernel is done when its counter moves
//! (`rcu_watching_snap_stopped_since()`). CPU 0 reports its own quiescent states (context switch,
//! a tick from user or idle, `rcu_all_qs()`). A holdout gets `rcu_urgent_qs` after
//! [`URGENT_TICKS`] (its next IRQ from kernel forces its tick on) and a `resched_cpu()` IPI after
//! [`RESCHED_TICKS`]; those IPIs are counted per CPU. After the grace period the old object is
//! freed (poisoned); a reader that still sees it panics.

use crate::acpi::MAX_CPUS;
use crate::percpu::{cpu, nr_cpus, this_cpu};
use core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use ctxtrack_core::gp::{FqsVerdict, GpPolicy, GpScan};

/// Ticks a holdout may take before `rcu_urgent_qs` is set (`jiffies_till_sched_qs` / 2).
pub const URGENT_TICKS: u64 = 5;
/// Ticks before the grace period IPIs a holdout (`resched_cpu()`).
pub const RESCHED_TICKS: u64 = 20;

/// An RCU-protected object.
struct Obj {
    version: AtomicU64,
    freed: AtomicBool,
}

const SLOTS: usize = 4;
static OBJS: [Obj; SLOTS] = [const {
    Obj {
        version: AtomicU64::new(0),
        freed: AtomicBool::new(false),
    }
}; SLOTS];
/// The published pointer (an index into `OBJS`).
static PTR: AtomicUsize = AtomicUsize::new(0);

/// Grace periods requested (`synchronize_rcu()` callers and [`set_continuous`]).
static REQUESTED: AtomicU64 = AtomicU64::new(0);
/// Grace periods completed.
static COMPLETED: AtomicU64 = AtomicU64::new(0);
static CONTINUOUS: AtomicBool = AtomicBool::new(false);
/// CPU 0 passed a quiescent state since the current grace period started.
static CPU0_QS: AtomicBool = AtomicBool::new(false);
/// Readers that ran (all CPUs).
pub static READERS: AtomicU64 = AtomicU64::new(0);

/// Grace-period state, touched only by CPU 0's tick: the core's scan (the protocol the
/// simulator and the host backend drive too) and what this kernel adds around it.
struct Gp {
    scan: GpScan<[u32; MAX_CPUS]>,
    old: usize,
    ticks: u64,
}
static GP: spin::Mutex<Gp> = spin::Mutex::new(Gp {
    scan: GpScan::new([0; MAX_CPUS]),
    old: 0,
    ticks: 0,
});

/// When a holdout is pushed, in CPU-0 ticks; one IPI per holdout and grace period.
const POLICY: GpPolicy = GpPolicy {
    urgent_after: URGENT_TICKS,
    resched_after: RESCHED_TICKS,
    resched_nohz_full_only: false,
    resched_once: true,
};

/// Grace periods completed so far.
pub fn completed() -> u64 {
    COMPLETED.load(Ordering::Acquire)
}

/// Keep starting grace periods back to back (a stress mode for workloads).
pub fn set_continuous(on: bool) {
    CONTINUOUS.store(on, Ordering::Release);
}

/// Requests a grace period that starts after this call; returns the `completed()` value that
/// ends it (one more than now if none is running, two if one is: that one may have snapshot a
/// CPU before the caller's update).
pub fn request() -> u64 {
    let want = COMPLETED.load(Ordering::Acquire) + 2;
    REQUESTED.fetch_max(want, Ordering::AcqRel);
    want
}

/// `rcu_read_lock(); p = rcu_dereference(ptr); use p; rcu_read_unlock()` in a non-preemptible
/// kernel: RCU must be watching (the core's counter), and the object must not have been freed.
pub fn reader() {
    let c = this_cpu();
    assert!(
        c.ct.rcu_is_watching(),
        "CPU {}: RCU reader while RCU is not watching",
        c.id
    );
    let i = PTR.load(Ordering::Acquire);
    let o = &OBJS[i];
    let v = o.version.load(Ordering::Relaxed);
    for _ in 0..16 {
        core::hint::spin_loop();
    }
    if o.freed.load(Ordering::Acquire) || o.version.load(Ordering::Relaxed) != v {
        panic!(
            "CPU {}: RCU reader saw object {i} (version {v}) freed under it",
            c.id
        );
    }
    READERS.fetch_add(1, Ordering::Relaxed);
}

/// `rcu_qs()`: this CPU passed a quiescent state (only CPU 0's are needed: the others are seen
/// through their counters).
pub fn rcu_qs() {
    if this_cpu().id == 0 {
        CPU0_QS.store(true, Ordering::Release);
    }
}

/// `rcu_all_qs()` (from `cond_resched()`): kernel code on CPU 0 that loops says it holds no
/// reader.
pub fn rcu_all_qs() {
    rcu_qs();
}

/// The grace-period machine, one step per CPU-0 tick.
pub fn rcu_gp_tick() {
    let mut gp = GP.lock();
    let gp = &mut *gp;
    gp.ticks += 1;
    let now = gp.ticks;
    if !gp.scan.in_progress() {
        let done = COMPLETED.load(Ordering::Relaxed);
        if REQUESTED.load(Ordering::Acquire) <= done && !CONTINUOUS.load(Ordering::Acquire) {
            return;
        }
        // rcu_gp_init(): publish, full barrier, then every CPU owes a quiescent state.
        let old = PTR.load(Ordering::Relaxed);
        let new = (old + 1) % SLOTS;
        OBJS[new].version.store(done + 1, Ordering::Relaxed);
        OBJS[new].freed.store(false, Ordering::Relaxed);
        PTR.store(new, Ordering::Release);
        CPU0_QS.store(false, Ordering::Release);
        fence(Ordering::SeqCst);
        gp.scan.start(now, (1u64 << nr_cpus()) - 1);
        gp.old = old;
    }
    // CPU 0 reports for itself (rcu_qs()); the others are scanned (force_qs_rnp()).
    let mut ended = false;
    if gp.scan.holds_out(0) && CPU0_QS.load(Ordering::Acquire) {
        ended |= gp.scan.report_qs(0, &cpu(0).rcu);
    }
    for n in 1..nr_cpus() {
        if !gp.scan.holds_out(n) {
            continue;
        }
        let c = cpu(n);
        match gp.scan.fqs_cpu(n, now, &POLICY, &c.ct, &c.rcu, true) {
            FqsVerdict::Qs(_) => ended |= gp.scan.report_qs(n, &c.rcu),
            FqsVerdict::Holdout { resched: true, .. } => {
                c.count.rcu_ipis.fetch_add(1, Ordering::Relaxed);
                crate::apic::send_ipi(c.apic_id, crate::apic::RESCHEDULE_VECTOR);
            }
            FqsVerdict::Holdout { .. } => {}
        }
    }
    if ended {
        // rcu_gp_cleanup(): full barrier, then the callbacks (free the old object).
        fence(Ordering::SeqCst);
        OBJS[gp.old].freed.store(true, Ordering::Release);
        OBJS[gp.old].version.store(u64::MAX, Ordering::Relaxed);
        COMPLETED.fetch_add(1, Ordering::AcqRel);
    }
}

/// `synchronize_rcu()` from kernel code on CPU 0 with IRQs on: request a grace period and wait
/// for it, saying meanwhile that this loop holds no reader (`cond_resched()`).
pub fn synchronize_rcu() {
    let want = request();
    while completed() < want {
        rcu_all_qs();
        core::hint::spin_loop();
    }
}
