"""The drafts' half of the opening step (`opening.py`), the Burst: parallel drafts under the token cap,
with penalties and embeddings.

Every agent gets the same bounded prompt built from the book's memory (summary, last chapter,
related chapters: docs/memory.md); each draft's similarity to the canon costs points when it mostly
repeats it, and drafts of the epoch that nearly coincide are flagged.
"""


from collections.abc import Callable

import dagster as dg

from dream_pipeline import fingerprint
from dream_pipeline.defs.metadata import markdown_table, verify_replay
from dream_pipeline.epoch.burst import compose_drafts
from dream_pipeline.epoch.candidate_tests import record_posed
from dream_pipeline.epoch.replay import is_replay
from dream_pipeline.epoch.scope import EpochScope
from dream_pipeline.tournament.review_design import ContextTooSmall
from resources.fabric import EmbeddingDimensionError, StateFabric
from resources.llm import LLMEngine

DRAFTS = dg.AssetKey("drafts")


def draft_epoch(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine, scope: EpochScope,
                on_sent: Callable[[], None] | None = None) -> dg.MaterializeResult:
    """Every rostered agent's draft of the next chapter; truncated drafts carry the −5 penalty.
    `on_sent` is called once the draft requests are on their way."""
    if is_replay(scope.epoch):  # a committed epoch: recompute from the record and compare, write nothing
        burst = compose_drafts(scope, fabric, llm, session_key=scope.key, on_sent=on_sent)
        for r in burst.results:
            if r.forfeit_reason:
                context.log.warning(f"{r.agent.name} forfeits {scope.key}: {r.forfeit_reason}")
        return dg.MaterializeResult(
            asset_key=DRAFTS,
            metadata=verify_replay(fabric, scope.epoch, {"drafts": fingerprint.draft_facts(burst.rows)})
        )
    try:
        burst = compose_drafts(scope, fabric, llm, session_key=scope.key, on_sent=on_sent)
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
    record_posed(fabric, scope)  # CodeRepair: the task this epoch posed
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
        asset_key=DRAFTS,
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
