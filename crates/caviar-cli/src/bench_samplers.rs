//! `caviar bench samplers`: what a suggestion costs as trials pile up, and how close each
//! sampler gets to the optimum of standard test functions.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use caviar_core::prelude::*;
use caviar_core::space::SearchSpace;
use caviar_core::storage::NewStudy;
use serde_json::json;

use crate::BadInput;

/// A test function to minimise: its box (with scales), its known minimum, and the function.
struct Problem {
    name: &'static str,
    space: SearchSpace,
    minimum: f64,
    f: fn(&[f64]) -> f64,
}

fn boxed(
    name: &'static str,
    bounds: &[(f64, f64, Scale)],
    minimum: f64,
    f: fn(&[f64]) -> f64,
) -> Problem {
    let mut space = SearchSpace::new();
    for (i, (lo, hi, scale)) in bounds.iter().enumerate() {
        space
            .add(
                &format!("x{i}"),
                Distribution::float(*lo, *hi, *scale).expect("valid bounds"),
            )
            .expect("distinct names");
    }
    Problem {
        name,
        space,
        minimum,
        f,
    }
}

fn branin(x: &[f64]) -> f64 {
    let (a, b, c) = (
        1.0,
        5.1 / (4.0 * std::f64::consts::PI.powi(2)),
        5.0 / std::f64::consts::PI,
    );
    let (r, s, t) = (6.0, 10.0, 1.0 / (8.0 * std::f64::consts::PI));
    a * (x[1] - b * x[0] * x[0] + c * x[0] - r).powi(2) + s * (1.0 - t) * x[0].cos() + s
}

fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -(0..4)
        .map(|i| {
            ALPHA[i]
                * (-(0..6)
                    .map(|j| A[i][j] * (x[j] - P[i][j]).powi(2))
                    .sum::<f64>())
                .exp()
        })
        .sum::<f64>()
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

fn ackley(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let sq = x.iter().map(|v| v * v).sum::<f64>() / n;
    let cos = x
        .iter()
        .map(|v| (std::f64::consts::TAU * v).cos())
        .sum::<f64>()
        / n;
    -20.0 * (-0.2 * sq.sqrt()).exp() - cos.exp() + 20.0 + std::f64::consts::E
}

fn styblinski_tang(x: &[f64]) -> f64 {
    x.iter()
        .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
        .sum::<f64>()
        / 2.0
}

/// A validation-error surface over learning rate and weight decay, both on log scales: a valley
/// around lr = 10^-2.7 that tilts with weight decay, flat far away (as diverged or stuck runs are).
fn lr_wd(x: &[f64]) -> f64 {
    let (u, v) = (
        x[0].log10() + 2.7 - 0.15 * (x[1].log10() + 5.0),
        x[1].log10() + 5.0,
    );
    1.0 - (-(u * u) / (2.0 * 0.35f64.powi(2))).exp() * (-(v * v) / (2.0 * 2.0f64.powi(2))).exp()
}

fn problems() -> Vec<Problem> {
    use Scale::Linear as L;
    vec![
        boxed(
            "branin-2",
            &[(-5.0, 10.0, L), (0.0, 15.0, L)],
            0.397_887_357_729_738,
            branin,
        ),
        boxed(
            "hartmann-6",
            &[(0.0, 1.0, L); 6],
            -3.322_368_011_391_339,
            hartmann6,
        ),
        boxed("rosenbrock-5", &[(-5.0, 10.0, L); 5], 0.0, rosenbrock),
        boxed("ackley-5", &[(-32.768, 32.768, L); 5], 0.0, ackley),
        boxed(
            "styblinski-tang-8",
            &[(-5.0, 5.0, L); 8],
            -39.166_165_703_771_41 * 8.0,
            styblinski_tang,
        ),
        boxed(
            "lr-wd-log",
            &[(1e-6, 1.0, Scale::Log), (1e-8, 1e-2, Scale::Log)],
            0.0,
            lr_wd,
        ),
    ]
}

fn sampler(kind: &str, space: &SearchSpace, seed: u64) -> Arc<dyn Sampler> {
    caviar_engine::SamplerSpec {
        seed,
        ..caviar_engine::SamplerSpec::of_kind(kind)
    }
    .build(space, &Default::default())
    .expect("KINDS names known samplers")
}

const KINDS: [&str; 7] = ["random", "sobol", "zoom", "tpe", "tpe-mv", "gp", "auto"];

/// Best value after 50 and after 100 trials, run by the engine's loop on one worker thread
/// (one thread keeps a seed's trials in order).
fn optimise(problem: &Problem, kind: &str, seed: u64) -> Result<(f64, f64)> {
    let study = Study::builder("bench")
        .shared_sampler(sampler(kind, &problem.space, seed))
        .build()?;
    let best_after = |total: u64| -> Result<f64> {
        let limits = caviar_engine::Limits::up_to(total);
        let cancel = std::sync::atomic::AtomicBool::new(false);
        caviar_engine::drive(
            &study,
            &problem.space,
            limits,
            1,
            &cancel,
            &caviar_engine::Silent,
            |trial, _| {
                let params = trial.params();
                let x: Vec<f64> = problem
                    .space
                    .iter()
                    .map(|(name, _)| params[name].as_f64().unwrap_or(f64::NAN))
                    .collect();
                Outcome::Complete((problem.f)(&x))
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(study
            .best_trial()?
            .and_then(|t| t.value)
            .unwrap_or(f64::INFINITY))
    };
    let at50 = best_after(50)?;
    let at100 = best_after(100)?;
    Ok((at50 - problem.minimum, at100 - problem.minimum))
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0).max(1.0);
    (m, var.sqrt())
}

/// Milliseconds for the first ask + 10 suggestions + tell after `n` complete trials in memory,
/// and per ask after it.
fn ask_cost(kind: &str, n: u64, asks: u64) -> Result<(f64, f64)> {
    let mut space = SearchSpace::new();
    for i in 0..10 {
        space.add(
            &format!("p{i}"),
            Distribution::float(1e-4, 1.0, Scale::Log).expect("valid"),
        )?;
    }
    let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
    let record = storage.create_study(&NewStudy {
        name: "cost".into(),
        ..Default::default()
    })?;
    let filler = RandomSampler::new(1);
    for i in 0..n {
        let t = storage
            .create_trial(record.id, "bench", None)?
            .expect("no limit");
        let ctx = caviar_core::sampler::SampleContext {
            trial_number: i,
            direction: Direction::Minimize,
            finished: &[],
            running: &[],
            attrs: None,
            learn_from_pruned: false,
            objectives: None,
        };
        let mut sum = 0.0;
        for (name, dist) in space.iter() {
            let v = filler.sample(&ctx, name, dist)?;
            sum += v.as_f64().unwrap_or(0.0).log10().abs();
            storage.set_param(t.id, name, dist, &v)?;
        }
        storage.finish_trial(t.id, TrialState::Complete, Some(sum), None)?;
    }
    let study = Study::builder("cost")
        .storage(storage)
        .shared_sampler(sampler(kind, &space, 0))
        .load_if_exists(true)
        .build()?;
    // One ask first: a model-based sampler reads the whole history once, then only what is new.
    let warm = Instant::now();
    let mut trial = study.ask()?;
    for (name, dist) in space.iter() {
        trial.suggest(name, dist.clone())?;
    }
    study.tell(trial, Outcome::Complete(1.0))?;
    let first_ms = warm.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    for _ in 0..asks {
        let mut trial = study.ask()?;
        for (name, dist) in space.iter() {
            trial.suggest(name, dist.clone())?;
        }
        study.tell(trial, Outcome::Complete(1.0))?;
    }
    Ok((
        first_ms,
        start.elapsed().as_secs_f64() * 1000.0 / asks as f64,
    ))
}

/// Histories past which a sampler's ask is too slow to time here (a GP refits a dense kernel
/// matrix on every ask; `auto` hands over to TPE past 1,000 trials).
fn largest_history(kind: &str) -> u64 {
    if kind == "gp" {
        1_000
    } else {
        u64::MAX
    }
}

pub fn samplers(seeds: u64, max_trials: u64, only: &[String], as_json: bool) -> Result<()> {
    for kind in only {
        if !KINDS.contains(&kind.as_str()) {
            return Err(BadInput(format!(
                "--samplers: `{kind}` is not a sampler; use some of {}",
                KINDS.join(",")
            ))
            .into());
        }
    }
    let kinds: Vec<&str> = KINDS
        .into_iter()
        .filter(|k| only.is_empty() || only.iter().any(|o| o == k))
        .collect();
    let mut report = Vec::new();
    println!(
        "ask cost: ms per ask + 10 suggestions + tell, in-memory storage, 10 log-scale parameters"
    );
    println!(
        "(steady state; in brackets the first ask of a process, which reads the whole history)"
    );
    println!(
        "{:<8} {:>20} {:>20} {:>20} {:>20}",
        "sampler", "100 trials", "300 trials", "1000 trials", "10000 trials"
    );
    for &kind in &kinds {
        let mut row = vec![];
        for n in [100u64, 300, 1_000, 10_000]
            .into_iter()
            .filter(|n| *n <= max_trials && *n <= largest_history(kind))
        {
            // Enough asks to average over machine noise, few enough that the history grows by
            // at most a tenth while timing (which only makes the figure more conservative).
            let asks = if n >= 10_000 {
                5
            } else {
                (n / 10).clamp(10, 100)
            };
            row.push((n, ask_cost(kind, n, asks)?));
        }
        let cells: Vec<String> = row
            .iter()
            .map(|(_, (first, ms))| format!("{:>20}", format!("{ms:.3} [{first:.1}]")))
            .collect();
        println!("{kind:<8} {}", cells.join(" "));
        report.push(json!({"kind": "ask_cost", "sampler": kind, "ms_per_ask": row}));
    }
    println!("\nsimple regret (best found - optimum), mean ± sd over {seeds} seeds");
    println!(
        "{:<18} {:<8} {:>22} {:>22}",
        "problem", "sampler", "after 50", "after 100"
    );
    for problem in problems() {
        for &kind in &kinds {
            let mut r50 = Vec::new();
            let mut r100 = Vec::new();
            for seed in 0..seeds {
                let (a, b) = optimise(&problem, kind, seed)?;
                r50.push(a);
                r100.push(b);
            }
            let ((m50, s50), (m100, s100)) = (mean_sd(&r50), mean_sd(&r100));
            println!(
                "{:<18} {:<8} {:>12.4} ± {:<8.4} {:>12.4} ± {:<8.4}",
                problem.name, kind, m50, s50, m100, s100
            );
            report.push(
                json!({"kind": "regret", "problem": problem.name, "sampler": kind,
                "after_50": {"mean": m50, "sd": s50}, "after_100": {"mean": m100, "sd": s100}}),
            );
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_functions_reach_their_known_minima() {
        let pi = std::f64::consts::PI;
        assert!((branin(&[pi, 2.275]) - 0.397_887).abs() < 1e-5);
        let h = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((hartmann6(&h) + 3.32237).abs() < 1e-4);
        assert!(rosenbrock(&[1.0; 5]).abs() < 1e-12);
        assert!(ackley(&[0.0; 5]).abs() < 1e-12);
        assert!((styblinski_tang(&[-2.903534; 8]) + 39.166166 * 8.0).abs() < 1e-3);
        assert!(lr_wd(&[10f64.powf(-2.7), 1e-5]).abs() < 1e-12);
        for p in problems() {
            assert!(!p.space.is_empty());
        }
    }
}
