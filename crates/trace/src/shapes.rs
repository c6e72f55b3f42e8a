//! Path shapes: the sequence of context-tracking-relevant events one entry path logs, so the
//! model and a real kernel can be compared event for event (`ctxtrack replay --shapes`).
//!
//! Only the events the model emits count (context_tracking, raw_syscalls, irq_vectors,
//! irq handler, sched_switch, tick_stop, page_fault_user); timers, softirqs, RCU utilization
//! markers and wakeups are left out because they depend on the workload, not on the entry code.

use crate::line::Line;
use serde::Serialize;
use std::collections::BTreeMap;

/// The paths whose shapes are collected.
pub const KINDS: &[(&str, &str)] = &[
    ("syscall", "user_exit followed by sys_enter, up to the next user_enter"),
    ("irq_from_user", "user_exit followed by an IRQ vector entry, up to the next user_enter"),
    ("fault_from_user", "user_exit followed by page_fault_user, up to the next user_enter"),
    ("irq_from_idle", "an IRQ vector entry while the idle task runs, up to its exit"),
    ("tick_nohz_full", "local_timer_entry on a tracked CPU running a task, up to local_timer_exit and the tick_stop that follows it"),
    ("context_switch", "sched_switch between two tasks on a tracked CPU, up to the next user_enter"),
];

/// How often one sequence was seen for one kind.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Shape {
    /// Path kind (see [`KINDS`]).
    pub kind: String,
    /// Event names in order.
    pub events: Vec<String>,
    /// Occurrences.
    pub count: u64,
}

const MAX_LEN: usize = 24;

fn modeled(ev: &str) -> bool {
    matches!(
        ev,
        "user_enter"
            | "user_exit"
            | "sys_enter"
            | "sys_exit"
            | "sched_switch"
            | "tick_stop"
            | "page_fault_user"
            | "irq_handler_entry"
            | "irq_handler_exit"
    ) || is_vector(ev)
}

/// An `irq_vectors` entry or exit event.
pub fn is_vector(ev: &str) -> bool {
    ev.strip_suffix("_entry")
        .or_else(|| ev.strip_suffix("_exit"))
        .is_some_and(is_vector_base)
}

/// `base` names an `irq_vectors` pair that brackets an interrupt
/// (`arch/x86/include/asm/trace/irq_vectors.h`): `local_timer`, `reschedule`, ...
pub fn is_vector_base(base: &str) -> bool {
    matches!(
        base,
        "local_timer"
            | "reschedule"
            | "call_function"
            | "call_function_single"
            | "irq_work"
            | "x86_platform_ipi"
            | "error_apic"
            | "spurious_apic"
            | "thermal_apic"
            | "deferred_error_apic"
            | "threshold_apic"
    )
}

#[derive(Default)]
struct Open {
    kind: &'static str,
    events: Vec<String>,
    depth: u32,
    /// The tick ended; a tick_stop right after still belongs to it.
    tail: bool,
}

#[derive(Default)]
struct CpuShapes {
    tracked: bool,
    open: Vec<Open>,
    /// A user_exit waiting for the event that says which path it is.
    after_user_exit: bool,
}

/// Collects shapes from a stream of lines.
#[derive(Default)]
pub struct ShapeCollector {
    cpus: BTreeMap<u32, CpuShapes>,
    counts: BTreeMap<(&'static str, Vec<String>), u64>,
}

impl ShapeCollector {
    /// A collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one event line; `running_pid` is the task the CPU runs (0: idle).
    pub fn feed(&mut self, l: &Line<'_>, running_pid: i32) {
        if !modeled(l.event) {
            return;
        }
        let ev = l.event;
        let st = self.cpus.entry(l.cpu).or_default();
        if ev == "user_enter" || ev == "user_exit" {
            st.tracked = true;
        }
        // Extend open captures and close the finished ones.
        let mut done = Vec::new();
        let mut i = 0;
        while i < st.open.len() {
            let o = &mut st.open[i];
            if o.tail {
                if ev == "tick_stop" {
                    o.events.push(ev.into());
                }
                done.push(st.open.remove(i));
                continue;
            }
            o.events.push(ev.into());
            let finished = match o.kind {
                "irq_from_idle" => {
                    if is_vector(ev) || ev.starts_with("irq_handler") {
                        if ev.ends_with("_entry") {
                            o.depth += 1;
                        } else {
                            o.depth = o.depth.saturating_sub(1);
                        }
                    }
                    o.depth == 0
                }
                "tick_nohz_full" => {
                    if ev == "local_timer_exit" {
                        o.tail = true;
                    }
                    false
                }
                _ => ev == "user_enter",
            };
            if o.events.len() > MAX_LEN {
                st.open.remove(i);
                continue;
            }
            if finished {
                done.push(st.open.remove(i));
                continue;
            }
            i += 1;
        }
        // Open new captures.
        if st.after_user_exit {
            st.after_user_exit = false;
            let kind = match ev {
                "sys_enter" => Some("syscall"),
                "page_fault_user" => Some("fault_from_user"),
                e if is_vector(e) && e.ends_with("_entry") || e == "irq_handler_entry" => {
                    Some("irq_from_user")
                }
                _ => None,
            };
            if let Some(kind) = kind {
                st.open.push(Open {
                    kind,
                    events: vec!["user_exit".into(), ev.into()],
                    ..Default::default()
                });
            }
        }
        if ev == "user_exit" {
            st.after_user_exit = true;
        }
        let vector_entry = (is_vector(ev) && ev.ends_with("_entry")) || ev == "irq_handler_entry";
        if vector_entry && running_pid == 0 && !st.open.iter().any(|o| o.kind == "irq_from_idle") {
            st.open.push(Open {
                kind: "irq_from_idle",
                events: vec![ev.into()],
                depth: 1,
                tail: false,
            });
        }
        if ev == "local_timer_entry" && st.tracked && running_pid != 0 {
            st.open.push(Open {
                kind: "tick_nohz_full",
                events: vec![ev.into()],
                ..Default::default()
            });
        }
        if ev == "sched_switch" && st.tracked && l.pid != 0 {
            let next = crate::event::SchedSwitch::parse(l.fields).map_or(0, |s| s.next_pid);
            if next != 0 {
                st.open.push(Open {
                    kind: "context_switch",
                    events: vec![ev.into()],
                    ..Default::default()
                });
            }
        }
        for mut o in done {
            // An IRQ or fault between a syscall's user_exit and its sys_enter (IRQs are enabled
            // before the tracepoint) came from the kernel: the path is the syscall.
            if matches!(o.kind, "irq_from_user" | "fault_from_user")
                && o.events.iter().any(|e| e == "sys_enter")
            {
                o.kind = "syscall";
            }
            *self.counts.entry((o.kind, o.events)).or_default() += 1;
        }
    }

    /// Every shape seen, by kind (in [`KINDS`] order), most frequent first.
    pub fn shapes(&self) -> Vec<Shape> {
        let mut v: Vec<Shape> = self
            .counts
            .iter()
            .map(|((k, e), &n)| Shape {
                kind: (*k).into(),
                events: e.clone(),
                count: n,
            })
            .collect();
        let rank = |k: &str| {
            KINDS
                .iter()
                .position(|(n, _)| *n == k)
                .unwrap_or(usize::MAX)
        };
        v.sort_by(|a, b| {
            rank(&a.kind)
                .cmp(&rank(&b.kind))
                .then(b.count.cmp(&a.count))
                .then(a.events.cmp(&b.events))
        });
        v
    }

    /// The most frequent shape of `kind`, if any was seen.
    pub fn typical(&self, kind: &str) -> Option<Shape> {
        self.shapes().into_iter().find(|s| s.kind == kind)
    }
}
