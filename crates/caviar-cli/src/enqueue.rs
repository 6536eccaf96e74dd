//! `caviar enqueue`: queue trials with chosen parameters (a known good setting, a colleague's
//! guess), run by the next worker before any sampled point.

use anyhow::{Context, Result};
use caviar_core::storage::{QueuedParam, Storage, StudyRecord};
use serde_json::json;

use crate::BadInput;

/// Queues one trial of `record` with the `NAME=VALUE` assignments; parameters left out are
/// sampled when it runs.
pub fn enqueue(
    storage: &dyn Storage,
    record: &StudyRecord,
    assignments: &[String],
    json: bool,
) -> Result<()> {
    let space = record.space().ok_or_else(|| {
        BadInput(format!(
            "study `{}` stores no search space (it was made through the library, not a study file); enqueue from Rust with Study::enqueue",
            record.name
        ))
    })?;
    let names: Vec<&str> = space.iter().map(|(name, _)| name.as_str()).collect();
    let mut params: Vec<QueuedParam> = Vec::new();
    for assignment in assignments {
        let Some((name, text)) = assignment.split_once('=') else {
            return Err(BadInput(format!(
                "`{assignment}`: write NAME=VALUE, e.g. {}=0.01",
                names.first().unwrap_or(&"lr")
            ))
            .into());
        };
        let name = name.trim();
        if params.iter().any(|(n, _, _)| n == name) {
            return Err(BadInput(format!("`{name}` is given twice; give it once")).into());
        }
        let param = space
            .parse_assignment(name, text)
            .map_err(|e| BadInput(format!("study `{}`: {e}", record.name)))?;
        params.push(param);
    }
    // A conditional parameter given with parents that rule it out would never be read.
    let given: std::collections::BTreeMap<String, caviar_core::space::ParamValue> = params
        .iter()
        .map(|(name, _, value)| (name.clone(), value.clone()))
        .collect();
    for (name, _, _) in &params {
        let conditions = space.conditions(name);
        let decided = conditions.iter().all(|c| given.contains_key(&c.parent));
        if decided && !space.is_active(name, &given) {
            let rule: Vec<String> = conditions
                .iter()
                .map(|c| {
                    let allowed: Vec<String> = c.allowed.iter().map(|v| v.to_string()).collect();
                    format!("{} is one of [{}]", c.parent, allowed.join(", "))
                })
                .collect();
            return Err(BadInput(format!(
                "`{name}` exists only when {}; leave it out or change its parent",
                rule.join(" and ")
            ))
            .into());
        }
    }
    let number = storage
        .enqueue_trial(record.id, &params, 0)
        .context("queueing the trial")?
        .number;
    let shown: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(name, _, value)| (name.clone(), json!(value)))
        .collect();
    if json {
        println!("{}", json!({"number": number, "params": shown}));
    } else {
        let listed: Vec<String> = params
            .iter()
            .map(|(name, _, value)| format!("{name}={}", value.short()))
            .collect();
        let sampled: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !params.iter().any(|(p, _, _)| p == n))
            // Nor those the given parents rule out.
            .filter(|n| {
                let conditions = space.conditions(n);
                !conditions.iter().all(|c| given.contains_key(&c.parent))
                    || space.is_active(n, &given)
            })
            .collect();
        let rest = if sampled.is_empty() {
            String::new()
        } else {
            format!("; sampled when it runs: {}", sampled.join(", "))
        };
        println!(
            "queued trial {number} of study `{}`: {}{rest}; the next worker runs it first (queued trials run even beyond the study's total)",
            record.name,
            listed.join(", ")
        );
    }
    Ok(())
}
