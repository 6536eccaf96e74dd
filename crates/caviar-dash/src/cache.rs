//! Per-study copies of the finished trials, kept up to date by reading only what finished
//! since the last look, so a page of a 100,000-trial study does not reread the study.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use caviar_core::storage::{Storage, StorageError, StudyRecord, TrialCounts};
use caviar_core::trial::{FrozenTrial, StudyId};
use serde_json::Value;

use crate::view::{self, ViewLimits};

/// What is known of one study.
#[derive(Default)]
struct StudyCache {
    finished: Vec<FrozenTrial>,
    /// The view built when this many trials had finished.
    view: Option<(usize, Arc<Value>)>,
}

/// Caches of every study looked at.
#[derive(Default)]
pub struct Caches {
    studies: Mutex<HashMap<StudyId, Arc<Mutex<StudyCache>>>>,
}

impl Caches {
    fn entry(&self, study: StudyId) -> Arc<Mutex<StudyCache>> {
        self.studies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(study)
            .or_default()
            .clone()
    }

    /// Brings the study's finished trials up to date and hands them to `f`.
    pub fn with_finished<T>(
        &self,
        storage: &dyn Storage,
        study: StudyId,
        f: impl FnOnce(&[FrozenTrial]) -> T,
    ) -> Result<T, StorageError> {
        let entry = self.entry(study);
        let mut cache = entry.lock().unwrap_or_else(|p| p.into_inner());
        cache.refresh(storage, study)?;
        Ok(f(&cache.finished))
    }

    /// The study page's data with `lineage`. The costly part is rebuilt only when trials
    /// finished; the counts of running and waiting trials and the lineage (a refined study, a
    /// new zoom round) change without finishes, so they are filled in on every call.
    pub fn view(
        &self,
        storage: &dyn Storage,
        record: &StudyRecord,
        lineage: Value,
        limits: &ViewLimits,
    ) -> Result<Value, StorageError> {
        let counts = storage.counts(record.id)?;
        let entry = self.entry(record.id);
        let mut cache = entry.lock().unwrap_or_else(|p| p.into_inner());
        cache.refresh(storage, record.id)?;
        let key = cache.finished.len();
        let base = match &cache.view {
            Some((at, view)) if *at == key => view.clone(),
            _ => {
                let view = Arc::new(view::study_view(record, &counts, &cache.finished, limits));
                cache.view = Some((key, view.clone()));
                view
            }
        };
        let mut view = (*base).clone();
        view["lineage"] = view::with_round_bests(lineage, &cache.finished, record.direction);
        view["study"]["counts"] = serde_json::json!(counts);
        view["study"]["trials"] = serde_json::json!(counts.total());
        view["version"] = version_json(key, &counts);
        Ok(view)
    }
}

impl StudyCache {
    /// Reads what finished since the last look.
    fn refresh(&mut self, storage: &dyn Storage, study: StudyId) -> Result<(), StorageError> {
        let new = storage.finished_since(study, self.finished.len() as u64)?;
        self.finished.extend(new);
        Ok(())
    }
}

/// What a page polls to learn whether to fetch the study again.
pub fn version_json(finished: usize, counts: &TrialCounts) -> Value {
    serde_json::json!({
        "finished": finished,
        "running": counts.running,
        "waiting": counts.waiting,
        "total": counts.total(),
    })
}
