//! `caviar set`: change parameters of a running trial (panda mode), recorded with who asked and
//! why; a Python trial applies them at its next report, a command when it prints `applied=V`.

use anyhow::Result;
use caviar_core::storage::{ControlAction, Storage, StudyRecord};
use caviar_engine::{ask_changes, ask_control, asker, LiveError, NewValue};
use serde_json::json;

use crate::BadInput;

/// Asks trial `number` of `record` for the `NAME=VALUE` changes.
pub fn set(
    storage: &dyn Storage,
    record: &StudyRecord,
    number: u64,
    assignments: &[String],
    note: Option<&str>,
    force: bool,
    as_json: bool,
) -> Result<()> {
    let changes = read_assignments(assignments)?;
    let asked = ask_changes(storage, record, number, &changes, &asker(), note, force)
        .map_err(|e| refused(e, "recording the change"))?;
    if as_json {
        let rows: Vec<_> = asked
            .iter()
            .map(|a| {
                json!({"id": a.id, "name": a.name, "current": a.current, "new": a.new, "forced": a.forced})
            })
            .collect();
        println!(
            "{}",
            json!({"study": record.name, "trial": number, "changes": rows})
        );
        return Ok(());
    }
    for a in &asked {
        let forced = if a.forced {
            " (outside its range, forced)"
        } else {
            ""
        };
        println!(
            "trial {number} of `{}`: {} {} -> {}{forced}; applied when the trial takes it (its next report, or a command's applied=VERSION)",
            record.name,
            a.name,
            a.current.short(),
            a.new.short()
        );
    }
    Ok(())
}

/// `NAME=VALUE` arguments as changes to read by each parameter's type.
fn read_assignments(assignments: &[String]) -> Result<Vec<(String, NewValue)>> {
    let mut changes: Vec<(String, NewValue)> = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        let Some((name, text)) = assignment.split_once('=') else {
            return Err(BadInput(format!("`{assignment}`: write NAME=VALUE, e.g. lr=0.02")).into());
        };
        let name = name.trim().to_string();
        if changes.iter().any(|(n, _)| *n == name) {
            return Err(BadInput(format!("`{name}` is given twice; give it once")).into());
        }
        changes.push((name, NewValue::Text(text.to_string())));
    }
    Ok(changes)
}

/// Queues a fork of trial `number`: a new trial that starts from its folder's checkpoint with
/// the `NAME=VALUE` changes.
pub fn fork(
    url: &str,
    storage: &dyn Storage,
    record: &StudyRecord,
    number: u64,
    assignments: &[String],
    note: Option<&str>,
    as_json: bool,
) -> Result<()> {
    let changes = read_assignments(assignments)?;
    // A study file's study: its trials' folders are known, so a fork of a trial that saved
    // nothing is refused here rather than failing when it starts.
    if let Some(dirs) = stored_trial_dirs(url, record) {
        let from = dirs.trial(number);
        let saved = std::fs::read_dir(&from).is_ok_and(|mut entries| entries.next().is_some());
        if !saved {
            return Err(BadInput(format!(
                "trial {number} has no checkpoint to fork from: its folder {} is missing or empty (the command saves checkpoints in $CAVIAR_TRIAL_DIR)",
                from.display()
            ))
            .into());
        }
    }
    let forked = caviar_engine::fork(storage, record, number, &changes, &asker(), note)
        .map_err(|e| refused(e, "queueing the fork"))?;
    if as_json {
        let params: serde_json::Map<String, serde_json::Value> = forked
            .params
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        println!(
            "{}",
            json!({"study": record.name, "parent": number, "number": forked.number, "params": params})
        );
        return Ok(());
    }
    let shown: Vec<String> = forked
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.short()))
        .collect();
    println!(
        "queued trial {} of `{}`, forked from trial {number}: {}; the next worker runs it first, starting from trial {number}'s checkpoint ($CAVIAR_RESTORE_FROM)",
        forked.number,
        record.name,
        shown.join(" ")
    );
    Ok(())
}

/// The trial folders of a study run from a study file (rebuilt from the stored file).
fn stored_trial_dirs(url: &str, record: &StudyRecord) -> Option<caviar_engine::TrialDirs> {
    let spec = record.spec.as_ref()?;
    let text = spec.get("text")?.as_str()?;
    let path = std::path::PathBuf::from(spec.get("file")?.as_str()?);
    let cfg = crate::config::parse(text, &path).ok()?;
    Some(cfg.trial_dirs(url))
}

/// A refusal is the asker's to fix (exit 2); a storage failure is ours.
fn refused(e: LiveError, doing: &'static str) -> anyhow::Error {
    match e {
        LiveError::Storage(s) => anyhow::Error::new(s).context(doing),
        other => BadInput(other.to_string()).into(),
    }
}

/// Asks trial `number` of `record` to pause, resume or stop.
pub fn control(
    storage: &dyn Storage,
    record: &StudyRecord,
    number: u64,
    action: ControlAction,
    note: Option<&str>,
    as_json: bool,
) -> Result<()> {
    let id = ask_control(storage, record, number, action, &asker(), note)
        .map_err(|e| refused(e, "recording the request"))?;
    if as_json {
        println!(
            "{}",
            json!({"study": record.name, "trial": number, "action": action.as_str(), "id": id})
        );
        return Ok(());
    }
    let when = match action {
        ControlAction::Pause => "it holds still within a second (a Python trial at its next report)",
        ControlAction::Resume => "it goes on within a second",
        ControlAction::Stop => {
            "it ends within a second as complete with its last reported value (a Python trial at its next should_prune)"
        }
    };
    println!(
        "trial {number} of `{}`: asked to {}; {when}",
        record.name,
        action.as_str()
    );
    Ok(())
}
