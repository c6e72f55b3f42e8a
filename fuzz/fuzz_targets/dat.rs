//! Fuzzes the trace.dat reader: any bytes give records or an error naming a byte offset inside
//! the input, never a panic or an allocation beyond the reader's limits.
//! `cargo +nightly fuzz run dat fuzz/corpus/dat` (seed it with the repository's .dat files).
#![no_main]

use ctxtrack_trace::dat::for_each_line_in;
use ctxtrack_trace::noise::{Noise, Options as NoiseOptions};
use ctxtrack_trace::replay::{Options, Replayer};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let mut rep = Replayer::new(Options::default());
    let mut noise = Noise::new(NoiseOptions { cpus: Some(vec![0, 1, 2, 3]), top: 5 });
    let r = for_each_line_in(data.to_vec(), |n, item| {
        match &item {
            ctxtrack_trace::dat::Item::Event(l) => rep.feed_line(n, l),
            ctxtrack_trace::dat::Item::Lost { cpu, count } => rep.lost(n, *cpu, *count),
        }
        noise.item(n, item);
        Ok(())
    });
    if let Err(e) = r {
        // An offset past the end is one the file points to, and the message says so.
        assert!(
            e.offset <= len + 8 || e.msg.contains("the file ends at byte"),
            "offset {} past the input ({len}): {e}",
            e.offset
        );
    }
    let _ = rep.finish();
    let _ = noise.finish();
});
