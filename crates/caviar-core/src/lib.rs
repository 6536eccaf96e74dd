//! caviar-core: the pure logic of the caviar hyperparameter tuner.
//!
//! A [`Study`](study::Study) asks a [`Sampler`](sampler::Sampler) for points in a typed
//! [search space](space), trials report their learning curves, and every event goes to a
//! [`Storage`](storage::Storage). This crate does no I/O of its own.
//!
//! ```
//! use caviar_core::prelude::*;
//! let study = Study::builder("demo").direction(Direction::Maximize).build().unwrap();
//! let mut trial = study.ask().unwrap();
//! let lr = trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
//! let beta1 = trial.suggest_float("beta1", 0.9, 0.999, Scale::ReverseLog).unwrap();
//! trial.report(1, 0.5).unwrap();
//! study.tell(trial, Outcome::Complete(lr * beta1)).unwrap();
//! ```
#![warn(missing_docs)]

pub mod analysis;
pub mod constraint;
pub mod document;
pub mod importance;
mod linalg;
mod optimize;
pub mod pareto;
pub mod pruner;
pub mod rng;
pub mod sampler;
pub mod space;
pub mod storage;
pub mod study;
pub mod table;
pub mod trial;

/// The names most programs need.
pub mod prelude {
    pub use crate::pruner::{
        HyperbandPruner, MedianPruner, PercentilePruner, Pruner, SuccessiveHalvingPruner,
    };
    pub use crate::sampler::{GridSampler, RandomSampler, Sampler, SobolSampler};
    pub use crate::space::{Distribution, ParamValue, Scale, SearchSpace};
    pub use crate::storage::{InMemoryStorage, Storage};
    pub use crate::study::{Outcome, Study, StudyError, Trial, TrialError};
    pub use crate::trial::{Direction, FrozenTrial, TrialState};
}
