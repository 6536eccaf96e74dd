//! The storage contract every backend fulfils, and an in-memory implementation.
//!
//! Backends are synchronous and shareable across threads. Every state change of a trial is
//! conditional on its current state, so two workers can never both finish the same trial, and
//! trial numbers are assigned inside the backend so they stay unique under concurrency.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::space::{Distribution, ParamValue, SearchSpace};
use crate::trial::{now_ms, Direction, FrozenTrial, StudyId, TrialId, TrialState};

/// Errors from a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A study with this name already exists.
    #[error("study `{0}` already exists")]
    StudyExists(String),
    /// No such study.
    #[error("no study named `{0}`")]
    NoSuchStudy(String),
    /// No such trial.
    #[error("no trial with id {0}")]
    NoSuchTrial(i64),
    /// The trial is not running, so it cannot be changed (another worker or a recovery already
    /// finished it).
    #[error("trial {number} is {state}, not running; it cannot be changed")]
    NotRunning {
        /// Trial number.
        number: u64,
        /// Its current state.
        state: TrialState,
    },
    /// A parameter was set twice with different values.
    #[error("parameter `{0}` is already set on this trial")]
    ParamExists(String),
    /// The file or database is not a caviar store, or is newer than this program.
    #[error("incompatible storage: {0}")]
    Incompatible(String),
    /// Anything the backend itself reports (I/O, SQL, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
    /// The connection to a database server broke; the operation may be tried again.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
}

/// What is needed to create a study.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewStudy {
    /// Unique name.
    pub name: String,
    /// Optimisation direction.
    pub direction: Direction,
    /// Name of the reported value that is the objective, if any.
    pub metric: Option<String>,
    /// The study's definition (the study file as JSON) so that workers and resumes can rebuild it.
    pub spec: Option<serde_json::Value>,
    /// The study this one refines (a narrowed or re-tested copy), by name.
    #[serde(default)]
    pub parent: Option<String>,
}

/// A stored study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    /// Storage identifier.
    pub id: StudyId,
    /// Unique name.
    pub name: String,
    /// Optimisation direction.
    pub direction: Direction,
    /// Name of the reported value that is the objective.
    pub metric: Option<String>,
    /// The study's definition.
    pub spec: Option<serde_json::Value>,
    /// The study this one refines, by name.
    #[serde(default)]
    pub parent: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

impl StudyRecord {
    /// The search space stored with the study by its study file, if it has one (studies made
    /// through the library define parameters as they run).
    pub fn space(&self) -> Option<SearchSpace> {
        serde_json::from_value(self.spec.as_ref()?.get("space")?.clone()).ok()
    }

    /// One direction per objective: those stored with a study of several, else its direction.
    pub fn directions(&self) -> Vec<Direction> {
        self.spec
            .as_ref()
            .and_then(|s| s.get("directions"))
            .and_then(|d| serde_json::from_value::<Vec<Direction>>(d.clone()).ok())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| vec![self.direction])
    }

    /// The reported names of a study's several objectives (empty when it has one, or its
    /// objectives are not named).
    pub fn metrics(&self) -> Vec<String> {
        self.spec
            .as_ref()
            .and_then(|s| s.get("metrics"))
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default()
    }

    /// A name per objective, for tables: [`Self::metrics`], or `objective_1`, `objective_2`,
    /// ... when the objectives are not named; the metric (or `value`) with one objective.
    pub fn objective_names(&self) -> Vec<String> {
        let n = self.directions().len();
        if n == 1 {
            return vec![self.metric.clone().unwrap_or_else(|| "value".into())];
        }
        let names = self.metrics();
        if names.len() == n {
            names
        } else {
            (1..=n).map(|i| format!("objective_{i}")).collect()
        }
    }

    /// The constraints stored with the study (empty when it has none).
    pub fn constraints(&self) -> Vec<crate::constraint::Constraint> {
        // Checked when the study was made; unreadable ones are left out here.
        crate::constraint::from_spec(self.spec.as_ref())
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// Trial counts of a study by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialCounts {
    /// Waiting trials.
    pub waiting: u64,
    /// Running trials.
    pub running: u64,
    /// Complete trials.
    pub complete: u64,
    /// Pruned trials.
    pub pruned: u64,
    /// Failed trials.
    pub failed: u64,
}

impl TrialCounts {
    /// All trials.
    pub fn total(&self) -> u64 {
        self.waiting + self.running + self.complete + self.pruned + self.failed
    }

    /// Counts one more trial in `state`.
    pub fn add(&mut self, state: TrialState) {
        match state {
            TrialState::Waiting => self.waiting += 1,
            TrialState::Running => self.running += 1,
            TrialState::Complete => self.complete += 1,
            TrialState::Pruned => self.pruned += 1,
            TrialState::Failed => self.failed += 1,
        }
    }
}

/// A study with its counts, for listings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    /// The study.
    pub study: StudyRecord,
    /// Its trials by state.
    pub counts: TrialCounts,
    /// Best objective value among complete trials.
    pub best_value: Option<f64>,
}

/// A freshly created running trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewTrial {
    /// Storage identifier.
    pub id: TrialId,
    /// Number within the study.
    pub number: u64,
    /// Claimed from the waiting queue: its parameters are already set.
    pub from_queue: bool,
}

/// A parameter of a queued trial: name, distribution, value.
pub type QueuedParam = (String, Distribution, ParamValue);

/// A running trial, as seen by orphan recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningTrial {
    /// Storage identifier.
    pub id: TrialId,
    /// Number within the study.
    pub number: u64,
    /// Who runs it.
    pub worker: Option<String>,
    /// Milliseconds since its last sign of life (start, report or heartbeat), measured by one
    /// clock: the database server's where there is one, so workers' clocks need not agree.
    pub silent_ms: i64,
    /// 0 for a first try; n for the n-th retry of lost parameters.
    pub attempt: u32,
}

/// The storage contract. See the module docs for the guarantees.
pub trait Storage: Send + Sync {
    /// Creates a study; fails with [`StorageError::StudyExists`] if the name is taken.
    fn create_study(&self, new: &NewStudy) -> Result<StudyRecord, StorageError>;
    /// Looks a study up by name.
    fn study(&self, name: &str) -> Result<Option<StudyRecord>, StorageError>;
    /// All studies with their counts, oldest first.
    fn studies(&self) -> Result<Vec<StudySummary>, StorageError>;
    /// Starts a trial: claims the oldest waiting one (enqueued parameters, a retry) if any,
    /// whatever the limit, since it is counted already; otherwise creates a running trial with
    /// the next number, unless the study already holds `limit` trials, and then returns `None`.
    /// Trials of any state count, except lost ones replaced by a retry (their retry counts in
    /// their place), so `limit` trials end complete when every loss is retried. Atomic: each
    /// waiting trial goes to one worker, numbers stay unique.
    fn create_trial(
        &self,
        study: StudyId,
        worker: &str,
        limit: Option<u64>,
    ) -> Result<Option<NewTrial>, StorageError>;
    /// Adds a waiting trial with these parameters (a retry, or a point to try first), with the
    /// next number; `attempt` counts retries.
    fn enqueue_trial(
        &self,
        study: StudyId,
        params: &[QueuedParam],
        attempt: u32,
    ) -> Result<NewTrial, StorageError> {
        self.enqueue_trial_with_attrs(study, params, attempt, &[])
    }
    /// [`Storage::enqueue_trial`] with user attributes of the new trial, written with it (a
    /// worker that takes it at once sees them: a fork's parent, a retry's lost trial).
    fn enqueue_trial_with_attrs(
        &self,
        study: StudyId,
        params: &[QueuedParam],
        attempt: u32,
        attrs: &[(String, serde_json::Value)],
    ) -> Result<NewTrial, StorageError>;
    /// Records several suggested parameters of a running trial. Backends with transactions
    /// write them all or none, in one transaction; the default records them one by one.
    fn set_params(
        &self,
        trial: TrialId,
        params: &[(String, Distribution, ParamValue)],
    ) -> Result<(), StorageError> {
        for (name, dist, value) in params {
            self.set_param(trial, name, dist, value)?;
        }
        Ok(())
    }
    /// Records a suggested parameter of a running trial.
    fn set_param(
        &self,
        trial: TrialId,
        name: &str,
        dist: &Distribution,
        value: &ParamValue,
    ) -> Result<(), StorageError>;
    /// Replaces a parameter already recorded on a running trial: a value queued without its
    /// distribution (a pinned value) gets the distribution it was suggested from.
    fn replace_param(
        &self,
        trial: TrialId,
        name: &str,
        dist: &Distribution,
        value: &ParamValue,
    ) -> Result<(), StorageError>;
    /// Records an intermediate value of a running trial (a later report at the same step
    /// replaces the earlier one). Also counts as a heartbeat.
    fn report(&self, trial: TrialId, step: u64, value: f64) -> Result<(), StorageError>;
    /// Records the other values a running trial reported at `step` (every key a command
    /// prints besides the objective: training loss, learning rate, throughput), each its own
    /// series; a value of the same name and step is replaced.
    fn report_metrics(
        &self,
        trial: TrialId,
        step: u64,
        metrics: &[(String, f64)],
    ) -> Result<(), StorageError>;
    /// Every metric series of the study's trials (those that have some), by trial and name,
    /// in step order.
    fn trial_metrics(&self, study: StudyId) -> Result<TrialMetrics, StorageError>;
    /// The metric series of some of the study's trials (a page's few curves), without reading
    /// the others'. The default filters [`Storage::trial_metrics`].
    fn trial_metrics_of(
        &self,
        study: StudyId,
        trials: &[TrialId],
    ) -> Result<TrialMetrics, StorageError> {
        let mut all = self.trial_metrics(study)?;
        all.retain(|id, _| trials.contains(id));
        Ok(all)
    }
    /// [`Storage::report`] and [`Storage::report_metrics`] at one step, in one write where the
    /// backend has transactions.
    fn report_all(
        &self,
        trial: TrialId,
        step: u64,
        value: f64,
        metrics: &[(String, f64)],
    ) -> Result<(), StorageError> {
        self.report(trial, step, value)?;
        if metrics.is_empty() {
            return Ok(());
        }
        self.report_metrics(trial, step, metrics)
    }
    /// Marks a running trial alive now.
    fn heartbeat(&self, trial: TrialId) -> Result<(), StorageError>;
    /// Records the study's constraints evaluated for a running trial, just before it ends
    /// (see [`FrozenTrial::constraints`]).
    fn set_constraints(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError>;
    /// Records every objective's value of a running trial of a study with several, just
    /// before it ends (see [`FrozenTrial::values`]).
    fn set_values(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError>;
    /// Ends a running trial. Fails with [`StorageError::NotRunning`] if it already ended.
    fn finish_trial(
        &self,
        trial: TrialId,
        state: TrialState,
        value: Option<f64>,
        error: Option<&str>,
    ) -> Result<(), StorageError>;
    /// One trial.
    fn trial(&self, trial: TrialId) -> Result<FrozenTrial, StorageError>;
    /// All trials of a study, by number.
    fn trials(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError>;
    /// The study's complete trials with their parameters and values but without their curves
    /// (`intermediate` empty), by number: what importance and other analyses of the finished
    /// trials read, at a fraction of the cost of [`Storage::trials`].
    fn trials_for_analysis(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        let mut trials = self.trials(study)?;
        trials.retain(|t| t.state == TrialState::Complete);
        for t in &mut trials {
            t.intermediate = Vec::new();
        }
        Ok(trials)
    }
    /// The study's trials numbered `from` up to (not including) `to`, by number: a page, for
    /// readers that walk a large study without holding it all. Backends answer from their
    /// number index; the default filters [`Storage::trials`].
    fn trials_numbered(
        &self,
        study: StudyId,
        from: u64,
        to: u64,
    ) -> Result<Vec<FrozenTrial>, StorageError> {
        let mut trials = self.trials(study)?;
        trials.retain(|t| (from..to).contains(&t.number));
        Ok(trials)
    }
    /// Trial counts of a study.
    fn counts(&self, study: StudyId) -> Result<TrialCounts, StorageError>;
    /// The study's running trials.
    fn running_trials(&self, study: StudyId) -> Result<Vec<RunningTrial>, StorageError>;
    /// The trials that finished after the study's first `after` finishes, in the order they
    /// finished. Finishes are numbered from 1 without gaps, so a reader that has seen `k` of them
    /// asks for `finished_since(study, k)` and gets exactly the new ones.
    fn finished_since(&self, study: StudyId, after: u64) -> Result<Vec<FrozenTrial>, StorageError>;
    /// Running trials with their parameters so far (what a constant liar needs).
    fn running_with_params(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError>;
    /// Stores `value` under `key` for the study unless the key already holds a value, and
    /// returns what the key holds afterwards. Atomic: when workers race, all get the first
    /// value written. Samplers keep shared decisions here (a zoom round's box).
    fn study_attr_insert(
        &self,
        study: StudyId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, StorageError>;
    /// Every attribute of the study, by key.
    fn study_attrs(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError>;
    /// Stores what a trial's program printed (its last lines), replacing what was stored.
    fn set_trial_log(&self, trial: TrialId, text: &str) -> Result<(), StorageError>;
    /// What a trial's program printed, if anything was stored.
    fn trial_log(&self, trial: TrialId) -> Result<Option<String>, StorageError>;
    /// Sets a user attribute of a study or trial (Optuna's `set_user_attr`): any JSON value,
    /// replacing the key's earlier one.
    fn set_user_attr(
        &self,
        owner: AttrOwner,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StorageError>;
    /// The user attributes of a study or trial, by key.
    fn user_attrs(
        &self,
        owner: AttrOwner,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError>;
    /// The user attributes of every trial of a study that has some, by trial.
    fn trial_user_attrs(&self, study: StudyId) -> Result<TrialUserAttrs, StorageError>;
    /// Deletes a study with its trials and everything recorded of them. A study that another
    /// names as its parent is kept (delete the child first).
    fn delete_study(&self, study: StudyId) -> Result<(), StorageError>;
    /// How many times each trial's parameters had been queued again after lost runs, for the
    /// trials where it is not 0.
    fn trial_attempts(&self, study: StudyId) -> Result<BTreeMap<TrialId, u32>, StorageError>;
    /// Creates a study from a document (another storage's export) with every trial and
    /// everything recorded of them, times included, in one write: all of it or nothing.
    /// [`StorageError::StudyExists`] when the name is taken; [`StorageError::NoSuchStudy`]
    /// when its parent is not here.
    fn import_study(
        &self,
        doc: &crate::document::StudyDocument,
    ) -> Result<StudyRecord, StorageError>;
    /// Renames a study (its children keep it as their parent) and, when given, replaces its
    /// stored definition in the same write (a study file's text names the study).
    /// [`StorageError::StudyExists`] when the name is taken.
    fn rename_study(
        &self,
        study: StudyId,
        name: &str,
        spec: Option<&serde_json::Value>,
    ) -> Result<(), StorageError>;
    /// Asks a running trial to change a parameter it has (panda mode): recorded now, in
    /// effect when the trial applies it. Returns the change's id (ids only grow).
    fn ask_param_change(
        &self,
        trial: TrialId,
        change: &NewParamChange,
    ) -> Result<i64, StorageError>;
    /// Changes asked of a trial and not yet applied, oldest first.
    fn pending_param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError>;
    /// The trial applies change `id` at `step`: its parameter takes the new value, and the
    /// record gets the old one and the step.
    fn apply_param_change(&self, trial: TrialId, id: i64, step: u64) -> Result<(), StorageError>;
    /// Every change asked of a trial, applied or not, oldest first.
    fn param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError>;
    /// The changes of every trial of a study that has some, by trial.
    fn study_param_changes(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<TrialId, Vec<ParamChange>>, StorageError>;
    /// Asks a running trial to pause, resume or stop: recorded now, done when the trial's
    /// front end takes it. Returns the request's id (ids only grow).
    fn ask_control(&self, trial: TrialId, control: &NewControl) -> Result<i64, StorageError>;
    /// Every pause, resume and stop asked of a trial, done or not, oldest first.
    fn controls(&self, trial: TrialId) -> Result<Vec<ControlRecord>, StorageError>;
    /// The trial's front end did request `id` (after the report of `step`, when it had one).
    fn apply_control(&self, trial: TrialId, id: i64, step: Option<u64>)
        -> Result<(), StorageError>;
}

/// What a running trial can be asked to do besides changing parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlAction {
    /// Hold still (a command's processes stopped, the built-in trainer waiting between
    /// batches); the heartbeat goes on, so nobody presumes it dead.
    Pause,
    /// Go on after a pause.
    Resume,
    /// End now as complete with the last reported value: the user decided it is done.
    Stop,
}

impl ControlAction {
    /// The word stored and shown: `pause`, `resume`, `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlAction::Pause => "pause",
            ControlAction::Resume => "resume",
            ControlAction::Stop => "stop",
        }
    }

    /// Reads a stored word back.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pause" => Some(ControlAction::Pause),
            "resume" => Some(ControlAction::Resume),
            "stop" => Some(ControlAction::Stop),
            _ => None,
        }
    }
}

/// A pause, resume or stop asked of a running trial.
#[derive(Clone, Debug, PartialEq)]
pub struct NewControl {
    /// What to do.
    pub action: ControlAction,
    /// Who asked (`user@host`, or a scheduler's name).
    pub who: String,
    /// Why, in the asker's words.
    pub note: Option<String>,
}

/// A recorded pause, resume or stop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ControlRecord {
    /// Its id (ids only grow, so they order requests).
    pub id: i64,
    /// What was asked.
    pub action: ControlAction,
    /// Who asked.
    pub who: String,
    /// Why.
    pub note: Option<String>,
    /// When it was asked, ms since the Unix epoch.
    pub asked_ms: i64,
    /// When the trial did it.
    pub applied_ms: Option<i64>,
    /// The step of the trial's last report when it did it.
    pub applied_step: Option<u64>,
}

/// Whether a trial is paused by its control record: its last done request is a pause.
///
/// ```
/// use caviar_core::storage::{is_paused, ControlAction, ControlRecord};
/// let done = |id, action| ControlRecord {
///     id, action, who: "me".into(), note: None, asked_ms: 0, applied_ms: Some(1), applied_step: None,
/// };
/// assert!(is_paused(&[done(1, ControlAction::Pause)]));
/// assert!(!is_paused(&[done(1, ControlAction::Pause), done(2, ControlAction::Resume)]));
/// ```
pub fn is_paused(controls: &[ControlRecord]) -> bool {
    controls
        .iter()
        .rev()
        .find(|c| c.applied_ms.is_some() && c.action != ControlAction::Stop)
        .is_some_and(|c| c.action == ControlAction::Pause)
}

/// A parameter change asked of a running trial.
#[derive(Clone, Debug, PartialEq)]
pub struct NewParamChange {
    /// The parameter.
    pub name: String,
    /// Its new value.
    pub value: ParamValue,
    /// Who asked (`user@host`, or a scheduler's name).
    pub who: String,
    /// Why, in the asker's words.
    pub note: Option<String>,
    /// The value lies outside the parameter's distribution and was asked for anyway.
    pub forced: bool,
}

/// A recorded parameter change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamChange {
    /// Its id (ids only grow, so they order changes).
    pub id: i64,
    /// The parameter.
    pub name: String,
    /// The value before it took effect (known once applied).
    pub old: Option<ParamValue>,
    /// The value asked for.
    pub new: ParamValue,
    /// Who asked.
    pub who: String,
    /// Why.
    pub note: Option<String>,
    /// Asked outside the parameter's distribution.
    pub forced: bool,
    /// When it was asked, ms since the Unix epoch.
    pub asked_ms: i64,
    /// The step at which the trial applied it.
    pub applied_step: Option<u64>,
    /// When the trial applied it.
    pub applied_ms: Option<i64>,
}

/// Whose user attribute: a study's or a trial's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrOwner {
    /// The study's own.
    Study(StudyId),
    /// One trial's.
    Trial(TrialId),
}

/// User attributes of the trials of a study, by trial.
pub type TrialUserAttrs = BTreeMap<TrialId, BTreeMap<String, serde_json::Value>>;

/// Metric series of the trials of a study: by trial, by name, `(step, value)` in step order.
pub type TrialMetrics = BTreeMap<TrialId, BTreeMap<String, Vec<(u64, f64)>>>;

/// Metric points of one step as the SQL backends store them: a JSON object of name to value,
/// NaN (which JSON lacks) as the string `"NaN"`.
pub fn metrics_json(metrics: &[(String, f64)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = metrics
        .iter()
        .map(|(name, v)| {
            let value = if v.is_finite() {
                serde_json::json!(v)
            } else if v.is_nan() {
                serde_json::json!("NaN")
            } else if *v > 0.0 {
                serde_json::json!("inf")
            } else {
                serde_json::json!("-inf")
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Adds one stored step (see [`metrics_json`]) to `out`.
pub fn add_metrics_row(
    out: &mut TrialMetrics,
    trial: TrialId,
    step: u64,
    text: &str,
) -> Result<(), StorageError> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| StorageError::Backend(format!("trial metrics at step {step}: {e}")))?;
    let series = out.entry(trial).or_default();
    for (name, value) in object {
        let v = match &value {
            serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
            serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
            _ => f64::NAN,
        };
        let points = series.entry(name).or_default();
        // One step written in two rows (with the objective, and alone): one point, the later.
        match points.last_mut() {
            Some(last) if last.0 == step => last.1 = v,
            _ => points.push((step, v)),
        }
    }
    Ok(())
}

/// A document's metric series regrouped by step, for writing one row per step.
pub fn metrics_by_step(
    series: &BTreeMap<String, Vec<(u64, Option<f64>)>>,
) -> BTreeMap<u64, Vec<(String, f64)>> {
    let mut steps: BTreeMap<u64, Vec<(String, f64)>> = BTreeMap::new();
    for (name, points) in series {
        for &(step, v) in points {
            steps
                .entry(step)
                .or_default()
                .push((name.clone(), v.unwrap_or(f64::NAN)));
        }
    }
    steps
}

/// In-memory storage: fast, shared between threads, gone with the process.
///
/// ```
/// use caviar_core::storage::{InMemoryStorage, NewStudy, Storage};
/// use caviar_core::trial::{Direction, TrialState};
/// let store = InMemoryStorage::new();
/// let study = store.create_study(&NewStudy {
///     name: "s".into(), direction: Direction::Minimize, ..Default::default()
/// }).unwrap();
/// let t = store.create_trial(study.id, "me", Some(1)).unwrap().unwrap();
/// assert!(store.create_trial(study.id, "me", Some(1)).unwrap().is_none());
/// store.finish_trial(t.id, TrialState::Complete, Some(1.0), None).unwrap();
/// assert_eq!(store.counts(study.id).unwrap().complete, 1);
/// ```
#[derive(Default)]
pub struct InMemoryStorage {
    inner: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    studies: Vec<StudyRecord>,
    trials: Vec<StoredTrial>,
    by_study: BTreeMap<i64, Vec<usize>>,
    /// Per study, retries queued (trials with `attempt > 0`).
    retried: BTreeMap<i64, u64>,
    /// Per study, trial indices in the order they finished.
    finish_order: BTreeMap<i64, Vec<usize>>,
    attrs: BTreeMap<i64, BTreeMap<String, serde_json::Value>>,
    logs: BTreeMap<i64, String>,
    /// Study ids are never reused, even after a study is deleted.
    next_study: i64,
    study_user_attrs: BTreeMap<i64, BTreeMap<String, serde_json::Value>>,
    trial_user_attrs: BTreeMap<i64, BTreeMap<String, serde_json::Value>>,
    /// Parameter changes by trial, oldest first.
    changes: BTreeMap<i64, Vec<ParamChange>>,
    /// Pause, resume and stop requests by trial, oldest first.
    controls: BTreeMap<i64, Vec<ControlRecord>>,
    next_change: i64,
    /// Metric series by trial, by name, by step.
    metrics: BTreeMap<i64, BTreeMap<String, BTreeMap<u64, f64>>>,
}

struct StoredTrial {
    study: StudyId,
    heartbeat_ms: i64,
    attempt: u32,
    trial: FrozenTrial,
}

impl InMemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A panic while holding the lock leaves the data consistent (every write is one step).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Memory {
    fn running_mut(&mut self, trial: TrialId) -> Result<&mut StoredTrial, StorageError> {
        let stored = self
            .trials
            .get_mut(trial.0 as usize)
            .ok_or(StorageError::NoSuchTrial(trial.0))?;
        if stored.trial.state != TrialState::Running {
            return Err(StorageError::NotRunning {
                number: stored.trial.number,
                state: stored.trial.state,
            });
        }
        Ok(stored)
    }

    fn study_trials(&self, study: StudyId) -> impl Iterator<Item = &StoredTrial> {
        self.by_study
            .get(&study.0)
            .into_iter()
            .flatten()
            .map(|&i| &self.trials[i])
    }
}

impl Storage for InMemoryStorage {
    fn create_study(&self, new: &NewStudy) -> Result<StudyRecord, StorageError> {
        let mut m = self.lock();
        if m.studies.iter().any(|s| s.name == new.name) {
            return Err(StorageError::StudyExists(new.name.clone()));
        }
        if let Some(parent) = &new.parent {
            if !m.studies.iter().any(|s| &s.name == parent) {
                return Err(StorageError::NoSuchStudy(parent.clone()));
            }
        }
        let id = m.next_study;
        m.next_study += 1;
        let record = StudyRecord {
            id: StudyId(id),
            name: new.name.clone(),
            direction: new.direction,
            metric: new.metric.clone(),
            spec: new.spec.clone(),
            parent: new.parent.clone(),
            created_ms: now_ms(),
        };
        m.studies.push(record.clone());
        Ok(record)
    }

    fn study(&self, name: &str) -> Result<Option<StudyRecord>, StorageError> {
        Ok(self.lock().studies.iter().find(|s| s.name == name).cloned())
    }

    fn studies(&self) -> Result<Vec<StudySummary>, StorageError> {
        let m = self.lock();
        Ok(m.studies
            .iter()
            .map(|s| {
                let mut counts = TrialCounts::default();
                let mut best: Option<f64> = None;
                for t in m.study_trials(s.id) {
                    counts.add(t.trial.state);
                    if t.trial.state == TrialState::Complete && t.trial.is_feasible() {
                        if let Some(v) = t.trial.value {
                            if best.is_none_or(|b| s.direction.better(v, b)) {
                                best = Some(v);
                            }
                        }
                    }
                }
                StudySummary {
                    study: s.clone(),
                    counts,
                    best_value: best,
                }
            })
            .collect())
    }

    fn create_trial(
        &self,
        study: StudyId,
        worker: &str,
        limit: Option<u64>,
    ) -> Result<Option<NewTrial>, StorageError> {
        let mut m = self.lock();
        if study.0 < 0 || study.0 as usize >= m.studies.len() {
            return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
        }
        let now = now_ms();
        let waiting = m.by_study.get(&study.0).and_then(|order| {
            order
                .iter()
                .copied()
                .find(|&i| m.trials[i].trial.state == TrialState::Waiting)
        });
        if let Some(i) = waiting {
            let stored = &mut m.trials[i];
            stored.heartbeat_ms = now;
            stored.trial.state = TrialState::Running;
            stored.trial.worker = Some(worker.to_string());
            stored.trial.started_ms = Some(now);
            return Ok(Some(NewTrial {
                id: stored.trial.id,
                number: stored.trial.number,
                from_queue: true,
            }));
        }
        let number = m.by_study.get(&study.0).map_or(0, |v| v.len() as u64);
        let retried = m.retried.get(&study.0).copied().unwrap_or(0);
        if limit.is_some_and(|l| number - retried >= l) {
            return Ok(None);
        }
        let id = TrialId(m.trials.len() as i64);
        m.trials.push(StoredTrial {
            study,
            heartbeat_ms: now,
            attempt: 0,
            trial: FrozenTrial {
                id,
                number,
                state: TrialState::Running,
                params: BTreeMap::new(),
                distributions: BTreeMap::new(),
                value: None,
                intermediate: Vec::new(),
                error: None,
                worker: Some(worker.to_string()),
                started_ms: Some(now),
                finished_ms: None,
                constraints: Vec::new(),
                values: Vec::new(),
            },
        });
        m.by_study.entry(study.0).or_default().push(id.0 as usize);
        Ok(Some(NewTrial {
            id,
            number,
            from_queue: false,
        }))
    }

    fn enqueue_trial_with_attrs(
        &self,
        study: StudyId,
        params: &[QueuedParam],
        attempt: u32,
        attrs: &[(String, serde_json::Value)],
    ) -> Result<NewTrial, StorageError> {
        let mut m = self.lock();
        if study.0 < 0 || study.0 as usize >= m.studies.len() {
            return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
        }
        let number = m.by_study.get(&study.0).map_or(0, |v| v.len() as u64);
        if attempt > 0 {
            *m.retried.entry(study.0).or_default() += 1;
        }
        let id = TrialId(m.trials.len() as i64);
        m.trials.push(StoredTrial {
            study,
            heartbeat_ms: 0,
            attempt,
            trial: FrozenTrial {
                id,
                number,
                state: TrialState::Waiting,
                params: params
                    .iter()
                    .map(|(n, _, v)| (n.clone(), v.clone()))
                    .collect(),
                distributions: params
                    .iter()
                    .map(|(n, d, _)| (n.clone(), d.clone()))
                    .collect(),
                value: None,
                intermediate: Vec::new(),
                error: None,
                worker: None,
                started_ms: None,
                finished_ms: None,
                constraints: Vec::new(),
                values: Vec::new(),
            },
        });
        m.by_study.entry(study.0).or_default().push(id.0 as usize);
        if !attrs.is_empty() {
            m.trial_user_attrs
                .entry(id.0)
                .or_default()
                .extend(attrs.iter().cloned());
        }
        Ok(NewTrial {
            id,
            number,
            from_queue: false,
        })
    }

    fn set_param(
        &self,
        trial: TrialId,
        name: &str,
        dist: &Distribution,
        value: &ParamValue,
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        let t = &mut m.running_mut(trial)?.trial;
        if t.params.contains_key(name) {
            return Err(StorageError::ParamExists(name.to_string()));
        }
        t.params.insert(name.to_string(), value.clone());
        t.distributions.insert(name.to_string(), dist.clone());
        Ok(())
    }

    fn replace_param(
        &self,
        trial: TrialId,
        name: &str,
        dist: &Distribution,
        value: &ParamValue,
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        let t = &mut m.running_mut(trial)?.trial;
        if !t.params.contains_key(name) {
            return Err(StorageError::Backend(format!(
                "parameter `{name}` is not recorded on this trial, so it cannot be replaced"
            )));
        }
        t.params.insert(name.to_string(), value.clone());
        t.distributions.insert(name.to_string(), dist.clone());
        Ok(())
    }

    fn set_params(
        &self,
        trial: TrialId,
        params: &[(String, Distribution, ParamValue)],
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        let t = &mut m.running_mut(trial)?.trial;
        if let Some((name, _, _)) = params.iter().find(|(n, _, _)| t.params.contains_key(n)) {
            return Err(StorageError::ParamExists(name.clone()));
        }
        for (name, dist, value) in params {
            t.params.insert(name.clone(), value.clone());
            t.distributions.insert(name.clone(), dist.clone());
        }
        Ok(())
    }

    fn report(&self, trial: TrialId, step: u64, value: f64) -> Result<(), StorageError> {
        let mut m = self.lock();
        let stored = m.running_mut(trial)?;
        stored.heartbeat_ms = now_ms();
        let iv = &mut stored.trial.intermediate;
        match iv.binary_search_by_key(&step, |(s, _)| *s) {
            Ok(i) => iv[i].1 = value,
            Err(i) => iv.insert(i, (step, value)),
        }
        Ok(())
    }

    fn report_metrics(
        &self,
        trial: TrialId,
        step: u64,
        metrics: &[(String, f64)],
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        m.running_mut(trial)?;
        let series = m.metrics.entry(trial.0).or_default();
        for (name, value) in metrics {
            series.entry(name.clone()).or_default().insert(step, *value);
        }
        Ok(())
    }

    fn trial_metrics(&self, study: StudyId) -> Result<TrialMetrics, StorageError> {
        let m = self.lock();
        Ok(m.study_trials(study)
            .filter_map(|t| {
                let series = m.metrics.get(&t.trial.id.0)?;
                Some((
                    t.trial.id,
                    series
                        .iter()
                        .map(|(name, steps)| {
                            (name.clone(), steps.iter().map(|(&s, &v)| (s, v)).collect())
                        })
                        .collect(),
                ))
            })
            .collect())
    }

    fn heartbeat(&self, trial: TrialId) -> Result<(), StorageError> {
        let mut m = self.lock();
        m.running_mut(trial)?.heartbeat_ms = now_ms();
        Ok(())
    }

    fn set_constraints(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError> {
        let mut m = self.lock();
        m.running_mut(trial)?.trial.constraints = values.to_vec();
        Ok(())
    }

    fn set_values(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError> {
        let mut m = self.lock();
        m.running_mut(trial)?.trial.values = values.to_vec();
        Ok(())
    }

    fn finish_trial(
        &self,
        trial: TrialId,
        state: TrialState,
        value: Option<f64>,
        error: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        let stored = m.running_mut(trial)?;
        let study = stored.study;
        let t = &mut stored.trial;
        t.state = state;
        t.value = value;
        t.error = error.map(str::to_string);
        t.finished_ms = Some(now_ms());
        m.finish_order
            .entry(study.0)
            .or_default()
            .push(trial.0 as usize);
        Ok(())
    }

    fn trial(&self, trial: TrialId) -> Result<FrozenTrial, StorageError> {
        let m = self.lock();
        m.trials
            .get(trial.0 as usize)
            .map(|s| s.trial.clone())
            .ok_or(StorageError::NoSuchTrial(trial.0))
    }

    fn trials(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        Ok(self
            .lock()
            .study_trials(study)
            .map(|s| s.trial.clone())
            .collect())
    }

    fn counts(&self, study: StudyId) -> Result<TrialCounts, StorageError> {
        let m = self.lock();
        let mut counts = TrialCounts::default();
        for t in m.study_trials(study) {
            counts.add(t.trial.state);
        }
        Ok(counts)
    }

    fn finished_since(&self, study: StudyId, after: u64) -> Result<Vec<FrozenTrial>, StorageError> {
        let m = self.lock();
        Ok(m.finish_order
            .get(&study.0)
            .map(|order| {
                order
                    .iter()
                    .skip(after as usize)
                    .map(|&i| m.trials[i].trial.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn running_with_params(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        Ok(self
            .lock()
            .study_trials(study)
            .filter(|s| s.trial.state == TrialState::Running)
            .map(|s| s.trial.clone())
            .collect())
    }

    fn study_attr_insert(
        &self,
        study: StudyId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, StorageError> {
        let mut m = self.lock();
        if !m.studies.iter().any(|s| s.id == study) {
            return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
        }
        Ok(m.attrs
            .entry(study.0)
            .or_default()
            .entry(key.to_string())
            .or_insert_with(|| value.clone())
            .clone())
    }

    fn study_attrs(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError> {
        Ok(self.lock().attrs.get(&study.0).cloned().unwrap_or_default())
    }

    fn running_trials(&self, study: StudyId) -> Result<Vec<RunningTrial>, StorageError> {
        let m = self.lock();
        Ok(m.study_trials(study)
            .filter(|s| s.trial.state == TrialState::Running && s.study == study)
            .map(|s| RunningTrial {
                id: s.trial.id,
                number: s.trial.number,
                worker: s.trial.worker.clone(),
                silent_ms: now_ms() - s.heartbeat_ms,
                attempt: s.attempt,
            })
            .collect())
    }

    fn set_trial_log(&self, trial: TrialId, text: &str) -> Result<(), StorageError> {
        let mut m = self.lock();
        if trial.0 < 0 || trial.0 as usize >= m.trials.len() {
            return Err(StorageError::NoSuchTrial(trial.0));
        }
        m.logs.insert(trial.0, text.to_string());
        Ok(())
    }

    fn trial_log(&self, trial: TrialId) -> Result<Option<String>, StorageError> {
        Ok(self.lock().logs.get(&trial.0).cloned())
    }

    fn set_user_attr(
        &self,
        owner: AttrOwner,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        let map = match owner {
            AttrOwner::Study(study) => {
                if !m.studies.iter().any(|s| s.id == study) {
                    return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
                }
                m.study_user_attrs.entry(study.0).or_default()
            }
            AttrOwner::Trial(trial) => {
                if m.trials.get(trial.0 as usize).is_none() {
                    return Err(StorageError::NoSuchTrial(trial.0));
                }
                m.trial_user_attrs.entry(trial.0).or_default()
            }
        };
        map.insert(key.to_string(), value.clone());
        Ok(())
    }

    fn user_attrs(
        &self,
        owner: AttrOwner,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError> {
        let m = self.lock();
        let found = match owner {
            AttrOwner::Study(study) => m.study_user_attrs.get(&study.0),
            AttrOwner::Trial(trial) => m.trial_user_attrs.get(&trial.0),
        };
        Ok(found.cloned().unwrap_or_default())
    }

    fn trial_user_attrs(&self, study: StudyId) -> Result<TrialUserAttrs, StorageError> {
        let m = self.lock();
        Ok(m.study_trials(study)
            .filter_map(|t| {
                let attrs = m.trial_user_attrs.get(&t.trial.id.0)?;
                Some((t.trial.id, attrs.clone()))
            })
            .collect())
    }

    fn ask_param_change(
        &self,
        trial: TrialId,
        change: &NewParamChange,
    ) -> Result<i64, StorageError> {
        let mut m = self.lock();
        let t = &m.running_mut(trial)?.trial;
        if !t.params.contains_key(&change.name) {
            return Err(StorageError::Backend(format!(
                "trial {} has no parameter `{}`",
                t.number, change.name
            )));
        }
        m.next_change += 1;
        let id = m.next_change;
        m.changes.entry(trial.0).or_default().push(ParamChange {
            id,
            name: change.name.clone(),
            old: None,
            new: change.value.clone(),
            who: change.who.clone(),
            note: change.note.clone(),
            forced: change.forced,
            asked_ms: now_ms(),
            applied_step: None,
            applied_ms: None,
        });
        Ok(id)
    }

    fn pending_param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError> {
        let m = self.lock();
        Ok(m.changes
            .get(&trial.0)
            .map(|all| {
                all.iter()
                    .filter(|c| c.applied_step.is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn apply_param_change(&self, trial: TrialId, id: i64, step: u64) -> Result<(), StorageError> {
        let mut m = self.lock();
        m.running_mut(trial)?;
        let (name, new) = {
            let Some(change) = m
                .changes
                .get(&trial.0)
                .and_then(|all| all.iter().find(|c| c.id == id && c.applied_step.is_none()))
            else {
                return Err(StorageError::Backend(format!(
                    "no pending change {id} of trial id {}",
                    trial.0
                )));
            };
            (change.name.clone(), change.new.clone())
        };
        let t = &mut m.running_mut(trial)?.trial;
        let old = t.params.insert(name, new);
        let change = m
            .changes
            .get_mut(&trial.0)
            .and_then(|all| all.iter_mut().find(|c| c.id == id))
            .expect("found above");
        change.old = old;
        change.applied_step = Some(step);
        change.applied_ms = Some(now_ms());
        Ok(())
    }

    fn param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError> {
        Ok(self
            .lock()
            .changes
            .get(&trial.0)
            .cloned()
            .unwrap_or_default())
    }

    fn study_param_changes(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<TrialId, Vec<ParamChange>>, StorageError> {
        let m = self.lock();
        Ok(m.study_trials(study)
            .filter_map(|t| Some((t.trial.id, m.changes.get(&t.trial.id.0)?.clone())))
            .collect())
    }

    fn ask_control(&self, trial: TrialId, control: &NewControl) -> Result<i64, StorageError> {
        let mut m = self.lock();
        m.running_mut(trial)?;
        m.next_change += 1;
        let id = m.next_change;
        m.controls.entry(trial.0).or_default().push(ControlRecord {
            id,
            action: control.action,
            who: control.who.clone(),
            note: control.note.clone(),
            asked_ms: now_ms(),
            applied_ms: None,
            applied_step: None,
        });
        Ok(id)
    }

    fn controls(&self, trial: TrialId) -> Result<Vec<ControlRecord>, StorageError> {
        Ok(self
            .lock()
            .controls
            .get(&trial.0)
            .cloned()
            .unwrap_or_default())
    }

    fn apply_control(
        &self,
        trial: TrialId,
        id: i64,
        step: Option<u64>,
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        let Some(request) = m
            .controls
            .get_mut(&trial.0)
            .and_then(|all| all.iter_mut().find(|c| c.id == id))
        else {
            return Err(StorageError::Backend(format!(
                "no control request {id} of trial id {}",
                trial.0
            )));
        };
        if request.applied_ms.is_none() {
            request.applied_ms = Some(now_ms());
            request.applied_step = step;
        }
        Ok(())
    }

    fn trial_attempts(&self, study: StudyId) -> Result<BTreeMap<TrialId, u32>, StorageError> {
        Ok(self
            .lock()
            .study_trials(study)
            .filter(|s| s.attempt > 0)
            .map(|s| (s.trial.id, s.attempt))
            .collect())
    }

    fn import_study(
        &self,
        doc: &crate::document::StudyDocument,
    ) -> Result<StudyRecord, StorageError> {
        let mut m = self.lock();
        if m.studies.iter().any(|s| s.name == doc.name) {
            return Err(StorageError::StudyExists(doc.name.clone()));
        }
        if let Some(parent) = &doc.parent {
            if !m.studies.iter().any(|s| &s.name == parent) {
                return Err(StorageError::NoSuchStudy(parent.clone()));
            }
        }
        let id = m.next_study;
        m.next_study += 1;
        let record = StudyRecord {
            id: StudyId(id),
            name: doc.name.clone(),
            direction: doc.direction,
            metric: doc.metric.clone(),
            spec: doc.spec.clone(),
            parent: doc.parent.clone(),
            created_ms: doc.created_ms,
        };
        m.studies.push(record.clone());
        if !doc.attrs.is_empty() {
            m.attrs.insert(id, doc.attrs.clone());
        }
        if !doc.user_attrs.is_empty() {
            m.study_user_attrs.insert(id, doc.user_attrs.clone());
        }
        let mut indices = Vec::with_capacity(doc.trials.len());
        for t in &doc.trials {
            let index = m.trials.len();
            let trial_id = index as i64;
            m.trials.push(StoredTrial {
                study: StudyId(id),
                heartbeat_ms: t.finished_ms.or(t.started_ms).unwrap_or_else(now_ms),
                attempt: t.attempt,
                trial: FrozenTrial {
                    id: TrialId(trial_id),
                    number: t.number,
                    state: t.state,
                    params: t.params.clone(),
                    distributions: t.distributions.clone(),
                    value: t.value,
                    intermediate: t
                        .intermediate
                        .iter()
                        .map(|&(step, v)| (step, v.unwrap_or(f64::NAN)))
                        .collect(),
                    error: t.error.clone(),
                    worker: t.worker.clone(),
                    started_ms: t.started_ms,
                    finished_ms: t.finished_ms,
                    constraints: t.constraints.clone(),
                    values: t.values.clone(),
                },
            });
            indices.push(index);
            if t.attempt > 0 {
                *m.retried.entry(id).or_default() += 1;
            }
            if !t.user_attrs.is_empty() {
                m.trial_user_attrs.insert(trial_id, t.user_attrs.clone());
            }
            if let Some(log) = &t.log {
                m.logs.insert(trial_id, log.clone());
            }
            if !t.metrics.is_empty() {
                let series = t
                    .metrics
                    .iter()
                    .map(|(name, points)| {
                        let steps = points
                            .iter()
                            .map(|&(step, v)| (step, v.unwrap_or(f64::NAN)))
                            .collect();
                        (name.clone(), steps)
                    })
                    .collect();
                m.metrics.insert(trial_id, series);
            }
            for c in &t.param_changes {
                m.next_change += 1;
                let change = ParamChange {
                    id: m.next_change,
                    name: c.name.clone(),
                    old: c.old.clone(),
                    new: c.new.clone(),
                    who: c.who.clone(),
                    note: c.note.clone(),
                    forced: c.forced,
                    asked_ms: c.asked_ms,
                    applied_step: c.applied_step,
                    applied_ms: c.applied_ms,
                };
                m.changes.entry(trial_id).or_default().push(change);
            }
            for c in &t.controls {
                m.next_change += 1;
                let control = ControlRecord {
                    id: m.next_change,
                    action: c.action,
                    who: c.who.clone(),
                    note: c.note.clone(),
                    asked_ms: c.asked_ms,
                    applied_ms: c.applied_ms,
                    applied_step: c.applied_step,
                };
                m.controls.entry(trial_id).or_default().push(control);
            }
        }
        let finished: Vec<usize> = doc.finish_order().into_iter().map(|i| indices[i]).collect();
        m.by_study.insert(id, indices);
        m.finish_order.insert(id, finished);
        Ok(record)
    }

    fn rename_study(
        &self,
        study: StudyId,
        name: &str,
        spec: Option<&serde_json::Value>,
    ) -> Result<(), StorageError> {
        let mut m = self.lock();
        if m.studies.iter().any(|s| s.name == name && s.id != study) {
            return Err(StorageError::StudyExists(name.to_string()));
        }
        let Some(record) = m.studies.iter_mut().find(|s| s.id == study) else {
            return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
        };
        let old = std::mem::replace(&mut record.name, name.to_string());
        if let Some(spec) = spec {
            record.spec = Some(spec.clone());
        }
        for child in &mut m.studies {
            if child.parent.as_deref() == Some(old.as_str()) {
                child.parent = Some(name.to_string());
            }
        }
        Ok(())
    }

    fn delete_study(&self, study: StudyId) -> Result<(), StorageError> {
        let mut m = self.lock();
        let Some(at) = m.studies.iter().position(|s| s.id == study) else {
            return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
        };
        let name = m.studies[at].name.clone();
        if let Some(child) = m
            .studies
            .iter()
            .find(|s| s.parent.as_deref() == Some(&name))
        {
            return Err(StorageError::Backend(format!(
                "study `{name}` is the parent of `{}`; delete that one first",
                child.name
            )));
        }
        m.studies.remove(at);
        // The trials stay in the arena (ids index it) but no study lists them any more.
        for index in m.by_study.remove(&study.0).unwrap_or_default() {
            let id = m.trials[index].trial.id.0;
            m.trial_user_attrs.remove(&id);
            m.logs.remove(&id);
            m.changes.remove(&id);
            m.controls.remove(&id);
            m.metrics.remove(&id);
        }
        m.retried.remove(&study.0);
        m.finish_order.remove(&study.0);
        m.attrs.remove(&study.0);
        m.study_user_attrs.remove(&study.0);
        Ok(())
    }
}
