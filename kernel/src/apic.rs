//! The local APIC in xAPIC mode over MMIO (TCG has no x2APIC and no TSC-deadline timer): timer in
//! one-shot mode (the tick is re-armed by software, so stopping it is not re-arming it), IPIs, NMIs.

use core::ptr::{read_volatile, write_volatile};

const BASE: usize = 0xfee0_0000;
const ID: usize = 0x20;
const TPR: usize = 0x80;
const EOI: usize = 0xb0;
const SVR: usize = 0xf0;
const ICR_LO: usize = 0x300;
const ICR_HI: usize = 0x310;
const LVT_TIMER: usize = 0x320;
const LVT_LINT0: usize = 0x350;
const LVT_LINT1: usize = 0x360;
const TIMER_INIT: usize = 0x380;
const TIMER_DIV: usize = 0x3e0;

/// `LOCAL_TIMER_VECTOR`.
pub const LOCAL_TIMER_VECTOR: u8 = 0xec;
/// `RESCHEDULE_VECTOR`.
pub const RESCHEDULE_VECTOR: u8 = 0xfd;
/// `CALL_FUNCTION_SINGLE_VECTOR`: the tests' "IRQ on that CPU" IPI.
pub const CALL_FUNCTION_SINGLE_VECTOR: u8 = 0xfb;
/// `SPURIOUS_APIC_VECTOR`.
pub const SPURIOUS_APIC_VECTOR: u8 = 0xff;

/// QEMU's APIC timer runs at 1 GHz (`APIC_BUS_CYCLE_NS` = 1); divide by 16.
const TIMER_HZ: u64 = 1_000_000_000 / 16;

fn read(reg: usize) -> u32 {
    // SAFETY: the xAPIC page is identity-mapped uncached; registers are 32-bit aligned.
    unsafe { read_volatile((BASE + reg) as *const u32) }
}
fn write(reg: usize, v: u32) {
    // SAFETY: see read().
    unsafe { write_volatile((BASE + reg) as *mut u32, v) }
}

/// This CPU's APIC ID.
pub fn id() -> u32 {
    read(ID) >> 24
}

/// Enables this CPU's APIC (spurious vector, TPR 0, LINT0 masked: no 8259 ExtINT) with the timer
/// stopped.
pub fn init() {
    write(TPR, 0);
    write(LVT_LINT0, 1 << 16);
    write(LVT_LINT1, 4 << 8); // NMI delivery for LINT1, as the BIOS leaves it
    write(TIMER_DIV, 0x3); // divide by 16
    write(LVT_TIMER, (1 << 16) | u32::from(LOCAL_TIMER_VECTOR)); // masked, one-shot
    write(TIMER_INIT, 0);
    write(SVR, 0x100 | u32::from(SPURIOUS_APIC_VECTOR));
}

/// `lapic_next_event()`: one-shot timer interrupt in `ns` nanoseconds.
pub fn timer_oneshot(ns: u64) {
    let count = (ns * TIMER_HZ / 1_000_000_000).clamp(1, u64::from(u32::MAX)) as u32;
    write(LVT_TIMER, u32::from(LOCAL_TIMER_VECTOR));
    write(TIMER_INIT, count);
}

/// Stops the timer (`clockevents_shutdown` on tick stop).
pub fn timer_stop() {
    write(LVT_TIMER, (1 << 16) | u32::from(LOCAL_TIMER_VECTOR));
    write(TIMER_INIT, 0);
}

/// End of interrupt for fixed-vector IRQs.
pub fn eoi() {
    write(EOI, 0);
}

fn send(apic_id: u32, lo: u32) {
    write(ICR_HI, apic_id << 24);
    write(ICR_LO, lo);
    while read(ICR_LO) & (1 << 12) != 0 {
        core::hint::spin_loop();
    }
}

/// A fixed-vector IPI to `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    send(apic_id, (1 << 14) | u32::from(vector));
}

/// An NMI to `apic_id` (to itself for a self-NMI: Linux's `apic->send_IPI_self(NMI_VECTOR)`
/// goes through the destination field too).
pub fn send_nmi(apic_id: u32) {
    send(apic_id, (1 << 14) | (4 << 8));
}

/// INIT, then two STARTUP IPIs with `vector` (the trampoline's page number), with the SDM's
/// waits between them.
pub fn start_ap(apic_id: u32, vector: u8) {
    send(apic_id, (1 << 14) | (5 << 8)); // INIT, assert
    crate::delay_us(10_000);
    for _ in 0..2 {
        send(apic_id, (1 << 14) | (6 << 8) | u32::from(vector));
        crate::delay_us(200);
    }
}

/// Remaps the 8259 PICs away from the exception vectors (0x20/0x28) and masks them: every
/// interrupt in this kernel comes from the local APIC.
pub fn disable_pic() {
    // SAFETY: the standard ICW1-4 sequence on the legacy PIC ports.
    unsafe {
        for (port, v) in [
            (0x20u16, 0x11u8),
            (0xa0, 0x11),
            (0x21, 0x20),
            (0xa1, 0x28),
            (0x21, 4),
            (0xa1, 2),
            (0x21, 1),
            (0xa1, 1),
            (0x21, 0xff),
            (0xa1, 0xff),
        ] {
            core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack));
        }
    }
}
