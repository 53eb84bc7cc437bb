"""The Burst: every living agent drafts the next chapter at the same time, under a hard token cap."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dream_pipeline.domains.book.memory import (
    BookContext,
    lexical_peer_similarities,
    lexical_similarity,
    novelty_penalty,
    peer_similarities,
)
from dream_pipeline.domains.book.prompts import OUTLINE_CHAPTERS
from dream_pipeline.epoch.context_fit import epoch_window, fit_draft_prompt
from dream_pipeline.epoch.in_flight import gather_sent
from dream_pipeline.epoch.scope import EpochScope
from dream_pipeline.tournament.sanitize import storable_text, unstorable_count
from dream_pipeline.tournament.scoring import DraftFacts, latency_penalty, penalties
from resources.fabric import BookMemoryRows, DraftRow, StateFabric
from resources.llm import Completion, LLMCallError, LLMEngine, LLMSession
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
    on_sent: Callable[[], None] | None = None,
) -> list[DraftResult]:
    """Draft in parallel (`asyncio.gather`); an agent whose call fails forfeits, the others go on.
    `on_sent` is called once every request is on its way (each task has run to its first wait).

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

    return await gather_sent((draft(agent) for agent in agents), on_sent)


@dataclass(frozen=True)
class Burst:
    """What one burst produced: every agent's result, the rows to store, the prompt they all got."""

    results: list[DraftResult]
    rows: list[DraftRow]
    prompt: BookContext
    retrieved: tuple[int, ...]  # the earlier chapters the memory retrieved for the prompt, best first
    context_ms: float
    embedding_error: str | None
    window: int | None  # the context window the requests were fitted into (None: unbounded)
    max_tokens: int  # every draft's cap: DREAM_MAX_TOKENS, or less when the window leaves less
    memory_mode: str = "vectors"  # "full_text" without an embedding engine


def compose_drafts(scope: EpochScope, fabric: StateFabric, llm: LLMEngine, *, session_key: str,
                   seed: int | None = None, on_sent: Callable[[], None] | None = None) -> Burst:
    """Draft, embed and score novelty for every agent of `scope`, storing nothing but the engine calls.

    Shared by the `drafts` asset (the canon, `session_key` = the epoch) and a re-roll (an alternate
    world: its own key and seed). Raises EmbeddingDimensionError on a dimension mismatch, ContextTooSmall
    when no draft prompt fits the epoch's context window. `on_sent`: see `run_burst`.
    """
    started = time.perf_counter()
    # a rerun, replay or re-roll reads the chapters the epoch's first run retrieved; an epoch committed
    # before they were recorded was built from an exact search
    epoch = scope.epoch
    legacy = epoch.context_chapters is None and epoch.status == "committed"
    full_text = llm.memory_mode(epoch) == "full_text"
    if scope.book.canon_memory:
        memory = fabric.book_memory(scope.book.name, scope.number, top_k=llm.context_top_k,
                                    outline=OUTLINE_CHAPTERS, retrieved=epoch.context_chapters,
                                    scan="exact" if legacy else "auto", full_text=full_text)
    else:  # a domain that poses its own task (CodeRepair): no memory of the canon, no novelty rule
        memory = BookMemoryRows(scope.number, None, None, (), ())
    retrieved = tuple(chapter.chapter_number for chapter, _ in memory.related)
    window = epoch_window(epoch, served=llm.served_context)
    prompt, max_tokens = fit_draft_prompt(lambda budget: scope.book.burst_context(memory, budget), scope.agents,
                                          llm.context_tokens, llm.max_tokens, window, scope.book)
    context_ms = (time.perf_counter() - started) * 1000

    async def burst() -> tuple[list[DraftResult], list[list[float]] | None, str | None, list]:
        async with llm.session(session_key, seed=seed) as session:
            results = await run_burst(
                session, scope.agents, lambda a: scope.book.burst_messages(a, prompt), max_tokens, on_sent
            )
            texts = [r.completion.text for r in results if r.completion]
            if not session.embeddings_available:  # no embedding engine: memory and novelty go by the text
                return results, None, None, session.calls
            try:
                vectors = await session.embed(texts, purpose="draft_embedding") if texts else []
            except LLMCallError as exc:
                return results, None, str(exc), session.calls
            return results, vectors, None, session.calls

    results, vectors, embedding_error, calls = asyncio.run(burst())
    fabric.record_llm_calls(calls)
    written = [r for r in results if r.completion is not None]
    if len(written) < 2:
        return Burst(results, [], prompt, retrieved, context_ms, embedding_error, window, max_tokens,
                     "full_text" if full_text else "vectors")
    if vectors:
        fabric.check_dimensions(vectors, "draft embeddings")
    names, texts = [r.agent.name for r in written], [r.completion.text for r in written]
    if not scope.book.canon_memory:
        canon, peers = [None] * len(written), (peer_similarities(names, vectors) if vectors else {})
    elif vectors:
        canon = fabric.canon_similarity(scope.book.name, scope.number, vectors)
        peers = peer_similarities(names, vectors)
    elif full_text:  # no embedding engine: the same rules on word shingles (docs/memory.md)
        canon = [max((lexical_similarity(text, c) for c in fabric.canon_texts_like(scope.book.name, scope.number,
                                                                                  text)), default=None)
                 for text in texts]
        peers = lexical_peer_similarities(names, texts)
    else:
        canon, peers = [None] * len(written), {}

    fastest = min(r.completion.latency_s for r in written)
    # truncation and latency (tournament/scoring.py), then the novelty rule of the book's memory
    base = penalties([DraftFacts(r.agent.name, r.truncated, r.completion.latency_s) for r in written])
    rows = []
    for i, r in enumerate(written):
        lat_pen = latency_penalty(r.completion.latency_s, fastest)
        nov_pen = novelty_penalty(canon[i])
        peer = peers.get(r.agent.name)
        rows.append(
            DraftRow(
                agent_id=r.agent.instance_id, agent_name=r.agent.name, text=r.completion.text,
                prompt_tokens=r.completion.prompt_tokens, completion_tokens=r.completion.completion_tokens,
                finish_reason=r.completion.finish_reason, truncated=r.truncated, latency_s=r.completion.latency_s,
                latency_penalty=lat_pen,
                penalty=base[r.agent.name] + nov_pen,
                embedding=vectors[i] if vectors else None,
                canon_similarity=canon[i], novelty_penalty=nov_pen,
                peer_similarity=peer.similarity if peer else None,
                near_duplicate_of=peer.closest if peer and peer.near_duplicate else None,
            )
        )
    return Burst(results, rows, prompt, retrieved, context_ms, embedding_error, window, max_tokens,
                 "full_text" if full_text else "vectors")
