//! `ctxtrack compare`: argument handling, progress display and the SVG chart. The comparison
//! itself is `ctxtrack_sim::compare`.

use crate::{build_config, WorkloadCmd};
use clap::Parser;
use ctxtrack_sim::compare::{compare, Comparison, Options};
use ctxtrack_sim::design::{self, Design};
use std::path::Path;
use std::process::ExitCode;

/// Parses `--designs a,b` into designs; the error lists the valid names.
pub(crate) fn parse_designs(list: Option<&[String]>) -> Result<Vec<&'static Design>, String> {
    match list {
        None => Ok(design::all().to_vec()),
        Some([]) => Err("--designs: empty list".into()),
        Some(names) => names
            .iter()
            .map(|n| design::by_name(n.trim()).map_err(|e| format!("--designs: {e}")))
            .collect(),
    }
}

#[derive(Parser)]
struct DefaultWorkload {
    #[command(subcommand)]
    w: WorkloadCmd,
}

pub(crate) struct Args<'a> {
    pub designs: Option<&'a [String]>,
    pub design_files: &'a [std::path::PathBuf],
    pub json: bool,
    pub svg: Option<&'a Path>,
    pub quiet: bool,
    pub stress_seeds: u64,
    pub workload: Option<&'a WorkloadCmd>,
    pub trace: Option<&'a Path>,
    pub chrome: Option<&'a Path>,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, String> {
    let files = crate::load_design_files(a.design_files)?;
    // Files alone compare only the files; with --designs, both.
    let mut designs = if files.is_empty() || a.designs.is_some() {
        parse_designs(a.designs)?
    } else {
        Vec::new()
    };
    designs.extend(files);
    let default;
    let wc = match a.workload {
        Some(w) => w,
        None => {
            default = DefaultWorkload::parse_from(["ctxtrack", "messaging"]).w;
            &default
        }
    };
    let (w, common) = wc.split();
    let base = build_config(&w, common)?;
    let pb = crate::progress::Progress::bar(a.quiet || common.quiet);
    // --ct-work on compare: every design with deferral off and on side by side (the other
    // rows keep it off).
    let mut base = base;
    let opts = Options {
        stress_seeds: a.stress_seeds,
        ct_work: base.ct_work,
        ..Options::default()
    };
    base.ct_work = false;
    let c = compare(&base, &w, &designs, &opts, |done, total, label| {
        pb.update(|b| {
            b.set_length(total as u64);
            b.set_position(done as u64);
            b.set_message(label.to_string());
        });
    });
    // One trace per design: its context-tracking-on run again (deterministic: the same run as
    // in the table), written as it goes.
    if a.trace.is_some() || a.chrome.is_some() {
        for &d in &designs {
            let mut cfg = base.clone();
            cfg.design = d;
            cfg.ct_on = true;
            cfg.stop_on_violation = false;
            let out = ctxtrack_sim::TraceOutputs {
                ftrace: a
                    .trace
                    .map(|p| crate::check::create("--trace", &crate::check::derive(p, d.name)))
                    .transpose()?,
                chrome: a
                    .chrome
                    .map(|p| {
                        crate::check::create("--chrome-trace", &crate::check::derive(p, d.name))
                    })
                    .transpose()?,
            };
            let observer = crate::progress::sim_observer(&pb, format!("trace of {}", d.name));
            let (_, mut m) = ctxtrack_sim::run_with_progress(cfg, &w, out, Some(observer));
            m.finish_trace()
                .map_err(|e| format!("--trace/--chrome-trace ({}): {e}", d.name))?;
        }
    }
    pb.finish();
    if let Some(p) = a.svg {
        write_svg(&c, p).map_err(|e| format!("--svg {}: {e}", p.display()))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&c).expect("comparison serializes")
        );
    } else {
        print!("{}", c.render_text());
    }
    // A run that stopped at --max-memory/--max-tasks has partial figures: say so and fail.
    let limited = c
        .rows
        .iter()
        .filter_map(|r| r.first_violation.as_ref())
        .find(|f| f.invariant == "model_limit");
    if let Some(f) = limited {
        eprintln!(
            "ctxtrack: error: a run stopped at a limit ({}): its figures are partial",
            f.site
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Grouped bars: context-tracking cycles per syscall and per IRQ, per design, CT off and on.
fn write_svg(c: &Comparison, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let names: Vec<&str> = c
        .rows
        .iter()
        .filter(|r| r.ct == "on")
        .map(|r| r.design)
        .collect();
    let val = |d: &str, ct: &str, irq: bool| {
        c.rows
            .iter()
            .find(|r| r.design == d && r.ct == ct)
            .map(|r| {
                if irq {
                    r.ct_cycles_per_irq
                } else {
                    r.ct_cycles_per_syscall
                }
            })
            .unwrap_or(0.0)
    };
    let root = SVGBackend::new(path, (1100, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let halves = root.split_evenly((1, 2));
    for (half, (irq, title)) in halves.iter().zip([
        (false, "CT cycles per syscall"),
        (true, "CT cycles per IRQ"),
    ]) {
        let max = names
            .iter()
            .flat_map(|d| [val(d, "off", irq), val(d, "on", irq)])
            .fold(1.0f64, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(half)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(90)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..names.len() as f64, 0f64..max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(names.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() {
                    names[i].to_string()
                } else {
                    String::new()
                }
            })
            .x_label_style(
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .y_desc("cycles")
            .draw()
            .map_err(|e| e.to_string())?;
        for (mode, color, off) in [
            ("off", RGBColor(170, 190, 220), 0.1),
            ("on", RGBColor(40, 80, 160), 0.5),
        ] {
            chart
                .draw_series(names.iter().enumerate().map(|(i, d)| {
                    let x = i as f64 + off;
                    Rectangle::new([(x, 0.0), (x + 0.38, val(d, mode, irq))], color.filled())
                }))
                .map_err(|e| e.to_string())?
                .label(format!("context tracking {mode}"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
