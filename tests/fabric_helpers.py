"""What tests read and write of the fabric that the pipeline itself never does.

These were `StateFabric` methods serving only the tests; here they are built on the fabric's own
connection and row writers, so the resource carries nothing the pipeline does not use.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence

import psycopg
import pytest
from psycopg import sql

from dream_pipeline import fingerprint
from dream_pipeline.records import AbstentionRow, AssignmentRow, VoteRow
from resources import embedded_postgres
from resources.fabric import StateFabric
from resources.fabric.ballots import insert_ballots, insert_review_design
from resources.fabric.canon import refuse_committed
from resources.fabric.rows import agent_from_row
from spica import SpicaAgent


@contextlib.contextmanager
def scratch_database(tag: str) -> Iterator[str]:
    """The URL of an empty database of its own on the embedded server, dropped afterwards: for a test
    that needs a fabric of its own (an old schema to migrate, a per-database setting). A name of its
    own each time, since the fabric remembers a URL it has migrated."""
    if os.environ.get("DREAM_TEST_DATABASE_URL"):
        pytest.skip("needs the embedded server to create a scratch database")
    name = f"dream_test_{os.getpid()}_{tag}_{uuid.uuid4().hex[:8]}"
    server = embedded_postgres.server_url()
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield embedded_postgres.server_url(name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(drop)


def applied_migrations(fabric: StateFabric) -> list[str]:
    """The `sql/` migrations recorded in `schema_migrations`, in order."""
    with fabric.connection() as conn:
        return [r["version"] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def alive_agents(fabric: StateFabric, book: str) -> list[SpicaAgent]:
    """The living agents of `book`, in seating order (the order `open_epoch` rosters them)."""
    with fabric.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM agents WHERE book = %s AND alive ORDER BY joined_epoch, name", (book,)
        ).fetchall()
    return [agent_from_row(row) for row in rows]


def write_votes(
    fabric: StateFabric, epoch_id: uuid.UUID, votes: Sequence[VoteRow], abstentions: Sequence[AbstentionRow],
    assignments: Sequence[AssignmentRow] = (),
) -> None:
    """Replace an open epoch's ballots whole, in one transaction (the pipeline writes them voter by voter,
    `write_ballot`): the review design, the votes and the abstentions."""
    with fabric.connection() as conn:
        refuse_committed(conn, epoch_id)
        conn.execute("DELETE FROM peer_votes WHERE epoch_id = %s", (epoch_id,))
        conn.execute("DELETE FROM vote_abstentions WHERE epoch_id = %s", (epoch_id,))
        insert_review_design(conn, epoch_id, assignments)
        insert_ballots(conn, epoch_id, votes, abstentions)


def epoch_fingerprint(fabric: StateFabric, epoch_id: uuid.UUID) -> str:
    """The fingerprint of an epoch's stored rows as they are now (what its commit stored, if untouched)."""
    return fingerprint.fingerprint(fingerprint.section_digests(fabric.canon_facts(epoch_id)))
