use super::random::RandomSampler;
use super::{SampleContext, Sampler, SamplerError};
use crate::rng::{stable_hash, Rng};
use crate::space::{Distribution, ParamValue};
use crate::trial::{Direction, TrialState};

/// Tree-structured Parzen estimator (Bergstra et al., 2011), univariate, in each parameter's
/// unit space, so log and reverse-log scales are modelled on their own scale.
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
#[derive(Clone, Debug)]
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
        }
    }
}

/// One observation of a parameter: its unit coordinate (or category index) and how good the
/// trial was (lower is better; running trials are +inf).
#[derive(Clone, Copy, Debug)]
struct Observation {
    x: f64,
    loss: f64,
}

fn observations(
    ctx: &SampleContext<'_>,
    name: &str,
    dist: &Distribution,
    liar: bool,
) -> (Vec<Observation>, usize) {
    let mut out = Vec::new();
    let mut complete = 0;
    for t in ctx.history {
        if t.number == ctx.trial_number || t.distributions.get(name) != Some(dist) {
            continue;
        }
        let Some(value) = t.params.get(name) else {
            continue;
        };
        let loss = match (t.state, t.value) {
            (TrialState::Complete, Some(v)) if v.is_finite() => {
                complete += 1;
                match ctx.direction {
                    Direction::Minimize => v,
                    Direction::Maximize => -v,
                }
            }
            (TrialState::Running, _) if liar => f64::INFINITY,
            _ => continue,
        };
        let x = match dist {
            Distribution::Categorical { choices } => {
                match choices.iter().position(|c| c == value) {
                    Some(i) => i as f64,
                    None => continue,
                }
            }
            _ => match dist.to_unit(value) {
                Some(u) => u,
                None => continue,
            },
        };
        out.push(Observation { x, loss });
    }
    (out, complete)
}

/// A mixture of Gaussians truncated to [0, 1], plus a wide prior component.
///
/// Components are kept sorted by centre. A density is summed over every wide component but only
/// over the narrow ones within 7 bandwidths of the point: a narrow component farther away adds
/// less than 1e-10 of what the prior alone adds, so the sum is exact for choosing candidates and
/// costs a window instead of all n components.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    inv_sigmas: Vec<f64>,
    /// log weight - log(σ√2π) - log(truncation mass), per component.
    offsets: Vec<f64>,
    cumulative_weights: Vec<f64>,
    /// Components with σ <= `narrow_sigma`, in centre order (indices into the vectors above).
    narrow: Vec<usize>,
    narrow_mus: Vec<f64>,
    wide: Vec<usize>,
    window: f64,
}

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

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
        let n = centers.len();
        // Bandwidth from the gaps to the neighbours, clipped to [1 / min(100, n + 1), 1]; the
        // prior sits at 0.5 with σ = 1.
        let min_sigma = 1.0 / (100.0f64).min(n as f64 + 1.0);
        let mut mus = Vec::with_capacity(n + 1);
        let mut sigmas = Vec::with_capacity(n + 1);
        for (i, &mu) in centers.iter().enumerate() {
            let left = if i == 0 { mu } else { mu - centers[i - 1] };
            let right = if i + 1 == n {
                1.0 - mu
            } else {
                centers[i + 1] - mu
            };
            mus.push(mu);
            sigmas.push(left.max(right).clamp(min_sigma, 1.0));
        }
        mus.push(0.5);
        sigmas.push(1.0);
        let total = n as f64 + prior_weight;
        let weight = |i: usize| {
            if i < n {
                1.0 / total
            } else {
                prior_weight / total
            }
        };
        let offsets = (0..=n)
            .map(|i| {
                let (m, s) = (mus[i], sigmas[i]);
                let mass = (normal_cdf((1.0 - m) / s) - normal_cdf(-m / s)).max(1e-300);
                weight(i).ln() - LN_SQRT_2PI - s.ln() - mass.ln()
            })
            .collect();
        let mut acc = 0.0;
        let cumulative_weights = (0..=n)
            .map(|i| {
                acc += weight(i);
                acc
            })
            .collect();
        let narrow_sigma = 2.0 * min_sigma;
        let (narrow, wide): (Vec<usize>, Vec<usize>) =
            (0..=n).partition(|&i| sigmas[i] <= narrow_sigma);
        let narrow_mus = narrow.iter().map(|&i| mus[i]).collect();
        Parzen {
            inv_sigmas: sigmas.iter().map(|s| 1.0 / s).collect(),
            mus,
            sigmas,
            offsets,
            cumulative_weights,
            narrow,
            narrow_mus,
            wide,
            window: 7.0 * narrow_sigma,
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

    fn log_pdf(&self, x: f64) -> f64 {
        // Streaming log-sum-exp: one exp per component.
        let (mut max, mut sum) = (f64::NEG_INFINITY, 0.0f64);
        let mut add = |i: usize| {
            let z = (x - self.mus[i]) * self.inv_sigmas[i];
            let t = self.offsets[i] - 0.5 * z * z;
            if t > max {
                sum = sum * (max - t).exp() + 1.0;
                max = t;
            } else {
                sum += (t - max).exp();
            }
        };
        for &i in &self.wide {
            add(i);
        }
        let from = self.narrow_mus.partition_point(|&m| m < x - self.window);
        let to = self.narrow_mus.partition_point(|&m| m <= x + self.window);
        for &i in &self.narrow[from..to] {
            add(i);
        }
        max + sum.ln()
    }

    /// The density summed over every component (the reference for the windowed one).
    #[cfg(test)]
    fn log_pdf_exact(&self, x: f64) -> f64 {
        let terms: Vec<f64> = (0..self.mus.len())
            .map(|i| {
                let z = (x - self.mus[i]) * self.inv_sigmas[i];
                self.offsets[i] - 0.5 * z * z
            })
            .collect();
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
    fn split(&self, mut obs: Vec<Observation>, complete: usize) -> (Vec<f64>, Vec<f64>) {
        obs.sort_by(|a, b| a.loss.total_cmp(&b.loss));
        let n_below = ((self.gamma_fraction * complete as f64).ceil() as usize)
            .min(self.gamma_cap)
            .max(1);
        let below = obs[..n_below.min(obs.len())].iter().map(|o| o.x).collect();
        let above = obs[n_below.min(obs.len())..].iter().map(|o| o.x).collect();
        (below, above)
    }

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
        let (obs, complete) = observations(ctx, name, dist, self.constant_liar);
        if complete < self.n_startup.max(1) {
            return Ok(dist.from_unit(RandomSampler::unit(self.seed, ctx.trial_number, name)));
        }
        let mut rng = Rng::keyed(
            self.seed,
            &[ctx.trial_number, stable_hash(name), 0x0074_7065],
        );
        let (below, above) = self.split(obs, complete);
        if let Distribution::Categorical { choices } = dist {
            let c = self.sample_categorical(&mut rng, choices.len(), &below, &above);
            return Ok(choices[c].clone());
        }
        let (l, g) = (
            Parzen::new(below, self.prior_weight),
            Parzen::new(above, self.prior_weight),
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

    fn needs_history(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "tpe"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let p = Parzen::new(centers, 1.0);
        assert!(
            p.narrow.len() > 1000,
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
        let p = Parzen::new(vec![0.1, 0.15, 0.8, 0.95], 1.0);
        let n = 20_000;
        let integral: f64 = (0..n)
            .map(|i| p.log_pdf((i as f64 + 0.5) / n as f64).exp())
            .sum::<f64>()
            / n as f64;
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }
}
