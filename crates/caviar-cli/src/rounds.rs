//! `caviar rounds`: the lineage of a zoom study, round by round: the box each round searched
//! (as stored when the round began) and the best trial it found.

use std::io::Write;

use anyhow::{Context, Result};
use caviar_core::sampler::ZoomBox;
use caviar_core::space::ParamValue;
use caviar_core::storage::{Storage, StudyRecord};
use caviar_core::trial::best_trials;
use serde_json::{json, Value};

use crate::output::metric_name;

/// One stored round with the best trial among its trials.
pub struct Round {
    pub stored: Value,
    pub best: Option<(u64, f64)>,
}

/// The study's zoom rounds, in order (empty when its sampler is not zoom).
pub fn load(storage: &dyn Storage, record: &StudyRecord) -> Result<Vec<Round>> {
    let attrs = storage
        .study_attrs(record.id)
        .context("reading the study's attributes")?;
    let trials = storage.trials(record.id).context("reading the trials")?;
    let mut rounds = Vec::new();
    for (key, value) in attrs {
        if !key.starts_with("zoom.round.") || ZoomBox::from_json(&value).is_none() {
            continue;
        }
        let first = value["first_trial"].as_u64().unwrap_or(0);
        let size = value["trials"].as_u64().unwrap_or(u64::MAX);
        let members: Vec<_> = trials
            .iter()
            .filter(|t| t.number >= first && t.number - first < size)
            .cloned()
            .collect();
        let best = best_trials(&members, record.direction, 1)
            .first()
            .and_then(|t| Some((t.number, t.value?)));
        rounds.push(Round {
            stored: value,
            best,
        });
    }
    Ok(rounds)
}

fn short(v: &Value) -> String {
    serde_json::from_value::<ParamValue>(v.clone())
        .map(|p| p.short())
        .unwrap_or_else(|_| v.to_string())
}

/// One line per round: `round 2 (trials 40-59): lr: 0.001 .. 0.01, ... | best acc 0.91 (trial 47)`.
pub fn lines(rounds: &[Round], metric: &str) -> Vec<String> {
    rounds
        .iter()
        .map(|r| {
            let v = &r.stored;
            let first = v["first_trial"].as_u64().unwrap_or(0);
            let last = first + v["trials"].as_u64().unwrap_or(1).max(1) - 1;
            let ranges: Vec<String> = v["range"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(name, pair)| {
                            format!("{name}: {} .. {}", short(&pair[0]), short(&pair[1]))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let best = match r.best {
                Some((n, value)) => format!(" | best {metric} {value:.4} (trial {n})"),
                None => String::new(),
            };
            format!(
                "round {} (trials {first}-{last}): {}{best}",
                v["round"],
                ranges.join(", ")
            )
        })
        .collect()
}

pub fn print(storage: &dyn Storage, record: &StudyRecord, as_json: bool) -> Result<()> {
    let rounds = load(storage, record)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let rows: Vec<Value> = rounds
            .iter()
            .map(|r| {
                let mut row = r.stored.clone();
                row["best"] = match r.best {
                    Some((number, value)) => json!({"number": number, "value": value}),
                    None => Value::Null,
                };
                row
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    if rounds.is_empty() {
        eprintln!(
            "study `{}` has no zoom rounds: its sampler is not kind = \"zoom\" (see `caviar narrow` for ranges)",
            record.name
        );
    }
    for line in lines(&rounds, metric_name(record)) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
