"""Online Elo over pairwise battles derived from ballots (FastChat ``compute_elo``).

A ballot of ``n`` scores is broken into its ``n(n-1)/2`` pairwise battles on
adjusted scores; battles update ratings one at a time with the logistic Elo
rule.  Each update moves ``K*(s - E)`` from one side to the other, so the total
rating is conserved, and a battle won never lowers the winner.  Sequential Elo
is order-dependent by nature: the battle order is made deterministic (voters
sorted, then pairs sorted) rather than order-free.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

from dream_pipeline.tournament.ballots import Vote
from dream_pipeline.tournament.scoring import adjusted_score

__all__ = [
    "INITIAL_RATING",
    "DEFAULT_K",
    "SCALE",
    "BASE",
    "expected_score",
    "pairwise_outcomes",
    "elo_update",
]

INITIAL_RATING = 1000.0
DEFAULT_K = 16.0
SCALE = 400.0
BASE = 10.0

Outcome = tuple[str, str, float]


def expected_score(rating_a: float, rating_b: float, *, scale: float = SCALE, base: float = BASE) -> float:
    """Probability that a beats b under the Elo logistic curve."""
    return 1.0 / (1.0 + base ** ((rating_b - rating_a) / scale))


def pairwise_outcomes(votes: Iterable[Vote], penalties: Mapping[str, float] | None = None) -> list[Outcome]:
    """Every pair of targets on each voter's ballot as ``(a, b, s)``, ``s`` = 1 / 0.5 / 0 for a.

    Scores are compared after penalties (missing penalty = 0).  Order: voters sorted by name,
    then pairs ``a < b`` by name, so the result never depends on the order of ``votes``.  A
    self-vote or a target scored twice by one voter raises ValueError.
    """
    penalties = penalties or {}
    ballots: dict[str, dict[str, float]] = defaultdict(dict)
    for vote in votes:
        if vote.target == vote.voter:
            raise ValueError(f"self-vote by {vote.voter!r}")
        ballot = ballots[vote.voter]
        if vote.target in ballot:
            raise ValueError(f"{vote.voter!r} scored {vote.target!r} twice")
        ballot[vote.target] = adjusted_score(vote, penalties.get(vote.target, 0.0))
    outcomes: list[Outcome] = []
    for voter in sorted(ballots):
        ballot = ballots[voter]
        for a, b in combinations(sorted(ballot), 2):
            sa, sb = ballot[a], ballot[b]
            outcomes.append((a, b, 1.0 if sa > sb else 0.0 if sa < sb else 0.5))
    return outcomes


def elo_update(
    ratings: Mapping[str, float],
    outcomes: Sequence[Outcome],
    k: float = DEFAULT_K,
    initial: float = INITIAL_RATING,
    *,
    scale: float = SCALE,
    base: float = BASE,
) -> dict[str, float]:
    """Sequential Elo over ``outcomes`` in the given order; unseen agents start at ``initial``.

    Returns every agent in ``ratings`` or ``outcomes`` (ratings' order first).  The input
    mapping is not modified.
    """
    new = dict(ratings)
    for a, b, s in outcomes:
        if a == b:
            raise ValueError(f"{a!r} cannot battle itself")
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"outcome {s!r} outside [0, 1]")
        ra, rb = new.setdefault(a, initial), new.setdefault(b, initial)
        delta = k * (s - expected_score(ra, rb, scale=scale, base=base))
        new[a] = ra + delta
        new[b] = rb - delta
    return new
