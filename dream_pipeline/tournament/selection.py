"""Collapse: whose draft becomes the chapter, and who is eliminated.

The winner is chosen on this epoch's score (the best draft now); the loser on
the persisted rating (the weakest agent over time).  Ties are broken by the
other figure, then by name, so the choice is total and deterministic.  A
newcomer is in grace for its first epoch and cannot be eliminated.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

from dream_pipeline.tournament.elo import INITIAL_RATING

__all__ = ["bottom_is_separated", "describe_margin", "pick_loser", "pick_winner"]


def _score_key(score: float | None) -> float:
    """Higher is better; nan / missing ranks below every real score."""
    return -math.inf if score is None or math.isnan(score) else score


def pick_winner(scores: Mapping[str, float], ratings: Mapping[str, float]) -> str:
    """Highest epoch score; ties -> higher rating (missing = INITIAL_RATING) -> alphabetically first name."""
    if not scores:
        raise ValueError("no candidates")
    return min(
        scores,
        key=lambda a: (-_score_key(scores[a]), -_score_key(ratings.get(a, INITIAL_RATING)), a),
    )


def describe_margin(margin: float | None) -> str:
    """How a chapter won, for people: by its lead over the runner-up, or, when the two tied on epoch
    score, on the tie-break (the higher rating, then the name); '' when it had no rival."""
    if margin is None or math.isnan(margin):
        return ""
    return "won on the tie-break (tied on score)" if abs(margin) < 0.005 else f"won by {margin:.2f}"


def pick_loser(
    ratings: Mapping[str, float],
    scores: Mapping[str, float],
    newcomers: Collection[str] = (),
    *,
    alive: Collection[str] | None = None,
) -> str | None:
    """Lowest rating among agents in ``ratings`` (restricted to ``alive`` if given) minus newcomers.

    Ties -> lower epoch score (nan / missing counts as lowest) -> alphabetically first name.
    A nan rating counts as the lowest rating.
    None when every candidate is in grace (or there are none).
    """
    grace = set(newcomers)
    candidates = [a for a in ratings if a not in grace and (alive is None or a in alive)]
    if not candidates:
        return None
    return min(candidates, key=lambda a: (_score_key(ratings[a]), _score_key(scores.get(a)), a))


def bottom_is_separated(
    loser: str, lower: Mapping[str, float], upper: Mapping[str, float], candidates: Collection[str]
) -> bool:
    """Whether the agent to eliminate is clearly the weakest: its upper bound lies below the lower
    bound of the next-lowest candidate (by lower bound). Missing intervals count as not separated.

    Elimination does not wait for separation (the loop never stalls); the answer is recorded with the
    epoch so a reader can see which eliminations were decided by noise.
    """
    others = [lower.get(a, math.nan) for a in candidates if a != loser]
    ceiling = upper.get(loser, math.nan)
    if not others or any(math.isnan(x) for x in others) or math.isnan(ceiling):
        return False
    return ceiling < min(others)
