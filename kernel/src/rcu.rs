//! RCU across CPUs: grace periods driven from the housekeeping CPU's tick (the work Linux's
//! `rcu_gp_kthread` and `rcu_core` do there), readers in syscalls on every CPU.
//!
//! A grace period publishes a new object, then (`rcu_gp_init()` / `force_qs_rnp()`) snapshots
//! every other CPU's context-tracking counter with the core's `rcu_watching_snap_save()`: a CPU
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
use ctxtrack_core::rcu::{
    rcu_watching_snap_in_eqs, rcu_watching_snap_save, rcu_watching_snap_stopped_since,
};

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

/// Grace-period state, touched only by CPU 0's tick.
struct Gp {
    running: bool,
    snaps: [u32; MAX_CPUS],
    pending: u32,
    started: u64,
    ipi_sent: u32,
    old: usize,
    ticks: u64,
}
static GP: spin::Mutex<Gp> = spin::Mutex::new(Gp {
    running: false,
    snaps: [0; MAX_CPUS],
    pending: 0,
    started: 0,
    ipi_sent: 0,
    old: 0,
    ticks: 0,
});

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
    gp.ticks += 1;
    let now = gp.ticks;
    if !gp.running {
        let done = COMPLETED.load(Ordering::Relaxed);
        if REQUESTED.load(Ordering::Acquire) <= done && !CONTINUOUS.load(Ordering::Acquire) {
            return;
        }
        // rcu_gp_init(): publish, full barrier, snapshot everyone.
        let old = PTR.load(Ordering::Relaxed);
        let new = (old + 1) % SLOTS;
        OBJS[new].version.store(done + 1, Ordering::Relaxed);
        OBJS[new].freed.store(false, Ordering::Relaxed);
        PTR.store(new, Ordering::Release);
        CPU0_QS.store(false, Ordering::Release);
        fence(Ordering::SeqCst);
        let mut pending = 1; // CPU 0 itself
        for n in 1..nr_cpus() {
            let snap = rcu_watching_snap_save(&cpu(n).ct);
            gp.snaps[n] = snap;
            if !rcu_watching_snap_in_eqs(snap) {
                pending |= 1 << n;
            }
        }
        gp.pending = pending;
        gp.old = old;
        gp.started = now;
        gp.ipi_sent = 0;
        gp.running = true;
    }
    // force_qs_rnp() -> rcu_watching_snap_recheck().
    let mut pending = gp.pending;
    if pending & 1 != 0 && CPU0_QS.load(Ordering::Acquire) {
        pending &= !1;
    }
    for n in 1..nr_cpus() {
        if pending & (1 << n) != 0 && rcu_watching_snap_stopped_since(&cpu(n).ct, gp.snaps[n]) {
            pending &= !(1 << n);
            cpu(n).rcu.set_urgent_qs(false);
        }
    }
    gp.pending = pending;
    if pending == 0 {
        // rcu_gp_cleanup(): full barrier, then the callbacks (free the old object).
        fence(Ordering::SeqCst);
        OBJS[gp.old].freed.store(true, Ordering::Release);
        OBJS[gp.old].version.store(u64::MAX, Ordering::Relaxed);
        gp.running = false;
        COMPLETED.fetch_add(1, Ordering::AcqRel);
        return;
    }
    let waited = now - gp.started;
    for n in 1..nr_cpus() {
        if pending & (1 << n) == 0 {
            continue;
        }
        if waited >= URGENT_TICKS {
            cpu(n).rcu.set_urgent_qs(true);
        }
        if waited >= RESCHED_TICKS && gp.ipi_sent & (1 << n) == 0 {
            gp.ipi_sent |= 1 << n;
            cpu(n).count.rcu_ipis.fetch_add(1, Ordering::Relaxed);
            crate::apic::send_ipi(cpu(n).apic_id, crate::apic::RESCHEDULE_VECTOR);
        }
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
