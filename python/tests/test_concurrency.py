"""Threads and processes sharing studies, as `caviar worker` processes do."""

import os
import signal
import threading

import pytest

import caviar
from caviar import TrialState

from conftest import run_python


def test_n_jobs_runs_objectives_at_the_same_time():
    study = caviar.create_study()
    # Each pair of trials waits for the other: this passes only if two run at once.
    barrier = threading.Barrier(2, timeout=20)
    threads = set()

    def objective(trial):
        barrier.wait()
        threads.add(threading.get_ident())
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=6, n_jobs=2)
    assert len(study.trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(threads) == 2


def test_n_jobs_keeps_the_trial_count_and_numbers():
    study = caviar.create_study(sampler=caviar.samplers.TPESampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=200, n_jobs=4)
    assert sorted(t.number for t in study.trials) == list(range(200))


WORKER = r"""
import sys, caviar
study = caviar.load_study(study_name="shared", storage=sys.argv[1])
study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=int(sys.argv[2]))
print("done", flush=True)
"""


def processes_share_a_study(url):
    caviar.create_study(storage=url, study_name="shared")
    workers = [run_python(WORKER, url, "25") for _ in range(3)]
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert "done" in out
    trials = caviar.load_study(study_name="shared", storage=url).trials
    assert sorted(t.number for t in trials) == list(range(75))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.worker for t in trials}) == 3


def test_processes_share_a_sqlite_study(sqlite_url):
    processes_share_a_study(sqlite_url)


def test_processes_share_a_postgres_study(postgres_url):
    processes_share_a_study(postgres_url)


VICTIM = r"""
import sys, time, caviar
study = caviar.load_study(study_name="victim", storage=sys.argv[1])
def objective(trial):
    trial.suggest_float("lr", 1e-5, 1, log=True)
    trial.report(0.5, 1)
    print("started", flush=True)
    time.sleep(120)
    return 0.0
study.optimize(objective, n_trials=1)
"""


def killed_worker_is_recovered(url):
    caviar.create_study(storage=url, study_name="victim")
    victim = run_python(VICTIM, url)
    assert victim.stdout.readline().strip() == "started"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    study = caviar.load_study(study_name="victim", storage=url)
    (lost,) = study.trials
    assert lost.state == TrialState.RUNNING
    study.optimize(lambda t: t.suggest_float("lr", 1e-5, 1, log=True), n_trials=1, retries=1)
    trials = study.trials
    assert trials[0].state == TrialState.FAIL
    assert "orphaned" in trials[0].error and str(victim.pid) in trials[0].error
    assert trials[0].intermediate_values == {1: 0.5}
    # The retry ran the lost trial's parameters again.
    retried = [t for t in trials[1:] if t.params == lost.params]
    assert retried and retried[0].state == TrialState.COMPLETE


def test_a_killed_process_leaves_a_trial_the_others_recover_sqlite(sqlite_url):
    killed_worker_is_recovered(sqlite_url)


def test_a_killed_process_leaves_a_trial_the_others_recover_postgres(postgres_url):
    killed_worker_is_recovered(postgres_url)
