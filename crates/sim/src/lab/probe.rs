//! Runs exactly one entry path of a design on a staged CPU and reports what it did.
//!
//! The per-path figures of `ctxtrack compare` and the design tests come from here: they are
//! counted by executing the design's steps on the same machine as every run, never written down.
//! The machine has two CPUs (CPU 1 nohz_full when context tracking is on), no ticks, no RCU
//! background work; CPU 1 runs one `getpid()` loop task (or only its idle task), the probe stages
//! the starting state, injects one event and steps CPU 1 until that entry has been left.

use crate::config::{Config, CpuSet};
use crate::design::Design;
use crate::machine::program::{Program, Then};
use crate::machine::{Machine, Mode, Vector};
use ctxtrack_core::stats::{Prim, Transition};
use serde::Serialize;

/// Which path to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// One `getpid()` from user mode.
    Syscall,
    /// One reschedule IPI that interrupts user mode.
    IrqFromUser,
    /// One reschedule IPI that interrupts the halted idle loop.
    IrqFromIdle,
    /// One reschedule IPI that interrupts a syscall body (IRQs on, RCU watching).
    IrqFromKernel,
    /// One page fault from user mode.
    ExceptionFromUser,
    /// One NMI that interrupts user mode.
    Nmi,
}

impl Probe {
    /// All probes, in report order.
    pub const ALL: [Probe; 6] = [
        Probe::Syscall,
        Probe::IrqFromUser,
        Probe::IrqFromIdle,
        Probe::IrqFromKernel,
        Probe::ExceptionFromUser,
        Probe::Nmi,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Syscall => "syscall",
            Probe::IrqFromUser => "irq_from_user",
            Probe::IrqFromIdle => "irq_from_idle",
            Probe::IrqFromKernel => "irq_from_kernel",
            Probe::ExceptionFromUser => "exception_from_user",
            Probe::Nmi => "nmi",
        }
    }
}

/// What one path did on the probed CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PathCounts {
    /// Context-tracking API calls.
    pub ct_calls: u64,
    /// Of those, made while the key was off.
    pub ct_calls_inactive: u64,
    /// RCU hook calls.
    pub rcu_hooks: u64,
    /// vtime hook calls.
    pub vtime_hooks: u64,
    /// IRQ save/restore pairs inside context tracking.
    pub irq_save_restore: u64,
    /// Static-branch tests.
    pub static_branches: u64,
    /// Fully ordered atomic RMWs on the state word.
    pub atomics: u64,
    /// `user_exit` transitions.
    pub user_exit: u64,
    /// `user_enter` transitions.
    pub user_enter: u64,
    /// Modeled cycles of entry/exit steps (all entry kinds).
    pub entry_cycles: u64,
    /// Modeled cycles of context-tracking primitives.
    pub ct_cycles: u64,
    /// Non-branch steps executed.
    pub steps: u64,
    /// Invariant violations seen.
    pub violations: u64,
}

const PROBE_CPU: usize = 1;
const STEP_LIMIT: u32 = 10_000;

fn machine(design: &'static Design, ct_on: bool, with_task: bool) -> Machine {
    let mut cfg = Config::new(design);
    cfg.cpus = 2;
    cfg.nohz_full = CpuSet(1 << PROBE_CPU);
    cfg.ct_on = ct_on;
    cfg.rcu_cb_interval_ns = None;
    cfg.stop_on_violation = false;
    let mut m = Machine::new(cfg);
    if with_task {
        m.spawn(
            "probe",
            Program::SyscallStorm {
                user_ns: 1_000,
                remaining: None,
            },
            PROBE_CPU,
        );
    }
    m.stop_periodic_ticks();
    m
}

fn step_until(
    m: &mut Machine,
    what: &str,
    mut done: impl FnMut(&Machine) -> bool,
) -> Result<(), String> {
    for _ in 0..STEP_LIMIT {
        if done(m) {
            return Ok(());
        }
        m.advance(PROBE_CPU);
    }
    Err(format!(
        "probe: CPU {PROBE_CPU} did not reach {what} within {STEP_LIMIT} events"
    ))
}

fn in_user(m: &Machine) -> bool {
    let c = &m.cpus()[PROBE_CPU];
    c.mode == Mode::User && c.current != c.idle_task
}

fn entries(m: &Machine) -> usize {
    m.tasks()[m.cpus()[PROBE_CPU].current].entries.len()
}

/// Runs `probe` under `design` and returns its counts.
pub fn run_probe(design: &'static Design, probe: Probe, ct_on: bool) -> Result<PathCounts, String> {
    let mut m = machine(design, ct_on, probe != Probe::IrqFromIdle);
    if probe == Probe::IrqFromIdle {
        step_until(&mut m, "the halted idle loop", |m| {
            m.cpus()[PROBE_CPU].mode == Mode::Halted
        })?;
    } else {
        step_until(&mut m, "user mode", in_user)?;
    }
    if probe == Probe::IrqFromKernel {
        // Enter a syscall and stop right before its body, with IRQs on.
        m.end_user_burst(PROBE_CPU);
        step_until(&mut m, "a syscall body", |m| {
            let cpu = &m.cpus()[PROBE_CPU];
            let t = &m.tasks()[cpu.current];
            cpu.mode == Mode::Kernel
                && cpu.hw.irqs_on
                && t.frames
                    .last()
                    .is_some_and(|f| std::ptr::eq(f.path, &crate::os::SYSCALL_BODY) && f.pc == 2)
        })?;
    }
    let before = snapshot(&m);
    let base = entries(&m);
    match probe {
        Probe::Syscall => m.end_user_burst(PROBE_CPU),
        Probe::ExceptionFromUser => m.end_user_burst_then(PROBE_CPU, Then::Fault),
        Probe::Nmi => m.raise_nmi(PROBE_CPU),
        Probe::IrqFromUser | Probe::IrqFromIdle | Probe::IrqFromKernel => {
            m.raise_irq(PROBE_CPU, Vector::Reschedule)
        }
    }
    // One event enters the kernel; then step until that entry is gone again.
    m.advance(PROBE_CPU);
    if entries(&m) <= base {
        return Err(format!(
            "probe {}: the injected event did not enter the kernel",
            probe.name()
        ));
    }
    step_until(&mut m, "the end of the entry", |m| entries(m) == base)?;
    let after = snapshot(&m);
    Ok(diff(&after, &before))
}

fn snapshot(m: &Machine) -> PathCounts {
    let cpu = &m.cpus()[PROBE_CPU];
    let s = &cpu.pcpu.local.stats;
    PathCounts {
        ct_calls: s.ct_calls,
        ct_calls_inactive: s.ct_calls_inactive,
        rcu_hooks: s.rcu_hooks,
        vtime_hooks: s.vtime_hooks,
        irq_save_restore: s.prims[Prim::IrqSaveRestore as usize],
        static_branches: s.static_branch_taken + s.static_branch_not_taken,
        atomics: s.prims[Prim::AtomicRmw as usize],
        user_exit: s.transitions[Transition::UserExit as usize],
        user_enter: s.transitions[Transition::UserEnter as usize],
        entry_cycles: cpu.counters.entry_cycles.iter().sum(),
        ct_cycles: cpu.counters.ct_cycles.iter().sum(),
        steps: cpu.counters.steps,
        violations: m.monitor().count,
    }
}

fn diff(a: &PathCounts, b: &PathCounts) -> PathCounts {
    PathCounts {
        ct_calls: a.ct_calls - b.ct_calls,
        ct_calls_inactive: a.ct_calls_inactive - b.ct_calls_inactive,
        rcu_hooks: a.rcu_hooks - b.rcu_hooks,
        vtime_hooks: a.vtime_hooks - b.vtime_hooks,
        irq_save_restore: a.irq_save_restore - b.irq_save_restore,
        static_branches: a.static_branches - b.static_branches,
        atomics: a.atomics - b.atomics,
        user_exit: a.user_exit - b.user_exit,
        user_enter: a.user_enter - b.user_enter,
        entry_cycles: a.entry_cycles - b.entry_cycles,
        ct_cycles: a.ct_cycles - b.ct_cycles,
        steps: a.steps - b.steps,
        violations: a.violations - b.violations,
    }
}
