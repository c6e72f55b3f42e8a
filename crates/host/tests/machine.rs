//! The core on real threads: CPU threads in user mode, syscalls with RCU readers and IRQs, and a
//! grace-period thread reading their state words concurrently.

use ctxtrack_core::state::CT_RCU_WATCHING;
use ctxtrack_core::StaticKey;
use ctxtrack_host::key::AtomicBoolKey;
use ctxtrack_host::machine::{run, HostConfig};

/// Real concurrency: grace periods run while CPUs make syscalls; holdouts get kicked (IRQs from
/// user and from kernel). No reader may ever see its version freed, the core must record no
/// violation, and vtime must account every nanosecond of every CPU.
#[test]
fn grace_periods_never_free_under_a_reader() {
    let cfg = HostConfig {
        cpus: 2,
        syscalls: 20_000,
        user_ns: 1_000,
        reader_ns: 2_000,
        fqs_polls: 200,
        ..HostConfig::default()
    };
    let key = StaticKey::new_false();
    let r = run::<AtomicBoolKey>(&cfg, &key).unwrap();
    eprintln!("{r:#?}");
    assert_eq!(r.reader_failures, 0, "{r:?}");
    assert!(r.grace_periods > 0, "{r:?}");
    assert_eq!(r.readers, 2 * 20_000);
    for (c, cpu) in r.cpus.iter().enumerate() {
        assert_eq!(cpu.syscalls, 20_000);
        assert_eq!(cpu.warnings, (0, None), "CPU {c}");
        assert_eq!(cpu.conservation_error, None, "CPU {c}");
        assert!(cpu.user_ns > 0 && cpu.sys_ns > 0, "CPU {c}: {cpu:?}");
        // Every syscall is one EQS exit and one entry (2 counter steps each way): the counter
        // moved 2 * (syscalls + IRQs from user) + 1 boot return + 1 final entry times.
        let steps = 2 * (cpu.syscalls + cpu.irqs_from_user) + 2;
        let counter = (cpu.final_state / CT_RCU_WATCHING) as u64;
        assert_eq!(counter, 1 + steps, "CPU {c}: {cpu:?}");
    }
}

/// The point of it all: with every nohz_full CPU sitting in user mode, grace periods complete
/// from their state words alone, with no IPI to any of them.
#[test]
fn grace_periods_complete_without_ipis_while_cpus_are_in_user_mode() {
    let cfg = HostConfig {
        cpus: 3,
        park_in_user: true,
        grace_periods: 50,
        fqs_polls: 1_000_000,
        ..HostConfig::default()
    };
    let key = StaticKey::new_false();
    let r = run::<AtomicBoolKey>(&cfg, &key).unwrap();
    assert_eq!(r.grace_periods, 50);
    assert_eq!(r.gp_offline_qs, 0);
    for cpu in &r.cpus {
        assert_eq!(cpu.ipis, 0, "{r:?}");
        assert_eq!(cpu.irqs_from_user, 0);
        assert_eq!(cpu.warnings, (0, None));
        assert_eq!(cpu.conservation_error, None);
    }
}
