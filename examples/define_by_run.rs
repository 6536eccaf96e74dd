//! The Rust API in the vocabulary of Optuna: define-by-run suggestions, reports, ask/tell.
//!
//!     cargo run --example define_by_run
//!
//! The objective is a stand-in for a training run whose validation loss depends on the
//! learning rate (log scale), Adam's beta1 (1 - beta1 on a log scale), the width and the
//! activation. The study is stored in SQLite, so `caviar trials define-by-run
//! --storage sqlite:define_by_run.db` lists it afterwards.

use std::sync::Arc;

use caviar_core::prelude::*;
use caviar_store::SqliteStorage;

fn train(lr: f64, beta1: f64, units: i64, activation: &str, epoch: u64) -> f64 {
    let decades_off = lr.log10() + 2.5;
    let beta_off = (1.0 - beta1).log10() + 2.0;
    let penalty = if activation == "tanh" { 0.05 } else { 0.0 };
    let floor = 0.05
        + 0.1 * decades_off.powi(2)
        + 0.03 * beta_off.powi(2)
        + 0.0001 * (units as f64 - 90.0).powi(2) / 10.0
        + penalty;
    floor + (-(epoch as f64) / 2.0).exp()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open("define_by_run.db")?);
    let study = Study::builder("define-by-run")
        .direction(Direction::Minimize)
        .metric("val_loss")
        .sampler(RandomSampler::new(0))
        .storage(storage)
        .load_if_exists(true)
        .build()?;

    // optimize: the study asks, the closure suggests and reports, the study tells.
    study.optimize(30, |trial| {
        let lr = trial.suggest_float("lr", 1e-5, 1.0, Scale::Log)?;
        let beta1 = trial.suggest_float("beta1", 0.9, 0.999, Scale::ReverseLog)?;
        let units = trial.suggest_int("units", 50, 100, Scale::Linear)?;
        let activation = trial.suggest_categorical("activation", &["relu", "tanh"])?;
        let mut loss = f64::NAN;
        for epoch in 1..=5 {
            loss = train(lr, beta1, units, activation, epoch);
            trial.report(epoch, loss)?;
        }
        Ok(loss)
    })?;

    // ask / tell: the same loop written out, for code that owns its training loop.
    for _ in 0..5 {
        let mut trial = study.ask()?;
        let lr = trial.suggest_float("lr", 1e-5, 1.0, Scale::Log)?;
        let loss = train(lr, 0.99, 90, "relu", 5);
        trial.report(5, loss)?;
        study.tell(trial, Outcome::Complete(loss))?;
    }

    for (rank, t) in study.best_trials(3)?.iter().enumerate() {
        let params: Vec<String> = t
            .params
            .iter()
            .map(|(k, v)| format!("{k}:{}", v.short()))
            .collect();
        println!(
            "Best-{} (val_loss:{:.4}) | {}",
            rank + 1,
            t.value.unwrap(),
            params.join(", ")
        );
    }
    Ok(())
}
