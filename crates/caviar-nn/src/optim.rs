//! Gradient-descent update rules.

use crate::checkpoint::{CheckpointError, Reader, Writer};

/// An update rule and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// w -= lr·g
    Sgd,
    /// v = μ·v - lr·g; w += v
    Momentum {
        /// μ, typically 0.9.
        momentum: f32,
    },
    /// h += g²; w -= lr·g / (√h + ε)
    AdaGrad {
        /// ε.
        epsilon: f32,
    },
    /// h = ρ·h + (1-ρ)·g²; w -= lr·g / (√h + ε)
    RmsProp {
        /// ρ, typically 0.99.
        decay: f32,
        /// ε.
        epsilon: f32,
    },
    /// Adam with bias correction.
    Adam {
        /// β1, typically 0.9.
        beta1: f32,
        /// β2, typically 0.999.
        beta2: f32,
        /// ε, typically 1e-8.
        epsilon: f32,
    },
}

impl Optimizer {
    /// Adam with the usual settings.
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// An optimizer with its per-tensor state.
pub struct OptimizerState {
    rule: Optimizer,
    steps: u64,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

impl OptimizerState {
    /// Fresh state for `rule`.
    pub fn new(rule: Optimizer) -> Self {
        OptimizerState {
            rule,
            steps: 0,
            first: Vec::new(),
            second: Vec::new(),
        }
    }

    /// Changes the rule's settings (a live change); a rule of the same kind keeps its moments,
    /// another kind starts afresh.
    pub fn set_rule(&mut self, rule: Optimizer) {
        if std::mem::discriminant(&rule) != std::mem::discriminant(&self.rule) {
            *self = OptimizerState::new(rule);
        } else {
            self.rule = rule;
        }
    }

    /// Writes the update count and the moments (a checkpoint).
    pub fn write_state(&self, out: &mut Writer) {
        out.u64(self.steps);
        out.u64(self.kind());
        for moments in [&self.first, &self.second] {
            out.u64(moments.len() as u64);
            for m in moments {
                out.f32s(m);
            }
        }
    }

    /// Reads what [`OptimizerState::write_state`] wrote. Moments saved by another kind of rule
    /// are dropped (this rule starts afresh, as after a live change of kind).
    pub fn read_state(&mut self, input: &mut Reader) -> Result<(), CheckpointError> {
        let steps = input.u64()?;
        let same_kind = input.u64()? == self.kind();
        let mut read = || -> Result<Vec<Vec<f32>>, CheckpointError> {
            let count = input.u64()? as usize;
            (0..count).map(|_| input.f32s_any()).collect()
        };
        let (first, second) = (read()?, read()?);
        if same_kind {
            self.steps = steps;
            self.first = first;
            self.second = second;
        }
        Ok(())
    }

    /// The rule's kind as a number, for checkpoints.
    fn kind(&self) -> u64 {
        match self.rule {
            Optimizer::Sgd => 0,
            Optimizer::Momentum { .. } => 1,
            Optimizer::AdaGrad { .. } => 2,
            Optimizer::RmsProp { .. } => 3,
            Optimizer::Adam { .. } => 4,
        }
    }

    /// Applies one update with learning rate `lr` to every `(param, grad)` pair.
    pub fn step(&mut self, lr: f32, tensors: Vec<(&mut [f32], &[f32])>) {
        self.steps += 1;
        if self.first.len() != tensors.len() {
            self.first = tensors.iter().map(|(p, _)| vec![0.0; p.len()]).collect();
            self.second = tensors.iter().map(|(p, _)| vec![0.0; p.len()]).collect();
        }
        let t = self.steps as i32;
        for (i, (param, grad)) in tensors.into_iter().enumerate() {
            let (m, v) = (&mut self.first[i], &mut self.second[i]);
            match self.rule {
                Optimizer::Sgd => {
                    for (p, g) in param.iter_mut().zip(grad) {
                        *p -= lr * g;
                    }
                }
                Optimizer::Momentum { momentum } => {
                    for ((p, g), v) in param.iter_mut().zip(grad).zip(m.iter_mut()) {
                        *v = momentum * *v - lr * g;
                        *p += *v;
                    }
                }
                Optimizer::AdaGrad { epsilon } => {
                    for ((p, g), h) in param.iter_mut().zip(grad).zip(v.iter_mut()) {
                        *h += g * g;
                        *p -= lr * g / (h.sqrt() + epsilon);
                    }
                }
                Optimizer::RmsProp { decay, epsilon } => {
                    for ((p, g), h) in param.iter_mut().zip(grad).zip(v.iter_mut()) {
                        *h = decay * *h + (1.0 - decay) * g * g;
                        *p -= lr * g / (h.sqrt() + epsilon);
                    }
                }
                Optimizer::Adam {
                    beta1,
                    beta2,
                    epsilon,
                } => {
                    let c1 = 1.0 - beta1.powi(t);
                    let c2 = 1.0 - beta2.powi(t);
                    for (((p, g), m), v) in param
                        .iter_mut()
                        .zip(grad)
                        .zip(m.iter_mut())
                        .zip(v.iter_mut())
                    {
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        *p -= lr * (*m / c1) / ((*v / c2).sqrt() + epsilon);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule must shrink f(w) = ½‖w‖² from w = (3, -2).
    #[test]
    fn every_rule_descends_a_bowl() {
        for rule in [
            Optimizer::Sgd,
            Optimizer::Momentum { momentum: 0.9 },
            Optimizer::AdaGrad { epsilon: 1e-7 },
            Optimizer::RmsProp {
                decay: 0.9,
                epsilon: 1e-7,
            },
            Optimizer::adam(),
        ] {
            let mut w = vec![3.0f32, -2.0];
            let mut state = OptimizerState::new(rule);
            for _ in 0..200 {
                let g = w.clone();
                let lr = if matches!(rule, Optimizer::AdaGrad { .. }) {
                    0.5
                } else {
                    0.05
                };
                state.step(lr, vec![(&mut w[..], &g[..])]);
            }
            let norm = (w[0] * w[0] + w[1] * w[1]).sqrt();
            assert!(norm < 0.5, "{rule:?} ended at {w:?}");
        }
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let mut w = [1.0f32];
        let mut state = OptimizerState::new(Optimizer::adam());
        state.step(0.1, vec![(&mut w[..], &[123.0][..])]);
        assert!(
            (w[0] - 0.9).abs() < 1e-5,
            "bias correction: first step is lr·sign(g)"
        );
    }
}
