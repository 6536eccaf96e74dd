use super::{PruneContext, Pruner, PrunerError};
use crate::trial::{Direction, TrialState};

/// Stops a trial whose best value so far is worse than the given percentile of the values
/// complete trials reported at the same step (Optuna's `PercentilePruner`).
///
/// It decides only after `n_startup_trials` trials have completed, from step `n_warmup_steps`
/// on, at the first report in each window of `interval_steps`, and only where at least
/// `n_min_trials` complete trials reported that step.
#[derive(Clone, Debug, PartialEq)]
pub struct PercentilePruner {
    percentile: f64,
    /// Complete trials needed before anything is pruned.
    pub n_startup_trials: usize,
    /// Steps before which a trial is never pruned.
    pub n_warmup_steps: u64,
    /// Decide once per this many steps.
    pub interval_steps: u64,
    /// Complete trials that must have reported a step for it to be judged.
    pub n_min_trials: usize,
}

/// The median rule: [`PercentilePruner`] at the 50th percentile, with Optuna's defaults (5
/// start-up trials, no warm-up, every step).
///
/// ```
/// use caviar_core::pruner::MedianPruner;
/// let pruner = MedianPruner::new().warmup_steps(3);
/// assert_eq!(pruner.percentile(), 50.0);
/// ```
pub struct MedianPruner;

impl MedianPruner {
    /// The median rule with Optuna's defaults.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> PercentilePruner {
        PercentilePruner {
            percentile: 50.0,
            n_startup_trials: 5,
            n_warmup_steps: 0,
            interval_steps: 1,
            n_min_trials: 1,
        }
    }
}

impl PercentilePruner {
    /// Prunes below the `percentile`-th percentile (0-100; 25 keeps the best quarter alive).
    pub fn new(percentile: f64) -> Result<Self, PrunerError> {
        if !(0.0..=100.0).contains(&percentile) {
            return Err(PrunerError {
                field: "percentile",
                reason: format!("{percentile} is outside 0..=100; use e.g. 25 or 50"),
            });
        }
        Ok(PercentilePruner {
            percentile,
            ..MedianPruner::new()
        })
    }

    /// The percentile compared against.
    pub fn percentile(&self) -> f64 {
        self.percentile
    }

    /// Sets the number of complete trials needed before pruning.
    pub fn startup_trials(mut self, n: usize) -> Self {
        self.n_startup_trials = n;
        self
    }

    /// Sets the steps before which nothing is pruned.
    pub fn warmup_steps(mut self, n: u64) -> Self {
        self.n_warmup_steps = n;
        self
    }

    /// Sets how many steps apart decisions are (at least 1).
    pub fn interval_steps(mut self, n: u64) -> Self {
        self.interval_steps = n.max(1);
        self
    }

    /// Sets how many complete trials must have reported a step for it to be judged.
    pub fn min_trials(mut self, n: usize) -> Self {
        self.n_min_trials = n.max(1);
        self
    }

    /// Whether `step` is the trial's first report in its window of `interval_steps` (so that
    /// a trial reporting irregularly is judged once per window).
    fn first_in_interval(&self, ctx: &PruneContext<'_>, step: u64) -> bool {
        let interval = self.interval_steps.max(1);
        let window_start = (step - self.n_warmup_steps) / interval * interval + self.n_warmup_steps;
        let steps = &ctx.trial.intermediate;
        match steps.len().checked_sub(2) {
            Some(i) => steps[i].0 < window_start,
            None => true,
        }
    }
}

/// Linear interpolation between closest ranks (numpy's default), over sorted `values`.
pub(crate) fn percentile_of_sorted(values: &[f64], percentile: f64) -> f64 {
    let rank = percentile / 100.0 * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (rank - lo as f64)
}

impl Pruner for PercentilePruner {
    fn prune(&self, ctx: &PruneContext<'_>) -> bool {
        let Some((step, _)) = ctx.last() else {
            return false;
        };
        if step < self.n_warmup_steps || !self.first_in_interval(ctx, step) {
            return false;
        }
        let complete = ctx
            .finished
            .iter()
            .filter(|t| t.state == TrialState::Complete);
        if complete.clone().count() < self.n_startup_trials {
            return false;
        }
        let own = ctx.trial.intermediate.iter().map(|&(_, v)| v);
        let best = match ctx.direction {
            Direction::Minimize => own.filter(|v| !v.is_nan()).fold(f64::NAN, f64::min),
            Direction::Maximize => own.filter(|v| !v.is_nan()).fold(f64::NAN, f64::max),
        };
        if best.is_nan() {
            // Nothing but NaN so far: the run has diverged.
            return true;
        }
        let mut at_step: Vec<f64> = complete
            .filter_map(|t| {
                let i = t
                    .intermediate
                    .binary_search_by_key(&step, |&(s, _)| s)
                    .ok()?;
                Some(t.intermediate[i].1).filter(|v| !v.is_nan())
            })
            .collect();
        if at_step.len() < self.n_min_trials.max(1) {
            return false;
        }
        at_step.sort_by(f64::total_cmp);
        match ctx.direction {
            Direction::Minimize => best > percentile_of_sorted(&at_step, self.percentile),
            Direction::Maximize => best < percentile_of_sorted(&at_step, 100.0 - self.percentile),
        }
    }

    fn name(&self) -> &'static str {
        if self.percentile == 50.0 {
            "median"
        } else {
            "percentile"
        }
    }
}
