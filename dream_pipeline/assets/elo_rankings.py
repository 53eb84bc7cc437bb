"""Rank: votes become pairwise battles, Elo ratings persisted across epochs, a winner and a loser."""


import dagster as dg

from dream_pipeline.assets.common import load_scope, markdown_table
from dream_pipeline.assets.peer_votes import peer_votes
from dream_pipeline.partitions import epochs_partitions
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
from resources.fabric import RatingRow, StateFabric


class EloConfig(dg.Config):
    k: float = DEFAULT_K


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", deps=[peer_votes], kinds={"pandas", "postgres"})
def elo_rankings(context: dg.AssetExecutionContext, config: EloConfig, fabric: StateFabric) -> dg.MaterializeResult:
    """Ratings after this epoch, its winner (best epoch score) and the agent to eliminate (lowest rating)."""
    scope = load_scope(fabric, context.partition_key)
    written = fabric.drafts(scope.epoch.epoch_id)
    penalty = {d.agent_name: d.penalty for d in written}
    votes = [
        Vote(v.voter_agent, v.target_agent, v.masked_label, v.insight_score, v.rationale)
        for v in fabric.votes(scope.epoch.epoch_id)
    ]
    names = {a.instance_id: a.name for a in scope.agents}
    earlier = fabric.ratings_before(scope.book.name, scope.number)
    before = {a.name: earlier.get(a.instance_id, INITIAL_RATING) for a in scope.agents}
    after = elo_update(before, pairwise_outcomes(votes, penalty), k=config.k)
    scores = epoch_scores(votes, penalty, [d.agent_name for d in written])
    winner = pick_winner(scores, after)
    joined = fabric.joined_epochs(list(names))
    newcomers = [
        a.name for a in scope.agents if a.lineage.origin != "cast" and joined[a.instance_id] >= scope.number
    ]
    loser = pick_loser(after, scores, newcomers)

    ranked = sorted(scope.agents, key=lambda a: (-after[a.name], a.name))
    rows = [
        RatingRow(a.instance_id, a.name, before[a.name], after[a.name], _finite(scores.get(a.name)),
                  penalty.get(a.name, 0.0), rank)
        for rank, a in enumerate(ranked, start=1)
    ]
    by_name = {a.name: a.instance_id for a in scope.agents}
    fabric.write_ratings(scope.epoch.epoch_id, rows, by_name[winner], by_name[loser] if loser else None)
    table = [
        {"rank": r.rank, "agent": r.agent_name, "epoch_score": r.epoch_score, "penalty": r.penalty,
         "elo_before": r.rating_before, "elo_after": r.rating_after,
         "note": "winner" if r.agent_name == winner else "eliminated" if r.agent_name == loser
         else "grace" if r.agent_name in newcomers else ""}
        for r in rows
    ]
    return dg.MaterializeResult(
        metadata={
            "winner": winner,
            "eliminated": loser or "(nobody: all in grace)",
            "battles": len(pairwise_outcomes(votes, penalty)),
            "standings": dg.MetadataValue.md(markdown_table(table)),
        }
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else value
