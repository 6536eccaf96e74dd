use std::collections::HashMap;
use std::sync::Mutex;

use super::random::RandomSampler;
use super::sobol::SobolSequence;
use super::{SampleContext, Sampler, SamplerError};
use crate::space::{Distribution, ParamValue, SearchSpace};
use crate::trial::{best_trials, FrozenTrial};

/// The box one round of a zoom search draws from: per parameter, an interval of its unit
/// coordinate (so on its own scale).
#[derive(Clone, Debug, PartialEq)]
pub struct ZoomBox {
    /// Round number, from 0 (the whole space).
    pub round: u64,
    /// Per parameter (name order): unit-coordinate interval.
    pub bounds: Vec<(String, f64, f64)>,
}

impl ZoomBox {
    /// The attribute key a study stores this round's box under.
    pub fn key(round: u64) -> String {
        format!("zoom.round.{round:06}")
    }

    /// The box as stored: its unit intervals, which the sampler reads back, and the same
    /// intervals as parameter values, for people.
    pub fn to_json(&self, space: &SearchSpace, round_size: u64) -> serde_json::Value {
        let mut unit = serde_json::Map::new();
        let mut range = serde_json::Map::new();
        for (name, lo, hi) in &self.bounds {
            unit.insert(name.clone(), serde_json::json!([lo, hi]));
            if let Some(dist) = space.get(name) {
                range.insert(
                    name.clone(),
                    serde_json::json!([dist.from_unit(*lo), dist.from_unit(*hi)]),
                );
            }
        }
        serde_json::json!({
            "round": self.round,
            "first_trial": self.round * round_size,
            "trials": round_size,
            "unit": unit,
            "range": range,
        })
    }

    /// Reads a stored box back; `None` if it is not one.
    pub fn from_json(value: &serde_json::Value) -> Option<ZoomBox> {
        let round = value["round"].as_u64()?;
        let bounds = value["unit"]
            .as_object()?
            .iter()
            .map(|(name, pair)| {
                let lo = pair.get(0)?.as_f64()?;
                let hi = pair.get(1)?.as_f64()?;
                (0.0 <= lo && lo <= hi && hi <= 1.0).then(|| (name.clone(), lo, hi))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ZoomBox { round, bounds })
    }
}

/// Coarse to fine, automated: rounds of `round_size` trials. Round 0 fills the whole space with
/// a scrambled Sobol sequence; each later round draws Sobol points from the box that the best
/// `keep` share of all earlier complete trials occupy in each parameter's unit space, widened
/// by `margin` on each side. A round's box is fixed by its first ask and stored in the study
/// (attribute `zoom.round.NNNNNN`), so every worker and every resume uses the same box and the
/// user can see the lineage (`caviar rounds`).
///
/// ```
/// use caviar_core::prelude::*;
/// use caviar_core::sampler::ZoomSampler;
/// let mut space = SearchSpace::new();
/// space.add("lr", Distribution::float(1e-6, 1.0, Scale::Log).unwrap()).unwrap();
/// let study = Study::builder("zoom").sampler(ZoomSampler::new(&space, 0)).build().unwrap();
/// study.optimize(80, |t| {
///     let lr = t.suggest_float("lr", 1e-6, 1.0, Scale::Log)?;
///     Ok((lr.log10() + 3.0).powi(2))
/// }).unwrap();
/// assert!(study.best_trial().unwrap().unwrap().value.unwrap() < 0.01);
/// ```
#[derive(Debug)]
pub struct ZoomSampler {
    space: SearchSpace,
    sequence: SobolSequence,
    seed: u64,
    /// Trials per round.
    pub round_size: u64,
    /// Share of earlier complete trials that define the next box.
    pub keep: f64,
    /// Widening on each side, as a share of the unit range.
    pub margin: f64,
    boxes: Mutex<HashMap<u64, ZoomBox>>,
}

impl ZoomSampler {
    /// Rounds of 20 trials, boxes around the best 20%, margin 0.05.
    pub fn new(space: &SearchSpace, seed: u64) -> Self {
        ZoomSampler {
            space: space.clone(),
            sequence: SobolSequence::new(space.len(), seed),
            seed,
            round_size: 20,
            keep: 0.2,
            margin: 0.05,
            boxes: Mutex::default(),
        }
    }

    /// The boxes of the rounds started so far, by round.
    pub fn boxes(&self) -> Vec<ZoomBox> {
        let mut out: Vec<ZoomBox> = self
            .boxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        out.sort_by_key(|b| b.round);
        out
    }

    fn box_for(&self, round: u64, ctx: &SampleContext<'_>) -> ZoomBox {
        let full = |round| ZoomBox {
            round,
            bounds: self
                .space
                .iter()
                .map(|(n, _)| (n.clone(), 0.0, 1.0))
                .collect(),
        };
        if round == 0 {
            return full(0);
        }
        let start = round * self.round_size;
        let earlier: Vec<FrozenTrial> = ctx
            .finished
            .iter()
            .filter(|t| t.number < start)
            .map(|t| (**t).clone())
            .collect();
        let complete = earlier.iter().filter(|t| t.value.is_some()).count();
        let k = ((complete as f64) * self.keep).ceil() as usize;
        let top = best_trials(&earlier, ctx.direction, k.max(1));
        if top.len() < 2 {
            return full(round);
        }
        let bounds = self
            .space
            .iter()
            .map(|(name, dist)| {
                // A conditional parameter zooms on the best of the trials that have it, so
                // each branch narrows even when few of the overall best took it.
                let with_it: Vec<FrozenTrial>;
                let branch_top;
                let from = if self.space.conditions(name).is_empty() {
                    &top
                } else {
                    with_it = earlier
                        .iter()
                        .filter(|t| t.params.contains_key(name))
                        .cloned()
                        .collect();
                    let complete = with_it.iter().filter(|t| t.value.is_some()).count();
                    let k = ((complete as f64) * self.keep).ceil() as usize;
                    branch_top = best_trials(&with_it, ctx.direction, k.max(1));
                    if branch_top.len() < 2 {
                        return (name.clone(), 0.0, 1.0);
                    }
                    &branch_top
                };
                let units: Vec<f64> = from
                    .iter()
                    .filter_map(|t| dist.to_unit(t.params.get(name)?))
                    .collect();
                if units.is_empty() {
                    return (name.clone(), 0.0, 1.0);
                }
                let lo = units.iter().copied().fold(f64::INFINITY, f64::min) - self.margin;
                let hi = units.iter().copied().fold(f64::NEG_INFINITY, f64::max) + self.margin;
                (name.clone(), lo.max(0.0), hi.min(1.0))
            })
            .collect();
        ZoomBox { round, bounds }
    }
}

impl Sampler for ZoomSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        let Some(dim) = self
            .space
            .index_of(name)
            .filter(|_| self.space.get(name) == Some(dist))
        else {
            return Ok(dist.from_unit(RandomSampler::unit(self.seed, ctx.trial_number, name)));
        };
        let round = ctx.trial_number / self.round_size.max(1);
        let known = self
            .boxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&round)
            .cloned();
        let zoom = match known {
            Some(b) => b,
            None => {
                let mut fresh = self.box_for(round, ctx);
                if let Some(attrs) = ctx.attrs {
                    let stored = attrs.insert(
                        &ZoomBox::key(round),
                        &fresh.to_json(&self.space, self.round_size),
                    )?;
                    // Another worker (or an earlier run) fixed this round first: use its box.
                    if let Some(b) =
                        ZoomBox::from_json(&stored).filter(|b| b.bounds.len() == fresh.bounds.len())
                    {
                        fresh = b;
                    }
                }
                self.boxes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(round)
                    .or_insert(fresh)
                    .clone()
            }
        };
        let Some(&(_, lo, hi)) = zoom.bounds.iter().find(|(n, _, _)| n == name) else {
            return Ok(dist.from_unit(RandomSampler::unit(self.seed, ctx.trial_number, name)));
        };
        let u = self.sequence.coordinate(ctx.trial_number, dim);
        Ok(dist.from_unit(lo + u * (hi - lo)))
    }

    fn needs_history(&self) -> bool {
        true
    }

    fn handles_several_objectives(&self) -> bool {
        // Its boxes follow the best trials of one objective.
        false
    }

    fn name(&self) -> &'static str {
        "zoom"
    }
}
