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
    first = dream(state_dir, "run", "--epochs", "2", "--book", "space_time")
    assert first.returncode == 0, first.stderr
    assert re.search(r"epoch\s+1 … .*chapter 1 by the \w+", first.stdout)
    assert re.search(r"epoch\s+2 … .*chapter 2 by the \w+", first.stdout)
    assert "The book so far (2 chapters)" in first.stdout
    assert "Standings:" in first.stdout and "retired" in first.stdout
    # quiet: the engine's modes once, a line per epoch; Dagster's own lines go to the log file it names
    assert re.search(r"^engine modes : ballots as json_schema; context \d+ tokens", first.stdout, re.M)
    assert not first.stderr.strip(), first.stderr
    log = re.search(r"^dagster log  : (\S+)", first.stdout, re.M).group(1)
    logged = Path(log).read_text()
    assert "dagster - INFO - epoch_job" in logged and "the Reaper retired" in logged
    assert "dagster - INFO" not in first.stdout

    second = dream(state_dir, "run", "--epochs", "1", "--no-text", "--book", "space_time")
    assert second.returncode == 0, second.stderr
    assert "The book so far (3 chapters)" in second.stdout
    assert re.search(r"epoch\s+3 … .*chapter 3", second.stdout)

    book = dream(state_dir, "book", "--last", "1")
    assert book.returncode == 0 and "Chapter 3" in book.stdout
    assert "The book so far" not in book.stdout and not re.search(r"^Chapter 2: ", book.stdout, re.M)


def test_reroll_worlds_and_promote_from_the_command_line(state_dir: Path):
    """After the run above: epoch 3 is the latest. A re-roll adds a world; an older epoch cannot be promoted."""
    reroll = dream(state_dir, "reroll")
    assert reroll.returncode == 0, reroll.stderr
    assert re.search(r"space_time-00003~1: '.+' by the \w+; eliminated: \w+", reroll.stdout)
    worlds = dream(state_dir, "worlds", "3")
    assert worlds.returncode == 0, worlds.stderr
    latest = dream(state_dir, "worlds")  # no epoch: the one re-rolled last, and it says so
    assert latest.stdout.startswith("space_time-00003 (the epoch re-rolled last;")
    assert latest.stdout.split("\n", 2)[2] == worlds.stdout
    assert re.search(r"^canon\s+committed\s+\w+", worlds.stdout, re.M)
    assert re.search(r"^1\s+complete\s+\w+", worlds.stdout, re.M)
    refused = dream(state_dir, "promote", "2", "1")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("dream: only the latest epoch can be promoted, and space_time-00003 has opened"
                                      " after space_time-00002 (stop the loop, or promote before the next epoch starts)")
    promoted = dream(state_dir, "promote", "3", "1")
    assert promoted.returncode == 0, promoted.stderr
    assert re.search(r"world 1 is now the canon of space_time-00003: chapter 3 '.+' by the \w+", promoted.stdout)
    after = dream(state_dir, "worlds", "3").stdout
    assert re.search(r"^1\s+promoted", after, re.M) and re.search(r"^2\s+superseded", after, re.M)
    # an older epoch re-rolled: `dream worlds` shows that one, not the latest epoch
    assert dream(state_dir, "reroll", "2").returncode == 0
    assert dream(state_dir, "worlds").stdout.startswith("space_time-00002 (the epoch re-rolled last;")


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
