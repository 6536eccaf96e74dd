#!/usr/bin/env bash
# Builds the Python package into a fresh venv (as `pip install ./python` does for users) and
# runs its pytest suite. Tests that need PostgreSQL read CAVIAR_TEST_POSTGRES_URL.
# The wheel is abi3 (Python >= 3.9): when pyenv has a 3.9 and a 3.13, the same wheel is also
# installed into venvs of those and the suite runs there too.
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/python-test
rm -rf "$root"
mkdir -p "$root"
python3 -m venv "$root/venv"
"$root/venv/bin/pip" install -q --upgrade pip
"$root/venv/bin/pip" wheel -q --no-deps -w "$root/wheels" ./python
wheel=$(ls "$root"/wheels/caviar-*-abi3-*.whl)
# pandas for trials_dataframe() (the suite also checks the error without it) and scikit-learn
# for its example; torch is too big to fetch here, so the PyTorch example's test skips unless
# torch is installed.
"$root/venv/bin/pip" install -q "$wheel" pytest pandas scikit-learn
(cd python/tests && "../../$root/venv/bin/python" -m pytest -q -rs -p no:cacheprovider "$@")
if command -v pyenv >/dev/null 2>&1; then
  for version in 3.9 3.13; do
    prefix=$(pyenv prefix "$(pyenv versions --bare | grep -E "^${version//./\\.}(\.|$)" | tail -1)" 2>/dev/null) || continue
    echo "== the same wheel on Python $version"
    "$prefix/bin/python" -m venv "$root/venv-$version"
    "$root/venv-$version/bin/pip" install -q "$wheel" pytest
    (cd python/tests && "../../$root/venv-$version/bin/python" -m pytest -q -rs -p no:cacheprovider "$@")
  done
fi
