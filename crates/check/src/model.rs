//! The model: a design running on the simulator's own [`Machine`], the actions that may happen
//! at each step boundary, and the state fingerprint.
//!
//! Model = data + properties (as in stateright): the state is a `Machine`, the properties are the
//! monitor's invariants (`ctxtrack_sim::monitor`, the same code a simulation runs), checked by
//! the machine itself on every step, entry and return.
//!
//! The machine: CPU 0 is a housekeeping CPU that never runs (it only sends IPIs, writes to pipes
//! and runs the grace-period kthread); CPUs `1..=cpus` are nohz_full with context tracking on,
//! each with one worker task pinned to it. With one CPU the worker reads a pipe that only a
//! remote CPU writes (it blocks, the CPU idles, a wakeup IPI brings it back); with two CPUs the
//! workers ping-pong one byte through two pipes (wakeups and IPIs between the explored CPUs).
//!
//! Abstraction: time does not exist for the checker. Every posted event has arrived (one global
//! clock, IPI latency 0), the periodic tick and device interrupts happen only when an action
//! raises them, user bursts end only by an action (and do not shrink while held); the
//! fingerprint leaves out clocks, counters, vtime amounts and the RCU counter's value (it keeps
//! how the counter relates to the grace period's snapshot), so two states that differ only in
//! those are one state.

use ctxtrack_sim::design::Design;
use ctxtrack_sim::driver::Exception;
use ctxtrack_sim::fingerprint::Roles;
use ctxtrack_sim::machine::ipc::ChanKind;
use ctxtrack_sim::machine::{
    preempt, tif, ChanId, CpuId, Machine, Mode, TaskId, TaskState, Vector, NEVER,
};
use ctxtrack_sim::program::Program;
use ctxtrack_sim::{Config, CpuSet};

/// The housekeeping CPU: never explored, the origin of remote actions.
pub const HOUSEKEEPING: CpuId = 0;

/// Upper bound on `--cpus`.
pub const MAX_CPUS: usize = 2;

/// Upper bound on `--depth`.
pub const MAX_DEPTH: u32 = 6;

/// Steps allowed to stage a root state (boot to user mode).
const STAGE_LIMIT: u32 = 10_000;

/// An asynchronous event class (`--events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A device interrupt or the local timer, wherever IRQs are on.
    Irq,
    /// An NMI, anywhere but inside another NMI.
    Nmi,
    /// A breakpoint or debug trap, at any boundary of kernel or user code.
    Exc,
    /// A page fault from user mode or before an instrumentable kernel step.
    Fault,
    /// A remote `resched_curr()` (or, on an idle CPU, a wakeup): reschedule IPI, preemption.
    Preempt,
    /// A signal becoming pending (`signal_wake_up()` from a remote CPU).
    Signal,
}

impl Event {
    /// All events, in `--events` order.
    pub const ALL: [Event; 6] = [
        Event::Irq,
        Event::Nmi,
        Event::Exc,
        Event::Fault,
        Event::Preempt,
        Event::Signal,
    ];

    /// The `--events` name.
    pub fn name(self) -> &'static str {
        match self {
            Event::Irq => "irq",
            Event::Nmi => "nmi",
            Event::Exc => "exc",
            Event::Fault => "fault",
            Event::Preempt => "preempt",
            Event::Signal => "signal",
        }
    }
}

/// A set of [`Event`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Events(u8);

impl Events {
    /// Every event.
    pub const ALL: Events = Events(0x3f);
    /// No asynchronous event (only the paths themselves and the grace-period observer).
    pub const NONE: Events = Events(0);

    /// Whether `e` is in the set.
    pub fn has(self, e: Event) -> bool {
        self.0 & (1 << e as u8) != 0
    }

    /// The set with `e` added.
    pub fn with(self, e: Event) -> Events {
        Events(self.0 | (1 << e as u8))
    }

    /// Parses `irq,nmi,exc,fault,preempt,signal` (or `all`, `none`); the error names the bad item
    /// and the valid ones.
    pub fn parse(s: &str) -> Result<Events, String> {
        match s.trim() {
            "all" => return Ok(Events::ALL),
            "none" | "" => return Ok(Events::NONE),
            _ => {}
        }
        let mut set = Events::NONE;
        for item in s.split(',') {
            let item = item.trim();
            let e = Event::ALL.iter().find(|e| e.name() == item).ok_or_else(|| {
                let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown event {item:?} in --events; expected a comma-separated list of {} (or all, none)",
                    names.join(", ")
                )
            })?;
            set = set.with(*e);
        }
        Ok(set)
    }

    /// The names in the set, comma-separated.
    pub fn names(self) -> String {
        let v: Vec<&str> = Event::ALL
            .iter()
            .filter(|e| self.has(**e))
            .map(|e| e.name())
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(",")
        }
    }
}

/// What to check.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// The design.
    pub design: &'static Design,
    /// Entries that may be stacked on a CPU (`--depth`): the entry a path starts in counts, so
    /// an NMI in an IRQ in a system call is depth 3.
    pub depth: u32,
    /// Explored CPUs (`--cpus`, 1 or 2).
    pub cpus: usize,
    /// Asynchronous events injected.
    pub events: Events,
    /// Give up (verdict: incomplete) after this many distinct states.
    pub max_states: u64,
    /// Threads expanding each breadth-first level (the result does not depend on it).
    pub threads: usize,
    /// Collapse states that differ by a permutation of interchangeable CPUs.
    pub symmetry: bool,
    /// Explore past at most this many violations on one path (0: stop at the first). States are
    /// told apart by how many they have seen, up to this bound, so the search stays exhaustive
    /// for paths with at most this many violations.
    pub keep_going: u32,
    /// Give up (verdict: incomplete) when the states waiting in the next level would take more
    /// than this many MiB (each is a whole machine).
    pub max_memory_mb: u64,
    /// Deferred IPIs (CT_WORK): the state word has a work field, and the housekeeping CPU's
    /// `ct_set_cpu_work()` against each explored CPU is two actions (its read, its cmpxchg) at
    /// every step boundary, a CALL_FUNCTION IPI when it fails.
    pub ct_work: bool,
    /// The setter those actions run (Linux's, or a negative control).
    pub work_setter: ctxtrack_sim::driver::Setter,
    /// `CONFIG_RCU_DYNTICKS_TORTURE`: the 2-bit RCU watching counter.
    pub rcu_counter_torture: bool,
    /// With `ct_work`: NMIs that find RCU watching flush the word's work bits too (a
    /// mitigation of the window between an entry's add and its flush; not in the series).
    pub ct_work_nmi_flush: bool,
    /// Rounds one `__do_softirq()` may run before it wakes `ksoftirqd`
    /// ([`ctxtrack_sim::Config::softirq_max_restart`]): 1 by default, where Linux has 10 and a
    /// time budget. A restarted round starts from the state the first one started from (IRQs
    /// off, `SOFTIRQ_OFFSET` held, the same vectors pending) and ends the same two ways (done,
    /// or deferred to `ksoftirqd`), so more rounds reach no other state but the count; a
    /// higher bound shows restarts in traces.
    pub softirq_max_restart: u8,
    /// Softirqs ([`ctxtrack_sim::Config::softirq`]): `NET_RX` raised by the device interrupt,
    /// run by `irq_exit_rcu()` with IRQs on, or by `ksoftirqd`. Off by default: it multiplies the
    /// state space (README, "Softirqs, readers and deferred wakeups").
    pub softirq: bool,
    /// Callback offloading ([`ctxtrack_sim::Config::nocb`]): the device interrupt's
    /// `call_rcu()` defers its rcuog wakeup (IRQs are off), to be flushed before the next return
    /// to user or halt. The rcuog kthread runs on the checked CPU
    /// ([`ctxtrack_sim::Config::rcuog_local`]), so a flush after the last `need_resched()`
    /// check loses the reschedule it needs. Off by default (README, "Softirqs, readers and
    /// deferred wakeups").
    pub nocb: bool,
    /// The observer may also start a grace period inside an IRQ or NMI handler's read-side
    /// section (off by default, for the same reason).
    pub gp_in_hardirq: bool,
}

impl CheckConfig {
    /// Depth 3, one CPU, every event, 20 million states.
    pub fn new(design: &'static Design) -> CheckConfig {
        CheckConfig {
            design,
            depth: 3,
            cpus: 1,
            events: Events::ALL,
            max_states: 20_000_000,
            keep_going: 1,
            symmetry: true,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_memory_mb: 4096,
            ct_work: false,
            work_setter: ctxtrack_sim::driver::Setter::Linux,
            rcu_counter_torture: false,
            ct_work_nmi_flush: false,
            softirq_max_restart: 1,
            softirq: false,
            nocb: false,
            gp_in_hardirq: false,
        }
    }

    /// Checks the bounds; the error names the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(format!(
                "--cpus {} is out of range: the checker explores 1 to {MAX_CPUS} CPUs",
                self.cpus
            ));
        }
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "--depth {} is out of range: at most {MAX_DEPTH} nested entries",
                self.depth
            ));
        }
        if self.max_states == 0 {
            return Err("--max-states must be at least 1".into());
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if self.max_memory_mb < 16 {
            return Err("--max-memory must be at least 16 (MiB)".into());
        }
        Ok(())
    }
}

/// One transition of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// The CPU runs its next step, or takes an interrupt that has arrived and may be taken.
    Step(CpuId),
    /// User mode: the compute burst ends and the program's next system call starts.
    Syscall(CpuId),
    /// An interrupt on this vector (device or local timer) is raised and taken.
    Irq(CpuId, Vector),
    /// An NMI is raised and taken.
    Nmi(CpuId),
    /// A breakpoint or debug trap hits.
    Breakpoint(CpuId),
    /// A page fault hits.
    PageFault(CpuId),
    /// The housekeeping CPU reschedules this CPU (or wakes its sleeping worker).
    Preempt(CpuId),
    /// The housekeeping CPU sends a signal to this CPU's worker.
    Signal(CpuId),
    /// The grace-period kthread starts a grace period.
    GpStart,
    /// The grace-period kthread runs a force-quiescent-state scan.
    GpFqs,
    /// The grace-period kthread marks this holdout CPU `rcu_urgent_qs`.
    GpUrgent(CpuId),
    /// The housekeeping CPU starts `ct_set_cpu_work(cpu, CT_WORK_SYNC)`: its read.
    WorkRead(CpuId),
    /// ... and its `atomic_try_cmpxchg()` (set, IPI, or back to the next try).
    WorkCmpxchg(CpuId),
}

impl Action {
    /// The CPU the action happens on (the grace-period actions happen on the housekeeping CPU).
    pub fn cpu(self) -> CpuId {
        match self {
            Action::Step(c)
            | Action::Syscall(c)
            | Action::Irq(c, _)
            | Action::Nmi(c)
            | Action::Breakpoint(c)
            | Action::PageFault(c)
            | Action::Preempt(c)
            | Action::Signal(c) => c,
            Action::GpStart
            | Action::GpFqs
            | Action::GpUrgent(_)
            | Action::WorkRead(_)
            | Action::WorkCmpxchg(_) => HOUSEKEEPING,
        }
    }

    /// How a trace names the action.
    pub fn describe(self) -> String {
        match self {
            Action::Step(_) => "step".into(),
            Action::Syscall(_) => "syscall".into(),
            Action::Irq(_, Vector::Device) => "irq device".into(),
            Action::Irq(_, v) => format!("irq {}", v.trace_name()),
            Action::Nmi(_) => "nmi".into(),
            Action::Breakpoint(_) => "int3".into(),
            Action::PageFault(_) => "page fault".into(),
            Action::Preempt(_) => "remote resched/wakeup".into(),
            Action::Signal(_) => "remote signal".into(),
            Action::GpStart => "gp start".into(),
            Action::GpFqs => "gp fqs scan".into(),
            Action::GpUrgent(c) => format!("gp: cpu {c} rcu_urgent_qs"),
            Action::WorkRead(c) => format!("ct_set_cpu_work({c}): read"),
            Action::WorkCmpxchg(c) => format!("ct_set_cpu_work({c}): cmpxchg"),
        }
    }
}

/// A starting state.
#[derive(Clone)]
pub struct Root {
    /// What it is.
    pub label: String,
    /// The machine.
    pub machine: Machine,
}

/// The model for one design.
pub struct Model {
    /// What is checked.
    pub cfg: CheckConfig,
    /// Explored CPUs.
    pub cpus: Vec<CpuId>,
    /// The worker pinned to each explored CPU.
    pub workers: Vec<TaskId>,
    /// The pipe each worker reads.
    pub rx: Vec<ChanId>,
    /// Explored CPUs are interchangeable (same program, mirrored pipes): states that differ by
    /// a permutation of them are one state.
    pub symmetric: bool,
    /// The same roles, as the fingerprint names tasks and pipes.
    roles: Roles,
    base: Machine,
}

impl Model {
    /// Builds the machine for `cfg`.
    pub fn new(cfg: CheckConfig) -> Result<Model, String> {
        cfg.validate()?;
        let n = cfg.cpus;
        // Time is the checker's choice of moment: no periodic event, IPIs arrive at once.
        let mut sc = Config::timeless(cfg.design, n + 1, CpuSet(((1u64 << n) - 1) << 1));
        sc.preempt = true;
        sc.stop_on_violation = false;
        sc.monitor = true;
        sc.ct_work = cfg.ct_work;
        sc.rcu_counter_torture = cfg.rcu_counter_torture;
        sc.ct_work_nmi_flush = cfg.ct_work_nmi_flush;
        sc.softirq_max_restart = cfg.softirq_max_restart;
        sc.softirq = cfg.softirq;
        sc.nocb = cfg.nocb;
        // rcuog on the checked CPU itself: its wakeup needs a reschedule there, which is where
        // a late flush loses it (remote, a wakeup changes nothing this CPU can see).
        sc.rcuog_local = cfg.nocb;
        sc.validate()?;
        let mut m = Machine::new(sc);
        let cpus: Vec<CpuId> = (1..=n).collect();
        let rx: Vec<ChanId> = cpus.iter().map(|_| m.new_chan(ChanKind::Pipe)).collect();
        let mut workers = Vec::new();
        for (i, &c) in cpus.iter().enumerate() {
            // One CPU: read a pipe only the housekeeping CPU writes. Two: write the other's pipe,
            // then read your own.
            let tx = (n > 1).then(|| rx[(i + 1) % n]);
            let prog = Program::PingPong {
                tx,
                rx: rx[i],
                user_ns: 1_000,
                write_next: tx.is_some(),
            };
            let name = ["worker-a", "worker-b"][i];
            let t = m.spawn(name, prog, c);
            m.pin(t, c);
            workers.push(t);
        }
        let symmetric = n > 1 && cfg.symmetry;
        let roles = Roles {
            cpus: cpus.clone(),
            workers: workers.clone(),
            rx: rx.clone(),
            symmetric,
            keep_going: cfg.keep_going,
        };
        let mut model = Model {
            roles,
            symmetric,
            cfg,
            cpus,
            workers,
            rx,
            base: m,
        };
        let mut base = model.base.clone();
        model.normalize(&mut base);
        model.base = base;
        Ok(model)
    }

    /// The starting states: boot (idle loops about to run the workers' first `ret_from_fork`),
    /// and every worker in user mode with each combination of exit-work flags set, as a system
    /// call body or a remote CPU may leave them (`NEED_RESCHED`, `SIGPENDING`, `NOTIFY_RESUME`,
    /// `USER_RETURN_NOTIFY`).
    pub fn roots(&self) -> Result<Vec<Root>, String> {
        let mut roots = vec![Root {
            label: "boot: idle loop with the worker runnable".into(),
            machine: self.base.clone(),
        }];
        let mut staged = self.base.clone();
        for &c in &self.cpus {
            let w = self.workers[c - 1];
            let mut n = 0;
            while !(staged.cpus()[c].mode == Mode::User && staged.cpus()[c].current == w) {
                if n == STAGE_LIMIT || staged.monitor().count > 0 {
                    return Err(format!(
                        "{}: staging could not bring worker {} to user mode on CPU {c} ({} violations on the way)",
                        self.cfg.design.name, staged.tasks()[w].comm, staged.monitor().count
                    ));
                }
                staged.sync_clocks_drop_timers();
                staged.advance(c);
                n += 1;
            }
            self.normalize(&mut staged);
        }
        const FLAGS: [(u32, &str); 4] = [
            (tif::NEED_RESCHED, "NEED_RESCHED"),
            (tif::SIGPENDING, "SIGPENDING"),
            (tif::NOTIFY_RESUME, "NOTIFY_RESUME"),
            (tif::USER_RETURN_NOTIFY, "USER_RETURN_NOTIFY"),
        ];
        for set in 0..16u32 {
            let mut m = staged.clone();
            let mut names = Vec::new();
            for (i, (bit, name)) in FLAGS.iter().enumerate() {
                if set & (1 << i) != 0 {
                    for &w in &self.workers {
                        m.set_thread_flags(w, *bit);
                    }
                    names.push(*name);
                }
            }
            let flags = if names.is_empty() {
                "none".to_string()
            } else {
                names.join("|")
            };
            roots.push(Root {
                label: format!("worker in user mode, exit work: {flags}"),
                machine: m,
            });
        }
        Ok(roots)
    }

    /// Entries on CPU `c`'s current task. A softirq served on IRQ exit is not an entry: it runs
    /// in the IRQ's, which `--depth` already counts (so an IRQ on the idle task, its softirq and
    /// a tick nested in that softirq fit in depth 3, as the bug `irqentry_enter()`'s comment
    /// describes needs).
    fn entries(m: &Machine, c: CpuId) -> usize {
        m.tasks()[m.cpus()[c].current].entries.len()
    }

    /// Whether CPU `c` has an event that has arrived and that it must take now.
    fn must_take(m: &Machine, c: CpuId) -> bool {
        let cpu = &m.cpus()[c];
        let irq = cpu.pending.iter().any(|&p| p != NEVER) || cpu.next_tick != NEVER;
        let nmi = cpu.nmi_at != NEVER;
        match cpu.mode {
            Mode::User | Mode::Halted => irq || nmi,
            Mode::Kernel => false,
        }
    }

    /// The next step CPU `c` runs if it is an instrumentable one (where kernel code may fault).
    fn next_is_instr(m: &Machine, c: CpuId) -> bool {
        let t = &m.tasks()[m.cpus()[c].current];
        let hw = &m.cpus()[c].hw;
        if hw.flush_pending != 0 && usize::from(hw.flush_depth) == t.entries.len() {
            // The next instruction is ct_work_flush(), inside noinstr ct_kernel_enter_state().
            return false;
        }
        t.frames.last().is_some_and(|f| {
            f.path
                .steps
                .get(f.pc as usize)
                .is_some_and(|s| s.kind == ctxtrack_sim::design::StepKind::Instr)
        })
    }

    /// Every action enabled in `m`, in a fixed order (the order breaks ties between equally
    /// short counterexamples).
    pub fn actions(&self, m: &Machine, out: &mut Vec<Action>) {
        let ev = self.cfg.events;
        for &c in &self.cpus {
            let cpu = &m.cpus()[c];
            // A new entry would sit at depth `entries + 1`.
            let room = Self::entries(m, c) < self.cfg.depth as usize;
            match cpu.mode {
                Mode::Kernel => out.push(Action::Step(c)),
                Mode::User | Mode::Halted if Self::must_take(m, c) => {
                    // The hardware takes an arrived interrupt at once.
                    out.push(Action::Step(c));
                    continue;
                }
                Mode::User => out.push(Action::Syscall(c)),
                Mode::Halted => {}
            }
            if !room {
                continue;
            }
            let irqs = cpu.mode != Mode::Kernel || cpu.hw.irqs_on;
            if ev.has(Event::Irq) && irqs {
                out.push(Action::Irq(c, Vector::Device));
                out.push(Action::Irq(c, Vector::LocalTimer));
            }
            if ev.has(Event::Nmi) && cpu.nmi_at == NEVER && !Self::in_nmi(m, c) {
                out.push(Action::Nmi(c));
            }
            let runs = cpu.mode != Mode::Halted;
            if ev.has(Event::Exc) && runs {
                out.push(Action::Breakpoint(c));
            }
            if ev.has(Event::Fault) && (cpu.mode == Mode::User || Self::next_is_instr(m, c)) {
                out.push(Action::PageFault(c));
            }
            if ev.has(Event::Preempt) && cpu.pending[Vector::Reschedule as usize] == NEVER {
                out.push(Action::Preempt(c));
            }
            let w = self.workers[c - 1];
            if ev.has(Event::Signal) && m.tasks()[w].ti_flags & tif::SIGPENDING == 0 {
                out.push(Action::Signal(c));
            }
            if self.cfg.ct_work {
                // One synchronization outstanding per CPU: a new one once it is paid.
                let sync = ctxtrack_core::CtWork::Sync.bit() as u8;
                if cpu.work_setter.is_some() {
                    out.push(Action::WorkCmpxchg(c));
                } else if (cpu.hw.owed | cpu.csd) & sync == 0 {
                    out.push(Action::WorkRead(c));
                }
            }
        }
        // A grace period can only be wrong about a reader that began before it: the observer
        // starts one only while a read-side section runs (normalize() ends it once none that
        // predates it is left).
        if m.rcu().in_progress() {
            out.push(Action::GpFqs);
            for &c in &self.cpus {
                if m.rcu().scan.holds_out(c) && !m.cpus()[c].pcpu.rcu.urgent_qs() {
                    out.push(Action::GpUrgent(c));
                }
            }
        } else if self.cpus.iter().any(|&c| self.gp_may_start(m, c)) {
            out.push(Action::GpStart);
        }
    }

    /// The observer may start a grace period while CPU `c` is in a read-side section: in task,
    /// softirq or idle context, and with [`CheckConfig::gp_in_hardirq`] in IRQ and NMI handlers
    /// too (a reader counts on the task it interrupted, which cannot switch away before it
    /// ends). Without that option a grace period started before a handler's reader still spans
    /// it, and `rcu_read_lock_idle` checks that RCU watches each one.
    fn gp_may_start(&self, m: &Machine, c: CpuId) -> bool {
        let in_reader = m.tasks()[m.cpus()[c].current].rcu_depth > 0;
        let hardirq =
            m.cpus()[c].hw.preempt_count & (preempt::HARDIRQ_MASK | preempt::NMI_MASK) != 0;
        in_reader && (self.cfg.gp_in_hardirq || !hardirq)
    }

    fn in_nmi(m: &Machine, c: CpuId) -> bool {
        m.tasks()[m.cpus()[c].current]
            .entries
            .iter()
            .any(|e| e.kind == ctxtrack_sim::machine::EntryKind::Nmi)
    }

    /// Performs `a` on `m`.
    pub fn apply(&self, m: &mut Machine, a: Action) {
        match a {
            Action::Step(c) => m.advance(c),
            Action::Syscall(c) => {
                m.end_user_burst(c);
                m.advance(c);
            }
            Action::Irq(c, v) => {
                m.raise_irq(c, v);
                m.advance(c);
            }
            Action::Nmi(c) => {
                m.raise_nmi(c);
                m.advance(c);
            }
            Action::Breakpoint(c) => {
                m.raise_exception(c, Exception::Breakpoint);
            }
            Action::PageFault(c) => {
                m.raise_exception(c, Exception::PageFault);
            }
            Action::Preempt(c) => {
                let i = c - 1;
                let sleeping = m.tasks()[self.workers[i]].state == TaskState::Sleeping;
                if sleeping
                    && m.chans()[self.rx[i] as usize]
                        .readers
                        .contains(&self.workers[i])
                {
                    m.remote_write(HOUSEKEEPING, self.rx[i]);
                } else {
                    m.remote_resched(HOUSEKEEPING, c);
                }
            }
            Action::Signal(c) => m.remote_signal(HOUSEKEEPING, self.workers[c - 1]),
            Action::GpStart => {
                let now = m.cpus()[self.cpus[0]].hw.now;
                m.gp_start(now, 1 << HOUSEKEEPING);
            }
            Action::GpFqs => {
                let now = m.cpus()[self.cpus[0]].hw.now;
                m.gp_fqs(now);
            }
            Action::GpUrgent(c) => m.gp_urgent(c),
            Action::WorkRead(c) => {
                m.work_set_read(c, ctxtrack_core::CtWork::Sync, self.cfg.work_setter)
            }
            Action::WorkCmpxchg(c) => {
                m.work_set_cmpxchg(c, ctxtrack_core::CtWork::Sync, self.cfg.work_setter)
            }
        }
        self.normalize(m);
    }

    /// Time out of the state: one clock, no future timers, user bursts that end only by an
    /// action.
    fn normalize(&self, m: &mut Machine) {
        m.sync_clocks_drop_timers();
        if m.rcu().in_progress() && !self.gp_can_fail(m) {
            // No reader that predates the grace period is left: it can only end well. End it now
            // (each holdout reports, which also clears its urgency and forced tick), so states
            // do not differ by a grace period that no longer matters.
            for &c in &self.cpus {
                m.gp_report_qs(c);
            }
        }
        for &c in &self.cpus {
            m.hold_user_burst(c);
        }
    }

    /// A running grace period could still end while a reader that began before it runs.
    fn gp_can_fail(&self, m: &Machine) -> bool {
        m.tasks()
            .iter()
            .any(|t| ctxtrack_sim::machine::rcu::reader_predates(t, m.rcu()))
    }

    /// The state's fingerprint: everything that can change what happens next, and nothing else
    /// (the abstraction lives beside the state: [`ctxtrack_sim::fingerprint`]).
    pub fn fingerprint(&self, m: &Machine) -> u64 {
        self.roles.fingerprint(m)
    }
}
