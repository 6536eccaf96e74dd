//! The study engine: ask for a trial, suggest its parameters define-by-run, report, tell.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::constraint::{Constraint, ConstraintError};
use crate::pruner::{NopPruner, PruneContext, Pruner};
use crate::sampler::{
    JointSample, RandomSampler, SampleContext, Sampler, SamplerError, StudyAttrs,
};
use crate::space::{Distribution, ParamValue, Scale, SearchSpace, SpaceError};
use crate::storage::{
    ControlAction, InMemoryStorage, NewStudy, QueuedParam, RunningTrial, Storage, StorageError,
    StudyRecord,
};
use crate::trial::{best_trials, Direction, FrozenTrial, StudyId, TrialId, TrialState};

/// Errors that stop a study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The storage failed; nothing more can be recorded.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A parameter's definition is invalid.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// The sampler cannot go on (e.g. an exhausted grid).
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// The objectives are not given consistently.
    #[error("objectives: {0}")]
    Objectives(String),
    /// A constraint's text cannot be read.
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
    /// An existing study was opened with different settings.
    #[error("study `{name}` exists with {field} = {stored}, not {requested}; use another study name or the stored setting")]
    Mismatch {
        /// Study name.
        name: String,
        /// Differing setting.
        field: &'static str,
        /// Stored value.
        stored: String,
        /// Requested value.
        requested: String,
    },
}

/// Why an objective did not return a value.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// The objective chose to stop early (a pruner said so).
    #[error("pruned")]
    Pruned,
    /// The objective failed; the message is stored with the trial.
    #[error("{0}")]
    Failed(String),
    /// A parameter's definition is invalid.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// The sampler could not draw a parameter.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl TrialError {
    /// A failure with a message: `.map_err(TrialError::fail)?` turns any error into one.
    pub fn fail(message: impl std::fmt::Display) -> Self {
        TrialError::Failed(message.to_string())
    }
}

/// How a trial ended, as told to the study.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished with an objective value (non-finite values are recorded as failures). In a
    /// study with several objectives that names them ([`StudyBuilder::metrics`]), the others
    /// come from the trial's last reports.
    Complete(f64),
    /// Finished with one value per objective, in the study's order (a study with several).
    Values(Vec<f64>),
    /// Stopped early.
    Pruned,
    /// Failed, with the reason.
    Failed(String),
}

/// A study: a named search with a direction, a sampler and a storage.
///
/// ```
/// use caviar_core::prelude::*;
/// let study = Study::builder("quadratic")
///     .direction(Direction::Minimize)
///     .sampler(RandomSampler::new(0))
///     .build()
///     .unwrap();
/// study.optimize(50, |trial| {
///     let x = trial.suggest_float("x", -10.0, 10.0, Scale::Linear)?;
///     let lr = trial.suggest_float("lr", 1e-5, 1.0, Scale::Log)?;
///     trial.report(0, x * x)?;
///     Ok((x - 2.0).powi(2) + lr)
/// }).unwrap();
/// let best = study.best_trial().unwrap().unwrap();
/// assert!(best.value.unwrap() < 5.0);
/// ```
pub struct Study {
    storage: Arc<dyn Storage>,
    record: StudyRecord,
    sampler: Arc<dyn Sampler>,
    pruner: Arc<dyn Pruner>,
    worker: String,
    finished: Arc<FinishedCache>,
    /// Earlier studies' trials that model-based samplers see before this study's own.
    prior: Arc<Vec<Arc<FrozenTrial>>>,
    /// What a complete trial's reports must meet to be feasible.
    constraints: Arc<Vec<Constraint>>,
    /// One direction per objective.
    directions: Arc<Vec<Direction>>,
    /// The objectives' reported names, when the study has several and names them.
    metrics: Arc<Vec<String>>,
}

/// Refuses a sampler that models one value for a study of several objectives.
fn sampler_fits(sampler: &dyn Sampler, objectives: usize) -> Result<(), StudyError> {
    if objectives > 1 && !sampler.handles_several_objectives() {
        return Err(StudyError::Objectives(format!(
            "the {} sampler optimises one objective; with {objectives} use nsga2, tpe, random, sobol or grid",
            sampler.name(),
        )));
    }
    Ok(())
}

/// Finished trials read so far, in finish order; each read fetches only the new ones. Shared by
/// a study's handle and its trials (samplers read it at ask time, pruners at every check).
struct FinishedCache {
    storage: Arc<dyn Storage>,
    study: StudyId,
    /// Appending copies the list only while a trial still holds an older snapshot.
    trials: std::sync::Mutex<Arc<Vec<Arc<FrozenTrial>>>>,
}

impl FinishedCache {
    /// The finished trials, brought up to date.
    fn refresh(&self) -> Result<Arc<Vec<Arc<FrozenTrial>>>, StorageError> {
        let mut cache = self.trials.lock().unwrap_or_else(|p| p.into_inner());
        let seen = cache.len() as u64;
        let new = self.storage.finished_since(self.study, seen)?;
        if !new.is_empty() {
            Arc::make_mut(&mut cache).extend(new.into_iter().map(Arc::new));
        }
        Ok(Arc::clone(&cache))
    }
}

/// Builds a [`Study`]; see [`Study::builder`].
pub struct StudyBuilder {
    name: String,
    direction: Direction,
    metric: Option<String>,
    spec: Option<serde_json::Value>,
    sampler: Arc<dyn Sampler>,
    pruner: Arc<dyn Pruner>,
    storage: Option<Arc<dyn Storage>>,
    worker: String,
    load_if_exists: bool,
    parent: Option<String>,
    prior: Vec<FrozenTrial>,
    constraints: Option<Vec<Constraint>>,
    directions: Option<Vec<Direction>>,
    metrics: Option<Vec<String>>,
}

impl StudyBuilder {
    /// Minimize (default) or maximize.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Several objectives, one direction each (the first is also [`Self::direction`]): trials
    /// end with [`Outcome::Values`], and the best trials are the Pareto front. Stored with a new
    /// study (its spec's `directions`); an existing study must have the same.
    ///
    /// ```
    /// use caviar_core::prelude::*;
    /// let study = Study::builder("accurate-and-fast")
    ///     .directions(vec![Direction::Maximize, Direction::Minimize])
    ///     .build()
    ///     .unwrap();
    /// for width in 1..=4 {
    ///     let mut trial = study.ask().unwrap();
    ///     let w = trial.suggest_int("width", width, width, Scale::Linear).unwrap() as f64;
    ///     // Accuracy grows with width, and so does latency; width 3 is dominated here.
    ///     let latency = if width == 3 { 50.0 } else { 10.0 * w };
    ///     study.tell(trial, Outcome::Values(vec![0.9 + 0.01 * w, latency])).unwrap();
    /// }
    /// let front: Vec<u64> = study.best_trials(10).unwrap().iter().map(|t| t.number).collect();
    /// assert_eq!(front, [0, 1, 3]);
    /// ```
    pub fn directions(mut self, directions: Vec<Direction>) -> Self {
        if let Some(first) = directions.first() {
            self.direction = *first;
        }
        self.directions = Some(directions);
        self
    }

    /// The reported names of several objectives, in the order of [`Self::directions`] (the
    /// first is also [`Self::metric`]): a trial told [`Outcome::Complete`] takes the others'
    /// values from its last reports (see [`Trial::report_metrics`]).
    pub fn metrics(mut self, metrics: Vec<String>) -> Self {
        if let Some(first) = metrics.first() {
            self.metric = Some(first.clone());
        }
        self.metrics = Some(metrics);
        self
    }
    /// The name of the reported value that is the objective (informational in the Rust API).
    pub fn metric(mut self, metric: impl Into<String>) -> Self {
        self.metric = Some(metric.into());
        self
    }
    /// The study's definition, stored so that workers and resumes can rebuild it.
    pub fn spec(mut self, spec: serde_json::Value) -> Self {
        self.spec = Some(spec);
        self
    }
    /// The sampler (default: random with seed 0).
    pub fn sampler(mut self, sampler: impl Sampler + 'static) -> Self {
        self.sampler = Arc::new(sampler);
        self
    }
    /// A shared sampler.
    pub fn shared_sampler(mut self, sampler: Arc<dyn Sampler>) -> Self {
        self.sampler = sampler;
        self
    }
    /// The pruner that [`Trial::should_prune`] consults (default: never prune).
    pub fn pruner(mut self, pruner: impl Pruner + 'static) -> Self {
        self.pruner = Arc::new(pruner);
        self
    }
    /// A shared pruner.
    pub fn shared_pruner(mut self, pruner: Arc<dyn Pruner>) -> Self {
        self.pruner = pruner;
        self
    }
    /// The storage (default: in memory).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }
    /// Who runs the trials of this handle (stored with each trial).
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }
    /// The study this one refines (stored lineage; it must exist).
    pub fn parent(mut self, parent: Option<String>) -> Self {
        self.parent = parent;
        self
    }
    /// Open the study if it exists instead of failing (its direction and metric must match).
    pub fn load_if_exists(mut self, yes: bool) -> Self {
        self.load_if_exists = yes;
        self
    }
    /// Warm start: complete trials of earlier studies (of the same direction, their parameters
    /// in this study's distributions) that a sampler which [learns from
    /// them](Sampler::learns_from_prior) sees as finished before this study's own. They are
    /// not trials of this study: not stored, not counted, not seen by pruners.
    ///
    /// ```
    /// use caviar_core::prelude::*;
    /// use caviar_core::sampler::TpeSampler;
    /// let old = Study::builder("old").sampler(TpeSampler::new(1)).build().unwrap();
    /// old.optimize(30, |t| Ok((t.suggest_float("x", -5.0, 5.0, Scale::Linear)? - 2.0).powi(2))).unwrap();
    /// let prior = old.trials().unwrap();
    /// let new = Study::builder("new").sampler(TpeSampler::new(2)).prior(prior).build().unwrap();
    /// // The model starts at once: no random start-up trials.
    /// new.optimize(5, |t| Ok((t.suggest_float("x", -5.0, 5.0, Scale::Linear)? - 2.0).powi(2))).unwrap();
    /// assert_eq!(new.trials().unwrap().len(), 5);
    /// assert!(new.best_trial().unwrap().unwrap().value.unwrap() < 1.0);
    /// ```
    pub fn prior(mut self, trials: Vec<FrozenTrial>) -> Self {
        self.prior = trials;
        self
    }

    /// Constraints on reported values: a complete trial that breaks one is infeasible, kept
    /// out of the best trials, and model-based samplers learn to avoid its region. Stored
    /// with a new study (in its spec, under `constraints`); an existing study must have the
    /// same. Without this call they come from the spec given, else from the stored study.
    ///
    /// ```
    /// use caviar_core::prelude::*;
    /// let study = Study::builder("small")
    ///     .constraints(vec!["memory_mb <= 100".parse().unwrap()])
    ///     .build()
    ///     .unwrap();
    /// study.optimize(20, |t| {
    ///     let width = t.suggest_int("width", 1, 20, Scale::Linear)?;
    ///     t.report_metrics(0, &[("memory_mb".into(), (width * 10) as f64)])?;
    ///     Ok(-(width as f64))
    /// }).unwrap();
    /// let best = study.best_trial().unwrap().unwrap();
    /// assert!(best.is_feasible());
    /// assert!(best.value.unwrap() >= -10.0);
    /// ```
    pub fn constraints(mut self, constraints: Vec<Constraint>) -> Self {
        self.constraints = Some(constraints);
        self
    }

    /// Creates (or opens) the study.
    pub fn build(mut self) -> Result<Study, StudyError> {
        let storage = self
            .storage
            .take()
            .unwrap_or_else(|| Arc::new(InMemoryStorage::new()));
        let requested = match self.constraints.take() {
            Some(list) => Some(list),
            None => crate::constraint::from_spec(self.spec.as_ref())?,
        };
        if let Some(list) = requested.as_ref().filter(|l| !l.is_empty()) {
            let spec = self.spec.get_or_insert_with(|| serde_json::json!({}));
            if let Some(object) = spec.as_object_mut() {
                object.insert("constraints".into(), serde_json::json!(list));
            }
        }
        // Several objectives: given here, or in the spec (a study file's), else the direction.
        let from_spec = |key: &str| {
            self.spec
                .as_ref()
                .and_then(|s| s.get(key))
                .filter(|v| !v.is_null())
                .cloned()
        };
        // `None`: not given, so an existing study keeps what it has.
        let requested_directions: Option<Vec<Direction>> =
            match self.directions.take() {
                Some(d) => Some(d),
                None => match from_spec("directions") {
                    Some(d) => Some(serde_json::from_value(d).map_err(|e| {
                        StudyError::Objectives(format!("the spec's directions: {e}"))
                    })?),
                    None => None,
                },
            };
        let directions = requested_directions
            .clone()
            .unwrap_or_else(|| vec![self.direction]);
        if self.metrics.is_none() {
            if let Some(m) = from_spec("metrics") {
                self.metrics = Some(
                    serde_json::from_value(m)
                        .map_err(|e| StudyError::Objectives(format!("the spec's metrics: {e}")))?,
                );
            }
        }
        if let Some(first) = directions.first() {
            self.direction = *first;
        }
        if directions.is_empty() {
            return Err(StudyError::Objectives(
                "directions is empty; give one direction per objective".into(),
            ));
        }
        sampler_fits(&*self.sampler, directions.len())?;
        let metrics = self.metrics.take().unwrap_or_default();
        if !metrics.is_empty() && metrics.len() != directions.len() {
            return Err(StudyError::Objectives(format!(
                "{} metrics for {} directions; give one metric per direction",
                metrics.len(),
                directions.len()
            )));
        }
        if directions.len() > 1 {
            let spec = self.spec.get_or_insert_with(|| serde_json::json!({}));
            if let Some(object) = spec.as_object_mut() {
                object.insert("directions".into(), serde_json::json!(directions));
                if !metrics.is_empty() {
                    object.insert("metrics".into(), serde_json::json!(metrics));
                }
            }
        }
        let existing = if self.load_if_exists {
            storage.study(&self.name)?
        } else {
            None
        };
        let record = match existing {
            Some(record) => record,
            None => match storage.create_study(&NewStudy {
                name: self.name.clone(),
                direction: self.direction,
                metric: self.metric.clone(),
                spec: self.spec.clone(),
                parent: self.parent.clone(),
            }) {
                Ok(record) => record,
                // Another worker created it between our look and our insert: join it.
                Err(StorageError::StudyExists(_)) if self.load_if_exists => storage
                    .study(&self.name)?
                    .ok_or_else(|| StorageError::NoSuchStudy(self.name.clone()))?,
                Err(e) => return Err(e.into()),
            },
        };
        if record.direction != self.direction {
            return Err(StudyError::Mismatch {
                name: self.name,
                field: "direction",
                stored: record.direction.as_str().into(),
                requested: self.direction.as_str().into(),
            });
        }
        if self.metric.is_some() && record.metric != self.metric {
            return Err(StudyError::Mismatch {
                name: self.name,
                field: "metric",
                stored: record.metric.unwrap_or_default(),
                requested: self.metric.unwrap_or_default(),
            });
        }
        let stored = crate::constraint::from_spec(record.spec.as_ref())
            .map_err(|e| StorageError::Backend(format!("study `{}`: {e}", self.name)))?
            .unwrap_or_default();
        let stored_directions = record.directions();
        if requested_directions.is_some() && stored_directions != directions {
            let show = |list: &[Direction]| {
                let texts: Vec<&str> = list.iter().map(|d| d.as_str()).collect();
                format!("[{}]", texts.join(", "))
            };
            return Err(StudyError::Mismatch {
                name: self.name,
                field: "directions",
                stored: show(&stored_directions),
                requested: show(&directions),
            });
        }
        if let Some(requested) = requested.filter(|r| *r != stored) {
            let show = |list: &[Constraint]| {
                let texts: Vec<String> = list.iter().map(|c| format!("\"{c}\"")).collect();
                format!("[{}]", texts.join(", "))
            };
            return Err(StudyError::Mismatch {
                name: self.name,
                field: "constraints",
                stored: show(&stored),
                requested: show(&requested),
            });
        }
        sampler_fits(&*self.sampler, stored_directions.len())?;
        let finished = Arc::new(FinishedCache {
            storage: storage.clone(),
            study: record.id,
            trials: Default::default(),
        });
        Ok(Study {
            constraints: Arc::new(stored),
            directions: Arc::new(stored_directions),
            metrics: Arc::new(record.metrics()),
            storage,
            record,
            sampler: self.sampler,
            pruner: self.pruner,
            worker: self.worker,
            finished,
            prior: Arc::new(self.prior.into_iter().map(Arc::new).collect()),
        })
    }
}

impl Study {
    /// Starts building a study called `name`.
    pub fn builder(name: impl Into<String>) -> StudyBuilder {
        StudyBuilder {
            name: name.into(),
            direction: Direction::Minimize,
            metric: None,
            spec: None,
            sampler: Arc::new(RandomSampler::new(0)),
            pruner: Arc::new(NopPruner),
            storage: None,
            worker: "local".into(),
            load_if_exists: false,
            parent: None,
            prior: Vec::new(),
            constraints: None,
            directions: None,
            metrics: None,
        }
    }

    /// What a complete trial's reports must meet to be feasible (empty: every trial is).
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// The stored study.
    pub fn record(&self) -> &StudyRecord {
        &self.record
    }

    /// The study's name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The study's direction.
    pub fn direction(&self) -> Direction {
        self.record.direction
    }

    /// The storage behind the study.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Starts a new trial. Fails with [`SamplerError::Exhausted`] when a grid has no points left.
    pub fn ask(&self) -> Result<Trial, StudyError> {
        match self.ask_within(None)? {
            Some(trial) => Ok(trial),
            None => Err(SamplerError::Exhausted(self.sampler.max_trials().unwrap_or(0)).into()),
        }
    }

    /// Starts a new trial unless the study already holds `total` trials (of any state; a lost
    /// trial whose retry was queued is replaced by it) or the sampler is exhausted; the check and the creation are atomic in the storage, so many
    /// workers never overshoot the total.
    pub fn ask_within(&self, total: Option<u64>) -> Result<Option<Trial>, StudyError> {
        let limit = match (total, self.sampler.max_trials()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(new) = self
            .storage
            .create_trial(self.record.id, &self.worker, limit)?
        else {
            return Ok(None);
        };
        let (finished, running) = if self.sampler.needs_history() {
            let mut finished = self.finished.refresh()?;
            if !self.prior.is_empty() && self.sampler.learns_from_prior() {
                // Prior first: the list still only grows at its end between asks.
                finished = Arc::new(self.prior.iter().chain(finished.iter()).cloned().collect());
            }
            let running: Vec<Arc<FrozenTrial>> = self
                .storage
                .running_with_params(self.record.id)?
                .into_iter()
                .filter(|t| t.id != new.id)
                .map(Arc::new)
                .collect();
            (finished, Arc::new(running))
        } else {
            (Arc::default(), Arc::default())
        };
        let objectives = (self.directions.len() > 1 && self.sampler.needs_history()).then(|| {
            Arc::new(crate::pareto::ObjectiveRanks::new(
                &self.directions,
                finished.iter().map(|t| &**t),
            ))
        });
        // A trial from the waiting queue (a retry) keeps the parameters it was queued with.
        let params: BTreeMap<String, (Distribution, ParamValue)> = if new.from_queue {
            queued_params(self.storage.trial(new.id)?)
                .into_iter()
                .map(|(name, dist, value)| (name, (dist, value)))
                .collect()
        } else {
            BTreeMap::new()
        };
        let pinned = params
            .iter()
            .filter(|(_, (dist, value))| is_pin(dist, value))
            .map(|(name, _)| name.clone())
            .collect();
        Ok(Some(Trial {
            id: new.id,
            study: self.record.id,
            number: new.number,
            direction: self.record.direction,
            storage: self.storage.clone(),
            sampler: self.sampler.clone(),
            pruner: self.pruner.clone(),
            history: self.finished.clone(),
            finished,
            running,
            params,
            joint: None,
            reported: Vec::new(),
            learn_from_pruned: self.pruner.is_active(),
            pinned,
            steering: Arc::default(),
            last_metrics: Arc::default(),
            objectives,
        }))
    }

    /// Ends a trial. A non-finite value is recorded as a failure. Returns the state recorded.
    pub fn tell(&self, trial: Trial, outcome: Outcome) -> Result<TrialState, StudyError> {
        let outcome = self.objective_values(&trial, outcome);
        let mut values = Vec::new();
        let (state, value, error) = match outcome {
            Outcome::Values(v) => {
                let first = v[0];
                values = v;
                (TrialState::Complete, Some(first), None)
            }
            Outcome::Complete(v) if v.is_finite() => (TrialState::Complete, Some(v), None),
            Outcome::Complete(v) => (
                TrialState::Failed,
                None,
                Some(format!("the objective value is {v}, not a finite number")),
            ),
            Outcome::Pruned => (
                TrialState::Pruned,
                trial_last_value(&*self.storage, trial.id),
                None,
            ),
            Outcome::Failed(reason) => (TrialState::Failed, None, Some(reason)),
        };
        if !values.is_empty() {
            self.storage.set_values(trial.id, &values)?;
        }
        if let (TrialState::Complete, Some(v)) = (state, value) {
            let values =
                trial.constraint_values(&self.constraints, self.record.metric.as_deref(), v);
            if !values.is_empty() {
                self.storage.set_constraints(trial.id, &values)?;
            }
        }
        self.storage
            .finish_trial(trial.id, state, value, error.as_deref())?;
        Ok(state)
    }

    /// The outcome with every objective's value checked: a study with several objectives
    /// gets [`Outcome::Values`] of the right length and finite, or a failure that says why;
    /// a single value is [`Outcome::Complete`].
    fn objective_values(&self, trial: &Trial, outcome: Outcome) -> Outcome {
        let n = self.directions.len();
        let values = match outcome {
            Outcome::Values(v) if n == 1 && v.len() == 1 => return Outcome::Complete(v[0]),
            Outcome::Values(v) => v,
            Outcome::Complete(v) if n > 1 => {
                if self.metrics.len() != n {
                    return Outcome::Failed(format!(
                        "the study has {n} objectives and names none of them; end its trials with all {n} values"
                    ));
                }
                let last = trial.last_metrics.lock().unwrap_or_else(|p| p.into_inner());
                let mut all = vec![v];
                for (k, name) in self.metrics.iter().enumerate().skip(1) {
                    match last.metrics.get(name) {
                        Some(&(_, x)) => all.push(x),
                        None => {
                            return Outcome::Failed(format!(
                                "objective {} (`{name}`) was never reported",
                                k + 1
                            ))
                        }
                    }
                }
                all
            }
            other => return other,
        };
        if values.len() != n {
            return Outcome::Failed(format!(
                "{} values for {n} objectives; give one value per objective",
                values.len()
            ));
        }
        if let Some((k, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Outcome::Failed(format!("objective {} is {v}, not a finite number", k + 1));
        }
        Outcome::Values(values)
    }

    /// Runs `n_trials` more trials of `objective`, one after another. A trial whose objective
    /// returns an error, a non-finite value or panics is recorded as failed and the study goes on;
    /// storage errors and invalid parameter definitions stop it.
    ///
    /// This is the single-threaded, in-process path (no heartbeat, no recovery of other
    /// workers' trials, no cancellation): for a notebook or a test. Runs with workers,
    /// heartbeats and cancellation go through `caviar_engine::drive`.
    pub fn optimize<F>(&self, n_trials: u64, mut objective: F) -> Result<(), StudyError>
    where
        F: FnMut(&mut Trial) -> Result<f64, TrialError>,
    {
        for _ in 0..n_trials {
            let Some(mut trial) = self.ask_within(None)? else {
                break;
            };
            let result = catch_unwind(AssertUnwindSafe(|| objective(&mut trial)));
            let (outcome, fatal) = match result {
                Ok(Ok(value)) => (Outcome::Complete(value), None),
                Ok(Err(TrialError::Pruned)) => (Outcome::Pruned, None),
                Ok(Err(TrialError::Failed(msg))) => (Outcome::Failed(msg), None),
                Ok(Err(TrialError::Storage(e))) => return Err(e.into()),
                Ok(Err(TrialError::Space(e))) => {
                    (Outcome::Failed(e.to_string()), Some(StudyError::Space(e)))
                }
                Ok(Err(TrialError::Sampler(e))) => {
                    (Outcome::Failed(e.to_string()), Some(StudyError::Sampler(e)))
                }
                Err(panic) => (Outcome::Failed(panic_message(&panic)), None),
            };
            self.tell(trial, outcome)?;
            if let Some(fatal) = fatal {
                return Err(fatal);
            }
        }
        Ok(())
    }

    /// All trials, by number.
    pub fn trials(&self) -> Result<Vec<FrozenTrial>, StudyError> {
        Ok(self.storage.trials(self.record.id)?)
    }

    /// The best complete trial.
    pub fn best_trial(&self) -> Result<Option<FrozenTrial>, StudyError> {
        Ok(self.best_trials(1)?.into_iter().next())
    }

    /// One direction per objective (one for a single-objective study).
    pub fn directions(&self) -> &[Direction] {
        &self.directions
    }

    /// The `k` best complete trials, best first; with several objectives, the Pareto front
    /// (at most `k` of it, by number).
    pub fn best_trials(&self, k: usize) -> Result<Vec<FrozenTrial>, StudyError> {
        let trials = self.trials()?;
        if self.directions.len() > 1 {
            return Ok(crate::pareto::pareto_front(&trials, &self.directions)
                .into_iter()
                .take(k)
                .cloned()
                .collect());
        }
        Ok(best_trials(&trials, self.record.direction, k)
            .into_iter()
            .cloned()
            .collect())
    }

    /// Queues a trial with fixed parameters, like Optuna's `enqueue_trial`: the next ask, on
    /// any worker, takes it before sampling a new point, and parameters not given are sampled
    /// as usual. It counts toward the study's total. Returns its number.
    ///
    /// ```
    /// use caviar_core::prelude::*;
    /// let study = Study::builder("q").build().unwrap();
    /// let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
    /// let number = study.enqueue(&[("lr".into(), lr, ParamValue::Float(0.01))]).unwrap();
    /// let mut trial = study.ask().unwrap();
    /// assert_eq!(trial.number(), number);
    /// assert_eq!(trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap(), 0.01);
    /// ```
    pub fn enqueue(&self, params: &[QueuedParam]) -> Result<u64, StudyError> {
        for (name, dist, value) in params {
            crate::space::check_name(name)?;
            dist.validate().map_err(|reason| SpaceError {
                name: name.clone(),
                reason,
            })?;
            if !dist.contains(value) {
                return Err(SpaceError {
                    name: name.clone(),
                    reason: format!("{value} is outside {}", dist.describe()),
                }
                .into());
            }
        }
        Ok(self
            .storage
            .enqueue_trial(self.record.id, params, 0)?
            .number)
    }

    /// Sets a user attribute of the study (any JSON value; a later one replaces it).
    ///
    /// ```
    /// use caviar_core::prelude::*;
    /// let study = Study::builder("notes").build().unwrap();
    /// study.set_user_attr("dataset", &"mnist".into()).unwrap();
    /// assert_eq!(study.user_attrs().unwrap()["dataset"], "mnist");
    /// ```
    pub fn set_user_attr(&self, key: &str, value: &serde_json::Value) -> Result<(), StudyError> {
        Ok(self.storage.set_user_attr(
            crate::storage::AttrOwner::Study(self.record.id),
            key,
            value,
        )?)
    }

    /// The study's user attributes.
    pub fn user_attrs(&self) -> Result<BTreeMap<String, serde_json::Value>, StudyError> {
        Ok(self
            .storage
            .user_attrs(crate::storage::AttrOwner::Study(self.record.id))?)
    }

    /// Queues a trial with chosen values and no distributions (Optuna's `enqueue_trial`): the
    /// next trial started takes each value when it suggests that name from any distribution
    /// that holds it, and samples the parameters not given. Returns the queued trial's number.
    ///
    /// ```
    /// use caviar_core::prelude::*;
    /// let study = Study::builder("warm-start").build().unwrap();
    /// study.enqueue_values(&[("lr".into(), ParamValue::Float(0.01))]).unwrap();
    /// let mut trial = study.ask().unwrap();
    /// assert_eq!(trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap(), 0.01);
    /// let layers = trial.suggest_int("layers", 1, 4, Scale::Linear).unwrap();
    /// assert!((1..=4).contains(&layers));
    /// ```
    pub fn enqueue_values(&self, values: &[(String, ParamValue)]) -> Result<u64, StudyError> {
        let params: Vec<QueuedParam> = values
            .iter()
            .map(|(name, value)| (name.clone(), pin(value), value.clone()))
            .collect();
        self.enqueue(&params)
    }

    /// Marks failed every running trial for which `is_orphan` gives a reason (its worker died,
    /// its heartbeat is stale), and queues its parameters again while it has had fewer than
    /// `retries` retries. Safe against races: a trial that ends meanwhile is left alone.
    /// Returns the numbers of the trials marked failed.
    pub fn fail_orphans(
        &self,
        is_orphan: impl Fn(&RunningTrial) -> Option<String>,
        retries: u32,
    ) -> Result<Vec<u64>, StudyError> {
        let mut failed = Vec::new();
        for running in self.storage.running_trials(self.record.id)? {
            if let Some(reason) = is_orphan(&running) {
                let retry = running.attempt < retries;
                let reason = if retry {
                    format!(
                        "{reason}; its parameters were queued again (retry {} of {retries})",
                        running.attempt + 1
                    )
                } else {
                    reason
                };
                match self
                    .storage
                    .finish_trial(running.id, TrialState::Failed, None, Some(&reason))
                {
                    Ok(()) => {
                        failed.push(running.number);
                        if retry {
                            let params = queued_params(self.storage.trial(running.id)?);
                            self.storage.enqueue_trial_with_attrs(
                                self.record.id,
                                &params,
                                running.attempt + 1,
                                &[(RETRY_OF.into(), serde_json::json!(running.number))],
                            )?;
                        }
                    }
                    Err(StorageError::NotRunning { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(failed)
    }
}

/// The user attribute of a retried trial that names the lost trial it replaces (a front end
/// may restore that trial's last checkpoint).
pub const RETRY_OF: &str = "retry_of";

/// A value queued without a distribution is stored as the one choice of a categorical: the
/// first suggestion of its name gives it its real distribution.
fn pin(value: &ParamValue) -> Distribution {
    Distribution::Categorical {
        choices: vec![value.clone()],
    }
}

fn is_pin(dist: &Distribution, value: &ParamValue) -> bool {
    matches!(dist, Distribution::Categorical { choices } if choices.len() == 1 && choices[0] == *value)
}

/// A pinned value as a value of `dist` (a whole number for a float parameter, an integral
/// float for an int one), if `dist` holds it.
fn pinned_as(value: &ParamValue, dist: &Distribution) -> Option<ParamValue> {
    let value = dist.as_own_type(value);
    dist.contains(&value).then_some(value)
}

/// A stored trial's parameters with the distribution each was drawn from.
fn queued_params(t: FrozenTrial) -> Vec<crate::storage::QueuedParam> {
    t.params
        .into_iter()
        .filter_map(|(name, value)| {
            let dist = t.distributions.get(&name)?.clone();
            Some((name, dist, value))
        })
        .collect()
}

fn trial_last_value(storage: &dyn Storage, id: TrialId) -> Option<f64> {
    storage
        .trial(id)
        .ok()
        .and_then(|t| t.last_intermediate())
        .map(|(_, v)| v)
}

/// The failure reason for a caught panic of an objective.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    format!("the objective panicked: {}", panic_text(panic))
}

/// The text a caught panic was raised with.
pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into())
}

/// A running trial: suggest parameters define-by-run, report intermediate values.
///
/// A clone is a handle to the same running trial (bindings hand a copy to code they do not
/// own, then take it back); tell the study one of them, once.
#[derive(Clone)]
pub struct Trial {
    id: TrialId,
    study: StudyId,
    number: u64,
    direction: Direction,
    storage: Arc<dyn Storage>,
    sampler: Arc<dyn Sampler>,
    pruner: Arc<dyn Pruner>,
    history: Arc<FinishedCache>,
    finished: Arc<Vec<Arc<FrozenTrial>>>,
    running: Arc<Vec<Arc<FrozenTrial>>>,
    params: BTreeMap<String, (Distribution, ParamValue)>,
    /// What the sampler drew jointly, filled at the first suggestion.
    joint: Option<JointSample>,
    /// What this trial reported, by step (a repeated step overwrites).
    reported: Vec<(u64, f64)>,
    /// Whether the study prunes (model-based samplers then learn from pruned trials too).
    learn_from_pruned: bool,
    /// Queued values that wait for their distribution (see [`Study::enqueue_values`]).
    pinned: std::collections::BTreeSet<String>,
    /// Paused or asked to stop, as the trial's requests have set it (clones share it).
    steering: Arc<Steering>,
    /// Each other reported value at its latest step, and constraint values given outright
    /// (clones share them: a runner reports through one, the study is told with another).
    last_metrics: Arc<std::sync::Mutex<LastReports>>,
    /// With several objectives, how the finished trials rank (for model-based samplers).
    objectives: Option<Arc<crate::pareto::ObjectiveRanks>>,
}

/// What a trial's constraints are evaluated on.
#[derive(Debug, Default)]
struct LastReports {
    metrics: BTreeMap<String, (u64, f64)>,
    given: Option<Vec<f64>>,
}

/// Pause and stop as a trial's requests have set them.
#[derive(Debug, Default)]
struct Steering {
    paused: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
}

/// Where a trial's pause, resume and stop requests leave it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Steer {
    /// Hold still until resumed.
    pub paused: bool,
    /// End now, complete with the last reported value.
    pub stop: bool,
}

impl Trial {
    /// Storage identifier.
    pub fn id(&self) -> TrialId {
        self.id
    }

    /// Number within the study, from 0.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Stores what the trial printed (its last lines), replacing what was stored; the
    /// dashboard's trial page shows it.
    pub fn store_log(&self, text: &str) -> Result<(), StudyError> {
        Ok(self.storage.set_trial_log(self.id, text)?)
    }

    /// Sets a user attribute of this trial (any JSON value; a later one replaces it).
    pub fn set_user_attr(&self, key: &str, value: &serde_json::Value) -> Result<(), StudyError> {
        Ok(self
            .storage
            .set_user_attr(crate::storage::AttrOwner::Trial(self.id), key, value)?)
    }

    /// This trial's user attributes.
    pub fn user_attrs(&self) -> Result<BTreeMap<String, serde_json::Value>, StudyError> {
        Ok(self
            .storage
            .user_attrs(crate::storage::AttrOwner::Trial(self.id))?)
    }

    /// Parameters suggested so far.
    pub fn params(&self) -> BTreeMap<String, ParamValue> {
        self.params
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect()
    }

    /// Suggests a value of any distribution. Asking twice for the same name returns the same
    /// value; asking with a different distribution is an error.
    pub fn suggest(&mut self, name: &str, dist: Distribution) -> Result<ParamValue, TrialError> {
        if let Some(value) = self.known(name, &dist)? {
            return Ok(value);
        }
        let value = self.draw(name, &dist)?;
        self.storage.set_param(self.id, name, &dist, &value)?;
        self.params.insert(name.to_string(), (dist, value.clone()));
        Ok(value)
    }

    /// Suggests every parameter of `space` that this trial has not suggested yet, storing them
    /// in one write: what a run loop does for a declared space, at a cost linear in its size.
    ///
    /// A conditional parameter is drawn only when its conditions hold, parents first; one whose
    /// conditions fail is left out of the trial.
    pub fn suggest_space(&mut self, space: &SearchSpace) -> Result<(), TrialError> {
        let mut drawn = Vec::new();
        let mut assigned = if space.is_conditional() {
            self.params()
        } else {
            BTreeMap::new()
        };
        for (name, dist) in space.in_order() {
            if space.is_conditional() && !space.is_active(name, &assigned) {
                continue;
            }
            let value = match self.known(name, dist)? {
                Some(value) => value,
                None => {
                    let value = self.draw(name, dist)?;
                    drawn.push((name.to_string(), dist.clone(), value.clone()));
                    value
                }
            };
            if space.is_conditional() {
                assigned.insert(name.clone(), value);
            }
        }
        self.storage.set_params(self.id, &drawn)?;
        for (name, dist, value) in drawn {
            self.params.insert(name, (dist, value));
        }
        Ok(())
    }

    /// The value already suggested for `name` with `dist`, after checking both.
    fn known(&mut self, name: &str, dist: &Distribution) -> Result<Option<ParamValue>, TrialError> {
        crate::space::check_name(name)?;
        dist.validate().map_err(|reason| SpaceError {
            name: name.into(),
            reason,
        })?;
        match self.params.get(name) {
            Some((known, value)) if known == dist => Ok(Some(value.clone())),
            Some((_, value)) if self.pinned.contains(name) => {
                let value = pinned_as(value, dist).ok_or_else(|| SpaceError {
                    name: name.into(),
                    reason: format!(
                        "the enqueued value {value} lies outside {}; enqueue a value inside it",
                        dist.describe()
                    ),
                })?;
                self.storage.replace_param(self.id, name, dist, &value)?;
                self.params
                    .insert(name.to_string(), (dist.clone(), value.clone()));
                self.pinned.remove(name);
                Ok(Some(value))
            }
            Some((known, _)) => Err(SpaceError {
                name: name.into(),
                reason: format!(
                    "was suggested as {} and again as {}; use one definition",
                    known.describe(),
                    dist.describe()
                ),
            }
            .into()),
            None => Ok(None),
        }
    }

    /// A new value for `name` from the sampler (its joint draw first), not yet stored.
    fn draw(&mut self, name: &str, dist: &Distribution) -> Result<ParamValue, TrialError> {
        let ctx = SampleContext {
            trial_number: self.number,
            direction: self.direction,
            finished: &self.finished,
            running: &self.running,
            attrs: Some(StudyAttrs {
                storage: &*self.storage,
                study: self.study,
            }),
            learn_from_pruned: self.learn_from_pruned,
            objectives: self.objectives.as_deref(),
        };
        if self.joint.is_none() {
            self.joint = Some(self.sampler.sample_joint(&ctx)?);
        }
        Ok(match self.joint.as_ref().and_then(|j| j.get(name)) {
            Some((drawn_from, value)) if drawn_from == dist => value.clone(),
            _ => self.sampler.sample(&ctx, name, dist)?,
        })
    }

    /// Suggests a real number in `[low, high]` on the given scale.
    pub fn suggest_float(
        &mut self,
        name: &str,
        low: f64,
        high: f64,
        scale: Scale,
    ) -> Result<f64, TrialError> {
        let dist = Distribution::Float {
            low,
            high,
            scale,
            step: None,
        };
        Ok(self
            .suggest(name, dist)?
            .as_f64()
            .expect("float distributions yield numbers"))
    }

    /// Suggests an integer in `[low, high]` on the given scale (`Linear` or `Log`).
    pub fn suggest_int(
        &mut self,
        name: &str,
        low: i64,
        high: i64,
        scale: Scale,
    ) -> Result<i64, TrialError> {
        let dist = Distribution::Int {
            low,
            high,
            step: 1,
            scale,
        };
        Ok(self
            .suggest(name, dist)?
            .as_i64()
            .expect("int distributions yield integers"))
    }

    /// Suggests one of `choices`.
    pub fn suggest_categorical<T>(&mut self, name: &str, choices: &[T]) -> Result<T, TrialError>
    where
        T: Clone + Into<ParamValue>,
    {
        let values: Vec<ParamValue> = choices.iter().cloned().map(Into::into).collect();
        let value = self.suggest(
            name,
            Distribution::Categorical {
                choices: values.clone(),
            },
        )?;
        let idx = values
            .iter()
            .position(|v| *v == value)
            .expect("categorical draws come from the choices");
        Ok(choices[idx].clone())
    }

    /// Records the objective's value at `step` (an epoch, say); a repeated step overwrites.
    pub fn report(&mut self, step: u64, value: f64) -> Result<(), TrialError> {
        self.storage.report(self.id, step, value)?;
        match self.reported.binary_search_by_key(&step, |&(s, _)| s) {
            Ok(i) => self.reported[i].1 = value,
            Err(i) => self.reported.insert(i, (step, value)),
        }
        Ok(())
    }

    /// Records other values at `step` besides the objective (training loss, learning rate,
    /// throughput), each kept as its own series; pruners and samplers see only the objective.
    ///
    /// ```
    /// use caviar_core::prelude::*;
    /// let study = Study::builder("metrics").build().unwrap();
    /// let mut trial = study.ask().unwrap();
    /// trial.report(1, 0.5).unwrap();
    /// trial.report_metrics(1, &[("train_loss".into(), 0.4), ("lr".into(), 0.01)]).unwrap();
    /// let id = trial.id();
    /// study.tell(trial, Outcome::Complete(0.5)).unwrap();
    /// let metrics = study.storage().trial_metrics(study.record().id).unwrap();
    /// assert_eq!(metrics[&id]["lr"], [(1, 0.01)]);
    /// ```
    pub fn report_metrics(&self, step: u64, metrics: &[(String, f64)]) -> Result<(), TrialError> {
        self.storage.report_metrics(self.id, step, metrics)?;
        self.note_metrics(step, metrics);
        Ok(())
    }

    /// Keeps each value reported at the latest step, for the study's constraints.
    fn note_metrics(&self, step: u64, metrics: &[(String, f64)]) {
        let mut last = self.last_metrics.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in metrics {
            let entry = last.metrics.entry(name.clone()).or_insert((step, *value));
            if step >= entry.0 {
                *entry = (step, *value);
            }
        }
    }

    /// Gives the trial's constraint values outright (at most zero where one holds), instead
    /// of the study's constraints evaluated on its reports: Optuna's `constraints_func`.
    pub fn set_constraints(&self, values: Vec<f64>) {
        let values = values
            .into_iter()
            .map(|c| {
                if c.is_nan() {
                    crate::constraint::MISSING
                } else {
                    c
                }
            })
            .collect();
        self.last_metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .given = Some(values);
    }

    /// The constraint values the trial ends with when it completes with `value`: those given
    /// outright, else `constraints` read from its last reports (the objective's own name,
    /// `metric`, reads `value`).
    fn constraint_values(
        &self,
        constraints: &[Constraint],
        metric: Option<&str>,
        value: f64,
    ) -> Vec<f64> {
        let last = self.last_metrics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(given) = &last.given {
            return given.clone();
        }
        crate::constraint::evaluate(constraints, |key| {
            if Some(key) == metric {
                Some(value)
            } else {
                last.metrics.get(key).map(|&(_, v)| v)
            }
        })
    }

    /// [`report`](Self::report) and [`report_metrics`](Self::report_metrics) at one step, in
    /// one write.
    pub fn report_all(
        &mut self,
        step: u64,
        value: f64,
        metrics: &[(String, f64)],
    ) -> Result<(), TrialError> {
        self.storage.report_all(self.id, step, value, metrics)?;
        self.note_metrics(step, metrics);
        match self.reported.binary_search_by_key(&step, |&(s, _)| s) {
            Ok(i) => self.reported[i].1 = value,
            Err(i) => self.reported.insert(i, (step, value)),
        }
        Ok(())
    }

    /// Applies the parameter changes asked of this trial since the last call (panda mode), as
    /// taking effect at `step`: `params` and later suggestions of those names give the new
    /// values. Returns the changes applied, oldest first.
    pub fn apply_param_changes(
        &mut self,
        step: u64,
    ) -> Result<Vec<crate::storage::ParamChange>, TrialError> {
        let pending = self.storage.pending_param_changes(self.id)?;
        for change in &pending {
            self.storage.apply_param_change(self.id, change.id, step)?;
            if let Some((_, value)) = self.params.get_mut(&change.name) {
                *value = change.new.clone();
            }
        }
        Ok(pending)
    }

    /// Takes the pause, resume and stop requests asked of this trial since the last call
    /// (`caviar pause|resume|stop`), in order, and marks them done after the report of `step`.
    /// Returns where they leave the trial; a front end holds still while `paused`
    /// (calling this again to see a resume) and ends the trial with
    /// [`stopped_outcome`](Self::stopped_outcome) once `stop`.
    pub fn take_controls(&self, step: Option<u64>) -> Result<Steer, TrialError> {
        use std::sync::atomic::Ordering::SeqCst;
        for request in self.storage.controls(self.id)? {
            if request.applied_ms.is_some() {
                continue;
            }
            match request.action {
                ControlAction::Pause => self.steering.paused.store(true, SeqCst),
                ControlAction::Resume => self.steering.paused.store(false, SeqCst),
                ControlAction::Stop => self.steering.stop.store(true, SeqCst),
            }
            self.storage.apply_control(self.id, request.id, step)?;
        }
        Ok(self.steer())
    }

    /// Where the requests taken so far leave this trial.
    pub fn steer(&self) -> Steer {
        use std::sync::atomic::Ordering::SeqCst;
        Steer {
            paused: self.steering.paused.load(SeqCst),
            stop: self.steering.stop.load(SeqCst),
        }
    }

    /// The outcome of a trial its user stopped: complete with the last value it reported
    /// (the user decided it is done), or failed when it reported none.
    pub fn stopped_outcome(&self) -> Outcome {
        match self.reported.iter().max_by_key(|r| r.0) {
            Some(&(_, value)) => Outcome::Complete(value),
            None => Outcome::Failed(
                "stopped on request (caviar stop) before it reported any value".into(),
            ),
        }
    }

    /// What this trial has reported so far, by step.
    pub fn reported(&self) -> &[(u64, f64)] {
        &self.reported
    }

    /// Whether the study's pruner says this trial should stop now, judged on what it has
    /// reported so far against the study's other trials. Call it after each
    /// [`report`](Self::report); when it says yes, return [`TrialError::Pruned`] (the trial is
    /// recorded as pruned with the last value it reported).
    pub fn should_prune(&self) -> Result<bool, TrialError> {
        if self.reported.is_empty() || !self.pruner.is_active() {
            return Ok(false);
        }
        let finished = self.history.refresh()?;
        let running: Vec<Arc<FrozenTrial>> = self
            .storage
            .running_with_params(self.study)?
            .into_iter()
            .filter(|t| t.id != self.id)
            .map(Arc::new)
            .collect();
        let me = FrozenTrial {
            id: self.id,
            number: self.number,
            state: TrialState::Running,
            params: self.params(),
            distributions: self
                .params
                .iter()
                .map(|(k, (d, _))| (k.clone(), d.clone()))
                .collect(),
            value: None,
            intermediate: self.reported.clone(),
            error: None,
            worker: None,
            started_ms: None,
            finished_ms: None,
            constraints: Vec::new(),
            values: Vec::new(),
        };
        Ok(self.pruner.prune(&PruneContext {
            direction: self.direction,
            trial: &me,
            finished: &finished,
            running: &running,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::GridSampler;

    fn study(name: &str) -> Study {
        Study::builder(name)
            .sampler(RandomSampler::new(1))
            .build()
            .unwrap()
    }

    #[test]
    fn failures_panics_and_nan_are_recorded_and_the_study_goes_on() {
        let s = study("s");
        s.optimize(4, |t| match t.number() {
            0 => Err(TrialError::fail("boom")),
            1 => panic!("kaput"),
            2 => Ok(f64::NAN),
            _ => Ok(1.0),
        })
        .unwrap();
        let trials = s.trials().unwrap();
        let states: Vec<_> = trials.iter().map(|t| t.state).collect();
        use TrialState::*;
        assert_eq!(states, vec![Failed, Failed, Failed, Complete]);
        assert_eq!(trials[0].error.as_deref(), Some("boom"));
        assert!(trials[1].error.as_ref().unwrap().contains("kaput"));
        assert!(trials[2].error.as_ref().unwrap().contains("NaN"));
    }

    #[test]
    fn same_seed_same_trials() {
        let run = || {
            let s = study("s");
            s.optimize(20, |t| {
                let x = t.suggest_float("x", 0.0, 1.0, Scale::Linear)?;
                let k = t.suggest_int("k", 1, 100, Scale::Log)?;
                let c = t.suggest_categorical("c", &["a", "b"])?;
                Ok(x + k as f64 + c.len() as f64)
            })
            .unwrap();
            s.trials()
                .unwrap()
                .into_iter()
                .map(|t| t.params)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn resuggesting_returns_the_same_value_and_conflicts_fail() {
        let s = study("s");
        let mut t = s.ask().unwrap();
        let a = t.suggest_float("x", 0.0, 1.0, Scale::Linear).unwrap();
        assert_eq!(a, t.suggest_float("x", 0.0, 1.0, Scale::Linear).unwrap());
        let err = t.suggest_float("x", 0.0, 2.0, Scale::Linear).unwrap_err();
        assert!(err.to_string().contains("use one definition"));
        let bad = t.suggest_float("lr", 0.0, 1.0, Scale::Log).unwrap_err();
        assert!(bad.to_string().contains("parameter `lr`"));
    }

    #[test]
    fn grid_study_stops_when_exhausted() {
        let grid = GridSampler::new(
            vec![("k".into(), vec![ParamValue::Int(1), ParamValue::Int(2)])],
            0,
        )
        .unwrap();
        let s = Study::builder("g").sampler(grid).build().unwrap();
        s.optimize(10, |t| Ok(t.suggest_int("k", 1, 2, Scale::Linear)? as f64))
            .unwrap();
        assert_eq!(s.trials().unwrap().len(), 2);
        assert!(matches!(
            s.ask(),
            Err(StudyError::Sampler(SamplerError::Exhausted(2)))
        ));
    }

    #[test]
    fn reopening_with_another_direction_is_refused() {
        let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
        Study::builder("s")
            .storage(storage.clone())
            .build()
            .unwrap();
        let err = Study::builder("s")
            .storage(storage)
            .direction(Direction::Maximize)
            .load_if_exists(true)
            .build()
            .err()
            .unwrap();
        assert!(err.to_string().contains("direction"));
    }

    #[test]
    fn workers_opening_a_new_study_at_once_all_join_it() {
        let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let storage = storage.clone();
                std::thread::spawn(move || {
                    Study::builder("shared")
                        .storage(storage)
                        .load_if_exists(true)
                        .build()
                        .map(|s| s.record().id)
                })
            })
            .collect();
        let ids: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]));
    }

    #[test]
    fn pruned_trials_keep_their_last_value_and_are_not_best() {
        let s = Study::builder("p")
            .sampler(RandomSampler::new(3))
            .pruner(crate::pruner::MedianPruner::new().startup_trials(2))
            .build()
            .unwrap();
        // Trials 0 and 1 complete with good curves; trial 2 is worse at step 1 and stops there.
        s.optimize(3, |t| {
            let level = [1.0, 2.0, 10.0][t.number() as usize];
            for step in 1..=5 {
                t.report(step, level - step as f64 * 0.01)?;
                if t.should_prune()? {
                    return Err(TrialError::Pruned);
                }
            }
            Ok(level - 0.05)
        })
        .unwrap();
        let trials = s.trials().unwrap();
        assert_eq!(trials[2].state, TrialState::Pruned);
        assert_eq!(
            trials[2].intermediate.len(),
            1,
            "stopped at its first report"
        );
        assert_eq!(
            trials[2].value,
            Some(10.0 - 0.01),
            "the last value it reported"
        );
        assert_eq!(s.best_trial().unwrap().unwrap().number, 0);
        // Without a pruner nothing is ever pruned.
        let plain = study("q");
        let mut t = plain.ask().unwrap();
        t.report(1, f64::NAN).unwrap();
        assert!(!t.should_prune().unwrap());
    }

    #[test]
    fn a_lost_trial_is_retried_with_its_parameters_up_to_the_limit() {
        let s = study("r");
        let mut t = s.ask().unwrap();
        let lr = t.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
        let lost = |_: &RunningTrial| Some("worker died".to_string());
        assert_eq!(s.fail_orphans(lost, 1).unwrap(), vec![0]);
        drop(t);
        let trials = s.trials().unwrap();
        assert_eq!(trials[1].state, TrialState::Waiting);
        assert!(trials[0].error.as_deref().unwrap().contains("retry 1 of 1"));
        // The next ask takes the retry, whatever the limit, with the same parameters.
        let mut retry = s.ask_within(Some(1)).unwrap().unwrap();
        assert_eq!(retry.number(), 1);
        assert_eq!(
            retry.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap(),
            lr
        );
        // A second loss exhausts the retries.
        assert_eq!(s.fail_orphans(lost, 1).unwrap(), vec![1]);
        drop(retry);
        assert_eq!(s.trials().unwrap().len(), 2);
        // The retry took the lost trial's place in the limit; the failed retry counts.
        assert!(s.ask_within(Some(1)).unwrap().is_none());
        assert_eq!(s.ask_within(Some(2)).unwrap().unwrap().number(), 2);
        assert!(s.ask_within(Some(2)).unwrap().is_none());
    }

    #[test]
    fn enqueued_points_come_first_and_bad_ones_are_refused() {
        let s = study("e");
        let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        let err = s
            .enqueue(&[("lr".into(), lr.clone(), ParamValue::Float(2.0))])
            .unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(s.trials().unwrap().is_empty());
        let first = s
            .enqueue(&[("lr".into(), lr.clone(), ParamValue::Float(0.5))])
            .unwrap();
        let second = s
            .enqueue(&[("lr".into(), lr, ParamValue::Float(0.25))])
            .unwrap();
        assert_eq!((first, second), (0, 1));
        // Queued points count toward the total, and run in the order they were queued.
        let mut a = s.ask_within(Some(2)).unwrap().unwrap();
        let mut b = s.ask_within(Some(2)).unwrap().unwrap();
        assert!(s.ask_within(Some(2)).unwrap().is_none());
        assert_eq!(a.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap(), 0.5);
        assert_eq!(b.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap(), 0.25);
        // A parameter not queued is sampled as usual.
        let x = a.suggest_float("x", 0.0, 1.0, Scale::Linear).unwrap();
        assert!((0.0..=1.0).contains(&x));
    }

    #[test]
    fn orphans_are_failed_once() {
        let s = study("s");
        let t = s.ask().unwrap();
        let failed = s.fail_orphans(|_| Some("worker died".into()), 0).unwrap();
        assert_eq!(failed, vec![0]);
        assert!(s.tell(t, Outcome::Complete(1.0)).is_err());
        assert_eq!(s.trials().unwrap()[0].error.as_deref(), Some("worker died"));
    }
}
