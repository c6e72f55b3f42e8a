//! COM1 (0x3f8), polled: the kernel log and the trace.

use core::fmt::Write;

const COM1: u16 = 0x3f8;

fn outb(port: u16, v: u8) {
    // SAFETY: COM1's ports; no memory effects.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as above.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack)) };
    v
}

/// 115200 8N1, FIFOs on, interrupts off.
pub fn init() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xc7);
}

fn put(b: u8) {
    while inb(COM1 + 5) & 0x20 == 0 {}
    outb(COM1, b);
}

struct Com1;

impl Write for Com1 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            put(b);
        }
        Ok(())
    }
}

/// Serialises writers from different CPUs (taken with IRQs off; never from NMI context).
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Writes formatted text (`println!`), one writer at a time.
pub fn write_fmt(args: core::fmt::Arguments<'_>) {
    crate::sched::irqsave(|| {
        let _g = LOCK.lock();
        let _ = Com1.write_fmt(args);
    })
}

/// Writes a string, one writer at a time.
pub fn write_str(s: &str) {
    write_fmt(format_args!("{s}"));
}

/// Writes without the lock: the panic handler (the lock may be held by the panicking CPU).
pub fn write_fmt_unlocked(args: core::fmt::Arguments<'_>) {
    let _ = Com1.write_fmt(args);
}
