//! # ctxtrack-host: the core on real CPUs
//!
//! The simulator counts modeled cycles; this crate runs the same `no_std` core on this machine's
//! CPUs, with real atomics, a real code-patched static key and real clocks:
//! - [`arch::HostArch`] implements the core's [`ctxtrack_core::Arch`] for an OS thread playing a
//!   CPU (software IRQ flag, `rdtsc`-based `sched_clock()`, no operation counting);
//! - [`machine`] runs one thread per nohz_full CPU (user spinning, syscalls through the core's
//!   generic-entry functions, RCU readers, IRQs) and a grace-period thread that snapshots their
//!   state words as Linux's RCU does, checking that no reader ever sees a freed version;
//! - [`key`] mirrors the core's data-only static key into a code-patched one (the `static-keys`
//!   crate) or the atomic-bool fallback;
//! - [`hot`] holds the measured loops that `cargo bench -p ctxtrack-host` (criterion) and
//!   `ctxtrack bench host` time.
//!
//! Invariant: only [`key::sync_keys`] patches code, and it refuses while CPU threads run.
#![deny(missing_docs)]

pub mod arch;
pub mod clock;
pub mod hot;
pub mod key;
pub mod machine;
