//! Test kernel: a ring-3 program on a nohz_full CPU makes syscalls and hits breakpoints. Each
//! syscall and each `int3` from user is exactly one user_exit/user_enter pair; an `int3` in the
//! kernel is none; vtime accounts every TSC cycle; the core records no violation.
#![no_std]
#![no_main]

use ctxtrack_core::stats::Transition;
use ctxtrack_core::CtState;
use ctxtrack_kernel::cpu::{self, nr, syscall, Kernel};
use ctxtrack_kernel::{println, qemu_exit, EXIT_SUCCESS};

const SYSCALLS: u64 = 1000;
const BREAKPOINTS: u64 = 10;

extern "C" fn user_main() -> ! {
    for i in 0..SYSCALLS {
        assert_eq!(syscall(nr::GETPID, 0), 1);
        if i % (SYSCALLS / BREAKPOINTS) == 0 {
            // SAFETY: int3 from ring 3 (the gate has DPL 3).
            unsafe { core::arch::asm!("int3") };
        }
    }
    syscall(nr::EXIT, 0);
    unreachable!()
}

fn on_exit(k: &mut Kernel, _code: u64) -> ! {
    // In the kernel after the exit syscall's enter_from_user_mode().
    assert_eq!(k.pcpu.ct.ct_state_bits(), CtState::Kernel);
    let s = &k.pcpu.local.stats;
    let (exits, enters) = (
        s.transitions[Transition::UserExit as usize],
        s.transitions[Transition::UserEnter as usize],
    );
    println!(
        "syscalls {} breakpoints from user {} user_exit {exits} user_enter {enters}",
        k.syscalls, k.exc_user
    );
    // One pair per syscall and per breakpoint from user, plus ret_from_fork's first enter
    // and the exit syscall's exit.
    assert_eq!(k.syscalls, SYSCALLS + 1);
    assert_eq!(k.exc_user, BREAKPOINTS);
    assert_eq!(exits, SYSCALLS + BREAKPOINTS + 1);
    assert_eq!(enters, SYSCALLS + BREAKPOINTS + 1);
    // A breakpoint in the kernel: RCU is watching already; no transition.
    // SAFETY: int3 in ring 0 goes through the NMI-like path.
    unsafe { core::arch::asm!("int3") };
    assert_eq!(k.exc_kernel, 1);
    assert_eq!(
        k.pcpu.local.stats.transitions_total(),
        2 * (SYSCALLS + BREAKPOINTS + 1)
    );
    let now = unsafe { core::arch::x86_64::_rdtsc() };
    if let Err((acc, el)) = k.pcpu.local.cputime.check_conservation(now, &k.task, 0) {
        panic!("vtime conservation: accounted {acc} of {el}");
    }
    k.check("exit");
    println!(
        "vtime user {} sys {} cycles; violations 0",
        k.pcpu.local.cputime.vtime_ns[0], k.pcpu.local.cputime.vtime_ns[1]
    );
    k.trace.dump(1);
    qemu_exit(EXIT_SUCCESS)
}

#[no_mangle]
extern "C" fn kernel_entry(_start_info: u64) -> ! {
    cpu::init(true, true);
    cpu::kernel().on_exit = Some(on_exit);
    println!("ctxtrack-kernel: syscalls test, nohz_full=0 ct=on");
    cpu::enter_user(user_main)
}
