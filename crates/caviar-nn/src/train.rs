//! The training loop: mini-batches, learning-rate decay, a report after every epoch.

use caviar_core::rng::Rng;

use crate::checkpoint::{CheckpointError, Reader, Writer};
use crate::data::Dataset;
use crate::net::Network;
use crate::optim::{Optimizer, OptimizerState};

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Examples per update.
    pub batch_size: usize,
    /// Initial learning rate.
    pub lr: f32,
    /// Inverse-time decay per epoch: lr_e = lr / (1 + decay·e).
    pub lr_decay: f32,
    /// Update rule.
    pub optimizer: Optimizer,
    /// Draw each batch with replacement (as the textbook experiment does) instead of shuffling
    /// once per epoch.
    pub with_replacement: bool,
    /// Seed of the batch order.
    pub seed: u64,
}

/// What happened in one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Accuracy on the validation data after the epoch.
    pub val_acc: f64,
    /// Mean training cross-entropy over the epoch's batches.
    pub train_loss: f64,
}

/// Why training stopped before its last epoch.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error(
        "training diverged: the loss became {loss} in epoch {epoch} (learning rate too high?)"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// The loss.
        loss: f64,
    },
    /// There is no training data.
    #[error("no training examples; hold out less for validation or use more data")]
    NoData,
    /// The caller asked to stop (pruning, Ctrl-C).
    #[error("stopped after epoch {0}")]
    Stopped(usize),
    /// A checkpoint could not be saved or restored.
    #[error("{0}")]
    Checkpoint(String),
}

/// Where the trainer keeps its state: it saves it after every epoch to `save_to` and, with
/// `restore_from`, starts from the state saved there (the epoch, weights, optimizer moments,
/// batch order) instead of from scratch, so the curve goes on where it stopped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoints {
    /// The file to save to after every epoch.
    pub save_to: Option<std::path::PathBuf>,
    /// The file to start from.
    pub restore_from: Option<std::path::PathBuf>,
}

fn checkpoint_error(e: CheckpointError) -> TrainError {
    TrainError::Checkpoint(e.to_string())
}

/// What the epoch callback of [`train_live`] decides.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Go on as before.
    Continue,
    /// Stop now.
    Stop,
    /// Go on with changed hyperparameters (panda mode).
    Change(LiveChange),
    /// Load another run's checkpoint (its weights, moments and epoch) and go on from there with
    /// changed hyperparameters (population-based training's exploit).
    Exploit {
        /// The checkpoint file to load.
        from: std::path::PathBuf,
        /// The hyperparameters that change.
        change: LiveChange,
    },
}

/// Hyperparameters changed between epochs; the others stay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveChange {
    /// The base learning rate of the decay schedule.
    pub lr: Option<f32>,
    /// The inverse-time decay per epoch.
    pub lr_decay: Option<f32>,
    /// The update rule's settings (momentum, betas, epsilon); the same kind keeps its state.
    pub optimizer: Option<Optimizer>,
    /// Dropout probability of hidden units.
    pub dropout: Option<f32>,
    /// L2 coefficient.
    pub weight_decay: Option<f32>,
}

/// Trains `net` on `train`, evaluating `validation` after every epoch and handing the result to
/// `on_epoch`, which returns `false` to stop. Returns the last report.
pub fn train(
    net: &mut Network,
    train: &Dataset,
    validation: &Dataset,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport) -> bool,
) -> Result<EpochReport, TrainError> {
    train_live(net, train, validation, cfg, &mut |r| {
        if on_epoch(r) {
            Next::Continue
        } else {
            Next::Stop
        }
    })
}

/// [`train`] whose callback may also change hyperparameters for the epochs after.
pub fn train_live(
    net: &mut Network,
    train: &Dataset,
    validation: &Dataset,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport) -> Next,
) -> Result<EpochReport, TrainError> {
    train_steered(
        net,
        train,
        validation,
        cfg,
        on_epoch,
        &mut || true,
        &Checkpoints::default(),
    )
}

/// [`train_live`] that also calls `between_batches` before every mini-batch: it may block
/// (a paused trial waits there) and returns `false` to stop in the middle of an epoch
/// ([`TrainError::Stopped`] with the last whole epoch).
pub fn train_steered(
    net: &mut Network,
    train: &Dataset,
    validation: &Dataset,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport) -> Next,
    between_batches: &mut dyn FnMut() -> bool,
    checkpoints: &Checkpoints,
) -> Result<EpochReport, TrainError> {
    let mut cfg = cfg.clone();
    let n = train.len();
    if n == 0 {
        return Err(TrainError::NoData);
    }
    let dim = train.dim();
    let batch = cfg.batch_size.clamp(1, n.max(1));
    let iters_per_epoch = (n / batch).max(1);
    let mut rng = Rng::keyed(cfg.seed, &[0x0062_6174_6368]);
    let mut optimizer = OptimizerState::new(cfg.optimizer);
    let cfg = &mut cfg;
    let mut x = vec![0.0f32; batch * dim];
    let mut y = vec![0u8; batch];
    let mut order: Vec<usize> = (0..n).collect();
    let mut last = None;
    let mut epoch = 1;
    if let Some(path) = &checkpoints.restore_from {
        epoch = restore(path, net, &mut optimizer, &mut rng, &mut order)? + 1;
    }
    while epoch <= cfg.epochs {
        let lr = cfg.lr / (1.0 + cfg.lr_decay * (epoch - 1) as f32);
        if !cfg.with_replacement {
            rng.shuffle(&mut order);
        }
        let mut loss_sum = 0.0;
        for it in 0..iters_per_epoch {
            if !between_batches() {
                return Err(TrainError::Stopped(epoch - 1));
            }
            for b in 0..batch {
                let i = if cfg.with_replacement {
                    rng.below(n as u64) as usize
                } else {
                    order[(it * batch + b) % n]
                };
                x[b * dim..(b + 1) * dim].copy_from_slice(train.row(i));
                y[b] = train.labels()[i];
            }
            let loss = net.forward_backward(&x, &y);
            if !loss.is_finite() {
                return Err(TrainError::Diverged { epoch, loss });
            }
            loss_sum += loss;
            optimizer.step(lr, net.params_and_grads());
        }
        let report = EpochReport {
            epoch,
            val_acc: net.accuracy(validation.features(), validation.labels()),
            train_loss: loss_sum / iters_per_epoch as f64,
        };
        last = Some(report);
        if let Some(path) = &checkpoints.save_to {
            let mut out = Writer::default();
            out.u64(epoch as u64);
            for word in rng.state() {
                out.u64(word);
            }
            out.u64(n as u64);
            for &i in &order {
                out.u64(i as u64);
            }
            net.write_state(&mut out);
            optimizer.write_state(&mut out);
            out.save(path).map_err(checkpoint_error)?;
        }
        let change = match on_epoch(&report) {
            Next::Continue => None,
            Next::Stop => return Err(TrainError::Stopped(epoch)),
            Next::Change(change) => Some(change),
            Next::Exploit { from, change } => {
                // Another member's state replaces this one's, its epoch included.
                epoch = restore(&from, net, &mut optimizer, &mut rng, &mut order)?;
                Some(change)
            }
        };
        if let Some(change) = change {
            cfg.lr = change.lr.unwrap_or(cfg.lr);
            cfg.lr_decay = change.lr_decay.unwrap_or(cfg.lr_decay);
            if let Some(rule) = change.optimizer {
                optimizer.set_rule(rule);
            }
            net.set_regularization(change.dropout, change.weight_decay);
        }
        epoch += 1;
    }
    Ok(last.unwrap_or(EpochReport {
        epoch: 0,
        val_acc: net.accuracy(validation.features(), validation.labels()),
        train_loss: f64::NAN,
    }))
}

/// Loads only the network of a checkpoint the epoch loop saved (its weights after the last
/// epoch it finished), to evaluate it; returns that epoch.
pub fn load_weights(path: &std::path::Path, net: &mut Network) -> Result<usize, TrainError> {
    let mut input = Reader::open(path).map_err(checkpoint_error)?;
    let epoch = input.u64().map_err(checkpoint_error)? as usize;
    for _ in 0..4 {
        input.u64().map_err(checkpoint_error)?;
    }
    let examples = input.u64().map_err(checkpoint_error)?;
    for _ in 0..examples {
        input.u64().map_err(checkpoint_error)?;
    }
    net.read_state(&mut input).map_err(checkpoint_error)?;
    Ok(epoch)
}

/// Loads a checkpoint saved by the epoch loop into its state; returns the epoch it was saved
/// after.
fn restore(
    path: &std::path::Path,
    net: &mut Network,
    optimizer: &mut OptimizerState,
    rng: &mut Rng,
    order: &mut [usize],
) -> Result<usize, TrainError> {
    let mut input = Reader::open(path).map_err(checkpoint_error)?;
    let epoch = input.u64().map_err(checkpoint_error)? as usize;
    let mut state = [0u64; 4];
    for word in &mut state {
        *word = input.u64().map_err(checkpoint_error)?;
    }
    *rng = Rng::from_state(state);
    let saved = input.u64().map_err(checkpoint_error)? as usize;
    if saved != order.len() {
        return Err(checkpoint_error(input.mismatch(format!(
            "it was trained on {saved} examples, this run has {}",
            order.len()
        ))));
    }
    for slot in order.iter_mut() {
        *slot = input.u64().map_err(checkpoint_error)? as usize;
    }
    net.read_state(&mut input).map_err(checkpoint_error)?;
    optimizer.read_state(&mut input).map_err(checkpoint_error)?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetConfig;

    /// Two separable blobs.
    fn blobs(n: usize, seed: u64) -> Dataset {
        let mut rng = Rng::keyed(seed, &[7]);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let label = (i % 2) as u8;
            let centre = if label == 0 { -1.0 } else { 1.0 };
            x.push(centre + 0.5 * (rng.next_f64() as f32 - 0.5));
            x.push(-centre + 0.5 * (rng.next_f64() as f32 - 0.5));
            y.push(label);
        }
        Dataset::new(x, y, 2, 2)
    }

    #[test]
    fn a_live_change_takes_effect_in_the_epochs_after_it() {
        let (train_set, validation) = (blobs(200, 1), blobs(100, 2));
        let cfg = TrainConfig {
            epochs: 6,
            batch_size: 20,
            lr: 0.5,
            lr_decay: 0.0,
            optimizer: Optimizer::Momentum { momentum: 0.5 },
            with_replacement: false,
            seed: 3,
        };
        let mut net = Network::new(NetConfig::mlp(2, vec![8], 2), 4);
        let mut losses = Vec::new();
        train_live(&mut net, &train_set, &validation, &cfg, &mut |r| {
            losses.push(r.train_loss);
            if r.epoch == 2 {
                // A learning rate of zero (and no momentum left over) freezes the network.
                Next::Change(LiveChange {
                    lr: Some(0.0),
                    optimizer: Some(Optimizer::Sgd),
                    ..LiveChange::default()
                })
            } else {
                Next::Continue
            }
        })
        .unwrap();
        assert_eq!(losses.len(), 6);
        assert!(
            losses[1] < losses[0],
            "it learned before the change: {losses:?}"
        );
        // Frozen from epoch 3 on: every later epoch sees the same network (batch order aside,
        // the mean loss over a whole epoch of the same examples is the same).
        for later in &losses[3..] {
            assert!((later - losses[2]).abs() < 1e-6, "{losses:?}");
        }
    }

    #[test]
    fn between_batches_is_asked_before_every_batch_and_can_stop_mid_epoch() {
        let (train_set, validation) = (blobs(200, 1), blobs(100, 2));
        let cfg = TrainConfig {
            epochs: 3,
            batch_size: 20,
            lr: 0.1,
            lr_decay: 0.0,
            optimizer: Optimizer::Sgd,
            with_replacement: false,
            seed: 3,
        };
        let mut net = Network::new(NetConfig::mlp(2, vec![4], 2), 1);
        let mut asked = 0;
        let mut epochs = 0;
        let result = train_steered(
            &mut net,
            &train_set,
            &validation,
            &cfg,
            &mut |_| {
                epochs += 1;
                Next::Continue
            },
            &mut || {
                asked += 1;
                // Ten batches an epoch: stop in the middle of the second.
                asked <= 15
            },
            &Checkpoints::default(),
        );
        assert_eq!(result, Err(TrainError::Stopped(1)));
        assert_eq!((asked, epochs), (16, 1));
    }

    #[test]
    fn a_restored_checkpoint_continues_training_exactly() {
        let (train_set, validation) = (blobs(200, 1), blobs(100, 2));
        let cfg = TrainConfig {
            epochs: 6,
            batch_size: 20,
            lr: 0.05,
            lr_decay: 0.1,
            optimizer: Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
            with_replacement: false,
            seed: 3,
        };
        let mut shape = NetConfig::mlp(2, vec![8], 2);
        shape.dropout = 0.2;
        shape.batch_norm = true;
        let mut straight = Network::new(shape.clone(), 4);
        let mut whole = Vec::new();
        train_live(&mut straight, &train_set, &validation, &cfg, &mut |r| {
            whole.push(*r);
            Next::Continue
        })
        .unwrap();

        let dir = std::env::temp_dir().join(format!("caviar-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(crate::checkpoint::FILE_NAME);
        let mut first = Network::new(shape.clone(), 4);
        let half = TrainConfig {
            epochs: 3,
            ..cfg.clone()
        };
        let save = Checkpoints {
            save_to: Some(path.clone()),
            restore_from: None,
        };
        train_steered(
            &mut first,
            &train_set,
            &validation,
            &half,
            &mut |_| Next::Continue,
            &mut || true,
            &save,
        )
        .unwrap();
        // Another seed: weights, moments, dropout draws and batch order all come from the file.
        let mut resumed = Network::new(shape.clone(), 99);
        let mut rest = Vec::new();
        let restore = Checkpoints {
            save_to: None,
            restore_from: Some(path.clone()),
        };
        train_steered(
            &mut resumed,
            &train_set,
            &validation,
            &cfg,
            &mut |r| {
                rest.push(*r);
                Next::Continue
            },
            &mut || true,
            &restore,
        )
        .unwrap();
        assert_eq!(rest, whole[3..]);
        let mut weights_only = Network::new(shape.clone(), 7);
        assert_eq!(load_weights(&path, &mut weights_only).unwrap(), 3);
        assert_eq!(
            weights_only.accuracy(validation.features(), validation.labels()),
            whole[2].val_acc
        );

        // A network of another shape is refused, naming the reason.
        let mut wider = Network::new(NetConfig::mlp(2, vec![16], 2), 4);
        let refused = train_steered(
            &mut wider,
            &train_set,
            &validation,
            &cfg,
            &mut |_| Next::Continue,
            &mut || true,
            &restore,
        );
        let Err(TrainError::Checkpoint(reason)) = refused else {
            panic!("{refused:?}")
        };
        assert!(reason.contains("another shape"), "{reason}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
