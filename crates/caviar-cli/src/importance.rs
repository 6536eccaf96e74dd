//! `caviar importance`: which hyperparameters mattered, with error bars (fANOVA by default).

use std::io::Write;

use anyhow::{Context, Result};
use caviar_core::importance::{importance, ImportanceError, ImportanceMethod, ImportanceOptions};
use caviar_core::storage::{Storage, StudyRecord};

use crate::BadInput;

/// Options of `caviar importance`.
#[derive(clap::Args)]
pub struct ImportanceArgs {
    /// Study name.
    pub study: String,
    /// The estimator: `fanova` (variance of a random forest over the whole space, right
    /// whichever sampler chose the trials) or `ped-anova` (where the best trials sit against
    /// all trials).
    #[arg(long, default_value = "fanova", value_parser = ImportanceMethod::NAMES)]
    pub method: String,
    /// fANOVA: trees of the forest, whose spread gives the error bars.
    #[arg(long, default_value_t = 64)]
    pub trees: usize,
    /// PED-ANOVA: share of complete trials that count as the best.
    #[arg(long, default_value_t = 0.1)]
    pub top: f64,
    /// PED-ANOVA: bootstrap resamples for the error bars.
    #[arg(long, default_value_t = 100)]
    pub bootstrap: usize,
    /// Seed of the forest or the resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON: [{"name", "importance", "std", "low", "high", "divergence",
    /// "variance_fraction", "trials"}].
    #[arg(long)]
    pub json: bool,
}

/// Prints the parameters of `record` by importance, most important first.
pub fn print(storage: &dyn Storage, record: &StudyRecord, args: &ImportanceArgs) -> Result<()> {
    // Complete trials without their curves: the ranking needs parameters and values only.
    let trials = storage
        .trials_for_analysis(record.id)
        .context("reading trials")?;
    let method: ImportanceMethod = args
        .method
        .parse()
        .map_err(|e| BadInput(format!("--method: {e}")))?;
    if method == ImportanceMethod::Fanova && args.trees == 0 {
        return Err(
            BadInput("--trees: the forest needs at least one tree (e.g. 64)".into()).into(),
        );
    }
    let options = ImportanceOptions {
        method,
        top_fraction: args.top,
        bootstrap: args.bootstrap,
        trees: args.trees,
        seed: args.seed,
    };
    let ranked = importance(&trials, record.direction, &options).map_err(|e| match e {
        ImportanceError::BadOption(msg) if msg.starts_with("top fraction") => {
            BadInput(format!("--top: {msg}"))
        }
        ImportanceError::BadOption(msg) => BadInput(msg),
        other => BadInput(format!("study `{}`: {other}", record.name)),
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&ranked)?)?;
        return Ok(());
    }
    let width = ranked
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(9);
    match method {
        ImportanceMethod::Fanova => writeln!(
            out,
            "importance of each parameter in study `{}` (fANOVA: variance each explains alone, over a {}-tree forest in the scaled space; interval over the trees)",
            record.name, args.trees
        )?,
        ImportanceMethod::PedAnova => writeln!(
            out,
            "importance of each parameter in study `{}` (PED-ANOVA, best {}% vs all, scaled space; {} bootstrap resamples)",
            record.name,
            args.top * 100.0,
            args.bootstrap
        )?,
    }
    writeln!(out, "{:<width$}  share   ± std   90% interval", "parameter")?;
    let most = ranked.iter().map(|r| r.trials).max().unwrap_or(0);
    for r in &ranked {
        let bar = "#".repeat((r.importance * 40.0).round() as usize);
        // A conditional parameter is set in fewer trials: say how many.
        let among = if r.trials < most {
            format!("  (in {} of {most} trials)", r.trials)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<width$}  {:>5.1}%  {:>5.1}   {:>5.1}–{:<5.1}  {bar}{among}",
            r.name,
            100.0 * r.importance,
            100.0 * r.std,
            100.0 * r.low,
            100.0 * r.high,
        )?;
    }
    Ok(())
}
