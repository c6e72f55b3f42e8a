//! The model checker's state abstraction, beside the state it abstracts: which parts of a
//! [`Machine`] can change what happens next ([`Roles::fingerprint`] hashes them), and which
//! cannot ([`IGNORED`], each with the reason that is sound).
//!
//! The checker's machine (`ctxtrack_check::model`) has no time: every posted event has arrived,
//! timers are dropped, user bursts end only by an action and do not shrink while held. So
//! clocks, counters, vtime amounts and the RCU counter's value are left out (how the counter
//! relates to the grace period's snapshot is kept), and two states that differ only in those
//! are one state. CPUs are collapsed by symmetry when the model is symmetric: tasks and pipes
//! are hashed by their role as seen from each explored CPU, never by index.
//!
//! Completeness is enforced twice: the hash functions destructure [`Machine`], [`Cpu`], [`Hw`]
//! and [`Task`] without `..` (a new field does not compile until it is hashed or bound to `_`),
//! and a test reads those structs' definitions and requires, for every field, either a change
//! that moves the fingerprint or an entry in [`IGNORED`].

use crate::machine::ipc::Channel;
use crate::machine::program::{Program, Syscall, Then};
use crate::machine::{ChanId, Cpu, CpuId, Hw, Machine, TaskId, TaskState};
use std::hash::{Hash, Hasher};

/// Fields the fingerprint leaves out, as `Struct.field`, with why leaving them out is sound.
pub const IGNORED: &[(&str, &str)] = &[
    ("Machine.cfg", "constant during a search (the checker's configuration)"),
    ("Machine.cost", "constant during a search"),
    ("Machine.base_cost", "constant during a search (derived from the cost model)"),
    ("Machine.ns_per_cycle_fp", "constant during a search (derived from the cost model)"),
    ("Machine.design", "constant during a search (one design per model)"),
    ("Machine.key", "constant after boot: the checker never flips context_tracking_key"),
    ("Machine.rng", "the checker draws nothing it keeps: no device-IRQ period, user bursts end only by an action"),
    ("Machine.work", "the periodic senders' timers: the checker runs the setter as actions, never the senders"),
    ("Machine.trace", "an output"),
    ("Machine.mark_start_ns", "benchmark timestamps: time"),
    ("Machine.mark_stop_ns", "benchmark timestamps: time"),
    ("Machine.main_task", "constant during a search (no main task: the run never ends by an exit)"),
    ("Machine.steps", "a counter"),
    ("Machine.end", "the checker never expands a machine whose run ended (only its limit guards)"),
    ("Machine.now_max", "time"),
    ("Machine.rescan", "a cache flag of the run loop, which the checker does not use"),
    ("Machine.next_at", "a cache of the run loop (next event times: time)"),
    ("Machine.progress", "an output"),
    ("Machine.phase", "an output's label"),
    ("Machine.next_checkpoint", "the run loop's limit check"),
    ("Machine.next_pid", "pids are names: nothing compares them"),
    ("Cpu.min_vruntime", "CFS bookkeeping in ns: time (queue order is hashed through Cpu.rq)"),
    ("Cpu.nohz_full", "constant during a search"),
    ("Cpu.user_since", "time (a held burst does not shrink as it passes: Machine::hold_user_burst)"),
    ("Cpu.tick_stopped_since", "time (whether the tick is stopped is hashed through Cpu.pcpu)"),
    ("Cpu.priced_cycles", "cost accounting"),
    ("Cpu.cycle_rem", "cost accounting"),
    ("Cpu.counters", "counters"),
    ("Cpu.times", "ground-truth time"),
    ("Cpu.history", "the last steps, for reports: an output"),
    ("Cpu.entry_seq", "numbers entries for the history: an output"),
    ("Cpu.user_until", "the checker normalizes it to NEVER: bursts end only by an action"),
    ("Hw.cpu", "constant: the CPU's own id"),
    ("Hw.now", "time"),
    ("Hw.kicks", "cleared after every step: always 0 between actions"),
    ("Hw.work_flushes", "a counter"),
    ("Task.pid", "a name"),
    ("Task.comm", "a name"),
    ("Task.is_idle", "constant per task (hashed as the task's role)"),
    ("Task.has_mm", "constant per task (hashed as the task's role)"),
    ("Task.vruntime", "CFS bookkeeping in ns: time"),
    ("Task.exec_start", "time"),
    ("Task.sum_exec_ns", "time"),
    ("Task.slice_exec_ns", "time"),
    ("Task.parent", "constant per task (the workers are spawned by the machine)"),
    ("Task.zombies", "the checker's workers never fork or exit"),
    ("Task.children_alive", "the checker's workers never fork or exit"),
    ("Task.rcu_since_ns", "time (the ordering it stands for is hashed: reader_predates)"),
    ("Task.rcu_since_gp", "hashed as what it decides: whether the reader predates the running grace period"),
    ("Task.user_ns", "ground-truth time"),
    ("Task.sys_ns", "ground-truth time"),
    ("Task.syscalls", "a counter"),
    ("Task.urn_every", "constant per task"),
    ("Task.urn_fired", "a counter"),
    ("Task.pinned", "constant per task"),
];

/// Who is who in the checker's machine: the explored CPUs, the worker pinned to each and the
/// pipe it reads. The fingerprint names tasks and pipes by these roles.
#[derive(Clone, Debug)]
pub struct Roles {
    /// Explored CPUs.
    pub cpus: Vec<CpuId>,
    /// The worker of each explored CPU.
    pub workers: Vec<TaskId>,
    /// The pipe each worker reads.
    pub rx: Vec<ChanId>,
    /// Explored CPUs are interchangeable: states that differ by a permutation are one state.
    pub symmetric: bool,
    /// Violations counted up to this many (more do not change what the search does).
    pub keep_going: u32,
}

/// At most this many explored CPUs.
pub const MAX_ROLES: usize = 8;

impl Roles {
    /// The state's fingerprint: everything that can change what happens next, and nothing else
    /// (see the module doc).
    pub fn fingerprint(&self, m: &Machine) -> u64 {
        let Machine {
            cfg: _,
            cost: _,
            base_cost: _,
            ns_per_cycle_fp: _,
            design: _,
            key: _,
            cpus: _,
            tasks: _,
            chans: _,
            rng: _,
            rcu,
            work: _,
            monitor,
            trace: _,
            mark_start_ns: _,
            mark_stop_ns: _,
            main_task: _,
            steps: _,
            end: _,
            now_max: _,
            rescan: _,
            next_at: _,
            progress: _,
            phase: _,
            next_checkpoint: _,
            next_pid: _,
        } = m;
        // CPUs, their tasks and their pipes: hashed per CPU below.
        let mut parts = [0u64; MAX_ROLES];
        for (i, &c) in self.cpus.iter().enumerate() {
            let mut h = FpHasher::default();
            self.hash_cpu(m, i, c, &mut h);
            parts[i] = h.finish();
        }
        let parts = &mut parts[..self.cpus.len()];
        if self.symmetric {
            parts.sort_unstable();
        }
        let mut h = FpHasher::default();
        parts.hash(&mut h);
        rcu.in_progress().hash(&mut h);
        monitor.count.min(u64::from(self.keep_going)).hash(&mut h);
        h.finish()
    }

    /// Task ids as seen from CPU `c` (index `i`): its idle task 0, its worker 1, another worker
    /// 2, its ksoftirqd 4, anything else 3.
    fn rel(&self, m: &Machine, i: usize, c: CpuId, t: TaskId) -> u8 {
        if t == m.cpus[c].idle_task {
            0
        } else if t == self.workers[i] {
            1
        } else if self.workers.contains(&t) {
            2
        } else if m.cpus[c].ksoftirqd == Some(t) {
            4
        } else {
            3
        }
    }

    fn hash_cpu(&self, m: &Machine, i: usize, c: CpuId, h: &mut impl Hasher) {
        let Cpu {
            pcpu,
            hw,
            mode,
            current,
            idle_task,
            rq,
            min_vruntime: _,
            nohz_full: _,
            next_tick,
            pending,
            nmi_at,
            csd,
            work_setter,
            user_until: _,
            user_since: _,
            tick_stopped_since: _,
            priced_cycles: _,
            cycle_rem: _,
            counters: _,
            times: _,
            history: _,
            entry_seq: _,
            softirq,
            nocb_defer_wakeup,
            ksoftirqd,
        } = &*m.cpus[c];
        let Hw {
            cpu: _,
            irqs_on,
            now: _,
            preempt_count,
            cur_has_mm,
            cur_is_idle,
            kicks: _,
            owed,
            work_flushes: _,
            flush_pending,
            flush_depth,
        } = hw;
        let ct = &pcpu.ct;
        mode.hash(h);
        self.rel(m, i, c, *current).hash(h);
        for &t in rq {
            self.rel(m, i, c, t).hash(h);
        }
        (irqs_on, preempt_count, cur_has_mm, cur_is_idle).hash(h);
        (
            ct.active(),
            ct.recursion(),
            ct.ct_state_bits(),
            ct.rcu_is_watching(),
            ct.nesting(),
            ct.nmi_nesting(),
        )
            .hash(h);
        (
            pcpu.rcu.urgent_qs(),
            pcpu.rcu.forced_tick(),
            pcpu.local.tick.tick_stopped,
            pcpu.local.tick.tick_dep_mask,
        )
            .hash(h);
        for &p in pending {
            (p != crate::machine::NEVER).hash(h);
        }
        // Deferred work: the bits in the word, what the CPU owes and has queued, and a setter
        // between its read and its cmpxchg as what its cmpxchg would do (the value it read
        // holds counter bits, which the fingerprint leaves out).
        (ct.ct_work(), owed, csd).hash(h);
        (flush_pending, flush_depth).hash(h);
        work_setter
            .map(|old| (old == ct.state_word(), old & ct.layout().watching() != 0))
            .hash(h);
        (
            *next_tick != crate::machine::NEVER,
            *nmi_at != crate::machine::NEVER,
        )
            .hash(h);
        // The grace period as this CPU is concerned: owes a QS, snapshotted, how the counter
        // relates to the snapshot.
        let r = &m.rcu;
        let owes = r.scan.holds_out(c);
        let snapped = owes && r.scan.snapped(c);
        owes.hash(h);
        if snapped {
            let snap = r.scan.snap(c);
            (
                ctxtrack_core::rcu::rcu_watching_snap_in_eqs(snap),
                ct.ct_rcu_watching() == snap,
            )
                .hash(h);
        }
        // Softirqs raised and running (restarts left), a deferred rcuog wakeup.
        (softirq, nocb_defer_wakeup).hash(h);
        // Tasks that belong to this CPU: its idle task, its worker, its ksoftirqd while awake.
        // Asleep, ksoftirqd waits at the top of its loop with nothing of its own that matters
        // (no entries, no flags, no reader): the same state as before it was first spawned.
        for t in [*idle_task, self.workers[i]] {
            self.hash_task(m, i, c, t, h);
        }
        if let Some(t) = ksoftirqd.filter(|&t| m.tasks[t].state != TaskState::Sleeping) {
            self.hash_task(m, i, c, t, h);
        }
        let Channel {
            kind: _,
            bytes,
            readers,
            writers,
            written_total: _,
            read_total: _,
        } = &m.chans[self.rx[i] as usize];
        bytes.hash(h);
        for &t in readers.iter().chain(writers.iter()) {
            self.rel(m, i, c, t).hash(h);
        }
    }

    fn hash_task(&self, m: &Machine, i: usize, c: CpuId, t: TaskId, h: &mut impl Hasher) {
        let task = &m.tasks[t];
        let crate::machine::Task {
            pid: _,
            comm: _,
            state,
            cpu,
            ti_flags,
            vtime,
            frames,
            entries,
            prog,
            is_idle: _,
            has_mm: _,
            vruntime: _,
            exec_start: _,
            sum_exec_ns: _,
            slice_exec_ns: _,
            user_left_ns,
            then,
            last_ret,
            cur_syscall,
            parent: _,
            zombies: _,
            children_alive: _,
            rcu_depth,
            rcu_since_ns: _,
            rcu_since_gp: _,
            user_ns: _,
            sys_ns: _,
            syscalls: _,
            urn_every: _,
            urn_fired: _,
            pinned: _,
        } = &**task;
        (state, ti_flags, *cpu == c).hash(h);
        // A path by its name (a function's: unique in a design and among the kernel's own
        // paths), not its address: leaked paths move between processes, and a swarm worker's
        // bitstate positions must not.
        for f in frames {
            (f.path.name, f.pc).hash(h);
        }
        for e in entries {
            (e.kind, e.regs, e.locals, e.base).hash(h);
            if let Some(s) = e.saved {
                (
                    s.cpu == c,
                    s.state,
                    s.watching,
                    s.nesting,
                    s.nmi_nesting,
                    s.preempt_count,
                )
                    .hash(h);
            }
        }
        rcu_depth.hash(h);
        // What the grace-period check compares: a reader that began before the grace period.
        let r = &m.rcu;
        (r.in_progress() && crate::machine::rcu::reader_predates(task, r)).hash(h);
        // Pipes by role (this CPU's or the other's), so mirrored CPUs hash alike.
        let own = |ch: ChanId| ch == self.rx[i];
        let sc = |s: Option<Syscall>| match s {
            Some(Syscall::Read { ch, len }) => (1u8, own(ch), len),
            Some(Syscall::Write { ch, len }) => (2, own(ch), len),
            Some(Syscall::Poll { ch }) => (3, own(ch), 0),
            Some(other) => (4, false, u64::from(other.nr())),
            None => (0, false, 0),
        };
        sc(*cur_syscall).hash(h);
        match then {
            Then::Syscall(s) => (0u8, sc(Some(*s))).hash(h),
            other => (1u8, other).hash(h),
        }
        match prog {
            Program::PingPong { write_next, .. } => write_next.hash(h),
            other => other.hash(h),
        }
        (*user_left_ns > 0, last_ret.is_some()).hash(h);
        let v = &vtime.vtime;
        (v.state, v.cpu == c as i32, v.cpu < 0, vtime.pf_vcpu).hash(h);
    }
}

/// The fingerprint hash: every word goes through a 64×64→128-bit multiply-fold (the mixing step
/// of wyhash), so all bits of the input affect all bits of the state. Fixed constants: the same
/// state always has the same fingerprint. At a few million states the chance that two distinct
/// states collide in 64 bits is below 10⁻⁶.
#[derive(Default)]
struct FpHasher(u64);

impl FpHasher {
    #[inline(always)]
    fn mix(&mut self, x: u64) {
        const K1: u64 = 0xa076_1d64_78bd_642f;
        const K2: u64 = 0xe703_7ed1_a0b4_28db;
        let p = u128::from(self.0 ^ x ^ K1) * u128::from(K2 ^ x.rotate_left(32));
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for FpHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.mix(u64::from_le_bytes(w) ^ ((c.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, x: u8) {
        self.mix(u64::from(x) | 1 << 62);
    }
    fn write_u16(&mut self, x: u16) {
        self.mix(u64::from(x) | 2 << 62);
    }
    fn write_u32(&mut self, x: u32) {
        self.mix(u64::from(x) | 3 << 62);
    }
    fn write_u64(&mut self, x: u64) {
        self.mix(x);
    }
    fn write_usize(&mut self, x: usize) {
        self.mix(x as u64);
    }
}

#[cfg(test)]
mod tests {
    //! Every field of the machine, its CPUs and its tasks is either hashed (a change moves the
    //! fingerprint) or on [`IGNORED`] with a reason. The fields are read from the structs'
    //! definitions, so adding one without deciding fails here.

    use super::*;
    use crate::config::{Config, CpuSet};
    use crate::machine::ipc::ChanKind;
    use crate::machine::{tif, Frame, Mode, Task, NEVER};
    use ctxtrack_core::VtimeState;

    /// Where each checked struct is defined (`Struct`, source).
    const SOURCES: &[(&str, &str)] = &[
        ("Machine", include_str!("machine/mod.rs")),
        ("Cpu", include_str!("machine/cpu.rs")),
        ("Hw", include_str!("machine/cpu.rs")),
        ("Task", include_str!("machine/task.rs")),
    ];

    /// The field names of `pub struct name { ... }` in `src`.
    fn fields(name: &str, src: &str) -> Vec<String> {
        let head = format!("pub struct {name} {{");
        let start = src
            .lines()
            .position(|l| l.trim_start() == head)
            .unwrap_or_else(|| panic!("no `{head}` in its source"));
        let mut out = Vec::new();
        for l in src.lines().skip(start + 1) {
            let l = l.trim();
            if l == "}" {
                break;
            }
            if l.starts_with("//") || l.starts_with('#') || l.is_empty() {
                continue;
            }
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            if let Some((f, _)) = l.split_once(':') {
                if f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    out.push(format!("{name}.{f}"));
                }
            }
        }
        assert!(!out.is_empty(), "no fields found in {name}");
        out
    }

    /// The checker's one-CPU machine, staged to its worker in user mode.
    fn staged() -> (Machine, Roles) {
        let generic = crate::design::by_name("generic-entry").unwrap();
        let cfg = Config {
            preempt: true,
            ..Config::timeless(generic, 2, CpuSet(0b10))
        };
        let mut m = Machine::new(cfg);
        let rx = m.new_chan(ChanKind::Pipe);
        let prog = Program::PingPong {
            tx: None,
            rx,
            user_ns: 1_000,
            write_next: false,
        };
        let w = m.spawn("worker-a", prog, 1);
        m.tasks[w].pinned = Some(1);
        let mut n = 0;
        while !(m.cpus[1].mode == Mode::User && m.cpus[1].current == w) {
            m.sync_clocks_drop_timers();
            m.advance(1);
            n += 1;
            assert!(n < 10_000, "staging did not reach user mode");
        }
        m.sync_clocks_drop_timers();
        let roles = Roles {
            cpus: vec![1],
            workers: vec![w],
            rx: vec![rx],
            symmetric: false,
            keep_going: 1,
        };
        (m, roles)
    }

    type Change = fn(&mut Machine, TaskId);

    /// For each hashed field: a change that must move the fingerprint (`w` is the worker, on
    /// CPU 1, in user mode).
    fn changes() -> Vec<(&'static str, Change)> {
        fn cpu(m: &mut Machine) -> &mut Cpu {
            &mut m.cpus[1]
        }
        fn task(m: &mut Machine, w: TaskId) -> &mut Task {
            &mut m.tasks[w]
        }
        vec![
            ("Machine.cpus", |m, _| cpu(m).mode = Mode::Kernel),
            ("Machine.tasks", |m, w| {
                task(m, w).ti_flags ^= tif::SIGPENDING
            }),
            ("Machine.chans", |m, _| m.chans[0].bytes += 1),
            ("Machine.rcu", |m, _| m.rcu.scan.start(0, 0b11)),
            ("Machine.monitor", |m, _| m.monitor.count += 1),
            ("Cpu.pcpu", |m, _| {
                let n = cpu(m).pcpu.ct.nesting();
                cpu(m).pcpu.ct.set_nesting(n + 1)
            }),
            ("Cpu.hw", |m, _| cpu(m).hw.irqs_on ^= true),
            ("Cpu.mode", |m, _| cpu(m).mode = Mode::Halted),
            ("Cpu.current", |m, _| cpu(m).current = cpu(m).idle_task),
            ("Cpu.idle_task", |m, w| cpu(m).idle_task = w),
            ("Cpu.rq", |m, _| {
                let idle = cpu(m).idle_task;
                cpu(m).rq.push(idle)
            }),
            ("Cpu.next_tick", |m, _| {
                cpu(m).next_tick = if cpu(m).next_tick == NEVER { 0 } else { NEVER }
            }),
            ("Cpu.pending", |m, _| cpu(m).pending[2] = 0),
            ("Cpu.nmi_at", |m, _| cpu(m).nmi_at = 0),
            ("Cpu.csd", |m, _| cpu(m).csd ^= 1),
            ("Cpu.work_setter", |m, _| cpu(m).work_setter = Some(0)),
            ("Cpu.softirq", |m, _| cpu(m).softirq.pending ^= 1 << 3),
            ("Cpu.nocb_defer_wakeup", |m, _| {
                cpu(m).nocb_defer_wakeup ^= true
            }),
            ("Cpu.ksoftirqd", |m, w| cpu(m).ksoftirqd = Some(w)),
            ("Hw.irqs_on", |m, _| cpu(m).hw.irqs_on ^= true),
            ("Hw.preempt_count", |m, _| cpu(m).hw.preempt_count += 1),
            ("Hw.cur_has_mm", |m, _| cpu(m).hw.cur_has_mm ^= true),
            ("Hw.cur_is_idle", |m, _| cpu(m).hw.cur_is_idle ^= true),
            ("Hw.owed", |m, _| cpu(m).hw.owed ^= 1),
            ("Hw.flush_pending", |m, _| cpu(m).hw.flush_pending ^= 1),
            ("Hw.flush_depth", |m, _| cpu(m).hw.flush_depth += 1),
            ("Task.state", |m, w| task(m, w).state = TaskState::Runnable),
            ("Task.cpu", |m, w| task(m, w).cpu = 0),
            ("Task.ti_flags", |m, w| {
                task(m, w).ti_flags ^= tif::NEED_RESCHED
            }),
            ("Task.vtime", |m, w| {
                task(m, w).vtime.vtime.state = VtimeState::Guest
            }),
            ("Task.frames", |m, w| {
                let f = Frame::new(m.design.idle, crate::machine::EntryKind::Idle);
                task(m, w).frames.push(f)
            }),
            ("Task.entries", |m, w| {
                let path = m.design.idle;
                let regs = crate::machine::Regs {
                    user: true,
                    irqs_on: true,
                    vector: None,
                };
                task(m, w).push_entry(crate::machine::EntryKind::Irq, regs, path)
            }),
            ("Task.prog", |m, w| {
                if let Program::PingPong { write_next, .. } = &mut task(m, w).prog {
                    *write_next ^= true;
                }
            }),
            ("Task.user_left_ns", |m, w| {
                let t = task(m, w);
                t.user_left_ns = if t.user_left_ns == 0 { 1 } else { 0 }
            }),
            ("Task.then", |m, w| {
                let t = task(m, w);
                t.then = if t.then == Then::Fault {
                    Then::Continue
                } else {
                    Then::Fault
                }
            }),
            ("Task.last_ret", |m, w| {
                let t = task(m, w);
                t.last_ret = if t.last_ret.is_some() { None } else { Some(0) }
            }),
            ("Task.cur_syscall", |m, w| {
                let t = task(m, w);
                t.cur_syscall = if t.cur_syscall.is_some() {
                    None
                } else {
                    Some(Syscall::Getpid)
                }
            }),
            ("Task.rcu_depth", |m, w| task(m, w).rcu_depth += 1),
        ]
    }

    #[test]
    fn every_field_is_hashed_or_ignored_with_a_reason() {
        let changes = changes();
        let hashed: Vec<&str> = changes.iter().map(|(n, _)| *n).collect();
        for (name, why) in IGNORED {
            assert!(!why.is_empty(), "{name}: no reason");
            assert!(!hashed.contains(name), "{name} is both hashed and ignored");
        }
        let mut undecided = Vec::new();
        for (s, src) in SOURCES {
            for f in fields(s, src) {
                let decided = hashed.contains(&f.as_str()) || IGNORED.iter().any(|(n, _)| *n == f);
                if !decided {
                    undecided.push(f);
                }
            }
        }
        assert!(
            undecided.is_empty(),
            "fields neither hashed (a change in `changes()`) nor in IGNORED with a reason: {undecided:?}"
        );
        // No stale entries either.
        let all: Vec<String> = SOURCES.iter().flat_map(|(s, src)| fields(s, src)).collect();
        for n in hashed.iter().chain(IGNORED.iter().map(|(n, _)| n)) {
            assert!(all.iter().any(|f| f == n), "{n} is not a field any more");
        }
    }

    #[test]
    fn every_hashed_field_moves_the_fingerprint() {
        let (base, roles) = staged();
        let w = roles.workers[0];
        let fp = roles.fingerprint(&base);
        assert_eq!(
            fp,
            roles.fingerprint(&base.clone()),
            "a clone is the same state"
        );
        for (name, change) in changes() {
            let mut m = base.clone();
            change(&mut m, w);
            assert_ne!(
                roles.fingerprint(&m),
                fp,
                "{name} changed and the fingerprint did not"
            );
        }
    }

    #[test]
    fn a_reader_is_hashed_by_whether_it_predates_the_grace_period() {
        // Task.rcu_since_gp is on IGNORED because its value is not hashed: what it decides is.
        let (mut m, roles) = staged();
        let w = roles.workers[0];
        m.tasks[w].rcu_depth = 1;
        m.rcu.scan.start(0, 0b10);
        m.tasks[w].rcu_since_gp = m.rcu.gp_seq();
        let late = roles.fingerprint(&m);
        m.tasks[w].rcu_since_gp = m.rcu.gp_seq() + 5;
        assert_eq!(
            roles.fingerprint(&m),
            late,
            "both began after the grace period"
        );
        m.tasks[w].rcu_since_gp = 0;
        assert_ne!(roles.fingerprint(&m), late, "this one predates it");
    }

    #[test]
    fn time_passing_during_a_held_user_burst_changes_nothing() {
        // Two CPUs share one clock in the checker: another CPU's steps move it while this one's
        // user burst is held. Whether an IRQ from user then finds the burst done must not depend
        // on how far the clock moved (it did: the burst shrank by the time that passed, and
        // two states with one fingerprint diverged).
        let (mut quiet, roles) = staged();
        quiet.hold_user_burst(1);
        let mut busy = quiet.clone();
        busy.cpus[0].hw.now += 10_000_000;
        for m in [&mut quiet, &mut busy] {
            m.sync_clocks_drop_timers();
            m.hold_user_burst(1);
        }
        assert_eq!(roles.fingerprint(&quiet), roles.fingerprint(&busy));
        for m in [&mut quiet, &mut busy] {
            m.raise_irq(1, crate::machine::Vector::Device);
            m.advance(1);
            assert!(!m.tasks[m.cpus[1].current].entries.is_empty(), "IRQ taken");
        }
        let w = roles.workers[0];
        assert!(
            busy.tasks[w].user_left_ns > 0,
            "the held burst was consumed by time"
        );
        assert_eq!(roles.fingerprint(&quiet), roles.fingerprint(&busy));
    }

    #[test]
    fn ignored_fields_leave_the_fingerprint_alone() {
        let (base, roles) = staged();
        let w = roles.workers[0];
        let fp = roles.fingerprint(&base);
        let mut m = base.clone();
        m.cpus[1].hw.now += 12_345;
        m.cpus[1].counters.steps += 7;
        m.cpus[1].times.user_ns += 99;
        m.tasks[w].pid += 100;
        m.tasks[w].sum_exec_ns += 1;
        m.tasks[w].user_ns += 1;
        m.steps += 1;
        m.next_pid += 1;
        m.chans[0].written_total += 3;
        assert_eq!(roles.fingerprint(&m), fp);
    }
}
