"""Optuna's ``optuna.exceptions`` names."""

from ._caviar import DuplicatedStudyError, TrialPruned

__all__ = ["DuplicatedStudyError", "TrialPruned"]
