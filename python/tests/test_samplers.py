"""Every sampler: suggestions inside their distributions and on their steps, seeds that
reproduce, the reverse-log scale, conditional parameters."""

import math
import random

import pytest

import caviar
from caviar import TrialState, samplers

SAMPLERS = {
    "random": lambda seed: samplers.RandomSampler(seed=seed),
    "tpe": lambda seed: samplers.TPESampler(seed=seed, n_startup_trials=5),
    "tpe-mv": lambda seed: samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True),
    "gp": lambda seed: samplers.GPSampler(seed=seed, n_startup_trials=5, n_candidates=128),
    "sobol": lambda seed: samplers.QMCSampler(seed=seed),
    "zoom": lambda seed: samplers.ZoomSampler(seed=seed, round_size=8),
    "auto": lambda seed: samplers.AutoSampler(seed=seed, n_startup_trials=5),
}


def random_space(rng):
    """A random mix of every kind of suggestion, as (kind, name, args, kwargs)."""
    space = []
    for i in range(rng.randint(1, 5)):
        kind = rng.choice(["float", "log", "reverse_log", "step", "int", "int_step", "int_log", "cat"])
        low = rng.uniform(-100, 100)
        if kind == "float":
            space.append(("float", f"f{i}", (low, low + rng.uniform(1e-6, 50)), {}))
        elif kind == "log":
            lo = 10 ** rng.uniform(-8, 1)
            space.append(("float", f"l{i}", (lo, lo * 10 ** rng.uniform(0.1, 6)), {"log": True}))
        elif kind == "reverse_log":
            space.append(("float", f"r{i}", (0.5, 1 - 10 ** rng.uniform(-6, -1)), {"scale": "reverse_log"}))
        elif kind == "step":
            step = rng.choice([0.5, 0.1, 0.25, 2.0])
            space.append(("float", f"s{i}", (low, low + step * rng.randint(1, 40)), {"step": step}))
        elif kind == "int":
            lo = rng.randint(-50, 50)
            space.append(("int", f"i{i}", (lo, lo + rng.randint(0, 30)), {}))
        elif kind == "int_step":
            lo, step = rng.randint(-50, 50), rng.randint(1, 7)
            space.append(("int", f"j{i}", (lo, lo + step * rng.randint(0, 10)), {"step": step}))
        elif kind == "int_log":
            lo = rng.randint(1, 20)
            space.append(("int", f"k{i}", (lo, lo * rng.randint(1, 100)), {"log": True}))
        else:
            choices = rng.sample(["a", "b", 1, 2.5, True, "z"], rng.randint(1, 4))
            space.append(("cat", f"c{i}", (choices,), {}))
    return space


def suggest(trial, space):
    values = {}
    for kind, name, args, kwargs in space:
        if kind == "float":
            values[name] = trial.suggest_float(name, *args, **kwargs)
        elif kind == "int":
            values[name] = trial.suggest_int(name, *args, **kwargs)
        else:
            values[name] = trial.suggest_categorical(name, *args)
    return values


def inside(value, kind, args, kwargs):
    if kind == "cat":
        return any(value == c and type(value) is type(c) for c in args[0])
    low, high = args
    if kind == "int":
        if not isinstance(value, int) or not low <= value <= high:
            return False
        return (value - low) % kwargs.get("step", 1) == 0
    if not isinstance(value, float) or not low <= value <= high:
        return False
    if "step" in kwargs:
        k = (value - low) / kwargs["step"]
        return abs(k - round(k)) < 1e-6
    return True


@pytest.mark.parametrize("kind", SAMPLERS)
def test_every_suggestion_lies_in_its_distribution(kind):
    rng = random.Random(f"space-{kind}")
    for case in range(6):
        space = random_space(rng)
        study = caviar.create_study(sampler=SAMPLERS[kind](case))
        seen = []

        def objective(trial):
            values = suggest(trial, space)
            seen.append(values)
            return sum(float(v) for v in values.values() if not isinstance(v, str))

        study.optimize(objective, n_trials=25)
        assert len(seen) == 25
        for values in seen:
            for kind_, name, args, kwargs in space:
                assert inside(values[name], kind_, args, kwargs), (name, values[name], args, kwargs)


@pytest.mark.parametrize("kind", SAMPLERS)
def test_a_seed_reproduces_its_trials_exactly(kind):
    def params_of(seed):
        study = caviar.create_study(sampler=SAMPLERS[kind](seed))
        study.optimize(
            lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2
            + t.suggest_float("lr", 1e-5, 1, log=True)
            + len(t.suggest_categorical("act", ["relu", "tanh"])),
            n_trials=30,
        )
        return [t.params for t in study.trials]

    assert params_of(11) == params_of(11)
    assert params_of(11) != params_of(12)


def test_reverse_log_puts_half_the_betas_above_0_99():
    study = caviar.create_study(sampler=samplers.RandomSampler(seed=5))
    betas = []

    def objective(trial):
        for i in range(100):
            betas.append(trial.suggest_float(f"beta{i}", 0.9, 0.999, scale="reverse_log"))
        return 0.0

    study.optimize(objective, n_trials=200)
    assert len(betas) == 20_000
    share = sum(b >= 0.99 for b in betas) / len(betas)
    assert 0.47 <= share <= 0.53, share
    assert all(0.9 <= b <= 0.999 for b in betas)


def optimizer_space(trial):
    """A define-by-run space: the optimizer's own parameters exist only with it."""
    lr = trial.suggest_float("lr", 1e-4, 1, log=True)
    loss = (math.log10(lr) + 2) ** 2
    if trial.suggest_categorical("optimizer", ["sgd", "adam"]) == "sgd":
        momentum = trial.suggest_float("momentum", 0.0, 0.99)
        loss += (momentum - 0.9) ** 2
    else:
        beta1 = trial.suggest_float("beta1", 0.8, 0.999, scale="reverse_log")
        loss += (beta1 - 0.95) ** 2 + 0.05
    for layer in range(trial.suggest_int("layers", 1, 3)):
        loss += 1e-3 * trial.suggest_int(f"units_{layer}", 16, 256, log=True) / 256
    return loss


@pytest.mark.parametrize("kind", SAMPLERS)
def test_conditional_parameters_work_with_every_sampler(kind):
    study = caviar.create_study(sampler=SAMPLERS[kind](0))
    study.optimize(optimizer_space, n_trials=40)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    with_momentum = [t for t in study.trials if "momentum" in t.params]
    with_beta = [t for t in study.trials if "beta1" in t.params]
    assert with_momentum and with_beta
    assert all(t.params["optimizer"] == "sgd" for t in with_momentum)
    assert all("units_2" not in t.params or t.params["layers"] == 3 for t in study.trials)


def test_model_based_samplers_beat_random_on_the_conditional_space():
    def best(make):
        values = []
        for seed in range(4):
            study = caviar.create_study(sampler=make(seed))
            study.optimize(optimizer_space, n_trials=60)
            values.append(study.best_value)
        return sum(values) / len(values)

    random_best = best(SAMPLERS["random"])
    for kind in ("tpe", "gp", "auto"):
        assert best(SAMPLERS[kind]) < random_best, kind


def test_the_grid_visits_every_point_once_then_stops():
    study = caviar.create_study(
        sampler=samplers.GridSampler({"lr": [0.001, 0.01, 0.1], "layers": [2, 3], "act": ["relu", "tanh"]})
    )
    study.optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1, log=True)
        * t.suggest_int("layers", 1, 4)
        * len(t.suggest_categorical("act", ["relu", "tanh"])),
        n_trials=100,
    )
    points = sorted((t.params["lr"], t.params["layers"], t.params["act"]) for t in study.trials)
    assert len(points) == 12 and len(set(points)) == 12
    with pytest.raises(ValueError, match="no values"):
        samplers.GridSampler({"x": []})


def test_sampler_options_are_checked_by_the_engine():
    with pytest.raises(ValueError, match="gamma"):
        caviar.create_study(sampler=samplers.TPESampler(gamma=2.0))
    with pytest.raises(ValueError, match="keep"):
        caviar.create_study(sampler=samplers.ZoomSampler(keep=0.0))
    with pytest.raises(ValueError, match="n_startup_trials"):
        samplers.TPESampler(n_startup_trials=-1)
    with pytest.raises(ValueError, match="seed"):
        samplers.RandomSampler(seed=-3)


def test_sampler_options_reach_the_sampler():
    """A TPE that starts modelling after 5 trials differs from one that waits for 30."""

    def params(n_startup):
        study = caviar.create_study(sampler=samplers.TPESampler(seed=1, n_startup_trials=n_startup))
        study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 2) ** 2, n_trials=20)
        return [t.params["x"] for t in study.trials]

    early, late = params(5), params(30)
    assert early[:5] == late[:5]
    assert early[5:] != late[5:]
    mv = caviar.create_study(sampler=samplers.TPESampler(seed=1, n_startup_trials=5, multivariate=True))
    uv = caviar.create_study(sampler=samplers.TPESampler(seed=1, n_startup_trials=5))
    for study in (mv, uv):
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=15)
    assert [t.params for t in mv.trials][5:] != [t.params for t in uv.trials][5:]
