//! Finite-difference checks of every gradient, for every layer kind.

use caviar_core::rng::Rng;
use caviar_nn::net::{Activation, NetConfig, Network};

fn check(cfg: NetConfig, label: &str) {
    let rows = 8;
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..rows * cfg.input).map(|_| rng.normal() as f32).collect();
    let y: Vec<u8> = (0..rows).map(|i| (i % cfg.classes) as u8).collect();
    let mut net = Network::new(cfg, 11);
    net.fix_dropout_seed(Some(5));
    net.forward_backward(&x, &y);
    let analytic: Vec<Vec<f32>> = net
        .params_and_grads()
        .iter()
        .map(|(_, g)| g.to_vec())
        .collect();
    let eps = 1e-3f32;
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    let mut checked = 0;
    for (t, grads) in analytic.iter().enumerate() {
        // Up to 25 coordinates per tensor, spread over it.
        let stride = (grads.len() / 25).max(1);
        for i in (0..grads.len()).step_by(stride) {
            let orig = net.params_and_grads()[t].0[i];
            net.params_and_grads()[t].0[i] = orig + eps;
            let plus = net.loss(&x, &y);
            net.params_and_grads()[t].0[i] = orig - eps;
            let minus = net.loss(&x, &y);
            net.params_and_grads()[t].0[i] = orig;
            let numeric = (plus - minus) / (2.0 * f64::from(eps));
            let a = f64::from(grads[i]);
            diff += (a - numeric).powi(2);
            norm += a.powi(2) + numeric.powi(2);
            checked += 1;
        }
    }
    let rel = diff.sqrt() / norm.sqrt().max(1e-12);
    assert!(checked > 50, "{label}: only {checked} coordinates");
    assert!(rel < 2e-2, "{label}: relative gradient error {rel:.2e}");
    assert!(norm > 1e-8, "{label}: gradients vanished");
}

fn base(activation: Activation) -> NetConfig {
    NetConfig {
        activation,
        ..NetConfig::mlp(5, vec![7, 6], 4)
    }
}

#[test]
fn dense_relu() {
    check(base(Activation::Relu), "relu");
}

#[test]
fn dense_tanh() {
    check(base(Activation::Tanh), "tanh");
}

#[test]
fn dense_sigmoid() {
    check(base(Activation::Sigmoid), "sigmoid");
}

#[test]
fn weight_decay() {
    check(
        NetConfig {
            weight_decay: 0.1,
            ..base(Activation::Tanh)
        },
        "weight decay",
    );
}

#[test]
fn batch_norm() {
    check(
        NetConfig {
            batch_norm: true,
            ..base(Activation::Tanh)
        },
        "batch norm + tanh",
    );
    check(
        NetConfig {
            batch_norm: true,
            ..base(Activation::Sigmoid)
        },
        "batch norm + sigmoid",
    );
}

#[test]
fn dropout() {
    check(
        NetConfig {
            dropout: 0.3,
            ..base(Activation::Tanh)
        },
        "dropout",
    );
}

#[test]
fn everything_at_once() {
    check(
        NetConfig {
            batch_norm: true,
            dropout: 0.2,
            weight_decay: 0.05,
            ..base(Activation::Relu)
        },
        "relu + bn + dropout + wd",
    );
}

#[test]
fn a_wrong_gradient_would_be_caught() {
    // The check itself must be able to fail: corrupt one analytic gradient by comparing
    // against a network whose loss differs (different weight decay than its gradient).
    let cfg = NetConfig {
        weight_decay: 0.5,
        ..base(Activation::Tanh)
    };
    let rows = 8;
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..rows * cfg.input).map(|_| rng.normal() as f32).collect();
    let y: Vec<u8> = (0..rows).map(|i| (i % 4) as u8).collect();
    let mut with_wd = Network::new(cfg.clone(), 11);
    let mut without = Network::new(
        NetConfig {
            weight_decay: 0.0,
            ..cfg
        },
        11,
    );
    with_wd.forward_backward(&x, &y);
    without.forward_backward(&x, &y);
    let a = with_wd.params_and_grads()[0].1.to_vec();
    let b = without.params_and_grads()[0].1.to_vec();
    let gap: f32 = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).sum();
    assert!(gap > 0.1, "weight decay must change the gradient");
}
