//! `caviar._caviar`: the Rust half of caviar's Python package. Studies, trials, storages and
//! the run loop are the engine's (`caviar_engine::drive`, the registry); this module only
//! converts between Python and Rust and holds the GIL as little as it can. The Python half
//! (`caviar/__init__.py`) gives it Optuna's names.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caviar_core::space::{Distribution, ParamValue, Scale, SearchSpace};
use caviar_core::storage::{AttrOwner, ControlAction, Storage, StorageError};
use caviar_core::study::{Outcome, Study, StudyError, Trial, TrialError};
use caviar_core::trial::{Direction, FrozenTrial, TrialId, TrialState};
use caviar_engine::{PrunerSpec, SamplerSpec};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyKeyError, PyKeyboardInterrupt, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

create_exception!(
    _caviar,
    TrialPruned,
    PyException,
    "Raised by an objective to stop its trial as pruned (after `trial.should_prune()`)."
);
create_exception!(
    _caviar,
    DuplicatedStudyError,
    PyException,
    "A study of that name exists already; pass `load_if_exists=True` to open it."
);

fn runtime_error(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

fn trial_error(e: TrialError) -> PyErr {
    match e {
        TrialError::Space(_) | TrialError::Failed(_) => PyValueError::new_err(e.to_string()),
        TrialError::Pruned => TrialPruned::new_err("pruned"),
        other => runtime_error(other),
    }
}

/// Optuna's `sqlite:///relative.db` and `sqlite:////absolute.db` mean a path after the third
/// slash; caviar's own spellings (`sqlite:PATH`, `postgres://...`, `memory:`) pass through.
fn storage_url(url: Option<&str>) -> String {
    match url {
        None => "memory:".into(),
        Some(u) => match u.strip_prefix("sqlite:///") {
            Some(path) => format!("sqlite:{path}"),
            None => u.to_string(),
        },
    }
}

fn open_storage(url: &str) -> PyResult<Arc<dyn Storage>> {
    caviar_store::open_storage(url).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn direction_of(text: &str) -> PyResult<Direction> {
    match text {
        "minimize" => Ok(Direction::Minimize),
        "maximize" => Ok(Direction::Maximize),
        other => Err(PyValueError::new_err(format!(
            "direction = {other:?} is not known; use \"minimize\" or \"maximize\""
        ))),
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Minimize => "minimize",
        Direction::Maximize => "maximize",
    }
}

/// A registry spec from the keyword dict the Python classes build (`{"kind": "tpe", ...}`).
fn spec_of<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    what: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<T>> {
    let Some(options) = options else {
        return Ok(None);
    };
    let json = py
        .import("json")?
        .call_method1("dumps", (options,))?
        .extract::<String>()?;
    serde_json::from_str(&json)
        .map(Some)
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

fn param_to_py<'py>(py: Python<'py>, value: &ParamValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        ParamValue::Int(i) => i.into_pyobject(py)?.into_any(),
        ParamValue::Float(f) => f.into_pyobject(py)?.into_any(),
        ParamValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        ParamValue::Str(s) => PyString::new(py, s).into_any(),
    })
}

fn param_from_py(value: &Bound<'_, PyAny>) -> PyResult<ParamValue> {
    if value.is_instance_of::<PyBool>() {
        return Ok(ParamValue::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(ParamValue::Int(value.extract()?));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(ParamValue::Float(value.extract()?));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(ParamValue::Str(value.extract()?));
    }
    Err(PyValueError::new_err(format!(
        "choice {} is not a bool, int, float or str; caviar stores those (map other objects to names)",
        value.repr()?
    )))
}

fn json_from_py(value: &Bound<'_, PyAny>, what: &str) -> PyResult<serde_json::Value> {
    let text = value
        .py()
        .import("json")?
        .call_method1("dumps", (value,))
        .map_err(|e| {
            PyValueError::new_err(format!("{what}: the value must be JSON-serializable ({e})"))
        })?
        .extract::<String>()?;
    serde_json::from_str(&text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (value.to_string(),))
}

fn attrs_to_py<'py>(
    py: Python<'py>,
    attrs: &BTreeMap<String, serde_json::Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (key, value) in attrs {
        d.set_item(key, json_to_py(py, value)?)?;
    }
    Ok(d)
}

fn distribution_to_py<'py>(py: Python<'py>, dist: &Distribution) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(dist).map_err(runtime_error)?;
    py.import("json")?.call_method1("loads", (json,))
}

/// A recorded parameter change as a dict.
fn change_to_py<'py>(
    py: Python<'py>,
    c: &caviar_core::storage::ParamChange,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &c.name)?;
    d.set_item(
        "old",
        c.old.as_ref().map(|v| param_to_py(py, v)).transpose()?,
    )?;
    d.set_item("new", param_to_py(py, &c.new)?)?;
    d.set_item("who", &c.who)?;
    d.set_item("note", c.note.as_deref())?;
    d.set_item("forced", c.forced)?;
    d.set_item("asked_ms", c.asked_ms)?;
    d.set_item("applied_step", c.applied_step)?;
    d.set_item("applied_ms", c.applied_ms)?;
    Ok(d)
}

/// What `caviar.FrozenTrial` shows beside a stored trial: its user attributes and changes.
type Extras = (
    BTreeMap<String, serde_json::Value>,
    Vec<caviar_core::storage::ParamChange>,
);

fn extras_of(storage: &dyn Storage, id: TrialId) -> Result<Extras, StorageError> {
    Ok((
        storage.user_attrs(caviar_core::storage::AttrOwner::Trial(id))?,
        storage.param_changes(id)?,
    ))
}

/// A finished or running trial as a plain dict; `caviar.FrozenTrial` wraps it.
fn frozen_to_py<'py>(
    py: Python<'py>,
    t: &FrozenTrial,
    user_attrs: Option<&BTreeMap<String, serde_json::Value>>,
    changes: Option<&Vec<caviar_core::storage::ParamChange>>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let history = PyList::empty(py);
    for c in changes.into_iter().flatten() {
        history.append(change_to_py(py, c)?)?;
    }
    d.set_item("param_history", history)?;
    match user_attrs {
        Some(attrs) => d.set_item("user_attrs", attrs_to_py(py, attrs)?)?,
        None => d.set_item("user_attrs", PyDict::new(py))?,
    }
    d.set_item("number", t.number)?;
    d.set_item("state", t.state.as_str())?;
    d.set_item("value", t.value)?;
    d.set_item("values", t.values.clone())?;
    let params = PyDict::new(py);
    for (name, value) in &t.params {
        params.set_item(name, param_to_py(py, value)?)?;
    }
    d.set_item("params", params)?;
    let dists = PyDict::new(py);
    for (name, dist) in &t.distributions {
        dists.set_item(name, distribution_to_py(py, dist)?)?;
    }
    d.set_item("distributions", dists)?;
    let curve = PyDict::new(py);
    for (step, value) in &t.intermediate {
        curve.set_item(step, value)?;
    }
    d.set_item("intermediate_values", curve)?;
    d.set_item("error", t.error.as_deref())?;
    d.set_item("constraints", t.constraints.clone())?;
    d.set_item("worker", t.worker.as_deref())?;
    d.set_item("started_ms", t.started_ms)?;
    d.set_item("finished_ms", t.finished_ms)?;
    Ok(d)
}

/// The text Python itself would print for an exception, traceback included.
fn traceback_text(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let lines = py.import("traceback")?.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let parts: Vec<String> = lines.extract()?;
        Ok(parts.concat())
    })();
    formatted.unwrap_or_else(|_| err.to_string())
}

/// A study in a storage, opened or created; `caviar.Study` wraps it.
#[pyclass(frozen, module = "caviar._caviar", name = "Study")]
struct PyStudy {
    study: Arc<Study>,
    url: String,
    /// Trials handed out by `ask` and not yet told, by number.
    asked: Mutex<HashMap<u64, Py<PyTrial>>>,
    /// Set by `stop()`: the running `optimize` calls start no new trials.
    stopping: AtomicBool,
    /// How many `optimize` calls run now.
    optimizing: std::sync::atomic::AtomicUsize,
}

/// A running trial: `suggest_*`, `report`, `should_prune`.
#[pyclass(frozen, module = "caviar._caviar", name = "Trial")]
struct PyTrial {
    number: u64,
    /// `None` once the trial has been told.
    inner: Mutex<Option<Trial>>,
}

impl PyTrial {
    fn new(trial: Trial) -> Self {
        PyTrial {
            number: trial.number(),
            inner: Mutex::new(Some(trial)),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Trial) -> Result<R, TrialError>) -> PyResult<R> {
        self.with_any(|t| f(t).map_err(trial_error))
    }

    /// Runs `f` on the running trial; an error once it has been told.
    fn with_any<R>(&self, f: impl FnOnce(&mut Trial) -> PyResult<R>) -> PyResult<R> {
        let mut guard = self.inner.lock().unwrap();
        let trial = guard.as_mut().ok_or_else(|| {
            PyRuntimeError::new_err(format!(
                "trial {} has finished; its methods work only while it runs",
                self.number
            ))
        })?;
        f(trial)
    }

    fn take(&self) -> Option<Trial> {
        self.inner.lock().unwrap().take()
    }
}

#[pymethods]
impl PyTrial {
    /// Number within the study, from 0.
    #[getter]
    fn number(&self) -> u64 {
        self.number
    }

    /// Parameters suggested so far.
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let params = self.with(|t| Ok(t.params()))?;
        let d = PyDict::new(py);
        for (name, value) in &params {
            d.set_item(name, param_to_py(py, value)?)?;
        }
        Ok(d)
    }

    /// A float in `[low, high]`: `log=True` for a log scale, `scale="reverse_log"` for values
    /// near 1 (betas: `1 - x` on a log scale), `step` for a linear grid.
    #[pyo3(signature = (name, low, high, *, step=None, log=false, scale=None))]
    #[allow(clippy::too_many_arguments)]
    fn suggest_float(
        &self,
        py: Python<'_>,
        name: &str,
        low: f64,
        high: f64,
        step: Option<f64>,
        log: bool,
        scale: Option<&str>,
    ) -> PyResult<f64> {
        let scale = match (scale, log) {
            (None, false) | (Some("linear"), false) => Scale::Linear,
            (None, true) | (Some("log"), _) => Scale::Log,
            (Some("reverse_log"), false) => Scale::ReverseLog,
            (Some(other), _) => {
                return Err(PyValueError::new_err(format!(
                    "suggest_float({name:?}): scale = {other:?} {}",
                    if log {
                        "cannot be combined with log=True; pass one of them"
                    } else {
                        "is not known; use \"linear\", \"log\" or \"reverse_log\""
                    }
                )))
            }
        };
        if step.is_some() && scale != Scale::Linear {
            return Err(PyValueError::new_err(format!(
                "suggest_float({name:?}): step works on a linear scale only; drop step or the log scale"
            )));
        }
        let dist = Distribution::Float {
            low,
            high,
            scale,
            step,
        };
        let value = py.detach(|| self.with(|t| t.suggest(name, dist)))?;
        Ok(value.as_f64().expect("float distributions yield numbers"))
    }

    /// Optuna's older name: `suggest_float(name, low, high)`.
    fn suggest_uniform(&self, py: Python<'_>, name: &str, low: f64, high: f64) -> PyResult<f64> {
        self.suggest_float(py, name, low, high, None, false, None)
    }

    /// Optuna's older name: `suggest_float(name, low, high, log=True)`.
    fn suggest_loguniform(&self, py: Python<'_>, name: &str, low: f64, high: f64) -> PyResult<f64> {
        self.suggest_float(py, name, low, high, None, true, None)
    }

    /// Optuna's older name: `suggest_float(name, low, high, step=q)`.
    fn suggest_discrete_uniform(
        &self,
        py: Python<'_>,
        name: &str,
        low: f64,
        high: f64,
        q: f64,
    ) -> PyResult<f64> {
        self.suggest_float(py, name, low, high, Some(q), false, None)
    }

    /// An int in `[low, high]`, in multiples of `step` from `low`; `log=True` for a log scale.
    #[pyo3(signature = (name, low, high, step=1, log=false))]
    fn suggest_int(
        &self,
        py: Python<'_>,
        name: &str,
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    ) -> PyResult<i64> {
        if log && step != 1 {
            return Err(PyValueError::new_err(format!(
                "suggest_int({name:?}): step must be 1 on a log scale"
            )));
        }
        let dist = Distribution::Int {
            low,
            high,
            step,
            scale: if log { Scale::Log } else { Scale::Linear },
        };
        let value = py.detach(|| self.with(|t| t.suggest(name, dist)))?;
        Ok(value.as_i64().expect("int distributions yield integers"))
    }

    /// One of `choices` (bools, ints, floats or strings), returned as the object given.
    fn suggest_categorical<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        choices: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let given: Vec<Bound<'py, PyAny>> = choices.try_iter()?.collect::<PyResult<_>>()?;
        let values: Vec<ParamValue> = given.iter().map(param_from_py).collect::<PyResult<_>>()?;
        let dist = Distribution::Categorical {
            choices: values.clone(),
        };
        let value = py.detach(|| self.with(|t| t.suggest(name, dist)))?;
        let idx = values
            .iter()
            .position(|v| *v == value)
            .expect("categorical draws come from the choices");
        Ok(given[idx].clone())
    }

    /// Sets a user attribute of this trial (any JSON-serializable value): extra metrics,
    /// notes; stored with the trial and shown by `caviar trials --json`.
    fn set_user_attr(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = json_from_py(value, &format!("set_user_attr({key:?})"))?;
        py.detach(|| self.with_any(|t| t.set_user_attr(key, &value).map_err(runtime_error)))
    }

    /// This trial's user attributes.
    #[getter]
    fn user_attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let attrs = py.detach(|| self.with_any(|t| t.user_attrs().map_err(runtime_error)))?;
        attrs_to_py(py, &attrs)
    }

    /// Gives this trial's constraint values outright (at most zero where one holds), as an
    /// Optuna `constraints_func` returns them; used when it completes.
    fn _set_constraints(&self, values: Vec<f64>) -> PyResult<()> {
        self.with_any(|t| {
            t.set_constraints(values);
            Ok(())
        })
    }

    /// Records the objective's value at `step` (an epoch); the pruner judges these. Changes
    /// asked of this trial while it runs (`caviar set`, `Study.set_trial_params`) are applied
    /// here, after this step (recorded as `applied_step`): `params` and later `suggest_*`
    /// calls give the new values, so the next epoch uses them.
    ///
    /// A trial paused from outside (`caviar pause`, `Study.pause_trial`) waits here until it
    /// is resumed or stopped; Ctrl-C still interrupts the wait.
    ///
    /// `metrics` (caviar's): other values at this step, `{"train_loss": 0.4, "lr": 1e-3}`,
    /// each kept as its own series (`caviar trials --json`, the dashboard's curves).
    #[pyo3(signature = (value, step, metrics=None))]
    fn report(
        &self,
        py: Python<'_>,
        value: f64,
        step: u64,
        metrics: Option<BTreeMap<String, f64>>,
    ) -> PyResult<()> {
        let metrics: Vec<(String, f64)> = metrics.unwrap_or_default().into_iter().collect();
        let mut steer = py.detach(|| {
            self.with(|t| {
                t.report_all(step, value, &metrics)?;
                t.apply_param_changes(step)?;
                t.take_controls(Some(step))
            })
        })?;
        while steer.paused && !steer.stop {
            py.detach(|| std::thread::sleep(std::time::Duration::from_millis(250)));
            py.check_signals()?;
            steer = py.detach(|| self.with(|t| t.take_controls(Some(step))))?;
        }
        Ok(())
    }

    /// Whether the study's pruner says to stop now; then `raise caviar.TrialPruned()`. Also
    /// yes once the trial has been asked to stop (`caviar stop`, `Study.stop_trial`): raising
    /// `TrialPruned` then records it as complete with its last reported value.
    fn should_prune(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.with(|t| Ok(t.steer().stop || t.should_prune()?)))
    }

    fn __repr__(&self) -> String {
        format!("Trial(number={})", self.number)
    }
}

/// What the objective of one `optimize` call did that must outlive its trial.
#[derive(Default)]
struct Stop {
    /// The first exception to re-raise when the run ends (an uncaught objective error, a
    /// callback's error, Ctrl-C).
    error: Mutex<Option<PyErr>>,
    /// Python thread idents of running objectives, to interrupt them on Ctrl-C.
    threads: Mutex<HashMap<u64, u64>>,
}

impl Stop {
    /// Whether the run stops for Ctrl-C.
    fn interrupted(&self) -> bool {
        Python::attach(|py| {
            self.error
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|e| e.is_instance_of::<PyKeyboardInterrupt>(py))
        })
    }

    fn keep_first(&self, err: PyErr) {
        let mut slot = self.error.lock().unwrap();
        if slot.is_none() {
            *slot = Some(err);
        }
    }
}

/// Calls the Python callback after each trial (Optuna's `callbacks`, wrapped by Python).
struct Callbacks<'a> {
    on_trial: Option<Py<PyAny>>,
    storage: Arc<dyn Storage>,
    ids: &'a Mutex<HashMap<u64, TrialId>>,
    stop: &'a Stop,
    cancel: &'a AtomicBool,
    /// The other threads' objectives have been sent KeyboardInterrupt.
    interrupted: AtomicBool,
}

impl Callbacks<'_> {
    /// On the main thread: runs Python's signal handlers; Ctrl-C (seen here or inside an
    /// objective) stops new trials and interrupts the objectives on the other threads, once.
    fn check_signals(&self, py: Python<'_>) {
        if let Err(err) = py.check_signals() {
            self.cancel.store(true, Ordering::SeqCst);
            self.stop.keep_first(err);
        }
        if self.stop.interrupted() && !self.interrupted.swap(true, Ordering::SeqCst) {
            interrupt_objectives(self.stop);
        }
    }
}

impl caviar_engine::Observer for Callbacks<'_> {
    fn trial_done(&self, number: u64, _: TrialState, _: &Outcome, _: Direction) {
        let Some(on_trial) = &self.on_trial else {
            return;
        };
        let Some(id) = self.ids.lock().unwrap().remove(&number) else {
            return;
        };
        let Ok(frozen) = self.storage.trial(id) else {
            return;
        };
        let (attrs, changes) = extras_of(&*self.storage, id).unwrap_or_default();
        Python::attach(|py| {
            let called = frozen_to_py(py, &frozen, Some(&attrs), Some(&changes))
                .and_then(|d| on_trial.call1(py, (d,)));
            if let Err(e) = called {
                self.stop.keep_first(e);
                self.cancel.store(true, Ordering::SeqCst);
            }
        });
    }

    fn note(&self, _: &str) {}

    fn waiting(&self) {
        Python::attach(|py| self.check_signals(py));
    }
}

/// A refused live request is the caller's to fix (ValueError); a storage failure is not.
fn live_error(e: caviar_engine::LiveError) -> PyErr {
    if e.is_bad_input() {
        PyValueError::new_err(e.to_string())
    } else {
        runtime_error(e)
    }
}

impl PyStudy {
    /// Records a pause, resume or stop of running trial `number`.
    fn control(
        &self,
        py: Python<'_>,
        number: u64,
        action: ControlAction,
        note: Option<&str>,
    ) -> PyResult<i64> {
        py.detach(|| {
            caviar_engine::ask_control(
                &**self.study.storage(),
                self.study.record(),
                number,
                action,
                &caviar_engine::asker(),
                note,
            )
        })
        .map_err(live_error)
    }

    fn trial_by_number(&self, number: u64) -> PyResult<FrozenTrial> {
        let trials = self
            .study
            .storage()
            .trials_numbered(self.study.record().id, number, number + 1)
            .map_err(runtime_error)?;
        trials.into_iter().next().ok_or_else(|| {
            PyValueError::new_err(format!(
                "study {:?} has no trial {number}",
                self.study.name()
            ))
        })
    }

    /// Runs `func` on a trial in a worker thread and says how it ended.
    fn call_objective(
        py: Python<'_>,
        func: &Py<PyAny>,
        catch: &Py<PyAny>,
        trial: &mut Trial,
        stop: &Stop,
        cancel: &AtomicBool,
        on_main: bool,
    ) -> Outcome {
        let number = trial.number();
        let handle = match Py::new(py, PyTrial::new(trial.clone())) {
            Ok(h) => h,
            Err(e) => return Outcome::Failed(traceback_text(py, &e)),
        };
        // Objectives off the main thread are interrupted by ident on Ctrl-C.
        if !on_main {
            if let Ok(ident) = py
                .import("threading")
                .and_then(|m| m.call_method0("get_ident"))
                .and_then(|i| i.extract::<u64>())
            {
                stop.threads.lock().unwrap().insert(number, ident);
            }
        }
        let result = func.call1(py, (handle.clone_ref(py),));
        if !on_main {
            stop.threads.lock().unwrap().remove(&number);
        }
        // The trial comes back with what the objective suggested and reported.
        if let Some(back) = handle.get().take() {
            *trial = back;
        }
        match result {
            Ok(value) => {
                let value = value.bind(py);
                if value.is_none() {
                    return Outcome::Failed(
                        "the objective returned None; return the value to optimize (a float)"
                            .into(),
                    );
                }
                match value.extract::<f64>() {
                    Ok(v) => Outcome::Complete(v),
                    // Several objectives: a sequence of numbers, one per direction.
                    Err(_) => match value.extract::<Vec<f64>>() {
                        Ok(values) if !value.is_instance_of::<pyo3::types::PyString>() => {
                            Outcome::Values(values)
                        }
                        _ => Outcome::Failed(format!(
                            "the objective returned {}, which is not a number (or, with several directions, a sequence of numbers)",
                            value.repr().map(|r| r.to_string()).unwrap_or_default()
                        )),
                    },
                }
            }
            Err(e) if e.is_instance_of::<TrialPruned>(py) => {
                if trial.steer().stop {
                    trial.stopped_outcome()
                } else {
                    Outcome::Pruned
                }
            }
            Err(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
                cancel.store(true, Ordering::SeqCst);
                stop.keep_first(e);
                Outcome::Failed("interrupted".into())
            }
            Err(e) => {
                let text = traceback_text(py, &e);
                if !e.is_instance(py, catch.bind(py)) {
                    cancel.store(true, Ordering::SeqCst);
                    stop.keep_first(e);
                }
                Outcome::Failed(text)
            }
        }
    }
}

/// One parameter's importance for Python: name, share, raw score, 5th and 95th percentiles.
type RankedParam = (String, f64, f64, f64, f64);

#[pymethods]
impl PyStudy {
    /// The study's name.
    #[getter]
    fn study_name(&self) -> String {
        self.study.name().to_string()
    }

    /// "minimize" or "maximize".
    #[getter]
    fn direction(&self) -> &'static str {
        direction_name(self.study.direction())
    }

    /// The storage URL the study lives in.
    #[getter]
    fn storage_url(&self) -> String {
        self.url.clone()
    }

    /// Runs `func(trial)` on `n_jobs` threads through the engine's loop until this call has
    /// started `n_trials` trials (none: no limit) or `timeout` seconds passed.
    #[pyo3(signature = (func, n_trials=None, timeout=None, n_jobs=1, catch=None, on_trial=None, retries=0))]
    #[allow(clippy::too_many_arguments)]
    fn optimize(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        n_trials: Option<u64>,
        timeout: Option<f64>,
        n_jobs: i64,
        catch: Option<Py<PyAny>>,
        on_trial: Option<Py<PyAny>>,
        retries: u32,
    ) -> PyResult<()> {
        let workers = match n_jobs {
            -1 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n >= 1 => n as usize,
            n => {
                return Err(PyValueError::new_err(format!(
                    "n_jobs = {n}; use a positive number of threads, or -1 for one per CPU"
                )))
            }
        };
        if let Some(t) = timeout {
            if !(t >= 0.0 && t.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "timeout = {t}; use a number of seconds >= 0, or None"
                )));
            }
        }
        let catch = catch.unwrap_or_else(|| PyTuple::empty(py).into_any().unbind());
        let recovery = caviar_engine::Recovery {
            retries,
            heartbeat: caviar_engine::DEFAULT_HEARTBEAT,
        };
        // Trials of dead workers (a process killed mid-trial) are failed, or queued again
        // with `retries`, before this run starts; the heartbeat thread keeps looking.
        py.detach(|| {
            caviar_engine::recover(&self.study, &caviar_run::WorkerId::current(), recovery)
        })
        .map_err(runtime_error)?;
        let storage = self.study.storage().clone();
        let limits = caviar_engine::Limits {
            total: u64::MAX,
            run_trials: n_trials,
            deadline: timeout.map(|t| Instant::now() + Duration::from_secs_f64(t)),
            recovery,
            max_failures: 0,
        };
        let cancel = &self.stopping;
        if self.optimizing.fetch_add(1, Ordering::SeqCst) == 0 {
            cancel.store(false, Ordering::SeqCst);
        }
        // Counted down however this call ends.
        struct Running<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _running = Running(&self.optimizing);
        let stop = Stop::default();
        let ids: Mutex<HashMap<u64, TrialId>> = Mutex::default();
        let callbacks = Callbacks {
            on_trial,
            storage,
            ids: &ids,
            stop: &stop,
            cancel,
            interrupted: AtomicBool::new(false),
        };
        let empty = SearchSpace::new();
        let study = &*self.study;
        // drive runs one worker on this thread, so with n_jobs=1 every objective runs on the
        // thread that called optimize (where Python delivers Ctrl-C), as in Optuna.
        let caller = std::thread::current().id();
        let run = py.detach(|| {
            caviar_engine::drive(
                study,
                &empty,
                limits,
                workers,
                cancel,
                &callbacks,
                |trial, cancel| {
                    if callbacks.on_trial.is_some() {
                        ids.lock().unwrap().insert(trial.number(), trial.id());
                    }
                    let on_main = std::thread::current().id() == caller;
                    Python::attach(|py| {
                        let outcome =
                            Self::call_objective(py, &func, &catch, trial, &stop, cancel, on_main);
                        if on_main {
                            callbacks.check_signals(py);
                        }
                        outcome
                    })
                },
            )
        });
        if let Some(err) = stop.error.lock().unwrap().take() {
            return Err(err);
        }
        match run {
            Ok(()) => Ok(()),
            Err(e) if e.is_bad_input() => Err(PyValueError::new_err(e.to_string())),
            Err(e) => Err(runtime_error(e)),
        }
    }

    /// Stops the running `optimize` calls of this study object after their running trials
    /// (from an objective or a callback, as Optuna's `Study.stop`).
    fn stop(&self) -> PyResult<()> {
        if self.optimizing.load(Ordering::SeqCst) == 0 {
            return Err(PyRuntimeError::new_err(
                "stop() ends a running optimize(); call it from the objective or a callback",
            ));
        }
        self.stopping.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// A new running trial, for `tell` later.
    fn ask(&self, py: Python<'_>) -> PyResult<Py<PyTrial>> {
        let trial = py.detach(|| self.study.ask()).map_err(runtime_error)?;
        let number = trial.number();
        let handle = Py::new(py, PyTrial::new(trial))?;
        self.asked
            .lock()
            .unwrap()
            .insert(number, handle.clone_ref(py));
        Ok(handle)
    }

    /// Ends a trial from `ask` (the trial or its number): `state` is "complete" (needs a
    /// finite `value`), "pruned" or "fail". `constraints`: the trial's constraint values
    /// (at most zero where one holds), as a `constraints_func` gave them. Returns the state
    /// recorded.
    #[pyo3(signature = (trial, value=None, state=None, constraints=None, values=None))]
    fn tell(
        &self,
        py: Python<'_>,
        trial: &Bound<'_, PyAny>,
        value: Option<f64>,
        state: Option<&str>,
        constraints: Option<Vec<f64>>,
        values: Option<Vec<f64>>,
    ) -> PyResult<&'static str> {
        let number = match trial.cast::<PyTrial>() {
            Ok(t) => t.get().number,
            Err(_) => trial.extract::<u64>().map_err(|_| {
                PyValueError::new_err("tell(trial, ...): pass the trial from ask() or its number")
            })?,
        };
        let handle = self.asked.lock().unwrap().remove(&number).ok_or_else(|| {
            PyValueError::new_err(format!(
                "trial {number} was not asked by this study object or was told already"
            ))
        })?;
        let outcome = match (state.unwrap_or("complete"), value) {
            ("complete", _) if values.is_some() => Outcome::Values(values.unwrap_or_default()),
            ("complete", Some(v)) => Outcome::Complete(v),
            ("complete", None) => {
                self.asked.lock().unwrap().insert(number, handle);
                return Err(PyValueError::new_err(format!(
                    "tell(trial {number}): a complete trial needs its value; pass value=..., or state=\"fail\" / \"pruned\""
                )));
            }
            ("pruned", _) => Outcome::Pruned,
            ("fail", _) | ("failed", _) => Outcome::Failed("told failed".into()),
            (other, _) => {
                self.asked.lock().unwrap().insert(number, handle);
                return Err(PyValueError::new_err(format!(
                    "tell: state = {other:?} is not known; use \"complete\", \"pruned\" or \"fail\""
                )));
            }
        };
        let inner = handle.get().take().ok_or_else(|| {
            PyRuntimeError::new_err(format!("trial {number} has finished already"))
        })?;
        if let Some(values) = constraints {
            inner.set_constraints(values);
        }
        let state = py
            .detach(|| self.study.tell(inner, outcome))
            .map_err(runtime_error)?;
        Ok(state.as_str())
    }

    /// Queues a trial with these values (a dict) and user attributes; the next trial started
    /// takes the values when it suggests those names, and samples the rest. Returns its number.
    #[pyo3(signature = (params, user_attrs=None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyDict>,
        user_attrs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<u64> {
        let mut values = Vec::with_capacity(params.len());
        for (name, value) in params.iter() {
            let name: String = name.extract().map_err(|_| {
                PyValueError::new_err("enqueue_trial: parameter names must be strings")
            })?;
            let value = param_from_py(&value)
                .map_err(|e| PyValueError::new_err(format!("enqueue_trial {name:?}: {e}")))?;
            values.push((name, value));
        }
        let mut attrs = Vec::new();
        for (key, value) in user_attrs.into_iter().flat_map(|d| d.iter()) {
            let key: String = key.extract().map_err(|_| {
                PyValueError::new_err("enqueue_trial: user attribute names must be strings")
            })?;
            let value = json_from_py(&value, &format!("enqueue_trial user_attrs {key:?}"))?;
            attrs.push((key, value));
        }
        py.detach(|| -> PyResult<u64> {
            let number = self.study.enqueue_values(&values).map_err(|e| match e {
                StudyError::Space(_) => PyValueError::new_err(e.to_string()),
                other => runtime_error(other),
            })?;
            if !attrs.is_empty() {
                let queued = self.trial_by_number(number)?;
                for (key, value) in &attrs {
                    self.study
                        .storage()
                        .set_user_attr(
                            caviar_core::storage::AttrOwner::Trial(queued.id),
                            key,
                            value,
                        )
                        .map_err(runtime_error)?;
                }
            }
            Ok(number)
        })
    }

    /// Parameter importances by caviar's estimator (the CLI's and the dashboard's):
    /// `[(name, share, variance_fraction or divergence, low, high)]`, most important first.
    #[pyo3(signature = (method, trees, seed, top_fraction))]
    fn param_importances(
        &self,
        py: Python<'_>,
        method: &str,
        trees: usize,
        seed: u64,
        top_fraction: f64,
    ) -> PyResult<Vec<RankedParam>> {
        use caviar_core::importance::{importance, ImportanceMethod, ImportanceOptions};
        let method: ImportanceMethod =
            method
                .parse()
                .map_err(|e: caviar_core::importance::ImportanceError| {
                    PyValueError::new_err(e.to_string())
                })?;
        if self.study.directions().len() > 1 {
            return Err(PyValueError::new_err(
                "importance of a study with several objectives: not supported yet; it ranks \
                 parameters for one objective",
            ));
        }
        let trials = py
            .detach(|| {
                self.study
                    .storage()
                    .trials_for_analysis(self.study.record().id)
            })
            .map_err(runtime_error)?;
        let options = ImportanceOptions {
            method,
            top_fraction,
            trees,
            seed,
            ..Default::default()
        };
        let ranked = py
            .detach(|| importance(&trials, self.study.direction(), &options))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(ranked
            .into_iter()
            .map(|r| {
                let raw = r.variance_fraction.unwrap_or(r.divergence);
                (r.name, r.importance, raw, r.low, r.high)
            })
            .collect())
    }

    /// Every trial, in number order, as dicts (with their user attributes).
    fn trials<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (trials, attrs, changes) = py
            .detach(|| -> Result<_, StudyError> {
                let storage = self.study.storage();
                let id = self.study.record().id;
                let attrs = storage.trial_user_attrs(id)?;
                let changes = storage.study_param_changes(id)?;
                Ok((self.study.trials()?, attrs, changes))
            })
            .map_err(runtime_error)?;
        let list = PyList::empty(py);
        for t in &trials {
            list.append(frozen_to_py(py, t, attrs.get(&t.id), changes.get(&t.id))?)?;
        }
        Ok(list)
    }

    /// The Pareto front of a study with several objectives (feasible complete trials no
    /// other dominates), or the best trial's ties of a study with one, as dicts.
    fn best_trials<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (front, attrs, changes) = py
            .detach(|| -> Result<_, StudyError> {
                let storage = self.study.storage();
                let id = self.study.record().id;
                let mut front = self.study.best_trials(usize::MAX)?;
                if self.study.directions().len() == 1 {
                    let best = front.first().and_then(|t| t.value);
                    front.retain(|t| t.value == best);
                }
                Ok((
                    front,
                    storage.trial_user_attrs(id)?,
                    storage.study_param_changes(id)?,
                ))
            })
            .map_err(runtime_error)?;
        let list = PyList::empty(py);
        for t in &front {
            list.append(frozen_to_py(py, t, attrs.get(&t.id), changes.get(&t.id))?)?;
        }
        Ok(list)
    }

    /// One direction per objective.
    #[getter]
    fn directions(&self) -> Vec<&'static str> {
        self.study
            .directions()
            .iter()
            .map(|d| direction_name(*d))
            .collect()
    }

    /// The best complete trial as a dict, or None.
    fn best_trial<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let best = py
            .detach(|| -> Result<_, StudyError> {
                let Some(t) = self.study.best_trial()? else {
                    return Ok(None);
                };
                let extras = extras_of(&**self.study.storage(), t.id)?;
                Ok(Some((t, extras)))
            })
            .map_err(runtime_error)?;
        best.map(|(t, (attrs, changes))| frozen_to_py(py, &t, Some(&attrs), Some(&changes)))
            .transpose()
    }

    /// One trial by number, as a dict.
    fn trial<'py>(&self, py: Python<'py>, number: u64) -> PyResult<Bound<'py, PyDict>> {
        let (t, (attrs, changes)) = py.detach(|| -> PyResult<_> {
            let t = self.trial_by_number(number)?;
            let extras = extras_of(&**self.study.storage(), t.id).map_err(runtime_error)?;
            Ok((t, extras))
        })?;
        frozen_to_py(py, &t, Some(&attrs), Some(&changes))
    }

    /// Asks running trial `number` to pause: it waits inside its next `report` until resumed
    /// (its heartbeat goes on). Returns the request's id.
    #[pyo3(signature = (number, note=None))]
    fn pause_trial(&self, py: Python<'_>, number: u64, note: Option<&str>) -> PyResult<i64> {
        self.control(py, number, ControlAction::Pause, note)
    }

    /// Resumes paused trial `number`. Returns the request's id.
    #[pyo3(signature = (number, note=None))]
    fn resume_trial(&self, py: Python<'_>, number: u64, note: Option<&str>) -> PyResult<i64> {
        self.control(py, number, ControlAction::Resume, note)
    }

    /// Asks running trial `number` to stop: its next `should_prune` says yes, and raising
    /// `TrialPruned` then records it complete with its last reported value. Returns the
    /// request's id.
    #[pyo3(signature = (number, note=None))]
    fn stop_trial(&self, py: Python<'_>, number: u64, note: Option<&str>) -> PyResult<i64> {
        self.control(py, number, ControlAction::Stop, note)
    }

    /// Asks running trial `number` to change parameters (panda mode): each value is checked
    /// against its distribution (`force` lets one leave it, and the record says so); the trial
    /// applies them at its next report. Returns the changes as asked.
    #[pyo3(signature = (number, params, note=None, force=false))]
    fn set_trial_params<'py>(
        &self,
        py: Python<'py>,
        number: u64,
        params: &Bound<'py, PyDict>,
        note: Option<&str>,
        force: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut changes = Vec::with_capacity(params.len());
        for (name, value) in params.iter() {
            let name: String = name.extract().map_err(|_| {
                PyValueError::new_err("set_trial_params: parameter names must be strings")
            })?;
            let value = param_from_py(&value)
                .map_err(|e| PyValueError::new_err(format!("set_trial_params {name:?}: {e}")))?;
            changes.push((name, caviar_engine::NewValue::Value(value)));
        }
        let asked = py.detach(|| {
            caviar_engine::ask_changes(
                &**self.study.storage(),
                self.study.record(),
                number,
                &changes,
                &caviar_engine::asker(),
                note,
                force,
            )
        });
        let asked = asked.map_err(live_error)?;
        let list = PyList::empty(py);
        for a in &asked {
            let d = PyDict::new(py);
            d.set_item("name", &a.name)?;
            d.set_item("current", param_to_py(py, &a.current)?)?;
            d.set_item("new", param_to_py(py, &a.new)?)?;
            d.set_item("forced", a.forced)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Sets a user attribute of the study (any JSON-serializable value).
    fn set_user_attr(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = json_from_py(value, &format!("set_user_attr({key:?})"))?;
        py.detach(|| self.study.set_user_attr(key, &value))
            .map_err(runtime_error)
    }

    /// The study's user attributes.
    #[getter]
    fn user_attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let attrs = py
            .detach(|| self.study.user_attrs())
            .map_err(runtime_error)?;
        attrs_to_py(py, &attrs)
    }

    fn __repr__(&self) -> String {
        format!(
            "Study(study_name={:?}, direction={:?}, storage={:?})",
            self.study.name(),
            direction_name(self.study.direction()),
            self.url
        )
    }
}

/// Raises KeyboardInterrupt inside every running objective (their threads are not the main
/// one, so Python would not interrupt them itself).
fn interrupt_objectives(stop: &Stop) {
    let threads: Vec<u64> = stop.threads.lock().unwrap().values().copied().collect();
    Python::attach(|py| {
        for ident in threads {
            let exc = py.get_type::<PyKeyboardInterrupt>();
            // SAFETY: called with the GIL held, on a live exception type object.
            unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, exc.as_ptr());
            }
        }
    });
}

/// Opens or creates a study (the engine's `Study`), with a sampler and pruner from the
/// registry. `create`: make it when missing; `load_if_exists`: open it when present.
#[pyfunction]
#[pyo3(signature = (study_name, storage=None, direction="minimize", sampler=None, pruner=None, load_if_exists=false, create=true, grid=None, warm_start=None, constraints=None, directions=None))]
#[allow(clippy::too_many_arguments)]
fn open_study(
    py: Python<'_>,
    study_name: &str,
    storage: Option<&str>,
    direction: &str,
    sampler: Option<&Bound<'_, PyDict>>,
    pruner: Option<&Bound<'_, PyDict>>,
    load_if_exists: bool,
    create: bool,
    grid: Option<&Bound<'_, PyDict>>,
    warm_start: Option<Vec<String>>,
    constraints: Option<Vec<String>>,
    directions: Option<Vec<String>>,
) -> PyResult<PyStudy> {
    let directions = directions
        .map(|list| {
            list.iter()
                .map(|d| direction_of(d))
                .collect::<PyResult<Vec<_>>>()
        })
        .transpose()?;
    let url = storage_url(storage);
    let constraints = constraints
        .map(|texts| caviar_core::constraint::parse_all(&texts))
        .transpose()
        .map_err(|e| PyValueError::new_err(format!("constraints: {e}")))?;
    let direction = direction_of(direction)?;
    let sampler_spec: SamplerSpec = spec_of(py, "sampler", sampler)?.unwrap_or_default();
    let pruner_spec: PrunerSpec = spec_of(py, "pruner", pruner)?.unwrap_or_default();
    let mut grid_values: BTreeMap<String, Vec<ParamValue>> = BTreeMap::new();
    if let Some(grid) = grid {
        for (name, values) in grid.iter() {
            let name: String = name.extract()?;
            let values: Vec<ParamValue> = values
                .try_iter()?
                .map(|v| param_from_py(&v?))
                .collect::<PyResult<_>>()
                .map_err(|e| PyValueError::new_err(format!("GridSampler {name:?}: {e}")))?;
            grid_values.insert(name, values);
        }
    }
    let built_sampler = sampler_spec
        .build_define_by_run(&grid_values)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let built_pruner = pruner_spec
        .build()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let name = study_name.to_string();
    let study = py.detach(|| -> PyResult<Study> {
        let store = open_storage(&url)?;
        let existing = store.study(&name).map_err(runtime_error)?;
        match (&existing, create, load_if_exists) {
            (Some(_), true, false) => {
                return Err(DuplicatedStudyError::new_err(format!(
                    "study {name:?} exists in {url}; pass load_if_exists=True to open it, or choose another name"
                )))
            }
            (None, false, _) => {
                return Err(PyKeyError::new_err(format!(
                    "no study {name:?} in {url}; `caviar --storage {url} studies` lists them"
                )))
            }
            _ => {}
        }
        let direction = existing.as_ref().map_or(direction, |r| r.direction);
        // A study warm-started when it was made keeps its prior whoever opens it later.
        let names = match (&warm_start, &existing) {
            (Some(names), _) => names.clone(),
            (None, Some(record)) => store
                .user_attrs(AttrOwner::Study(record.id))
                .map_err(runtime_error)?
                .get(caviar_engine::warm_start::WARM_START)
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|entry| entry["study"].as_str().map(str::to_string))
                .collect(),
            (None, None) => Vec::new(),
        };
        // Define-by-run declares no space: the old trials go in as they are, and the samplers
        // use those whose distributions match the new suggestions.
        let warm = caviar_engine::warm_start::load(&*store, &names, None, direction, None)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let used = warm.used.clone();
        let mut builder = Study::builder(name.clone())
            .storage(store.clone())
            .prior(warm.trials)
            .shared_sampler(built_sampler)
            .shared_pruner(built_pruner)
            .worker(caviar_run::WorkerId::current().to_string())
            .load_if_exists(true);
        if let Some(constraints) = constraints {
            builder = builder.constraints(constraints);
        }
        if let Some(directions) = directions.clone() {
            builder = builder.directions(directions);
        }
        if let Some(record) = &existing {
            // Loading keeps the stored direction (Optuna's load_study has none to give).
            builder = builder.direction(record.direction);
            if let Some(metric) = &record.metric {
                builder = builder.metric(metric.clone());
            }
        } else {
            builder = builder.direction(direction).metric("value").spec(serde_json::json!({
                "front_end": "python",
                "sampler": sampler_spec,
                "pruner": pruner_spec,
                "grid": grid_values,
            }));
        }
        let study = builder.build().map_err(|e| match e {
            StudyError::Mismatch { .. } | StudyError::Constraint(_) | StudyError::Objectives(_) => PyValueError::new_err(e.to_string()),
            other => runtime_error(other),
        })?;
        if existing.is_none() && !used.is_empty() {
            let record: Vec<serde_json::Value> = used
                .iter()
                .map(|(study, n)| serde_json::json!({"study": study, "trials": n}))
                .collect();
            study
                .set_user_attr(
                    caviar_engine::warm_start::WARM_START,
                    &serde_json::json!(record),
                )
                .map_err(runtime_error)?;
        }
        Ok(study)
    })?;
    Ok(PyStudy {
        study: Arc::new(study),
        url,
        asked: Mutex::default(),
        stopping: AtomicBool::new(false),
        optimizing: Default::default(),
    })
}

/// Deletes a study with its trials and everything recorded of them.
#[pyfunction]
fn delete_study(py: Python<'_>, study_name: &str, storage: &str) -> PyResult<()> {
    let url = storage_url(Some(storage));
    py.detach(|| {
        let store = open_storage(&url)?;
        let record = store
            .study(study_name)
            .map_err(runtime_error)?
            .ok_or_else(|| {
                PyKeyError::new_err(format!(
                    "no study {study_name:?} in {url}; `caviar --storage {url} studies` lists them"
                ))
            })?;
        store.delete_study(record.id).map_err(runtime_error)
    })
}

/// Every study in a storage: name, direction, trial counts, best value, created time.
#[pyfunction]
fn study_summaries<'py>(py: Python<'py>, storage: &str) -> PyResult<Bound<'py, PyList>> {
    let url = storage_url(Some(storage));
    let summaries =
        py.detach(|| -> PyResult<_> { open_storage(&url)?.studies().map_err(runtime_error) })?;
    let list = PyList::empty(py);
    for s in &summaries {
        let d = PyDict::new(py);
        d.set_item("study_name", &s.study.name)?;
        d.set_item("direction", direction_name(s.study.direction))?;
        d.set_item("n_trials", s.counts.total())?;
        d.set_item("n_complete", s.counts.complete)?;
        d.set_item("best_value", s.best_value)?;
        d.set_item("created_ms", s.study.created_ms)?;
        list.append(d)?;
    }
    Ok(list)
}

/// Runs the `caviar` command (the same CLI as the Rust binary) with `argv` and returns its
/// exit code; the package's `caviar` console script calls it.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| caviar_cli::main_from(argv))
}

/// The Rust half of the `caviar` package.
#[pymodule]
fn _caviar(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyStudy>()?;
    m.add_class::<PyTrial>()?;
    m.add_function(wrap_pyfunction!(open_study, m)?)?;
    m.add_function(wrap_pyfunction!(study_summaries, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(delete_study, m)?)?;
    m.add("TrialPruned", m.py().get_type::<TrialPruned>())?;
    m.add(
        "DuplicatedStudyError",
        m.py().get_type::<DuplicatedStudyError>(),
    )?;
    m.add("SAMPLERS", caviar_engine::SAMPLERS.to_vec())?;
    m.add("PRUNERS", caviar_engine::PRUNERS.to_vec())?;
    Ok(())
}
