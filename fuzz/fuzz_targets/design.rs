//! The design-file loader on arbitrary input: never a panic, a hang or an unbounded allocation.
//! Includes resolve among the shipped files (so a mutated design can pull the real headers in).
#![no_main]

use ctxtrack_sim::design::lang;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // analyze() checks and compiles without leaking anything (leak() is what a run adds).
        let _ = lang::analyze("fuzz.c", text, &lang::include_shipped);
    }
});
