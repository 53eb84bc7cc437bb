"""The Burst as an asset: parallel drafts under the token cap, with penalties and embeddings."""


import asyncio

import dagster as dg

from dream_pipeline.assets.common import load_scope, markdown_table
from dream_pipeline.assets.roster import roster
from dream_pipeline.burst import DraftResult, run_burst
from dream_pipeline.partitions import epochs_partitions
from dream_pipeline.prompts import OUTLINE_CHAPTERS, draft_messages
from dream_pipeline.tournament import TRUNCATION_PENALTY, latency_penalty
from resources.fabric import DraftRow, StateFabric
from resources.llm import LLMCallError, LLMEngine


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", deps=[roster], kinds={"openai", "postgres"})
def drafts(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine) -> dg.MaterializeResult:
    """Every rostered agent's draft of the next chapter; truncated drafts carry the −5 penalty."""
    scope = load_scope(fabric, context.partition_key)
    previous = fabric.chapters(scope.book.name, limit=OUTLINE_CHAPTERS, before_number=scope.number)

    async def burst() -> tuple[list[DraftResult], list[list[float]] | None, list]:
        async with llm.session(scope.key) as session:
            results = await run_burst(
                session, scope.agents, lambda a: draft_messages(a, scope.book, scope.number, previous), llm.max_tokens
            )
            texts = [r.completion.text for r in results if r.completion]
            try:
                vectors = await session.embed(texts, purpose="draft_embedding") if texts else []
            except LLMCallError as exc:
                context.log.warning(f"drafts stored without embeddings: {exc}")
                vectors = None
            return results, vectors, session.calls

    results, vectors, calls = asyncio.run(burst())
    fabric.record_llm_calls(calls)
    written = [r for r in results if r.completion is not None]
    for r in results:
        if r.forfeit_reason:
            context.log.warning(f"{r.agent.name} forfeits {scope.key}: {r.forfeit_reason}")
    if len(written) < 2:
        fabric.mark_epoch_failed(scope.key, f"only {len(written)} drafts")
        raise dg.Failure(f"{scope.key}: only {len(written)} of {len(results)} agents produced a draft")

    fastest = min(r.completion.latency_s for r in written)
    rows = []
    for i, r in enumerate(written):
        lat_pen = latency_penalty(r.completion.latency_s, fastest)
        rows.append(
            DraftRow(
                agent_id=r.agent.instance_id, agent_name=r.agent.name, text=r.completion.text,
                prompt_tokens=r.completion.prompt_tokens, completion_tokens=r.completion.completion_tokens,
                finish_reason=r.completion.finish_reason, truncated=r.truncated, latency_s=r.completion.latency_s,
                latency_penalty=lat_pen, penalty=lat_pen + (TRUNCATION_PENALTY if r.truncated else 0.0),
                embedding=vectors[i] if vectors else None,
            )
        )
    fabric.write_drafts(scope.epoch.epoch_id, rows)
    for r in results:
        c = r.completion
        r.agent.record_telemetry(
            "draft", epoch_key=scope.key, forfeit=r.forfeit_reason, truncated=r.truncated,
            completion_tokens=c.completion_tokens if c else 0, latency_s=c.latency_s if c else None,
        )
    fabric.record_telemetry([e for r in results for e in r.agent.drain_telemetry()])

    table = [
        {"agent": d.agent_name, "tokens": d.completion_tokens, "truncated": d.truncated,
         "latency_s": d.latency_s, "penalty": d.penalty}
        for d in rows
    ]
    return dg.MaterializeResult(
        metadata={
            "drafts": len(rows),
            "forfeits": len(results) - len(rows),
            "truncated": sum(d.truncated for d in rows),
            "max_tokens": llm.max_tokens,
            "completion_tokens": sum(d.completion_tokens for d in rows),
            "drafts_table": dg.MetadataValue.md(markdown_table(table, floatfmt=".2f")),
        }
    )
