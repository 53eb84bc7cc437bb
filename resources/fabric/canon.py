"""The canon and the Reaper: the chapter, the commit (with its fingerprint and NOTIFY, one
transaction), and the guard that keeps every other write off a committed epoch's rows."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dream_pipeline import fingerprint
from dream_pipeline.records import CanonLocked, ChapterRow, EpochRecord, ReapOutcome
from resources.fabric.rows import as_vector, chapter_from_row
from spica import SpicaAgent

EPOCH_CHANNEL = "dream_epochs"


# the tables holding a committed epoch's rows: nothing but its commit or a promotion writes them
CANON_TABLES = ("simulation_epochs", "drafts", "peer_votes", "vote_abstentions", "elo_ratings", "voter_flags",
                "chapters", "book_summaries", "ballot_weights", "review_assignments",
                "repair_tasks", "candidate_tests", "voter_calibration")


def refuse_committed(conn: psycopg.Connection, epoch_id: uuid.UUID) -> None:
    """Lock the epoch's row for this write; raise if it is committed (the canon is never rewritten)."""
    row = conn.execute(
        "SELECT epoch_key, status FROM simulation_epochs WHERE epoch_id = %s FOR UPDATE", (epoch_id,)
    ).fetchone()
    if row is not None and row["status"] == "committed":
        raise CanonLocked(
            f"{row['epoch_key']} is committed: its rows are written only by its commit or a promotion"
            " (a replay verifies them, a re-roll is an alternate world)"
        )


class CanonMixin:
    """The chapters, the Reaper's commit, and what a committed epoch's rows say (its fingerprint)."""

    def commit_chapter(self, epoch_id: uuid.UUID, book: str, chapter: ChapterRow) -> None:
        """Write (or rewrite) the epoch's chapter; the epoch becomes 'collapsed' until the Reaper runs."""
        with self.connection() as conn:
            refuse_committed(conn, epoch_id)
            conn.execute(
                "INSERT INTO chapters (book, chapter_number, epoch_id, draft_id, agent_id, title, text,"
                " epoch_score, margin, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (epoch_id) DO UPDATE SET draft_id = EXCLUDED.draft_id,"
                " agent_id = EXCLUDED.agent_id, title = EXCLUDED.title, text = EXCLUDED.text,"
                " epoch_score = EXCLUDED.epoch_score, margin = EXCLUDED.margin,"
                " embedding = EXCLUDED.embedding, committed_at = now()",
                (
                    book, chapter.chapter_number, epoch_id, chapter.draft_id, chapter.agent_id, chapter.title,
                    chapter.text, chapter.epoch_score, chapter.margin, as_vector(chapter.embedding),
                ),
            )
            conn.execute(
                "UPDATE simulation_epochs SET status = 'collapsed' WHERE epoch_id = %s AND status <> 'committed'",
                (epoch_id,),
            )

    def reap(
        self, epoch: EpochRecord, loser: SpicaAgent | None, replacement: SpicaAgent | None
    ) -> ReapOutcome:
        """Retire the loser, seat its replacement and commit the epoch, in one transaction.

        The NOTIFY on `dream_epochs` is sent by the same transaction, with the epoch's row in
        `epoch_timing` (what the deck's timing summary reads), so whoever waits on it sees the whole
        committed state. Running it again for a committed epoch changes nothing.
        """
        with self.connection() as conn:
            row = conn.execute(
                "SELECT status FROM simulation_epochs WHERE epoch_id = %s FOR UPDATE", (epoch.epoch_id,)
            ).fetchone()
            if row["status"] == "committed":
                return ReapOutcome(None, None, already_done=True)
            if row["status"] != "collapsed":
                raise RuntimeError(f"epoch {epoch.epoch_key} has no committed chapter yet (status {row['status']})")
            retired = seated = None
            if loser is not None:
                conn.execute(
                    "UPDATE agents SET alive = FALSE, state = '{}'::jsonb, retired_epoch = %s, retired_at = now()"
                    " WHERE agent_id = %s",
                    (epoch.epoch_number, loser.instance_id),
                )
                retired = loser.name
                if replacement is not None:
                    self._insert_agents(
                        conn, epoch.book, [replacement],
                        joined_epoch=epoch.epoch_number + 1, replaced=loser.instance_id,
                    )
                    seated = replacement.name
            digests = fingerprint.section_digests(self._canon_facts(conn, epoch.epoch_id))
            conn.execute(
                "UPDATE simulation_epochs SET status = 'committed', end_time = now(), fingerprint = %s,"
                " fingerprint_sections = %s WHERE epoch_id = %s",
                (fingerprint.fingerprint(digests), Jsonb(digests), epoch.epoch_id),
            )
            # the epoch's timing row (sql/018_epoch_timing.sql; the next epoch's too, should it have
            # committed first) and the notification: one statement, in the commit's transaction
            conn.execute(
                "SELECT record_epoch_timings(%s, %s, %s), pg_notify(%s, %s)",
                (epoch.book, epoch.epoch_number, epoch.epoch_number + 1, EPOCH_CHANNEL, epoch.epoch_key),
            )
            return ReapOutcome(retired, seated, already_done=False)

    def chapters(self, book: str, *, limit: int | None = None, before_number: int | None = None) -> list[ChapterRow]:
        """Chapters of `book` in order; with `limit`, the latest ones (still in reading order)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT c.*, a.name AS author, e.epoch_key FROM chapters c"
                " JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id)"
                " WHERE c.book = %s AND (%s::int IS NULL OR c.chapter_number < %s::int)"
                " ORDER BY c.chapter_number DESC LIMIT %s",
                (book, before_number, before_number, limit),
            ).fetchall()
        return [chapter_from_row(r) for r in reversed(rows)]

    def chapter_for_epoch(self, epoch_id: uuid.UUID) -> ChapterRow | None:
        with self.connection() as conn:
            return self._chapter_for_epoch(conn, epoch_id)

    @staticmethod
    def _chapter_for_epoch(conn: psycopg.Connection, epoch_id: uuid.UUID) -> ChapterRow | None:
        r = conn.execute(
            "SELECT c.*, a.name AS author, e.epoch_key FROM chapters c JOIN agents a USING (agent_id)"
            " JOIN simulation_epochs e USING (epoch_id) WHERE c.epoch_id = %s",
            (epoch_id,),
        ).fetchone()
        return None if r is None else chapter_from_row(r)

    def _canon_facts(self, conn: psycopg.Connection, epoch_id: uuid.UUID) -> dict[str, Any]:
        epoch = conn.execute(
            "SELECT winner_agent_id, loser_agent_id FROM simulation_epochs WHERE epoch_id = %s", (epoch_id,)
        ).fetchone()
        return {
            "drafts": fingerprint.draft_facts(self._drafts(conn, epoch_id)),
            "votes": fingerprint.vote_facts(self._votes(conn, epoch_id)),
            "abstentions": fingerprint.abstention_facts(self._abstentions(conn, epoch_id)),
            "ratings": fingerprint.rating_facts(self._ratings(conn, epoch_id)),
            "outcome": fingerprint.outcome_facts(epoch["winner_agent_id"], epoch["loser_agent_id"]),
            "chapter": fingerprint.chapter_facts(self._chapter_for_epoch(conn, epoch_id)),
        }

    def canon_facts(self, epoch_id: uuid.UUID) -> dict[str, Any]:
        """What the stored rows of an epoch say it decided, section by section (`fingerprint.SECTIONS`)."""
        with self.connection() as conn:
            return self._canon_facts(conn, epoch_id)

    def canon_snapshot(self, epoch_id: uuid.UUID | None = None) -> dict[str, list[str]]:
        """Every row of the committed epochs (or of the committed epoch `epoch_id`), ids and times
        included, as JSON text per table: two snapshots are equal exactly when the canon is unchanged."""
        out: dict[str, list[str]] = {}
        with self.connection() as conn:
            for table in CANON_TABLES:
                rows = conn.execute(
                    sql.SQL(
                        "SELECT to_jsonb(t)::text AS row FROM {} t JOIN simulation_epochs e USING (epoch_id)"
                        " WHERE e.status = 'committed' AND (%s::uuid IS NULL OR e.epoch_id = %s::uuid) ORDER BY 1"
                    ).format(sql.Identifier(table)) if table != "simulation_epochs" else sql.SQL(
                        "SELECT to_jsonb(e)::text AS row FROM simulation_epochs e"
                        " WHERE e.status = 'committed' AND (%s::uuid IS NULL OR e.epoch_id = %s::uuid) ORDER BY 1"
                    ),
                    (epoch_id, epoch_id),
                ).fetchall()
                out[table] = [r["row"] for r in rows]
        return out

    def committed_fingerprint(self, epoch_id: uuid.UUID) -> tuple[str | None, dict[str, str] | None]:
        """The fingerprint stored when the epoch committed and its section digests (None before that,
        or for an epoch committed before fingerprints were kept)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT fingerprint, fingerprint_sections FROM simulation_epochs WHERE epoch_id = %s", (epoch_id,)
            ).fetchone()
        return (None, None) if row is None else (row["fingerprint"], row["fingerprint_sections"])
