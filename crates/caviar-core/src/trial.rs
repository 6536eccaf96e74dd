//! Trials: one evaluation of the objective at one point, and its record.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::space::{Distribution, ParamValue};

/// Where a trial is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Queued, not yet claimed by a worker.
    Waiting,
    /// Claimed and being evaluated.
    Running,
    /// Finished with a finite objective value.
    Complete,
    /// Stopped early by a pruner.
    Pruned,
    /// Crashed, timed out, reported a non-finite value, or its worker died.
    Failed,
}

impl TrialState {
    /// The lower-case name used in JSON, CSV and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Waiting => "waiting",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "waiting" => TrialState::Waiting,
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "pruned" => TrialState::Pruned,
            "failed" => TrialState::Failed,
            _ => return None,
        })
    }

    /// Whether the trial has ended (complete, pruned or failed).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Failed
        )
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether larger or smaller objective values are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Smaller is better (losses, errors).
    #[default]
    Minimize,
    /// Larger is better (accuracies).
    Maximize,
}

impl Direction {
    /// The lower-case name used in study files.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "minimize" => Some(Direction::Minimize),
            "maximize" => Some(Direction::Maximize),
            _ => None,
        }
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }

    /// Orders values best first.
    pub fn cmp_best_first(self, a: f64, b: f64) -> std::cmp::Ordering {
        match self {
            Direction::Minimize => a.total_cmp(&b),
            Direction::Maximize => b.total_cmp(&a),
        }
    }
}

/// Storage-wide identifier of a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrialId(pub i64);

/// Storage-wide identifier of a study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StudyId(pub i64);

/// The full record of a trial, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrozenTrial {
    /// Storage identifier.
    pub id: TrialId,
    /// Number within its study, from 0, unique and gap-free.
    pub number: u64,
    /// Current state.
    pub state: TrialState,
    /// Suggested values, in user units.
    pub params: BTreeMap<String, ParamValue>,
    /// The distribution each value was drawn from.
    pub distributions: BTreeMap<String, Distribution>,
    /// The objective value, for complete (and pruned) trials.
    pub value: Option<f64>,
    /// Reported `(step, value)` pairs, by step.
    pub intermediate: Vec<(u64, f64)>,
    /// Why the trial failed, with the tail of its error output.
    pub error: Option<String>,
    /// Who ran it (`host:pid`).
    pub worker: Option<String>,
    /// Start time, milliseconds since the Unix epoch.
    pub started_ms: Option<i64>,
    /// End time, milliseconds since the Unix epoch.
    pub finished_ms: Option<i64>,
    /// The study's constraints evaluated on the trial's last reports, in the study's order:
    /// at most zero when one holds (see [`crate::constraint`]). Empty when the study has none
    /// or the trial did not complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<f64>,
    /// Every objective's value, in the study's order, for a complete trial of a study with
    /// several objectives (`value` is the first); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
}

impl FrozenTrial {
    /// Wall time of the trial in seconds, when it has ended.
    pub fn duration_secs(&self) -> Option<f64> {
        Some((self.finished_ms? - self.started_ms?) as f64 / 1000.0)
    }

    /// Whether every constraint holds (a trial without constraint values is feasible).
    pub fn is_feasible(&self) -> bool {
        crate::constraint::is_feasible(&self.constraints)
    }

    /// How far the trial is from feasible: the sum of its broken constraints' values.
    pub fn violation(&self) -> f64 {
        crate::constraint::violation(&self.constraints)
    }

    /// The last reported intermediate value.
    pub fn last_intermediate(&self) -> Option<(u64, f64)> {
        self.intermediate.last().copied()
    }
}

/// Trials sorted best first among those complete with a value that meet the study's
/// constraints.
pub fn best_trials(trials: &[FrozenTrial], direction: Direction, k: usize) -> Vec<&FrozenTrial> {
    let mut done: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| {
            t.state == TrialState::Complete
                && t.value.is_some_and(f64::is_finite)
                && t.is_feasible()
        })
        .collect();
    done.sort_by(|a, b| {
        direction
            .cmp_best_first(a.value.unwrap(), b.value.unwrap())
            .then(a.number.cmp(&b.number))
    });
    done.truncate(k);
    done
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
