use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::random::RandomSampler;
use super::tpe_multi::{Intersection, Settings};
use super::{loss_of, JointSample, SampleContext, Sampler, SamplerError, LN_SQRT_2PI};
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
    /// Per parameter, what has been read from the finished trials so far.
    cache: Arc<Mutex<HashMap<String, Observed>>>,
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

/// The complete observations of one parameter, kept sorted two ways so that an ask costs a
/// merge, not a sort.
#[derive(Debug, Default)]
struct Observed {
    dist: Option<Distribution>,
    /// How many finished trials have been read.
    consumed: usize,
    /// (loss, x), by loss.
    by_loss: Vec<(f64, f64)>,
    /// (x, loss, age), by x; age counts complete observations in the order they were read.
    by_x: Vec<(f64, f64, u32)>,
}

impl Observed {
    fn insert(&mut self, x: f64, loss: f64) {
        let age = self.by_loss.len() as u32;
        let i = self.by_loss.partition_point(|o| o.0 <= loss);
        self.by_loss.insert(i, (loss, x));
        let j = self.by_x.partition_point(|o| o.0 <= x);
        self.by_x.insert(j, (x, loss, age));
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

/// A mixture of Gaussians truncated to [0, 1], plus a wide prior component.
///
/// Components are kept sorted by centre and grouped into bands by bandwidth (up to 1, 2 and 4
/// times the smallest allowed). A density is summed over every wide component but, in each band,
/// only over components within 7 of the band's largest bandwidths of the point: one farther away
/// adds less than 1e-10 of what the prior alone adds, so the sum is exact for choosing
/// candidates and costs a few windows instead of all n components.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    /// Raw weights of the data components (all 1 when absent) and of the prior.
    weights: Option<Vec<f64>>,
    prior_weight: f64,
    log_total: f64,
    /// The smallest bandwidth and its ln, which most components have once trials are many.
    min_sigma: (f64, f64),
    scratch_terms: Vec<f64>,
    cumulative_weights: Vec<f64>,
    /// Components grouped by bandwidth, each group in centre order; the last group holds the
    /// wide components and has an infinite window.
    bands: Vec<Band>,
}

/// Components with similar bandwidths, stored contiguously so a window is a slice.
struct Band {
    members: Vec<usize>,
    centres: Vec<f64>,
    inv_sigmas: Vec<f64>,
    /// log weight - log(σ√2π) - log(truncation mass); computed when a density first needs it
    /// (NaN until then), since most components never fall in a window.
    offsets: Vec<f64>,
    half_width: f64,
}

/// e^x for x ≤ 0, to about 1e-15 relative error, inlined: the density sums call it thousands of
/// times per ask and libm's general `exp` is a function call with special cases they never need.
/// Range reduction x = k·ln2 + r (ln2 split in two parts), a degree-12 Taylor polynomial for
/// e^r with |r| ≤ ln2/2, and 2^k put straight into the exponent bits.
#[inline]
fn exp_nonpositive(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    if x < -708.0 {
        return 0.0;
    }
    // Round to nearest for y ≤ 0 by truncating y - 0.5 (f64::round is a libm call on baseline
    // x86-64).
    let k = (x * std::f64::consts::LOG2_E - 0.5) as i64;
    let kf = k as f64;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    // 1/12!, 1/11!, ..., 1/1!, 1/0!.
    const COEFFS: [f64; 13] = [
        2.087_675_698_786_81e-9,
        2.505_210_838_544_172e-8,
        2.755_731_922_398_589e-7,
        2.755_731_922_398_589_3e-6,
        2.480_158_730_158_73e-5,
        1.984_126_984_126_984e-4,
        1.388_888_888_888_889e-3,
        8.333_333_333_333_333e-3,
        4.166_666_666_666_666_4e-2,
        1.666_666_666_666_666_6e-1,
        0.5,
        1.0,
        1.0,
    ];
    let mut p = COEFFS[0];
    for c in &COEFFS[1..] {
        p = p * r + c;
    }
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

impl Parzen {
    fn new(mut centers: Vec<f64>, prior_weight: f64) -> Self {
        centers.sort_by(f64::total_cmp);
        Self::from_sorted(centers, None, prior_weight, true)
    }

    /// An estimator over `centers` (sorted), each weighted by `weights` (1 when absent), plus
    /// the prior. Bandwidths follow Optuna's univariate rule: the larger gap to a neighbour,
    /// counting the prior's centre 0.5 as a neighbour and, at either end, only the inner gap;
    /// clipped to [1 / min(100, n + 2), 1].
    /// `sampled`: whether candidates will be drawn from it (only then are cumulative weights
    /// needed).
    fn from_sorted(
        centers: Vec<f64>,
        weights: Option<Vec<f64>>,
        prior_weight: f64,
        sampled: bool,
    ) -> Self {
        let n = centers.len();
        let min_sigma = 1.0 / (100.0f64).min(n as f64 + 2.0);
        // Neighbours of centre i in the merged order of centres and the prior's 0.5.
        let prior_at = centers.partition_point(|&c| c < 0.5);
        let merged = |k: usize| -> f64 {
            // Position k in the merged sequence (centres with 0.5 inserted at prior_at).
            match k.cmp(&prior_at) {
                std::cmp::Ordering::Less => centers[k],
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Greater => centers[k - 1],
            }
        };
        let len = n + 1;
        let mut mus = Vec::with_capacity(n + 1);
        let mut sigmas = Vec::with_capacity(n + 1);
        for (i, &mu) in centers.iter().enumerate() {
            let k = if i < prior_at { i } else { i + 1 };
            let left = if k == 0 { mu } else { mu - merged(k - 1) };
            let right = if k + 1 == len {
                1.0 - mu
            } else {
                merged(k + 1) - mu
            };
            let sigma = if len >= 2 && k == 0 {
                right
            } else if len >= 2 && k + 1 == len {
                left
            } else {
                left.max(right)
            };
            mus.push(mu);
            sigmas.push(sigma.clamp(min_sigma, 1.0));
        }
        mus.push(0.5);
        sigmas.push(1.0);
        let raw = |i: usize| -> f64 {
            if i == n {
                prior_weight
            } else {
                weights.as_ref().map_or(1.0, |w| w[i])
            }
        };
        let total: f64 = (0..=n).map(raw).sum();
        let weight = |i: usize| raw(i) / total;
        let log_total = total.ln();
        let mut acc = 0.0;
        let cumulative_weights = if sampled {
            (0..=n)
                .map(|i| {
                    acc += weight(i);
                    acc
                })
                .collect()
        } else {
            Vec::new()
        };
        let limits = [min_sigma, 2.0 * min_sigma, 4.0 * min_sigma];
        let mut bands: Vec<Band> = limits
            .iter()
            .map(|l| 7.0 * l)
            .chain([f64::INFINITY])
            .map(|half_width| Band {
                members: Vec::new(),
                centres: Vec::new(),
                inv_sigmas: Vec::new(),
                offsets: Vec::new(),
                half_width,
            })
            .collect();
        for i in 0..=n {
            let b = limits
                .iter()
                .position(|&l| sigmas[i] <= l)
                .unwrap_or(limits.len());
            let band = &mut bands[b];
            band.members.push(i);
            band.centres.push(mus[i]);
            band.inv_sigmas.push(1.0 / sigmas[i]);
            band.offsets.push(f64::NAN);
        }
        Parzen {
            mus,
            sigmas,
            weights,
            prior_weight,
            log_total,
            min_sigma: (min_sigma, min_sigma.ln()),
            scratch_terms: Vec::new(),
            cumulative_weights,
            bands,
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        let u = rng.next_f64() * self.cumulative_weights.last().copied().unwrap_or(1.0);
        let k = self
            .cumulative_weights
            .partition_point(|&c| c <= u)
            .min(self.mus.len() - 1);
        for _ in 0..64 {
            let x = self.mus[k] + self.sigmas[k] * rng.normal();
            if (0.0..=1.0).contains(&x) {
                return x;
            }
        }
        self.mus[k].clamp(0.0, 1.0)
    }

    fn offset(&self, i: usize) -> f64 {
        let (m, s) = (self.mus[i], self.sigmas[i]);
        let n = self.mus.len() - 1;
        let raw_w = if i == n {
            self.prior_weight
        } else {
            self.weights.as_ref().map_or(1.0, |w| w[i])
        };
        let log_w = if raw_w == 1.0 { 0.0 } else { raw_w.ln() } - self.log_total;
        // Components 9σ inside the box lose nothing to truncation.
        let mass = if m - 9.0 * s >= 0.0 && m + 9.0 * s <= 1.0 {
            1.0
        } else {
            (normal_cdf((1.0 - m) / s) - normal_cdf(-m / s)).max(1e-300)
        };
        let log_s = if s == self.min_sigma.0 {
            self.min_sigma.1
        } else {
            s.ln()
        };
        log_w - LN_SQRT_2PI - log_s - mass.ln()
    }

    #[cfg(test)]
    fn term(&self, i: usize, x: f64) -> f64 {
        let z = (x - self.mus[i]) / self.sigmas[i];
        self.offset(i) - 0.5 * z * z
    }

    fn log_pdf(&mut self, x: f64) -> f64 {
        let mut terms = std::mem::take(&mut self.scratch_terms);
        terms.clear();
        for b in 0..self.bands.len() {
            let (from, to) = {
                let band = &self.bands[b];
                let w = band.half_width;
                (
                    band.centres.partition_point(|&m| m < x - w),
                    band.centres.partition_point(|&m| m <= x + w),
                )
            };
            for k in from..to {
                if self.bands[b].offsets[k].is_nan() {
                    let v = self.offset(self.bands[b].members[k]);
                    self.bands[b].offsets[k] = v;
                }
            }
            let band = &self.bands[b];
            terms.extend(
                band.centres[from..to]
                    .iter()
                    .zip(&band.inv_sigmas[from..to])
                    .zip(&band.offsets[from..to])
                    .map(|((m, inv), off)| {
                        let z = (x - m) * inv;
                        off - 0.5 * z * z
                    }),
            );
        }
        // Two passes (maximum, then the sum of exponentials) keep the loops branch-free.
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = terms.iter().map(|&t| exp_nonpositive(t - max)).sum();
        self.scratch_terms = terms;
        max + sum.ln()
    }

    /// The density summed over every component (the reference for the windowed one).
    #[cfg(test)]
    fn log_pdf_exact(&self, x: f64) -> f64 {
        let terms: Vec<f64> = (0..self.mus.len()).map(|i| self.term(i, x)).collect();
        log_sum_exp(&terms)
    }
}

#[cfg(test)]
fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

impl TpeSampler {
    fn sample_categorical(&self, rng: &mut Rng, k: usize, below: &[f64], above: &[f64]) -> usize {
        let weights = |xs: &[f64]| {
            let mut w = vec![self.prior_weight / k as f64; k];
            for &x in xs {
                w[x as usize] += 1.0;
            }
            let total: f64 = w.iter().sum();
            w.iter().map(|v| v / total).collect::<Vec<f64>>()
        };
        let (l, g) = (weights(below), weights(above));
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
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
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
            .filter_map(|t| Some((coordinate(t, name, dist)?, loss_of(t, ctx.direction)?)))
            .collect();
        if fresh.len() > 32 {
            // A first read (or a big catch-up): sorting once beats inserting one by one.
            let first_age = seen.by_loss.len() as u32;
            seen.by_loss
                .extend(fresh.iter().map(|&(x, loss)| (loss, x)));
            seen.by_x.extend(
                fresh
                    .iter()
                    .enumerate()
                    .map(|(k, &(x, loss))| (x, loss, first_age + k as u32)),
            );
            seen.by_loss.sort_by(|a, b| a.0.total_cmp(&b.0));
            seen.by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
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
        let liars: Vec<f64> = if self.constant_liar {
            ctx.running
                .iter()
                .filter(|t| t.number != ctx.trial_number)
                .filter_map(|t| coordinate(t, name, dist))
                .collect()
        } else {
            Vec::new()
        };
        let n_below = ((self.gamma_fraction * complete as f64).ceil() as usize)
            .clamp(1, self.gamma_cap.max(1))
            .min(complete);
        let threshold = seen.by_loss[n_below - 1].0;
        let below_count = seen.by_loss.partition_point(|o| o.0 <= threshold);
        let below: Vec<f64> = seen.by_loss[..below_count].iter().map(|o| o.1).collect();
        let mut rng = Rng::keyed(
            self.seed,
            &[ctx.trial_number, stable_hash(name), 0x0074_7065],
        );
        if let Distribution::Categorical { choices } = dist {
            let above: Vec<f64> = seen.by_loss[below_count..]
                .iter()
                .map(|o| o.1)
                .chain(liars)
                .collect();
            let c = self.sample_categorical(&mut rng, choices.len(), &below, &above);
            return Ok(choices[c].clone());
        }
        // Above: everything worse than the threshold, already in x order, plus the liars.
        // Older observations weigh less (Optuna's ramp: the newest 25 weigh 1, older ones
        // linearly less, down to 1/n for the oldest), so the model follows the search.
        let mut above: Vec<f64> = Vec::with_capacity(complete - below_count + liars.len());
        let mut ages: Vec<u32> = Vec::with_capacity(complete - below_count);
        for &(x, loss, age) in &seen.by_x {
            if loss > threshold {
                above.push(x);
                ages.push(age);
            }
        }
        let n_above = above.len() + liars.len();
        let weights = if n_above >= 25 {
            // Rank of each age among the above ages, oldest first.
            let mut is_above = vec![false; complete];
            for &a in &ages {
                if let Some(slot) = is_above.get_mut(a as usize) {
                    *slot = true;
                }
            }
            let mut rank_of = vec![0u32; complete];
            let mut r = 0;
            for (a, &flag) in is_above.iter().enumerate() {
                rank_of[a] = r;
                r += u32::from(flag);
            }
            let ramped = n_above - 25;
            let ramp = |rank: usize| {
                if rank >= ramped {
                    1.0
                } else if ramped == 1 {
                    1.0 / n_above as f64
                } else {
                    let lo = 1.0 / n_above as f64;
                    lo + (1.0 - lo) * rank as f64 / (ramped - 1) as f64
                }
            };
            let mut w: Vec<f64> = ages
                .iter()
                .map(|&a| ramp(rank_of.get(a as usize).copied().unwrap_or(0) as usize))
                .collect();
            for x in &liars {
                let at = above.partition_point(|&a| a <= *x);
                above.insert(at, *x);
                w.insert(at, 1.0);
            }
            Some(w)
        } else {
            for x in liars {
                let at = above.partition_point(|&a| a <= x);
                above.insert(at, x);
            }
            None
        };
        drop(cache);
        let (mut l, mut g) = (
            Parzen::new(below, self.prior_weight),
            Parzen::from_sorted(above, weights, self.prior_weight, false),
        );
        let mut best = (0.5, f64::NEG_INFINITY);
        for _ in 0..self.n_candidates {
            let x = l.sample(&mut rng);
            let score = l.log_pdf(x) - g.log_pdf(x);
            if score > best.1 {
                best = (x, score);
            }
        }
        Ok(dist.from_unit(best.0))
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

    fn name(&self) -> &'static str {
        if self.multivariate {
            "tpe-mv"
        } else {
            "tpe"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_libm() {
        let mut x = 0.0;
        while x > -750.0 {
            let (fast, exact) = (exp_nonpositive(x), x.exp());
            assert!(
                (fast - exact).abs() <= 4e-15 * exact || (exact < 1e-300 && fast < 1e-300),
                "exp({x}): {fast} vs {exact}"
            );
            x -= 0.0137;
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (-1.0, 1.842_700_793),
            (2.0, 0.004_677_735),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7, "erfc({x})");
        }
    }

    #[test]
    fn windowed_density_matches_the_full_sum() {
        let mut rng = Rng::new(4);
        let centers: Vec<f64> = (0..2000).map(|_| rng.next_f64().powi(3)).collect();
        let mut p = Parzen::new(centers, 1.0);
        assert!(
            p.bands[..3].iter().map(|b| b.members.len()).sum::<usize>() > 1000,
            "most components are narrow at this size"
        );
        for i in 0..=200 {
            let x = i as f64 / 200.0;
            let (fast, exact) = (p.log_pdf(x), p.log_pdf_exact(x));
            assert!((fast - exact).abs() < 1e-9, "x = {x}: {fast} vs {exact}");
        }
    }

    #[test]
    fn parzen_density_integrates_to_one() {
        let mut p = Parzen::new(vec![0.1, 0.15, 0.8, 0.95], 1.0);
        let n = 20_000;
        let integral: f64 = (0..n)
            .map(|i| p.log_pdf((i as f64 + 0.5) / n as f64).exp())
            .sum::<f64>()
            / n as f64;
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }
}
