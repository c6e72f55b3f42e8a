//! Entry-code designs as data.
//!
//! A design is a set of [`Path`]s (syscall, IRQ, exception, NMI, fork return, idle loop). A path is
//! one Linux function written as a straight sequence of named [`Step`]s in the order the kernel
//! runs them. The machine executes one step at a time, so an IRQ, NMI or preemption can be
//! injected between any two steps; a [`StepKind::Branch`] step only decides where to go and is not
//! an injection point (it is the `if` of the C code, not an instruction boundary of interest).
//!
//! Designs are data: each is a text file (`designs/*.c`, embedded in the binary) that [`lang`]
//! loads into paths whose steps call kernel services on [`crate::os::K`]. The kernel's own
//! paths (a syscall body, `schedule()`) are Rust paths in [`crate::os`].

pub mod lang;

use crate::cost::CostKey;
use crate::machine::K;

/// Where control goes after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Fall through to the next step.
    Next,
    /// Continue at the step with this index in the same path (a loaded design's resolved
    /// `if`/`while`/`else`).
    Jump(u16),
    /// Call another path; this path continues at its next step when the callee returns.
    Call(&'static Path),
    /// Return from this path to its caller.
    Return,
    /// Re-run this same step later: the task blocked inside it and must retry when woken.
    Retry,
    /// `sti; hlt`: stop until an interrupt arrives, then continue at the next step.
    Halt,
    /// Leave the kernel to user mode (`sysretq`/`iretq` to ring 3). Ends the entry.
    ReturnToUser,
    /// `iretq` to the interrupted kernel context. Ends the entry.
    ReturnToKernel,
}

/// How a step is instrumented, as Linux marks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// `noinstr` code: may run while RCU is not watching; no tracing, no lockdep.
    Noinstr,
    /// Instrumentable code: RCU must be watching (the monitor checks it).
    Instr,
    /// A decision only (zero cost, not an injection point).
    Branch,
}

/// What the cycles of a step count as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Entry/exit code: what the designs differ in (counted as entry overhead).
    Entry,
    /// The work the entry exists for: syscall bodies, handlers, scheduling, fault handling.
    Work,
}

/// One named step of a path. Steps are compared by identity.
#[derive(Clone, Copy)]
pub struct Step {
    /// The Linux function or statement this step is (e.g. `user_exit_irqoff`).
    pub name: &'static str,
    /// Instrumentation class.
    pub kind: StepKind,
    /// Cost category.
    pub category: Category,
    /// Base cost of the step besides the core primitives it performs.
    pub cost: CostKey,
    /// The step itself.
    pub run: Run,
    /// A `noinstr` step that runs patchable text (`static_branch_noinstr()`): for deferred work
    /// it counts as instrumentable code does (the monitor's `ct_work_unflushed`).
    pub patchable: bool,
}

/// What a step does: Rust code, or a statement of a design file.
#[derive(Clone, Copy)]
pub enum Run {
    /// A Rust function.
    Native(fn(&mut K) -> Flow),
    /// A compiled statement of a design file ([`lang`]).
    Op(&'static lang::Op<&'static Path>),
    /// A design file's step that is one primitive without arguments, then `flow` (the common
    /// shape, called directly).
    Prim(fn(&mut K), Flow),
    /// A design file's step of two primitives without arguments, then `flow`.
    Prim2(fn(&mut K), fn(&mut K), Flow),
    /// A design file's step that is one primitive deciding where control goes (`sysretq()`,
    /// `do_syscall_x64()`), then `flow` when it falls through.
    PrimFlow(fn(&mut K) -> Flow, Flow),
    /// A design file's step of several actions, then `flow` when none of them decided.
    Acts(&'static [lang::Act], Flow),
    /// A design file's decision: on to the next statement when the condition holds, else to
    /// the statement with this index.
    Branch(&'static lang::Ex, u16),
}

impl Run {
    /// Runs it.
    #[inline]
    pub fn call(&self, k: &mut K) -> Flow {
        match self {
            Run::Native(f) => f(k),
            Run::Op(op) => lang::exec(k, op),
            Run::Prim(f, flow) => {
                f(k);
                *flow
            }
            Run::Prim2(f, g, flow) => {
                f(k);
                g(k);
                *flow
            }
            Run::PrimFlow(f, flow) => match f(k) {
                Flow::Next => *flow,
                other => other,
            },
            Run::Acts(acts, flow) => match lang::run_acts(k, acts) {
                Flow::Next => *flow,
                other => other,
            },
            Run::Branch(cond, target) => {
                if lang::test(k, cond) {
                    Flow::Next
                } else {
                    Flow::Jump(*target)
                }
            }
        }
    }
}

impl Step {
    /// A `noinstr` entry step.
    pub const fn noinstr(name: &'static str, cost: CostKey, run: fn(&mut K) -> Flow) -> Step {
        Step {
            name,
            kind: StepKind::Noinstr,
            category: Category::Entry,
            cost,
            run: Run::Native(run),
            patchable: false,
        }
    }
    /// An instrumentable entry step.
    pub const fn instr(name: &'static str, cost: CostKey, run: fn(&mut K) -> Flow) -> Step {
        Step {
            name,
            kind: StepKind::Instr,
            category: Category::Entry,
            cost,
            run: Run::Native(run),
            patchable: false,
        }
    }
    /// An instrumentable work step (syscall body, handler, schedule).
    pub const fn work(name: &'static str, cost: CostKey, run: fn(&mut K) -> Flow) -> Step {
        Step {
            name,
            kind: StepKind::Instr,
            category: Category::Work,
            cost,
            run: Run::Native(run),
            patchable: false,
        }
    }
    /// A decision (`if`, `while`): free and not an injection point.
    pub const fn branch(name: &'static str, run: fn(&mut K) -> Flow) -> Step {
        Step {
            name,
            kind: StepKind::Branch,
            category: Category::Entry,
            cost: CostKey::None,
            run: Run::Native(run),
            patchable: false,
        }
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Step {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self, o)
    }
}
impl Eq for Step {}

/// A Linux function as a sequence of steps.
pub struct Path {
    /// Function name (`irqentry_enter`, `do_syscall_64`, ...).
    pub name: &'static str,
    /// Steps in program order.
    pub steps: &'static [Step],
}

impl std::fmt::Debug for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Path {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self, o)
    }
}
impl Eq for Path {}

/// A complete entry design: one path per hardware entry.
pub struct Design {
    /// Short name used on the command line (`generic-entry`).
    pub name: &'static str,
    /// One line on what it is and where it comes from.
    pub summary: &'static str,
    /// `entry_SYSCALL_64`: from the `syscall` instruction to `sysretq`.
    pub syscall: &'static Path,
    /// Device/system-vector interrupt: from delivery to `iretq`.
    pub irq: &'static Path,
    /// Exception (page fault, breakpoint) from delivery to `iretq`.
    pub exception: &'static Path,
    /// NMI from delivery to `iretq`.
    pub nmi: &'static Path,
    /// A breakpoint or debug trap (`int3`, `#DB`) that hits kernel code, entry code included
    /// (from user mode these take the [`Design::exception`] path, as Linux's do).
    pub debug: &'static Path,
    /// A new task's first return to user mode (`ret_from_fork`).
    pub ret_from_fork: &'static Path,
    /// The idle task's loop (`do_idle`), run forever by each CPU's idle task.
    pub idle: &'static Path,
}

impl std::fmt::Debug for Design {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Each shipped file's design, loaded on first use (a run loads only the design it names).
static LOADED: [std::sync::OnceLock<&'static Design>; lang::SHIPPED.len()] =
    [const { std::sync::OnceLock::new() }; lang::SHIPPED.len()];

/// The design of [`lang::SHIPPED`]`[i]`, loaded once.
fn shipped(i: usize) -> &'static Design {
    LOADED[i].get_or_init(|| {
        // The shipped files are loaded by the tests of every build: an error here is a bug in
        // this repository, not in anyone's input.
        lang::load_shipped(lang::SHIPPED[i].0).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Every design this build knows, in presentation order: the shipped design files
/// ([`lang::SHIPPED`]).
pub fn all() -> &'static [&'static Design] {
    static ALL: std::sync::OnceLock<Vec<&'static Design>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        (0..lang::SHIPPED.len())
            .filter(|&i| lang::SHIPPED[i].0.ends_with(".c"))
            .map(shipped)
            .collect()
    })
}

/// Looks a design up by name (a shipped file is named after its design, so only that one is
/// loaded); the error lists the valid names.
pub fn by_name(name: &str) -> Result<&'static Design, String> {
    let file = lang::SHIPPED
        .iter()
        .position(|(f, _)| f.strip_suffix(".c") == Some(name));
    if let Some(d) = file.map(shipped).filter(|d| d.name == name) {
        return Ok(d);
    }
    all()
        .iter()
        .copied()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = all().iter().map(|d| d.name).collect();
            format!(
                "unknown design {name:?}; valid designs: {}",
                names.join(", ")
            )
        })
}
