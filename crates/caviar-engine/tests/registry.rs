//! Every option of the registry reaches the sampler or pruner it configures: a study run with
//! the option differs from one without it. (`multivariate` was once parsed and then dropped.)

use std::sync::Arc;

use caviar_core::sampler::Sampler;
use caviar_core::space::{Distribution, ParamValue, Scale, SearchSpace};
use caviar_core::study::Study;
use caviar_engine::{PrunerSpec, SamplerSpec, SAMPLERS};

fn space() -> SearchSpace {
    let mut space = SearchSpace::new();
    space
        .add("x", Distribution::float(-5.0, 5.0, Scale::Linear).unwrap())
        .unwrap();
    space
        .add("y", Distribution::float(-5.0, 5.0, Scale::Linear).unwrap())
        .unwrap();
    space
}

/// The parameters of `n` trials of a bowl with a ridge, as drawn by `sampler`.
fn run(sampler: Arc<dyn Sampler>, n: u64) -> Vec<Vec<ParamValue>> {
    let study = Study::builder("s").shared_sampler(sampler).build().unwrap();
    let space = space();
    study
        .optimize(n, |trial| {
            trial.suggest_space(&space)?;
            let p = trial.params();
            let (x, y) = (p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
            Ok((x - 1.0).powi(2) + (y + 2.0).powi(2) + (x * y).abs())
        })
        .unwrap();
    study
        .trials()
        .unwrap()
        .into_iter()
        .map(|t| t.params.into_values().collect())
        .collect()
}

fn trials(spec: &SamplerSpec, n: u64) -> Vec<Vec<ParamValue>> {
    run(spec.build(&space(), &Default::default()).unwrap(), n)
}

#[test]
fn multivariate_tpe_is_built_when_asked_and_samples_differently() {
    let uni = SamplerSpec {
        startup_trials: Some(5),
        seed: 3,
        ..SamplerSpec::of_kind("tpe")
    };
    let multi = SamplerSpec {
        multivariate: Some(true),
        ..uni.clone()
    };
    let (a, b) = (trials(&uni, 12), trials(&multi, 12));
    assert_eq!(a[..5], b[..5], "the start-up trials are the same draws");
    assert_ne!(
        a[5..],
        b[5..],
        "the models differ after the start-up trials"
    );
    assert_eq!(trials(&multi, 12), b, "and each reproduces from its seed");
}

#[test]
fn every_sampler_option_changes_what_is_drawn() {
    let base = |kind: &str| SamplerSpec {
        seed: 1,
        ..SamplerSpec::of_kind(kind)
    };
    let cases: Vec<(&str, SamplerSpec, SamplerSpec, u64)> = vec![
        (
            "seed",
            base("random"),
            SamplerSpec {
                seed: 2,
                ..base("random")
            },
            4,
        ),
        (
            "tpe startup_trials",
            base("tpe"),
            SamplerSpec {
                startup_trials: Some(3),
                ..base("tpe")
            },
            12,
        ),
        (
            "tpe candidates",
            SamplerSpec {
                startup_trials: Some(3),
                ..base("tpe")
            },
            SamplerSpec {
                startup_trials: Some(3),
                candidates: Some(2),
                ..base("tpe")
            },
            12,
        ),
        (
            "tpe gamma",
            SamplerSpec {
                startup_trials: Some(3),
                ..base("tpe")
            },
            SamplerSpec {
                startup_trials: Some(3),
                gamma: Some(0.5),
                ..base("tpe")
            },
            14,
        ),
        (
            "gp startup_trials",
            base("gp"),
            SamplerSpec {
                startup_trials: Some(3),
                ..base("gp")
            },
            6,
        ),
        (
            "gp candidates",
            SamplerSpec {
                startup_trials: Some(3),
                ..base("gp")
            },
            SamplerSpec {
                startup_trials: Some(3),
                candidates: Some(4),
                ..base("gp")
            },
            6,
        ),
        (
            "zoom round_size",
            base("zoom"),
            SamplerSpec {
                round_size: Some(5),
                ..base("zoom")
            },
            12,
        ),
        (
            "zoom keep",
            SamplerSpec {
                round_size: Some(6),
                ..base("zoom")
            },
            SamplerSpec {
                round_size: Some(6),
                keep: Some(0.9),
                ..base("zoom")
            },
            12,
        ),
        (
            "zoom margin",
            SamplerSpec {
                round_size: Some(6),
                ..base("zoom")
            },
            SamplerSpec {
                round_size: Some(6),
                margin: Some(0.3),
                ..base("zoom")
            },
            12,
        ),
        (
            "grid points",
            base("grid"),
            SamplerSpec {
                points: Some(2),
                ..base("grid")
            },
            4,
        ),
    ];
    for (option, without, with, n) in cases {
        assert_ne!(
            trials(&without, n),
            trials(&with, n),
            "{option} did not reach the sampler"
        );
    }
}

#[test]
fn every_sampler_kind_builds_and_misplaced_options_name_their_key() {
    for kind in SAMPLERS {
        let spec = SamplerSpec::of_kind(kind);
        assert!(spec.build(&space(), &Default::default()).is_ok(), "{kind}");
    }
    let unknown = SamplerSpec::of_kind("cmaes").validate().unwrap_err();
    assert_eq!(unknown.key, Some("kind"));
    assert!(unknown
        .message
        .contains("use one of auto, random, sobol, grid, tpe, zoom, gp"));
    let misplaced = SamplerSpec {
        multivariate: Some(true),
        ..SamplerSpec::of_kind("random")
    };
    let err = misplaced.validate().unwrap_err();
    assert_eq!(err.key, Some("multivariate"));
    assert_eq!(
        err.message,
        "[sampler] multivariate is for kind = \"tpe\" only; remove it"
    );
    let err = SamplerSpec {
        keep: Some(1.5),
        ..SamplerSpec::of_kind("zoom")
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        (err.key, err.message.as_str()),
        (Some("keep"), "[sampler] keep must lie in (0, 1]")
    );
}

#[test]
fn pruner_options_are_checked_and_misplaced_ones_name_their_key() {
    let err = PrunerSpec {
        percentile: Some(10.0),
        ..PrunerSpec::of_kind("asha")
    }
    .build()
    .err()
    .unwrap();
    assert_eq!(err.key, Some("percentile"));
    assert_eq!(
        err.message,
        "[pruner] percentile is for kind = \"percentile\"; remove it"
    );
    let err = PrunerSpec::of_kind("hyperband").build().err().unwrap();
    assert!(err.message.contains("needs max_resource"), "{err}");
    for kind in caviar_engine::PRUNERS {
        let spec = PrunerSpec {
            max_resource: Some(27),
            ..PrunerSpec::of_kind(kind)
        };
        let spec = if matches!(*kind, "asha" | "hyperband") {
            spec
        } else {
            PrunerSpec::of_kind(kind)
        };
        assert!(spec.build().is_ok(), "{kind}");
    }
    // The stored form is the study file's table: it round-trips.
    let spec = SamplerSpec {
        multivariate: Some(true),
        ..SamplerSpec::of_kind("tpe")
    };
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["multivariate"], true);
    assert_eq!(serde_json::from_value::<SamplerSpec>(json).unwrap(), spec);
}
