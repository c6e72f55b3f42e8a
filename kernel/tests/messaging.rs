//! Test kernel (`-smp 4`, `nohz_full=1-3`): `perf bench sched messaging`'s shape (one group of
//! 10 receivers and 10 senders over pipes, 20 loops) on all CPUs, with back-to-back RCU grace
//! periods and an RCU reader in every read/write. Every message arrives in order (checked in ring
//! 3), every nohz_full CPU has exactly one user_exit/user_enter pair per kernel entry from user,
//! vtime accounts every cycle on each of them, no reader sees a freed object, and the replayed
//! trace has no violation.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use ctxtrack_kernel::cmdline::Options;
use ctxtrack_kernel::percpu::cpu;
use ctxtrack_kernel::user::{spawn_messaging, MSG_FDS};
use ctxtrack_kernel::{println, rcu, CpuReport, Scenario};

const LOOPS: u64 = 20;

fn setup(o: &Options) {
    assert_eq!(o.nohz_full, 0b1110, "boot with nohz_full=1-3");
    spawn_messaging(LOOPS, 0);
    rcu::set_continuous(true);
}

fn driver(_: &Options) {}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn check(_: &Options, r: &[CpuReport]) {
    let mut syscalls = 0;
    for (n, rep) in r.iter().enumerate() {
        let c = cpu(n);
        syscalls += get(&c.count.syscalls);
        let from_user = c.count.entries_from_user();
        let (exits, enters) = rep.user_pairs();
        if n == 0 {
            assert_eq!((exits, enters), (0, 0));
            continue;
        }
        assert!(rep.nohz_full);
        assert_eq!(
            exits,
            get(&c.count.syscalls) + from_user,
            "CPU {n}: one user_exit per entry"
        );
        assert_eq!(enters, exits, "CPU {n}: one user_enter per user_exit");
        assert!(get(&c.count.switches) > 0, "CPU {n} ran tasks");
    }
    // Each sender: LOOPS writes per receiver + exit; each receiver at least LOOPS * MSG_FDS reads.
    let min = MSG_FDS * (MSG_FDS * LOOPS + 1) * 2;
    assert!(syscalls >= min, "{syscalls} syscalls < {min}");
    assert!(rcu::completed() > 0, "grace periods ran");
    println!(
        "messaging: {} messages, {syscalls} syscalls, {} grace periods, {} RCU readers",
        MSG_FDS * MSG_FDS * LOOPS,
        rcu::completed(),
        rcu::READERS.load(Ordering::Relaxed)
    );
}

static SCENARIO: Scenario = Scenario {
    name: "messaging",
    setup,
    driver,
    check,
};

#[no_mangle]
extern "C" fn kernel_entry(start_info: u64) -> ! {
    ctxtrack_kernel::boot(start_info, &SCENARIO)
}
