//! Generic entry has two sources: the step list the simulator runs (`designs/generic-entry.c`,
//! interruptible between any two steps) and `ctxtrack_core::entry` (one call per function, for
//! the host backend and the bare-metal kernel). These tests prove they make the same core calls
//! in the same order for every entry kind: from the same CPU state, every state the core
//! functions pass through (state word, nesting, every primitive and transition counter) is a
//! state the simulator's path passes through too, in the same order, and both end in the same
//! one.

use crate::config::{Config, CpuSet};
use crate::driver::Exception;
use crate::machine::program::Program;
use crate::machine::{preempt, CpuId, Hw, Machine, Mode, Vector};
use ctxtrack_core::entry::{
    enter_from_user_mode, exit_to_user_mode, irqentry_enter, irqentry_exit, irqentry_nmi_enter,
    irqentry_nmi_exit,
};
use ctxtrack_core::{Arch, Ct, PerCpu, TaskVtime};

/// What the core's calls leave behind that the comparison looks at (not clocks or vtime
/// amounts: the simulator's steps take time, the direct calls do not).
#[derive(Clone, Debug, PartialEq, Eq)]
struct CoreView {
    word: u32,
    nesting: i64,
    nmi_nesting: i64,
    prims: [u64; ctxtrack_core::stats::PRIM_COUNT],
    transitions: [u64; ctxtrack_core::stats::TRANSITION_COUNT],
    ct_calls: u64,
    rcu_hooks: u64,
    vtime_hooks: u64,
    warnings: u32,
}

fn view(p: &PerCpu) -> CoreView {
    let s = &p.local.stats;
    CoreView {
        word: p.ct.state_word(),
        nesting: p.ct.nesting(),
        nmi_nesting: p.ct.nmi_nesting(),
        prims: s.prims,
        transitions: s.transitions,
        ct_calls: s.ct_calls,
        rcu_hooks: s.rcu_hooks,
        vtime_hooks: s.vtime_hooks,
        warnings: p.local.warn.count,
    }
}

/// CPU 1 runs a `getpid()` loop under nohz_full; CPU 2 has nothing to run (its idle loop).
fn machine() -> Machine {
    let generic = crate::design::by_name("generic-entry").unwrap();
    let mut m = Machine::new(Config::timeless(generic, 3, CpuSet(0b110)));
    let prog = Program::SyscallStorm {
        user_ns: 1_000,
        remaining: None,
    };
    let w = m.spawn("getpid", prog, 1);
    m.tasks[w].pinned = Some(1);
    m
}

/// Advances CPU `c` until `done`, recording the core's view after every step (consecutive
/// duplicates dropped).
fn run_until(m: &mut Machine, c: CpuId, done: impl Fn(&Machine) -> bool) -> Vec<CoreView> {
    let mut seen = vec![view(&m.cpus[c].pcpu)];
    for _ in 0..10_000 {
        if done(m) {
            return seen;
        }
        m.sync_clocks_drop_timers();
        m.advance(c);
        let v = view(&m.cpus[c].pcpu);
        if seen.last() != Some(&v) {
            seen.push(v);
        }
    }
    panic!("CPU {c} did not get there in 10,000 steps");
}

fn in_user(m: &Machine, c: CpuId) -> bool {
    m.cpus[c].mode == Mode::User
}

fn halted(m: &Machine, c: CpuId) -> bool {
    m.cpus[c].mode == Mode::Halted
}

/// The same CPU state for direct calls: the simulator's per-CPU data, hardware and `current`'s
/// vtime, copied.
struct Direct {
    key: ctxtrack_core::StaticKey,
    pcpu: PerCpu,
    vtime: TaskVtime,
    hw: Hw,
    seen: Vec<CoreView>,
}

impl Direct {
    fn of(m: &Machine, c: CpuId) -> Direct {
        let cpu = &m.cpus[c];
        Direct {
            key: m.key.clone(),
            pcpu: cpu.pcpu.clone(),
            vtime: m.tasks[cpu.current].vtime.clone(),
            hw: cpu.hw.clone(),
            seen: vec![view(&cpu.pcpu)],
        }
    }

    /// Runs one core call (or an arch operation between them) and records the view.
    fn call(&mut self, f: impl FnOnce(&mut Ct<'_, Hw>)) {
        let mut ct = Ct::new(&self.key, &mut self.pcpu, &mut self.vtime, &mut self.hw);
        f(&mut ct);
        let v = view(&self.pcpu);
        if self.seen.last() != Some(&v) {
            self.seen.push(v);
        }
    }
}

impl Direct {
    /// `irqentry_nmi_enter()` and `irqentry_nmi_exit()` inside `__nmi_enter()` /
    /// `__nmi_exit()` (the preempt count's NMI bits are the driver's, as in the bare-metal
    /// kernel's `nmi_like()`).
    fn nmi_pair(&mut self) {
        self.hw.preempt_count += preempt::NMI_OFFSET + preempt::HARDIRQ_OFFSET;
        self.call(irqentry_nmi_enter);
        self.call(irqentry_nmi_exit);
        self.hw.preempt_count -= preempt::NMI_OFFSET + preempt::HARDIRQ_OFFSET;
    }
}

/// `core` (the direct calls' views) is `sim` with steps left out: same start, same end, same
/// order.
fn assert_refines(what: &str, sim: &[CoreView], core: &[CoreView]) {
    assert_eq!(sim.first(), core.first(), "{what}: different starts");
    assert_eq!(
        sim.last(),
        core.last(),
        "{what}: the simulator's path and ctxtrack_core::entry end in different states\nsim:  {sim:#?}\ncore: {core:#?}"
    );
    let mut it = sim.iter();
    for (i, v) in core.iter().enumerate() {
        assert!(
            it.any(|s| s == v),
            "{what}: core state {i} ({v:?}) is not reached by the simulator's path in order\nsim:  {sim:#?}\ncore: {core:#?}"
        );
    }
    assert!(core.len() > 1, "{what}: the core calls changed nothing");
}

/// The worker in user mode on CPU 1 (and CPU 2 halted in its idle loop).
fn staged() -> Machine {
    let mut m = machine();
    run_until(&mut m, 1, |m| in_user(m, 1));
    run_until(&mut m, 2, |m| halted(m, 2));
    m
}

#[test]
fn syscall() {
    let mut m = staged();
    let mut d = Direct::of(&m, 1);
    m.end_user_burst(1);
    m.sync_clocks_drop_timers();
    m.advance(1); // the burst ends: the syscall instruction
    let mut sim = vec![d.seen[0].clone()];
    sim.extend(run_until(&mut m, 1, |m| in_user(m, 1)));
    sim.dedup();
    d.hw.irqs_on = false; // SYSCALL masks IF
    d.call(enter_from_user_mode);
    d.call(|ct| ct.arch.local_irq_enable());
    d.call(|ct| ct.arch.local_irq_disable());
    d.call(exit_to_user_mode);
    assert_refines("syscall", &sim, &d.seen);
}

/// One interrupt-like entry on CPU `c` of `m`, by `raise`, until the entry is gone again;
/// against the direct calls from the same state: `irqentry_enter/exit` (`user`: from user
/// mode; otherwise the interrupted context had IRQs on: `sti; hlt` or a syscall body), or the
/// NMI pair when `nmi`.
fn entry(
    what: &str,
    mut m: Machine,
    c: CpuId,
    user: bool,
    raise: impl FnOnce(&mut Machine),
    nmi: bool,
) {
    let depth = |m: &Machine| m.tasks[m.cpus[c].current].entries.len();
    let base = depth(&m);
    let mut d = Direct::of(&m, c);
    raise(&mut m);
    if depth(&m) == base {
        m.sync_clocks_drop_timers();
        m.advance(c); // delivery (an exception pushed its entry already)
    }
    assert!(depth(&m) > base, "{what}: not delivered");
    let mut sim = vec![d.seen[0].clone()];
    sim.extend(run_until(&mut m, c, |m| {
        depth(m) == base && (!user || in_user(m, c))
    }));
    sim.dedup();
    d.hw.irqs_on = false; // the CPU masks IF on delivery
    if nmi {
        d.nmi_pair();
    } else {
        let mut st = Default::default();
        d.call(|ct| st = irqentry_enter(ct, user));
        d.call(|ct| {
            irqentry_exit(ct, user, true, st);
        });
    }
    assert_refines(what, &sim, &d.seen);
}

/// An entry from user mode on CPU 1.
fn from_user(what: &str, raise: impl FnOnce(&mut Machine), nmi: bool) {
    entry(what, staged(), 1, true, raise, nmi);
}

/// An entry on CPU 2's halted idle loop.
fn from_idle(what: &str, raise: impl FnOnce(&mut Machine), nmi: bool) {
    entry(what, staged(), 2, false, raise, nmi);
}

/// An entry that hits CPU 1 inside the syscall body, where IRQs are on.
fn from_kernel(what: &str, raise: impl FnOnce(&mut Machine), nmi: bool) {
    let mut m = staged();
    m.end_user_burst(1);
    let depth = |m: &Machine| m.tasks[m.cpus[1].current].entries.len();
    run_until(&mut m, 1, |m| {
        m.cpus[1].mode == Mode::Kernel && m.cpus[1].hw.irqs_on && depth(m) == 1
    });
    entry(what, m, 1, false, raise, nmi);
}

#[test]
fn interrupt_from_user() {
    from_user("irq from user", |m| m.raise_irq(1, Vector::Device), false);
}

#[test]
fn page_fault_from_user() {
    from_user(
        "page fault from user",
        |m| {
            assert!(m.raise_exception(1, Exception::PageFault));
        },
        false,
    );
}

#[test]
fn nmi_from_user() {
    from_user("nmi from user", |m| m.raise_nmi(1), true);
}

#[test]
fn interrupt_from_idle() {
    from_idle("irq from idle", |m| m.raise_irq(2, Vector::Device), false);
}

#[test]
fn nmi_from_idle() {
    from_idle("nmi from idle", |m| m.raise_nmi(2), true);
}

#[test]
fn interrupt_from_kernel() {
    from_kernel("irq from kernel", |m| m.raise_irq(1, Vector::Device), false);
}

#[test]
fn nmi_from_kernel() {
    from_kernel("nmi from kernel", |m| m.raise_nmi(1), true);
}

#[test]
fn breakpoint_in_kernel() {
    from_kernel(
        "int3 in kernel",
        |m| {
            assert!(m.raise_exception(1, Exception::Breakpoint));
        },
        true,
    );
}
