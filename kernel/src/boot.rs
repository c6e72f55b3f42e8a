//! PVH entry: QEMU's `-kernel` finds the `XEN_ELFNOTE_PHYS32_ENTRY` note and jumps to
//! `pvh_start32` in 32-bit protected mode, paging off, EBX = `hvm_start_info`. We identity-map the
//! first GiB with 2 MiB pages (user-accessible: the ring-3 programs are built into the image),
//! enable PAE, long mode and `SYSCALL` in EFER, paging, load the GDT and jump to 64-bit code.

core::arch::global_asm!(
    r#"
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
    /* PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB (P|W|U|PS) */
    mov eax, offset boot_pdpt
    or eax, 7
    mov [boot_pml4], eax
    mov eax, offset boot_pd
    or eax, 7
    mov [boot_pdpt], eax
    xor ecx, ecx
1:
    mov eax, ecx
    shl eax, 21
    or eax, 0x87
    mov [boot_pd + ecx * 8], eax
    inc ecx
    cmp ecx, 512
    jne 1b
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
    .byte 0xea              /* ljmp 0x08:long_mode */
    .long long_mode
    .word 0x08

    .code64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    mov edi, edi
    call kernel_entry
2:
    hlt
    jmp 2b

    .section .bss
    .p2align 12
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096
boot_stack: .skip 65536
    .global boot_stack_top
boot_stack_top:
    "#
);
