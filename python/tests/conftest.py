"""Shared fixtures: real SQLite files, the real PostgreSQL server when its URL is set, and the
`caviar` command built from this checkout."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:{tmp_path / 'study.db'}"


@pytest.fixture
def postgres_url():
    url = os.environ.get("CAVIAR_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CAVIAR_TEST_POSTGRES_URL is unset, so there is no PostgreSQL server to use")
    schema = f"py_{uuid.uuid4().hex[:12]}"
    join = "&" if "?" in url else "?"
    return f"{url}{join}schema={schema}"


def caviar_command():
    """The `caviar` command: the one the package installs next to this Python, else the
    checkout's build."""
    beside = Path(sys.executable).parent / "caviar"
    if beside.exists():
        return [str(beside)]
    for profile in ("release", "debug"):
        built = REPO / "target" / profile / "caviar"
        if built.exists():
            return [str(built)]
    found = shutil.which("caviar")
    if found:
        return [found]
    return None


@pytest.fixture
def cli():
    command = caviar_command()
    if command is None:
        pytest.skip("no caviar command: pip install ./python, or cargo build")

    def run(*args, check=True):
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"caviar {' '.join(args)} exited {done.returncode}: {done.stderr}"
            )
        return done

    return run


def run_python(code, *args, timeout=120, **kwargs):
    """Runs `code` in a fresh interpreter (this one), as a user's script would run."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
