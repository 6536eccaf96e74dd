#!/usr/bin/env bash
# Builds the Python package into a fresh venv (as `pip install ./python` does for users) and
# runs its pytest suite. Tests that need PostgreSQL read CAVIAR_TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-test-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# pandas for trials_dataframe() (the suite also checks the error without it) and scikit-learn
# for its example; torch is too big to fetch here, so the PyTorch example's test skips unless
# torch is installed.
"$venv/bin/pip" install -q ./python pytest pandas scikit-learn
cd python/tests
"../../$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
