//! Warm start: earlier studies' complete trials that fit a new study's space, given to its
//! model-based sampler as prior observations (`warm_start = ["OLD"]` in a study file,
//! `--warm-start OLD`, `warm_start=` in Python).
//!
//! ```
//! use std::sync::Arc;
//! use caviar_core::prelude::*;
//! use caviar_core::storage::{InMemoryStorage, Storage};
//! use caviar_core::space::SearchSpace;
//! use caviar_engine::warm_start;
//!
//! let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
//! let old = Study::builder("old").storage(storage.clone()).build().unwrap();
//! old.optimize(10, |t| Ok(t.suggest_float("x", 0.0, 10.0, Scale::Linear)?)).unwrap();
//! // The new study searches a narrower range: only the old trials inside it are used.
//! let mut space = SearchSpace::new();
//! space.add("x", Distribution::float(0.0, 5.0, Scale::Linear).unwrap()).unwrap();
//! let warm = warm_start::load(&*storage, &["old".into()], Some(&space), Direction::Minimize, None).unwrap();
//! assert!(warm.trials.iter().all(|t| t.params["x"].as_f64().unwrap() <= 5.0));
//! assert_eq!(warm.used, vec![("old".to_string(), warm.trials.len())]);
//! ```

use std::collections::BTreeMap;

use caviar_core::space::SearchSpace;
use caviar_core::storage::{QueuedParam, Storage, StorageError};
use caviar_core::trial::{best_trials, Direction, FrozenTrial, TrialId, TrialState};

/// The new study's user attribute that lists the studies it was warm-started from and how many
/// of their trials it used: `[{"study": "old", "trials": 40}]`.
pub const WARM_START: &str = "warm_start";

/// Why a warm start cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WarmStartError {
    /// No study has the name.
    #[error("warm_start names `{0}`, which is not a study in this storage; run it first, fix the name, or remove it")]
    NoSuchStudy(String),
    /// The old study optimised the other way or another metric.
    #[error(
        "warm_start study `{study}` {what}; its values would mislead the model, so leave it out"
    )]
    Mismatch {
        /// The old study.
        study: String,
        /// What differs.
        what: String,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The prior observations of a warm start.
#[derive(Clone, Debug, Default)]
pub struct WarmStart {
    /// The old trials that fit, their parameters in the new study's distributions. Their ids
    /// are negative (they are not trials of the new study).
    pub trials: Vec<FrozenTrial>,
    /// Each old study and how many of its trials were used.
    pub used: Vec<(String, usize)>,
}

impl WarmStart {
    /// The best `k` prior configurations, for queuing as the new study's first trials
    /// (`enqueue_best`).
    pub fn best(&self, direction: Direction, k: usize) -> Vec<Vec<QueuedParam>> {
        best_trials(&self.trials, direction, k)
            .into_iter()
            .map(|t| {
                t.params
                    .iter()
                    .map(|(name, value)| {
                        (name.clone(), t.distributions[name].clone(), value.clone())
                    })
                    .collect()
            })
            .collect()
    }
}

/// Reads the complete trials of the `studies` and keeps those that fit `space` (every
/// parameter of theirs that the space has must hold its value; parameters the space lacks are
/// dropped; a trial left with none is dropped). Without a space (define-by-run) they are kept
/// as they are. The old studies must share `direction` and, when both name one, the `metric`.
pub fn load(
    storage: &dyn Storage,
    studies: &[String],
    space: Option<&SearchSpace>,
    direction: Direction,
    metric: Option<&str>,
) -> Result<WarmStart, WarmStartError> {
    let mut warm = WarmStart::default();
    for name in studies {
        let record = storage
            .study(name)?
            .ok_or_else(|| WarmStartError::NoSuchStudy(name.clone()))?;
        if record.direction != direction {
            return Err(WarmStartError::Mismatch {
                study: name.clone(),
                what: format!(
                    "was to {} while this study is to {}",
                    record.direction.as_str(),
                    direction.as_str()
                ),
            });
        }
        if let (Some(old), Some(new)) = (record.metric.as_deref(), metric) {
            if old != new {
                return Err(WarmStartError::Mismatch {
                    study: name.clone(),
                    what: format!("optimised `{old}` while this study optimises `{new}`"),
                });
            }
        }
        let before = warm.trials.len();
        for t in storage.trials(record.id)? {
            if let Some(fitted) = fit(t, space) {
                warm.trials.push(fitted);
            }
        }
        warm.used.push((name.clone(), warm.trials.len() - before));
    }
    for (i, t) in warm.trials.iter_mut().enumerate() {
        t.id = TrialId(-1 - i as i64);
    }
    Ok(warm)
}

/// The trial restricted to `space` with its distributions, if it is complete and fits.
fn fit(mut t: FrozenTrial, space: Option<&SearchSpace>) -> Option<FrozenTrial> {
    if t.state != TrialState::Complete || !t.value.is_some_and(f64::is_finite) {
        return None;
    }
    let Some(space) = space else {
        return Some(t);
    };
    let mut params = BTreeMap::new();
    let mut distributions = BTreeMap::new();
    for (name, value) in std::mem::take(&mut t.params) {
        let Some(dist) = space.get(&name) else {
            continue;
        };
        if !dist.contains(&value) {
            return None;
        }
        distributions.insert(name.clone(), dist.clone());
        params.insert(name, value);
    }
    if params.is_empty() {
        return None;
    }
    t.params = params;
    t.distributions = distributions;
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::prelude::*;
    use caviar_core::sampler::{Sampler, TpeSampler};
    use caviar_core::storage::InMemoryStorage;
    use std::sync::Arc;

    fn bowl(t: &mut Trial) -> Result<f64, TrialError> {
        let x = t.suggest_float("x", -5.0, 5.0, Scale::Linear)?;
        let y = t.suggest_float("y", -5.0, 5.0, Scale::Linear)?;
        let z = t.suggest_float("z", -5.0, 5.0, Scale::Linear)?;
        Ok((x - 0.7).powi(2) + (y + 1.3).powi(2) + (z - 2.1).powi(2))
    }

    /// Trials a study needs before its best is at most `target` (`cap` + 1 if never).
    fn trials_to_reach(study: &Study, target: f64, cap: u64) -> u64 {
        for n in 1..=cap {
            study.optimize(1, bowl).unwrap();
            if study.best_trial().unwrap().unwrap().value.unwrap() <= target {
                return n;
            }
        }
        cap + 1
    }

    #[test]
    fn a_warm_tpe_reaches_the_old_best_in_fewer_trials_than_a_cold_one() {
        let mut space = SearchSpace::new();
        for name in ["x", "y", "z"] {
            space
                .add(name, Distribution::float(-5.0, 5.0, Scale::Linear).unwrap())
                .unwrap();
        }
        let (mut warm_all, mut cold_all, mut warm_wins) = (Vec::new(), Vec::new(), 0);
        for seed in 0..8u64 {
            let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
            let old = Study::builder("old")
                .storage(storage.clone())
                .sampler(TpeSampler::new(seed))
                .build()
                .unwrap();
            old.optimize(60, bowl).unwrap();
            let target = old.best_trial().unwrap().unwrap().value.unwrap();
            let warm = load(
                &*storage,
                &["old".into()],
                Some(&space),
                Direction::Minimize,
                None,
            )
            .unwrap();
            assert_eq!(warm.trials.len(), 60);
            let cold_study = Study::builder("cold")
                .storage(storage.clone())
                .sampler(TpeSampler::new(seed + 100))
                .build()
                .unwrap();
            let warm_study = Study::builder("warm")
                .storage(storage.clone())
                .sampler(TpeSampler::new(seed + 100))
                .prior(warm.trials)
                .build()
                .unwrap();
            let cold = trials_to_reach(&cold_study, target, 200);
            let warm = trials_to_reach(&warm_study, target, 200);
            eprintln!("seed {seed}: old best {target:.4}, cold {cold} trials, warm {warm}");
            // The prior is no trial of the new study.
            assert_eq!(warm_study.trials().unwrap().len() as u64, warm);
            cold_all.push(cold);
            warm_all.push(warm);
            warm_wins += u32::from(warm < cold);
        }
        warm_all.sort_unstable();
        cold_all.sort_unstable();
        // Medians of eight: the mean of the middle two.
        let median = |v: &[u64]| (v[3] + v[4]) as f64 / 2.0;
        assert!(warm_wins >= 6, "warm won {warm_wins} of 8");
        assert!(
            median(&warm_all) * 2.0 < median(&cold_all),
            "median trials: warm {warm_all:?}, cold {cold_all:?}"
        );
    }

    #[test]
    fn a_warm_gp_models_the_old_trials_from_its_first_trial() {
        use caviar_core::sampler::GpSampler;
        let mut space = SearchSpace::new();
        for name in ["x", "y", "z"] {
            space
                .add(name, Distribution::float(-5.0, 5.0, Scale::Linear).unwrap())
                .unwrap();
        }
        let distance = |t: &FrozenTrial| {
            let p = |n: &str| t.params[n].as_f64().unwrap();
            ((p("x") - 0.7).powi(2) + (p("y") + 1.3).powi(2) + (p("z") - 2.1).powi(2)).sqrt()
        };
        for seed in 0..3u64 {
            let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
            let old = Study::builder("old")
                .storage(storage.clone())
                .sampler(TpeSampler::new(seed))
                .build()
                .unwrap();
            old.optimize(40, bowl).unwrap();
            let prior = load(
                &*storage,
                &["old".into()],
                Some(&space),
                Direction::Minimize,
                None,
            )
            .unwrap()
            .trials;
            let first_three = |prior: Vec<FrozenTrial>, name: &str| {
                let study = Study::builder(name)
                    .storage(storage.clone())
                    .sampler(GpSampler::new(&space, seed))
                    .prior(prior)
                    .build()
                    .unwrap();
                study.optimize(3, bowl).unwrap();
                study.trials().unwrap().iter().map(distance).sum::<f64>() / 3.0
            };
            let (warm, cold) = (first_three(prior, "warm"), first_three(Vec::new(), "cold"));
            eprintln!("seed {seed}: mean distance to the optimum, warm {warm:.3}, cold {cold:.3}");
            // Cold, the GP starts with quasi-random points; warm, it proposes near the optimum.
            assert!(
                warm < 1.0 && warm < cold / 2.0,
                "seed {seed}: warm {warm}, cold {cold}"
            );
        }
    }

    #[test]
    fn a_define_by_run_gp_learns_from_the_prior_and_sobol_ignores_it() {
        use caviar_core::sampler::{GpSampler, InferredSpace, SobolSampler};
        let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
        let old = Study::builder("old")
            .storage(storage.clone())
            .sampler(TpeSampler::new(3))
            .build()
            .unwrap();
        old.optimize(40, bowl).unwrap();
        let prior = load(&*storage, &["old".into()], None, Direction::Minimize, None)
            .unwrap()
            .trials;
        let gp = InferredSpace::new(Box::new(|space| Arc::new(GpSampler::new(space, 1))));
        let warm = Study::builder("warm")
            .storage(storage.clone())
            .sampler(gp)
            .prior(prior.clone())
            .build()
            .unwrap();
        warm.optimize(2, bowl).unwrap();
        let best = warm.best_trial().unwrap().unwrap().value.unwrap();
        assert!(best < 1.0, "a warm GP's first two trials reach {best}");
        let sobol = InferredSpace::new(Box::new(|space| Arc::new(SobolSampler::new(space, 1))));
        assert!(!sobol.learns_from_prior());
    }

    #[test]
    fn old_studies_must_share_direction_and_metric() {
        let storage = InMemoryStorage::new();
        storage
            .create_study(&caviar_core::storage::NewStudy {
                name: "acc".into(),
                direction: Direction::Maximize,
                metric: Some("val_acc".into()),
                ..Default::default()
            })
            .unwrap();
        let err = load(&storage, &["acc".into()], None, Direction::Minimize, None).unwrap_err();
        assert!(err.to_string().contains("was to maximize"), "{err}");
        let err = load(
            &storage,
            &["acc".into()],
            None,
            Direction::Maximize,
            Some("loss"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("optimised `val_acc`"), "{err}");
        let err = load(&storage, &["nope".into()], None, Direction::Maximize, None).unwrap_err();
        assert!(
            err.to_string().contains("`nope`, which is not a study"),
            "{err}"
        );
    }
}
