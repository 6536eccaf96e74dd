//! Trial folders and forks: every trial gets a folder of its own (`CAVIAR_TRIAL_DIR`) where it
//! keeps checkpoints; a fork is a new trial that starts from another trial's folder
//! (`CAVIAR_RESTORE_FROM`) with some parameters changed, recorded as that trial's child; a retry
//! of a trial lost with its worker starts from the lost trial's folder the same way.
//!
//! ```
//! use caviar_engine::TrialDirs;
//! let db = std::path::Path::new("runs/caviar.db");
//! let dirs = TrialDirs::for_study("mnist-lr", Some(db), None, ".".as_ref());
//! assert_eq!(dirs.trial(7), std::path::Path::new("runs/caviar-trials/mnist-lr/trial-7"));
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use caviar_core::space::ParamValue;
use caviar_core::storage::{AttrOwner, QueuedParam, Storage, StorageError, StudyRecord};
use caviar_core::trial::{best_trials, Direction, FrozenTrial, TrialId, TrialState};

use crate::live::{checked_values, LiveError, NewValue};

/// The user attribute of a forked trial that names the trial it started from.
pub const FORKED_FROM: &str = "forked_from";

/// Where the trials of one study keep their folders: `ROOT/trial-N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialDirs {
    root: PathBuf,
}

impl TrialDirs {
    /// The folders of study `study`: under `explicit` when the study file sets `trial_dir`;
    /// otherwise in `caviar-trials/STUDY` next to the SQLite file `database`, or, for a storage
    /// without a file (PostgreSQL, memory), under `fallback` (the study file's folder).
    /// Workers on several machines share forks only when the folder is on a shared file system.
    pub fn for_study(
        study: &str,
        database: Option<&Path>,
        explicit: Option<PathBuf>,
        fallback: &Path,
    ) -> Self {
        if let Some(root) = explicit {
            return TrialDirs { root };
        }
        let near = match database {
            Some(db) => db
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            None => fallback.to_path_buf(),
        };
        TrialDirs {
            root: near.join("caviar-trials").join(study),
        }
    }

    /// The study's folder, which holds one folder per trial.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of trial `number` (it may not exist).
    pub fn trial(&self, number: u64) -> PathBuf {
        self.root.join(format!("trial-{number}"))
    }

    /// Creates the folder of trial `number` and returns it as an absolute path (commands run
    /// in their own folder).
    pub fn prepare(&self, number: u64) -> std::io::Result<PathBuf> {
        let dir = self.trial(number);
        std::fs::create_dir_all(&dir)?;
        std::path::absolute(dir)
    }

    /// The folders trial `id` (number `number`) runs with: its own (created) and, for a fork,
    /// the folder of the trial it starts from. Errors say why the trial cannot start.
    pub fn folders(
        &self,
        storage: &dyn Storage,
        id: TrialId,
        number: u64,
    ) -> Result<(PathBuf, Option<PathBuf>), String> {
        let own = self.prepare(number).map_err(|e| {
            format!(
                "cannot create the trial folder {}: {e}",
                self.trial(number).display()
            )
        })?;
        let parent = forked_from(storage, id)
            .map_err(|e| format!("cannot read which trial this one was forked from: {e}"))?;
        let Some(parent) = parent else {
            // A retry of a trial lost with its worker goes on from what that trial saved, when
            // its folder is here and holds something.
            let lost = retry_of(storage, id)
                .map_err(|e| format!("cannot read which trial this one retries: {e}"))?;
            let saved = lost.map(|n| self.trial(n)).filter(|dir| {
                std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
            });
            return match saved {
                Some(dir) => Ok((
                    own,
                    Some(std::path::absolute(dir).map_err(|e| e.to_string())?),
                )),
                None => Ok((own, None)),
            };
        };
        let from = self.trial(parent);
        if !from.is_dir() {
            return Err(format!(
                "forked from trial {parent}, whose folder {} is not here (removed by keep_checkpoints, or on another machine's disk)",
                from.display()
            ));
        }
        let from = std::path::absolute(from).map_err(|e| e.to_string())?;
        Ok((own, Some(from)))
    }

    /// The environment a command trial runs with: `CAVIAR_TRIAL_DIR`, its own folder, and for a
    /// fork `CAVIAR_RESTORE_FROM`, the folder of the trial it starts from.
    pub fn trial_env(
        &self,
        storage: &dyn Storage,
        id: TrialId,
        number: u64,
    ) -> Result<Vec<(String, String)>, String> {
        let (own, from) = self.folders(storage, id, number)?;
        let mut env = vec![("CAVIAR_TRIAL_DIR".to_string(), own.display().to_string())];
        if let Some(from) = from {
            env.push((
                "CAVIAR_RESTORE_FROM".to_string(),
                from.display().to_string(),
            ));
        }
        Ok(env)
    }

    /// Removes the folders of finished trials outside the best `keep` complete ones (with
    /// several objectives, outside the Pareto front). Folders of running and waiting trials
    /// stay, and so do those a running or waiting trial was forked from (it may not have
    /// restored yet). Returns the trial numbers whose folders went.
    pub fn prune(
        &self,
        trials: &[FrozenTrial],
        directions: &[Direction],
        keep: usize,
        forked_from: &BTreeSet<u64>,
    ) -> std::io::Result<Vec<u64>> {
        let best: BTreeSet<u64> = match directions {
            [direction] => best_trials(trials, *direction, keep),
            several => caviar_core::pareto::pareto_front(trials, several),
        }
        .iter()
        .map(|t| t.number)
        .collect();
        let mut removed = Vec::new();
        for t in trials {
            let unfinished = matches!(t.state, TrialState::Running | TrialState::Waiting);
            if unfinished || best.contains(&t.number) || forked_from.contains(&t.number) {
                continue;
            }
            let dir = self.trial(t.number);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
                removed.push(t.number);
            }
        }
        Ok(removed)
    }
}

/// The trial that trial `id` was forked from, when it is a fork.
pub fn forked_from(storage: &dyn Storage, id: TrialId) -> Result<Option<u64>, StorageError> {
    Ok(storage
        .user_attrs(AttrOwner::Trial(id))?
        .get(FORKED_FROM)
        .and_then(serde_json::Value::as_u64))
}

/// The lost trial that trial `id` retries, when it is a retry.
fn retry_of(storage: &dyn Storage, id: TrialId) -> Result<Option<u64>, StorageError> {
    Ok(storage
        .user_attrs(AttrOwner::Trial(id))?
        .get(caviar_core::study::RETRY_OF)
        .and_then(serde_json::Value::as_u64))
}

/// The trials that running or waiting trials of `trials` were forked from or retry (their
/// folders must stay).
pub fn pending_fork_sources(
    storage: &dyn Storage,
    trials: &[FrozenTrial],
) -> Result<BTreeSet<u64>, StorageError> {
    let mut sources = BTreeSet::new();
    for t in trials {
        if matches!(t.state, TrialState::Running | TrialState::Waiting) {
            if let Some(parent) = forked_from(storage, t.id)? {
                sources.insert(parent);
            }
            if let Some(lost) = retry_of(storage, t.id)? {
                sources.insert(lost);
            }
        }
    }
    Ok(sources)
}

/// A fork as queued.
#[derive(Clone, Debug, PartialEq)]
pub struct Forked {
    /// The new trial's number.
    pub number: u64,
    /// Its parameters: the parent's, with the changes.
    pub params: Vec<(String, ParamValue)>,
}

/// Queues a new trial of `study` that starts from trial `parent`'s folder with the parent's
/// parameters, `changes` applied (each checked against its distribution). The new trial is
/// recorded as the parent's child (user attribute [`FORKED_FROM`], with who asked and the
/// note); the next worker runs it first, with `CAVIAR_RESTORE_FROM` set to the parent's folder.
pub fn fork(
    storage: &dyn Storage,
    study: &StudyRecord,
    parent: u64,
    changes: &[(String, NewValue)],
    who: &str,
    note: Option<&str>,
) -> Result<Forked, LiveError> {
    // A fork starts from the parent's weights, so what shapes the network stays.
    crate::live::refuse_structural(study, changes)?;
    let trial = storage
        .trials_numbered(study.id, parent, parent + 1)?
        .into_iter()
        .next()
        .ok_or_else(|| LiveError::NoSuchTrial {
            study: study.name.clone(),
            number: parent,
        })?;
    if trial.state == TrialState::Waiting {
        return Err(LiveError::Control(format!(
            "trial {parent} has not started, so it has no checkpoint to fork from"
        )));
    }
    let mut values = trial.params.clone();
    for (name, _, new, _) in checked_values(&trial, changes, false)? {
        values.insert(name, new);
    }
    let queued: Vec<QueuedParam> = values
        .iter()
        .filter_map(|(name, value)| {
            let dist = trial.distributions.get(name)?;
            Some((name.clone(), dist.clone(), value.clone()))
        })
        .collect();
    let mut attrs = vec![
        (FORKED_FROM.to_string(), serde_json::json!(parent)),
        ("forked_by".to_string(), serde_json::json!(who)),
    ];
    if let Some(note) = note {
        attrs.push(("fork_note".to_string(), serde_json::json!(note)));
    }
    // Written with the trial, so a worker that takes it at once knows where it starts.
    let new = storage.enqueue_trial_with_attrs(study.id, &queued, 0, &attrs)?;
    Ok(Forked {
        number: new.number,
        params: values.into_iter().collect(),
    })
}
