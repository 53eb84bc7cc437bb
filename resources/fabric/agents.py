"""Books and their agents: seating the cast, reading agents back, lineage and standings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg
from psycopg.types.json import Jsonb

from dream_pipeline.records import Standing
from resources.fabric.rows import agent_from_row
from spica import SpicaAgent, SpicaBook


class AgentsMixin:
    """The book domains and the agents they have had, alive or retired."""

    def ensure_book(self, book: SpicaBook, cast_size: int | None = None) -> bool:
        """Record the book domain and seat its initial cast (`cast_size` agents, default the manifest's)
        the first time; True if it was new."""
        with self.connection() as conn:
            inserted = conn.execute(
                "INSERT INTO domains (domain_id, instance_id, kind, manifest, state) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (domain_id) DO NOTHING RETURNING domain_id",
                (book.name, book.instance_id, book.kind, Jsonb(dict(book.manifest)), Jsonb(book.state)),
            ).fetchone()
            if inserted:
                cast = book.initial_cast() if cast_size is None else book.initial_cast(cast_size)
                self._insert_agents(conn, book.name, cast, joined_epoch=1)
            return inserted is not None

    def _insert_agents(
        self,
        conn: psycopg.Connection,
        book: str,
        agents: Sequence[SpicaAgent],
        *,
        joined_epoch: int,
        replaced: uuid.UUID | None = None,
    ) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO agents (agent_id, book, name, persona, manifest, state, generation,"
                " parent_agent_id, replaced_agent_id, origin, joined_epoch)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        a.instance_id, book, a.name, a.role, Jsonb(dict(a.manifest)), Jsonb(a.state),
                        a.lineage.generation, a.lineage.parent_id, replaced, a.lineage.origin, joined_epoch,
                    )
                    for a in agents
                ],
            )

    def agents(self, agent_ids: Sequence[uuid.UUID]) -> list[SpicaAgent]:
        """The agents with these ids, in the given order."""
        with self.connection() as conn:
            rows = conn.execute("SELECT * FROM agents WHERE agent_id = ANY(%s)", (list(agent_ids),)).fetchall()
        by_id = {row["agent_id"]: agent_from_row(row) for row in rows}
        missing = [str(i) for i in agent_ids if i not in by_id]
        if missing:
            raise LookupError(f"unknown agent ids: {', '.join(missing)}")
        return [by_id[i] for i in agent_ids]

    def lineage_members(self, book: str) -> list[tuple[SpicaAgent, bool, float | None]]:
        """Every agent the book has had, with whether it is alive and its latest elimination score
        (else its latest Elo; None if never rated): what the Reaper's diversity rule chooses from."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT a.*, (SELECT coalesce(r.elimination_score, r.rating_after) FROM elo_ratings r"
                "   JOIN simulation_epochs e USING (epoch_id) WHERE r.agent_id = a.agent_id"
                "   ORDER BY e.epoch_number DESC LIMIT 1) AS latest_score"
                " FROM agents a WHERE a.book = %s ORDER BY a.joined_epoch, a.name",
                (book,),
            ).fetchall()
        return [(agent_from_row(r), r["alive"], r["latest_score"]) for r in rows]

    def persona_names_used(self, book: str) -> set[str]:
        with self.connection() as conn:
            return {r["name"] for r in conn.execute("SELECT name FROM agents WHERE book = %s", (book,))}

    def joined_epochs(self, agent_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT agent_id, joined_epoch FROM agents WHERE agent_id = ANY(%s)", (list(agent_ids),)
            )
            return {r["agent_id"]: r["joined_epoch"] for r in rows}

    def standings(self, book: str) -> list[Standing]:
        """Every agent the book has had, best current rating first, the retired last."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT a.name, a.persona, a.alive, a.origin, a.joined_epoch,"
                " (SELECT r.rating_after FROM elo_ratings r JOIN simulation_epochs e USING (epoch_id)"
                "   WHERE r.agent_id = a.agent_id ORDER BY e.epoch_number DESC LIMIT 1) AS rating,"
                " (SELECT count(*) FROM elo_ratings r WHERE r.agent_id = a.agent_id) AS epochs,"
                " (SELECT count(*) FROM chapters c WHERE c.agent_id = a.agent_id) AS wins"
                " FROM agents a WHERE a.book = %s",
                (book,),
            ).fetchall()
        standings = [
            Standing(r["name"], r["persona"], r["alive"], r["rating"], r["epochs"], r["wins"], r["origin"],
                     r["joined_epoch"])
            for r in rows
        ]
        return sorted(standings, key=lambda s: (not s.alive, -(s.rating or 0.0), s.name))
