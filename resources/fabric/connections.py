"""Connections and migrations: the one way into the database, with pgvector's types and `sql/` applied.

Each process keeps one connection pool per database (psycopg_pool): a fresh connection costs about
2 ms and an epoch asked for about seventy. A pooled connection is checked before it is lent (its
socket, no round trip), so one the server ended (a restart, `pg_terminate_backend`) is replaced rather
than handed out. Every
connection counts its connects and queries in `FABRIC_STATS` (this process's), which the benchmarks
and the epoch's metadata read.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import select
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg.adapt import AdaptersMap
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from resources import embedded_postgres
from resources.locations import sql_dir

POOL_MAX_SIZE = 8  # the epoch's steps use one connection at a time; the daemon's sensors a few
POOL_MAX_IDLE_S = 60.0  # an idle connection is closed after this, so a quiet process holds none
STATS_DIR_ENV = "BENCH_FABRIC_STATS_DIR"  # set: each process writes its fabric stats there at exit


@functools.cache
def _embedded_url() -> str:
    return embedded_postgres.embedded_url(embedded_postgres.FABRIC_DATABASE)


_MIGRATED: set[str] = set()


# each database's adapters with pgvector's types, looked up once: register_vector fetches four types,
# which on every connection cost more than opening the connection itself; new connections copy them
_ADAPTERS: dict[str, AdaptersMap] = {}


@dataclass
class FabricStats:
    """This process's fabric traffic: connections opened and queries (round trips) made, with their
    time; `trace` keeps (wall clock at start, seconds, kind, the process's CPU seconds then) of each,
    so a benchmark can put them in the step they happened in."""

    connects: int = 0
    connect_s: float = 0.0
    queries: int = 0
    query_s: float = 0.0
    # the latest TRACE_LIMIT only: a daemon running for months keeps a bounded record
    trace: deque[tuple[float, float, str, float]] = field(default_factory=lambda: deque(maxlen=FabricStats.TRACE_LIMIT))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    TRACE_LIMIT = 50_000

    def add(self, kind: str, started_wall: float, seconds: float) -> None:
        with self.lock:
            if kind == "connect":
                self.connects += 1
                self.connect_s += seconds
            else:
                self.queries += 1
                self.query_s += seconds
            self.trace.append((started_wall, seconds, kind, time.process_time()))

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return {"connects": self.connects, "connect_s": self.connect_s, "queries": self.queries,
                    "query_s": self.query_s}

    def since_wall(self, wall: float) -> dict[str, float]:
        """The traffic since the wall-clock time `wall`, with the process's CPU seconds since its first
        connect or query then (a step's or an epoch's own figures, for its metadata)."""
        with self.lock:
            after = [t for t in self.trace if t[0] >= wall]
        return {
            "connects": sum(1 for t in after if t[2] == "connect"),
            "queries": sum(1 for t in after if t[2] == "query"),
            "seconds": sum(t[1] for t in after),
            "cpu_s": time.process_time() - after[0][3] if after else 0.0,
        }

    def since(self, before: dict[str, float]) -> dict[str, float]:
        """The traffic since `snapshot()` returned `before`."""
        now = self.snapshot()
        return {k: now[k] - before[k] for k in now}


FABRIC_STATS = FabricStats()


class _CountedCursor(psycopg.Cursor):
    """A cursor that counts its round trips in FABRIC_STATS."""

    def execute(self, *args: Any, **kwargs: Any):
        wall, started = time.time(), time.perf_counter()
        try:
            return super().execute(*args, **kwargs)
        finally:
            FABRIC_STATS.add("query", wall, time.perf_counter() - started)

    def executemany(self, *args: Any, **kwargs: Any):
        wall, started = time.time(), time.perf_counter()
        try:
            return super().executemany(*args, **kwargs)
        finally:
            FABRIC_STATS.add("query", wall, time.perf_counter() - started)


class _CountedConnection(psycopg.Connection):
    """A connection that counts its opening in FABRIC_STATS."""

    @classmethod
    def connect(cls, *args: Any, **kwargs: Any):
        wall, started = time.time(), time.perf_counter()
        try:
            return super().connect(*args, **kwargs)
        finally:
            FABRIC_STATS.add("connect", wall, time.perf_counter() - started)


def _check_alive(conn: psycopg.Connection) -> None:
    """The pool's check before lending a connection, without a round trip: an idle fabric connection
    (it never LISTENs) has nothing to read unless the server ended it (a restart, `pg_terminate_backend`:
    the server's goodbye or EOF is waiting on the socket); such a connection is refused, so the pool
    replaces it."""
    if conn.closed or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("the pooled connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        conn.close()  # closed, the pool drops it and opens another (open, it would lend it again)
        raise psycopg.OperationalError("the server ended the pooled connection")


# (pid, url) -> (the adapters it was made with, the pool); a forked child makes pools of its own
_POOLS: dict[tuple[int, str], tuple[AdaptersMap, ConnectionPool]] = {}
_POOLS_LOCK = threading.Lock()


def _pool(url: str) -> ConnectionPool:
    adapters = _ADAPTERS.get(url)
    if adapters is None:  # pgvector's types of this database, looked up once on a connection of its own
        with _CountedConnection.connect(url) as conn:
            register_vector(conn)
            adapters = _ADAPTERS.setdefault(url, conn.adapters)
    key = (os.getpid(), url)
    with _POOLS_LOCK:
        held = _POOLS.get(key)
        if held is not None and held[0] is adapters:
            return held[1]
        if held is not None:  # the database was made anew (its pgvector types changed): a new pool
            held[1].close(timeout=0)
        pool = ConnectionPool(
            url, min_size=0, max_size=POOL_MAX_SIZE, max_idle=POOL_MAX_IDLE_S, open=False,
            connection_class=_CountedConnection, check=_check_alive,
            kwargs={"row_factory": dict_row, "context": adapters, "cursor_factory": _CountedCursor},
            name=f"fabric-{len(_POOLS)}",
        )
        pool.open(wait=False)
        _POOLS[key] = (adapters, pool)
        return pool


def close_pools() -> None:
    """Close this process's pools (at exit; tests that must see no connection left)."""
    with _POOLS_LOCK:
        mine = [k for k in _POOLS if k[0] == os.getpid()]
        for key in mine:
            _POOLS.pop(key)[1].close(timeout=1)


def pool_stats(url: str) -> dict[str, int]:
    """psycopg_pool's own counters of this process's pool for `url` (empty without one)."""
    held = _POOLS.get((os.getpid(), url))
    return held[1].get_stats() if held else {}


def _write_stats() -> None:
    folder = os.environ.get(STATS_DIR_ENV)
    if not folder or not FABRIC_STATS.trace:
        return
    times = os.times()
    record = {"pid": os.getpid(), "cpu_s": times.user + times.system, **FABRIC_STATS.snapshot(),
              "trace": list(FABRIC_STATS.trace)}
    try:
        path = Path(folder) / f"fabric-{os.getpid()}-{time.time_ns()}.json"
        path.write_text(json.dumps(record))
    except OSError:
        pass  # a benchmark's folder gone at exit loses only the benchmark's figures


atexit.register(close_pools)
atexit.register(_write_stats)


class ConnectionsMixin:
    """The database URL, connections (migrations applied first) and the migrations themselves."""

    def url(self) -> str:
        return self.database_url or _embedded_url()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection with the pgvector adapter, migrations applied; commits on success,
        rolls back on an error, then goes back to the pool."""
        self.migrate()
        with _pool(self.url()).connection() as conn:
            yield conn

    def migrate(self) -> list[str]:
        """Apply the `sql/` migrations not yet recorded, in order, under an advisory lock; then make
        sure the memory's vector indexes exist for the configured embedding dimension."""
        applied = self._apply_migrations(self.url())
        self.prepare_memory()
        return applied

    def _apply_migrations(self, url: str) -> list[str]:
        if url in _MIGRATED:
            return []
        for attempt in range(3):
            try:
                return self._apply_migrations_once(url)
            except psycopg.errors.InternalError_ as exc:
                # roles are server-wide: two databases migrating at once can collide on ALTER ROLE
                # ("tuple concurrently updated"); the transaction rolled back whole, so run it again
                if "concurrently updated" not in str(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _apply_migrations_once(self, url: str) -> list[str]:
        applied: list[str] = []
        with psycopg.connect(url, autocommit=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('dream_migrations'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for path in sorted(sql_dir().glob("*.sql")):
                if path.name in done:
                    continue
                text = path.read_text(encoding="utf-8")
                conn.execute(text)  # no parameters: the file runs as one multi-statement script
                conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                    (path.name, hashlib.sha256(text.encode()).hexdigest()),
                )
                applied.append(path.name)
            conn.commit()
        _MIGRATED.add(url)
        if applied:
            _ADAPTERS.pop(url, None)  # a new (or recreated) database has pgvector types of its own
        return applied
