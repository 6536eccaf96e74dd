"""A PyTorch training program for `caviar run study.toml`: one trial, on the GPUs caviar gave it.

caviar sets CUDA_VISIBLE_DEVICES for each trial (see `[resources]` in study.toml), so the
program simply uses "cuda" and sees only its own devices. Parameters arrive as arguments;
reports go to stdout as `key=value` lines, one per epoch, every key kept by caviar.
"""

import argparse
import os

import torch
from torch import nn


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--units", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device={device} gpus={os.environ.get('CAVIAR_GPUS', '')}", flush=True)

    # A synthetic regression task: 20 inputs, a noisy nonlinear target; 20% held out.
    x = torch.randn(5000, 20)
    y = torch.sin(x[:, :5].sum(dim=1, keepdim=True)) + 0.1 * torch.randn(5000, 1)
    x, y = x.to(device), y.to(device)
    train_x, val_x, train_y, val_y = x[:4000], x[4000:], y[:4000], y[4000:]

    model = nn.Sequential(nn.Linear(20, args.units), nn.ReLU(), nn.Linear(args.units, 1)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for i in range(0, len(train_x), 100):
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[i : i + 100]), train_y[i : i + 100])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(val_x), val_y).item()
        print(f"epoch={epoch} val_loss={val_loss:.6f} train_loss={loss.item():.6f}", flush=True)


if __name__ == "__main__":
    main()
