//! The run loop every front end drives trials through: open or resume a study, recover trials
//! of dead workers, N worker threads with a heartbeat and orphan sweeps, cancellation by a
//! token, progress through an [`Observer`]. Nothing here prints.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caviar_core::pruner::Pruner;
use caviar_core::sampler::Sampler;
use caviar_core::space::SearchSpace;
use caviar_core::storage::{Storage, StorageError, TrialCounts};
use caviar_core::study::{panic_text, Outcome, Study, StudyError, Trial};
use caviar_core::trial::{Direction, TrialId, TrialState};
use caviar_run::{orphan_reason, WorkerId};

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The input is wrong (a changed space under an old name, a mismatched study): the user
    /// fixes it; front ends report it as bad input (the CLI: exit 2).
    #[error("{0}")]
    BadInput(String),
    /// The storage failed while doing `context`.
    #[error("{context}: {source}")]
    Storage {
        /// What the run was doing.
        context: String,
        /// The storage's error.
        source: StudyError,
    },
    /// Panics in worker threads (bugs in a sampler, a pruner or the objective); the trials
    /// they hit are recorded failed.
    #[error(
        "{count} panic(s) stopped the run; the trials they hit are recorded failed. First: {first}"
    )]
    Panicked {
        /// How many.
        count: usize,
        /// The first one's message, with its trial.
        first: String,
    },
    /// The run's first trials all failed, so it stopped.
    #[error("the first {count} trials of this run all failed, so it stopped (max_failures = {count}; 0 never stops); the last failure: {last}")]
    FailingFast {
        /// How many failed.
        count: u64,
        /// The last one's reason.
        last: String,
    },
    /// Several workers failed; the first error, then the others as text.
    #[error("{first}; {} more worker(s) failed: {}", .others.len(), .others.join(" | "))]
    Workers {
        /// The first error.
        first: Box<EngineError>,
        /// The others, one line each.
        others: Vec<String>,
    },
}

impl EngineError {
    fn storage(context: impl Into<String>, source: impl Into<StudyError>) -> Self {
        EngineError::Storage {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether the user's input is at fault, here or in a worker's error.
    pub fn is_bad_input(&self) -> bool {
        match self {
            EngineError::BadInput(_) => true,
            EngineError::Workers { first, .. } => first.is_bad_input(),
            _ => false,
        }
    }
}

/// What a run reports as it goes: a front end draws it (the CLI's progress bar), a test counts
/// it. Both methods are called from worker threads.
pub trait Observer: Sync {
    /// A trial ended: `state` as stored, `outcome` as the objective said.
    fn trial_done(&self, number: u64, state: TrialState, outcome: &Outcome, direction: Direction);
    /// Something worth a line: trials of dead workers marked failed, a result dropped.
    fn note(&self, text: &str);
    /// Called on the thread that called [`drive`], every 50 ms while it waits for the other
    /// workers' last trials (a front end checks for interrupts here).
    fn waiting(&self) {}
}

/// How often a waiting [`drive`] calls [`Observer::waiting`].
const WAIT_TICK: Duration = Duration::from_millis(50);

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn trial_done(&self, _: u64, _: TrialState, _: &Outcome, _: Direction) {}
    fn note(&self, _: &str) {}
}

/// How a run keeps its trials alive and finds lost ones.
#[derive(Clone, Copy, Debug)]
pub struct Recovery {
    /// How many times the parameters of a trial lost with its worker are queued again.
    pub retries: u32,
    /// How often running trials signal life.
    pub heartbeat: Duration,
}

impl Recovery {
    /// A trial silent this long is presumed lost: it missed a beat and most of the next. With
    /// sweeps four times a period, a lost trial is marked failed within two periods.
    pub fn stale_after(&self) -> Duration {
        self.heartbeat * 7 / 4
    }

    /// How often a worker looks for trials of dead workers.
    pub fn sweep_every(&self) -> Duration {
        self.heartbeat / 4
    }
}

/// What a study is opened with.
pub struct StudySetup<'a> {
    /// Study name.
    pub name: &'a str,
    /// What the objective's value should do.
    pub direction: Direction,
    /// The reported value that is the objective.
    pub metric: &'a str,
    /// The declared parameters; a stored study must have the same.
    pub space: &'a SearchSpace,
    /// Stored with a new study (its source, so workers can rebuild it).
    pub spec: serde_json::Value,
    /// What to try.
    pub sampler: Arc<dyn Sampler>,
    /// Decides when a trial stops early.
    pub pruner: Arc<dyn Pruner>,
    /// Names the study's source in errors (a file path, `caviar demo`).
    pub origin: &'a str,
    /// Names the storage in errors.
    pub url: &'a str,
    /// The study this one refines, if new.
    pub parent: Option<String>,
    /// Earlier studies whose complete trials that fit the space warm-start a model-based
    /// sampler (see [`crate::warm_start`]).
    pub warm_start: &'a [String],
    /// When the study is new, queue the best this many warm-start configurations first.
    pub enqueue_best: usize,
}

/// Creates or reopens the study; a stored study must have the same space, direction and metric.
pub fn open_study(
    storage: &Arc<dyn Storage>,
    setup: StudySetup<'_>,
    me: &WorkerId,
) -> Result<Study, EngineError> {
    let existing = storage
        .study(setup.name)
        .map_err(|e| EngineError::storage("reading the study", e))?;
    if let Some(existing) = &existing {
        let stored_space = existing.spec.as_ref().and_then(|s| s.get("space")).cloned();
        if stored_space.is_some_and(|s| s != serde_json::to_value(setup.space).unwrap_or_default())
        {
            return Err(EngineError::BadInput(format!(
                "{}: the parameters differ from those stored with study `{}` in {}; give the changed study a new name",
                setup.origin, setup.name, setup.url
            )));
        }
    }
    let origin = setup.origin.to_string();
    let warm = if setup.warm_start.is_empty() {
        crate::warm_start::WarmStart::default()
    } else {
        crate::warm_start::load(
            &**storage,
            setup.warm_start,
            Some(setup.space),
            setup.direction,
            Some(setup.metric),
        )
        .map_err(|e| match e {
            crate::warm_start::WarmStartError::Storage(e) => {
                EngineError::storage("reading the warm-start studies", e)
            }
            other => EngineError::BadInput(format!("{origin}: {other}")),
        })?
    };
    let first_best = warm.best(setup.direction, setup.enqueue_best);
    let used = warm.used.clone();
    let study = Study::builder(setup.name)
        .direction(setup.direction)
        .metric(setup.metric)
        .spec(setup.spec)
        .shared_sampler(setup.sampler)
        .shared_pruner(setup.pruner)
        .storage(storage.clone())
        .worker(me.to_string())
        .parent(setup.parent)
        .prior(warm.trials)
        .load_if_exists(true)
        .build()
        .map_err(|e| match e {
            StudyError::Mismatch { .. } | StudyError::Constraint(_) | StudyError::Objectives(_) => {
                EngineError::BadInput(format!("{origin}: {e}"))
            }
            other => EngineError::storage("opening the study", other),
        })?;
    if existing.is_none() && !used.is_empty() {
        let record: Vec<serde_json::Value> = used
            .iter()
            .map(|(name, n)| serde_json::json!({"study": name, "trials": n}))
            .collect();
        study
            .set_user_attr(crate::warm_start::WARM_START, &serde_json::json!(record))
            .map_err(|e| EngineError::storage("recording the warm start", e))?;
        for params in &first_best {
            study
                .enqueue(params)
                .map_err(|e| EngineError::storage("queuing the warm start's best", e))?;
        }
    }
    Ok(study)
}

/// Where a study stands after [`recover`].
#[derive(Clone, Debug)]
pub struct Recovered {
    /// Its trials by state.
    pub counts: TrialCounts,
    /// Numbers of the trials of dead workers just marked failed.
    pub orphans: Vec<u64>,
}

/// Marks trials of dead workers failed and says where the study stands.
pub fn recover(study: &Study, me: &WorkerId, recovery: Recovery) -> Result<Recovered, EngineError> {
    let orphans = study
        .fail_orphans(
            |t| orphan_reason(t, me, recovery.stale_after()),
            recovery.retries,
        )
        .map_err(|e| EngineError::storage("recovering trials of dead workers", e))?;
    let counts = study
        .storage()
        .counts(study.record().id)
        .map_err(|e| EngineError::storage("counting trials", e))?;
    Ok(Recovered { counts, orphans })
}

/// When a study run stops starting trials.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Trials the study should hold.
    pub total: u64,
    /// Trials this run starts at most, whatever other runs add (Optuna's `n_trials`).
    pub run_trials: Option<u64>,
    /// No trial starts after this (running ones finish).
    pub deadline: Option<Instant>,
    /// Heartbeats, and what happens to lost trials.
    pub recovery: Recovery,
    /// Stop when this run's first `max_failures` trials all failed (0: never): a command that
    /// cannot start should not burn the whole budget.
    pub max_failures: u64,
}

/// The default of [`Limits::max_failures`].
pub const DEFAULT_MAX_FAILURES: u64 = 5;

/// The heartbeat period when a study sets none.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

impl Limits {
    /// Trials until the study holds `total`: no deadline, no retries of lost trials, the
    /// default heartbeat, no stop on failures, no cap on this run's own trials.
    pub fn up_to(total: u64) -> Self {
        Limits {
            total,
            deadline: None,
            recovery: Recovery {
                retries: 0,
                heartbeat: DEFAULT_HEARTBEAT,
            },
            max_failures: 0,
            run_trials: None,
        }
    }
}

/// Runs trials on `workers` threads (the calling thread is one of them) until the study holds `limits.total` trials, the sampler
/// is exhausted, the deadline passes or `cancel` is set. `objective` gets a trial whose parameters from `space` are
/// already suggested, and says how it ended.
pub fn drive<F>(
    study: &Study,
    space: &SearchSpace,
    limits: Limits,
    workers: usize,
    cancel: &AtomicBool,
    progress: &dyn Observer,
    objective: F,
) -> Result<(), EngineError>
where
    F: Fn(&mut Trial, &AtomicBool) -> Outcome + Sync,
{
    let active: Mutex<HashSet<TrialId>> = Mutex::default();
    // Dropping the sender wakes the heartbeat thread at once, so a run ends without a poll delay.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    // Every worker's error is kept: each may name a trial its failed write left running.
    let fatal: Mutex<Vec<EngineError>> = Mutex::new(Vec::new());
    // A panic is a bug in caviar or the objective: no new trials start, running ones finish.
    let panics = Panics::default();
    let failures = Failures::default();
    // No more threads than trials left to start.
    let held = study
        .storage()
        .counts(study.record().id)
        .map_err(|e| EngineError::storage("counting trials", e))?;
    // Queued trials are this run's to start too (they run even past the total).
    let left = (limits.total.saturating_sub(held.total()) + held.waiting)
        .min(limits.run_trials.unwrap_or(u64::MAX));
    // Trials this run has claimed the right to start (for `Limits::run_trials`).
    let started = std::sync::atomic::AtomicU64::new(0);
    let workers = workers
        .min(usize::try_from(left).unwrap_or(usize::MAX))
        .max(1);
    std::thread::scope(|scope| {
        scope.spawn(|| heartbeat_loop(study, &active, stopped, progress, limits.recovery));
        let work = |slot: usize| {
            crate::resources::set_worker_slot(slot);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker_loop(
                    study, space, limits, &started, cancel, &panics, &failures, &active, progress,
                    &objective,
                )
            }));
            match run {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    cancel.store(true, Ordering::SeqCst);
                    fatal.lock().unwrap().push(e);
                }
                Err(panic) => panics.record(format!(
                    "a worker thread panicked outside any trial: {}",
                    panic_text(&panic)
                )),
            }
        };
        let others: Vec<_> = (1..workers)
            .map(|slot| scope.spawn(move || work(slot)))
            .collect();
        // One worker runs on the calling thread: a front end whose objective must run there
        // (Python's main thread sees Ctrl-C) gets one lane of trials on it, with no hand-off.
        work(0);
        while others.iter().any(|h| !h.is_finished()) {
            progress.waiting();
            std::thread::sleep(WAIT_TICK);
        }
        for h in others {
            let _ = h.join();
        }
        drop(stop);
    });
    let mut errors = fatal.into_inner().unwrap();
    if !errors.is_empty() {
        let first = errors.remove(0);
        if errors.is_empty() {
            return Err(first);
        }
        return Err(EngineError::Workers {
            first: Box::new(first),
            others: errors.iter().map(|e| e.to_string()).collect(),
        });
    }
    let panics = panics.messages.into_inner().unwrap();
    if let Some(first) = panics.first() {
        return Err(EngineError::Panicked {
            count: panics.len(),
            first: first.clone(),
        });
    }
    if failures.tripped.load(Ordering::SeqCst) {
        return Err(EngineError::FailingFast {
            count: limits.max_failures,
            last: failures.last.into_inner().unwrap().unwrap_or_default(),
        });
    }
    Ok(())
}

/// Failures at the start of a run; enough of them, with nothing else, stop new trials.
#[derive(Default)]
struct Failures {
    /// A trial of this run ended otherwise than failed.
    any_other: AtomicBool,
    failed: std::sync::atomic::AtomicU64,
    tripped: AtomicBool,
    last: Mutex<Option<String>>,
}

impl Failures {
    fn count(&self, outcome: &Outcome, state: TrialState, max: u64, cancelled: bool) {
        // Trials stopped by a cancel say nothing about the command.
        if cancelled {
            return;
        }
        if state != TrialState::Failed {
            self.any_other.store(true, Ordering::SeqCst);
            return;
        }
        if let Outcome::Failed(reason) = outcome {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        }
        let failed = self.failed.fetch_add(1, Ordering::SeqCst) + 1;
        if max > 0 && failed >= max && !self.any_other.load(Ordering::SeqCst) {
            self.tripped.store(true, Ordering::SeqCst);
        }
    }
}

/// Panics caught in worker threads; the first one stops new trials from starting.
#[derive(Default)]
struct Panics {
    halted: AtomicBool,
    messages: Mutex<Vec<String>>,
}

impl Panics {
    fn record(&self, message: String) {
        self.halted.store(true, Ordering::SeqCst);
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    fn halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }
}

/// Every heartbeat period, the heartbeats of this worker's trials; four times a period, a look
/// for trials of workers that died (on this host: their process is gone; elsewhere: silent for
/// [`Recovery::stale_after`]), which are marked failed so the study's count stays true.
fn heartbeat_loop(
    study: &Study,
    active: &Mutex<HashSet<TrialId>>,
    stopped: std::sync::mpsc::Receiver<()>,
    progress: &dyn Observer,
    recovery: Recovery,
) {
    let me = WorkerId::current();
    let (mut next_beat, mut next_sweep) = (
        Instant::now() + recovery.heartbeat,
        Instant::now() + recovery.sweep_every(),
    );
    loop {
        let due = next_beat.min(next_sweep);
        match stopped.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Instant::now();
        if now >= next_beat {
            next_beat = now + recovery.heartbeat;
            let ids: Vec<TrialId> = active.lock().unwrap().iter().copied().collect();
            for id in ids {
                let _ = study.storage().heartbeat(id);
            }
        }
        if now < next_sweep {
            continue;
        }
        next_sweep = now + recovery.sweep_every();
        if let Ok(failed) = study.fail_orphans(
            |t| orphan_reason(t, &me, recovery.stale_after()),
            recovery.retries,
        ) {
            if !failed.is_empty() {
                progress.note(&format!(
                    "trials {failed:?} of workers that died were marked failed"
                ));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn worker_loop<F>(
    study: &Study,
    space: &SearchSpace,
    limits: Limits,
    started: &std::sync::atomic::AtomicU64,
    cancel: &AtomicBool,
    panics: &Panics,
    failures: &Failures,
    active: &Mutex<HashSet<TrialId>>,
    progress: &dyn Observer,
    objective: &F,
) -> Result<(), EngineError>
where
    F: Fn(&mut Trial, &AtomicBool) -> Outcome + Sync,
{
    while !cancel.load(Ordering::SeqCst)
        && !panics.halted()
        && !failures.tripped.load(Ordering::SeqCst)
    {
        if limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        if limits
            .run_trials
            .is_some_and(|n| started.fetch_add(1, Ordering::SeqCst) >= n)
        {
            return Ok(());
        }
        let Some(mut trial) = study
            .ask_within(Some(limits.total))
            .map_err(|e| EngineError::storage("starting a trial", e))?
        else {
            // With retries, stay while trials run elsewhere: if one is lost, its retry needs a
            // worker, and this may be the last one.
            if limits.recovery.retries > 0 {
                let counts = study
                    .storage()
                    .counts(study.record().id)
                    .map_err(|e| EngineError::storage("counting trials", e))?;
                if counts.running + counts.waiting > 0 {
                    if limits.run_trials.is_some() {
                        started.fetch_sub(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(limits.recovery.sweep_every());
                    continue;
                }
            }
            return Ok(());
        };
        active.lock().unwrap().insert(trial.id());
        let number = trial.number();
        // A panic must not leave the trial running forever: it becomes the trial's failure.
        let sampled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| trial.suggest_space(space)));
        let outcome = match sampled {
            Err(panic) => {
                let text = format!(
                    "caviar panicked while sampling parameters (a bug; please report it): {}",
                    panic_text(&panic)
                );
                panics.record(format!("trial {number}: {text}"));
                Outcome::Failed(text)
            }
            Ok(Err(e)) => Outcome::Failed(format!("could not sample parameters: {e}")),
            Ok(Ok(())) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                objective(&mut trial, cancel)
            }))
            .unwrap_or_else(|panic| {
                let text = format!(
                    "panicked while running the trial (objective or pruner): {}",
                    panic_text(&panic)
                );
                panics.record(format!("trial {number}: {text}"));
                Outcome::Failed(text)
            }),
        };
        let id = trial.id();
        let params = trial.params();
        let told = study.tell(trial, outcome.clone());
        active.lock().unwrap().remove(&id);
        match told {
            Ok(state) => {
                let cancelled = cancel.load(Ordering::SeqCst);
                failures.count(&outcome, state, limits.max_failures, cancelled);
                progress.trial_done(number, state, &outcome, study.direction());
            }
            Err(StudyError::Storage(StorageError::NotRunning { state, .. })) => {
                progress.note(&format!(
                    "trial {number} was already marked {state} by another worker; its result is dropped"
                ));
            }
            Err(e) => {
                // The storage gave up after its retries: the result must not vanish with us.
                let shown: Vec<String> = params
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                return Err(EngineError::storage(
                    format!(
                        "recording trial {number}, which is left `running` in the storage (the next run or worker marks it failed); its result, not stored: {outcome:?} with {}",
                        shown.join(", ")
                    ),
                    e,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::sampler::{RandomSampler, SampleContext, SamplerError};
    use caviar_core::space::{Distribution, ParamValue, Scale};

    /// Draws at random, but panics on one trial number: a sampler's bug.
    struct PanicsOn(u64);

    impl Sampler for PanicsOn {
        fn sample(
            &self,
            ctx: &SampleContext<'_>,
            name: &str,
            dist: &Distribution,
        ) -> Result<ParamValue, SamplerError> {
            assert!(ctx.trial_number != self.0, "index out of bounds (injected)");
            RandomSampler::new(0).sample(ctx, name, dist)
        }

        fn name(&self) -> &'static str {
            "panics-on"
        }
    }

    fn run_study(
        sampler: Arc<dyn Sampler>,
        objective_panics_on: Option<u64>,
    ) -> (Result<(), EngineError>, Study) {
        let mut space = SearchSpace::new();
        space
            .add("x", Distribution::float(0.0, 1.0, Scale::Linear).unwrap())
            .unwrap();
        let study = Study::builder("panics")
            .shared_sampler(sampler)
            .build()
            .unwrap();
        let limits = Limits {
            total: 50,
            deadline: None,
            recovery: Recovery {
                retries: 0,
                heartbeat: Duration::from_secs(1),
            },
            max_failures: 0,
            run_trials: None,
        };
        let progress = Silent;
        let result = drive(
            &study,
            &space,
            limits,
            1,
            &AtomicBool::new(false),
            &progress,
            |trial, _| {
                std::thread::sleep(Duration::from_millis(5));
                assert!(Some(trial.number()) != objective_panics_on, "objective bug");
                Outcome::Complete(0.5)
            },
        );
        (result, study)
    }

    fn check_stopped_by_panic(
        result: Result<(), EngineError>,
        study: &Study,
        number: u64,
        message: &str,
    ) {
        let err = result.expect_err("a panic must fail the run").to_string();
        assert!(err.contains("panic") && err.contains(message), "{err}");
        let trials = study.trials().unwrap();
        let hit = trials.iter().find(|t| t.number == number).unwrap();
        assert_eq!(hit.state, TrialState::Failed);
        assert!(
            hit.error.as_deref().unwrap().contains(message),
            "{:?}",
            hit.error
        );
        assert!(
            trials.iter().all(|t| t.state != TrialState::Running),
            "no trial is left running"
        );
        // No trial starts after the panic (one worker, so the order is fixed).
        assert_eq!(trials.len() as u64, number + 1);
    }

    #[test]
    fn a_sampler_panic_fails_its_trial_and_the_run() {
        let (result, study) = run_study(Arc::new(PanicsOn(3)), None);
        check_stopped_by_panic(result, &study, 3, "index out of bounds (injected)");
    }

    #[test]
    fn an_objective_panic_fails_its_trial_and_the_run() {
        let (result, study) = run_study(Arc::new(RandomSampler::new(1)), Some(4));
        check_stopped_by_panic(result, &study, 4, "objective bug");
    }

    #[test]
    fn run_trials_counts_this_run_whatever_runs_beside_it_add() {
        let study = Study::builder("two-runs").build().unwrap();
        let space = SearchSpace::new();
        let limits = Limits {
            total: u64::MAX,
            deadline: None,
            recovery: Recovery {
                retries: 0,
                heartbeat: Duration::from_secs(1),
            },
            max_failures: 0,
            run_trials: Some(25),
        };
        let cancel = AtomicBool::new(false);
        let objective = |_: &mut Trial, _: &AtomicBool| {
            std::thread::sleep(Duration::from_millis(1));
            Outcome::Complete(1.0)
        };
        std::thread::scope(|scope| {
            for workers in [1, 3] {
                let (study, space, cancel) = (&study, &space, &cancel);
                scope.spawn(move || {
                    drive(study, space, limits, workers, cancel, &Silent, objective).unwrap()
                });
            }
        });
        assert_eq!(study.trials().unwrap().len(), 50);
    }
}
