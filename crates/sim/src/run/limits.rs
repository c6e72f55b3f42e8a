//! The run loop's check of the limits ([`crate::limits`]): tasks forked and memory in use.

use crate::machine::{Machine, Task};

/// Heap in use: the installed probe's figure, else `m`'s own estimate of its heap.
pub fn memory_in_use(m: &Machine) -> u64 {
    match crate::limits::MEMORY_PROBE.get() {
        Some(p) => p(),
        None => estimate(m),
    }
}

/// `m`'s heap by its own count: what its vectors hold and the per-item heap of
/// [`Footprint::of`].
pub(crate) fn estimate(m: &Machine) -> u64 {
    (m.tasks.capacity() * std::mem::size_of::<Task>()) as u64
        + m.tasks.len() as u64 * crate::limits::TASK_HEAP_BYTES
        + (m.chans.capacity() * std::mem::size_of::<crate::machine::ipc::Channel>()) as u64
        + m.chans.len() as u64 * crate::limits::CHAN_HEAP_BYTES
        + crate::limits::MACHINE_BYTES
}

/// Checks `m` against its limits; `Some(what)` names the limit it went past.
pub(crate) fn exceeded(m: &Machine) -> Option<String> {
    let l = &m.cfg.limits;
    if m.tasks.len() > l.max_tasks {
        return Some(format!(
            "--max-tasks {}: the run forked past it ({} tasks)",
            l.max_tasks,
            m.tasks.len()
        ));
    }
    let used = memory_in_use(m);
    if used > l.max_memory_bytes {
        return Some(format!(
            "--max-memory {} MiB: the run uses {} MiB ({} tasks, {} channels)",
            l.max_memory_bytes >> 20,
            used >> 20,
            m.tasks.len(),
            m.chans.len()
        ));
    }
    None
}
