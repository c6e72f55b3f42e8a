//! Pipes for the messaging workload: a 4 KiB ring each, blocking reads and writes with wait
//! masks (`pipe_read()` / `pipe_write()` with `wait_event_interruptible`), writes of at most
//! `PIPE_BUF` bytes atomic.

use crate::sched::{self, irqsave, set_current_blocked, wake_up};

/// Pipes available (fds 0..MAX_PIPES).
pub const MAX_PIPES: usize = 32;
const SIZE: usize = 4096;
/// `PIPE_BUF`.
pub const PIPE_BUF: usize = 512;

struct Pipe {
    buf: [u8; SIZE],
    head: usize,
    len: usize,
    /// Tasks waiting to read / write (bit = task index).
    readers: u64,
    writers: u64,
}

static PIPES: [spin::Mutex<Pipe>; MAX_PIPES] = [const {
    spin::Mutex::new(Pipe {
        buf: [0; SIZE],
        head: 0,
        len: 0,
        readers: 0,
        writers: 0,
    })
}; MAX_PIPES];

const EBADF: u64 = -9i64 as u64;
const EINVAL: u64 = -22i64 as u64;

fn wake_all(mut mask: u64) {
    while mask != 0 {
        let t = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        wake_up(t);
    }
}

/// `read(fd, buf, len)`: blocks until data is there, returns what fits.
pub fn read(fd: usize, ubuf: u64, len: usize) -> u64 {
    let buf = ubuf as *mut u8; // a `__user` pointer: identity-mapped, user-accessible
    if fd >= MAX_PIPES {
        return EBADF;
    }
    loop {
        let (n, wake) = irqsave(|| {
            let mut p = PIPES[fd].lock();
            if p.len == 0 {
                p.readers |= 1 << sched::current();
                set_current_blocked();
                return (0, 0);
            }
            let n = len.min(p.len);
            for i in 0..n {
                // SAFETY: the caller's buffer, identity-mapped and user-accessible.
                unsafe { buf.add(i).write(p.buf[(p.head + i) % SIZE]) };
            }
            p.head = (p.head + n) % SIZE;
            p.len -= n;
            (n, core::mem::take(&mut p.writers))
        });
        if n > 0 {
            wake_all(wake);
            return n as u64;
        }
        sched::block();
    }
}

/// `write(fd, buf, len)`: blocks until all `len` bytes fit (`len <= PIPE_BUF`: atomic).
pub fn write(fd: usize, ubuf: u64, len: usize) -> u64 {
    let buf = ubuf as *const u8; // a `__user` pointer, as in read()
    if fd >= MAX_PIPES {
        return EBADF;
    }
    if len > PIPE_BUF {
        return EINVAL;
    }
    loop {
        let wake = irqsave(|| {
            let mut p = PIPES[fd].lock();
            if SIZE - p.len < len {
                p.writers |= 1 << sched::current();
                set_current_blocked();
                return None;
            }
            let tail = p.head + p.len;
            for i in 0..len {
                // SAFETY: as in read().
                p.buf[(tail + i) % SIZE] = unsafe { buf.add(i).read() };
            }
            p.len += len;
            Some(core::mem::take(&mut p.readers))
        });
        if let Some(w) = wake {
            wake_all(w);
            return len as u64;
        }
        sched::block();
    }
}
