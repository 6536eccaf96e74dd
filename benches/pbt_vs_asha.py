"""PBT against ASHA and random search on MNIST at equal total epochs (issue 17's quality target).

The optimizer hyperparameters of examples/mnist_full.toml (Adam's lr, beta1, beta2, epsilon,
lr decay, weight decay, dropout) on the first 10,000 training images (8,000 train / 2,000
validation), a 2x100 network, 10 epochs per trial:

- random: 8 trials of 10 epochs (80 epochs), 2 workers;
- ASHA: 32 trials, rungs at 1, 3 and 9 epochs (reduction 3), 2 workers (about 75 epochs), and
  the same with 40 trials (about 105);
- PBT: a population of 8 trained at once for 10 epochs (80 epochs), decisions every 2 epochs;
- PBT with a screen: 26 members train one epoch, the best 6 go on with PBT for nine more
  (26 + 54 = 80 epochs).

Each method runs with seeds 0, 1 and 2 (seed of the sampler, of the split and of PBT). Prints a
Markdown table (best validation accuracy, the chosen configuration's test accuracy measured once,
epochs actually trained) and writes the learning-rate schedules PBT found (seed 0) as an SVG.

    cargo build --release
    python3 benches/pbt_vs_asha.py [--out benches/results]
"""

import argparse
import json
import math
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CAVIAR = os.environ.get("CAVIAR", os.path.join(HERE, "..", "target", "release", "caviar"))

COMMON = """name = "{name}"
direction = "maximize"
metric = "val_acc"
objective = "mnist"
trials = {trials}
workers = {workers}

[mnist]
images = 10000
validation_fraction = 0.2
seed = {seed}
test = true
epochs = 10
layers = 2
units = 100
batch_size = 64
optimizer = "adam"

[sampler]
kind = "random"
seed = {seed}

[params]
lr           = {{ low = 1e-4, high = 1.0, scale = "log" }}
momentum     = {{ low = 0.8, high = 0.999, scale = "reverse_log" }}
beta2        = {{ low = 0.99, high = 0.9999, scale = "reverse_log" }}
epsilon      = {{ low = 1e-9, high = 1e-6, scale = "log" }}
lr_decay     = {{ low = 1e-4, high = 0.3, scale = "log" }}
weight_decay = {{ low = 1e-8, high = 1e-3, scale = "log" }}
dropout      = {{ low = 0.0, high = 0.5 }}
"""

EXTRA = {
    "random": ("", 8, 2),
    "asha": ("\n[pruner]\nkind = \"asha\"\nmin_resource = 1\nreduction_factor = 3\n", 32, 2),
    # More trials, so that ASHA's epochs (which vary with timing) come to about 80 as well.
    "asha-40": ("\n[pruner]\nkind = \"asha\"\nmin_resource = 1\nreduction_factor = 3\n", 40, 2),
    "pbt": ("\n[pbt]\npopulation = 8\ninterval = 2\nseed = {seed}\n", 8, 8),
    # 26 members for one epoch, the best 6 of them for nine more: 26 + 54 = 80 epochs.
    "pbt-screen": ("\n[pbt]\npopulation = 6\nscreen = 26\ninterval = 2\nseed = {seed}\n", 26, 26),
}


def run(method, seed, work, pbt_keys="", sampler="random"):
    extra, trials, workers = EXTRA[method]
    if method.startswith("pbt") and pbt_keys:
        extra = extra.replace("interval = 2\n", "") + pbt_keys.replace(";", "\n") + "\n"
    name = f"{method}-{seed}"
    text = COMMON.format(name=name, trials=trials, workers=workers, seed=seed)
    text = text.replace('kind = "random"', f'kind = "{sampler}"')
    text += extra.format(seed=seed)
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(text)
    db = os.path.join(work, "bench.db")
    start = time.time()
    out = subprocess.run(
        [CAVIAR, "--storage", f"sqlite:{db}", "run", path, "--json"],
        capture_output=True, text=True, check=True,
    )
    seconds = time.time() - start
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    trials_json = json.loads(subprocess.run(
        [CAVIAR, "--storage", f"sqlite:{db}", "trials", name, "--json"],
        capture_output=True, text=True, check=True,
    ).stdout)
    # Epochs trained, from each trial's own log (a PBT member that loads a checkpoint skips or
    # repeats epochs, so its curve alone does not count them).
    conn = sqlite3.connect(db)
    epochs = 0
    for (log,) in conn.execute(
        "SELECT l.text FROM trial_logs l JOIN trials t ON t.id = l.trial_id "
        "JOIN studies s ON s.id = t.study_id WHERE s.name = ?", (name,)
    ):
        epochs += sum(1 for line in log.splitlines() if line.startswith("epoch="))
    conn.close()
    best = summary["best"][0]
    return {
        "method": method, "seed": seed, "best_val": best["value"],
        "test": summary["final_test_accuracy"], "epochs": epochs, "seconds": seconds,
        "trials": trials_json, "failed": summary["counts"]["failed"],
    }


def lr_schedules(trials, epochs=10):
    """Each member's learning rate per epoch, rebuilt from its initial value and its changes."""
    out = []
    # Members a screen stopped trained one epoch: they have no schedule to show.
    for t in (t for t in trials if t["state"] != "pruned"):
        changes = [c for c in t["param_history"] if c["name"] == "lr" and c["applied_step"]]
        lr = changes[0]["old"] if changes else t["params"]["lr"]
        series = []
        for epoch in range(1, epochs + 1):
            series.append(lr)
            for c in changes:
                if c["applied_step"] == epoch:
                    lr = c["new"]
        out.append((t["number"], t.get("value"), series))
    return out


def svg(schedules, path, epochs=10):
    width, height, left, bottom, top, right = 640, 360, 60, 40, 20, 20
    lows = [math.log10(v) for _, _, s in schedules for v in s]
    lo, hi = math.floor(min(lows)), math.ceil(max(lows))
    hi = max(hi, lo + 1)
    x = lambda e: left + (e - 1) / (epochs - 1) * (width - left - right)
    y = lambda v: top + (hi - math.log10(v)) / (hi - lo) * (height - top - bottom)
    best = max(schedules, key=lambda s: s[1] or -1)[0]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="14" text-anchor="middle">learning rate per epoch of each '
             f'PBT member (seed 0); the best member in red</text>']
    for d in range(lo, hi + 1):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(10 ** d)}" y2="{y(10 ** d)}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y(10 ** d) + 4}" '
                     f'text-anchor="end">1e{d}</text>')
    for e in range(1, epochs + 1):
        parts.append(f'<text x="{x(e)}" y="{height - bottom + 16}" text-anchor="middle">{e}</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle">epoch</text>')
    for number, _, series in sorted(schedules, key=lambda s: s[0] == best):
        colour, w = ("#d62728", 2.5) if number == best else ("#1f77b4", 1)
        points = " ".join(f"{x(e + 1):.1f},{y(v):.1f}" for e, v in enumerate(series))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="{w}"/>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default="random,asha,asha-40,pbt,pbt-screen")
    parser.add_argument("--pbt", default="", help="extra keys of [pbt], e.g. 'interval = 1'")
    parser.add_argument("--sampler", action="append", default=[],
                        help="METHOD=KIND: that method's sampler (default random), e.g. pbt=sobol")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    samplers = dict(s.split("=", 1) for s in args.sampler)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):
            for method in args.methods.split(","):
                r = run(method, seed, work, args.pbt, samplers.get(method, "random"))
                rows.append(r)
                print(f"{method} seed {seed}: best val {r['best_val']:.4f} test {r['test']:.4f} "
                      f"epochs {r['epochs']}, {r['failed']} failed ({r['seconds']:.0f} s)", flush=True)
                if method == "pbt-screen" and seed == 0:
                    svg(lr_schedules(r["trials"]), os.path.join(args.out, "pbt_lr_schedules.svg"))
    print("\n| method | seed | best val_acc | test acc (chosen, once) | epochs trained | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['seed']} | {r['best_val']:.4f} | {r['test']:.4f} | "
              f"{r['epochs']} | {r['seconds']:.0f} |")
    for method in args.methods.split(","):
        mine = [r for r in rows if r["method"] == method]
        print(f"| {method} | mean | {statistics.mean(r['best_val'] for r in mine):.4f} | "
              f"{statistics.mean(r['test'] for r in mine):.4f} | "
              f"{statistics.mean(r['epochs'] for r in mine):.0f} | "
              f"{statistics.mean(r['seconds'] for r in mine):.0f} |")


if __name__ == "__main__":
    main()
