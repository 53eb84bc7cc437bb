"""Rank: votes become pairwise battles, Elo ratings persisted across epochs, a winner and a loser.

The loser is chosen by `tournament.elimination.judge_window` over the recent window (shrunk mean
adjusted score, ballots weighted by voter reliability, position effects removed); Elo is kept for
display and continuity."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from dream_pipeline.defs.epoch.assets.peer_votes import peer_votes
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.epoch import canon
from dream_pipeline.epoch.rating_window import WINDOW_EPOCHS, window_statistics
from dream_pipeline.epoch.replay import is_replay, verify_replay
from dream_pipeline.epoch.scope import EpochScope, epoch_seed, load_scope, markdown_table
from dream_pipeline.tournament import (
    DEFAULT_K,
    INITIAL_RATING,
    Vote,
    elo_update,
    epoch_scores,
    pairwise_outcomes,
    pick_winner,
)
from dream_pipeline.tournament.elimination import GRACE_EPOCHS, judge_window
from dream_pipeline.tournament.reliability import sticky_flags
from dream_pipeline.tournament.selection import bottom_is_separated
from resources.fabric import BallotWeight, DraftRow, RatingRow, StateFabric, VoterFlag, VoteRow


class EloConfig(dg.Config):
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


def window_frame(recent: Sequence[tuple[int, VoteRow, float]]) -> pd.DataFrame:
    """The window's votes as the elimination rule reads them: epoch, voter, target, score, position,
    and the target draft's penalty in that epoch."""
    return pd.DataFrame(
        [(e, v.voter_agent, v.target_agent, v.insight_score, v.position, p) for e, v, p in recent],
        columns=["epoch", "voter", "target", "insight_score", "position", "penalty"],
    )


def compose_ranking(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow], fabric: StateFabric,
                    config: EloConfig) -> Ranking:
    """Ratings after the epoch from its drafts and votes, storing nothing.

    The Bradley–Terry window is the stored votes of the `window_epochs - 1` epochs before this one
    plus `votes`, so a re-roll is rated against the same history as the canon was."""
    penalty = {d.agent_name: d.penalty for d in written}
    ballots = [Vote(v.voter_agent, v.target_agent, v.masked_label, v.insight_score, v.rationale) for v in votes]
    names = {a.instance_id: a.name for a in scope.agents}
    earlier = fabric.ratings_before(scope.book.name, scope.number)
    rated = [earlier[a.instance_id] for a in scope.agents if a.instance_id in earlier]
    start = sum(rated) / len(rated) if rated else INITIAL_RATING  # a newcomer starts at the roster mean
    before = {a.name: earlier.get(a.instance_id, start) for a in scope.agents}
    battles = pairwise_outcomes(ballots, penalty)
    after = elo_update(before, battles, k=config.k)
    scores = epoch_scores(ballots, penalty, [d.agent_name for d in written])
    winner = pick_winner(scores, after)
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
    judgment = judge_window(window_frame(recent), [a.name for a in scope.agents], newcomers, flags)
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
    return Ranking(rows, winner, loser, newcomers, separated, list(stats.flags), len(battles), weights)


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", deps=[peer_votes], kinds={"pandas", "postgres"})
def elo_rankings(context: dg.AssetExecutionContext, config: EloConfig, fabric: StateFabric) -> dg.MaterializeResult:
    """Ratings after this epoch (online Elo, and Bradley–Terry with bootstrap intervals over recent
    epochs), its winner (best epoch score), the agent to eliminate (lowest shrunk window score outside
    grace), voter flags and the ballot weights they led to."""
    scope = load_scope(fabric, context.partition_key)
    ranking = compose_ranking(scope, fabric.drafts(scope.epoch.epoch_id), fabric.votes(scope.epoch.epoch_id),
                              fabric, config)
    rows, winner, loser, newcomers = ranking.rows, ranking.winner, ranking.loser, ranking.newcomers
    separated = ranking.separated
    by_name = {a.name: a.instance_id for a in scope.agents}
    if is_replay(scope.epoch):  # a committed epoch: compare with the record, write nothing
        replayed = {"ratings": canon.rating_facts(rows),
                    "outcome": canon.outcome_facts(by_name[winner], by_name[loser] if loser else None)}
        return dg.MaterializeResult(metadata={**verify_replay(fabric, scope.epoch, replayed), "winner": winner})
    fabric.write_ratings(
        scope.epoch.epoch_id, rows, by_name[winner], by_name[loser] if loser else None,
        bottom_separated=separated, flags=ranking.flags, weights=ranking.weights,
    )
    # seven narrow columns, so the table fits the Dagster UI's metadata panel without scrolling
    table = [
        {"#": r.rank, "agent": r.agent_name, "net score (penalty)": _score(r.epoch_score, r.penalty),
         "elimination": _round(r.elimination_score), "Elo": _elo(r.rating_before, r.rating_after),
         "BT (95 %)": _bt(r.bt_rating, r.bt_lower, r.bt_upper),
         "": "winner" if r.agent_name == winner else "eliminated" if r.agent_name == loser
         else "grace" if r.agent_name in newcomers else ""}
        for r in rows
    ]
    flags = [{"flag": f.kind, "voter": f.voter_agent, "partner": f.partner, "strength": f.strength}
             for f in ranking.flags]
    weights = [{"voter": w.voter_agent, "weight": w.weight, "reason": w.reason or "",
                "position_correction": ", ".join(f"{p}: {c:+.2f}" for p, c in sorted(w.position_correction.items()))}
               for w in ranking.weights]
    return dg.MaterializeResult(
        metadata={
            "winner": winner,
            "eliminated": loser or "(nobody: all in grace)",
            "bottom_separated": "n/a" if separated is None else str(separated).lower(),
            "battles": ranking.battles,
            "window_epochs": config.window_epochs,
            "standings": dg.MetadataValue.md(markdown_table(table)),
            "voter_flags": dg.MetadataValue.md(markdown_table(flags, floatfmt=".2f")),
            "ballot_weights": dg.MetadataValue.md(markdown_table(weights, floatfmt=".2f")),
        }
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _score(score: float | None, penalty: float | None) -> str:
    if score is None or not math.isfinite(score):
        return "—"
    return f"{score:.2f}" + (f" (−{penalty:.1f})" if penalty else "")


def _elo(before: float | None, after: float | None) -> str:
    if after is None:
        return "—"
    return f"{after:.0f}" if before is None else f"{before:.0f} → {after:.0f}"


def _bt(rating: float | None, lower: float | None, upper: float | None) -> str:
    """A newcomer has no Bradley–Terry rating yet: "—", never "None"."""
    if rating is None or not math.isfinite(rating):
        return "—"
    return f"{rating:.0f}" + ("" if lower is None or upper is None else f" ({lower:.0f}–{upper:.0f})")


def _round(value: float | None) -> str:
    """An agent in grace has no elimination score: "—", never "None"."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.2f}"
