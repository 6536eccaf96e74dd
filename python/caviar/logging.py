"""Optuna's ``optuna.logging`` names, so scripts that quiet Optuna run unchanged. caviar's
library prints nothing by itself, so the verbosity is only recorded."""

from __future__ import annotations

import logging as _logging

CRITICAL = _logging.CRITICAL
FATAL = _logging.FATAL
ERROR = _logging.ERROR
WARNING = _logging.WARNING
WARN = _logging.WARN
INFO = _logging.INFO
DEBUG = _logging.DEBUG

__all__ = [
    "CRITICAL",
    "DEBUG",
    "ERROR",
    "FATAL",
    "INFO",
    "WARN",
    "WARNING",
    "disable_default_handler",
    "enable_default_handler",
    "get_verbosity",
    "set_verbosity",
]

_verbosity = INFO


def set_verbosity(verbosity: int) -> None:
    """Records the verbosity (caviar's library does not log)."""
    global _verbosity
    _verbosity = int(verbosity)


def get_verbosity() -> int:
    """The verbosity last set (INFO at first)."""
    return _verbosity


def disable_default_handler() -> None:
    """Accepted for Optuna's sake: there is no handler to disable."""


def enable_default_handler() -> None:
    """Accepted for Optuna's sake: there is no handler to enable."""
