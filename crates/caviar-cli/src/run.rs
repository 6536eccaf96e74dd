//! `caviar run`: create or resume a study and run it to its total with N workers.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use caviar_core::sampler::{GridSampler, RandomSampler, Sampler, SobolSampler};
use caviar_core::storage::StorageError;
use caviar_core::study::{Outcome, Study, StudyError};
use caviar_core::trial::{best_trials, TrialId, TrialState};
use caviar_run::{orphan_reason, run_command, CommandSpec, Control, TrialInput, WorkerId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::config;
use crate::output::{best_line, metric_name, trial_json};
use crate::{BadInput, EXIT_INTERRUPTED};

/// A running trial silent this long is presumed dead (its worker heartbeats every few seconds).
const STALE_AFTER: Duration = Duration::from_secs(60);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

fn build_sampler(study: &config::Study) -> Result<Arc<dyn Sampler>> {
    let seed = study.file.sampler.seed;
    Ok(match study.file.sampler.kind.as_str() {
        "random" => Arc::new(RandomSampler::new(seed)),
        "sobol" => Arc::new(SobolSampler::new(&study.space, seed)),
        "grid" => {
            let points = study.file.sampler.points.unwrap_or(5) as usize;
            Arc::new(
                GridSampler::from_space(&study.space, points, &study.grid_values, seed).map_err(
                    |e| BadInput(format!("{}: [sampler] grid: {e}", study.path.display())),
                )?,
            )
        }
        other => return Err(BadInput(format!("sampler `{other}` is not available")).into()),
    })
}

pub fn run(
    url: &str,
    path: &Path,
    trials: Option<u64>,
    workers: Option<u64>,
    as_json: bool,
) -> Result<u8> {
    let cfg = config::load(path)?;
    if workers == Some(0) {
        return Err(BadInput("--workers must be at least 1".into()).into());
    }
    let total = trials.unwrap_or(cfg.file.trials);
    let workers = workers.unwrap_or(cfg.file.workers) as usize;
    let storage = crate::open(url)?;
    let sampler = build_sampler(&cfg)?;
    let me = WorkerId::current();

    if let Some(existing) = storage.study(&cfg.file.name).context("reading the study")? {
        let stored_space = existing.spec.as_ref().and_then(|s| s.get("space")).cloned();
        let space = serde_json::to_value(&cfg.space)?;
        if stored_space.is_some_and(|s| s != space) {
            return Err(BadInput(format!(
                "{}: [params] differ from those stored with study `{}` in {url}; give the changed study a new name",
                path.display(),
                cfg.file.name
            ))
            .into());
        }
    }
    let study = Study::builder(&cfg.file.name)
        .direction(cfg.direction)
        .metric(&cfg.file.metric)
        .spec(cfg.spec_json())
        .shared_sampler(sampler)
        .storage(storage.clone())
        .worker(me.to_string())
        .load_if_exists(true)
        .build()
        .map_err(|e| match e {
            StudyError::Mismatch { .. } => {
                anyhow::Error::new(BadInput(format!("{}: {e}", path.display())))
            }
            other => anyhow::Error::new(other).context("opening the study"),
        })?;

    let orphans = study
        .fail_orphans(|t| orphan_reason(t, &me, STALE_AFTER))
        .context("recovering trials of dead workers")?;
    let before = storage.counts(study.record().id)?;
    let resumed = before.total() > 0;
    if resumed {
        eprintln!(
            "resuming study `{}`: {} trials so far ({} complete, {} failed{})",
            study.name(),
            before.total(),
            before.complete,
            before.failed,
            if orphans.is_empty() {
                String::new()
            } else {
                format!(
                    ", of which {} left running by a dead worker were just marked failed: {:?}",
                    orphans.len(),
                    orphans
                )
            }
        );
    }
    if before.total() >= total {
        eprintln!(
            "study `{}` already has {} of {total} trials; raise --trials to run more",
            study.name(),
            before.total()
        );
    }

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: stop waiting for the cleanup.
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
            eprintln!("\ninterrupted: stopping running trials (Ctrl-C again to quit at once)");
        })
        .context("installing the Ctrl-C handler")?;
    }

    let mut spec = CommandSpec::new(cfg.file.command.clone(), cfg.file.metric.clone());
    spec.timeout = cfg.timeout;
    spec.workdir = cfg.workdir();

    let progress = Progress::new(
        before.total(),
        total.max(before.total()),
        before.complete,
        metric_name(study.record()),
    );
    let active: Arc<Mutex<HashSet<TrialId>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        {
            let (active, done, storage) = (active.clone(), done.clone(), storage.clone());
            scope.spawn(move || heartbeat_loop(&*storage, &active, &done));
        }
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    if let Err(e) =
                        worker_loop(&study, &cfg, &spec, total, &cancel, &active, &progress)
                    {
                        cancel.store(true, Ordering::SeqCst);
                        fatal.lock().unwrap().get_or_insert(e);
                    }
                })
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
        done.store(true, Ordering::SeqCst);
    });
    progress.finish();
    if let Some(e) = fatal.into_inner().unwrap() {
        return Err(e);
    }

    let all = study.trials()?;
    let counts = storage.counts(study.record().id)?;
    let interrupted = cancel.load(Ordering::SeqCst);
    let metric = metric_name(study.record());
    let top = best_trials(&all, study.direction(), 5);
    eprintln!(
        "study `{}`: {} trials ({} complete, {} failed, {} pruned) in {:.1} s",
        study.name(),
        counts.total(),
        counts.complete,
        counts.failed,
        counts.pruned,
        started.elapsed().as_secs_f64()
    );
    for (i, t) in top.iter().enumerate() {
        eprintln!("{}", best_line(i + 1, metric, t));
    }
    if as_json {
        let summary = json!({
            "study": study.name(),
            "n_trials": counts.total(),
            "counts": counts,
            "interrupted": interrupted,
            "best": top.iter().map(|t| trial_json(t)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if interrupted {
        eprintln!("interrupted: running trials were marked failed (\"interrupted\"); run the same command again to continue");
        return Ok(EXIT_INTERRUPTED);
    }
    if counts.complete == 0 && counts.failed > 0 {
        let first = all
            .iter()
            .find(|t| t.state == TrialState::Failed)
            .and_then(|t| t.error.clone())
            .unwrap_or_default();
        eprintln!("error: every trial failed; the first failure was:\n{first}");
        return Ok(1);
    }
    Ok(0)
}

fn heartbeat_loop(
    storage: &dyn caviar_core::storage::Storage,
    active: &Mutex<HashSet<TrialId>>,
    done: &AtomicBool,
) {
    let mut last = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < HEARTBEAT_EVERY {
            continue;
        }
        last = Instant::now();
        let ids: Vec<TrialId> = active.lock().unwrap().iter().copied().collect();
        for id in ids {
            let _ = storage.heartbeat(id);
        }
    }
}

fn worker_loop(
    study: &Study,
    cfg: &config::Study,
    spec: &CommandSpec,
    total: u64,
    cancel: &AtomicBool,
    active: &Mutex<HashSet<TrialId>>,
    progress: &Progress,
) -> Result<()> {
    while !cancel.load(Ordering::SeqCst) {
        let Some(mut trial) = study.ask_within(Some(total)).context("starting a trial")? else {
            return Ok(());
        };
        active.lock().unwrap().insert(trial.id());
        let mut params_ok = Ok(());
        for (name, dist) in cfg.space.iter() {
            if let Err(e) = trial.suggest(name, dist.clone()) {
                params_ok = Err(e);
                break;
            }
        }
        let outcome = match params_ok {
            Err(e) => Outcome::Failed(format!("could not sample parameters: {e}")),
            Ok(()) => {
                let params = trial.params();
                let input = TrialInput {
                    study: study.name(),
                    number: trial.number(),
                    params: &params,
                };
                let mut on_report = |step: u64, value: f64| match trial.report(step, value) {
                    Ok(()) => Control::Continue,
                    // Someone else ended this trial (it was presumed dead): stop the command.
                    Err(_) => Control::Prune,
                };
                run_command(spec, &input, cancel, &mut on_report)
                    .map(|r| r.outcome)
                    .unwrap_or_else(|e| Outcome::Failed(e.to_string()))
            }
        };
        let number = trial.number();
        let id = trial.id();
        let told = study.tell(trial, outcome.clone());
        active.lock().unwrap().remove(&id);
        match told {
            Ok(state) => progress.trial_done(number, state, &outcome, study.direction()),
            Err(StudyError::Storage(StorageError::NotRunning { state, .. })) => {
                progress.note(&format!("trial {number} was already marked {state} by another worker; its result is dropped"));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("recording trial {number}")))
            }
        }
    }
    Ok(())
}

/// The progress bar on a terminal, one line per trial otherwise.
struct Progress {
    bar: ProgressBar,
    tty: bool,
    best: Mutex<Option<f64>>,
    metric: String,
}

impl Progress {
    fn new(done: u64, total: u64, complete_before: u64, metric: &str) -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = if tty {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
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
        let _ = complete_before;
        Progress {
            bar,
            tty,
            best: Mutex::new(None),
            metric: metric.to_string(),
        }
    }

    fn trial_done(
        &self,
        number: u64,
        state: TrialState,
        outcome: &Outcome,
        direction: caviar_core::trial::Direction,
    ) {
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
            Outcome::Pruned => format!("trial {number} pruned"),
            Outcome::Failed(reason) => {
                format!(
                    "trial {number} {state}: {}",
                    reason.lines().next().unwrap_or("")
                )
            }
        };
        if self.tty {
            if !matches!(outcome, Outcome::Complete(_)) {
                self.bar.println(line);
            }
        } else {
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

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
