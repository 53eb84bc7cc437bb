"""Every `dream` subcommand against an unreachable database and an unreachable engine: one line on stderr
saying which part and what to do, exit code 2, no traceback, within seconds.

"Within seconds" is the subprocess timeout: 10 s plus twice what importing the command's modules takes on
this machine at the time (measured once per module: on a shared 2-core machine under load a bare import
can take 10 s itself, and the load changes). It guards against waiting (a connect without a timeout, the
engine client's retries); Dagster's storage retries also print a line per attempt, which the one-line
assertion catches whatever the load."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dream_pipeline.cli import build_parser

WITHIN_S = 10.0

# each subcommand with the arguments it needs; a new subcommand must be added here
ARGS = {
    "run": [], "book": [], "standings": [], "status": [], "search": ["the furnace drives the engine"],
    "reroll": [], "worlds": [], "promote": ["3", "1"], "start": ["--no-deck"], "daemon": [], "webserver": [],
    "ui": [], "deck": [], "db migrate": [], "db url": [], "db stop": [], "engine start": [], "engine stop": [],
    "ps": [], "stop": [], "erase": ["--yes"],
}
# commands that do not need the database answer as usual (what they print is tested elsewhere)
WITHOUT_DATABASE = {"db url", "db stop", "engine stop", "ps", "stop", "erase"}
# with a database that answers, these need the engine
NEED_ENGINE = ["run", "search", "reroll", "promote", "start", "daemon", "ui"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connecting is refused


@pytest.fixture(scope="module")
def import_s() -> float:
    """How long importing what the commands import takes here and now (the floor of any command)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import dream_pipeline.cli, dream_pipeline.cli.status, dream_pipeline.cli.preflight,"
                    " dream_pipeline.cli.search, dream_pipeline.cli.instance, resources.text_search"], check=True, timeout=120)
    return time.monotonic() - started


def _dream(state: Path, command: str, import_s: float, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_", "PG"))}
    env.update(DREAM_STATE_DIR=str(state), **settings)
    return subprocess.run(
        [sys.executable, "-m", "dream_pipeline.cli", *command.split(), *ARGS[command]], env=env,
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=WITHIN_S + 2 * import_s,  # "within seconds"
    )


def _assert_one_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert lines[0].startswith("dream: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_the_table_covers_every_subcommand():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    named = set()
    for name, parser in sub.choices.items():
        action = next((a for a in parser._actions if a.dest == "action"), None)
        named |= {f"{name} {choice}" for choice in action.choices} if action else {name}
    assert named == set(ARGS)


@pytest.mark.parametrize("command", sorted(ARGS))
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: str, import_s: float):
    port = _closed_port()
    result = _dream(tmp_path, command, import_s, DREAM_DATABASE_URL=f"postgresql://dream:s3cret@127.0.0.1:{port}/dream",
                    DREAM_LLM_BASE_URL=f"http://127.0.0.1:{_closed_port()}/v1")
    if command == "engine start":  # refused: a configured engine is the one used
        _assert_one_line(result, "DREAM_LLM_BASE_URL")
    elif command in WITHOUT_DATABASE:
        assert result.returncode == 0 and result.stderr == "", result.stderr
    else:
        line = _assert_one_line(result, f"127.0.0.1:{port}", "DREAM_DATABASE_URL")
        assert "s3cret" not in line


@pytest.mark.parametrize("command", NEED_ENGINE)
def test_an_unreachable_engine_is_one_line(tmp_path: Path, database_url: str, command: str, import_s: float):
    port = _closed_port()
    result = _dream(tmp_path, command, import_s, DREAM_DATABASE_URL=database_url,
                    DREAM_LLM_BASE_URL=f"http://127.0.0.1:{port}/v1")
    _assert_one_line(result, f"http://127.0.0.1:{port}/v1", "engine")


def test_a_closed_pipe_is_silent(tmp_path: Path, database_url: str):
    """`dream status | head -4`: the reader goes away; no "Broken pipe", no trace. `true` leaves before
    `dream` has imported anything, so every write meets a closed pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_"))}
    env.update(DREAM_STATE_DIR=str(tmp_path), DREAM_DATABASE_URL=database_url)
    for command in ("ps", "status", "book", "standings"):
        result = subprocess.run(
            ["bash", "-c", f'"{sys.executable}" -m dream_pipeline.cli {command} | true; echo "${{PIPESTATUS[0]}}"'],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert (result.stderr, result.stdout) == ("", "141\n"), command


def test_verbose_shows_the_trace(tmp_path: Path, import_s: float):
    result = subprocess.run(
        [sys.executable, "-m", "dream_pipeline.cli", "book", "--verbose"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "PG"))},
             "DREAM_STATE_DIR": str(tmp_path), "DREAM_DATABASE_URL": f"postgresql://d@127.0.0.1:{_closed_port()}/d"},
        capture_output=True, text=True, timeout=WITHIN_S + 2 * import_s,
    )
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "psycopg.OperationalError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("dream: cannot reach the database at ")


def test_only_a_failed_connection_reads_as_an_unreachable_database(monkeypatch: pytest.MonkeyPatch):
    import psycopg

    from dream_pipeline.cli.errors import describe

    monkeypatch.delenv("DREAM_DATABASE_URL", raising=False)
    line, code = describe(psycopg.OperationalError("connection failed: connection refused"))
    assert code == 2 and line.startswith("cannot reach the database (the embedded server): connection failed")
    assert describe(psycopg.errors.DeadlockDetected("deadlock detected")) is None  # a trace, not a wrong hint
    wrapped = RuntimeError("step failed")
    wrapped.__cause__ = psycopg.OperationalError("connection failed: timeout expired")
    assert describe(wrapped)[1] == 2  # found through the cause chain
