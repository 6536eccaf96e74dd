"""Optuna's ``optuna.study`` names: ``Study``, ``StudyDirection``, ``StudySummary`` and the
module-level functions."""

from . import (
    Study,
    StudyDirection,
    StudySummary,
    create_study,
    delete_study,
    get_all_study_names,
    get_all_study_summaries,
    load_study,
)

__all__ = [
    "Study",
    "StudyDirection",
    "StudySummary",
    "create_study",
    "delete_study",
    "get_all_study_names",
    "get_all_study_summaries",
    "load_study",
]
