"""The embedded PostgreSQL 16 + pgvector server (pgserver), the default state fabric.

The server outlives the command that started it: the daemon, the webserver, the deck and psql all
share it. It listens on a unix socket only (no TCP port), inside the data folder.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from resources.locations import state_dir

FABRIC_DATABASE = "dream"
DAGSTER_DATABASE = "dagster"

# pgserver logs every pg_ctl call at INFO; users only need its errors.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def data_dir() -> Path:
    return state_dir() / "pgdata"


def _server():
    import pgserver  # imported lazily: it is only needed when no DREAM_DATABASE_URL is set

    return pgserver.get_server(data_dir(), cleanup_mode=None)


def server_url(database: str = "postgres") -> str:
    """Start the embedded server if needed and return a libpq URL for `database` (psql accepts it)."""
    server = _server()
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir), safe='/')}"


def ensure_database(url_of_server: str, database: str) -> None:
    """Create `database` on the server behind `url_of_server` unless it exists (idempotent, race-safe)."""
    with psycopg.connect(url_of_server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists:
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def embedded_url(database: str = FABRIC_DATABASE) -> str:
    """URL of `database` on the embedded server, creating the server and the database on first use."""
    ensure_database(server_url(), database)
    return server_url(database)


def is_running() -> bool:
    from pgserver.postgres_server import PostmasterInfo

    if not (data_dir() / "PG_VERSION").exists():
        return False
    info = PostmasterInfo.read_from_pgdata(data_dir())
    return info is not None and info.is_running()


def stop() -> bool:
    """Stop the embedded server; False if it was not running."""
    if not is_running():
        return False
    from pgserver import pg_ctl

    user = "pgserver" if _running_as_root() else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir(), user=user)
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
