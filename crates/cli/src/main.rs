//! `ctxtrack`: the command line. Parses arguments, builds a configuration, calls the library
//! crates and prints. No simulation logic lives here.

mod bench;
mod check;
mod compare;
mod kernel;
mod noise;
mod progress;
mod replay;

use clap::{Args, Parser, Subcommand};
use ctxtrack_sim::{design, Config, CostModel, CpuSet, Workload};
use std::path::PathBuf;
use std::process::ExitCode;

/// The process's allocator, counting the bytes in use so `--max-memory` measures the real heap
/// (the simulator reads it through [`ctxtrack_sim::limits::set_memory_probe`]). mimalloc under
/// it: the checker's threads free machines another thread allocated, which glibc's arenas
/// serialize (`check --design generic-entry` on 2 threads: no faster than on 1 with glibc,
/// 1.5-1.9x with mimalloc).
#[global_allocator]
static ALLOC: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

/// Half the host's memory (`MemTotal` in `/proc/meminfo`), in MiB: the default `--max-memory`,
/// so a run stops with a verdict long before the kernel's OOM killer would end it. 4096 where
/// `/proc/meminfo` cannot be read.
pub(crate) fn default_max_memory_mib() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    total_kib.map_or(4096, |k| (k / 1024 / 2).max(256))
}

#[derive(Parser)]
#[command(
    name = "ctxtrack",
    version,
    about = "Linux context tracking: reference core, simulator and lab"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// `ctxtrack check` subcommands.
#[derive(Subcommand, Debug)]
enum CheckCmd {
    /// Combine swarm workers' result files into one verdict: the shortest counterexample per
    /// invariant and site, what was covered, missing workers. Never "ok": exit 1 if a violation
    /// was found, 3 if none was (a swarm is not exhaustive), 2 on an error.
    Merge {
        /// The workers' result files (`check --swarm N --worker I --out FILE`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a workload on the simulated machine and print per-CPU figures and the invariant verdict.
    Run {
        #[command(subcommand)]
        workload: WorkloadCmd,
    },
    /// Run one workload under every design, context tracking off and on, and compare them
    /// (default workload: messaging with perf's defaults). Also runs each path alone and
    /// randomized stress runs. The workload's --design and --ct are ignored.
    Compare {
        /// Comma-separated design names (default: all).
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        designs: Option<Vec<String>>,
        /// A design file to compare (repeatable; alone, only the files are compared, with
        /// --designs both).
        #[arg(long = "design-file", value_name = "FILE")]
        design_file: Vec<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Write an SVG chart of context-tracking overhead per design and mode.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// No progress display.
        #[arg(long)]
        quiet: bool,
        /// Randomized stress runs per design (IRQs, NMIs, preemption everywhere); 0 skips them.
        #[arg(long, default_value_t = 3)]
        stress_seeds: u64,
        /// Write each design's run (CT on) as ftrace text: FILE.<design>.<ext>.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Write each design's run (CT on) as Chrome/Perfetto JSON: FILE.<design>.<ext>.
        #[arg(long = "chrome-trace", value_name = "FILE")]
        chrome_trace: Option<PathBuf>,
        #[command(subcommand)]
        workload: Option<WorkloadCmd>,
    },
    /// Explore every interleaving of each design's entry paths with IRQs, NMIs, exceptions,
    /// preemption and signals up to a nesting depth; print each violated invariant's shortest
    /// trace. Exit 0 if no violation, 1 if one was found (or the state limit was hit). With
    /// --swarm N --worker I: one of N randomized bitstate searches, writing a result file that
    /// `ctxtrack check merge` combines.
    #[command(args_conflicts_with_subcommands = true)]
    Check {
        /// `merge`: combine swarm workers' result files.
        #[command(subcommand)]
        cmd: Option<CheckCmd>,
        /// Swarm mode: this run is one of N independent randomized searches (bitstate hashing,
        /// bounded memory; never exhaustive), one design, result file for `check merge`.
        #[arg(long, value_name = "N", requires = "worker")]
        swarm: Option<u32>,
        /// With --swarm: which worker this is (0 to N-1).
        #[arg(long, value_name = "I", requires = "swarm")]
        worker: Option<u32>,
        /// With --swarm: the bit array has 2^LOG2 bits (27: 16 MiB).
        #[arg(long, default_value_t = 27, value_name = "LOG2")]
        swarm_bits: u32,
        /// With --swarm: write the result file here (default: standard output).
        #[arg(long, value_name = "FILE", requires = "swarm")]
        out: Option<PathBuf>,
        /// One design (default: all).
        #[arg(long, value_name = "NAME")]
        design: Option<String>,
        /// All designs.
        #[arg(long)]
        all: bool,
        /// A design file to check (repeatable; alone, only the files are checked).
        #[arg(long = "design-file", value_name = "FILE")]
        design_file: Vec<PathBuf>,
        /// Entries that may nest on top of the one a CPU is in.
        #[arg(long, default_value_t = 3)]
        depth: u32,
        /// CPUs explored (1 or 2; with 2, the workers wake each other through pipes).
        #[arg(long, default_value_t = 1)]
        cpus: usize,
        /// Events injected: comma-separated irq,nmi,exc,fault,preempt,signal (or all, none).
        #[arg(long, default_value = "all", value_name = "LIST")]
        events: String,
        /// Give up after this many distinct states (verdict: incomplete).
        #[arg(long, default_value_t = 20_000_000)]
        max_states: u64,
        /// Give up when the states waiting in the next level need more than this (MiB; default:
        /// half of this machine's memory).
        #[arg(long, default_value_t = default_max_memory_mib(), value_name = "MIB")]
        max_memory: u64,
        /// Explore past this many violations on one path (0: stop at the first), to find the
        /// ones that lie behind a violation every path hits.
        #[arg(long, default_value_t = 1, value_name = "N")]
        keep_going: u32,
        /// Threads expanding each breadth-first level (default: one per CPU of this machine).
        /// The result is the same for any number.
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Softirqs: the device interrupt raises NET_RX, run by irq_exit_rcu() with IRQs on or by
        /// ksoftirqd (off by default: IRQs on inside interrupts multiply the states).
        #[arg(long)]
        softirq: bool,
        /// With --softirq: rounds one __do_softirq() may run before it wakes ksoftirqd (Linux:
        /// 10 and a time budget; more than 1 reaches no new state, only longer traces).
        #[arg(long, default_value_t = 1, value_name = "N", requires = "softirq")]
        softirq_restarts: u8,
        /// Callback offloading: the device interrupt's call_rcu() defers its rcuog wakeup (IRQs
        /// off), which must be flushed before the next return to user or halt; rcuog runs on the
        /// checked CPU, so a late flush loses the reschedule it needs (off by default: a
        /// pending deferral doubles the states it lives through).
        #[arg(long)]
        nocb: bool,
        /// The grace-period observer may also start a grace period inside an IRQ or NMI
        /// handler's read-side section (by default only in task, softirq and idle context).
        #[arg(long)]
        gp_in_hardirq: bool,
        /// The state word's CT_WORK options.
        #[command(flatten)]
        work: CtWorkArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Write each counterexample as ftrace text into this directory.
        #[arg(long, value_name = "DIR")]
        trace_out: Option<PathBuf>,
        /// Write each counterexample as ftrace text: FILE.<design>-<n>-<invariant>.<ext>.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Write each counterexample as Chrome/Perfetto JSON, named like --trace.
        #[arg(long = "chrome-trace", value_name = "FILE")]
        chrome_trace: Option<PathBuf>,
        /// No progress display.
        #[arg(long)]
        quiet: bool,
    },
    /// Replay a real trace (/sys/kernel/tracing/trace or trace-cmd report text, plain, gzip or
    /// `-` for standard input; or trace-cmd's binary trace.dat, v6/v7): rebuild per-CPU context
    /// states, check every invariant a trace can show, account per-task and per-CPU CPU time as
    /// the kernel does, with bounds where the trace cannot tell. Exit 1 on a violation.
    Replay {
        /// The trace file: text, gzip'd text or trace.dat (`-`: text on standard input).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print the event sequence of each path (syscall, IRQ from user, ...).
        #[arg(long)]
        shapes: bool,
        /// CPUs that were nohz_full (default: those that log user_enter/user_exit).
        #[arg(long = "nohz-full", value_name = "LIST")]
        nohz_full: Option<String>,
        /// The traced kernel's HZ, for tick-sampled accounting on untracked CPUs.
        #[arg(long, default_value_t = 250)]
        hz: u32,
        /// Also print the CPU time of this task and its descendants (a parent's cutime/cstime).
        #[arg(long, value_name = "PID")]
        tree: Option<i32>,
        /// Also write the trace as Chrome/Perfetto JSON.
        #[arg(long = "chrome-trace", value_name = "FILE")]
        chrome_trace: Option<PathBuf>,
        /// No progress display.
        #[arg(long)]
        quiet: bool,
    },
    /// What disturbed each isolated CPU: every interruption of user mode in a trace (ftrace or
    /// trace-cmd report text, plain or gzip, or trace.dat), by cause (tick and the tick_stop
    /// dependency that kept it, each IPI vector and its sender, device IRQs, softirqs, page
    /// faults, NMIs; the task's own syscalls apart), net of nested ones as osnoise counts them,
    /// with the longest, a histogram, and the IPIs CT_WORK would have deferred.
    Noise {
        /// The trace file (`-`: standard input).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// CPUs to report, or `all` (default: the nohz_full ones, those that log
        /// user_enter/user_exit).
        #[arg(long, value_name = "LIST")]
        cpus: Option<String>,
        /// How many of the longest interruptions to list per CPU.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Also draw the interruptions over time, per CPU, as SVG.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Also write the trace as Chrome/Perfetto JSON with the interruptions marked.
        #[arg(long = "chrome-trace", value_name = "FILE")]
        chrome_trace: Option<PathBuf>,
    },
    /// Boot the bare-metal kernel (kernel/) under QEMU TCG with a CPU count, a nohz_full set and
    /// a workload; print its log and per-CPU summary, then replay the ftrace it dumps. Needs
    /// qemu-system-x86_64 and the x86_64-unknown-none target.
    Kernel {
        /// messaging, syscalls or busy.
        #[arg(default_value = "messaging")]
        workload: String,
        /// CPUs (1 to 8).
        #[arg(long, default_value_t = 4)]
        smp: usize,
        /// nohz_full CPUs (default: all but CPU 0).
        #[arg(long = "nohz-full", value_name = "LIST")]
        nohz_full: Option<String>,
        /// Context tracking off (`ct=off`: the nohz_full CPUs keep their tick).
        #[arg(long)]
        ct_off: bool,
        /// The workload's size (messaging loops; thousands of syscalls; 1e8-cycle busy spans).
        #[arg(long)]
        loops: Option<u64>,
        /// Run QEMU with -icount shift=0 (deterministic, instruction-counted time).
        #[arg(long)]
        icount: bool,
        /// Keep the kernel's trace in this file.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// No progress display.
        #[arg(long)]
        quiet: bool,
    },
    /// Benchmarks (wall-clock figures of this machine; not tests).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCmd,
    },
    /// List the shipped entry designs, one line each.
    Designs,
    /// Entry designs as files: print a shipped one, or check one without running it.
    Design {
        #[command(subcommand)]
        what: DesignCmd,
    },
}

#[derive(Subcommand)]
enum DesignCmd {
    /// Print a shipped design's file (to copy and change).
    Show {
        /// Design name (`ctxtrack designs`) or shipped file name.
        name: String,
    },
    /// Load a design file and report its errors and notes without running it (exit 2 on an
    /// error).
    Lint {
        /// The file.
        file: PathBuf,
    },
    /// List the primitives a design file may call: class, cost key and what each models.
    Prims,
}

/// Loads design files given with `--design-file`; errors are the loader's, with file:line:col.
pub(crate) fn load_design_files(files: &[PathBuf]) -> Result<Vec<&'static design::Design>, String> {
    files
        .iter()
        .map(|p| {
            design::lang::analyze_path(p)
                .map(|a| a.leak())
                .map_err(|e| e.to_string())
        })
        .collect()
}

#[derive(Subcommand, Clone)]
pub(crate) enum WorkloadCmd {
    /// `perf bench sched messaging`: groups of 20 senders and 20 receivers.
    Messaging {
        /// Number of groups.
        #[arg(short = 'g', long = "group", default_value_t = 10)]
        group: u32,
        /// Number of loops (each sender writes one message per receiver per loop).
        #[arg(short = 'l', long = "nr_loops", default_value_t = 100)]
        nr_loops: u64,
        /// Use pipe() instead of socketpair().
        #[arg(short = 'p', long = "pipe")]
        pipe: bool,
        /// Be multi-thread instead of multi-process.
        #[arg(short = 't', long = "thread")]
        thread: bool,
        #[command(flatten)]
        common: Common,
    },
    /// One spinning user task per nohz_full CPU.
    CpuBound {
        #[command(flatten)]
        common: Common,
    },
    /// One getpid() loop per nohz_full CPU.
    SyscallStorm {
        /// User-mode time between two syscalls, in ns.
        #[arg(long, default_value_t = 200)]
        user_ns: u64,
        /// Set TIF_USER_RETURN_NOTIFY every N syscalls (a KVM-like user); 0 = never.
        #[arg(long, default_value_t = 0)]
        urn_every: u64,
        /// Tasks per nohz_full CPU.
        #[arg(long, default_value_t = 1)]
        tasks_per_cpu: u32,
        #[command(flatten)]
        common: Common,
    },
}

/// Deferred IPIs and the RCU counter's width, shared by run, compare and check.
#[derive(Args, Clone, Copy)]
pub(crate) struct CtWorkArgs {
    /// Deferred IPIs (the CT_WORK series): a work field in the state word, and senders that
    /// defer to nohz_full CPUs RCU does not watch instead of interrupting them (in check: the
    /// housekeeping CPU's ct_set_cpu_work(), its read and its cmpxchg, at every step boundary).
    #[arg(long = "ct-work")]
    pub ct_work: bool,
    /// CONFIG_RCU_DYNTICKS_TORTURE: a 2-bit RCU watching counter (wraps after two round trips).
    #[arg(long = "rcu-counter-torture")]
    pub rcu_counter_torture: bool,
    /// With --ct-work: an NMI that finds RCU watching flushes the word's work bits too (a
    /// mitigation of the window between an entry's add and its flush; not in the series).
    #[arg(long = "ct-work-nmi-flush")]
    pub ct_work_nmi_flush: bool,
}

/// Options every workload takes.
#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Number of CPUs (1-64).
    #[arg(long, default_value_t = 8)]
    cpus: usize,
    /// nohz_full CPU list, Linux syntax (default: all but CPU 0).
    #[arg(long = "nohz-full", value_name = "LIST")]
    nohz_full: Option<String>,
    /// Timer tick rate.
    #[arg(long, default_value_t = 1000)]
    hz: u64,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Context tracking: `on` (nohz_full CPUs tracked) or `off` (built in, inactive).
    #[arg(long, value_parser = ["on", "off"], default_value = "on")]
    ct: String,
    /// Simulated time limit, with a unit: 500us, 20ms, 1s (default: until the workload ends;
    /// 100ms for endless workloads).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<u64>,
    /// TOML file overriding cost-model entries.
    #[arg(long = "cost-model", value_name = "FILE")]
    cost_model: Option<PathBuf>,
    /// Entry design (a shipped one: `ctxtrack designs`).
    #[arg(long, default_value = "generic-entry")]
    design: String,
    /// An entry design written as a file (replaces --design; `compare` and `check` take it more
    /// than once).
    #[arg(long = "design-file", value_name = "FILE")]
    design_file: Vec<PathBuf>,
    /// Kernel preemption on IRQ exit (CONFIG_PREEMPTION).
    #[arg(long)]
    preempt: bool,
    /// A perf NMI on every CPU with this period (e.g. 1ms).
    #[arg(long = "nmi-period", value_parser = parse_duration)]
    nmi_period: Option<u64>,
    /// Device interrupts on every CPU at random gaps with this mean (e.g. 50us).
    #[arg(long = "irq-period", value_parser = parse_duration)]
    irq_period: Option<u64>,
    /// The state word's CT_WORK options.
    #[command(flatten)]
    work: CtWorkArgs,
    /// CPU 0 patches kernel text (every CPU must sync_core()) with this period (e.g. 1ms).
    #[arg(long = "text-poke-period", value_parser = parse_duration)]
    text_poke_period: Option<u64>,
    /// CPU 0 flushes a kernel TLB range on every CPU with this period (e.g. 1ms).
    #[arg(long = "tlbi-period", value_parser = parse_duration)]
    tlbi_period: Option<u64>,
    /// Turn the per-step invariant monitor off (faster).
    #[arg(long = "no-monitor")]
    no_monitor: bool,
    /// Print the report as JSON (stable keys, see README).
    #[arg(long)]
    json: bool,
    /// Write an ftrace trace (Linux's `trace` text) of every event to FILE.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Pin every task to this CPU, and what it forks (`taskset -c N`).
    #[arg(long, value_name = "CPU")]
    taskset: Option<usize>,
    /// Write a Chrome/Perfetto trace-event JSON of the run to FILE.
    #[arg(long = "chrome-trace", value_name = "FILE")]
    chrome_trace: Option<PathBuf>,
    /// Refuse or stop a run whose heap would pass this many MiB (default: half of this
    /// machine's memory); the verdict names the limit.
    #[arg(long, default_value_t = default_max_memory_mib(), value_name = "MIB")]
    max_memory: u64,
    /// Refuse or stop a run with more tasks than this (default: Linux's default pid_max).
    #[arg(long, default_value_t = ctxtrack_sim::limits::PID_MAX_DEFAULT, value_name = "N")]
    max_tasks: usize,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
}

/// Parses `500us`, `20ms`, `1s`, `1000ns` into nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ns") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000)
    } else {
        return Err(format!(
            "duration {s:?} needs a unit: ns, us, ms or s (e.g. 20ms)"
        ));
    };
    let v: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("duration {s:?}: {num:?} is not a whole number"))?;
    if v == 0 {
        return Err(format!("duration {s:?} must be positive"));
    }
    v.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

impl WorkloadCmd {
    pub(crate) fn split(&self) -> (Workload, &Common) {
        match self {
            WorkloadCmd::Messaging {
                group,
                nr_loops,
                pipe,
                thread,
                common,
            } => (
                Workload::Messaging {
                    groups: *group,
                    loops: *nr_loops,
                    pipe: *pipe,
                    thread: *thread,
                },
                common,
            ),
            WorkloadCmd::CpuBound { common } => (Workload::CpuBound, common),
            WorkloadCmd::SyscallStorm {
                user_ns,
                urn_every,
                tasks_per_cpu,
                common,
            } => (
                Workload::SyscallStorm {
                    user_ns: *user_ns,
                    urn_every: *urn_every,
                    per_cpu: *tasks_per_cpu,
                },
                common,
            ),
        }
    }
}

/// Builds the simulator configuration; errors name the option.
pub(crate) fn build_config(w: &Workload, o: &Common) -> Result<Config, String> {
    let d = match o.design_file.as_slice() {
        [] => design::by_name(&o.design).map_err(|e| format!("--design: {e}"))?,
        [f] => load_design_files(std::slice::from_ref(f))?[0],
        _ => {
            return Err(
                "--design-file: a run takes one design (compare and check take several)".into(),
            )
        }
    };
    let mut cfg = Config::new(d);
    if o.cpus == 0 || o.cpus > 64 {
        return Err(format!("--cpus must be between 1 and 64, got {}", o.cpus));
    }
    cfg.cpus = o.cpus;
    cfg.nohz_full = match &o.nohz_full {
        Some(l) => CpuSet::parse(l, o.cpus).map_err(|e| format!("--nohz-full: {e}"))?,
        None => CpuSet::all_but_0(o.cpus),
    };
    cfg.hz = o.hz;
    cfg.seed = o.seed;
    cfg.ct_on = o.ct == "on";
    cfg.duration_ns = o
        .duration
        .or(if w.finite() { None } else { Some(100_000_000) });
    cfg.preempt = o.preempt;
    cfg.nmi_period_ns = o.nmi_period;
    cfg.irq_period_ns = o.irq_period;
    cfg.ct_work = o.work.ct_work;
    cfg.rcu_counter_torture = o.work.rcu_counter_torture;
    cfg.ct_work_nmi_flush = o.work.ct_work_nmi_flush;
    cfg.text_poke_period_ns = o.text_poke_period;
    cfg.tlbi_period_ns = o.tlbi_period;
    cfg.monitor = !o.no_monitor;
    cfg.taskset = o.taskset;
    if o.max_memory == 0 {
        return Err("--max-memory must be at least 1 MiB".into());
    }
    if o.max_tasks == 0 {
        return Err("--max-tasks must be positive".into());
    }
    cfg.limits = ctxtrack_sim::limits::Limits {
        max_tasks: o.max_tasks,
        max_memory_bytes: o.max_memory.saturating_mul(1 << 20),
    };
    if let Some(p) = &o.cost_model {
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("--cost-model {}: {e}", p.display()))?;
        cfg.cost =
            CostModel::from_toml(&text, &p.display().to_string()).map_err(|e| e.to_string())?;
    }
    cfg.validate()?;
    // A workload too large to simulate is refused before any work, with what it would need.
    cfg.limits
        .admit(&ctxtrack_sim::limits::Footprint::of(&cfg, w))?;
    Ok(cfg)
}

fn cmd_run(wc: &WorkloadCmd) -> Result<ExitCode, String> {
    let (w, o) = wc.split();
    let cfg = build_config(&w, o)?;
    let out = ctxtrack_sim::TraceOutputs {
        ftrace: o
            .trace
            .as_deref()
            .map(|p| check::create("--trace", p))
            .transpose()?,
        chrome: o
            .chrome_trace
            .as_deref()
            .map(|p| check::create("--chrome-trace", p))
            .transpose()?,
    };
    let pb = progress::Progress::spinner(o.quiet);
    let observer = progress::sim_observer(&pb, w.name().to_string());
    let (report, mut m) = ctxtrack_sim::run_with_progress(cfg, &w, out, Some(observer));
    pb.finish();
    m.finish_trace()
        .map_err(|e| format!("--trace/--chrome-trace: write failed: {e}"))?;
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print!("{}", report.render_text());
    }
    Ok(if report.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_design(what: &DesignCmd) -> Result<ExitCode, String> {
    use design::lang;
    match what {
        DesignCmd::Show { name } => {
            let file = lang::SHIPPED
                .iter()
                .find(|(f, _)| *f == name || f.strip_suffix(".c") == Some(name))
                .ok_or_else(|| {
                    let names: Vec<&str> = lang::SHIPPED.iter().map(|(f, _)| *f).collect();
                    format!(
                        "no shipped design file {name:?}{}; shipped: {}",
                        lang::suggest(name, names.iter().copied()),
                        names.join(", ")
                    )
                })?;
            print!("{}", file.1);
            Ok(ExitCode::SUCCESS)
        }
        DesignCmd::Lint { file } => {
            let a = lang::analyze_path(file).map_err(|e| e.to_string())?;
            for n in &a.notes {
                eprintln!("{n}");
            }
            println!(
                "{}: design {:?} loads: {} functions, {} statements, {} note(s)",
                file.display(),
                a.name,
                a.funcs.len(),
                a.funcs.iter().map(|f| f.steps.len()).sum::<usize>(),
                a.notes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        DesignCmd::Prims => {
            for p in lang::prims::PRIMS {
                let args: Vec<&str> = p
                    .args
                    .iter()
                    .map(|a| match a {
                        lang::prims::Arg::Regs => "regs",
                        lang::prims::Arg::Current => "current",
                        lang::prims::Arg::Value => "value",
                        lang::prims::Arg::Cond => "cond",
                    })
                    .collect();
                println!(
                    "{:<32} {:<10} {:<18} {}",
                    format!("{}({})", p.name, args.join(", ")),
                    format!("{:?}", p.class),
                    format!("{:?}", p.cost),
                    p.doc
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    // A closed stdout (`ctxtrack ... | head`) ends the process quietly, as it ends `cat`: Rust
    // ignores SIGPIPE and would turn the EPIPE into a panic in `println!`.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    ctxtrack_sim::limits::set_memory_probe(|| ALLOC.allocated() as u64);
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::Run { workload } => cmd_run(workload),
        Cmd::Bench { what } => bench::run(what),
        Cmd::Compare {
            designs,
            design_file,
            json,
            svg,
            quiet,
            stress_seeds,
            workload,
            trace,
            chrome_trace,
        } => compare::run(compare::Args {
            trace: trace.as_deref(),
            chrome: chrome_trace.as_deref(),
            designs: designs.as_deref(),
            design_files: design_file,
            json: *json,
            svg: svg.as_deref(),
            quiet: *quiet,
            stress_seeds: *stress_seeds,
            workload: workload.as_ref(),
        }),
        Cmd::Check {
            cmd: Some(CheckCmd::Merge { files, json }),
            ..
        } => check::merge(files, *json),
        Cmd::Check {
            cmd: None,
            swarm,
            worker,
            swarm_bits,
            out,
            design,
            all,
            design_file,
            depth,
            cpus,
            events,
            max_states,
            max_memory,
            keep_going,
            threads,
            softirq,
            softirq_restarts,
            nocb,
            gp_in_hardirq,
            work,
            json,
            trace_out,
            trace,
            chrome_trace,
            quiet,
        } => check::run(check::Args {
            swarm: swarm
                .zip(*worker)
                .map(|(n, i)| (n, i, *swarm_bits, out.as_deref())),
            softirq: *softirq,
            softirq_restarts: *softirq_restarts,
            nocb: *nocb,
            gp_in_hardirq: *gp_in_hardirq,
            work: *work,
            design: design.as_deref(),
            all: *all,
            design_files: design_file,
            depth: *depth,
            cpus: *cpus,
            events,
            max_states: *max_states,
            max_memory: *max_memory,
            keep_going: *keep_going,
            threads: *threads,
            json: *json,
            trace_out: trace_out.as_deref(),
            trace: trace.as_deref(),
            chrome: chrome_trace.as_deref(),
            quiet: *quiet,
        }),
        Cmd::Noise {
            file,
            json,
            cpus,
            top,
            svg,
            chrome_trace,
        } => noise::run(noise::Args {
            file,
            json: *json,
            cpus: cpus.as_deref(),
            top: *top,
            svg: svg.as_deref(),
            chrome: chrome_trace.as_deref(),
        }),
        Cmd::Replay {
            file,
            json,
            shapes,
            nohz_full,
            hz,
            tree,
            chrome_trace,
            quiet,
        } => replay::run(replay::Args {
            quiet: *quiet,
            file,
            json: *json,
            shapes: *shapes,
            nohz_full: nohz_full.as_deref(),
            hz: *hz,
            tree: *tree,
            chrome: chrome_trace.as_deref(),
        }),
        Cmd::Kernel {
            workload,
            smp,
            nohz_full,
            ct_off,
            loops,
            icount,
            trace,
            timeout,
            quiet,
        } => kernel::run(kernel::Args {
            quiet: *quiet,
            smp: *smp,
            nohz_full: nohz_full.as_deref(),
            ct: !*ct_off,
            workload,
            loops: *loops,
            icount: *icount,
            trace_out: trace.as_deref(),
            timeout_s: *timeout,
        }),
        Cmd::Designs => {
            for d in design::all() {
                println!("{:<20} {}", d.name, d.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Design { what } => cmd_design(what),
    };
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ctxtrack: error: {e}");
            ExitCode::from(2)
        }
    }
}
