"""The Vote: every agent reviews the others' drafts blind and answers with a JSON ballot."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dream_pipeline.prompts import ballot_messages
from dream_pipeline.tournament import (
    BallotError,
    Presentation,
    Vote,
    ballot_json_schema,
    parse_ballot,
    render_ballot_prompt,
)
from resources.llm import LLMCallError, LLMSession
from spica import SpicaAgent

BALLOT_MAX_TOKENS = 1024
BALLOT_ATTEMPTS = 3  # a first try and two repairs, then the voter abstains


@dataclass(frozen=True)
class BallotResult:
    voter: str
    votes: tuple[Vote, ...]
    attempts: int
    abstention_reason: str | None = None
    raw_reply: str | None = None


def response_format(vote_format: str, labels: Sequence[str]) -> dict[str, Any]:
    if vote_format == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "ballot", "schema": ballot_json_schema(labels), "strict": True},
        }
    return {"type": "json_object"}


async def collect_ballots(
    session: LLMSession,
    voters: Sequence[SpicaAgent],
    presentations: Mapping[str, Presentation],
    drafts_by_author: Mapping[str, str],
    vote_format: str,
) -> list[BallotResult]:
    """One ballot per voter, in parallel. A reply that never parses is an abstention, never a score."""

    async def ballot(voter: SpicaAgent) -> BallotResult:
        presentation = presentations[voter.name]
        prompt = render_ballot_prompt(presentation, drafts_by_author)
        fmt = response_format(vote_format, presentation.labels())
        repair: str | None = None
        reply: str | None = None
        for attempt in range(1, BALLOT_ATTEMPTS + 1):
            try:
                completion = await session.chat(
                    purpose="ballot", agent_name=voter.name, messages=ballot_messages(voter, prompt, repair),
                    max_tokens=BALLOT_MAX_TOKENS, response_format=fmt,
                )
            except LLMCallError as exc:
                return BallotResult(voter.name, (), attempt, abstention_reason=f"engine_error: {exc}")
            reply = completion.text
            try:
                return BallotResult(voter.name, tuple(parse_ballot(reply, presentation)), attempt)
            except BallotError as exc:
                repair = f"{exc.reason}: {exc}"
        return BallotResult(voter.name, (), BALLOT_ATTEMPTS, abstention_reason=repair, raw_reply=reply)

    voters_with_ballots = [v for v in voters if v.name in presentations and presentations[v.name].items]
    return list(await asyncio.gather(*(ballot(v) for v in voters_with_ballots)))
