//! Several objectives in the library: telling values, the Pareto front, constraints on it,
//! and samplers that approach the front faster than random search.

use std::sync::Arc;

use caviar_core::pareto::{hypervolume, losses};
use caviar_core::prelude::*;
use caviar_core::sampler::{GpSampler, Nsga2Sampler, TpeSampler};

fn two(directions: [Direction; 2]) -> Study {
    Study::builder("two")
        .directions(directions.to_vec())
        .metrics(vec!["acc".into(), "latency_ms".into()])
        .build()
        .unwrap()
}

#[test]
fn values_are_checked_and_the_others_come_from_the_last_reports() {
    let study = two([Direction::Maximize, Direction::Minimize]);
    let outcomes = [
        (Outcome::Values(vec![0.9, 12.0]), TrialState::Complete, None),
        (
            Outcome::Values(vec![0.9]),
            TrialState::Failed,
            Some("1 values for 2 objectives"),
        ),
        (
            Outcome::Values(vec![0.9, f64::NAN]),
            TrialState::Failed,
            Some("objective 2 is NaN"),
        ),
        (Outcome::Complete(0.8), TrialState::Complete, None),
        (
            Outcome::Complete(0.7),
            TrialState::Failed,
            Some("objective 2 (`latency_ms`) was never reported"),
        ),
    ];
    for (i, (outcome, state, reason)) in outcomes.into_iter().enumerate() {
        let trial = study.ask().unwrap();
        if i == 3 {
            trial
                .report_metrics(1, &[("latency_ms".into(), 30.0)])
                .unwrap();
            trial
                .report_metrics(2, &[("latency_ms".into(), 8.0)])
                .unwrap();
        }
        assert_eq!(study.tell(trial, outcome).unwrap(), state, "case {i}");
        let t = &study.trials().unwrap()[i];
        match reason {
            Some(r) => assert!(
                t.error.as_deref().unwrap().contains(r),
                "case {i}: {:?}",
                t.error
            ),
            None => assert!(t.error.is_none()),
        }
    }
    let trials = study.trials().unwrap();
    assert_eq!(trials[0].values, [0.9, 12.0]);
    assert_eq!(trials[0].value, Some(0.9));
    assert_eq!(trials[3].values, [0.8, 8.0]);
    // Both are on the front: one is more accurate, the other faster.
    let front: Vec<u64> = study
        .best_trials(10)
        .unwrap()
        .iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(front, [0, 3]);
}

#[test]
fn the_front_skips_dominated_and_infeasible_trials() {
    let study = Study::builder("front")
        .directions(vec![Direction::Minimize, Direction::Minimize])
        .constraints(vec!["memory_mb <= 10".parse().unwrap()])
        .build()
        .unwrap();
    // (1,5) (2,3) (4,1) nondominated; (3,4) dominated; (0,0) dominates all but is infeasible.
    for (values, memory) in [
        ([1.0, 5.0], 1.0),
        ([3.0, 4.0], 1.0),
        ([2.0, 3.0], 1.0),
        ([0.0, 0.0], 50.0),
        ([4.0, 1.0], 1.0),
    ] {
        let trial = study.ask().unwrap();
        trial
            .report_metrics(0, &[("memory_mb".into(), memory)])
            .unwrap();
        study.tell(trial, Outcome::Values(values.to_vec())).unwrap();
    }
    let front: Vec<u64> = study
        .best_trials(10)
        .unwrap()
        .iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(front, [0, 2, 4]);
    let summary = caviar_core::pareto::summarize(&study.trials().unwrap(), study.directions());
    assert_eq!(summary.front, [0, 2, 4]);
    assert_eq!(summary.infeasible, 1);
    // Reference: worst feasible values (4, 5) pushed out by a tenth of the ranges (3, 4).
    assert_eq!(summary.reference, Some(vec![4.3, 5.4]));
    // The staircase from (4.3, 5.4): 3.3 x 0.4 + 2.3 x 2 + 0.3 x 2.
    assert!((summary.hypervolume.unwrap() - (3.3 * 0.4 + 2.3 * 2.0 + 0.3 * 2.0)).abs() < 1e-12);
    let expected = hypervolume(
        &[vec![1.0, 5.0], vec![2.0, 3.0], vec![4.0, 1.0]],
        &[4.3, 5.4],
    );
    assert!((summary.hypervolume.unwrap() - expected).abs() < 1e-12);
}

#[test]
fn directions_are_kept_and_a_one_value_sampler_is_refused() {
    let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
    let open = |directions: Vec<Direction>| {
        Study::builder("kept")
            .storage(storage.clone())
            .load_if_exists(true)
            .directions(directions)
            .build()
    };
    open(vec![Direction::Maximize, Direction::Minimize]).unwrap();
    let err = match open(vec![Direction::Maximize]) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("one direction for a study of two must be refused"),
    };
    assert!(
        err.contains("directions") && err.contains("[maximize, minimize]"),
        "{err}"
    );
    let mut space = SearchSpace::new();
    space
        .add("x", Distribution::float(0.0, 1.0, Scale::Linear).unwrap())
        .unwrap();
    let err = match Study::builder("gp")
        .directions(vec![Direction::Minimize, Direction::Minimize])
        .sampler(GpSampler::new(&space, 0))
        .build()
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("GP must be refused"),
    };
    assert!(err.contains("gp") && err.contains("nsga2"), "{err}");
}

/// ZDT1 in `n` variables (both objectives minimised); the front has hypervolume 2/3 from
/// (1, 1) and is reached when every variable but the first is 0.
fn zdt1(trial: &mut Trial, n: usize) -> Vec<f64> {
    let x: Vec<f64> = (0..n)
        .map(|i| {
            trial
                .suggest_float(&format!("x{i}"), 0.0, 1.0, Scale::Linear)
                .unwrap()
        })
        .collect();
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (n - 1) as f64;
    vec![x[0], g * (1.0 - (x[0] / g).sqrt())]
}

fn zdt1_hypervolume(sampler: Arc<dyn Sampler>, trials: usize, n: usize) -> f64 {
    let directions = vec![Direction::Minimize, Direction::Minimize];
    let study = Study::builder("zdt1")
        .directions(directions.clone())
        .shared_sampler(sampler)
        .build()
        .unwrap();
    for _ in 0..trials {
        let mut trial = study.ask().unwrap();
        let values = zdt1(&mut trial, n);
        study.tell(trial, Outcome::Values(values)).unwrap();
    }
    let points: Vec<Vec<f64>> = study
        .trials()
        .unwrap()
        .iter()
        .filter_map(|t| losses(t, &directions))
        .collect();
    hypervolume(&points, &[1.1, 1.1])
}

#[test]
fn nsga2_and_tpe_approach_the_front_of_zdt1_faster_than_random() {
    let (trials, n, seeds) = (200, 5, 0..4u64);
    let mean = |make: &dyn Fn(u64) -> Arc<dyn Sampler>| {
        seeds
            .clone()
            .map(|s| zdt1_hypervolume(make(s), trials, n))
            .sum::<f64>()
            / seeds.clone().count() as f64
    };
    let random = mean(&|s| Arc::new(RandomSampler::new(s)));
    let nsga2 = mean(&|s| {
        let mut sampler = Nsga2Sampler::new(s);
        sampler.population_size = 20;
        Arc::new(sampler)
    });
    let tpe = mean(&|s| Arc::new(TpeSampler::new(s)));
    eprintln!("ZDT1 (5 variables, 200 trials) hypervolume from (1.1, 1.1): random {random:.4}, nsga2 {nsga2:.4}, tpe {tpe:.4}; the front's is {:.4}", 1.1 * 1.1 - 1.0 / 3.0);
    assert!(nsga2 > random + 0.05, "nsga2 {nsga2} vs random {random}");
    assert!(tpe > random + 0.05, "tpe {tpe} vs random {random}");
}
