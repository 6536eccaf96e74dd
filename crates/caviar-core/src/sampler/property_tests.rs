//! Properties every sampler must keep: draws lie inside their distribution, and the same seed
//! reproduces the same draws.

use proptest::prelude::*;

use super::*;
use crate::space::{Distribution, Scale, SearchSpace};
use crate::trial::Direction;

fn arb_distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        (-1e6f64..1e6, 1e-3f64..1e6).prop_map(|(low, width)| Distribution::Float {
            low,
            high: low + width,
            scale: Scale::Linear,
            step: None
        }),
        (-12i32..3, 1i32..8).prop_map(|(e, span)| Distribution::Float {
            low: 10f64.powi(e),
            high: 10f64.powi(e + span),
            scale: Scale::Log,
            step: None
        }),
        (-0.5f64..0.99, 1e-6f64..0.5).prop_map(|(low, gap)| {
            let high = (low + gap).min(0.999_999);
            Distribution::Float {
                low: low.min(high - 1e-7),
                high,
                scale: Scale::ReverseLog,
                step: None,
            }
        }),
        (-1000i64..1000, 0i64..50, 1i64..5).prop_map(|(low, n, step)| Distribution::Int {
            low,
            high: low + n * step,
            step,
            scale: Scale::Linear
        }),
        (1i64..1000, 0i64..100000).prop_map(|(low, width)| Distribution::Int {
            low,
            high: low + width,
            step: 1,
            scale: Scale::Log
        }),
        (0.0f64..10.0, 1usize..20, 0.01f64..1.0).prop_map(|(low, n, step)| Distribution::Float {
            low,
            high: low + n as f64 * step,
            scale: Scale::Linear,
            step: Some(step)
        }),
        (1usize..10).prop_map(|n| Distribution::Categorical {
            choices: (0..n).map(|i| format!("c{i}").into()).collect()
        }),
    ]
}

fn samplers(space: &SearchSpace, seed: u64) -> Vec<Box<dyn Sampler>> {
    vec![
        Box::new(RandomSampler::new(seed)),
        Box::new(SobolSampler::new(space, seed)),
        Box::new(GridSampler::from_space(space, 4, &Default::default(), seed).unwrap()),
        Box::new(TpeSampler::new(seed)),
        Box::new(TpeSampler::multivariate(seed)),
        Box::new(ZoomSampler::new(space, seed)),
        Box::new(GpSampler::new(space, seed)),
        Box::new(super::Nsga2Sampler::new(seed)),
        Box::new(super::AutoSampler::new(space, seed)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_draw_lies_in_its_distribution(
        dists in proptest::collection::vec(arb_distribution(), 1..5),
        seed in any::<u64>(),
        trial in 0u64..10_000,
    ) {
        let mut space = SearchSpace::new();
        for (i, d) in dists.iter().enumerate() {
            prop_assert!(d.validate().is_ok(), "generator made an invalid {d:?}");
            space.add(&format!("p{i}"), d.clone()).unwrap();
        }
        for sampler in samplers(&space, seed) {
            let number = match sampler.max_trials() { Some(n) => trial % n, None => trial };
            let ctx = SampleContext {
                trial_number: number,
                direction: Direction::Minimize,
                finished: &[],
                running: &[],
                attrs: None,
                learn_from_pruned: false,
            objectives: None,
            };
            for (name, dist) in space.iter() {
                let value = sampler.sample(&ctx, name, dist).unwrap();
                prop_assert!(dist.contains(&value), "{} drew {value:?} outside {dist:?}", sampler.name());
                let again = samplers(&space, seed).into_iter().find(|s| s.name() == sampler.name()).unwrap()
                    .sample(&ctx, name, dist).unwrap();
                prop_assert_eq!(&value, &again);
            }
        }
    }

    #[test]
    fn unit_round_trip_stays_inside(dist in arb_distribution(), u in 0.0f64..=1.0) {
        let v = dist.from_unit(u);
        prop_assert!(dist.contains(&v));
        let back = dist.to_unit(&v).unwrap();
        prop_assert!((0.0..=1.0).contains(&back));
        let again = dist.from_unit(back);
        if dist.cardinality().is_some() {
            prop_assert_eq!(again, v);
        } else {
            let (a, b) = (again.as_f64().unwrap(), v.as_f64().unwrap());
            prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-300) + 1e-12, "{a} vs {b}");
        }
    }
}

fn share(sampler: &dyn Sampler, dist: &Distribution, n: u64, pred: impl Fn(f64) -> bool) -> f64 {
    let hits = (0..n)
        .filter(|&i| {
            let ctx = SampleContext {
                trial_number: i,
                direction: Direction::Minimize,
                finished: &[],
                running: &[],
                attrs: None,
                learn_from_pruned: false,
                objectives: None,
            };
            pred(sampler.sample(&ctx, "x", dist).unwrap().as_f64().unwrap())
        })
        .count();
    hits as f64 / n as f64
}

#[test]
fn reverse_log_puts_half_the_mass_above_0_99() {
    let beta = Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap();
    let mut space = SearchSpace::new();
    space.add("x", beta.clone()).unwrap();
    for sampler in [
        &RandomSampler::new(5) as &dyn Sampler,
        &SobolSampler::new(&space, 5),
    ] {
        let p = share(sampler, &beta, 20_000, |b| b >= 0.99);
        assert!(
            (0.47..=0.53).contains(&p),
            "{}: P(beta >= 0.99) = {p}",
            sampler.name()
        );
    }
}

#[test]
fn each_log_decade_is_equally_likely() {
    let lr = Distribution::float(1e-6, 1e-2, Scale::Log).unwrap();
    let mut space = SearchSpace::new();
    space.add("x", lr.clone()).unwrap();
    for sampler in [
        &RandomSampler::new(11) as &dyn Sampler,
        &SobolSampler::new(&space, 11),
    ] {
        for decade in -6..-2 {
            let (lo, hi) = (10f64.powi(decade), 10f64.powi(decade + 1));
            let p = share(sampler, &lr, 20_000, |x| lo <= x && x < hi);
            assert!(
                (0.23..=0.27).contains(&p),
                "{}: decade 1e{decade} got {p}",
                sampler.name()
            );
        }
    }
}

#[test]
fn grid_covers_every_combination_exactly_once() {
    let mut space = SearchSpace::new();
    space
        .add("lr", Distribution::float(1e-4, 1.0, Scale::Log).unwrap())
        .unwrap();
    space
        .add("layers", Distribution::int(2, 4, Scale::Linear).unwrap())
        .unwrap();
    space
        .add("act", Distribution::categorical(["relu", "tanh"]).unwrap())
        .unwrap();
    let grid = GridSampler::from_space(&space, 5, &Default::default(), 3).unwrap();
    assert_eq!(grid.max_trials(), Some(5 * 3 * 2));
    let mut seen = std::collections::HashSet::new();
    for n in 0..30 {
        let ctx = SampleContext {
            trial_number: n,
            direction: Direction::Minimize,
            finished: &[],
            running: &[],
            attrs: None,
            learn_from_pruned: false,
            objectives: None,
        };
        let point: Vec<String> = space
            .iter()
            .map(|(name, d)| grid.sample(&ctx, name, d).unwrap().to_string())
            .collect();
        assert!(seen.insert(point.join("|")), "repeated {point:?}");
    }
    assert_eq!(seen.len(), 30);
    let ctx = SampleContext {
        trial_number: 30,
        direction: Direction::Minimize,
        finished: &[],
        running: &[],
        attrs: None,
        learn_from_pruned: false,
        objectives: None,
    };
    assert_eq!(
        grid.sample(&ctx, "lr", space.get("lr").unwrap()),
        Err(SamplerError::Exhausted(30))
    );
}

#[test]
fn different_seeds_give_different_trials() {
    let d = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
    let ctx = SampleContext {
        trial_number: 0,
        direction: Direction::Minimize,
        finished: &[],
        running: &[],
        attrs: None,
        learn_from_pruned: false,
        objectives: None,
    };
    let a = RandomSampler::new(1).sample(&ctx, "x", &d).unwrap();
    let b = RandomSampler::new(2).sample(&ctx, "x", &d).unwrap();
    assert_ne!(a, b);
}

fn history(
    space: &SearchSpace,
    n: u64,
    seed: u64,
) -> Vec<std::sync::Arc<crate::trial::FrozenTrial>> {
    use crate::trial::{FrozenTrial, TrialId, TrialState};
    let random = RandomSampler::new(seed ^ 0xabc);
    (0..n)
        .map(|i| {
            let ctx = SampleContext {
                trial_number: i,
                direction: Direction::Minimize,
                finished: &[],
                running: &[],
                attrs: None,
                learn_from_pruned: false,
                objectives: None,
            };
            let params = space
                .iter()
                .map(|(k, d)| (k.clone(), random.sample(&ctx, k, d).unwrap()))
                .collect();
            let state = if i % 7 == 3 {
                TrialState::Running
            } else {
                TrialState::Complete
            };
            FrozenTrial {
                id: TrialId(i as i64),
                number: i,
                state,
                params,
                distributions: space.iter().map(|(k, d)| (k.clone(), d.clone())).collect(),
                value: (state == TrialState::Complete).then(|| ((i * 7919) % 101) as f64),
                intermediate: vec![],
                error: None,
                worker: None,
                started_ms: None,
                finished_ms: None,
                constraints: Vec::new(),
                values: Vec::new(),
            }
        })
        .map(std::sync::Arc::new)
        .collect()
}

/// Parameters p0, p1, ... with the given distributions.
fn space_of(dists: &[Distribution]) -> SearchSpace {
    let mut space = SearchSpace::new();
    for (i, d) in dists.iter().enumerate() {
        space.add(&format!("p{i}"), d.clone()).unwrap();
    }
    space
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn model_based_draws_with_history_stay_inside_and_reproduce(
        dists in proptest::collection::vec(arb_distribution(), 1..4),
        seed in any::<u64>(),
        n in 0u64..60,
    ) {
        let space = space_of(&dists);
        let past = history(&space, n, seed);
        for direction in [Direction::Minimize, Direction::Maximize] {
            let (running, finished): (Vec<_>, Vec<_>) =
                past.iter().cloned().partition(|t| t.state == crate::trial::TrialState::Running);
            let ctx = SampleContext { trial_number: n, direction, finished: &finished, running: &running, attrs: None,
            learn_from_pruned: false, objectives: None, };
            let mv = TpeSampler::multivariate(seed).sample_joint(&ctx).unwrap();
            prop_assert_eq!(&mv, &TpeSampler::multivariate(seed).sample_joint(&ctx).unwrap());
            for (name, dist) in space.iter() {
                let a = TpeSampler::new(seed).sample(&ctx, name, dist).unwrap();
                prop_assert!(dist.contains(&a), "tpe drew {a:?} outside {dist:?}");
                prop_assert_eq!(&a, &TpeSampler::new(seed).sample(&ctx, name, dist).unwrap());
                if let Some((d, v)) = mv.get(name) {
                    prop_assert_eq!(d, dist);
                    prop_assert!(dist.contains(v), "tpe-mv drew {v:?} outside {dist:?}");
                }
                let z = ZoomSampler::new(&space, seed).sample(&ctx, name, dist).unwrap();
                prop_assert!(dist.contains(&z), "zoom drew {z:?} outside {dist:?}");
                prop_assert_eq!(&z, &ZoomSampler::new(&space, seed).sample(&ctx, name, dist).unwrap());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gp_draws_with_history_stay_inside_and_reproduce(
        dists in proptest::collection::vec(arb_distribution(), 1..4),
        seed in any::<u64>(),
        n in 0u64..40,
    ) {
        let space = space_of(&dists);
        let past = history(&space, n, seed);
        let (running, finished): (Vec<_>, Vec<_>) =
            past.iter().cloned().partition(|t| t.state == crate::trial::TrialState::Running);
        let ctx = SampleContext { trial_number: n, direction: Direction::Maximize, finished: &finished, running: &running, attrs: None,
            learn_from_pruned: false, objectives: None, };
        let joint = GpSampler::new(&space, seed).sample_joint(&ctx).unwrap();
        let complete = finished.len();
        // After the start-up trials the model chooses every parameter.
        prop_assert_eq!(joint.len(), if complete >= 10 { space.len() } else { 0 });
        for (name, (dist, value)) in &joint {
            prop_assert_eq!(space.get(name), Some(dist));
            prop_assert!(dist.contains(value), "gp drew {value:?} outside {dist:?}");
        }
        prop_assert_eq!(&joint, &GpSampler::new(&space, seed).sample_joint(&ctx).unwrap());
        for (name, dist) in space.iter() {
            let v = GpSampler::new(&space, seed).sample(&ctx, name, dist).unwrap();
            prop_assert!(dist.contains(&v));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn auto_draws_with_history_stay_inside_reproduce_and_follow_its_model(
        dists in proptest::collection::vec(arb_distribution(), 1..4),
        seed in any::<u64>(),
        n in 0u64..40,
    ) {
        let space = space_of(&dists);
        let past = history(&space, n, seed);
        let (running, finished): (Vec<_>, Vec<_>) =
            past.iter().cloned().partition(|t| t.state == crate::trial::TrialState::Running);
        let ctx = SampleContext { trial_number: n, direction: Direction::Minimize, finished: &finished, running: &running, attrs: None,
            learn_from_pruned: false, objectives: None, };
        let auto = super::AutoSampler::new(&space, seed);
        let joint = auto.sample_joint(&ctx).unwrap();
        prop_assert_eq!(&joint, &super::AutoSampler::new(&space, seed).sample_joint(&ctx).unwrap());
        // It proposes exactly what the model it chose would.
        let expected = match auto.choose(&ctx) {
            super::AutoChoice::Gp(_) => {
                // Its GP keeps a trust region in any number of dimensions.
                let mut gp = GpSampler::new(&space, seed);
                gp.trust_region_dims = 1;
                gp.sample_joint(&ctx).unwrap()
            }
            super::AutoChoice::Tpe(_) => TpeSampler::new(seed).sample_joint(&ctx).unwrap(),
        };
        prop_assert_eq!(&joint, &expected);
        for (name, (dist, value)) in &joint {
            prop_assert_eq!(space.get(name), Some(dist));
            prop_assert!(dist.contains(value), "auto drew {value:?} outside {dist:?}");
        }
        for (name, dist) in space.iter() {
            let v = auto.sample(&ctx, name, dist).unwrap();
            prop_assert!(dist.contains(&v), "auto drew {v:?} outside {dist:?}");
            prop_assert_eq!(&v, &super::AutoSampler::new(&space, seed).sample(&ctx, name, dist).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn nsga2_children_stay_inside_reproduce_and_come_from_two_objectives(
        dists in proptest::collection::vec(arb_distribution(), 1..4),
        seed in any::<u64>(),
        n in 0u64..40,
        constrained in any::<bool>(),
    ) {
        let space = space_of(&dists);
        // Two objectives per trial: the value and its mirror, so many trials are on the front;
        // some break a constraint.
        let past: Vec<std::sync::Arc<FrozenTrial>> = history(&space, n, seed)
            .into_iter()
            .map(|t| {
                let mut t = (*t).clone();
                if let Some(v) = t.value {
                    t.values = vec![v, 100.0 - v + (t.number % 3) as f64];
                    if constrained && t.number % 4 == 0 {
                        t.constraints = vec![1.0];
                    }
                }
                std::sync::Arc::new(t)
            })
            .collect();
        let (running, finished): (Vec<_>, Vec<_>) =
            past.iter().cloned().partition(|t| t.state == crate::trial::TrialState::Running);
        let directions = [Direction::Minimize, Direction::Maximize];
        let ranks = crate::pareto::ObjectiveRanks::new(&directions, finished.iter().map(|t| &**t));
        let ctx = SampleContext { trial_number: n, direction: Direction::Minimize, finished: &finished, running: &running, attrs: None,
            learn_from_pruned: false, objectives: Some(&ranks), };
        let mut small = super::Nsga2Sampler::new(seed);
        small.population_size = 8;
        let joint = small.sample_joint(&ctx).unwrap();
        let complete = finished.iter().filter(|t| t.state == crate::trial::TrialState::Complete).count();
        // After the first population every parameter comes from the parents.
        prop_assert_eq!(joint.len(), if complete >= 8 { space.len() } else { 0 });
        for (name, (dist, value)) in &joint {
            prop_assert_eq!(space.get(name), Some(dist));
            prop_assert!(dist.contains(value), "nsga2 drew {value:?} outside {dist:?}");
        }
        prop_assert_eq!(&joint, &small.clone().sample_joint(&ctx).unwrap());
        for (name, dist) in space.iter() {
            let v = small.sample(&ctx, name, dist).unwrap();
            prop_assert!(dist.contains(&v));
            let t = TpeSampler::new(seed).sample(&ctx, name, dist).unwrap();
            prop_assert!(dist.contains(&t), "tpe with two objectives drew {t:?} outside {dist:?}");
        }
    }
}

#[test]
fn gp_beats_random_on_a_log_scale_bowl_and_spreads_parallel_asks() {
    use crate::prelude::*;
    let mut space = SearchSpace::new();
    space
        .add("lr", Distribution::float(1e-6, 1.0, Scale::Log).unwrap())
        .unwrap();
    space
        .add("wd", Distribution::float(1e-8, 1e-2, Scale::Log).unwrap())
        .unwrap();
    space
        .add("act", Distribution::categorical(["relu", "tanh"]).unwrap())
        .unwrap();
    let objective = |t: &mut Trial| -> Result<f64, TrialError> {
        let lr = t.suggest_float("lr", 1e-6, 1.0, Scale::Log)?;
        let wd = t.suggest_float("wd", 1e-8, 1e-2, Scale::Log)?;
        let act = t.suggest_categorical("act", &["relu", "tanh"])?;
        let penalty = if act == "tanh" { 1.0 } else { 0.0 };
        Ok((lr.log10() + 2.5).powi(2) + 0.3 * (wd.log10() + 5.0).powi(2) + penalty)
    };
    let mut wins = 0;
    for seed in 0..6 {
        let g = Study::builder("g")
            .sampler(GpSampler::new(&space, seed))
            .build()
            .unwrap();
        g.optimize(30, objective).unwrap();
        let r = Study::builder("r")
            .sampler(RandomSampler::new(seed))
            .build()
            .unwrap();
        r.optimize(30, objective).unwrap();
        let (gb, rb) = (
            g.best_trial().unwrap().unwrap(),
            r.best_trial().unwrap().unwrap(),
        );
        assert_eq!(gb.params["act"], ParamValue::from("relu"));
        if gb.value < rb.value {
            wins += 1;
        }
        // Two trials asked before either finishes get different points (the constant liar).
        let (mut a, mut b) = (g.ask().unwrap(), g.ask().unwrap());
        let pa = a.suggest_float("lr", 1e-6, 1.0, Scale::Log).unwrap();
        let pb = b.suggest_float("lr", 1e-6, 1.0, Scale::Log).unwrap();
        let (wa, wb) = (
            a.suggest_float("wd", 1e-8, 1e-2, Scale::Log).unwrap(),
            b.suggest_float("wd", 1e-8, 1e-2, Scale::Log).unwrap(),
        );
        assert!(
            pa != pb || wa != wb,
            "seed {seed}: both asks got lr={pa} wd={wa}"
        );
    }
    assert!(wins >= 5, "GP beat random in only {wins} of 6 runs");
}

#[test]
fn tpe_beats_random_on_a_log_scale_bowl() {
    use crate::prelude::*;
    let objective = |t: &mut Trial| -> Result<f64, TrialError> {
        let lr = t.suggest_float("lr", 1e-6, 1.0, Scale::Log)?;
        let wd = t.suggest_float("wd", 1e-8, 1e-2, Scale::Log)?;
        Ok((lr.log10() + 2.5).powi(2) + 0.3 * (wd.log10() + 5.0).powi(2))
    };
    let (mut tpe_wins, runs) = (0, 10);
    for seed in 0..runs {
        let best = |sampler: Box<dyn Fn() -> Study>| {
            let s = sampler();
            s.optimize(60, objective).unwrap();
            s.best_trial().unwrap().unwrap().value.unwrap()
        };
        let t = best(Box::new(move || {
            Study::builder("t")
                .sampler(TpeSampler::new(seed))
                .build()
                .unwrap()
        }));
        let r = best(Box::new(move || {
            Study::builder("r")
                .sampler(RandomSampler::new(seed))
                .build()
                .unwrap()
        }));
        if t < r {
            tpe_wins += 1;
        }
    }
    assert!(
        tpe_wins >= 8,
        "TPE beat random in only {tpe_wins} of {runs} runs"
    );
}

#[test]
fn multivariate_tpe_beats_random_on_a_coupled_valley() {
    use crate::prelude::*;
    // The good learning rate depends on the batch size: a diagonal valley in log space.
    let objective = |t: &mut Trial| -> Result<f64, TrialError> {
        let lr = t.suggest_float("lr", 1e-6, 1.0, Scale::Log)?;
        let batch = t.suggest_int("batch", 16, 1024, Scale::Log)?;
        let act = t.suggest_categorical("act", &["relu", "tanh"])?;
        let valley = lr.log10() - (batch as f64).log2() / 2.0 + 6.0;
        Ok(valley.powi(2) + if act == "relu" { 0.0 } else { 0.5 })
    };
    let mut wins = 0;
    for seed in 0..10 {
        let best = |sampler: Box<dyn Sampler>| {
            let s = Study::builder("s")
                .shared_sampler(sampler.into())
                .build()
                .unwrap();
            s.optimize(80, objective).unwrap();
            s.best_trial().unwrap().unwrap().value.unwrap()
        };
        let mv = best(Box::new(TpeSampler::multivariate(seed)));
        let r = best(Box::new(RandomSampler::new(seed)));
        if mv < r {
            wins += 1;
        }
    }
    assert!(
        wins >= 8,
        "multivariate TPE beat random in only {wins} of 10"
    );
}

#[test]
fn tpe_reading_history_in_steps_matches_reading_it_at_once() {
    let mut space = SearchSpace::new();
    space
        .add("lr", Distribution::float(1e-5, 1.0, Scale::Log).unwrap())
        .unwrap();
    space
        .add(
            "act",
            Distribution::categorical(["relu", "tanh", "gelu"]).unwrap(),
        )
        .unwrap();
    let past: Vec<_> = history(&space, 80, 9)
        .into_iter()
        .filter(|t| t.state == crate::trial::TrialState::Complete)
        .collect();
    let stepwise = TpeSampler::new(3);
    for end in [5, 20, 33, past.len()] {
        let ctx = SampleContext {
            trial_number: 100,
            direction: Direction::Maximize,
            finished: &past[..end],
            running: &[],
            attrs: None,
            learn_from_pruned: false,
            objectives: None,
        };
        for (name, dist) in space.iter() {
            let a = stepwise.sample(&ctx, name, dist).unwrap();
            let b = TpeSampler::new(3).sample(&ctx, name, dist).unwrap();
            assert_eq!(a, b, "{name} after {end} trials");
        }
    }
}

#[test]
fn zoom_rounds_shrink_around_the_best_and_beat_random() {
    use crate::prelude::*;
    let mut space = SearchSpace::new();
    space
        .add("lr", Distribution::float(1e-6, 1.0, Scale::Log).unwrap())
        .unwrap();
    space
        .add("wd", Distribution::float(1e-8, 1e-2, Scale::Log).unwrap())
        .unwrap();
    let objective = |t: &mut Trial| -> Result<f64, TrialError> {
        let lr = t.suggest_float("lr", 1e-6, 1.0, Scale::Log)?;
        let wd = t.suggest_float("wd", 1e-8, 1e-2, Scale::Log)?;
        Ok((lr.log10() + 2.5).powi(2) + 0.3 * (wd.log10() + 5.0).powi(2))
    };
    let mut wins = 0;
    for seed in 0..10 {
        let zoom = std::sync::Arc::new(ZoomSampler::new(&space, seed));
        let z = Study::builder("z")
            .shared_sampler(zoom.clone())
            .build()
            .unwrap();
        z.optimize(80, objective).unwrap();
        let r = Study::builder("r")
            .sampler(RandomSampler::new(seed))
            .build()
            .unwrap();
        r.optimize(80, objective).unwrap();
        let boxes = zoom.boxes();
        assert_eq!(boxes.len(), 4, "80 trials are 4 rounds of 20");
        let width = |b: &ZoomBox| b.bounds.iter().map(|(_, lo, hi)| hi - lo).product::<f64>();
        assert_eq!(width(&boxes[0]), 1.0);
        assert!(
            width(&boxes[3]) < 0.5 * width(&boxes[0]),
            "seed {seed}: {boxes:?}"
        );
        // Every trial of a round lies in its box.
        for t in z.trials().unwrap() {
            let b = &boxes[(t.number / 20) as usize];
            for (name, lo, hi) in &b.bounds {
                let u = t.distributions[name].to_unit(&t.params[name]).unwrap();
                assert!(
                    u >= lo - 1e-9 && u <= hi + 1e-9,
                    "trial {} {name} = {u} outside {lo}..{hi}",
                    t.number
                );
            }
        }
        if z.best_trial().unwrap().unwrap().value < r.best_trial().unwrap().unwrap().value {
            wins += 1;
        }
    }
    assert!(wins >= 8, "zoom beat random in only {wins} of 10");
}
