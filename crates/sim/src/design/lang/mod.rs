//! Entry designs as text: a C-like language that reads like `kernel/entry/common.c`, loaded into
//! the same [`Path`]s of [`Step`]s the machine and the checker run.
//!
//! ```c
//! #design "my-entry"
//! #summary "generic entry with one change"
//! #include "generic-entry-common.h"
//! #entry syscall do_syscall_64
//!
//! noinstr void do_syscall_64(struct pt_regs *regs)
//! {
//!     hw_syscall();
//!     enter_from_user_mode(regs);
//!     instrumentation_begin();
//!     local_irq_enable();
//!     ...
//! }
//! ```
//!
//! Semantics (ARCHITECTURE.md has the grammar and the primitive table):
//! - a statement that calls primitives is one **step**: an instruction boundary where the
//!   simulator and the checker may inject an event before it runs. `a(), b();` (C's comma) makes
//!   several calls one step; `name: stmt;` names the step (else its text does);
//! - conditions (`if`, `while`), calls of the file's functions, `return` and assignments of
//!   locals are free: they are decisions and register moves, not boundaries of interest;
//! - a step is `noinstr` when it is in a `noinstr` function outside
//!   `instrumentation_begin()/end()`; the loader refuses an instrumentable primitive there, as
//!   objtool does (a note instead in designs that predate `noinstr`: `#era "pre-noinstr"`);
//! - a step's base cost is its first priced primitive's cost key; its category is work when it
//!   calls a work primitive (handlers, bodies, scheduling), else entry overhead.
//!
//! Every name is resolved when the file is loaded; errors carry `file:line:col`, the offending
//! text and a suggestion.

pub mod prims;
pub mod syntax;

use crate::cost::CostKey;
use crate::design::{Category, Design, Flow, Path, Run, Step, StepKind};
use crate::machine::K;
use prims::{Arg, Class, Imp, Prim, Ret};
use std::collections::BTreeMap;
use syntax::{BinOp, Expr, Item, LValue, Pos, Stmt, Ty};

/// Local variable slots of one entry (every function's variables, stacked by call depth).
pub const MAX_VARS: usize = 4;
/// Most arguments a primitive takes (the table's longest list, `CT_WARN_ON`'s condition and
/// the warning it names).
const MAX_ARGS: usize = 2;
/// Most steps (statements, decisions) one function may compile to.
pub const MAX_STEPS: usize = 2_000;
/// Most functions a design may have.
pub const MAX_FUNCS: usize = 256;
/// Deepest chain of `#include`s.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// An error (or a note) in a design file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// File name.
    pub file: String,
    /// Where.
    pub pos: Pos,
    /// What is wrong and what was expected.
    pub msg: String,
    /// The source line, when known.
    pub line_text: Option<String>,
}

impl Error {
    /// An error at `pos` of `file`.
    pub fn new(file: &str, pos: Pos, msg: String) -> Error {
        Error {
            file: file.to_string(),
            pos,
            msg,
            line_text: None,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.col, self.msg
        )?;
        if let Some(l) = &self.line_text {
            let lead = format!("{:>5} | ", self.pos.line);
            write!(
                f,
                "\n{lead}{l}\n{}^",
                " ".repeat(lead.len() + self.pos.col.saturating_sub(1) as usize)
            )?;
        }
        Ok(())
    }
}

/// "did you mean" for `name` among `cands` (edit distance at most a third of the name).
pub fn suggest<'a>(name: &str, cands: impl IntoIterator<Item = &'a str>) -> String {
    fn dist(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
                cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    let best = cands
        .into_iter()
        .map(|c| (dist(name, c), c))
        .filter(|(d, _)| *d <= (name.len() / 3).max(1))
        .min();
    match best {
        Some((_, c)) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

/// The hardware entry kinds a design binds (`#entry KIND function`).
pub const ENTRY_KINDS: [&str; 7] = [
    "syscall",
    "irq",
    "exception",
    "nmi",
    "debug",
    "ret_from_fork",
    "idle",
];

// ------------------------------------------------------------------------------ the IR

/// A value: evaluated when a step or decision runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Ex {
    /// A constant.
    Const(i64),
    /// A local variable slot of the entry.
    Slot(u8),
    /// A query primitive.
    Query(&'static Prim, Box<[Ex]>),
    /// `!e`.
    Not(Box<Ex>),
    /// `a op b`.
    Bin(BinOp, Box<Ex>, Box<Ex>),
    /// While loading only: the result slot of function `n` (a slot once frames are laid out).
    CalleeResult(usize),
    /// A query without arguments (`need_resched()`), called directly.
    Query0(QueryFn),
    /// `read_thread_flags() & MASK` with a mask of real thread flags.
    ThreadFlags(u32),
    /// `query() == value` (or `!=` when the flag is set) for a query without arguments
    /// (`ct_state() != CT_STATE_USER`): one call instead of three evaluations.
    QueryCmp(QueryFn, i64, bool),
}

/// A function pointer in a built form (`Ex::Query0`, `Act::Call0`). Built forms exist only
/// after `Analyzed::leak`; the loader's tests compare IR before that, so equality is by shape
/// (function addresses are not unique anyway).
#[derive(Clone, Copy, Debug)]
pub struct Built<F>(pub F);

impl<F> PartialEq for Built<F> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A query's implementation, called directly.
pub type QueryFn = Built<fn(&mut K, &[i64]) -> i64>;
/// A void primitive's implementation, called directly.
pub type VoidFn = Built<fn(&mut K)>;

/// What a binary operator does, given its left value and its right one on demand (`&&` and `||`
/// evaluate the right side only when C does). The one home of the operators' semantics: used
/// when a design runs and when its constants are folded.
fn binop(op: BinOp, x: i64, y: impl FnOnce() -> i64) -> i64 {
    match op {
        BinOp::And => (x != 0 && y() != 0) as i64,
        BinOp::Or => (x != 0 || y() != 0) as i64,
        BinOp::Eq => (x == y()) as i64,
        BinOp::Ne => (x != y()) as i64,
        BinOp::BitAnd => x & y(),
        BinOp::BitOr => x | y(),
    }
}

impl Ex {
    /// The same value, in the cheapest form to evaluate (applied when a design is built).
    fn simplify(self) -> Ex {
        match self {
            Ex::Query(p, args) if args.is_empty() => match (p.name, p.run) {
                (_, Imp::Value(f)) => Ex::Query0(Built(f)),
                _ => Ex::Query(p, args),
            },
            Ex::Query(p, args) => {
                Ex::Query(p, args.into_vec().into_iter().map(Ex::simplify).collect())
            }
            Ex::Not(x) => match x.simplify() {
                Ex::Const(v) => Ex::Const((v == 0) as i64),
                x => Ex::Not(Box::new(x)),
            },
            Ex::Bin(op, a, b)
                if matches!(
                    (a.clone().simplify(), b.clone().simplify()),
                    (Ex::Const(_), Ex::Const(_))
                ) =>
            {
                let (Ex::Const(x), Ex::Const(y)) = (a.simplify(), b.simplify()) else {
                    unreachable!()
                };
                Ex::Const(binop(op, x, || y))
            }
            Ex::Bin(BinOp::BitAnd, a, b) => {
                // `read_thread_flags() & MASK` (either order) with a constant mask of real flags.
                let flags = |e: &Ex| matches!(e, Ex::Query(p, args) if p.name == "read_thread_flags" && args.is_empty());
                let mask = match (flags(&a), flags(&b)) {
                    (true, _) => Some(b.clone().simplify()),
                    (_, true) => Some(a.clone().simplify()),
                    _ => None,
                };
                match mask {
                    Some(Ex::Const(m))
                        if (0..=u32::MAX as i64).contains(&m)
                            && (m as u32) & prims::TIF_NOHZ == 0 =>
                    {
                        Ex::ThreadFlags(m as u32)
                    }
                    _ => Ex::Bin(
                        BinOp::BitAnd,
                        Box::new(a.simplify()),
                        Box::new(b.simplify()),
                    ),
                }
            }
            Ex::Bin(op @ (BinOp::Eq | BinOp::Ne), a, b) => match (a.simplify(), b.simplify()) {
                (Ex::Query0(f), Ex::Const(c)) | (Ex::Const(c), Ex::Query0(f)) => {
                    Ex::QueryCmp(f, c, op == BinOp::Ne)
                }
                (a, b) => Ex::Bin(op, Box::new(a), Box::new(b)),
            },
            Ex::Bin(op, a, b) => Ex::Bin(op, Box::new(a.simplify()), Box::new(b.simplify())),
            other => other,
        }
    }
}

/// One action of a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    /// A primitive, its arguments and where its result goes.
    Prim(&'static Prim, Box<[Ex]>, Option<u8>),
    /// A local written inside the step.
    Set(u8, Ex),
    /// Built form of a void primitive without arguments: called directly.
    Call0(VoidFn),
    /// Built form of `CT_WARN_ON(cond)`: the condition and the warning it names.
    Warn(Ex, ctxtrack_core::Violation),
    /// Built form of `CT_WARN_ON(ct_state() != STATE)` (or `__ct_state()`): the two read the
    /// same word whenever the warning can fire (the static key is on).
    WarnState(ctxtrack_core::CtState, ctxtrack_core::Violation),
}

impl Act {
    /// The cheapest form to run (applied when a design is built).
    fn built(self) -> Act {
        match self {
            // A void primitive reads no argument values (`regs`, `current` name the entry's own).
            Act::Prim(p, args, None) if matches!(p.run, Imp::Void(_)) || args.is_empty() => {
                match p.run {
                    Imp::Void(f) => Act::Call0(Built(f)),
                    _ => Act::Prim(p, args, None),
                }
            }
            Act::Prim(p, args, None) if p.name == "CT_WARN_ON" => {
                let v = match args.get(1) {
                    Some(Ex::Const(s)) if *s == ctxtrack_core::CtState::User as i64 => {
                        ctxtrack_core::Violation::EnterFromUserNotUser
                    }
                    _ => ctxtrack_core::Violation::SyscallExitNotKernel,
                };
                let state = |e: &Ex| match e {
                    Ex::Query(p, a)
                        if a.is_empty() && matches!(p.name, "ct_state" | "__ct_state") =>
                    {
                        true
                    }
                    _ => false,
                };
                let konst = |e: &Ex| match e {
                    Ex::Const(c) => {
                        use ctxtrack_core::CtState::*;
                        [Kernel, Idle, User, Guest]
                    }
                    .into_iter()
                    .find(|s| *s as i64 == *c),
                    _ => None,
                };
                match &args[0] {
                    Ex::Bin(BinOp::Ne, a, b) if state(a) && konst(b).is_some() => {
                        Act::WarnState(konst(b).expect("checked"), v)
                    }
                    Ex::Bin(BinOp::Ne, a, b) if state(b) && konst(a).is_some() => {
                        Act::WarnState(konst(a).expect("checked"), v)
                    }
                    c => Act::Warn(c.clone().simplify(), v),
                }
            }
            Act::Prim(p, args, out) => Act::Prim(
                p,
                args.into_vec().into_iter().map(Ex::simplify).collect(),
                out,
            ),
            Act::Set(s, e) => Act::Set(s, e.simplify()),
            other => other,
        }
    }
}

/// Where control goes after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Then<F> {
    /// The next statement.
    Next,
    /// Return from the function (a `return;` right after the step).
    Return,
    /// To a statement (a jump right after the step).
    Jump(u16),
    /// Call a function of the file, arguments into its parameter slots.
    Call(F, Box<[(u8, Ex)]>),
}

/// One compiled statement; `F` names a callee (an index while loading, a path once built).
#[derive(Clone, Debug, PartialEq)]
pub enum Op<F> {
    /// A step: actions in order, then where to go.
    Step(Box<[Act]>, Then<F>),
    /// A step that is one primitive without arguments or result (the common shape).
    Do(&'static Prim, Then<F>),
    /// A decision: to `target` when the condition is false.
    Branch(Ex, u16),
    /// To `target`.
    Jump(u16),
    /// `slot = value`.
    Assign(u8, Ex),
    /// A call of a file function: arguments into its parameter slots.
    Call(F, Box<[(u8, Ex)]>),
    /// A free call into a kernel path (`do_syscall_x64`).
    KernelCall(&'static Prim),
    /// `return [value]` (into the function's result slot).
    Return(Option<(u8, Ex)>),
}

/// A compiled statement with what the machine needs to know of it.
#[derive(Clone, Debug, PartialEq)]
pub struct IrStep {
    /// Step name (label or text).
    pub name: String,
    /// Instrumentation class (`Branch` for free ones).
    pub kind: StepKind,
    /// Cost category.
    pub category: Category,
    /// Base cost key.
    pub cost: CostKey,
    /// What it does.
    pub op: Op<usize>,
    /// Where it is.
    pub pos: Pos,
}

/// A compiled function.
#[derive(Clone, Debug, PartialEq)]
pub struct IrFunc {
    /// Name.
    pub name: String,
    /// Its statements.
    pub steps: Vec<IrStep>,
    /// Functions it calls (indices).
    pub callees: Vec<usize>,
}

/// A design file, checked and compiled, not yet turned into static paths.
#[derive(Clone, Debug)]
pub struct Analyzed {
    /// `#design`.
    pub name: String,
    /// `#summary`.
    pub summary: String,
    /// Functions.
    pub funcs: Vec<IrFunc>,
    /// Entry kind → function index, in [`ENTRY_KINDS`] order.
    pub entries: [usize; 7],
    /// Notes (the `noinstr` rule in designs that predate it, unused functions).
    pub notes: Vec<Error>,
}

// ------------------------------------------------------------------------------ loading

/// Where `#include "x"` finds `x`: the text, or why not.
pub type Includer<'a> = &'a dyn Fn(&str) -> Result<String, String>;

fn with_line(mut e: Error, sources: &BTreeMap<String, String>) -> Error {
    if e.line_text.is_none() {
        if let Some(src) = sources.get(&e.file) {
            e.line_text = src
                .lines()
                .nth(e.pos.line.saturating_sub(1) as usize)
                .map(|l| l.replace('\t', " "));
        }
    }
    e
}

/// Parses, resolves and checks `src` (named `file` in errors); `include` finds included files.
pub fn analyze(file: &str, src: &str, include: Includer) -> Result<Analyzed, Error> {
    let mut sources = BTreeMap::new();
    sources.insert(file.to_string(), src.to_string());
    analyze_inner(file, src, include, &mut sources).map_err(|e| with_line(e, &sources))
}

fn analyze_inner(
    file: &str,
    src: &str,
    include: Includer,
    sources: &mut BTreeMap<String, String>,
) -> Result<Analyzed, Error> {
    let ast = syntax::parse(file, src)?;
    let mut name = None;
    let mut summary = String::new();
    let mut pre_noinstr = false;
    let mut entries: [Option<(String, Pos)>; 7] = Default::default();
    let mut funcs = ast.funcs.clone();
    let mut includes = Vec::new();
    let str_arg = |d: &syntax::Directive| -> Result<String, Error> {
        match d.args.as_slice() {
            [(syntax::Tok::Str(s), _)] => Ok(s.clone()),
            _ => Err(Error::new(
                file,
                d.pos,
                format!("`#{}` takes one string, e.g. `#{} \"...\"`", d.name, d.name),
            )),
        }
    };
    for d in &ast.directives {
        match d.name.as_str() {
            "design" => {
                let n = str_arg(d)?;
                if n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(Error::new(
                        file,
                        d.pos,
                        format!("design name {n:?}: use letters, digits, `-`, `_` and `.`"),
                    ));
                }
                if name.replace(n).is_some() {
                    return Err(Error::new(file, d.pos, "a second `#design`".into()));
                }
            }
            "summary" => summary = str_arg(d)?,
            "era" => {
                let e = str_arg(d)?;
                match e.as_str() {
                    "pre-noinstr" => pre_noinstr = true,
                    "noinstr" => {}
                    _ => return Err(Error::new(file, d.pos, format!("`#era {e:?}`: expected \"pre-noinstr\" (before Linux 5.8's noinstr) or \"noinstr\""))),
                }
            }
            "include" => includes.push((str_arg(d)?, d.pos)),
            "entry" => {
                let words: Vec<(&str, Pos)> = d
                    .args
                    .iter()
                    .filter_map(|(t, p)| match t {
                        syntax::Tok::Ident(s) => Some((s.as_str(), *p)),
                        _ => None,
                    })
                    .collect();
                if words.len() != 2 || d.args.len() != 2 {
                    return Err(Error::new(file, d.pos, format!("`#entry` takes a kind and a function: `#entry syscall do_syscall_64` (kinds: {})", ENTRY_KINDS.join(", "))));
                }
                let (kind, kpos) = words[0];
                let Some(k) = ENTRY_KINDS.iter().position(|x| *x == kind) else {
                    return Err(Error::new(
                        file,
                        kpos,
                        format!(
                            "unknown entry kind `{kind}`{}; kinds: {}",
                            suggest(kind, ENTRY_KINDS),
                            ENTRY_KINDS.join(", ")
                        ),
                    ));
                };
                if entries[k]
                    .replace((words[1].0.to_string(), words[1].1))
                    .is_some()
                {
                    return Err(Error::new(
                        file,
                        kpos,
                        format!("entry `{kind}` bound twice"),
                    ));
                }
            }
            other => {
                return Err(Error::new(file, d.pos, format!("unknown directive `#{other}`{}; directives: #design, #summary, #era, #include, #entry", suggest(&format!("#{other}"), ["#design", "#summary", "#era", "#include", "#entry"]))));
            }
        }
    }
    // Included files add functions (and may include others), nothing else.
    let mut stack: Vec<(String, Pos, String, usize)> = includes
        .into_iter()
        .rev()
        .map(|(n, p)| (n, p, file.to_string(), 1))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some((inc, pos, from, depth)) = stack.pop() {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(Error::new(
                &from,
                pos,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            ));
        }
        if !seen.insert(inc.clone()) {
            continue;
        }
        let text = include(&inc)
            .map_err(|e| Error::new(&from, pos, format!("#include \"{inc}\": {e}")))?;
        sources.insert(inc.clone(), text.clone());
        let a = syntax::parse(&inc, &text)?;
        for d in &a.directives {
            match d.name.as_str() {
                "include" => match d.args.as_slice() {
                    [(syntax::Tok::Str(s), _)] => stack.push((s.clone(), d.pos, inc.clone(), depth + 1)),
                    _ => return Err(Error::new(&inc, d.pos, "`#include` takes one string".into())),
                },
                other => return Err(Error::new(&inc, d.pos, format!("`#{other}` in an included file: an included file holds only functions and #include"))),
            }
        }
        funcs.extend(a.funcs);
    }
    let Some(name) = name else {
        return Err(Error::new(
            file,
            Pos { line: 1, col: 1 },
            "missing `#design \"name\"`".into(),
        ));
    };
    if funcs.len() > MAX_FUNCS {
        return Err(Error::new(
            file,
            Pos { line: 1, col: 1 },
            format!(
                "{} functions; a design may have at most {MAX_FUNCS}",
                funcs.len()
            ),
        ));
    }
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, f) in funcs.iter().enumerate() {
        if prims::by_name(&f.name).is_some() {
            return Err(Error::new(
                &f.file,
                f.pos,
                format!(
                    "function `{}` has the name of a primitive (it would hide it)",
                    f.name
                ),
            ));
        }
        if let Some(&j) = index.get(f.name.as_str()) {
            let g = &funcs[j];
            return Err(Error::new(
                &f.file,
                f.pos,
                format!(
                    "function `{}` is defined twice (first at {}:{}:{})",
                    f.name, g.file, g.pos.line, g.pos.col
                ),
            ));
        }
        index.insert(&f.name, i);
    }
    let mut entry_idx = [0usize; 7];
    for (k, e) in entries.iter().enumerate() {
        let Some((fname, pos)) = e else {
            return Err(Error::new(
                file,
                Pos { line: 1, col: 1 },
                format!(
                    "missing entry point: `#entry {} FUNCTION` (a design binds all of: {})",
                    ENTRY_KINDS[k],
                    ENTRY_KINDS.join(", ")
                ),
            ));
        };
        let Some(&i) = index.get(fname.as_str()) else {
            return Err(Error::new(
                file,
                *pos,
                format!(
                    "entry `{}`: no function `{fname}`{}",
                    ENTRY_KINDS[k],
                    suggest(fname, index.keys().copied())
                ),
            ));
        };
        let f = &funcs[i];
        if f.ret != Ty::Void || f.params.iter().any(|p| p.0 != Ty::Regs) {
            return Err(Error::new(&f.file, f.pos, format!("entry function `{}` must be `void {}(void)` or take only `struct pt_regs *regs`", f.name, f.name)));
        }
        entry_idx[k] = i;
    }
    // Signatures: slots of parameters and variables are allocated while compiling.
    let sigs: Vec<Sig> = funcs
        .iter()
        .map(|f| Sig {
            ret: f.ret,
            params: f.params.iter().map(|p| p.0).collect(),
            noinstr: f.noinstr,
        })
        .collect();
    let mut compiled = Vec::with_capacity(funcs.len());
    let mut locals_of = Vec::with_capacity(funcs.len());
    for f in &funcs {
        let mut c = FnCompiler {
            file: &f.file,
            func: f,
            index: &index,
            names: funcs.iter().map(|g| g.name.as_str()).collect(),
            sigs: &sigs,
            pre_noinstr,
            vars: Vec::new(),
            scopes: vec![0],
            steps: Vec::new(),
            instr_depth: 0,
            callees: Vec::new(),
            notes: Vec::new(),
            ret_slot: None,
        };
        c.function()?;
        locals_of.push(
            c.vars
                .iter()
                .filter(|v| v.2 != Ty::Regs)
                .map(|v| v.2)
                .collect::<Vec<_>>(),
        );
        compiled.push(c);
    }
    // No recursion: the call graph must be a DAG (a Linux entry path never recurses, and the
    // slots below are a static frame layout).
    let n = funcs.len();
    let mut state = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    fn visit(
        i: usize,
        cs: &[FnCompiler],
        state: &mut [u8],
        order: &mut Vec<usize>,
        funcs: &[syntax::Func],
    ) -> Result<(), Error> {
        state[i] = 1;
        for &(j, pos) in &cs[i].callees {
            match state[j] {
                1 => return Err(Error::new(&funcs[i].file, pos, format!("recursive call: `{}` calls `{}`, which is already on the call chain (entry code never recurses)", funcs[i].name, funcs[j].name))),
                0 => visit(j, cs, state, order, funcs)?,
                _ => {}
            }
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..n {
        if state[i] == 0 {
            visit(i, &compiled, &mut state, &mut order, &funcs)?;
        }
    }
    // Slots: a function's frame sits above every caller's (callers come later in `order`).
    let mut base = vec![0usize; n];
    for &i in order.iter().rev() {
        let top = base[i] + locals_of[i].len();
        if top > MAX_VARS {
            let f = &funcs[i];
            return Err(Error::new(&f.file, f.pos, format!("`{}` needs local slot {} of the entry; an entry has {MAX_VARS} (parameters, variables and results of the functions on one call chain)", f.name, top)));
        }
        for &(j, _) in &compiled[i].callees {
            base[j] = base[j].max(top);
        }
    }
    let mut notes = Vec::new();
    let mut out = Vec::with_capacity(n);
    let reachable = reach(&compiled, &entry_idx);
    for (i, c) in compiled.into_iter().enumerate() {
        notes.extend(c.notes);
        if !reachable[i] {
            let f = &funcs[i];
            notes.push(Error::new(
                &f.file,
                f.pos,
                format!("note: `{}` is never called from an entry point", f.name),
            ));
        }
        let b = base[i] as u8;
        let callee_base: Vec<u8> = (0..n).map(|j| base[j] as u8).collect();
        let steps = c
            .steps
            .into_iter()
            .map(|s| relocate(s, b, &callee_base))
            .collect();
        out.push(IrFunc {
            name: funcs[i].name.clone(),
            steps,
            callees: c.callees.iter().map(|x| x.0).collect(),
        });
    }
    let inline: Vec<bool> = funcs.iter().map(|f| f.inline).collect();
    for &i in &order {
        // Callees first: an inlined body has its own inline calls expanded already.
        let steps = expand_inline(&out, i, &inline);
        let Ok(steps) = steps else {
            let f = &funcs[i];
            return Err(Error::new(&f.file, f.pos, format!("`{}` compiles to more than {MAX_STEPS} statements with its inline functions expanded", f.name)));
        };
        out[i].steps = steps;
        peephole(&mut out[i].steps);
        out[i].callees = out[i]
            .steps
            .iter()
            .filter_map(|s| match &s.op {
                Op::Call(f, _) => Some(*f),
                Op::Step(_, Then::Call(f, _)) | Op::Do(_, Then::Call(f, _)) => Some(*f),
                _ => None,
            })
            .collect();
    }
    Ok(Analyzed {
        name,
        summary,
        funcs: out,
        entries: entry_idx,
        notes,
    })
}

/// `f`'s statements with every call of an `inline` function replaced by the callee's body, as a
/// C compiler inlines `__always_inline` functions: arguments become assignments of the callee's
/// parameter slots, `return` a jump to the statement after the call. Slots are already the
/// entry's, so nothing is renamed; only the free call and return disappear.
fn expand_inline(funcs: &[IrFunc], f: usize, inline: &[bool]) -> Result<Vec<IrStep>, usize> {
    let src = &funcs[f].steps;
    let callee_of = |s: &IrStep| match &s.op {
        Op::Call(c, _) if inline[*c] => Some(*c),
        Op::Step(_, Then::Call(c, _)) | Op::Do(_, Then::Call(c, _)) if inline[*c] => Some(*c),
        _ => None,
    };
    if !src.iter().any(|s| callee_of(s).is_some()) {
        return Ok(src.clone());
    }
    // First pass: where each old statement starts in the new list.
    let mut at = Vec::with_capacity(src.len() + 1);
    let mut n = 0usize;
    for s in src {
        at.push(n);
        n += match callee_of(s) {
            Some(c) => {
                let binds = match &s.op {
                    Op::Call(_, b) => b.len(),
                    Op::Step(_, Then::Call(_, b)) | Op::Do(_, Then::Call(_, b)) => b.len() + 1,
                    _ => 0,
                };
                binds
                    + funcs[c]
                        .steps
                        .iter()
                        .map(|t| {
                            if matches!(t.op, Op::Return(Some(_))) {
                                2
                            } else {
                                1
                            }
                        })
                        .sum::<usize>()
            }
            None => 1,
        };
    }
    at.push(n);
    // Checked before anything is built: inline calls of inline calls can grow exponentially.
    if n > MAX_STEPS {
        return Err(n);
    }
    let map = |t: u16| at[t as usize] as u16;
    let mut out = Vec::with_capacity(n);
    for (k, s) in src.iter().enumerate() {
        let Some(c) = callee_of(s) else {
            let mut s = s.clone();
            match &mut s.op {
                Op::Branch(_, t) | Op::Jump(t) => *t = map(*t),
                Op::Step(_, Then::Jump(t)) | Op::Do(_, Then::Jump(t)) => *t = map(*t),
                _ => {}
            }
            out.push(s);
            continue;
        };
        let cont = at[k + 1] as u16;
        let binds = match &s.op {
            Op::Call(_, b) => b.clone(),
            Op::Step(acts, Then::Call(_, b)) => {
                let mut step = s.clone();
                step.op = Op::Step(acts.clone(), Then::Next);
                out.push(step);
                b.clone()
            }
            Op::Do(p, Then::Call(_, b)) => {
                let mut step = s.clone();
                step.op = Op::Do(p, Then::Next);
                out.push(step);
                b.clone()
            }
            _ => unreachable!(),
        };
        for (slot, e) in binds.iter() {
            out.push(IrStep {
                name: format!("{} parameter", funcs[c].name),
                kind: StepKind::Branch,
                category: Category::Entry,
                cost: CostKey::None,
                op: Op::Assign(*slot, e.clone()),
                pos: s.pos,
            });
        }
        // The callee's statement j starts at base + its offset (a valued return takes two).
        let base = out.len();
        let mut off = Vec::with_capacity(funcs[c].steps.len());
        let mut m = 0;
        for t in &funcs[c].steps {
            off.push(base + m);
            m += if matches!(t.op, Op::Return(Some(_))) {
                2
            } else {
                1
            };
        }
        let cmap = |t: u16| off.get(t as usize).map_or(cont as usize, |&x| x) as u16;
        for t in &funcs[c].steps {
            let mut t = t.clone();
            match &mut t.op {
                Op::Branch(_, j) | Op::Jump(j) => *j = cmap(*j),
                Op::Step(_, th) | Op::Do(_, th) => match th {
                    Then::Jump(j) => *j = cmap(*j),
                    Then::Return => *th = Then::Jump(cont),
                    _ => {}
                },
                Op::Return(None) => t.op = Op::Jump(cont),
                Op::Return(Some((slot, e))) => {
                    let (slot, e) = (*slot, e.clone());
                    out.push(IrStep {
                        op: Op::Assign(slot, e),
                        ..t.clone()
                    });
                    t.op = Op::Jump(cont);
                }
                _ => {}
            }
            out.push(t);
        }
    }
    debug_assert_eq!(out.len(), n);
    Ok(out)
}

fn reach(cs: &[FnCompiler], entries: &[usize; 7]) -> Vec<bool> {
    let mut r = vec![false; cs.len()];
    let mut todo: Vec<usize> = entries.to_vec();
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut r[i], true) {
            todo.extend(cs[i].callees.iter().map(|c| c.0));
        }
    }
    r
}

/// Function-relative slots to entry slots: own slots by `base`, a callee's parameter slots by
/// the callee's base.
fn relocate(mut s: IrStep, base: u8, callee: &[u8]) -> IrStep {
    fn ex(e: &mut Ex, b: u8) {
        match e {
            Ex::Slot(s) => *s += b,
            Ex::Query(_, a) => a.iter_mut().for_each(|x| ex(x, b)),
            Ex::Not(x) => ex(x, b),
            Ex::Bin(_, x, y) => {
                ex(x, b);
                ex(y, b)
            }
            Ex::Const(_)
            | Ex::CalleeResult(_)
            | Ex::Query0(_)
            | Ex::ThreadFlags(_)
            | Ex::QueryCmp(..) => {}
        }
    }
    let binds = |bs: &mut Box<[(u8, Ex)]>, f: usize, b: u8| {
        for (slot, e) in bs.iter_mut() {
            *slot += callee[f];
            ex(e, b);
        }
    };
    match &mut s.op {
        Op::Do(_, then) => {
            if let Then::Call(f, bs) = then {
                binds(bs, *f, base);
            }
        }
        Op::Step(acts, tail) => {
            for a in acts.iter_mut() {
                match a {
                    Act::Prim(_, args, out) => {
                        args.iter_mut().for_each(|x| ex(x, base));
                        if let Some(o) = out {
                            *o += base;
                        }
                    }
                    Act::Set(slot, e) => {
                        *slot += base;
                        ex(e, base);
                    }
                    Act::Call0(_) | Act::Warn(..) | Act::WarnState(..) => {
                        unreachable!("built forms appear only after relocation")
                    }
                }
            }
            if let Then::Call(f, bs) = tail {
                binds(bs, *f, base);
            }
        }
        Op::Branch(e, _) => ex(e, base),
        Op::Assign(slot, e) => {
            *slot += base;
            if let Ex::CalleeResult(j) = e {
                // The callee's result slot is slot 0 of its frame.
                *e = Ex::Slot(callee[*j]);
                return s;
            }
            ex(e, base)
        }
        Op::Call(f, bs) => binds(bs, *f, base),
        Op::Return(Some((slot, e))) => {
            *slot += base;
            ex(e, base)
        }
        Op::Jump(_) | Op::KernelCall(_) | Op::Return(None) => {}
    }
    s
}

struct Sig {
    ret: Ty,
    params: Vec<Ty>,
    noinstr: bool,
}

struct FnCompiler<'a> {
    file: &'a str,
    func: &'a syntax::Func,
    index: &'a BTreeMap<&'a str, usize>,
    names: Vec<&'a str>,
    sigs: &'a [Sig],
    pre_noinstr: bool,
    /// (name, slot, type) of every variable; scoped by `scopes`.
    vars: Vec<(String, u8, Ty)>,
    scopes: Vec<usize>,
    steps: Vec<IrStep>,
    instr_depth: u32,
    callees: Vec<(usize, Pos)>,
    notes: Vec<Error>,
    ret_slot: Option<u8>,
}

impl FnCompiler<'_> {
    fn err<T>(&self, pos: Pos, msg: String) -> Result<T, Error> {
        Err(Error::new(self.file, pos, msg))
    }

    fn new_var(&mut self, name: &str, ty: Ty, pos: Pos) -> Result<u8, Error> {
        let scope = *self.scopes.last().expect("scope");
        if self.vars[scope..].iter().any(|v| v.0 == name) && ty != Ty::Regs {
            return self.err(pos, format!("`{name}` is declared twice in this scope"));
        }
        if prims::constant(name).is_some() || name == "current" {
            return self.err(pos, format!("`{name}` is a constant; pick another name"));
        }
        let slot = self.vars.iter().filter(|v| v.2 != Ty::Regs).count();
        if slot >= MAX_VARS {
            return self.err(pos, format!("`{name}`: more than {MAX_VARS} variables in `{}` (an entry has {MAX_VARS} local slots)", self.func.name));
        }
        self.vars.push((name.to_string(), slot as u8, ty));
        Ok(slot as u8)
    }

    fn var(&self, name: &str, pos: Pos) -> Result<(u8, Ty), Error> {
        match self.vars.iter().rev().find(|v| v.0 == name) {
            Some(v) => Ok((v.1, v.2)),
            None => {
                let mut cands: Vec<&str> = self.vars.iter().map(|v| v.0.as_str()).collect();
                cands.extend(prims::CONSTS.iter().map(|c| c.0));
                self.err(
                    pos,
                    format!(
                        "unknown variable or constant `{name}`{}",
                        suggest(name, cands)
                    ),
                )
            }
        }
    }

    fn function(&mut self) -> Result<(), Error> {
        let f = self.func;
        if f.ret != Ty::Void {
            // The result slot comes first (slot 0 of the frame).
            self.vars.push(("<result>".into(), 0, f.ret));
            self.ret_slot = Some(0);
        }
        for (ty, name, pos) in &f.params {
            if *ty == Ty::Regs {
                if name != "regs" {
                    return self.err(
                        *pos,
                        format!("call the `struct pt_regs *` parameter `regs`, not `{name}`"),
                    );
                }
                self.vars.push((name.clone(), u8::MAX, Ty::Regs));
            } else {
                self.new_var(name, *ty, *pos)?;
            }
        }
        self.block(&f.body)?;
        if self.instr_depth != 0 {
            return self.err(
                f.pos,
                format!(
                    "`{}` ends inside instrumentation_begin() without instrumentation_end()",
                    f.name
                ),
            );
        }
        // The end of the body: a value-returning function must not reach it by falling through
        // its last statement; a jump past a loop or an `if` may still land here, so every
        // function ends with a `return`.
        let falls = !matches!(self.steps.last().map(|s| &s.op), Some(Op::Return(_)));
        if f.ret != Ty::Void && falls {
            return self.err(
                f.pos,
                format!(
                    "`{}` returns `{}` but can reach its end without `return`",
                    f.name,
                    f.ret.c_name()
                ),
            );
        }
        self.push_free("return", Op::Return(None), f.pos)?;
        peephole(&mut self.steps);
        Ok(())
    }
}

/// Jumps to jumps go straight to the end of the chain; a step followed by `return` or a
/// jump does it itself (as a Rust step returns `Flow::Return`); a step of one primitive
/// without arguments becomes a direct call. Nothing observable changes: the removed
/// statements are free (not instruction boundaries).
fn peephole(steps: &mut Vec<IrStep>) {
    let n = steps.len();
    let follow = |steps: &[IrStep], mut t: u16| {
        for _ in 0..n {
            match steps.get(t as usize).map(|s| &s.op) {
                Some(Op::Jump(u)) if *u != t => t = *u,
                _ => break,
            }
        }
        t
    };
    for i in 0..n {
        let redirect = match &steps[i].op {
            Op::Branch(_, t) => Some(follow(steps, *t)),
            Op::Jump(t) => Some(follow(steps, *t)),
            _ => None,
        };
        match (&mut steps[i].op, redirect) {
            (Op::Branch(_, t), Some(r)) | (Op::Jump(t), Some(r)) => *t = r,
            _ => {}
        }
        let next = match steps.get(i + 1).map(|s| &s.op) {
            Some(Op::Return(None)) => Some(Then::Return),
            Some(Op::Jump(t)) => Some(Then::Jump(follow(steps, *t))),
            _ => None,
        };
        if let Op::Step(acts, t) = &mut steps[i].op {
            if let (Then::Next, Some(nt)) = (&*t, next) {
                *t = nt;
            }
            if let [Act::Prim(p, args, None)] = &**acts {
                if args.is_empty() && matches!(p.run, Imp::Void(_) | Imp::Flow(_)) {
                    let t = std::mem::replace(t, Then::Next);
                    steps[i].op = Op::Do(p, t);
                }
            }
        }
    }
    compact(steps);
}

/// Removes the jumps to the very next statement (an inlined function's `return` when the call
/// was the caller's last use of it) and renumbers every target: each would cost the machine a
/// decision that decides nothing.
fn compact(steps: &mut Vec<IrStep>) {
    let noop = |i: usize, s: &IrStep| matches!(s.op, Op::Jump(t) if t as usize == i + 1);
    if !steps.iter().enumerate().any(|(i, s)| noop(i, s)) {
        return;
    }
    // new[old]: kept statements before `old`; a removed jump's index is its target's.
    let mut new = Vec::with_capacity(steps.len() + 1);
    let mut kept = 0u16;
    for (i, s) in steps.iter().enumerate() {
        new.push(kept);
        if !noop(i, s) {
            kept += 1;
        }
    }
    new.push(kept);
    let mut i = 0;
    steps.retain(|s| {
        i += 1;
        !noop(i - 1, s)
    });
    for s in steps.iter_mut() {
        match &mut s.op {
            Op::Branch(_, t) | Op::Jump(t) => *t = new[*t as usize],
            Op::Step(_, Then::Jump(t)) | Op::Do(_, Then::Jump(t)) => *t = new[*t as usize],
            _ => {}
        }
    }
}

impl FnCompiler<'_> {
    fn push(&mut self, s: IrStep) -> Result<u16, Error> {
        if self.steps.len() >= MAX_STEPS {
            return self.err(
                s.pos,
                format!(
                    "`{}` compiles to more than {MAX_STEPS} statements",
                    self.func.name
                ),
            );
        }
        self.steps.push(s);
        Ok((self.steps.len() - 1) as u16)
    }

    fn push_free(&mut self, name: &str, op: Op<usize>, pos: Pos) -> Result<u16, Error> {
        self.push(IrStep {
            name: name.to_string(),
            kind: StepKind::Branch,
            category: Category::Entry,
            cost: CostKey::None,
            op,
            pos,
        })
    }

    fn block(&mut self, b: &[Stmt]) -> Result<(), Error> {
        self.scopes.push(self.vars.len());
        for s in b {
            self.stmt(s)?;
        }
        let keep = self.scopes.pop().expect("scope");
        // Variables of the block go out of scope; their slots are not reused (simple and safe).
        let dropped: Vec<_> = self.vars.drain(keep..).collect();
        // Keep slot numbering monotonic: re-add them under unreachable names.
        for d in dropped {
            self.vars.push((format!("<{}>", d.0), d.1, d.2));
        }
        Ok(())
    }

    /// Whether a statement list contains a step (so a loop around it can make progress).
    fn has_step(&self, from: usize) -> bool {
        self.steps[from..]
            .iter()
            .any(|s| s.kind != StepKind::Branch || matches!(s.op, Op::Call(..) | Op::KernelCall(_)))
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), Error> {
        match s {
            Stmt::InstrBegin(_) => {
                self.instr_depth += 1;
                Ok(())
            }
            Stmt::InstrEnd(pos) => {
                if self.instr_depth == 0 {
                    return self.err(
                        *pos,
                        "instrumentation_end() without instrumentation_begin()".into(),
                    );
                }
                self.instr_depth -= 1;
                Ok(())
            }
            Stmt::Decl {
                ty,
                name,
                init,
                pos,
            } => {
                let value = match init {
                    Some(e) => Some(self.value_or_call(e, *pos)?),
                    None => None,
                };
                let slot = self.new_var(name, *ty, *pos)?;
                match value {
                    Some(Val::Plain(e)) => {
                        self.push_free(&format!("{name} = ..."), Op::Assign(slot, e), *pos)?;
                    }
                    Some(Val::FnCall(op, f, text)) => {
                        self.push_free(&text, op, *pos)?;
                        self.push_free(
                            &format!("{name} = {text}"),
                            Op::Assign(slot, Ex::CalleeResult(f)),
                            *pos,
                        )?;
                    }
                    Some(Val::PrimCall(act, prim)) => {
                        let Act::Prim(p, args, _) = act else {
                            unreachable!()
                        };
                        self.push_prim_step(
                            &format!("{name} = {}(...)", prim.name),
                            vec![Act::Prim(p, args, Some(slot))],
                            Then::Next,
                            *pos,
                        )?;
                    }
                    None => {
                        // An uninitialized local is zero: push nothing (slots start at zero).
                        self.push_free(
                            &format!("{name} = 0"),
                            Op::Assign(slot, Ex::Const(0)),
                            *pos,
                        )?;
                    }
                }
                Ok(())
            }
            Stmt::Return { value, pos } => {
                let ret = self.func.ret;
                let op = match (value, ret) {
                    (None, Ty::Void) => Op::Return(None),
                    (Some(_), Ty::Void) => {
                        return self.err(
                            *pos,
                            format!("`{}` is void: `return` takes no value here", self.func.name),
                        )
                    }
                    (None, t) => {
                        return self.err(
                            *pos,
                            format!(
                                "`{}` returns `{}`: `return` needs a value",
                                self.func.name,
                                t.c_name()
                            ),
                        )
                    }
                    (Some(e), _) => {
                        Op::Return(Some((self.ret_slot.expect("result slot"), self.cond(e)?)))
                    }
                };
                self.push_free("return", op, *pos)?;
                Ok(())
            }
            Stmt::If {
                cond,
                then,
                els,
                text,
                pos,
            } => {
                let c = self.cond(cond)?;
                let br = self.push_free(&format!("if ({text})"), Op::Branch(c, 0), *pos)?;
                self.block(then)?;
                if els.is_empty() {
                    let end = self.steps.len() as u16;
                    self.patch_branch(br, end);
                } else {
                    let j = self.push_free("else", Op::Jump(0), *pos)?;
                    let els_at = self.steps.len() as u16;
                    self.patch_branch(br, els_at);
                    self.block(els)?;
                    let end = self.steps.len() as u16;
                    self.steps[j as usize].op = Op::Jump(end);
                }
                Ok(())
            }
            Stmt::While {
                cond,
                body,
                text,
                pos,
            } => {
                let c = self.cond(cond)?;
                let top = self.push_free(&format!("while ({text})"), Op::Branch(c, 0), *pos)?;
                let from = self.steps.len();
                self.block(body)?;
                if !self.has_step(from) {
                    return self.err(*pos, format!("`while ({text})` has no step in its body: it would spin without an instruction boundary"));
                }
                self.push_free("loop", Op::Jump(top), *pos)?;
                let end = self.steps.len() as u16;
                self.patch_branch(top, end);
                Ok(())
            }
            Stmt::DoWhile {
                body,
                cond,
                text,
                pos,
            } => {
                let top = self.steps.len() as u16;
                self.block(body)?;
                if !self.has_step(top as usize) {
                    return self.err(
                        *pos,
                        format!("`do ... while ({text})` has no step in its body: it would spin without an instruction boundary"),
                    );
                }
                // Back to the top while the condition holds.
                let c = Ex::Not(Box::new(self.cond(cond)?));
                self.push_free(&format!("while ({text})"), Op::Branch(c, top), *pos)?;
                Ok(())
            }
            Stmt::Simple {
                label,
                items,
                text,
                pos,
            } => self.simple(label.as_deref(), items, text, *pos),
        }
    }

    fn patch_branch(&mut self, at: u16, to: u16) {
        if let Op::Branch(_, t) = &mut self.steps[at as usize].op {
            *t = to;
        }
    }

    /// Step kind and the `noinstr` rule for a step calling `p`.
    fn check_instr(&mut self, class: Class, what: &str, pos: Pos) -> Result<(), Error> {
        let instrumentable = matches!(class, Class::Instr | Class::Work | Class::KernelCall);
        if instrumentable && self.func.noinstr && self.instr_depth == 0 {
            let msg = format!(
                "`{what}` is instrumentable but `{}` is noinstr: call it between instrumentation_begin() and instrumentation_end() (objtool: call to {what}() leaves .noinstr.text section)",
                self.func.name
            );
            if self.pre_noinstr {
                self.notes.push(Error::new(
                    self.file,
                    pos,
                    format!("note: {msg} [allowed: this design predates noinstr]"),
                ));
            } else {
                return self.err(pos, msg);
            }
        }
        Ok(())
    }

    fn simple(
        &mut self,
        label: Option<&str>,
        items: &[Item],
        text: &str,
        pos: Pos,
    ) -> Result<(), Error> {
        let name = label.unwrap_or(text).to_string();
        let mut acts: Vec<Act> = Vec::new();
        let mut work = false;
        let mut tail: Option<TailCall> = None;
        let mut frees: Vec<(Op<usize>, String)> = Vec::new();
        let mut cost = CostKey::None;
        for (k, it) in items.iter().enumerate() {
            let last = k + 1 == items.len();
            if tail.is_some() {
                return self.err(
                    pos,
                    "a call of one of the file's functions must be the last item of a step".into(),
                );
            }
            let (call, out) = match it {
                Item::Call(c) => (c, None),
                Item::Assign(lv, e) => {
                    let (slot, ty) = self.lvalue(lv)?;
                    match e {
                        Expr::Call(c) => (c, Some((slot, ty, lv))),
                        other => {
                            let v = self.cond(other)?;
                            acts.push(Act::Set(slot, v.clone()));
                            frees.push((Op::Assign(slot, v), text.to_string()));
                            continue;
                        }
                    }
                }
            };
            if let Some(&fi) = self.index.get(call.name.as_str()) {
                let binds = self.args_for_fn(fi, call)?;
                self.callees.push((fi, call.pos));
                let sig = &self.sigs[fi];
                if sig.ret != Ty::Void && out.is_none() {
                    return self.err(call.pos, format!("the value `{}()` returns is discarded: assign it (`x = {}(...)`) or make the function void", call.name, call.name));
                }
                if sig.ret == Ty::Void && out.is_some() {
                    return self.err(
                        call.pos,
                        format!("`{}()` returns nothing: nothing to assign", call.name),
                    );
                }
                if !sig.noinstr && self.func.noinstr && self.instr_depth == 0 {
                    self.check_instr(Class::Instr, &call.name, call.pos)?;
                }
                tail = Some((fi, binds, out.map(|o| o.0)));
                let _ = last;
                continue;
            }
            let Some(p) = prims::by_name(&call.name) else {
                let mut cands: Vec<&str> = prims::PRIMS.iter().map(|p| p.name).collect();
                cands.extend(self.names.iter().copied());
                return self.err(
                    call.pos,
                    format!(
                        "unknown function or primitive `{}`{}",
                        call.name,
                        suggest(&call.name, cands)
                    ),
                );
            };
            if p.class == Class::Query {
                if out.is_none() {
                    return self.err(
                        call.pos,
                        format!(
                            "the value of `{}()` is discarded (a test does nothing on its own)",
                            p.name
                        ),
                    );
                }
            } else if p.ret != Ret::Void && out.is_none() {
                return self.err(
                    call.pos,
                    format!(
                        "the value `{}()` returns is discarded: assign it (`x = {}()`)",
                        p.name, p.name
                    ),
                );
            } else if p.ret == Ret::Void && out.is_some() {
                return self.err(
                    call.pos,
                    format!("`{}()` returns nothing: nothing to assign", p.name),
                );
            }
            let args = self.prim_args(p, call)?;
            if p.class == Class::KernelCall {
                if items.len() != 1 {
                    return self.err(
                        call.pos,
                        format!(
                            "`{}()` calls into the kernel: write it as a statement of its own",
                            p.name
                        ),
                    );
                }
                self.check_instr(p.class, p.name, call.pos)?;
                self.push_free(&name, Op::KernelCall(p), pos)?;
                return Ok(());
            }
            self.check_instr(p.class, p.name, call.pos)?;
            work |= p.class == Class::Work;
            if cost == CostKey::None {
                cost = p.cost;
            }
            acts.push(Act::Prim(p, args, out.map(|o| o.0)));
        }
        let has_prim = acts.iter().any(|a| matches!(a, Act::Prim(..)));
        if !has_prim {
            // Only moves of locals, maybe a call: free.
            for (op, t) in frees {
                self.push_free(&t, op, pos)?;
            }
            if let Some((fi, binds, out)) = tail {
                let fname = self.names[fi].to_string();
                self.push_free(&name, Op::Call(fi, binds), pos)?;
                if let Some(slot) = out {
                    self.push_free(
                        &format!("= {fname}()"),
                        Op::Assign(slot, Ex::CalleeResult(fi)),
                        pos,
                    )?;
                }
            }
            return Ok(());
        }
        if let Some((_, _, Some(_))) = tail {
            return self.err(pos, "a step may end with a call of a void function only (assign a function's result in a statement of its own)".into());
        }
        let kind = self.step_kind(work);
        self.push(IrStep {
            name,
            kind,
            category: if work {
                Category::Work
            } else {
                Category::Entry
            },
            cost,
            op: Op::Step(
                acts.into(),
                tail.map_or(Then::Next, |(f, b, _)| Then::Call(f, b)),
            ),
            pos,
        })?;
        Ok(())
    }

    fn push_prim_step(
        &mut self,
        name: &str,
        acts: Vec<Act>,
        tail: Then<usize>,
        pos: Pos,
    ) -> Result<u16, Error> {
        let mut work = false;
        let mut cost = CostKey::None;
        for a in &acts {
            if let Act::Prim(p, _, _) = a {
                self.check_instr(p.class, p.name, pos)?;
                work |= p.class == Class::Work;
                if cost == CostKey::None {
                    cost = p.cost;
                }
            }
        }
        let kind = self.step_kind(work);
        self.push(IrStep {
            name: name.to_string(),
            kind,
            category: if work {
                Category::Work
            } else {
                Category::Entry
            },
            cost,
            op: Op::Step(acts.into(), tail),
            pos,
        })
    }

    fn step_kind(&self, work: bool) -> StepKind {
        if !self.func.noinstr || self.instr_depth > 0 || work {
            StepKind::Instr
        } else {
            StepKind::Noinstr
        }
    }

    /// `var.field`: the only struct is `irqentry_state_t`, its only field `exit_rcu` (the
    /// variable's slot holds it).
    fn field_slot(&self, n: &str, f: &str, p: Pos) -> Result<u8, Error> {
        let (slot, ty) = self.var(n, p)?;
        if ty != Ty::IrqState || f != "exit_rcu" {
            return self.err(
                p,
                format!(
                    "`{n}.{f}`: only `irqentry_state_t` has a field, `exit_rcu`{}",
                    suggest(f, ["exit_rcu"])
                ),
            );
        }
        Ok(slot)
    }

    fn lvalue(&self, lv: &LValue) -> Result<(u8, Ty), Error> {
        match lv {
            LValue::Var(n, p) => {
                let (s, t) = self.var(n, *p)?;
                if t == Ty::Regs {
                    return self.err(*p, "`regs` cannot be assigned".into());
                }
                Ok((s, t))
            }
            LValue::Field(n, f, p) => Ok((self.field_slot(n, f, *p)?, Ty::IrqState)),
        }
    }

    fn args_for_fn(&mut self, fi: usize, call: &syntax::Call) -> Result<Box<[(u8, Ex)]>, Error> {
        let sig = &self.sigs[fi];
        if call.args.len() != sig.params.len() {
            return self.err(
                call.pos,
                format!(
                    "`{}` takes {} argument(s), {} given",
                    call.name,
                    sig.params.len(),
                    call.args.len()
                ),
            );
        }
        let mut binds = Vec::new();
        let mut slot = u8::from(sig.ret != Ty::Void);
        for (ty, a) in sig.params.clone().into_iter().zip(&call.args) {
            if ty == Ty::Regs {
                self.regs_arg(a)?;
                continue;
            }
            binds.push((slot, self.cond(a)?));
            slot += 1;
        }
        Ok(binds.into())
    }

    fn regs_arg(&self, a: &Expr) -> Result<(), Error> {
        match a {
            Expr::Name(n, p) if n == "regs" => self.var(n, *p).map(|_| ()).map_err(|_| {
                Error::new(
                    self.file,
                    *p,
                    format!(
                        "`regs` is not a parameter of `{}`: declare `struct pt_regs *regs`",
                        self.func.name
                    ),
                )
            }),
            other => self.err(
                other.pos(),
                "expected `regs` (the entry's `struct pt_regs *`)".into(),
            ),
        }
    }

    fn prim_args(&self, p: &'static Prim, call: &syntax::Call) -> Result<Box<[Ex]>, Error> {
        if call.args.len() != p.args.len() {
            let want: Vec<&str> = p
                .args
                .iter()
                .map(|a| match a {
                    Arg::Regs => "regs",
                    Arg::Current => "current",
                    Arg::Value => "value",
                    Arg::Cond => "condition",
                })
                .collect();
            return self.err(
                call.pos,
                format!(
                    "`{}` takes {} argument(s) ({}), {} given",
                    p.name,
                    p.args.len(),
                    if want.is_empty() {
                        "none".to_string()
                    } else {
                        want.join(", ")
                    },
                    call.args.len()
                ),
            );
        }
        let mut out = Vec::new();
        for (a, e) in p.args.iter().zip(&call.args) {
            match a {
                Arg::Regs => {
                    self.regs_arg(e)?;
                    out.push(Ex::Const(0));
                }
                Arg::Current => match e {
                    Expr::Name(n, _) if n == "current" => out.push(Ex::Const(0)),
                    other => return self.err(other.pos(), "expected `current`".into()),
                },
                Arg::Value => out.push(self.cond(e)?),
                Arg::Cond => {
                    // CT_WARN_ON(<state> != CT_STATE_USER | CT_STATE_KERNEL): the expected state
                    // names the warning.
                    let expected = match e {
                        Expr::Bin(BinOp::Ne, _, r, _) => match &**r {
                            Expr::Name(n, _) if n == "CT_STATE_USER" => {
                                ctxtrack_core::CtState::User as i64
                            }
                            Expr::Name(n, _) if n == "CT_STATE_KERNEL" => {
                                ctxtrack_core::CtState::Kernel as i64
                            }
                            _ => -1,
                        },
                        _ => -1,
                    };
                    if expected < 0 {
                        return self.err(e.pos(), "CT_WARN_ON takes `ct_state() != CT_STATE_USER` or `... != CT_STATE_KERNEL` (the two context-tracking warnings of entry code)".into());
                    }
                    out.push(self.cond(e)?);
                    out.push(Ex::Const(expected));
                }
            }
        }
        Ok(out.into())
    }

    /// A value that may be a call of a file function or of an effectful primitive (a
    /// declaration's initializer).
    fn value_or_call(&mut self, e: &Expr, pos: Pos) -> Result<Val, Error> {
        if let Expr::Call(c) = e {
            if let Some(&fi) = self.index.get(c.name.as_str()) {
                if self.sigs[fi].ret == Ty::Void {
                    return self.err(
                        c.pos,
                        format!("`{}()` returns nothing: nothing to assign", c.name),
                    );
                }
                if !self.sigs[fi].noinstr && self.func.noinstr && self.instr_depth == 0 {
                    self.check_instr(Class::Instr, &c.name, c.pos)?;
                }
                let binds = self.args_for_fn(fi, c)?;
                self.callees.push((fi, c.pos));
                return Ok(Val::FnCall(
                    Op::Call(fi, binds),
                    fi,
                    format!("{}()", c.name),
                ));
            }
            if let Some(p) = prims::by_name(&c.name) {
                if p.class != Class::Query {
                    if p.ret == Ret::Void {
                        return self.err(
                            c.pos,
                            format!("`{}()` returns nothing: nothing to assign", p.name),
                        );
                    }
                    let args = self.prim_args(p, c)?;
                    return Ok(Val::PrimCall(Act::Prim(p, args, None), p));
                }
            }
        }
        let _ = pos;
        Ok(Val::Plain(self.cond(e)?))
    }

    /// A pure expression (a condition or a value): queries, variables, constants.
    fn cond(&self, e: &Expr) -> Result<Ex, Error> {
        Ok(match e {
            Expr::Int(v, _) => Ex::Const(*v),
            Expr::Name(n, p) => {
                if let Some(v) = prims::constant(n) {
                    Ex::Const(v)
                } else {
                    let (slot, ty) = self.var(n, *p)?;
                    if ty == Ty::Regs {
                        return self.err(
                            *p,
                            "`regs` is not a value: pass it to a primitive such as user_mode(regs)"
                                .into(),
                        );
                    }
                    Ex::Slot(slot)
                }
            }
            Expr::Field(n, f, p) => Ex::Slot(self.field_slot(n, f, *p)?),
            Expr::Not(x, _) => Ex::Not(Box::new(self.cond(x)?)),
            Expr::Bin(op, a, b, _) => {
                Ex::Bin(*op, Box::new(self.cond(a)?), Box::new(self.cond(b)?))
            }
            Expr::Call(c) => {
                if self.index.contains_key(c.name.as_str()) {
                    return self.err(c.pos, format!("`{}()` is a function of the design: a condition may only test (call it in a statement and test its result)", c.name));
                }
                let Some(p) = prims::by_name(&c.name) else {
                    let cands = prims::PRIMS
                        .iter()
                        .filter(|p| p.class == Class::Query)
                        .map(|p| p.name);
                    return self.err(
                        c.pos,
                        format!("unknown test `{}`{}", c.name, suggest(&c.name, cands)),
                    );
                };
                if p.class != Class::Query {
                    return self.err(
                        c.pos,
                        format!(
                            "`{}()` does something: a condition may only call tests ({})",
                            p.name,
                            prims::PRIMS
                                .iter()
                                .filter(|p| p.class == Class::Query)
                                .map(|p| p.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                Ex::Query(p, self.prim_args(p, c)?)
            }
        })
    }
}

/// A call of a file function ending a step: callee, argument bindings, result slot.
type TailCall = (usize, Box<[(u8, Ex)]>, Option<u8>);

enum Val {
    Plain(Ex),
    FnCall(Op<usize>, usize, String),
    PrimCall(Act, &'static Prim),
}

// ------------------------------------------------------------------------------ building

impl Analyzed {
    /// Turns the design into static paths the machine runs. The design lives as long as the
    /// process (a loaded design is loaded once; `analyze` alone allocates nothing lasting).
    pub fn leak(self) -> &'static Design {
        let n = self.funcs.len();
        let mut built: Vec<Option<&'static Path>> = vec![None; n];
        // Callees first: a path refers to the paths it calls.
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        fn post(i: usize, fs: &[IrFunc], seen: &mut [bool], order: &mut Vec<usize>) {
            if std::mem::replace(&mut seen[i], true) {
                return;
            }
            for &c in &fs[i].callees {
                post(c, fs, seen, order);
            }
            order.push(i);
        }
        for i in 0..n {
            post(i, &self.funcs, &mut seen, &mut order);
        }
        for i in order {
            let f = &self.funcs[i];
            let path_of = |j: usize| built[j].expect("callee built first");
            let steps: Vec<Step> = f
                .steps
                .iter()
                .map(|s| {
                    let then = |t: &Then<usize>| match t {
                        Then::Next => Then::Next,
                        Then::Return => Then::Return,
                        Then::Jump(j) => Then::Jump(*j),
                        Then::Call(j, b) => Then::Call(path_of(*j), b.clone()),
                    };
                    let op: Op<&'static Path> = match &s.op {
                        Op::Step(a, t) => {
                            Op::Step(a.iter().cloned().map(Act::built).collect(), then(t))
                        }
                        Op::Do(p, t) => Op::Do(p, then(t)),
                        Op::Branch(e, t) => Op::Branch(e.clone().simplify(), *t),
                        Op::Jump(t) => Op::Jump(*t),
                        Op::Assign(s, e) => Op::Assign(*s, e.clone().simplify()),
                        Op::Call(j, b) => Op::Call(path_of(*j), b.clone()),
                        Op::KernelCall(p) => Op::KernelCall(p),
                        Op::Return(r) => Op::Return(r.clone()),
                    };
                    let run = match &op {
                        Op::Do(p, Then::Next) => direct(p, Flow::Next),
                        Op::Do(p, Then::Return) => direct(p, Flow::Return),
                        Op::Do(p, Then::Jump(j)) => direct(p, Flow::Jump(*j)),
                        Op::KernelCall(p) => direct(p, Flow::Next),
                        Op::Step(acts, t) => {
                            let flow = match t {
                                Then::Next => Some(Flow::Next),
                                Then::Return => Some(Flow::Return),
                                Then::Jump(j) => Some(Flow::Jump(*j)),
                                Then::Call(..) => None,
                            };
                            flow.map(|f| match &**acts {
                                [Act::Call0(a)] => Run::Prim(a.0, f),
                                [Act::Call0(a), Act::Call0(b)] => Run::Prim2(a.0, b.0, f),
                                _ => Run::Acts(Box::leak(acts.clone()), f),
                            })
                        }
                        Op::Branch(e, t) => Some(Run::Branch(Box::leak(Box::new(e.clone())), *t)),
                        _ => None,
                    };
                    let patchable = |p: &Prim| p.class == Class::Patchable;
                    let patchable = match &s.op {
                        Op::Step(acts, _) => acts
                            .iter()
                            .any(|a| matches!(a, Act::Prim(p, ..) if patchable(p))),
                        Op::Do(p, _) => patchable(p),
                        _ => false,
                    };
                    Step {
                        patchable,
                        name: Box::leak(s.name.clone().into_boxed_str()),
                        kind: s.kind,
                        category: s.category,
                        cost: s.cost,
                        run: run.unwrap_or_else(|| Run::Op(Box::leak(Box::new(op)))),
                    }
                })
                .collect();
            let path: &'static Path = Box::leak(Box::new(Path {
                name: Box::leak(f.name.clone().into_boxed_str()),
                steps: Box::leak(steps.into_boxed_slice()),
            }));
            built[i] = Some(path);
        }
        let e = |k: usize| built[self.entries[k]].expect("built");
        Box::leak(Box::new(Design {
            name: Box::leak(self.name.into_boxed_str()),
            summary: Box::leak(self.summary.into_boxed_str()),
            syscall: e(0),
            irq: e(1),
            exception: e(2),
            nmi: e(3),
            debug: e(4),
            ret_from_fork: e(5),
            idle: e(6),
        }))
    }
}

// ------------------------------------------------------------------------------ running

/// A step of one primitive without arguments as a direct call.
fn direct(p: &'static Prim, flow: Flow) -> Option<Run> {
    match p.run {
        Imp::Void(f) => Some(Run::Prim(f, flow)),
        Imp::Flow(f) => Some(Run::PrimFlow(f, flow)),
        Imp::Value(_) => None,
    }
}

/// Whether a condition holds (a decision's test).
#[inline]
pub fn test(k: &mut K, e: &Ex) -> bool {
    match e {
        Ex::ThreadFlags(m) => k.read_thread_flags() & m != 0,
        Ex::Query0(f) => (f.0)(k, &[]) != 0,
        Ex::QueryCmp(f, c, ne) => ((f.0)(k, &[]) == *c) != *ne,
        Ex::Slot(s) => k.locals().vars[*s as usize] != 0,
        e => eval(k, e) != 0,
    }
}

fn eval(k: &mut K, e: &Ex) -> i64 {
    match e {
        Ex::Const(v) => *v,
        Ex::Slot(s) => k.locals().vars[*s as usize] as i64,
        Ex::Query(p, args) => match p.run {
            Imp::Value(f) if args.is_empty() => f(k, &[]),
            Imp::Value(f) => {
                let mut vals = [0i64; MAX_ARGS];
                for (v, x) in vals.iter_mut().zip(args.iter()) {
                    *v = eval(k, x);
                }
                f(k, &vals[..args.len()])
            }
            Imp::Void(_) | Imp::Flow(_) => unreachable!("a query returns a value"),
        },
        Ex::Not(x) => (eval(k, x) == 0) as i64,
        Ex::CalleeResult(_) => unreachable!("relocated when the design was loaded"),
        Ex::Query0(f) => (f.0)(k, &[]),
        Ex::ThreadFlags(m) => (k.read_thread_flags() & m) as i64,
        Ex::QueryCmp(f, c, ne) => (((f.0)(k, &[]) == *c) != *ne) as i64,
        Ex::Bin(op, a, b) => {
            let x = eval(k, a);
            binop(*op, x, || eval(k, b))
        }
    }
}

fn set(k: &mut K, slot: u8, v: i64) {
    k.locals().vars[slot as usize] = v as i32;
}

fn bind(k: &mut K, binds: &[(u8, Ex)]) {
    if binds.is_empty() {
        return;
    }
    // Evaluate every argument before writing any parameter (a parameter may share a slot
    // number with nothing the caller reads, but keep C's order of evaluation anyway).
    let mut vals = [0i64; MAX_VARS];
    for (v, (_, e)) in vals.iter_mut().zip(binds.iter()) {
        *v = eval(k, e);
    }
    for ((slot, _), v) in binds.iter().zip(vals) {
        set(k, *slot, v);
    }
}

/// Where a step's `then` sends control.
#[inline]
fn then(k: &mut K, t: &Then<&'static Path>) -> Flow {
    match t {
        Then::Next => Flow::Next,
        Then::Return => Flow::Return,
        Then::Jump(i) => Flow::Jump(*i),
        Then::Call(path, binds) => {
            bind(k, binds);
            Flow::Call(path)
        }
    }
}

/// Runs one primitive call; a flow other than `Next` ends the step.
#[inline]
fn call_prim(k: &mut K, p: &'static Prim, args: &[Ex], out: Option<u8>) -> Flow {
    let v = match p.run {
        Imp::Void(f) => {
            f(k);
            0
        }
        Imp::Flow(f) => return f(k),
        Imp::Value(f) if args.is_empty() => f(k, &[]),
        Imp::Value(f) => {
            let mut vals = [0i64; MAX_ARGS];
            for (v, x) in vals.iter_mut().zip(args.iter()) {
                *v = eval(k, x);
            }
            f(k, &vals[..args.len()])
        }
    };
    if let Some(s) = out {
        set(k, s, v);
    }
    Flow::Next
}

/// Runs a step's actions in order; a primitive's flow other than `Next` ends the step.
#[inline]
pub fn run_acts(k: &mut K, acts: &[Act]) -> Flow {
    for a in acts {
        match a {
            Act::Prim(p, args, out) => {
                let flow = call_prim(k, p, args, *out);
                if !matches!(flow, Flow::Next) {
                    return flow;
                }
            }
            Act::Set(s, e) => {
                let v = eval(k, e);
                set(k, *s, v);
            }
            Act::Call0(f) => (f.0)(k),
            Act::Warn(c, v) => {
                let fire = test(k, c);
                k.ct().ct_warn_on(fire, *v);
            }
            Act::WarnState(state, v) => {
                let mut ct = k.ct();
                let fire = ct.__ct_state() != *state;
                ct.ct_warn_on(fire, *v);
            }
        }
    }
    Flow::Next
}

/// Runs one compiled statement.
pub fn exec(k: &mut K, op: &Op<&'static Path>) -> Flow {
    match op {
        Op::Do(p, t) => {
            let flow = call_prim(k, p, &[], None);
            if !matches!(flow, Flow::Next) {
                return flow;
            }
            then(k, t)
        }
        Op::Step(acts, t) => match run_acts(k, acts) {
            Flow::Next => then(k, t),
            other => other,
        },
        Op::Branch(c, target) => {
            if test(k, c) {
                Flow::Next
            } else {
                Flow::Jump(*target)
            }
        }
        Op::Jump(t) => Flow::Jump(*t),
        Op::Assign(s, e) => {
            let v = eval(k, e);
            set(k, *s, v);
            Flow::Next
        }
        Op::Call(path, binds) => {
            bind(k, binds);
            Flow::Call(path)
        }
        Op::KernelCall(p) => match p.run {
            Imp::Flow(f) => f(k),
            _ => unreachable!("a kernel call decides where control goes"),
        },
        Op::Return(r) => {
            if let Some((s, e)) = r {
                let v = eval(k, e);
                set(k, *s, v);
            }
            Flow::Return
        }
    }
}

// ------------------------------------------------------------------------------ files

/// The design files shipped in `designs/`, embedded in the binary: (file name, text); the
/// designs (`.c`) in presentation order, then the headers they include (`.h`).
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "linux-4.3.c",
        include_str!("../../../../../designs/linux-4.3.c"),
    ),
    (
        "weisbecker-2015.c",
        include_str!("../../../../../designs/weisbecker-2015.c"),
    ),
    (
        "weisbecker-hoisted.c",
        include_str!("../../../../../designs/weisbecker-hoisted.c"),
    ),
    (
        "lutomirski-2015.c",
        include_str!("../../../../../designs/lutomirski-2015.c"),
    ),
    (
        "generic-entry.c",
        include_str!("../../../../../designs/generic-entry.c"),
    ),
    (
        "linux-4x.h",
        include_str!("../../../../../designs/linux-4x.h"),
    ),
    (
        "nmi-idle.h",
        include_str!("../../../../../designs/nmi-idle.h"),
    ),
    (
        "weisbecker-2015-entry.h",
        include_str!("../../../../../designs/weisbecker-2015-entry.h"),
    ),
];

/// A shipped file's text by file name.
pub fn shipped_text(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A shipped design's text with every `#include` of a shipped header replaced by the header's
/// text: one file to copy and edit (line numbers past an include move by the header's length).
pub fn shipped_flat(file: &str) -> Option<String> {
    let mut text = shipped_text(file)?.to_string();
    // A header may include headers: one pass per shipped file expands every level.
    for _ in SHIPPED {
        for (header, body) in SHIPPED.iter().filter(|(n, _)| n.ends_with(".h")) {
            text = text.replace(&format!("#include \"{header}\""), body);
        }
    }
    Some(text)
}

/// A shipped design edited as a kernel engineer edits a copy: [`shipped_flat`] with `from`,
/// which must occur exactly once, replaced by `to`, and its `#design` line naming it `name`;
/// loaded. The error says which of those failed.
pub fn shipped_mutant(
    file: &str,
    name: &str,
    from: &str,
    to: &str,
) -> Result<&'static Design, String> {
    let text = shipped_flat(file).ok_or_else(|| format!("no shipped design file {file:?}"))?;
    let n = text.matches(from).count();
    if n != 1 {
        return Err(format!("{from:?} occurs {n} times in {file}, not once"));
    }
    let renamed: Vec<String> = text
        .replace(from, to)
        .lines()
        .map(|l| {
            if l.starts_with("#design") {
                format!("#design \"{name}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    let text = renamed.join("\n") + "\n";
    Ok(analyze(name, &text, &include_shipped)
        .map_err(|e| e.to_string())?
        .leak())
}

/// Finds `#include`d files among the shipped ones (an [`Includer`]).
pub fn include_shipped(name: &str) -> Result<String, String> {
    shipped_text(name)
        .map(str::to_string)
        .ok_or_else(|| format!("no shipped file named {name:?}"))
}

/// Loads a shipped design file by file name (`generic-entry.c`).
pub fn load_shipped(file: &str) -> Result<&'static Design, Error> {
    let text = shipped_text(file).ok_or_else(|| {
        Error::new(
            file,
            Pos { line: 1, col: 1 },
            "no such shipped design file".into(),
        )
    })?;
    let inc = |n: &str| {
        shipped_text(n)
            .map(str::to_string)
            .ok_or_else(|| format!("no shipped file named {n:?}"))
    };
    Ok(analyze(file, text, &inc)?.leak())
}

/// Reads and checks a design file from disk; `#include "x"` looks beside it, then among the
/// shipped files.
pub fn analyze_path(path: &std::path::Path) -> Result<Analyzed, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new(&name, Pos { line: 0, col: 0 }, format!("cannot read: {e}")))?;
    let dir = path.parent().map(|d| d.to_path_buf()).unwrap_or_default();
    let inc = move |n: &str| {
        let p = dir.join(n);
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(t),
            Err(_) => shipped_text(n).map(str::to_string).ok_or_else(|| {
                format!(
                    "not found beside the file ({}) nor among the shipped files",
                    p.display()
                )
            }),
        }
    };
    analyze(&name, &text, &inc)
}
