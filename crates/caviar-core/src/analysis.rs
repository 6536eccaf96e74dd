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
    /// How many of the top trials have the parameter (all of them unless it is conditional):
    /// the trials the range was taken from.
    pub k: usize,
    /// How many top trials there were.
    pub of: usize,
    /// Whether the parameter is an integer.
    pub integer: bool,
}

/// Two significant digits on the parameter's own terms: of `1 - x` for reverse_log (0.9987,
/// not 1), whole numbers for integers.
fn bound(x: f64, scale: Scale, integer: bool) -> String {
    if integer {
        return format!("{}", x.round() as i64);
    }
    if scale == Scale::ReverseLog && x < 1.0 {
        let gap = 1.0 - x;
        let decimals = (-gap.log10()).floor().max(0.0) as usize + 2;
        return trim(format!("{x:.decimals$}"));
    }
    format_g(x, 2)
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

impl std::fmt::Display for NarrowedRange {
    /// `lr: 0.0039 .. 0.0097 (top 10)`, or `beta1: 0.99 .. 0.999 (4 of the top 10 have it)`
    /// for a conditional parameter.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = if self.k == self.of {
            format!("top {}", self.k)
        } else {
            format!("{} of the top {} have it", self.k, self.of)
        };
        match (self.low, self.high) {
            (Some(lo), Some(hi)) => write!(
                f,
                "{}: {} .. {} ({from})",
                self.name,
                bound(lo, self.scale, self.integer),
                bound(hi, self.scale, self.integer),
            ),
            _ => {
                let list: Vec<String> = self.choices.iter().map(|c| c.to_string()).collect();
                write!(f, "{}: {{{}}} ({from})", self.name, list.join(", "))
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
                k: 0,
                of: top.len(),
                integer: matches!(t.distributions.get(name), Some(Distribution::Int { .. })),
            });
            entry.k += 1;
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

/// The box the `k` best complete trials occupy, widened on each side by `margin` (a share of
/// each parameter's unit range, so on its own scale), rounded outward to two significant
/// digits and kept inside the original bounds. Categorical parameters keep the choices the top
/// trials used. This is the next round of a coarse-to-fine search.
///
/// ```
/// use caviar_core::analysis::narrowed_space;
/// use caviar_core::prelude::*;
/// let study = Study::builder("s").build().unwrap();
/// study.optimize(60, |t| {
///     let lr = t.suggest_float("lr", 1e-6, 1.0, Scale::Log)?;
///     Ok((lr.log10() + 3.0).abs())
/// }).unwrap();
/// let space = narrowed_space(&study.trials().unwrap(), Direction::Minimize, 5, 0.05);
/// let Some(Distribution::Float { low, high, scale, .. }) = space.get("lr") else { panic!() };
/// assert_eq!(*scale, Scale::Log);
/// assert!(*low > 1e-6 && *high < 1.0 && *low < 1e-3 && *high > 1e-3);
/// ```
pub fn narrowed_space(
    trials: &[FrozenTrial],
    direction: Direction,
    k: usize,
    margin: f64,
) -> crate::space::SearchSpace {
    let top = best_trials(trials, direction, k);
    let mut space = crate::space::SearchSpace::new();
    // Every parameter some top trial has (a conditional one only in some), each narrowed over
    // the top trials that have it.
    let mut dists: BTreeMap<&String, &Distribution> = BTreeMap::new();
    for t in top.iter().rev() {
        dists.extend(&t.distributions);
    }
    for (name, dist) in dists {
        let values: Vec<&ParamValue> = top.iter().filter_map(|t| t.params.get(name)).collect();
        let narrowed = match dist {
            Distribution::Categorical { choices } => Distribution::Categorical {
                choices: choices
                    .iter()
                    .filter(|c| values.contains(c))
                    .cloned()
                    .collect(),
            },
            _ => {
                let units: Vec<f64> = values.iter().filter_map(|v| dist.to_unit(v)).collect();
                let lo = units.iter().copied().fold(f64::INFINITY, f64::min) - margin;
                let hi = units.iter().copied().fold(f64::NEG_INFINITY, f64::max) + margin;
                let (lo, hi) = (dist.from_unit(lo.max(0.0)), dist.from_unit(hi.min(1.0)));
                match (dist, lo, hi) {
                    (
                        Distribution::Float {
                            low,
                            high,
                            scale,
                            step,
                        },
                        ParamValue::Float(a),
                        ParamValue::Float(b),
                    ) => {
                        // Round outward on the scale's own terms: 1 - x for reverse_log.
                        let (mut a, mut b) = if *scale == Scale::ReverseLog {
                            (
                                1.0 - round_out(1.0 - a, true),
                                1.0 - round_out(1.0 - b, false),
                            )
                        } else {
                            (round_out(a, false), round_out(b, true))
                        };
                        a = a.max(*low);
                        b = b.min(*high);
                        if let Some(s) = step {
                            a = low + ((a - low) / s).floor() * s;
                            b = (low + ((b - low) / s).ceil() * s).min(*high);
                        }
                        Distribution::Float {
                            low: a,
                            high: b,
                            scale: *scale,
                            step: *step,
                        }
                    }
                    (
                        Distribution::Int { step, scale, .. },
                        ParamValue::Int(a),
                        ParamValue::Int(b),
                    ) => Distribution::Int {
                        low: a,
                        high: a + (b - a) / step * step,
                        step: *step,
                        scale: *scale,
                    },
                    _ => dist.clone(),
                }
            }
        };
        let keep = if narrowed.validate().is_ok() {
            narrowed
        } else {
            dist.clone()
        };
        // Names were valid in the parent study.
        let _ = space.add(name, keep);
    }
    space
}

/// Rounds to two significant digits, down (`up = false`) or up.
fn round_out(x: f64, up: bool) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powf(x.abs().log10().floor() - 1.0);
    let scaled = x / scale;
    let r = if up { scaled.ceil() } else { scaled.floor() };
    // Re-parse to drop binary noise (0.0015000000000000002 -> 0.0015).
    format!("{:.1e}", r * scale).parse().unwrap_or(r * scale)
}
