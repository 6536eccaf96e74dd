use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::random::RandomSampler;
use super::tpe_multi::{Intersection, Settings};
use super::tpe_parzen::Parzen;
use super::{JointSample, SampleContext, Sampler, SamplerError};
use crate::rng::{stable_hash, Rng};
use crate::space::{Distribution, ParamValue};
use crate::trial::FrozenTrial;

/// Tree-structured Parzen estimator (Bergstra et al., 2011) in each parameter's unit space, so
/// log and reverse-log scales are modelled on their own scale. Univariate by default;
/// [`TpeSampler::multivariate`] models the parameters that all complete trials share jointly,
/// with product kernels (Scott's-rule bandwidth), and the rest one at a time.
///
/// After `n_startup` complete trials it splits them by objective into the best `γ(n)` ("below",
/// γ(n) = min(⌈fraction·n⌉, cap)) and the rest ("above"), fits a Parzen estimator l(x) to the
/// first and g(x) to the second, draws `n_candidates` points from l and keeps the one with the
/// largest l(x)/g(x). Running trials count as bad observations (a constant liar), so parallel
/// workers do not all propose the same point.
///
/// ```
/// use caviar_core::prelude::*;
/// use caviar_core::sampler::TpeSampler;
/// let study = Study::builder("tpe").sampler(TpeSampler::new(0)).build().unwrap();
/// study.optimize(60, |t| {
///     let x = t.suggest_float("x", -10.0, 10.0, Scale::Linear)?;
///     Ok((x - 3.0).powi(2))
/// }).unwrap();
/// assert!(study.best_trial().unwrap().unwrap().value.unwrap() < 0.5);
/// ```
#[derive(Debug)]
pub struct TpeSampler {
    seed: u64,
    /// Complete trials drawn at random before the model takes over.
    pub n_startup: usize,
    /// Candidates drawn from l(x) per suggestion.
    pub n_candidates: usize,
    /// Share of complete trials that counts as good.
    pub gamma_fraction: f64,
    /// Most trials that count as good.
    pub gamma_cap: usize,
    /// Weight of the uniform prior component in each estimator.
    pub prior_weight: f64,
    /// Treat running trials as bad observations.
    pub constant_liar: bool,
    /// Model all parameters jointly (product kernels over the parameters every complete trial
    /// has) instead of one at a time.
    pub multivariate: bool,
    /// Per parameter, what has been read from the finished trials so far, and whether pruned
    /// trials counted.
    cache: Arc<Mutex<TpeCache>>,
    /// The parameters common to all complete trials (multivariate only).
    intersection: Arc<Mutex<Intersection>>,
}

impl Clone for TpeSampler {
    /// A copy with the same settings and a fresh cache (a clone may serve another study).
    fn clone(&self) -> Self {
        TpeSampler {
            cache: Default::default(),
            intersection: Default::default(),
            ..*self
        }
    }
}

/// Whether pruned trials counted, and each parameter's observations.
type TpeCache = (bool, HashMap<String, Observed>);

/// The complete observations of one parameter, kept sorted two ways so that an ask costs a
/// merge, not a sort.
#[derive(Debug, Default)]
struct Observed {
    dist: Option<Distribution>,
    /// How many finished trials have been read.
    consumed: usize,
    /// (loss, x, age), by loss.
    by_loss: Vec<(f64, f64, u32)>,
    /// The same by x; age counts complete observations in the order they were read.
    by_x: ByX,
}

/// Observations by x, as three arrays so that splitting them by loss streams through memory.
#[derive(Debug, Default)]
struct ByX {
    xs: Vec<f64>,
    losses: Vec<f64>,
    ages: Vec<u32>,
}

impl ByX {
    /// Inserts after any equal x.
    fn insert(&mut self, x: f64, loss: f64, age: u32) {
        let j = self.xs.partition_point(|&v| v <= x);
        self.xs.insert(j, x);
        self.losses.insert(j, loss);
        self.ages.insert(j, age);
    }

    /// Adds many at once (one sort instead of many inserts; equal x keep their order).
    fn extend(&mut self, fresh: impl Iterator<Item = (f64, f64, u32)>) {
        let mut all: Vec<(f64, f64, u32)> = (0..self.xs.len())
            .map(|k| (self.xs[k], self.losses[k], self.ages[k]))
            .chain(fresh)
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.xs = all.iter().map(|o| o.0).collect();
        self.losses = all.iter().map(|o| o.1).collect();
        self.ages = all.iter().map(|o| o.2).collect();
    }
}

impl Observed {
    fn insert(&mut self, x: f64, loss: f64) {
        let age = self.by_loss.len() as u32;
        let i = self.by_loss.partition_point(|o| o.0 <= loss);
        self.by_loss.insert(i, (loss, x, age));
        self.by_x.insert(x, loss, age);
    }
}

impl TpeSampler {
    /// TPE with Optuna's defaults: 10 start-up trials, 24 candidates, γ = min(⌈0.1 n⌉, 25).
    pub fn new(seed: u64) -> Self {
        TpeSampler {
            seed,
            n_startup: 10,
            n_candidates: 24,
            gamma_fraction: 0.1,
            gamma_cap: 25,
            prior_weight: 1.0,
            constant_liar: true,
            multivariate: false,
            cache: Default::default(),
            intersection: Default::default(),
        }
    }

    /// Multivariate TPE with Optuna's defaults otherwise.
    pub fn multivariate(seed: u64) -> Self {
        TpeSampler {
            multivariate: true,
            ..Self::new(seed)
        }
    }
}

/// The coordinate of a trial's value: unit space, or the category index.
fn coordinate(t: &FrozenTrial, name: &str, dist: &Distribution) -> Option<f64> {
    if t.distributions.get(name) != Some(dist) {
        return None;
    }
    let value = t.params.get(name)?;
    match dist {
        Distribution::Categorical { choices } => {
            choices.iter().position(|c| c == value).map(|i| i as f64)
        }
        _ => dist.to_unit(value),
    }
}

/// Buffers one thread's asks reuse, so an ask allocates nothing once they have grown.
#[derive(Default)]
struct Scratch {
    below: Vec<f64>,
    /// Below's trials' ages, sorted.
    below_ages: Vec<u32>,
    above: Vec<f64>,
    above_ages: Vec<u32>,
    weights: Vec<f64>,
    weight_of_age: Vec<f64>,
    liars: Vec<f64>,
    candidates: Vec<f64>,
    l: Parzen,
    g: Parzen,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

impl TpeSampler {
    /// Splits a parameter's complete observations by loss into `below` (the best γ(n)) and
    /// `above` (the rest plus the running trials' values, the constant liar), with above's
    /// weights, all in `scratch`.
    fn split(
        &self,
        ctx: &SampleContext<'_>,
        seen: &Observed,
        name: &str,
        dist: &Distribution,
        scratch: &mut Scratch,
    ) {
        let complete = seen.by_loss.len();
        scratch.liars.clear();
        if self.constant_liar {
            scratch.liars.extend(
                ctx.running
                    .iter()
                    .filter(|t| t.number != ctx.trial_number)
                    .filter_map(|t| coordinate(t, name, dist)),
            );
        }
        let n_below = ((self.gamma_fraction * complete as f64).ceil() as usize)
            .clamp(1, self.gamma_cap.max(1))
            .min(complete);
        let threshold = seen.by_loss[n_below - 1].0;
        let below_count = seen.by_loss.partition_point(|o| o.0 <= threshold);
        let below = &seen.by_loss[..below_count];
        scratch.below.clear();
        scratch.below.extend(below.iter().map(|o| o.1));
        // Above: everything worse than the threshold, already in x order, plus the liars.
        // Older observations weigh less (Optuna's ramp: the newest 25 weigh 1, older ones
        // linearly less, down to 1/n for the oldest), so the model follows the search.
        // Written without a branch: every observation is copied and the cursor moves on past
        // the above ones only.
        let by_x = &seen.by_x;
        let n = by_x.xs.len();
        scratch.above.resize(n, 0.0);
        scratch.above_ages.resize(n, 0);
        let mut kept = 0;
        {
            // Slices, so that the loop keeps their lengths in registers.
            let (above, above_ages) = (&mut scratch.above[..n], &mut scratch.above_ages[..n]);
            let (xs, losses, ages) = (&by_x.xs[..n], &by_x.losses[..n], &by_x.ages[..n]);
            for i in 0..n {
                above[kept] = xs[i];
                above_ages[kept] = ages[i];
                kept += usize::from(losses[i] > threshold);
            }
        }
        scratch.above.truncate(kept);
        scratch.above_ages.truncate(kept);
        let n_above = scratch.above.len() + scratch.liars.len();
        scratch.weights.clear();
        if n_above >= 25 {
            // Every complete observation is below or above, and ages number them 0..complete,
            // so an above age's rank among the above ones is the age less the below ages
            // before it.
            scratch.below_ages.clear();
            scratch.below_ages.extend(below.iter().map(|o| o.2));
            scratch.below_ages.sort_unstable();
            let ages_below = &scratch.below_ages;
            let ramped = n_above - 25;
            let lo = 1.0 / n_above as f64;
            let slope = if ramped > 1 {
                (1.0 - lo) / (ramped - 1) as f64
            } else {
                0.0
            };
            // Each age's weight, were it above: one walk over the ages instead of a search per
            // observation.
            // The ranks run in stretches between below ages, each a straight line.
            scratch.weight_of_age.resize(complete, 0.0);
            let weight_of_age = &mut scratch.weight_of_age[..];
            let mut age = 0;
            for (before, stretch_end) in ages_below
                .iter()
                .map(|&a| a as usize)
                .chain([complete])
                .enumerate()
            {
                for slot in &mut weight_of_age[age..stretch_end] {
                    let rank = age - before;
                    *slot = if rank >= ramped {
                        1.0
                    } else {
                        lo + slope * rank as f64
                    };
                    age += 1;
                }
                age = (stretch_end + 1).min(complete);
            }
            let weight_of_age = &scratch.weight_of_age;
            scratch.weights.extend(
                scratch
                    .above_ages
                    .iter()
                    .map(|&age| weight_of_age[age as usize]),
            );
        }
        for &x in &scratch.liars {
            let at = scratch.above.partition_point(|&a| a <= x);
            scratch.above.insert(at, x);
            if !scratch.weights.is_empty() {
                scratch.weights.insert(at, 1.0);
            }
        }
    }

    /// The value to suggest, from the split in `scratch`: for numbers, the best of
    /// `n_candidates` draws from l(x) by l(x)/g(x).
    fn choose(&self, mut rng: Rng, dist: &Distribution, scratch: &mut Scratch) -> ParamValue {
        let weights = (!scratch.weights.is_empty()).then_some(&scratch.weights[..]);
        if let Distribution::Categorical { choices } = dist {
            let c = self.sample_categorical(
                &mut rng,
                choices.len(),
                &scratch.below,
                (&scratch.above, weights),
            );
            return choices[c].clone();
        }
        scratch.below.sort_by(f64::total_cmp);
        scratch
            .l
            .rebuild(&scratch.below, None, self.prior_weight, true);
        scratch
            .g
            .rebuild(&scratch.above, weights, self.prior_weight, false);
        scratch.candidates.clear();
        for _ in 0..self.n_candidates {
            scratch.candidates.push(scratch.l.sample(&mut rng));
        }
        // The best l(x)/g(x), compared by the scaled densities' ratio: the scales are the same
        // for every candidate.
        let mut best = (0.5, f64::NEG_INFINITY);
        for &x in &scratch.candidates {
            let l = scratch.l.scaled_density(x);
            // g's narrow components alone bound g from below, so the ratio from above: a
            // candidate that cannot beat the best so far is dropped before the rest is summed.
            let g_narrow = scratch.g.narrow_part(x);
            if l / g_narrow <= best.1 {
                continue;
            }
            let score = l / (g_narrow + scratch.g.wide_part(x));
            if score > best.1 {
                best = (x, score);
            }
        }
        dist.from_unit(best.0)
    }

    /// `above` with its observations' weights (the age ramp; all 1 when absent), as for
    /// numbers: old bad observations weigh less, so a choice that only looked bad in the
    /// random start-up (say, an optimizer tried with a poor learning rate) gets tried again.
    fn sample_categorical(
        &self,
        rng: &mut Rng,
        k: usize,
        below: &[f64],
        above: (&[f64], Option<&[f64]>),
    ) -> usize {
        let masses = |xs: &[f64], weights: Option<&[f64]>| {
            let mut w = vec![self.prior_weight / k as f64; k];
            for (i, &x) in xs.iter().enumerate() {
                w[x as usize] += weights.map_or(1.0, |ws| ws[i]);
            }
            let total: f64 = w.iter().sum();
            w.iter().map(|v| v / total).collect::<Vec<f64>>()
        };
        let (l, g) = (masses(below, None), masses(above.0, above.1));
        let mut best = (0, f64::NEG_INFINITY);
        for _ in 0..self.n_candidates {
            let u = rng.next_f64();
            let mut acc = 0.0;
            let mut c = k - 1;
            for (i, p) in l.iter().enumerate() {
                acc += p;
                if u < acc {
                    c = i;
                    break;
                }
            }
            let score = l[c].ln() - g[c].ln();
            if score > best.1 {
                best = (c, score);
            }
        }
        best.0
    }
}

impl Sampler for TpeSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        let mut guard = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (learn_from_pruned, cache) = &mut *guard;
        if *learn_from_pruned != ctx.learn_from_pruned || ctx.objectives.is_some() {
            // (With several objectives every new trial can move the others' ranks.)
            // Losses read another way (another study): read everything again.
            cache.clear();
            *learn_from_pruned = ctx.learn_from_pruned;
        }
        let seen = cache.entry(name.to_string()).or_default();
        if seen.dist.as_ref() != Some(dist) || seen.consumed > ctx.finished.len() {
            // A new parameter definition or another study: start over.
            *seen = Observed {
                dist: Some(dist.clone()),
                ..Default::default()
            };
        }
        let fresh: Vec<(f64, f64)> = ctx.finished[seen.consumed..]
            .iter()
            .filter_map(|t| Some((coordinate(t, name, dist)?, ctx.loss(t)?)))
            .collect();
        if fresh.len() > 32 {
            // A first read (or a big catch-up): sorting once beats inserting one by one.
            let first_age = seen.by_loss.len() as u32;
            seen.by_loss.extend(
                fresh
                    .iter()
                    .enumerate()
                    .map(|(k, &(x, loss))| (loss, x, first_age + k as u32)),
            );
            seen.by_x.extend(
                fresh
                    .iter()
                    .enumerate()
                    .map(|(k, &(x, loss))| (x, loss, first_age + k as u32)),
            );
            seen.by_loss.sort_by(|a, b| a.0.total_cmp(&b.0));
        } else {
            for (x, loss) in fresh {
                seen.insert(x, loss);
            }
        }
        seen.consumed = ctx.finished.len();
        let complete = seen.by_loss.len();
        if complete < self.n_startup.max(1) {
            return Ok(dist.from_unit(RandomSampler::unit(self.seed, ctx.trial_number, name)));
        }
        SCRATCH.with(|scratch| self.split(ctx, seen, name, dist, &mut scratch.borrow_mut()));
        drop(guard);
        let rng = Rng::keyed(
            self.seed,
            &[ctx.trial_number, stable_hash(name), 0x0074_7065],
        );
        Ok(SCRATCH.with(|scratch| self.choose(rng, dist, &mut scratch.borrow_mut())))
    }

    fn sample_joint(&self, ctx: &SampleContext<'_>) -> Result<JointSample, SamplerError> {
        if !self.multivariate {
            return Ok(JointSample::new());
        }
        let space = self
            .intersection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(ctx.finished);
        let settings = Settings {
            seed: self.seed,
            n_startup: self.n_startup,
            n_candidates: self.n_candidates,
            gamma_fraction: self.gamma_fraction,
            gamma_cap: self.gamma_cap,
            prior_weight: self.prior_weight,
            constant_liar: self.constant_liar,
        };
        Ok(super::tpe_multi::sample_joint(&settings, ctx, &space))
    }

    fn needs_history(&self) -> bool {
        true
    }

    fn learns_from_prior(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        if self.multivariate {
            "tpe-mv"
        } else {
            "tpe"
        }
    }
}
