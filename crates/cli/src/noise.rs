//! `ctxtrack noise`: what disturbed each isolated CPU, from a trace.

use ctxtrack_trace::noise::{noise_path, NoiseReport, Options, HIST_BOUNDS_NS};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Options of `ctxtrack noise`.
pub(crate) struct Args<'a> {
    pub file: &'a Path,
    pub json: bool,
    pub cpus: Option<&'a str>,
    pub top: usize,
    pub svg: Option<&'a Path>,
    pub chrome: Option<&'a Path>,
}

pub(crate) fn run(a: Args<'_>) -> Result<ExitCode, String> {
    let cpus = match a.cpus {
        Some("all") => Some(Vec::new()),
        Some(l) => Some(
            ctxtrack_sim::CpuSet::parse(l, 4096)
                .map_err(|e| format!("--cpus: {e}"))?
                .iter()
                .map(|c| c as u32)
                .collect(),
        ),
        None => None,
    };
    let r = noise_path(a.file, Options { cpus, top: a.top }).map_err(|e| e.to_string())?;
    if let Some(p) = a.svg {
        write_svg(&r, p).map_err(|e| format!("--svg {}: {e}", p.display()))?;
    }
    if let Some(p) = a.chrome {
        crate::replay::write_chrome(a.file, p, &r.marks)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    } else {
        print!("{}", text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}
fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn text(r: &NoiseReport) -> String {
    let mut o = String::new();
    if r.cpus.is_empty() {
        let _ = writeln!(
            o,
            "no nohz_full CPU in this trace (none logs user_enter/user_exit): name CPUs with --cpus"
        );
    }
    for c in &r.cpus {
        let pct = if c.span_ns > 0 {
            100.0 * c.user_ns as f64 / c.span_ns as f64
        } else {
            0.0
        };
        let _ = writeln!(
            o,
            "CPU {} ({}): {} ms traced, {} ms in user mode ({pct:.1} %), {} interruptions of user mode, {} ms",
            c.cpu,
            if c.nohz_full { "nohz_full" } else { "tick-sampled, edges inferred" },
            ms(c.span_ns),
            ms(c.user_ns),
            c.interruptions,
            ms(c.interrupted_ns)
        );
        if c.lost > 0 {
            let _ = writeln!(
                o,
                "  (lost events {} times: figures around them are incomplete)",
                c.lost
            );
        }
        let _ = writeln!(
            o,
            "  {:<34} {:>7} {:>10} {:>9} {:>8}  tick kept by / IPI senders",
            "cause (net of nested)", "count", "total ms", "max us", "CT_WORK"
        );
        let mut shown_self = false;
        for s in &c.causes {
            if s.self_inflicted && !shown_self {
                let _ = writeln!(o, "  self-inflicted:");
                shown_self = true;
            }
            let mut why = String::new();
            for (k, n) in &s.kept_by {
                let _ = write!(why, "{k} x{n} ");
            }
            for (k, n) in &s.senders {
                let _ = write!(why, "{k} x{n} ");
            }
            if why.is_empty() && s.cause.starts_with("IPI ") && !r.ipi_senders_traced {
                why.push_str("(sender not traced: ipi_send_* needs Linux 6.6+)");
            }
            let _ = writeln!(
                o,
                "  {:<34} {:>7} {:>10} {:>9} {:>8}  {}",
                s.cause,
                s.count,
                ms(s.total_ns),
                us(s.max_ns),
                if s.ct_work_deferrable > 0 {
                    s.ct_work_deferrable.to_string()
                } else {
                    "-".into()
                },
                why.trim_end()
            );
        }
        if c.ct_work_deferrable > 0 {
            let _ = writeln!(
                o,
                "  CT_WORK: {} call-function IPIs hit user mode; deferred to the next kernel entry they would not have interrupted it",
                c.ct_work_deferrable
            );
        }
        let _ = writeln!(o, "  durations (net, every interruption):");
        let mut lo = 0;
        for (i, n) in c.histogram.iter().enumerate() {
            if *n == 0 {
                lo = HIST_BOUNDS_NS.get(i).copied().unwrap_or(lo);
                continue;
            }
            let label = match HIST_BOUNDS_NS.get(i) {
                Some(hi) => format!("{} .. {} us", lo / 1000, hi / 1000),
                None => format!(">= {} us", lo / 1000),
            };
            let _ = writeln!(o, "    {label:>16}: {n}");
            lo = HIST_BOUNDS_NS.get(i).copied().unwrap_or(lo);
        }
        if !c.longest.is_empty() {
            let _ = writeln!(o, "  longest:");
            for i in &c.longest {
                let _ = writeln!(
                    o,
                    "    {:>10} us ({} us net)  {:<28} {}  lines {}-{}  at {}.{:06}",
                    us(i.gross_ns),
                    us(i.net_ns),
                    i.cause,
                    i.task,
                    i.line,
                    i.end_line,
                    i.start_ns / 1_000_000_000,
                    i.start_ns % 1_000_000_000 / 1000
                );
            }
        }
        o.push('\n');
    }
    o
}

/// Interruptions over time, one row per CPU, colored by cause.
fn write_svg(r: &NoiseReport, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let t0 = r.marks.iter().map(|m| m.1).min().unwrap_or(0);
    let t1 = r
        .marks
        .iter()
        .map(|m| m.1 + m.2)
        .max()
        .unwrap_or(t0 + 1)
        .max(t0 + 1);
    let cpus: Vec<u32> = r.cpus.iter().map(|c| c.cpu).collect();
    // The most frequent causes get their own color.
    let mut causes: Vec<(&str, u64)> = Vec::new();
    for c in &r.cpus {
        for s in &c.causes {
            match causes.iter_mut().find(|(n, _)| *n == s.cause) {
                Some(x) => x.1 += s.count,
                None => causes.push((&s.cause, s.count)),
            }
        }
    }
    causes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let color = |cause: &str| {
        causes
            .iter()
            .take(palette.len())
            .position(|(n, _)| cause.starts_with(n) || *n == cause)
            .map_or(RGBColor(150, 150, 150), |i| palette[i])
    };
    let rows = cpus.len().max(1) as f64;
    let root = SVGBackend::new(path, (1200, 160 + 60 * cpus.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "interruptions of user mode (ctxtrack noise)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..(t1 - t0) as f64 / 1e6, 0f64..rows)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("ms since the first interruption")
        .y_labels(cpus.len().max(1))
        .y_label_formatter(&|y| {
            cpus.get(*y as usize)
                .map_or(String::new(), |c| format!("CPU {c}"))
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, &cpu) in cpus.iter().enumerate() {
        let y = i as f64;
        let bars = r.marks.iter().filter(|m| m.0 == cpu).map(|m| {
            let x0 = (m.1 - t0) as f64 / 1e6;
            // at least a hairline, so short ones show
            let x1 = x0 + ((m.2 as f64) / 1e6).max((t1 - t0) as f64 / 1e6 / 1500.0);
            Rectangle::new([(x0, y + 0.15), (x1, y + 0.85)], color(&m.3).filled())
        });
        chart.draw_series(bars).map_err(|e| e.to_string())?;
    }
    for (k, (name, n)) in causes.iter().take(palette.len()).enumerate() {
        let c = palette[k];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, -1.0), (0.0, -1.0)],
                c.filled(),
            )))
            .map_err(|e| e.to_string())?
            .label(format!("{name} ({n})"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
