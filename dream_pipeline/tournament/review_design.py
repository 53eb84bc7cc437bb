"""Who reviews whom: a bounded, balanced review design that keeps every ballot inside the context window.

With ``n`` drafts, every voter would read ``n - 1`` of them: the ballot grows linearly with the cast
and soon overflows a small context. Instead every voter reviews ``k`` drafts (its *review load*) in a
cyclic design: the authors are put in a seeded cyclic order ``P`` (shuffled per epoch from the
epoch's seed, so a replay draws the same order), and the voter ``P[j]`` reviews
``P[j+1], ..., P[j+k]`` (indices mod ``n``). Then

* no voter reviews itself (``k <= n - 1``);
* every draft is reviewed by exactly ``k`` voters (``P[m-1], ..., P[m-k]``), every voter reviews
  exactly ``k`` drafts: the design is balanced, with no spread at all;
* every draft sits at every position ``0..k-1`` of a ballot exactly once (no position bias);
* with ``k = n - 1`` it is the full review: everyone reviews everyone else.

``k`` is the largest load, at most ``MAX_REVIEWS_PER_VOTER`` (so a ballot's size does not grow with
the cast), whose ballots fit the window with every draft shown at least ``MIN_SHOWN_TOKENS`` long
(`plan_review`); a draft too long for a ballot it is on is shown as its opening, cut the same for
every voter, so every reviewer of a draft reads the same text. Pure: no I/O, no global randomness.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dream_pipeline.tournament.token_budget import CONTEXT_MARGIN_TOKENS

__all__ = [
    "MAX_REVIEWS_PER_VOTER",
    "MIN_REVIEWS_PER_VOTER",
    "MIN_SHOWN_TOKENS",
    "BALLOT_MAX_TOKENS",
    "ReviewPlan",
    "ContextTooSmall",
    "review_cycle",
    "cyclic_targets",
    "assign_reviews",
    "reviews_received",
    "reply_tokens",
    "water_level",
    "plan_review",
]

MAX_REVIEWS_PER_VOTER = 6  # a cast of 7 is a full review; a larger cast keeps ballots this size
MIN_REVIEWS_PER_VOTER = 2  # a ballot of one draft has no pair to compare: no Elo battle
MIN_SHOWN_TOKENS = 512  # a load that would show a draft shorter than this is too high (unless k is minimal)
BALLOT_MAX_TOKENS = 1024  # the reply cap of a ballot when the window is not bounded (epochs drafted before it was)
REPLY_BASE_TOKENS = 96  # the reply's JSON frame
REPLY_TOKENS_PER_DRAFT = 128  # one vote: its id, its score, a one-sentence rationale, with room to spare


class ContextTooSmall(ValueError):
    """Not even the smallest ballot fits the context window."""


@dataclass(frozen=True)
class ReviewPlan:
    """How one epoch's review is bounded: the load ``k``, the length (in estimated tokens) each cut draft
    is shown at on every ballot it is on (a draft absent from ``cuts`` is shown whole) and the reply's
    ``max_tokens``."""

    load: int
    cuts: Mapping[str, int]
    reply_tokens: int

    @property
    def shortest_cut(self) -> int | None:
        return min(self.cuts.values()) if self.cuts else None


def review_cycle(authors: Sequence[str], rng: random.Random) -> list[str]:
    """The seeded cyclic order: the authors sorted (so the order they are passed in does not matter),
    then shuffled by ``rng``."""
    cycle = sorted(authors)
    rng.shuffle(cycle)
    return cycle


def cyclic_targets(cycle: Sequence[str], load: int) -> dict[str, tuple[str, ...]]:
    """Voter ``cycle[j]`` reviews ``cycle[j+1..j+load]`` (mod n), in that order."""
    n = len(cycle)
    if not 1 <= load <= n - 1:
        raise ValueError(f"a review load must be within 1..{n - 1} for {n} authors, got {load}")
    return {voter: tuple(cycle[(j + step) % n] for step in range(1, load + 1)) for j, voter in enumerate(cycle)}


def assign_reviews(authors: Sequence[str], load: int, seed: int) -> dict[str, tuple[str, ...]]:
    """The design for ``authors`` at review load ``load``, keyed in the order of ``authors``: the same
    assignment `plan_presentations` shows (it draws the cycle first from the same seed)."""
    if len(set(authors)) != len(authors):
        raise ValueError("duplicate author names")
    rng = random.Random(seed)  # noqa: S311 - reproducible shuffling, not cryptography
    targets = cyclic_targets(review_cycle(authors, rng), load)
    return {voter: targets[voter] for voter in authors}


def reviews_received(assignment: Mapping[str, Sequence[str]]) -> Counter[str]:
    """How many voters review each author's draft."""
    return Counter(target for targets in assignment.values() for target in targets)


def reply_tokens(load: int) -> int:
    """The ballot reply's ``max_tokens`` for ``load`` drafts."""
    return min(BALLOT_MAX_TOKENS, REPLY_BASE_TOKENS + REPLY_TOKENS_PER_DRAFT * load)


def water_level(lengths: Sequence[int], room: int) -> int | None:
    """The largest cut ``L`` with ``sum(min(t, L) for t in lengths) <= room``: ``None`` when every length
    fits whole, ``0`` when nothing fits. Short drafts are shown whole, the longest cut to ``L``."""
    if sum(lengths) <= room:
        return None
    if room <= 0:
        return 0
    ordered = sorted(lengths)
    spent = 0
    for i, t in enumerate(ordered):
        left = len(ordered) - i  # drafts at least this long share what is left equally
        if t * left > room - spent:
            return (room - spent) // left
        spent += t
    return None  # unreachable: the sum did not fit


def plan_review(
    draft_tokens: Mapping[str, int],
    *,
    seed: int,
    context_tokens: int | None,
    fixed_tokens: int,
    per_draft_tokens: int,
    margin: int = CONTEXT_MARGIN_TOKENS,
) -> ReviewPlan:
    """The review load and cuts for drafts of ``draft_tokens`` (estimated, by author), in the design
    `assign_reviews(authors, k, seed)`.

    A ballot of load ``k`` takes ``fixed_tokens`` (instructions, persona, a repair message) plus, per
    draft, ``per_draft_tokens`` (its frame) and the draft as shown; its reply takes ``reply_tokens(k)``,
    and ``margin`` stays free. Each voter's drafts have a water level in the room left (`water_level`:
    ``None`` when they fit whole); a draft longer than the level of a ballot it is on is cut, to the
    lowest such level, and shown so on every ballot, so every reviewer of a draft reads the same text
    and every ballot fits. The load is the largest ``k <= min(n - 1, MAX_REVIEWS_PER_VOTER)`` whose
    cuts are all at least ``MIN_SHOWN_TOKENS``; failing that, ``k = min(n - 1, MIN_REVIEWS_PER_VOTER)``
    with whatever cuts fit. ``context_tokens=None`` (an epoch drafted before windows were recorded) is
    the full review, uncut, with the old reply cap. Raises `ContextTooSmall` when the smallest ballot
    cannot show a draft at least ``per_draft_tokens`` long.
    """
    authors = list(draft_tokens)
    n = len(authors)
    if n < 2:
        raise ValueError(f"a review needs at least 2 drafts, got {n}")
    if context_tokens is None:
        return ReviewPlan(n - 1, {}, BALLOT_MAX_TOKENS)
    smallest = min(n - 1, MIN_REVIEWS_PER_VOTER)

    def cuts(load: int) -> dict[str, int]:
        room = context_tokens - margin - fixed_tokens - reply_tokens(load) - load * per_draft_tokens
        cut: dict[str, int] = {}
        for targets in assign_reviews(authors, load, seed).values():
            level = water_level([draft_tokens[t] for t in targets], room)
            if level is None:
                continue
            for target in targets:
                if draft_tokens[target] > level:
                    cut[target] = min(cut.get(target, level), level)
        return cut

    for load in range(min(n - 1, MAX_REVIEWS_PER_VOTER), smallest, -1):
        cut = cuts(load)
        if all(c >= MIN_SHOWN_TOKENS for c in cut.values()):
            return ReviewPlan(load, cut, reply_tokens(load))
    cut = cuts(smallest)
    if any(c < per_draft_tokens for c in cut.values()):
        raise ContextTooSmall(
            f"a context of {context_tokens} tokens cannot hold a ballot of {smallest} drafts "
            f"(the ballot's fixed part alone takes {fixed_tokens} tokens)"
        )
    return ReviewPlan(smallest, cut, reply_tokens(smallest))
