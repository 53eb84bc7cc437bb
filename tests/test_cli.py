"""The `dream` command as a user runs it: a fresh state folder, the embedded server, the offline engine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("dream_state")
    yield path
    env = _env(path)
    subprocess.run([sys.executable, "-m", "dream_pipeline.cli", "engine", "stop"], env=env, timeout=60)
    subprocess.run([sys.executable, "-m", "dream_pipeline.cli", "db", "stop"], env=env, timeout=60)


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_"))}
    env["DREAM_STATE_DIR"] = str(state)
    return env


def dream(state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dream_pipeline.cli", *args], env=_env(state), capture_output=True, text=True,
        timeout=600,
    )


def test_run_writes_a_book_and_a_second_run_continues_it(state_dir: Path):
    first = dream(state_dir, "run", "--epochs", "2")
    assert first.returncode == 0, first.stderr
    assert re.search(r"epoch\s+1 … .*chapter 1 by the \w+", first.stdout)
    assert re.search(r"epoch\s+2 … .*chapter 2 by the \w+", first.stdout)
    assert "The book so far (2 chapters)" in first.stdout
    assert "Standings:" in first.stdout and "retired" in first.stdout

    second = dream(state_dir, "run", "--epochs", "1", "--no-text")
    assert second.returncode == 0, second.stderr
    assert "The book so far (3 chapters)" in second.stdout
    assert re.search(r"epoch\s+3 … .*chapter 3", second.stdout)

    book = dream(state_dir, "book", "--last", "1")
    assert book.returncode == 0 and "Chapter 3" in book.stdout


def test_db_url_is_a_url_psycopg_accepts(state_dir: Path):
    import psycopg

    result = dream(state_dir, "db", "url")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("postgresql://") and str(state_dir) in url.replace("%2F", "/")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone()


def test_help_and_bad_arguments():
    help_text = subprocess.run([sys.executable, "-m", "dream_pipeline.cli", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "run" in help_text.stdout and "db" in help_text.stdout
    bad = subprocess.run([sys.executable, "-m", "dream_pipeline.cli", "run", "--epochs", "0"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "--epochs must be at least 1" in bad.stderr
