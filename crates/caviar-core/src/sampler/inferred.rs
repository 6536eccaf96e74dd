use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{JointSample, SampleContext, Sampler, SamplerError};
use crate::space::{Distribution, ParamValue, SearchSpace};
use crate::trial::TrialState;

/// Builds a space-bound sampler (GP, Sobol, zoom) for a space.
pub type BuildForSpace = Box<dyn Fn(&SearchSpace) -> Arc<dyn Sampler> + Send + Sync>;

/// A space-bound sampler for define-by-run studies, which declare no space up front: the space
/// is learnt from the trials, as the parameters every complete trial has with the same
/// distribution (the intersection). The inner sampler is rebuilt when that space changes and
/// models it jointly; parameters outside it (those of only some trials, an optimizer's own
/// settings say) are drawn by the inner sampler's fallback, at random.
///
/// ```
/// use std::sync::Arc;
/// use caviar_core::prelude::*;
/// use caviar_core::sampler::{GpSampler, InferredSpace};
/// let gp = InferredSpace::new(Box::new(|space| Arc::new(GpSampler::new(space, 7))));
/// let study = Study::builder("define-by-run").sampler(gp).build().unwrap();
/// study.optimize(20, |trial| {
///     let x = trial.suggest_float("x", -2.0, 2.0, Scale::Linear)?;
///     Ok(x * x)
/// }).unwrap();
/// ```
pub struct InferredSpace {
    build: BuildForSpace,
    state: Mutex<Learnt>,
}

struct Learnt {
    /// Finished trials read so far (they only grow at the end between asks).
    seen: usize,
    /// The intersection over the study's own complete trials; `None` before the first.
    common: Option<BTreeMap<String, Distribution>>,
    /// The same over warm-start trials (negative ids), used until the study has its own.
    prior_common: Option<BTreeMap<String, Distribution>>,
    /// The inner sampler and the space it was built for.
    inner: Arc<dyn Sampler>,
    built_for: BTreeMap<String, Distribution>,
}

impl InferredSpace {
    /// A sampler that builds its inner sampler with `build` for each space it learns.
    pub fn new(build: BuildForSpace) -> Self {
        let inner = build(&SearchSpace::new());
        InferredSpace {
            build,
            state: Mutex::new(Learnt {
                seen: 0,
                common: None,
                prior_common: None,
                inner,
                built_for: BTreeMap::new(),
            }),
        }
    }

    /// The inner sampler, rebuilt first if the finished trials changed the common space.
    fn inner_for(&self, ctx: &SampleContext<'_>) -> Arc<dyn Sampler> {
        let mut state = self.state.lock().unwrap();
        if ctx.finished.len() > state.seen {
            for t in &ctx.finished[state.seen..] {
                if t.state != TrialState::Complete {
                    continue;
                }
                // An earlier study's trial (a warm start) must not narrow this study's space.
                let slot = if t.id.0 < 0 {
                    &mut state.prior_common
                } else {
                    &mut state.common
                };
                *slot = Some(match slot.take() {
                    None => t.distributions.clone(),
                    Some(mut common) => {
                        common.retain(|name, dist| t.distributions.get(name) == Some(dist));
                        common
                    }
                });
            }
            state.seen = ctx.finished.len();
        }
        let common = state
            .common
            .clone()
            .or_else(|| state.prior_common.clone())
            .unwrap_or_default();
        if common != state.built_for {
            let mut space = SearchSpace::new();
            for (name, dist) in &common {
                space
                    .add(name, dist.clone())
                    .expect("stored trials hold valid, distinct parameters");
            }
            state.inner = (self.build)(&space);
            state.built_for = common;
        }
        state.inner.clone()
    }
}

impl Sampler for InferredSpace {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        let inner = self.state.lock().unwrap().inner.clone();
        inner.sample(ctx, name, dist)
    }

    fn sample_joint(&self, ctx: &SampleContext<'_>) -> Result<JointSample, SamplerError> {
        self.inner_for(ctx).sample_joint(ctx)
    }

    fn needs_history(&self) -> bool {
        true
    }

    fn learns_from_prior(&self) -> bool {
        // As the inner sampler does (GP yes; Sobol and zoom no).
        self.state.lock().unwrap().inner.learns_from_prior()
    }

    fn handles_several_objectives(&self) -> bool {
        self.state
            .lock()
            .unwrap()
            .inner
            .handles_several_objectives()
    }

    fn name(&self) -> &'static str {
        self.state.lock().unwrap().inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::sampler::GpSampler;

    fn conditional(trial: &mut crate::study::Trial) -> Result<f64, crate::study::TrialError> {
        let x = trial.suggest_float("x", -3.0, 3.0, Scale::Linear)?;
        let y = trial.suggest_float("y", -3.0, 3.0, Scale::Linear)?;
        let extra = if trial.suggest_categorical("branch", &["a", "b"])? == "a" {
            trial.suggest_float("only_a", 0.0, 1.0, Scale::Linear)?
        } else {
            trial.suggest_int("only_b", 1, 4, Scale::Linear)? as f64
        };
        Ok((x - 1.0).powi(2) + (y + 0.5).powi(2) + 0.01 * extra)
    }

    #[test]
    fn the_gp_learns_the_common_space_and_beats_random_on_it() {
        let best = |sampler: Arc<dyn Sampler>| {
            let study = Study::builder("s").shared_sampler(sampler).build().unwrap();
            study.optimize(40, conditional).unwrap();
            study.best_trial().unwrap().unwrap().value.unwrap()
        };
        let mut gp_wins = 0;
        for seed in 0..5 {
            let gp = InferredSpace::new(Box::new(move |space| {
                Arc::new(GpSampler::new(space, seed)) as Arc<dyn Sampler>
            }));
            if best(Arc::new(gp)) < best(Arc::new(RandomSampler::new(seed))) {
                gp_wins += 1;
            }
        }
        assert!(gp_wins >= 4, "the GP won {gp_wins} of 5 seeds");
    }

    #[test]
    fn the_space_is_what_every_complete_trial_has() {
        let sampler = Arc::new(InferredSpace::new(Box::new(|space| {
            Arc::new(GpSampler::new(space, 1)) as Arc<dyn Sampler>
        })));
        let study = Study::builder("s")
            .shared_sampler(sampler.clone())
            .build()
            .unwrap();
        study.optimize(30, conditional).unwrap();
        // One more ask reads the history.
        let mut trial = study.ask().unwrap();
        conditional(&mut trial).unwrap();
        let built: Vec<String> = sampler
            .state
            .lock()
            .unwrap()
            .built_for
            .keys()
            .cloned()
            .collect();
        assert_eq!(built, ["branch", "x", "y"]);
    }
}
