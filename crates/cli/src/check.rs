//! `ctxtrack check`: argument handling, progress display, output files. The exploration itself
//! is `ctxtrack_check`.

use ctxtrack_check::model::{CheckConfig, Events};
use ctxtrack_check::{check, render, write_traces, DesignResult};
use ctxtrack_sim::design::{self, Design};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

pub(crate) struct Args<'a> {
    /// `--swarm N --worker I --swarm-bits B --out FILE`.
    pub swarm: Option<(u32, u32, u32, Option<&'a Path>)>,
    pub design: Option<&'a str>,
    pub all: bool,
    pub design_files: &'a [std::path::PathBuf],
    pub depth: u32,
    pub cpus: usize,
    pub events: &'a str,
    pub max_states: u64,
    pub max_memory: u64,
    pub keep_going: u32,
    pub threads: Option<usize>,
    pub softirq: bool,
    pub softirq_restarts: u8,
    pub nocb: bool,
    pub gp_in_hardirq: bool,
    pub work: crate::CtWorkArgs,
    pub json: bool,
    pub trace_out: Option<&'a Path>,
    pub trace: Option<&'a Path>,
    pub chrome: Option<&'a Path>,
    pub quiet: bool,
}

/// Opens `p` for writing as a trace output; errors name the option.
pub(crate) fn create(opt: &str, p: &Path) -> Result<ctxtrack_sim::tracer::TraceOut, String> {
    let f = std::fs::File::create(p).map_err(|e| format!("{opt} {}: {e}", p.display()))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

/// `trace.txt` + `generic-entry` → `trace.generic-entry.txt` (one file per design or
/// counterexample from one option).
pub(crate) fn derive(p: &Path, tag: &str) -> std::path::PathBuf {
    let stem = p
        .file_stem()
        .map_or_else(|| "trace".into(), |s| s.to_string_lossy().into_owned());
    let name = match p.extension() {
        Some(e) => format!("{stem}.{tag}.{}", e.to_string_lossy()),
        None => format!("{stem}.{tag}"),
    };
    p.with_file_name(name)
}

pub(crate) fn run(a: Args) -> Result<ExitCode, String> {
    let files = crate::load_design_files(a.design_files)?;
    let mut designs: Vec<&'static Design> = match (a.design, a.all) {
        (Some(_), true) => return Err("--design and --all exclude each other".into()),
        (Some(n), false) => vec![design::by_name(n).map_err(|e| format!("--design: {e}"))?],
        (None, false) if !files.is_empty() => Vec::new(),
        (None, _) => design::all().to_vec(),
    };
    designs.extend(files);
    let events = Events::parse(a.events)?;
    let cfg_for = |d: &'static Design| {
        let base = CheckConfig::new(d);
        CheckConfig {
            depth: a.depth,
            cpus: a.cpus,
            events,
            max_states: a.max_states,
            max_memory_mb: a.max_memory,
            keep_going: a.keep_going,
            threads: a.threads.unwrap_or(base.threads),
            softirq: a.softirq,
            softirq_max_restart: a.softirq_restarts,
            nocb: a.nocb,
            gp_in_hardirq: a.gp_in_hardirq,
            ct_work: a.work.ct_work,
            rcu_counter_torture: a.work.rcu_counter_torture,
            ct_work_nmi_flush: a.work.ct_work_nmi_flush,
            ..base
        }
    };
    // Validate once before any work, so a bad option never leaves partial output.
    cfg_for(designs[0]).validate()?;
    if let Some((workers, worker, bits_log2, out)) = a.swarm {
        let [d] = designs[..] else {
            return Err(format!(
                "--swarm runs one design: give --design NAME or one --design-file ({} selected)",
                designs.len()
            ));
        };
        let sw = ctxtrack_check::swarm::SwarmConfig {
            workers,
            worker,
            bits_log2,
            max_frontier: usize::MAX,
        };
        sw.validate()?;
        let r = ctxtrack_check::swarm_worker(cfg_for(d), &sw)?;
        let text = serde_json::to_string_pretty(&r).expect("result serializes") + "\n";
        match out {
            Some(p) => {
                std::fs::write(p, text).map_err(|e| format!("--out {}: {e}", p.display()))?
            }
            None => print!("{text}"),
        }
        if !a.quiet {
            eprintln!(
                "worker {worker}/{workers}: {} states, depth {}, {} violation(s) found, omission probability {:.2e}{}",
                r.states,
                r.depth,
                r.found.len(),
                r.omission_probability(),
                r.limit.as_deref().map_or(String::new(), |l| format!(", stopped by {l}"))
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = a.trace_out {
        std::fs::create_dir_all(dir).map_err(|e| format!("--trace-out {}: {e}", dir.display()))?;
    }
    let mut results: Vec<(DesignResult, f64)> = Vec::new();
    for &d in &designs {
        let start = Instant::now();
        let pb = crate::progress::Progress::spinner(a.quiet);
        let mut progress = |p: &ctxtrack_check::explore::Progress| {
            pb.update(|bar| {
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "{}: {} states ({:.0}/s), level {}, frontier {}",
                    d.name,
                    p.states,
                    p.states as f64 / secs,
                    p.level,
                    p.frontier
                ));
            });
        };
        let r = check(cfg_for(d), &mut progress);
        pb.finish();
        let r = r?;
        let secs = start.elapsed().as_secs_f64();
        for (i, cx) in r.violations.iter().enumerate() {
            let tag = format!("{}-{}-{}", d.name, i + 1, cx.invariant);
            let mut outs: Vec<(std::path::PathBuf, ctxtrack_sim::TraceOutputs)> = Vec::new();
            if let Some(dir) = a.trace_out {
                let p = dir.join(format!("{tag}.trace"));
                let o = create("--trace-out", &p)?;
                outs.push((
                    p,
                    ctxtrack_sim::TraceOutputs {
                        ftrace: Some(o),
                        chrome: None,
                    },
                ));
            }
            let (ft, ch) = (
                a.trace.map(|p| derive(p, &tag)),
                a.chrome.map(|p| derive(p, &tag)),
            );
            if ft.is_some() || ch.is_some() {
                let o = ctxtrack_sim::TraceOutputs {
                    ftrace: ft.as_deref().map(|p| create("--trace", p)).transpose()?,
                    chrome: ch
                        .as_deref()
                        .map(|p| create("--chrome-trace", p))
                        .transpose()?,
                };
                outs.push((ft.or(ch).expect("one of them"), o));
            }
            for (p, o) in outs {
                write_traces(cfg_for(d), cx, o).map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
        if !a.json {
            print!("{}", render(&r, Some(secs)));
        }
        results.push((r, secs));
    }
    if a.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(r, _)| serde_json::to_value(r).expect("result serializes"))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    }
    let bad = results.iter().any(|(r, _)| r.verdict != "ok");
    Ok(if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `ctxtrack check merge FILES`: one verdict from a swarm's result files.
pub(crate) fn merge(files: &[std::path::PathBuf], json: bool) -> Result<ExitCode, String> {
    let mut results = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| format!("{name}: {e}"))?;
        let r: ctxtrack_check::swarm::WorkerResult = serde_json::from_str(&text)
            .map_err(|e| format!("{name}: line {}: not a swarm result file ({e})", e.line()))?;
        results.push((name, r));
    }
    let m = ctxtrack_check::swarm::merge(&results)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&m).expect("merge serializes")
        );
    } else {
        print!("{}", ctxtrack_check::swarm::render(&m));
    }
    Ok(ExitCode::from(if m.found.is_empty() { 3 } else { 1 }))
}
