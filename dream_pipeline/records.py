"""The fabric's row and record types, its errors, and what engine text may become before it is stored.

Pure, no I/O (no dagster, psycopg, openai, httpx or streamlit: `tests/test_layers.py` checks it), so the
pure modules (prompts, window statistics, the vote matrix, reports) and the fabric share these types
without the fabric's dependencies. `resources.fabric` re-exports every name, where they were before.

What may be stored: model output is kept verbatim with two exceptions that PostgreSQL and UTF-8 force
on us:

- NUL (U+0000): a PostgreSQL ``text`` or ``jsonb`` value cannot hold it;
- surrogate code points (U+D800..U+DFFF): they have no UTF-8 encoding, so psycopg cannot send them.
  A high surrogate directly followed by a low one (two UTF-16 halves, as a lenient decoder leaves
  them) is joined into the character it encodes; any other surrogate is alone and invalid.

Each such NUL and lone surrogate becomes U+FFFD (the replacement character), one for one, so lengths
and positions of everything else are kept. The policy is idempotent (already-stored text passes
unchanged, so a replayed answer gives the same draft) and text without NUL or surrogates is never
touched: SQL fragments, HTML, ``<script>``, instructions to the voter are data, stored as written.
It is the one policy for drafts, ballots, summaries and the ledger (`dream_pipeline.tournament.sanitize`
re-exports it for the pipeline).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# ---- what may be stored ------------------------------------------------------------------------

REPLACEMENT = "\ufffd"

_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _join_pair(match: re.Match[str]) -> str:
    high, low = match.group()
    return chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(low) - 0xDC00))


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL can store it: surrogate pairs joined, NUL and lone surrogates -> U+FFFD."""
    if not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub(REPLACEMENT, _PAIR.sub(_join_pair, text))


def unstorable_count(text: str) -> int:
    """How many characters `storable_text` replaces by U+FFFD (0: stored verbatim)."""
    return len(_UNSTORABLE.findall(_PAIR.sub(_join_pair, text))) if _UNSTORABLE.search(text) else 0


def storable_json(value: Any) -> Any:
    """A JSON-able value with `storable_text` applied to every string in it, keys included."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_json(k): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


# ---- errors ------------------------------------------------------------------------------------

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


# ---- rows --------------------------------------------------------------------------------------

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
