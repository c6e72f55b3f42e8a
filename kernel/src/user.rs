//! The ring-3 programs built into the image (`extern "C" fn(arg) -> !`, entered by
//! `ret_from_fork` with `arg` in `rdi`), and the workloads that spawn them.

use crate::percpu::nr_cpus;
use crate::pipe::MAX_PIPES;
use crate::sched::spawn;
use crate::syscall::{exit, nr, syscall};

/// `num_fds` of `perf bench sched messaging` scaled to this kernel's task table.
pub const MSG_FDS: u64 = 10;
/// `DATASIZE`.
pub const DATASIZE: usize = 100;

/// `getpid()` `arg` times, then exit.
pub extern "C" fn getpid_loop(arg: u64) -> ! {
    for _ in 0..arg {
        if syscall(nr::GETPID, 0, 0, 0) < 100 {
            exit(1);
        }
    }
    exit(0)
}

/// Spin in user mode for `arg` TSC cycles, then exit.
pub extern "C" fn busy_loop(arg: u64) -> ! {
    // SAFETY: rdtsc is allowed in ring 3 (CR4.TSD clear).
    let end = unsafe { core::arch::x86_64::_rdtsc() } + arg;
    while unsafe { core::arch::x86_64::_rdtsc() } < end {
        core::hint::spin_loop();
    }
    exit(0)
}

/// Messaging arguments packed in `arg`: role, index, loops.
fn msg_arg(sender: bool, idx: u64, loops: u64) -> u64 {
    (u64::from(sender) << 63) | (idx << 32) | loops
}

/// `sender()` / `receiver()` of `perf bench sched messaging` (one group, pipes): each sender
/// writes `loops` messages of [`DATASIZE`] bytes to every receiver's pipe; each receiver reads
/// `MSG_FDS * loops` messages and checks that every sender's sequence numbers arrive in order.
pub extern "C" fn messaging_worker(arg: u64) -> ! {
    let sender = arg >> 63 == 1;
    let idx = (arg >> 32) & 0x7fff_ffff;
    let loops = arg & 0xffff_ffff;
    let mut msg = [0u8; DATASIZE];
    if sender {
        for seq in 0..loops {
            for r in 0..MSG_FDS {
                msg[0] = idx as u8;
                msg[1..9].copy_from_slice(&seq.to_le_bytes());
                if syscall(nr::WRITE, r, msg.as_ptr() as u64, DATASIZE as u64) != DATASIZE as u64 {
                    exit(2);
                }
            }
        }
    } else {
        let mut next = [0u64; MSG_FDS as usize];
        for _ in 0..MSG_FDS * loops {
            let mut got = 0;
            while got < DATASIZE {
                let n = syscall(
                    nr::READ,
                    idx,
                    msg[got..].as_mut_ptr() as u64,
                    (DATASIZE - got) as u64,
                );
                if n == 0 || n > DATASIZE as u64 {
                    exit(3);
                }
                got += n as usize;
            }
            let s = msg[0] as usize;
            let seq = u64::from_le_bytes(msg[1..9].try_into().unwrap_or([0xff; 8]));
            if s >= MSG_FDS as usize || seq != next[s] {
                exit(4);
            }
            next[s] += 1;
        }
        if next.iter().any(|&n| n != loops) {
            exit(5);
        }
    }
    exit(0)
}

/// Spawns the messaging workload: `MSG_FDS` receivers and `MSG_FDS` senders, placed round robin
/// on `cpus` (a bit mask; all CPUs when 0).
pub fn spawn_messaging(loops: u64, cpus: u64) {
    const _: () = assert!(MSG_FDS as usize <= MAX_PIPES);
    let mask = if cpus == 0 {
        (1u64 << nr_cpus()) - 1
    } else {
        cpus
    };
    let list = |k: usize| {
        let n = mask.count_ones() as usize;
        let mut m = mask;
        for _ in 0..k % n {
            m &= m - 1;
        }
        m.trailing_zeros() as usize
    };
    // Receivers first, then senders, as perf creates them.
    for (k, sender) in (0..2 * MSG_FDS).map(|k| (k, k >= MSG_FDS)) {
        let idx = k % MSG_FDS;
        spawn(
            "sched-messaging",
            list(k as usize),
            messaging_worker,
            msg_arg(sender, idx, loops),
        );
    }
}
