//! Re-testing a study's best configurations on today's program: which to re-run ([`plan`]),
//! queuing them in a child study ([`enqueue`]) and what drifted ([`drift`]).
//!
//! A re-test is an ordinary study whose trials are all queued: each of the parent's top-k
//! configurations `repeats` times, every queued trial marked with the parent trial it repeats
//! ([`RETEST_OF`]). Any worker runs it, a crash resumes it, and [`drift`] compares it with its
//! parent from the stored trials alone.
//!
//! ```
//! use std::collections::BTreeMap;
//! use caviar_core::space::{Distribution, ParamValue, Scale, SearchSpace};
//! use caviar_core::trial::{Direction, FrozenTrial, TrialId, TrialState};
//! use caviar_engine::retest::{drift, plan, Verdict};
//!
//! let dist = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
//! let mut space = SearchSpace::new();
//! space.add("x", dist.clone()).unwrap();
//! let trial = |number: u64, x: f64, value: Option<f64>| FrozenTrial {
//!     id: TrialId(number as i64),
//!     number,
//!     state: if value.is_some() { TrialState::Complete } else { TrialState::Failed },
//!     params: BTreeMap::from([("x".to_string(), ParamValue::Float(x))]),
//!     distributions: BTreeMap::from([("x".to_string(), dist.clone())]),
//!     value,
//!     intermediate: Vec::new(),
//!     error: None,
//!     worker: None,
//!     started_ms: None,
//!     finished_ms: None,
//!     constraints: Vec::new(),
//!     values: Vec::new(),
//! };
//! let old = vec![trial(0, 0.2, Some(1.0)), trial(1, 0.7, Some(2.0))];
//! let configs = plan(&old, Direction::Minimize, 2, &space).unwrap();
//! assert_eq!(configs[0].parent_trial, 0);
//! // Each configuration re-run twice, with the values it gives today.
//! let new = vec![
//!     (0, trial(0, 0.2, Some(1.01))),
//!     (0, trial(1, 0.2, Some(0.99))),
//!     (1, trial(2, 0.7, Some(2.02))),
//!     (1, trial(3, 0.7, Some(1.98))),
//! ];
//! let report = drift(&new, Direction::Minimize, &configs);
//! assert_eq!(report.verdict, Verdict::Stable);
//! ```

use std::collections::BTreeMap;

use caviar_core::space::{ParamValue, SearchSpace};
use caviar_core::storage::{AttrOwner, QueuedParam, Storage, StorageError, StudyRecord};
use caviar_core::trial::{best_trials, Direction, FrozenTrial, TrialState};
use serde::Serialize;

/// User attribute of a re-test's trial: the number of the parent trial whose configuration it
/// repeats.
pub const RETEST_OF: &str = "retest_of";

/// User attribute of a re-test study: the name of the study it re-tests.
pub const RETEST_OF_STUDY: &str = "retest_of_study";

/// User attribute of a re-test study: `{"k": K, "repeats": R, "trials": [N, ...]}`, the
/// parent trials it re-tests (in their old order) and how often, so a resumed re-test (and
/// its report) re-tests the same ones whatever the parent holds since.
pub const RETEST_PLAN: &str = "retest_plan";

/// Chance, over all configurations of a re-test together, of calling noise a drift.
pub const FALSE_DRIFT_RATE: f64 = 0.05;

/// How many noise standard deviations a change must exceed to count as drift when `compared`
/// configurations are tested at once and the noise was estimated with `freedom` degrees of
/// freedom: Student's t quantile at [`FALSE_DRIFT_RATE`] / `compared`, two-sided (Bonferroni),
/// so a stable program with many configurations is not reported shifted by chance, and a noise
/// measured from few repeats is trusted less.
///
/// ```
/// use caviar_engine::retest::noise_sigmas;
/// assert!((noise_sigmas(1, 1000) - 1.96).abs() < 0.01);
/// assert!((noise_sigmas(5, 1000) - 2.58).abs() < 0.01);
/// assert!((noise_sigmas(5, 10) - 3.17).abs() < 0.01); // t(0.995, 10)
/// assert!((noise_sigmas(1, 1) - 12.71).abs() < 0.01); // t(0.975, 1)
/// assert!((noise_sigmas(1, 2) - 4.30).abs() < 0.01); // t(0.975, 2)
/// ```
pub fn noise_sigmas(compared: usize, freedom: usize) -> f64 {
    let tail = FALSE_DRIFT_RATE / compared.max(1) as f64;
    // P(|Z| > z) = erfc(z / √2) falls as z grows: bisect for the tail.
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if erfc(mid / std::f64::consts::SQRT_2) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let z = 0.5 * (lo + hi);
    // Exact quantiles where the expansion is poor: p is the one-sided level.
    let p = 1.0 - tail / 2.0;
    match freedom {
        0 | 1 => return (std::f64::consts::PI * (p - 0.5)).tan(),
        2 => return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt(),
        _ => {}
    }
    // Cornish-Fisher expansion of the t quantile around the normal one (within 0.01 from
    // three degrees of freedom on).
    let v = freedom.max(1) as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * v)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
}

/// Complementary error function (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7), for x ≥ 0.
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    poly * (-x * x).exp()
}

/// Why a re-test cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum RetestError {
    /// The parent has no complete trial with a value.
    #[error("the study has no complete trial to re-test{0}")]
    NothingToRetest(String),
    /// A configuration does not fit the new search space.
    #[error("trial {trial}'s {name} = {value} does not fit the new study file: {reason}")]
    DoesNotFit {
        /// The parent trial.
        trial: u64,
        /// The parameter.
        name: String,
        /// Its old value.
        value: String,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One configuration to re-run: a parent trial's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The parent trial.
    pub parent_trial: u64,
    /// 1 for the parent's best trial.
    pub old_rank: usize,
    /// The value it had.
    pub old_value: f64,
    /// Its parameters, with the new study's distributions.
    #[serde(skip)]
    pub queued: Vec<QueuedParam>,
    /// Its parameters.
    pub params: BTreeMap<String, ParamValue>,
}

/// The parent's best `k` complete trials, each checked against the new `space`: every old
/// parameter must exist there and hold its old value, and the space may add none.
pub fn plan(
    parent_trials: &[FrozenTrial],
    direction: Direction,
    k: usize,
    space: &SearchSpace,
) -> Result<Vec<Config>, RetestError> {
    let best = best_trials(parent_trials, direction, k);
    if best.is_empty() {
        return Err(RetestError::NothingToRetest(String::new()));
    }
    configs_of(best, space)
}

/// The configurations of the parent trials `numbers`, in that order (the order they ranked in
/// when the re-test was planned), as stored in [`RETEST_PLAN`].
pub fn planned(
    parent_trials: &[FrozenTrial],
    numbers: &[u64],
    space: &SearchSpace,
) -> Result<Vec<Config>, RetestError> {
    let chosen = numbers
        .iter()
        .map(|n| {
            parent_trials
                .iter()
                .find(|t| t.number == *n && t.value.is_some())
                .ok_or_else(|| {
                    RetestError::NothingToRetest(format!(
                        " (its trial {n}, planned for re-testing, is gone)"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    configs_of(chosen, space)
}

fn configs_of(chosen: Vec<&FrozenTrial>, space: &SearchSpace) -> Result<Vec<Config>, RetestError> {
    let mut configs = Vec::with_capacity(chosen.len());
    for (rank, t) in chosen.into_iter().enumerate() {
        let mut queued = Vec::with_capacity(t.params.len());
        for (name, value) in &t.params {
            let unfit = |reason: String| RetestError::DoesNotFit {
                trial: t.number,
                name: name.clone(),
                value: value.to_string(),
                reason,
            };
            let Some(dist) = space.get(name) else {
                return Err(unfit(format!(
                    "the new study file has no parameter `{name}`; add it back (a single choice, `{name} = {{ choices = [{value}] }}`, keeps it fixed)"
                )));
            };
            if !dist.contains(value) {
                return Err(unfit(format!(
                    "the new study file's `{name}` is {}; widen it to hold {value}",
                    dist.describe()
                )));
            }
            queued.push((name.clone(), dist.clone(), value.clone()));
        }
        if let Some((name, _)) = space.iter().find(|(n, _)| !t.params.contains_key(*n)) {
            return Err(RetestError::DoesNotFit {
                trial: t.number,
                name: name.clone(),
                value: "(none)".into(),
                reason: format!(
                    "`{name}` is new in the study file and the old configurations have no value for it; fix it with a single choice (`{name} = {{ choices = [VALUE] }}`) to re-test"
                ),
            });
        }
        configs.push(Config {
            parent_trial: t.number,
            old_rank: rank + 1,
            old_value: t.value.unwrap_or(f64::NAN),
            queued,
            params: t.params.clone(),
        });
    }
    Ok(configs)
}

/// Queues every configuration `repeats` times in the re-test study `child` (configuration by
/// configuration, so an early stop still re-tests the best ones), each marked [`RETEST_OF`],
/// and marks the study [`RETEST_OF_STUDY`].
pub fn enqueue(
    storage: &dyn Storage,
    child: &StudyRecord,
    parent: &str,
    configs: &[Config],
    repeats: usize,
) -> Result<(), RetestError> {
    storage.set_user_attr(
        AttrOwner::Study(child.id),
        RETEST_OF_STUDY,
        &serde_json::json!(parent),
    )?;
    for config in configs {
        for _ in 0..repeats {
            storage.enqueue_trial_with_attrs(
                child.id,
                &config.queued,
                0,
                &[(RETEST_OF.into(), serde_json::json!(config.parent_trial))],
            )?;
        }
    }
    Ok(())
}

/// Queues the runs each configuration still lacks (of `repeats`, counting those done, running
/// or waiting), as a resumed re-test must after runs were interrupted or lost. Returns how many
/// were queued.
pub fn top_up(
    storage: &dyn Storage,
    child: &StudyRecord,
    configs: &[Config],
    repeats: usize,
) -> Result<usize, RetestError> {
    let runs = runs_of(
        storage.trials(child.id)?,
        &storage.trial_user_attrs(child.id)?,
        configs,
    );
    let mut queued = 0;
    for config in configs {
        let have = runs
            .iter()
            .filter(|(p, _)| *p == config.parent_trial)
            .count();
        for _ in have..repeats {
            storage.enqueue_trial_with_attrs(
                child.id,
                &config.queued,
                0,
                &[(RETEST_OF.into(), serde_json::json!(config.parent_trial))],
            )?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// The re-test's trials, each with the parent trial it repeats (trials without the mark, such
/// as retries of lost ones, are matched by their parameters). Runs that caviar itself ended
/// are left out, so they neither count as failures nor as done: a run interrupted by Ctrl-C,
/// and a lost run that was queued again.
pub fn runs_of(
    trials: Vec<FrozenTrial>,
    attrs: &caviar_core::storage::TrialUserAttrs,
    configs: &[Config],
) -> Vec<(u64, FrozenTrial)> {
    let retried: std::collections::HashSet<u64> = attrs
        .values()
        .filter_map(|a| a.get(caviar_core::study::RETRY_OF).and_then(|v| v.as_u64()))
        .collect();
    trials
        .into_iter()
        .filter(|t| {
            let interrupted = t.state == TrialState::Failed
                && t.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("interrupted"));
            !interrupted && !retried.contains(&t.number)
        })
        .filter_map(|t| {
            let marked = attrs
                .get(&t.id)
                .and_then(|a| a.get(RETEST_OF))
                .and_then(serde_json::Value::as_u64);
            let parent = marked.or_else(|| {
                configs
                    .iter()
                    .find(|c| c.params == t.params)
                    .map(|c| c.parent_trial)
            })?;
            Some((parent, t))
        })
        .collect()
}

/// A re-test's stored plan ([`RETEST_PLAN`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// How many of the parent's best configurations.
    pub k: usize,
    /// Runs of each.
    pub repeats: usize,
    /// The parent trials re-tested, in their old order (absent in plans stored before them).
    pub trials: Option<Vec<u64>>,
}

impl Plan {
    /// The plan among a study's user attributes, if it has a whole one.
    pub fn read(attrs: &std::collections::BTreeMap<String, serde_json::Value>) -> Option<Plan> {
        let plan = attrs.get(RETEST_PLAN)?;
        let count = |key: &str| plan[key].as_u64().map(|v| v as usize);
        Some(Plan {
            k: count("k")?,
            repeats: count("repeats")?,
            trials: plan["trials"]
                .as_array()
                .map(|list| list.iter().filter_map(|v| v.as_u64()).collect()),
        })
    }

    /// The configurations it re-tests, checked against `space`.
    pub fn configs(
        &self,
        parent_trials: &[FrozenTrial],
        direction: Direction,
        space: &SearchSpace,
    ) -> Result<Vec<Config>, RetestError> {
        match &self.trials {
            Some(numbers) => planned(parent_trials, numbers, space),
            None => plan(parent_trials, direction, self.k, space),
        }
    }
}

/// A stored re-test and its report, as every front end shows it.
#[derive(Clone, Debug, Serialize)]
pub struct StoredRetest {
    /// The study it re-tests.
    pub parent: String,
    /// How many of the parent's best configurations.
    pub k: usize,
    /// Runs of each.
    pub repeats: usize,
    /// The comparison.
    pub report: DriftReport,
    /// What differs between the fingerprints of the parent's and the re-test's last runs, or
    /// why they cannot be compared (JSON: the list, or `{"unknown": why}`).
    #[serde(serialize_with = "changed_json")]
    pub changed: Result<Vec<String>, String>,
}

fn changed_json<S: serde::Serializer>(
    changed: &Result<Vec<String>, String>,
    out: S,
) -> Result<S::Ok, S::Error> {
    match changed {
        Ok(lines) => lines.serialize(out),
        Err(why) => serde_json::json!({ "unknown": why }).serialize(out),
    }
}

/// The re-test that `child` is, with its drift report as its trials stand now; `None` when
/// `child` is no re-test.
pub fn stored(
    storage: &dyn Storage,
    child: &StudyRecord,
) -> Result<Option<StoredRetest>, RetestError> {
    let attrs = storage.user_attrs(AttrOwner::Study(child.id))?;
    let Some(parent_name) = attrs.get(RETEST_OF_STUDY).and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let Some(stored_plan) = Plan::read(&attrs) else {
        return Ok(None);
    };
    let parent = storage
        .study(parent_name)?
        .ok_or_else(|| RetestError::NothingToRetest(parent_name.to_string()))?;
    let parent_trials = storage.trials(parent.id)?;
    let space = child.space().unwrap_or_default();
    let configs = stored_plan.configs(&parent_trials, parent.direction, &space)?;
    let runs = runs_of(
        storage.trials(child.id)?,
        &storage.trial_user_attrs(child.id)?,
        &configs,
    );
    let report = drift(&runs, parent.direction, &configs);
    let fingerprint_of = |id| -> Result<Option<crate::fingerprint::Fingerprint>, StorageError> {
        Ok(storage
            .user_attrs(AttrOwner::Study(id))?
            .get(crate::fingerprint::FINGERPRINT)
            .and_then(|v| serde_json::from_value(v.clone()).ok()))
    };
    let changed = match (fingerprint_of(parent.id)?, fingerprint_of(child.id)?) {
        (Some(old), Some(new)) => Ok(crate::fingerprint::differences(&old, &new)),
        (None, _) => Err(format!(
            "`{}` recorded no fingerprint (studies run by caviar before it did, or from Python)",
            parent.name
        )),
        (_, None) => Err(format!("`{}` recorded no fingerprint", child.name)),
    };
    Ok(Some(StoredRetest {
        parent: parent.name,
        k: stored_plan.k,
        repeats: stored_plan.repeats,
        report,
        changed,
    }))
}

/// What a re-test found, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No configuration moved beyond the noise.
    Stable,
    /// Some moved, and the old best is still best.
    Shifted,
    /// Another configuration is now better than the old best, beyond the noise.
    Stale,
    /// Configurations fail now.
    Broken,
    /// Runs are still missing.
    Incomplete,
}

impl Verdict {
    /// The verdict as the report words it.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Stable => "stable",
            Verdict::Shifted => "shifted: same best",
            Verdict::Stale => "stale: the old best is no longer best",
            Verdict::Broken => "broken: configurations fail now",
            Verdict::Incomplete => "incomplete: runs are missing",
        }
    }
}

/// One configuration, then and now.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigDrift {
    /// The parent trial.
    pub parent_trial: u64,
    /// Its parameters.
    pub params: BTreeMap<String, ParamValue>,
    /// Rank in the parent (1 = best).
    pub old_rank: usize,
    /// Rank among the re-tested configurations by their new mean (None: no complete run).
    pub new_rank: Option<usize>,
    /// The value it had.
    pub old_value: f64,
    /// The values of its complete runs, by trial number.
    pub new_values: Vec<f64>,
    /// Mean of `new_values`.
    pub new_mean: Option<f64>,
    /// Sample standard deviation of `new_values` (two runs or more).
    pub new_sd: Option<f64>,
    /// `new_mean - old_value`.
    pub change: Option<f64>,
    /// The change exceeds [`DriftReport::noise_sigmas`] times the noise of a difference
    /// between one old run and the mean of the new ones.
    pub beyond_noise: bool,
    /// Runs queued for it.
    pub runs: usize,
    /// Runs that failed, with the first line of each reason.
    pub failures: Vec<String>,
    /// Runs still waiting or running.
    pub pending: usize,
}

/// The drift report of a re-test.
#[derive(Clone, Debug, Serialize)]
pub struct DriftReport {
    /// Per configuration, in the parent's order.
    pub configs: Vec<ConfigDrift>,
    /// The noise: the standard deviation of one run, pooled over the configurations' repeats
    /// (None with a single run each).
    pub noise_sd: Option<f64>,
    /// How many noise standard deviations count as drift ([`noise_sigmas`] of the
    /// configurations with runs and the noise's degrees of freedom).
    pub noise_sigmas: f64,
    /// Spearman's correlation between the old and the new order (two configurations or more
    /// with runs).
    pub rank_correlation: Option<f64>,
    /// The parent trial that is best now.
    pub new_best: Option<u64>,
    /// The verdict.
    pub verdict: Verdict,
    /// `verdict` in words.
    pub verdict_text: String,
    /// Why.
    pub reason: String,
}

/// A failure's first line, and its last when they differ (where a program's own message ends
/// up, after the exit status and the stderr heading).
fn short_reason(error: Option<&str>) -> String {
    let error = error.unwrap_or("no value");
    let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next_back()) {
        (Some(first), Some(last)) => format!("{first}: {last}"),
        (Some(first), None) => first.to_string(),
        _ => error.to_string(),
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn sample_sd(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    (xs.len() >= 2)
        .then(|| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

/// Values this close count as equal: a deterministic program repeats itself to rounding.
fn rounding_floor(a: f64, b: f64) -> f64 {
    1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Compares the re-test's `runs` (each with the parent trial it repeats) with the parent.
pub fn drift(runs: &[(u64, FrozenTrial)], direction: Direction, configs: &[Config]) -> DriftReport {
    let mut rows: Vec<ConfigDrift> = configs
        .iter()
        .map(|c| {
            let mine: Vec<&FrozenTrial> = runs
                .iter()
                .filter(|(p, _)| *p == c.parent_trial)
                .map(|(_, t)| t)
                .collect();
            let new_values: Vec<f64> = mine
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .filter_map(|t| t.value.filter(|v| v.is_finite()))
                .collect();
            let failures = mine
                .iter()
                .filter(|t| {
                    t.state == TrialState::Failed
                        || (t.state == TrialState::Complete && !t.value.is_some_and(f64::is_finite))
                })
                .map(|t| format!("trial {}: {}", t.number, short_reason(t.error.as_deref())))
                .collect();
            let pending = mine
                .iter()
                .filter(|t| matches!(t.state, TrialState::Running | TrialState::Waiting))
                .count();
            let new_mean = mean(&new_values);
            ConfigDrift {
                parent_trial: c.parent_trial,
                params: c.params.clone(),
                old_rank: c.old_rank,
                new_rank: None,
                old_value: c.old_value,
                new_sd: sample_sd(&new_values),
                change: new_mean.map(|m| m - c.old_value),
                new_mean,
                new_values,
                beyond_noise: false,
                runs: mine.len(),
                failures,
                pending,
            }
        })
        .collect();

    // Pooled variance: every configuration runs the same program, so its noise is shared, and
    // three repeats alone say little about a spread.
    let (mut squares, mut freedom) = (0.0, 0usize);
    for r in &rows {
        if let (Some(sd), n) = (r.new_sd, r.new_values.len()) {
            squares += sd * sd * (n - 1) as f64;
            freedom += n - 1;
        }
    }
    let noise_sd = (freedom > 0).then(|| (squares / freedom as f64).sqrt());
    let noise = noise_sd.unwrap_or(0.0);
    let compared = rows.iter().filter(|r| r.new_mean.is_some()).count();
    let sigmas = noise_sigmas(compared, freedom);
    for r in &mut rows {
        if let (Some(m), n) = (r.new_mean, r.new_values.len()) {
            // One old run against the mean of n new ones.
            let spread = noise * (1.0 + 1.0 / n as f64).sqrt();
            r.beyond_noise =
                (m - r.old_value).abs() > sigmas * spread + rounding_floor(m, r.old_value);
        }
    }

    let mut by_new: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].new_mean.is_some())
        .collect();
    by_new.sort_by(|&a, &b| {
        direction
            .cmp_best_first(rows[a].new_mean.unwrap(), rows[b].new_mean.unwrap())
            .then(rows[a].old_rank.cmp(&rows[b].old_rank))
    });
    for (rank, &i) in by_new.iter().enumerate() {
        rows[i].new_rank = Some(rank + 1);
    }
    let rank_correlation = (by_new.len() >= 2).then(|| {
        // Spearman's rho over the configurations with runs, old ranks re-numbered among them.
        let mut olds: Vec<usize> = by_new.iter().map(|&i| rows[i].old_rank).collect();
        olds.sort_unstable();
        let n = by_new.len() as f64;
        let d2: f64 = by_new
            .iter()
            .enumerate()
            .map(|(new_rank, &i)| {
                let old_rank = olds.binary_search(&rows[i].old_rank).unwrap_or(0);
                (old_rank as f64 - new_rank as f64).powi(2)
            })
            .sum();
        1.0 - 6.0 * d2 / (n * (n * n - 1.0))
    });
    let new_best = by_new.first().map(|&i| rows[i].parent_trial);

    let (verdict, reason) = judge(&rows, &by_new, noise, sigmas, direction);
    DriftReport {
        configs: rows,
        noise_sd,
        noise_sigmas: sigmas,
        rank_correlation,
        new_best,
        verdict,
        verdict_text: verdict.words().to_string(),
        reason,
    }
}

fn judge(
    rows: &[ConfigDrift],
    by_new: &[usize],
    noise: f64,
    sigmas: f64,
    direction: Direction,
) -> (Verdict, String) {
    let failing: Vec<&ConfigDrift> = rows.iter().filter(|r| !r.failures.is_empty()).collect();
    if !failing.is_empty() {
        let names: Vec<String> = failing
            .iter()
            .map(|r| {
                format!(
                    "trial {} ({} of {} runs failed; {})",
                    r.parent_trial,
                    r.failures.len(),
                    r.runs,
                    r.failures[0]
                )
            })
            .collect();
        return (
            Verdict::Broken,
            format!("configurations fail now: {}", names.join("; ")),
        );
    }
    let pending: usize = rows.iter().map(|r| r.pending).sum();
    if rows.is_empty() || pending > 0 || rows.iter().any(|r| r.new_mean.is_none()) {
        return (
            Verdict::Incomplete,
            format!(
                "{pending} runs have not finished; run the re-test study's workers to finish it"
            ),
        );
    }
    let moved: Vec<String> = rows
        .iter()
        .filter(|r| r.beyond_noise)
        .map(|r| format!("trial {} {:+.4}", r.parent_trial, r.change.unwrap_or(0.0)))
        .collect();
    let noise_words = if noise > 0.0 {
        format!("noise sd {noise:.4}")
    } else {
        "no noise measured".to_string()
    };
    let old_best = rows.iter().find(|r| r.old_rank == 1);
    if let (Some(old), Some(&top)) = (old_best, by_new.first()) {
        let new = &rows[top];
        if new.parent_trial != old.parent_trial {
            let (a, b) = (old.new_mean.unwrap(), new.new_mean.unwrap());
            let spread = noise
                * (1.0 / old.new_values.len() as f64 + 1.0 / new.new_values.len() as f64).sqrt();
            if direction.better(b, a) && (a - b).abs() > sigmas * spread + rounding_floor(a, b) {
                return (
                    Verdict::Stale,
                    format!(
                        "trial {}'s configuration now gives {b:.4}, better than the old best (trial {}) at {a:.4}, beyond the noise ({noise_words}); moved: {}",
                        new.parent_trial,
                        old.parent_trial,
                        if moved.is_empty() { "none beyond noise".to_string() } else { moved.join(", ") }
                    ),
                );
            }
        }
    }
    if moved.is_empty() {
        (
            Verdict::Stable,
            format!("no configuration moved beyond the noise ({noise_words})"),
        )
    } else {
        (
            Verdict::Shifted,
            format!(
                "moved beyond the noise ({noise_words}): {}; the old best is still best",
                moved.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::space::{Distribution, Scale};
    use caviar_core::trial::TrialId;

    fn trial(number: u64, x: f64, state: TrialState, value: Option<f64>) -> FrozenTrial {
        let dist = Distribution::float(0.0, 10.0, Scale::Linear).unwrap();
        FrozenTrial {
            id: TrialId(number as i64),
            number,
            state,
            params: BTreeMap::from([("x".to_string(), ParamValue::Float(x))]),
            distributions: BTreeMap::from([("x".to_string(), dist)]),
            value,
            intermediate: Vec::new(),
            error: (state == TrialState::Failed).then(|| "exit status 1\ntraceback".to_string()),
            worker: None,
            started_ms: None,
            finished_ms: None,
            constraints: Vec::new(),
            values: Vec::new(),
        }
    }

    fn space() -> SearchSpace {
        let mut s = SearchSpace::new();
        s.add("x", Distribution::float(0.0, 10.0, Scale::Linear).unwrap())
            .unwrap();
        s
    }

    /// Parent: x = 1, 2, 3 scored 1, 2, 3 (minimised); `today` gives each configuration's runs.
    fn report(today: &[(u64, &[Option<f64>])]) -> DriftReport {
        let old: Vec<FrozenTrial> = (0..3)
            .map(|i| {
                trial(
                    i,
                    i as f64 + 1.0,
                    TrialState::Complete,
                    Some(i as f64 + 1.0),
                )
            })
            .collect();
        let configs = plan(&old, Direction::Minimize, 3, &space()).unwrap();
        let mut number = 0;
        let mut runs = Vec::new();
        for &(parent, values) in today {
            for v in values {
                let state = if v.is_some() {
                    TrialState::Complete
                } else {
                    TrialState::Failed
                };
                runs.push((parent, trial(number, parent as f64 + 1.0, state, *v)));
                number += 1;
            }
        }
        drift(&runs, Direction::Minimize, &configs)
    }

    #[test]
    fn repeats_within_their_noise_are_stable() {
        let r = report(&[
            (0, &[Some(1.1), Some(0.9), Some(1.0)]),
            (1, &[Some(2.1), Some(1.9), Some(2.0)]),
            (2, &[Some(3.1), Some(2.9), Some(3.0)]),
        ]);
        assert_eq!(r.verdict, Verdict::Stable, "{}", r.reason);
        assert!((r.noise_sd.unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(r.rank_correlation, Some(1.0));
        assert!(r.configs.iter().all(|c| !c.beyond_noise));
    }

    #[test]
    fn a_worse_best_that_stays_best_is_shifted() {
        let r = report(&[
            (0, &[Some(1.6), Some(1.4), Some(1.5)]),
            (1, &[Some(2.1), Some(1.9), Some(2.0)]),
            (2, &[Some(3.1), Some(2.9), Some(3.0)]),
        ]);
        assert_eq!(r.verdict, Verdict::Shifted, "{}", r.reason);
        assert!(r.configs[0].beyond_noise && !r.configs[1].beyond_noise);
        assert!(r.reason.contains("trial 0 +0.5000"), "{}", r.reason);
    }

    #[test]
    fn a_best_beaten_beyond_the_noise_is_stale() {
        let r = report(&[
            (0, &[Some(4.1), Some(3.9), Some(4.0)]),
            (1, &[Some(2.1), Some(1.9), Some(2.0)]),
            (2, &[Some(3.1), Some(2.9), Some(3.0)]),
        ]);
        assert_eq!(r.verdict, Verdict::Stale, "{}", r.reason);
        assert_eq!(r.new_best, Some(1));
        assert_eq!(r.configs[0].new_rank, Some(3));
        // Old order 1, 2, 3 against new 3, 1, 2: d² = 4 + 1 + 1.
        assert!((r.rank_correlation.unwrap() - (1.0 - 6.0 * 6.0 / 24.0)).abs() < 1e-12);
    }

    #[test]
    fn beaten_within_the_noise_is_not_stale() {
        let r = report(&[
            (0, &[Some(2.6), Some(1.0), Some(2.0)]),
            (1, &[Some(2.5), Some(1.3), Some(1.8)]),
            (2, &[Some(3.8), Some(2.2), Some(3.0)]),
        ]);
        assert_ne!(r.verdict, Verdict::Stale, "{}", r.reason);
    }

    #[test]
    fn failing_runs_are_broken_with_their_reason() {
        let r = report(&[
            (0, &[None, None, None]),
            (1, &[Some(2.0), Some(2.0), Some(2.0)]),
            (2, &[Some(3.0), Some(3.0), Some(3.0)]),
        ]);
        assert_eq!(r.verdict, Verdict::Broken);
        assert!(
            r.reason
                .contains("trial 0 (3 of 3 runs failed; trial 0: exit status 1: traceback)"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn a_deterministic_program_that_repeats_itself_is_stable() {
        let r = report(&[
            (0, &[Some(1.0), Some(1.0)]),
            (1, &[Some(2.0), Some(2.0)]),
            (2, &[Some(3.0), Some(3.0)]),
        ]);
        assert_eq!(r.verdict, Verdict::Stable, "{}", r.reason);
        assert_eq!(r.noise_sd, Some(0.0));
    }

    #[test]
    fn missing_runs_are_incomplete() {
        let r = report(&[(0, &[Some(1.0)]), (1, &[Some(2.0)])]);
        assert_eq!(r.verdict, Verdict::Incomplete);
        assert_eq!(r.configs[2].new_rank, None);
    }

    #[test]
    fn configurations_must_fit_the_new_space() {
        let old = vec![trial(0, 9.0, TrialState::Complete, Some(1.0))];
        let mut narrow = SearchSpace::new();
        narrow
            .add("x", Distribution::float(0.0, 5.0, Scale::Linear).unwrap())
            .unwrap();
        let err = plan(&old, Direction::Minimize, 1, &narrow)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x = 9") && err.contains("widen it"), "{err}");
        let mut more = space();
        more.add("y", Distribution::float(0.0, 1.0, Scale::Linear).unwrap())
            .unwrap();
        let err = plan(&old, Direction::Minimize, 1, &more)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`y` is new"), "{err}");
        let err = plan(&old, Direction::Minimize, 1, &SearchSpace::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no parameter `x`"), "{err}");
    }
}
