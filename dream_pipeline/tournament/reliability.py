"""Voter reliability with consequences: ballot weights from flags, and position effects removed.

Flags (``voter_stats``) say which voters to trust less; this module turns them into weights: a
clique member's ballots weigh nothing (a clique must never decide who is eliminated), an outlier's
weigh ``1 / ratio**2`` (its disagreement ``ratio`` times the crowd's median: inverse variance).

A position effect is measured on scores, not on top choices: each vote minus the leave-one-out
mean of the same draft in the same epoch (its deviation), less the voter's own mean deviation; a
voter's effect at position ``p`` is its mean deviation at ``p`` minus its mean deviation at every
other position, with a z statistic from the voter's pooled spread. Only an effect with
``|z| >= POSITION_Z`` (and ``POSITION_MIN_VOTES`` votes on each side) is corrected: subtracted from
that voter's scores at that position before they count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "CLIQUE_WEIGHT",
    "sticky_flags",
    "POSITION_MIN_VOTES",
    "POSITION_Z",
    "VoterWeight",
    "ballot_weights",
    "position_effects",
    "position_statistics",
]

CLIQUE_WEIGHT = 0.0
POSITION_Z = 3.5  # two-sided p ~ 5e-4 per test: 4 positions x 5-7 voters keeps false flags near 1 % of voters
POSITION_MIN_VOTES = 3


@dataclass(frozen=True)
class VoterWeight:
    """What one voter's ballots count for in a decision, why, and the position effects removed."""

    voter: str
    weight: float = 1.0
    reason: str = ""
    position_correction: Mapping[int, float] = field(default_factory=dict)


def ballot_weights(voters: Sequence[str], flags: Sequence[tuple[str, str, str, float]]) -> dict[str, VoterWeight]:
    """Weight per voter from flags ``(kind, voter, partner, strength)``: clique -> 0, outlier ->
    ``min(1, 1/strength**2)``, the lowest weight winning; everyone else 1."""
    weight = {v: 1.0 for v in voters}
    reason: dict[str, list[str]] = {v: [] for v in voters}
    for kind, voter, partner, strength in flags:
        members = [voter, partner] if kind == "clique" else [voter]
        for member in members:
            if not member:
                continue
            if kind == "clique":
                w, why = CLIQUE_WEIGHT, f"clique with {partner if member == voter else voter}"
            elif kind == "outlier":
                w = 1.0 if not math.isfinite(strength) or strength <= 0 else min(1.0, 1.0 / strength**2)
                w = 0.0 if strength == math.inf else w
                why = f"outlier ({strength:.2f}x the median disagreement)"
            else:
                raise ValueError(f"unknown flag kind {kind!r}")
            weight.setdefault(member, 1.0)
            reason.setdefault(member, [])
            weight[member] = min(weight[member], w)
            if why not in reason[member]:
                reason[member].append(why)
    return {v: VoterWeight(v, weight[v], "; ".join(reason[v])) for v in sorted(weight)}


Flag = tuple[str, str, str, float]


def sticky_flags(current: Sequence[Flag], earlier: Sequence[Flag]) -> list[Flag]:
    """The flags a decision weighs ballots by: this window's, plus every clique flag raised at an epoch
    whose ballots are still in the window. A clique's ballots stay silenced while they can still count,
    even after one member has left and the pair no longer shows as a clique."""
    seen = {(k, v, p) for k, v, p, _ in current}
    merged = list(current)
    for kind, voter, partner, strength in earlier:
        if kind == "clique" and (kind, voter, partner) not in seen:
            seen.add((kind, voter, partner))
            merged.append((kind, voter, partner, strength))
    return merged


def position_statistics(votes: pd.DataFrame) -> pd.DataFrame:
    """Per (voter, position): ``n``, ``effect`` (points) and ``z``, from a table with columns
    ``epoch, voter, target, insight_score, position``. Positions with too few votes on either side
    get NaN ``z``."""
    df = votes[["epoch", "voter", "target", "insight_score", "position"]].copy()
    df["insight_score"] = df["insight_score"].astype(float)
    group = df.groupby(["epoch", "target"])["insight_score"]
    total, count = group.transform("sum"), group.transform("count")
    df = df[count > 1].copy()
    df["deviation"] = df["insight_score"] - (total[count > 1] - df["insight_score"]) / (count[count > 1] - 1)
    rows = []
    for voter, own in df.groupby("voter", sort=True):
        dev = own["deviation"].to_numpy(float)
        pos = own["position"].to_numpy(int)
        positions = np.unique(pos)
        # the voter's spread once each position's own mean is removed (a bias inflates no variance)
        means = {p: dev[pos == p].mean() for p in positions}
        resid = dev - np.array([means[p] for p in pos])
        dof = len(dev) - len(positions)
        spread = float(np.sqrt((resid**2).sum() / dof)) if dof > 0 else math.nan
        for p in positions:
            at, rest = dev[pos == p], dev[pos != p]
            effect = float(at.mean() - rest.mean()) if len(rest) else math.nan
            z = math.nan
            if len(at) >= POSITION_MIN_VOTES and len(rest) >= POSITION_MIN_VOTES and spread > 0:
                z = effect / (max(spread, 0.5) * math.sqrt(1 / len(at) + 1 / len(rest)))
            rows.append({"voter": voter, "position": int(p), "n": len(at), "effect": effect, "z": z})
    return pd.DataFrame(rows, columns=["voter", "position", "n", "effect", "z"])


def position_effects(votes: pd.DataFrame, *, z: float = POSITION_Z) -> dict[str, dict[int, float]]:
    """The significant position effects per voter: ``{voter: {position: points}}`` (``|z| >= z``).

    Found by peeling, as cliques are: the most significant effect is taken, subtracted from that
    voter's scores at that position, and the rest judged again; a biased voter's inflated scores
    move everyone's consensus and would otherwise make honest voters look biased too. The spread
    behind ``z`` is floored at half a point, so a voter with near-constant scores is not flagged
    for a one-point wobble."""
    frame = votes[["epoch", "voter", "target", "insight_score", "position"]].copy()
    frame["insight_score"] = frame["insight_score"].astype(float)
    effects: dict[str, dict[int, float]] = {}
    for _ in range(len(frame)):
        stats = position_statistics(frame)
        stats = stats[stats["z"].abs() >= z]
        if stats.empty:
            break
        top = stats.loc[stats["z"].abs().idxmax()]
        voter, position, effect = str(top["voter"]), int(top["position"]), float(top["effect"])
        effects.setdefault(voter, {})[position] = effects.get(voter, {}).get(position, 0.0) + effect
        hit = (frame["voter"] == voter) & (frame["position"] == position)
        frame.loc[hit, "insight_score"] -= effect
    return effects
