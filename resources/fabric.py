"""The state fabric: PostgreSQL + pgvector as the record of every world.

All of the tournament's SQL lives here (and in `sql/`). Every write that belongs to an epoch is
idempotent: re-materializing an epoch that has not committed replaces its rows in one transaction,
so a rerun never duplicates or half-writes them. A committed epoch's rows are written only by its
commit (`reap`, which stores its fingerprint) or a promotion; any other write raises `CanonLocked`.
Many-row writes are one `executemany` inside one transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.adapt import AdaptersMap
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import Field

from dream_pipeline import canon
from dream_pipeline.tournament.sanitize import storable_json, storable_text
from resources import embedded_postgres
from resources.locations import sql_dir
from spica import Lineage, SpicaAgent, SpicaBook, TelemetryEvent

EPOCH_CHANNEL = "dream_epochs"
# the tables holding a committed epoch's rows: nothing but its commit or a promotion writes them
CANON_TABLES = ("simulation_epochs", "drafts", "peer_votes", "vote_abstentions", "elo_ratings", "voter_flags",
                "chapters", "book_summaries", "ballot_weights", "review_assignments")


class EpochOrderError(RuntimeError):
    """An epoch was started before its predecessor committed."""


class EpochBusy(RuntimeError):
    """Another book's epoch is open with a live run: one epoch at a time across all books."""


class CanonLocked(RuntimeError):
    """A write to a committed epoch's rows: only its commit or a promotion may write the canon."""


class PromotionError(RuntimeError):
    """An alternate world that cannot become the canon (not the latest epoch, not a complete world)."""


class EmbeddingDimensionError(ValueError):
    """Embeddings of another dimension than the configured one (DREAM_EMBEDDING_DIM)."""


@dataclass(frozen=True)
class EpochRecord:
    epoch_id: uuid.UUID
    epoch_key: str
    book: str
    epoch_number: int
    status: str
    active_agent_ids: tuple[uuid.UUID, ...]
    winner_agent_id: uuid.UUID | None = None
    loser_agent_id: uuid.UUID | None = None
    world_seed: int | None = None  # the engine seed of the promoted alternate world; None: the first roll
    context_chapters: tuple[int, ...] | None = None  # chapters its prompt retrieved (None: not recorded yet)
    context_window: int | None = None  # the window its requests were fitted into (None: not recorded)
    engine_modes: dict[str, Any] | None = None  # vote mode, memory mode, context the epoch used (sql/009)


@dataclass(frozen=True)
class DraftRow:
    agent_id: uuid.UUID
    agent_name: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    truncated: bool
    latency_s: float
    latency_penalty: float = 0.0
    penalty: float = 0.0
    embedding: Sequence[float] | None = None
    draft_id: uuid.UUID | None = None
    canon_similarity: float | None = None  # highest cosine similarity to the canon before this epoch
    novelty_penalty: float = 0.0  # part of `penalty` (docs/tournament_rules.md, section 5)
    peer_similarity: float | None = None  # highest cosine similarity to another draft of the epoch
    near_duplicate_of: str | None = None  # that draft's author, when the two nearly coincide


@dataclass(frozen=True)
class VoteRow:
    voter_agent: str
    target_agent: str
    voter_agent_id: uuid.UUID
    target_agent_id: uuid.UUID
    insight_score: int
    rationale: str
    masked_label: str
    position: int
    latency_penalty: float = 0.0


@dataclass(frozen=True)
class AssignmentRow:
    """One draft a voter was assigned to review, as it was shown (`shown_chars` None: whole)."""

    voter_agent: str
    target_agent: str
    voter_agent_id: uuid.UUID
    target_agent_id: uuid.UUID
    masked_label: str
    position: int
    shown_chars: int | None = None


@dataclass(frozen=True)
class AbstentionRow:
    voter_agent: str
    reason: str
    raw_reply: str | None


@dataclass(frozen=True)
class RatingRow:
    agent_id: uuid.UUID
    agent_name: str
    rating_before: float
    rating_after: float
    epoch_score: float | None
    penalty: float
    rank: int
    bt_rating: float | None = None
    bt_lower: float | None = None
    bt_upper: float | None = None
    elimination_score: float | None = None  # shrunk window mean: what elimination ranks on
    window_mean: float | None = None
    window_epochs: int | None = None


@dataclass(frozen=True)
class VoterFlag:
    kind: str  # 'outlier' or 'clique'
    voter_agent: str
    partner: str
    strength: float


@dataclass(frozen=True)
class BallotWeight:
    """The weight a voter's ballots carried in an epoch's elimination, why, and the position effect removed."""

    voter_agent: str
    weight: float
    reason: str = ""
    position_correction: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChapterRow:
    chapter_number: int
    draft_id: uuid.UUID
    agent_id: uuid.UUID
    title: str
    text: str
    epoch_score: float | None
    margin: float | None
    embedding: Sequence[float] | None = None
    author: str = ""
    epoch_key: str = ""


@dataclass(frozen=True)
class LlmCallRow:
    epoch_key: str | None
    purpose: str
    agent_name: str | None
    request: dict[str, Any]
    response: dict[str, Any] | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    status: str
    error: str | None = None
    started_at: datetime | None = None  # wall clock when the request was sent

    @property
    def request_hash(self) -> str:
        return request_hash(self.request)


def request_seed(label: str) -> int:
    """An engine request `seed` named by `label` (a world, a retry roll): stable, and fits an INT column."""
    return int(hashlib.sha256(label.encode()).hexdigest()[:7], 16)


def request_hash(request: dict[str, Any]) -> str:
    """The identity of an engine request: what a replay looks recorded answers up by."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ReapOutcome:
    retired: str | None
    replacement: str | None
    already_done: bool


@dataclass(frozen=True)
class Standing:
    name: str
    persona: str
    alive: bool
    rating: float | None
    epochs: int
    wins: int
    origin: str
    joined_epoch: int


@dataclass(frozen=True)
class SummaryRow:
    """The rolling summary of a book as it stood after chapter `chapter_number`."""

    chapter_number: int
    summary: str
    tokens: int


@dataclass(frozen=True)
class BookMemoryRows:
    """What the fabric remembers for the prompt of chapter `chapter_number` (docs/memory.md)."""

    chapter_number: int
    summary: SummaryRow | None
    last: ChapterRow | None
    related: tuple[tuple[ChapterRow, float], ...]  # earlier chapters nearest to the last one, best first
    outline: tuple[ChapterRow, ...]  # the latest chapters, in reading order


@dataclass(frozen=True)
class DraftHit:
    epoch_key: str
    epoch_number: int
    agent_name: str
    text: str
    similarity: float
    in_canon: bool


@dataclass(frozen=True)
class WorldRow:
    """An alternate world of an epoch (docs/worlds.md)."""

    world_key: str
    epoch_key: str
    world_number: int
    seed: int | None
    status: str  # rolling, complete, failed, promoted, superseded
    reason: str | None
    document: dict[str, Any]


@functools.cache
def _embedded_url() -> str:
    return embedded_postgres.embedded_url(embedded_postgres.FABRIC_DATABASE)


_MIGRATED: set[str] = set()
_MEMORY_READY: set[tuple[str, int]] = set()
# each database's adapters with pgvector's types, looked up once: register_vector fetches four types,
# which on every connection cost more than opening the connection itself; new connections copy them
_ADAPTERS: dict[str, AdaptersMap] = {}


class StateFabric(dg.ConfigurableResource):
    """PostgreSQL + pgvector state fabric (psycopg 3). No URL means the embedded pgserver database."""

    database_url: str | None = Field(
        default=None,
        description="libpq URL of a PostgreSQL with pgvector; unset = the embedded server under .dream/",
    )
    embedding_dim: int = Field(
        default=256, ge=1, le=2000,  # pgvector's HNSW indexes `vector` up to 2,000 dimensions
        description="dimension of the engine's embeddings (DREAM_EMBEDDING_DIM); the HNSW indexes are built for it",
    )

    # ---- connections and migrations -------------------------------------------------------------

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

    def applied_migrations(self) -> list[str]:
        with self.connection() as conn:
            return [r["version"] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]

    # ---- books and agents -----------------------------------------------------------------------

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

    @staticmethod
    def _agent_from_row(row: dict[str, Any]) -> SpicaAgent:
        return SpicaAgent(
            row["manifest"],
            instance_id=row["agent_id"],
            state=row["state"],
            lineage=Lineage(parent_id=row["parent_agent_id"], generation=row["generation"], origin=row["origin"]),
        )

    def agents(self, agent_ids: Sequence[uuid.UUID]) -> list[SpicaAgent]:
        """The agents with these ids, in the given order."""
        with self.connection() as conn:
            rows = conn.execute("SELECT * FROM agents WHERE agent_id = ANY(%s)", (list(agent_ids),)).fetchall()
        by_id = {row["agent_id"]: self._agent_from_row(row) for row in rows}
        missing = [str(i) for i in agent_ids if i not in by_id]
        if missing:
            raise LookupError(f"unknown agent ids: {', '.join(missing)}")
        return [by_id[i] for i in agent_ids]

    def alive_agents(self, book: str) -> list[SpicaAgent]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM agents WHERE book = %s AND alive ORDER BY joined_epoch, name", (book,)
            ).fetchall()
        return [self._agent_from_row(row) for row in rows]

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
        return [(self._agent_from_row(r), r["alive"], r["latest_score"]) for r in rows]

    def persona_names_used(self, book: str) -> set[str]:
        with self.connection() as conn:
            return {r["name"] for r in conn.execute("SELECT name FROM agents WHERE book = %s", (book,))}

    def joined_epochs(self, agent_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT agent_id, joined_epoch FROM agents WHERE agent_id = ANY(%s)", (list(agent_ids),)
            )
            return {r["agent_id"]: r["joined_epoch"] for r in rows}

    # ---- epochs ---------------------------------------------------------------------------------

    @staticmethod
    def _epoch_from_row(row: dict[str, Any]) -> EpochRecord:
        return EpochRecord(
            epoch_id=row["epoch_id"],
            epoch_key=row["epoch_key"],
            book=row["book"],
            epoch_number=row["epoch_number"],
            status=row["status"],
            active_agent_ids=tuple(row["active_agent_ids"]),
            winner_agent_id=row["winner_agent_id"],
            loser_agent_id=row["loser_agent_id"],
            world_seed=row.get("world_seed"),
            context_chapters=None if row.get("context_chapters") is None else tuple(row["context_chapters"]),
            context_window=row.get("context_window"),
            engine_modes=row.get("engine_modes"),
        )

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
                return self._epoch_from_row(row)
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
            return self._epoch_from_row(row)

    def epoch(self, epoch_key: str) -> EpochRecord:
        found = self.find_epoch(epoch_key)
        if found is None:
            raise LookupError(f"epoch {epoch_key!r} has not been opened (materialize its roster first)")
        return found

    def find_epoch(self, epoch_key: str) -> EpochRecord | None:
        with self.connection() as conn:
            row = conn.execute("SELECT * FROM simulation_epochs WHERE epoch_key = %s", (epoch_key,)).fetchone()
        return None if row is None else self._epoch_from_row(row)

    def next_epoch_number(self, book: str) -> int:
        """The first epoch of `book` that is not committed yet (a failed or interrupted one is resumed)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT min(epoch_number) FILTER (WHERE status <> 'committed') AS open,"
                " max(epoch_number) AS last FROM simulation_epochs WHERE book = %s",
                (book,),
            ).fetchone()
        return row["open"] or (row["last"] or 0) + 1

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

    def record_timing(self, epoch_id: uuid.UUID, step: str, seconds: float) -> None:
        with self.connection() as conn:
            conn.execute(
                "UPDATE simulation_epochs SET timings = timings || jsonb_build_object(%s::text, %s::float8)"
                " WHERE epoch_id = %s",
                (step, seconds, epoch_id),
            )

    # ---- drafts, votes, ratings -----------------------------------------------------------------

    def write_drafts(self, epoch_id: uuid.UUID, drafts: Sequence[DraftRow],
                     context_chapters: Sequence[int] = (), context_window: int | None = None) -> list[uuid.UUID]:
        """Replace the epoch's drafts (and so everything downstream of them) in one transaction, with
        the chapters their prompt retrieved (`book_memory`'s `retrieved`) and the context window their
        requests were fitted into (None: unbounded)."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            # the chapter of an uncommitted (collapsed) epoch goes with the drafts it was chosen from
            conn.execute("DELETE FROM book_summaries WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM chapters WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM drafts WHERE epoch_id = %s", (epoch_id,))
            conn.execute("UPDATE simulation_epochs SET context_chapters = %s, context_window = %s WHERE epoch_id = %s",
                         (list(context_chapters), context_window, epoch_id))
            # stable ids: a rerun or replay of the epoch rewrites the same draft rows
            ids = [d.draft_id or uuid.uuid5(epoch_id, str(d.agent_id)) for d in drafts]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO drafts (draft_id, epoch_id, agent_id, agent_name, text, prompt_tokens,"
                    " completion_tokens, finish_reason, truncated, latency_s, latency_penalty, penalty, embedding,"
                    " canon_similarity, novelty_penalty, peer_similarity, near_duplicate_of)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            i, epoch_id, d.agent_id, d.agent_name, d.text, d.prompt_tokens, d.completion_tokens,
                            d.finish_reason, d.truncated, d.latency_s, d.latency_penalty, d.penalty,
                            _vector(d.embedding), d.canon_similarity, d.novelty_penalty, d.peer_similarity,
                            d.near_duplicate_of,
                        )
                        for i, d in zip(ids, drafts, strict=True)
                    ],
                )
            return ids

    def drafts(self, epoch_id: uuid.UUID) -> list[DraftRow]:
        with self.connection() as conn:
            return self._drafts(conn, epoch_id)

    @staticmethod
    def _drafts(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[DraftRow]:
        rows = conn.execute("SELECT * FROM drafts WHERE epoch_id = %s ORDER BY agent_name", (epoch_id,)).fetchall()
        return [
            DraftRow(
                agent_id=r["agent_id"], agent_name=r["agent_name"], text=r["text"],
                prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
                finish_reason=r["finish_reason"], truncated=r["truncated"], latency_s=r["latency_s"],
                latency_penalty=r["latency_penalty"], penalty=r["penalty"],
                embedding=_as_list(r["embedding"]), draft_id=r["draft_id"],
                canon_similarity=r["canon_similarity"], novelty_penalty=r["novelty_penalty"],
                peer_similarity=r["peer_similarity"], near_duplicate_of=r["near_duplicate_of"],
            )
            for r in rows
        ]

    def write_votes(
        self, epoch_id: uuid.UUID, votes: Sequence[VoteRow], abstentions: Sequence[AbstentionRow],
        assignments: Sequence[AssignmentRow] = (),
    ) -> None:
        """Replace the epoch's ballots: the review design, the votes and the recorded abstentions, together."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            conn.execute("DELETE FROM peer_votes WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM vote_abstentions WHERE epoch_id = %s", (epoch_id,))
            self._insert_review_design(conn, epoch_id, assignments)
            self._insert_ballots(conn, epoch_id, votes, abstentions)

    @staticmethod
    def _insert_review_design(conn: psycopg.Connection, epoch_id: uuid.UUID,
                              assignments: Sequence[AssignmentRow]) -> None:
        conn.execute("DELETE FROM review_assignments WHERE epoch_id = %s", (epoch_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO review_assignments (epoch_id, voter_agent, target_agent, voter_agent_id,"
                " target_agent_id, masked_label, position, shown_chars) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (epoch_id, a.voter_agent, a.target_agent, a.voter_agent_id, a.target_agent_id,
                     a.masked_label, a.position, a.shown_chars)
                    for a in assignments
                ],
            )

    @staticmethod
    def _insert_ballots(conn: psycopg.Connection, epoch_id: uuid.UUID, votes: Sequence[VoteRow],
                        abstentions: Sequence[AbstentionRow]) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO peer_votes (epoch_id, voter_agent, target_agent, insight_score,"
                " latency_penalty, rationale, masked_label, position, voter_agent_id, target_agent_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        epoch_id, v.voter_agent, v.target_agent, v.insight_score, v.latency_penalty,
                        v.rationale, v.masked_label, v.position, v.voter_agent_id, v.target_agent_id,
                    )
                    for v in votes
                ],
            )
            cur.executemany(
                "INSERT INTO vote_abstentions (epoch_id, voter_agent, reason, raw_reply) VALUES (%s, %s, %s, %s)",
                [(epoch_id, a.voter_agent, a.reason, a.raw_reply) for a in abstentions],
            )

    def write_masked_terms(self, epoch_id: uuid.UUID, masked: Mapping[uuid.UUID, Mapping[str, int]]) -> None:
        """What de-identification masked in each draft (by agent id) before the voters read it; the
        drafts' texts are untouched."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            conn.execute("UPDATE drafts SET masked_terms = '{}'::jsonb WHERE epoch_id = %s", (epoch_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE drafts SET masked_terms = %s WHERE epoch_id = %s AND agent_id = %s",
                    [(Jsonb(dict(terms)), epoch_id, agent_id) for agent_id, terms in masked.items()],
                )

    def clear_votes(self, epoch_id: uuid.UUID) -> None:
        """Remove an open epoch's ballots and review design before its voters vote again (a rerun)."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            conn.execute("DELETE FROM peer_votes WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM vote_abstentions WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM review_assignments WHERE epoch_id = %s", (epoch_id,))

    def write_review_design(self, epoch_id: uuid.UUID, assignments: Sequence[AssignmentRow]) -> None:
        """The open epoch's review design (who reviews which draft, as shown), replaced in one transaction
        before the ballots are asked for, so the deck and the checks know what each voter owes."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            self._insert_review_design(conn, epoch_id, assignments)

    def write_ballot(self, epoch_id: uuid.UUID, votes: Sequence[VoteRow], abstention: AbstentionRow | None) -> None:
        """One voter's ballot (its votes, or its abstention) as it arrives, in one transaction; writing
        it again replaces it, so a rerun never duplicates a vote."""
        voter = abstention.voter_agent if abstention else votes[0].voter_agent
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            conn.execute("DELETE FROM peer_votes WHERE epoch_id = %s AND voter_agent = %s", (epoch_id, voter))
            conn.execute("DELETE FROM vote_abstentions WHERE epoch_id = %s AND voter_agent = %s", (epoch_id, voter))
            self._insert_ballots(conn, epoch_id, votes, [abstention] if abstention else [])

    def votes(self, epoch_id: uuid.UUID) -> list[VoteRow]:
        with self.connection() as conn:
            return self._votes(conn, epoch_id)

    @staticmethod
    def _votes(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[VoteRow]:
        rows = conn.execute(
            "SELECT * FROM peer_votes WHERE epoch_id = %s ORDER BY voter_agent, position", (epoch_id,)
        ).fetchall()
        return [_vote_from_row(r) for r in rows]

    def review_assignments(self, epoch_id: uuid.UUID) -> list[AssignmentRow]:
        """The epoch's review design: who was assigned which draft, in ballot order."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT voter_agent, target_agent, voter_agent_id, target_agent_id, masked_label, position,"
                " shown_chars FROM review_assignments WHERE epoch_id = %s ORDER BY voter_agent, position",
                (epoch_id,),
            ).fetchall()
        return [AssignmentRow(**r) for r in rows]

    def abstentions(self, epoch_id: uuid.UUID) -> list[AbstentionRow]:
        with self.connection() as conn:
            return self._abstentions(conn, epoch_id)

    @staticmethod
    def _abstentions(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[AbstentionRow]:
        rows = conn.execute(
            "SELECT * FROM vote_abstentions WHERE epoch_id = %s ORDER BY voter_agent", (epoch_id,)
        ).fetchall()
        return [AbstentionRow(r["voter_agent"], r["reason"], r["raw_reply"]) for r in rows]

    def ratings_before(self, book: str, epoch_number: int) -> dict[uuid.UUID, float]:
        """Each agent's rating after the latest earlier epoch it took part in."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (r.agent_id) r.agent_id, r.rating_after"
                " FROM elo_ratings r JOIN simulation_epochs e USING (epoch_id)"
                " WHERE e.book = %s AND e.epoch_number < %s"
                " ORDER BY r.agent_id, e.epoch_number DESC",
                (book, epoch_number),
            )
            return {r["agent_id"]: r["rating_after"] for r in rows}

    def write_ratings(
        self,
        epoch_id: uuid.UUID,
        ratings: Sequence[RatingRow],
        winner_id: uuid.UUID,
        loser_id: uuid.UUID | None,
        *,
        bottom_separated: bool | None = None,
        flags: Sequence[VoterFlag] = (),
        weights: Sequence[BallotWeight] = (),
    ) -> None:
        """Replace the epoch's ratings, voter flags and ballot weights and record its winner and loser,
        in one transaction."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            conn.execute("DELETE FROM elo_ratings WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM voter_flags WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM ballot_weights WHERE epoch_id = %s", (epoch_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO ballot_weights (epoch_id, voter_agent, weight, reason, position_correction)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(epoch_id, w.voter_agent, w.weight, w.reason,
                      Jsonb({str(p): c for p, c in w.position_correction.items()})) for w in weights],
                )
                cur.executemany(
                    "INSERT INTO elo_ratings (epoch_id, agent_id, agent_name, rating_before, rating_after,"
                    " epoch_score, penalty, rank, bt_rating, bt_lower, bt_upper, elimination_score, window_mean,"
                    " window_epochs) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (epoch_id, r.agent_id, r.agent_name, r.rating_before, r.rating_after,
                         r.epoch_score, r.penalty, r.rank, r.bt_rating, r.bt_lower, r.bt_upper,
                         r.elimination_score, r.window_mean, r.window_epochs)
                        for r in ratings
                    ],
                )
                cur.executemany(
                    "INSERT INTO voter_flags (epoch_id, kind, voter_agent, partner, strength)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(epoch_id, f.kind, f.voter_agent, f.partner, f.strength) for f in flags],
                )
            conn.execute(
                "UPDATE simulation_epochs SET winner_agent_id = %s, loser_agent_id = %s, bottom_separated = %s"
                " WHERE epoch_id = %s",
                (winner_id, loser_id, bottom_separated, epoch_id),
            )

    def voter_flags(self, epoch_id: uuid.UUID) -> list[VoterFlag]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM voter_flags WHERE epoch_id = %s ORDER BY kind, voter_agent, partner", (epoch_id,)
            )
            return [VoterFlag(r["kind"], r["voter_agent"], r["partner"], r["strength"]) for r in rows]

    def recent_flags(self, book: str, epoch_number: int, window: int) -> list[VoterFlag]:
        """Voter flags raised at the `window` epochs up to and including `epoch_number`."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT f.* FROM voter_flags f JOIN simulation_epochs e USING (epoch_id)"
                " WHERE e.book = %s AND e.epoch_number BETWEEN %s AND %s"
                " ORDER BY e.epoch_number, f.kind, f.voter_agent, f.partner",
                (book, epoch_number - window + 1, epoch_number),
            )
            return [VoterFlag(r["kind"], r["voter_agent"], r["partner"], r["strength"]) for r in rows]

    def ballot_weights(self, epoch_id: uuid.UUID) -> list[BallotWeight]:
        with self.connection() as conn:
            rows = conn.execute("SELECT * FROM ballot_weights WHERE epoch_id = %s ORDER BY voter_agent", (epoch_id,))
            return [BallotWeight(r["voter_agent"], r["weight"], r["reason"],
                                 {int(p): c for p, c in r["position_correction"].items()}) for r in rows]

    def recent_votes(self, book: str, epoch_number: int, window: int) -> list[tuple[int, VoteRow, float]]:
        """Votes of the `window` epochs up to and including `epoch_number`, with each target's penalty."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT e.epoch_number, v.*, d.penalty AS target_penalty FROM peer_votes v"
                " JOIN simulation_epochs e USING (epoch_id)"
                " JOIN drafts d ON d.epoch_id = v.epoch_id AND d.agent_id = v.target_agent_id"
                " WHERE e.book = %s AND e.epoch_number BETWEEN %s AND %s"
                " ORDER BY e.epoch_number, v.voter_agent, v.position",
                (book, epoch_number - window + 1, epoch_number),
            ).fetchall()
        return [
            (r["epoch_number"], _vote_from_row(r), r["target_penalty"])
            for r in rows
        ]

    def ratings(self, epoch_id: uuid.UUID) -> list[RatingRow]:
        with self.connection() as conn:
            return self._ratings(conn, epoch_id)

    @staticmethod
    def _ratings(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[RatingRow]:
        rows = conn.execute("SELECT * FROM elo_ratings WHERE epoch_id = %s ORDER BY rank", (epoch_id,))
        return [
            RatingRow(r["agent_id"], r["agent_name"], r["rating_before"], r["rating_after"],
                      r["epoch_score"], r["penalty"], r["rank"], r["bt_rating"], r["bt_lower"], r["bt_upper"],
                      r["elimination_score"], r["window_mean"], r["window_epochs"])
            for r in rows
        ]

    # ---- the canon and the Reaper ---------------------------------------------------------------

    def commit_chapter(self, epoch_id: uuid.UUID, book: str, chapter: ChapterRow) -> None:
        """Write (or rewrite) the epoch's chapter; the epoch becomes 'collapsed' until the Reaper runs."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            conn.execute(
                "INSERT INTO chapters (book, chapter_number, epoch_id, draft_id, agent_id, title, text,"
                " epoch_score, margin, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (epoch_id) DO UPDATE SET draft_id = EXCLUDED.draft_id,"
                " agent_id = EXCLUDED.agent_id, title = EXCLUDED.title, text = EXCLUDED.text,"
                " epoch_score = EXCLUDED.epoch_score, margin = EXCLUDED.margin,"
                " embedding = EXCLUDED.embedding, committed_at = now()",
                (
                    book, chapter.chapter_number, epoch_id, chapter.draft_id, chapter.agent_id, chapter.title,
                    chapter.text, chapter.epoch_score, chapter.margin, _vector(chapter.embedding),
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

        The NOTIFY on `dream_epochs` is sent by the same transaction, so whoever waits on it sees the
        whole committed state. Running it again for a committed epoch changes nothing.
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
            digests = canon.section_digests(self._canon_facts(conn, epoch.epoch_id))
            conn.execute(
                "UPDATE simulation_epochs SET status = 'committed', end_time = now(), fingerprint = %s,"
                " fingerprint_sections = %s WHERE epoch_id = %s",
                (canon.fingerprint(digests), Jsonb(digests), epoch.epoch_id),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (EPOCH_CHANNEL, epoch.epoch_key))
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
        return [_chapter_from_row(r) for r in reversed(rows)]

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
        return None if r is None else _chapter_from_row(r)

    # ---- the canon's fingerprint (dream_pipeline/canon.py) ----------------------------------------

    def _canon_facts(self, conn: psycopg.Connection, epoch_id: uuid.UUID) -> dict[str, Any]:
        epoch = conn.execute(
            "SELECT winner_agent_id, loser_agent_id FROM simulation_epochs WHERE epoch_id = %s", (epoch_id,)
        ).fetchone()
        return {
            "drafts": canon.draft_facts(self._drafts(conn, epoch_id)),
            "votes": canon.vote_facts(self._votes(conn, epoch_id)),
            "abstentions": canon.abstention_facts(self._abstentions(conn, epoch_id)),
            "ratings": canon.rating_facts(self._ratings(conn, epoch_id)),
            "outcome": canon.outcome_facts(epoch["winner_agent_id"], epoch["loser_agent_id"]),
            "chapter": canon.chapter_facts(self._chapter_for_epoch(conn, epoch_id)),
        }

    def canon_facts(self, epoch_id: uuid.UUID) -> dict[str, Any]:
        """What the stored rows of an epoch say it decided, section by section (`canon.SECTIONS`)."""
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

    # ---- calls and telemetry --------------------------------------------------------------------

    def record_llm_calls(self, calls: Sequence[LlmCallRow]) -> None:
        """The ledger keeps each request and answer as sent, except what PostgreSQL cannot hold (NUL, lone
        surrogates: `storable_json`), which the pipeline replaces the same way, so a replay reproduces it."""
        if not calls:
            return
        with self.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO llm_calls (epoch_key, purpose, agent_name, request_hash, request, response,"
                " prompt_tokens, completion_tokens, latency_s, status, error, started_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        c.epoch_key, c.purpose, c.agent_name, c.request_hash, Jsonb(storable_json(c.request)),
                        None if c.response is None else Jsonb(storable_json(c.response)), c.prompt_tokens,
                        c.completion_tokens, c.latency_s, c.status, None if c.error is None else storable_text(c.error),
                        c.started_at,
                    )
                    for c in calls
                ],
            )

    def recorded_calls(self, epoch_key: str) -> dict[str, LlmCallRow]:
        """The successful calls of an epoch by request hash (the latest answer wins)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM llm_calls WHERE epoch_key = %s AND status = 'ok' AND response IS NOT NULL"
                " ORDER BY created_at",
                (epoch_key,),
            ).fetchall()
        return {
            r["request_hash"]: LlmCallRow(
                r["epoch_key"], r["purpose"], r["agent_name"], r["request"], r["response"], r["prompt_tokens"],
                r["completion_tokens"], r["latency_s"], r["status"], r["error"], r["started_at"],
            )
            for r in rows
        }

    def epoch_fingerprint(self, epoch_id: uuid.UUID) -> str:
        """The fingerprint of an epoch's stored rows (drafts, votes, abstentions, ratings, outcome,
        chapter): what the commit stores, and what a replay is compared with."""
        return canon.fingerprint(canon.section_digests(self.canon_facts(epoch_id)))

    def record_telemetry(self, events: Sequence[TelemetryEvent]) -> None:
        """Persist SPICA telemetry; an epoch's event is updated on rerun, never duplicated."""
        if not events:
            return
        with self.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO telemetry (instance_id, kind, epoch_key, event, payload, recorded_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (instance_id, epoch_key, event) WHERE epoch_key IS NOT NULL"
                " DO UPDATE SET payload = EXCLUDED.payload, recorded_at = EXCLUDED.recorded_at",
                [
                    (e.instance_id, e.kind, e.epoch_key, e.event, Jsonb(dict(e.payload)), e.recorded_at)
                    for e in events
                ],
            )

    # ---- alternate worlds (docs/worlds.md) ---------------------------------------------------------

    def reserve_world(self, epoch_key: str) -> tuple[int, str]:
        """The next world number of a committed epoch and its key, reserved (status 'rolling')."""
        with self.connection() as conn:
            epoch = conn.execute(
                "SELECT epoch_id, status FROM simulation_epochs WHERE epoch_key = %s FOR UPDATE", (epoch_key,)
            ).fetchone()
            if epoch is None or epoch["status"] != "committed":
                state = epoch["status"] if epoch else "not opened"
                raise PromotionError(f"{epoch_key} is {state}: only a committed epoch has alternate worlds")
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
            epoch = conn.execute(
                "SELECT * FROM simulation_epochs WHERE epoch_key = %s FOR UPDATE", (epoch_key,)
            ).fetchone()
            if epoch is None or epoch["status"] != "committed":
                state = epoch["status"] if epoch else "not opened"
                raise PromotionError(f"{epoch_key} is {state}: only a committed epoch can take another world")
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
                          "elo_ratings", "voter_flags", "ballot_weights", "drafts"):
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
        return self._epoch_from_row(row)

    # ---- integrity (asset checks and the PHASE job) -----------------------------------------------

    _INTEGRITY = {
        # each query counts violations; zero everywhere is a sound fabric
        "committed_without_chapter": "SELECT count(*) AS n FROM simulation_epochs e WHERE e.status = 'committed'"
        " AND NOT EXISTS (SELECT 1 FROM chapters c WHERE c.epoch_id = e.epoch_id) {epoch_and}",
        "duplicate_chapters": "SELECT count(*) AS n FROM (SELECT c.book, c.chapter_number FROM chapters c"
        " JOIN simulation_epochs e USING (epoch_id) WHERE TRUE {epoch_and} GROUP BY 1, 2 HAVING count(*) > 1) d",
        "self_votes": "SELECT count(*) AS n FROM peer_votes v JOIN simulation_epochs e USING (epoch_id)"
        " WHERE v.voter_agent = v.target_agent {epoch_and}",
        # a voter's votes are exactly its assigned drafts (review_assignments); an epoch recorded before
        # the design was: every other draft
        "incomplete_ballots": "SELECT count(*) AS n FROM (SELECT v.epoch_id, v.voter_agent, count(*) AS votes,"
        " count(DISTINCT v.target_agent) AS targets, count(r.target_agent) AS assigned_votes FROM peer_votes v"
        " LEFT JOIN review_assignments r ON r.epoch_id = v.epoch_id AND r.voter_agent = v.voter_agent"
        " AND r.target_agent = v.target_agent GROUP BY 1, 2) b"
        " JOIN (SELECT epoch_id, count(*) AS drafts FROM drafts GROUP BY 1) d USING (epoch_id)"
        " LEFT JOIN (SELECT epoch_id, voter_agent, count(*) AS assigned FROM review_assignments GROUP BY 1, 2) a"
        " USING (epoch_id, voter_agent)"
        " JOIN simulation_epochs e USING (epoch_id)"
        " WHERE (b.targets <> b.votes OR CASE WHEN EXISTS (SELECT 1 FROM review_assignments x"
        " WHERE x.epoch_id = b.epoch_id) THEN b.assigned_votes <> b.votes OR b.votes <> coalesce(a.assigned, 0)"
        " ELSE b.votes <> d.drafts - 1 END) {epoch_and}",
        "orphan_votes": "SELECT count(*) AS n FROM peer_votes v JOIN simulation_epochs e USING (epoch_id)"
        " WHERE NOT EXISTS (SELECT 1 FROM drafts d WHERE d.epoch_id = v.epoch_id"
        " AND d.agent_id = v.target_agent_id) {epoch_and}",
        "chapters_of_open_epochs": "SELECT count(*) AS n FROM chapters c JOIN simulation_epochs e USING (epoch_id)"
        " WHERE e.status NOT IN ('committed', 'collapsed') {epoch_and}",
    }

    def integrity(self, epoch_id: uuid.UUID | None = None) -> dict[str, int]:
        """Violation counts over the whole fabric, or one epoch: all zero when the record is sound."""
        epoch_and = sql.SQL("AND e.epoch_id = {}").format(sql.Literal(epoch_id)) if epoch_id else sql.SQL("")
        with self.connection() as conn:
            return {
                name: conn.execute(sql.SQL(query).format(epoch_and=epoch_and)).fetchone()["n"]
                for name, query in self._INTEGRITY.items()
            }

    def forfeits(self, epoch_id: uuid.UUID) -> list[str]:
        """Rostered agents without a draft in the epoch."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT a.name FROM simulation_epochs e JOIN agents a ON a.agent_id = ANY(e.active_agent_ids)"
                " WHERE e.epoch_id = %s AND NOT EXISTS"
                " (SELECT 1 FROM drafts d WHERE d.epoch_id = e.epoch_id AND d.agent_id = a.agent_id)"
                " ORDER BY a.name",
                (epoch_id,),
            )
            return [r["name"] for r in rows]

    def latest_committed_epoch(self, book: str) -> EpochRecord | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT * FROM simulation_epochs WHERE book = %s AND status = 'committed'"
                " ORDER BY epoch_number DESC LIMIT 1",
                (book,),
            ).fetchone()
        return None if row is None else self._epoch_from_row(row)

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

    def record_downtime(self, down_from: datetime, down_until: datetime, resumed_by: str) -> None:
        """Note that the loop was not running from `down_from` to `down_until` (dream_pipeline/downtime.py);
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

    def table_counts(self) -> dict[str, int]:
        """Row counts of the fabric's tables (for status output and tests)."""
        tables = ["domains", "agents", "simulation_epochs", "drafts", "peer_votes", "vote_abstentions",
                  "elo_ratings", "voter_flags", "chapters", "book_summaries", "alternate_worlds", "llm_calls",
                  "telemetry"]
        with self.connection() as conn:
            return {
                t: conn.execute(
                    sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(t))
                ).fetchone()["n"]
                for t in tables
            }

    # ---- engines: probed capabilities, mode changes, the modes an epoch used (sql/009) --------------

    def engine_capabilities(self, base_url: str, model: str) -> dict[str, Any] | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT capabilities FROM engine_capabilities WHERE base_url = %s AND model = %s", (base_url, model)
            ).fetchone()
        return None if row is None else row["capabilities"]

    def save_engine_capabilities(self, base_url: str, model: str, capabilities: dict[str, Any],
                                 *, probed: bool = True) -> None:
        """Store what the probe found (`probed`), or an update of it (a mode stepped down)."""
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO engine_capabilities (base_url, model, capabilities) VALUES (%s, %s, %s)"
                " ON CONFLICT (base_url, model) DO UPDATE SET capabilities = EXCLUDED.capabilities,"
                " updated_at = now(), probed_at = CASE WHEN %s THEN now() ELSE engine_capabilities.probed_at END",
                (base_url, model, Jsonb(storable_json(capabilities)), probed),
            )

    def latest_engine_capabilities(self) -> dict[str, Any] | None:
        """The engine used most recently (for `dream status` and the deck)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT capabilities, probed_at, updated_at FROM engine_capabilities ORDER BY updated_at DESC LIMIT 1"
            ).fetchone()
        return None if row is None else {**row["capabilities"], "updated_at": row["updated_at"].isoformat()}

    def record_mode_change(self, base_url: str, model: str, epoch_key: str | None, from_mode: str, to_mode: str,
                           reason: str) -> None:
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO engine_mode_changes (base_url, model, epoch_key, from_mode, to_mode, reason)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (base_url, model, epoch_key, from_mode, to_mode, storable_text(reason)[:2000]),
            )

    def mode_changes(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.connection() as conn:
            return conn.execute(
                "SELECT * FROM engine_mode_changes ORDER BY changed_at DESC, change_id DESC LIMIT %s", (limit,)
            ).fetchall()

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

    def set_engine_modes(self, epoch_key: str, modes: dict[str, Any]) -> None:
        """Merge `modes` into what the epoch records it used; a committed epoch is never changed."""
        with self.connection() as conn:
            conn.execute(
                "UPDATE simulation_epochs SET engine_modes = coalesce(engine_modes, '{}'::jsonb) || %s"
                " WHERE epoch_key = %s AND status <> 'committed'",
                (Jsonb(storable_json(modes)), epoch_key),
            )

    # ---- memory: embeddings, rolling summaries, retrieval, novelty (docs/memory.md) ---------------

    def prepare_memory(self) -> None:
        """Record the embedding dimension and build the HNSW indexes for it, once per database.

        The `embedding` columns are untyped; the indexes are partial expression indexes on
        `embedding::vector(n)` for `n = embedding_dim`, and every memory query filters on the same
        predicate, so the planner can use them. A fabric configured with another dimension than the
        one recorded in `memory_settings` (or than the vectors already stored) fails here, clearly.
        """
        url, dim = self.url(), self.embedding_dim
        if (url, dim) in _MEMORY_READY:
            return
        with psycopg.connect(url, autocommit=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('dream_memory'))")
            row = conn.execute("SELECT value FROM memory_settings WHERE name = 'embedding_dim'").fetchone()
            if row is not None and int(row[0]) != dim:
                raise EmbeddingDimensionError(
                    f"DREAM_EMBEDDING_DIM (StateFabric.embedding_dim) is {dim}, but this state fabric's memory is"
                    f" indexed for {row[0]}-dimensional embeddings (memory_settings.embedding_dim). Set"
                    f" DREAM_EMBEDDING_DIM={row[0]} to match its embedding model, or use a new database."
                )
            if row is None:
                for table in ("chapters", "drafts"):
                    other = conn.execute(
                        sql.SQL(
                            "SELECT vector_dims(embedding) AS dims, count(*) AS n FROM {} WHERE embedding IS NOT NULL"
                            " AND vector_dims(embedding) <> %s GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
                        ).format(sql.Identifier(table)),
                        (dim,),
                    ).fetchone()
                    if other is not None:
                        raise EmbeddingDimensionError(
                            f"DREAM_EMBEDDING_DIM (StateFabric.embedding_dim) is {dim}, but {other[1]} stored {table}"
                            f" embeddings have {other[0]} dimensions. Set DREAM_EMBEDDING_DIM={other[0]}, or use a"
                            " new database."
                        )
                conn.execute(
                    "INSERT INTO memory_settings (name, value) VALUES ('embedding_dim', %s)", (str(dim),)
                )
            for table in ("chapters", "drafts"):
                index = f"{table}_embedding_hnsw"
                if conn.execute("SELECT to_regclass(%s)", (index,)).fetchone()[0] is None:
                    conn.execute(
                        sql.SQL(
                            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ((embedding::vector({dim}))"
                            " vector_cosine_ops) WHERE vector_dims(embedding) = {dim}"
                        ).format(sql.Identifier(index), sql.Identifier(table), dim=sql.Literal(dim))
                    )
            conn.commit()
        _MEMORY_READY.add((url, dim))

    def check_dimensions(self, vectors: Sequence[Sequence[float]], what: str = "embeddings") -> None:
        """Raise `EmbeddingDimensionError` unless every vector has `embedding_dim` components."""
        bad = sorted({len(v) for v in vectors} - {self.embedding_dim})
        if bad:
            raise EmbeddingDimensionError(
                f"the engine returned {'/'.join(map(str, bad))}-dimensional {what}, but DREAM_EMBEDDING_DIM"
                f" (StateFabric.embedding_dim) is {self.embedding_dim}; set it to the embedding model's dimension"
            )

    def _nearest(
        self,
        conn: psycopg.Connection,
        query: sql.Composable,
        vector: Sequence[float],
        params: Sequence[Any],
        k: int,
        scan: str,
    ) -> list[dict[str, Any]]:
        """Run a nearest-neighbour `query` whose `{vec}`/`{q}`/`{dim}` are the typed column, the query
        vector and the dimension. scan: 'auto' (the planner, usually the HNSW index), 'index' (forced),
        'exact' (no index: a sequential scan). An approximate scan whose filters left fewer than `k`
        rows is repeated exactly, so a filter never hides a neighbour (pgvector 0.6 has no iterative scan).
        """
        self.check_dimensions([vector], "query embeddings")
        dim = sql.Literal(self.embedding_dim)
        composed = query.format(
            vec=sql.SQL("embedding::vector({})").format(dim), q=sql.SQL("%(q)s::vector({})").format(dim), dim=dim
        )
        args = {"q": _vector(vector), "k": k, **{f"p{i}": p for i, p in enumerate(params)}}
        settings = _SCAN_SETTINGS[scan]
        with conn.transaction(force_rollback=True):  # SET LOCAL ends with this savepoint
            for setting in settings:
                conn.execute(setting)
            rows = conn.execute(composed, args).fetchall()
        if scan != "exact" and len(rows) < k:
            return self._nearest(conn, query, vector, params, k, "exact")
        return rows


    def nearest_chapters(
        self, book: str, vector: Sequence[float], k: int, *, before_number: int | None = None, scan: str = "auto"
    ) -> list[tuple[ChapterRow, float]]:
        """The `k` chapters of `book` (before `before_number`) most similar to `vector`, best first."""
        if k <= 0:
            return []
        before = before_number if before_number is not None else 2**31 - 1
        with self.connection() as conn:
            rows = self._nearest(conn, _CHAPTERS_NEAR, vector, [book, before], k, scan)
        return [(_chapter_from_row(r), float(r["similarity"])) for r in rows]

    def canon_similarity(
        self, book: str, before_number: int, vectors: Sequence[Sequence[float] | None]
    ) -> list[float | None]:
        """For each vector, its highest cosine similarity to a chapter before `before_number` (None: no canon)."""
        out: list[float | None] = []
        with self.connection() as conn:
            for vector in vectors:
                # exact, like the prompt's retrieval: a decision must come out the same in a replay
                rows = [] if vector is None else self._nearest(
                    conn, _CHAPTERS_NEAR, vector, [book, before_number], 1, "exact"
                )
                out.append(float(rows[0]["similarity"]) if rows else None)
        return out

    def book_memory(self, book: str, chapter_number: int, *, top_k: int, outline: int = 12,
                    retrieved: Sequence[int] | None = None, scan: str = "auto",
                    full_text: bool = False) -> BookMemoryRows:
        """The rows behind the prompt of chapter `chapter_number`: the latest summary, the last chapter,
        the `top_k` earlier chapters nearest to the last one, and the latest `outline` chapters.

        Only chapters before `chapter_number` are read, so a rerun of an epoch sees what it saw then.
        The nearest chapters are searched with the HNSW index (approximate, and far cheaper than an
        exact scan as the book grows), unless `retrieved` names the ones an earlier run of the epoch found
        (`simulation_epochs.context_chapters`): those are read again, with the same similarities, so
        the prompt is the same however the index has changed since. `scan` as in `_nearest`.
        """
        with self.connection() as conn:
            latest = conn.execute(
                "SELECT c.*, a.name AS author, e.epoch_key FROM chapters c JOIN agents a USING (agent_id)"
                " JOIN simulation_epochs e USING (epoch_id) WHERE c.book = %s AND c.chapter_number < %s"
                " ORDER BY c.chapter_number DESC LIMIT %s",
                (book, chapter_number, max(outline, 1)),
            ).fetchall()
            summary = conn.execute(
                "SELECT chapter_number, summary, tokens FROM book_summaries"
                " WHERE book = %s AND chapter_number < %s ORDER BY chapter_number DESC LIMIT 1",
                (book, chapter_number),
            ).fetchone()
            related: list[dict[str, Any]] = []
            last_vector = _as_list(latest[0]["embedding"]) if latest else None
            if full_text:  # no embedding engine: the same memory by words (and recency), docs/memory.md
                if top_k > 0 and latest and (retrieved is None or retrieved):
                    related = self._related_by_text(conn, book, latest[0], top_k, retrieved)
            elif top_k > 0 and last_vector is not None and len(last_vector) == self.embedding_dim:
                before = latest[0]["chapter_number"]
                if retrieved is None:
                    related = self._nearest(conn, _CHAPTERS_NEAR, last_vector, [book, before], top_k, scan)
                elif retrieved:
                    related = self._nearest(conn, _CHAPTERS_BY_NUMBER, last_vector, [book, list(retrieved)],
                                            len(retrieved), "exact")
        return BookMemoryRows(
            chapter_number=chapter_number,
            summary=None if summary is None else SummaryRow(summary["chapter_number"], summary["summary"],
                                                            summary["tokens"]),
            last=_chapter_from_row(latest[0]) if latest else None,
            related=tuple((_chapter_from_row(r), float(r["similarity"])) for r in related),
            outline=tuple(_chapter_from_row(r) for r in reversed(latest[:outline])),
        )

    def _related_by_text(self, conn: psycopg.Connection, book: str, last: dict[str, Any], k: int,
                         retrieved: Sequence[int] | None) -> list[dict[str, Any]]:
        """The earlier chapters nearest to `last` by full-text search: `ts_rank` over the last chapter's
        salient words, plus a small recency bonus (RECENCY_WEIGHT × chapter / last chapter)."""
        query = text_query(last["text"])
        if not query:
            return []
        before = last["chapter_number"]
        by_number = retrieved is not None
        return conn.execute(
            "SELECT * FROM (SELECT c.*, a.name AS author, e.epoch_key,"
            " ts_rank(to_tsvector('english', c.text), to_tsquery('english', %(q)s))"
            "   + %(w)s * c.chapter_number::float8 / %(before)s AS similarity"
            " FROM chapters c JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id)"
            " WHERE c.book = %(book)s AND c.chapter_number < %(before)s"
            " AND (CASE WHEN %(by_number)s THEN c.chapter_number = ANY(%(numbers)s)"
            "      ELSE to_tsvector('english', c.text) @@ to_tsquery('english', %(q)s) END)) r"
            " ORDER BY similarity DESC, chapter_number DESC LIMIT %(k)s",
            {"q": query, "w": RECENCY_WEIGHT, "before": before, "book": book, "by_number": by_number,
             "numbers": list(retrieved or []), "k": len(retrieved) if by_number else k},
        ).fetchall()

    def canon_texts_like(self, book: str, before_number: int, text: str, k: int = 5) -> list[str]:
        """The texts of the `k` chapters before `before_number` that share the most words with `text`
        (full-text rank): the candidates a lexical novelty check compares a draft with."""
        query = text_query(text)
        if not query:
            return []
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT text FROM chapters WHERE book = %(book)s AND chapter_number < %(before)s"
                " AND to_tsvector('english', text) @@ to_tsquery('english', %(q)s)"
                " ORDER BY ts_rank(to_tsvector('english', text), to_tsquery('english', %(q)s)) DESC,"
                " chapter_number DESC LIMIT %(k)s",
                {"book": book, "before": before_number, "q": query, "k": k},
            ).fetchall()
        return [r["text"] for r in rows]

    def write_summary(self, epoch_id: uuid.UUID, book: str, chapter_number: int, summary: str) -> None:
        """Write (or rewrite) the rolling summary of `book` after chapter `chapter_number`."""
        with self.connection() as conn:
            _refuse_committed(conn, epoch_id)
            conn.execute(
                "INSERT INTO book_summaries (book, chapter_number, epoch_id, summary, tokens)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (book, chapter_number) DO UPDATE SET"
                " epoch_id = EXCLUDED.epoch_id, summary = EXCLUDED.summary, tokens = EXCLUDED.tokens,"
                " created_at = now()",
                (book, chapter_number, epoch_id, summary, len(summary.split())),
            )

    def latest_summary(self, book: str, before_number: int) -> SummaryRow | None:
        """The rolling summary as it stood after the latest chapter before `before_number`."""
        with self.connection() as conn:
            r = conn.execute(
                "SELECT chapter_number, summary, tokens FROM book_summaries"
                " WHERE book = %s AND chapter_number < %s ORDER BY chapter_number DESC LIMIT 1",
                (book, before_number),
            ).fetchone()
        return None if r is None else SummaryRow(r["chapter_number"], r["summary"], r["tokens"])


    def nearest_drafts(self, book: str, vector: Sequence[float], k: int, *, scan: str = "auto") -> list[DraftHit]:
        """The `k` drafts of `book` (any epoch, winners or not) most similar to `vector`, best first."""
        if k <= 0:
            return []
        with self.connection() as conn:
            rows = self._nearest(conn, _DRAFTS_NEAR, vector, [book], k, scan)
        return [
            DraftHit(r["epoch_key"], r["epoch_number"], r["agent_name"], r["text"], float(r["similarity"]),
                     bool(r["in_canon"]))
            for r in rows
        ]

    def analyze_memory(self) -> None:
        """Refresh the planner's statistics of the embedded tables (autovacuum does it in time; benchmarks now)."""
        with self.connection() as conn:
            conn.execute("ANALYZE chapters, drafts")

    def nearest_query_stats(
        self, book: str, vector: Sequence[float], k: int, *, before_number: int, scan: str = "auto"
    ) -> tuple[bool, float]:
        """EXPLAIN ANALYZE of the chapter nearest-neighbour query (benchmarks): whether the HNSW index
        was used, and the server's execution time in ms (no connection or transfer overhead)."""
        self.check_dimensions([vector], "query embeddings")
        dim = sql.Literal(self.embedding_dim)
        query = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + _CHAPTERS_NEAR.format(
            vec=sql.SQL("embedding::vector({})").format(dim), q=sql.SQL("%(q)s::vector({})").format(dim), dim=dim
        )
        settings = _SCAN_SETTINGS[scan]
        with self.connection() as conn, conn.transaction(force_rollback=True):
            for setting in settings:
                conn.execute(setting)
            [plan] = next(iter(conn.execute(
                query, {"q": _vector(vector), "k": k, "p0": book, "p1": before_number}
            ).fetchone().values()))
        return "chapters_embedding_hnsw" in json.dumps(plan["Plan"]), float(plan["Execution Time"])


# how a nearest-neighbour query may scan: the planner's choice (usually HNSW), the index forced, no index
_SCAN_SETTINGS = {
    "auto": ["SET LOCAL hnsw.ef_search = 100"],
    "index": ["SET LOCAL hnsw.ef_search = 100", "SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off"],
    "exact": ["SET LOCAL enable_indexscan = off"],
}

# nearest-neighbour queries of the memory: `{vec}`, `{q}`, `{dim}` are filled in by `StateFabric._nearest`
# the scan ranks ids only; the k rows it keeps are joined to their text afterwards, so an exact scan
# carries no row's text or vector through the sort (it costs about half as much per row)
_CHAPTERS_NEAR = sql.SQL(
    "SELECT c.*, a.name AS author, e.epoch_key, n.similarity FROM ("
    "  SELECT chapter_id, 1 - ({vec} <=> {q}) AS similarity FROM chapters"
    "  WHERE book = %(p0)s AND chapter_number < %(p1)s AND vector_dims(embedding) = {dim}"
    "  ORDER BY {vec} <=> {q} LIMIT %(k)s"
    ") n JOIN chapters c USING (chapter_id) JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id)"
    " ORDER BY n.similarity DESC, c.chapter_number"
)
_CHAPTERS_BY_NUMBER = sql.SQL(
    "SELECT c.*, a.name AS author, e.epoch_key, 1 - ({vec} <=> {q}) AS similarity FROM chapters c"
    " JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id)"
    " WHERE c.book = %(p0)s AND c.chapter_number = ANY(%(p1)s) AND vector_dims(embedding) = {dim}"
    " ORDER BY similarity DESC, c.chapter_number"
)
_DRAFTS_NEAR = sql.SQL(
    "SELECT d.*, e.epoch_key, e.epoch_number, c.chapter_id IS NOT NULL AS in_canon, n.similarity FROM ("
    "  SELECT draft_id, 1 - ({vec} <=> {q}) AS similarity FROM drafts"
    "  WHERE epoch_id IN (SELECT epoch_id FROM simulation_epochs WHERE book = %(p0)s)"
    "  AND vector_dims(embedding) = {dim}"
    "  ORDER BY {vec} <=> {q} LIMIT %(k)s"
    ") n JOIN drafts d USING (draft_id) JOIN simulation_epochs e USING (epoch_id) LEFT JOIN chapters c USING (draft_id)"
    " ORDER BY n.similarity DESC, e.epoch_number, d.agent_name"
)


def _refuse_committed(conn: psycopg.Connection, epoch_id: uuid.UUID) -> None:
    """Lock the epoch's row for this write; raise if it is committed (the canon is never rewritten)."""
    row = conn.execute(
        "SELECT epoch_key, status FROM simulation_epochs WHERE epoch_id = %s FOR UPDATE", (epoch_id,)
    ).fetchone()
    if row is not None and row["status"] == "committed":
        raise CanonLocked(
            f"{row['epoch_key']} is committed: its rows are written only by its commit or a promotion"
            " (a replay verifies them, a re-roll is an alternate world)"
        )


RECENCY_WEIGHT = 0.05  # full-text memory: what being the latest chapter adds to a chapter's rank
_WORD = re.compile(r"[A-Za-z]{5,}")


def text_query(text: str, words: int = 24) -> str:
    """A tsquery matching any of the `words` most frequent long words of `text` (letters only, so nothing
    in it is tsquery syntax); empty when the text has none."""
    counts = Counter(w.lower() for w in _WORD.findall(text))
    return " | ".join(w for w, _ in counts.most_common(words))


def _vector(values: Sequence[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float32)


def _as_list(value) -> list[float] | None:
    """pgvector hands back numpy arrays or `Vector` objects depending on its version."""
    if value is None:
        return None
    return value.tolist() if hasattr(value, "tolist") else value.to_list()


def _vote_from_row(r: dict[str, Any]) -> VoteRow:
    return VoteRow(
        voter_agent=r["voter_agent"], target_agent=r["target_agent"], voter_agent_id=r["voter_agent_id"],
        target_agent_id=r["target_agent_id"], insight_score=r["insight_score"], rationale=r["rationale"],
        masked_label=r["masked_label"], position=r["position"], latency_penalty=r["latency_penalty"],
    )


def _chapter_from_row(r: dict[str, Any]) -> ChapterRow:
    return ChapterRow(
        chapter_number=r["chapter_number"], draft_id=r["draft_id"], agent_id=r["agent_id"], title=r["title"],
        text=r["text"], epoch_score=r["epoch_score"], margin=r["margin"], author=r["author"],
        epoch_key=r["epoch_key"],
    )
