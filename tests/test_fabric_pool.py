"""The fabric's connection pool: connections go back to it, a killed one is replaced, and a database
restart is survived (real servers, no mocks)."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from resources.fabric import StateFabric
from resources.fabric.connections import FABRIC_STATS, pool_stats


def test_connections_go_back_to_the_pool(fabric: StateFabric):
    with fabric.connection() as conn:
        conn.execute("SELECT 1")
    # earlier tests in this process may have grown the pool past one connection: none may be added here
    size = pool_stats(fabric.url())["pool_size"]
    before = FABRIC_STATS.snapshot()
    pids = set()
    for _ in range(30):
        with fabric.connection() as conn:
            pids.add(conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])
    spent = FABRIC_STATS.since(before)
    assert 1 <= len(pids) <= size  # thirty borrows served by the connections the pool already held
    assert spent["connects"] == 0
    assert spent["queries"] == 30  # each SELECT counted; lending checks the socket, no round trip
    stats = pool_stats(fabric.url())
    assert stats["pool_size"] == size and stats["pool_available"] == size  # every one went back


def test_a_transaction_commits_or_rolls_back_before_it_goes_back(fabric: StateFabric):
    with fabric.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pool_probe (n int)")
        conn.execute("TRUNCATE pool_probe")
    with pytest.raises(ZeroDivisionError), fabric.connection() as conn:
        conn.execute("INSERT INTO pool_probe VALUES (1)")
        1 / 0  # noqa: B018
    with fabric.connection() as conn:
        conn.execute("INSERT INTO pool_probe VALUES (2)")
    with psycopg.connect(fabric.url()) as other:  # another session sees only the committed row
        assert [r[0] for r in other.execute("SELECT n FROM pool_probe")] == [2]
        other.execute("DROP TABLE pool_probe")


def test_a_killed_connection_is_replaced(fabric: StateFabric):
    with fabric.connection() as conn:
        victim = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    with psycopg.connect(fabric.url(), autocommit=True) as admin:
        # the timeout form returns once the backend has gone (the plain one only signals it)
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (victim,)).fetchone()[0] is True
    with fabric.connection() as conn:
        now = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        assert conn.execute("SELECT count(*) AS n FROM simulation_epochs").fetchone()["n"] == 0
    assert now != victim


def _dream(state, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_"))}
    env["DREAM_STATE_DIR"] = str(state)
    done = subprocess.run([sys.executable, "-m", "dream_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return done.stdout.strip()


def test_a_database_restart_is_survived(tmp_path):
    url = _dream(tmp_path, "db", "url")  # a server of its own, in a scratch state folder
    try:
        fabric = StateFabric(database_url=url)
        with fabric.connection() as conn:
            before = conn.execute("SELECT pg_postmaster_start_time() AS t").fetchone()["t"]
        _dream(tmp_path, "db", "stop")
        assert _dream(tmp_path, "db", "url") == url  # started again, same socket
        with fabric.connection() as conn:  # the pooled connection died with the server: a new one
            after = conn.execute("SELECT pg_postmaster_start_time() AS t").fetchone()["t"]
        assert after > before
    finally:
        _dream(tmp_path, "db", "stop")
