//! Per-CPU data, reached through `%gs` (`this_cpu_ptr()`): one [`Cpu`] per CPU in a static array,
//! `GS_BASE` pointing at it for the CPU's whole life. The ring-3 programs never load `%gs`, so
//! there is no `swapgs` dance: `GS_BASE` is the kernel's in user mode too (a simplification over
//! Linux, which gives user space its own `%gs`).
//!
//! A [`Cpu`] has three kinds of fields:
//! - fixed-offset words the assembly entry code uses (`gs:0`, `gs:8`, `gs:16`);
//! - shared state other CPUs read or write with atomics: the core's [`ContextTracking`] and
//!   [`RcuCpu`] (a remote grace period snapshots them), the run queue (under its lock), the
//!   need-resched flag, counters;
//! - private state only this CPU touches ([`CpuPriv`], in an `UnsafeCell`): the core's
//!   [`CpuLocal`], the [`MetalArch`], the tick.

use crate::acpi::MAX_CPUS;
use crate::cpu::{MetalArch, Tss};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use ctxtrack_core::context_tracking::CpuLocal;
use ctxtrack_core::rcu::RcuCpu;
use ctxtrack_core::{ContextTracking, CtLayout, StaticKey};

/// `context_tracking_key`: enabled once per nohz_full CPU with `ct=on`.
pub static CONTEXT_TRACKING_KEY: StaticKey = StaticKey::new_false();

/// `TICK_NSEC` at HZ=1000.
pub const TICK_NSEC: u64 = 1_000_000;

/// Event counters of one CPU, readable from any CPU (relaxed; the tests read them once the CPU is
/// quiet).
#[derive(Default)]
pub struct Counters {
    /// Syscalls handled.
    pub syscalls: AtomicU64,
    /// Local timer interrupts, by where they hit: user, kernel, idle.
    pub timer: [AtomicU64; 3],
    /// Other IRQs (reschedule, call-function IPIs), by where they hit.
    pub ipi: [AtomicU64; 3],
    /// NMIs, by where they hit.
    pub nmi: [AtomicU64; 3],
    /// Breakpoints from user / from kernel.
    pub int3: [AtomicU64; 2],
    /// IPIs the RCU grace period sent to this CPU (`resched_cpu()` for a holdout).
    pub rcu_ipis: AtomicU64,
    /// Timer interrupts taken while the tick was stopped (must stay 0: a stopped tick is not
    /// re-armed until a dependency appears).
    pub timer_while_stopped: AtomicU64,
    /// Timer interrupts with no tick armed: an expiry latched by the APIC just before the tick
    /// was stopped with interrupts off, delivered when they came back on. No tick handler runs.
    pub timer_stale: AtomicU64,
    /// Context switches.
    pub switches: AtomicU64,
    /// Text pokes deferred to this CPU (`ct_set_cpu_work()` succeeded).
    pub work_deferred: AtomicU64,
    /// CALL_FUNCTION IPIs that ran a text poke's `sync_core()` here.
    pub work_ipis: AtomicU64,
    /// `arch_context_tracking_work()` calls (deferred `sync_core()`s run at kernel entry).
    pub work_flushes: AtomicU64,
    /// `syscalls` when the last flush ran: a flush at a syscall's entry runs before the
    /// syscall counts itself (after `enter_from_user_mode()`, before any instrumentable code).
    pub work_flush_at_syscall: AtomicU64,
}

impl Counters {
    /// One of the by-[`Hit`] arrays, read.
    pub fn by_hit(a: &[AtomicU64; 3]) -> [u64; 3] {
        a.each_ref().map(|x| x.load(Ordering::Relaxed))
    }

    /// Kernel entries from user mode other than syscalls: IRQs and breakpoints that hit ring 3
    /// (each is one user_exit/user_enter pair on a CPU that tracks user mode; NMIs are none).
    pub fn entries_from_user(&self) -> u64 {
        [&self.timer[0], &self.ipi[0], &self.int3[0]]
            .iter()
            .map(|x| x.load(Ordering::Relaxed))
            .sum()
    }
}

/// Where an interrupt hit, the index of [`Counters`]' arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// Ring 3.
    User = 0,
    /// Kernel, not the idle loop's EQS.
    Kernel = 1,
    /// The idle loop (between `ct_idle_enter` and `ct_idle_exit`).
    Idle = 2,
}

/// This CPU's private state.
pub struct CpuPriv {
    /// The core's private per-CPU data (tick, cputime, counters, violations).
    pub local: CpuLocal,
    /// The core's hardware hooks.
    pub arch: MetalArch,
    /// The TSS (`rsp0` = the current task's kernel stack).
    pub tss: Tss,
    /// The tick timer is armed.
    pub tick_armed: bool,
    /// Jiffies seen by this CPU's tick (only CPU 0 keeps time).
    pub ticks: u64,
    /// TSC cycles lost between the two clock reads of `vtime_task_switch()` (Linux loses them
    /// too); the vtime conservation check adds them back.
    pub vtime_switch_gap: u64,
    /// In the idle loop's EQS (for [`Hit`]).
    pub in_idle_eqs: bool,
}

/// One CPU.
#[repr(C, align(64))]
pub struct Cpu {
    /// `gs:0`: this structure's address.
    self_ptr: u64,
    /// `gs:8`: scratch for the user RSP in `entry_SYSCALL_64`.
    user_rsp: u64,
    /// `gs:16`: `cpu_current_top_of_stack`.
    pub kstack_top: u64,
    /// CPU number (0 = the BSP, the housekeeping CPU).
    pub id: usize,
    /// Local APIC ID.
    pub apic_id: u32,
    /// In `nohz_full=`.
    pub nohz_full: bool,
    /// Came online (set by the CPU itself).
    pub online: AtomicBool,
    /// `struct context_tracking` (remote grace periods read it).
    pub ct: ContextTracking,
    /// The RCU per-CPU data the entry hooks use (the grace period sets `rcu_urgent_qs`).
    pub rcu: RcuCpu,
    /// `TIF_NEED_RESCHED` of whatever runs here (set remotely by wakeups).
    pub need_resched: AtomicBool,
    /// The tick is stopped (`ts->tick_stopped`, mirrored for other CPUs to read).
    pub tick_stopped: AtomicBool,
    /// A text poke queued its `sync_core()` for this CPU's CALL_FUNCTION IPI.
    pub sync_queued: AtomicBool,
    /// Index of `current` in the task table.
    pub current: AtomicUsize,
    /// The run queue.
    pub rq: spin::Mutex<crate::sched::RunQueue>,
    /// Counters.
    pub count: Counters,
    /// Private state.
    private: UnsafeCell<CpuPriv>,
}

// SAFETY: shared fields are atomics or locked; `private` is only reached by the owning CPU
// (see `Cpu::private`).
unsafe impl Sync for Cpu {}

static mut CPUS: [MaybeUninit<Cpu>; MAX_CPUS] = [const { MaybeUninit::uninit() }; MAX_CPUS];
static NR_CPUS: AtomicUsize = AtomicUsize::new(0);

/// Initialises CPU `id`'s data (the BSP, for every CPU, before any AP starts).
pub fn init_cpu(id: usize, apic_id: u32, nohz_full: bool, idle_task: usize, layout: CtLayout) {
    assert!(id < MAX_CPUS);
    let c = Cpu {
        self_ptr: 0,
        user_rsp: 0,
        kstack_top: 0,
        id,
        apic_id,
        nohz_full,
        online: AtomicBool::new(false),
        ct: ContextTracking::with_layout(layout),
        rcu: RcuCpu::default(),
        need_resched: AtomicBool::new(false),
        tick_stopped: AtomicBool::new(false),
        sync_queued: AtomicBool::new(false),
        current: AtomicUsize::new(idle_task),
        rq: spin::Mutex::new(crate::sched::RunQueue::new()),
        count: Counters::default(),
        private: UnsafeCell::new(CpuPriv {
            local: CpuLocal::new(TICK_NSEC),
            arch: MetalArch::new(id),
            tss: Tss::new(),
            tick_armed: false,
            ticks: 0,
            vtime_switch_gap: 0,
            in_idle_eqs: false,
        }),
    };
    // SAFETY: boot, before CPU `id` runs and before anyone reads the slot.
    unsafe {
        let slot = (*core::ptr::addr_of_mut!(CPUS))[id].as_mut_ptr();
        slot.write(c);
        (*slot).self_ptr = slot as u64;
    }
    NR_CPUS.fetch_max(id + 1, Ordering::Release);
}

/// Number of CPUs initialised.
pub fn nr_cpus() -> usize {
    NR_CPUS.load(Ordering::Acquire)
}

/// CPU `n`.
pub fn cpu(n: usize) -> &'static Cpu {
    assert!(n < nr_cpus(), "CPU {n} does not exist");
    // SAFETY: initialised by init_cpu() (NR_CPUS is published after the write).
    unsafe { (*core::ptr::addr_of!(CPUS))[n].assume_init_ref() }
}

/// Points `GS_BASE` at CPU `n`'s data (on CPU `n`, at bring-up).
pub fn load_gs(n: usize) {
    let p = cpu(n) as *const Cpu as u64;
    // SAFETY: IA32_GS_BASE; the structure lives forever.
    unsafe { crate::cpu::wrmsr(0xc000_0101, p) };
}

/// This CPU (`this_cpu_ptr()`), from `gs:0`.
#[inline(always)]
pub fn this_cpu() -> &'static Cpu {
    let p: u64;
    // SAFETY: GS_BASE points at a live Cpu from bring-up on (load_gs()).
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        &*(p as *const Cpu)
    }
}

impl Cpu {
    /// This CPU's private state.
    ///
    /// Only the owning CPU may call this (checked), and callers keep the borrow short: an NMI
    /// may take it again in the middle, and touches only the core's counters and the NMI nesting
    /// there, which the interrupted code does not hold in registers across the entry point calls.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub fn private(&self) -> &mut CpuPriv {
        debug_assert!(core::ptr::eq(self, this_cpu()));
        // SAFETY: see above.
        unsafe { &mut *self.private.get() }
    }

    /// `set_tsk_need_resched()`/`resched_curr()` for this CPU's current task.
    pub fn set_need_resched(&self) {
        self.need_resched.store(true, Ordering::Release);
    }
}
