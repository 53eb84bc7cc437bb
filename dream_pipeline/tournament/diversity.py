"""Diversity kept: replacements drawn from the least-represented lineage, mutations that cross traits.

Once the reserve is empty the seed's Reaper mutated the best survivor, and the cast collapsed into
one lineage (after 63 epochs, five "Physician" mutations judging each other). As in quality-
diversity search (MAP-Elites keeps one elite per niche), the niche here is the root persona a lineage
descends from: a replacement mutates the elite (best known score) of the root with the fewest living
members, so no lineage ever holds two seats while another is extinct, and a jury (the other living
agents) never has a majority of one lineage. A mutation crosses its parent's traits with a donor's
(another root's voice and obsessions) instead of copying the winner.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Member", "choose_replacement_parent", "crossed_traits", "jury_majority", "lineage_shares"]


@dataclass(frozen=True)
class Member:
    """An agent the book has had: its name, the root persona of its lineage, alive or not, its score."""

    name: str
    root: str
    alive: bool
    score: float  # what the tournament knows of it (higher is better); -inf when never rated


def lineage_shares(roots: Sequence[str]) -> dict[str, float]:
    """Share of the living cast per root persona."""
    if not roots:
        return {}
    counts = Counter(roots)
    return {root: n / len(roots) for root, n in sorted(counts.items())}


def jury_majority(roots: Sequence[str]) -> str | None:
    """The root holding more than half of a jury, if any."""
    shares = lineage_shares(roots)
    top = max(shares, key=lambda r: (shares[r], r), default=None)
    return top if top is not None and shares[top] > 0.5 else None


def choose_replacement_parent(members: Sequence[Member], survivors: Sequence[str]) -> str:
    """The parent of the next mutation: the elite of the least-represented root among the survivors.

    Niche = root persona. Living members are counted among ``survivors`` only (the eliminated agent
    no longer holds a seat). Ties between equally rare roots -> the root whose elite scores best ->
    root name; the elite is the member of that root with the best score (alive or retired), ties ->
    name. ``members`` must hold at least one member."""
    if not members:
        raise ValueError("no member to descend from")
    living = Counter(m.root for m in members if m.name in set(survivors))
    elites: dict[str, Member] = {}
    for m in members:
        best = elites.get(m.root)
        if best is None or (_key(m.score), best.name) > (_key(best.score), m.name):
            elites[m.root] = m
    root = min(elites, key=lambda r: (living.get(r, 0), -_key(elites[r].score), r))
    return elites[root].name


def _key(score: float) -> float:
    return -math.inf if score is None or math.isnan(score) else score


def crossed_traits(parent: Mapping[str, Any], donor: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Manifest changes for a child of ``parent`` crossed with ``donor``: the parent's role and
    name line, half its obsessions swapped for the donor's, and the donor's voice folded into its own."""
    rng = random.Random(seed)  # noqa: S311 - reproducible variation, not cryptography
    own = list(parent.get("obsessions", ()))
    theirs = [o for o in donor.get("obsessions", ()) if o not in own]
    keep = rng.sample(own, k=max(1, (len(own) + 1) // 2)) if own else []
    take = rng.sample(theirs, k=min(len(theirs), max(1, len(own) - len(keep)))) if theirs else []
    voice = str(parent.get("voice", "")).split(";")[0].strip()
    donor_voice = str(donor.get("voice", "")).split(",")[0].split(";")[0].strip()
    crossed = f"{voice}; with a streak of the {donor_voice}" if donor_voice else voice
    return {"obsessions": keep + take, "voice": crossed.strip("; ")}
