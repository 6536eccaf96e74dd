//! Conditional search spaces: every sampler gives valid assignments (a child exists exactly
//! when its conditions hold), and TPE models each parameter over the trials that have it.

use std::collections::BTreeMap;

use super::*;
use crate::prelude::*;
use crate::space::{Condition, Distribution, ParamValue, Scale, SearchSpace};

fn choice(text: &str) -> ParamValue {
    ParamValue::Str(text.into())
}

fn when(parent: &str, allowed: &[&str]) -> Vec<Condition> {
    vec![Condition {
        parent: parent.into(),
        allowed: allowed.iter().map(|a| choice(a)).collect(),
    }]
}

/// An optimizer with its own hyperparameters, one of them nested two levels deep, and a
/// per-layer width that exists only with three layers.
fn conditional_space() -> SearchSpace {
    let mut space = SearchSpace::new();
    let mut add = |name: &str, dist: Distribution| space.add(name, dist).unwrap();
    add(
        "optimizer",
        Distribution::categorical(["sgd", "momentum", "adam"]).unwrap(),
    );
    add("lr", Distribution::float(1e-4, 1e-1, Scale::Log).unwrap());
    add(
        "beta1",
        Distribution::float(0.5, 0.9999, Scale::ReverseLog).unwrap(),
    );
    add(
        "momentum",
        Distribution::float(0.0, 0.99, Scale::Linear).unwrap(),
    );
    add("amsgrad", Distribution::categorical(["on", "off"]).unwrap());
    add(
        "amsgrad_floor",
        Distribution::float(1e-8, 1e-2, Scale::Log).unwrap(),
    );
    add(
        "layers",
        Distribution::categorical(["two", "three"]).unwrap(),
    );
    add("width3", Distribution::int(16, 256, Scale::Log).unwrap());
    space
        .set_conditions("beta1", when("optimizer", &["adam"]))
        .unwrap();
    space
        .set_conditions("momentum", when("optimizer", &["momentum"]))
        .unwrap();
    space
        .set_conditions("amsgrad", when("optimizer", &["adam"]))
        .unwrap();
    space
        .set_conditions("amsgrad_floor", when("amsgrad", &["on"]))
        .unwrap();
    space
        .set_conditions("width3", when("layers", &["three"]))
        .unwrap();
    space
}

/// Like a network's validation loss: Adam is the best optimizer on average (its own
/// hyperparameter drawn at random), and best of all with 1 - beta1 near 1e-3; momentum SGD
/// needs its momentum near 0.9; plain SGD is worst. Minimum 0 at Adam, lr = 10^-2.5,
/// 1 - beta1 = 1e-3.
fn objective(params: &BTreeMap<String, ParamValue>) -> f64 {
    let number = |name: &str| params[name].as_f64().unwrap();
    let lr_term = (number("lr").log10() + 2.5).powi(2);
    let branch = match params["optimizer"].as_str().unwrap() {
        "sgd" => 1.0,
        "momentum" => 0.5 + (number("momentum") - 0.9).powi(2),
        _ => 0.1 * ((1.0 - number("beta1")).log10() + 3.0).powi(2),
    };
    lr_term + branch
}

fn run(sampler: impl Sampler + 'static, space: &SearchSpace, trials: u64) -> Study {
    run_with(sampler, space, trials, objective)
}

#[test]
fn every_sampler_gives_valid_assignments() {
    let space = conditional_space();
    for seed in 0..3 {
        let samplers: Vec<Box<dyn Fn() -> Study>> = vec![
            Box::new(|| run(RandomSampler::new(seed), &space, 40)),
            Box::new(|| run(SobolSampler::new(&space, seed), &space, 40)),
            Box::new(|| {
                let grid = GridSampler::from_space(&space, 3, &Default::default(), seed).unwrap();
                run(grid, &space, 40)
            }),
            Box::new(|| run(TpeSampler::new(seed), &space, 40)),
            Box::new(|| run(TpeSampler::multivariate(seed), &space, 40)),
            Box::new(|| run(ZoomSampler::new(&space, seed), &space, 40)),
            Box::new(|| run(GpSampler::new(&space, seed), &space, 25)),
            Box::new(|| run(crate::sampler::AutoSampler::new(&space, seed), &space, 40)),
            Box::new(|| {
                let mut nsga2 = crate::sampler::Nsga2Sampler::new(seed);
                nsga2.population_size = 10;
                run(nsga2, &space, 40)
            }),
        ];
        for make in samplers {
            let study = make();
            let trials = study.trials().unwrap();
            assert!(trials.len() >= 25, "{} trials", trials.len());
            let mut branches = std::collections::BTreeSet::new();
            for t in &trials {
                assert_eq!(t.state, TrialState::Complete, "{t:?}");
                assert!(
                    space.is_valid_assignment(&t.params),
                    "seed {seed}: invalid {:?}",
                    t.params
                );
                for (name, value) in &t.params {
                    assert!(space.get(name).unwrap().contains(value), "{name} = {value}");
                }
                branches.insert(t.params["optimizer"].to_string());
            }
            assert_eq!(branches.len(), 3, "every branch is tried: {branches:?}");
        }
    }
}

#[test]
fn tpe_beats_random_on_a_conditional_function_over_ten_seeds() {
    let space = conditional_space();
    let best = |study: Study| study.best_trial().unwrap().unwrap().value.unwrap();
    let (mut tpe, mut random) = (Vec::new(), Vec::new());
    for seed in 0..10 {
        tpe.push(best(run(TpeSampler::new(seed), &space, 80)));
        random.push(best(run(RandomSampler::new(seed), &space, 80)));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "mean best over 10 seeds: TPE {} random {}",
        mean(&tpe),
        mean(&random)
    );
    assert!(
        mean(&tpe) < 0.5 * mean(&random),
        "TPE mean best {} against random {}",
        mean(&tpe),
        mean(&random)
    );
}

#[test]
fn bad_conditions_name_the_fix() {
    let mut space = conditional_space();
    let err = space
        .set_conditions("lr", when("nope", &["x"]))
        .unwrap_err();
    assert!(err.reason.contains("not a parameter"), "{err}");
    let err = space
        .set_conditions("lr", when("width3", &["x"]))
        .unwrap_err();
    assert!(err.reason.contains("categorical"), "{err}");
    let err = space
        .set_conditions("lr", when("optimizer", &["adamw"]))
        .unwrap_err();
    assert!(err.reason.contains("not one of its choices"), "{err}");
    // optimizer -> amsgrad -> optimizer.
    let err = space
        .set_conditions("optimizer", when("amsgrad", &["on"]))
        .unwrap_err();
    assert!(err.reason.contains("cycle"), "{err}");
    assert!(
        space.conditions("optimizer").is_empty(),
        "a refused condition is not kept"
    );
}

#[test]
fn parents_come_before_children() {
    let space = conditional_space();
    let order: Vec<&str> = space.in_order().iter().map(|(n, _)| n.as_str()).collect();
    let at = |name: &str| order.iter().position(|n| *n == name).unwrap();
    assert!(at("optimizer") < at("amsgrad"));
    assert!(at("amsgrad") < at("amsgrad_floor"));
    assert!(at("layers") < at("width3"));
    assert_eq!(order.len(), space.len());
}

#[test]
fn zoom_narrows_each_branch_over_the_trials_that_have_it() {
    let space = conditional_space();
    let zoom = std::sync::Arc::new(ZoomSampler::new(&space, 2));
    let study = Study::builder("z")
        .shared_sampler(zoom.clone())
        .build()
        .unwrap();
    study
        .optimize(80, |t| {
            t.suggest_space(&space)?;
            Ok(objective(&t.params()))
        })
        .unwrap();
    let boxes = zoom.boxes();
    assert_eq!(boxes.len(), 4);
    let width = |round: usize, name: &str| {
        let (_, lo, hi) = boxes[round]
            .bounds
            .iter()
            .find(|(n, ..)| n == name)
            .unwrap();
        hi - lo
    };
    // Only trials with Adam have beta1, and few of the first rounds' best may use Adam; its
    // own best still narrow it.
    assert_eq!(width(0, "beta1"), 1.0);
    assert!(width(3, "beta1") < 0.6, "{:?}", boxes[3]);
    assert!(width(3, "momentum") < 0.6, "{:?}", boxes[3]);
}

#[test]
fn importance_judges_a_conditional_parameter_among_the_trials_that_have_it() {
    use crate::importance::{importance, ImportanceOptions};
    let space = conditional_space();
    // Plain SGD always beats Adam here, so no Adam trial is among the overall best; among Adam
    // trials, beta1 decides everything.
    let study = run_with(RandomSampler::new(5), &space, 300, |p| {
        match p["optimizer"].as_str().unwrap() {
            "adam" => 1.0 + ((1.0 - p["beta1"].as_f64().unwrap()).log10() + 3.0).abs(),
            _ => 0.5,
        }
    });
    let trials = study.trials().unwrap();
    let ped = importance(
        &trials,
        Direction::Minimize,
        &ImportanceOptions {
            method: crate::importance::ImportanceMethod::PedAnova,
            ..Default::default()
        },
    )
    .unwrap();
    let share = |ranked: &[crate::importance::ParamImportance], name: &str| {
        ranked.iter().find(|r| r.name == name).unwrap().importance
    };
    assert!(share(&ped, "beta1") > share(&ped, "lr") + 0.1, "{ped:?}");
    // fANOVA over the whole box: Adam or not (the parent) explains most of the variance, and
    // beta1, inside Adam, comes next, far ahead of lr. Adam's other children, set exactly when
    // beta1 is, do not take the parent's credit.
    let ranked = importance(&trials, Direction::Minimize, &ImportanceOptions::default()).unwrap();
    let names: Vec<&str> = ranked.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names[..2], ["optimizer", "beta1"], "{ranked:?}");
    assert!(share(&ranked, "beta1") > 0.03, "{ranked:?}");
    assert!(
        share(&ranked, "beta1") > 50.0 * share(&ranked, "lr"),
        "{ranked:?}"
    );
    assert!(share(&ranked, "amsgrad") < 0.01, "{ranked:?}");
    let beta1 = ranked.iter().find(|r| r.name == "beta1").unwrap();
    assert!(
        beta1.trials < 150,
        "counted over the trials that have it: {}",
        beta1.trials
    );
}

fn run_with(
    sampler: impl Sampler + 'static,
    space: &SearchSpace,
    trials: u64,
    objective: impl Fn(&BTreeMap<String, ParamValue>) -> f64,
) -> Study {
    let study = Study::builder("conditional")
        .sampler(sampler)
        .build()
        .unwrap();
    study
        .optimize(trials, |t| {
            t.suggest_space(space)?;
            Ok(objective(&t.params()))
        })
        .unwrap();
    study
}

#[test]
fn gp_learns_from_trials_that_lack_a_conditional_parameter() {
    let space = conditional_space();
    let best = |study: Study| study.best_trial().unwrap().unwrap().value.unwrap();
    let (mut gp, mut random) = (Vec::new(), Vec::new());
    for seed in 0..5 {
        gp.push(best(run(GpSampler::new(&space, seed), &space, 40)));
        random.push(best(run(RandomSampler::new(seed), &space, 40)));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "mean best over 5 seeds: GP {} random {}",
        mean(&gp),
        mean(&random)
    );
    // Every trial lacks some parameter here, so a model that drops such trials has no data.
    assert!(
        mean(&gp) < 0.7 * mean(&random),
        "GP {} against random {}",
        mean(&gp),
        mean(&random)
    );
}

/// Four 5-way choices and one number: mostly one-hot columns.
fn categorical_space() -> SearchSpace {
    let mut space = SearchSpace::new();
    for i in 0..4 {
        let choices = Distribution::categorical(["a", "b", "c", "d", "e"]).unwrap();
        space.add(&format!("c{i}"), choices).unwrap();
    }
    let x = Distribution::float(-3.0, 3.0, Scale::Linear).unwrap();
    space.add("x", x).unwrap();
    space
}

/// Each choice has its own cost (the best differs per parameter) plus a bowl in x.
fn categorical_objective(p: &BTreeMap<String, ParamValue>) -> f64 {
    const COSTS: [f64; 5] = [0.9, 0.4, 0.0, 0.7, 1.0];
    let mut total = (p["x"].as_f64().unwrap() - 1.0).powi(2);
    for i in 0..4 {
        let choice = p[&format!("c{i}")].as_str().unwrap().as_bytes()[0] - b'a';
        total += COSTS[(choice as usize + i) % 5] * (1.0 + 0.5 * i as f64);
    }
    total
}

/// Why `auto` keeps its GP and TPE turns on conditional and mostly categorical spaces rather
/// than handing them to TPE alone: the turns are better on both (means over 5 seeds, 40
/// trials; docs/samplers.md has 10 seeds and the GP alone).
#[test]
fn auto_beats_tpe_alone_on_conditional_and_categorical_spaces() {
    let best = |study: Study| study.best_trial().unwrap().unwrap().value.unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let conditional = conditional_space();
    let categorical = categorical_space();
    let (mut auto_c, mut tpe_c, mut auto_k, mut tpe_k) = (vec![], vec![], vec![], vec![]);
    for seed in 0..5 {
        auto_c.push(best(run(
            AutoSampler::new(&conditional, seed),
            &conditional,
            40,
        )));
        tpe_c.push(best(run(TpeSampler::new(seed), &conditional, 40)));
        let auto = AutoSampler::new(&categorical, seed);
        auto_k.push(best(run_with(
            auto,
            &categorical,
            40,
            categorical_objective,
        )));
        let tpe = TpeSampler::new(seed);
        tpe_k.push(best(run_with(tpe, &categorical, 40, categorical_objective)));
    }
    eprintln!(
        "conditional: auto {} tpe {}; categorical: auto {} tpe {}",
        mean(&auto_c),
        mean(&tpe_c),
        mean(&auto_k),
        mean(&tpe_k)
    );
    assert!(mean(&auto_c) < 0.5 * mean(&tpe_c));
    assert!(mean(&auto_k) < 0.5 * mean(&tpe_k));
}
