"""The Vote, the third asset of the opening step (`opening.py`): blind ballots from every drafting agent
on its assigned drafts (a bounded, balanced review design that fits the context window:
docs/tournament_rules.md, section 11)."""

from collections.abc import Callable

import dagster as dg

from dream_pipeline import fingerprint
from dream_pipeline.defs.epoch.assets.drafts import DRAFTS
from dream_pipeline.defs.metadata import verify_replay
from dream_pipeline.epoch.ballot_diagnosis import diagnose
from dream_pipeline.epoch.candidate_tests import start_candidate_tests
from dream_pipeline.epoch.engine_report import epoch_engine_metadata
from dream_pipeline.epoch.replay import is_replay
from dream_pipeline.epoch.scope import EpochScope
from dream_pipeline.epoch.vote import compose_votes
from dream_pipeline.epoch.vote_matrix import vote_matrix_markdown
from dream_pipeline.tournament.review_design import ContextTooSmall
from resources.fabric import StateFabric
from resources.llm import LLMEngine

PEER_VOTES = dg.AssetKey("peer_votes")
PEER_VOTES_SPEC = dg.AssetSpec(
    PEER_VOTES, deps=[DRAFTS], group_name="epoch", kinds={"openai", "postgres"}, skippable=True,
    description="Blind ballots from every drafting agent on its assigned drafts: anonymized, reshuffled per "
                "voter, no self-votes; unparseable ballots become recorded abstentions.",
)


def vote_epoch(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine, scope: EpochScope,
               on_sent: Callable[[], None] | None = None,
               on_ballots: Callable[[], None] | None = None) -> dg.MaterializeResult:
    """Anonymized, reshuffled per voter, no self-votes; unparseable ballots become recorded abstentions.
    `scope` holds the epoch as its drafts left it (the context window they recorded sizes the review).
    `on_sent` is called once the ballot requests are on their way, `on_ballots` once every ballot is in
    and stored (not on a replay), before the votes' bookkeeping."""
    replay = is_replay(scope.epoch)
    epoch_id = scope.epoch.epoch_id
    if not replay:  # ballots are written as they arrive, one transaction each: the live matrix fills in
        fabric.clear_votes(epoch_id)
    written = fabric.drafts(epoch_id)
    start_candidate_tests(scope, written)  # a domain with tests: its sandbox runs overlap the ballots
    try:
        review = compose_votes(
            scope, written, fabric, llm, session_key=scope.key,
            on_design=None if replay else lambda rows: fabric.write_review_design(epoch_id, rows),
            on_ballot=None if replay else lambda votes, abstention: fabric.write_ballot(epoch_id, votes, abstention),
            on_sent=on_sent,
        )
    except ContextTooSmall as exc:
        fabric.mark_epoch_failed(scope.key, str(exc))
        raise dg.Failure(f"{scope.key}: {exc}") from exc
    if replay:  # a committed epoch: compare with the record, write nothing
        replayed = {"votes": fingerprint.vote_facts(review.votes), "abstentions": fingerprint.abstention_facts(review.abstentions)}
        return dg.MaterializeResult(asset_key=PEER_VOTES, metadata={**verify_replay(fabric, scope.epoch, replayed),
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
    if on_ballots is not None:
        on_ballots()
    fabric.write_masked_terms(scope.epoch.epoch_id,
                              {scope.agent(a).instance_id: dict(s.masked) for a, s in review.masked.items()})
    events = []
    for ballot in ballots:
        voter = scope.agent(ballot.voter)
        voter.record_telemetry(
            "ballot", epoch_key=scope.key, attempts=ballot.attempts, abstained=ballot.abstention_reason is not None
        )
        events.extend(voter.drain_telemetry())
    fabric.record_telemetry(events)  # every voter's in one write

    known = llm.known_capabilities(llm.resolved_base_url())  # the session's, in this process's memory
    capabilities = known.as_json() if known is not None else None
    return dg.MaterializeResult(
        asset_key=PEER_VOTES,
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
