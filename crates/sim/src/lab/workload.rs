//! Workloads: build the tasks and channels of a run.

use crate::config::Config;
use crate::limits::{self, Footprint};
use crate::machine::ipc::ChanKind;
use crate::machine::program::{MsgMain, MsgWorker, Program, Role};
use crate::machine::Machine;
use serde::Serialize;

/// `num_fds` in `bench_sched_messaging()`: senders and receivers per group.
pub const NUM_FDS: usize = 20;
/// `DATASIZE`: bytes per message.
pub const DATASIZE: u64 = 100;

/// A workload and its options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Workload {
    /// `perf bench sched messaging`.
    Messaging {
        /// `-g/--group`.
        groups: u32,
        /// `-l/--nr_loops`.
        loops: u64,
        /// `-p/--pipe`.
        pipe: bool,
        /// `-t/--thread`.
        thread: bool,
    },
    /// One spinning task per nohz_full CPU (per CPU but 0 when none are nohz_full).
    CpuBound,
    /// One `getpid()` loop per nohz_full CPU.
    SyscallStorm {
        /// User work between syscalls (ns).
        user_ns: u64,
        /// Set `TIF_USER_RETURN_NOTIFY` every N syscalls (0: never).
        urn_every: u64,
        /// Tasks per target CPU (more than one keeps the tick and makes them preempt each other).
        per_cpu: u32,
    },
}

impl Workload {
    /// perf's defaults.
    pub fn messaging_default() -> Workload {
        Workload::Messaging {
            groups: 10,
            loops: 100,
            pipe: false,
            thread: false,
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Messaging { .. } => "messaging",
            Workload::CpuBound => "cpu-bound",
            Workload::SyscallStorm { .. } => "syscall-storm",
        }
    }

    /// Whether the workload ends by itself (else `--duration` ends it).
    pub fn finite(&self) -> bool {
        matches!(self, Workload::Messaging { .. })
    }
}

/// Creates the workload's tasks on `m`.
pub fn install(m: &mut Machine, w: &Workload) {
    let targets: Vec<usize> = {
        let nz: Vec<usize> = m.config().effective_nohz_full().iter().collect();
        if nz.is_empty() {
            (1..m.config().cpus.max(2))
                .filter(|&c| c < m.config().cpus)
                .collect()
        } else {
            nz
        }
    };
    match *w {
        Workload::Messaging {
            groups,
            loops,
            pipe,
            thread,
        } => {
            let kind = if pipe {
                ChanKind::Pipe
            } else {
                ChanKind::Socket
            };
            let ready = m.new_chan(kind);
            let wake = m.new_chan(kind);
            let mut children = Vec::new();
            for _ in 0..groups {
                let inputs: Vec<_> = (0..NUM_FDS).map(|_| m.new_chan(kind)).collect();
                for &input in &inputs {
                    let role = Role::Receiver {
                        input,
                        packets: (NUM_FDS as u64) * loops,
                    };
                    children.push(MsgWorker::new(
                        role,
                        ready,
                        wake,
                        2,
                        m.cost.user_op * 1000 / m.cost.cpu_mhz,
                    ));
                }
                for _ in 0..NUM_FDS {
                    let role = Role::Sender {
                        out: inputs.clone(),
                        loops,
                    };
                    children.push(MsgWorker::new(
                        role,
                        ready,
                        wake,
                        2,
                        m.cost.user_op * 1000 / m.cost.cpu_mhz,
                    ));
                }
            }
            let main = MsgMain::new(children, ready, wake, thread);
            let id = m.spawn("sched-messaging", Program::MsgMain(main), 0);
            m.main_task = Some(id);
        }
        Workload::CpuBound => {
            for c in targets {
                m.spawn(
                    "spin",
                    Program::Spin {
                        chunk_ns: 1_000_000_000,
                    },
                    c,
                );
            }
        }
        Workload::SyscallStorm {
            user_ns,
            urn_every,
            per_cpu,
        } => {
            for c in targets {
                for _ in 0..per_cpu.max(1) {
                    let prog = Program::SyscallStorm {
                        user_ns,
                        remaining: None,
                    };
                    let id = m.spawn("syscall-storm", prog, c);
                    m.register_user_return_notifier(id, urn_every);
                }
            }
        }
    }
}

/// What a workload will need ([`Footprint`], checked against the limits before it runs).
impl Footprint {
    /// The footprint of `w` on a machine configured by `cfg`.
    pub fn of(cfg: &Config, w: &Workload) -> Footprint {
        let targets = (cfg.effective_nohz_full().len() as u64).max(1);
        let (workers, chans, per_worker) = match *w {
            Workload::Messaging { groups, .. } => {
                let g = groups as u64;
                let fds = NUM_FDS as u64;
                // The parent holds every worker until it forks it; a sender lists its receivers.
                let per = std::mem::size_of::<crate::machine::program::MsgWorker>() as u64
                    + fds * std::mem::size_of::<crate::machine::ChanId>() as u64;
                (g * 2 * fds + 1, 2 + g * fds, per)
            }
            Workload::CpuBound => (targets, 0, 0),
            Workload::SyscallStorm { per_cpu, .. } => (targets * per_cpu.max(1) as u64, 0, 0),
        };
        let tasks = workers + cfg.cpus as u64;
        let task_bytes = limits::grown(tasks) * std::mem::size_of::<crate::machine::Task>() as u64
            + tasks * (limits::TASK_HEAP_BYTES + per_worker);
        let chan_bytes = limits::grown(chans)
            * std::mem::size_of::<crate::machine::ipc::Channel>() as u64
            + chans * limits::CHAN_HEAP_BYTES;
        Footprint {
            tasks,
            chans,
            bytes: task_bytes + chan_bytes + limits::MACHINE_BYTES,
        }
    }
}
