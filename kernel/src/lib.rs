//! # ctxtrack-kernel: the core on (emulated) x86-64 hardware
//!
//! A small bare-metal kernel booted by QEMU through the PVH entry. Ring 3 programs built into the
//! image make real `SYSCALL`s and take real exceptions; every entry goes through the core's
//! generic-entry functions (`ctxtrack_core::entry`) with the core's context tracking, RCU counter
//! and vtime unmodified. Violations panic the kernel with their name; the serial port carries the
//! log and an ftrace-format trace that `ctxtrack replay` checks.
//!
//! This is the first cut (one CPU): boot, GDT/TSS/IDT, `SYSCALL`/`SYSRET`, `#BP` from user and
//! kernel, exit through isa-debug-exit. See the README's kernel section for what is missing.
#![no_std]

mod boot;
pub mod cpu;
pub mod serial;
pub mod trace;

use core::panic::PanicInfo;

/// isa-debug-exit code for success (QEMU exits with `(0x10 << 1) | 1` = 33).
pub const EXIT_SUCCESS: u32 = 0x10;
/// isa-debug-exit code for failure.
pub const EXIT_FAILURE: u32 = 0x11;

/// Leaves QEMU with `code` through the isa-debug-exit device.
pub fn qemu_exit(code: u32) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device QEMU is started with; writing ends the VM.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") 0xf4u16, in("eax") code, options(nomem, nostack));
    }
    loop {
        // SAFETY: halting with IRQs off is the end of the machine.
        unsafe { core::arch::asm!("cli; hlt") };
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    serial::write_fmt(format_args!("KERNEL PANIC: {info}\n"));
    qemu_exit(EXIT_FAILURE)
}

/// Kernel `printk` over the serial port.
#[macro_export]
macro_rules! println {
    ($($t:tt)*) => { $crate::serial::write_fmt(format_args!("{}\n", format_args!($($t)*))) };
}
