"""The examples in examples/python run (each skipped, with the reason, when what it needs is
not installed here)."""

import re
import subprocess
import sys

import pytest

from conftest import REPO

EXAMPLES = REPO / "examples" / "python"


def run_example(name, *args):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sklearn_example_tunes_and_prunes(sqlite_url):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed here")
    out = run_example("sklearn_pruning.py", sqlite_url, 40)
    trials, pruned = map(int, re.search(r"trials: (\d+), pruned: (\d+)", out).groups())
    assert trials == 40 and pruned > 0
    accuracy = float(re.search(r"best validation accuracy: ([\d.]+)", out).group(1))
    assert accuracy > 0.9
    assert float(re.search(r"test accuracy: ([\d.]+)", out).group(1)) > 0.85


def test_pytorch_example_reports_each_epoch(sqlite_url):
    pytest.importorskip("torch", reason="torch is not installed here (pip install torch)")
    out = run_example("pytorch_loop.py", sqlite_url, 12)
    assert "best validation loss" in out
    import caviar

    study = caviar.load_study(study_name="pytorch-mlp", storage=sqlite_url)
    assert len(study.trials) == 12
    complete = study.get_trials(states=[caviar.TrialState.COMPLETE])
    assert all(len(t.intermediate_values) == 15 for t in complete)


def test_two_process_example_on_postgres(postgres_url):
    out = run_example("two_processes_postgres.py", postgres_url, 20)
    assert "trials: 40 from 2 processes" in out


def test_two_process_example_on_sqlite(sqlite_url):
    out = run_example("two_processes_postgres.py", sqlite_url, 15)
    assert "trials: 30 from 2 processes" in out
