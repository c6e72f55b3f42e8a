//! # ctxtrack-core: Linux context tracking as a `no_std` library
//!
//! This crate is the part of ctxtrack that would live in a kernel. It keeps, per CPU, whether the
//! CPU runs KERNEL, IDLE, USER or GUEST code, merged with the RCU "watching" counter in one state
//! word exactly as Linux 6.x does (`kernel/context_tracking.c`,
//! `include/linux/context_tracking_state.h`), plus the pieces that depend on it: RCU extended
//! quiescent state (EQS) snapshots ([`rcu`]), generic vtime accounting ([`vtime`],
//! `kernel/sched/cputime.c`), nohz_full tick dependencies ([`tick`]) and the static key that makes
//! all of it free while inactive ([`static_key`]).
//!
//! The crate knows nothing about who drives it: the hardware (IRQ flag, clock, CPU id, remote
//! wake) is reached through the [`arch::Arch`] trait, which the simulator, the host-thread backend
//! and a bare-metal kernel each implement.
//!
//! Architecture invariants:
//! - no allocation, no panics on misuse: every `CT_WARN_ON`/`WARN_ON_ONCE` of Linux becomes a typed
//!   [`violation::Violation`] recorded in the per-CPU [`violation::WarnLog`];
//! - the only fully ordered update of the state word is [`context_tracking::ContextTracking::ct_state_inc`],
//!   mirroring `ct_state_inc()`; remote readers use acquire loads;
//! - every primitive operation a path performs (call, static branch, atomic RMW, irq save/restore,
//!   clock read, vtime and RCU bookkeeping) is counted in [`stats::CtStats`], so a cost model can be
//!   applied from outside without the core knowing about cycles.
#![no_std]
#![deny(missing_docs)]

pub mod arch;
pub mod context_tracking;
pub mod entry;
pub mod gp;
pub mod rcu;
pub mod state;
pub mod static_key;
pub mod stats;
pub mod sync;
pub mod tick;
pub mod violation;
pub mod vtime;

pub use arch::Arch;
pub use context_tracking::{
    ct_set_cpu_work, ct_set_cpu_work_begin, ct_set_cpu_work_try, ContextTracking, Ct, PerCpu,
};
pub use state::{CtLayout, CtState, CtWork};
pub use static_key::StaticKey;
pub use stats::{CtStats, Prim, Transition};
pub use violation::{Violation, WarnLog};
pub use vtime::{TaskVtime, VtimeState};
