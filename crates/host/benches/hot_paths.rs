//! Criterion benchmarks of the core's hot paths on this machine (`cargo bench -p ctxtrack-host`).
//! Each group puts a path next to its baseline, so the ratio is read off one run:
//! `p1` (round trip vs two fully ordered RMWs + two clock reads, goal ≤ 1.3×), `p2` (call sites
//! with the key off vs none, around a getppid() round trip, goal ≤ 1.02×, static key and
//! atomic-bool fallback), `p2_skeleton` (the same without the system call) and `paths` (IRQ from
//! user / kernel, NMI, idle). `ctxtrack bench host` prints the same loops' ratios directly.

use criterion::{criterion_group, criterion_main, Criterion};
use ctxtrack_host::hot::HotCpu;
use ctxtrack_host::key::{AtomicBoolKey, DefaultKey};

fn p1(c: &mut Criterion) {
    let mut on = HotCpu::<DefaultKey>::new(true);
    let mut g = c.benchmark_group("p1");
    on.activate();
    g.bench_function("ct_user_exit+ct_user_enter", |b| {
        b.iter(|| on.p1_round_trip())
    });
    g.bench_function("floor_2rmw_2clock", |b| b.iter(|| on.p1_floor()));
    g.finish();
    assert_eq!(on.warnings(), 0);
}

fn p2(c: &mut Criterion) {
    let mut off = HotCpu::<DefaultKey>::new(false);
    let mut off_bool = HotCpu::<AtomicBoolKey>::new(false);
    for (group, syscall) in [("p2", true), ("p2_skeleton", false)] {
        let mut g = c.benchmark_group(group);
        off.activate();
        g.bench_function("static_key_off", |b| {
            b.iter(|| match syscall {
                true => off.p2_syscall_instrumented(),
                false => off.skeleton_instrumented(),
            })
        });
        off_bool.activate();
        g.bench_function("atomic_bool_off", |b| {
            b.iter(|| match syscall {
                true => off_bool.p2_syscall_instrumented(),
                false => off_bool.skeleton_instrumented(),
            })
        });
        g.bench_function("uninstrumented", |b| {
            b.iter(|| match syscall {
                true => off.p2_syscall_uninstrumented(),
                false => off.skeleton_uninstrumented(),
            })
        });
        g.finish();
    }
}

fn paths(c: &mut Criterion) {
    let mut on = HotCpu::<DefaultKey>::new(true);
    let mut kernel = HotCpu::<DefaultKey>::new(true);
    kernel.enter_kernel(false);
    let mut idle = HotCpu::<DefaultKey>::new(true);
    idle.enter_kernel(true);
    on.activate();
    let mut g = c.benchmark_group("paths");
    g.bench_function("irq_from_user", |b| b.iter(|| on.irq_from_user()));
    g.bench_function("irq_from_kernel", |b| b.iter(|| kernel.irq_from_kernel()));
    g.bench_function("nmi_from_user", |b| b.iter(|| on.nmi_from_user()));
    g.bench_function("idle_enter_exit", |b| b.iter(|| idle.idle_round_trip()));
    g.finish();
    assert_eq!(on.warnings() + kernel.warnings() + idle.warnings(), 0);
}

criterion_group!(benches, p1, p2, paths);
criterion_main!(benches);
