"""Tune an SGD classifier on scikit-learn's digits, one epoch of partial_fit at a time, and
let the median rule stop runs whose validation accuracy lags.

    pip install ./python scikit-learn
    python examples/python/sklearn_pruning.py [STORAGE_URL] [N_TRIALS]
"""

import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import caviar

EPOCHS = 20


def data():
    x, y = load_digits(return_X_y=True)
    # Tune on a validation split carved from the training data; the test split is held back.
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train, y_train, test_size=0.2, random_state=1
    )
    scaler = StandardScaler().fit(x_fit)
    return (scaler.transform(x_fit), y_fit, scaler.transform(x_val), y_val,
            scaler.transform(x_test), y_test)


X_FIT, Y_FIT, X_VAL, Y_VAL, X_TEST, Y_TEST = data()
CLASSES = np.unique(Y_FIT)


def model_of(params):
    return SGDClassifier(
        loss=params["loss"],
        alpha=params["alpha"],
        learning_rate="invscaling",
        eta0=params["eta0"],
        power_t=params["power_t"],
        random_state=0,
    )


def objective(trial):
    params = {
        "loss": trial.suggest_categorical("loss", ["hinge", "log_loss", "modified_huber"]),
        "alpha": trial.suggest_float("alpha", 1e-7, 1e-1, log=True),
        "eta0": trial.suggest_float("eta0", 1e-4, 1.0, log=True),
        "power_t": trial.suggest_float("power_t", 0.1, 0.9),
    }
    model = model_of(params)
    accuracy = 0.0
    for epoch in range(EPOCHS):
        model.partial_fit(X_FIT, Y_FIT, classes=CLASSES)
        accuracy = model.score(X_VAL, Y_VAL)
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise caviar.TrialPruned()
    return accuracy


def main():
    storage = sys.argv[1] if len(sys.argv) > 1 else None
    n_trials = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    study = caviar.create_study(
        storage=storage,
        study_name="sklearn-digits",
        load_if_exists=True,
        direction="maximize",
        sampler=caviar.samplers.TPESampler(seed=0),
        pruner=caviar.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
    )
    study.optimize(objective, n_trials=n_trials)
    pruned = len(study.get_trials(states=[caviar.TrialState.PRUNED]))
    print(f"trials: {len(study.trials)}, pruned: {pruned}")
    print(f"best validation accuracy: {study.best_value:.4f} with {study.best_params}")
    # The test split, touched once, with the chosen settings trained on fit + validation.
    final = model_of(study.best_params)
    for _ in range(EPOCHS):
        final.partial_fit(np.vstack([X_FIT, X_VAL]), np.concatenate([Y_FIT, Y_VAL]), classes=CLASSES)
    print(f"test accuracy: {final.score(X_TEST, Y_TEST):.4f}")


if __name__ == "__main__":
    main()
