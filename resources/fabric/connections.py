"""Connections and migrations: the one way into the database, with pgvector's types and `sql/` applied."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from pgvector.psycopg import register_vector
from psycopg.adapt import AdaptersMap
from psycopg.rows import dict_row

from resources import embedded_postgres
from resources.locations import sql_dir


@functools.cache
def _embedded_url() -> str:
    return embedded_postgres.embedded_url(embedded_postgres.FABRIC_DATABASE)


_MIGRATED: set[str] = set()


# each database's adapters with pgvector's types, looked up once: register_vector fetches four types,
# which on every connection cost more than opening the connection itself; new connections copy them
_ADAPTERS: dict[str, AdaptersMap] = {}


class ConnectionsMixin:
    """The database URL, connections (migrations applied first) and the migrations themselves."""

    def url(self) -> str:
        return self.database_url or _embedded_url()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection with the pgvector adapter, migrations applied; commits on success."""
        self.migrate()
        url = self.url()
        with psycopg.connect(url, row_factory=dict_row, context=_ADAPTERS.get(url)) as conn:
            if url not in _ADAPTERS:
                register_vector(conn)
                _ADAPTERS[url] = conn.adapters
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
