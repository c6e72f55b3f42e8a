//! # ctxtrack-kernel: the core on (emulated) x86-64 hardware
//!
//! A small SMP kernel booted by QEMU through the PVH entry. It finds its CPUs in the ACPI MADT,
//! starts them (INIT-SIPI-SIPI), gives each per-CPU data through `%gs`, a TSS and a one-shot
//! local APIC tick, and runs ring-3 tasks built into the image on per-CPU run queues. Every
//! entry from the hardware — `SYSCALL`, the timer and IPIs, `#BP`, NMIs — goes through the core's
//! generic-entry functions (`ctxtrack_core::entry`), with the core's context tracking, RCU
//! counter and vtime unmodified; nohz_full CPUs stop their tick; RCU grace periods run on CPU 0
//! from the counters. Violations panic the kernel with their name; the serial port carries the
//! log, a per-CPU summary and an ftrace-format trace that `ctxtrack replay` checks.
//!
//! A test kernel is a [`Scenario`]: what to spawn, what CPU 0 does meanwhile, what to check at
//! the end with every CPU's [`CpuReport`].
#![no_std]

pub mod acpi;
pub mod apic;
mod boot;
pub mod cmdline;
pub mod cpu;
pub mod percpu;
pub mod pipe;
pub mod rcu;
pub mod sched;
pub mod serial;
pub mod syscall;
pub mod text_poke;
pub mod trace;
pub mod user;

use crate::acpi::MAX_CPUS;
use crate::cmdline::Options;
use crate::percpu::{cpu, nr_cpus, this_cpu};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use ctxtrack_core::context_tracking::CpuLocal;
use ctxtrack_core::stats::Transition;

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
    serial::write_fmt_unlocked(format_args!("KERNEL PANIC: {info}\n"));
    qemu_exit(EXIT_FAILURE)
}

/// Kernel `printk` over the serial port.
#[macro_export]
macro_rules! println {
    ($($t:tt)*) => { $crate::serial::write_fmt(format_args!("{}\n", format_args!($($t)*))) };
}

/// Busy-waits `us` microseconds on the TSC (QEMU TCG: a nominal 1 GHz); only for hardware
/// protocols that prescribe waits (INIT-SIPI).
pub fn delay_us(us: u64) {
    let end = cpu::rdtsc() + us * 1000;
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// For a scenario's driver on CPU 0: spins until `f` holds, reporting CPU 0's RCU quiescent
/// states meanwhile (grace periods need them); panics, naming `what`, after 5·10⁹ TSC cycles.
pub fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = cpu::rdtsc() + 5_000_000_000;
    while !f() {
        assert!(cpu::rdtsc() < deadline, "timed out waiting until {what}");
        rcu::rcu_all_qs();
        core::hint::spin_loop();
    }
}

/// A test kernel (or the general image's workload).
pub struct Scenario {
    /// Printed at boot.
    pub name: &'static str,
    /// Spawns the ring-3 tasks (on CPU 0, every CPU online, before the ticks start).
    pub setup: fn(&Options),
    /// What CPU 0 does in the kernel, IRQs on, while the tasks run; the run ends when it has
    /// returned and every task has exited.
    pub driver: fn(&Options),
    /// Checks every CPU's report once all are parked (panics on failure).
    pub check: fn(&Options, &[CpuReport]),
}

/// What a CPU reports when it parks.
#[derive(Clone, Default)]
pub struct CpuReport {
    /// CPU number.
    pub cpu: usize,
    /// In `nohz_full=` with context tracking on.
    pub nohz_full: bool,
    /// The core's private per-CPU data (counters, tick, cputime, violations).
    pub local: CpuLocal,
    /// Vtime conservation on this CPU: `(accounted, elapsed)` TSC cycles, equal when it holds
    /// (the cycles `vtime_task_switch` loses between its two clock reads are added back).
    pub vtime: (u64, u64),
    /// Those cycles.
    pub vtime_switch_gap: u64,
    /// Ticks taken.
    pub ticks: u64,
}

impl CpuReport {
    /// `user_exit` and `user_enter` transitions.
    pub fn user_pairs(&self) -> (u64, u64) {
        let t = &self.local.stats.transitions;
        (
            t[Transition::UserExit as usize],
            t[Transition::UserEnter as usize],
        )
    }
}

static REPORTS: [spin::Mutex<Option<CpuReport>>; MAX_CPUS] =
    [const { spin::Mutex::new(None) }; MAX_CPUS];
static PARKED: AtomicUsize = AtomicUsize::new(0);
static DRIVER_DONE: AtomicBool = AtomicBool::new(false);
static mut SCENARIO: Option<(&'static Scenario, Options)> = None;

fn scenario() -> (&'static Scenario, Options) {
    // SAFETY: written once on the BSP before any AP starts.
    unsafe { (*core::ptr::addr_of!(SCENARIO)).expect("boot() first") }
}

/// Boots the machine and runs `sc` (called by the test kernel's `kernel_entry(start_info)`).
pub fn boot(start_info: u64, sc: &'static Scenario) -> ! {
    serial::init();
    let t0 = cpu::rdtsc();
    trace::T0.store(t0, Ordering::Relaxed);
    let si = cmdline::start_info(start_info);
    let opts = cmdline::parse(si.cmdline);
    if opts.nohz_full & 1 != 0 {
        panic!("command line: nohz_full must not include CPU 0 (the housekeeping CPU: timekeeping and RCU grace periods)");
    }
    // SAFETY: boot, one CPU.
    unsafe { *core::ptr::addr_of_mut!(SCENARIO) = Some((sc, opts)) };
    apic::disable_pic();
    cpu::idt_init();
    let (ids, n) = acpi::cpu_apic_ids(si.rsdp);
    if opts.nohz_full >> n != 0 {
        panic!(
            "command line: nohz_full={:#x} names CPUs beyond the {n} in the MADT",
            opts.nohz_full
        );
    }
    for (c, &id) in ids.iter().enumerate().take(n) {
        let layout = ctxtrack_core::CtLayout::new(u32::from(opts.ct_work), false);
        if let Some(fixed) = <cpu::MetalArch as ctxtrack_core::Arch>::CT_LAYOUT {
            assert!(
                fixed == layout,
                "command line: ct_work={}: this kernel was built for ct_work={} (cargo feature ct-work)",
                if opts.ct_work { "on" } else { "off" },
                if fixed.work_width() != 0 { "on" } else { "off" }
            );
        }
        percpu::init_cpu(c, id, opts.nohz_full & (1 << c) != 0, c, layout);
        sched::init_idle(c);
        if opts.ct && opts.nohz_full & (1 << c) != 0 {
            // context_tracking_init() via tick_nohz_init(): ct_cpu_track_user(cpu).
            ctxtrack_core::context_tracking::ct_cpu_track_user(
                &cpu(c).ct,
                &percpu::CONTEXT_TRACKING_KEY,
            );
        }
    }
    cpu::cpu_init(0);
    assert_eq!(apic::id(), ids[0], "the BSP is not the MADT's first CPU");
    sched::vtime_init(0);
    this_cpu().online.store(true, Ordering::Release);
    #[repr(C, align(16))]
    struct ApStacks([[u8; 65536]; MAX_CPUS]);
    static mut AP_STACKS: ApStacks = ApStacks([[0; 65536]; MAX_CPUS]);
    for (c, &id) in ids.iter().enumerate().take(n).skip(1) {
        // SAFETY: one AP at a time; CPU c's stack is its own.
        unsafe {
            let top = core::ptr::addr_of_mut!(AP_STACKS.0[c]) as u64 + 65536;
            boot::prepare_ap(c as u32, top);
        }
        apic::start_ap(id, (boot::TRAMPOLINE >> 12) as u8);
        let deadline = cpu::rdtsc() + 2_000_000_000;
        while !cpu(c).online.load(Ordering::Acquire) {
            if cpu::rdtsc() > deadline {
                panic!("CPU {c} (APIC ID {id}) did not come up after INIT-SIPI-SIPI");
            }
            core::hint::spin_loop();
        }
    }
    println!(
        "ctxtrack-kernel: {}: {n} CPUs (APIC IDs {:?}), cmdline \"{}\", nohz_full mask {:#x}, ct={}",
        sc.name,
        &ids[..n],
        si.cmdline,
        opts.nohz_full,
        if opts.ct { "on" } else { "off" }
    );
    (sc.setup)(&opts);
    for c in 1..n {
        apic::send_ipi(cpu(c).apic_id, apic::RESCHEDULE_VECTOR);
    }
    sched::tick_init();
    cpu::local_irq_enable();
    (sc.driver)(&opts);
    DRIVER_DONE.store(true, Ordering::Release);
    sched::cpu_idle_loop(cpu0_on_idle)
}

/// An AP's first Rust code, on its own stack, in long mode with the kernel GDT.
#[no_mangle]
extern "C" fn ap_entry(n: u32) -> ! {
    let n = n as usize;
    cpu::cpu_init(n);
    sched::vtime_init(n);
    sched::tick_init();
    this_cpu().online.store(true, Ordering::Release);
    sched::cpu_idle_loop(ap_on_idle)
}

fn ap_on_idle() {
    if sched::PARK.load(Ordering::Acquire) {
        park();
    }
}

fn cpu0_on_idle() {
    if DRIVER_DONE.load(Ordering::Acquire) && sched::LIVE.load(Ordering::Acquire) == 0 {
        finish();
    }
}

fn report() -> CpuReport {
    let c = this_cpu();
    let p = c.private();
    let now = cpu::rdtsc();
    let cur = sched::task(sched::current());
    // Conservation as the core defines it; the cycles vtime_task_switch() lost come on top.
    let (acc, el) = match p.local.cputime.check_conservation(now, &cur.vtime, c.id) {
        Ok(()) => {
            let el = p.local.cputime.vtime_since_ns.map_or(0, |s| now - s);
            (el, el)
        }
        Err(x) => x,
    };
    CpuReport {
        cpu: c.id,
        nohz_full: c.ct.active(),
        local: p.local.clone(),
        vtime: (acc + p.vtime_switch_gap, el),
        vtime_switch_gap: p.vtime_switch_gap,
        ticks: p.ticks,
    }
}

/// Reports and halts for good (IRQs off): the run is over.
fn park() -> ! {
    crate::apic::timer_stop();
    let r = report();
    let n = r.cpu;
    *REPORTS[n].lock() = Some(r);
    PARKED.fetch_add(1, Ordering::AcqRel);
    loop {
        // SAFETY: the end of this CPU.
        unsafe { core::arch::asm!("cli; hlt") };
    }
}

fn finish() -> ! {
    crate::apic::timer_stop();
    sched::PARK.store(true, Ordering::Release);
    let n = nr_cpus();
    for c in 1..n {
        apic::send_ipi(cpu(c).apic_id, apic::CALL_FUNCTION_SINGLE_VECTOR);
    }
    while PARKED.load(Ordering::Acquire) < n - 1 {
        core::hint::spin_loop();
    }
    *REPORTS[0].lock() = Some(report());
    let mut reports: [CpuReport; MAX_CPUS] = Default::default();
    for (c, r) in reports.iter_mut().enumerate().take(n) {
        *r = REPORTS[c].lock().take().expect("a parked CPU reported");
    }
    let reports = &reports[..n];
    let (sc, opts) = scenario();
    summary(reports);
    (sc.check)(&opts, reports);
    for r in reports {
        if let Some(v) = r.local.warn.first {
            panic!("CPU {}: violation {v:?}", r.cpu);
        }
        if r.vtime.0 != r.vtime.1 {
            panic!(
                "CPU {}: vtime accounted {} of {} cycles",
                r.cpu, r.vtime.0, r.vtime.1
            );
        }
    }
    // SAFETY: every other CPU is parked.
    unsafe { trace::dump() };
    qemu_exit(EXIT_SUCCESS)
}

/// The per-CPU summary (the shape of `ctxtrack run`'s table).
fn summary(reports: &[CpuReport]) {
    println!(
        "cpu  mode        user_exit user_enter  syscalls  timer u/k/i      ipi u/k/i   nmi u/k/i  tick_stops  rcu_ipis  vtime user/sys/idle (Mcyc)"
    );
    for r in reports {
        let c = cpu(r.cpu);
        let (ex, en) = r.user_pairs();
        let l = percpu::Counters::by_hit;
        let (t, i, m) = (l(&c.count.timer), l(&c.count.ipi), l(&c.count.nmi));
        let v = r.local.cputime.vtime_ns;
        println!(
            "{:>3}  {:<10} {:>10} {:>10} {:>9} {:>5}/{}/{:<5} {:>4}/{}/{:<4} {:>3}/{}/{:<3} {:>10} {:>9}  {}/{}/{}",
            r.cpu,
            if r.cpu == 0 { "housekeep" } else if r.nohz_full { "nohz_full" } else { "-" },
            ex,
            en,
            c.count.syscalls.load(Ordering::Relaxed),
            t[0], t[1], t[2],
            i[0], i[1], i[2],
            m[0], m[1], m[2],
            r.local.tick.stops,
            c.count.rcu_ipis.load(Ordering::Relaxed),
            v[0] / 1_000_000,
            v[1] / 1_000_000,
            v[3] / 1_000_000,
        );
    }
    println!(
        "rcu: {} grace periods, {} readers; violations: {}",
        rcu::completed(),
        rcu::READERS.load(Ordering::Relaxed),
        reports.iter().map(|r| r.local.warn.count).sum::<u32>()
    );
}
