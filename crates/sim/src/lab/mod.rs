//! Lab drivers: what runs the machine for people, from outside its rooms and only through its
//! public API ([`crate::driver`], [`crate::Machine::run`], read-only accessors): workloads
//! ([`workload`]), each path alone ([`probe`]), every design side by side ([`compare`]) and
//! the report of a run ([`report`]).

pub mod compare;
pub mod probe;
pub mod report;
pub mod workload;

#[cfg(test)]
mod core_equivalence;
