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
