//! The cost model: cycles per primitive, per entry instruction and per kernel body.
//!
//! The cost of a step is its base [`CostKey`] plus the context-tracking primitives
//! ([`ctxtrack_core::Prim`]) the core counted while the step ran, each priced here. Defaults are
//! order-of-magnitude figures for a current x86-64 server core; where each comes from is in the
//! table below. They can be overridden from a TOML file (`--cost-model FILE`) with the same keys;
//! an unknown key or a value that is not a non-negative integer is an error naming the key.
//!
//! | key | default | source of the figure |
//! |---|---|---|
//! | `cpu_mhz` | 3000 | nominal clock; converts cycles to simulated ns |
//! | `call` | 5 | call + ret, predicted (Agner Fog, instruction tables) |
//! | `static_branch` | 1 | a 5-byte NOP or a taken `jmp` (jump label) |
//! | `atomic_rmw` | 20 | `lock xadd` on an owned line, Skylake..Zen (Agner Fog) |
//! | `atomic_plain` | 20 | `raw_atomic_add` is also a `lock add` on x86 |
//! | `irq_save_restore` | 30 | `pushf; cli` ... `popf` (`popf` ~20 cycles on Intel) |
//! | `clock_read` | 30 | `rdtsc`-based `sched_clock()` |
//! | `vtime_account` | 40 | seqcount write section + accumulate/flush arithmetic |
//! | `rcu_hook` | 10 | nesting checks/updates around the EQS atomic |
//! | `glue` | 3 | a few plain instructions of entry glue per step |
//! | `syscall_insn` | 100 | `syscall` + `entry_SYSCALL_64` (swapgs, stack switch, pt_regs) |
//! | `sysret` | 70 | register restore + `sysretq` |
//! | `iret` | 120 | register restore + `iretq` |
//! | `irq_delivery` | 600 | interrupt delivery through the IDT: the "exceedingly heavy serializing operation" of the seed thread |
//! | `exception_delivery` | 300 | exception delivery (no APIC involvement) |
//! | `page_fault` | 1500 | `handle_mm_fault` for a minor fault incl. zeroing a page |
//! | `pipe_read` / `pipe_write` | 700 / 800 | `perf bench sched messaging -p`, ~0.25 µs per syscall body |
//! | `sock_read` / `sock_write` | 1200 / 1500 | unix stream recv/send with skb alloc/free |
//! | `poll` | 600, `wait` | 500, `getpid` 50, `fork` 60000, `exit` 40000 | syscall bodies |
//! | `schedule` | 2000 | `__schedule` + `context_switch` incl. `switch_mm` |
//! | `wakeup` | 600 | `try_to_wake_up` of one task |
//! | `tick` | 1500 | `tick_sched_timer` → `update_process_times` + `scheduler_tick` |
//! | `resched_ipi` | 100 | `sysvec_reschedule_ipi` body |
//! | `irq_work` | 200 | `sysvec_irq_work` body (nohz kick) |
//! | `device_irq` | 300 | a device interrupt handler (virtio completion) |
//! | `softirq` | 400 | one softirq handler run (`net_rx_action` for one packet) |
//! | `signal` | 1000 | `arch_do_signal_or_restart` for an ignored signal |
//! | `notify_resume` | 150 | `resume_user_mode_work` (rseq fixup) |
//! | `nmi_handler` | 500 | `default_do_nmi` (perf NMI) |
//! | `user_op` | 150 | user-space work between two syscalls of the workloads (libc wrapper, loop) |
//! | `ipi_latency_ns` | 500 | ns from sending an IPI to its arrival at the target |

use serde::Serialize;
use std::fmt;

/// Base cost of a step or body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CostKey {
    /// Free (branches, calls whose callee is priced).
    None,
    /// Plain entry glue.
    Glue,
    /// `syscall` instruction and entry asm.
    SyscallInsn,
    /// `sysretq`.
    Sysret,
    /// `iretq`.
    Iret,
    /// Interrupt delivery.
    IrqDelivery,
    /// Exception delivery.
    ExceptionDelivery,
    /// Page-fault handling.
    PageFault,
    /// Signal delivery.
    Signal,
    /// Notify-resume work.
    NotifyResume,
    /// NMI handler.
    NmiHandler,
}

impl CostKey {
    /// Every key, in declaration order (`k as usize` indexes this).
    pub const ALL: [CostKey; 11] = [
        CostKey::None,
        CostKey::Glue,
        CostKey::SyscallInsn,
        CostKey::Sysret,
        CostKey::Iret,
        CostKey::IrqDelivery,
        CostKey::ExceptionDelivery,
        CostKey::PageFault,
        CostKey::Signal,
        CostKey::NotifyResume,
        CostKey::NmiHandler,
    ];
}

/// All tunable costs (cycles unless the name says otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CostModel {
    /// Clock rate used to turn cycles into simulated nanoseconds.
    pub cpu_mhz: u64,
    /// Out-of-line call into context tracking.
    pub call: u64,
    /// Static-branch test.
    pub static_branch: u64,
    /// Fully ordered atomic RMW.
    pub atomic_rmw: u64,
    /// Unordered atomic RMW.
    pub atomic_plain: u64,
    /// IRQ save + restore.
    pub irq_save_restore: u64,
    /// `sched_clock()` read.
    pub clock_read: u64,
    /// vtime bookkeeping.
    pub vtime_account: u64,
    /// RCU bookkeeping around an EQS transition.
    pub rcu_hook: u64,
    /// Entry glue per step.
    pub glue: u64,
    /// `syscall` + entry asm.
    pub syscall_insn: u64,
    /// `sysretq`.
    pub sysret: u64,
    /// `iretq`.
    pub iret: u64,
    /// Interrupt delivery.
    pub irq_delivery: u64,
    /// Exception delivery.
    pub exception_delivery: u64,
    /// Minor page fault.
    pub page_fault: u64,
    /// Pipe read body.
    pub pipe_read: u64,
    /// Pipe write body.
    pub pipe_write: u64,
    /// Socket read body.
    pub sock_read: u64,
    /// Socket write body.
    pub sock_write: u64,
    /// `poll` body.
    pub poll: u64,
    /// `wait4` body.
    pub wait: u64,
    /// `getpid` body.
    pub getpid: u64,
    /// `fork` body.
    pub fork: u64,
    /// `exit` body.
    pub exit: u64,
    /// `__schedule` + context switch.
    pub schedule: u64,
    /// `try_to_wake_up`.
    pub wakeup: u64,
    /// Timer tick handler.
    pub tick: u64,
    /// Reschedule IPI handler.
    pub resched_ipi: u64,
    /// irq_work handler.
    pub irq_work: u64,
    /// Device IRQ handler.
    pub device_irq: u64,
    /// One softirq handler run.
    pub softirq: u64,
    /// Signal delivery.
    pub signal: u64,
    /// Notify-resume work.
    pub notify_resume: u64,
    /// NMI handler.
    pub nmi_handler: u64,
    /// User work between syscalls.
    pub user_op: u64,
    /// IPI flight time in ns.
    pub ipi_latency_ns: u64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            cpu_mhz: 3000,
            call: 5,
            static_branch: 1,
            atomic_rmw: 20,
            atomic_plain: 20,
            irq_save_restore: 30,
            clock_read: 30,
            vtime_account: 40,
            rcu_hook: 10,
            glue: 3,
            syscall_insn: 100,
            sysret: 70,
            iret: 120,
            irq_delivery: 600,
            exception_delivery: 300,
            page_fault: 1500,
            pipe_read: 700,
            pipe_write: 800,
            sock_read: 1200,
            sock_write: 1500,
            poll: 600,
            wait: 500,
            getpid: 50,
            fork: 60000,
            exit: 40000,
            schedule: 2000,
            wakeup: 600,
            tick: 1500,
            resched_ipi: 100,
            irq_work: 200,
            device_irq: 300,
            softirq: 400,
            signal: 1000,
            notify_resume: 150,
            nmi_handler: 500,
            user_op: 150,
            ipi_latency_ns: 500,
        }
    }
}

/// A bad cost-model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostModelError(pub String);

impl fmt::Display for CostModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CostModelError {}

impl CostModel {
    fn field_mut(&mut self, key: &str) -> Option<&mut u64> {
        Some(match key {
            "cpu_mhz" => &mut self.cpu_mhz,
            "call" => &mut self.call,
            "static_branch" => &mut self.static_branch,
            "atomic_rmw" => &mut self.atomic_rmw,
            "atomic_plain" => &mut self.atomic_plain,
            "irq_save_restore" => &mut self.irq_save_restore,
            "clock_read" => &mut self.clock_read,
            "vtime_account" => &mut self.vtime_account,
            "rcu_hook" => &mut self.rcu_hook,
            "glue" => &mut self.glue,
            "syscall_insn" => &mut self.syscall_insn,
            "sysret" => &mut self.sysret,
            "iret" => &mut self.iret,
            "irq_delivery" => &mut self.irq_delivery,
            "exception_delivery" => &mut self.exception_delivery,
            "page_fault" => &mut self.page_fault,
            "pipe_read" => &mut self.pipe_read,
            "pipe_write" => &mut self.pipe_write,
            "sock_read" => &mut self.sock_read,
            "sock_write" => &mut self.sock_write,
            "poll" => &mut self.poll,
            "wait" => &mut self.wait,
            "getpid" => &mut self.getpid,
            "fork" => &mut self.fork,
            "exit" => &mut self.exit,
            "schedule" => &mut self.schedule,
            "wakeup" => &mut self.wakeup,
            "tick" => &mut self.tick,
            "resched_ipi" => &mut self.resched_ipi,
            "irq_work" => &mut self.irq_work,
            "device_irq" => &mut self.device_irq,
            "softirq" => &mut self.softirq,
            "signal" => &mut self.signal,
            "notify_resume" => &mut self.notify_resume,
            "nmi_handler" => &mut self.nmi_handler,
            "user_op" => &mut self.user_op,
            "ipi_latency_ns" => &mut self.ipi_latency_ns,
            _ => return None,
        })
    }

    /// All valid keys, for error messages.
    pub fn keys() -> Vec<&'static str> {
        vec![
            "cpu_mhz",
            "call",
            "static_branch",
            "atomic_rmw",
            "atomic_plain",
            "irq_save_restore",
            "clock_read",
            "vtime_account",
            "rcu_hook",
            "glue",
            "syscall_insn",
            "sysret",
            "iret",
            "irq_delivery",
            "exception_delivery",
            "page_fault",
            "pipe_read",
            "pipe_write",
            "sock_read",
            "sock_write",
            "poll",
            "wait",
            "getpid",
            "fork",
            "exit",
            "schedule",
            "wakeup",
            "tick",
            "resched_ipi",
            "irq_work",
            "signal",
            "notify_resume",
            "nmi_handler",
            "user_op",
            "ipi_latency_ns",
        ]
    }

    /// Parses TOML text (`origin` names the file in errors): the defaults, overridden key by key.
    pub fn from_toml(text: &str, origin: &str) -> Result<CostModel, CostModelError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| CostModelError(format!("{origin}: invalid TOML: {e}")))?;
        let mut m = CostModel::default();
        let line_of = |key: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| format!(" (line {})", i + 1))
                .unwrap_or_default()
        };
        for (key, value) in &table {
            let Some(slot) = m.field_mut(key) else {
                return Err(CostModelError(format!(
                    "{origin}{}: unknown key `{key}`; valid keys: {}",
                    line_of(key),
                    CostModel::keys().join(", ")
                )));
            };
            match value.as_integer() {
                Some(v) if v >= 0 => *slot = v as u64,
                Some(v) => {
                    return Err(CostModelError(format!(
                        "{origin}{}: key `{key}`: cost must be a non-negative integer, got {v}",
                        line_of(key)
                    )))
                }
                None => {
                    return Err(CostModelError(format!(
                        "{origin}{}: key `{key}`: expected a non-negative integer, got {}",
                        line_of(key),
                        value.type_str()
                    )))
                }
            }
        }
        if m.cpu_mhz == 0 {
            return Err(CostModelError(format!(
                "{origin}{}: key `cpu_mhz` must be at least 1",
                line_of("cpu_mhz")
            )));
        }
        Ok(m)
    }

    /// [`Self::base`] of every key, indexed by `k as usize` (the machine prices each step from
    /// this table).
    pub fn base_table(&self) -> [u64; CostKey::ALL.len()] {
        CostKey::ALL.map(|k| self.base(k))
    }

    /// Base cycles of a [`CostKey`].
    #[inline]
    pub fn base(&self, k: CostKey) -> u64 {
        match k {
            CostKey::None => 0,
            CostKey::Glue => self.glue,
            CostKey::SyscallInsn => self.syscall_insn,
            CostKey::Sysret => self.sysret,
            CostKey::Iret => self.iret,
            CostKey::IrqDelivery => self.irq_delivery,
            CostKey::ExceptionDelivery => self.exception_delivery,
            CostKey::PageFault => self.page_fault,
            CostKey::Signal => self.signal,
            CostKey::NotifyResume => self.notify_resume,
            CostKey::NmiHandler => self.nmi_handler,
        }
    }

    /// Cycles of the core primitives, indexed like [`ctxtrack_core::Prim`].
    pub fn prim_table(&self) -> [u64; ctxtrack_core::stats::PRIM_COUNT] {
        [
            self.call,
            self.static_branch,
            self.atomic_rmw,
            self.atomic_plain,
            self.irq_save_restore,
            self.clock_read,
            self.vtime_account,
            self.rcu_hook,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_table_is_indexed_by_key() {
        let m = CostModel::from_toml("glue = 11\nnmi_handler = 77\n", "x.toml").unwrap();
        let table = m.base_table();
        for (i, k) in CostKey::ALL.into_iter().enumerate() {
            assert_eq!(
                k as usize, i,
                "CostKey::ALL out of declaration order at {k:?}"
            );
            assert_eq!(table[i], m.base(k), "{k:?}");
        }
        assert_eq!(table[CostKey::Glue as usize], 11);
        assert_eq!(table[CostKey::NmiHandler as usize], 77);
    }

    #[test]
    fn overrides_and_errors_name_the_key() {
        let m = CostModel::from_toml("call = 7\nirq_delivery = 900\n", "x.toml").unwrap();
        assert_eq!((m.call, m.irq_delivery, m.atomic_rmw), (7, 900, 20));
        let e = CostModel::from_toml("calls = 7\n", "x.toml").unwrap_err().0;
        assert!(e.contains("x.toml (line 1): unknown key `calls`"), "{e}");
        let e = CostModel::from_toml("\natomic_rmw = -3\n", "x.toml")
            .unwrap_err()
            .0;
        assert!(
            e.contains("line 2") && e.contains("`atomic_rmw`") && e.contains("-3"),
            "{e}"
        );
        let e = CostModel::from_toml("glue = \"x\"\n", "x.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("`glue`") && e.contains("string"), "{e}");
        assert!(CostModel::from_toml("glue = [", "x.toml")
            .unwrap_err()
            .0
            .contains("invalid TOML"));
        assert!(CostModel::from_toml("cpu_mhz = 0", "x.toml").is_err());
    }
}
