//! Kernel text patching's synchronization, `smp_text_poke_sync_each_cpu()`: after a poke, every
//! other CPU must execute a serializing instruction before it runs the patched code. The CT_WORK
//! series' deferrable form (`smp_text_poke_sync_each_cpu_deferrable()`) is
//! `on_each_cpu_cond(!ct_set_cpu_work(cpu, CT_WORK_SYNC), do_sync_core, NULL, 1)`: a nohz_full
//! CPU that RCU does not watch gets the work bit in its state word instead of an IPI, and its
//! next kernel entry runs `sync_core()` right after RCU starts watching
//! ([`crate::cpu::MetalArch`]'s `arch_context_tracking_work()`). Every other CPU is IPI'd, and
//! the sender waits for it (`wait=1`).

use crate::apic;
use crate::percpu::{cpu, nr_cpus, this_cpu};
use core::sync::atomic::{AtomicBool, Ordering};
use ctxtrack_core::CtWork;

/// Whether the sender defers where it can (a kernel booted with `ct_work=on` has the work field;
/// tests switch deferral off to compare on one boot).
pub static DEFER: AtomicBool = AtomicBool::new(true);

/// `smp_text_poke_sync_each_cpu_deferrable()`, from this CPU to every other online CPU.
/// Returns how many CPUs were deferred to.
pub fn text_poke_sync_each_cpu() -> usize {
    let me = this_cpu().id;
    let defer = DEFER.load(Ordering::Relaxed);
    let mut deferred = 0;
    for n in (0..nr_cpus()).filter(|&n| n != me) {
        let c = cpu(n);
        if !c.online.load(Ordering::Acquire) {
            continue;
        }
        if defer && ctxtrack_core::ct_set_cpu_work(&c.ct, CtWork::Sync) {
            c.count.work_deferred.fetch_add(1, Ordering::Relaxed);
            deferred += 1;
            continue;
        }
        c.sync_queued.store(true, Ordering::Release);
        apic::send_ipi(c.apic_id, apic::CALL_FUNCTION_SINGLE_VECTOR);
        // wait=1: the poke is live once every interrupted CPU has serialized.
        while c.sync_queued.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
    deferred
}

/// The CALL_FUNCTION IPI's handler on CPU `c`: `do_sync_core()` if a poke queued it (the tests
/// also use this vector as a plain "IRQ on that CPU").
#[inline(always)]
pub fn call_function_single_interrupt(c: &crate::percpu::Cpu) {
    if c.sync_queued.load(Ordering::Acquire) {
        crate::cpu::sync_core();
        c.count.work_ipis.fetch_add(1, Ordering::Relaxed);
        c.sync_queued.store(false, Ordering::Release);
    }
}
