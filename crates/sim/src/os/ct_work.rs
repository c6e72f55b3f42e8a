//! Deferred IPIs to isolated CPUs: Valentin Schneider's series "context_tracking,x86: Defer some
//! IPIs until a user->kernel transition" (v7, November 2025, not merged).
//!
//! The housekeeping CPU's senders need every CPU synchronized: kernel text patching or a static
//! key flip (`smp_text_poke_sync_each_cpu_deferrable()`: every CPU must `sync_core()` before it
//! runs patched code) and kernel TLB flushes (`flush_tlb_kernel_range()`). Each is
//! `on_each_cpu_cond(cond, func)` with `cond = !ct_set_cpu_work(cpu, work)`: a nohz_full CPU
//! that RCU does not watch (user mode, guest, idle EQS) gets a bit in its state word instead of
//! an IPI and owes the work ([`crate::machine::Hw::owed`]) until its next kernel entry flushes it
//! (`ct_kernel_enter_state()` → `arch_context_tracking_work()`); every other CPU gets a
//! CALL_FUNCTION IPI whose handler runs it.
//!
//! The invariants live in [`crate::monitor`]: `ct_work_unflushed` (no patchable step while work
//! is owed: a lost bit, or an entry that runs patchable code before its flush, shows up here),
//! `ct_work_set_while_watching`, `ct_work_sync_incomplete`.
//!
//! Where we differ from the series: the sender does not wait for the IPI'd CPUs (`wait=1`);
//! their handler runs when the IPI is taken, and the monitor holds only the deferred CPUs to the
//! sender's contract. Patchable steps are the instrumentable ones (the series' objtool rule:
//! `noinstr` text has no probes and only read-only static keys).

use crate::machine::{CpuId, Machine, Vector, NEVER};
use crate::os::{post_irq, K};
use ctxtrack_core::CtWork;

/// The CPU the senders run on (timekeeping, never nohz_full).
pub const HOUSEKEEPING: CpuId = 0;

pub use crate::machine::work::Senders;

/// Runs the senders due at `t` on the housekeeping CPU.
pub fn run_senders(m: &mut Machine, t: u64) {
    if m.work.next_poke_ns == t {
        m.work.next_poke_ns = t.saturating_add(m.cfg.text_poke_period_ns.unwrap_or(NEVER));
        on_each_cpu_deferrable(m, HOUSEKEEPING, t, CtWork::Sync);
    }
    if m.work.next_tlbi_ns == t {
        m.work.next_tlbi_ns = t.saturating_add(m.cfg.tlbi_period_ns.unwrap_or(NEVER));
        on_each_cpu_deferrable(m, HOUSEKEEPING, t, CtWork::Tlbi);
    }
    m.work.next_ns = m.work.next_poke_ns.min(m.work.next_tlbi_ns);
}

/// `on_each_cpu_cond(!ct_set_cpu_work(cpu, work), do_work, NULL, 1)` from CPU `from` at `t`:
/// defer to the CPUs that allow it, IPI the others.
pub fn on_each_cpu_deferrable(m: &mut Machine, from: CpuId, t: u64, work: CtWork) {
    for c in 0..m.cpus.len() {
        if c == from {
            continue;
        }
        let deferred =
            m.cfg.ct_work && ctxtrack_core::ct_set_cpu_work(&m.cpus[c].own().pcpu.ct, work);
        if deferred {
            work_deferred(m, c, work);
        } else {
            queue_ipi(m, from, c, t, work);
        }
    }
    for c in (0..m.cpus.len()).filter(|&c| c != from) {
        crate::monitor::on_sync_done_for(m, c, work);
    }
}

/// A `ct_set_cpu_work()` on CPU `c` succeeded: it owes `work` from now on.
pub fn work_deferred(m: &mut Machine, c: CpuId, work: CtWork) {
    let cpu: &mut crate::machine::Cpu = &mut m.cpus[c];
    cpu.hw.owed |= work.bit() as u8;
    cpu.counters.work_deferred += 1;
    crate::monitor::on_work_set(m, c, work);
}

/// `smp_call_function_single()` without waiting: queue `work` for CPU `c` and IPI it (the IPI
/// coalesces with one already pending, as the APIC's IRR bit does).
pub fn queue_ipi(m: &mut Machine, from: CpuId, c: CpuId, t: u64, work: CtWork) {
    m.cpus[c].csd |= work.bit() as u8;
    if m.trace.is_some() {
        let cb = match work {
            CtWork::Sync => "do_sync_core+0x0",
            CtWork::Tlbi => "do_kernel_range_flush+0x0",
        };
        crate::tracer::event(
            m,
            from,
            "ipi_send_cpu",
            &format!("cpu={c} callsite=on_each_cpu_cond_mask+0x0 callback={cb}"),
        );
    }
    let at = t.max(m.cpus[c].hw.now) + m.cost.ipi_latency_ns;
    if post_irq(m, c, Vector::CallFunction, at) {
        m.cpus[from].counters.ipis_sent += 1;
    }
}

/// `generic_smp_call_function_single_interrupt()`: run the queued work (`do_sync_core()`, the
/// TLB flush). It also pays what a deferral owed: the CPU is now synchronized.
pub fn call_function_interrupt(k: &mut K) {
    let cost = k.m.cost.resched_ipi;
    let cpu = &mut k.m.cpus[k.cpu];
    let done = std::mem::take(&mut cpu.csd);
    cpu.hw.owed &= !done;
    cpu.counters.work_ipis += 1;
    k.extra_cycles += cost;
}

/// How the remote setter behaves: Linux's, or a broken one for the checker's negative controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setter {
    /// `ct_set_cpu_work()` as the series writes it.
    Linux,
    /// Negative control: the same cmpxchg loop without the "RCU is watching" test (it sets the
    /// bit on a CPU in the kernel, whose exit then clears it unflushed).
    IgnoresWatching,
}

/// The setter's first half from the housekeeping CPU against CPU `c` (`atomic_read()`): a CPU
/// that cannot defer at all gets its IPI at once.
pub fn setter_read(m: &mut Machine, c: CpuId, work: CtWork, setter: Setter) {
    let ct = &m.cpus[c].pcpu.ct; // read only
    let old = match setter {
        Setter::Linux => ctxtrack_core::ct_set_cpu_work_begin(ct, work),
        Setter::IgnoresWatching => (m.cfg.ct_work && ct.active()).then(|| ct.state_word()),
    };
    match old {
        Some(old) if m.cfg.ct_work => m.cpus[c].work_setter = Some(old),
        _ => {
            let now = m.cpus[HOUSEKEEPING].hw.now;
            queue_ipi(m, HOUSEKEEPING, c, now, work);
            crate::monitor::on_sync_done_for(m, c, work);
        }
    }
}

/// The setter's second half: one `atomic_try_cmpxchg()`. Set: CPU `c` owes the work. Watching:
/// the IPI. Otherwise it stays between its read and its next cmpxchg, with the value found.
pub fn setter_cmpxchg(m: &mut Machine, c: CpuId, work: CtWork, setter: Setter) {
    let Some(mut old) = m.cpus[c].work_setter.take() else {
        return;
    };
    let ct = &m.cpus[c].own().pcpu.ct;
    let outcome = match setter {
        Setter::Linux => ctxtrack_core::ct_set_cpu_work_try(ct, &mut old, work),
        Setter::IgnoresWatching => {
            let new = old | work.bit() << ctxtrack_core::state::CT_WORK_START;
            ct.state_try_cmpxchg(&mut old, new).then_some(true)
        }
    };
    match outcome {
        Some(true) => {
            work_deferred(m, c, work);
            crate::monitor::on_sync_done_for(m, c, work);
        }
        Some(false) => {
            let now = m.cpus[HOUSEKEEPING].hw.now;
            queue_ipi(m, HOUSEKEEPING, c, now, work);
            crate::monitor::on_sync_done_for(m, c, work);
        }
        None => m.cpus[c].work_setter = Some(old),
    }
}
