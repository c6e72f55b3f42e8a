//! Copies of a machine share the CPUs and tasks they have not written
//! (`ctxtrack_sim::machine::Shared`). A transition applied to a copy must never reach the state
//! it was copied from: a write through a shared reference (the atomics of a remote
//! `rcu_urgent_qs`, a CT_WORK cmpxchg, a grace-period scan) would change every copy at once and
//! the search would explore states that do not exist.

use ctxtrack_check::model::{Action, CheckConfig, Model};
use ctxtrack_sim::design;
use ctxtrack_sim::Machine;
use std::collections::HashSet;

/// Breadth-first from the roots over the first `limit` states: every action applied to a copy
/// leaves the original's fingerprint, and a copy made before it, as they were.
/// Returns the transitions checked and the kinds of action among them.
fn expanding_leaves_the_state_alone(
    cfg: CheckConfig,
    limit: usize,
) -> (usize, HashSet<std::mem::Discriminant<Action>>) {
    let model = Model::new(cfg).unwrap();
    let mut queue: std::collections::VecDeque<Machine> = model
        .roots()
        .unwrap()
        .into_iter()
        .map(|r| r.machine)
        .collect();
    let mut seen = HashSet::new();
    let mut actions = Vec::new();
    let mut checked = 0;
    let mut kinds = HashSet::new();
    while let Some(m) = queue.pop_front() {
        if !seen.insert(model.fingerprint(&m)) || seen.len() > limit {
            continue;
        }
        let before = model.fingerprint(&m);
        let witness = m.clone();
        actions.clear();
        model.actions(&m, &mut actions);
        for &a in &actions {
            let mut n = m.clone();
            model.apply(&mut n, a);
            checked += 1;
            kinds.insert(std::mem::discriminant(&a));
            assert_eq!(
                model.fingerprint(&m),
                before,
                "{a:?} applied to a copy changed the original"
            );
            assert_eq!(
                model.fingerprint(&witness),
                before,
                "{a:?} changed an older copy"
            );
            if n.monitor().count == 0 {
                queue.push_back(n);
            }
        }
    }
    (checked, kinds)
}

#[test]
fn a_transition_on_a_copy_never_reaches_the_original() {
    // Two CPUs (remote wakeups, IPIs), deferred work (the setter's cmpxchg into another CPU's
    // state word), softirqs and offloaded callbacks, grace periods in handlers (scans, urgency).
    let mut kinds = HashSet::new();
    for (name, cpus, depth) in [("generic-entry", 1, 3), ("weisbecker-2015", 2, 1)] {
        let cfg = CheckConfig {
            cpus,
            depth,
            ct_work: true,
            softirq: true,
            nocb: true,
            gp_in_hardirq: true,
            ..CheckConfig::new(design::by_name(name).unwrap())
        };
        let (n, k) = expanding_leaves_the_state_alone(cfg, 20_000);
        assert!(n > 50_000, "{name}: only {n} transitions checked");
        kinds.extend(k);
    }
    // It means something only if every kind of action was applied.
    let all = [
        Action::Step(1),
        Action::Syscall(1),
        Action::Irq(1, ctxtrack_sim::machine::Vector::Device),
        Action::Nmi(1),
        Action::Breakpoint(1),
        Action::PageFault(1),
        Action::Preempt(1),
        Action::Signal(1),
        Action::GpStart,
        Action::GpFqs,
        Action::GpUrgent(1),
        Action::WorkRead(1),
        Action::WorkCmpxchg(1),
    ];
    for a in all {
        assert!(
            kinds.contains(&std::mem::discriminant(&a)),
            "{a:?} never applied"
        );
    }
}
