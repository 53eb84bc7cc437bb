"""Rank: votes become pairwise battles, Elo ratings persisted across epochs, a winner and a loser."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from dream_pipeline import canon
from dream_pipeline.assets.common import EpochScope, epoch_seed, load_scope, markdown_table
from dream_pipeline.assets.peer_votes import peer_votes
from dream_pipeline.partitions import epochs_partitions
from dream_pipeline.replay import is_replay, verify_replay
from dream_pipeline.standings import WINDOW_EPOCHS, window_statistics
from dream_pipeline.tournament import (
    DEFAULT_K,
    INITIAL_RATING,
    Vote,
    elo_update,
    epoch_scores,
    pairwise_outcomes,
    pick_loser,
    pick_winner,
)
from dream_pipeline.tournament.selection import bottom_is_separated
from resources.fabric import DraftRow, RatingRow, StateFabric, VoterFlag, VoteRow


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


def compose_ranking(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow], fabric: StateFabric,
                    config: EloConfig) -> Ranking:
    """Ratings after the epoch from its drafts and votes, storing nothing.

    The Bradley–Terry window is the stored votes of the `window_epochs - 1` epochs before this one
    plus `votes`, so a re-roll is rated against the same history as the canon was."""
    penalty = {d.agent_name: d.penalty for d in written}
    ballots = [Vote(v.voter_agent, v.target_agent, v.masked_label, v.insight_score, v.rationale) for v in votes]
    names = {a.instance_id: a.name for a in scope.agents}
    earlier = fabric.ratings_before(scope.book.name, scope.number)
    before = {a.name: earlier.get(a.instance_id, INITIAL_RATING) for a in scope.agents}
    battles = pairwise_outcomes(ballots, penalty)
    after = elo_update(before, battles, k=config.k)
    scores = epoch_scores(ballots, penalty, [d.agent_name for d in written])
    winner = pick_winner(scores, after)
    joined = fabric.joined_epochs(list(names))
    newcomers = [
        a.name for a in scope.agents if a.lineage.origin != "cast" and joined[a.instance_id] >= scope.number
    ]
    loser = pick_loser(after, scores, newcomers)

    history = fabric.recent_votes(scope.book.name, scope.number - 1, config.window_epochs - 1) \
        if config.window_epochs > 1 else []
    recent = history + [(scope.number, v, penalty.get(v.target_agent, 0.0)) for v in votes]
    stats = window_statistics(recent, epoch_seed(scope.key))
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
        )
        for rank, a in enumerate(ranked, start=1)
    ]
    return Ranking(rows, winner, loser, newcomers, separated, list(stats.flags), len(battles))


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", deps=[peer_votes], kinds={"pandas", "postgres"})
def elo_rankings(context: dg.AssetExecutionContext, config: EloConfig, fabric: StateFabric) -> dg.MaterializeResult:
    """Ratings after this epoch (online Elo, and Bradley–Terry with bootstrap intervals over recent
    epochs), its winner (best epoch score), the agent to eliminate (lowest Elo) and voter flags."""
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
        bottom_separated=separated, flags=ranking.flags,
    )
    # six narrow columns, so the table fits the Dagster UI's metadata panel without scrolling
    table = [
        {"#": r.rank, "agent": r.agent_name, "net score (penalty)": _score(r.epoch_score, r.penalty),
         "Elo": _elo(r.rating_before, r.rating_after), "BT (95 %)": _bt(r.bt_rating, r.bt_lower, r.bt_upper),
         "": "winner" if r.agent_name == winner else "eliminated" if r.agent_name == loser
         else "grace" if r.agent_name in newcomers else ""}
        for r in rows
    ]
    flags = [{"flag": f.kind, "voter": f.voter_agent, "partner": f.partner, "strength": f.strength}
             for f in ranking.flags]
    return dg.MaterializeResult(
        metadata={
            "winner": winner,
            "eliminated": loser or "(nobody: all in grace)",
            "bottom_separated": "n/a" if separated is None else str(separated).lower(),
            "battles": ranking.battles,
            "window_epochs": config.window_epochs,
            "standings": dg.MetadataValue.md(markdown_table(table)),
            "voter_flags": dg.MetadataValue.md(markdown_table(flags, floatfmt=".2f")),
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
