"""caviar's Python package against Optuna: the framework's own time per trial.

Each measurement runs in a fresh interpreter; caviar and Optuna alternate, round by round, so
drift of a shared machine hits both. Prints one Markdown table per experiment.

    pip install ./python optuna==5.0.0 numpy
    python benches/python_vs_optuna.py --rounds 3

Experiments:
  memory   an objective that returns at once, 5 float parameters, TPE, N trials, in memory
  sqlite   the same on a SQLite file (caviar `sqlite:PATH`, Optuna `sqlite:///PATH`)
  jobs     caviar only: a CPU-bound numpy objective with n_jobs=1 and n_jobs=2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
which, where, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def objective(trial):
    return sum((trial.suggest_float(f"x{i}", -5.0, 5.0) - 1.0) ** 2 for i in range(5))

if which == "caviar":
    import caviar
    storage = None if where == "memory" else "sqlite:" + where
    make = lambda: caviar.create_study(storage=storage, sampler=caviar.samplers.TPESampler(seed=1))
else:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = None if where == "memory" else "sqlite:///" + where
    make = lambda: optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=1))
start = time.perf_counter()
study = make()
study.optimize(objective, n_trials=n)
seconds = time.perf_counter() - start
assert len(study.trials) == n
print(json.dumps({"seconds": seconds, "best": study.best_value}))
"""

JOBS_CHILD = r"""
import json, sys, time
import numpy as np
import caviar
jobs, n = int(sys.argv[1]), int(sys.argv[2])
matrix = np.random.default_rng(0).standard_normal((400, 400))

def objective(trial):
    x = trial.suggest_float("x", -1.0, 1.0)
    m = matrix * x
    for _ in range(20):
        m = np.tanh(m @ matrix) # numpy releases the GIL inside the product
    return float(m.mean())

study = caviar.create_study(sampler=caviar.samplers.RandomSampler(seed=0))
start = time.perf_counter()
study.optimize(objective, n_trials=n, n_jobs=jobs)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def run(code, *args):
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def versus(where_of, trials, rounds, label):
    times = {"caviar": [], "optuna": []}
    for r in range(rounds):
        order = ["caviar", "optuna"] if r % 2 == 0 else ["optuna", "caviar"]
        for which in order:
            with tempfile.TemporaryDirectory() as tmp:
                where = where_of(tmp)
                times[which].append(run(CHILD, which, where, trials)["seconds"])
        ratio = times["optuna"][-1] / times["caviar"][-1]
        print(
            f"| {label} | {r + 1} | {times['caviar'][-1] / trials * 1000:.3f} | "
            f"{times['optuna'][-1] / trials * 1000:.2f} | {ratio:.0f}x |",
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"| {label} | median | {med['caviar'] / trials * 1000:.3f} | "
        f"{med['optuna'] / trials * 1000:.2f} | **{med['optuna'] / med['caviar']:.0f}x** |",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--jobs-trials", type=int, default=40)
    parser.add_argument("--only", choices=["memory", "sqlite", "jobs"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["memory", "sqlite", "jobs"])
    print("| storage | round | caviar ms/trial | Optuna ms/trial | Optuna / caviar |")
    print("|---|---|---|---|---|")
    if "memory" in only:
        versus(lambda tmp: "memory", args.trials, args.rounds, "memory")
    if "sqlite" in only:
        versus(lambda tmp: os.path.join(tmp, "b.db"), args.trials, args.rounds, "SQLite")
    if "jobs" in only:
        print()
        print("| round | n_jobs=1 (s) | n_jobs=2 (s) | speed-up |")
        print("|---|---|---|---|")
        ups = []
        for r in range(args.rounds):
            order = [1, 2] if r % 2 == 0 else [2, 1]
            secs = {}
            for jobs in order:
                secs[jobs] = run(JOBS_CHILD, jobs, args.jobs_trials)["seconds"]
            ups.append(secs[1] / secs[2])
            print(f"| {r + 1} | {secs[1]:.2f} | {secs[2]:.2f} | {ups[-1]:.2f}x |", flush=True)
        print(f"| median | | | **{statistics.median(ups):.2f}x** |")


if __name__ == "__main__":
    main()
