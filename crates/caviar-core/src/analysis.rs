//! Reading a study: the ranges the best trials occupy (coarse to fine starts here).

use std::collections::BTreeMap;

use crate::space::{format_g, Distribution, ParamValue, Scale};
use crate::trial::{best_trials, Direction, FrozenTrial};

/// Where the top-k trials put one parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct NarrowedRange {
    /// The parameter.
    pub name: String,
    /// Smallest value among the top trials (numbers).
    pub low: Option<f64>,
    /// Largest value among the top trials (numbers).
    pub high: Option<f64>,
    /// Values seen, for categorical parameters.
    pub choices: Vec<ParamValue>,
    /// The parameter's scale.
    pub scale: Scale,
    /// How many trials the range was taken from.
    pub k: usize,
}

impl std::fmt::Display for NarrowedRange {
    /// `lr: 0.0039 .. 0.0097 (top 10)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.low, self.high) {
            (Some(lo), Some(hi)) => write!(
                f,
                "{}: {} .. {} (top {})",
                self.name,
                format_g(lo, 2),
                format_g(hi, 2),
                self.k
            ),
            _ => {
                let list: Vec<String> = self.choices.iter().map(|c| c.to_string()).collect();
                write!(f, "{}: {{{}}} (top {})", self.name, list.join(", "), self.k)
            }
        }
    }
}

/// The range of every parameter over the `k` best complete trials.
///
/// ```
/// use caviar_core::analysis::narrowed_ranges;
/// use caviar_core::prelude::*;
/// let study = Study::builder("s").build().unwrap();
/// study.optimize(40, |t| {
///     let x = t.suggest_float("x", 1e-4, 1.0, Scale::Log)?;
///     Ok((x.log10() + 2.0).abs())
/// }).unwrap();
/// let ranges = narrowed_ranges(&study.trials().unwrap(), Direction::Minimize, 5);
/// assert!(ranges[0].low.unwrap() > 1e-3 && ranges[0].high.unwrap() < 1e-1);
/// ```
pub fn narrowed_ranges(
    trials: &[FrozenTrial],
    direction: Direction,
    k: usize,
) -> Vec<NarrowedRange> {
    let top = best_trials(trials, direction, k);
    let mut out: BTreeMap<String, NarrowedRange> = BTreeMap::new();
    for t in &top {
        for (name, value) in &t.params {
            let scale = match t.distributions.get(name) {
                Some(Distribution::Float { scale, .. }) | Some(Distribution::Int { scale, .. }) => {
                    *scale
                }
                _ => Scale::Linear,
            };
            let entry = out.entry(name.clone()).or_insert_with(|| NarrowedRange {
                name: name.clone(),
                low: None,
                high: None,
                choices: Vec::new(),
                scale,
                k: top.len(),
            });
            match (t.distributions.get(name), value.as_f64()) {
                (Some(Distribution::Categorical { .. }), _) | (_, None) => {
                    if !entry.choices.contains(value) {
                        entry.choices.push(value.clone());
                    }
                }
                (_, Some(x)) => {
                    entry.low = Some(entry.low.map_or(x, |l| l.min(x)));
                    entry.high = Some(entry.high.map_or(x, |h| h.max(x)));
                }
            }
        }
    }
    out.into_values().collect()
}
