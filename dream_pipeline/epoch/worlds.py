"""Alternate worlds: re-roll a committed epoch with fresh engine calls, keep it apart, promote it.

A backfill of a committed epoch replays it from its recorded calls and verifies it against its commit. A re-roll asks the
engine again instead (the same prompts, drafts shown to voters the same way, but a request `seed` of
its own, so the answers differ) and keeps the result as an alternate world of that epoch: a
document in `alternate_worlds`, its calls in `llm_calls` under the world's key. The canon is not
touched. Promoting a world of the book's latest epoch makes it the canon (docs/worlds.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dream_pipeline.domains import load_domain
from dream_pipeline.epoch.burst import compose_drafts
from dream_pipeline.epoch.candidate_tests import start_candidate_tests
from dream_pipeline.epoch.rank import RankDefaults, RankSettings, compose_ranking
from dream_pipeline.epoch.scope import load_scope
from dream_pipeline.epoch.vote import compose_votes
from resources.fabric import (
    AbstentionRow,
    DraftRow,
    EmbeddingDimensionError,
    EpochRecord,
    RatingRow,
    StateFabric,
    VoteRow,
    WorldRow,
    request_seed,
)
from resources.llm import LLMCallError, LLMEngine
from spica import SpicaDomain


def world_seed(epoch_key: str, world_number: int) -> int:
    """The request seed of a world: stable for (epoch, world), different between worlds, fits an INT."""
    return request_seed(f"{epoch_key}~{world_number}")


def world_document(
    domain: SpicaDomain,
    number: int,
    drafts: Sequence[DraftRow],
    votes: Sequence[VoteRow],
    abstentions: Sequence[AbstentionRow],
    ratings: Sequence[RatingRow],
    winner: str | None,
    loser: str | None,
    tests: Any = None,
) -> dict[str, Any]:
    """Everything a world decided, as JSON: what the deck and `dream worlds` show, and what a
    superseded canon keeps. Embeddings are left out (they are in `llm_calls`)."""
    by_author = {d.agent_name: d for d in drafts}
    chapter = by_author.get(winner) if winner else None
    tested = {} if tests is None else {"tests": [
        {"agent": a, "status": s.status, "passed": s.passed, "total": s.total, "pass_rate": s.pass_rate,
         "fitness": s.fitness} for a, s in sorted(tests.scores.items())]}
    return {
        **tested,
        "drafts": [
            {"agent": d.agent_name, "text": d.text, "completion_tokens": d.completion_tokens,
             "truncated": d.truncated, "penalty": d.penalty, "novelty_penalty": d.novelty_penalty}
            for d in drafts
        ],
        "votes": [
            {"voter": v.voter_agent, "target": v.target_agent, "label": v.masked_label, "position": v.position,
             "insight_score": v.insight_score, "rationale": v.rationale}
            for v in votes
        ],
        "abstentions": [{"voter": a.voter_agent, "reason": a.reason} for a in abstentions],
        "standings": [
            {"rank": r.rank, "agent": r.agent_name, "epoch_score": r.epoch_score, "penalty": r.penalty,
             "elo_before": r.rating_before, "elo_after": r.rating_after,
             "bt": r.bt_rating, "bt_lower": r.bt_lower, "bt_upper": r.bt_upper}
            for r in ratings
        ],
        "winner": winner,
        "eliminated": loser,
        "chapter": None if chapter is None else {
            "number": number, "title": domain.canon_entry(chapter.text, number)[0], "author": chapter.agent_name,
            "text": domain.canon_entry(chapter.text, number)[1],
        },
    }


class RerollFailed(RuntimeError):
    """A re-roll that could not rank (too few drafts or ballots, the engine down); recorded as a failed world."""


def reroll(fabric: StateFabric, llm: LLMEngine, epoch_key: str, config: RankSettings | None = None,
           log: Callable[[str], None] = lambda _: None) -> WorldRow:
    """Roll the committed epoch `epoch_key` again as a new alternate world; the canon stays as it is."""
    config = config or RankDefaults()
    number, world_key = fabric.reserve_world(epoch_key)
    seed = world_seed(epoch_key, number)
    scope = load_scope(fabric, epoch_key)
    log(f"{world_key}: re-rolling {epoch_key} with seed {seed}")
    try:
        burst = compose_drafts(scope, fabric, llm, session_key=world_key, seed=seed)
        if len(burst.rows) < 2:
            raise RerollFailed(f"only {len(burst.rows)} of {len(burst.results)} agents produced a draft")
        start_candidate_tests(scope, burst.rows)  # a domain with tests: its sandbox runs overlap the ballots
        review = compose_votes(scope, burst.rows, fabric, llm, session_key=world_key, seed=seed)
        if not review.votes:
            raise RerollFailed(f"no voter returned a valid ballot ({len(review.abstentions)} abstentions)")
        # in the order the fabric returns stored votes, so the sequential Elo here is the one a promotion records
        votes = sorted(review.votes, key=lambda v: (v.voter_agent, v.position))
        ranking = compose_ranking(scope, burst.rows, votes, fabric, config)
    except (RerollFailed, LLMCallError, EmbeddingDimensionError) as exc:
        fabric.finish_world(world_key, seed=seed, status="failed", document={}, reason=str(exc))
        raise RerollFailed(f"{world_key}: {exc}") from exc
    document = world_document(scope.book, scope.number, burst.rows, votes, review.abstentions, ranking.rows,
                              ranking.winner, ranking.loser, ranking.tests)
    fabric.finish_world(world_key, seed=seed, status="complete", document=document)
    return next(w for w in fabric.worlds(epoch_key) if w.world_key == world_key)


def canon_document(fabric: StateFabric, epoch: EpochRecord) -> dict[str, Any]:
    """The canon of an epoch as a world document (kept when another world replaces it)."""
    names = {a.instance_id: a.name for a in fabric.agents(epoch.active_agent_ids)}
    return world_document(
        load_domain(epoch.book), epoch.epoch_number, fabric.drafts(epoch.epoch_id), fabric.votes(epoch.epoch_id),
        fabric.abstentions(epoch.epoch_id), fabric.ratings(epoch.epoch_id),
        names.get(epoch.winner_agent_id), names.get(epoch.loser_agent_id),
    )


def unwind_for_promotion(fabric: StateFabric, epoch_key: str, world_number: int) -> EpochRecord:
    """Make world `world_number` the canon-to-be of the latest epoch: afterwards, running the epoch
    again rebuilds that world from its recorded calls and lets the Reaper act on it."""
    epoch = fabric.epoch(epoch_key)
    return fabric.promote_world(epoch_key, world_number, canon_document(fabric, epoch))
