//! One CPU: GDT with user segments and a TSS, the IDT, `SYSCALL`/`SYSRET`, the core's [`Arch`]
//! for real registers, and the entry paths, each through `ctxtrack_core::entry`.

use crate::trace::TraceBuf;
use core::arch::{asm, global_asm, naked_asm};
use core::ptr::addr_of_mut;
use ctxtrack_core::entry::{
    enter_from_user_mode, exit_to_user_mode, irqentry_enter, irqentry_exit, irqentry_nmi_enter,
    irqentry_nmi_exit,
};
use ctxtrack_core::vtime::VtimeState;
use ctxtrack_core::{Arch, Ct, CtState, PerCpu, StaticKey, TaskVtime};

/// `__USER_DS` / `__USER_CS` (RPL 3), laid out for `SYSRET` (STAR[63:48] = 0x10).
pub const USER_DS: u64 = 0x18 | 3;
/// See [`USER_DS`].
pub const USER_CS: u64 = 0x20 | 3;

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
    .quad 0, 0                  /* 0x28 TSS, filled in by init() */
gdt_end:
    .global gdt_ptr
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt
"#
);

/// The 64-bit TSS: `rsp0` is the stack the CPU switches to on an interrupt from ring 3.
#[repr(C, packed(4))]
struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap: u16,
}

static mut TSS: Tss = Tss {
    _r0: 0,
    rsp: [0; 3],
    _r1: 0,
    ist: [0; 7],
    _r2: 0,
    _r3: 0,
    iomap: 104,
};

#[repr(C, align(16))]
struct Stack([u8; 65536]);
static mut KSTACK: Stack = Stack([0; 65536]);
static mut NMI_STACK: Stack = Stack([0; 65536]);
#[repr(C, align(16))]
struct UserStack([u8; 65536]);
static mut USTACK: UserStack = UserStack([0; 65536]);

/// Top of the kernel stack used for syscalls and interrupts from user (`cpu_current_top_of_stack`).
#[no_mangle]
static mut KSTACK_TOP: u64 = 0;
/// The user RSP saved by the `SYSCALL` entry (one CPU: a plain variable, not `%gs`).
#[no_mangle]
static mut USER_RSP: u64 = 0;

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
    /// Vector number pushed by the stub.
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

// ---------------------------------------------------------------------------- the core's state

/// This CPU's hardware hooks for the core.
pub struct MetalArch {
    /// Hardirq/NMI nesting (`preempt_count`'s bits).
    pub hardirq: u32,
    /// NMI nesting.
    pub nmi: u32,
}

impl Arch for MetalArch {
    fn irqs_disabled(&self) -> bool {
        let f: u64;
        // SAFETY: reads RFLAGS.
        unsafe { asm!("pushfq; pop {}", out(reg) f, options(nomem, preserves_flags)) };
        f & (1 << 9) == 0
    }
    fn local_irq_disable(&mut self) {
        // SAFETY: cli.
        unsafe { asm!("cli", options(nomem, nostack)) };
    }
    fn local_irq_enable(&mut self) {
        // SAFETY: sti; handlers are installed before any IRQ source is enabled.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
    /// TSC cycles as the clock (monotonic; under `-icount shift=0` exact and repeatable).
    fn sched_clock(&mut self) -> u64 {
        // SAFETY: rdtsc has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    fn smp_processor_id(&self) -> usize {
        0
    }
    fn in_interrupt(&self) -> bool {
        self.hardirq > 0 || self.nmi > 0
    }
    fn in_nmi(&self) -> bool {
        self.nmi > 0
    }
    fn current_has_mm(&self) -> bool {
        true
    }
    fn is_idle_task(&self) -> bool {
        false
    }
    fn tick_kick(&mut self, _cpu: usize) {}
}

/// Everything the core keeps for this CPU and its one user task, plus counters for the tests.
pub struct Kernel {
    /// `context_tracking_key`.
    pub key: StaticKey,
    /// This CPU's context tracking, RCU flags, tick, cputime, counters, warnings.
    pub pcpu: PerCpu,
    /// The user task's vtime.
    pub task: TaskVtime,
    /// The hardware.
    pub arch: MetalArch,
    /// Syscalls, exceptions from user / kernel.
    pub syscalls: u64,
    /// See `syscalls`.
    pub exc_user: u64,
    /// See `syscalls`.
    pub exc_kernel: u64,
    /// The trace (a 1 MiB static, never on a stack).
    pub trace: &'static mut TraceBuf,
    /// TSC at boot (trace time 0).
    pub t0: u64,
    /// What the test kernel runs when the user program calls exit (in the kernel, CT KERNEL).
    pub on_exit: Option<fn(&mut Kernel, u64) -> !>,
}

static mut KERNEL: Option<Kernel> = None;
static mut TRACE: TraceBuf = TraceBuf::new();

/// The kernel state. One CPU: the callers run with IRQs off or in contexts that do not nest with
/// another user of it (syscall, exception and NMI paths each take it once at the top).
#[allow(static_mut_refs)]
pub fn kernel() -> &'static mut Kernel {
    // SAFETY: set once in init() before any entry can happen; single CPU (see above).
    unsafe { KERNEL.as_mut().expect("cpu::init() first") }
}

impl Kernel {
    /// "This CPU running `current`".
    pub fn ct(&mut self) -> Ct<'_, MetalArch> {
        Ct::new(&self.key, &mut self.pcpu, &mut self.task, &mut self.arch)
    }

    /// Panics with the name of the first violation the core recorded (the invariants are live).
    pub fn check(&self, site: &str) {
        if let Some(v) = self.pcpu.local.warn.first {
            panic!("context-tracking violation at {site}: {v:?}");
        }
    }

    /// Runs one of the core's entry functions at `site`: the ftrace event for the transition it
    /// made (as Linux's `trace_user_enter/exit` inside it), then the violation check.
    pub fn entry<R>(&mut self, site: &str, f: impl FnOnce(&mut Ct<'_, MetalArch>) -> R) -> R {
        let before = self.pcpu.ct.ct_state_bits();
        let r = f(&mut self.ct());
        self.trace_ct(before);
        self.check(site);
        r
    }

    fn trace_ct(&mut self, before: CtState) {
        let after = self.pcpu.ct.ct_state_bits();
        let now = self.arch.sched_clock() - self.t0;
        let irqs_off = self.arch.irqs_disabled();
        match (before, after) {
            (CtState::User, CtState::Kernel) => {
                self.trace
                    .event("user", 1, 0, irqs_off, tsc_ns(now), "user_exit", "")
            }
            (CtState::Kernel, CtState::User) => {
                self.trace
                    .event("user", 1, 0, irqs_off, tsc_ns(now), "user_enter", "")
            }
            _ => {}
        }
    }
}

/// Trace timestamps: TSC cycles read as nanoseconds (QEMU TCG's TSC runs at a nominal GHz).
fn tsc_ns(c: u64) -> u64 {
    c
}

// ---------------------------------------------------------------------------- setup

fn set_gate(v: usize, handler: usize, ist: u8) {
    // SAFETY: called from init() only, before interrupts are enabled.
    unsafe {
        let idt = &mut *addr_of_mut!(IDT);
        idt[v] = IdtEntry {
            off_lo: handler as u16,
            sel: 0x08,
            ist,
            attr: 0xee, // present, DPL 3 (int3 from user), 64-bit interrupt gate
            off_mid: (handler >> 16) as u16,
            off_hi: (handler >> 32) as u32,
            _r: 0,
        };
    }
}

/// Brings this CPU up: serial, TSS, IDT, `SYSCALL` MSRs, and the core's per-CPU state; with
/// `nohz_full` the CPU tracks user mode (`ct_cpu_track_user`).
pub fn init(nohz_full: bool, ct_on: bool) {
    crate::serial::init();
    extern "C" {
        static mut gdt: [u64; 7];
    }
    // SAFETY: boot, one CPU, interrupts off: nothing else touches these yet.
    unsafe {
        let top = addr_of_mut!(KSTACK) as u64 + 65536;
        KSTACK_TOP = top;
        let tss = &mut *addr_of_mut!(TSS);
        tss.rsp[0] = top;
        tss.ist[0] = addr_of_mut!(NMI_STACK) as u64 + 65536;
        let base = addr_of_mut!(TSS) as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let g = &mut *addr_of_mut!(gdt);
        g[5] = limit | (base & 0xff_ffff) << 16 | 0x89 << 40 | ((base >> 24) & 0xff) << 56;
        g[6] = base >> 32;
        asm!("ltr ax", in("ax") 0x28u16);

        set_gate(3, asm_exc_int3 as *const () as usize, 0);
        set_gate(2, asm_exc_nmi as *const () as usize, 1);
        set_gate(13, asm_exc_gp as *const () as usize, 0);
        set_gate(14, asm_exc_pf as *const () as usize, 0);
        #[repr(C, packed)]
        struct Ptr {
            limit: u16,
            base: u64,
        }
        let p = Ptr {
            limit: (256 * 16 - 1) as u16,
            base: addr_of_mut!(IDT) as u64,
        };
        asm!("lidt [{}]", in(reg) &p);

        // SYSCALL: STAR (CS/SS), LSTAR (entry), FMASK (clear IF, DF, TF on entry).
        wrmsr(0xC000_0081, (0x10u64 << 48) | (0x08u64 << 32));
        wrmsr(0xC000_0082, entry_SYSCALL_64 as *const () as u64);
        wrmsr(0xC000_0084, (1 << 9) | (1 << 10) | (1 << 8));
    }
    let t0 = unsafe { core::arch::x86_64::_rdtsc() };
    let mut k = Kernel {
        key: StaticKey::new_false(),
        pcpu: PerCpu::new(1_000_000),
        task: TaskVtime::default(),
        arch: MetalArch { hardirq: 0, nmi: 0 },
        syscalls: 0,
        exc_user: 0,
        exc_kernel: 0,
        // SAFETY: boot, single CPU: the only reference ever made.
        trace: unsafe { &mut *addr_of_mut!(TRACE) },
        t0,
        on_exit: None,
    };
    if ct_on && nohz_full {
        k.pcpu.ct_cpu_track_user(&k.key);
    }
    k.pcpu.local.cputime.vtime_since_ns = Some(t0);
    k.task.vtime.state = VtimeState::Sys;
    k.task.vtime.cpu = 0;
    k.task.vtime.starttime = t0;
    // SAFETY: boot, single CPU.
    unsafe { *addr_of_mut!(KERNEL) = Some(k) };
}

unsafe fn wrmsr(msr: u32, v: u64) {
    asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack));
}

/// `ret_from_fork` for the first user task: `exit_to_user_mode()` with IRQs off, then `IRETQ`
/// to `entry` in ring 3 on its own stack with IRQs on.
pub fn enter_user(entry: extern "C" fn() -> !) -> ! {
    let k = kernel();
    k.arch.local_irq_disable();
    k.entry("ret_from_fork", exit_to_user_mode);
    let usp = addr_of_mut!(USTACK) as u64 + 65536 - 8;
    // SAFETY: a well-formed IRETQ frame to ring 3; the user code and stack are mapped U.
    unsafe {
        asm!(
            "push {ss}", "push {usp}", "push {fl}", "push {cs}", "push {ip}", "iretq",
            ss = in(reg) USER_DS, usp = in(reg) usp, fl = in(reg) 0x202u64,
            cs = in(reg) USER_CS, ip = in(reg) entry as *const () as u64,
            options(noreturn)
        )
    }
}

// ---------------------------------------------------------------------------- syscalls

/// `SYSCALL` numbers of the built-in programs.
pub mod nr {
    /// `getpid()`: returns 1.
    pub const GETPID: u64 = 39;
    /// `exit(code)`.
    pub const EXIT: u64 = 60;
}

/// Makes a system call from ring 3.
#[inline(always)]
pub fn syscall(nr: u64, a0: u64) -> u64 {
    let ret: u64;
    // SAFETY: the kernel's SYSCALL entry preserves everything but rax, rcx, r11.
    unsafe {
        asm!("syscall", inlateout("rax") nr => ret, in("rdi") a0,
             out("rcx") _, out("r11") _, options(nostack))
    };
    ret
}

/// `entry_SYSCALL_64`: switch to the kernel stack, build `pt_regs`, call `do_syscall_64`,
/// `SYSRETQ`. IF is clear on entry (FMASK).
#[unsafe(naked)]
#[no_mangle]
extern "C" fn entry_SYSCALL_64() {
    naked_asm!(
        "mov [rip + USER_RSP], rsp",
        "mov rsp, [rip + KSTACK_TOP]",
        "push {uds}",               // ss
        "push [rip + USER_RSP]",    // rsp
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

/// `do_syscall_64()`: `syscall_enter_from_user_mode()`, the call, `syscall_exit_to_user_mode()`.
extern "C" fn do_syscall_64(regs: &mut PtRegs) {
    let k = kernel();
    k.entry("enter_from_user_mode", enter_from_user_mode);
    k.arch.local_irq_enable();
    k.syscalls += 1;
    regs.rax = match regs.rax {
        nr::GETPID => 1,
        nr::EXIT => {
            k.arch.local_irq_disable();
            match k.on_exit {
                Some(f) => f(k, regs.rdi),
                None => crate::qemu_exit(crate::EXIT_SUCCESS),
            }
        }
        _ => u64::MAX, // -ENOSYS
    };
    k.arch.local_irq_disable();
    // exit_to_user_mode_loop(): no work flags in this kernel yet.
    k.entry("exit_to_user_mode", exit_to_user_mode);
}

// ---------------------------------------------------------------------------- exceptions

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

idt_stub!(asm_exc_int3, 3, 0);
idt_stub!(asm_exc_nmi, 2, 0);
idt_stub!(asm_exc_gp, 13, 1);
idt_stub!(asm_exc_pf, 14, 1);

extern "C" fn idt_dispatch(regs: &mut PtRegs) {
    match regs.vector {
        3 => exc_int3(regs),
        2 => exc_nmi(regs),
        v => panic!(
            "unexpected exception {v} at {:#x} error {:#x}",
            regs.rip, regs.error
        ),
    }
}

/// `exc_int3()`: from user through `irqentry_enter/exit` (one pair), from kernel like an NMI.
fn exc_int3(regs: &mut PtRegs) {
    let k = kernel();
    if regs.user_mode() {
        let st = k.entry("irqentry_enter", |ct| irqentry_enter(ct, true));
        k.exc_user += 1;
        k.entry("irqentry_exit", |ct| {
            irqentry_exit(ct, true, regs.irqs_on(), st)
        });
    } else {
        nmi_like(k, |k| k.exc_kernel += 1);
    }
}

/// `exc_nmi()`: `irqentry_nmi_enter/exit` from anywhere.
fn exc_nmi(_regs: &mut PtRegs) {
    nmi_like(kernel(), |_| {});
}

/// `irqentry_nmi_enter()`, the handler, `irqentry_nmi_exit()` (NMIs and kernel-mode `#BP`).
fn nmi_like(k: &mut Kernel, handler: impl FnOnce(&mut Kernel)) {
    k.arch.nmi += 1;
    k.entry("irqentry_nmi_enter", irqentry_nmi_enter);
    handler(k);
    k.entry("irqentry_nmi_exit", irqentry_nmi_exit);
    k.arch.nmi -= 1;
}
