//! Free-text notes on studies and trials: the user attribute `note`, so Python's
//! `study.set_user_attr("note", ...)`, the dashboard and the CLI read and write the same text.
//!
//! ```
//! use caviar_core::prelude::*;
//! use caviar_core::storage::AttrOwner;
//! use caviar_engine::notes;
//! let study = Study::builder("n").build().unwrap();
//! study.optimize(3, |t| t.suggest_float("x", 0.0, 1.0, Scale::Linear)).unwrap();
//! let storage = study.storage().clone();
//! let id = study.record().id;
//! notes::set_note(&*storage, AttrOwner::Study(id), "lr sweep, data v2").unwrap();
//! let second = study.trials().unwrap()[1].id;
//! notes::set_note(&*storage, AttrOwner::Trial(second), "diverged at epoch 3?").unwrap();
//! let all = notes::study_notes(&*storage, id).unwrap();
//! assert_eq!(all.study.as_deref(), Some("lr sweep, data v2"));
//! assert_eq!(all.trials, [(1, "diverged at epoch 3?".to_string())]);
//! ```

use caviar_core::storage::{AttrOwner, Storage, StorageError};
use caviar_core::trial::StudyId;

/// The user attribute that holds a note.
pub const NOTE_KEY: &str = "note";

/// A study's note and its trials' notes, by trial number.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Notes {
    /// The study's own note.
    pub study: Option<String>,
    /// `(trial number, note)`, by number.
    pub trials: Vec<(u64, String)>,
}

/// Writes (or, with empty text, clears to "") the note of a study or trial.
pub fn set_note(storage: &dyn Storage, owner: AttrOwner, text: &str) -> Result<(), StorageError> {
    storage.set_user_attr(owner, NOTE_KEY, &serde_json::json!(text.trim_end()))
}

fn text_of(value: Option<&serde_json::Value>) -> Option<String> {
    let text = match value? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The notes of a study and of its trials (empty notes left out).
pub fn study_notes(storage: &dyn Storage, study: StudyId) -> Result<Notes, StorageError> {
    let own = storage.user_attrs(AttrOwner::Study(study))?;
    let mut trials = Vec::new();
    for (id, attrs) in storage.trial_user_attrs(study)? {
        if let Some(text) = text_of(attrs.get(NOTE_KEY)) {
            trials.push((storage.trial(id)?.number, text));
        }
    }
    trials.sort();
    Ok(Notes {
        study: text_of(own.get(NOTE_KEY)),
        trials,
    })
}
