"""Epochs: opening one in order (one at a time across books), finding it, failing it for a rerun or a new roll."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg.types.json import Jsonb

from dream_pipeline.records import EpochBusy, EpochOrderError, EpochRecord, request_seed, storable_text
from resources.fabric.rows import epoch_from_row


class EpochsMixin:
    """The `simulation_epochs` rows: an epoch's lifecycle up to its commit (the commit is `CanonMixin.reap`)."""

    def open_epoch(self, book: str, epoch_key: str, epoch_number: int,
                   busy: Callable[[str], bool] | None = None) -> EpochRecord:
        """The epoch's record, created with the living roster the first time.

        A rerun of an epoch keeps the roster it started with (the Reaper may have changed the living
        set since). An epoch cannot open before its predecessor committed. With `busy` (is a live run
        working on this epoch key?), an uncommitted epoch does not (re)open while another book's epoch
        is open with a live run: it raises `EpochBusy`. Every opening holds one lock for all books, so
        two books' epochs can never pass together.
        """
        with self.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('dream_epoch_open'))")
            row = conn.execute("SELECT * FROM simulation_epochs WHERE epoch_key = %s", (epoch_key,)).fetchone()
            if busy is not None and (row is None or row["status"] != "committed"):
                for other in conn.execute(
                    "SELECT epoch_key FROM simulation_epochs WHERE status IN ('running', 'collapsed')"
                    " AND book <> %s ORDER BY start_time",
                    (book,),
                ).fetchall():
                    if busy(other["epoch_key"]):
                        raise EpochBusy(f"{epoch_key} waits: {other['epoch_key']} (another book) is open")
            if row:
                if row["status"] == "failed":
                    row = conn.execute(
                        "UPDATE simulation_epochs SET status = 'running' WHERE epoch_id = %s RETURNING *",
                        (row["epoch_id"],),
                    ).fetchone()
                return epoch_from_row(row)
            if epoch_number > 1:
                previous = conn.execute(
                    "SELECT status FROM simulation_epochs WHERE book = %s AND epoch_number = %s",
                    (book, epoch_number - 1),
                ).fetchone()
                if previous is None or previous["status"] != "committed":
                    state = previous["status"] if previous else "missing"
                    raise EpochOrderError(
                        f"epoch {epoch_number} of {book!r} cannot start: epoch {epoch_number - 1} is {state}"
                    )
            alive = [
                r["agent_id"]
                for r in conn.execute(
                    "SELECT agent_id FROM agents WHERE book = %s AND alive ORDER BY joined_epoch, name", (book,)
                )
            ]
            if len(alive) < 2:
                raise RuntimeError(f"book {book!r} has {len(alive)} living agents; a tournament needs two")
            row = conn.execute(
                "INSERT INTO simulation_epochs (epoch_key, book, epoch_number, active_agent_ids)"
                " VALUES (%s, %s, %s, %s) RETURNING *",
                (epoch_key, book, epoch_number, alive),
            ).fetchone()
            return epoch_from_row(row)

    def epoch(self, epoch_key: str) -> EpochRecord:
        found = self.find_epoch(epoch_key)
        if found is None:
            raise LookupError(f"epoch {epoch_key!r} has not been opened (materialize its roster first)")
        return found

    def find_epoch(self, epoch_key: str) -> EpochRecord | None:
        with self.connection() as conn:
            row = conn.execute("SELECT * FROM simulation_epochs WHERE epoch_key = %s", (epoch_key,)).fetchone()
        return None if row is None else epoch_from_row(row)

    def next_epoch_number(self, book: str) -> int:
        """The first epoch of `book` that is not committed yet (a failed or interrupted one is resumed)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT min(epoch_number) FILTER (WHERE status <> 'committed') AS open,"
                " max(epoch_number) AS last FROM simulation_epochs WHERE book = %s",
                (book,),
            ).fetchone()
        return row["open"] or (row["last"] or 0) + 1

    def latest_committed_epoch(self, book: str) -> EpochRecord | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT * FROM simulation_epochs WHERE book = %s AND status = 'committed'"
                " ORDER BY epoch_number DESC LIMIT 1",
                (book,),
            ).fetchone()
        return None if row is None else epoch_from_row(row)

    def mark_epoch_failed(self, epoch_key: str, reason: str, run_id: str | None = None) -> None:
        """Record why the epoch failed; with `run_id`, only if that run still owns the epoch."""
        with self.connection() as conn:
            conn.execute(
                "UPDATE simulation_epochs SET status = 'failed',"
                " timings = timings || jsonb_build_object('failure', %s::text)"
                " WHERE epoch_key = %s AND status <> 'committed'"
                " AND (%s::text IS NULL OR run_id IS NULL OR run_id = %s::text)",
                (reason[:2000], epoch_key, run_id, run_id),
            )

    def record_run_failure(self, epoch_key: str, job: str, run_id: str, reason: str) -> str:
        """A failed run of any job on an epoch partition, recorded on that epoch: an open epoch is marked
        failed (when the run still owns it) so the loop retries it; every failure, a failed replay of a
        committed epoch included, is kept as the epoch's `run_failed` telemetry, the canon untouched.
        Returns the epoch's status ('' when it was never opened)."""
        self.mark_epoch_failed(epoch_key, reason, run_id=run_id)
        with self.connection() as conn:
            row = conn.execute(
                "SELECT epoch_id, status FROM simulation_epochs WHERE epoch_key = %s", (epoch_key,)
            ).fetchone()
            if row is None:
                return ""
            conn.execute(
                "INSERT INTO telemetry (instance_id, kind, epoch_key, event, payload) VALUES (%s, 'epoch', %s, %s, %s)"
                " ON CONFLICT (instance_id, epoch_key, event) WHERE epoch_key IS NOT NULL DO NOTHING",
                (row["epoch_id"], epoch_key, f"run_failed:{run_id}",
                 Jsonb({"job": job, "run_id": run_id, "status": row["status"], "reason": storable_text(reason[:2000])})),
            )
            return row["status"]

    def run_failures(self, epoch_key: str) -> list[dict[str, Any]]:
        """The failed runs recorded on an epoch (`record_run_failure`), oldest first."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT payload, recorded_at FROM telemetry WHERE epoch_key = %s AND kind = 'epoch'"
                " AND event LIKE 'run_failed:%%' ORDER BY recorded_at",
                (epoch_key,),
            ).fetchall()
        return [{**r["payload"], "recorded_at": r["recorded_at"]} for r in rows]

    def fail_for_a_new_roll(self, epoch_key: str, reason: str) -> None:
        """Fail an epoch that could not be ranked (too few drafts or valid ballots) so that its next run
        rolls it afresh: its recorded answers would only fail it the same way again. The next roll's
        request seed becomes the epoch's `world_seed` (which replays send again), and its engine modes are
        decided again (the engine may have changed, or stepped down). A committed epoch is left alone."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT coalesce((timings->>'rolls')::int, 1) AS rolls FROM simulation_epochs"
                " WHERE epoch_key = %s AND status <> 'committed' FOR UPDATE",
                (epoch_key,),
            ).fetchone()
            if row is None:
                return
            rolls = row["rolls"] + 1
            conn.execute(
                "UPDATE simulation_epochs SET status = 'failed', world_seed = %s, engine_modes = NULL,"
                " timings = timings || jsonb_build_object('failure', %s::text, 'rolls', %s::int)"
                " WHERE epoch_key = %s",
                (request_seed(f"{epoch_key}#roll{rolls}"), reason[:2000], rolls, epoch_key),
            )

    def stalled_epochs(self, min_failures: int) -> list[dict[str, Any]]:
        """Open epochs that failed at least `min_failures` times in a row (each failure rolls the epoch
        afresh, counted in `timings.rolls`), with the last failure's reason."""
        with self.connection() as conn:
            return conn.execute(
                "SELECT epoch_key, (timings->>'rolls')::int - 1 AS failures, timings->>'failure' AS failure"
                " FROM simulation_epochs WHERE status <> 'committed' AND (timings->>'rolls')::int - 1 >= %s"
                " ORDER BY epoch_key",
                (min_failures,),
            ).fetchall()
