//! `caviar run`: create or resume a study file's study and run it to its total.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use caviar_core::sampler::Sampler;
use caviar_core::study::Outcome;
use caviar_core::trial::{best_trials, TrialState};
use caviar_run::{run_command_live, CommandSpec, Control, TrialInput, WorkerId};
use serde_json::json;

use crate::builtin;
use crate::config;
use crate::driver::{self, Progress, StudySetup};
use crate::output::{best_line, metric_name, trial_json};
use crate::{BadInput, EXIT_INTERRUPTED};

fn build_sampler(study: &config::Study) -> Result<Arc<dyn Sampler>> {
    study
        .file
        .sampler
        .build(&study.space, &study.grid_values)
        .map_err(|e| BadInput(format!("{}: {e}", study.path.display())).into())
}

/// Options shared by `caviar run` and `caviar worker`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunOptions {
    /// Total number of trials (default: the study file's `trials`).
    #[arg(long)]
    pub trials: Option<u64>,
    /// Trials run at once by this process (default: the study file's `workers`).
    #[arg(long)]
    pub workers: Option<u64>,
    /// Print a JSON summary on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Start no new trial after this long ("90s", "10m", "2h"); running trials finish.
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    pub time_budget: Option<std::time::Duration>,
    /// Warm-start TPE or GP from an earlier study's complete trials that fit the space
    /// (repeat for several; added to the study file's `warm_start`).
    #[arg(long = "warm-start", value_name = "STUDY")]
    pub warm_start: Vec<String>,
}

pub fn run(url: &str, path: &Path, options: &RunOptions) -> Result<u8> {
    let cfg = config::load(path)?;
    let origin = path.display().to_string();
    run_config(url, cfg, &origin, options)
}

/// `caviar worker`: joins a stored study from any machine, rebuilding it from the study file
/// stored with it, and runs trials until the study holds its total.
pub fn worker(url: &str, name: &str, options: &RunOptions) -> Result<u8> {
    let storage = crate::open(url)?;
    let record = crate::find_study(&*storage, name, url)?;
    let (path, text) = stored_file(&record)?;
    let cfg = config::parse(&text, &path)?;
    drop(storage);
    let origin = format!("study `{name}` (file {} as stored)", path.display());
    run_config(url, cfg, &origin, options)
}

/// The study file stored with a study: its path when it was run, and its text.
pub(crate) fn stored_file(
    record: &caviar_core::storage::StudyRecord,
) -> Result<(std::path::PathBuf, String)> {
    let name = &record.name;
    let spec = record.spec.clone().unwrap_or_default();
    let path = std::path::PathBuf::from(spec["file"].as_str().unwrap_or("study.toml"));
    let text = match spec["text"].as_str() {
        Some(text) => text.to_string(),
        None if spec.get("demo").is_some() => {
            return Err(BadInput(format!(
                "study `{name}` is a demo study; join it with `caviar demo --study {name}`"
            ))
            .into())
        }
        // Studies stored before the file text was: read the file where it was.
        None => std::fs::read_to_string(&path).map_err(|e| {
            BadInput(format!(
                "study `{name}` does not hold its study file and {} cannot be read ({e}); run `caviar run FILE` instead",
                path.display()
            ))
        })?,
    };
    Ok((path, text))
}

/// Stores what the study's first run runs on, for `caviar retest`, and
/// the study file's `user_attrs`; a failure to do so is only warned about.
fn record_fingerprint(
    storage: &dyn caviar_core::storage::Storage,
    record: &caviar_core::storage::StudyRecord,
    cfg: &config::Study,
) {
    use caviar_engine::fingerprint::{FileState, FINGERPRINT};
    let fingerprint = cfg.fingerprint();
    for (name, state) in &fingerprint.files {
        if let FileState::Missing { reason } = state {
            eprintln!(
                "warning: {}: fingerprint names {name}, which cannot be read ({reason})",
                cfg.key_location("fingerprint")
            );
        }
    }
    let value = serde_json::to_value(&fingerprint).unwrap_or_default();
    let owner = caviar_core::storage::AttrOwner::Study(record.id);
    // What the study's first run ran on: a resume on changed code does not hide the change
    // from a later re-test.
    let recorded = storage
        .user_attrs(owner)
        .map(|attrs| attrs.contains_key(FINGERPRINT))
        .unwrap_or(false);
    if !recorded {
        if let Err(e) = storage.set_user_attr(owner, FINGERPRINT, &value) {
            eprintln!("warning: could not store the study's fingerprint: {e}");
        }
    }
    let reserved = [
        FINGERPRINT,
        caviar_engine::warm_start::WARM_START,
        caviar_engine::retest::RETEST_OF_STUDY,
        caviar_engine::retest::RETEST_PLAN,
    ];
    for (key, value) in &cfg.file.user_attrs {
        if reserved.contains(&key.as_str()) {
            eprintln!(
                "warning: {}: user_attrs.{key} is caviar's own attribute; choose another key",
                cfg.key_location("user_attrs")
            );
            continue;
        }
        let value = serde_json::to_value(value).unwrap_or_default();
        if let Err(e) = storage.set_user_attr(owner, key, &value) {
            eprintln!("warning: could not store the study's attribute {key}: {e}");
        }
    }
}

/// A study created before `auto` became the default keeps the sampler it was created with
/// when its file still names none (nor any option but the seed): the kind stored with it, if
/// that differs.
fn stored_default_kind(
    storage: &Arc<dyn caviar_core::storage::Storage>,
    cfg: &config::Study,
) -> Result<Option<String>> {
    // Only a file that says nothing of its sampler but the seed: options written for the new
    // default must not be handed to another kind.
    let says_more = toml::from_str::<toml::Table>(&cfg.text)
        .ok()
        .and_then(|t| t.get("sampler")?.as_table().cloned())
        .is_some_and(|table| table.keys().any(|key| key != "seed"));
    if says_more {
        return Ok(None);
    }
    let Some(record) = storage.study(&cfg.file.name).context("reading the study")? else {
        return Ok(None);
    };
    let stored = record
        .spec
        .as_ref()
        .and_then(|s| s["sampler"]["kind"].as_str())
        .map(String::from);
    Ok(stored.filter(|kind| *kind != cfg.file.sampler.kind))
}

/// Creates the study a parsed study file describes, or opens it (checking that it matches).
pub(crate) fn open_config_study(
    storage: &Arc<dyn caviar_core::storage::Storage>,
    cfg: &config::Study,
    origin: &str,
    url: &str,
    extra_warm_start: &[String],
) -> Result<caviar_core::study::Study> {
    if let Some(parent) = &cfg.file.parent {
        if storage
            .study(parent)
            .context("reading the parent study")?
            .is_none()
        {
            return Err(BadInput(format!(
                "{}: parent = \"{parent}\" names no study in {url}; run that study first, fix the name, or remove `parent`",
                cfg.key_location("parent")
            ))
            .into());
        }
    }
    let me = WorkerId::current();
    let mut warm_start = cfg.file.warm_start.clone();
    warm_start.extend(
        extra_warm_start
            .iter()
            .filter(|name| !cfg.file.warm_start.contains(name))
            .cloned(),
    );
    let kept;
    let cfg = match stored_default_kind(storage, cfg)? {
        Some(kind) => {
            eprintln!(
                "study `{}` keeps [sampler] kind = \"{kind}\", stored with it; the file names no kind (write kind = \"{}\" for the new default)",
                cfg.file.name, cfg.file.sampler.kind
            );
            let mut old = cfg.clone();
            old.file.sampler.kind = kind;
            kept = old;
            &kept
        }
        None => cfg,
    };
    let sampler = build_sampler(cfg)?;
    let pruner = cfg
        .file
        .pruner
        .build()
        .map_err(|e| BadInput(format!("{origin}: {e}")))?;
    driver::open_study(
        storage,
        StudySetup {
            name: &cfg.file.name,
            direction: cfg.direction,
            metric: &cfg.file.metric,
            space: &cfg.space,
            spec: cfg.spec_json(),
            sampler,
            pruner,
            origin,
            url,
            parent: cfg.file.parent.clone(),
            warm_start: &warm_start,
            enqueue_best: cfg.file.enqueue_best,
        },
        &me,
    )
}

pub(crate) fn run_config(
    url: &str,
    cfg: config::Study,
    origin: &str,
    options: &RunOptions,
) -> Result<u8> {
    let RunOptions {
        trials,
        workers,
        json: as_json,
        time_budget,
        warm_start,
    } = options.clone();
    if let Some(w) = workers.filter(|w| !(1..=config::MAX_WORKERS).contains(w)) {
        return Err(BadInput(format!(
            "--workers {w} is outside 1 to {}; start more `caviar worker` processes to go wider",
            config::MAX_WORKERS
        ))
        .into());
    }
    let total = trials.unwrap_or(cfg.file.trials);
    let asked_workers = workers.unwrap_or(cfg.file.workers) as usize;
    let slots = match &cfg.file.resources {
        Some(resources) => resources
            .slots()
            .map_err(|e| BadInput(format!("{}: {e}", cfg.key_location("resources"))))?,
        None => caviar_engine::resources::Slots::default(),
    };
    if let Some(note) = &slots.note {
        eprintln!("{note}");
    }
    let workers = slots.workers(asked_workers);
    if workers < asked_workers {
        eprintln!(
            "running {workers} trials at once, one per slot of {} GPU(s) (workers = {asked_workers} asked)",
            cfg.file.resources.as_ref().map_or(1, |r| r.gpus_per_trial)
        );
    }
    let storage = crate::open(url)?;
    let study = open_config_study(&storage, &cfg, origin, url, &warm_start)?;
    record_fingerprint(&*storage, study.record(), &cfg);
    let me = WorkerId::current();
    let recovery = driver::Recovery {
        retries: cfg.file.retries,
        heartbeat: cfg.heartbeat,
    };
    let before = driver::recover(&study, &me, total, recovery)?;
    let cancel = driver::cancel_on_ctrl_c()?;

    let progress = Progress::new(before.total(), total, metric_name(study.record()), false);
    let dirs = cfg.trial_dirs(url);
    let started = Instant::now();
    let deadline = time_budget.map(|t| started + t);
    let mut mnist_split = None;
    match &cfg.objective {
        config::Objective::Command(command) => {
            let mut spec = CommandSpec::new(command.clone(), cfg.file.metric.clone());
            spec.timeout = cfg.timeout;
            spec.workdir = cfg.workdir();
            spec.on_change = cfg.on_change;
            spec.optional = cfg
                .space
                .iter()
                .filter(|(name, _)| !cfg.space.conditions(name).is_empty())
                .map(|(name, _)| name.clone())
                .collect();
            // Orphans of trials become ours, so none outlives the run (see kill_orphans below).
            caviar_run::adopt_orphans();
            let driven = driver::run_trials(
                &study,
                &cfg.space,
                driver::Limits {
                    total,
                    deadline,
                    recovery,
                    max_failures: cfg
                        .file
                        .max_failures
                        .unwrap_or(caviar_engine::DEFAULT_MAX_FAILURES),
                    run_trials: None,
                },
                workers,
                &cancel,
                &progress,
                |trial, cancel| {
                    let mut spec = spec.clone();
                    // This worker's slot: its GPUs are this trial's alone until it ends.
                    spec.env
                        .extend(slots.env(caviar_engine::resources::worker_slot()));
                    match dirs.trial_env(&**study.storage(), trial.id(), trial.number()) {
                        Ok(env) => spec.env.extend(env),
                        Err(e) => return Outcome::Failed(e),
                    }
                    let params = trial.params();
                    let live = StoredChanges {
                        storage: study.storage().clone(),
                        trial: trial.id(),
                        handle: trial.clone(),
                    };
                    let input = TrialInput {
                        study: study.name(),
                        number: trial.number(),
                        params: &params,
                    };
                    let storage = study.storage().clone();
                    let mut on_report = |step: u64, value: f64| match trial
                        .report(step, value)
                        .and_then(|()| trial.should_prune())
                    {
                        Ok(false) => match &cfg.file.pbt {
                            Some(pbt) => {
                                exploit(pbt, &*storage, study.record(), trial, &dirs, step, value)
                            }
                            None => Control::Continue,
                        },
                        Ok(true) => Control::Prune,
                        // Someone else ended this trial (it was presumed dead) or the storage
                        // failed: stop the command; the reason goes with the trial.
                        Err(e) => {
                            Control::Abort(format!("stopped: could not record a report: {e}"))
                        }
                    };
                    match run_command_live(&spec, &input, cancel, &mut on_report, Some(&live)) {
                        Ok(result) => {
                            // Best effort: the log helps, the outcome matters.
                            let _ = trial.store_log(&result.output);
                            result.outcome
                        }
                        Err(e) => Outcome::Failed(e.to_string()),
                    }
                },
            );
            // No trial runs now: any child left is a descendant that hid from its trial's token.
            let orphans = caviar_run::kill_orphans();
            if orphans > 0 {
                eprintln!("stopped {orphans} process(es) that trials left running");
            }
            driven?;
        }
        config::Objective::Mnist(settings) => {
            let split =
                builtin::load_split(settings.images, settings.validation_fraction, settings.seed)?;
            eprintln!(
                "built-in trainer on the first {} MNIST training images: {} train / {} validation",
                settings.images,
                split.train.len(),
                split.validation.len()
            );
            driver::run_trials(
                &study,
                &cfg.space,
                driver::Limits {
                    total,
                    deadline,
                    recovery,
                    max_failures: cfg
                        .file
                        .max_failures
                        .unwrap_or(caviar_engine::DEFAULT_MAX_FAILURES),
                    run_trials: None,
                },
                workers,
                &cancel,
                &progress,
                |trial, cancel| match builtin::trial_setup(
                    settings,
                    &trial.params(),
                    trial.number(),
                    split.train.dim(),
                ) {
                    Ok((net, net_seed, train_cfg)) => {
                        let number = trial.number();
                        let checkpoint_of =
                            |member: u64| dirs.trial(member).join(caviar_nn::checkpoint::FILE_NAME);
                        let checkpoints = match dirs.folders(&**study.storage(), trial.id(), number)
                        {
                            Ok((own, from)) => caviar_nn::train::Checkpoints {
                                save_to: Some(own.join(caviar_nn::checkpoint::FILE_NAME)),
                                restore_from: from
                                    .map(|f| f.join(caviar_nn::checkpoint::FILE_NAME)),
                            },
                            Err(e) => return Outcome::Failed(e),
                        };
                        let rebuild = |params: &std::collections::BTreeMap<
                            String,
                            caviar_core::space::ParamValue,
                        >| {
                            builtin::trial_setup(settings, params, number, split.train.dim())
                                .map(|(net, _, train)| (net, train))
                        };
                        builtin::fit_trial(
                            trial,
                            cancel,
                            &split,
                            net,
                            net_seed,
                            &train_cfg,
                            &builtin::TrialExtras {
                                rebuild: Some(&rebuild),
                                checkpoints,
                                pbt: cfg.file.pbt.as_ref().map(|spec| builtin::Pbt {
                                    spec,
                                    storage: &**study.storage(),
                                    study: study.record(),
                                    checkpoint_of: &checkpoint_of,
                                }),
                            },
                        )
                    }
                    Err(e) => Outcome::Failed(e),
                },
            )?;
            mnist_split = Some(split);
        }
    }

    let all = study.trials()?;
    let counts = storage.counts(study.record().id)?;
    let interrupted = cancel.load(Ordering::SeqCst);
    if let (Some(keep), false) = (cfg.keep_checkpoints, interrupted) {
        prune_folders(&*storage, &dirs, &all, study.directions(), keep)?;
    }
    let metric = metric_name(study.record());
    let several = study.directions().len() > 1;
    let top = if several {
        caviar_core::pareto::pareto_front(&all, study.directions())
    } else {
        best_trials(&all, study.direction(), 5)
    };
    eprintln!(
        "study `{}`: {} trials ({} complete, {} failed, {} pruned) in {:.1} s",
        study.name(),
        counts.total(),
        counts.complete,
        counts.failed,
        counts.pruned,
        started.elapsed().as_secs_f64()
    );
    if several {
        let names = study.record().objective_names();
        eprintln!(
            "Pareto front: {} trials ({}); `caviar best {}` shows them",
            top.len(),
            names.join(", "),
            study.name()
        );
        for t in top.iter().take(5) {
            let values: Vec<String> = names
                .iter()
                .zip(&t.values)
                .map(|(n, v)| format!("{n}:{v:.4}"))
                .collect();
            let params: Vec<String> = t
                .params
                .iter()
                .map(|(k, v)| format!("{k}:{}", v.short()))
                .collect();
            eprintln!(
                "  trial {} ({}) | {}",
                t.number,
                values.join(", "),
                params.join(", ")
            );
        }
    } else {
        for (i, t) in top.iter().enumerate() {
            eprintln!("{}", best_line(i + 1, metric, t));
        }
    }
    let rounds = crate::rounds::load(&*storage, study.record())?;
    if !rounds.is_empty() {
        eprintln!("zoom rounds (the box each round searched, on each parameter's scale):");
        for line in crate::rounds::lines(&rounds, metric) {
            eprintln!("  {line}");
        }
    }
    let mut test_accuracy = None;
    if let (config::Objective::Mnist(settings), Some(split), Some(best)) =
        (&cfg.objective, &mnist_split, top.first())
    {
        if settings.test && !cancel.load(Ordering::SeqCst) {
            let saved = dirs
                .trial(best.number)
                .join(caviar_nn::checkpoint::FILE_NAME);
            let acc = builtin::test_once(settings, split, best, Some(&saved))?;
            eprintln!(
                "final test accuracy: {acc:.4} (best configuration, trial {}; evaluated once)",
                best.number
            );
            test_accuracy = Some(acc);
        }
    }
    if as_json {
        let summary = json!({
            "final_test_accuracy": test_accuracy,
            "study": study.name(),
            "n_trials": counts.total(),
            "counts": counts,
            "interrupted": interrupted,
            "best": top.iter().map(|t| trial_json(t)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if interrupted {
        eprintln!("interrupted: running trials were marked failed (\"interrupted\"); run the same command again to continue (interrupted trials count toward the total: raise --trials to replace them)");
        return Ok(EXIT_INTERRUPTED);
    }
    if counts.complete == 0 && counts.failed > 0 {
        let first = all
            .iter()
            .find(|t| t.state == TrialState::Failed)
            .and_then(|t| t.error.clone())
            .unwrap_or_default();
        eprintln!("error: every trial failed; the first failure was:\n{first}");
        return Ok(1);
    }
    Ok(0)
}

/// A PBT member's decision after its report of `value` at `step`: on an exploit, the command is
/// told to load the donor's folder with the explored parameters.
fn exploit(
    spec: &caviar_engine::pbt::PbtSpec,
    storage: &dyn caviar_core::storage::Storage,
    study: &caviar_core::storage::StudyRecord,
    trial: &mut caviar_core::study::Trial,
    dirs: &caviar_engine::TrialDirs,
    step: u64,
    value: f64,
) -> Control {
    // Applied when the command acknowledges them, like any change: a member that ends before it
    // reads them keeps its record true.
    let (from, explored) =
        match caviar_engine::pbt::step(spec, storage, study, trial, step, value, false) {
            Ok(caviar_engine::pbt::Decision::Exploit { from, params }) => (from, params),
            Ok(caviar_engine::pbt::Decision::Keep) => return Control::Continue,
            // Screened out: better members go on.
            Ok(caviar_engine::pbt::Decision::Stop) => return Control::Prune,
            Err(e) => {
                return Control::Abort(format!("stopped: PBT could not record its decision: {e}"))
            }
        };
    let version = storage
        .param_changes(trial.id())
        .ok()
        .and_then(|all| all.iter().map(|c| c.id).max())
        .unwrap_or(0);
    match std::path::absolute(dirs.trial(from)) {
        Ok(restore_from) => {
            let mut params = trial.params();
            params.extend(explored);
            Control::Reload {
                version,
                params,
                restore_from,
            }
        }
        Err(e) => Control::Abort(format!("stopped: cannot name trial {from}'s folder: {e}")),
    }
}

/// Removes the folders of finished trials outside the best `keep` (`keep_checkpoints`).
fn prune_folders(
    storage: &dyn caviar_core::storage::Storage,
    dirs: &caviar_engine::TrialDirs,
    all: &[caviar_core::trial::FrozenTrial],
    directions: &[caviar_core::trial::Direction],
    keep: usize,
) -> Result<()> {
    let sources = caviar_engine::pending_fork_sources(storage, all)?;
    let kept = if directions.len() > 1 {
        "the Pareto front".to_string()
    } else {
        format!("the best {keep}")
    };
    match dirs.prune(all, directions, keep, &sources) {
        Ok(removed) if !removed.is_empty() => eprintln!(
            "removed the folders of {} trials outside {kept} from {} (keep_checkpoints = \"all\" keeps them)",
            removed.len(),
            dirs.root().display()
        ),
        Ok(_) => {}
        // The study's results are safe; only disk space is at stake.
        Err(e) => eprintln!(
            "warning: could not remove old trial folders in {}: {e}",
            dirs.root().display()
        ),
    }
    Ok(())
}

/// Live parameter changes of one command trial, as stored (`caviar set`).
struct StoredChanges {
    storage: std::sync::Arc<dyn caviar_core::storage::Storage>,
    trial: caviar_core::trial::TrialId,
    /// The same running trial, for its pause and stop requests.
    handle: caviar_core::study::Trial,
}

impl caviar_run::LiveParams for StoredChanges {
    fn pending(&self) -> Vec<(i64, String, caviar_core::space::ParamValue)> {
        // A failed read delivers nothing now; the next poll tries again.
        self.storage
            .pending_param_changes(self.trial)
            .map(|all| all.into_iter().map(|c| (c.id, c.name, c.new)).collect())
            .unwrap_or_default()
    }

    fn applied(&self, version: i64, step: u64) {
        if let Ok(pending) = self.storage.pending_param_changes(self.trial) {
            for change in pending.into_iter().filter(|c| c.id <= version) {
                let _ = self.storage.apply_param_change(self.trial, change.id, step);
            }
        }
    }

    fn metrics(&self, step: u64, values: &[(String, f64)]) {
        // Best effort, like the log: a lost metric point must not end the trial. Through the
        // trial's handle, so the study's constraints read the last values at its end.
        let _ = self.handle.report_metrics(step, values);
    }

    fn user_attr(&self, key: &str, value: serde_json::Value) {
        // caviar's own lineage keys stay caviar's; the line stays in the log either way.
        let reserved = [
            caviar_core::study::RETRY_OF,
            caviar_engine::FORKED_FROM,
            caviar_engine::retest::RETEST_OF,
            caviar_engine::pbt::PBT_LINEAGE,
        ];
        if !reserved.contains(&key) {
            // Best effort, like the log: the trial's outcome matters more.
            let owner = caviar_core::storage::AttrOwner::Trial(self.trial);
            let _ = self.storage.set_user_attr(owner, key, &value);
        }
    }

    fn steer(&self, step: Option<u64>) -> caviar_core::study::Steer {
        // A failed read keeps the state as it was; the next poll tries again.
        self.handle
            .take_controls(step)
            .unwrap_or_else(|_| self.handle.steer())
    }
}
