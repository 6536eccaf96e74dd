use super::{value_at_or_after, PruneContext, Pruner, PrunerError};
use crate::rng::Rng;
use crate::trial::{Direction, FrozenTrial};

/// Asynchronous successive halving (ASHA; Li et al., 2020).
///
/// Rung k sits at step `min_resource · η^(min_early_stopping_rate + k)`. When a trial first
/// reports a step at or past a rung, it is compared with every trial (running or finished) that
/// reached that rung before it: it goes on only if it is among the best 1/η of them (the first
/// to arrive always goes on). Nobody waits for a rung to fill, so workers never idle.
///
/// ```
/// use caviar_core::pruner::{Pruner, SuccessiveHalvingPruner};
/// let asha = SuccessiveHalvingPruner::new(1, 3).max_resource(50);
/// assert_eq!(asha.budgets(), Some(vec![1, 3, 9, 27, 50]));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SuccessiveHalvingPruner {
    min_resource: u64,
    reduction_factor: u64,
    min_early_stopping_rate: u32,
    max_resource: Option<u64>,
}

impl SuccessiveHalvingPruner {
    /// First rung at `min_resource` steps, keeping the best 1/`reduction_factor` at each rung.
    /// Values below 1 (resource) or 2 (factor) are raised to them; [`Self::checked`] reports
    /// them instead.
    pub fn new(min_resource: u64, reduction_factor: u64) -> Self {
        SuccessiveHalvingPruner {
            min_resource: min_resource.max(1),
            reduction_factor: reduction_factor.max(2),
            min_early_stopping_rate: 0,
            max_resource: None,
        }
    }

    /// Like [`Self::new`], but rejects a zero resource or a factor below 2.
    pub fn checked(min_resource: u64, reduction_factor: u64) -> Result<Self, PrunerError> {
        if min_resource == 0 {
            return Err(PrunerError {
                field: "min_resource",
                reason: "must be at least 1 (the step of the first rung)".into(),
            });
        }
        if reduction_factor < 2 {
            return Err(PrunerError {
                field: "reduction_factor",
                reason: format!("{reduction_factor} keeps everyone; use 2 or more (3 is usual)"),
            });
        }
        Ok(Self::new(min_resource, reduction_factor))
    }

    /// Skips the first `rate` rungs (the first comparison is at `min_resource · η^rate`).
    pub fn min_early_stopping_rate(mut self, rate: u32) -> Self {
        self.min_early_stopping_rate = rate;
        self
    }

    /// The full budget of a trial: rungs stop below it (a trial that reached it has finished
    /// and is not judged again), and [`Pruner::budgets`] ends with it. Without it, rungs go on
    /// for as long as trials report.
    pub fn max_resource(mut self, max: u64) -> Self {
        self.max_resource = Some(max);
        self
    }

    /// The steps of the rungs, first to last (at most 64, or below `max_resource`).
    fn rungs(&self) -> impl Iterator<Item = u64> + '_ {
        let first = self
            .reduction_factor
            .checked_pow(self.min_early_stopping_rate)
            .and_then(|f| f.checked_mul(self.min_resource));
        std::iter::successors(first, |&r| r.checked_mul(self.reduction_factor))
            .take(64)
            .take_while(|&r| self.max_resource.is_none_or(|max| r < max))
    }

    /// The decision for the trial in `ctx`, comparing it only with trials `peer` accepts.
    fn decide(&self, ctx: &PruneContext<'_>, peer: impl Fn(&FrozenTrial) -> bool) -> bool {
        let Some((step, _)) = ctx.last() else {
            return false;
        };
        let steps = &ctx.trial.intermediate;
        let previous = steps.len().checked_sub(2).map(|i| steps[i].0);
        for rung in self.rungs() {
            if rung > step {
                break;
            }
            if previous.is_some_and(|p| p >= rung) {
                // Decided when the trial first passed this rung.
                continue;
            }
            let Some((_, value)) = value_at_or_after(ctx.trial, rung) else {
                continue;
            };
            if value.is_nan() {
                return true;
            }
            let mut competing: Vec<f64> = ctx
                .others()
                .filter(|t| peer(t))
                .filter_map(|t| value_at_or_after(t, rung).map(|(_, v)| v))
                .filter(|v| !v.is_nan())
                .collect();
            competing.push(value);
            if !promotable(value, &mut competing, self.reduction_factor, ctx.direction) {
                return true;
            }
        }
        false
    }
}

/// Whether `value` is among the best 1/η of `competing` (which includes it); with fewer than η
/// competitors only the best goes on.
fn promotable(value: f64, competing: &mut [f64], eta: u64, direction: Direction) -> bool {
    competing.sort_by(|a, b| direction.cmp_best_first(*a, *b));
    let keep = (competing.len() as u64 / eta).max(1) as usize;
    let cutoff = competing[keep - 1];
    direction.cmp_best_first(value, cutoff) != std::cmp::Ordering::Greater
}

impl Pruner for SuccessiveHalvingPruner {
    fn prune(&self, ctx: &PruneContext<'_>) -> bool {
        self.decide(ctx, |_| true)
    }

    fn budgets(&self) -> Option<Vec<u64>> {
        Some(self.rungs().chain(self.max_resource).collect())
    }

    fn name(&self) -> &'static str {
        "asha"
    }
}

/// Seeds the draw of a trial's bracket (any fixed value: every worker must agree).
const BRACKET_KEY: u64 = 0x6879_7065_7262_616e;

/// Hyperband (Li et al., 2018) made asynchronous: several successive-halving brackets whose
/// first rungs are `min_resource · η^s` for s = 0, 1, …, up to `max_resource`. Each trial
/// belongs to one bracket (a hash of its number, weighted so that brackets spend similar
/// budgets: the aggressive ones get more trials) and is compared only with its bracket.
///
/// ```
/// use caviar_core::pruner::HyperbandPruner;
/// let hb = HyperbandPruner::new(1, 27, 3).unwrap();
/// assert_eq!(hb.n_brackets(), 4);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct HyperbandPruner {
    brackets: Vec<SuccessiveHalvingPruner>,
    /// Cumulative share of trials per bracket.
    cumulative: Vec<f64>,
}

impl HyperbandPruner {
    /// Brackets from `min_resource` up to `max_resource` steps, halving by `reduction_factor`.
    pub fn new(
        min_resource: u64,
        max_resource: u64,
        reduction_factor: u64,
    ) -> Result<Self, PrunerError> {
        SuccessiveHalvingPruner::checked(min_resource, reduction_factor)?;
        if max_resource < min_resource {
            return Err(PrunerError {
                field: "max_resource",
                reason: format!(
                    "{max_resource} is below min_resource {min_resource}; set it to the full \
                     number of steps (epochs) of a trial"
                ),
            });
        }
        let mut n = 1u32;
        while min_resource
            .checked_mul(reduction_factor.pow(n))
            .is_some_and(|r| r <= max_resource)
        {
            n += 1;
        }
        let brackets: Vec<SuccessiveHalvingPruner> = (0..n)
            .map(|rate| {
                SuccessiveHalvingPruner::new(min_resource, reduction_factor)
                    .min_early_stopping_rate(rate)
                    .max_resource(max_resource)
            })
            .collect();
        // Bracket `rate` halves n - 1 - rate times; like Hyperband's n_i ∝ η^h / (h + 1).
        let weights: Vec<f64> = (0..n)
            .map(|rate| {
                let halvings = n - 1 - rate;
                (reduction_factor as f64).powi(halvings as i32) / f64::from(halvings + 1)
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Ok(HyperbandPruner {
            brackets,
            cumulative,
        })
    }

    /// How many brackets there are.
    pub fn n_brackets(&self) -> usize {
        self.brackets.len()
    }

    /// The bracket of trial `number` (0 = the most aggressive).
    pub fn bracket_of(&self, number: u64) -> usize {
        let u = Rng::keyed(BRACKET_KEY, &[number]).next_f64();
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.brackets.len() - 1)
    }
}

impl Pruner for HyperbandPruner {
    fn prune(&self, ctx: &PruneContext<'_>) -> bool {
        let bracket = self.bracket_of(ctx.trial.number);
        self.brackets[bracket].decide(ctx, |t| self.bracket_of(t.number) == bracket)
    }

    fn budgets(&self) -> Option<Vec<u64>> {
        self.brackets[0].budgets()
    }

    fn name(&self) -> &'static str {
        "hyperband"
    }
}
