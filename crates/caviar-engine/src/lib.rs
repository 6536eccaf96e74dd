//! caviar-engine: what every front end (the CLI, the kurobako adapter, the benches, the Python
//! module) shares beyond the core types: the run loop ([`drive`]: worker threads, heartbeats,
//! recovery of lost trials, cancellation by a token, progress through an [`Observer`]) and the
//! registry that turns a sampler or pruner name and its options into a configured object, with
//! one set of checks and messages.
//!
//! ```
//! use caviar_core::space::{Distribution, Scale, SearchSpace};
//! use caviar_engine::SamplerSpec;
//! let mut space = SearchSpace::new();
//! space.add("lr", Distribution::float(1e-5, 1.0, Scale::Log).unwrap()).unwrap();
//! let spec = SamplerSpec { multivariate: Some(true), ..SamplerSpec::of_kind("tpe") };
//! let sampler = spec.build(&space, &Default::default()).unwrap();
//! assert_eq!(sampler.name(), "tpe-mv");
//! let bad = SamplerSpec { gamma: Some(0.2), ..SamplerSpec::of_kind("gp") };
//! assert_eq!(bad.validate().unwrap_err().key, Some("gamma"));
//! ```
#![warn(missing_docs)]

mod checkpoints;
pub mod fingerprint;
mod live;
pub mod notes;
pub mod pbt;
mod registry;
pub mod resources;
pub mod retest;
mod run;
pub mod warm_start;

pub use checkpoints::{fork, forked_from, pending_fork_sources, Forked, TrialDirs, FORKED_FROM};
pub use live::{ask_changes, ask_control, asker, changeable, Asked, LiveError, NewValue};
pub use registry::{PrunerSpec, RegistryError, SamplerSpec, PRUNERS, SAMPLERS};
pub use run::{
    drive, open_study, recover, EngineError, Limits, Observer, Recovered, Recovery, Silent,
    StudySetup, DEFAULT_HEARTBEAT, DEFAULT_MAX_FAILURES,
};
