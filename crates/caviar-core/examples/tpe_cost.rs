//! The framework's own time per trial with TPE: 5 float parameters, an objective that returns
//! at once, in memory; the fastest of several studies (the machine's load only adds time).
//!
//! `cargo run --release -p caviar-core --example tpe_cost [TRIALS] [STUDIES]`
//!
//! `TPE_CANDIDATES=1` leaves mostly the cost of building the estimators; `TPE_STARTUP=1000000`
//! leaves the framework's own (every trial random).
use caviar_core::prelude::*;
use caviar_core::sampler::TpeSampler;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let trials = args.next().flatten().unwrap_or(1000);
    let studies = args.next().flatten().unwrap_or(5);
    let mut fastest = f64::INFINITY;
    for _ in 0..studies {
        let study = Study::builder("tpe-cost")
            .sampler({
                let mut tpe = TpeSampler::new(0);
                tpe.n_candidates = setting("TPE_CANDIDATES").unwrap_or(tpe.n_candidates);
                tpe.n_startup = setting("TPE_STARTUP").unwrap_or(tpe.n_startup);
                tpe
            })
            .build()
            .expect("an in-memory study");
        let started = std::time::Instant::now();
        study
            .optimize(trials, |t| {
                let mut sum = 0.0;
                for name in ["x0", "x1", "x2", "x3", "x4"] {
                    let x = t.suggest_float(name, -5.0, 5.0, Scale::Linear)?;
                    sum += x * x;
                }
                Ok(sum)
            })
            .expect("the study runs");
        fastest = fastest.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{trials} trials, fastest of {studies}: {:.4} ms/trial",
        fastest * 1e3 / trials as f64
    );
}

/// A number from the environment, when set.
fn setting(name: &str) -> Option<usize> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a count")),
    )
}
