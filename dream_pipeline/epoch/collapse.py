"""Collapse: the epoch winner's draft becomes the next chapter of the canon, and the rolling summary follows it.

`chapter_row` decides what is committed (pure over the epoch's stored drafts and ratings); the `chapter`
asset (defs/epoch/assets/chapter.py) writes it, or on a replay compares it with the commit.
"""

from __future__ import annotations

import asyncio

from dream_pipeline.domains.book.prompts import summary_messages
from dream_pipeline.epoch.scope import EpochScope
from dream_pipeline.tournament.sanitize import storable_text
from resources.fabric import ChapterRow, StateFabric
from resources.llm import LLMCallError, LLMEngine


class NoWinnerYet(LookupError):
    """The epoch has not been ranked: there is nothing to commit."""


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
    title, text = scope.book.canon_entry(winner.text, scope.number)
    return ChapterRow(
        chapter_number=scope.number, draft_id=winner.draft_id, agent_id=winner.agent_id, title=title, text=text,
        epoch_score=epoch_score, margin=margin, embedding=winner.embedding,
    )


def update_summary(fabric: StateFabric, llm: LLMEngine, scope: EpochScope) -> str | None:
    """The rolling summary after this epoch's chapter (one recorded engine call). A failed call leaves the
    previous summary in use (the next chapter's summary starts from it) and is returned as a warning; it
    never fails the epoch. A domain without a memory of its canon (CodeRepair) keeps no summary."""
    if not scope.book.canon_memory:
        return None
    chapter = fabric.chapter_for_epoch(scope.epoch.epoch_id)
    previous = fabric.latest_summary(scope.book.name, scope.number)
    messages = summary_messages(scope.book, previous, chapter, llm.summary_tokens)

    async def summarize():
        async with llm.session(scope.key) as session:
            try:
                completion = await session.chat(
                    purpose="summary", agent_name=None, messages=messages, max_tokens=llm.summary_tokens
                )
            except LLMCallError as exc:
                return None, str(exc), session.calls
            return completion, None, session.calls

    completion, error, calls = asyncio.run(summarize())
    fabric.record_llm_calls(calls)
    if completion is None or not completion.text.strip():
        return f"the summary was not updated after chapter {scope.number}: {error or 'empty reply'}"
    fabric.write_summary(scope.epoch.epoch_id, scope.book.name, scope.number, storable_text(completion.text.strip()))
    return None
