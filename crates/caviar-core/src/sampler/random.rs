use super::{SampleContext, Sampler, SamplerError};
use crate::rng::{stable_hash, Rng};
use crate::space::{Distribution, ParamValue};

/// Independent uniform draws in each parameter's unit space.
///
/// Random beats grid when a few parameters matter much more than the rest: every trial tries a
/// new value of each.
///
/// ```
/// use caviar_core::sampler::{RandomSampler, SampleContext, Sampler};
/// use caviar_core::space::{Distribution, Scale};
/// use caviar_core::trial::Direction;
/// let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
/// let ctx = SampleContext {
///     trial_number: 3,
///     direction: Direction::Minimize,
///     finished: &[],
///     running: &[],
///     attrs: None,
///     learn_from_pruned: false,
///     objectives: None,
/// };
/// let a = RandomSampler::new(42).sample(&ctx, "lr", &lr).unwrap();
/// let b = RandomSampler::new(42).sample(&ctx, "lr", &lr).unwrap();
/// assert_eq!(a, b);
/// assert!(lr.contains(&a));
/// ```
#[derive(Clone, Debug)]
pub struct RandomSampler {
    seed: u64,
}

impl RandomSampler {
    /// A sampler with a seed.
    pub fn new(seed: u64) -> Self {
        RandomSampler { seed }
    }

    /// The unit coordinate for one (trial, parameter); shared with samplers that fall back to
    /// random draws.
    pub(crate) fn unit(seed: u64, trial_number: u64, name: &str) -> f64 {
        Rng::keyed(seed, &[trial_number, stable_hash(name)]).next_f64()
    }
}

impl Sampler for RandomSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        Ok(dist.from_unit(Self::unit(self.seed, ctx.trial_number, name)))
    }

    fn name(&self) -> &'static str {
        "random"
    }
}
