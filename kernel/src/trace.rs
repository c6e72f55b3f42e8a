//! An ftrace-format trace in a fixed buffer, dumped over serial at exit in the layout of
//! `/sys/kernel/tracing/trace` (the simulator's export and `ctxtrack replay` use the same).

use core::fmt::Write;

const CAP: usize = 1 << 20;

/// The buffer (one CPU; written with IRQs off).
pub struct TraceBuf {
    buf: [u8; CAP],
    len: usize,
    entries: usize,
    lost: usize,
}

impl TraceBuf {
    /// Empty.
    pub const fn new() -> TraceBuf {
        TraceBuf {
            buf: [0; CAP],
            len: 0,
            entries: 0,
            lost: 0,
        }
    }

    /// One event line: `comm-pid [cpu] flags ts: event: fields`. `ns` is the event time.
    pub fn event(
        &mut self,
        comm: &str,
        pid: u32,
        cpu: usize,
        irqs_off: bool,
        ns: u64,
        ev: &str,
        fields: &str,
    ) {
        let mut line = Line { b: [0; 160], n: 0 };
        let _ = write!(
            line,
            "{:>16}-{:<7} [{:03}] {}.... {:>5}.{:06}: {}: {}\n",
            comm,
            pid,
            cpu,
            if irqs_off { 'd' } else { '.' },
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1_000,
            ev,
            fields
        );
        if self.len + line.n > CAP {
            self.lost += 1;
            return;
        }
        self.buf[self.len..self.len + line.n].copy_from_slice(&line.b[..line.n]);
        self.len += line.n;
        self.entries += 1;
    }

    /// Writes the header and every line to the serial port.
    pub fn dump(&self, ncpus: usize) {
        crate::serial::write_fmt(format_args!(
            "# tracer: nop\n#\n# entries-in-buffer/entries-written: {}/{}   #P:{}\n#\n#                                _-----=> irqs-off/BH-disabled\n#                               / _----=> need-resched\n#                              | / _---=> hardirq/softirq\n#                              || / _--=> preempt-depth\n#                              ||| / _-=> migrate-disable\n#                              |||| /     delay\n#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n#              | |         |   |||||     |         |\n",
            self.entries,
            self.entries + self.lost,
            ncpus
        ));
        // SAFETY: only whole UTF-8 lines were copied in.
        let s = unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) };
        crate::serial::write_fmt(format_args!("{s}# end of trace\n"));
    }
}

impl Default for TraceBuf {
    fn default() -> Self {
        TraceBuf::new()
    }
}

struct Line {
    b: [u8; 160],
    n: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = (self.n + s.len()).min(self.b.len());
        let take = end - self.n;
        self.b[self.n..end].copy_from_slice(&s.as_bytes()[..take]);
        self.n = end;
        Ok(())
    }
}
