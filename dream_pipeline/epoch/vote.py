"""The Vote: every agent reviews the others' drafts blind and answers with a JSON ballot."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dream_pipeline.epoch.context_fit import ballot_overflow, epoch_window, review_plan
from dream_pipeline.epoch.in_flight import gather_sent
from dream_pipeline.epoch.scope import EpochScope, epoch_seed
from dream_pipeline.tournament import (
    BallotError,
    Presentation,
    Vote,
    ballot_json_schema,
    parse_ballot,
    plan_presentations,
)
from dream_pipeline.tournament.anonymize import shown_on_ballot
from dream_pipeline.tournament.deidentify import Scrubbed, scrub
from dream_pipeline.tournament.review_design import BALLOT_MAX_TOKENS, ReviewPlan
from dream_pipeline.tournament.sanitize import storable_text, unstorable_count
from resources.engine_probe import CONSTRAINED_MODES, about_format, structured_fields
from resources.fabric import AbstentionRow, AssignmentRow, DraftRow, StateFabric, VoteRow
from resources.llm import LLMCallError, LLMEngine, LLMSession
from spica import SpicaAgent, SpicaDomain

BALLOT_ATTEMPTS = 3  # a first try and two repairs, then the voter abstains
FORMAT_REFUSALS = frozenset({400, 422, 500, 501})  # statuses servers answer an unsupported format with


@dataclass(frozen=True)
class BallotResult:
    voter: str
    votes: tuple[Vote, ...]
    attempts: int
    abstention_reason: str | None = None
    raw_reply: str | None = None


def response_format(vote_format: str, labels: Sequence[str]) -> dict[str, Any] | None:
    """The `response_format` of a ballot request in `vote_format` (None for modes that use the body)."""
    return structured_fields(vote_format, ballot_json_schema(labels)).get("response_format")


async def collect_ballots(
    session: LLMSession,
    voters: Sequence[SpicaAgent],
    presentations: Mapping[str, Presentation],
    drafts_by_author: Mapping[str, str],
    vote_format: str | None = None,
    on_ballot: Callable[[BallotResult], Awaitable[None]] | None = None,
    *,
    max_tokens: int = BALLOT_MAX_TOKENS,
    shown: Mapping[str, int] | None = None,
    window: int | None = None,
    domain: SpicaDomain,
    context: Any = None,
    on_sent: Callable[[], None] | None = None,
) -> list[BallotResult]:
    """One ballot per voter, in parallel. A reply that never parses is an abstention, never a score.
    `on_ballot` is awaited with each ballot the moment it is complete (the live matrix fills in);
    `on_sent` is called once every ballot request is on its way (each task has run to its first wait).

    Each draft is shown up to `shown[author]` characters; a ballot that would not fit `window` (a bug in
    the plan) raises instead of being sent.

    Ballots are asked in `vote_format`, by default the session's vote mode. When the server refuses
    the structured-output request itself (an error about the format, not a fault), the session steps
    down to the next mode (recorded) and the ballot is asked again in it, without using up an attempt.
    A reply in a mode the server cannot constrain is parsed tolerantly (prose, code fences)."""
    if vote_format is not None:
        session.vote_mode = vote_format

    async def ballot(voter: SpicaAgent) -> BallotResult:
        presentation = presentations[voter.name]
        prompt = domain.review_prompt(presentation, drafts_by_author, shown, context)
        over = ballot_overflow(domain.review_messages(voter, prompt), max_tokens, window)
        if over:
            raise RuntimeError(f"the ballot of {voter.name} would pass the context window by {over} tokens")
        schema = ballot_json_schema(presentation.labels())
        repair: str | None = None
        reply: str | None = None
        attempt = 0
        while attempt < BALLOT_ATTEMPTS:
            attempt += 1
            mode = session.vote_mode
            try:
                completion = await session.chat(
                    purpose="ballot", agent_name=voter.name, messages=domain.review_messages(voter, prompt, repair),
                    max_tokens=max_tokens, **session.ballot_fields(schema),
                )
            except LLMCallError as exc:
                if exc.status in FORMAT_REFUSALS and about_format(exc.detail) and session.step_down(mode, str(exc)):
                    attempt -= 1
                    continue
                return BallotResult(voter.name, (), attempt, abstention_reason=storable_text(f"engine_error: {exc}"))
            reply = completion.text
            try:
                votes = parse_ballot(reply, presentation, tolerant=mode not in CONSTRAINED_MODES)
            except BallotError as exc:
                repair = storable_text(f"{exc.reason}: {exc}")
                continue
            return BallotResult(voter.name, _storable_votes(voter, votes, session.epoch_key), attempt)
        _note_replaced(voter, session.epoch_key, unstorable_count(reply or ""))
        raw = storable_text(reply) if reply is not None else None
        return BallotResult(voter.name, (), BALLOT_ATTEMPTS, abstention_reason=repair, raw_reply=raw)

    async def reported(voter: SpicaAgent) -> BallotResult:
        result = await ballot(voter)
        if on_ballot is not None:
            await on_ballot(result)
        return result

    voters_with_ballots = [v for v in voters if v.name in presentations and presentations[v.name].items]
    return await gather_sent((reported(v) for v in voters_with_ballots), on_sent)


def _storable_votes(voter: SpicaAgent, votes: Sequence[Vote], epoch_key: str | None) -> tuple[Vote, ...]:
    """Rationales enter the system here: verbatim but for NUL and lone surrogates (also when the reply
    wrote them as JSON escapes such as ``\\u0000``), which become U+FFFD (`tournament/sanitize.py`)."""
    _note_replaced(voter, epoch_key, sum(unstorable_count(v.rationale) for v in votes))
    return tuple(dataclasses.replace(v, rationale=storable_text(v.rationale)) for v in votes)


def _note_replaced(voter: SpicaAgent, epoch_key: str | None, characters: int) -> None:
    if characters:
        voter.record_telemetry("ballot_text_replaced", epoch_key=epoch_key, characters=characters)


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


def compose_votes(scope: EpochScope, written: Sequence[DraftRow], fabric: StateFabric, llm: LLMEngine, *,
                  session_key: str, seed: int | None = None,
                  on_design: Callable[[list[AssignmentRow]], None] | None = None,
                  on_ballot: Callable[[list[VoteRow], AbstentionRow | None], None] | None = None,
                  on_sent: Callable[[], None] | None = None) -> Review:
    """Every drafting agent's blind ballot on its assigned drafts, storing nothing but the engine calls
    (and, through `on_design`, the review design before any ballot is asked for; through `on_ballot`,
    each ballot's rows the moment it is complete, in a worker thread). `on_sent`: see `collect_ballots`.

    Each draft is de-identified first (docs/tournament_rules.md, section 0); the review load and the cuts
    come from the epoch's context window and those scrubbed drafts, the text the voters read; the design and
    the presentation (labels and order per voter) are drawn from the epoch's key, so a re-roll shows its
    voters the drafts the way the canon's run would have; only the engine's answers differ.
    Raises `ContextTooSmall` when no ballot fits the window.
    """
    by_author = {d.agent_name: d for d in written}
    terms = scope.book.identity_terms([a.manifest for a in scope.agents], fabric.persona_names_used(scope.book.name))
    scrubbed = {a: scrub(d.text, terms) for a, d in sorted(by_author.items())}
    texts = {a: s.text for a, s in scrubbed.items()}  # as the voters read them: the design and cuts fit these
    voters = [scope.agent(name) for name in sorted(by_author)]
    window = epoch_window(scope.epoch)
    seed_of_design = epoch_seed(scope.key)
    plan = review_plan(voters, texts, window, seed_of_design, scope.book)
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
                max_tokens=plan.reply_tokens, shown=shown, window=window, domain=scope.book,
                context=scope.book.posed(scope.number), on_sent=on_sent,
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
