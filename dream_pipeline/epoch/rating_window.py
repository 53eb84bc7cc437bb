"""Ratings with uncertainty and voter flags over a window of recent epochs.

Composes the pure tournament statistics for the rankings step: ballots of the last `window` epochs
are broken into battles with each epoch's own penalties and pooled for a Bradley–Terry fit with
bootstrap intervals (resampled by ballot); voter statistics flag outliers and possible cliques.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from dream_pipeline.records import VoterFlag, VoteRow
from dream_pipeline.tournament import Vote, pairwise_outcomes
from dream_pipeline.tournament.bradley_terry import bootstrap_ballots
from dream_pipeline.tournament.voter_stats import flag_cliques, flag_outlier_voters

WINDOW_EPOCHS = 10
BOOTSTRAP_ROUNDS = 200


def as_vote(row: VoteRow) -> Vote:
    """A stored vote as the tournament rules read it (the one conversion, for the epoch and the window)."""
    return Vote(row.voter_agent, row.target_agent, row.masked_label, row.insight_score, row.rationale)


@dataclass(frozen=True)
class WindowStatistics:
    intervals: pd.DataFrame  # index agent; columns rating, lower, upper, mle
    flags: list[VoterFlag]


def window_statistics(recent: Sequence[tuple[int, VoteRow, float]], seed: int) -> WindowStatistics:
    """`recent` is (epoch number, vote, penalty of the vote's target in that epoch)."""
    ballots: dict[tuple[int, str], list[Vote]] = defaultdict(list)
    penalties: dict[tuple[int, str], float] = {}
    for epoch, v, penalty in recent:
        ballots[(epoch, v.voter_agent)].append(as_vote(v))
        penalties[(epoch, v.target_agent)] = penalty
    outcomes = [
        pairwise_outcomes(votes, {t: p for (e, t), p in penalties.items() if e == epoch})
        for (epoch, _), votes in sorted(ballots.items())
    ]
    intervals = bootstrap_ballots(outcomes, rounds=BOOTSTRAP_ROUNDS, seed=seed)

    frame = pd.DataFrame(
        [(epoch, v.voter_agent, v.target_agent, v.insight_score) for epoch, v, _ in recent],
        columns=["epoch", "voter", "target", "insight_score"],
    )
    flags: list[VoterFlag] = []
    if not frame.empty:
        cliques = flag_cliques(frame)
        for (a, b), excess in sorted(cliques.items()):
            flags.append(VoterFlag("clique", a, b, float(excess)))
        for voter, ratio in sorted(flag_outlier_voters(frame, cliques=cliques).items()):  # judged without them
            flags.append(VoterFlag("outlier", voter, "", float(ratio)))
    return WindowStatistics(intervals, flags)
