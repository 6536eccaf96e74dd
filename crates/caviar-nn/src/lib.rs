//! caviar-nn: the built-in trainer of caviar's MNIST demo.
//!
//! Fully connected networks ([`net`]), five update rules ([`optim`]), a training loop with
//! per-epoch validation ([`train`]), the MNIST IDX loader ([`mnist`]) and the validation
//! discipline ([`data`]): a seeded train/validation split, and a test set that can be evaluated
//! only once.
//!
//! ```no_run
//! use caviar_nn::{data, mnist, net, optim, train};
//! let dir = mnist::find_data_dir().expect("data/mnist");
//! let split = mnist::load_train(&dir, Some(500)).unwrap().split(data::DEFAULT_VALIDATION_FRACTION, 0);
//! let mut model = net::Network::new(net::NetConfig::mlp(784, vec![100; 6], 10), 0);
//! let cfg = train::TrainConfig {
//!     epochs: 50, batch_size: 100, lr: 0.01, lr_decay: 0.0, optimizer: optim::Optimizer::Sgd,
//!     with_replacement: true, seed: 0,
//! };
//! let last = train::train(&mut model, &split.train, &split.validation, &cfg, &mut |_| true).unwrap();
//! println!("validation accuracy {}", last.val_acc);
//! ```
#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
mod gemm;
pub mod hparams;
pub mod mnist;
pub mod net;
pub mod optim;
pub mod train;
