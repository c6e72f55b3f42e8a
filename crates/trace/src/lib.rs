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
//! This crate knows nothing of the simulator: it reads and writes text.

pub mod chrome;
pub mod dat;
pub mod line;
pub mod noise;
pub mod replay;
pub mod shapes;
pub mod source;

pub use line::{format_line, header, parse_line, Flags, Line, Parsed};
pub use replay::{replay_reader, Options, Replayer, Report};
