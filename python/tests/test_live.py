"""Panda mode: change a running trial's parameters while it trains, from Python or with
`caviar set`, and see the change take effect at a later step, recorded."""

import json
import threading
import time

import pytest

import caviar
from caviar import TrialState


def babysat(study, epochs, at_epoch, on_epoch):
    """An objective that reads lr every epoch (suggesting it again gives the current value),
    reports it, and calls `on_epoch(trial)` once at `at_epoch`."""

    def objective(trial):
        seen = []
        for epoch in range(epochs):
            lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
            seen.append(lr)
            trial.report(lr, epoch)
            if epoch == at_epoch:
                on_epoch(trial)
        trial.set_user_attr("seen", seen)
        return seen[-1]

    return objective


def test_a_change_from_python_takes_effect_at_a_later_step_and_is_recorded(sqlite_url):
    study = caviar.create_study(storage=sqlite_url, study_name="panda")
    study.enqueue_trial({"lr": 0.001})

    def change(trial):
        # Another handle on the same study, as another process would have.
        other = caviar.load_study(study_name="panda", storage=sqlite_url)
        asked = other.set_trial_params(trial.number, {"lr": 0.01}, note="day one is slow")
        assert asked == [{"name": "lr", "current": 0.001, "new": 0.01, "forced": False}]

    study.optimize(babysat(study, 8, 2, change), n_trials=1)
    (t,) = study.trials
    seen = t.user_attrs["seen"]
    # Asked after step 2's report, applied at step 3's report: epoch 4 on uses it.
    assert seen[:4] == [0.001] * 4 and seen[4:] == [0.01] * 4
    # The curve shows it.
    assert t.intermediate_values[3] == 0.001 and t.intermediate_values[4] == 0.01
    assert t.params["lr"] == 0.01
    (change,) = t.param_history
    assert change["old"] == 0.001 and change["new"] == 0.01
    assert change["applied_step"] == 3
    assert change["note"] == "day one is slow" and not change["forced"]
    assert "@" in change["who"]
    assert change["asked_ms"] <= change["applied_ms"]


def test_caviar_set_from_a_shell_checks_ranges_and_records_forcing(sqlite_url, cli):
    study = caviar.create_study(storage=sqlite_url, study_name="shell")
    study.enqueue_trial({"lr": 0.001})
    results = {}

    def from_shell(trial):
        number = str(trial.number)
        results["outside"] = cli(
            "--storage", sqlite_url, "set", "shell", number, "lr=5", check=False
        )
        results["unknown"] = cli(
            "--storage", sqlite_url, "set", "shell", number, "momentum=0.9", check=False
        )
        results["forced"] = cli(
            "--storage", sqlite_url, "set", "shell", number, "lr=2", "--force",
            "--note", "try a silly rate", "--json",
        )

    study.optimize(babysat(study, 5, 1, from_shell), n_trials=1)
    outside = results["outside"]
    assert outside.returncode == 2
    assert "`lr`" in outside.stderr and "outside float [0.0001, 1] log" in outside.stderr
    assert "--force" in outside.stderr
    assert results["unknown"].returncode == 2 and "no parameter `momentum`" in results["unknown"].stderr
    forced = json.loads(results["forced"].stdout)
    assert forced["changes"][0]["forced"] is True and forced["changes"][0]["new"] == 2.0
    listed = json.loads(cli("--storage", sqlite_url, "trials", "shell", "--json").stdout)
    (change,) = listed[0]["param_history"]
    assert change["forced"] is True and change["note"] == "try a silly rate"
    assert change["applied_step"] == 2 and change["old"] == 0.001 and change["new"] == 2.0
    assert listed[0]["params"]["lr"] == 2.0
    best = json.loads(cli("--storage", sqlite_url, "best", "shell", "--json").stdout)
    assert best[0]["changed"] is True and best[0]["param_history"][0]["new"] == 2.0
    text = cli("--storage", sqlite_url, "best", "shell").stdout
    assert "[changed while running: lr 0.001->2 after step 2]" in text, text
    # A finished trial takes no changes.
    done = cli("--storage", sqlite_url, "set", "shell", "0", "lr=0.1", check=False)
    assert done.returncode == 2 and "not running" in done.stderr


def test_changes_are_checked_before_any_is_asked():
    study = caviar.create_study()
    barrier = threading.Event()
    errors = []

    def objective(trial):
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_categorical("act", ["relu", "tanh"])
        try:
            study.set_trial_params(trial.number, {"lr": 0.1, "act": "gelu"})
        except ValueError as e:
            errors.append(str(e))
        trial.report(1.0, 0)
        barrier.set()
        return 1.0

    study.optimize(objective, n_trials=1)
    assert errors and "`act`" in errors[0]
    assert study.trials[0].param_history == []  # the valid lr change was not asked either
    with pytest.raises(ValueError, match="not running"):
        study.set_trial_params(0, {"lr": 0.1})


def test_pause_holds_a_trial_in_report_until_resumed_and_stop_completes_it(sqlite_url):
    study = caviar.create_study(storage=sqlite_url, study_name="held", direction="maximize")
    reported_at = {}

    def objective(trial):
        # Another handle on the same study, as another process would have.
        other = caviar.load_study(study_name="held", storage=sqlite_url)
        for epoch in range(200):
            trial.report(float(epoch), epoch)
            reported_at[epoch] = time.monotonic()
            if epoch == 2:
                other.pause_trial(trial.number, note="lunch")
                with pytest.raises(ValueError, match="already paused"):
                    other.pause_trial(trial.number)

                def resume_later():
                    time.sleep(1.0)
                    other.resume_trial(trial.number)

                threading.Thread(target=resume_later).start()
            if epoch == 6:
                other.stop_trial(trial.number, note="good enough")
            if trial.should_prune():
                raise caviar.TrialPruned()
            time.sleep(0.01)
        return -1.0

    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    # Asked after step 2, taken at step 3's report, which waited for the resume.
    assert reported_at[3] - reported_at[2] >= 0.9
    assert reported_at[4] - reported_at[3] < 0.5
    # Asked after step 6, taken at step 7's report; should_prune said yes and the raise that
    # followed recorded it complete with its last value, not pruned.
    assert t.state == TrialState.COMPLETE and t.value == 7.0
    assert max(t.intermediate_values) == 7
    with pytest.raises(ValueError, match="not running"):
        study.stop_trial(t.number)
