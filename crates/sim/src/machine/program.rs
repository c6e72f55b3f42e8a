//! User programs: what a task does in user mode between kernel entries.
//!
//! A program is a small state machine asked for its next [`UserOp`] each time the previous one
//! finished (a syscall returned, a fault was handled, a compute burst ended). The messaging
//! programs follow `tools/perf/bench/sched-messaging.c` step by step.

use crate::machine::ChanId;

/// A system call a program makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    /// `read(fd, buf, len)`.
    Read { ch: ChanId, len: u64 },
    /// `write(fd, buf, len)`.
    Write { ch: ChanId, len: u64 },
    /// `poll(fd, POLLIN, -1)`.
    Poll { ch: ChanId },
    /// `getpid()`: the cheapest real syscall.
    Getpid,
    /// `fork()` (or `clone()` of a thread with `thread`) of the program's child number `child`.
    Fork { child: u32, thread: bool },
    /// `wait(&status)`: reap one exited child.
    Wait,
    /// `exit(0)`.
    Exit,
}

impl Syscall {
    /// x86-64 syscall number (for `sys_enter: NR %ld`).
    pub fn nr(&self) -> u32 {
        match self {
            Syscall::Read { .. } => 0,
            Syscall::Write { .. } => 1,
            Syscall::Poll { .. } => 7,
            Syscall::Getpid => 39,
            Syscall::Fork { .. } => 56,
            Syscall::Wait => 61,
            Syscall::Exit => 60,
        }
    }
}

/// What happens when a compute burst ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Then {
    /// Enter the kernel with this syscall.
    Syscall(Syscall),
    /// Touch a new page: a user page fault.
    Fault,
    /// Record a benchmark timestamp (`gettimeofday` through the vDSO: no kernel entry).
    Mark(Mark),
    /// Nothing: ask the program again.
    Continue,
}

/// Benchmark timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mark {
    /// `gettimeofday(&start)` after the start barrier.
    Start,
    /// `gettimeofday(&stop)` after reaping all workers.
    Stop,
}

/// One user-mode operation: compute for `compute_ns`, then do `then`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserOp {
    /// User-mode time before `then`.
    pub compute_ns: u64,
    /// What ends the burst.
    pub then: Then,
}

/// The messaging benchmark's fds for one worker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Writes `loops` rounds of one message to every receiver of its group.
    Sender { out: Vec<ChanId>, loops: u64 },
    /// Reads `packets` messages from its own channel.
    Receiver { input: ChanId, packets: u64 },
}

/// Program state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Program {
    /// The idle task: never in user mode.
    Idle,
    /// Spins in user mode forever, in bursts of `chunk_ns` (a burst end is not a kernel entry).
    Spin { chunk_ns: u64 },
    /// `getpid()` in a loop, `user_ns` of user work between calls.
    SyscallStorm {
        user_ns: u64,
        remaining: Option<u64>,
    },
    /// Alternates `write(tx, 1)` and `read(rx, 1)` forever, `user_ns` of user work before each
    /// (no `tx`: reads only). The model checker's workload: every call looks its fd up under
    /// RCU, and a read on an empty pipe blocks.
    PingPong {
        tx: Option<ChanId>,
        rx: ChanId,
        user_ns: u64,
        write_next: bool,
    },
    /// The messaging parent: forks workers, runs the start barrier, reaps.
    MsgMain(MsgMain),
    /// A messaging worker.
    MsgWorker(MsgWorker),
}

/// `bench_sched_messaging()` in the parent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MsgMain {
    /// Workers to fork, in order (receivers then senders per group, as `group()` does).
    pub children: Vec<MsgWorker>,
    /// `readyfds[0]`.
    pub ready: ChanId,
    /// `wakefds[1]` (written to release the barrier).
    pub wake: ChanId,
    /// `-t`: workers are threads (`clone`), not processes.
    pub thread: bool,
    pc: u32,
    forked: u32,
    ready_got: u64,
    reaped: u32,
}

impl MsgMain {
    /// A parent that will fork `children`.
    pub fn new(children: Vec<MsgWorker>, ready: ChanId, wake: ChanId, thread: bool) -> MsgMain {
        MsgMain {
            children,
            ready,
            wake,
            thread,
            pc: 0,
            forked: 0,
            ready_got: 0,
            reaped: 0,
        }
    }
}

/// `sender()` / `receiver()` in a forked worker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MsgWorker {
    /// Sender or receiver.
    pub role: Role,
    /// `ready_out` (each worker writes one byte).
    pub ready: ChanId,
    /// `wakefd` (each worker polls it).
    pub wake: ChanId,
    /// Page faults taken on first touch after fork.
    pub startup_faults: u32,
    /// User work per message (libc wrapper, loop).
    pub user_ns: u64,
    pc: u32,
    i: u64,
    j: usize,
    faults_done: u32,
    partial: u64,
}

impl MsgWorker {
    /// A worker at its first instruction after `fork()`.
    pub fn new(
        role: Role,
        ready: ChanId,
        wake: ChanId,
        startup_faults: u32,
        user_ns: u64,
    ) -> MsgWorker {
        MsgWorker {
            role,
            ready,
            wake,
            startup_faults,
            user_ns,
            pc: 0,
            i: 0,
            j: 0,
            faults_done: 0,
            partial: 0,
        }
    }
}

impl Program {
    /// The child program created by `fork()` number `n` (messaging parent only).
    pub fn fork_child(&self, n: u32) -> Option<Program> {
        match self {
            Program::MsgMain(m) => m.children.get(n as usize).cloned().map(Program::MsgWorker),
            _ => None,
        }
    }

    /// The next operation, given the return value of the previous syscall (`None` when the
    /// previous op was not a syscall). `None` means the program has nothing more to do.
    pub fn next(&mut self, ret: Option<i64>) -> UserOp {
        let sys = |compute_ns, s| UserOp {
            compute_ns,
            then: Then::Syscall(s),
        };
        match self {
            Program::Idle => UserOp {
                compute_ns: u64::MAX,
                then: Then::Continue,
            },
            Program::Spin { chunk_ns } => UserOp {
                compute_ns: *chunk_ns,
                then: Then::Continue,
            },
            Program::SyscallStorm { user_ns, remaining } => match remaining {
                Some(0) => sys(*user_ns, Syscall::Exit),
                Some(n) => {
                    *n -= 1;
                    sys(*user_ns, Syscall::Getpid)
                }
                None => sys(*user_ns, Syscall::Getpid),
            },
            Program::PingPong {
                tx,
                rx,
                user_ns,
                write_next,
            } => match tx {
                Some(tx) if *write_next => {
                    *write_next = false;
                    sys(*user_ns, Syscall::Write { ch: *tx, len: 1 })
                }
                _ => {
                    *write_next = true;
                    sys(*user_ns, Syscall::Read { ch: *rx, len: 1 })
                }
            },
            Program::MsgMain(m) => {
                // pc: 0 fork all, 1 read ready bytes, 2 mark start, 3 write wake, 4 wait all,
                // 5 mark stop, 6 exit.
                loop {
                    match m.pc {
                        0 if (m.forked as usize) < m.children.len() => {
                            m.forked += 1;
                            return sys(
                                2_000,
                                Syscall::Fork {
                                    child: m.forked - 1,
                                    thread: m.thread,
                                },
                            );
                        }
                        0 => m.pc = 1,
                        1 => {
                            let total = m.children.len() as u64;
                            if m.ready_got >= total {
                                m.pc = 2;
                                continue;
                            }
                            m.pc = 11;
                            return sys(
                                200,
                                Syscall::Read {
                                    ch: m.ready,
                                    len: total - m.ready_got,
                                },
                            );
                        }
                        11 => {
                            m.ready_got += ret.unwrap_or(0).max(0) as u64;
                            m.pc = 1;
                        }
                        2 => {
                            m.pc = 3;
                            return UserOp {
                                compute_ns: 100,
                                then: Then::Mark(Mark::Start),
                            };
                        }
                        3 => {
                            m.pc = 4;
                            return sys(100, Syscall::Write { ch: m.wake, len: 1 });
                        }
                        4 if (m.reaped as usize) < m.children.len() => {
                            m.pc = 12;
                            return sys(100, Syscall::Wait);
                        }
                        12 => {
                            if ret.unwrap_or(-1) > 0 {
                                m.reaped += 1;
                            }
                            m.pc = 4;
                        }
                        4 => {
                            m.pc = 5;
                            return UserOp {
                                compute_ns: 100,
                                then: Then::Mark(Mark::Stop),
                            };
                        }
                        _ => return sys(1_000, Syscall::Exit),
                    }
                }
            }
            Program::MsgWorker(w) => {
                // pc: 0 faults, 1 ready, 2 poll, 3 main loop, 4 exit.
                loop {
                    match w.pc {
                        0 if w.faults_done < w.startup_faults => {
                            w.faults_done += 1;
                            return UserOp {
                                compute_ns: 300,
                                then: Then::Fault,
                            };
                        }
                        0 => {
                            w.pc = 1;
                            return sys(
                                500,
                                Syscall::Write {
                                    ch: w.ready,
                                    len: 1,
                                },
                            );
                        }
                        1 => {
                            w.pc = 2;
                            return sys(100, Syscall::Poll { ch: w.wake });
                        }
                        2 => {
                            w.pc = 3;
                            w.i = 0;
                            w.j = 0;
                        }
                        3 => match &w.role {
                            Role::Sender { out, loops } => {
                                if w.i >= *loops {
                                    w.pc = 4;
                                    continue;
                                }
                                let ch = out[w.j];
                                w.j += 1;
                                if w.j == out.len() {
                                    w.j = 0;
                                    w.i += 1;
                                }
                                return sys(w.user_ns, Syscall::Write { ch, len: 100 });
                            }
                            Role::Receiver { input, packets } => {
                                if w.i >= *packets {
                                    w.pc = 4;
                                    continue;
                                }
                                w.pc = 13;
                                return sys(
                                    w.user_ns,
                                    Syscall::Read {
                                        ch: *input,
                                        len: 100,
                                    },
                                );
                            }
                        },
                        13 => {
                            // perf loops on short reads until 100 bytes (one message) arrived.
                            w.partial += ret.unwrap_or(0).max(0) as u64;
                            if w.partial >= 100 {
                                w.partial -= 100;
                                w.i += 1;
                            }
                            w.pc = 3;
                        }
                        _ => return sys(200, Syscall::Exit),
                    }
                }
            }
        }
    }
}
