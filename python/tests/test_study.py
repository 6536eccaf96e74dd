"""The study API with Optuna's names: create, load, optimize, ask and tell, best, trials."""

import sys

import pytest

import caviar
from caviar import TrialState


def quadratic(trial):
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", -3, 3)
    return (x - 2) ** 2 + y * y


def test_optimize_runs_n_trials_and_finds_the_best():
    study = caviar.create_study(sampler=caviar.samplers.TPESampler(seed=3))
    study.optimize(quadratic, n_trials=60)
    assert len(study.trials) == 60
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    best = study.best_trial
    assert best.value == min(t.value for t in study.trials)
    assert study.best_value == best.value
    assert study.best_params == best.params
    assert set(best.params) == {"x", "y"}
    assert study.best_value < 1.0
    # A second call adds n_trials more, as Optuna's does.
    study.optimize(quadratic, n_trials=5)
    assert len(study.trials) == 65
    assert [t.number for t in study.trials] == list(range(65))


def test_maximize_and_directions():
    study = caviar.create_study(direction="maximize")
    study.optimize(lambda t: -quadratic(t), n_trials=20)
    assert study.direction == caviar.StudyDirection.MAXIMIZE
    assert study.best_value == max(t.value for t in study.trials)
    enum_study = caviar.create_study(direction=caviar.StudyDirection.MAXIMIZE)
    assert enum_study.direction == caviar.StudyDirection.MAXIMIZE
    with pytest.raises(ValueError, match="minimize"):
        caviar.create_study(direction="up")


def test_timeout_stops_starting_trials():
    import time

    study = caviar.create_study()
    start = time.monotonic()
    study.optimize(lambda t: time.sleep(0.05) or t.suggest_float("x", 0, 1), timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.45 < elapsed < 3.0
    assert 3 <= len(study.trials) <= 12


def test_ask_and_tell():
    study = caviar.create_study(sampler=caviar.samplers.RandomSampler(seed=0))
    trial = study.ask()
    x = trial.suggest_float("x", 0, 1)
    assert trial.params == {"x": x}
    frozen = study.tell(trial, x * 2)
    assert frozen.state == TrialState.COMPLETE and frozen.value == x * 2
    # By number, and the other states.
    second = study.ask()
    second.suggest_float("x", 0, 1)
    assert study.tell(second.number, state=TrialState.PRUNED).state == TrialState.PRUNED
    third = study.ask()
    assert study.tell(third, state=TrialState.FAIL).state == TrialState.FAIL
    with pytest.raises(ValueError, match="told already"):
        study.tell(third, 1.0)
    with pytest.raises(RuntimeError, match="has finished"):
        third.suggest_float("x", 0, 1)
    fourth = study.ask()
    with pytest.raises(ValueError, match="cannot end a trial"):
        study.tell(fourth, 1.0, state=TrialState.RUNNING)
    study.tell(fourth, [0.5])
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
        TrialState.COMPLETE,
    ]
    assert study.best_value == 0.5


def test_best_trial_of_an_empty_study_says_why():
    study = caviar.create_study(study_name="empty")
    with pytest.raises(ValueError, match="no complete trial"):
        study.best_trial


def test_sqlite_study_is_stored_and_loaded(sqlite_url):
    study = caviar.create_study(storage=sqlite_url, study_name="stored")
    study.optimize(quadratic, n_trials=10)
    again = caviar.load_study(study_name="stored", storage=sqlite_url)
    assert len(again.trials) == 10
    assert again.best_value == study.best_value
    again.optimize(quadratic, n_trials=5)
    assert len(study.trials) == 15
    names = caviar.get_all_study_names(sqlite_url)
    assert names == ["stored"]
    (summary,) = caviar.get_all_study_summaries(storage=sqlite_url)
    assert summary.study_name == "stored" and summary.n_trials == 15
    assert summary.best_value == study.best_value


def test_optuna_sqlite_spelling_is_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = caviar.create_study(storage="sqlite:///optuna-style.db", study_name="s")
    study.optimize(quadratic, n_trials=2)
    assert (tmp_path / "optuna-style.db").exists()
    assert len(caviar.load_study(study_name="s", storage="sqlite:optuna-style.db").trials) == 2


def test_duplicate_and_missing_studies(sqlite_url):
    caviar.create_study(storage=sqlite_url, study_name="a")
    with pytest.raises(caviar.DuplicatedStudyError, match="load_if_exists"):
        caviar.create_study(storage=sqlite_url, study_name="a")
    same = caviar.create_study(storage=sqlite_url, study_name="a", load_if_exists=True)
    assert same.study_name == "a"
    with pytest.raises(KeyError, match="no study"):
        caviar.load_study(study_name="b", storage=sqlite_url)
    with pytest.raises(ValueError, match="not understood"):
        caviar.create_study(storage="mysql://x")
    with pytest.raises(ValueError, match="needs storage"):
        caviar.load_study(study_name="a")


def test_frozen_trials_carry_curves_and_times(sqlite_url):
    study = caviar.create_study(storage=sqlite_url)

    def curve(trial):
        lr = trial.suggest_float("lr", 1e-4, 1, log=True)
        for epoch in range(3):
            trial.report(lr * (epoch + 1), epoch)
        return lr

    study.optimize(curve, n_trials=3)
    for t in caviar.load_study(study_name=study.study_name, storage=sqlite_url).trials:
        assert t.intermediate_values == {
            0: pytest.approx(t.value),
            1: pytest.approx(2 * t.value),
            2: pytest.approx(3 * t.value),
        }
        assert t.last_step == 2
        assert t.datetime_start <= t.datetime_complete
        assert t.duration.total_seconds() >= 0
        assert t.distributions["lr"]["scale"] == "log"


def test_get_trials_filters_by_state():
    study = caviar.create_study()

    def sometimes(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number % 3 == 0:
            raise caviar.TrialPruned()
        return x

    study.optimize(sometimes, n_trials=9)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert [t.number for t in pruned] == [0, 3, 6]
    assert len(study.get_trials(states=[TrialState.COMPLETE])) == 6


def test_trials_dataframe_without_pandas_says_how_to_get_it(monkeypatch):
    study = caviar.create_study()
    study.optimize(quadratic, n_trials=2)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(ImportError, match="pip install pandas"):
        study.trials_dataframe()


def test_trials_dataframe_has_optunas_columns():
    pd = pytest.importorskip("pandas", reason="pandas is not installed here")
    study = caviar.create_study()
    study.optimize(quadratic, n_trials=4)
    frame = study.trials_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["number"]) == [0, 1, 2, 3]
    assert {"value", "params_x", "params_y", "state", "duration"} <= set(frame.columns)
    assert list(frame["value"]) == [t.value for t in study.trials]


def test_bad_arguments_name_the_fix():
    study = caviar.create_study()
    with pytest.raises(ValueError, match="n_jobs"):
        study.optimize(quadratic, n_trials=1, n_jobs=0)
    with pytest.raises(ValueError, match="timeout"):
        study.optimize(quadratic, n_trials=1, timeout=-1)
    with pytest.raises(ValueError, match="n_trials"):
        study.optimize(quadratic, n_trials=-1)
    with pytest.raises(TypeError, match="caviar.samplers"):
        caviar.create_study(sampler=object())


def test_enqueued_values_run_first_and_the_rest_is_sampled(sqlite_url):
    study = caviar.create_study(storage=sqlite_url, sampler=caviar.samplers.TPESampler(seed=0))
    study.enqueue_trial({"lr": 0.01, "layers": 3})
    study.enqueue_trial({"lr": 1})  # an int for a float parameter is that float
    study.enqueue_trial({"lr": 0.01, "layers": 3}, skip_if_exists=True)  # already queued

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1, log=True)
        layers = trial.suggest_int("layers", 1, 4)
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        return lr * layers + (act == "tanh")

    study.optimize(objective, n_trials=4)
    trials = study.trials
    assert len(trials) == 4
    assert trials[0].params["lr"] == 0.01 and trials[0].params["layers"] == 3
    assert trials[0].params["act"] in ("relu", "tanh")
    assert trials[1].params["lr"] == 1.0 and isinstance(trials[1].params["lr"], float)
    # The stored distributions are the suggested ones, so samplers learn from these trials.
    assert trials[0].distributions["lr"]["type"] == "float"
    assert trials[0].distributions["lr"]["scale"] == "log"
    assert trials[0].distributions["layers"]["type"] == "int"


def test_an_enqueued_value_outside_its_distribution_fails_that_trial():
    study = caviar.create_study()
    study.enqueue_trial({"lr": 5.0})
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1, log=True), n_trials=2, catch=ValueError)
    first, second = study.trials
    assert first.state == TrialState.FAIL
    assert "enqueued value 5 lies outside" in first.error
    assert second.state == TrialState.COMPLETE
    study.enqueue_trial({"lr": 0.1}, user_attrs={"why": "the paper's setting"})
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1, log=True), n_trials=1)
    assert study.trials[2].params["lr"] == 0.1
    assert study.trials[2].user_attrs == {"why": "the paper's setting"}
    with pytest.raises(ValueError, match="bool, int, float or str"):
        study.enqueue_trial({"lr": [0.1]})


def test_user_attributes_of_studies_and_trials(sqlite_url, cli):
    import json

    study = caviar.create_study(storage=sqlite_url, study_name="attrs")
    study.set_user_attr("dataset", {"name": "mnist", "split": 0.2})

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.set_user_attr("train_loss", x / 2)
        trial.set_user_attr("train_loss", x / 3)  # replaced
        trial.set_user_attr("tags", ["fast", trial.number])
        assert trial.user_attrs["train_loss"] == x / 3
        return x

    seen = []
    study.optimize(objective, n_trials=3, callbacks=[lambda s, t: seen.append(t.user_attrs)])
    assert study.user_attrs == {"dataset": {"name": "mnist", "split": 0.2}}
    again = caviar.load_study(study_name="attrs", storage=sqlite_url)
    for t in again.trials:
        assert t.user_attrs == {"train_loss": t.params["x"] / 3, "tags": ["fast", t.number]}
    assert seen == [t.user_attrs for t in again.trials]
    assert again.best_trial.user_attrs["tags"][0] == "fast"
    listed = json.loads(cli("--storage", sqlite_url, "trials", "attrs", "--json").stdout)
    assert [t["user_attrs"]["tags"] for t in listed] == [["fast", n] for n in range(3)]
    with pytest.raises(ValueError, match="JSON-serializable"):
        study.set_user_attr("bad", object())


def test_delete_study_removes_it_and_frees_its_name(sqlite_url):
    for name in ("a", "b"):
        caviar.create_study(storage=sqlite_url, study_name=name).optimize(quadratic, n_trials=3)
    caviar.delete_study(study_name="a", storage=sqlite_url)
    assert caviar.get_all_study_names(sqlite_url) == ["b"]
    assert len(caviar.load_study(study_name="b", storage=sqlite_url).trials) == 3
    fresh = caviar.create_study(storage=sqlite_url, study_name="a")
    assert fresh.trials == []
    with pytest.raises(KeyError, match="no study"):
        caviar.delete_study(study_name="zzz", storage=sqlite_url)


def test_show_progress_bar_counts_trials_and_the_best(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain line, whatever is installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    study = caviar.create_study(study_name="bar")
    study.optimize(quadratic, n_trials=5, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "bar: 5/5 trials, best " in err
    assert f"best {study.best_value:.6g}" in err.splitlines()[-1]


def test_defaults_are_auto_and_optunas_median_rule(sqlite_url):
    import json

    study = caviar.create_study(storage=sqlite_url, study_name="defaults")

    def curve(trial):
        level = trial.suggest_float("level", 0, 1)
        for step in range(8):
            trial.report(level + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise caviar.TrialPruned()
        return level

    study.optimize(curve, n_trials=30)
    assert study.get_trials(states=[TrialState.PRUNED]), "the median rule pruned nothing"
    import sqlite3

    path = sqlite_url.split(":", 1)[1]
    (spec,) = sqlite3.connect(path).execute("SELECT spec FROM studies").fetchone()
    spec = json.loads(spec)
    assert spec["sampler"]["kind"] == "auto" and spec["pruner"]["kind"] == "median"


def test_stop_from_a_callback_ends_optimize():
    study = caviar.create_study()

    def enough(study, trial):
        if trial.number == 4:
            study.stop()

    study.optimize(quadratic, n_trials=100, callbacks=[enough])
    assert len(study.trials) == 5
    # A new optimize starts afresh.
    study.optimize(quadratic, n_trials=3)
    assert len(study.trials) == 8
    with pytest.raises(RuntimeError, match="running optimize"):
        study.stop()


def test_optunas_older_suggest_names():
    study = caviar.create_study()
    trial = study.ask()
    assert 0.5 <= trial.suggest_uniform("u", 0.5, 2.0) <= 2.0
    assert 1e-5 <= trial.suggest_loguniform("l", 1e-5, 1e-1) <= 1e-1
    d = trial.suggest_discrete_uniform("d", 0.0, 1.0, 0.25)
    assert d in (0.0, 0.25, 0.5, 0.75, 1.0)
    frozen = study.tell(trial, 1.0)
    assert frozen.distributions["l"]["scale"] == "log"
    assert frozen.distributions["d"]["step"] == 0.25


def test_logging_names_exist_and_record_the_verbosity():
    caviar.logging.set_verbosity(caviar.logging.WARNING)
    assert caviar.logging.get_verbosity() == caviar.logging.WARNING
    caviar.logging.set_verbosity(caviar.logging.INFO)
    caviar.logging.disable_default_handler()


def test_trials_dataframe_attrs_and_multi_index():
    pytest.importorskip("pandas", reason="pandas is not installed here")
    study = caviar.create_study()

    def objective(trial):
        trial.set_user_attr("fold", trial.number % 2)
        return quadratic(trial)

    study.optimize(objective, n_trials=3)
    frame = study.trials_dataframe(attrs=("number", "params", "user_attrs"))
    assert list(frame.columns) == ["number", "params_x", "params_y", "user_attrs_fold"]
    multi = study.trials_dataframe(attrs=("number", "value", "params"), multi_index=True)
    assert ("params", "x") in multi.columns and ("value", "") in multi.columns
    with pytest.raises(ValueError, match="not known"):
        study.trials_dataframe(attrs=("system_attrs",))


def test_warm_start_learns_from_an_earlier_study_and_is_remembered(sqlite_url):
    def objective(trial):
        return (trial.suggest_float("x", -5.0, 5.0) - 2.0) ** 2

    def tpe(seed):
        return caviar.samplers.TPESampler(seed=seed)

    old = caviar.create_study(study_name="old", storage=sqlite_url, sampler=tpe(1))
    old.optimize(objective, n_trials=40)
    warm_wins = 0
    for seed in range(2, 7):
        warm = caviar.create_study(
            study_name=f"warm{seed}", storage=sqlite_url, sampler=tpe(seed), warm_start=["old"]
        )
        warm.optimize(objective, n_trials=10)
        cold = caviar.create_study(study_name=f"cold{seed}", storage=sqlite_url, sampler=tpe(seed))
        cold.optimize(objective, n_trials=10)
        # The old trials are not the new study's own.
        assert len(warm.trials) == 10
        assert warm.user_attrs["warm_start"] == [{"study": "old", "trials": 40}]
        warm_wins += warm.best_value < cold.best_value
    # The model uses the old trials from the first trial on; a cold TPE samples at random
    # for its first ten.
    assert warm_wins >= 4, warm_wins

    # Reopened (as another process would), the study keeps its prior: five trials, a reload,
    # five more suggest what ten in one go did.
    split = caviar.create_study(
        study_name="split", storage=sqlite_url, sampler=tpe(2), warm_start=["old"]
    )
    split.optimize(objective, n_trials=5)
    again = caviar.load_study(study_name="split", storage=sqlite_url, sampler=tpe(2))
    again.optimize(objective, n_trials=5)
    whole = caviar.load_study(study_name="warm2", storage=sqlite_url)
    assert [t.params for t in again.trials] == [t.params for t in whole.trials]

    with pytest.raises(ValueError, match="`nope`, which is not a study"):
        caviar.create_study(study_name="bad", storage=sqlite_url, warm_start=["nope"])


def test_report_keeps_other_metrics_as_their_own_series(sqlite_url, cli):
    import json

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        for epoch in (1, 2):
            trial.report(x * epoch, epoch, metrics={"train_loss": x / epoch, "lr": 0.1})
        trial.report(x * 3, 3)
        return x

    study = caviar.create_study(study_name="m", storage=sqlite_url)
    study.optimize(objective, n_trials=2)
    listed = json.loads(cli("--storage", sqlite_url, "trials", "m", "--json").stdout)
    for t in listed:
        x = t["params"]["x"]
        assert t["intermediate"] == [[1, x], [2, 2 * x], [3, 3 * x]]
        assert t["metrics"] == {"lr": [[1, 0.1], [2, 0.1]], "train_loss": [[1, x], [2, x / 2]]}
    with pytest.raises(TypeError):
        study.ask().report(1.0, 1, metrics={"lr": "fast"})


def test_constraints_on_reported_values_keep_infeasible_trials_out_of_the_best():
    study = caviar.create_study(
        direction="maximize",
        sampler=caviar.samplers.TPESampler(seed=0, n_startup_trials=5),
        constraints=["memory_mb <= 400", "value > 0.1"],
    )

    def objective(trial):
        width = trial.suggest_int("width", 1, 10)
        trial.report(width / 10, 0, metrics={"memory_mb": width * 50.0})
        return width / 10

    study.optimize(objective, n_trials=40)
    trials = study.trials
    feasible = [t for t in trials if t.feasible]
    infeasible = [t for t in trials if not t.feasible]
    assert feasible and infeasible
    for t in trials:
        width = t.params["width"]
        assert t.feasible == (2 <= width <= 8), (width, t.system_attrs)
        assert t.system_attrs["constraints"][0] == width * 50.0 - 400.0
        assert t.state == caviar.TrialState.COMPLETE
    assert study.best_trial.params["width"] == 8
    assert study.best_value == 0.8
    # The stored study keeps them; other constraints are refused, and bad ones name the fix.
    with pytest.raises(ValueError, match="KEY <= NUMBER"):
        caviar.create_study(constraints=["memory_mb =< 4"])


def test_a_samplers_constraints_func_decides_feasibility_as_in_optuna(tmp_path):
    storage = f"sqlite:{tmp_path / 'c.db'}"

    def constraints(trial):
        return [trial.user_attrs["c"]]

    sampler = caviar.samplers.GPSampler(seed=1, n_startup_trials=5, constraints_func=constraints)
    study = caviar.create_study(storage=storage, study_name="gp-c", sampler=sampler)

    def objective(trial):
        x = trial.suggest_float("x", -3.0, 3.0)
        # Feasible only for x >= 1: the optimum of x² under it is on the boundary.
        trial.set_user_attr("c", 1.0 - x)
        return x * x

    study.optimize(objective, n_trials=25)
    best = study.best_trial
    assert best.params["x"] >= 1.0
    assert best.value < 1.1
    assert best.system_attrs["constraints"] == [pytest.approx(1.0 - best.params["x"])]
    # ask and tell call it too.
    trial = study.ask()
    x = trial.suggest_float("x", -3.0, 3.0)
    trial.set_user_attr("c", 5.0)
    frozen = study.tell(trial, 0.0)
    assert frozen.system_attrs["constraints"] == [5.0]
    assert not frozen.feasible
    assert study.best_trial.number == best.number
    # Another process sees the same feasibility.
    again = caviar.load_study(study_name="gp-c", storage=storage)
    assert again.best_trial.number == best.number


def zdt1(trial):
    x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(4)]
    g = 1.0 + 9.0 * sum(x[1:]) / 3.0
    return x[0], g * (1.0 - (x[0] / g) ** 0.5)


@pytest.mark.parametrize(
    "sampler",
    [caviar.samplers.NSGAIISampler(population_size=12, seed=0), caviar.samplers.TPESampler(seed=0)],
)
def test_several_objectives_give_a_pareto_front_as_in_optuna(tmp_path, sampler):
    storage = f"sqlite:{tmp_path / 'mo.db'}"
    study = caviar.create_study(
        storage=storage, study_name="zdt1", directions=["minimize", "minimize"], sampler=sampler
    )
    assert study.directions == [caviar.StudyDirection.MINIMIZE] * 2
    study.optimize(zdt1, n_trials=60)
    # ask and tell with two values, and a wrong count refused.
    trial = study.ask()
    a, b = zdt1(trial)
    frozen = study.tell(trial, [a, b])
    assert frozen.values == [a, b]
    with pytest.raises(ValueError, match="this study has 2 objectives"):
        study.tell(study.ask(), 1.0)
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(trials) == 61
    front = study.best_trials
    assert front
    dominated = lambda v, w: w[0] <= v[0] and w[1] <= v[1] and w != v
    numbers = {t.number for t in front}
    for t in trials:
        assert len(t.values) == 2
        assert (t.number in numbers) == (not any(dominated(t.values, o.values) for o in trials))
    with pytest.raises(RuntimeError, match="best_trials"):
        study.best_trial
    # Another process sees the same front; the caviar CLI prints it.
    again = caviar.load_study(study_name="zdt1", storage=storage)
    assert {t.number for t in again.best_trials} == numbers
    with pytest.raises(ValueError, match="does not prune"):
        caviar.create_study(directions=["minimize", "maximize"], pruner=caviar.pruners.MedianPruner())
    with pytest.raises(ValueError, match="NSGAIISampler or TPESampler"):
        caviar.create_study(directions=["minimize", "maximize"], sampler=caviar.samplers.GPSampler())
