//! Pruners decide, from the learning curves trials report, when a trial should stop early.
//!
//! A trial reports intermediate values (`trial.report(epoch, val_loss)`); after each report it
//! asks [`Trial::should_prune`](crate::study::Trial::should_prune), which hands the study's
//! pruner this trial's curve and everyone else's. Pruners only decide *when to stop*; what to
//! try is the sampler's business (Ray Tune's search algorithm / scheduler split).
//!
//! - [`MedianPruner`] / [`PercentilePruner`]: stop a trial whose best value so far is worse than
//!   the median (a percentile) of what complete trials had reported at the same step.
//! - [`SuccessiveHalvingPruner`] (asynchronous successive halving, ASHA): at rungs of
//!   `min_resource · η^k` steps, only the best 1/η of the trials that reached the rung go on.
//! - [`HyperbandPruner`]: several successive-halving brackets with different first rungs, so a
//!   slow starter is not always judged after one epoch.
//!
//! ```
//! use caviar_core::prelude::*;
//! use caviar_core::pruner::SuccessiveHalvingPruner;
//!
//! let study = Study::builder("curves")
//!     .pruner(SuccessiveHalvingPruner::new(1, 3))
//!     .build()
//!     .unwrap();
//! study.optimize(30, |trial| {
//!     let rate = trial.suggest_float("rate", 0.01, 1.0, Scale::Log)?;
//!     let mut loss = 1.0;
//!     for epoch in 1..=27 {
//!         loss *= 1.0 - rate / 2.0;
//!         trial.report(epoch, loss)?;
//!         if trial.should_prune()? {
//!             return Err(TrialError::Pruned);
//!         }
//!     }
//!     Ok(loss)
//! }).unwrap();
//! let pruned = study.trials().unwrap().iter().filter(|t| t.state == TrialState::Pruned).count();
//! assert!(pruned > 10);
//! ```

mod halving;
mod percentile;

pub use halving::{HyperbandPruner, SuccessiveHalvingPruner};
pub use percentile::{MedianPruner, PercentilePruner};

use std::sync::Arc;

use crate::trial::{Direction, FrozenTrial};

/// What a pruner sees when a trial asks whether to stop.
#[derive(Clone, Copy, Debug)]
pub struct PruneContext<'a> {
    /// The study's direction.
    pub direction: Direction,
    /// The trial asking, with every value it has reported (by step).
    pub trial: &'a FrozenTrial,
    /// The study's finished trials (complete, pruned, failed), in the order they finished.
    pub finished: &'a [Arc<FrozenTrial>],
    /// The study's other running trials, with what they have reported so far.
    pub running: &'a [Arc<FrozenTrial>],
}

impl PruneContext<'_> {
    /// The step and value the trial reported last.
    pub fn last(&self) -> Option<(u64, f64)> {
        self.trial.last_intermediate()
    }

    /// Every other trial of the study, finished or running.
    pub fn others(&self) -> impl Iterator<Item = &FrozenTrial> {
        self.finished
            .iter()
            .chain(self.running.iter())
            .map(|t| &**t)
            .filter(|t| t.id != self.trial.id)
    }
}

/// Decides whether a trial stops early. See the module docs.
pub trait Pruner: Send + Sync {
    /// Whether the trial in `ctx` should stop now, having just reported its last value.
    fn prune(&self, ctx: &PruneContext<'_>) -> bool;

    /// Whether this pruner can ever stop a trial (false spares [`Trial::should_prune`] its
    /// reads of the study).
    ///
    /// [`Trial::should_prune`]: crate::study::Trial::should_prune
    fn is_active(&self) -> bool {
        true
    }

    /// The steps at which this pruner compares trials (its rungs, then the full budget when
    /// known), when it works in rungs.
    fn budgets(&self) -> Option<Vec<u64>> {
        None
    }

    /// Short name for logs and tables.
    fn name(&self) -> &'static str;
}

/// Never prunes (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NopPruner;

impl Pruner for NopPruner {
    fn prune(&self, _ctx: &PruneContext<'_>) -> bool {
        false
    }

    fn is_active(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "none"
    }
}

/// Settings a pruner rejects, with the field and the fix.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("{field}: {reason}")]
pub struct PrunerError {
    /// The offending setting.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub reason: String,
}

/// The value a trial reported at the first step at or after `step`, and that step.
pub fn value_at_or_after(trial: &FrozenTrial, step: u64) -> Option<(u64, f64)> {
    let i = trial.intermediate.partition_point(|&(s, _)| s < step);
    trial.intermediate.get(i).copied()
}

#[cfg(test)]
mod tests;
