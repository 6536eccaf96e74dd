//! The framework's own time per trial with TPE: 5 float parameters, an objective that returns
//! at once, in memory; the fastest of several studies (the machine's load only adds time).
//!
//! `cargo run --release -p caviar-core --example tpe_cost [TRIALS] [STUDIES]`
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
                let mut s = TpeSampler::new(0);
                if let Ok(c) = std::env::var("CANDS") {
                    s.n_candidates = c.parse().unwrap();
                }
                if let Ok(c) = std::env::var("STARTUP") {
                    s.n_startup = c.parse().unwrap();
                }
                s
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
