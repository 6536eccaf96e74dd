//! Which hyperparameters mattered: PED-ANOVA (Watanabe, Bansal and Hutter, 2023) in each
//! parameter's scaled space, with bootstrap error bars.
//!
//! For each parameter, the density of the best trials' values is compared with the density of
//! all trials' values by the Pearson divergence `∫ p_all (p_top / p_all - 1)^2`. A parameter
//! whose good values sit anywhere has a flat ratio and scores near 0; one that the best trials
//! crowd into a corner scores high. Densities live in the unit space where sampling is uniform
//! (log10 for log parameters, log10(1 - x) for reverse_log), so "a corner" means what the
//! sampler means. The cost is linear in the trials: values are binned once, and every
//! bootstrap resample only recounts bins.
//!
//! ```
//! use caviar_core::importance::{importance, ImportanceOptions};
//! use caviar_core::prelude::*;
//! let study = Study::builder("q").build().unwrap();
//! study.optimize(200, |t| {
//!     let lr = t.suggest_float("lr", 1e-4, 1.0, Scale::Log)?;
//!     let wd = t.suggest_float("wd", 1e-8, 1e-4, Scale::Log)?;
//!     Ok((lr.log10() + 2.0).powi(2) + 1e-3 * wd)
//! }).unwrap();
//! let ranked = importance(&study.trials().unwrap(), Direction::Minimize,
//!                         &ImportanceOptions::default()).unwrap();
//! assert_eq!(ranked[0].name, "lr");
//! assert!(ranked[0].importance > 5.0 * ranked[1].importance);
//! ```

use std::collections::BTreeMap;

use crate::rng::Rng;
use crate::space::Distribution;
use crate::trial::{Direction, FrozenTrial, TrialState};

/// Bins of the unit interval for continuous parameters.
const BINS: usize = 100;

/// How importance is measured.
#[derive(Clone, Debug)]
pub struct ImportanceOptions {
    /// Share of complete trials that count as the best (default 0.1).
    pub top_fraction: f64,
    /// Bootstrap resamples for the error bars (default 100; 0 for none).
    pub bootstrap: usize,
    /// Seed of the resampling.
    pub seed: u64,
}

impl Default for ImportanceOptions {
    fn default() -> Self {
        ImportanceOptions {
            top_fraction: 0.1,
            bootstrap: 100,
            seed: 0,
        }
    }
}

/// One parameter's importance.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ParamImportance {
    /// The parameter.
    pub name: String,
    /// Its share of the summed divergences (shares add up to 1), from all trials.
    pub importance: f64,
    /// Standard deviation of the share over bootstrap resamples.
    pub std: f64,
    /// 5th percentile of the share over bootstrap resamples.
    pub low: f64,
    /// 95th percentile of the share over bootstrap resamples.
    pub high: f64,
    /// The Pearson divergence itself, from all trials.
    pub divergence: f64,
    /// Complete trials that set this parameter.
    pub trials: usize,
}

/// Why importance cannot be measured.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportanceError {
    /// Too few complete trials for a top set of two.
    #[error("importance needs at least {need} complete trials with a value (the best {percent}% must hold two); the study has {have}: run more trials")]
    TooFewTrials {
        /// Complete trials with a finite value.
        have: usize,
        /// The least that will do.
        need: usize,
        /// The top fraction in percent.
        percent: f64,
    },
    /// The options are out of range.
    #[error("{0}")]
    BadOption(String),
}

/// One parameter's binned values, one entry per complete trial (`None`: not set there).
struct Binned {
    name: String,
    bins: usize,
    /// Categorical parameters are compared bin by bin, without smoothing.
    categorical: bool,
    of_trial: Vec<Option<u16>>,
}

/// Ranks parameters by importance, most important first.
pub fn importance(
    trials: &[FrozenTrial],
    direction: Direction,
    options: &ImportanceOptions,
) -> Result<Vec<ParamImportance>, ImportanceError> {
    if !(options.top_fraction > 0.0 && options.top_fraction < 1.0) {
        return Err(ImportanceError::BadOption(format!(
            "top fraction {} must be between 0 and 1 (e.g. 0.1)",
            options.top_fraction
        )));
    }
    let complete: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
        .collect();
    let need = (2.0 / options.top_fraction).ceil() as usize;
    if complete.len() < need {
        return Err(ImportanceError::TooFewTrials {
            have: complete.len(),
            need,
            percent: options.top_fraction * 100.0,
        });
    }
    let loss: Vec<f64> = complete
        .iter()
        .map(|t| {
            let v = t.value.unwrap_or(f64::NAN);
            match direction {
                Direction::Minimize => v,
                Direction::Maximize => -v,
            }
        })
        .collect();
    let params = bin_params(&complete);
    let everyone: Vec<usize> = (0..complete.len()).collect();
    let point = divergences(&params, &loss, &everyone, options.top_fraction);
    let shares = normalise(&point);

    let mut resampled: Vec<Vec<f64>> = vec![Vec::with_capacity(options.bootstrap); params.len()];
    let mut rng = Rng::new(options.seed);
    let mut pick = vec![0usize; complete.len()];
    for _ in 0..options.bootstrap {
        for p in pick.iter_mut() {
            *p = rng.below(complete.len() as u64) as usize;
        }
        let shares = normalise(&divergences(&params, &loss, &pick, options.top_fraction));
        for (column, share) in resampled.iter_mut().zip(shares) {
            column.push(share);
        }
    }
    let mut ranked: Vec<ParamImportance> = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut column = resampled[i].clone();
            column.sort_by(f64::total_cmp);
            let (std, low, high) = if column.is_empty() {
                (0.0, shares[i], shares[i])
            } else {
                let mean = column.iter().sum::<f64>() / column.len() as f64;
                let var =
                    column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / column.len() as f64;
                (var.sqrt(), quantile(&column, 0.05), quantile(&column, 0.95))
            };
            ParamImportance {
                name: p.name.clone(),
                importance: shares[i],
                std,
                low,
                high,
                divergence: point[i],
                trials: p.of_trial.iter().filter(|b| b.is_some()).count(),
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.importance
            .total_cmp(&a.importance)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(ranked)
}

fn bin_params(complete: &[&FrozenTrial]) -> Vec<Binned> {
    let mut dists: BTreeMap<&str, &Distribution> = BTreeMap::new();
    for t in complete {
        for (name, dist) in &t.distributions {
            dists.entry(name.as_str()).or_insert(dist);
        }
    }
    dists
        .into_iter()
        .map(|(name, dist)| {
            let (bins, categorical) = match dist {
                Distribution::Categorical { choices } => (choices.len().max(1), true),
                _ => (BINS, false),
            };
            let of_trial = complete
                .iter()
                .map(|t| {
                    // A trial whose value was drawn from another definition is left out.
                    if t.distributions.get(name) != Some(dist) {
                        return None;
                    }
                    let u = dist.to_unit(t.params.get(name)?)?;
                    Some(((u * bins as f64).floor() as usize).min(bins - 1) as u16)
                })
                .collect();
            Binned {
                name: name.to_string(),
                bins,
                categorical,
                of_trial,
            }
        })
        .collect()
}

/// The divergence of each parameter among the trials `pick` (indices, repeats allowed).
fn divergences(params: &[Binned], loss: &[f64], pick: &[usize], top_fraction: f64) -> Vec<f64> {
    let top_of = |pick: &[usize]| -> Vec<usize> {
        let mut order: Vec<usize> = pick.to_vec();
        if order.is_empty() {
            return order;
        }
        let top = ((pick.len() as f64 * top_fraction).ceil() as usize).clamp(2, pick.len().max(2));
        let top = top.min(order.len());
        order.select_nth_unstable_by(top - 1, |&a, &b| loss[a].total_cmp(&loss[b]));
        order.truncate(top);
        order
    };
    let best_overall = top_of(pick);
    params
        .iter()
        .map(|p| {
            let count = |trials: &[usize]| {
                let mut c = vec![0.0; p.bins];
                for &t in trials {
                    if let Some(b) = p.of_trial[t] {
                        c[b as usize] += 1.0;
                    }
                }
                c
            };
            // A conditional parameter is judged among the trials that have it: its best are
            // the best of those, not whichever of the overall best happen to have it.
            let conditional = pick.iter().any(|&t| p.of_trial[t].is_none());
            let (all, good) = if conditional {
                let with_it: Vec<usize> = pick
                    .iter()
                    .copied()
                    .filter(|&t| p.of_trial[t].is_some())
                    .collect();
                if with_it.len() < 2 {
                    return 0.0;
                }
                (count(&with_it), count(&top_of(&with_it)))
            } else {
                (count(pick), count(&best_overall))
            };
            let (all, good) = if p.categorical {
                (normalised(all), normalised(good))
            } else {
                (smooth(&all), smooth(&good))
            };
            if all.is_empty() || good.is_empty() {
                return 0.0;
            }
            // ∫ p_all (p_top / p_all - 1)^2 = ∫ p_top^2 / p_all - 1, both summing to 1.
            let ratio: f64 = all
                .iter()
                .zip(&good)
                .filter(|(a, _)| **a > 1e-12)
                .map(|(a, g)| g * g / a)
                .sum();
            (ratio - 1.0).max(0.0)
        })
        .collect()
}

fn normalised(counts: Vec<f64>) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return Vec::new();
    }
    counts.into_iter().map(|c| c / total).collect()
}

/// A Gaussian kernel density over the bins (Scott's bandwidth, at least two bins wide), as
/// probabilities per bin; mass that would leave [0, 1] is kept by reflecting it.
fn smooth(counts: &[f64]) -> Vec<f64> {
    let n: f64 = counts.iter().sum();
    if n <= 0.0 {
        return Vec::new();
    }
    let bins = counts.len();
    let mean = counts
        .iter()
        .enumerate()
        .map(|(b, c)| b as f64 * c)
        .sum::<f64>()
        / n;
    let var = counts
        .iter()
        .enumerate()
        .map(|(b, c)| c * (b as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let width = (1.06 * var.sqrt() * n.powf(-0.2)).clamp(2.0, bins as f64 / 4.0);
    let reach = (4.0 * width).ceil() as isize;
    let kernel: Vec<f64> = (-reach..=reach)
        .map(|d| (-0.5 * (d as f64 / width).powi(2)).exp())
        .collect();
    let mut density = vec![0.0; bins];
    for (b, &c) in counts.iter().enumerate() {
        if c == 0.0 {
            continue;
        }
        for (k, w) in kernel.iter().enumerate() {
            let mut at = b as isize + k as isize - reach;
            if at < 0 {
                at = -at - 1;
            }
            if at >= bins as isize {
                at = 2 * bins as isize - at - 1;
            }
            if (0..bins as isize).contains(&at) {
                density[at as usize] += c * w;
            }
        }
    }
    normalised(density)
}

fn normalise(divergences: &[f64]) -> Vec<f64> {
    let total: f64 = divergences.iter().sum();
    // Rounding noise, as when every trial has the same value: nothing stands out.
    if total <= 1e-9 {
        return vec![0.0; divergences.len()];
    }
    divergences.iter().map(|d| d / total).collect()
}

/// Linear interpolation between order statistics of sorted `xs`.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let at = q * (xs.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    xs[lo] + (xs[hi] - xs[lo]) * (at - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Scale;
    use crate::trial::TrialId;

    /// Trials whose value depends on `lr` strongly, `act` a little and `noise` not at all.
    fn toy(n: usize, seed: u64) -> Vec<FrozenTrial> {
        let lr = Distribution::float(1e-5, 1.0, Scale::Log).unwrap();
        let noise = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
        let act = Distribution::categorical(["relu", "tanh"]).unwrap();
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|i| {
                let (a, b, c) = (rng.next_f64(), rng.next_f64(), rng.below(2));
                let mut t = FrozenTrial {
                    id: TrialId(i as i64),
                    number: i as u64,
                    state: TrialState::Complete,
                    params: BTreeMap::new(),
                    distributions: BTreeMap::new(),
                    value: None,
                    intermediate: Vec::new(),
                    error: None,
                    worker: None,
                    started_ms: None,
                    finished_ms: None,
                    constraints: Vec::new(),
                    values: Vec::new(),
                };
                for (name, dist, u) in [
                    ("lr", &lr, a),
                    ("noise", &noise, b),
                    ("act", &act, (c as f64 + 0.5) / 2.0),
                ] {
                    t.params.insert(name.into(), dist.from_unit(u));
                    t.distributions.insert(name.into(), dist.clone());
                }
                t.value = Some((a - 0.6).powi(2) + 0.02 * c as f64 + 0.01 * rng.next_f64());
                t
            })
            .collect()
    }

    #[test]
    fn the_parameter_that_decides_ranks_first_and_noise_last() {
        let trials = toy(400, 1);
        let ranked =
            importance(&trials, Direction::Minimize, &ImportanceOptions::default()).unwrap();
        let names: Vec<&str> = ranked.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["lr", "act", "noise"]);
        let total: f64 = ranked.iter().map(|r| r.importance).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(ranked[0].importance > 0.6, "{ranked:?}");
        for r in &ranked {
            assert!(
                r.low <= r.importance + 0.2 && r.importance - 0.2 <= r.high,
                "{r:?}"
            );
            assert!(r.std >= 0.0 && r.low <= r.high);
            assert_eq!(r.trials, 400);
        }
        // Maximising the same values turns the ranking of the best trials upside down; lr still
        // decides.
        let flipped =
            importance(&trials, Direction::Maximize, &ImportanceOptions::default()).unwrap();
        assert_eq!(flipped[0].name, "lr");
    }

    #[test]
    fn same_seed_same_bars_and_too_few_trials_is_an_error() {
        let trials = toy(60, 2);
        let options = ImportanceOptions {
            seed: 5,
            ..Default::default()
        };
        let a = importance(&trials, Direction::Minimize, &options).unwrap();
        let b = importance(&trials, Direction::Minimize, &options).unwrap();
        assert_eq!(a, b);
        let err = importance(&trials[..19], Direction::Minimize, &options).unwrap_err();
        assert_eq!(
            err,
            ImportanceError::TooFewTrials {
                have: 19,
                need: 20,
                percent: 10.0
            }
        );
        assert!(err.to_string().contains("run more trials"));
        let bad = ImportanceOptions {
            top_fraction: 1.5,
            ..Default::default()
        };
        assert!(matches!(
            importance(&trials, Direction::Minimize, &bad),
            Err(ImportanceError::BadOption(_))
        ));
    }

    #[test]
    fn a_flat_parameter_scores_near_zero() {
        // Values independent of every parameter: nothing stands out.
        let mut trials = toy(2000, 3);
        let mut rng = Rng::new(9);
        for t in &mut trials {
            t.value = Some(rng.next_f64());
        }
        let ranked = importance(
            &trials,
            Direction::Minimize,
            &ImportanceOptions {
                bootstrap: 0,
                ..Default::default()
            },
        )
        .unwrap();
        for r in &ranked {
            assert!(r.divergence < 0.15, "{r:?}");
        }
    }
}
