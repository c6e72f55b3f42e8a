//! Limits that keep a run inside the host machine: a task count and a memory budget.
//!
//! A workload is admitted up front from its [`Footprint`] (refused with the figure it would need),
//! and the run loop checks both limits as it goes (forks add tasks; channels and queues grow), so
//! going past either ends the run with a `model_limit` verdict naming the limit, never an OOM
//! kill. The memory in use is what the process's allocator reports when the binary installed a
//! probe ([`set_memory_probe`]), else the machine's own estimate of its heap.

use std::sync::OnceLock;

/// Linux's default `pid_max` (`PID_MAX_DEFAULT`, 32768): the default task limit, so a workload
/// that a default Linux could not fork either is refused rather than simulated for hours.
pub const PID_MAX_DEFAULT: usize = 32_768;

/// The limits of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most tasks alive or dead the machine may hold (idle tasks included).
    pub max_tasks: usize,
    /// Most heap the run may use, in bytes.
    pub max_memory_bytes: u64,
}

impl Default for Limits {
    /// `pid_max` tasks and 4 GiB (the command line derives its memory default from the host).
    fn default() -> Limits {
        Limits {
            max_tasks: PID_MAX_DEFAULT,
            max_memory_bytes: 4096 << 20,
        }
    }
}

/// What a workload needs before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Tasks, idle tasks included.
    pub tasks: u64,
    /// Channels (pipes, socket pairs).
    pub chans: u64,
    /// Estimated peak heap of the machine, in bytes.
    pub bytes: u64,
}

/// Bytes a task costs besides its slot in the task vector: its `comm`, its run-queue and
/// wait-queue entries, and a worker's channel list (a sender holds one per receiver).
pub(crate) const TASK_HEAP_BYTES: u64 = 64 + 4 * std::mem::size_of::<usize>() as u64;
/// Bytes a channel costs besides its slot: its two wait queues.
pub(crate) const CHAN_HEAP_BYTES: u64 = 4 * std::mem::size_of::<usize>() as u64;
/// Fixed cost of a machine (per-CPU state, monitor, report), generously.
pub(crate) const MACHINE_BYTES: u64 = 1 << 20;

/// The size a vector of `n` elements reaches by doubling.
pub(crate) fn grown(n: u64) -> u64 {
    n.max(4).next_power_of_two()
}

impl Limits {
    /// Refuses a workload whose footprint is over a limit, saying what it would need.
    pub fn admit(&self, f: &Footprint) -> Result<(), String> {
        if f.tasks > self.max_tasks as u64 {
            return Err(format!(
                "the workload needs {} tasks, over --max-tasks {} (Linux's default pid_max is {}); raise --max-tasks to run it",
                f.tasks, self.max_tasks, PID_MAX_DEFAULT
            ));
        }
        if f.bytes > self.max_memory_bytes {
            return Err(format!(
                "the workload needs about {} MiB to simulate ({} tasks, {} channels), over --max-memory {} MiB; raise --max-memory to run it",
                f.bytes.div_ceil(1 << 20),
                f.tasks,
                f.chans,
                self.max_memory_bytes >> 20
            ));
        }
        Ok(())
    }
}

pub(crate) static MEMORY_PROBE: OnceLock<fn() -> u64> = OnceLock::new();

/// Installs the process's measure of heap in use (a counting global allocator in the binary).
/// Set once; later calls are ignored.
pub fn set_memory_probe(probe: fn() -> u64) {
    let _ = MEMORY_PROBE.set(probe);
}
