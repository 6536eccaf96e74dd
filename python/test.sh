#!/usr/bin/env bash
# Builds the Python package into a fresh venv (as `pip install ./python` does for users) and
# runs its pytest suite. Tests that need PostgreSQL read CAVIAR_TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-test-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# pandas for trials_dataframe(); the suite also checks the error without it.
"$venv/bin/pip" install -q ./python pytest pandas
cd python/tests
"../../$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
