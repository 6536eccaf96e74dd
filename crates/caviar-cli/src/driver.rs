//! The CLI's side of a study run: Ctrl-C, the progress bar and the lines it prints. The run
//! loop itself (worker threads, heartbeats, recovery) is `caviar_engine`'s; these are calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use caviar_core::space::SearchSpace;
use caviar_core::storage::{Storage, TrialCounts};
use caviar_core::study::{Outcome, Study, Trial};
use caviar_core::trial::{Direction, TrialState};
use caviar_engine::EngineError;
use caviar_run::WorkerId;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use caviar_engine::{Limits, Recovery, StudySetup};

use crate::{BadInput, EXIT_INTERRUPTED};

/// The engine's error as the CLI reports it: bad input exits 2.
fn reported(e: EngineError) -> anyhow::Error {
    if e.is_bad_input() {
        BadInput(e.to_string()).into()
    } else {
        anyhow::Error::new(e)
    }
}

/// Creates or reopens the study (see [`caviar_engine::open_study`]).
pub fn open_study(
    storage: &Arc<dyn Storage>,
    setup: StudySetup<'_>,
    me: &WorkerId,
) -> Result<Study> {
    caviar_engine::open_study(storage, setup, me).map_err(reported)
}

/// Marks trials of dead workers failed and says where the study stands. Returns the counts.
pub fn recover(
    study: &Study,
    me: &WorkerId,
    total: u64,
    recovery: Recovery,
) -> Result<TrialCounts> {
    let recovered = caviar_engine::recover(study, me, recovery).map_err(reported)?;
    let (counts, orphans) = (recovered.counts, recovered.orphans);
    if counts.total() > 0 {
        let orphan_note = if orphans.is_empty() {
            String::new()
        } else {
            format!(
                "; {} left running by a dead worker were just marked failed: {orphans:?}",
                orphans.len()
            )
        };
        eprintln!(
            "resuming study `{}`: {} trials so far ({} complete, {} failed){orphan_note}",
            study.name(),
            counts.total(),
            counts.complete,
            counts.failed
        );
    }
    if total == 0 {
        // `--trials 0` creates (or checks) a study for workers to fill.
        eprintln!(
            "study `{}` is stored with {} trials; `caviar worker {}` (or `caviar run` with --trials above 0) runs its trials",
            study.name(),
            counts.total(),
            study.name()
        );
    } else if counts.total() > total && counts.waiting > 0 {
        eprintln!(
            "study `{}` holds {} trials, beyond its total of {total}, because {} enqueued trial(s) wait: queued trials always run, so they run now",
            study.name(),
            counts.total(),
            counts.waiting
        );
    } else if counts.total() >= total && counts.waiting == 0 {
        eprintln!(
            "study `{}` already has {} of {total} trials; raise --trials to run more",
            study.name(),
            counts.total()
        );
    }
    Ok(counts)
}

/// Installs the Ctrl-C handler: the first press asks running trials to stop, the second quits.
pub fn cancel_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            caviar_run::kill_running_commands();
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("\ninterrupted: stopping running trials (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(cancel)
}

/// Runs the study's trials through the engine's loop ([`caviar_engine::drive`]), drawing
/// progress, then clears the bar.
pub fn run_trials<F>(
    study: &Study,
    space: &SearchSpace,
    limits: Limits,
    workers: usize,
    cancel: &AtomicBool,
    progress: &Progress,
    objective: F,
) -> Result<()>
where
    F: Fn(&mut Trial, &AtomicBool) -> Outcome + Sync,
{
    let ran = caviar_engine::drive(study, space, limits, workers, cancel, progress, objective);
    progress.finish();
    ran.map_err(reported)
}

/// The progress bar on a terminal, one line per trial otherwise.
pub struct Progress {
    bar: ProgressBar,
    tty: bool,
    quiet: bool,
    best: Mutex<Option<f64>>,
    metric: String,
}

impl Progress {
    /// A bar at `done` of `total`; `quiet` drops the per-trial lines when not on a terminal.
    pub fn new(done: u64, total: u64, metric: &str, quiet: bool) -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = if tty {
            ProgressBar::with_draw_target(Some(total.max(done)), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} trials | best {msg} | {elapsed} elapsed, ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_position(done);
        bar.reset_eta();
        bar.set_message("-");
        Progress {
            bar,
            tty,
            quiet,
            best: Mutex::new(None),
            metric: metric.to_string(),
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl caviar_engine::Observer for Progress {
    fn trial_done(&self, number: u64, state: TrialState, outcome: &Outcome, direction: Direction) {
        let mut best = self.best.lock().unwrap();
        if let Outcome::Complete(v) = outcome {
            if best.is_none_or(|b| direction.better(*v, b)) {
                *best = Some(*v);
            }
        }
        let best_text = best
            .map(|b| format!("{}={b:.4}", self.metric))
            .unwrap_or_else(|| "-".into());
        self.bar.set_message(best_text.clone());
        self.bar.inc(1);
        let line = match outcome {
            Outcome::Complete(v) => format!(
                "trial {number} complete: {}={v:.4} (best {best_text})",
                self.metric
            ),
            Outcome::Values(values) => {
                let shown: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
                format!("trial {number} complete: {}", shown.join(", "))
            }
            Outcome::Pruned => format!("trial {number} pruned"),
            Outcome::Failed(reason) => format!(
                "trial {number} {state}: {}",
                reason.lines().next().unwrap_or("")
            ),
        };
        if self.tty {
            if !matches!(outcome, Outcome::Complete(_)) {
                self.bar.println(line);
            }
        } else if !self.quiet || !matches!(outcome, Outcome::Complete(_)) {
            eprintln!("{line}");
        }
    }

    fn note(&self, text: &str) {
        if self.tty {
            self.bar.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}
