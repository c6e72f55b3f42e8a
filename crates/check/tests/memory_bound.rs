//! `--max-memory` bounds what the search holds, measured by the allocator: the explorer's count
//! of its waiting states (machines that share what their transitions did not write) must not
//! undercount them, or a search meant to stop at its budget runs the machine out of memory.

use ctxtrack_check::explore::explore;
use ctxtrack_check::model::{CheckConfig, Model};
use ctxtrack_sim::design;

#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

#[test]
fn a_search_stops_at_its_memory_budget_as_the_allocator_measures_it() {
    const BUDGET_MIB: u64 = 400;
    let cfg = CheckConfig {
        cpus: 2,
        depth: 2,
        max_memory_mb: BUDGET_MIB,
        ..CheckConfig::new(design::by_name("generic-entry").unwrap())
    };
    let model = Model::new(cfg).unwrap();
    let roots = model.roots().unwrap();
    let before = ALLOC.allocated();
    let o = explore(&model, &roots, &mut |_| {});
    let peak = ALLOC.max_allocated() - before;
    assert!(!o.complete, "the budget is meant to stop this search");
    assert!(
        o.limit
            .as_deref()
            .is_some_and(|l| l.starts_with("--max-memory 400 MiB")),
        "{:?}",
        o.limit
    );
    // The budget bounds the waiting states; one batch's children (expanded before they are
    // merged), the visited set and the parent links come on top. Counting only what each
    // child wrote (not the parent components it alone ends up holding) peaks at 712 MiB here.
    let bound = ((BUDGET_MIB + 64) << 20) as usize + (o.states as usize) * 64;
    assert!(
        peak <= bound,
        "peak heap {} MiB for a {BUDGET_MIB} MiB budget ({} states)",
        peak >> 20,
        o.states
    );
}
