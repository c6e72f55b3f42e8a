//! Test kernel (`-smp 2`, `nohz_full=1`): a ring-3 program on nohz_full CPU 1 makes syscalls,
//! hits breakpoints and sends itself an NMI. Each syscall, breakpoint or IRQ from user is exactly
//! one user_exit/user_enter pair; an `int3` or NMI in the kernel is none; vtime accounts every
//! TSC cycle on CPU 1; the core records no violation.
#![no_std]
#![no_main]

use core::sync::atomic::Ordering;
use ctxtrack_kernel::cmdline::Options;
use ctxtrack_kernel::percpu::{cpu, Counters};
use ctxtrack_kernel::syscall::{exit, nr, syscall};
use ctxtrack_kernel::{println, sched, CpuReport, Scenario};

const SYSCALLS: u64 = 1000;
const BREAKPOINTS: u64 = 10;

extern "C" fn user_main(_: u64) -> ! {
    for i in 0..SYSCALLS {
        if syscall(nr::GETPID, 0, 0, 0) < 100 {
            exit(1);
        }
        if i % (SYSCALLS / BREAKPOINTS) == 0 {
            // SAFETY: int3 from ring 3 (the gate has DPL 3).
            unsafe { core::arch::asm!("int3") };
        }
    }
    // An NMI taken in the kernel (inside the syscall), then an int3 in the kernel: neither is a
    // context-tracking transition.
    syscall(nr::NMI_SELF, 0, 0, 0);
    exit(0)
}

fn setup(o: &Options) {
    assert_eq!(o.nohz_full, 0b10, "boot with nohz_full=1");
    sched::spawn("syscalls", 1, user_main, 0);
}

fn driver(_: &Options) {}

fn check(_: &Options, r: &[CpuReport]) {
    // A breakpoint in the kernel on CPU 0: the NMI-like path, no transition anywhere.
    // SAFETY: int3 in ring 0 goes through irqentry_nmi_enter/exit.
    unsafe { core::arch::asm!("int3") };
    let c1 = cpu(1);
    let get = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let syscalls = get(&c1.count.syscalls);
    let int3_user = get(&c1.count.int3[0]);
    let from_user = c1.count.entries_from_user();
    let (exits, enters) = r[1].user_pairs();
    println!(
        "CPU 1: syscalls {syscalls} breakpoints from user {int3_user} entries from user {from_user} NMIs {:?} user_exit {exits} user_enter {enters}",
        Counters::by_hit(&c1.count.nmi)
    );
    assert!(r[1].nohz_full);
    assert_eq!(syscalls, SYSCALLS + 2, "getpid loop + NMI_SELF + exit");
    assert_eq!(int3_user, BREAKPOINTS);
    // One pair per kernel entry from user; ret_from_fork's first user_enter has no exit before
    // it and exit()'s user_exit no enter after it.
    assert_eq!(exits, syscalls + from_user);
    assert_eq!(enters, exits);
    assert_eq!(get(&c1.count.nmi[1]), 1, "the self-NMI hit the kernel");
    assert_eq!(get(&cpu(0).count.int3[1]), 1);
    // No user transitions on the housekeeping CPU (context tracking is off there).
    assert_eq!(r[0].user_pairs(), (0, 0));
    println!(
        "CPU 1 vtime: user {} sys {} idle {} cycles (+{} lost between vtime_task_switch's clock reads) = {} elapsed",
        r[1].local.cputime.vtime_ns[0],
        r[1].local.cputime.vtime_ns[1],
        r[1].local.cputime.vtime_ns[3],
        r[1].vtime_switch_gap,
        r[1].vtime.1
    );
}

static SCENARIO: Scenario = Scenario {
    name: "syscalls",
    setup,
    driver,
    check,
};

#[no_mangle]
extern "C" fn kernel_entry(start_info: u64) -> ! {
    ctxtrack_kernel::boot(start_info, &SCENARIO)
}
