//! Samplers decide which point a trial tries.
//!
//! A sampler draws a coordinate in each parameter's unit space and maps it through the
//! distribution, so every sampler honours log and reverse-log scales. Samplers derive their
//! randomness from (seed, trial number, parameter name), never from call order: the same seed
//! gives exactly the same trials, with one worker or many.

mod auto;
mod gp;
mod grid;
mod inferred;
mod nsga2;
mod random;
mod sobol;
mod tpe;
mod tpe_cells;
mod tpe_multi;
mod tpe_parzen;
mod zoom;

pub use auto::{AutoChoice, AutoSampler};
pub use gp::GpSampler;
pub use grid::GridSampler;
pub use inferred::{BuildForSpace, InferredSpace};
pub use nsga2::Nsga2Sampler;
pub use random::RandomSampler;
pub use sobol::{SobolSampler, SobolSequence};
pub use tpe::TpeSampler;
pub use zoom::{ZoomBox, ZoomSampler};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::space::{Distribution, ParamValue};
use crate::storage::Storage;
use crate::trial::{Direction, FrozenTrial, StudyId};

/// Errors a sampler can raise.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SamplerError {
    /// Every point of a finite sampler (grid) has been handed out.
    #[error("the grid is exhausted: all {0} points have been tried")]
    Exhausted(u64),
    /// The storage failed while the sampler shared a decision.
    #[error("storage: {0}")]
    Storage(String),
    /// The sampler cannot draw this parameter.
    #[error("parameter `{name}`: {reason}")]
    Unsupported {
        /// The parameter.
        name: String,
        /// Why, and the fix.
        reason: String,
    },
}

/// Values a sampler chose for several parameters at once, with the distribution each was drawn
/// from.
pub type JointSample = BTreeMap<String, (Distribution, ParamValue)>;

/// What a sampler knows when it draws one parameter of one trial.
#[derive(Clone, Copy, Debug)]
pub struct SampleContext<'a> {
    /// The trial's number within its study.
    pub trial_number: u64,
    /// The study's direction.
    pub direction: Direction,
    /// Finished trials of the study in the order they finished (empty unless
    /// [`Sampler::needs_history`]). Between asks of one study this list only grows at the end,
    /// so a sampler may keep state and read only what is new.
    pub finished: &'a [Arc<FrozenTrial>],
    /// The study's other running trials, with the parameters they have so far.
    pub running: &'a [Arc<FrozenTrial>],
    /// The study's shared attributes, where a sampler records decisions every worker must
    /// share (absent outside a study, e.g. in tests).
    pub attrs: Option<StudyAttrs<'a>>,
    /// Multi-fidelity: whether the study prunes, so that model-based samplers learn from
    /// pruned trials too (see [`SampleContext::loss`]); otherwise from complete trials only.
    pub learn_from_pruned: bool,
    /// With several objectives, how the finished trials rank: [`SampleContext::loss`] reads
    /// it, so TPE splits by Pareto front (a multi-objective TPE). `None` with one objective.
    pub objectives: Option<&'a crate::pareto::ObjectiveRanks>,
}

/// Above every loss of a feasible trial: infeasible trials rank from here, by violation.
const INFEASIBLE_LOSS: f64 = 1e300;

/// Steps beyond any real curve: complete trials rank as if they had got this far.
const COMPLETE_STEP: f64 = (1u64 << 40) as f64;

impl SampleContext<'_> {
    /// The loss (lower is better) a model-based sampler learns from for trial `t`. Only its
    /// order is meaningful when pruned trials count, which suits TPE; the GP, which models
    /// values, reads complete trials only.
    ///
    /// By default, the final value of a complete trial. When the study prunes (as Optuna's TPE
    /// does, and BOHB learns from every budget): a complete trial ranks before every pruned
    /// one, a pruned trial that got further before one stopped earlier, and trials stopped at
    /// the same step by the value they had there. Failed trials and trials that never reported
    /// do not count. The order is packed into one number: -4 per step reached, plus the value
    /// squashed into (-1, 1).
    ///
    /// A complete trial that breaks a constraint ranks after every other (pruned ones too, as
    /// in Optuna's constrained TPE), by how far it breaks them: the model learns where the
    /// feasible region is.
    pub fn loss(&self, t: &FrozenTrial) -> Option<f64> {
        if t.state == crate::trial::TrialState::Complete && !t.is_feasible() {
            let v = t.violation();
            return Some(INFEASIBLE_LOSS * (1.0 + v / (1.0 + v)));
        }
        if let Some(objectives) = self.objectives {
            // Pruning is off with several objectives: complete trials only, by front.
            return objectives.loss.get(&t.id).copied();
        }
        if !self.learn_from_pruned {
            return loss_of(t, self.direction);
        }
        let (reached, value) = match t.state {
            crate::trial::TrialState::Complete => (COMPLETE_STEP, t.value?),
            crate::trial::TrialState::Pruned => {
                let (step, value) = t.intermediate.last()?;
                (*step as f64, *value)
            }
            _ => return None,
        };
        let v = match self.direction {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        };
        v.is_finite()
            .then(|| -4.0 * reached.min(COMPLETE_STEP) + v / (1.0 + v.abs()))
    }
}

/// A study's attributes in its storage, as a sampler sees them.
#[derive(Clone, Copy)]
pub struct StudyAttrs<'a> {
    /// The study's storage.
    pub storage: &'a dyn Storage,
    /// The study.
    pub study: StudyId,
}

impl std::fmt::Debug for StudyAttrs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StudyAttrs(study {})", self.study.0)
    }
}

impl StudyAttrs<'_> {
    /// Stores `value` under `key` unless a worker already did; returns the stored value.
    pub fn insert(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, SamplerError> {
        self.storage
            .study_attr_insert(self.study, key, value)
            .map_err(|e| SamplerError::Storage(e.to_string()))
    }
}

/// Chooses parameter values. See the module docs.
pub trait Sampler: Send + Sync {
    /// Draws a value of `dist` for parameter `name` of the trial in `ctx`.
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError>;

    /// Draws the parameters a sampler models jointly (GP, multivariate TPE) all at once. Called
    /// once per trial, before its first suggestion; a value it returns is used when the trial
    /// suggests that parameter with the same distribution, and every other parameter goes to
    /// [`Sampler::sample`]. The default draws nothing jointly.
    fn sample_joint(&self, ctx: &SampleContext<'_>) -> Result<JointSample, SamplerError> {
        let _ = ctx;
        Ok(JointSample::new())
    }

    /// The most trials this sampler can propose (a grid's size), if bounded.
    fn max_trials(&self) -> Option<u64> {
        None
    }

    /// Whether [`SampleContext::finished`] must hold the study's trials.
    fn needs_history(&self) -> bool {
        false
    }

    /// Whether it models earlier studies' trials given as a warm start
    /// ([`StudyBuilder::prior`](crate::study::StudyBuilder::prior)) as if they were the
    /// study's own finished trials (model-based samplers: TPE, GP).
    fn learns_from_prior(&self) -> bool {
        false
    }

    /// Whether it can serve a study with several objectives (it models one value, or ranks
    /// trials through [`SampleContext::loss`], or does not learn).
    fn handles_several_objectives(&self) -> bool {
        true
    }

    /// Short name for logs and tables.
    fn name(&self) -> &'static str;
}

/// ln √(2π), the normal density's constant.
pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The loss of a complete trial (lower is better whatever the direction); `None` for trials
/// that did not complete with a finite value.
pub(crate) fn loss_of(t: &FrozenTrial, direction: Direction) -> Option<f64> {
    match (t.state, t.value) {
        (crate::trial::TrialState::Complete, Some(v)) if v.is_finite() => Some(match direction {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod conditional_tests;
#[cfg(test)]
mod property_tests;
