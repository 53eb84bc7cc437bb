"""Rank: votes become pairwise battles, Elo ratings persisted across epochs, a winner and a loser.

The loser is chosen by the elimination rule, `tournament.elimination.judge_window`, over the recent
window (shrunk mean adjusted score, ballots weighted by voter reliability, position effects removed);
Elo is kept for display and continuity. In a domain with tests (CodeRepair) the winner is the fittest
candidate (`epoch/candidate_tests.py`); the elimination rule stays the peers'. `compose_ranking` decides and stores nothing: the
`elo_rankings` asset (defs/epoch/assets/elo_rankings.py) and a re-roll (epoch/worlds.py) store it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from dream_pipeline.epoch.candidate_tests import TestedCandidates, test_candidates
from dream_pipeline.epoch.rating_window import WINDOW_EPOCHS, as_vote, window_statistics
from dream_pipeline.epoch.scope import EpochScope, epoch_seed
from dream_pipeline.tournament import (
    DEFAULT_K,
    INITIAL_RATING,
    elo_update,
    epoch_scores,
    pairwise_outcomes,
    pick_winner,
)
from dream_pipeline.tournament.elimination import GRACE_EPOCHS, judge_window
from dream_pipeline.tournament.reliability import sticky_flags
from dream_pipeline.tournament.selection import bottom_is_separated
from resources.fabric import BallotWeight, DraftRow, RatingRow, StateFabric, VoterFlag, VoteRow


class RankSettings(Protocol):
    """The rank settings (`EloConfig`, the closing step's config): the Elo K factor and how many
    epochs the Bradley–Terry window and the elimination rule pool."""

    k: float
    window_epochs: int



@dataclass(frozen=True)
class RankDefaults:
    """The default settings, where no Dagster config is given (a re-roll from the CLI)."""

    k: float = DEFAULT_K
    window_epochs: int = WINDOW_EPOCHS


@dataclass(frozen=True)
class Ranking:
    """An epoch's ratings, winner, loser and voter flags, as decided from its drafts and votes."""

    rows: list[RatingRow]
    winner: str
    loser: str | None
    newcomers: list[str]
    separated: bool | None
    flags: list[VoterFlag]
    battles: int
    weights: list[BallotWeight]
    tests: TestedCandidates | None = None  # a domain with tests (CodeRepair): each candidate's run; None: the book


def window_frame(recent: Sequence[tuple[int, VoteRow, float]]) -> pd.DataFrame:
    """The window's votes as the elimination rule reads them: epoch, voter, target, score, position,
    and the target draft's penalty in that epoch."""
    return pd.DataFrame(
        [(e, v.voter_agent, v.target_agent, v.insight_score, v.position, p) for e, v, p in recent],
        columns=["epoch", "voter", "target", "insight_score", "position", "penalty"],
    )


@dataclass(frozen=True)
class EpochRatings:
    """What the epoch's own ballots give: the Elo update and each draft's epoch score."""

    before: dict[str, float]
    after: dict[str, float]
    scores: dict[str, float]
    penalty: dict[str, float]
    battles: int


@dataclass(frozen=True)
class Verdict:
    """The epoch's ratings and its winner (the best epoch score, or in a domain with tests the fittest
    candidate). The chapter needs only this, so its summary can be written while the window's statistics
    are still being computed (the `rankings_and_chapter` step)."""

    ratings: EpochRatings
    winner: str
    tests: TestedCandidates | None


def rate_epoch(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow], fabric: StateFabric,
               config: RankSettings) -> EpochRatings:
    """The epoch's Elo update and epoch scores from its drafts and votes, storing nothing."""
    penalty = {d.agent_name: d.penalty for d in written}
    ballots = [as_vote(v) for v in votes]
    earlier = fabric.ratings_before(scope.book.name, scope.number, [a.instance_id for a in scope.agents])
    rated = [earlier[a.instance_id] for a in scope.agents if a.instance_id in earlier]
    start = sum(rated) / len(rated) if rated else INITIAL_RATING  # a newcomer starts at the roster mean
    before = {a.name: earlier.get(a.instance_id, start) for a in scope.agents}
    battles = pairwise_outcomes(ballots, penalty)
    after = elo_update(before, battles, k=config.k)
    scores = epoch_scores(ballots, penalty, [d.agent_name for d in written])
    return EpochRatings(before, after, scores, penalty, len(battles))


def crown(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow], ratings: EpochRatings) -> Verdict:
    """The winner: the fittest candidate where tests know the answer (this waits for the candidates'
    sandbox runs), else the best epoch score."""
    tests = test_candidates(scope, written, votes)
    winner = tests.winner if tests is not None else pick_winner(ratings.scores, ratings.after)
    return Verdict(ratings, winner, tests)


def decide_winner(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow], fabric: StateFabric,
                  config: RankSettings) -> Verdict:
    """The epoch's ratings and winner, storing nothing."""
    return crown(scope, written, votes, rate_epoch(scope, written, votes, fabric, config))


def compose_ranking(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow], fabric: StateFabric,
                    config: RankSettings, verdict: Verdict | None = None) -> Ranking:
    """Ratings after the epoch from its drafts and votes, storing nothing (`verdict`: `decide_winner`'s,
    when the caller already has it; otherwise the winner is decided last, so that a domain's sandbox runs
    finish while the window's statistics are computed).

    The Bradley–Terry window is the stored votes of the `window_epochs - 1` epochs before this one
    plus `votes`, so a re-roll is rated against the same history as the canon was."""
    rated = verdict.ratings if verdict is not None else rate_epoch(scope, written, votes, fabric, config)
    before, after, scores, penalty = rated.before, rated.after, rated.scores, rated.penalty
    names = {a.instance_id: a.name for a in scope.agents}
    joined = fabric.joined_epochs(list(names))
    newcomers = [
        a.name for a in scope.agents
        if a.lineage.origin != "cast" and joined[a.instance_id] > scope.number - GRACE_EPOCHS
    ]

    history = fabric.recent_votes(scope.book.name, scope.number - 1, config.window_epochs - 1) \
        if config.window_epochs > 1 else []
    recent = history + [(scope.number, v, penalty.get(v.target_agent, 0.0)) for v in votes]
    stats = window_statistics(recent, epoch_seed(scope.key))
    raised_before = fabric.recent_flags(scope.book.name, scope.number - 1, config.window_epochs - 1) \
        if config.window_epochs > 1 else []
    flags = sticky_flags([(f.kind, f.voter_agent, f.partner, f.strength) for f in stats.flags],
                         [(f.kind, f.voter_agent, f.partner, f.strength) for f in raised_before])
    lengths = fabric.recent_draft_lengths(scope.book.name, scope.number - 1, config.window_epochs - 1) \
        if config.window_epochs > 1 else {}
    lengths.update({(scope.number, d.agent_name): (d.completion_tokens, d.truncated) for d in written})
    judgment = judge_window(window_frame(recent), [a.name for a in scope.agents], newcomers, flags, lengths=lengths)
    loser, estimates = judgment.loser, judgment.estimates
    weights = [BallotWeight(w.voter, w.weight, w.reason, dict(w.position_correction))
               for w in judgment.weights.values()]
    bt = stats.intervals
    lower, upper = bt["lower"].to_dict(), bt["upper"].to_dict()
    separated = None
    if loser is not None:
        candidates = [a.name for a in scope.agents if a.name not in newcomers]
        separated = bottom_is_separated(loser, lower, upper, candidates)

    ranked = sorted(scope.agents, key=lambda a: (-after[a.name], a.name))
    rows = [
        RatingRow(
            a.instance_id, a.name, before[a.name], after[a.name], _finite(scores.get(a.name)),
            penalty.get(a.name, 0.0), rank,
            _finite(bt["rating"].get(a.name)), _finite(lower.get(a.name)), _finite(upper.get(a.name)),
            _finite(estimates[a.name].shrunk) if a.name in estimates else None,
            _finite(estimates[a.name].mean) if a.name in estimates else None,
            estimates[a.name].epochs if a.name in estimates else None,
        )
        for rank, a in enumerate(ranked, start=1)
    ]
    verdict = verdict or crown(scope, written, votes, rated)
    return Ranking(rows, verdict.winner, loser, newcomers, separated, list(stats.flags), rated.battles, weights,
                   verdict.tests)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
