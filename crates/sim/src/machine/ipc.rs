//! Pipes and unix stream sockets: byte buffers with capacity, wait queues and Linux's wakeup rules.

use crate::machine::TaskId;

/// Pipe or socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChanKind {
    /// `pipe()`: 16 pages (65536 bytes). `pipe_write` wakes readers only when the pipe was empty
    /// (`was_empty`); `pipe_read` wakes writers only when it was full (`was_full`).
    Pipe,
    /// `socketpair(AF_UNIX, SOCK_STREAM)`: limited by the writer's `sk_sndbuf` (212992 bytes of
    /// skb truesize, ~768 bytes per small message); every send wakes the reader
    /// (`sk_data_ready`); writers wake when the queue drains to a quarter (`unix_writable`).
    Socket,
}

/// Truesize charged per socket message (skb head + shared info + data, rounded).
pub const SOCK_TRUESIZE_OVERHEAD: u64 = 668;
/// `sk_sndbuf` default (`wmem_default`).
pub const SOCK_SNDBUF: u64 = 212_992;
/// Pipe capacity (`PIPE_DEF_BUFFERS` pages).
pub const PIPE_CAPACITY: u64 = 16 * 4096;

/// One unidirectional channel (a pipe, or one direction of a socketpair).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Channel {
    /// Pipe or socket.
    pub kind: ChanKind,
    /// Bytes readable.
    pub bytes: u64,
    /// Tasks sleeping in read/poll until data arrives (FIFO).
    pub readers: Vec<TaskId>,
    /// Tasks sleeping in write until space frees up (FIFO).
    pub writers: Vec<TaskId>,
    /// Messages written so far (for delivery checks).
    pub written_total: u64,
    /// Bytes read so far.
    pub read_total: u64,
}

/// What a write or read did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// Transferred this many bytes; wake the listed side if `wake` is set.
    Done { bytes: u64, wake: bool },
    /// Nothing could be transferred: the caller must sleep on the channel.
    WouldBlock,
}

impl Channel {
    /// A new empty channel.
    pub fn new(kind: ChanKind) -> Channel {
        Channel {
            kind,
            bytes: 0,
            readers: Vec::new(),
            writers: Vec::new(),
            written_total: 0,
            read_total: 0,
        }
    }

    fn capacity(&self) -> u64 {
        match self.kind {
            ChanKind::Pipe => PIPE_CAPACITY,
            ChanKind::Socket => SOCK_SNDBUF,
        }
    }

    /// Bytes charged against the capacity: pipe bytes, or socket truesize (data plus a fixed
    /// overhead per 100-byte message, the only message size the workloads write).
    fn charged(&self, bytes: u64) -> u64 {
        match self.kind {
            ChanKind::Pipe => bytes,
            ChanKind::Socket => bytes + SOCK_TRUESIZE_OVERHEAD * bytes.div_ceil(100),
        }
    }

    /// `write(len)`: all or nothing per message (messages are <= PIPE_BUF, so atomic). `wake`
    /// tells whether readers must be woken.
    pub fn write(&mut self, len: u64) -> Io {
        if self.charged(self.bytes + len) > self.capacity() {
            return Io::WouldBlock;
        }
        let was_empty = self.bytes == 0;
        self.bytes += len;
        self.written_total += 1;
        let wake = match self.kind {
            ChanKind::Pipe => was_empty,
            ChanKind::Socket => true,
        };
        Io::Done { bytes: len, wake }
    }

    /// `read(len)`: up to `len` bytes. `wake` tells whether writers must be woken.
    pub fn read(&mut self, len: u64) -> Io {
        if self.bytes == 0 {
            return Io::WouldBlock;
        }
        let was_full = self.charged(self.bytes + 100) > self.capacity();
        let n = len.min(self.bytes);
        self.bytes -= n;
        self.read_total += n;
        let wake = !self.writers.is_empty()
            && match self.kind {
                ChanKind::Pipe => was_full,
                ChanKind::Socket => self.charged(self.bytes) * 4 <= self.capacity(),
            };
        Io::Done { bytes: n, wake }
    }

    /// Readable (`POLLIN`).
    pub fn readable(&self) -> bool {
        self.bytes > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn pipe_wakes_reader_only_when_empty_and_blocks_when_full() {
        let mut p = Channel::new(ChanKind::Pipe);
        assert_eq!(p.read(100), Io::WouldBlock);
        assert_eq!(
            p.write(100),
            Io::Done {
                bytes: 100,
                wake: true
            }
        );
        assert_eq!(
            p.write(100),
            Io::Done {
                bytes: 100,
                wake: false
            }
        );
        while p.write(100) != Io::WouldBlock {}
        assert_eq!(p.bytes, 65500);
        p.writers.push(3);
        assert_eq!(
            p.read(100),
            Io::Done {
                bytes: 100,
                wake: true
            }
        );
        assert_eq!(
            p.read(100),
            Io::Done {
                bytes: 100,
                wake: false
            }
        );
    }
    #[test]
    fn socket_wakes_reader_every_write_and_writer_at_quarter() {
        let mut s = Channel::new(ChanKind::Socket);
        assert_eq!(
            s.write(100),
            Io::Done {
                bytes: 100,
                wake: true
            }
        );
        assert_eq!(
            s.write(100),
            Io::Done {
                bytes: 100,
                wake: true
            }
        );
        let mut n = 2;
        while s.write(100) != Io::WouldBlock {
            n += 1;
        }
        assert_eq!(n, SOCK_SNDBUF / (100 + SOCK_TRUESIZE_OVERHEAD));
        s.writers.push(1);
        let mut reads_before_wake = 0;
        loop {
            reads_before_wake += 1;
            if let Io::Done { wake: true, .. } = s.read(100) {
                break;
            }
        }
        assert!(
            reads_before_wake > n / 2 && reads_before_wake < n,
            "{reads_before_wake} of {n}"
        );
    }
}
