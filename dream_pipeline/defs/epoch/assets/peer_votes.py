"""The Vote as an asset: blind ballots from every drafting agent on its assigned drafts (a bounded,
balanced review design that fits the context window: docs/tournament_rules.md, section 11)."""


import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg

from dream_pipeline.defs.epoch.assets.drafts import drafts
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.epoch import canon
from dream_pipeline.epoch.ballot_diagnosis import diagnose
from dream_pipeline.epoch.context_fit import epoch_window, review_plan
from dream_pipeline.epoch.engine_report import epoch_engine_metadata
from dream_pipeline.epoch.replay import is_replay, verify_replay
from dream_pipeline.epoch.scope import EpochScope, epoch_seed, load_scope
from dream_pipeline.epoch.vote import BallotResult, collect_ballots
from dream_pipeline.epoch.vote_matrix import vote_matrix_markdown
from dream_pipeline.tournament import plan_presentations
from dream_pipeline.tournament.anonymize import shown_on_ballot
from dream_pipeline.tournament.deidentify import Scrubbed, identity_terms, scrub
from dream_pipeline.tournament.review_design import ContextTooSmall, ReviewPlan
from resources.fabric import AbstentionRow, AssignmentRow, DraftRow, StateFabric, VoteRow
from resources.llm import LLMEngine


@dataclass(frozen=True)
class Review:
    """What one round of blind review produced: the ballots as returned, and the rows to store."""

    ballots: list[BallotResult]
    votes: list[VoteRow]
    abstentions: list[AbstentionRow]
    masked: dict[str, Scrubbed]  # each author's draft as the voters read it, and what was masked
    assignments: list[AssignmentRow]
    plan: ReviewPlan
    window: int | None


def book_identity_terms(scope: EpochScope, fabric: StateFabric) -> tuple[str, ...]:
    """Every name and role word of the book's agents: the cast, the reserve, everyone ever seated."""
    manifest = scope.book.manifest
    personas = [*manifest.get("cast", ()), *manifest.get("reserve", ()), *(a.manifest for a in scope.agents)]
    return identity_terms([*personas, *sorted(fabric.persona_names_used(scope.book.name))])


def compose_votes(scope: EpochScope, written: Sequence[DraftRow], fabric: StateFabric, llm: LLMEngine, *,
                  session_key: str, seed: int | None = None,
                  on_design: Callable[[list[AssignmentRow]], None] | None = None,
                  on_ballot: Callable[[list[VoteRow], AbstentionRow | None], None] | None = None) -> Review:
    """Every drafting agent's blind ballot on its assigned drafts, storing nothing but the engine calls
    (and, through `on_design`, the review design before any ballot is asked for; through `on_ballot`,
    each ballot's rows the moment it is complete, in a worker thread).

    Each draft is de-identified first (docs/tournament_rules.md, section 0); the review load and the cuts
    come from the epoch's context window and those scrubbed drafts, the text the voters read; the design and
    the presentation (labels and order per voter) are drawn from the epoch's key, so a re-roll shows its
    voters the drafts the way the canon's run would have; only the engine's answers differ.
    Raises `ContextTooSmall` when no ballot fits the window.
    """
    by_author = {d.agent_name: d for d in written}
    terms = book_identity_terms(scope, fabric)
    scrubbed = {a: scrub(d.text, terms) for a, d in sorted(by_author.items())}
    texts = {a: s.text for a, s in scrubbed.items()}  # as the voters read them: the design and cuts fit these
    voters = [scope.agent(name) for name in sorted(by_author)]
    window = epoch_window(scope.epoch)
    seed_of_design = epoch_seed(scope.key)
    plan = review_plan(voters, texts, window, seed_of_design)
    presentations = plan_presentations(sorted(by_author), seed_of_design, load=plan.load, reserved=terms)
    shown = {a: shown_on_ballot(text, plan.cuts.get(a)) for a, text in texts.items()}
    assignments = [
        AssignmentRow(voter, item.author, by_author[voter].agent_id, by_author[item.author].agent_id, item.label,
                      item.position, None if shown[item.author] >= len(texts[item.author]) else shown[item.author])
        for voter, presentation in presentations.items() for item in presentation.items
    ]
    if on_design is not None:
        on_design(assignments)

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
                session, voters, presentations, texts,
                on_ballot=arrived if on_ballot is not None else None,
                max_tokens=plan.reply_tokens, shown=shown, window=window,
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
    return Review(ballots, votes, abstentions, scrubbed, assignments, plan, window)


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", deps=[drafts], kinds={"openai", "postgres"})
def peer_votes(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine) -> dg.MaterializeResult:
    """Anonymized, reshuffled per voter, no self-votes; unparseable ballots become recorded abstentions."""
    scope = load_scope(fabric, context.partition_key)
    replay = is_replay(scope.epoch)
    epoch_id = scope.epoch.epoch_id
    if not replay:  # ballots are written as they arrive, one transaction each: the live matrix fills in
        fabric.clear_votes(epoch_id)
    try:
        review = compose_votes(
            scope, fabric.drafts(epoch_id), fabric, llm, session_key=scope.key,
            on_design=None if replay else lambda rows: fabric.write_review_design(epoch_id, rows),
            on_ballot=None if replay else lambda votes, abstention: fabric.write_ballot(epoch_id, votes, abstention),
        )
    except ContextTooSmall as exc:
        fabric.mark_epoch_failed(scope.key, str(exc))
        raise dg.Failure(f"{scope.key}: {exc}") from exc
    if replay:  # a committed epoch: compare with the record, write nothing
        replayed = {"votes": canon.vote_facts(review.votes), "abstentions": canon.abstention_facts(review.abstentions)}
        return dg.MaterializeResult(metadata={**verify_replay(fabric, scope.epoch, replayed),
                                              "vote_matrix": dg.MetadataValue.md(vote_matrix_markdown(review.votes))})
    ballots, votes, abstentions = review.ballots, review.votes, review.abstentions
    for ballot in ballots:
        if ballot.abstention_reason is not None:
            context.log.warning(f"{ballot.voter} abstains after {ballot.attempts} attempts: {ballot.abstention_reason}")
    if not votes:
        modes = fabric.epoch(scope.key).engine_modes or {}
        why = diagnose([(a.reason, a.raw_reply) for a in abstentions], modes.get("vote_mode", "unknown")).line()
        fabric.fail_for_a_new_roll(scope.key, f"no valid ballot: {why}")
        raise dg.Failure(f"{scope.key}: no voter returned a valid ballot: {why}")
    fabric.write_masked_terms(scope.epoch.epoch_id,
                              {scope.agent(a).instance_id: dict(s.masked) for a, s in review.masked.items()})
    for ballot in ballots:
        voter = scope.agent(ballot.voter)
        voter.record_telemetry(
            "ballot", epoch_key=scope.key, attempts=ballot.attempts, abstained=ballot.abstention_reason is not None
        )
        fabric.record_telemetry(voter.drain_telemetry())

    capabilities = fabric.engine_capabilities(llm.resolved_base_url().rstrip("/"), llm.model)
    return dg.MaterializeResult(
        metadata={
            **epoch_engine_metadata(fabric.epoch(scope.key).engine_modes, capabilities),
            "votes": len(votes),
            "ballots": len(ballots) - len(abstentions),
            "abstentions": len(abstentions),
            "retried_ballots": sum(b.attempts > 1 for b in ballots),
            "masked_identity_terms": sum(s.count for s in review.masked.values()),
            "context_window": review.window or "unbounded",
            "review_load": review.plan.load,
            "drafts_cut_on_ballots": len({a.target_agent for a in review.assignments if a.shown_chars is not None}),
            "shortest_cut_tokens": review.plan.shortest_cut or "none",
            "vote_matrix": dg.MetadataValue.md(vote_matrix_markdown(votes)),
        }
    )
