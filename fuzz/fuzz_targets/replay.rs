//! Fuzzes the ftrace parser and the replay: any bytes must give a report or an error naming a
//! line, never a panic. `cargo +nightly fuzz run replay`.
#![no_main]

use ctxtrack_trace::chrome::ChromeWriter;
use ctxtrack_trace::line::{parse_line, Parsed};
use ctxtrack_trace::replay::{replay_reader, Options};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let opts = Options { shapes: true, ..Options::default() };
    if let Ok(r) = replay_reader("fuzz", data, opts) {
        // Totals stay consistent whatever the input.
        for c in &r.cpus {
            assert!(c.first_ns <= c.last_ns || c.last_ns == 0);
        }
        let _ = r.tree_cputime(1);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let mut w = ChromeWriter::new(Vec::new());
        for l in text.lines() {
            if let Ok(Parsed::Event(e)) = parse_line(l) {
                w.line(&e);
            }
        }
        let out = w.finish().expect("in-memory write");
        ctxtrack_trace::chrome::validate(&out).expect("the writer always nests");
    }
});
