"""Pruners: when to stop a trial early. Each class names one of the engine's pruners (the
registry the study file's ``[pruner]`` table uses) with Optuna's keyword arguments."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

__all__ = [
    "BasePruner",
    "HyperbandPruner",
    "MedianPruner",
    "NopPruner",
    "PercentilePruner",
    "SuccessiveHalvingPruner",
]


def _count(name: str, value: Any, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} = {value!r}; use an int >= {least}")
    return value


class BasePruner:
    """A pruner by the engine's kind and options."""

    _spec: Dict[str, Any]

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._spec.items() if k != "kind")
        return f"{type(self).__name__}({options})"


class NopPruner(BasePruner):
    """Never prunes."""

    def __init__(self) -> None:
        self._spec = {"kind": "none"}


def _rule(
    kind: str,
    n_startup_trials: int,
    n_warmup_steps: int,
    interval_steps: int,
    n_min_trials: int,
) -> Dict[str, Any]:
    return {
        "kind": kind,
        "startup_trials": _count("n_startup_trials", n_startup_trials, 0),
        "warmup_steps": _count("n_warmup_steps", n_warmup_steps, 0),
        "interval_steps": _count("interval_steps", interval_steps, 1),
        "min_trials": _count("n_min_trials", n_min_trials, 1),
    }


class MedianPruner(BasePruner):
    """Stops a trial whose best value so far is worse than the median of other trials' at
    the same step."""

    def __init__(
        self,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        n_min_trials: int = 1,
    ) -> None:
        self._spec = _rule("median", n_startup_trials, n_warmup_steps, interval_steps, n_min_trials)


class PercentilePruner(BasePruner):
    """Stops a trial that is not within the best ``percentile`` percent at its step."""

    def __init__(
        self,
        percentile: float,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        n_min_trials: int = 1,
    ) -> None:
        self._spec = _rule(
            "percentile", n_startup_trials, n_warmup_steps, interval_steps, n_min_trials
        )
        self._spec["percentile"] = float(percentile)


class SuccessiveHalvingPruner(BasePruner):
    """Asynchronous successive halving (ASHA): at rungs min_resource * factor^k, keep the
    best 1/factor. ``min_resource="auto"`` is caviar's default (1 step)."""

    def __init__(
        self,
        min_resource: Union[str, int] = "auto",
        reduction_factor: int = 4,
        min_early_stopping_rate: int = 0,
        *,
        max_resource: Optional[int] = None,
    ) -> None:
        self._spec = {
            "kind": "asha",
            "reduction_factor": _count("reduction_factor", reduction_factor, 2),
            "min_early_stopping_rate": _count(
                "min_early_stopping_rate", min_early_stopping_rate, 0
            ),
        }
        if min_resource != "auto":
            self._spec["min_resource"] = _count("min_resource", min_resource, 1)
        if max_resource is not None:
            self._spec["max_resource"] = _count("max_resource", max_resource, 1)


class HyperbandPruner(BasePruner):
    """Hyperband: several successive-halving brackets. ``max_resource`` (a trial's full number
    of steps) must be given: caviar does not guess it from the first trial as Optuna's
    ``"auto"`` does."""

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: Union[str, int] = "auto",
        reduction_factor: int = 3,
    ) -> None:
        if max_resource == "auto":
            raise ValueError(
                "HyperbandPruner: max_resource='auto' is not supported; pass the number of "
                "steps (epochs) a full trial reports, e.g. max_resource=100"
            )
        self._spec = {
            "kind": "hyperband",
            "min_resource": _count("min_resource", min_resource, 1),
            "max_resource": _count("max_resource", max_resource, 1),
            "reduction_factor": _count("reduction_factor", reduction_factor, 2),
        }
