#!/usr/bin/env python3
"""scikit-learn tuning tasks as kurobako problems (external problem protocol, JSON lines on
stdin and stdout), on datasets that ship with scikit-learn, so nothing is downloaded.

    kurobako problem command -- python3 benches/suite/sklearn_problem.py TASK
    python3 benches/suite/sklearn_problem.py --list

Each task minimises a validation error: 1 - accuracy (classifiers) or the mean squared error
over the target's variance (regressors), by 3-fold cross-validation with a fixed shuffle, and
every model has a fixed random_state, so a configuration always gives the same value. The
search spaces are what a practitioner would write (log scales for rates and penalties).
"""
import json
import math
import sys
import warnings

warnings.filterwarnings("ignore")

from sklearn import datasets  # noqa: E402
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def cont(name, low, high, log=False):
    return {"name": name, "range": {"type": "CONTINUOUS", "low": low, "high": high},
            "distribution": "LOG_UNIFORM" if log else "UNIFORM"}


def disc(name, low, high, log=False):
    # kurobako's upper bound is exclusive.
    return {"name": name, "range": {"type": "DISCRETE", "low": low, "high": high + 1},
            "distribution": "LOG_UNIFORM" if log else "UNIFORM"}


def cat(name, choices):
    return {"name": name, "range": {"type": "CATEGORICAL", "choices": choices},
            "distribution": "UNIFORM"}


def svc(p):
    from sklearn.svm import SVC
    return make_pipeline(StandardScaler(), SVC(C=p["C"], gamma=p["gamma"]))


def random_forest(p):
    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(
        n_estimators=int(p["n_estimators"]), max_depth=int(p["max_depth"]),
        min_samples_split=int(p["min_samples_split"]), max_features=p["max_features"],
        random_state=0, n_jobs=1)


def hist_gradient_boosting(p):
    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(
        learning_rate=p["learning_rate"], max_iter=int(p["max_iter"]),
        max_leaf_nodes=int(p["max_leaf_nodes"]), l2_regularization=p["l2_regularization"],
        min_samples_leaf=int(p["min_samples_leaf"]), random_state=0)


def mlp(p):
    from sklearn.neural_network import MLPClassifier
    return make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(int(p["hidden"]),), alpha=p["alpha"],
        learning_rate_init=p["learning_rate_init"], batch_size=int(p["batch_size"]),
        beta_1=p["beta_1"], max_iter=25, random_state=0))


def elastic_net(p):
    from sklearn.linear_model import ElasticNet
    return make_pipeline(StandardScaler(), ElasticNet(alpha=p["alpha"], l1_ratio=p["l1_ratio"],
                                                      max_iter=5000))


def knn(p):
    from sklearn.neighbors import KNeighborsClassifier
    return make_pipeline(StandardScaler(), KNeighborsClassifier(
        n_neighbors=int(p["n_neighbors"]), weights=p["weights"], p=int(p["p"])))


def logistic(p):
    from sklearn.linear_model import LogisticRegression
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=p["C"], penalty=p["penalty"], solver="liblinear", tol=p["tol"], max_iter=500))


def gradient_boosting_regressor(p):
    from sklearn.ensemble import GradientBoostingRegressor
    return GradientBoostingRegressor(
        learning_rate=p["learning_rate"], n_estimators=int(p["n_estimators"]),
        max_depth=int(p["max_depth"]), subsample=p["subsample"],
        min_samples_leaf=int(p["min_samples_leaf"]), random_state=0)


# name: (dataset loader, classification?, model builder, params, why)
TASKS = {
    "svc-digits": (datasets.load_digits, True, svc,
                   [cont("C", 1e-3, 1e3, log=True), cont("gamma", 1e-5, 1e-1, log=True)],
                   "the classic two log-scale penalties; a narrow diagonal ridge"),
    "rf-breast-cancer": (datasets.load_breast_cancer, True, random_forest,
                         [disc("n_estimators", 10, 200), disc("max_depth", 1, 20),
                          disc("min_samples_split", 2, 20), cont("max_features", 0.05, 1.0)],
                         "integers mostly; a flat, noisy-looking surface"),
    "hgb-wine": (datasets.load_wine, True, hist_gradient_boosting,
                 [cont("learning_rate", 1e-3, 1.0, log=True), disc("max_iter", 10, 200),
                  disc("max_leaf_nodes", 2, 64, log=True),
                  cont("l2_regularization", 1e-6, 10.0, log=True),
                  disc("min_samples_leaf", 1, 40)],
                 "boosting: a rate that interacts with the number of rounds"),
    "mlp-digits": (datasets.load_digits, True, mlp,
                   [disc("hidden", 16, 256, log=True), cont("alpha", 1e-6, 1e-1, log=True),
                    cont("learning_rate_init", 1e-4, 1e-1, log=True),
                    disc("batch_size", 16, 256, log=True), cont("beta_1", 0.5, 0.99)],
                   "a small network: learning rate, batch size, Adam's beta1"),
    "elasticnet-diabetes": (datasets.load_diabetes, False, elastic_net,
                            [cont("alpha", 1e-5, 10.0, log=True), cont("l1_ratio", 0.0, 1.0)],
                            "regression with a penalty: a wide flat region and one edge"),
    "knn-wine": (datasets.load_wine, True, knn,
                 [disc("n_neighbors", 1, 50), cat("weights", ["uniform", "distance"]),
                  disc("p", 1, 3)],
                 "categorical and small-integer choices only"),
    "logreg-breast-cancer": (datasets.load_breast_cancer, True, logistic,
                             [cont("C", 1e-4, 1e4, log=True), cat("penalty", ["l1", "l2"]),
                              cont("tol", 1e-6, 1e-1, log=True)],
                             "a categorical penalty that changes what C means"),
    "gbr-diabetes": (datasets.load_diabetes, False, gradient_boosting_regressor,
                     [cont("learning_rate", 1e-3, 1.0, log=True), disc("n_estimators", 10, 300),
                      disc("max_depth", 1, 8), cont("subsample", 0.3, 1.0),
                      disc("min_samples_leaf", 1, 30)],
                     "boosted trees on a noisy regression target"),
}


def error(task, params, data):
    _, classify, build, domain, _ = TASKS[task]
    x, y = data
    p = {}
    for var, value in zip(domain, params):
        if var["range"]["type"] == "CATEGORICAL":
            p[var["name"]] = var["range"]["choices"][int(value)]
        else:
            p[var["name"]] = value
    if classify:
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        return 1.0 - cross_val_score(build(p), x, y, cv=folds, scoring="accuracy").mean()
    folds = KFold(n_splits=3, shuffle=True, random_state=0)
    mse = -cross_val_score(build(p), x, y, cv=folds, scoring="neg_mean_squared_error").mean()
    return mse / y.var()


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TASKS and sys.argv[1] != "--list":
        sys.exit(f"usage: sklearn_problem.py TASK (one of {', '.join(TASKS)}) | --list")
    if sys.argv[1] == "--list":
        for name, (_, _, _, domain, why) in TASKS.items():
            print(f"{name} | {len(domain)} | {why}")
        return
    task = sys.argv[1]
    loader, _, _, domain, _ = TASKS[task]
    data = loader(return_X_y=True)
    send({"type": "PROBLEM_SPEC_CAST", "spec": {
        "name": f"sklearn/{task}", "attrs": {},
        "params_domain": domain,
        "values_domain": [{"name": "validation error", "range": {"type": "CONTINUOUS"},
                           "distribution": "UNIFORM"}],
        "steps": 1,
    }})
    evaluators = {}
    for line in sys.stdin:
        msg = json.loads(line)
        kind = msg["type"]
        if kind == "CREATE_EVALUATOR_CALL":
            evaluators[msg["evaluator_id"]] = msg["params"]
            send({"type": "CREATE_EVALUATOR_REPLY"})
        elif kind == "EVALUATE_CALL":
            value = error(task, evaluators[msg["evaluator_id"]], data)
            values = [value] if math.isfinite(value) else []
            send({"type": "EVALUATE_REPLY", "current_step": 1, "values": values})
        elif kind == "DROP_EVALUATOR_CAST":
            evaluators.pop(msg["evaluator_id"], None)


if __name__ == "__main__":
    main()
