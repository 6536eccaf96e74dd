//! NSGA-II (Deb et al., 2002) as a steady-state genetic algorithm over a study's trials.

use super::random::RandomSampler;
use super::{JointSample, SampleContext, Sampler, SamplerError};
use crate::rng::{stable_hash, Rng};
use crate::space::{Distribution, ParamValue};
use crate::trial::FrozenTrial;

/// The elitist multi-objective genetic algorithm NSGA-II.
///
/// The first `population_size` trials are random. After that each new trial is a child of two
/// parents, each the winner of a binary tournament among the best `population_size` complete
/// trials so far: ranked by non-dominated front, then by crowding distance (see
/// [`SampleContext::loss`]), so the population moves towards the Pareto front and spreads
/// along it. Numbers cross by simulated binary crossover and mutate polynomially in each
/// parameter's unit space (so on its log or reverse-log scale); categories are inherited from
/// either parent and mutate to a random choice. Every trial is its own generation step, so
/// several workers keep busy without waiting for a generation to end. Infeasible trials rank
/// after feasible ones, as in constrained NSGA-II.
///
/// ```
/// use caviar_core::prelude::*;
/// use caviar_core::sampler::Nsga2Sampler;
/// let study = Study::builder("zdt-like")
///     .directions(vec![Direction::Minimize, Direction::Minimize])
///     .sampler(Nsga2Sampler::new(0))
///     .build()
///     .unwrap();
/// // ZDT1 in two variables: the front is f2 = 1 - sqrt(f1), reached at y = 0.
/// for _ in 0..150 {
///     let mut t = study.ask().unwrap();
///     let x = t.suggest_float("x", 0.0, 1.0, Scale::Linear).unwrap();
///     let y = t.suggest_float("y", 0.0, 1.0, Scale::Linear).unwrap();
///     let g = 1.0 + 9.0 * y;
///     study.tell(t, Outcome::Values(vec![x, g * (1.0 - (x / g).sqrt())])).unwrap();
/// }
/// let front = study.best_trials(usize::MAX).unwrap();
/// assert!(front.len() >= 5);
/// ```
#[derive(Clone, Debug)]
pub struct Nsga2Sampler {
    seed: u64,
    /// Complete trials the parents are chosen from (and random trials at the start).
    pub population_size: usize,
    /// Chance that a child is a crossover of its parents rather than a copy of the first.
    pub crossover_prob: f64,
    /// Chance that each numeric parameter takes part in a crossover.
    pub swapping_prob: f64,
    /// Distribution index of simulated binary crossover (larger: children nearer parents).
    pub eta_crossover: f64,
    /// Distribution index of polynomial mutation.
    pub eta_mutation: f64,
    /// Chance that a parameter mutates; `None`: one over the number of parameters.
    pub mutation_prob: Option<f64>,
}

impl Nsga2Sampler {
    /// NSGA-II with a population of 50, crossover 0.9, mutation 1/n, indices 20.
    pub fn new(seed: u64) -> Self {
        Nsga2Sampler {
            seed,
            population_size: 50,
            crossover_prob: 0.9,
            swapping_prob: 0.5,
            eta_crossover: 20.0,
            eta_mutation: 20.0,
            mutation_prob: None,
        }
    }

    fn tournament<'a>(&self, pool: &[(f64, &'a FrozenTrial)], rng: &mut Rng) -> &'a FrozenTrial {
        let a = &pool[rng.below(pool.len() as u64) as usize];
        let b = &pool[rng.below(pool.len() as u64) as usize];
        if b.0 < a.0 {
            b.1
        } else {
            a.1
        }
    }
}

/// Simulated binary crossover of two unit coordinates: one child, in [0, 1].
fn sbx(a: f64, b: f64, eta: f64, rng: &mut Rng) -> f64 {
    let (low, high) = (a.min(b), a.max(b));
    let gap = high - low;
    if gap < 1e-14 {
        return a;
    }
    let u = rng.next_f64();
    // Deb and Agrawal's bounded form: the spread of children shrinks near the bounds.
    let spread = |beta: f64| {
        let alpha = 2.0 - beta.powf(-(eta + 1.0));
        if u <= 1.0 / alpha {
            (u * alpha).powf(1.0 / (eta + 1.0))
        } else {
            (1.0 / (2.0 - u * alpha)).powf(1.0 / (eta + 1.0))
        }
    };
    let beta_low = 1.0 + 2.0 * low / gap;
    let beta_high = 1.0 + 2.0 * (1.0 - high) / gap;
    let c1 = 0.5 * (low + high - spread(beta_low) * gap);
    let c2 = 0.5 * (low + high + spread(beta_high) * gap);
    let child = if rng.next_f64() < 0.5 { c1 } else { c2 };
    child.clamp(0.0, 1.0)
}

/// Polynomial mutation of a unit coordinate, in [0, 1].
fn polynomial_mutation(x: f64, eta: f64, rng: &mut Rng) -> f64 {
    let u = rng.next_f64();
    let power = 1.0 / (eta + 1.0);
    let delta = if u < 0.5 {
        let base = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - x).powf(eta + 1.0);
        base.powf(power) - 1.0
    } else {
        let base = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * x.powf(eta + 1.0);
        1.0 - base.powf(power)
    };
    (x + delta).clamp(0.0, 1.0)
}

impl Sampler for Nsga2Sampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        Ok(dist.from_unit(RandomSampler::unit(self.seed, ctx.trial_number, name)))
    }

    fn sample_joint(&self, ctx: &SampleContext<'_>) -> Result<JointSample, SamplerError> {
        let mut ranked: Vec<(f64, &FrozenTrial)> = ctx
            .finished
            .iter()
            .filter(|t| t.state == crate::trial::TrialState::Complete)
            .filter_map(|t| Some((ctx.loss(t)?, &**t)))
            .collect();
        let population = self.population_size.max(2);
        if ranked.len() < population {
            return Ok(JointSample::new());
        }
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.number.cmp(&b.1.number)));
        ranked.truncate(population);
        let mut rng = Rng::keyed(self.seed, &[ctx.trial_number, stable_hash("nsga2")]);
        let first = self.tournament(&ranked, &mut rng);
        let second = self.tournament(&ranked, &mut rng);
        let shared: Vec<(&String, &Distribution, &ParamValue, &ParamValue)> = first
            .distributions
            .iter()
            .filter_map(|(name, dist)| {
                let a = first.params.get(name)?;
                let b = match second.distributions.get(name) {
                    Some(d) if d == dist => second.params.get(name)?,
                    _ => a,
                };
                Some((name, dist, a, b))
            })
            .collect();
        let cross = rng.next_f64() < self.crossover_prob;
        let mutation = self
            .mutation_prob
            .unwrap_or(1.0 / shared.len().max(1) as f64);
        let mut child = JointSample::new();
        for (name, dist, a, b) in shared {
            let value = match dist {
                Distribution::Categorical { .. } => {
                    if rng.next_f64() < mutation {
                        dist.from_unit(rng.next_f64())
                    } else if cross && rng.next_f64() < 0.5 {
                        b.clone()
                    } else {
                        a.clone()
                    }
                }
                _ => {
                    let (Some(ua), Some(ub)) = (dist.to_unit(a), dist.to_unit(b)) else {
                        continue;
                    };
                    let mut u = if cross && rng.next_f64() < self.swapping_prob {
                        sbx(ua, ub, self.eta_crossover, &mut rng)
                    } else {
                        ua
                    };
                    if rng.next_f64() < mutation {
                        u = polynomial_mutation(u, self.eta_mutation, &mut rng);
                    }
                    dist.from_unit(u)
                }
            };
            child.insert(name.clone(), (dist.clone(), value));
        }
        Ok(child)
    }

    fn needs_history(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "nsga2"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossover_and_mutation_stay_in_the_unit_interval_and_near_their_parents() {
        let mut rng = Rng::new(3);
        let mut near = 0;
        for _ in 0..10_000 {
            let (a, b) = (rng.next_f64(), rng.next_f64());
            let c = sbx(a, b, 20.0, &mut rng);
            assert!((0.0..=1.0).contains(&c));
            if (c - a).abs().min((c - b).abs()) < 0.25 * (a - b).abs() + 1e-9 {
                near += 1;
            }
            let m = polynomial_mutation(a, 20.0, &mut rng);
            assert!((0.0..=1.0).contains(&m));
        }
        // With index 20, children land close to a parent.
        assert!(near > 8_000, "{near}");
        assert_eq!(sbx(0.3, 0.3, 20.0, &mut rng), 0.3);
    }
}
