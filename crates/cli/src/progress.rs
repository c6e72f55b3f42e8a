//! Progress on stderr for long commands, the way `cargo` shows it: only on a terminal, only once a
//! command has run for about a second, never with `--quiet`, never on stdout (which stays
//! byte-identical). `CTXTRACK_PROGRESS=always|never|auto` overrides the terminal test, as
//! `CARGO_TERM_PROGRESS_WHEN` does for cargo (`always` draws even when stderr is a file or pipe).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long a command runs before its progress appears.
const DELAY: Duration = Duration::from_secs(1);

/// When to draw, from `--quiet`, `CTXTRACK_PROGRESS` and whether stderr is a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// Draw after [`DELAY`].
    Delayed,
    /// Draw from the start, terminal or not.
    Always,
    /// Never draw.
    Never,
}

fn when(quiet: bool) -> When {
    if quiet {
        return When::Never;
    }
    match std::env::var("CTXTRACK_PROGRESS").as_deref() {
        Ok("always") => When::Always,
        Ok("never") => When::Never,
        _ if std::io::stderr().is_terminal() => When::Delayed,
        _ => When::Never,
    }
}

/// A progress line that stays hidden until the command has run for [`DELAY`].
#[derive(Clone)]
pub(crate) struct Progress {
    bar: ProgressBar,
    start: Instant,
    when: When,
}

impl Progress {
    /// A spinner with a message and the elapsed time; `quiet` hides it for good.
    pub(crate) fn spinner(quiet: bool) -> Progress {
        Progress::styled(quiet, "{spinner} {msg} [{elapsed}]")
    }

    /// A bar of `pos/len` with a message.
    pub(crate) fn bar(quiet: bool) -> Progress {
        Progress::styled(quiet, "{bar:30} {pos}/{len} {msg} [{elapsed}]")
    }

    /// Bytes read of a file, with the rate.
    pub(crate) fn bytes(quiet: bool) -> Progress {
        Progress::styled(
            quiet,
            "{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}) [{elapsed}]",
        )
    }

    fn styled(quiet: bool, template: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(ProgressStyle::with_template(template).expect("progress template"));
        let p = Progress {
            bar,
            start: Instant::now(),
            when: when(quiet),
        };
        if p.when == When::Always {
            p.show();
        }
        p
    }

    fn show(&self) {
        // A TermLike target is drawn whether or not stderr is a terminal (`always`); the plain
        // stderr target hides itself when it is not one.
        let target = match self.when {
            When::Always => ProgressDrawTarget::term_like(Box::new(console::Term::stderr())),
            _ => ProgressDrawTarget::stderr(),
        };
        self.bar.set_draw_target(target);
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    /// Updates the line; shows it if the command has now run long enough.
    pub(crate) fn update(&self, f: impl FnOnce(&ProgressBar)) {
        if self.when == When::Never {
            return;
        }
        if self.when == When::Delayed && self.bar.is_hidden() && self.start.elapsed() >= DELAY {
            self.show();
        }
        f(&self.bar);
    }

    /// Removes the line (nothing is left on the terminal).
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `12.345 ms` of simulated time.
pub(crate) fn sim_time(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// A progress callback for the simulator: the pass, the simulated time (of the duration, if
/// any), steps and tasks, prefixed by `label`.
pub(crate) fn sim_observer(p: &Progress, label: String) -> ctxtrack_sim::ProgressFn {
    let p = p.clone();
    Box::new(move |s: &ctxtrack_sim::Progress| {
        p.update(|b| {
            let of = s
                .duration_ns
                .map_or(String::new(), |d| format!(" of {}", sim_time(d)));
            b.set_message(format!(
                "{label}{}: simulated {}{of}, {} M steps, {} tasks",
                if s.phase == "run" {
                    String::new()
                } else {
                    format!(" ({})", s.phase)
                },
                sim_time(s.now_ns),
                s.steps / 1_000_000,
                s.tasks
            ));
        })
    })
}
