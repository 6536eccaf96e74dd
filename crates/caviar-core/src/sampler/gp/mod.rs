mod log_ei;
mod model;
mod warp;

use std::sync::Mutex;

use super::random::RandomSampler;
use super::sobol::SobolSampler;
use super::{loss_of, JointSample, SampleContext, Sampler, SamplerError};
use crate::rng::{derive_seed, stable_hash, Rng};
use crate::space::{Distribution, ParamValue, SearchSpace};
use crate::trial::FrozenTrial;
use model::Gp;

/// Gaussian-process Bayesian optimisation.
///
/// The objective is modelled in the unit cube of the search space (each parameter on its own
/// scale, categorical parameters one-hot) by a Gaussian process with a Matérn-5/2 kernel and one
/// lengthscale per dimension, fitted by maximising the marginal likelihood under weak priors.
/// The next point maximises the logarithm of expected improvement: many random candidates,
/// then quasi-Newton climbs from the best few, then a neighbour search over discrete and
/// categorical values. A candidate that repeats a finished or running trial's configuration
/// gives way to the next best. The first `n_startup` trials come from a scrambled Sobol sequence.
/// Losses are warped before the fit (a few diverged runs do not flatten the rest). With
/// `trust_region_dims` numeric parameters or more, candidates stay in a box around the best
/// trial whose size follows TuRBO's success and failure counts. Running trials enter the model
/// at its own prediction (`kriging_believer`) or with the worst value seen (a constant liar),
/// so parallel workers spread out.
///
/// With more than `max_fit_points` complete trials the hyperparameters are fitted on a random
/// subset of that size, but the prediction uses every trial.
///
/// ```
/// use caviar_core::prelude::*;
/// use caviar_core::sampler::GpSampler;
/// let mut space = SearchSpace::new();
/// space.add("x", Distribution::float(-5.0, 5.0, Scale::Linear).unwrap()).unwrap();
/// space.add("lr", Distribution::float(1e-5, 1.0, Scale::Log).unwrap()).unwrap();
/// let study = Study::builder("gp").sampler(GpSampler::new(&space, 0)).build().unwrap();
/// study.optimize(25, |t| {
///     let x = t.suggest_float("x", -5.0, 5.0, Scale::Linear)?;
///     let lr = t.suggest_float("lr", 1e-5, 1.0, Scale::Log)?;
///     Ok((x - 1.0).powi(2) + (lr.log10() + 3.0).powi(2))
/// }).unwrap();
/// assert!(study.best_trial().unwrap().unwrap().value.unwrap() < 0.05);
/// ```
#[derive(Debug)]
pub struct GpSampler {
    encoding: Encoding,
    startup: SobolSampler,
    seed: u64,
    /// Complete trials drawn from the Sobol sequence before the model takes over.
    pub n_startup: usize,
    /// Random candidates scored per suggestion.
    pub n_candidates: usize,
    /// Best candidates refined by local search.
    pub n_local: usize,
    /// Most trials used to fit the hyperparameters.
    pub max_fit_points: usize,
    /// Enter running trials into the model (as the believer or the liar below), so parallel
    /// workers spread out.
    pub constant_liar: bool,
    /// From this many numeric parameters on (6 by default), proposals stay inside a trust
    /// region around the best trial (TuRBO, Eriksson et al., 2019): a global model in many
    /// dimensions spends its trials on the box's far corners.
    pub trust_region_dims: usize,
    /// Running trials enter the model at its own prediction (the Kriging believer, the
    /// default) instead of at the worst value seen: their uncertainty collapses without
    /// painting their region bad. With 4 trials at once on 10 kurobako problems, `auto` with
    /// the believer beat Optuna's TPE on 10, with the liar on 8 (BENCHMARKS.md).
    pub kriging_believer: bool,
    /// Warp each input by a Kumaraswamy CDF fitted with the kernel (as HEBO does), so the
    /// model can stretch the part of a range where the objective changes fast. Off by
    /// default: on the sigopt suite it lost to the plain kernel on 4 problems of 30 at 100
    /// trials and 7 at 50, and won on none and 1 (its 2 extra hyperparameters per column
    /// overfit few trials).
    pub input_warping: bool,
    /// The last fitted hyperparameters, a second starting point for the next fit.
    warm: Mutex<Option<Vec<f64>>>,
}

impl Clone for GpSampler {
    fn clone(&self) -> Self {
        GpSampler {
            encoding: self.encoding.clone(),
            startup: self.startup.clone(),
            warm: Mutex::default(),
            ..*self
        }
    }
}

impl GpSampler {
    /// A GP sampler over `space`: 10 start-up trials, 1,024 candidates, 4 local searches,
    /// hyperparameters fitted on at most 256 trials.
    pub fn new(space: &SearchSpace, seed: u64) -> Self {
        GpSampler {
            encoding: Encoding::new(space),
            startup: SobolSampler::new(space, seed),
            seed,
            n_startup: 10,
            n_candidates: 1024,
            n_local: 4,
            max_fit_points: 256,
            constant_liar: true,
            trust_region_dims: 6,
            kriging_believer: true,
            input_warping: false,
            warm: Mutex::default(),
        }
    }

    fn propose(&self, ctx: &SampleContext<'_>) -> Option<Vec<f64>> {
        let enc = &self.encoding;
        let d = enc.dim;
        let mut xs: Vec<f64> = Vec::new();
        let mut losses: Vec<f64> = Vec::new();
        let mut constraints: Vec<&[f64]> = Vec::new();
        // Every configuration already tried or running, failed ones included: a proposal
        // that repeats one spends a whole trial to learn (almost) nothing.
        let mut taken: Vec<Vec<f64>> = Vec::new();
        for t in ctx.finished {
            let Some(x) = enc.encode(t) else { continue };
            if let Some(loss) = loss_of(t, ctx.direction) {
                xs.extend_from_slice(&x);
                losses.push(loss);
                constraints.push(&t.constraints);
            }
            taken.push(x);
        }
        let n = losses.len();
        if n < self.n_startup.max(1) || d == 0 {
            return None;
        }
        let ys = warp::compress_bad_tail(&losses);
        let feasible: Vec<bool> = constraints
            .iter()
            .map(|c| crate::constraint::is_feasible(c))
            .collect();
        let mut rng = Rng::new(derive_seed(
            self.seed,
            &[ctx.trial_number, stable_hash("gp")],
        ));
        let theta = self.fit(&xs, &ys, d, &mut rng, Some(&self.warm))?;
        let best = (0..n)
            .filter(|&i| feasible[i])
            .map(|i| ys[i])
            .fold(None, |b: Option<f64>, y| Some(b.map_or(y, |b| b.min(y))));
        let worst = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // The incumbents seed local candidates: the best feasible trials, then the least
        // infeasible.
        let violation: Vec<f64> = constraints
            .iter()
            .map(|c| crate::constraint::violation(c))
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            violation[a]
                .total_cmp(&violation[b])
                .then(ys[a].total_cmp(&ys[b]))
        });
        let top: Vec<Vec<f64>> = order
            .iter()
            .take(5)
            .map(|&i| xs[i * d..i * d + d].to_vec())
            .collect();
        let region = (enc.numbers >= self.trust_region_dims).then(|| {
            let length = trust_region_length(&losses, &feasible, self.n_startup, enc.numbers);
            enc.trust_region(&xs[order[0] * d..order[0] * d + d], &theta[..d], length)
        });
        let feasibility = self.feasibility_models(&xs, &constraints, d, &mut rng);
        let mut all_x = xs;
        let mut all_y = ys;
        let pending: Vec<Vec<f64>> = ctx.running.iter().filter_map(|t| enc.encode(t)).collect();
        if self.constant_liar {
            let now = (self.kriging_believer && !pending.is_empty())
                .then(|| Gp::new(all_x.clone(), &all_y, d, &theta))
                .flatten();
            for x in &pending {
                // The liar, also when the believer's model cannot be built.
                all_y.push(now.as_ref().map_or(worst, |now| now.predict(x, false).mean));
                all_x.extend_from_slice(x);
            }
        }
        taken.extend(pending);
        let objective = Gp::new(all_x, &all_y, d, &theta)?;
        let acquisition = Acquisition {
            objective,
            best,
            feasibility,
        };
        Some(self.maximise_acquisition(&acquisition, &top, region.as_ref(), &taken, &mut rng))
    }

    /// Fits the kernel's hyperparameters to (xs, ys), on a random subset when there are many
    /// trials; `warm` keeps the last fit as a second starting point.
    fn fit(
        &self,
        xs: &[f64],
        ys: &[f64],
        d: usize,
        rng: &mut Rng,
        warm: Option<&Mutex<Option<Vec<f64>>>>,
    ) -> Option<Vec<f64>> {
        let n = ys.len();
        let subset;
        let (fit_x, fit_y) = if n > self.max_fit_points {
            let mut idx: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut idx);
            idx.truncate(self.max_fit_points);
            idx.sort_unstable();
            let fx: Vec<f64> = idx
                .iter()
                .flat_map(|&i| xs[i * d..i * d + d].iter().copied())
                .collect();
            let fy: Vec<f64> = idx.iter().map(|&i| ys[i]).collect();
            subset = (fx, fy);
            (&subset.0[..], &subset.1[..])
        } else {
            (xs, ys)
        };
        let mut starts = vec![model::default_theta(d, self.input_warping)];
        if let Some(w) = warm.and_then(|w| w.lock().unwrap_or_else(|p| p.into_inner()).clone()) {
            if w.len() == starts[0].len() {
                starts.push(w);
            }
        }
        let theta = model::fit_hyperparameters(fit_x, fit_y, d, &starts)?;
        if let Some(warm) = warm {
            *warm.lock().unwrap_or_else(|p| p.into_inner()) = Some(theta.clone());
        }
        Some(theta)
    }

    /// One Gaussian process per constraint over the trials' constraint values (Gardner et al.,
    /// 2014, as Optuna's constrained GP): the acquisition is weighted by the probability that
    /// every constraint holds. Values are standardised; the bound 0 moves with them. A value
    /// never reported sits just past the worst one measured.
    fn feasibility_models(
        &self,
        xs: &[f64],
        constraints: &[&[f64]],
        d: usize,
        rng: &mut Rng,
    ) -> Vec<(Gp, f64)> {
        let k = constraints.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut models = Vec::with_capacity(k);
        for j in 0..k {
            let mut cx = Vec::new();
            let mut cy = Vec::new();
            for (i, c) in constraints.iter().enumerate() {
                if let Some(&v) = c.get(j) {
                    cx.extend_from_slice(&xs[i * d..i * d + d]);
                    cy.push(v);
                }
            }
            let measured = cy
                .iter()
                .copied()
                .filter(|&v| v < crate::constraint::MISSING);
            let (lo, hi) = measured.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            let past_worst = if hi.is_finite() {
                hi + (hi - lo).max(1.0)
            } else {
                1.0
            };
            for v in cy.iter_mut() {
                if *v >= crate::constraint::MISSING {
                    *v = past_worst;
                }
            }
            let n = cy.len() as f64;
            let mean = cy.iter().sum::<f64>() / n;
            let sd = (cy.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            let sd = if sd > 1e-12 { sd } else { 1.0 };
            let z: Vec<f64> = cy.iter().map(|v| (v - mean) / sd).collect();
            let Some(theta) = self.fit(&cx, &z, d, rng, None) else {
                continue;
            };
            if let Some(gp) = Gp::new(cx, &z, d, &theta) {
                models.push((gp, -mean / sd));
            }
        }
        models
    }

    /// The point that maximises the acquisition, inside `region` (lower and upper corners in
    /// the unit cube) when one is given, and that is none of the `taken` points unless every
    /// candidate is.
    fn maximise_acquisition(
        &self,
        acquisition: &Acquisition,
        top: &[Vec<f64>],
        region: Option<&(Vec<f64>, Vec<f64>)>,
        taken: &[Vec<f64>],
        rng: &mut Rng,
    ) -> Vec<f64> {
        let enc = &self.encoding;
        let score = |x: &[f64]| acquisition.value(x, None);
        let into_region = |x: &mut Vec<f64>| {
            if let Some((lo, hi)) = region {
                for k in 0..x.len() {
                    x[k] = x[k].clamp(lo[k], hi[k]);
                }
            }
        };
        let mut candidates: Vec<Vec<f64>> = (0..self.n_candidates)
            .map(|_| {
                let mut x = enc.random(rng);
                if let Some((lo, hi)) = region {
                    for k in 0..x.len() {
                        x[k] = lo[k] + x[k] * (hi[k] - lo[k]);
                    }
                }
                enc.snap(&mut x);
                x
            })
            .collect();
        for x0 in top {
            for _ in 0..16 {
                let mut x = x0.clone();
                enc.perturb(&mut x, rng);
                into_region(&mut x);
                enc.snap(&mut x);
                candidates.push(x);
            }
        }
        let mut scored: Vec<(f64, Vec<f64>)> = candidates
            .into_iter()
            .map(|x| (score(&x), x))
            .filter(|(s, _)| s.is_finite())
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        if scored.is_empty() {
            return enc.random(rng);
        }
        let mut climbed = Vec::with_capacity(self.n_local);
        for (_, start) in scored.iter().take(self.n_local) {
            let (mut lo, mut hi) = enc.local_bounds(start);
            if let Some((rlo, rhi)) = region {
                for k in 0..lo.len() {
                    lo[k] = lo[k].max(rlo[k]).min(start[k]);
                    hi[k] = hi[k].min(rhi[k]).max(start[k]);
                }
            }
            let (x, _) = crate::optimize::minimize_box(
                |x, g| -acquisition.value(x, Some(g)),
                start,
                &lo,
                &hi,
                100,
                1e-6,
            );
            let mut x = x;
            enc.snap(&mut x);
            let mut value = score(&x);
            enc.neighbour_search(&mut x, &mut value, &score);
            if value.is_finite() {
                climbed.push((value, x));
            }
        }
        // Best first; on a tie the candidate before the climbs, as a climb must improve.
        scored.extend(climbed);
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let is_taken = |x: &[f64]| taken.iter().any(|t| same_point(t, x));
        let fresh = scored.iter().position(|(_, x)| !is_taken(x)).unwrap_or(0);
        scored.swap_remove(fresh).1
    }
}

/// The side of the trust region, replayed from the complete trials in the order they finished
/// (TuRBO's rule, one trial at a time): it starts at 0.8 of the unit cube, doubles after 3
/// improvements in a row, halves after max(4, dims) trials without one, and starts again when
/// it falls below 0.5⁷. The replay makes it the same for every worker and every resume.
fn trust_region_length(losses: &[f64], feasible: &[bool], n_startup: usize, dims: usize) -> f64 {
    const INITIAL: f64 = 0.8;
    const SMALLEST: f64 = 0.0078125;
    const LARGEST: f64 = 1.6;
    let fail_after = dims.max(4);
    let (mut length, mut wins, mut misses) = (INITIAL, 0, 0);
    let mut best = f64::INFINITY;
    for (i, (&loss, &ok)) in losses.iter().zip(feasible).enumerate() {
        let improved = ok && (best.is_infinite() || loss < best - 1e-3 * best.abs());
        if ok && loss < best {
            best = loss;
        }
        if i < n_startup {
            continue;
        }
        if improved {
            wins += 1;
            misses = 0;
        } else {
            misses += 1;
            wins = 0;
        }
        if wins == 3 {
            length = (2.0 * length).min(LARGEST);
            wins = 0;
        } else if misses == fail_after {
            length /= 2.0;
            misses = 0;
            if length < SMALLEST {
                length = INITIAL;
            }
        }
    }
    length
}

/// What the GP maximises: log expected improvement over the best feasible trial, plus the log
/// probability that every constraint holds (only the latter while no trial is feasible).
struct Acquisition {
    objective: Gp,
    /// The best feasible (warped) loss, if any trial is feasible.
    best: Option<f64>,
    /// Per constraint, its model and the bound in the model's standardised units.
    feasibility: Vec<(Gp, f64)>,
}

impl Acquisition {
    /// The acquisition at `x`; with `grad`, also the negated gradient written there (what
    /// the minimiser wants).
    fn value(&self, x: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        let with_grad = grad.is_some();
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        let mut total = 0.0;
        if let Some(best) = self.best {
            let p = self.objective.predict(x, with_grad);
            let sd = p.var.sqrt();
            let (value, d_mean, d_sd) = log_ei::log_ei(p.mean, sd, best);
            total += value;
            if let (Some(g), Some((dm, dv))) = (grad.as_deref_mut(), p.grad) {
                for k in 0..g.len() {
                    g[k] -= d_mean * dm[k] + d_sd * dv[k] / (2.0 * sd);
                }
            }
        }
        for (gp, bound) in &self.feasibility {
            let p = gp.predict(x, with_grad);
            let sd = p.var.sqrt();
            let z = (bound - p.mean) / sd;
            let (value, ratio) = log_ei::log_cdf(z);
            total += value;
            if let (Some(g), Some((dm, dv))) = (grad.as_deref_mut(), p.grad) {
                for k in 0..g.len() {
                    let dz = -dm[k] / sd - z / sd * dv[k] / (2.0 * sd);
                    g[k] -= ratio * dz;
                }
            }
        }
        total
    }
}

impl GpSampler {
    /// Whether the model proposes `name` drawn from `dist` (it is in the space it was built for).
    pub(crate) fn covers(&self, name: &str, dist: &Distribution) -> bool {
        self.encoding.covers(name, dist)
    }
}

impl Sampler for GpSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        if self.encoding.covers(name, dist) {
            self.startup.sample(ctx, name, dist)
        } else {
            Ok(dist.from_unit(RandomSampler::unit(self.seed, ctx.trial_number, name)))
        }
    }

    fn sample_joint(&self, ctx: &SampleContext<'_>) -> Result<JointSample, SamplerError> {
        Ok(match self.propose(ctx) {
            Some(x) => self.encoding.decode(&x),
            None => JointSample::new(),
        })
    }

    fn needs_history(&self) -> bool {
        true
    }

    fn learns_from_prior(&self) -> bool {
        true
    }

    fn handles_several_objectives(&self) -> bool {
        // It models one value.
        false
    }

    fn name(&self) -> &'static str {
        "gp"
    }
}

/// Where each parameter lives in the model's input vector: one unit coordinate for a number,
/// one column per choice for a categorical parameter.
#[derive(Clone, Debug)]
struct Encoding {
    params: Vec<(String, Distribution, usize, usize)>,
    dim: usize,
    /// Numeric parameters (one column each).
    numbers: usize,
    /// The space, for its conditions: a parameter a trial lacks because its conditions fail
    /// sits at a fixed point (numbers at the middle, categories all zero), so the model learns
    /// from every trial and compares like with like within a branch.
    space: SearchSpace,
}

/// The unit coordinate of a number a trial lacks.
const ABSENT_NUMBER: f64 = 0.5;

impl Encoding {
    fn new(space: &SearchSpace) -> Self {
        let mut params = Vec::new();
        let mut dim = 0;
        for (name, dist) in space.iter() {
            let width = match dist {
                Distribution::Categorical { choices } => choices.len(),
                _ => 1,
            };
            params.push((name.clone(), dist.clone(), dim, width));
            dim += width;
        }
        let numbers = params
            .iter()
            .filter(|p| !matches!(p.1, Distribution::Categorical { .. }))
            .count();
        Encoding {
            params,
            dim,
            numbers,
            space: space.clone(),
        }
    }

    /// The box around `centre` whose side on each number is `length` times its lengthscale
    /// relative to their geometric mean (so the region is long where the objective changes
    /// slowly); categories stay free. `ln_ls` holds the log lengthscales of every column.
    fn trust_region(&self, centre: &[f64], ln_ls: &[f64], length: f64) -> (Vec<f64>, Vec<f64>) {
        let numeric: Vec<usize> = self
            .params
            .iter()
            .filter(|p| !matches!(p.1, Distribution::Categorical { .. }))
            .map(|p| p.2)
            .collect();
        let mean_ln = numeric.iter().map(|&k| ln_ls[k]).sum::<f64>() / numeric.len().max(1) as f64;
        let mut lo = vec![0.0; self.dim];
        let mut hi = vec![1.0; self.dim];
        let inactive = self.inactive_numbers(centre);
        for &k in numeric.iter().filter(|k| !inactive.contains(k)) {
            let half = 0.5 * length * (ln_ls[k] - mean_ln).exp();
            lo[k] = (centre[k] - half).max(0.0);
            hi[k] = (centre[k] + half).min(1.0);
        }
        (lo, hi)
    }

    /// The parameters (indices into `params`) that `x`'s own parents rule out.
    fn inactive(&self, x: &[f64]) -> Vec<usize> {
        if !self.space.is_conditional() {
            return Vec::new();
        }
        let mut active = std::collections::BTreeMap::new();
        let mut inactive = Vec::new();
        for (name, _) in self.space.in_order() {
            let Some(i) = self.params.iter().position(|p| &p.0 == name) else {
                continue;
            };
            let (_, dist, at, width) = &self.params[i];
            if !self.space.is_active(name, &active) {
                inactive.push(i);
                continue;
            }
            let value = match dist {
                Distribution::Categorical { choices } => {
                    choices[argmax(&x[*at..at + width])].clone()
                }
                _ => dist.from_unit(x[*at]),
            };
            active.insert(name.clone(), value);
        }
        inactive
    }

    /// The columns of the numbers that `x`'s own parents rule out (they sit at their fixed
    /// point, which says nothing about where to search them).
    fn inactive_numbers(&self, x: &[f64]) -> Vec<usize> {
        self.inactive(x)
            .into_iter()
            .filter(|&i| !matches!(self.params[i].1, Distribution::Categorical { .. }))
            .map(|i| self.params[i].2)
            .collect()
    }

    /// Puts the parameters that `x`'s own parents rule out at their fixed point.
    fn clear_inactive(&self, x: &mut [f64]) {
        for i in self.inactive(x) {
            let (_, dist, at, width) = &self.params[i];
            match dist {
                Distribution::Categorical { .. } => {
                    x[*at..at + width].iter_mut().for_each(|v| *v = 0.0)
                }
                _ => x[*at] = ABSENT_NUMBER,
            }
        }
    }

    fn covers(&self, name: &str, dist: &Distribution) -> bool {
        self.params
            .iter()
            .any(|(n, d, _, _)| n == name && d == dist)
    }

    fn encode(&self, t: &FrozenTrial) -> Option<Vec<f64>> {
        let mut x = vec![0.0; self.dim];
        for (name, dist, at, _) in &self.params {
            if !t.params.contains_key(name)
                && !self.space.conditions(name).is_empty()
                && !self.space.is_active(name, &t.params)
            {
                // Absent because its conditions fail: its fixed point.
                if !matches!(dist, Distribution::Categorical { .. }) {
                    x[*at] = ABSENT_NUMBER;
                }
                continue;
            }
            if t.distributions.get(name) != Some(dist) {
                return None;
            }
            let value = t.params.get(name)?;
            match dist {
                Distribution::Categorical { choices } => {
                    x[at + choices.iter().position(|c| c == value)?] = 1.0;
                }
                _ => x[*at] = dist.to_unit(value)?,
            }
        }
        Some(x)
    }

    fn decode(&self, x: &[f64]) -> JointSample {
        self.params
            .iter()
            .map(|(name, dist, at, width)| {
                let value = match dist {
                    Distribution::Categorical { choices } => {
                        choices[argmax(&x[*at..at + width])].clone()
                    }
                    _ => dist.from_unit(x[*at]),
                };
                (name.clone(), (dist.clone(), value))
            })
            .collect()
    }

    /// Moves discrete numbers to the centre of their cell and makes categories exactly one-hot,
    /// so the model scores the point that would really be tried.
    fn snap(&self, x: &mut [f64]) {
        for (_, dist, at, width) in &self.params {
            match dist {
                Distribution::Categorical { .. } => {
                    let k = argmax(&x[*at..at + width]);
                    for (j, v) in x[*at..at + width].iter_mut().enumerate() {
                        *v = if j == k { 1.0 } else { 0.0 };
                    }
                }
                _ if dist.cardinality().is_some() => {
                    x[*at] = dist.to_unit(&dist.from_unit(x[*at])).unwrap_or(x[*at]);
                }
                _ => {}
            }
        }
        self.clear_inactive(x);
    }

    fn random(&self, rng: &mut Rng) -> Vec<f64> {
        let mut x = vec![0.0; self.dim];
        for (_, dist, at, width) in &self.params {
            match dist {
                Distribution::Categorical { .. } => x[at + rng.below(*width as u64) as usize] = 1.0,
                _ => x[*at] = rng.next_f64(),
            }
        }
        x
    }

    /// A small random move: numbers by N(0, 0.05²), categories re-drawn one time in five.
    fn perturb(&self, x: &mut [f64], rng: &mut Rng) {
        for (_, dist, at, width) in &self.params {
            match dist {
                Distribution::Categorical { .. } => {
                    if rng.next_f64() < 0.2 {
                        x[*at..at + width].iter_mut().for_each(|v| *v = 0.0);
                        x[at + rng.below(*width as u64) as usize] = 1.0;
                    }
                }
                _ => x[*at] = (x[*at] + 0.05 * rng.normal()).clamp(0.0, 1.0),
            }
        }
    }

    /// Box for the gradient climb: numbers free in [0, 1], categories held where they are.
    fn local_bounds(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut lo = vec![0.0; self.dim];
        let mut hi = vec![1.0; self.dim];
        for (_, dist, at, width) in &self.params {
            if matches!(dist, Distribution::Categorical { .. }) {
                lo[*at..at + width].copy_from_slice(&x[*at..at + width]);
                hi[*at..at + width].copy_from_slice(&x[*at..at + width]);
            }
        }
        (lo, hi)
    }

    /// Greedy moves to the neighbouring cell of each discrete number and to every other choice
    /// of each categorical parameter, while any improves the score.
    fn neighbour_search(&self, x: &mut Vec<f64>, value: &mut f64, score: &dyn Fn(&[f64]) -> f64) {
        for _ in 0..3 {
            let mut improved = false;
            for (_, dist, at, width) in &self.params {
                let mut tries: Vec<Vec<f64>> = Vec::new();
                match dist {
                    Distribution::Categorical { .. } => {
                        for j in 0..*width {
                            if x[at + j] != 1.0 {
                                let mut y = x.clone();
                                y[*at..at + width].iter_mut().for_each(|v| *v = 0.0);
                                y[at + j] = 1.0;
                                self.snap(&mut y);
                                tries.push(y);
                            }
                        }
                    }
                    _ => {
                        if let Some(cells) = dist.cardinality() {
                            let step = 1.0 / cells as f64;
                            for u in [x[*at] - step, x[*at] + step] {
                                if (0.0..=1.0).contains(&u) {
                                    let mut y = x.clone();
                                    y[*at] = u;
                                    self.snap(&mut y);
                                    tries.push(y);
                                }
                            }
                        }
                    }
                }
                for y in tries {
                    let s = score(&y);
                    if s > *value {
                        *value = s;
                        *x = y;
                        improved = true;
                    }
                }
            }
            if !improved {
                break;
            }
        }
    }
}

/// Whether two encoded points are one configuration (the tolerance absorbs the round trip of a
/// value through the unit cube).
fn same_point(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(u, v)| (u - v).abs() <= 1e-9)
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Scale;

    #[test]
    fn a_warped_gp_still_finds_a_log_scale_optimum() {
        use crate::study::Study;
        let mut space = SearchSpace::new();
        let x = Distribution::float(-5.0, 5.0, Scale::Linear).unwrap();
        space.add("x", x).unwrap();
        let lr = Distribution::float(1e-5, 1.0, Scale::Log).unwrap();
        space.add("lr", lr).unwrap();
        let mut gp = GpSampler::new(&space, 3);
        gp.input_warping = true;
        let study = Study::builder("warped").sampler(gp).build().unwrap();
        study
            .optimize(30, |t| {
                let x = t.suggest_float("x", -5.0, 5.0, Scale::Linear)?;
                let lr = t.suggest_float("lr", 1e-5, 1.0, Scale::Log)?;
                Ok((x - 1.0).powi(2) + (lr.log10() + 3.0).powi(2))
            })
            .unwrap();
        let best = study.best_trial().unwrap().unwrap().value.unwrap();
        assert!(best < 0.05, "{best}");
    }

    #[test]
    fn the_gp_does_not_propose_a_configuration_already_tried() {
        use crate::study::Study;
        // 21 integers and a bowl at 7, found by the start-up: without the check every GP
        // turn proposed 7 again.
        let mut space = SearchSpace::new();
        space
            .add("n", Distribution::int(0, 20, Scale::Linear).unwrap())
            .unwrap();
        let study = Study::builder("repeats")
            .sampler(GpSampler::new(&space, 5))
            .build()
            .unwrap();
        study
            .optimize(21, |t| {
                let n = t.suggest_int("n", 0, 20, Scale::Linear)?;
                Ok(((n - 7) as f64).powi(2))
            })
            .unwrap();
        let trials = study.trials().unwrap();
        let ns: Vec<&ParamValue> = trials[10..].iter().map(|t| &t.params["n"]).collect();
        for (i, t) in trials.iter().enumerate().skip(10) {
            let earlier = trials[..i]
                .iter()
                .filter(|e| e.params["n"] == t.params["n"]);
            assert_eq!(
                earlier.count(),
                0,
                "trial {i} repeats n = {:?} ({ns:?})",
                t.params["n"]
            );
        }
        assert_eq!(study.best_trial().unwrap().unwrap().value, Some(0.0));
    }

    #[test]
    fn a_space_tried_in_full_still_gets_proposals() {
        use crate::study::Study;
        let mut space = SearchSpace::new();
        let choice = Distribution::categorical(["a", "b", "c"]).unwrap();
        space.add("c", choice.clone()).unwrap();
        let mut gp = GpSampler::new(&space, 2);
        gp.n_startup = 3;
        let study = Study::builder("full").sampler(gp).build().unwrap();
        study
            .optimize(9, |t| {
                let c = t.suggest("c", choice.clone())?;
                Ok(if c == ParamValue::from("b") { 0.0 } else { 1.0 })
            })
            .unwrap();
        let trials = study.trials().unwrap();
        assert_eq!(trials.len(), 9);
        assert!(trials
            .iter()
            .all(|t| t.state == crate::trial::TrialState::Complete));
    }

    #[test]
    fn the_trust_region_grows_on_wins_shrinks_on_misses_and_restarts() {
        let ok = vec![true; 200];
        // Start-up trials never move it.
        let startup: Vec<f64> = (0..10).map(|i| 10.0 - i as f64).collect();
        assert_eq!(trust_region_length(&startup, &ok, 10, 6), 0.8);
        // Three improvements in a row double it (capped at 1.6).
        let mut wins = startup.clone();
        wins.extend([0.5, 0.4, 0.3]);
        assert_eq!(trust_region_length(&wins, &ok, 10, 6), 1.6);
        // Six misses in six dimensions halve it; an infeasible trial is a miss.
        let mut misses = startup.clone();
        misses.extend([5.0; 5]);
        let mut infeasible = ok.clone();
        misses.push(-100.0);
        infeasible[15] = false;
        assert_eq!(trust_region_length(&misses, &infeasible, 10, 6), 0.4);
        // Halved below 0.5^7 it starts again at 0.8: 7 halvings, then one more.
        let mut stuck = startup.clone();
        stuck.extend([5.0; 6 * 7]);
        assert_eq!(trust_region_length(&stuck, &ok, 10, 6), 0.8);
        stuck.extend([5.0; 6]);
        assert_eq!(trust_region_length(&stuck, &ok, 10, 6), 0.4);
    }

    #[test]
    fn the_trust_region_is_long_where_the_objective_is_flat_and_leaves_categories_free() {
        let mut space = SearchSpace::new();
        for name in ["a", "b"] {
            let dist = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
            space.add(name, dist).unwrap();
        }
        space
            .add("c", Distribution::categorical(["x", "y"]).unwrap())
            .unwrap();
        let enc = Encoding::new(&space);
        // Columns: a, b, then c's two one-hot columns; a's lengthscale is e² times b's.
        let ln_ls = [1.0, -1.0, 0.0, 0.0];
        let (lo, hi) = enc.trust_region(&[0.5, 0.5, 1.0, 0.0], &ln_ls, 0.2);
        let side = |k: usize| hi[k] - lo[k];
        assert!((side(0) / side(1) - (2.0f64).exp()).abs() < 1e-9);
        assert!(((side(0) * side(1)).sqrt() - 0.2).abs() < 1e-9);
        assert_eq!((lo[2], hi[2], lo[3], hi[3]), (0.0, 1.0, 0.0, 1.0));
    }
}
