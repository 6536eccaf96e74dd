"""Samplers: what to try next. Each class names one of the engine's samplers (the same
registry the study file's ``[sampler]`` table uses) with Optuna's keyword arguments where the
concept is the same. ``seed=None`` draws a seed from the operating system."""

from __future__ import annotations

import os as _os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

__all__ = [
    "AutoSampler",
    "BaseSampler",
    "GPSampler",
    "GridSampler",
    "NSGAIISampler",
    "QMCSampler",
    "RandomSampler",
    "SobolSampler",
    "TPESampler",
    "ZoomSampler",
]


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
    _grid: Optional[Dict[str, list]] = None
    # Optuna's: called with each trial as it completes; its values (at most 0 where a
    # constraint holds) make the trial feasible or not.
    _constraints_func: Optional[Callable[[Any], Sequence[float]]] = None

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._spec.items() if k != "kind")
        return f"{type(self).__name__}({options})"


class AutoSampler(BaseSampler):
    """The default: a Gaussian process and TPE take turns (each learns from every
    trial), with pruning too; TPE alone once the study has several objectives or
    more than 1,000 complete trials. The choice is remade at each trial from the study and
    its trials, so seeds reproduce exactly. Optuna's default is ``TPESampler()``.

    ``constraints_func`` (as in Optuna) takes each trial as it completes and returns its
    constraint values, each at most 0 where the constraint holds; both models learn the
    feasible region.
    """

    def __init__(
        self,
        *,
        seed: Optional[int] = None,
        n_startup_trials: int = 10,
        constraints_func: Optional[Callable[[Any], Sequence[float]]] = None,
    ) -> None:
        self._constraints_func = constraints_func
        self._spec = {
            "kind": "auto",
            "seed": _seed(seed),
            "startup_trials": _count("n_startup_trials", n_startup_trials, 0),
        }


class RandomSampler(BaseSampler):
    """Independent uniform draws on each parameter's scale (log for ``log=True``)."""

    def __init__(self, seed: Optional[int] = None) -> None:
        self._spec = {"kind": "random", "seed": _seed(seed)}


class TPESampler(BaseSampler):
    """Tree-structured Parzen estimator. ``multivariate=True`` models the parameters jointly.

    ``gamma`` is caviar's: the share of complete trials that count as good (default 0.1, at
    most 25 trials), a number rather than Optuna's function.

    ``constraints_func`` (as in Optuna) takes each trial as it completes and returns its
    constraint values, each at most 0 where the constraint holds; infeasible trials then
    count as the worst.
    """

    def __init__(
        self,
        *,
        seed: Optional[int] = None,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = False,
        gamma: Optional[float] = None,
        constraints_func: Optional[Callable[[Any], Sequence[float]]] = None,
    ) -> None:
        self._constraints_func = constraints_func
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
    """Gaussian-process Bayesian optimization, for when trials are expensive.

    ``constraints_func`` (as in Optuna) takes each trial as it completes and returns its
    constraint values, each at most 0 where the constraint holds; the GP then models each
    constraint and weighs its acquisition by the probability that all hold.
    """

    def __init__(
        self,
        *,
        seed: Optional[int] = None,
        n_startup_trials: int = 10,
        n_candidates: int = 1024,
        constraints_func: Optional[Callable[[Any], Sequence[float]]] = None,
    ) -> None:
        self._constraints_func = constraints_func
        self._spec = {
            "kind": "gp",
            "seed": _seed(seed),
            "startup_trials": _count("n_startup_trials", n_startup_trials, 0),
            "candidates": _count("n_candidates", n_candidates, 1),
        }


class NSGAIISampler(BaseSampler):
    """NSGA-II, the elitist genetic algorithm for several objectives (as Optuna's).

    The first ``population_size`` trials are random; each later trial is a child of two
    parents chosen by tournament among the best ``population_size`` complete trials (by
    Pareto front, then crowding), crossed by simulated binary crossover and mutated
    polynomially on each parameter's scale. caviar's runs as a steady-state algorithm: every
    trial is a generation step, so parallel workers never wait. ``constraints_func`` as in
    :class:`TPESampler`.
    """

    def __init__(
        self,
        *,
        population_size: int = 50,
        seed: Optional[int] = None,
        constraints_func: Optional[Callable[[Any], Sequence[float]]] = None,
    ) -> None:
        self._constraints_func = constraints_func
        self._spec = {
            "kind": "nsga2",
            "seed": _seed(seed),
            "population_size": _count("population_size", population_size, 2),
        }


class QMCSampler(BaseSampler):
    """Scrambled Sobol points (quasi-Monte Carlo): an even cover of the space, for a first
    coarse look. In a define-by-run study the points cover the parameters every complete
    trial has; until one completes, draws are random. Only ``qmc_type="sobol"`` exists."""

    def __init__(self, *, qmc_type: str = "sobol", seed: Optional[int] = None) -> None:
        if qmc_type != "sobol":
            raise ValueError(f"qmc_type = {qmc_type!r}; caviar has 'sobol' only")
        self._spec = {"kind": "sobol", "seed": _seed(seed)}


class SobolSampler(QMCSampler):
    """caviar's name for :class:`QMCSampler`."""

    def __init__(self, *, seed: Optional[int] = None) -> None:
        super().__init__(seed=seed)


class ZoomSampler(BaseSampler):
    """Coarse to fine: rounds of ``round_size`` trials, each searching the box around the best
    ``keep`` share of earlier trials, widened by ``margin`` on each side (caviar's own)."""

    def __init__(
        self,
        *,
        seed: Optional[int] = None,
        round_size: int = 20,
        keep: float = 0.2,
        margin: float = 0.05,
    ) -> None:
        self._spec = {
            "kind": "zoom",
            "seed": _seed(seed),
            "round_size": _count("round_size", round_size, 1),
            "keep": float(keep),
            "margin": float(margin),
        }


class GridSampler(BaseSampler):
    """Every combination of the listed values, each once, in a seeded shuffled order; the
    study stops when the grid is exhausted. ``search_space`` maps each parameter the
    objective suggests to its values."""

    def __init__(
        self, search_space: Mapping[str, Sequence[Any]], seed: Optional[int] = None
    ) -> None:
        if not isinstance(search_space, Mapping) or not search_space:
            raise ValueError(
                "GridSampler(search_space): give a dict of parameter name -> list of values"
            )
        grid: Dict[str, list] = {}
        for name, values in search_space.items():
            values = list(values)
            if not values:
                raise ValueError(f"GridSampler: {name!r} has no values; list at least one")
            grid[str(name)] = values
        self._spec = {"kind": "grid", "seed": _seed(0 if seed is None else seed)}
        self._grid = grid
