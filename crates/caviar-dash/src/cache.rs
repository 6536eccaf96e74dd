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
    /// The view computed at `view_key`, reused while nothing changes.
    view: Option<(ViewKey, Arc<Value>)>,
}

/// What a view depends on: the finishes read.
type ViewKey = usize;

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
        let seen = cache.finished.len() as u64;
        let new = storage.finished_since(study, seen)?;
        cache.finished.extend(new);
        Ok(f(&cache.finished))
    }

    /// The study page's data, recomputed only when the study changed.
    pub fn view(
        &self,
        storage: &dyn Storage,
        record: &StudyRecord,
        lineage: Value,
        limits: &ViewLimits,
    ) -> Result<Arc<Value>, StorageError> {
        let counts = storage.counts(record.id)?;
        let entry = self.entry(record.id);
        let mut cache = entry.lock().unwrap_or_else(|p| p.into_inner());
        let seen = cache.finished.len() as u64;
        let new = storage.finished_since(record.id, seen)?;
        cache.finished.extend(new);
        // Rebuilt only when trials finished; the counts of running and waiting ones are patched
        // in, so a busy study's polls do not recompute importance every time.
        let key = cache.finished.len();
        let lineage_now = lineage.clone();
        let base = match &cache.view {
            Some((at, view)) if *at == key => view.clone(),
            _ => {
                let view = Arc::new(view::study_view(
                    record,
                    &counts,
                    &cache.finished,
                    lineage.clone(),
                    limits,
                ));
                cache.view = Some((key, view.clone()));
                view
            }
        };
        let mut view = (*base).clone();
        // Lineage changes without finishes too (a refined study, a new zoom round).
        view["lineage"] = view::with_round_bests(lineage_now, &cache.finished, record.direction);
        view["study"]["counts"] = serde_json::json!(counts);
        view["study"]["trials"] = serde_json::json!(counts.total());
        view["version"] = version_json(cache.finished.len(), &counts);
        Ok(Arc::new(view))
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
