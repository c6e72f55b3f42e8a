//! Trace interop for ctxtrack: Linux ftrace text in and out, Chrome/Perfetto trace-event JSON
//! out, and replay of real Linux traces.
//!
//! - [`line`]: one ftrace `trace` line, parsed leniently and printed byte for byte as Linux does.
//! - [`replay`]: rebuild per-CPU context-state timelines from a trace, check what a trace can
//!   show, and account per-task CPU time the way the kernel does.
//! - [`shapes`]: the event sequence of each entry path (syscall, IRQ from user, ...), so a model
//!   and a real kernel can be compared event for event.
//! - [`chrome`]: the Chrome trace-event JSON writer (one track per CPU).
//!
//! - [`event`]: typed trace events (`sched_switch`, `sched_wakeup`, `tick_stop`, IRQ vectors),
//!   one format and one parse each, used by the simulator, the bare-metal kernel and replay.
//!
//! This crate knows nothing of the simulator: it reads and writes text. Without its default
//! `std` feature only [`event`] is built, `no_std`, for the bare-metal kernel.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod event;

#[cfg(feature = "std")]
pub mod chrome;
#[cfg(feature = "std")]
pub mod dat;
#[cfg(feature = "std")]
pub mod line;
#[cfg(feature = "std")]
pub mod noise;
#[cfg(feature = "std")]
pub mod replay;
#[cfg(feature = "std")]
pub mod shapes;
#[cfg(feature = "std")]
pub mod source;

#[cfg(feature = "std")]
pub use line::{format_line, header, parse_line, Flags, Line, Parsed};
#[cfg(feature = "std")]
pub use replay::{replay_reader, Options, Replayer, Report};
