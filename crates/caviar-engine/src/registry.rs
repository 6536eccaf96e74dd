//! Samplers and pruners by name: one table for every front end, so an option documented once
//! reaches its object everywhere, and a misplaced one gets the same message everywhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use caviar_core::pruner::{
    HyperbandPruner, NopPruner, PercentilePruner, Pruner, PrunerError, SuccessiveHalvingPruner,
};
use caviar_core::sampler::{
    AutoSampler, GpSampler, GridSampler, RandomSampler, Sampler, SobolSampler, TpeSampler,
    ZoomSampler,
};
use caviar_core::space::{ParamValue, SearchSpace};
use serde::{Deserialize, Serialize};

/// Sampler kinds, as study files name them.
pub const SAMPLERS: &[&str] = &[
    "auto", "random", "sobol", "grid", "tpe", "zoom", "gp", "nsga2",
];

/// Pruner kinds, as study files name them.
pub const PRUNERS: &[&str] = &["none", "median", "percentile", "asha", "hyperband"];

/// A sampler or pruner that cannot be built: the option at fault (when one is) and a message
/// that says how to fix it, in the study file's words (`[sampler] gamma must lie in (0, 1)`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    /// The option at fault (`kind`, `gamma`, ...), if one.
    pub key: Option<&'static str>,
    /// What is wrong and the fix.
    pub message: String,
}

fn fault(key: &'static str, message: String) -> RegistryError {
    RegistryError {
        key: Some(key),
        message,
    }
}

/// A sampler by kind with its options: a study file's `[sampler]` table, the kurobako flags, the
/// benches, later Python keyword arguments.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SamplerSpec {
    /// One of [`SAMPLERS`] (default "auto").
    #[serde(default = "default_sampler")]
    pub kind: String,
    /// Seed of every random choice.
    #[serde(default)]
    pub seed: u64,
    /// Grid only: points per parameter when the parameter lists no `values`.
    #[serde(default)]
    pub points: Option<u64>,
    /// TPE, GP and auto: complete trials drawn before the model takes over (default 10).
    #[serde(default)]
    pub startup_trials: Option<u64>,
    /// TPE and GP: candidates scored per suggestion (default 24 for TPE, 1,024 for GP).
    #[serde(default)]
    pub candidates: Option<u64>,
    /// TPE only: share of complete trials that count as good (default 0.1, at most 25 trials).
    #[serde(default)]
    pub gamma: Option<f64>,
    /// Zoom only: trials per round (default 20).
    #[serde(default)]
    pub round_size: Option<u64>,
    /// Zoom only: share of earlier complete trials whose box the next round searches (default 0.2).
    #[serde(default)]
    pub keep: Option<f64>,
    /// Zoom only: widening of each box on each side, as a share of the range (default 0.05).
    #[serde(default)]
    pub margin: Option<f64>,
    /// TPE only: model all parameters jointly (default false).
    #[serde(default)]
    pub multivariate: Option<bool>,
    /// NSGA-II only: complete trials the parents come from, and random trials at the start
    /// (default 50).
    #[serde(default)]
    pub population_size: Option<u64>,
}

fn default_sampler() -> String {
    "auto".into()
}

impl Default for SamplerSpec {
    fn default() -> Self {
        SamplerSpec::of_kind(&default_sampler())
    }
}

impl SamplerSpec {
    /// The defaults of `kind`; `tpe-mv` (the benches' and kurobako's name) is TPE with
    /// `multivariate = true`.
    pub fn of_kind(kind: &str) -> Self {
        let (kind, multivariate) = match kind {
            "tpe-mv" => ("tpe", Some(true)),
            other => (other, None),
        };
        SamplerSpec {
            kind: kind.into(),
            seed: 0,
            points: None,
            startup_trials: None,
            candidates: None,
            gamma: None,
            round_size: None,
            keep: None,
            margin: None,
            multivariate,
            population_size: None,
        }
    }

    /// Checks the kind, that every option given belongs to it, and every value's range.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let kind = self.kind.as_str();
        if !SAMPLERS.contains(&kind) {
            return Err(fault(
                "kind",
                format!(
                    "[sampler] kind = \"{kind}\" is not known; use one of {}",
                    SAMPLERS.join(", ")
                ),
            ));
        }
        let owners: [(&'static str, bool, &[&str]); 10] = [
            ("points", self.points.is_some(), &["grid"]),
            (
                "startup_trials",
                self.startup_trials.is_some(),
                &["tpe", "gp", "auto"],
            ),
            ("candidates", self.candidates.is_some(), &["tpe", "gp"]),
            ("gamma", self.gamma.is_some(), &["tpe"]),
            ("multivariate", self.multivariate.is_some(), &["tpe"]),
            ("round_size", self.round_size.is_some(), &["zoom"]),
            ("keep", self.keep.is_some(), &["zoom"]),
            ("margin", self.margin.is_some(), &["zoom"]),
            (
                "population_size",
                self.population_size.is_some(),
                &["nsga2"],
            ),
            ("seed", false, &[]),
        ];
        for (key, given, kinds) in owners {
            if given && !kinds.contains(&kind) {
                let named: Vec<String> = kinds.iter().map(|k| format!("\"{k}\"")).collect();
                return Err(fault(
                    key,
                    format!(
                        "[sampler] {key} is for kind = {} only; remove it",
                        named.join(" or ")
                    ),
                ));
            }
        }
        if self.population_size.is_some_and(|n| n < 2) {
            return Err(fault(
                "population_size",
                "[sampler] population_size must be at least 2 (parents come from it)".into(),
            ));
        }
        if self.round_size == Some(0) {
            return Err(fault(
                "round_size",
                "[sampler] round_size must be at least 1".into(),
            ));
        }
        if self.keep.is_some_and(|k| !(k > 0.0 && k <= 1.0)) {
            return Err(fault("keep", "[sampler] keep must lie in (0, 1]".into()));
        }
        if self.margin.is_some_and(|m| !(0.0..0.5).contains(&m)) {
            return Err(fault(
                "margin",
                "[sampler] margin must lie in [0, 0.5)".into(),
            ));
        }
        if self.candidates == Some(0) {
            return Err(fault(
                "candidates",
                "[sampler] candidates must be at least 1".into(),
            ));
        }
        if let Some(g) = self.gamma {
            if !(g > 0.0 && g < 1.0) {
                return Err(fault(
                    "gamma",
                    format!("[sampler] gamma must lie in (0, 1), not {g}"),
                ));
            }
        }
        if self.points == Some(0) {
            return Err(fault(
                "points",
                "[sampler] points must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The configured sampler over `space`; `grid_values` lists the explicit grid points of
    /// parameters that have them (grid only).
    pub fn build(
        &self,
        space: &SearchSpace,
        grid_values: &BTreeMap<String, Vec<ParamValue>>,
    ) -> Result<Arc<dyn Sampler>, RegistryError> {
        self.validate()?;
        let seed = self.seed;
        Ok(match self.kind.as_str() {
            "auto" => {
                let mut auto = AutoSampler::new(space, seed);
                if let Some(n) = self.startup_trials {
                    auto.set_startup_trials(n as usize);
                }
                Arc::new(auto)
            }
            "random" => Arc::new(RandomSampler::new(seed)),
            "sobol" => Arc::new(SobolSampler::new(space, seed)),
            "zoom" => {
                let mut zoom = ZoomSampler::new(space, seed);
                zoom.round_size = self.round_size.unwrap_or(zoom.round_size);
                zoom.keep = self.keep.unwrap_or(zoom.keep);
                zoom.margin = self.margin.unwrap_or(zoom.margin);
                Arc::new(zoom)
            }
            "tpe" => {
                let mut tpe = if self.multivariate == Some(true) {
                    TpeSampler::multivariate(seed)
                } else {
                    TpeSampler::new(seed)
                };
                if let Some(n) = self.startup_trials {
                    tpe.n_startup = n as usize;
                }
                if let Some(n) = self.candidates {
                    tpe.n_candidates = n as usize;
                }
                if let Some(g) = self.gamma {
                    tpe.gamma_fraction = g;
                }
                Arc::new(tpe)
            }
            "nsga2" => {
                let mut nsga2 = caviar_core::sampler::Nsga2Sampler::new(seed);
                if let Some(n) = self.population_size {
                    nsga2.population_size = n as usize;
                }
                Arc::new(nsga2)
            }
            "gp" => {
                let mut gp = GpSampler::new(space, seed);
                if let Some(n) = self.startup_trials {
                    gp.n_startup = n as usize;
                }
                if let Some(n) = self.candidates {
                    gp.n_candidates = n as usize;
                }
                Arc::new(gp)
            }
            _ => {
                let points = self.points.unwrap_or(5) as usize;
                Arc::new(
                    GridSampler::from_space(space, points, grid_values, seed).map_err(|e| {
                        RegistryError {
                            key: None,
                            message: format!("[sampler] grid: {e}"),
                        }
                    })?,
                )
            }
        })
    }

    /// The configured sampler for a define-by-run study, which declares no space up front
    /// (the Python API, `Study::optimize`): random and TPE draw each parameter as it is
    /// suggested; GP, Sobol and zoom model the space every complete trial shares
    /// ([`InferredSpace`](caviar_core::sampler::InferredSpace)); a grid visits every
    /// combination of `grid_values`, which it needs.
    pub fn build_define_by_run(
        &self,
        grid_values: &BTreeMap<String, Vec<ParamValue>>,
    ) -> Result<Arc<dyn Sampler>, RegistryError> {
        self.validate()?;
        if !grid_values.is_empty() && self.kind != "grid" {
            return Err(fault(
                "kind",
                format!(
                    "[sampler] grid values are for kind = \"grid\" only, not \"{}\"; remove them",
                    self.kind
                ),
            ));
        }
        match self.kind.as_str() {
            "random" | "tpe" | "nsga2" => self.build(&SearchSpace::new(), &BTreeMap::new()),
            "grid" if grid_values.is_empty() => Err(fault(
                "kind",
                "[sampler] a grid needs its points before the first trial; give each parameter's values (Python: GridSampler({name: [values]}))".into(),
            )),
            "grid" => {
                let axes = grid_values
                    .iter()
                    .map(|(name, values)| (name.clone(), values.clone()))
                    .collect();
                Ok(Arc::new(GridSampler::new(axes, self.seed).map_err(|e| {
                    RegistryError {
                        key: None,
                        message: format!("[sampler] grid: {e}"),
                    }
                })?))
            }
            _ => {
                let spec = self.clone();
                Ok(Arc::new(caviar_core::sampler::InferredSpace::new(Box::new(
                    move |space| {
                        spec.build(space, &BTreeMap::new())
                            .expect("a validated spec builds for any space")
                    },
                ))))
            }
        }
    }
}

/// A pruner by kind with its options: a study file's `[pruner]` table, the kurobako flags, the
/// demo's flags.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrunerSpec {
    /// One of [`PRUNERS`] (default "none").
    #[serde(default = "default_pruner")]
    pub kind: String,
    /// median, percentile: complete trials before anything is pruned (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_trials: Option<u64>,
    /// median, percentile: steps before which nothing is pruned (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    /// median, percentile: decide once per this many steps (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_steps: Option<u64>,
    /// median, percentile: complete trials that must have reported a step (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_trials: Option<u64>,
    /// percentile: the percentile a trial must beat (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// asha, hyperband: step of the first rung (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resource: Option<u64>,
    /// hyperband (required), asha: the full number of steps of a trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resource: Option<u64>,
    /// asha, hyperband: keep the best 1/η at each rung (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduction_factor: Option<u64>,
    /// asha: skip this many first rungs (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_early_stopping_rate: Option<u32>,
}

fn default_pruner() -> String {
    "none".into()
}

impl Default for PrunerSpec {
    fn default() -> Self {
        PrunerSpec::of_kind(&default_pruner())
    }
}

impl PrunerSpec {
    /// The defaults of `kind`.
    pub fn of_kind(kind: &str) -> Self {
        PrunerSpec {
            kind: kind.into(),
            startup_trials: None,
            warmup_steps: None,
            interval_steps: None,
            min_trials: None,
            percentile: None,
            min_resource: None,
            max_resource: None,
            reduction_factor: None,
            min_early_stopping_rate: None,
        }
    }

    /// The keys given, with their names.
    fn given(&self) -> [(&'static str, bool); 9] {
        [
            ("startup_trials", self.startup_trials.is_some()),
            ("warmup_steps", self.warmup_steps.is_some()),
            ("interval_steps", self.interval_steps.is_some()),
            ("min_trials", self.min_trials.is_some()),
            ("percentile", self.percentile.is_some()),
            ("min_resource", self.min_resource.is_some()),
            ("max_resource", self.max_resource.is_some()),
            ("reduction_factor", self.reduction_factor.is_some()),
            (
                "min_early_stopping_rate",
                self.min_early_stopping_rate.is_some(),
            ),
        ]
    }

    /// The configured pruner, or the option at fault and the fix.
    pub fn build(&self) -> Result<Arc<dyn Pruner>, RegistryError> {
        let Some(keys) = pruner_keys(&self.kind) else {
            return Err(fault(
                "kind",
                format!(
                    "[pruner] kind = \"{}\" is not known; use \"none\", \"median\", \"percentile\", \"asha\" or \"hyperband\"",
                    self.kind
                ),
            ));
        };
        for (key, given) in self.given() {
            if given && !keys.contains(&key) {
                let users: Vec<String> = PRUNERS
                    .iter()
                    .filter(|k| pruner_keys(k).is_some_and(|keys| keys.contains(&key)))
                    .map(|k| format!("\"{k}\""))
                    .collect();
                return Err(fault(
                    key,
                    format!(
                        "[pruner] {key} is for kind = {}; remove it",
                        users.join(" or ")
                    ),
                ));
            }
        }
        let bad = |key: &'static str, e: PrunerError| fault(key, format!("[pruner] {e}"));
        let percentile_like = |percentile: f64| -> Result<Arc<dyn Pruner>, RegistryError> {
            let mut p = PercentilePruner::new(percentile).map_err(|e| bad("percentile", e))?;
            p.n_startup_trials = self.startup_trials.unwrap_or(5) as usize;
            p.n_warmup_steps = self.warmup_steps.unwrap_or(0);
            if self.interval_steps == Some(0) {
                return Err(fault(
                    "interval_steps",
                    "[pruner] interval_steps must be at least 1".into(),
                ));
            }
            p = p.interval_steps(self.interval_steps.unwrap_or(1));
            if self.min_trials == Some(0) {
                return Err(fault(
                    "min_trials",
                    "[pruner] min_trials must be at least 1".into(),
                ));
            }
            p = p.min_trials(self.min_trials.unwrap_or(1) as usize);
            Ok(Arc::new(p))
        };
        let (min, eta) = (
            self.min_resource.unwrap_or(1),
            self.reduction_factor.unwrap_or(3),
        );
        Ok(match self.kind.as_str() {
            "none" => Arc::new(NopPruner),
            "median" => percentile_like(50.0)?,
            "percentile" => percentile_like(self.percentile.unwrap_or(25.0))?,
            "asha" => {
                let mut asha = SuccessiveHalvingPruner::checked(min, eta).map_err(|e| {
                    let key = if e.field == "min_resource" {
                        "min_resource"
                    } else {
                        "reduction_factor"
                    };
                    bad(key, e)
                })?;
                asha = asha.min_early_stopping_rate(self.min_early_stopping_rate.unwrap_or(0));
                if let Some(max) = self.max_resource {
                    asha = asha.max_resource(max);
                }
                Arc::new(asha)
            }
            _ => {
                let Some(max) = self.max_resource else {
                    return Err(RegistryError {
                        key: None,
                        message: "[pruner] kind = \"hyperband\" needs max_resource, the full number of steps (epochs) of a trial".into(),
                    });
                };
                Arc::new(HyperbandPruner::new(min, max, eta).map_err(|e| {
                    let key = match e.field {
                        "min_resource" => "min_resource",
                        "max_resource" => "max_resource",
                        _ => "reduction_factor",
                    };
                    bad(key, e)
                })?)
            }
        })
    }
}

/// The keys of `[pruner]` each kind takes (`None`: no such kind).
fn pruner_keys(kind: &str) -> Option<&'static [&'static str]> {
    const PERCENTILE_KEYS: [&str; 4] = [
        "startup_trials",
        "warmup_steps",
        "interval_steps",
        "min_trials",
    ];
    Some(match kind {
        "none" => &[],
        "median" => &PERCENTILE_KEYS,
        "percentile" => &[
            "startup_trials",
            "warmup_steps",
            "interval_steps",
            "min_trials",
            "percentile",
        ],
        "asha" => &[
            "min_resource",
            "max_resource",
            "reduction_factor",
            "min_early_stopping_rate",
        ],
        "hyperband" => &["min_resource", "max_resource", "reduction_factor"],
        _ => return None,
    })
}
