//! The general kernel image (`ctxtrack kernel`): the workload named by `workload=` on the command
//! line, on the CPUs QEMU gives it, with `nohz_full=` and `ct=` as given.
//!
//! - `messaging`: `perf bench sched messaging`'s shape (`loops=`, default 20) on every CPU, with
//!   back-to-back RCU grace periods;
//! - `syscalls`: a `getpid()` loop (`loops=` thousands, default 10) on each nohz_full CPU;
//! - `busy`: a user-mode busy loop on each nohz_full CPU while CPU 0 runs grace periods;
//! - `bench`: the instruction-count benchmark (boot with `-icount shift=0`): one task on CPU 1
//!   times `getpid()` round trips and IRQs from user (IPIs from CPU 0) with `rdtsc`, which under
//!   icount counts instructions.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ctxtrack_kernel::cmdline::Options;
use ctxtrack_kernel::percpu::{cpu, nr_cpus, Hit};
use ctxtrack_kernel::syscall::{exit, nr, syscall};
use ctxtrack_kernel::user::{busy_loop, getpid_loop, spawn_messaging};
use ctxtrack_kernel::{apic, println, rcu, sched, CpuReport, Scenario};

/// The CPUs that run the per-CPU workloads: the nohz_full ones, else all but CPU 0.
fn targets(o: &Options) -> u64 {
    let all = ((1u64 << nr_cpus()) - 1) & !1;
    if o.nohz_full != 0 {
        o.nohz_full
    } else {
        all
    }
}

fn each(mask: u64, mut f: impl FnMut(usize)) {
    let mut m = mask;
    while m != 0 {
        f(m.trailing_zeros() as usize);
        m &= m - 1;
    }
}

fn setup(o: &Options) {
    match o.workload {
        "messaging" => {
            spawn_messaging(if o.loops == 0 { 20 } else { o.loops }, 0);
            rcu::set_continuous(true);
        }
        "syscalls" => {
            let n = 1000 * if o.loops == 0 { 10 } else { o.loops };
            each(targets(o), |c| {
                sched::spawn("getpid", c, getpid_loop, n);
            });
        }
        "busy" => {
            let cycles = 100_000_000 * if o.loops == 0 { 1 } else { o.loops };
            each(targets(o), |c| {
                sched::spawn("spin", c, busy_loop, cycles);
            });
        }
        "bench" => {
            assert!(nr_cpus() >= 2, "workload=bench needs -smp 2 or more");
            sched::spawn("bench", 1, bench_user, 0);
        }
        w => panic!("command line: workload={w}: expected messaging, syscalls, busy or bench"),
    }
}

fn driver(o: &Options) {
    match o.workload {
        "busy" => {
            while sched::LIVE.load(Ordering::Acquire) > 0 {
                rcu::synchronize_rcu();
            }
        }
        "bench" => bench_driver(),
        _ => {}
    }
}

fn check(o: &Options, r: &[CpuReport]) {
    if o.workload == "bench" {
        let rt = RESULTS[0].load(Ordering::Acquire);
        let irq = RESULTS[1].load(Ordering::Acquire);
        println!(
            "bench: ct={} ct_work={} syscall_round_trip={}.{:02} instructions irq_from_user={} instructions syscall_single={} flushing_syscall={}",
            if o.ct { "on" } else { "off" },
            if o.ct_work { "on" } else { "off" },
            rt / 100,
            rt % 100,
            irq,
            RESULTS[2].load(Ordering::Acquire),
            RESULTS[3].load(Ordering::Acquire),
        );
    }
    let _ = r;
}

// ---------------------------------------------------------------------------- bench

const BENCH_SYSCALLS: u64 = 2000;
const BENCH_IRQS: u32 = 20;
/// Set by the user task when it waits for IPIs; the driver sends one per step.
static BENCH_STEP: AtomicU32 = AtomicU32::new(0);
/// Results: syscall round trip (hundredths of an instruction), IRQ from user (instructions),
/// with `ct_work=on` one syscall timed alone without and with a deferred `sync_core()` pending
/// (instructions, the minimum of [`BENCH_FLUSHES`] each).
static RESULTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
const BENCH_FLUSHES: u32 = 20;
/// The user task asks CPU 0 to defer work to it (step number) ...
static BENCH_DEFER: AtomicU32 = AtomicU32::new(0);
/// ... and CPU 0 says it did.
static BENCH_DEFERRED: AtomicU32 = AtomicU32::new(0);

fn rdtsc() -> u64 {
    // SAFETY: rdtsc is allowed in ring 3 (CR4.TSD clear); under -icount shift=0 it counts
    // instructions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Ring 3 on CPU 1: `getpid()` round trips, then IRQs from user: a tight loop `t = rdtsc();
/// c = ipi_count` sees the IPI count change at iteration k; the IPI hit between `t(k-1)` and
/// `c(k)`, so `t(k+1) - t(k-1)` spans it, minus the same span without an IRQ (the minimum seen).
/// Spans in which a timer IRQ also hit are dropped; the minimum over the IPIs is kept.
/// CPU 0 halts meanwhile: under icount, `rdtsc` counts the instructions every vCPU executes.
extern "C" fn bench_user(_: u64) -> ! {
    for _ in 0..100 {
        syscall(nr::GETPID, 0, 0, 0);
    }
    let t0 = rdtsc();
    for _ in 0..BENCH_SYSCALLS {
        syscall(nr::GETPID, 0, 0, 0);
    }
    let t1 = rdtsc();
    RESULTS[0].store((t1 - t0) * 100 / BENCH_SYSCALLS, Ordering::Release);
    let c1 = cpu(1);
    let ipis = || c1.count.ipi[Hit::User as usize].load(Ordering::Relaxed);
    let timers = || c1.count.timer[Hit::User as usize].load(Ordering::Relaxed);
    let (mut best, mut base) = (u64::MAX, u64::MAX);
    for step in 1..=BENCH_IRQS {
        let (i0, tm0) = (ipis(), timers());
        BENCH_STEP.store(step, Ordering::Release);
        let (mut t2, mut t1) = (rdtsc(), rdtsc());
        loop {
            let t = rdtsc();
            let c = ipis();
            if c != i0 {
                let span = rdtsc() - t1;
                if timers() == tm0 {
                    best = best.min(span);
                }
                break;
            }
            base = base.min(t - t2);
            (t2, t1) = (t1, t);
        }
    }
    RESULTS[1].store(best.saturating_sub(base), Ordering::Release);
    if c1.ct.layout().work_width() != 0 {
        bench_flushing_syscall();
    }
    exit(0)
}

/// With `ct_work=on`: a syscall alone, then one whose entry flushes a `sync_core()` CPU 0
/// deferred while this task spun in user mode (CPU 0 halts again before the timed syscall). Out
/// of line, so the loops above compile as they do without it.
#[inline(never)]
fn bench_flushing_syscall() {
    // A syscall alone, then one whose entry flushes a sync_core() CPU 0 deferred while
    // this task spun in user mode (CPU 0 halts again before the timed syscall).
    let (mut plain, mut flushing) = (u64::MAX, u64::MAX);
    for step in 1..=BENCH_FLUSHES {
        let t0 = rdtsc();
        syscall(nr::GETPID, 0, 0, 0);
        plain = plain.min(rdtsc() - t0);
        BENCH_DEFER.store(step, Ordering::Release);
        while BENCH_DEFERRED.load(Ordering::Acquire) != step {
            core::hint::spin_loop();
        }
        let t0 = rdtsc();
        syscall(nr::GETPID, 0, 0, 0);
        flushing = flushing.min(rdtsc() - t0);
    }
    RESULTS[2].store(plain, Ordering::Release);
    RESULTS[3].store(flushing, Ordering::Release);
}

/// `hlt` until the next IRQ (CPU 0's tick): waits without executing instructions.
fn idle_wait() {
    rcu::rcu_all_qs();
    // SAFETY: IRQs are on in the driver; the tick wakes us.
    unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
}

fn bench_driver() {
    let c1 = cpu(1);
    for step in 1..=BENCH_IRQS {
        while BENCH_STEP.load(Ordering::Acquire) != step {
            idle_wait();
        }
        idle_wait(); // the task is in its loop by now
        apic::send_ipi(c1.apic_id, apic::CALL_FUNCTION_SINGLE_VECTOR);
    }
    if c1.ct.layout().work_width() != 0 {
        for step in 1..=BENCH_FLUSHES {
            while BENCH_DEFER.load(Ordering::Acquire) != step {
                idle_wait();
            }
            let set = ctxtrack_core::ct_set_cpu_work(&c1.ct, ctxtrack_core::CtWork::Sync);
            assert!(set, "CPU 1 spins in user mode: the deferral must succeed");
            BENCH_DEFERRED.store(step, Ordering::Release);
        }
    }
}

static SCENARIO: Scenario = Scenario {
    name: "ctxtrack-kernel",
    setup,
    driver,
    check,
};

#[no_mangle]
extern "C" fn kernel_entry(start_info: u64) -> ! {
    ctxtrack_kernel::boot(start_info, &SCENARIO)
}
