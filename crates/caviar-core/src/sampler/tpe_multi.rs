//! Multivariate TPE: the Parzen estimators are mixtures of product kernels over every parameter
//! at once, so l(x)/g(x) sees how parameters interact (a good learning rate that depends on the
//! batch size), which the univariate estimator cannot (Falkner et al., BOHB, 2018).

use std::collections::BTreeMap;

use super::{JointSample, SampleContext, LN_SQRT_2PI};
use crate::rng::{stable_hash, Rng};
use crate::space::Distribution;
use crate::trial::{FrozenTrial, TrialState};

/// A categorical kernel keeps this share on its own category and spreads the rest evenly.
const OWN_CATEGORY: f64 = 0.8;

/// Settings shared with the univariate sampler.
pub(super) struct Settings {
    pub seed: u64,
    pub n_startup: usize,
    pub n_candidates: usize,
    pub gamma_fraction: f64,
    pub gamma_cap: usize,
    pub prior_weight: f64,
    pub constant_liar: bool,
}

/// The parameters every complete trial read so far has, with the same distribution. Kept
/// incrementally: `finished` only grows.
#[derive(Debug, Default)]
pub(super) struct Intersection {
    consumed: usize,
    space: Option<BTreeMap<String, Distribution>>,
}

impl Intersection {
    pub fn update(
        &mut self,
        finished: &[std::sync::Arc<FrozenTrial>],
    ) -> BTreeMap<String, Distribution> {
        if self.consumed > finished.len() {
            *self = Intersection::default();
        }
        for t in &finished[self.consumed..] {
            if t.state != TrialState::Complete {
                continue;
            }
            match &mut self.space {
                None => self.space = Some(t.distributions.clone()),
                Some(space) => space.retain(|name, dist| t.distributions.get(name) == Some(dist)),
            }
        }
        self.consumed = finished.len();
        self.space.clone().unwrap_or_default()
    }
}

enum Kind {
    Numeric,
    Categorical(usize),
}

/// A point's coordinates: unit value for numbers, category index for categorical parameters.
fn encode(t: &FrozenTrial, dims: &[(String, Distribution, Kind)]) -> Option<Vec<f64>> {
    dims.iter()
        .map(|(name, dist, kind)| {
            let value = t.params.get(name)?;
            match (kind, dist) {
                (Kind::Categorical(_), Distribution::Categorical { choices }) => {
                    choices.iter().position(|c| c == value).map(|i| i as f64)
                }
                _ => dist.to_unit(value),
            }
        })
        .collect()
}

/// A mixture of product kernels: one component per observation plus a broad prior.
struct Mixture<'a> {
    dims: &'a [(String, Distribution, Kind)],
    points: Vec<Vec<f64>>,
    sigma: f64,
    /// Per component and numeric dimension: -ln σ - ln(truncation mass) - ln √2π.
    offsets: Vec<Vec<f64>>,
    log_weights: Vec<f64>,
    cumulative: Vec<f64>,
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

impl<'a> Mixture<'a> {
    fn new(
        dims: &'a [(String, Distribution, Kind)],
        points: Vec<Vec<f64>>,
        prior_weight: f64,
    ) -> Self {
        let n = points.len();
        let numeric = dims.iter().filter(|d| matches!(d.2, Kind::Numeric)).count();
        // Scott's rule in the unit cube, kept away from zero.
        let sigma = (0.2 * (n.max(1) as f64).powf(-1.0 / (numeric as f64 + 4.0))).max(0.01);
        let offset = |mu: f64, s: f64| {
            let mass = (normal_cdf((1.0 - mu) / s) - normal_cdf(-mu / s)).max(1e-300);
            -s.ln() - mass.ln() - LN_SQRT_2PI
        };
        let mut offsets: Vec<Vec<f64>> = points
            .iter()
            .map(|p| {
                dims.iter()
                    .zip(p)
                    .map(|(d, &x)| match d.2 {
                        Kind::Numeric => offset(x, sigma),
                        Kind::Categorical(_) => 0.0,
                    })
                    .collect()
            })
            .collect();
        offsets.push(dims.iter().map(|_| offset(0.5, 1.0)).collect());
        let total = n as f64 + prior_weight;
        let mut log_weights = vec![(1.0 / total).ln(); n];
        log_weights.push((prior_weight / total).ln());
        let mut acc = 0.0;
        let cumulative = log_weights
            .iter()
            .map(|lw| {
                acc += lw.exp();
                acc
            })
            .collect();
        Mixture {
            dims,
            points,
            sigma,
            offsets,
            log_weights,
            cumulative,
        }
    }

    fn is_prior(&self, component: usize) -> bool {
        component == self.points.len()
    }

    fn sample(&self, rng: &mut Rng) -> Vec<f64> {
        let u = rng.next_f64() * self.cumulative.last().copied().unwrap_or(1.0);
        let c = self
            .cumulative
            .partition_point(|&v| v <= u)
            .min(self.points.len());
        self.dims
            .iter()
            .enumerate()
            .map(|(j, (_, _, kind))| match kind {
                Kind::Categorical(k) => {
                    if self.is_prior(c) || rng.next_f64() >= OWN_CATEGORY {
                        rng.below(*k as u64) as f64
                    } else {
                        self.points[c][j]
                    }
                }
                Kind::Numeric => {
                    let (mu, s) = if self.is_prior(c) {
                        (0.5, 1.0)
                    } else {
                        (self.points[c][j], self.sigma)
                    };
                    for _ in 0..64 {
                        let x = mu + s * rng.normal();
                        if (0.0..=1.0).contains(&x) {
                            return x;
                        }
                    }
                    mu.clamp(0.0, 1.0)
                }
            })
            .collect()
    }

    fn log_pdf(&self, x: &[f64]) -> f64 {
        let (mut max, mut sum) = (f64::NEG_INFINITY, 0.0f64);
        for c in 0..=self.points.len() {
            let prior = self.is_prior(c);
            let mut t = self.log_weights[c];
            for (j, (_, _, kind)) in self.dims.iter().enumerate() {
                t += match kind {
                    Kind::Categorical(k) => {
                        let uniform = 1.0 / *k as f64;
                        if prior {
                            uniform.ln()
                        } else if x[j] == self.points[c][j] {
                            (OWN_CATEGORY + (1.0 - OWN_CATEGORY) * uniform).ln()
                        } else {
                            ((1.0 - OWN_CATEGORY) * uniform).ln()
                        }
                    }
                    Kind::Numeric => {
                        let (mu, s) = if prior {
                            (0.5, 1.0)
                        } else {
                            (self.points[c][j], self.sigma)
                        };
                        let z = (x[j] - mu) / s;
                        self.offsets[c][j] - 0.5 * z * z
                    }
                };
            }
            if t > max {
                sum = sum * (max - t).exp() + 1.0;
                max = t;
            } else {
                sum += (t - max).exp();
            }
        }
        max + sum.ln()
    }
}

/// Draws every parameter of `space` jointly, or nothing while there are fewer than
/// `n_startup` complete trials that have them all.
pub(super) fn sample_joint(
    s: &Settings,
    ctx: &SampleContext<'_>,
    space: &BTreeMap<String, Distribution>,
) -> JointSample {
    let dims: Vec<(String, Distribution, Kind)> = space
        .iter()
        .map(|(name, dist)| {
            let kind = match dist {
                Distribution::Categorical { choices } => Kind::Categorical(choices.len()),
                _ => Kind::Numeric,
            };
            (name.clone(), dist.clone(), kind)
        })
        .collect();
    if dims.is_empty() {
        return JointSample::new();
    }
    let mut observed: Vec<(f64, Vec<f64>)> = ctx
        .finished
        .iter()
        .filter_map(|t| Some((ctx.loss(t)?, encode(t, &dims)?)))
        .collect();
    let complete = observed.len();
    if complete < s.n_startup.max(1) {
        return JointSample::new();
    }
    observed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_below = ((s.gamma_fraction * complete as f64).ceil() as usize)
        .clamp(1, s.gamma_cap.max(1))
        .min(complete);
    let mut above: Vec<Vec<f64>> = observed
        .split_off(n_below)
        .into_iter()
        .map(|o| o.1)
        .collect();
    let below: Vec<Vec<f64>> = observed.into_iter().map(|o| o.1).collect();
    if s.constant_liar {
        above.extend(
            ctx.running
                .iter()
                .filter(|t| t.number != ctx.trial_number)
                .filter_map(|t| encode(t, &dims)),
        );
    }
    let l = Mixture::new(&dims, below, s.prior_weight);
    let g = Mixture::new(&dims, above, s.prior_weight);
    let mut rng = Rng::keyed(s.seed, &[ctx.trial_number, stable_hash("tpe-multivariate")]);
    let mut best: Option<(f64, Vec<f64>)> = None;
    for _ in 0..s.n_candidates.max(1) {
        let x = l.sample(&mut rng);
        let score = l.log_pdf(&x) - g.log_pdf(&x);
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, x));
        }
    }
    let Some((_, x)) = best else {
        return JointSample::new();
    };
    dims.iter()
        .zip(&x)
        .map(|((name, dist, kind), &v)| {
            let value = match (kind, dist) {
                (Kind::Categorical(_), Distribution::Categorical { choices }) => {
                    choices[(v as usize).min(choices.len() - 1)].clone()
                }
                _ => dist.from_unit(v),
            };
            (name.clone(), (dist.clone(), value))
        })
        .collect()
}
