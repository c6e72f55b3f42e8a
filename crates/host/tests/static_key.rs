//! The code-patched key. One test in this binary: patching is only safe while no other thread
//! runs the patched code, and the test harness would otherwise run tests in parallel.

use ctxtrack_core::state::CT_RCU_WATCHING;
use ctxtrack_core::StaticKey;
use ctxtrack_host::hot::HotCpu;
use ctxtrack_host::key::{sync_keys, AtomicBoolKey, DefaultKey, KeyBackend};
use ctxtrack_host::machine::{run, HostConfig};

#[test]
fn call_sites_follow_the_key_and_patching_is_refused_while_cpus_run() {
    // Off, then on, then off again: each backend's call site agrees with the data key.
    let key = StaticKey::new_false();
    sync_keys(&key).unwrap();
    assert!(!DefaultKey::static_branch_unlikely());
    assert!(!AtomicBoolKey::static_branch_unlikely());
    key.static_branch_inc();
    sync_keys(&key).unwrap();
    assert!(DefaultKey::static_branch_unlikely());
    assert!(AtomicBoolKey::static_branch_unlikely());
    key.static_branch_dec();
    sync_keys(&key).unwrap();
    assert!(!DefaultKey::static_branch_unlikely());

    // Hot loops: with the key on, a round trip moves the counter by two EQS steps each way;
    // with the key off the call sites do nothing at all.
    let mut on = HotCpu::<DefaultKey>::new(true);
    let mut off = HotCpu::<DefaultKey>::new(false);
    on.activate();
    for _ in 0..1000 {
        on.p1_round_trip();
        on.irq_from_user();
        on.nmi_from_user();
    }
    off.activate();
    for _ in 0..1000 {
        off.p2_syscall_instrumented();
        off.skeleton_instrumented();
    }
    assert_eq!((on.warnings(), off.warnings()), (0, 0));
    let (on_word, off_word) = (on.state_word(), off.state_word());
    // Boot return (1 step) + 1000 × (round trip 2 + IRQ 2 + NMI 2) steps of CT_RCU_WATCHING.
    assert_eq!(on_word / CT_RCU_WATCHING, 1 + 1 + 6000, "{on_word:#x}");
    assert_eq!(off_word / CT_RCU_WATCHING, 1, "{off_word:#x}");

    // A machine run uses the patched key from its threads; patching meanwhile is refused.
    let key = StaticKey::new_false();
    let cfg = HostConfig {
        cpus: 1,
        syscalls: 200,
        ..HostConfig::default()
    };
    let r = run::<DefaultKey>(&cfg, &key).unwrap();
    assert_eq!(r.cpus[0].syscalls, 200);
    assert_eq!(r.cpus[0].warnings, (0, None));
    assert!(
        DefaultKey::static_branch_unlikely(),
        "the run's CPU is nohz_full"
    );
    let guard = ctxtrack_host::key::CpuThreadGuard::new();
    let e = sync_keys(&StaticKey::new_false()).unwrap_err();
    assert!(e.to_string().contains("1 host CPU thread"), "{e}");
    assert!(DefaultKey::static_branch_unlikely(), "left as it was");
    drop(guard);
    sync_keys(&StaticKey::new_false()).unwrap();
    assert!(!DefaultKey::static_branch_unlikely());
}
