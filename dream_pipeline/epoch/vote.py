"""The Vote: every agent reviews the others' drafts blind and answers with a JSON ballot."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dream_pipeline.domains.book.prompts import ballot_messages
from dream_pipeline.epoch.context_fit import ballot_overflow
from dream_pipeline.tournament import (
    BallotError,
    Presentation,
    Vote,
    ballot_json_schema,
    parse_ballot,
    render_ballot_prompt,
)
from dream_pipeline.tournament.review_design import BALLOT_MAX_TOKENS
from dream_pipeline.tournament.sanitize import storable_text, unstorable_count
from resources.engine_probe import CONSTRAINED_MODES, about_format, structured_fields
from resources.llm import LLMCallError, LLMSession
from spica import SpicaAgent

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
) -> list[BallotResult]:
    """One ballot per voter, in parallel. A reply that never parses is an abstention, never a score.
    `on_ballot` is awaited with each ballot the moment it is complete (the live matrix fills in).

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
        prompt = render_ballot_prompt(presentation, drafts_by_author, shown)
        over = ballot_overflow(ballot_messages(voter, prompt), max_tokens, window)
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
                    purpose="ballot", agent_name=voter.name, messages=ballot_messages(voter, prompt, repair),
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
    return list(await asyncio.gather(*(reported(v) for v in voters_with_ballots)))


def _storable_votes(voter: SpicaAgent, votes: Sequence[Vote], epoch_key: str | None) -> tuple[Vote, ...]:
    """Rationales enter the system here: verbatim but for NUL and lone surrogates (also when the reply
    wrote them as JSON escapes such as ``\\u0000``), which become U+FFFD (`tournament/sanitize.py`)."""
    _note_replaced(voter, epoch_key, sum(unstorable_count(v.rationale) for v in votes))
    return tuple(dataclasses.replace(v, rationale=storable_text(v.rationale)) for v in votes)


def _note_replaced(voter: SpicaAgent, epoch_key: str | None, characters: int) -> None:
    if characters:
        voter.record_telemetry("ballot_text_replaced", epoch_key=epoch_key, characters=characters)
