//! The built-in MNIST trainer as a trial objective, shared by `caviar demo` and study files
//! with `objective = "mnist"`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use caviar_core::trial::FrozenTrial;

use caviar_core::study::{Outcome, Trial};
use caviar_nn::data::Split;
use caviar_nn::net::{NetConfig, Network};
use caviar_nn::train::{
    train_steered, Checkpoints, EpochReport, LiveChange, Next, TrainConfig, TrainError,
};

/// Trains one network, reporting validation accuracy after every epoch to `report` (which
/// returns `false` to stop).
pub fn fit(
    split: &Split,
    net: NetConfig,
    net_seed: u64,
    cfg: &TrainConfig,
    report: &mut dyn FnMut(&EpochReport) -> bool,
) -> (Network, Result<EpochReport, TrainError>) {
    fit_live(split, net, net_seed, cfg, &mut |r| {
        if report(r) {
            Next::Continue
        } else {
            Next::Stop
        }
    })
}

/// [`fit`] whose callback may change hyperparameters between epochs.
pub fn fit_live(
    split: &Split,
    net: NetConfig,
    net_seed: u64,
    cfg: &TrainConfig,
    report: &mut dyn FnMut(&EpochReport) -> Next,
) -> (Network, Result<EpochReport, TrainError>) {
    fit_steered(
        split,
        net,
        net_seed,
        cfg,
        report,
        &mut || true,
        &Checkpoints::default(),
    )
}

/// [`fit_live`] that asks `between_batches` before every mini-batch (it may wait, or say stop).
pub fn fit_steered(
    split: &Split,
    net: NetConfig,
    net_seed: u64,
    cfg: &TrainConfig,
    report: &mut dyn FnMut(&EpochReport) -> Next,
    between_batches: &mut dyn FnMut() -> bool,
    checkpoints: &Checkpoints,
) -> (Network, Result<EpochReport, TrainError>) {
    let mut network = Network::new(net, net_seed);
    let result = train_steered(
        &mut network,
        &split.train,
        &split.validation,
        cfg,
        report,
        between_batches,
        checkpoints,
    );
    (network, result)
}

/// How often a trial in the built-in trainer looks for pause, resume and stop requests.
const STEER_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Rebuilds a trial's network and training settings from its parameters (after a live change).
pub type Rebuild<'a> = &'a dyn Fn(
    &std::collections::BTreeMap<String, caviar_core::space::ParamValue>,
) -> Result<(NetConfig, TrainConfig), String>;

/// What a study file's trial adds to plain training: live changes (`rebuild` makes the network
/// and settings from changed parameters), checkpoints in its folder, population-based training.
#[derive(Default)]
pub struct TrialExtras<'a> {
    /// Rebuilds settings after `caviar set`; none: changes are not applied.
    pub rebuild: Option<Rebuild<'a>>,
    /// Where to save and restore.
    pub checkpoints: Checkpoints,
    /// The study's `[pbt]`, when it has one.
    pub pbt: Option<Pbt<'a>>,
}

/// A member of a population-based training study.
pub struct Pbt<'a> {
    /// The `[pbt]` table.
    pub spec: &'a caviar_engine::pbt::PbtSpec,
    /// The study's storage and record, to rank the members.
    pub storage: &'a dyn caviar_core::storage::Storage,
    /// The study.
    pub study: &'a caviar_core::storage::StudyRecord,
    /// The checkpoint file of member `number`.
    pub checkpoint_of: &'a dyn Fn(u64) -> std::path::PathBuf,
}

/// Runs `fit` as the objective of `trial`: every epoch's validation accuracy is stored and shown
/// to the study's pruner, which may stop it (pruned); a set `cancel` stops it as interrupted,
/// divergence fails it. With `extras.rebuild`, changes asked of the trial while it trains
/// (`caviar set`) are applied after each epoch's report; pause, resume and stop are taken
/// between batches; `extras.checkpoints` saves and restores its state.
pub fn fit_trial(
    trial: &mut Trial,
    cancel: &AtomicBool,
    split: &Split,
    net: NetConfig,
    net_seed: u64,
    cfg: &TrainConfig,
    extras: &TrialExtras<'_>,
) -> Outcome {
    let (rebuild, checkpoints) = (extras.rebuild, &extras.checkpoints);
    let mut storage_error = None;
    let mut pruned = false;
    // Another handle to the same trial: the batch hook reads its requests while the epoch
    // callback reports through `trial`.
    let handle = trial.clone();
    let last_epoch = std::cell::Cell::new(None::<u64>);
    let mut last_poll = std::time::Instant::now();
    let mut between_batches = || {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        if last_poll.elapsed() < STEER_POLL {
            return true;
        }
        last_poll = std::time::Instant::now();
        loop {
            // A failed read keeps the state as it was; the next poll tries again.
            let steer = handle
                .take_controls(last_epoch.get())
                .unwrap_or_else(|_| handle.steer());
            if steer.stop || cancel.load(Ordering::Relaxed) {
                return false;
            }
            if !steer.paused {
                return true;
            }
            // Paused: the heartbeat thread keeps the trial alive meanwhile.
            std::thread::sleep(STEER_POLL / 2);
        }
    };
    // The trainer's own log, stored with the trial like a command's output.
    let mut log = vec![format!(
        "built-in trainer: {} train / {} validation images",
        split.train.len(),
        split.validation.len()
    )];
    // PBT decides between epochs only: after the last one, a copy could no longer train.
    let final_epoch = cfg.epochs as u64;
    let mut report = |r: &EpochReport| {
        last_epoch.set(Some(r.epoch as u64));
        log.push(format!(
            "epoch={} train_loss={:.5} val_acc={:.4}",
            r.epoch, r.train_loss, r.val_acc
        ));
        let go_on = match trial
            .report(r.epoch as u64, r.val_acc)
            .and_then(|()| trial.should_prune())
        {
            Ok(prune) => {
                pruned = prune;
                !prune && !cancel.load(Ordering::Relaxed)
            }
            Err(e) => {
                storage_error = Some(e.to_string());
                false
            }
        };
        if !go_on {
            return Next::Stop;
        }
        let Some(rebuild) = rebuild else {
            return Next::Continue;
        };
        let epoch = r.epoch as u64;
        let exploit = match &extras.pbt {
            Some(p) if epoch < final_epoch => {
                match caviar_engine::pbt::step(
                    p.spec, p.storage, p.study, trial, epoch, r.val_acc, true,
                ) {
                    Ok(caviar_engine::pbt::Decision::Exploit { from, params }) => {
                        Some((from, params))
                    }
                    Ok(caviar_engine::pbt::Decision::Keep) => None,
                    Ok(caviar_engine::pbt::Decision::Stop) => {
                        log.push(format!(
                            "after epoch {epoch}: pbt: screened out (better members go on)"
                        ));
                        pruned = true;
                        return Next::Stop;
                    }
                    Err(e) => {
                        log.push(format!("after epoch {epoch}: PBT could not decide: {e}"));
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some((from, params)) = &exploit {
            let shown: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k} = {}", v.short()))
                .collect();
            log.push(format!(
                "after epoch {epoch}: pbt: exploit trial {from} (its checkpoint), explore {}",
                shown.join(", ")
            ));
        }
        match trial.apply_param_changes(epoch) {
            Ok(applied) if !applied.is_empty() || exploit.is_some() => {
                match rebuild(&trial.params()) {
                    Ok((net, train)) => {
                        for c in &applied {
                            log.push(format!(
                                "after epoch {}: {} = {} ({})",
                                r.epoch,
                                c.name,
                                c.new.short(),
                                c.who
                            ));
                        }
                        let change = LiveChange {
                            lr: Some(train.lr),
                            lr_decay: Some(train.lr_decay),
                            optimizer: Some(train.optimizer),
                            dropout: Some(net.dropout),
                            weight_decay: Some(net.weight_decay),
                        };
                        match (&exploit, &extras.pbt) {
                            (Some((from, _)), Some(p)) => Next::Exploit {
                                from: (p.checkpoint_of)(*from),
                                change,
                            },
                            _ => Next::Change(change),
                        }
                    }
                    Err(e) => {
                        log.push(format!("after epoch {}: change not applied: {e}", r.epoch));
                        Next::Continue
                    }
                }
            }
            Ok(_) => Next::Continue,
            Err(e) => {
                log.push(format!(
                    "after epoch {}: could not read changes: {e}",
                    r.epoch
                ));
                Next::Continue
            }
        }
    };
    let result = fit_steered(
        split,
        net,
        net_seed,
        cfg,
        &mut report,
        &mut between_batches,
        checkpoints,
    )
    .1;
    if let Err(e) = &result {
        log.push(e.to_string());
    }
    let keep = log.len().saturating_sub(caviar_run::OUTPUT_LINES);
    let _ = trial.store_log(&log[keep..].join("\n"));
    match result {
        Ok(last) => Outcome::Complete(last.val_acc),
        Err(TrainError::Stopped(epoch)) => match storage_error {
            Some(e) => Outcome::Failed(format!(
                "stopped after epoch {epoch}: could not record a report: {e}"
            )),
            None if pruned => Outcome::Pruned,
            None if handle.steer().stop && !cancel.load(Ordering::Relaxed) => {
                trial.stopped_outcome()
            }
            None => Outcome::Failed("interrupted".into()),
        },
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Loads the first `images` MNIST training images and splits off the validation share.
pub fn load_split(images: usize, validation_fraction: f64, seed: u64) -> anyhow::Result<Split> {
    let dir = caviar_nn::mnist::find_data_dir().ok_or_else(|| {
        crate::BadInput(
            "cannot find the MNIST files (data/mnist); run from the caviar checkout or set CAVIAR_MNIST_DIR".into(),
        )
    })?;
    let data = caviar_nn::mnist::load_train(&dir, Some(images))
        .map_err(|e| crate::BadInput(e.to_string()))?;
    Ok(data.split(validation_fraction, seed))
}

/// Network, its seed and training settings of trial `number` of a study with
/// `objective = "mnist"`: defaults, then the file's fixed settings, then the trial's values.
pub fn trial_setup(
    settings: &crate::config::BuiltinMnist,
    params: &std::collections::BTreeMap<String, caviar_core::space::ParamValue>,
    number: u64,
    input: usize,
) -> Result<(NetConfig, u64, TrainConfig), String> {
    let mut h = caviar_nn::hparams::Hyperparams::default();
    h.apply(&settings.fixed)?;
    h.apply(params)?;
    let seed = |k| caviar_core::rng::derive_seed(settings.seed, &[number, k]);
    Ok((h.net_config(input, 10), seed(1), h.train_config(seed(2))))
}

/// Evaluates the best trial on the sealed test set, once: the weights it saved in `saved` (its
/// checkpoint) when there is one, which is the only faithful copy of a trial whose parameters
/// changed while it trained (panda mode, PBT); otherwise it is retrained with its own seeds.
pub fn test_once(
    settings: &crate::config::BuiltinMnist,
    split: &Split,
    best: &FrozenTrial,
    saved: Option<&Path>,
) -> anyhow::Result<f64> {
    let (net, net_seed, cfg) = trial_setup(settings, &best.params, best.number, split.train.dim())
        .map_err(|e| anyhow::anyhow!("retraining trial {}: {e}", best.number))?;
    let dir = caviar_nn::mnist::find_data_dir()
        .ok_or_else(|| anyhow::anyhow!("the MNIST files disappeared during the study"))?;
    if let Some(file) = saved.filter(|f| f.exists()) {
        let mut network = Network::new(net, net_seed);
        let epoch = caviar_nn::train::load_weights(file, &mut network)
            .map_err(|e| anyhow::anyhow!("loading trial {}'s weights: {e}", best.number))?;
        let test =
            caviar_nn::mnist::load_test(&dir, None).map_err(|e| crate::BadInput(e.to_string()))?;
        return Ok(test.evaluate_once(
            &format!(
                "final check of the best configuration (trial {}, its weights after epoch {epoch})",
                best.number
            ),
            |data| network.accuracy(data.features(), data.labels()),
        ));
    }
    Ok(retrain_and_test(&dir, split, best, net, net_seed, &cfg)?.0)
}

/// Retrains `best` from the network and settings its trial used (same seeds, so the same
/// network; a different validation accuracy is reported), then evaluates it on the sealed test
/// set in `dir`, once. Returns the test accuracy and the number of test images.
pub fn retrain_and_test(
    dir: &Path,
    split: &Split,
    best: &FrozenTrial,
    net: NetConfig,
    net_seed: u64,
    cfg: &TrainConfig,
) -> anyhow::Result<(f64, usize)> {
    let (mut network, result) = fit(split, net, net_seed, cfg, &mut |_| true);
    let retrained = result.map_err(|e| anyhow::anyhow!("retraining trial {}: {e}", best.number))?;
    if let Some(stored) = best.value.filter(|v| (retrained.val_acc - v).abs() > 1e-9) {
        eprintln!(
            "warning: retraining trial {} gave validation accuracy {:.4}, not {stored:.4}",
            best.number, retrained.val_acc
        );
    }
    let test =
        caviar_nn::mnist::load_test(dir, None).map_err(|e| crate::BadInput(e.to_string()))?;
    let images = test.len();
    let accuracy = test.evaluate_once(
        &format!(
            "final check of the best configuration (trial {})",
            best.number
        ),
        |data| network.accuracy(data.features(), data.labels()),
    );
    Ok((accuracy, images))
}
