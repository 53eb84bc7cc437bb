"""Epoch scoring: what a draft's received votes are worth after penalties.

A vote's adjusted score is ``insight_score - penalty(target)``; the penalty is a
property of the draft (its author), not of the voter: ``TRUNCATION_PENALTY`` if
the draft hit the token cap, plus a small, capped latency penalty relative to
the epoch's fastest draft.  An author's epoch score is the mean adjusted score
it received.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dream_pipeline.tournament.ballots import Vote

__all__ = [
    "TRUNCATION_PENALTY",
    "LATENCY_PENALTY_SLOPE",
    "LATENCY_PENALTY_CAP",
    "LATENCY_FLOOR_S",
    "DraftFacts",
    "latency_penalty",
    "penalties",
    "adjusted_score",
    "epoch_scores",
]

TRUNCATION_PENALTY = 5.0
LATENCY_PENALTY_SLOPE = 0.5  # points per doubling of latency over the fastest draft
LATENCY_PENALTY_CAP = 1.0  # reached at 4x the fastest latency
# Latencies below this count as this: sub-second jitter (offline engine, cache hits) costs nothing.
LATENCY_FLOOR_S = 1.0


@dataclass(frozen=True)
class DraftFacts:
    """What the engine measured about one draft."""

    author: str
    truncated: bool
    latency_s: float


def latency_penalty(
    latency_s: float,
    fastest_s: float,
    *,
    slope: float = LATENCY_PENALTY_SLOPE,
    cap: float = LATENCY_PENALTY_CAP,
    floor_s: float = LATENCY_FLOOR_S,
) -> float:
    """``min(cap, slope * log2(max(latency, floor) / max(fastest, floor)))``, never below 0.

    Lower is better; 0 for the fastest draft (and for anything under ``floor_s``).  Negative
    latencies count as 0; NaN raises ValueError.
    """
    if math.isnan(latency_s) or math.isnan(fastest_s):
        raise ValueError("latency is NaN")
    if floor_s <= 0:
        raise ValueError("floor_s must be positive")
    ratio = max(latency_s, floor_s) / max(fastest_s, floor_s)
    if ratio <= 1.0:
        return 0.0
    return min(cap, slope * math.log2(ratio))


def penalties(drafts: Sequence[DraftFacts]) -> dict[str, float]:
    """Total penalty per author: truncation plus latency against this epoch's fastest draft."""
    authors = [d.author for d in drafts]
    if len(set(authors)) != len(authors):
        raise ValueError("one draft per author")
    if not drafts:
        return {}
    fastest = min(d.latency_s for d in drafts)
    return {
        d.author: (TRUNCATION_PENALTY if d.truncated else 0.0) + latency_penalty(d.latency_s, fastest)
        for d in drafts
    }


def adjusted_score(vote: Vote, penalty: float) -> float:
    """The vote's insight score minus the penalty of the draft it scored."""
    return vote.insight_score - penalty


def epoch_scores(
    votes: Iterable[Vote], penalties: Mapping[str, float], authors: Sequence[str]
) -> dict[str, float]:
    """Mean adjusted score received by each author, keyed in the order of ``authors``.

    Every author gets a key; an author who received no vote scores ``nan`` (selection ranks
    nan last).  A missing penalty counts as 0.  A vote for someone not in ``authors`` or a
    self-vote is a bug upstream and raises ValueError.
    """
    known = set(authors)
    received: dict[str, list[float]] = defaultdict(list)
    for vote in votes:
        if vote.target not in known:
            raise ValueError(f"vote for unknown author {vote.target!r}")
        if vote.target == vote.voter:
            raise ValueError(f"self-vote by {vote.voter!r}")
        received[vote.target].append(adjusted_score(vote, penalties.get(vote.target, 0.0)))
    return {a: (math.fsum(received[a]) / len(received[a]) if received[a] else math.nan) for a in authors}
