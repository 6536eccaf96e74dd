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

    /// Every trial of the study, in any state, handed to `f`: the finished ones from the cache,
    /// the running ones read now, and waiting ones (enqueued, numbered between the others) read
    /// by number. A trial that finished while this looked is counted once, finished.
    pub fn with_all_trials<T>(
        &self,
        storage: &dyn Storage,
        study: StudyId,
        f: impl FnOnce(&[&FrozenTrial]) -> T,
    ) -> Result<T, StorageError> {
        // Running first: one that finishes meanwhile is then also among the finished.
        let running = storage.running_with_params(study)?;
        let counts = storage.counts(study)?;
        let entry = self.entry(study);
        let mut cache = entry.lock().unwrap_or_else(|p| p.into_inner());
        cache.refresh(storage, study)?;
        let total = (counts.total() as usize).max(cache.finished.len() + running.len());
        let mut seen = vec![false; total + 1];
        let mut all: Vec<&FrozenTrial> = Vec::with_capacity(total);
        for t in cache.finished.iter() {
            mark(&mut seen, t.number);
            all.push(t);
        }
        let running: Vec<FrozenTrial> = running
            .into_iter()
            .filter(|t| !is_marked(&seen, t.number))
            .collect();
        for t in &running {
            mark(&mut seen, t.number);
        }
        let mut waiting = Vec::new();
        if counts.waiting > 0 {
            // Read each gap in the numbers as one range.
            let mut number = 0;
            while number < total {
                if is_marked(&seen, number as u64) {
                    number += 1;
                    continue;
                }
                let start = number;
                while number < total && !is_marked(&seen, number as u64) {
                    number += 1;
                }
                waiting.extend(
                    storage
                        .trials_numbered(study, start as u64, number as u64)?
                        .into_iter()
                        .filter(|t| t.state == caviar_core::trial::TrialState::Waiting),
                );
            }
        }
        all.extend(running.iter());
        all.extend(waiting.iter());
        Ok(f(&all))
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

fn mark(seen: &mut Vec<bool>, number: u64) {
    let at = number as usize;
    if at >= seen.len() {
        seen.resize(at + 1, false);
    }
    seen[at] = true;
}

fn is_marked(seen: &[bool], number: u64) -> bool {
    seen.get(number as usize).copied().unwrap_or(false)
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
