"""Optuna's TPE ask cost, for the comparison in BENCHMARKS.md (same shape as
`caviar bench samplers`: 10 log-scale parameters, N complete trials, in-memory storage).

    pip install optuna==4.4.0
    python3 benches/optuna_ask_cost.py 100 1000
"""
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cost(n, asks=5):
    dists = {f"p{i}": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True) for i in range(10)}
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    rng = optuna.samplers.RandomSampler(seed=1)
    trials = []
    for i in range(n):
        params = {k: 10 ** (-4 * ((i * 7919 + j * 104729) % 1000) / 1000) for j, k in enumerate(dists)}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=float(i % 97)))
    study.add_trials(trials)
    start = time.perf_counter()
    for _ in range(asks):
        t = study.ask()
        for name, d in dists.items():
            t.suggest_float(name, d.low, d.high, log=True)
        study.tell(t, 1.0)
    return (time.perf_counter() - start) * 1000 / asks


if __name__ == "__main__":
    for n in map(int, sys.argv[1:] or ["100", "1000"]):
        print(f"optuna {optuna.__version__} TPESampler, {n} trials, 10 params: {cost(n):.1f} ms per ask")
