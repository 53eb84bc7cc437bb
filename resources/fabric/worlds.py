"""Alternate worlds of a committed epoch (docs/worlds.md): reserving, finishing, listing, promoting one."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dream_pipeline.records import EpochRecord, PromotionError, WorldRow, storable_json, storable_text
from resources.fabric.rows import epoch_from_row


def _committed_epoch(conn: psycopg.Connection, epoch_key: str, refusal: str) -> dict[str, Any]:
    """The epoch's row, locked for this transaction; `PromotionError` (with `refusal`) unless it is committed."""
    epoch = conn.execute("SELECT * FROM simulation_epochs WHERE epoch_key = %s FOR UPDATE", (epoch_key,)).fetchone()
    if epoch is None or epoch["status"] != "committed":
        state = epoch["status"] if epoch else "not opened"
        raise PromotionError(f"{epoch_key} is {state}: {refusal}")
    return epoch


class WorldsMixin:
    """`alternate_worlds`, and the promotion that makes one of them the canon."""

    def reserve_world(self, epoch_key: str) -> tuple[int, str]:
        """The next world number of a committed epoch and its key, reserved (status 'rolling')."""
        with self.connection() as conn:
            epoch = _committed_epoch(conn, epoch_key, "only a committed epoch has alternate worlds")
            number = conn.execute(
                "SELECT coalesce(max(world_number), 0) + 1 AS n FROM alternate_worlds WHERE epoch_id = %s",
                (epoch["epoch_id"],),
            ).fetchone()["n"]
            world_key = f"{epoch_key}~{number}"
            conn.execute(
                "INSERT INTO alternate_worlds (world_key, epoch_id, world_number, status) VALUES (%s, %s, %s, 'rolling')",
                (world_key, epoch["epoch_id"], number),
            )
        return number, world_key

    def finish_world(self, world_key: str, *, seed: int, status: str, document: dict[str, Any],
                     reason: str | None = None) -> None:
        with self.connection() as conn:
            conn.execute(
                "UPDATE alternate_worlds SET seed = %s, status = %s, document = %s, reason = %s WHERE world_key = %s",
                (seed, status, Jsonb(storable_json(document)), None if reason is None else storable_text(reason),
                 world_key),
            )

    def worlds(self, epoch_key: str) -> list[WorldRow]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT w.*, e.epoch_key FROM alternate_worlds w JOIN simulation_epochs e USING (epoch_id)"
                " WHERE e.epoch_key = %s ORDER BY w.world_number",
                (epoch_key,),
            ).fetchall()
        return [
            WorldRow(r["world_key"], r["epoch_key"], r["world_number"], r["seed"], r["status"], r["reason"],
                     r["document"])
            for r in rows
        ]

    def latest_rolled_epoch(self, book: str) -> str | None:
        """The key of the epoch of `book` whose alternate world was rolled last (None: no re-roll yet)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT e.epoch_key FROM alternate_worlds w JOIN simulation_epochs e USING (epoch_id)"
                " WHERE e.book = %s AND w.status <> 'superseded' ORDER BY w.created_at DESC LIMIT 1",
                (book,),
            ).fetchone()
        return None if row is None else row["epoch_key"]

    def promote_world(self, epoch_key: str, world_number: int, superseded: dict[str, Any]) -> EpochRecord:
        """Make world `world_number` the canon of the book's latest epoch, in one transaction.

        The epoch is unwound to where its first run began: the Reaper's act is undone (the eliminated
        agent lives again; its replacement, who never played, is removed), the canon's rows are
        deleted, and the canon is kept as a 'superseded' world (`superseded`: its document) whose
        engine calls move to its world key. The promoted world's calls move to the epoch's key and its
        seed becomes the epoch's, so the next run of the epoch rebuilds exactly that world from the
        record, and the Reaper acts on its result. Refused unless this is the latest epoch of its book.
        """
        with self.connection() as conn:
            epoch = _committed_epoch(conn, epoch_key, "only a committed epoch can take another world")
            later = conn.execute(
                "SELECT epoch_key FROM simulation_epochs WHERE book = %s AND epoch_number > %s"
                " ORDER BY epoch_number LIMIT 1",
                (epoch["book"], epoch["epoch_number"]),
            ).fetchone()
            if later is not None:
                raise PromotionError(
                    f"only the latest epoch can be promoted, and {later['epoch_key']} has opened after {epoch_key}"
                    " (stop the loop, or promote before the next epoch starts)"
                )
            world = conn.execute(
                "SELECT * FROM alternate_worlds WHERE epoch_id = %s AND world_number = %s FOR UPDATE",
                (epoch["epoch_id"], world_number),
            ).fetchone()
            if world is None or world["status"] != "complete":
                state = world["status"] if world else "missing"
                raise PromotionError(f"world {world_number} of {epoch_key} is {state}: only a complete world can be promoted")

            loser = epoch["loser_agent_id"]
            if loser is not None:  # undo the Reaper
                conn.execute(
                    "DELETE FROM agents WHERE replaced_agent_id = %s AND joined_epoch = %s",
                    (loser, epoch["epoch_number"] + 1),
                )
                conn.execute(
                    "UPDATE agents SET alive = TRUE, retired_epoch = NULL, retired_at = NULL WHERE agent_id = %s",
                    (loser,),
                )
            number = conn.execute(
                "SELECT max(world_number) + 1 AS n FROM alternate_worlds WHERE epoch_id = %s", (epoch["epoch_id"],)
            ).fetchone()["n"]
            superseded_key = f"{epoch_key}~{number}"
            conn.execute(
                "INSERT INTO alternate_worlds (world_key, epoch_id, world_number, seed, status, document)"
                " VALUES (%s, %s, %s, %s, 'superseded', %s)",
                (superseded_key, epoch["epoch_id"], number, epoch["world_seed"], Jsonb(storable_json(superseded))),
            )
            conn.execute("UPDATE llm_calls SET epoch_key = %s WHERE epoch_key = %s", (superseded_key, epoch_key))
            conn.execute("UPDATE llm_calls SET epoch_key = %s WHERE epoch_key = %s", (epoch_key, world["world_key"]))
            for table in ("chapters", "book_summaries", "peer_votes", "vote_abstentions", "review_assignments",
                          "elo_ratings", "voter_flags", "ballot_weights", "drafts", "epoch_timing"):
                conn.execute(sql.SQL("DELETE FROM {} WHERE epoch_id = %s").format(sql.Identifier(table)),
                             (epoch["epoch_id"],))
            conn.execute(
                "UPDATE alternate_worlds SET status = 'promoted', promoted_at = now() WHERE world_key = %s",
                (world["world_key"],),
            )
            row = conn.execute(
                "UPDATE simulation_epochs SET status = 'running', winner_agent_id = NULL, loser_agent_id = NULL,"
                " bottom_separated = NULL, end_time = NULL, run_id = NULL, world_seed = %s, fingerprint = NULL,"
                " fingerprint_sections = NULL,"
                " timings = timings || jsonb_build_object('promoted_world', %s::int)"
                " WHERE epoch_id = %s RETURNING *",
                (world["seed"], world_number, epoch["epoch_id"]),
            ).fetchone()
        return epoch_from_row(row)
