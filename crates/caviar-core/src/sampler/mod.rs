//! Samplers decide which point a trial tries.
//!
//! A sampler draws a coordinate in each parameter's unit space and maps it through the
//! distribution, so every sampler honours log and reverse-log scales. Samplers derive their
//! randomness from (seed, trial number, parameter name), never from call order: the same seed
//! gives exactly the same trials, with one worker or many.

mod grid;
mod random;
mod sobol;
mod tpe;
mod zoom;

pub use grid::GridSampler;
pub use random::RandomSampler;
pub use sobol::{SobolSampler, SobolSequence};
pub use tpe::TpeSampler;
pub use zoom::{ZoomBox, ZoomSampler};

use std::sync::Arc;

use crate::space::{Distribution, ParamValue};
use crate::trial::{Direction, FrozenTrial};

/// Errors a sampler can raise.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SamplerError {
    /// Every point of a finite sampler (grid) has been handed out.
    #[error("the grid is exhausted: all {0} points have been tried")]
    Exhausted(u64),
    /// The sampler cannot draw this parameter.
    #[error("parameter `{name}`: {reason}")]
    Unsupported {
        /// The parameter.
        name: String,
        /// Why, and the fix.
        reason: String,
    },
}

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

    /// The most trials this sampler can propose (a grid's size), if bounded.
    fn max_trials(&self) -> Option<u64> {
        None
    }

    /// Whether [`SampleContext::history`] must hold the study's trials.
    fn needs_history(&self) -> bool {
        false
    }

    /// Short name for logs and tables.
    fn name(&self) -> &'static str;
}

#[cfg(test)]
mod property_tests;
