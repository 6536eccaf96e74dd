//! Fully connected networks: dense layers, optional batch normalisation, ReLU / tanh / sigmoid,
//! inverted dropout, softmax cross-entropy with L2 weight decay.
//!
//! Every buffer is allocated once per batch size, so the training loop does not allocate.

use caviar_core::rng::Rng;

use crate::checkpoint::{CheckpointError, Reader, Writer};

use crate::gemm;

/// Nonlinearity of the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// tanh(x).
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
}

impl Activation {
    /// Parses `relu`, `tanh` or `sigmoid`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "relu" => Some(Activation::Relu),
            "tanh" => Some(Activation::Tanh),
            "sigmoid" => Some(Activation::Sigmoid),
            _ => None,
        }
    }
}

/// Weight initialisation: normal with standard deviation sqrt(2 / fan_in) (He) or
/// sqrt(1 / fan_in) (Xavier); biases start at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// For ReLU.
    He,
    /// For tanh and sigmoid.
    Xavier,
}

/// The shape and regularisation of a network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Input features.
    pub input: usize,
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Initialisation (default: He for ReLU, Xavier otherwise).
    pub init: Option<Init>,
    /// Batch normalisation after each hidden dense layer, before the nonlinearity.
    pub batch_norm: bool,
    /// Probability of dropping a hidden unit in training (0 = no dropout).
    pub dropout: f32,
    /// L2 coefficient λ: the loss gains 0.5·λ·Σ‖W‖² over weights, not biases.
    pub weight_decay: f32,
}

impl NetConfig {
    /// A ReLU network with He init and no regularisation.
    pub fn mlp(input: usize, hidden: Vec<usize>, classes: usize) -> Self {
        NetConfig {
            input,
            hidden,
            classes,
            activation: Activation::Relu,
            init: None,
            batch_norm: false,
            dropout: 0.0,
            weight_decay: 0.0,
        }
    }
}

struct Dense {
    fan_in: usize,
    fan_out: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.9;

struct BatchNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    seen_batches: u64,
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
}

// Index loops read like the formulas here.
#[allow(clippy::needless_range_loop)]
impl BatchNorm {
    fn new(n: usize) -> Self {
        BatchNorm {
            gamma: vec![1.0; n],
            beta: vec![0.0; n],
            dgamma: vec![0.0; n],
            dbeta: vec![0.0; n],
            running_mean: vec![0.0; n],
            running_var: vec![1.0; n],
            seen_batches: 0,
            xhat: Vec::new(),
            inv_std: vec![0.0; n],
        }
    }

    /// Normalises `z` (rows × n) in place with batch statistics and updates the running ones.
    fn forward_train(&mut self, z: &mut [f32], rows: usize) {
        let n = self.gamma.len();
        self.xhat.resize(rows * n, 0.0);
        let mut mean = vec![0.0f64; n];
        let mut var = vec![0.0f64; n];
        for r in 0..rows {
            for (j, m) in mean.iter_mut().enumerate() {
                *m += f64::from(z[r * n + j]);
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        for r in 0..rows {
            for j in 0..n {
                let d = f64::from(z[r * n + j]) - mean[j];
                var[j] += d * d;
            }
        }
        var.iter_mut().for_each(|v| *v /= rows as f64);
        for j in 0..n {
            self.inv_std[j] = 1.0 / ((var[j] as f32) + BN_EPS).sqrt();
            // The first batch seeds the running statistics; later ones are averaged in.
            let keep = if self.seen_batches == 0 {
                0.0
            } else {
                BN_MOMENTUM
            };
            self.running_mean[j] = keep * self.running_mean[j] + (1.0 - keep) * mean[j] as f32;
            self.running_var[j] = keep * self.running_var[j] + (1.0 - keep) * var[j] as f32;
        }
        self.seen_batches += 1;
        for r in 0..rows {
            for j in 0..n {
                let i = r * n + j;
                let xh = (z[i] - mean[j] as f32) * self.inv_std[j];
                self.xhat[i] = xh;
                z[i] = self.gamma[j] * xh + self.beta[j];
            }
        }
    }

    fn forward_eval(&self, z: &mut [f32], rows: usize) {
        let n = self.gamma.len();
        for r in 0..rows {
            for j in 0..n {
                let i = r * n + j;
                let xh = (z[i] - self.running_mean[j]) / (self.running_var[j] + BN_EPS).sqrt();
                z[i] = self.gamma[j] * xh + self.beta[j];
            }
        }
    }

    /// Turns dL/dy (in `g`) into dL/dz in place, filling dgamma and dbeta.
    fn backward(&mut self, g: &mut [f32], rows: usize) {
        let n = self.gamma.len();
        self.dgamma.iter_mut().for_each(|v| *v = 0.0);
        self.dbeta.iter_mut().for_each(|v| *v = 0.0);
        let mut sum_dxhat = vec![0.0f32; n];
        let mut sum_dxhat_xhat = vec![0.0f32; n];
        for r in 0..rows {
            for j in 0..n {
                let i = r * n + j;
                self.dgamma[j] += g[i] * self.xhat[i];
                self.dbeta[j] += g[i];
                let dxhat = g[i] * self.gamma[j];
                sum_dxhat[j] += dxhat;
                sum_dxhat_xhat[j] += dxhat * self.xhat[i];
            }
        }
        let m = rows as f32;
        for r in 0..rows {
            for j in 0..n {
                let i = r * n + j;
                let dxhat = g[i] * self.gamma[j];
                g[i] = self.inv_std[j] / m
                    * (m * dxhat - sum_dxhat[j] - self.xhat[i] * sum_dxhat_xhat[j]);
            }
        }
    }
}

/// A fully connected classifier. See the module docs.
///
/// ```
/// use caviar_nn::net::{Network, NetConfig};
/// let mut net = Network::new(NetConfig::mlp(4, vec![8, 8], 3), 0);
/// let x = vec![0.5f32; 2 * 4];
/// let loss = net.forward_backward(&x, &[0, 2]);
/// assert!(loss > 0.0);
/// ```
pub struct Network {
    cfg: NetConfig,
    dense: Vec<Dense>,
    norms: Vec<Option<BatchNorm>>,
    rng: Rng,
    dropout_seed: Option<u64>,
    // Per-batch buffers: acts[l] is the input of dense layer l (acts[0] the batch itself).
    rows: usize,
    acts: Vec<Vec<f32>>,
    pre_dropout: Vec<Vec<f32>>,
    masks: Vec<Vec<f32>>,
    logits: Vec<f32>,
    grad_a: Vec<f32>,
    grad_b: Vec<f32>,
}

impl Network {
    /// Changes the regularisation between epochs (a live change); `None` keeps a setting.
    pub fn set_regularization(&mut self, dropout: Option<f32>, weight_decay: Option<f32>) {
        if let Some(p) = dropout {
            self.cfg.dropout = p;
        }
        if let Some(l) = weight_decay {
            self.cfg.weight_decay = l;
        }
    }

    /// A freshly initialised network; `seed` fixes weights and dropout masks.
    pub fn new(cfg: NetConfig, seed: u64) -> Self {
        let mut rng = Rng::keyed(seed, &[0x6e6e]);
        let init = cfg.init.unwrap_or(match cfg.activation {
            Activation::Relu => Init::He,
            _ => Init::Xavier,
        });
        let mut sizes = vec![cfg.input];
        sizes.extend(&cfg.hidden);
        sizes.push(cfg.classes);
        let dense = sizes
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let std = match init {
                    Init::He => (2.0 / fan_in as f64).sqrt(),
                    Init::Xavier => (1.0 / fan_in as f64).sqrt(),
                };
                Dense {
                    fan_in,
                    fan_out,
                    w: (0..fan_in * fan_out)
                        .map(|_| (rng.normal() * std) as f32)
                        .collect(),
                    b: vec![0.0; fan_out],
                    dw: vec![0.0; fan_in * fan_out],
                    db: vec![0.0; fan_out],
                }
            })
            .collect();
        let norms = cfg
            .hidden
            .iter()
            .map(|&n| cfg.batch_norm.then(|| BatchNorm::new(n)))
            .collect();
        let layers = cfg.hidden.len() + 1;
        Network {
            cfg,
            dense,
            norms,
            rng,
            dropout_seed: None,
            rows: 0,
            acts: vec![Vec::new(); layers],
            pre_dropout: vec![Vec::new(); layers - 1],
            masks: vec![Vec::new(); layers - 1],
            logits: Vec::new(),
            grad_a: Vec::new(),
            grad_b: Vec::new(),
        }
    }

    /// Writes what training changes: weights, biases, batch-norm parameters and statistics, and
    /// the dropout generator (a checkpoint).
    pub fn write_state(&self, out: &mut Writer) {
        out.u64(self.dense.len() as u64);
        for d in &self.dense {
            out.f32s(&d.w);
            out.f32s(&d.b);
        }
        for norm in &self.norms {
            match norm {
                Some(bn) => {
                    out.u64(1);
                    for v in [&bn.gamma, &bn.beta, &bn.running_mean, &bn.running_var] {
                        out.f32s(v);
                    }
                    out.u64(bn.seen_batches);
                }
                None => out.u64(0),
            }
        }
        for word in self.rng.state() {
            out.u64(word);
        }
    }

    /// Reads what [`Network::write_state`] wrote; refused when the checkpoint's network has
    /// another shape.
    pub fn read_state(&mut self, input: &mut Reader) -> Result<(), CheckpointError> {
        let layers = input.u64()? as usize;
        if layers != self.dense.len() {
            return Err(input.mismatch(format!(
                "it holds {layers} weight layers, this network has {}: it was saved by a network of another shape",
                self.dense.len()
            )));
        }
        for (i, d) in self.dense.iter_mut().enumerate() {
            d.w = input.f32s(d.w.len(), &format!("layer {i}'s weights"))?;
            d.b = input.f32s(d.b.len(), &format!("layer {i}'s biases"))?;
        }
        for (i, norm) in self.norms.iter_mut().enumerate() {
            let saved = input.u64()? == 1;
            match (saved, norm) {
                (true, Some(bn)) => {
                    let n = bn.gamma.len();
                    let what = format!("layer {i}'s batch norm");
                    bn.gamma = input.f32s(n, &what)?;
                    bn.beta = input.f32s(n, &what)?;
                    bn.running_mean = input.f32s(n, &what)?;
                    bn.running_var = input.f32s(n, &what)?;
                    bn.seen_batches = input.u64()?;
                }
                (false, None) => {}
                _ => {
                    return Err(
                        input.mismatch("batch norm is on in one network and off in the other")
                    )
                }
            }
        }
        let mut state = [0u64; 4];
        for word in &mut state {
            *word = input.u64()?;
        }
        self.rng = Rng::from_state(state);
        Ok(())
    }

    /// The network's configuration.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Number of trainable values.
    pub fn parameter_count(&self) -> usize {
        self.dense
            .iter()
            .map(|d| d.w.len() + d.b.len())
            .sum::<usize>()
            + self
                .norms
                .iter()
                .flatten()
                .map(|n| 2 * n.gamma.len())
                .sum::<usize>()
    }

    /// Makes every training pass draw the same dropout mask (for gradient checks).
    pub fn fix_dropout_seed(&mut self, seed: Option<u64>) {
        self.dropout_seed = seed;
    }

    fn ensure_rows(&mut self, rows: usize) {
        if self.rows == rows {
            return;
        }
        self.rows = rows;
        let widest = self
            .dense
            .iter()
            .map(|d| d.fan_in.max(d.fan_out))
            .max()
            .unwrap_or(0);
        for (l, d) in self.dense.iter().enumerate() {
            self.acts[l].resize(rows * d.fan_in, 0.0);
        }
        for (l, d) in self.dense[..self.dense.len() - 1].iter().enumerate() {
            self.pre_dropout[l].resize(rows * d.fan_out, 0.0);
            if self.cfg.dropout > 0.0 {
                self.masks[l].resize(rows * d.fan_out, 0.0);
            }
        }
        self.logits.resize(rows * self.cfg.classes, 0.0);
        self.grad_a.resize(rows * widest, 0.0);
        self.grad_b.resize(rows * widest, 0.0);
    }

    /// Runs the hidden layers and the output layer on `acts[0]`; `train` selects batch
    /// statistics and dropout.
    fn forward(&mut self, train: bool) {
        let rows = self.rows;
        let hidden = self.dense.len() - 1;
        if train {
            if let Some(seed) = self.dropout_seed {
                self.rng = Rng::new(seed);
            }
        }
        let dropout = train && self.cfg.dropout > 0.0;
        for l in 0..=hidden {
            // Borrow the output buffer out of `self` so the input stays readable.
            let mut out = if l == hidden {
                std::mem::take(&mut self.logits)
            } else if dropout {
                std::mem::take(&mut self.pre_dropout[l])
            } else {
                std::mem::take(&mut self.acts[l + 1])
            };
            let d = &self.dense[l];
            for r in 0..rows {
                out[r * d.fan_out..(r + 1) * d.fan_out].copy_from_slice(&d.b);
            }
            gemm::ab(
                rows,
                d.fan_in,
                d.fan_out,
                &self.acts[l],
                &d.w,
                1.0,
                &mut out,
            );
            if l == hidden {
                self.logits = out;
                break;
            }
            if let Some(bn) = &mut self.norms[l] {
                if train {
                    bn.forward_train(&mut out, rows);
                } else {
                    bn.forward_eval(&mut out, rows);
                }
            }
            match self.cfg.activation {
                Activation::Relu => out.iter_mut().for_each(|v| *v = v.max(0.0)),
                Activation::Tanh => out.iter_mut().for_each(|v| *v = v.tanh()),
                Activation::Sigmoid => out.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            }
            if dropout {
                let keep = 1.0 - self.cfg.dropout;
                let mask = &mut self.masks[l];
                for m in mask.iter_mut() {
                    *m = if self.rng.next_f64() < f64::from(keep) {
                        1.0 / keep
                    } else {
                        0.0
                    };
                }
                for ((n, a), m) in self.acts[l + 1].iter_mut().zip(out.iter()).zip(mask.iter()) {
                    *n = a * m;
                }
                self.pre_dropout[l] = out;
            } else {
                self.acts[l + 1] = out;
            }
        }
    }

    fn load_batch(&mut self, x: &[f32], rows: usize) {
        self.ensure_rows(rows);
        self.acts[0][..x.len()].copy_from_slice(x);
    }

    /// Softmax in place on the logits; returns the mean cross-entropy against `labels`.
    fn softmax_loss(&mut self, labels: &[u8]) -> f64 {
        let c = self.cfg.classes;
        let mut loss = 0.0f64;
        for (r, &label) in labels.iter().enumerate() {
            let row = &mut self.logits[r * c..(r + 1) * c];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            for v in row.iter_mut() {
                *v /= sum;
            }
            loss -= f64::from(row[label as usize].max(1e-30)).ln();
        }
        loss / labels.len() as f64
    }

    /// The L2 term 0.5·λ·Σ‖W‖².
    pub fn weight_decay_loss(&self) -> f64 {
        let sq: f64 = self
            .dense
            .iter()
            .map(|d| {
                d.w.iter()
                    .map(|&w| f64::from(w) * f64::from(w))
                    .sum::<f64>()
            })
            .sum();
        0.5 * f64::from(self.cfg.weight_decay) * sq
    }

    /// Training loss of a batch (cross-entropy + weight decay) without computing gradients.
    pub fn loss(&mut self, x: &[f32], labels: &[u8]) -> f64 {
        self.load_batch(x, labels.len());
        self.forward(true);
        self.softmax_loss(labels) + self.weight_decay_loss()
    }

    /// One training pass on a batch (`rows × input`): fills every gradient and returns the
    /// batch's cross-entropy (without the weight-decay term, which costs a pass over weights).
    pub fn forward_backward(&mut self, x: &[f32], labels: &[u8]) -> f64 {
        let rows = labels.len();
        self.load_batch(x, rows);
        self.forward(true);
        let loss = self.softmax_loss(labels);
        let c = self.cfg.classes;
        // dL/dlogits = (softmax - onehot) / rows
        let mut g = std::mem::take(&mut self.grad_a);
        let mut spare = std::mem::take(&mut self.grad_b);
        for (r, &label) in labels.iter().enumerate() {
            for j in 0..c {
                let p = self.logits[r * c + j];
                g[r * c + j] = (p - if j == label as usize { 1.0 } else { 0.0 }) / rows as f32;
            }
        }
        let lambda = self.cfg.weight_decay;
        for l in (0..self.dense.len()).rev() {
            let d = &mut self.dense[l];
            // dW = λW + inputᵀ·g ; db = Σ_rows g
            if lambda != 0.0 {
                for (dw, w) in d.dw.iter_mut().zip(&d.w) {
                    *dw = lambda * w;
                }
            }
            gemm::at_b(
                d.fan_in,
                rows,
                d.fan_out,
                &self.acts[l],
                &g,
                if lambda != 0.0 { 1.0 } else { 0.0 },
                &mut d.dw,
            );
            d.db.iter_mut().for_each(|v| *v = 0.0);
            for r in 0..rows {
                for (db, gv) in d.db.iter_mut().zip(&g[r * d.fan_out..(r + 1) * d.fan_out]) {
                    *db += gv;
                }
            }
            if l == 0 {
                break; // nobody needs the gradient of the input
            }
            gemm::a_bt(rows, d.fan_out, d.fan_in, &g, &d.w, &mut spare);
            let h = l - 1;
            let n = d.fan_in;
            let grad = &mut spare[..rows * n];
            let act = if self.cfg.dropout > 0.0 {
                &self.pre_dropout[h]
            } else {
                &self.acts[l]
            };
            if self.cfg.dropout > 0.0 {
                for (gv, m) in grad.iter_mut().zip(&self.masks[h]) {
                    *gv *= m;
                }
            }
            match self.cfg.activation {
                // Branch-free so it vectorises: this loop is hot.
                Activation::Relu => grad
                    .iter_mut()
                    .zip(act)
                    .for_each(|(gv, a)| *gv = if *a > 0.0 { *gv } else { 0.0 }),
                Activation::Tanh => grad
                    .iter_mut()
                    .zip(act)
                    .for_each(|(gv, a)| *gv *= 1.0 - a * a),
                Activation::Sigmoid => grad
                    .iter_mut()
                    .zip(act)
                    .for_each(|(gv, a)| *gv *= a * (1.0 - a)),
            }
            if let Some(bn) = &mut self.norms[h] {
                bn.backward(grad, rows);
            }
            std::mem::swap(&mut g, &mut spare);
        }
        self.grad_a = g;
        self.grad_b = spare;
        loss
    }

    /// Predicted class of each row of `x` (evaluation mode: running statistics, no dropout).
    pub fn predict(&mut self, x: &[f32]) -> Vec<u8> {
        let dim = self.cfg.input;
        let total = x.len() / dim;
        let chunk = 500.min(total.max(1));
        let c = self.cfg.classes;
        let mut out = Vec::with_capacity(total);
        for start in (0..total).step_by(chunk) {
            let rows = chunk.min(total - start);
            self.load_batch(&x[start * dim..(start + rows) * dim], rows);
            self.forward(false);
            for r in 0..rows {
                let row = &self.logits[r * c..(r + 1) * c];
                let best = row
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, (j, &v)| if v > acc.1 { (j, v) } else { acc },
                    );
                out.push(best.0 as u8);
            }
        }
        out
    }

    /// Share of rows whose predicted class is the label.
    pub fn accuracy(&mut self, x: &[f32], labels: &[u8]) -> f64 {
        if labels.is_empty() {
            return 0.0;
        }
        let predicted = self.predict(x);
        let hits = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        hits as f64 / labels.len() as f64
    }

    /// Every trainable tensor with its gradient, in a fixed order (for optimizers).
    pub fn params_and_grads(&mut self) -> Vec<(&mut [f32], &[f32])> {
        let mut out: Vec<(&mut [f32], &[f32])> = Vec::new();
        for d in &mut self.dense {
            out.push((&mut d.w, &d.dw));
            out.push((&mut d.b, &d.db));
        }
        for bn in self.norms.iter_mut().flatten() {
            out.push((&mut bn.gamma, &bn.dgamma));
            out.push((&mut bn.beta, &bn.dbeta));
        }
        out
    }
}
