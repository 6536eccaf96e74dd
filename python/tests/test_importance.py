"""caviar.importance: Optuna's get_param_importances over caviar's fANOVA (the CLI's and the
dashboard's estimator), and PED-ANOVA on request."""

import math

import pytest

import caviar


def objective(trial):
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    units = trial.suggest_int("units", 16, 512, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    return (math.log10(lr) + 3) ** 2 + 0.05 * abs(math.log2(units / 64)) + 0.3 * dropout


@pytest.mark.parametrize(
    "sampler",
    [caviar.samplers.RandomSampler(seed=1), caviar.samplers.TPESampler(seed=1)],
    ids=["random", "tpe"],
)
def test_the_learning_rate_ranks_first_whichever_sampler(sampler):
    study = caviar.create_study(sampler=sampler)
    study.optimize(objective, n_trials=60)
    importances = caviar.importance.get_param_importances(study)
    assert list(importances)[0] == "lr"
    assert importances["lr"] > 0.8
    assert math.isclose(sum(importances.values()), 1.0, rel_tol=1e-9)
    assert set(importances) == {"lr", "units", "dropout"}
    # The same seed gives the same numbers.
    again = caviar.importance.get_param_importances(
        study, evaluator=caviar.importance.FanovaImportanceEvaluator(seed=0)
    )
    assert again == importances


def test_params_normalize_and_ped_anova():
    study = caviar.create_study(sampler=caviar.samplers.RandomSampler(seed=2))
    study.optimize(objective, n_trials=60)
    two = caviar.importance.get_param_importances(study, params=["units", "dropout"])
    assert set(two) == {"units", "dropout"}
    assert math.isclose(sum(two.values()), 1.0, rel_tol=1e-9)
    raw = caviar.importance.get_param_importances(study, normalize=False)
    # Raw fANOVA scores are shares of variance: lr explains most of it alone.
    assert 0.8 < raw["lr"] <= 1.0
    ped = caviar.importance.get_param_importances(
        study, evaluator=caviar.importance.PedAnovaImportanceEvaluator(target_quantile=0.2)
    )
    assert list(ped)[0] == "lr"


def test_bad_input_is_named():
    study = caviar.create_study()
    study.optimize(objective, n_trials=5)
    with pytest.raises(ValueError, match="at least 20 complete trials"):
        caviar.importance.get_param_importances(study)
    with pytest.raises(ValueError, match="n_trees"):
        caviar.importance.FanovaImportanceEvaluator(n_trees=0)
    with pytest.raises(ValueError, match="target"):
        caviar.importance.get_param_importances(study, target=lambda t: t.value)
    study.optimize(objective, n_trials=20)
    with pytest.raises(ValueError, match="params"):
        caviar.importance.get_param_importances(study, params=["momentum"])
