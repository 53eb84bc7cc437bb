"""`dream ps`, `dream stop` and `dream erase` on a real `dream start`: nothing the project started is left
running after `dream stop` (checked by pid, children included), and nothing is deleted but by `erase`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dream_pipeline.cli.lifecycle import alive, descendants

EVERYTHING = {"database", "engine", "start", "daemon", "webserver", "deck"}


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_"))}
    env["DREAM_STATE_DIR"] = str(state)
    return env


def _dream(state: Path, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream_pipeline.cli", *args], env=_env(state),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listed(ps_output: str) -> dict[str, int]:
    """`dream ps` rows as name -> pid."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s", ps_output, re.M)}


def test_stop_leaves_no_process_of_the_project_running(tmp_path: Path):
    state = tmp_path / "state"
    ports = [str(_free_port()), str(_free_port())]
    with open(tmp_path / "start.log", "wb") as log:
        start = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "dream_pipeline.cli", "start", "--port", ports[0], "--deck-port", ports[1]],
            env=_env(state), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        listed: dict[str, int] = {}
        while time.monotonic() < deadline and set(listed) != EVERYTHING:
            assert start.poll() is None, (tmp_path / "start.log").read_text()[-3000:]
            time.sleep(2)
            listed = _listed(_dream(state, "ps").stdout)
        assert set(listed) == EVERYTHING, listed
        ps = _dream(state, "ps").stdout
        assert f"http://127.0.0.1:{ports[0]}" in ps and f"http://127.0.0.1:{ports[1]}" in ps
        assert listed["start"] == start.pid
        every_pid = set(listed.values()) | descendants(listed.values())
        assert len(every_pid) > len(listed)  # the daemon's code server, the database's backends, …

        stop = _dream(state, "stop")
        assert stop.returncode == 0, stop.stderr
        for name in ("start", "engine", "database"):
            assert f"stopped {name} (pid {listed[name]})" in stop.stdout
        start.wait(timeout=10)  # reap it, or it stays a zombie of this test
        still = sorted(pid for pid in every_pid if alive(pid))
        assert still == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in still]
        assert _dream(state, "ps").stdout.startswith("nothing of this project is running")
        assert (state / "pgdata" / "PG_VERSION").exists()  # stopping deletes nothing
    finally:
        if start.poll() is None:
            os.killpg(start.pid, 9)
        _dream(state, "stop")


def test_erase_asks_first_and_stop_of_nothing_says_so(tmp_path: Path):
    state = tmp_path / "state"
    assert _dream(state, "engine", "start").returncode == 0
    engine_pid = _listed(_dream(state, "ps").stdout)["engine"]

    refused = _dream(state, "erase", stdin=subprocess.DEVNULL)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("not run from a terminal, it needs --yes")
    assert alive(engine_pid) and (state / "engine.json").exists()

    erased = _dream(state, "erase", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert f"stopped engine (pid {engine_pid})" in erased.stdout
    assert not state.exists() and not alive(engine_pid)
    assert _dream(state, "stop").stdout.strip() == "nothing of this project was running"


def test_erase_refuses_a_folder_it_did_not_fill(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "thesis.tex").write_text("mine")
    result = _dream(state, "erase", "--yes")
    assert result.returncode == 1
    assert "holds files dream did not write (thesis.tex)" in result.stderr
    assert (state / "thesis.tex").read_text() == "mine"


def test_a_record_of_a_reused_pid_is_not_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A record names a pid and its start time: the same pid started at another time is someone else."""
    import json

    from dream_pipeline.cli import lifecycle

    pid = os.getpid()
    monkeypatch.setenv("DREAM_STATE_DIR", str(tmp_path))
    lifecycle.record_service("daemon", pid)
    assert [p.pid for p in lifecycle.running()] == [pid]
    [record] = (tmp_path / "services").glob("*.json")
    doc = json.loads(record.read_text())
    record.write_text(json.dumps({**doc, "ticks": doc["ticks"] - 1}))
    assert lifecycle.running() == [] and not record.exists()
