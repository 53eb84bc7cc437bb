"""The Burst: every living agent drafts the next chapter at the same time, under a hard token cap."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dream_pipeline.tournament.sanitize import storable_text, unstorable_count
from resources.llm import Completion, LLMCallError, LLMSession
from spica import SpicaAgent


@dataclass(frozen=True)
class DraftResult:
    agent: SpicaAgent
    completion: Completion | None
    forfeit_reason: str | None = None

    @property
    def truncated(self) -> bool:
        """Cut by the cap: decided by `finish_reason`, never by looking at the text."""
        return self.completion is not None and self.completion.finish_reason == "length"


async def run_burst(
    session: LLMSession,
    agents: Sequence[SpicaAgent],
    messages_for: Callable[[SpicaAgent], list[dict[str, str]]],
    max_tokens: int,
) -> list[DraftResult]:
    """Draft in parallel (`asyncio.gather`); an agent whose call fails forfeits, the others go on.

    A draft enters the system here and only here: it is kept verbatim except for what PostgreSQL
    cannot hold (NUL, lone surrogates -> U+FFFD, `tournament/sanitize.py`); a replacement is
    recorded in the author's telemetry (`draft_text_replaced`).
    """

    async def draft(agent: SpicaAgent) -> DraftResult:
        try:
            completion = await session.chat(
                purpose="draft", agent_name=agent.name, messages=messages_for(agent), max_tokens=max_tokens
            )
        except LLMCallError as exc:
            return DraftResult(agent, None, forfeit_reason=storable_text(str(exc)))
        replaced = unstorable_count(completion.text)
        if replaced:
            agent.record_telemetry("draft_text_replaced", epoch_key=session.epoch_key, characters=replaced)
            completion = dataclasses.replace(completion, text=storable_text(completion.text))
        if not completion.text.strip():
            return DraftResult(agent, None, forfeit_reason="empty completion")
        return DraftResult(agent, completion)

    return list(await asyncio.gather(*(draft(agent) for agent in agents)))
