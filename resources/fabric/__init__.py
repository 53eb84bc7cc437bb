"""The state fabric: PostgreSQL + pgvector as the record of every world.

All of the tournament's SQL lives here (and in `sql/`), one module per concern, each a mixin of
`StateFabric`: connections (and migrations), agents, epochs, ballots (drafts, votes, ratings), canon
(chapters and the Reaper's commit), ledger (engine calls, telemetry), worlds, integrity, engines, loop,
memory, code_repair (CodeRepair's tasks, test runs and calibration).
The row and record types are pure, in `dream_pipeline.records`, and re-exported here.

Every write that belongs to an epoch is idempotent: re-materializing an epoch that has not committed
replaces its rows in one transaction, so a rerun never duplicates or half-writes them. A committed
epoch's rows are written only by its commit (`reap`, which stores its fingerprint) or a promotion; any
other write raises `CanonLocked`. Many-row writes are one `executemany` inside one transaction.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from dream_pipeline.records import (
    AbstentionRow,
    AssignmentRow,
    BallotWeight,
    BookMemoryRows,
    CanonLocked,
    ChapterRow,
    DraftHit,
    DraftRow,
    EmbeddingDimensionError,
    EpochBusy,
    EpochOrderError,
    EpochRecord,
    LlmCallRow,
    PromotionError,
    RatingRow,
    ReapOutcome,
    Standing,
    SummaryRow,
    VoterFlag,
    VoteRow,
    WorldRow,
    request_hash,
    request_seed,
)
from resources.fabric.agents import AgentsMixin
from resources.fabric.ballots import BallotsMixin
from resources.fabric.canon import CANON_TABLES, EPOCH_CHANNEL, CanonMixin
from resources.fabric.code_repair import CodeRepairMixin
from resources.fabric.connections import _ADAPTERS, _MIGRATED, ConnectionsMixin
from resources.fabric.engines import EnginesMixin
from resources.fabric.epochs import EpochsMixin
from resources.fabric.integrity import IntegrityMixin
from resources.fabric.ledger import LedgerMixin
from resources.fabric.loop import LoopMixin
from resources.fabric.memory import _MEMORY_READY, RECENCY_WEIGHT, MemoryMixin, text_query
from resources.fabric.worlds import WorldsMixin

__all__ = [
    "CANON_TABLES", "EPOCH_CHANNEL", "RECENCY_WEIGHT", "AbstentionRow", "AssignmentRow", "BallotWeight",
    "BookMemoryRows", "CanonLocked", "ChapterRow", "DraftHit", "DraftRow", "EmbeddingDimensionError", "EpochBusy",
    "EpochOrderError", "EpochRecord", "LlmCallRow", "PromotionError", "RatingRow", "ReapOutcome", "Standing",
    "StateFabric", "SummaryRow", "VoteRow", "VoterFlag", "WorldRow", "request_hash", "request_seed", "text_query",
    # the per-database caches (tests clear them to force a second migration or memory set-up)
    "_ADAPTERS", "_MEMORY_READY", "_MIGRATED",
]


class StateFabric(
    ConnectionsMixin, AgentsMixin, EpochsMixin, BallotsMixin, CanonMixin, LedgerMixin, WorldsMixin,
    IntegrityMixin, EnginesMixin, LoopMixin, MemoryMixin, CodeRepairMixin, dg.ConfigurableResource,
):
    """PostgreSQL + pgvector state fabric (psycopg 3). No URL means the embedded pgserver database.

    The Dagster resource (key `fabric`) holds the configuration; each concern's methods come from its
    mixin, and they reach one another through `self` (`connection`, `embedding_dim`, ...)."""

    database_url: str | None = Field(
        default=None,
        description="libpq URL of a PostgreSQL with pgvector; unset = the embedded server under .dream/",
    )
    embedding_dim: int = Field(
        default=256, ge=1, le=2000,  # pgvector's HNSW indexes `vector` up to 2,000 dimensions
        description="dimension of the engine's embeddings (DREAM_EMBEDDING_DIM); the HNSW indexes are built for it",
    )
