//! Test kernel (`-smp 3`, `nohz_full=1-2`): busy ring-3 loops on both nohz_full CPUs.
//! - Once their ticks stop, 50 ticks of CPU 0 (50 ms) pass with zero timer interrupts and zero context-tracking
//!   transitions on them (their RCU counters do not move), while CPU 0 completes RCU grace
//!   periods with zero IPIs to them (their counters say "user mode: quiescent").
//! - An NMI that hits user mode makes RCU watch (counter +2 steps) and is no transition.
//! - An IRQ from user is one user_exit/user_enter pair; from kernel (inside a syscall) or idle, none.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ctxtrack_core::state::CT_RCU_WATCHING;
use ctxtrack_core::CtState;
use ctxtrack_kernel::apic;
use ctxtrack_kernel::cmdline::Options;
use ctxtrack_kernel::cpu::rdtsc;
use ctxtrack_kernel::percpu::{cpu, Counters, Hit};
use ctxtrack_kernel::syscall::{exit, nr, syscall};
use ctxtrack_kernel::{println, rcu, sched, wait_until, CpuReport, Scenario};

/// 0: spin; 1: CPU 2 does one long syscall then spins again; 2: exit.
static PHASE: AtomicU32 = AtomicU32::new(0);
const KSPIN_CYCLES: u64 = 20_000_000;

extern "C" fn spinner(cpu_nr: u64) -> ! {
    let mut did_kspin = false;
    loop {
        match PHASE.load(Ordering::Acquire) {
            1 if cpu_nr == 2 && !did_kspin => {
                did_kspin = true;
                syscall(nr::KSPIN, KSPIN_CYCLES, 0, 0);
            }
            2 => exit(0),
            _ => core::hint::spin_loop(),
        }
    }
}

fn setup(o: &Options) {
    assert_eq!(o.nohz_full, 0b110, "boot with nohz_full=1-2");
    sched::spawn("spin", 1, spinner, 1);
    sched::spawn("spin", 2, spinner, 2);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn cpu0_ticks() -> u64 {
    cpu(0).count.timer.iter().map(get).sum()
}

fn in_user_tick_stopped(n: usize) -> bool {
    cpu(n).ct.ct_state_bits() == CtState::User && cpu(n).tick_stopped.load(Ordering::Acquire)
}

fn driver(_: &Options) {
    wait_until("CPUs 1-2 run in user mode with their tick stopped", || {
        in_user_tick_stopped(1) && in_user_tick_stopped(2)
    });
    let timers = [1, 2].map(|n| Counters::by_hit(&cpu(n).count.timer));
    let counters = [1, 2].map(|n| cpu(n).ct.ct_rcu_watching());
    let gps = rcu::completed();
    let (t, ticks) = (rdtsc(), cpu0_ticks());
    for _ in 0..10 {
        rcu::synchronize_rcu();
    }
    wait_until("50 ticks of CPU 0 (50 ms) passed", || {
        cpu0_ticks() >= ticks + 50
    });
    println!(
        "busy loops: {} CPU-0 ticks ({} TSC cycles), {} grace periods, timer IRQs on CPUs 1-2 {:?} -> {:?}",
        cpu0_ticks() - ticks,
        rdtsc() - t,
        rcu::completed() - gps,
        timers,
        [1, 2].map(|n| Counters::by_hit(&cpu(n).count.timer))
    );
    for (i, n) in [1usize, 2].into_iter().enumerate() {
        let c = cpu(n);
        assert_eq!(
            Counters::by_hit(&c.count.timer),
            timers[i],
            "CPU {n}: a timer IRQ with the tick stopped"
        );
        assert_eq!(
            c.ct.ct_rcu_watching(),
            counters[i],
            "CPU {n}: a context-tracking transition in the busy loop"
        );
        assert_eq!(
            get(&c.count.rcu_ipis),
            0,
            "CPU {n}: RCU IPI'd a CPU in user mode"
        );
        assert_eq!(c.ct.ct_state_bits(), CtState::User);
    }
    assert!(rcu::completed() - gps >= 10);

    // NMI from user mode: RCU watches for its duration (two counter steps), no transition.
    let c1 = cpu(1);
    let before = c1.ct.ct_rcu_watching();
    apic::send_nmi(c1.apic_id);
    // The counter moves once on ct_nmi_enter() and once on ct_nmi_exit().
    let after = before.wrapping_add(2 * CT_RCU_WATCHING);
    wait_until("CPU 1 left the NMI", || c1.ct.ct_rcu_watching() == after);
    assert_eq!(get(&c1.count.nmi[Hit::User as usize]), 1);
    assert!(!c1.ct.rcu_is_watching(), "CPU 1 back in its EQS");
    assert_eq!(c1.ct.ct_state_bits(), CtState::User);

    // An IRQ from user: one pair (counted at the end).
    apic::send_ipi(c1.apic_id, apic::CALL_FUNCTION_SINGLE_VECTOR);
    wait_until("CPU 1 took the IPI in user mode", || {
        get(&c1.count.ipi[Hit::User as usize]) == 1
    });

    // An IRQ that hits the kernel: CPU 2 inside a long syscall.
    let c2 = cpu(2);
    PHASE.store(1, Ordering::Release);
    wait_until("CPU 2 in its syscall", || {
        c2.ct.ct_state_bits() == CtState::Kernel
    });
    apic::send_ipi(c2.apic_id, apic::CALL_FUNCTION_SINGLE_VECTOR);
    wait_until("CPU 2 took the IPI in the kernel", || {
        get(&c2.count.ipi[Hit::Kernel as usize]) == 1
    });

    // The tasks exit; then an IRQ from idle.
    PHASE.store(2, Ordering::Release);
    wait_until("the tasks exited", || {
        sched::LIVE.load(Ordering::Acquire) == 0
    });
    wait_until("CPU 1 idle", || cpu(1).ct.ct_state_bits() == CtState::Idle);
    let idle_ipis = get(&c1.count.ipi[Hit::Idle as usize]);
    apic::send_ipi(c1.apic_id, apic::CALL_FUNCTION_SINGLE_VECTOR);
    wait_until("CPU 1 took the IPI in idle", || {
        get(&c1.count.ipi[Hit::Idle as usize]) == idle_ipis + 1
    });
}

fn check(_: &Options, r: &[CpuReport]) {
    for n in [1, 2] {
        let c = cpu(n);
        let from_user = c.count.entries_from_user();
        let (exits, enters) = r[n].user_pairs();
        println!(
            "CPU {n}: syscalls {} entries from user {from_user} user_exit {exits} user_enter {enters}, timer IRQs while stopped {} (stale expiries latched before the stop {})",
            get(&c.count.syscalls),
            get(&c.count.timer_while_stopped),
            get(&c.count.timer_stale)
        );
        // Exactly one pair per entry from user: syscalls (exit's user_exit has no enter after
        // it, ret_from_fork's user_enter no exit before it) and IRQs/exceptions from user.
        assert_eq!(exits, get(&c.count.syscalls) + from_user, "CPU {n}");
        assert_eq!(enters, exits, "CPU {n}");
        assert_eq!(get(&c.count.timer_while_stopped), 0, "CPU {n}");
        assert_eq!(get(&c.count.rcu_ipis), 0, "CPU {n}");
    }
    assert_eq!(get(&cpu(2).count.syscalls), 2, "KSPIN + exit");
}

static SCENARIO: Scenario = Scenario {
    name: "nohz",
    setup,
    driver,
    check,
};

#[no_mangle]
extern "C" fn kernel_entry(start_info: u64) -> ! {
    ctxtrack_kernel::boot(start_info, &SCENARIO)
}
