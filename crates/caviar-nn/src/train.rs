//! The training loop: mini-batches, learning-rate decay, a report after every epoch.

use caviar_core::rng::Rng;

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
    let n = train.len();
    if n == 0 {
        return Err(TrainError::NoData);
    }
    let dim = train.dim();
    let batch = cfg.batch_size.clamp(1, n.max(1));
    let iters_per_epoch = (n / batch).max(1);
    let mut rng = Rng::keyed(cfg.seed, &[0x0062_6174_6368]);
    let mut optimizer = OptimizerState::new(cfg.optimizer);
    let mut x = vec![0.0f32; batch * dim];
    let mut y = vec![0u8; batch];
    let mut order: Vec<usize> = (0..n).collect();
    let mut last = None;
    for epoch in 1..=cfg.epochs {
        let lr = cfg.lr / (1.0 + cfg.lr_decay * (epoch - 1) as f32);
        if !cfg.with_replacement {
            rng.shuffle(&mut order);
        }
        let mut loss_sum = 0.0;
        for it in 0..iters_per_epoch {
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
        if !on_epoch(&report) {
            return Err(TrainError::Stopped(epoch));
        }
    }
    Ok(last.unwrap_or(EpochReport {
        epoch: 0,
        val_acc: net.accuracy(validation.features(), validation.labels()),
        train_loss: f64::NAN,
    }))
}
