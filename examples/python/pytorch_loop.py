"""Tune a small PyTorch MLP on synthetic data: report the validation loss each epoch and stop
runs the median rule calls hopeless.

    pip install ./python torch
    python examples/python/pytorch_loop.py [STORAGE_URL] [N_TRIALS]
"""

import sys

import torch
from torch import nn

import caviar

torch.set_num_threads(1)
EPOCHS = 15


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1200, 10, generator=g)
    w = torch.randn(10, 1, generator=g)
    y = torch.tanh(x @ w) + 0.1 * torch.randn(1200, 1, generator=g)
    # 80% to fit, 20% held out for validation.
    return x[:960], y[:960], x[960:], y[960:]


X_FIT, Y_FIT, X_VAL, Y_VAL = data()


def objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    beta1 = trial.suggest_float("beta1", 0.8, 0.999, scale="reverse_log")
    width = trial.suggest_int("width", 8, 128, log=True)
    layers = trial.suggest_int("layers", 1, 3)
    blocks = []
    inputs = 10
    for _ in range(layers):
        blocks += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    model = nn.Sequential(*blocks, nn.Linear(inputs, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, 0.999))
    loss_fn = nn.MSELoss()
    val = float("inf")
    for epoch in range(EPOCHS):
        model.train()
        for start in range(0, len(X_FIT), 64):
            opt.zero_grad()
            loss = loss_fn(model(X_FIT[start:start + 64]), Y_FIT[start:start + 64])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = loss_fn(model(X_VAL), Y_VAL).item()
        trial.report(val, epoch)
        if trial.should_prune():
            raise caviar.TrialPruned()
    return val


def main():
    storage = sys.argv[1] if len(sys.argv) > 1 else None
    n_trials = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    study = caviar.create_study(
        storage=storage,
        study_name="pytorch-mlp",
        load_if_exists=True,
        sampler=caviar.samplers.TPESampler(seed=0),
        pruner=caviar.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
    )
    study.optimize(objective, n_trials=n_trials)
    print(f"best validation loss: {study.best_value:.4f} with {study.best_params}")


if __name__ == "__main__":
    main()
