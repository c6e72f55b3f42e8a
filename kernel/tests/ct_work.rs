//! Test kernel (`-smp 3`, `nohz_full=1-2 ct=on ct_work=on`): CPU 0 patches kernel text while
//! CPUs 1-2 spin in ring 3 with their ticks stopped.
//! - Deferral on: zero IPIs reach the spinning CPUs; every poke is deferred to them through
//!   their state word, and their next kernel entry (a syscall) runs one `sync_core()` for all
//!   of them right after RCU starts watching, before the syscall's instrumentable code.
//! - Deferral off (same boot): every poke IPIs both CPUs and waits for their `sync_core()`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ctxtrack_core::CtState;
use ctxtrack_kernel::cmdline::Options;
use ctxtrack_kernel::cpu::rdtsc;
use ctxtrack_kernel::percpu::{cpu, Counters};
use ctxtrack_kernel::syscall::{exit, nr, syscall};
use ctxtrack_kernel::{println, sched, text_poke, wait_until, CpuReport, Scenario};

/// Pokes per phase.
const POKES: u64 = 20;

/// Bumped by the driver: each spinner makes one syscall per bump; `u32::MAX`: exit.
static ROUND: AtomicU32 = AtomicU32::new(0);

extern "C" fn spinner(_: u64) -> ! {
    let mut seen = 0;
    loop {
        match ROUND.load(Ordering::Acquire) {
            u32::MAX => exit(0),
            r if r != seen => {
                seen = r;
                syscall(nr::GETPID, 0, 0, 0);
            }
            _ => core::hint::spin_loop(),
        }
    }
}

fn setup(o: &Options) {
    assert_eq!(o.nohz_full, 0b110, "boot with nohz_full=1-2");
    assert!(o.ct_work, "boot with ct_work=on");
    sched::spawn("spin", 1, spinner, 1);
    sched::spawn("spin", 2, spinner, 2);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn spinning(n: usize) -> bool {
    cpu(n).ct.ct_state_bits() == CtState::User && cpu(n).tick_stopped.load(Ordering::Acquire)
}

/// Everything the spinners' CPUs received, for "nothing reached them".
fn irqs(n: usize) -> [u64; 2] {
    let c = &cpu(n).count;
    [
        Counters::by_hit(&c.ipi).iter().sum(),
        Counters::by_hit(&c.timer).iter().sum(),
    ]
}

/// One syscall from each spinner; waits for both.
fn syscall_round() {
    let before = [1, 2].map(|n| get(&cpu(n).count.syscalls));
    ROUND.fetch_add(1, Ordering::Release);
    wait_until(
        "both spinners made their syscall and went back to user mode",
        || {
            [1usize, 2]
                .iter()
                .zip(before)
                .all(|(&n, b)| get(&cpu(n).count.syscalls) > b && spinning(n))
        },
    );
}

fn driver(_: &Options) {
    wait_until("CPUs 1-2 spin in user mode with their tick stopped", || {
        spinning(1) && spinning(2)
    });

    // Deferral on: no IPI, one deferral per poke and CPU, nothing run yet.
    let quiet = [1, 2].map(irqs);
    let t = rdtsc();
    for _ in 0..POKES {
        assert_eq!(
            text_poke::text_poke_sync_each_cpu(),
            2,
            "both spinners defer"
        );
    }
    let defer_cycles = rdtsc() - t;
    for (i, n) in [1usize, 2].into_iter().enumerate() {
        let c = &cpu(n).count;
        assert_eq!(
            irqs(n),
            quiet[i],
            "CPU {n}: an interrupt reached the spinning CPU"
        );
        assert_eq!(get(&c.work_deferred), POKES, "CPU {n}");
        assert_eq!((get(&c.work_ipis), get(&c.work_flushes)), (0, 0), "CPU {n}");
        assert_eq!(
            cpu(n).ct.ct_work(),
            1,
            "CPU {n}: CT_WORK_SYNC pending in the word"
        );
    }
    // Their next entry flushes once for all of them, before the syscall counts itself.
    let syscalls = [1, 2].map(|n| get(&cpu(n).count.syscalls));
    syscall_round();
    for (i, n) in [1usize, 2].into_iter().enumerate() {
        let c = &cpu(n).count;
        assert_eq!(
            get(&c.work_flushes),
            1,
            "CPU {n}: the pokes coalesce into one flush"
        );
        assert_eq!(
            get(&c.work_flush_at_syscall),
            syscalls[i],
            "CPU {n}: the flush ran before the syscall's instrumentable code"
        );
        assert_eq!(
            cpu(n).ct.ct_work(),
            0,
            "CPU {n}: cleared by the exit to user mode"
        );
    }

    // Deferral off: every poke IPIs both spinners and waits for their sync_core().
    text_poke::DEFER.store(false, Ordering::Relaxed);
    let t = rdtsc();
    for _ in 0..POKES {
        assert_eq!(text_poke::text_poke_sync_each_cpu(), 0);
    }
    let ipi_cycles = rdtsc() - t;
    for n in [1usize, 2] {
        let c = &cpu(n).count;
        assert_eq!(get(&c.work_ipis), POKES, "CPU {n}: one IPI per poke");
        assert_eq!(get(&c.work_deferred), POKES, "CPU {n}: no more deferrals");
    }
    println!(
        "{POKES} text pokes to 2 spinning nohz_full CPUs: deferred in {defer_cycles} TSC cycles \
         (0 IPIs), IPI'd and waited for in {ipi_cycles} TSC cycles ({} IPIs)",
        2 * POKES
    );
    ROUND.store(u32::MAX, Ordering::Release);
    wait_until("the spinners exited", || {
        sched::LIVE.load(Ordering::Acquire) == 0
    });
}

fn check(_: &Options, r: &[CpuReport]) {
    for n in [1, 2] {
        let (exits, enters) = r[n].user_pairs();
        println!(
            "CPU {n}: deferred {} IPIs {} flushes {} user_exit {exits} user_enter {enters}",
            get(&cpu(n).count.work_deferred),
            get(&cpu(n).count.work_ipis),
            get(&cpu(n).count.work_flushes)
        );
        assert_eq!(enters, exits, "CPU {n}");
    }
}

static SCENARIO: Scenario = Scenario {
    name: "ct_work",
    setup,
    driver,
    check,
};

#[no_mangle]
extern "C" fn kernel_entry(start_info: u64) -> ! {
    ctxtrack_kernel::boot(start_info, &SCENARIO)
}
