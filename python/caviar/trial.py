"""Optuna's ``optuna.trial`` names: ``Trial``, ``FrozenTrial``, ``TrialState``."""

from . import FrozenTrial, Trial, TrialState

__all__ = ["FrozenTrial", "Trial", "TrialState"]
