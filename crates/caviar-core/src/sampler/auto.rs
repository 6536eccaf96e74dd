//! The automatic sampler: a Gaussian process and TPE taking turns, TPE alone where a GP does
//! not fit.

use super::gp::GpSampler;
use super::tpe::TpeSampler;
use super::{JointSample, SampleContext, Sampler, SamplerError};
use crate::space::{Distribution, ParamValue, SearchSpace};

/// Which model proposes a trial, and the rule that chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoChoice {
    /// Gaussian-process Bayesian optimisation ([`GpSampler`]).
    Gp(&'static str),
    /// Tree-structured Parzen estimator ([`TpeSampler`]).
    Tpe(&'static str),
}

impl AutoChoice {
    /// The model's registry name.
    pub fn model(&self) -> &'static str {
        match self {
            AutoChoice::Gp(_) => "gp",
            AutoChoice::Tpe(_) => "tpe",
        }
    }

    /// The rule that chose it, in words.
    pub fn reason(&self) -> &'static str {
        match self {
            AutoChoice::Gp(r) | AutoChoice::Tpe(r) => r,
        }
    }
}

/// Chooses a model for each trial from what the study is and what it has seen, then lets that
/// model propose. In order, the first rule that applies decides (docs/samplers.md has the
/// measurements behind each):
///
/// | study | model |
/// |---|---|
/// | several objectives | TPE, ranking trials by Pareto front |
/// | no declared parameters (define-by-run, before its space is known) | TPE |
/// | more than `gp_max_trials` complete trials | TPE (the GP's ask grows as n² to n³) |
/// | otherwise | the GP and TPE in turns: even trial numbers the GP (inside a trust region around the best trial), odd ones TPE |
///
/// Pruning, conditional and categorical parameters keep the turns: measured, they beat TPE
/// alone there too (TPE's turns learn from pruned trials, the GP's from complete ones).
///
/// The choice depends only on the study and its finished trials, so seeds reproduce exactly.
///
/// ```
/// use caviar_core::prelude::*;
/// use caviar_core::sampler::AutoSampler;
/// let mut space = SearchSpace::new();
/// space.add("x", Distribution::float(-5.0, 5.0, Scale::Linear).unwrap()).unwrap();
/// let study = Study::builder("auto").sampler(AutoSampler::new(&space, 0)).build().unwrap();
/// study.optimize(20, |t| {
///     let x = t.suggest_float("x", -5.0, 5.0, Scale::Linear)?;
///     Ok((x - 1.0).powi(2))
/// }).unwrap();
/// assert!(study.best_trial().unwrap().unwrap().value.unwrap() < 0.05);
/// ```
#[derive(Debug)]
pub struct AutoSampler {
    gp: GpSampler,
    tpe: TpeSampler,
    /// Declared parameters: none in a define-by-run study before its space is known.
    columns: usize,
    /// Above this many complete trials TPE takes over from the GP (its ask stays under a
    /// millisecond where the GP's passes a third of a second).
    pub gp_max_trials: usize,
}

impl AutoSampler {
    /// An automatic sampler over `space` (an empty space: TPE draws each parameter as it comes).
    pub fn new(space: &SearchSpace, seed: u64) -> Self {
        let mut gp = GpSampler::new(space, seed);
        // TPE's turns search the whole space, so the GP's can stay in a trust region around
        // the best trial in any number of dimensions. Without one, its proposals went to the
        // box's corners on a rugged objective (mlp-digits: misclassified digits 572, 116 and
        // 101 where the best was 29) and its turns stopped paying after 50 trials.
        gp.trust_region_dims = 1;
        AutoSampler {
            gp,
            tpe: TpeSampler::new(seed),
            columns: space.len(),
            gp_max_trials: 1000,
        }
    }

    /// Complete trials before either model takes over (10 by default): Sobol points for the
    /// GP, random ones for TPE.
    pub fn set_startup_trials(&mut self, n: usize) {
        self.gp.n_startup = n;
        self.tpe.n_startup = n;
    }

    /// The model that proposes the trial in `ctx`, and why.
    pub fn choose(&self, ctx: &SampleContext<'_>) -> AutoChoice {
        if ctx.objectives.is_some() {
            return AutoChoice::Tpe("several objectives");
        }
        if self.columns == 0 {
            return AutoChoice::Tpe("no declared parameters");
        }
        // Asked once per parameter: look at the history only when it is long enough to
        // matter, and only until the limit is passed.
        let many = ctx.finished.len() > self.gp_max_trials
            && ctx
                .finished
                .iter()
                .filter(|t| t.state == crate::trial::TrialState::Complete)
                .nth(self.gp_max_trials)
                .is_some();
        if many {
            return AutoChoice::Tpe("many trials");
        }
        // A portfolio: the two models take turns, each learning from every trial. TPE's
        // proposals spread around the good trials and the GP refines between them; together
        // they beat either alone (docs/samplers.md).
        if ctx.trial_number % 2 == 1 {
            return AutoChoice::Tpe("portfolio: TPE's turn");
        }
        AutoChoice::Gp("portfolio: the GP's turn")
    }
}

impl Sampler for AutoSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        match self.choose(ctx) {
            // The GP's start-up draws (Sobol) cover its space; TPE draws what lies outside it.
            // Its turns are the even trials: point n/2 of the sequence, so its start-up points
            // are consecutive Sobol points (every second one would leave half of the first
            // parameter's range out).
            AutoChoice::Gp(_) if self.gp.covers(name, dist) => {
                let turn = SampleContext {
                    trial_number: ctx.trial_number / 2,
                    ..*ctx
                };
                self.gp.sample(&turn, name, dist)
            }
            _ => self.tpe.sample(ctx, name, dist),
        }
    }

    fn sample_joint(&self, ctx: &SampleContext<'_>) -> Result<JointSample, SamplerError> {
        match self.choose(ctx) {
            AutoChoice::Gp(_) => self.gp.sample_joint(ctx),
            AutoChoice::Tpe(_) => self.tpe.sample_joint(ctx),
        }
    }

    fn needs_history(&self) -> bool {
        true
    }

    fn learns_from_prior(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "auto"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::space::{Condition, Scale};
    use crate::trial::{Direction, FrozenTrial, TrialId, TrialState};

    fn numeric_space(d: usize) -> SearchSpace {
        let mut space = SearchSpace::new();
        for i in 0..d {
            let dist = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
            space.add(&format!("x{i}"), dist).unwrap();
        }
        space
    }

    fn trials(n: usize, state: TrialState) -> Vec<Arc<FrozenTrial>> {
        (0..n)
            .map(|i| {
                Arc::new(FrozenTrial {
                    id: TrialId(i as i64),
                    number: i as u64,
                    state,
                    params: Default::default(),
                    distributions: Default::default(),
                    value: Some(i as f64),
                    intermediate: vec![(1, i as f64)],
                    error: None,
                    worker: None,
                    started_ms: None,
                    finished_ms: None,
                    constraints: Vec::new(),
                    values: Vec::new(),
                })
            })
            .collect()
    }

    fn ctx<'a>(finished: &'a [Arc<FrozenTrial>], prunes: bool) -> SampleContext<'a> {
        SampleContext {
            trial_number: finished.len() as u64,
            direction: Direction::Minimize,
            finished,
            running: &[],
            attrs: None,
            learn_from_pruned: prunes,
            objectives: None,
        }
    }

    #[test]
    fn the_gps_start_up_turns_are_consecutive_sobol_points() {
        let space = numeric_space(2);
        let auto = AutoSampler::new(&space, 5);
        let sobol = crate::sampler::SobolSampler::new(&space, 5);
        let mut halves = [0, 0];
        for n in (0..16).step_by(2) {
            let at = |trial_number| SampleContext {
                trial_number,
                ..ctx(&[], false)
            };
            for (name, dist) in space.iter() {
                let value = auto.sample(&at(n), name, dist).unwrap();
                assert_eq!(value, sobol.sample(&at(n / 2), name, dist).unwrap());
                if name == "x0" {
                    halves[(value.as_f64().unwrap() >= 0.5) as usize] += 1;
                }
            }
        }
        // Eight GP turns fill both halves of the first parameter evenly.
        assert_eq!(halves, [4, 4]);
    }

    #[test]
    fn the_gps_turns_stay_in_a_trust_region_in_few_dimensions_too() {
        let space = numeric_space(2);
        let dist = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
        // A bowl at (0.3, 0.6), sampled on a coarse lattice.
        let history: Vec<Arc<FrozenTrial>> = (0..16)
            .map(|i| {
                let (x0, x1) = ((i % 4) as f64 / 3.0, (i / 4) as f64 / 3.0);
                let mut t = (*trials(i + 1, TrialState::Complete)[i]).clone();
                t.value = Some((x0 - 0.3).powi(2) + (x1 - 0.6).powi(2));
                for (name, x) in [("x0", x0), ("x1", x1)] {
                    t.params.insert(name.into(), ParamValue::Float(x));
                    t.distributions.insert(name.into(), dist.clone());
                }
                Arc::new(t)
            })
            .collect();
        let turn = ctx(&history, false);
        let auto = AutoSampler::new(&space, 3);
        assert_eq!(auto.choose(&turn).model(), "gp");
        let mut local = GpSampler::new(&space, 3);
        local.trust_region_dims = 1;
        let proposal = auto.sample_joint(&turn).unwrap();
        assert_eq!(proposal, local.sample_joint(&turn).unwrap());
        // A GP alone keeps its trust region for 6 numbers or more, so here it searches the
        // whole box and proposes something else.
        let global = GpSampler::new(&space, 3);
        assert_ne!(proposal, global.sample_joint(&turn).unwrap());
    }

    #[test]
    fn each_rule_chooses_its_model() {
        let numeric = AutoSampler::new(&numeric_space(3), 0);
        let done = trials(20, TrialState::Complete);
        assert_eq!(numeric.choose(&ctx(&done, false)).model(), "gp");
        let odd = SampleContext {
            trial_number: 21,
            ..ctx(&done, false)
        };
        assert_eq!(
            numeric.choose(&odd),
            AutoChoice::Tpe("portfolio: TPE's turn")
        );
        // Pruned trials keep the turns.
        let mut pruned = done.clone();
        pruned.extend(trials(2, TrialState::Pruned));
        assert_eq!(numeric.choose(&ctx(&pruned, true)).model(), "gp");
        let ranks = crate::pareto::ObjectiveRanks::new(&[Direction::Minimize; 2], []);
        let several = SampleContext {
            objectives: Some(&ranks),
            ..ctx(&done, false)
        };
        assert_eq!(
            numeric.choose(&several),
            AutoChoice::Tpe("several objectives")
        );
        let many = trials(1001, TrialState::Complete);
        assert_eq!(numeric.choose(&ctx(&many, false)).reason(), "many trials");
        assert_eq!(numeric.choose(&ctx(&many[..1000], false)).model(), "gp");

        // Conditional and categorical parameters stay with the turns: the GP encodes both.
        let mut mixed = numeric_space(1);
        mixed
            .add("act", Distribution::categorical(["relu", "tanh"]).unwrap())
            .unwrap();
        mixed
            .set_conditions(
                "x0",
                vec![Condition {
                    parent: "act".into(),
                    allowed: vec![ParamValue::Str("relu".into())],
                }],
            )
            .unwrap();
        assert_eq!(
            AutoSampler::new(&mixed, 0)
                .choose(&ctx(&done, false))
                .model(),
            "gp"
        );
        assert_eq!(
            AutoSampler::new(&SearchSpace::new(), 0)
                .choose(&ctx(&done, false))
                .model(),
            "tpe"
        );
    }
}
