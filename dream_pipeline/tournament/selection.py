"""Collapse: whose draft becomes the chapter, and whether the elimination was clear.

The winner is chosen on this epoch's score (the best draft now); ties are broken by the
rating, then by name, so the choice is total and deterministic. Who is eliminated is
decided in ``elimination.py``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

from dream_pipeline.tournament.elo import INITIAL_RATING

__all__ = ["bottom_is_separated", "describe_margin", "pick_winner"]


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
