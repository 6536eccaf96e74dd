//! A study as one JSON document: everything stored of it, for `caviar export`, `caviar import`
//! and `caviar copy` between storages.
//!
//! The format is versioned ([`FORMAT`], [`VERSION`]) and lossless: exporting a study, importing
//! the document elsewhere and exporting again gives the same bytes. Storage ids are left out
//! (they belong to one database); order stands in for them (trials by number, changes and
//! controls as they were asked). A non-finite reported value is written as `null` and read
//! back as NaN, as the databases store it.
//!
//! ```
//! use caviar_core::document::{export, FORMAT};
//! use caviar_core::prelude::*;
//! use caviar_core::storage::{InMemoryStorage, Storage};
//! use std::sync::Arc;
//!
//! let source: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
//! let study = Study::builder("toy").storage(source.clone()).build().unwrap();
//! study.optimize(3, |t| t.suggest_float("x", 0.0, 1.0, Scale::Linear)).unwrap();
//! let doc = export(&*source, study.record()).unwrap();
//! assert_eq!((doc.format.as_str(), doc.trials.len()), (FORMAT, 3));
//!
//! let target = InMemoryStorage::new();
//! target.import_study(&doc).unwrap();
//! let copied = target.study("toy").unwrap().unwrap();
//! assert_eq!(serde_json::to_string(&export(&target, &copied).unwrap()).unwrap(),
//!            serde_json::to_string(&doc).unwrap());
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::space::{Distribution, ParamValue};
use crate::storage::{AttrOwner, ControlAction, Storage, StorageError, StudyRecord};
use crate::trial::{Direction, TrialState};

/// The `format` field of every study document.
pub const FORMAT: &str = "caviar-study";

/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// One study with everything stored of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyDocument {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this build.
    pub version: u32,
    /// The study's name.
    pub name: String,
    /// Its direction.
    pub direction: Direction,
    /// The reported value that is its objective.
    pub metric: Option<String>,
    /// Its definition (the study file's text and what was derived from it).
    pub spec: Option<serde_json::Value>,
    /// The study it refines, by name.
    pub parent: Option<String>,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: i64,
    /// Attributes samplers share across workers (zoom rounds).
    pub attrs: BTreeMap<String, serde_json::Value>,
    /// User attributes.
    pub user_attrs: BTreeMap<String, serde_json::Value>,
    /// Its trials, by number.
    pub trials: Vec<TrialDocument>,
}

/// One trial with everything stored of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialDocument {
    /// Number within the study.
    pub number: u64,
    /// State.
    pub state: TrialState,
    /// 0, or how many times its parameters were queued again after lost runs.
    pub attempt: u32,
    /// Parameter values.
    pub params: BTreeMap<String, ParamValue>,
    /// Their distributions.
    pub distributions: BTreeMap<String, Distribution>,
    /// Objective value.
    pub value: Option<f64>,
    /// Reported `(step, value)` pairs of the objective; `null` for a value that was not finite.
    pub intermediate: Vec<(u64, Option<f64>)>,
    /// Every other reported value, by name: `(step, value)` pairs, `null` where not finite.
    pub metrics: BTreeMap<String, Vec<(u64, Option<f64>)>>,
    /// Why it failed.
    pub error: Option<String>,
    /// Who ran it.
    pub worker: Option<String>,
    /// Start, ms since the Unix epoch.
    pub started_ms: Option<i64>,
    /// End, ms since the Unix epoch.
    pub finished_ms: Option<i64>,
    /// User attributes.
    pub user_attrs: BTreeMap<String, serde_json::Value>,
    /// The last lines its program printed.
    pub log: Option<String>,
    /// Parameter changes asked of it while it ran, oldest first.
    pub param_changes: Vec<ChangeDocument>,
    /// Pause, resume and stop requests, oldest first.
    pub controls: Vec<ControlDocument>,
    /// The study's constraints evaluated for it (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<f64>,
    /// Every objective's value, for a study with several (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
}

/// A parameter change of a running trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeDocument {
    /// The parameter.
    pub name: String,
    /// Its value before (once applied).
    pub old: Option<ParamValue>,
    /// The value asked for.
    pub new: ParamValue,
    /// Who asked.
    pub who: String,
    /// Why.
    pub note: Option<String>,
    /// Asked outside its distribution.
    pub forced: bool,
    /// When asked.
    pub asked_ms: i64,
    /// The step at which the trial applied it.
    pub applied_step: Option<u64>,
    /// When applied.
    pub applied_ms: Option<i64>,
}

/// A pause, resume or stop request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlDocument {
    /// What was asked.
    pub action: ControlAction,
    /// Who asked.
    pub who: String,
    /// Why.
    pub note: Option<String>,
    /// When asked.
    pub asked_ms: i64,
    /// When done.
    pub applied_ms: Option<i64>,
    /// The step of the trial's last report when done.
    pub applied_step: Option<u64>,
}

/// Why a document cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON of this shape.
    #[error("not a caviar study document: {0}")]
    Malformed(String),
    /// Another format, or a newer version than this build reads.
    #[error("{0}")]
    Unsupported(String),
}

impl StudyDocument {
    /// Reads a document from JSON, checking its format and version.
    pub fn from_json(text: &str) -> Result<Self, DocumentError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DocumentError::Malformed(e.to_string()))?;
        match (value.get("format").and_then(|f| f.as_str()), value.get("version").and_then(|v| v.as_u64())) {
            (Some(FORMAT), Some(v)) if v <= VERSION as u64 => {}
            (Some(FORMAT), Some(v)) => {
                return Err(DocumentError::Unsupported(format!(
                    "the document is version {v} of the study format; this caviar reads up to {VERSION}: upgrade caviar"
                )))
            }
            _ => {
                return Err(DocumentError::Unsupported(format!(
                    "the document's `format` is not \"{FORMAT}\" with a `version`; write it with `caviar export`"
                )))
            }
        }
        let doc: StudyDocument =
            serde_json::from_value(value).map_err(|e| DocumentError::Malformed(e.to_string()))?;
        doc.check()?;
        Ok(doc)
    }

    /// What a storage relies on: trial numbers unique and in order, every parameter with a
    /// valid distribution.
    fn check(&self) -> Result<(), DocumentError> {
        let bad = |what: String| Err(DocumentError::Malformed(what));
        for pair in self.trials.windows(2) {
            if pair[1].number <= pair[0].number {
                return bad(format!(
                    "trial {} follows trial {}: trials must be listed by number, each once",
                    pair[1].number, pair[0].number
                ));
            }
        }
        for t in &self.trials {
            for name in t.params.keys() {
                let Some(dist) = t.distributions.get(name) else {
                    return bad(format!(
                        "trial {}: parameter `{name}` has no distribution",
                        t.number
                    ));
                };
                if let Err(reason) = dist.validate() {
                    return bad(format!("trial {}: parameter `{name}`: {reason}", t.number));
                }
            }
        }
        Ok(())
    }
}

/// Everything stored of `study`, as a document.
pub fn export(storage: &dyn Storage, study: &StudyRecord) -> Result<StudyDocument, StorageError> {
    let attrs = storage.study_attrs(study.id)?;
    let user_attrs = storage.user_attrs(AttrOwner::Study(study.id))?;
    let trial_attrs = storage.trial_user_attrs(study.id)?;
    let mut changes = storage.study_param_changes(study.id)?;
    let attempts = storage.trial_attempts(study.id)?;
    let mut metrics = storage.trial_metrics(study.id)?;
    let mut trials = storage.trials(study.id)?;
    trials.sort_by_key(|t| t.number);
    let mut docs = Vec::with_capacity(trials.len());
    for t in trials {
        let controls = storage
            .controls(t.id)?
            .into_iter()
            .map(|c| ControlDocument {
                action: c.action,
                who: c.who,
                note: c.note,
                asked_ms: c.asked_ms,
                applied_ms: c.applied_ms,
                applied_step: c.applied_step,
            })
            .collect();
        let param_changes = changes
            .remove(&t.id)
            .unwrap_or_default()
            .into_iter()
            .map(|c| ChangeDocument {
                name: c.name,
                old: c.old,
                new: c.new,
                who: c.who,
                note: c.note,
                forced: c.forced,
                asked_ms: c.asked_ms,
                applied_step: c.applied_step,
                applied_ms: c.applied_ms,
            })
            .collect();
        docs.push(TrialDocument {
            number: t.number,
            state: t.state,
            attempt: attempts.get(&t.id).copied().unwrap_or(0),
            params: t.params,
            distributions: t.distributions,
            value: t.value,
            intermediate: t
                .intermediate
                .into_iter()
                .map(|(step, v)| (step, v.is_finite().then_some(v)))
                .collect(),
            metrics: metrics
                .remove(&t.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, points)| {
                    let points = points
                        .into_iter()
                        .map(|(step, v)| (step, v.is_finite().then_some(v)))
                        .collect();
                    (name, points)
                })
                .collect(),
            error: t.error,
            worker: t.worker,
            started_ms: t.started_ms,
            finished_ms: t.finished_ms,
            user_attrs: trial_attrs.get(&t.id).cloned().unwrap_or_default(),
            log: storage.trial_log(t.id)?,
            param_changes,
            controls,
            constraints: t.constraints,
            values: t.values,
        });
    }
    Ok(StudyDocument {
        format: FORMAT.into(),
        version: VERSION,
        name: study.name.clone(),
        direction: study.direction,
        metric: study.metric.clone(),
        spec: study.spec.clone(),
        parent: study.parent.clone(),
        created_ms: study.created_ms,
        attrs,
        user_attrs,
        trials: docs,
    })
}

impl StudyDocument {
    /// The order in which its finished trials count as finished: by end time, then number
    /// (what readers of [`Storage::finished_since`] see in the imported study).
    pub fn finish_order(&self) -> Vec<usize> {
        let mut done: Vec<usize> = (0..self.trials.len())
            .filter(|&i| self.trials[i].state.is_finished())
            .collect();
        done.sort_by_key(|&i| (self.trials[i].finished_ms, self.trials[i].number));
        done
    }
}
