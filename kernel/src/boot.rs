//! PVH entry: QEMU's `-kernel` finds the `XEN_ELFNOTE_PHYS32_ENTRY` note and jumps to
//! `pvh_start32` in 32-bit protected mode, paging off, EBX = `hvm_start_info`. We identity-map the
//! first 4 GiB with 2 MiB pages (the first GiB user-accessible: the ring-3 programs are built into
//! the image; the rest, with the local APIC at 0xfee00000, kernel-only and uncached), enable PAE,
//! long mode and `SYSCALL` in EFER, paging, load the GDT and jump to 64-bit code.
//!
//! The application processors start in real mode at the trampoline the BSP copies to
//! [`TRAMPOLINE`] (the SIPI vector is its page number): 16-bit → 32-bit with a GDT of its own, then
//! the same long-mode switch on the BSP's page tables, then `ap_entry` on the stack the BSP left in
//! `ap_boot_rsp`.

core::arch::global_asm!(
    r#"
    /* Long mode reached: the kernel data segments, null FS/GS (GS_BASE is set later). */
    .macro KERNEL_SEGMENTS
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    .endm

    .section .note.Xen, "a"
    .p2align 2
    .long 4            /* namesz */
    .long 4            /* descsz */
    .long 18           /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    mov edi, ebx
    mov esp, offset boot_stack_top
    /* PML4[0] -> PDPT, PDPT[g] -> PD g (4 pages), PD[i] = i * 2 MiB */
    mov eax, offset boot_pdpt
    or eax, 7
    mov [boot_pml4], eax
    xor ecx, ecx
3:
    mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 7
    mov [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jne 3b
    xor ecx, ecx
1:
    mov eax, ecx
    shl eax, 21
    mov edx, 0x87           /* P|W|U|PS: first GiB */
    cmp ecx, 512
    jb 4f
    mov edx, 0x9b           /* P|W|PWT|PCD|PS: kernel-only, uncached (MMIO) */
4:
    or eax, edx
    mov [boot_pd + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jne 1b
    call enable_long_mode
    .byte 0xea              /* ljmp 0x08:long_mode */
    .long long_mode
    .word 0x08

    /* PAE, the boot page tables, EFER.LME|SCE, paging, the kernel GDT (BSP and APs). */
enable_long_mode:
    mov eax, cr4
    or eax, 1 << 5          /* PAE */
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, 0xC0000080     /* EFER */
    rdmsr
    or eax, (1 << 8) | 1    /* LME | SCE */
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | 1   /* PG | PE */
    mov cr0, eax
    lgdt [gdt_ptr]
    ret

    .code64
long_mode:
    KERNEL_SEGMENTS
    mov rsp, offset boot_stack_top
    mov edi, edi
    call kernel_entry
2:
    hlt
    jmp 2b

    /* AP: after the trampoline, in long mode on the kernel GDT. */
ap_long_mode:
    KERNEL_SEGMENTS
    mov rsp, [ap_boot_rsp]
    mov edi, [ap_boot_cpu]
    call ap_entry
5:
    hlt
    jmp 5b

    /* Real-mode AP trampoline: copied to TRAMPOLINE, so it addresses itself by offset. */
    .section .rodata.trampoline, "a"
    .set TRAMPOLINE, 0x8000
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax
    mov ss, ax
    .byte 0x0f, 0x01, 0x16  /* lgdt [disp16] */
    .word TRAMPOLINE + (tramp_gdtr - ap_trampoline_start)
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    .byte 0x66, 0xea        /* ljmp 0x08:tramp32 (ptr16:32) */
    .long TRAMPOLINE + (tramp32 - ap_trampoline_start)
    .word 0x08
    .code32
tramp32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    .byte 0xbc              /* mov esp, imm32 */
    .long TRAMPOLINE + (tramp_stack_top - ap_trampoline_start)
    mov eax, offset enable_long_mode
    call eax
    .byte 0xea              /* ljmp 0x08:ap_long_mode */
    .long ap_long_mode
    .word 0x08
    .p2align 3
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff    /* 0x08 32-bit code */
    .quad 0x00cf92000000ffff    /* 0x10 data */
tramp_gdtr:
    .word 23
    .long TRAMPOLINE + (tramp_gdt - ap_trampoline_start)
    .p2align 4
    .skip 64
tramp_stack_top:
    .global ap_trampoline_end
ap_trampoline_end:
    .code64

    .section .bss
    .p2align 12
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096 * 4
boot_stack: .skip 65536
    .global boot_stack_top
boot_stack_top:
    "#
);

/// Physical address the AP trampoline is copied to (below 1 MiB, page aligned: SIPI vector 8).
pub const TRAMPOLINE: usize = 0x8000;

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
}

/// Stack pointer and CPU number for the next AP to start (read by `ap_long_mode`).
#[no_mangle]
static mut ap_boot_rsp: u64 = 0;
#[no_mangle]
static mut ap_boot_cpu: u32 = 0;

/// Copies the trampoline to [`TRAMPOLINE`] and sets what the next AP starts with.
///
/// # Safety
/// Boot only, one AP at a time: the caller waits for the AP to come online before the next call.
pub unsafe fn prepare_ap(cpu: u32, rsp: u64) {
    let start = core::ptr::addr_of!(ap_trampoline_start);
    let len = core::ptr::addr_of!(ap_trampoline_end) as usize - start as usize;
    core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
    core::ptr::write_volatile(core::ptr::addr_of_mut!(ap_boot_rsp), rsp);
    core::ptr::write_volatile(core::ptr::addr_of_mut!(ap_boot_cpu), cpu);
}
