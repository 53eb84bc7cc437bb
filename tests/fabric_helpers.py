"""What tests read and write of the fabric that the pipeline itself never does.

These were `StateFabric` methods serving only the tests; here they are built on the fabric's own
connection and row writers, so the resource carries nothing the pipeline does not use.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from dream_pipeline import fingerprint
from dream_pipeline.records import AbstentionRow, AssignmentRow, VoteRow
from resources.fabric import StateFabric
from resources.fabric.ballots import insert_ballots, insert_review_design
from resources.fabric.canon import refuse_committed
from resources.fabric.rows import agent_from_row
from spica import SpicaAgent


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
