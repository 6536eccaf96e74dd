"""Samplers: what to try next. Each class names one of the engine's samplers (the same
registry the study file's ``[sampler]`` table uses) with Optuna's keyword arguments where the
concept is the same. ``seed=None`` draws a seed from the operating system."""

from __future__ import annotations

import os as _os
from typing import Any, Dict, Optional

__all__ = ["BaseSampler", "GPSampler", "RandomSampler", "TPESampler"]


def _seed(seed: Optional[int]) -> int:
    if seed is None:
        return int.from_bytes(_os.urandom(8), "little") >> 1
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed = {seed!r}; use an int >= 0, or None")
    return seed


def _count(name: str, value: Any, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} = {value!r}; use an int >= {least}")
    return value


class BaseSampler:
    """A sampler by the engine's kind and options."""

    _spec: Dict[str, Any]

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._spec.items() if k != "kind")
        return f"{type(self).__name__}({options})"


class RandomSampler(BaseSampler):
    """Independent uniform draws on each parameter's scale (log for ``log=True``)."""

    def __init__(self, seed: Optional[int] = None) -> None:
        self._spec = {"kind": "random", "seed": _seed(seed)}


class TPESampler(BaseSampler):
    """Tree-structured Parzen estimator. ``multivariate=True`` models the parameters jointly.

    ``gamma`` is caviar's: the share of complete trials that count as good (default 0.1, at
    most 25 trials), a number rather than Optuna's function.
    """

    def __init__(
        self,
        *,
        seed: Optional[int] = None,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = False,
        gamma: Optional[float] = None,
    ) -> None:
        self._spec = {
            "kind": "tpe",
            "seed": _seed(seed),
            "startup_trials": _count("n_startup_trials", n_startup_trials, 0),
            "candidates": _count("n_ei_candidates", n_ei_candidates, 1),
            "multivariate": bool(multivariate),
        }
        if gamma is not None:
            self._spec["gamma"] = float(gamma)


class GPSampler(BaseSampler):
    """Gaussian-process Bayesian optimization, for when trials are expensive."""

    def __init__(
        self,
        *,
        seed: Optional[int] = None,
        n_startup_trials: int = 10,
        n_candidates: int = 1024,
    ) -> None:
        self._spec = {
            "kind": "gp",
            "seed": _seed(seed),
            "startup_trials": _count("n_startup_trials", n_startup_trials, 0),
            "candidates": _count("n_candidates", n_candidates, 1),
        }
