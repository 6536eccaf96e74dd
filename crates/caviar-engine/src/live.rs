//! Live changes of a running trial's parameters (panda mode): every front end asks through
//! [`ask_changes`], which checks each value against the parameter's distribution and records
//! who asked and why. The trial applies a change at a later step
//! (`caviar_core::study::Trial::apply_param_changes`), and the record keeps that step.

use caviar_core::space::ParamValue;
use caviar_core::storage::{
    ControlAction, NewControl, NewParamChange, Storage, StorageError, StudyRecord,
};
use caviar_core::trial::{FrozenTrial, TrialState};

/// A new value: text to read by the parameter's distribution (the CLI), or a typed value
/// (Python).
#[derive(Clone, Debug, PartialEq)]
pub enum NewValue {
    /// `0.02`, `relu`: read as the parameter's type.
    Text(String),
    /// Already typed.
    Value(ParamValue),
}

/// Why a change was not asked. Every variant but `Storage` is the asker's to fix.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The study has no trial of that number.
    #[error("study `{study}` has no trial {number}")]
    NoSuchTrial {
        /// Study name.
        study: String,
        /// Trial number.
        number: u64,
    },
    /// The trial has ended (or not started): only running trials change.
    #[error("trial {number} is {state}, not running; only a running trial's parameters change")]
    NotRunning {
        /// Trial number.
        number: u64,
        /// Its state.
        state: TrialState,
    },
    /// The trial has no such parameter.
    #[error("trial {number} has no parameter `{name}`; its parameters: {known}")]
    NoSuchParam {
        /// Trial number.
        number: u64,
        /// The name asked for.
        name: String,
        /// The names it has.
        known: String,
    },
    /// The value cannot be read as the parameter's type, or lies outside its distribution.
    #[error("`{name}`: {reason}")]
    BadValue {
        /// The parameter.
        name: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// A pause, resume or stop that does not fit the trial's state.
    #[error("{0}")]
    Control(String),
    /// The trial's front end cannot take changes yet.
    #[error("{0}")]
    Unsupported(String),
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl LiveError {
    /// Whether the asker can fix it (front ends report it as bad input: exit 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, LiveError::Storage(_))
    }
}

/// Which front end runs a study's trials, as its stored spec says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrontEnd {
    Python,
    Command,
    Trainer,
}

/// The front end of `study`, when it is one that takes live requests.
fn front_end(study: &StudyRecord) -> Result<FrontEnd, LiveError> {
    let spec = study.spec.as_ref();
    let field = |key: &str| spec.and_then(|s| s.get(key)).filter(|v| !v.is_null());
    if field("front_end").and_then(|f| f.as_str()) == Some("python") {
        Ok(FrontEnd::Python)
    } else if field("command").is_some() {
        Ok(FrontEnd::Command)
    } else if field("objective").and_then(|o| o.as_str()) == Some("mnist") {
        Ok(FrontEnd::Trainer)
    } else {
        Err(LiveError::Unsupported(format!(
            "study `{}` does not run its trials as commands, with the built-in trainer or from the Python package, so they cannot be steered while they run",
            study.name
        )))
    }
}

/// The parameters of `trial` that can change while it runs: every one for commands and
/// Python trials, the learning rate, optimizer settings and regularisation for the built-in
/// trainer, none for a study whose trials cannot be steered.
pub fn changeable(study: &StudyRecord, trial: &FrozenTrial) -> Vec<String> {
    match front_end(study) {
        Ok(FrontEnd::Trainer) => trial
            .params
            .keys()
            .filter(|name| caviar_nn::hparams::LIVE.contains(&name.as_str()))
            .cloned()
            .collect(),
        Ok(_) => trial.params.keys().cloned().collect(),
        Err(_) => Vec::new(),
    }
}

/// Each change read as its parameter's type and checked against its distribution: (name,
/// value now, new value, outside the range). A value outside is refused unless `force`.
pub(crate) fn checked_values(
    trial: &FrozenTrial,
    changes: &[(String, NewValue)],
    force: bool,
) -> Result<Vec<(String, ParamValue, ParamValue, bool)>, LiveError> {
    let mut checked = Vec::with_capacity(changes.len());
    for (name, value) in changes {
        let (Some(dist), Some(current)) = (trial.distributions.get(name), trial.params.get(name))
        else {
            let known: Vec<&str> = trial.params.keys().map(String::as_str).collect();
            return Err(LiveError::NoSuchParam {
                number: trial.number,
                name: name.clone(),
                known: known.join(", "),
            });
        };
        let bad = |reason: String| LiveError::BadValue {
            name: name.clone(),
            reason,
        };
        let new = match value {
            NewValue::Text(text) => dist.read_value(text).map_err(bad)?,
            NewValue::Value(v) => dist.as_own_type(v),
        };
        let inside = dist.contains(&new);
        if !inside && !force {
            return Err(bad(format!(
                "{} is outside {}; give a value inside it, or force it (caviar set --force, Python force=True) and the record says so",
                new.short(),
                dist.describe()
            )));
        }
        checked.push((name.clone(), current.clone(), new, !inside));
    }
    Ok(checked)
}

/// Refuses changes the built-in trainer cannot take while it trains (they shape the network or
/// the run), and any change of a study whose trials cannot be steered.
pub(crate) fn refuse_structural(
    study: &StudyRecord,
    changes: &[(String, NewValue)],
) -> Result<(), LiveError> {
    if front_end(study)? == FrontEnd::Trainer {
        if let Some((name, _)) = changes
            .iter()
            .find(|(name, _)| !caviar_nn::hparams::LIVE.contains(&name.as_str()))
        {
            return Err(LiveError::BadValue {
                name: name.clone(),
                reason: format!(
                    "the built-in trainer cannot change it during training (it shapes the network or the run); it changes {} between epochs",
                    caviar_nn::hparams::LIVE.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Trial `number` of `study`, which must be running.
fn running_trial(
    storage: &dyn Storage,
    study: &StudyRecord,
    number: u64,
) -> Result<FrozenTrial, LiveError> {
    let trial = storage
        .trials_numbered(study.id, number, number + 1)?
        .into_iter()
        .next()
        .ok_or_else(|| LiveError::NoSuchTrial {
            study: study.name.clone(),
            number,
        })?;
    if trial.state != TrialState::Running {
        return Err(LiveError::NotRunning {
            number,
            state: trial.state,
        });
    }
    Ok(trial)
}

/// Asks running trial `number` of `study` to pause, resume or stop; returns the request's id.
///
/// A command's process group is stopped (SIGSTOP) and continued, the built-in trainer waits
/// between batches, a Python trial waits inside its next `report`; the heartbeat goes on, so a
/// paused trial is never presumed dead. A stopped trial ends complete with the last value it
/// reported (a Python trial at its next `should_prune`, which then says yes). Pausing a paused
/// trial, resuming one that is not paused, or stopping one twice is refused.
pub fn ask_control(
    storage: &dyn Storage,
    study: &StudyRecord,
    number: u64,
    action: ControlAction,
    who: &str,
    note: Option<&str>,
) -> Result<i64, LiveError> {
    front_end(study)?;
    let trial = running_trial(storage, study, number)?;
    let earlier = storage.controls(trial.id)?;
    // Requests not yet done count as done: a pause asked twice in a second is still one pause.
    let mut paused = false;
    let mut stopping = false;
    for request in &earlier {
        match request.action {
            ControlAction::Pause => paused = true,
            ControlAction::Resume => paused = false,
            ControlAction::Stop => stopping = true,
        }
    }
    let refuse = |why: String| Err(LiveError::Control(why));
    match action {
        _ if stopping => {
            return refuse(format!(
                "trial {number} has already been asked to stop; it ends at its next report"
            ))
        }
        ControlAction::Pause if paused => {
            return refuse(format!(
                "trial {number} is already paused; `caviar resume {} {number}` continues it",
                study.name
            ))
        }
        ControlAction::Resume if !paused => return refuse(format!("trial {number} is not paused")),
        _ => {}
    }
    Ok(storage.ask_control(
        trial.id,
        &NewControl {
            action,
            who: who.to_string(),
            note: note.map(String::from),
        },
    )?)
}

/// A change as asked: the parameter, its old and new value, and whether it leaves the range.
#[derive(Clone, Debug, PartialEq)]
pub struct Asked {
    /// The change's id.
    pub id: i64,
    /// The parameter.
    pub name: String,
    /// Its value now.
    pub current: ParamValue,
    /// The value asked for.
    pub new: ParamValue,
    /// Outside the distribution (asked with `force`).
    pub forced: bool,
}

/// `user@host` of this process, for the change record.
pub fn asker() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", caviar_run::WorkerId::current().host)
}

/// Asks running trial `number` of `study` to change parameters; every value is checked
/// before any is recorded.
/// A value outside its parameter's distribution is refused unless `force`.
///
/// Python trials apply a change at their next report; command trials read it from
/// `CAVIAR_PARAMS_FILE` and acknowledge it with `applied=VERSION`; the built-in trainer applies
/// learning rates, optimizer settings and regularisation after its next epoch and refuses
/// structural parameters.
pub fn ask_changes(
    storage: &dyn Storage,
    study: &StudyRecord,
    number: u64,
    changes: &[(String, NewValue)],
    who: &str,
    note: Option<&str>,
    force: bool,
) -> Result<Vec<Asked>, LiveError> {
    refuse_structural(study, changes)?;
    let trial = running_trial(storage, study, number)?;
    let checked = checked_values(&trial, changes, force)?;
    let mut asked = Vec::with_capacity(checked.len());
    for (name, current, new, forced) in checked {
        let id = storage.ask_param_change(
            trial.id,
            &NewParamChange {
                name: name.clone(),
                value: new.clone(),
                who: who.to_string(),
                note: note.map(String::from),
                forced,
            },
        )?;
        asked.push(Asked {
            id,
            name,
            current,
            new,
            forced,
        });
    }
    Ok(asked)
}
