//! The trainer's hyperparameters by name, so a study (file or code) can tune any of them.

use std::collections::BTreeMap;

use caviar_core::space::{Distribution, ParamValue};

use crate::net::{Activation, NetConfig};
use crate::optim::Optimizer;
use crate::train::TrainConfig;

/// Names the built-in trainer understands, with what each means.
pub const KNOWN: &[(&str, &str)] = &[
    ("lr", "initial learning rate (float > 0)"),
    (
        "optimizer",
        "\"sgd\", \"momentum\", \"adagrad\", \"rmsprop\" or \"adam\"",
    ),
    (
        "momentum",
        "momentum coefficient, and Adam's beta1 (0 <= x < 1)",
    ),
    (
        "beta1",
        "Adam's beta1, and the momentum coefficient (0 <= x < 1)",
    ),
    ("beta2", "Adam's beta2, and RMSProp's decay (0 <= x < 1)"),
    ("epsilon", "Adam/RMSProp/AdaGrad epsilon (float > 0)"),
    ("batch_size", "examples per update (int >= 1)"),
    ("units", "width of every hidden layer (int >= 1)"),
    ("layers", "number of hidden layers (int >= 1)"),
    ("activation", "\"relu\", \"tanh\" or \"sigmoid\""),
    (
        "lr_decay",
        "inverse-time decay per epoch: lr / (1 + decay * epoch) (float >= 0)",
    ),
    ("weight_decay", "L2 coefficient (float >= 0)"),
    (
        "dropout",
        "probability of dropping a hidden unit (0 <= x < 1)",
    ),
    (
        "use_dropout",
        "dropout on or off (bool; off sets the dropout rate to 0, so a study can make `dropout` conditional on it)",
    ),
    ("batch_norm", "batch normalisation on or off (bool)"),
    ("epochs", "passes over the training data (int >= 1)"),
];

/// A complete set of hyperparameters for the built-in trainer.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyperparams {
    /// Initial learning rate.
    pub lr: f64,
    /// Update rule name.
    pub optimizer: String,
    /// Momentum / beta1.
    pub momentum: f64,
    /// beta2 / RMSProp decay.
    pub beta2: f64,
    /// Epsilon of the adaptive rules.
    pub epsilon: f64,
    /// Examples per update.
    pub batch_size: usize,
    /// Hidden width.
    pub units: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Learning-rate decay.
    pub lr_decay: f64,
    /// L2 coefficient.
    pub weight_decay: f64,
    /// Dropout probability.
    pub dropout: f64,
    /// Batch normalisation.
    pub batch_norm: bool,
    /// Epochs.
    pub epochs: usize,
}

impl Default for Hyperparams {
    /// Sensible defaults: Adam, 2 × 100 ReLU, batch 100, 10 epochs.
    fn default() -> Self {
        Hyperparams {
            lr: 1e-3,
            optimizer: "adam".into(),
            momentum: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            batch_size: 100,
            units: 100,
            layers: 2,
            activation: Activation::Relu,
            lr_decay: 0.0,
            weight_decay: 0.0,
            dropout: 0.0,
            batch_norm: false,
            epochs: 10,
        }
    }
}

fn float(name: &str, v: &ParamValue) -> Result<f64, String> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("`{name}` must be a number, not {v}"))
}

fn boolean(name: &str, v: &ParamValue) -> Result<bool, String> {
    match v {
        ParamValue::Bool(b) => Ok(*b),
        ParamValue::Str(s) if s == "on" || s == "true" => Ok(true),
        ParamValue::Str(s) if s == "off" || s == "false" => Ok(false),
        _ => Err(format!("`{name}` must be true or false, not {v}")),
    }
}

fn count(name: &str, v: &ParamValue) -> Result<usize, String> {
    match v.as_i64() {
        Some(i) if i >= 1 => Ok(i as usize),
        _ => Err(format!("`{name}` must be a whole number >= 1, not {v}")),
    }
}

fn unit_interval(name: &str, v: &ParamValue) -> Result<f64, String> {
    let x = float(name, v)?;
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("`{name}` must lie in [0, 1), not {x}"))
    }
}

/// Hyperparameters the trainer can change between epochs; the others shape the network or
/// the run (layers, units, activation, batch norm, batch size, epochs, the optimizer's kind).
pub const LIVE: &[&str] = &[
    "lr",
    "lr_decay",
    "momentum",
    "beta1",
    "beta2",
    "epsilon",
    "weight_decay",
    "dropout",
];

impl Hyperparams {
    /// Overrides defaults with `values` (fixed settings first, then a trial's parameters).
    /// Unknown names and bad values give an error naming the hyperparameter.
    pub fn apply(&mut self, values: &BTreeMap<String, ParamValue>) -> Result<(), String> {
        for (name, v) in values {
            match name.as_str() {
                "lr" => {
                    self.lr = float(name, v)?;
                    if self.lr <= 0.0 {
                        return Err(format!("`lr` must be > 0, not {}", self.lr));
                    }
                }
                "optimizer" => {
                    let text = v.as_str().unwrap_or_default();
                    if !["sgd", "momentum", "adagrad", "rmsprop", "adam"].contains(&text) {
                        return Err(format!(
                            "`optimizer` = {v} is not known; use \"sgd\", \"momentum\", \"adagrad\", \"rmsprop\" or \"adam\""
                        ));
                    }
                    self.optimizer = text.into();
                }
                "momentum" | "beta1" => self.momentum = unit_interval(name, v)?,
                "beta2" => self.beta2 = unit_interval(name, v)?,
                "epsilon" => {
                    self.epsilon = float(name, v)?;
                    if self.epsilon <= 0.0 {
                        return Err(format!("`epsilon` must be > 0, not {}", self.epsilon));
                    }
                }
                "batch_size" => self.batch_size = count(name, v)?,
                "units" => self.units = count(name, v)?,
                "layers" => self.layers = count(name, v)?,
                "epochs" => self.epochs = count(name, v)?,
                "activation" => {
                    self.activation = v.as_str().and_then(Activation::parse).ok_or_else(|| {
                        format!("`activation` = {v} is not known; use \"relu\", \"tanh\" or \"sigmoid\"")
                    })?
                }
                "lr_decay" | "weight_decay" => {
                    let x = float(name, v)?;
                    if x < 0.0 {
                        return Err(format!("`{name}` must be >= 0, not {x}"));
                    }
                    if name == "lr_decay" {
                        self.lr_decay = x;
                    } else {
                        self.weight_decay = x;
                    }
                }
                "dropout" => self.dropout = unit_interval(name, v)?,
                // After `dropout` in name order, so off wins over a rate.
                "use_dropout" => {
                    if !boolean(name, v)? {
                        self.dropout = 0.0;
                    }
                }
                "batch_norm" => self.batch_norm = boolean(name, v)?,
                other => {
                    let known: Vec<&str> = KNOWN.iter().map(|(k, _)| *k).collect();
                    return Err(format!(
                        "the built-in trainer has no hyperparameter `{other}`; known: {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks, before any trial runs, that every value `dist` can give hyperparameter `name` is
    /// one the trainer takes: each choice, and both ends of a range (every limit the trainer
    /// sets is an interval, so the ends decide).
    ///
    /// ```
    /// use caviar_core::space::{Distribution, Scale};
    /// use caviar_nn::hparams::Hyperparams;
    /// let act = Distribution::categorical(vec!["relu", "adam"]).unwrap();
    /// assert!(Hyperparams::check_distribution("activation", &act).unwrap_err().contains("adam is not known"));
    /// let beta = Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap();
    /// assert!(Hyperparams::check_distribution("beta1", &beta).is_ok());
    /// ```
    pub fn check_distribution(name: &str, dist: &Distribution) -> Result<(), String> {
        let values: Vec<ParamValue> = match dist {
            Distribution::Float { low, high, .. } => {
                vec![ParamValue::Float(*low), ParamValue::Float(*high)]
            }
            Distribution::Int { low, high, .. } => {
                vec![ParamValue::Int(*low), ParamValue::Int(*high)]
            }
            Distribution::Categorical { choices } => choices.clone(),
        };
        for value in values {
            let one = BTreeMap::from([(name.to_string(), value)]);
            Hyperparams::default().apply(&one)?;
        }
        Ok(())
    }

    /// The network these hyperparameters describe.
    pub fn net_config(&self, input: usize, classes: usize) -> NetConfig {
        NetConfig {
            activation: self.activation,
            batch_norm: self.batch_norm,
            dropout: self.dropout as f32,
            weight_decay: self.weight_decay as f32,
            ..NetConfig::mlp(input, vec![self.units; self.layers], classes)
        }
    }

    /// The training settings these hyperparameters describe.
    pub fn train_config(&self, seed: u64) -> TrainConfig {
        let (b1, b2, eps) = (self.momentum as f32, self.beta2 as f32, self.epsilon as f32);
        let optimizer = match self.optimizer.as_str() {
            "momentum" => Optimizer::Momentum { momentum: b1 },
            "adagrad" => Optimizer::AdaGrad { epsilon: eps },
            "rmsprop" => Optimizer::RmsProp {
                decay: b2,
                epsilon: eps,
            },
            "adam" => Optimizer::Adam {
                beta1: b1,
                beta2: b2,
                epsilon: eps,
            },
            _ => Optimizer::Sgd,
        };
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr as f32,
            lr_decay: self.lr_decay as f32,
            optimizer,
            with_replacement: false,
            seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_override_defaults_and_bad_ones_name_the_field() {
        let mut h = Hyperparams::default();
        let mut v = BTreeMap::new();
        v.insert("optimizer".to_string(), ParamValue::from("momentum"));
        v.insert("beta1".to_string(), ParamValue::Float(0.95));
        v.insert("layers".to_string(), ParamValue::Int(3));
        v.insert("batch_norm".to_string(), ParamValue::Bool(true));
        h.apply(&v).unwrap();
        assert_eq!(
            h.train_config(0).optimizer,
            Optimizer::Momentum { momentum: 0.95 }
        );
        assert_eq!(h.net_config(784, 10).hidden, vec![100, 100, 100]);
        assert!(h.net_config(784, 10).batch_norm);

        for (name, value, needle) in [
            ("dropout", ParamValue::Float(1.0), "[0, 1)"),
            ("units", ParamValue::Int(0), ">= 1"),
            ("activation", ParamValue::from("gelu"), "relu"),
            ("colour", ParamValue::Int(1), "no hyperparameter `colour`"),
        ] {
            let mut v = BTreeMap::new();
            v.insert(name.to_string(), value);
            let err = Hyperparams::default().apply(&v).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
