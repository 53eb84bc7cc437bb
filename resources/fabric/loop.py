"""The loop's own record: its timeline of epochs, and when it was down (dream_pipeline/defs/loop/downtime.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


class LoopMixin:
    """What `dream status`, the downtime bookkeeping and the benches read of the loop."""

    def loop_timeline(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest epochs with their start, barrier release, first engine call and commit times (for
        status and benches)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT epoch_key, book, epoch_number, status, start_time, released_at, end_time, run_id,"
                " timings->>'failure' AS failure,"
                " (SELECT min(c.started_at) FROM llm_calls c WHERE c.epoch_key = e.epoch_key) AS first_call_at"
                " FROM simulation_epochs e ORDER BY start_time DESC LIMIT %s",
                (limit,),
            ).fetchall()
        return list(reversed(rows))

    def barrier_state(self, book: str, epoch_key: str, previous_key: str | None) -> tuple[str | None, list[str]]:
        """What the barrier reads, in one round trip: the status of the book's previous epoch (None when it
        has not started), and the open (running or collapsed) epochs of other books."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT (SELECT status FROM simulation_epochs WHERE epoch_key = %(previous)s) AS previous,"
                " ARRAY(SELECT epoch_key FROM simulation_epochs WHERE status IN ('running', 'collapsed')"
                "   AND epoch_key <> %(key)s AND book <> %(book)s ORDER BY epoch_key) AS others",
                {"previous": previous_key, "key": epoch_key, "book": book},
            ).fetchone()
        return row["previous"], list(row["others"])

    def record_downtime(self, down_from: datetime, down_until: datetime, resumed_by: str) -> None:
        """Note that the loop was not running from `down_from` to `down_until` (dream_pipeline/defs/loop/downtime.py);
        the same start noted twice keeps the later end."""
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO loop_downtime (down_from, down_until, resumed_by) VALUES (%s, %s, %s)"
                " ON CONFLICT (down_from) DO UPDATE SET down_until = greatest(loop_downtime.down_until,"
                " EXCLUDED.down_until)",
                (down_from, down_until, resumed_by),
            )

    def downtimes(self, since: datetime) -> list[tuple[datetime, datetime]]:
        """The loop's downtime intervals that end after `since`."""
        with self.connection() as conn:
            rows = conn.execute("SELECT down_from, down_until FROM loop_downtime WHERE down_until > %s"
                                " ORDER BY down_from", (since,)).fetchall()
        return [(r["down_from"], r["down_until"]) for r in rows]

    def latest_commit_time(self) -> datetime | None:
        """When the latest epoch of any book ended (the loop runs the books in turn)."""
        with self.connection() as conn:
            return conn.execute("SELECT max(end_time) AS t FROM simulation_epochs").fetchone()["t"]

    def latest_committed_key(self, books: tuple[str, ...] | list[str]) -> str | None:
        """The key of the latest committed epoch among `books` (where a run of them in turn resumes)."""
        with self.connection() as conn:
            row = conn.execute("SELECT epoch_key FROM simulation_epochs WHERE status = 'committed' AND book = ANY(%s)"
                               " ORDER BY end_time DESC NULLS LAST LIMIT 1", (list(books),)).fetchone()
        return None if row is None else row["epoch_key"]

    def domain_summaries(self, books: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
        """Per book (domain instance): committed epochs, the latest committed number, open epochs, and for a
        domain with tests (CodeRepair) the mean hidden-test pass rate of its committed winners (else None)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT e.book, count(*) FILTER (WHERE e.status = 'committed') AS committed,"
                " max(e.epoch_number) FILTER (WHERE e.status = 'committed') AS last,"
                " count(*) FILTER (WHERE e.status <> 'committed') AS open,"
                " avg(t.pass_rate) FILTER (WHERE e.status = 'committed') AS winner_pass_rate"
                " FROM simulation_epochs e LEFT JOIN drafts d ON d.epoch_id = e.epoch_id"
                " AND d.agent_id = e.winner_agent_id LEFT JOIN candidate_tests t ON t.draft_id = d.draft_id"
                " WHERE e.book = ANY(%s) GROUP BY e.book", (list(books),)).fetchall()
        return {r["book"]: dict(r) for r in rows}
