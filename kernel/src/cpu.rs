//! The x86-64 CPU: GDT (a TSS per CPU), IDT, `SYSCALL`/`SYSRET`, the core's [`Arch`] for real
//! registers, and every hardware entry — syscall, IRQ (timer, IPIs), exception (`#BP`), NMI —
//! through the core's generic-entry functions (`ctxtrack_core::entry`), as in Linux's
//! `arch/x86/entry/common.c` and `kernel/entry/common.c`.

use crate::apic;
use crate::percpu::{cpu, this_cpu, Hit, CONTEXT_TRACKING_KEY};
use crate::sched;
use crate::trace::Ev;
use core::arch::{asm, global_asm, naked_asm};
use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;
use ctxtrack_core::entry::{
    enter_from_user_mode, exit_to_user_mode, irqentry_enter, irqentry_exit, irqentry_nmi_enter,
    irqentry_nmi_exit,
};
use ctxtrack_core::{Arch, Ct, CtState};

/// `__USER_DS` / `__USER_CS` (RPL 3), laid out for `SYSRET` (STAR[63:48] = 0x10).
pub const USER_DS: u64 = 0x18 | 3;
/// See [`USER_DS`].
pub const USER_CS: u64 = 0x20 | 3;
/// The first TSS selector; CPU n's is `TSS_SEL + 16 n`.
const TSS_SEL: u16 = 0x28;

global_asm!(
    r#"
    .section .data
    .p2align 4
    .global gdt
gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08 __KERNEL_CS */
    .quad 0x00cf92000000ffff    /* 0x10 __KERNEL_DS */
    .quad 0x00cff2000000ffff    /* 0x18 __USER_DS */
    .quad 0x00affa000000ffff    /* 0x20 __USER_CS */
    .skip 16 * 8                /* 0x28 + 16 n: CPU n's TSS, filled in by cpu_init() */
gdt_end:
    .global gdt_ptr
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt
"#
);

/// The 64-bit TSS: `rsp0` is the stack the CPU switches to on an interrupt from ring 3.
#[repr(C, packed(4))]
pub struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap: u16,
}

impl Tss {
    /// Empty, no I/O bitmap.
    pub const fn new() -> Tss {
        Tss {
            _r0: 0,
            rsp: [0; 3],
            _r1: 0,
            ist: [0; 7],
            _r2: 0,
            _r3: 0,
            iomap: 104,
        }
    }
}

impl Default for Tss {
    fn default() -> Self {
        Tss::new()
    }
}

const NMI_STACK: usize = 16384;
#[repr(C, align(16))]
struct NmiStacks([[u8; NMI_STACK]; crate::acpi::MAX_CPUS]);
static mut NMI_STACKS: NmiStacks = NmiStacks([[0; NMI_STACK]; crate::acpi::MAX_CPUS]);

#[repr(C)]
#[derive(Clone, Copy)]
struct IdtEntry {
    off_lo: u16,
    sel: u16,
    ist: u8,
    attr: u8,
    off_mid: u16,
    off_hi: u32,
    _r: u32,
}

static mut IDT: [IdtEntry; 256] = [IdtEntry {
    off_lo: 0,
    sel: 0,
    ist: 0,
    attr: 0,
    off_mid: 0,
    off_hi: 0,
    _r: 0,
}; 256];

/// The registers an interrupt stub saves (`struct pt_regs`, in push order reversed).
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct PtRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number pushed by the stub (-1: syscall).
    pub vector: u64,
    /// Error code (0 when the CPU pushes none).
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl PtRegs {
    /// `user_mode(regs)`.
    pub fn user_mode(&self) -> bool {
        self.cs & 3 == 3
    }
    /// `!regs_irqs_disabled(regs)`.
    pub fn irqs_on(&self) -> bool {
        self.rflags & (1 << 9) != 0
    }
}

// ---------------------------------------------------------------------------- the core's Arch

/// A CPU's hardware hooks for the core.
pub struct MetalArch {
    /// `smp_processor_id()`.
    pub cpu: usize,
    /// Hardirq nesting (`preempt_count`'s `HARDIRQ` bits).
    pub hardirq: u32,
    /// NMI nesting.
    pub nmi: u32,
    /// `current` is this CPU's idle task.
    pub idle: bool,
}

impl MetalArch {
    /// CPU `cpu`, running its idle task.
    pub fn new(cpu: usize) -> MetalArch {
        MetalArch {
            cpu,
            hardirq: 0,
            nmi: 0,
            idle: true,
        }
    }
}

impl Arch for MetalArch {
    /// The core's counters (what the tests check) only with the `instrument` feature: the
    /// instruction-count benchmark builds without them, like a production kernel.
    const COUNTS: bool = cfg!(feature = "instrument");
    /// The lockdep / `CONFIG_RCU_EQS_DEBUG` checks likewise: live in the tests, off in the
    /// benchmark build (Debian's kernel has neither).
    const RCU_EQS_DEBUG: bool = cfg!(feature = "instrument");
    /// The benchmark build fixes the state word's layout, as Linux's Kconfig does: mainline's,
    /// or with the `ct-work` feature the CT_WORK field. The test build chooses at boot
    /// (`ct_work=on|off`), so one image runs both.
    const CT_LAYOUT: Option<ctxtrack_core::CtLayout> = if cfg!(feature = "instrument") {
        None
    } else if cfg!(feature = "ct-work") {
        Some(ctxtrack_core::CtLayout::new(1, false))
    } else {
        Some(ctxtrack_core::CtLayout::MAINLINE)
    };
    fn irqs_disabled(&self) -> bool {
        irqs_disabled()
    }
    fn local_irq_disable(&mut self) {
        local_irq_disable();
    }
    fn local_irq_enable(&mut self) {
        local_irq_enable();
    }
    /// TSC cycles as the clock (monotonic; under `-icount shift=0` exact and repeatable).
    fn sched_clock(&mut self) -> u64 {
        rdtsc()
    }
    fn smp_processor_id(&self) -> usize {
        self.cpu
    }
    fn in_interrupt(&self) -> bool {
        self.hardirq > 0 || self.nmi > 0
    }
    fn in_nmi(&self) -> bool {
        self.nmi > 0
    }
    fn current_has_mm(&self) -> bool {
        !self.idle
    }
    fn is_idle_task(&self) -> bool {
        self.idle
    }
    /// `arch_context_tracking_work(CT_WORK_SYNC)`: `sync_core()`, right after the entry's fully
    /// ordered add made RCU watch (noinstr, NMI-safe: one serializing instruction and counters).
    fn arch_context_tracking_work(&mut self, work: ctxtrack_core::CtWork) {
        debug_assert_eq!(work, ctxtrack_core::CtWork::Sync);
        sync_core();
        let c = cpu(self.cpu);
        c.count.work_flushes.fetch_add(1, Ordering::Relaxed);
        c.count
            .work_flush_at_syscall
            .store(c.count.syscalls.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    /// `tick_nohz_full_kick_cpu()`: the local case is handled by `irq_exit` re-evaluating the
    /// tick; a remote CPU gets an IPI so that it does.
    fn tick_kick(&mut self, cpu_nr: usize) {
        if cpu_nr != self.cpu {
            apic::send_ipi(cpu(cpu_nr).apic_id, apic::RESCHEDULE_VECTOR);
        }
    }
}

/// `sync_core()`: a serializing instruction (CPUID), so this CPU fetches instructions anew.
pub fn sync_core() {
    // CPUID leaf 0 has no effect but serialization.
    let _ = core::arch::x86_64::__cpuid(0);
}

/// RFLAGS.IF clear.
pub fn irqs_disabled() -> bool {
    let f: u64;
    // SAFETY: reads RFLAGS.
    unsafe { asm!("pushfq; pop {}", out(reg) f, options(nomem, preserves_flags)) };
    f & (1 << 9) == 0
}
/// `local_irq_disable()`.
pub fn local_irq_disable() {
    // SAFETY: cli.
    unsafe { asm!("cli", options(nomem, nostack)) };
}
/// `local_irq_enable()`.
pub fn local_irq_enable() {
    // SAFETY: sti; every vector that can fire has a handler.
    unsafe { asm!("sti", options(nomem, nostack)) };
}
/// The TSC.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

// ---------------------------------------------------------------------------- the core's entry

/// Runs one of the core's entry functions on this CPU for `current`, at `site`: builds the
/// [`Ct`] from this CPU's shared and private parts, traces the user/kernel transition it made (as
/// Linux's `trace_user_enter/exit` inside `__ct_user_enter/exit`), and panics with the name of
/// any violation the core recorded (the invariants are live).
pub fn ct_entry<R>(site: &str, f: impl FnOnce(&mut Ct<'_, MetalArch>) -> R) -> R {
    let c = this_cpu();
    let before = if cfg!(feature = "instrument") {
        c.ct.ct_state_bits()
    } else {
        CtState::Kernel // not traced: unused
    };
    let p = c.private();
    let task = sched::task(c.current.load(Ordering::Relaxed));
    let r = f(&mut Ct::from_parts(
        &CONTEXT_TRACKING_KEY,
        &c.ct,
        &c.rcu,
        &mut p.local,
        &mut task.vtime,
        &mut p.arch,
    ));
    if cfg!(feature = "instrument") {
        match (before, c.ct.ct_state_bits()) {
            (CtState::User, CtState::Kernel) => crate::trace::emit(Ev::UserExit),
            (CtState::Kernel, CtState::User) => crate::trace::emit(Ev::UserEnter),
            _ => {}
        }
    }
    check(site);
    r
}

/// Panics with the name of the first violation the core recorded on this CPU.
pub fn check(site: &str) {
    let c = this_cpu();
    if let Some(v) = c.private().local.warn.first {
        panic!("CPU {}: context-tracking violation at {site}: {v:?}", c.id);
    }
}

// ---------------------------------------------------------------------------- setup

fn set_gate(v: usize, handler: usize, ist: u8, dpl: u8) {
    // SAFETY: called from idt_init() only, on the BSP, before interrupts are enabled.
    unsafe {
        let idt = &mut *addr_of_mut!(IDT);
        idt[v] = IdtEntry {
            off_lo: handler as u16,
            sel: 0x08,
            ist,
            attr: 0x8e | (dpl << 5), // present, 64-bit interrupt gate
            off_mid: (handler >> 16) as u16,
            off_hi: (handler >> 32) as u32,
            _r: 0,
        };
    }
}

/// Fills the IDT (once, on the BSP).
pub fn idt_init() {
    set_gate(2, asm_exc_nmi as *const () as usize, 1, 0);
    set_gate(3, asm_exc_int3 as *const () as usize, 0, 3); // DPL 3: int3 from user
    set_gate(13, asm_exc_gp as *const () as usize, 0, 0);
    set_gate(14, asm_exc_pf as *const () as usize, 0, 0);
    set_gate(
        apic::LOCAL_TIMER_VECTOR as usize,
        asm_sysvec_apic_timer_interrupt as *const () as usize,
        0,
        0,
    );
    set_gate(
        apic::RESCHEDULE_VECTOR as usize,
        asm_sysvec_reschedule_ipi as *const () as usize,
        0,
        0,
    );
    set_gate(
        apic::CALL_FUNCTION_SINGLE_VECTOR as usize,
        asm_sysvec_call_function_single as *const () as usize,
        0,
        0,
    );
    set_gate(
        apic::SPURIOUS_APIC_VECTOR as usize,
        asm_sysvec_spurious as *const () as usize,
        0,
        0,
    );
}

/// Brings CPU `n` up on itself: `%gs`, its TSS (NMI stack on IST1), the IDT, the `SYSCALL` MSRs,
/// its local APIC.
pub fn cpu_init(n: usize) {
    crate::percpu::load_gs(n);
    let c = this_cpu();
    let p = c.private();
    extern "C" {
        static mut gdt: [u64; 5 + 2 * crate::acpi::MAX_CPUS];
    }
    // SAFETY: this CPU's own TSS slot and stacks; interrupts are off.
    unsafe {
        p.tss.ist[0] = addr_of_mut!(NMI_STACKS.0[n]) as u64 + NMI_STACK as u64;
        let base = addr_of_mut!(p.tss) as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let g = &mut *addr_of_mut!(gdt);
        g[5 + 2 * n] = limit | (base & 0xff_ffff) << 16 | 0x89 << 40 | ((base >> 24) & 0xff) << 56;
        g[6 + 2 * n] = base >> 32;
        asm!("ltr ax", in("ax") TSS_SEL + 16 * n as u16);

        #[repr(C, packed)]
        struct Ptr {
            limit: u16,
            base: u64,
        }
        let ptr = Ptr {
            limit: (256 * 16 - 1) as u16,
            base: addr_of_mut!(IDT) as u64,
        };
        asm!("lidt [{}]", in(reg) &ptr);

        // SYSCALL: STAR (CS/SS), LSTAR (entry), FMASK (clear IF, DF, TF on entry).
        wrmsr(0xC000_0081, (0x10u64 << 48) | (0x08u64 << 32));
        wrmsr(0xC000_0082, entry_SYSCALL_64 as *const () as u64);
        wrmsr(0xC000_0084, (1 << 9) | (1 << 10) | (1 << 8));
    }
    apic::init();
}

/// Sets the stack an entry from ring 3 lands on (`update_task_stack()`: TSS `rsp0` and
/// `cpu_current_top_of_stack`).
pub fn set_kernel_stack(top: u64) {
    let c = this_cpu();
    c.private().tss.rsp[0] = top;
    // SAFETY: gs:16 is this CPU's `kstack_top` (see percpu::Cpu), read by entry_SYSCALL_64.
    unsafe { asm!("mov gs:[16], {}", in(reg) top, options(nostack, preserves_flags)) };
}

/// `wrmsr`.
///
/// # Safety
/// `msr` must exist and `v` be valid for it.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack));
}

// ---------------------------------------------------------------------------- syscalls

/// `entry_SYSCALL_64`: switch to the task's kernel stack (`gs:16`), build `pt_regs`, call
/// `do_syscall_64`, `SYSRETQ`. IF is clear on entry (FMASK). The user RSP goes through `gs:8`.
#[unsafe(naked)]
#[no_mangle]
extern "C" fn entry_SYSCALL_64() {
    naked_asm!(
        "mov gs:[8], rsp",
        "mov rsp, gs:[16]",
        "push {uds}",               // ss
        "push gs:[8]",              // rsp
        "push r11",                 // rflags
        "push {ucs}",               // cs
        "push rcx",                 // rip
        "push 0",                   // error
        "push -1",                  // vector: syscall
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "call {do_syscall_64}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "pop rcx",                  // rip
        "add rsp, 8",
        "pop r11",                  // rflags
        "pop rsp",                  // user rsp
        "sysretq",
        uds = const USER_DS,
        ucs = const USER_CS,
        do_syscall_64 = sym do_syscall_64,
    )
}

/// `do_syscall_64()`: `syscall_enter_from_user_mode()`, the call with IRQs on,
/// `syscall_exit_to_user_mode()`.
extern "C" fn do_syscall_64(regs: &mut PtRegs) {
    ct_entry("enter_from_user_mode", enter_from_user_mode);
    local_irq_enable();
    this_cpu().count.syscalls.fetch_add(1, Ordering::Relaxed);
    regs.rax = crate::syscall::dispatch(regs.rax, regs.rdi, regs.rsi, regs.rdx);
    local_irq_disable();
    sched::exit_to_user_mode_loop();
    ct_entry("exit_to_user_mode", exit_to_user_mode);
}

// ---------------------------------------------------------------------------- IDT stubs

macro_rules! idt_stub {
    ($name:ident, $vector:expr, $has_error:expr) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!(
                ".if {has_err} == 0", "push 0", ".endif",
                "push {v}",
                "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
                "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
                "push r15",
                "mov rdi, rsp",
                "call {handler}",
                "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9",
                "pop r8", "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx",
                "pop rax",
                "add rsp, 16",
                "iretq",
                v = const $vector,
                has_err = const $has_error,
                handler = sym idt_dispatch,
            )
        }
    };
}

idt_stub!(asm_exc_nmi, 2, 0);
idt_stub!(asm_exc_int3, 3, 0);
idt_stub!(asm_exc_gp, 13, 1);
idt_stub!(asm_exc_pf, 14, 1);
idt_stub!(asm_sysvec_apic_timer_interrupt, apic::LOCAL_TIMER_VECTOR, 0);
idt_stub!(asm_sysvec_reschedule_ipi, apic::RESCHEDULE_VECTOR, 0);
idt_stub!(
    asm_sysvec_call_function_single,
    apic::CALL_FUNCTION_SINGLE_VECTOR,
    0
);
idt_stub!(asm_sysvec_spurious, apic::SPURIOUS_APIC_VECTOR, 0);

extern "C" fn idt_dispatch(regs: &mut PtRegs) {
    const TIMER: u64 = apic::LOCAL_TIMER_VECTOR as u64;
    const RESCHED: u64 = apic::RESCHEDULE_VECTOR as u64;
    const CALL: u64 = apic::CALL_FUNCTION_SINGLE_VECTOR as u64;
    const SPURIOUS: u64 = apic::SPURIOUS_APIC_VECTOR as u64;
    match regs.vector {
        2 => exc_nmi(regs),
        3 => exc_int3(regs),
        TIMER | RESCHED | CALL => sysvec(regs),
        SPURIOUS => {}
        v => panic!(
            "CPU {}: unexpected exception {v} at {:#x} error {:#x} cs {:#x}",
            this_cpu().id,
            regs.rip,
            regs.error,
            regs.cs
        ),
    }
}

/// Where an entry hit, for the counters.
fn hit(regs: &PtRegs) -> Hit {
    if regs.user_mode() {
        Hit::User
    } else if this_cpu().private().in_idle_eqs {
        Hit::Idle
    } else {
        Hit::Kernel
    }
}

/// `DEFINE_IDTENTRY_SYSVEC`: `irqentry_enter()`, `irq_enter_rcu()`, the handler,
/// `irq_exit_rcu()` (which re-evaluates the nohz tick), then for a return to user
/// `exit_to_user_mode_loop()`, and `irqentry_exit()`. The kernel is not preemptible
/// (`PREEMPT_NONE`): a return to kernel never schedules.
fn sysvec(regs: &mut PtRegs) {
    let user = regs.user_mode();
    let at = hit(regs);
    let c = this_cpu();
    let st = ct_entry("irqentry_enter", |ct| irqentry_enter(ct, user));
    c.private().arch.hardirq += 1;
    let v = regs.vector as u8;
    crate::trace::emit(Ev::IrqEntry(v));
    match v {
        apic::LOCAL_TIMER_VECTOR => {
            c.count.timer[at as usize].fetch_add(1, Ordering::Relaxed);
            if c.private().tick_armed {
                sched::tick_sched_timer(at);
            } else {
                // An expiry the APIC latched (IRR) before timer_stop() ran with interrupts off:
                // hrtimer_interrupt() would find no expired timer, so no tick runs.
                c.count.timer_stale.fetch_add(1, Ordering::Relaxed);
            }
        }
        apic::RESCHEDULE_VECTOR => {
            c.count.ipi[at as usize].fetch_add(1, Ordering::Relaxed);
            // scheduler_ipi(): the flag is already set by the waker.
        }
        _ => {
            c.count.ipi[at as usize].fetch_add(1, Ordering::Relaxed);
            if v == apic::CALL_FUNCTION_SINGLE_VECTOR {
                crate::text_poke::call_function_single_interrupt(c);
            }
        }
    }
    apic::eoi();
    crate::trace::emit(Ev::IrqExit(v));
    c.private().arch.hardirq -= 1;
    // irq_exit_rcu() -> tick_irq_exit() -> tick_nohz_irq_exit(): not from the idle loop, which
    // re-evaluates its tick itself.
    if at != Hit::Idle {
        sched::tick_nohz_update_tick(false);
    }
    if user {
        sched::exit_to_user_mode_loop();
    }
    ct_entry("irqentry_exit", |ct| {
        irqentry_exit(ct, user, regs.irqs_on(), st)
    });
}

/// `exc_int3()`: from user through `irqentry_enter/exit` (one pair), from kernel like an NMI.
fn exc_int3(regs: &mut PtRegs) {
    let c = this_cpu();
    if regs.user_mode() {
        let st = ct_entry("irqentry_enter", |ct| irqentry_enter(ct, true));
        c.count.int3[0].fetch_add(1, Ordering::Relaxed);
        sched::exit_to_user_mode_loop();
        ct_entry("irqentry_exit", |ct| {
            irqentry_exit(ct, true, regs.irqs_on(), st)
        });
    } else {
        nmi_like(|| {
            c.count.int3[1].fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// `exc_nmi()`: `irqentry_nmi_enter/exit` from anywhere, user mode included: an NMI makes RCU
/// watch but is no context-tracking transition.
fn exc_nmi(regs: &mut PtRegs) {
    let at = hit(regs);
    let c = this_cpu();
    nmi_like(|| {
        c.count.nmi[at as usize].fetch_add(1, Ordering::Relaxed);
    });
}

/// `irqentry_nmi_enter()`, the handler, `irqentry_nmi_exit()` (NMIs and kernel-mode `#BP`).
fn nmi_like(handler: impl FnOnce()) {
    this_cpu().private().arch.nmi += 1;
    ct_entry("irqentry_nmi_enter", irqentry_nmi_enter);
    handler();
    ct_entry("irqentry_nmi_exit", irqentry_nmi_exit);
    this_cpu().private().arch.nmi -= 1;
}
