"""What an objective can do to its trial: fail, be pruned, return junk, be interrupted."""

import signal
import sys
import time

import pytest

import caviar
from caviar import TrialState

from conftest import run_python


def test_an_exception_fails_the_trial_with_its_traceback_and_is_raised():
    study = caviar.create_study()

    def broken(trial):
        trial.suggest_float("x", 0, 1)
        if trial.number == 2:
            raise ZeroDivisionError("no data in this fold")
        return 1.0

    with pytest.raises(ZeroDivisionError, match="no data in this fold"):
        study.optimize(broken, n_trials=10)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL]
    error = trials[2].error
    assert "Traceback (most recent call last)" in error
    assert "ZeroDivisionError: no data in this fold" in error
    assert "in broken" in error


def test_caught_exceptions_fail_their_trial_and_the_study_goes_on():
    study = caviar.create_study()

    def flaky(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number % 2:
            raise ValueError(f"diverged at trial {trial.number}")
        return x

    study.optimize(flaky, n_trials=6, catch=(ValueError,))
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL] * 3
    assert "ValueError: diverged at trial 3" in study.trials[3].error
    # A single class works too, as in Optuna.
    study.optimize(flaky, n_trials=2, catch=ValueError)
    assert len(study.trials) == 8


def test_none_nan_and_junk_fail_the_trial_but_not_the_study():
    study = caviar.create_study()
    returns = [None, float("nan"), "0.5", 0.25, float("inf")]

    study.optimize(lambda t: returns[t.number], n_trials=5)
    states = [t.state for t in study.trials]
    assert states == [
        TrialState.FAIL,
        TrialState.FAIL,
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.FAIL,
    ]
    assert "returned None" in study.trials[0].error
    assert "not a number" in study.trials[2].error
    assert study.best_value == 0.25


def test_report_and_should_prune_stop_bad_curves():
    study = caviar.create_study(
        sampler=caviar.samplers.RandomSampler(seed=0),
        pruner=caviar.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    epochs_run = []

    def train(trial):
        quality = trial.suggest_float("quality", 0, 1)
        loss = 1.0
        for epoch in range(10):
            loss = quality + 1.0 / (epoch + 1)
            trial.report(loss, epoch)
            if trial.should_prune():
                epochs_run.append(epoch + 1)
                raise caviar.TrialPruned()
        epochs_run.append(10)
        return loss

    study.optimize(train, n_trials=30)
    pruned = study.get_trials(states=[TrialState.PRUNED])
    assert len(pruned) >= 5
    assert sum(epochs_run) < 30 * 10 * 0.8
    # No trial was pruned during the warm-up or before three trials completed.
    assert all(t.last_step >= 1 for t in pruned)
    assert all(t.number >= 3 for t in pruned)
    # The pruned ones were worse than the median where they stopped.
    completed = study.get_trials(states=[TrialState.COMPLETE])
    mean_pruned = sum(t.params["quality"] for t in pruned) / len(pruned)
    mean_complete = sum(t.params["quality"] for t in completed) / len(completed)
    assert mean_pruned > mean_complete


def test_the_trial_object_dies_with_its_trial():
    study = caviar.create_study()
    kept = []
    study.optimize(lambda t: kept.append(t) or t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(RuntimeError, match="has finished"):
        kept[0].suggest_float("x", 0, 1)


def test_suggestions_are_checked():
    study = caviar.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="`lr`"):
        trial.suggest_float("lr", 0, 1, log=True)
    with pytest.raises(ValueError, match="step"):
        trial.suggest_float("x", 1e-3, 1, log=True, step=0.1)
    with pytest.raises(ValueError, match="reverse_log"):
        trial.suggest_float("b", 0.9, 0.99, scale="backwards")
    with pytest.raises(ValueError, match="bool, int, float or str"):
        trial.suggest_categorical("c", [object()])
    x = trial.suggest_float("x", 0, 1)
    assert trial.suggest_float("x", 0, 1) == x
    with pytest.raises(ValueError, match="use one definition"):
        trial.suggest_float("x", 0, 2)


INTERRUPTED = r"""
import sys, time, caviar
study = caviar.create_study(storage=sys.argv[1], study_name="ctrl-c")
def slow(trial):
    trial.suggest_float("x", 0, 1)
    sys.stdout.write(f"started {trial.number}\n")  # one write: two threads print
    sys.stdout.flush()
    if sys.argv[2] == "1":
        time.sleep(60)  # one long call, on the main thread as in Optuna
    else:
        for step in range(600):  # a training loop, on the main thread or another
            time.sleep(0.1)
    return 1.0
try:
    study.optimize(slow, n_trials=4, n_jobs=int(sys.argv[2]))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_marks_running_trials_interrupted(sqlite_url, jobs):
    child = run_python(INTERRUPTED, sqlite_url, str(jobs))
    for _ in range(jobs):
        assert child.stdout.readline().startswith("started")
    start = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert time.monotonic() - start < 5, "the sleeping objectives were not interrupted"
    assert child.returncode == 3, err
    assert "interrupted" in out
    trials = caviar.load_study(study_name="ctrl-c", storage=sqlite_url).trials
    assert len(trials) == jobs
    assert all(t.state == TrialState.FAIL and t.error == "interrupted" for t in trials)
