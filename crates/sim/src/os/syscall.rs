//! Syscall bodies: pipes, sockets, fork, exit, wait, and signals.

use super::*;
use crate::design::Flow;
use crate::machine::ipc::{ChanKind, Io};
use crate::machine::program::Syscall;
use crate::machine::*;

impl K<'_> {
    /// Whether the current syscall looks up an fd (under RCU).
    pub fn syscall_uses_fd(&mut self) -> bool {
        matches!(
            self.cur().cur_syscall,
            Some(Syscall::Read { .. } | Syscall::Write { .. } | Syscall::Poll { .. })
        )
    }

    /// Runs the current syscall's body: `Return` when done, `Retry` after blocking.
    pub fn syscall_body(&mut self) -> Flow {
        let t = self.current();
        let Some(sc) = self.m.tasks[t].cur_syscall else {
            return Flow::Return;
        };
        let cost = &self.m.cost;
        match sc {
            Syscall::Getpid => {
                self.extra_cycles += cost.getpid;
                if self.m.tasks[t].urn_every != 0
                    && self.m.tasks[t]
                        .syscalls
                        .is_multiple_of(self.m.tasks[t].urn_every)
                {
                    // A KVM-like user of user_return_notifier_register().
                    self.m.tasks[t].ti_flags |= tif::USER_RETURN_NOTIFY;
                }
                self.m.tasks[t].last_ret = Some(self.m.tasks[t].pid as i64);
                Flow::Return
            }
            Syscall::Read { ch, len } => {
                let kind = self.m.chans[ch as usize].kind;
                self.extra_cycles += if kind == ChanKind::Pipe {
                    cost.pipe_read
                } else {
                    cost.sock_read
                };
                match self.m.chans[ch as usize].read(len) {
                    Io::Done { bytes, wake } => {
                        self.m.tasks[t].last_ret = Some(bytes as i64);
                        if wake {
                            self.wake_writers(ch);
                        }
                        Flow::Return
                    }
                    Io::WouldBlock => self.block_on(ch, true),
                }
            }
            Syscall::Write { ch, len } => {
                let kind = self.m.chans[ch as usize].kind;
                self.extra_cycles += if kind == ChanKind::Pipe {
                    cost.pipe_write
                } else {
                    cost.sock_write
                };
                match self.write_wake(ch, len) {
                    Some(bytes) => {
                        self.m.tasks[t].last_ret = Some(bytes as i64);
                        Flow::Return
                    }
                    None => self.block_on(ch, false),
                }
            }
            Syscall::Poll { ch } => {
                self.extra_cycles += cost.poll;
                if self.m.chans[ch as usize].readable() {
                    self.m.tasks[t].last_ret = Some(1);
                    Flow::Return
                } else {
                    self.block_on(ch, true)
                }
            }
            Syscall::Fork { child, thread } => {
                // A thread shares the mm: clone() without copying page tables, ~1/4 of fork().
                self.extra_cycles += if thread { cost.fork / 4 } else { cost.fork };
                // Where Linux's fork() fails with -EAGAIN at pid_max, the run ends with the limit
                // named (a workload that half-forks would measure something else).
                let max = self.m.cfg.limits.max_tasks;
                if self.m.tasks.len() >= max {
                    let what = format!("--max-tasks {max}: fork() of task {} refused", max + 1);
                    self.m.monitor.fail_limit(self.cpu, &what, &mut self.m.end);
                    return Flow::Retry;
                }
                let prog = self.m.tasks[t].prog.fork_child(child).unwrap_or(
                    crate::machine::program::Program::Spin {
                        chunk_ns: 1_000_000,
                    },
                );
                let comm = self.m.tasks[t].comm.clone();
                let pid = self.m.alloc_pid();
                let mut nt = Task::new(pid, &comm, prog, self.cpu);
                // Affinity is inherited across fork.
                nt.pinned = self.m.tasks[t].pinned;
                nt.parent = Some(t);
                nt.vruntime = self.m.cpus[self.cpu].min_vruntime;
                nt.push_entry(
                    EntryKind::Fork,
                    Regs {
                        user: true,
                        irqs_on: true,
                        vector: None,
                    },
                    self.m.design.ret_from_fork,
                );
                nt.last_ret = Some(0);
                nt.cur_syscall = Some(sc);
                self.m.tasks.push(crate::machine::Shared::new(nt));
                let id = self.m.tasks.len() - 1;
                self.m.tasks[t].children_alive += 1;
                self.m.tasks[t].last_ret = Some(pid as i64);
                // wake_up_new_task(): sched_balance_fork picks the idlest CPU.
                let target = idlest_cpu(self.m, self.cpu);
                self.m.tasks[id].cpu = target;
                self.m.tasks[id].state = TaskState::Sleeping;
                self.wake_up(id, target, true);
                Flow::Return
            }
            Syscall::Wait => {
                self.extra_cycles += cost.wait;
                let task = &mut self.m.tasks[t];
                if task.zombies > 0 {
                    task.zombies -= 1;
                    task.last_ret = Some(1);
                    Flow::Return
                } else if task.children_alive == 0 {
                    task.last_ret = Some(-10); // -ECHILD
                    Flow::Return
                } else {
                    task.state = TaskState::Sleeping;
                    self.schedule();
                    Flow::Retry
                }
            }
            Syscall::Exit => {
                self.extra_cycles += cost.exit;
                self.do_exit(t);
                Flow::Retry
            }
        }
    }

    /// The data-moving half of `write()`: writes up to `len` bytes, wakes the readers (and, for
    /// a pipe with room left, the next writer). `None` when the writer must sleep.
    pub(crate) fn write_wake(&mut self, ch: ChanId, len: u64) -> Option<u64> {
        let kind = self.m.chans[ch as usize].kind;
        match self.m.chans[ch as usize].write(len) {
            Io::Done { bytes, wake } => {
                if wake {
                    let readers = std::mem::take(&mut self.m.chans[ch as usize].readers);
                    for r in readers {
                        self.try_to_wake_up(r);
                    }
                }
                // pipe_write's wake_next_writer: pass the baton while there is room.
                if kind == ChanKind::Pipe && !self.m.chans[ch as usize].writers.is_empty() {
                    self.wake_writers(ch);
                }
                Some(bytes)
            }
            Io::WouldBlock => None,
        }
    }

    pub(crate) fn block_on(&mut self, ch: ChanId, reader: bool) -> Flow {
        let t = self.current();
        let chan = &mut self.m.chans[ch as usize];
        if reader {
            chan.readers.push(t);
        } else {
            chan.writers.push(t);
        }
        self.m.tasks[t].state = TaskState::Sleeping;
        self.schedule();
        Flow::Retry
    }

    pub(crate) fn wake_writers(&mut self, ch: ChanId) {
        let chan = &mut self.m.chans[ch as usize];
        if chan.writers.is_empty() {
            return;
        }
        match chan.kind {
            // Exclusive wait: one writer at a time.
            ChanKind::Pipe => {
                let w = chan.writers.remove(0);
                self.try_to_wake_up(w);
            }
            ChanKind::Socket => {
                let ws = std::mem::take(&mut chan.writers);
                for w in ws {
                    self.try_to_wake_up(w);
                }
            }
        }
    }

    /// `do_exit()`: notify the parent (SIGCHLD, wake from `wait4`), queue the task struct for
    /// RCU freeing, and schedule away for good.
    pub(crate) fn do_exit(&mut self, t: TaskId) {
        self.m.tasks[t].state = TaskState::Dead;
        if let Some(p) = self.m.tasks[t].parent {
            let parent = &mut self.m.tasks[p];
            parent.zombies += 1;
            parent.children_alive -= 1;
            self.signal_wake_up(p);
        }
        crate::os::rcu::call_rcu(self.m, self.now());
        if self.m.main_task == Some(t) {
            self.m.end = Some(EndReason::WorkloadDone);
        }
        self.schedule();
    }

    /// `signal_wake_up()`: set `TIF_SIGPENDING` and wake the task if it sleeps interruptibly;
    /// a running task on another CPU is kicked (`kick_process`).
    pub(crate) fn signal_wake_up(&mut self, p: TaskId) {
        self.m.tasks[p].ti_flags |= tif::SIGPENDING;
        match self.m.tasks[p].state {
            TaskState::Sleeping => {
                // Remove from any channel wait queue it might be on.
                for ch in self.m.chans.iter_mut() {
                    ch.readers.retain(|&x| x != p);
                    ch.writers.retain(|&x| x != p);
                }
                self.try_to_wake_up(p);
            }
            TaskState::Running => {
                let pc = self.m.tasks[p].cpu;
                if pc != self.cpu {
                    send_ipi(self.m, self.cpu, pc, Vector::Reschedule);
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------- scheduler
}
