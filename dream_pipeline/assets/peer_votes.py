"""The Vote as an asset: blind ballots from every drafting agent on every other draft."""


import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg

from dream_pipeline import canon
from dream_pipeline.assets.common import EpochScope, epoch_seed, load_scope
from dream_pipeline.assets.drafts import drafts
from dream_pipeline.partitions import epochs_partitions
from dream_pipeline.replay import is_replay, verify_replay
from dream_pipeline.review import BallotResult, collect_ballots
from dream_pipeline.tournament import plan_presentations
from dream_pipeline.tournament.deidentify import Scrubbed, identity_terms, scrub
from dream_pipeline.vote_matrix import vote_matrix_markdown
from resources.fabric import AbstentionRow, DraftRow, StateFabric, VoteRow
from resources.llm import LLMEngine


@dataclass(frozen=True)
class Review:
    """What one round of blind review produced: the ballots as returned, and the rows to store."""

    ballots: list[BallotResult]
    votes: list[VoteRow]
    abstentions: list[AbstentionRow]
    masked: dict[str, Scrubbed]  # each author's draft as the voters read it, and what was masked


def book_identity_terms(scope: EpochScope, fabric: StateFabric) -> tuple[str, ...]:
    """Every name and role word of the book's agents: the cast, the reserve, everyone ever seated."""
    manifest = scope.book.manifest
    personas = [*manifest.get("cast", ()), *manifest.get("reserve", ()), *(a.manifest for a in scope.agents)]
    return identity_terms([*personas, *sorted(fabric.persona_names_used(scope.book.name))])


def compose_votes(scope: EpochScope, written: Sequence[DraftRow], fabric: StateFabric, llm: LLMEngine, *,
                  session_key: str, seed: int | None = None,
                  on_ballot: Callable[[list[VoteRow], AbstentionRow | None], None] | None = None) -> Review:
    """Every drafting agent's blind ballot on the others' drafts, storing nothing but the engine calls
    (and, through `on_ballot`, each ballot's rows the moment it is complete, in a worker thread).

    The presentation (labels and order per voter) is drawn from the epoch's key, so a re-roll shows
    its voters the drafts the way the canon's run would have; only the engine's answers differ.
    """
    by_author = {d.agent_name: d for d in written}
    terms = book_identity_terms(scope, fabric)
    presentations = plan_presentations(sorted(by_author), epoch_seed(scope.key), reserved=terms)
    shown = {a: scrub(d.text, terms) for a, d in by_author.items()}
    voters = [scope.agent(name) for name in sorted(by_author)]

    def rows(ballot: BallotResult) -> tuple[list[VoteRow], AbstentionRow | None]:
        if ballot.abstention_reason is not None:
            return [], AbstentionRow(ballot.voter, ballot.abstention_reason, ballot.raw_reply)
        positions = {item.label: item.position for item in presentations[ballot.voter].items}
        return [
            VoteRow(
                voter_agent=v.voter, target_agent=v.target, voter_agent_id=by_author[v.voter].agent_id,
                target_agent_id=by_author[v.target].agent_id, insight_score=v.insight_score, rationale=v.rationale,
                masked_label=v.label, position=positions[v.label], latency_penalty=by_author[v.target].latency_penalty,
            )
            for v in ballot.votes
        ], None

    async def arrived(ballot: BallotResult) -> None:
        await asyncio.to_thread(on_ballot, *rows(ballot))

    async def vote() -> tuple[list[BallotResult], list]:
        async with llm.session(session_key, seed=seed) as session:
            ballots = await collect_ballots(
                session, voters, presentations, {a: s.text for a, s in shown.items()}, llm.vote_format,
                on_ballot=arrived if on_ballot is not None else None,
            )
            return ballots, session.calls

    ballots, calls = asyncio.run(vote())
    fabric.record_llm_calls(calls)

    votes: list[VoteRow] = []
    abstentions: list[AbstentionRow] = []
    for ballot in ballots:
        ballot_votes, abstention = rows(ballot)
        votes.extend(ballot_votes)
        abstentions.extend([abstention] if abstention else [])
    return Review(ballots, votes, abstentions, shown)


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", deps=[drafts], kinds={"openai", "postgres"})
def peer_votes(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine) -> dg.MaterializeResult:
    """Anonymized, reshuffled per voter, no self-votes; unparseable ballots become recorded abstentions."""
    scope = load_scope(fabric, context.partition_key)
    replay = is_replay(scope.epoch)
    if not replay:  # ballots are written as they arrive, one transaction each: the live matrix fills in
        fabric.clear_votes(scope.epoch.epoch_id)
    review = compose_votes(
        scope, fabric.drafts(scope.epoch.epoch_id), fabric, llm, session_key=scope.key,
        on_ballot=None if replay else lambda votes, abstention: fabric.write_ballot(scope.epoch.epoch_id, votes,
                                                                                    abstention),
    )
    if replay:  # a committed epoch: compare with the record, write nothing
        replayed = {"votes": canon.vote_facts(review.votes), "abstentions": canon.abstention_facts(review.abstentions)}
        return dg.MaterializeResult(metadata={**verify_replay(fabric, scope.epoch, replayed),
                                              "vote_matrix": dg.MetadataValue.md(vote_matrix_markdown(review.votes))})
    ballots, votes, abstentions = review.ballots, review.votes, review.abstentions
    for ballot in ballots:
        if ballot.abstention_reason is not None:
            context.log.warning(f"{ballot.voter} abstains after {ballot.attempts} attempts: {ballot.abstention_reason}")
    if not votes:
        fabric.fail_for_a_new_roll(scope.key, "no valid ballot")
        raise dg.Failure(f"{scope.key}: no voter returned a valid ballot ({len(abstentions)} abstentions)")
    fabric.write_masked_terms(scope.epoch.epoch_id,
                              {scope.agent(a).instance_id: dict(s.masked) for a, s in review.masked.items()})
    for ballot in ballots:
        voter = scope.agent(ballot.voter)
        voter.record_telemetry(
            "ballot", epoch_key=scope.key, attempts=ballot.attempts, abstained=ballot.abstention_reason is not None
        )
        fabric.record_telemetry(voter.drain_telemetry())

    return dg.MaterializeResult(
        metadata={
            "votes": len(votes),
            "ballots": len(ballots) - len(abstentions),
            "abstentions": len(abstentions),
            "retried_ballots": sum(b.attempts > 1 for b in ballots),
            "masked_identity_terms": sum(s.count for s in review.masked.values()),
            "vote_matrix": dg.MetadataValue.md(vote_matrix_markdown(votes)),
        }
    )
