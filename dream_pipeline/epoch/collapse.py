"""Collapse: the epoch winner's draft becomes the next chapter of the canon, and the rolling summary follows it.

`chapter_row` decides what is committed (from the epoch's stored drafts and ratings); the closing step
(defs/epoch/assets/closing.py) writes it, or on a replay compares it with the commit. `summarize` is the
rolling summary's engine call, started as soon as the winner is known (`chapter_draft`); `write_summary`
stores it after the chapter.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace

from dream_pipeline.domains.book.prompts import summary_messages
from dream_pipeline.epoch.scope import EpochScope
from dream_pipeline.tournament.sanitize import storable_text
from resources.fabric import ChapterRow, DraftRow, StateFabric
from resources.llm import LLMCallError, LLMEngine


class NoWinnerYet(LookupError):
    """The epoch has not been ranked: there is nothing to commit."""


def chapter_draft(scope: EpochScope, winner: DraftRow) -> ChapterRow:
    """The winner's draft as the canon will hold it (title, text, author), before its scores are stored:
    what the rolling summary reads, so its engine call can go out as soon as the winner is known."""
    title, text = scope.book.canon_entry(winner.text, scope.number)
    return ChapterRow(
        chapter_number=scope.number, draft_id=winner.draft_id, agent_id=winner.agent_id, title=title, text=text,
        epoch_score=None, margin=None, embedding=winner.embedding, author=winner.agent_name, epoch_key=scope.key,
    )


def chapter_row(fabric: StateFabric, scope: EpochScope) -> ChapterRow:
    """The chapter this epoch commits: the winner's draft, titled, with its epoch score and margin."""
    if scope.epoch.winner_agent_id is None:
        raise NoWinnerYet(f"{scope.key} has no winner yet: materialize elo_rankings first")
    winner = next(d for d in fabric.drafts(scope.epoch.epoch_id) if d.agent_id == scope.epoch.winner_agent_id)
    scores = sorted(
        (r.epoch_score for r in fabric.ratings(scope.epoch.epoch_id) if r.epoch_score is not None), reverse=True
    )
    margin = scores[0] - scores[1] if len(scores) > 1 else None
    epoch_score = scores[0] if scores else None
    fitness = {t["agent_name"]: t["fitness"] for t in fabric.candidate_tests(scope.epoch.epoch_id)}
    if fitness:  # a domain with tests: the fittest won; its score is its own, its margin the fitness lead
        epoch_score = next((r.epoch_score for r in fabric.ratings(scope.epoch.epoch_id)
                            if r.agent_id == winner.agent_id), None)
        rivals = [f for a, f in fitness.items() if a != winner.agent_name]
        margin = fitness[winner.agent_name] - max(rivals) if rivals else None
    return replace(chapter_draft(scope, winner), epoch_score=epoch_score, margin=margin)


@dataclass(frozen=True)
class Summary:
    """The rolling summary after a chapter, as the engine wrote it (`text` None: the call failed or came
    back empty, and `warning` says why)."""

    chapter_number: int
    draft_id: uuid.UUID  # the winning draft the summary read
    text: str | None
    warning: str | None


def summarize(fabric: StateFabric, llm: LLMEngine, scope: EpochScope, chapter: ChapterRow) -> Summary:
    """The rolling summary's engine call (recorded in the ledger), writing no summary: it can run on a worker
    thread while the epoch is still being ranked. A failed call is a warning, never the epoch's failure."""
    previous = fabric.latest_summary(scope.book.name, scope.number)
    messages = summary_messages(scope.book, previous, chapter, llm.summary_tokens)

    async def call():
        async with llm.session(scope.key) as session:
            try:
                completion = await session.chat(
                    purpose="summary", agent_name=None, messages=messages, max_tokens=llm.summary_tokens
                )
            except LLMCallError as exc:
                return None, str(exc), session.calls
            return completion, None, session.calls

    completion, error, calls = asyncio.run(call())
    fabric.record_llm_calls(calls)
    if completion is None or not completion.text.strip():
        return Summary(scope.number, chapter.draft_id, None,
                       f"the summary was not updated after chapter {scope.number}: {error or 'empty reply'}")
    return Summary(scope.number, chapter.draft_id, storable_text(completion.text.strip()), None)


def write_summary(fabric: StateFabric, scope: EpochScope, summary: Summary, chapter: ChapterRow) -> str | None:
    """Store the summary once its chapter is in the canon (a failed one leaves the previous summary in use:
    the next chapter's summary starts from it); returns the warning, if any."""
    if summary.draft_id != chapter.draft_id:  # a summary of another draft must never follow this chapter
        raise RuntimeError(f"{scope.key}: the summary read draft {summary.draft_id}, the chapter is {chapter.draft_id}")
    if summary.text is not None:
        fabric.write_summary(scope.epoch.epoch_id, scope.book.name, summary.chapter_number, summary.text)
    return summary.warning
