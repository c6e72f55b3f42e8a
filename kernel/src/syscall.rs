//! The system call table (`sys_call_table`) and the ring-3 side (`syscall()` wrappers).

use crate::percpu::this_cpu;
use crate::sched;
use core::sync::atomic::Ordering;

/// Syscall numbers: Linux's where Linux has the call, 1000+ for the test hooks.
pub mod nr {
    /// `read(fd, buf, len)` on a pipe.
    pub const READ: u64 = 0;
    /// `write(fd, buf, len)` on a pipe.
    pub const WRITE: u64 = 1;
    /// `sched_yield()`.
    pub const SCHED_YIELD: u64 = 24;
    /// `getpid()`; also runs an RCU reader.
    pub const GETPID: u64 = 39;
    /// `exit(code)`: a non-zero code fails the run (how a ring-3 check reports).
    pub const EXIT: u64 = 60;
    /// Test hook: spin `arg` TSC cycles in the kernel with IRQs on (IRQs then hit kernel code).
    pub const KSPIN: u64 = 1000;
    /// Test hook: send an NMI to this CPU through its APIC and return once it was taken.
    pub const NMI_SELF: u64 = 1001;
}

/// `-ENOSYS`.
const ENOSYS: u64 = -38i64 as u64;

/// Runs syscall `n` (IRQs on, in the kernel).
pub fn dispatch(n: u64, a0: u64, a1: u64, a2: u64) -> u64 {
    if n == nr::READ || n == nr::WRITE {
        crate::rcu::reader(); // e.g. the file lookup
    }
    match n {
        nr::READ => crate::pipe::read(a0 as usize, a1, a2 as usize),
        nr::WRITE => crate::pipe::write(a0 as usize, a1, a2 as usize),
        nr::SCHED_YIELD => {
            this_cpu().set_need_resched();
            0
        }
        nr::GETPID => {
            crate::rcu::reader();
            u64::from(sched::task(sched::current()).pid)
        }
        nr::EXIT => {
            if a0 != 0 {
                let t = sched::task(sched::current());
                panic!("{}-{} exited with code {a0}", t.comm, t.pid);
            }
            sched::do_exit()
        }
        nr::KSPIN => {
            let end = crate::cpu::rdtsc() + a0;
            while crate::cpu::rdtsc() < end {
                core::hint::spin_loop();
            }
            0
        }
        nr::NMI_SELF => {
            let c = this_cpu();
            let before: u64 = c.count.nmi.iter().map(|x| x.load(Ordering::Relaxed)).sum();
            crate::apic::send_nmi(c.apic_id);
            while c
                .count
                .nmi
                .iter()
                .map(|x| x.load(Ordering::Relaxed))
                .sum::<u64>()
                == before
            {
                core::hint::spin_loop();
            }
            0
        }
        _ => ENOSYS,
    }
}

/// Makes a system call from ring 3.
#[inline(always)]
pub fn syscall(n: u64, a0: u64, a1: u64, a2: u64) -> u64 {
    let ret: u64;
    // SAFETY: the kernel's SYSCALL entry preserves everything but rax, rcx, r11.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") n => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, out("rcx") _, out("r11") _, options(nostack))
    };
    ret
}

/// `exit(code)` from ring 3.
pub fn exit(code: u64) -> ! {
    syscall(nr::EXIT, code, 0, 0);
    unreachable!("exit returned")
}
