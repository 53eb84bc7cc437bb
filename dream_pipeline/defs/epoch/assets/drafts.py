"""The Burst as an asset: parallel drafts under the token cap, with penalties and embeddings.

Every agent gets the same bounded prompt built from the book's memory (summary, last chapter,
related chapters: docs/memory.md); each draft's similarity to the canon costs points when it mostly
repeats it, and drafts of the epoch that nearly coincide are flagged.
"""


import asyncio
import time
from dataclasses import dataclass

import dagster as dg

from dream_pipeline.defs.epoch.assets.roster import roster
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.domains.book.memory import (
    BookContext,
    lexical_peer_similarities,
    lexical_similarity,
    novelty_penalty,
    peer_similarities,
)
from dream_pipeline.domains.book.prompts import OUTLINE_CHAPTERS, draft_context, draft_messages
from dream_pipeline.epoch import canon
from dream_pipeline.epoch.burst import DraftResult, run_burst
from dream_pipeline.epoch.context_fit import epoch_window, fit_draft_prompt
from dream_pipeline.epoch.replay import is_replay, verify_replay
from dream_pipeline.epoch.scope import EpochScope, load_scope, markdown_table
from dream_pipeline.tournament import TRUNCATION_PENALTY, latency_penalty
from dream_pipeline.tournament.review_design import ContextTooSmall
from resources.fabric import DraftRow, EmbeddingDimensionError, StateFabric
from resources.llm import LLMCallError, LLMEngine


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
                   seed: int | None = None) -> Burst:
    """Draft, embed and score novelty for every agent of `scope`, storing nothing but the engine calls.

    Shared by the `drafts` asset (the canon, `session_key` = the epoch) and a re-roll (an alternate
    world: its own key and seed). Raises EmbeddingDimensionError on a dimension mismatch, ContextTooSmall
    when no draft prompt fits the epoch's context window.
    """
    started = time.perf_counter()
    # a rerun, replay or re-roll reads the chapters the epoch's first run retrieved; an epoch committed
    # before they were recorded was built from an exact search
    epoch = scope.epoch
    legacy = epoch.context_chapters is None and epoch.status == "committed"
    full_text = llm.memory_mode(epoch) == "full_text"
    memory = fabric.book_memory(scope.book.name, scope.number, top_k=llm.context_top_k, outline=OUTLINE_CHAPTERS,
                                retrieved=epoch.context_chapters, scan="exact" if legacy else "auto",
                                full_text=full_text)
    retrieved = tuple(chapter.chapter_number for chapter, _ in memory.related)
    window = epoch_window(epoch, served=llm.served_context)
    prompt, max_tokens = fit_draft_prompt(lambda budget: draft_context(scope.book, memory, budget), scope.agents,
                                          llm.context_tokens, llm.max_tokens, window)
    context_ms = (time.perf_counter() - started) * 1000

    async def burst() -> tuple[list[DraftResult], list[list[float]] | None, str | None, list]:
        async with llm.session(session_key, seed=seed) as session:
            results = await run_burst(
                session, scope.agents, lambda a: draft_messages(a, prompt), max_tokens
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
    if vectors:
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
                penalty=lat_pen + (TRUNCATION_PENALTY if r.truncated else 0.0) + nov_pen,
                embedding=vectors[i] if vectors else None,
                canon_similarity=canon[i], novelty_penalty=nov_pen,
                peer_similarity=peer.similarity if peer else None,
                near_duplicate_of=peer.closest if peer and peer.near_duplicate else None,
            )
        )
    return Burst(results, rows, prompt, retrieved, context_ms, embedding_error, window, max_tokens,
                 "full_text" if full_text else "vectors")


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", deps=[roster], kinds={"openai", "postgres"})
def drafts(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine) -> dg.MaterializeResult:
    """Every rostered agent's draft of the next chapter; truncated drafts carry the −5 penalty."""
    scope = load_scope(fabric, context.partition_key)
    if is_replay(scope.epoch):  # a committed epoch: recompute from the record and compare, write nothing
        burst = compose_drafts(scope, fabric, llm, session_key=scope.key)
        for r in burst.results:
            if r.forfeit_reason:
                context.log.warning(f"{r.agent.name} forfeits {scope.key}: {r.forfeit_reason}")
        return dg.MaterializeResult(
            metadata=verify_replay(fabric, scope.epoch, {"drafts": canon.draft_facts(burst.rows)})
        )
    try:
        burst = compose_drafts(scope, fabric, llm, session_key=scope.key)
    except (EmbeddingDimensionError, ContextTooSmall) as exc:
        fabric.mark_epoch_failed(scope.key, str(exc))
        raise dg.Failure(str(exc)) from exc
    results, rows, prompt = burst.results, burst.rows, burst.prompt
    if burst.embedding_error:
        context.log.warning(f"drafts stored without embeddings: {burst.embedding_error}")
    for r in results:
        if r.forfeit_reason:
            context.log.warning(f"{r.agent.name} forfeits {scope.key}: {r.forfeit_reason}")
    if len(rows) < 2:
        fabric.fail_for_a_new_roll(scope.key, f"only {len(rows)} drafts")
        raise dg.Failure(f"{scope.key}: only {len(rows)} of {len(results)} agents produced a draft")

    fabric.write_drafts(scope.epoch.epoch_id, rows, context_chapters=burst.retrieved, context_window=burst.window)
    by_agent = {d.agent_name: d for d in rows}
    for r in results:
        c, d = r.completion, by_agent.get(r.agent.name)
        r.agent.record_telemetry(
            "draft", epoch_key=scope.key, forfeit=r.forfeit_reason, truncated=r.truncated,
            completion_tokens=c.completion_tokens if c else 0, latency_s=c.latency_s if c else None,
            prompt_tokens=c.prompt_tokens if c else None, context=prompt.stats(),
            canon_similarity=d.canon_similarity if d else None, novelty_penalty=d.novelty_penalty if d else 0.0,
            peer_similarity=d.peer_similarity if d else None, near_duplicate_of=d.near_duplicate_of if d else None,
        )
    fabric.record_telemetry([e for r in results for e in r.agent.drain_telemetry()])

    table = [
        {"agent": d.agent_name, "tokens": d.completion_tokens, "prompt_tokens": d.prompt_tokens,
         "truncated": d.truncated, "latency_s": d.latency_s, "canon_sim": d.canon_similarity,
         "novelty_pen": d.novelty_penalty, "near_duplicate_of": d.near_duplicate_of or "", "penalty": d.penalty}
        for d in rows
    ]
    return dg.MaterializeResult(
        metadata={
            "drafts": len(rows),
            "memory_mode": burst.memory_mode,
            "forfeits": len(results) - len(rows),
            "truncated": sum(d.truncated for d in rows),
            "max_tokens": burst.max_tokens,
            "context_window": burst.window or "unbounded",
            "completion_tokens": sum(d.completion_tokens for d in rows),
            "context_tokens": prompt.tokens,
            "context_budget": prompt.budget,
            "prompt_tokens_max": max(d.prompt_tokens for d in rows),
            "context_related_chapters": ", ".join(map(str, prompt.related)) or "none",
            "context_summary_through": prompt.summary_through or 0,
            "context_trimmed": "; ".join(prompt.trimmed) or "nothing",
            "context_build_ms": round(burst.context_ms, 3),
            "max_canon_similarity": max((d.canon_similarity for d in rows if d.canon_similarity is not None),
                                        default=0.0),
            "novelty_penalized": sum(d.novelty_penalty > 0 for d in rows),
            "near_duplicates": ", ".join(f"{d.agent_name}~{d.near_duplicate_of}" for d in rows
                                         if d.near_duplicate_of) or "none",
            "drafts_table": dg.MetadataValue.md(markdown_table(table, floatfmt=".2f")),
        }
    )
