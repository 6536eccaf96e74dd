use std::sync::Arc;

use super::*;
use crate::trial::{TrialId, TrialState};

fn trial(number: u64, state: TrialState, curve: &[(u64, f64)]) -> Arc<FrozenTrial> {
    Arc::new(FrozenTrial {
        id: TrialId(number as i64 + 1),
        number,
        state,
        params: Default::default(),
        distributions: Default::default(),
        value: curve.last().map(|c| c.1),
        intermediate: curve.to_vec(),
        error: None,
        worker: None,
        started_ms: None,
        finished_ms: None,
        constraints: Vec::new(),
        values: Vec::new(),
    })
}

/// A curve reporting `value` at steps 1..=steps.
fn flat(steps: u64, value: f64) -> Vec<(u64, f64)> {
    (1..=steps).map(|s| (s, value)).collect()
}

fn decide(
    pruner: &dyn Pruner,
    direction: Direction,
    me: &FrozenTrial,
    finished: &[Arc<FrozenTrial>],
    running: &[Arc<FrozenTrial>],
) -> bool {
    pruner.prune(&PruneContext {
        direction,
        trial: me,
        finished,
        running,
    })
}

fn five_complete() -> Vec<Arc<FrozenTrial>> {
    (0..5)
        .map(|i| trial(i, TrialState::Complete, &flat(10, i as f64)))
        .collect()
}

#[test]
fn median_prunes_a_trial_worse_than_the_median_at_its_step() {
    let finished = five_complete(); // values 0..4 at every step: median 2
    let median = MedianPruner::new();
    let worse = trial(9, TrialState::Running, &flat(3, 2.5));
    let better = trial(9, TrialState::Running, &flat(3, 1.5));
    let equal = trial(9, TrialState::Running, &flat(3, 2.0));
    assert!(decide(&median, Direction::Minimize, &worse, &finished, &[]));
    assert!(!decide(
        &median,
        Direction::Minimize,
        &better,
        &finished,
        &[]
    ));
    assert!(!decide(
        &median,
        Direction::Minimize,
        &equal,
        &finished,
        &[]
    ));
    // Maximising, the same numbers flip.
    assert!(!decide(
        &median,
        Direction::Maximize,
        &worse,
        &finished,
        &[]
    ));
    assert!(decide(
        &median,
        Direction::Maximize,
        &better,
        &finished,
        &[]
    ));
}

#[test]
fn median_judges_the_best_value_so_far_not_the_last() {
    let finished = five_complete();
    let dipped = trial(9, TrialState::Running, &[(1, 1.0), (2, 3.0)]);
    assert!(!decide(
        &MedianPruner::new(),
        Direction::Minimize,
        &dipped,
        &finished,
        &[]
    ));
}

#[test]
fn median_waits_for_startup_trials_warmup_and_its_interval() {
    let finished = five_complete();
    let bad = trial(9, TrialState::Running, &flat(4, 9.0));
    let median = MedianPruner::new();
    assert!(!decide(
        &median.clone().startup_trials(6),
        Direction::Minimize,
        &bad,
        &finished,
        &[]
    ));
    assert!(!decide(
        &median.clone().warmup_steps(5),
        Direction::Minimize,
        &bad,
        &finished,
        &[]
    ));
    // Interval 3 from warm-up 0: judged at steps 3, 6, ...; step 4 is not first in its window.
    assert!(!decide(
        &median.clone().interval_steps(3),
        Direction::Minimize,
        &bad,
        &finished,
        &[]
    ));
    let at_six = trial(9, TrialState::Running, &flat(6, 9.0));
    assert!(decide(
        &median.interval_steps(3),
        Direction::Minimize,
        &at_six,
        &finished,
        &[]
    ));
}

#[test]
fn median_ignores_running_pruned_and_failed_trials_and_unreported_steps() {
    let mut finished: Vec<Arc<FrozenTrial>> = (0..5)
        .map(|i| trial(i, TrialState::Pruned, &flat(10, 0.0)))
        .collect();
    let bad = trial(9, TrialState::Running, &flat(3, 9.0));
    let median = MedianPruner::new();
    assert!(
        !decide(&median, Direction::Minimize, &bad, &finished, &[]),
        "no complete trials"
    );
    finished.extend((5..10).map(|i| trial(i, TrialState::Complete, &flat(2, 0.0))));
    assert!(
        !decide(&median, Direction::Minimize, &bad, &finished, &[]),
        "nobody complete reported step 3"
    );
}

#[test]
fn a_diverged_trial_is_pruned() {
    let finished = five_complete();
    let nan = trial(9, TrialState::Running, &[(1, f64::NAN)]);
    assert!(decide(
        &MedianPruner::new(),
        Direction::Minimize,
        &nan,
        &finished,
        &[]
    ));
    let asha = SuccessiveHalvingPruner::new(1, 3);
    assert!(decide(&asha, Direction::Minimize, &nan, &[], &[]));
}

#[test]
fn percentiles_interpolate_like_numpy() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(percentile::percentile_of_sorted(&v, 50.0), 2.5);
    assert_eq!(percentile::percentile_of_sorted(&v, 25.0), 1.75);
    assert_eq!(percentile::percentile_of_sorted(&v, 0.0), 1.0);
    assert_eq!(percentile::percentile_of_sorted(&v, 100.0), 4.0);
    assert!(PercentilePruner::new(101.0).is_err());
    // The 25th percentile keeps only the best quarter.
    let finished = five_complete(); // 0..4: 25th percentile = 1
    let p25 = PercentilePruner::new(25.0).unwrap();
    let middling = trial(9, TrialState::Running, &flat(2, 1.5));
    assert!(decide(&p25, Direction::Minimize, &middling, &finished, &[]));
    assert!(!decide(
        &MedianPruner::new(),
        Direction::Minimize,
        &middling,
        &finished,
        &[]
    ));
}

#[test]
fn asha_keeps_the_best_third_at_each_rung() {
    // Nine trials reached rung 1 (step 1) with values 1..9; η = 3.
    let others: Vec<Arc<FrozenTrial>> = (1..=9)
        .map(|i| trial(i, TrialState::Running, &[(1, i as f64)]))
        .collect();
    let asha = SuccessiveHalvingPruner::new(1, 3);
    // With ten at the rung, the best 10 / 3 = 3 go on: 1, 2 and the newcomer if it beats 3.
    let good = trial(20, TrialState::Running, &[(1, 2.5)]);
    let bad = trial(20, TrialState::Running, &[(1, 3.5)]);
    assert!(!decide(&asha, Direction::Minimize, &good, &[], &others));
    assert!(decide(&asha, Direction::Minimize, &bad, &[], &others));
    // Maximising, the top third is 9, 8, 7.
    let high = trial(20, TrialState::Running, &[(1, 8.5)]);
    assert!(!decide(&asha, Direction::Maximize, &high, &[], &others));
    assert!(decide(&asha, Direction::Maximize, &good, &[], &others));
}

#[test]
fn asha_promotes_the_first_arrivals_and_decides_once_per_rung() {
    let asha = SuccessiveHalvingPruner::new(1, 3);
    let alone = trial(0, TrialState::Running, &[(1, 100.0)]);
    assert!(
        !decide(&asha, Direction::Minimize, &alone, &[], &[]),
        "first at a rung goes on"
    );
    // Between rungs (steps 2, after rung 1 was passed at step 1) nothing is decided, however
    // bad the trial now looks.
    let others: Vec<Arc<FrozenTrial>> = (1..=9)
        .map(|i| trial(i, TrialState::Complete, &flat(9, 0.0)))
        .collect();
    let between = trial(0, TrialState::Running, &[(1, 100.0), (2, 100.0)]);
    assert!(!decide(&asha, Direction::Minimize, &between, &others, &[]));
    // At rung 2 (step 3) it is judged again.
    let at_rung = trial(
        0,
        TrialState::Running,
        &[(1, 100.0), (2, 100.0), (3, 100.0)],
    );
    assert!(decide(&asha, Direction::Minimize, &at_rung, &others, &[]));
}

#[test]
fn asha_judges_every_rung_a_long_stride_crossed() {
    // Reports at steps 1 and 10 only: the jump crosses rungs 3 and 9.
    let others: Vec<Arc<FrozenTrial>> = (1..=9)
        .map(|i| trial(i, TrialState::Complete, &[(1, 5.0), (3, 0.0), (9, 5.0)]))
        .collect();
    let asha = SuccessiveHalvingPruner::new(1, 3);
    let me = trial(0, TrialState::Running, &[(1, 1.0), (10, 1.0)]);
    // At rung 3 the others report 0.0 and the trial (value at its first step ≥ 3: 1.0) loses.
    assert!(decide(&asha, Direction::Minimize, &me, &others, &[]));
}

#[test]
fn asha_rungs_and_checked_settings() {
    let asha = SuccessiveHalvingPruner::new(2, 2)
        .min_early_stopping_rate(1)
        .max_resource(40);
    assert_eq!(asha.budgets(), Some(vec![4, 8, 16, 32, 40]));
    // A trial at the full budget has finished: it is not judged there.
    let at_the_end = SuccessiveHalvingPruner::new(1, 3).max_resource(9);
    let others: Vec<Arc<FrozenTrial>> = (1..=9)
        .map(|i| trial(i, TrialState::Complete, &flat(9, 1.0)))
        .collect();
    let me = trial(0, TrialState::Running, &[(1, 1.0), (3, 1.0), (9, 0.0)]);
    assert!(!decide(&at_the_end, Direction::Maximize, &me, &others, &[]));
    assert!(decide(
        &SuccessiveHalvingPruner::new(1, 3),
        Direction::Maximize,
        &me,
        &others,
        &[]
    ));
    assert!(SuccessiveHalvingPruner::checked(0, 3).is_err());
    let err = SuccessiveHalvingPruner::checked(1, 1).unwrap_err();
    assert_eq!(err.field, "reduction_factor");
}

#[test]
fn hyperband_brackets_spread_trials_and_compare_within_a_bracket() {
    let hb = HyperbandPruner::new(1, 27, 3).unwrap();
    assert_eq!(hb.n_brackets(), 4);
    let mut counts = [0usize; 4];
    for n in 0..4000 {
        counts[hb.bracket_of(n)] += 1;
    }
    // Weights 27/4, 9/3, 3/2, 1/1 of 12.25: about 55%, 24%, 12%, 8%.
    assert!(
        counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > counts[3],
        "{counts:?}"
    );
    assert!(
        (counts[0] as f64 / 4000.0 - 0.551).abs() < 0.03,
        "{counts:?}"
    );
    assert!(HyperbandPruner::new(3, 2, 3).is_err());

    // A trial in the gentlest bracket (first rung at 27) is never judged before step 27.
    let gentle = (0..).find(|&n| hb.bracket_of(n) == 3).unwrap();
    let others: Vec<Arc<FrozenTrial>> = (1000..1010)
        .map(|i| trial(i, TrialState::Complete, &flat(27, 0.0)))
        .collect();
    let me = trial(gentle, TrialState::Running, &flat(26, 9.0));
    assert!(!decide(&hb, Direction::Minimize, &me, &others, &[]));
    // In the aggressive bracket, only same-bracket trials compete.
    let aggressive: Vec<u64> = (0..).filter(|&n| hb.bracket_of(n) == 0).take(11).collect();
    let rivals: Vec<Arc<FrozenTrial>> = aggressive[1..]
        .iter()
        .map(|&n| trial(n, TrialState::Complete, &flat(27, 0.0)))
        .collect();
    let me = trial(aggressive[0], TrialState::Running, &[(1, 9.0)]);
    assert!(decide(&hb, Direction::Minimize, &me, &rivals, &[]));
    let strangers: Vec<Arc<FrozenTrial>> = (0..)
        .filter(|&n| hb.bracket_of(n) != 0)
        .take(10)
        .map(|n| trial(n, TrialState::Complete, &flat(27, 0.0)))
        .collect();
    assert!(!decide(&hb, Direction::Minimize, &me, &strangers, &[]));
}

#[test]
fn when_pruning_trials_that_got_further_rank_first_then_by_value() {
    use crate::sampler::SampleContext;
    let ctx = |learn_from_pruned| SampleContext {
        trial_number: 5,
        direction: Direction::Maximize,
        finished: &[],
        running: &[],
        attrs: None,
        learn_from_pruned,
        objectives: None,
    };
    let with = ctx(true);
    let at_1_good = trial(0, TrialState::Pruned, &[(1, 0.9)]);
    let at_1_bad = trial(1, TrialState::Pruned, &[(1, 0.1)]);
    let at_3_poor = trial(2, TrialState::Pruned, &[(1, 0.5), (3, 0.2)]);
    let at_9 = trial(3, TrialState::Pruned, &flat(9, 0.3));
    let complete_poor = trial(4, TrialState::Complete, &flat(12, 0.05));
    let failed = trial(5, TrialState::Failed, &flat(9, 0.99));
    let short = trial(6, TrialState::Pruned, &[]);
    let order: Vec<f64> = [&complete_poor, &at_9, &at_3_poor, &at_1_good, &at_1_bad]
        .iter()
        .map(|t| with.loss(t).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert_eq!(with.loss(&failed), None);
    assert_eq!(with.loss(&short), None);
    // Without pruning only complete trials count, by their final value.
    let without = ctx(false);
    assert_eq!(without.loss(&at_9), None);
    assert_eq!(without.loss(&complete_poor), Some(-0.05));
}

/// Best final loss of a study of `n` trials on a curve problem whose good region is small:
/// loss(x, epoch) = f(x) + 2 / epoch, f(x) = Σ (x_i - 0.7)² over four parameters.
fn curve_study(sampler: impl crate::sampler::Sampler + 'static, seed: u64, n: u64) -> f64 {
    use crate::study::{Study, TrialError};
    let study = Study::builder("curves")
        .sampler(sampler)
        .pruner(SuccessiveHalvingPruner::new(1, 3).max_resource(27))
        .build()
        .unwrap();
    study
        .optimize(n, |t| {
            let mut f = 0.0;
            for i in 0..4 {
                let x = t.suggest_float(&format!("x{i}"), 0.0, 1.0, crate::space::Scale::Linear)?;
                f += (x - 0.7f64).powi(2);
            }
            // A little seeded noise so rung ranks are not exact.
            let noise = (crate::rng::derive_seed(seed, &[t.number()]) % 1000) as f64 * 1e-5;
            for epoch in 1..=27u64 {
                t.report(epoch, f + noise + 2.0 / epoch as f64)?;
                if t.should_prune()? {
                    return Err(TrialError::Pruned);
                }
            }
            Ok(f + noise + 2.0 / 27.0)
        })
        .unwrap();
    study.best_trial().unwrap().unwrap().value.unwrap()
}

#[test]
fn tpe_fed_by_rung_results_beats_random_under_asha() {
    use crate::sampler::{RandomSampler, TpeSampler};
    let mut wins = 0;
    for seed in 0..8 {
        let model = curve_study(TpeSampler::new(seed), seed, 250);
        let random = curve_study(RandomSampler::new(seed), seed, 250);
        eprintln!("seed {seed}: tpe {model:.4} random {random:.4}");
        wins += u32::from(model < random);
    }
    assert!(wins >= 6, "TPE on rung values won {wins} of 8");
}
