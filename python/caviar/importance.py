"""Which hyperparameters mattered, with Optuna's names, by caviar's estimators (the same as
``caviar importance`` and the dashboard's panel).

Usage::

    import caviar
    importances = caviar.importance.get_param_importances(study)
    # {"lr": 0.93, "units": 0.04, "dropout": 0.03}

``FanovaImportanceEvaluator`` (the default) fits a forest of regression trees to the trials in
each parameter's sampling space (log10 for log parameters) and gives each parameter the share
of the forest's variance over the whole search space that it explains alone; the space's
measure, not the trials', is used, so a sampler that crowded its trials near the optimum does
not tilt the ranking. ``PedAnovaImportanceEvaluator`` asks where the best trials sit against
all trials.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

__all__ = [
    "FanovaImportanceEvaluator",
    "PedAnovaImportanceEvaluator",
    "get_param_importances",
]


class FanovaImportanceEvaluator:
    """fANOVA over ``n_trees`` regression trees (default 64); ``seed`` fixes the bootstrap."""

    def __init__(self, *, n_trees: int = 64, seed: Optional[int] = None) -> None:
        if not isinstance(n_trees, int) or n_trees < 1:
            raise ValueError(f"n_trees: {n_trees!r}; give a whole number of trees, at least 1 (e.g. 64)")
        self.n_trees = n_trees
        self.seed = seed

    def _args(self):
        return ("fanova", self.n_trees, self.seed or 0, 0.1)


class PedAnovaImportanceEvaluator:
    """PED-ANOVA: where the best ``target_quantile`` of trials (default 0.1) sit against all."""

    def __init__(self, *, target_quantile: float = 0.1) -> None:
        if not 0.0 < target_quantile < 1.0:
            raise ValueError(
                f"target_quantile: {target_quantile!r}; give a share between 0 and 1 (e.g. 0.1)"
            )
        self.target_quantile = target_quantile

    def _args(self):
        return ("ped-anova", 64, 0, self.target_quantile)


def get_param_importances(
    study: Any,
    *,
    evaluator: Any = None,
    params: Optional[List[str]] = None,
    target: Optional[Callable[[Any], float]] = None,
    normalize: bool = True,
) -> Dict[str, float]:
    """Each parameter's importance, most important first, over the study's complete trials.

    ``params`` keeps only those parameters (their shares renormalised to sum to 1 when
    ``normalize``). With ``normalize=False`` the raw scores come back: the share of variance
    each parameter explains alone (fANOVA) or the Pearson divergence (PED-ANOVA). ``target``
    (ranking by another quantity than the objective) is not supported: it raises.
    """
    if target is not None:
        raise ValueError(
            "target: caviar ranks parameters by the objective value only; drop target= "
            "(or report the quantity as the objective of a study)"
        )
    evaluator = evaluator or FanovaImportanceEvaluator()
    if not hasattr(evaluator, "_args"):
        raise TypeError(
            f"evaluator: {evaluator!r}; use caviar.importance.FanovaImportanceEvaluator() or "
            "PedAnovaImportanceEvaluator()"
        )
    inner = getattr(study, "_inner", study)
    method, trees, seed, top = evaluator._args()
    ranked = inner.param_importances(method, trees, seed, top)
    if params is not None:
        unknown = sorted(set(params) - {r[0] for r in ranked})
        if unknown:
            raise ValueError(f"params: {unknown} are not parameters of the study's complete trials")
        ranked = [r for r in ranked if r[0] in params]
    scores = [(name, share if normalize else raw) for name, share, raw, _low, _high in ranked]
    if normalize and params is not None:
        total = sum(v for _, v in scores)
        scores = [(n, v / total if total > 0 else 0.0) for n, v in scores]
    scores.sort(key=lambda item: -item[1])
    return dict(scores)
