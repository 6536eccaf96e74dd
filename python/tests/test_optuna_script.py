"""An Optuna script runs on caviar with its import line changed and nothing else."""

import subprocess
import sys

OPTUNA_SCRIPT = '''
import math
import sys

import optuna
from optuna.trial import TrialState


def objective(trial):
    optimizer = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    n_layers = trial.suggest_int("n_layers", 1, 3)
    width = [trial.suggest_int("n_units_l{}".format(i), 4, 128) for i in range(n_layers)]
    dropout = trial.suggest_float("dropout", 0.2, 0.5, step=0.1)
    accuracy = 0.0
    for epoch in range(10):
        accuracy = (1 - abs(math.log10(lr) + 3) / 4) * (1 - 0.5 ** (epoch + 1)) - 0.05 * dropout
        accuracy += 0.01 * len(width) + (0.02 if optimizer == "Adam" else 0.0)
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.exceptions.TrialPruned()
    return accuracy


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=10),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
        storage=sys.argv[1],
        study_name="ported",
        load_if_exists=True,
    )
    study.optimize(objective, n_trials=60, timeout=600)

    pruned_trials = study.get_trials(deepcopy=False, states=[TrialState.PRUNED])
    complete_trials = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])

    print("Study statistics: ")
    print("  Number of finished trials: ", len(study.trials))
    print("  Number of pruned trials: ", len(pruned_trials))
    print("  Number of complete trials: ", len(complete_trials))

    print("Best trial:")
    trial = study.best_trial

    print("  Value: ", trial.value)

    print("  Params: ")
    for key, value in trial.params.items():
        print("    {}: {}".format(key, value))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert isinstance(trial, optuna.trial.FrozenTrial)
'''


def test_an_optuna_script_runs_with_only_its_import_changed(tmp_path):
    ported = OPTUNA_SCRIPT.replace("import optuna\n", "import caviar as optuna\n").replace(
        "from optuna.trial import", "from caviar.trial import"
    )
    # Only the two import lines differ.
    changed = [
        (a, b) for a, b in zip(OPTUNA_SCRIPT.splitlines(), ported.splitlines()) if a != b
    ]
    assert changed == [
        ("import optuna", "import caviar as optuna"),
        ("from optuna.trial import TrialState", "from caviar.trial import TrialState"),
    ]
    script = tmp_path / "ported.py"
    script.write_text(ported)
    done = subprocess.run(
        [sys.executable, str(script), f"sqlite:{tmp_path / 'ported.db'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Number of finished trials:  60" in done.stdout
    pruned = int(done.stdout.split("Number of pruned trials: ")[1].split()[0])
    assert pruned > 0
    assert "optimizer: Adam" in done.stdout
