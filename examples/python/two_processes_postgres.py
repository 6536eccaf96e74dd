"""Two worker processes share one study on PostgreSQL (or SQLite): each runs
`load_study(...).optimize(...)`, and the study ends with both sets of trials.

    pip install ./python
    python examples/python/two_processes_postgres.py postgres://postgres@127.0.0.1:5432/test
"""

import subprocess
import sys

import caviar

WORKER = """
import math, sys, caviar
study = caviar.load_study(study_name="two-processes", storage=sys.argv[1])
def objective(trial):
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    layers = trial.suggest_int("layers", 1, 4)
    return (math.log10(lr) + 2.5) ** 2 + 0.1 * layers
study.optimize(objective, n_trials=int(sys.argv[2]), retries=1)
"""


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: two_processes_postgres.py STORAGE_URL [TRIALS_PER_PROCESS]")
    url = sys.argv[1]
    per_process = sys.argv[2] if len(sys.argv) > 2 else "30"
    caviar.create_study(
        storage=url,
        study_name="two-processes",
        load_if_exists=True,
        sampler=caviar.samplers.TPESampler(seed=0),
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, url, per_process]) for _ in range(2)
    ]
    codes = [w.wait() for w in workers]
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")
    study = caviar.load_study(study_name="two-processes", storage=url)
    by_worker = {}
    for t in study.trials:
        by_worker[t.worker] = by_worker.get(t.worker, 0) + 1
    print(f"trials: {len(study.trials)} from {len(by_worker)} processes")
    print(f"best: {study.best_value:.4f} with {study.best_params}")


if __name__ == "__main__":
    main()
