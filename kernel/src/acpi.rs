//! CPU discovery: the local APIC IDs of the enabled processors in the ACPI MADT (the `acpi`
//! crate parses the tables; physical memory is identity-mapped, so "mapping" is a cast).

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;

/// The most CPUs this kernel runs (the static per-CPU arrays).
pub const MAX_CPUS: usize = 8;

#[derive(Clone, Copy)]
struct Identity;

impl AcpiHandler for Identity {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        // SAFETY: the first 4 GiB are identity-mapped; ACPI tables live there.
        unsafe {
            PhysicalMapping::new(
                pa,
                NonNull::new(pa as *mut T).expect("ACPI table at physical 0"),
                size,
                size,
                *self,
            )
        }
    }
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The APIC IDs of the enabled CPUs, in MADT order (the BSP first, as ACPI requires), and how many.
pub fn cpu_apic_ids(rsdp: u64) -> ([u32; MAX_CPUS], usize) {
    // SAFETY: the RSDP address comes from the boot loader, or the BIOS area is searched.
    let tables = unsafe {
        if rsdp != 0 {
            AcpiTables::from_rsdp(Identity, rsdp as usize)
        } else {
            AcpiTables::search_for_rsdp_bios(Identity)
        }
    }
    .unwrap_or_else(|e| panic!("ACPI: no usable RSDP/RSDT ({e:?})"));
    let madt = tables
        .find_table::<Madt>()
        .unwrap_or_else(|e| panic!("ACPI: no MADT ({e:?})"));
    let mut ids = [0u32; MAX_CPUS];
    let mut n = 0;
    for e in madt.get().entries() {
        if let MadtEntry::LocalApic(l) = e {
            // Bit 0: enabled; bit 1: online-capable (hotplug), not started here.
            if l.flags & 1 == 0 {
                continue;
            }
            if n == MAX_CPUS {
                panic!("ACPI: more than {MAX_CPUS} CPUs in the MADT; boot with -smp {MAX_CPUS} or fewer");
            }
            ids[n] = u32::from(l.apic_id);
            n += 1;
        }
    }
    if n == 0 {
        panic!("ACPI: the MADT lists no enabled local APIC");
    }
    (ids, n)
}
