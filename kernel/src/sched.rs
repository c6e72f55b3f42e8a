//! Tasks and a small scheduler: per-CPU run queues (round robin, no migration: a task stays on
//! the CPU it was spawned on, like a task pinned with `taskset`), blocking and wakeups with
//! reschedule IPIs, `exit_to_user_mode_loop()`, the idle loop with its RCU EQS, and the nohz tick
//! (`tick_sched_timer()`, `tick_nohz_full_update_tick()`).
//!
//! Locking: a run queue and the `state`/`current` pair it decides are only changed under the
//! run queue's lock, with IRQs off (the tick takes it too). A task's own data (`vtime`, `ksp`) is
//! touched only by the CPU it belongs to.

use crate::cpu::{self, ct_entry, local_irq_disable, rdtsc};
use crate::percpu::{cpu, nr_cpus, this_cpu, Hit, TICK_NSEC};
use crate::trace::Ev;
use core::arch::naked_asm;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use ctxtrack_core::entry::exit_to_user_mode;
use ctxtrack_core::tick::{can_stop_full_tick, TickDepBit, TickDeps};
use ctxtrack_core::vtime::{vtime_task_switch, VtimeState};
use ctxtrack_core::{Ct, TaskVtime};

/// Most tasks (idle tasks included).
pub const MAX_TASKS: usize = 64;
const KSTACK: usize = 16384;
const USTACK: usize = 16384;

/// `TASK_RUNNING` (on a CPU or in its run queue), `TASK_INTERRUPTIBLE`, `EXIT_DEAD`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Runnable or running.
    Running = 0,
    /// Waiting for a wakeup.
    Blocked = 1,
    /// Exited.
    Dead = 2,
}

/// A task: a ring-3 program with its kernel stack, or a CPU's idle task.
pub struct Task {
    /// PID (0 for idle tasks, as in Linux).
    pub pid: u32,
    /// `comm`.
    pub comm: &'static str,
    /// The CPU it runs on.
    pub cpu: usize,
    /// `is_idle_task()`.
    pub idle: bool,
    /// [`TaskState`].
    pub state: AtomicU8,
    /// Saved kernel RSP while switched out.
    ksp: u64,
    /// Top of its kernel stack (`rsp0` while it runs).
    pub kstack_top: u64,
    /// The vtime the core keeps for it.
    pub vtime: TaskVtime,
    /// Ring-3 entry point and its argument (`rdi`).
    entry: u64,
    arg: u64,
    ustack_top: u64,
}

#[repr(C, align(16))]
struct Stacks<const N: usize>([[u8; N]; MAX_TASKS]);
static mut KSTACKS: Stacks<KSTACK> = Stacks([[0; KSTACK]; MAX_TASKS]);
static mut USTACKS: Stacks<USTACK> = Stacks([[0; USTACK]; MAX_TASKS]);
static mut TASKS: [MaybeUninit<Task>; MAX_TASKS] = [const { MaybeUninit::uninit() }; MAX_TASKS];
static NR_TASKS: AtomicUsize = AtomicUsize::new(0);

/// User tasks not yet exited.
pub static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Task `i`. Its fields other than `state` belong to the CPU it runs on (see the module doc).
#[allow(clippy::mut_from_ref)]
pub fn task(i: usize) -> &'static mut Task {
    assert!(i < NR_TASKS.load(Ordering::Acquire), "no task {i}");
    // SAFETY: initialised before NR_TASKS was raised past it; ownership per the module doc.
    unsafe { (*core::ptr::addr_of_mut!(TASKS))[i].assume_init_mut() }
}

fn alloc(t: Task) -> usize {
    let i = NR_TASKS.load(Ordering::Relaxed);
    assert!(i < MAX_TASKS, "more than {MAX_TASKS} tasks");
    // SAFETY: boot-time spawning on the BSP only; slot i is unused.
    unsafe { (*core::ptr::addr_of_mut!(TASKS))[i].as_mut_ptr().write(t) };
    NR_TASKS.store(i + 1, Ordering::Release);
    i
}

/// Creates CPU `n`'s idle task (task `n`, `swapper/n`), running on the CPU's boot stack.
pub fn init_idle(n: usize) -> usize {
    const NAMES: [&str; 8] = [
        "swapper/0",
        "swapper/1",
        "swapper/2",
        "swapper/3",
        "swapper/4",
        "swapper/5",
        "swapper/6",
        "swapper/7",
    ];
    let i = alloc(Task {
        pid: 0,
        comm: NAMES[n],
        cpu: n,
        idle: true,
        state: AtomicU8::new(TaskState::Running as u8),
        ksp: 0,
        kstack_top: 0,
        vtime: TaskVtime::default(),
        entry: 0,
        arg: 0,
        ustack_top: 0,
    });
    assert_eq!(i, n, "idle tasks first");
    i
}

/// Spawns a ring-3 task on `cpu_nr` running `entry(arg)`; it starts through `ret_from_fork`.
pub fn spawn(comm: &'static str, cpu_nr: usize, entry: extern "C" fn(u64) -> !, arg: u64) -> usize {
    assert!(
        cpu_nr < nr_cpus(),
        "spawn {comm} on CPU {cpu_nr}: no such CPU"
    );
    let i = NR_TASKS.load(Ordering::Relaxed);
    // SAFETY: stack i belongs to task i only.
    let (ktop, utop) = unsafe {
        (
            core::ptr::addr_of_mut!(KSTACKS.0[i]) as u64 + KSTACK as u64,
            core::ptr::addr_of_mut!(USTACKS.0[i]) as u64 + USTACK as u64,
        )
    };
    // The initial frame switch_to() pops: six callee-saved registers, then ret_from_fork_asm.
    let ksp = ktop - 8 * 8;
    // SAFETY: the top of task i's fresh kernel stack.
    unsafe {
        let f = ksp as *mut u64;
        for k in 0..6 {
            f.add(k).write(0);
        }
        f.add(6).write(ret_from_fork_asm as *const () as u64);
        f.add(7).write(0);
    }
    let i = alloc(Task {
        pid: 100 + i as u32,
        comm,
        cpu: cpu_nr,
        idle: false,
        state: AtomicU8::new(TaskState::Running as u8),
        ksp,
        kstack_top: ktop,
        vtime: TaskVtime::default(),
        entry: entry as *const () as u64,
        arg,
        ustack_top: utop - 8,
    });
    LIVE.fetch_add(1, Ordering::AcqRel);
    let c = cpu(cpu_nr);
    irqsave(|| c.rq.lock().push(i));
    c.set_need_resched();
    i
}

/// Runs `f` with IRQs off, restoring the previous state (`local_irq_save/restore`).
pub fn irqsave<R>(f: impl FnOnce() -> R) -> R {
    let was_off = cpu::irqs_disabled();
    local_irq_disable();
    let r = f();
    if !was_off {
        cpu::local_irq_enable();
    }
    r
}

/// A run queue: the runnable tasks of one CPU that are not running.
pub struct RunQueue {
    q: [u8; MAX_TASKS],
    head: usize,
    len: usize,
}

impl RunQueue {
    /// Empty.
    pub const fn new() -> RunQueue {
        RunQueue {
            q: [0; MAX_TASKS],
            head: 0,
            len: 0,
        }
    }
    /// Enqueue at the tail.
    pub fn push(&mut self, t: usize) {
        assert!(self.len < MAX_TASKS);
        self.q[(self.head + self.len) % MAX_TASKS] = t as u8;
        self.len += 1;
    }
    /// Dequeue the head.
    pub fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let t = self.q[self.head] as usize;
        self.head = (self.head + 1) % MAX_TASKS;
        self.len -= 1;
        Some(t)
    }
    /// No task waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for RunQueue {
    fn default() -> Self {
        RunQueue::new()
    }
}

// ---------------------------------------------------------------------------- schedule

/// `schedule()` (IRQs off): requeue `current` if still runnable, run the head of the queue or the
/// idle task.
pub fn schedule() {
    local_irq_disable();
    let c = this_cpu();
    c.need_resched.store(false, Ordering::Relaxed);
    let prev = c.current.load(Ordering::Relaxed);
    let next = {
        let mut rq = c.rq.lock();
        let pt = task(prev);
        if !pt.idle && pt.state.load(Ordering::Acquire) == TaskState::Running as u8 {
            rq.push(prev);
        }
        let next = rq.pop().unwrap_or(c.id);
        c.current.store(next, Ordering::Relaxed);
        next
    };
    // rcu_note_context_switch(): a quiescent state for this CPU.
    crate::rcu::rcu_qs();
    if next != prev {
        context_switch(prev, next);
    }
}

fn context_switch(prev: usize, next: usize) {
    let c = this_cpu();
    c.count.switches.fetch_add(1, Ordering::Relaxed);
    crate::trace::emit_as(prev, Ev::Switch { prev, next });
    let p = c.private();
    let (pt, nt) = (task(prev), task(next));
    if c.ct.active() {
        // finish_task_switch() -> vtime_task_switch(prev), here before the stack switch.
        let mut ct = Ct::from_parts(
            &crate::percpu::CONTEXT_TRACKING_KEY,
            &c.ct,
            &c.rcu,
            &mut p.local,
            &mut pt.vtime,
            &mut p.arch,
        );
        vtime_task_switch(&mut ct, &mut nt.vtime, nt.idle);
        p.vtime_switch_gap += nt.vtime.vtime.starttime - pt.vtime.vtime.starttime;
    }
    p.arch.idle = nt.idle;
    if !nt.idle {
        cpu::set_kernel_stack(nt.kstack_top);
    }
    // SAFETY: prev's ksp slot is written before next's stack is used; next's ksp was saved
    // by its own switch_to() or built by spawn().
    unsafe { switch_to(&mut pt.ksp, nt.ksp) };
    cpu::check("context_switch");
}

/// `__switch_to_asm`: save callee-saved registers and RSP in `*prev_ksp`, load `next_ksp`.
#[unsafe(naked)]
unsafe extern "C" fn switch_to(prev_ksp: *mut u64, next_ksp: u64) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// `ret_from_fork_asm`: a new task's first instructions, on its own kernel stack.
#[unsafe(naked)]
extern "C" fn ret_from_fork_asm() {
    naked_asm!("and rsp, -16", "call {f}", "ud2", f = sym ret_from_fork)
}

/// `ret_from_fork()`: `syscall_exit_to_user_mode()` for a task that never entered: the work loop,
/// `exit_to_user_mode()` (its first `user_enter` with no `user_exit` before it, as in Linux),
/// then `IRETQ` to its entry point in ring 3 with IRQs on.
extern "C" fn ret_from_fork() -> ! {
    exit_to_user_mode_loop();
    ct_entry("ret_from_fork", exit_to_user_mode);
    let t = task(this_cpu().current.load(Ordering::Relaxed));
    // SAFETY: a well-formed IRETQ frame to ring 3; user code and stacks are mapped U.
    unsafe {
        core::arch::asm!(
            "push {ss}", "push {usp}", "push {fl}", "push {cs}", "push {ip}", "iretq",
            ss = in(reg) cpu::USER_DS, usp = in(reg) t.ustack_top, fl = in(reg) 0x202u64,
            cs = in(reg) cpu::USER_CS, ip = in(reg) t.entry, in("rdi") t.arg,
            options(noreturn)
        )
    }
}

/// `exit_to_user_mode_loop()` (IRQs off): schedule while `TIF_NEED_RESCHED` is set.
pub fn exit_to_user_mode_loop() {
    while this_cpu().need_resched.load(Ordering::Acquire) {
        schedule();
    }
}

/// Blocks `current` (`set_current_state(TASK_INTERRUPTIBLE)` was done by the caller under its
/// wait lock) and runs something else until woken.
pub fn block() {
    irqsave(schedule);
}

/// Marks `current` as about to sleep (call under the lock that wakers take).
pub fn set_current_blocked() {
    let t = task(this_cpu().current.load(Ordering::Relaxed));
    t.state.store(TaskState::Blocked as u8, Ordering::Release);
}

/// The running task's index.
pub fn current() -> usize {
    this_cpu().current.load(Ordering::Relaxed)
}

/// `try_to_wake_up()`: make task `i` runnable on its CPU and tell that CPU (`resched_curr()`, a
/// reschedule IPI when remote).
pub fn wake_up(i: usize) {
    let t = task(i);
    let c = cpu(t.cpu);
    let woke = irqsave(|| {
        let mut rq = c.rq.lock();
        let ok = t
            .state
            .compare_exchange(
                TaskState::Blocked as u8,
                TaskState::Running as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        // Still on its CPU on the way to schedule(): it will see Running and keep going.
        if ok && c.current.load(Ordering::Relaxed) != i {
            rq.push(i);
        }
        ok
    });
    if woke {
        c.set_need_resched();
        if c.id != this_cpu().id {
            crate::apic::send_ipi(c.apic_id, crate::apic::RESCHEDULE_VECTOR);
        }
    }
}

/// `do_exit()`: the task is dead; run something else, never return.
pub fn do_exit() -> ! {
    local_irq_disable();
    let t = task(current());
    t.state.store(TaskState::Dead as u8, Ordering::Release);
    if LIVE.fetch_sub(1, Ordering::AcqRel) == 1 {
        // The last one: CPU 0 finishes the run from its idle loop.
        crate::apic::send_ipi(cpu(0).apic_id, crate::apic::CALL_FUNCTION_SINGLE_VECTOR);
    }
    schedule();
    unreachable!("a dead task was scheduled");
}

// ---------------------------------------------------------------------------- idle

/// Set to make every CPU but 0 park (report its state and halt) at its next idle-loop pass.
pub static PARK: AtomicBool = AtomicBool::new(false);

/// `do_idle()` / `cpu_idle_loop`: run tasks while any is runnable; otherwise stop the tick if
/// allowed (`tick_nohz_idle_stop_tick()`), enter the RCU EQS (`ct_idle_enter()`), `sti; hlt`,
/// leave it (`ct_idle_exit()`).
pub fn cpu_idle_loop(on_idle: fn()) -> ! {
    let c = this_cpu();
    loop {
        local_irq_disable();
        on_idle();
        while c.need_resched.load(Ordering::Acquire) {
            schedule();
        }
        tick_nohz_update_tick(true);
        c.private().in_idle_eqs = true;
        ct_entry("ct_idle_enter", |ct| ct.ct_idle_enter());
        // SAFETY: sti's shadow covers hlt: an IRQ pending now wakes the hlt, none is lost.
        unsafe { core::arch::asm!("sti; hlt; cli", options(nomem, nostack)) };
        ct_entry("ct_idle_exit", |ct| ct.ct_idle_exit());
        c.private().in_idle_eqs = false;
    }
}

/// Starts vtime on a CPU that tracks user mode: the idle task accounts idle time from now
/// (`vtime_init_idle()`).
pub fn vtime_init(n: usize) {
    let c = this_cpu();
    if c.ct.active() {
        let t = task(n);
        ctxtrack_core::vtime::vtime_init_idle(
            &mut t.vtime,
            &mut c.private().local.cputime,
            n,
            rdtsc(),
        );
        debug_assert_eq!(t.vtime.vtime.state, VtimeState::Idle);
    }
}

// ---------------------------------------------------------------------------- tick

fn tick_arm() {
    let p = this_cpu().private();
    crate::apic::timer_oneshot(TICK_NSEC);
    p.tick_armed = true;
}

/// Starts this CPU's tick.
pub fn tick_init() {
    tick_arm();
}

/// `tick_sched_timer()` → `tick_sched_handle()`: `scheduler_tick()` (round robin when another task
/// waits), `rcu_sched_clock_irq()` (a tick from user or idle is a quiescent state), the grace
/// period on the housekeeping CPU. Re-arming is `tick_nohz_update_tick()`'s decision.
pub fn tick_sched_timer(at: Hit) {
    let c = this_cpu();
    let p = c.private();
    p.tick_armed = false;
    if p.local.tick.tick_stopped {
        c.count.timer_while_stopped.fetch_add(1, Ordering::Relaxed);
    }
    p.ticks += 1;
    if !c.rq.lock().is_empty() {
        c.set_need_resched();
    }
    // rcu_sched_clock_irq(user): a tick from user mode, or one that interrupted the idle loop at
    // the first interrupt level while RCU was not watching, is a quiescent state.
    if at == Hit::User || ctxtrack_core::rcu::rcu_is_cpu_rrupt_from_idle(&c.ct) {
        crate::rcu::rcu_qs();
    }
    if c.id == 0 {
        crate::rcu::rcu_gp_tick();
    }
}

/// `tick_nohz_full_update_tick()` / `tick_nohz_idle_stop_tick()`: CPU 0 keeps time and runs the
/// grace periods, so its tick never stops; another CPU stops its tick when it is nohz_full (or
/// idle) and `can_stop_full_tick()` finds no dependency (`SCHED`: another task waits; `RCU`: the
/// grace period forced it), and restarts it when one appears. A stopped tick is not re-armed.
pub fn tick_nohz_update_tick(idle: bool) {
    let c = this_cpu();
    if c.id == 0 || !(c.ct.active() || idle) {
        if !c.private().tick_armed {
            tick_arm();
        }
        return;
    }
    let p = c.private();
    // rcu_disable_urgency_upon_qs(): the grace period got what it wanted; drop the forced tick.
    if c.rcu.forced_tick() && !c.rcu.urgent_qs() {
        c.rcu.set_forced_tick(false);
        p.local.tick.tick_nohz_dep_clear_cpu(TickDepBit::Rcu);
    }
    let waiting = !c.rq.lock().is_empty();
    let deps = TickDeps {
        cpu: p.local.tick.tick_dep_mask,
        task: if waiting { TickDepBit::Sched.mask() } else { 0 },
        ..TickDeps::default()
    };
    match can_stop_full_tick(true, deps) {
        Ok(()) => {
            if p.tick_armed {
                crate::apic::timer_stop();
                p.tick_armed = false;
            }
            if p.local.tick.update(true) == Some(true) {
                c.tick_stopped.store(true, Ordering::Release);
                crate::trace::emit(Ev::TickStop(None));
            }
        }
        Err(dep) => {
            if !p.tick_armed {
                tick_arm();
            }
            if p.local.tick.update(false) == Some(false) {
                c.tick_stopped.store(false, Ordering::Release);
                crate::trace::emit(Ev::TickStop(Some(dep)));
            }
        }
    }
}
