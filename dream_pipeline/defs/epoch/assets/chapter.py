"""Collapse and Reap: the winning draft becomes the next chapter (epoch/collapse.py), the Reaper
replaces the loser (epoch/reaper.py) and the epoch commits.

In the same run as the epoch (no run sits between two epochs), in the closing step with the ranking
(`closing.py`): the epoch's commit, the new roster and the `dream_epochs` notification land in one
transaction (`StateFabric.reap`), after the rolling summary is written, so the next epoch always reads
this chapter's summary. The replacement is planned while the summary's engine call is out.
"""

from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg

from dream_pipeline import fingerprint
from dream_pipeline.defs.epoch.assets.elo_rankings import ELO_RANKINGS
from dream_pipeline.defs.metadata import chapter_metadata, replay_failure, verify_replay
from dream_pipeline.epoch.collapse import NoWinnerYet, Summary, chapter_row, summarize, write_summary
from dream_pipeline.epoch.reaper import plan_replacement, reap_epoch
from dream_pipeline.epoch.replay import ReplayMismatch, is_replay
from dream_pipeline.epoch.scope import EpochScope
from resources.fabric import StateFabric
from resources.fabric.connections import FABRIC_STATS
from resources.llm import LLMEngine


def epoch_profile(fabric: StateFabric, epoch_key: str) -> dict[str, float]:
    """Where the epoch's time went, from its barrier release to its commit (bench/epoch.py has the
    per-step profile): its wall and engine critical path, the rest as overhead, and this run process's
    fabric traffic and CPU time since the release."""
    timing = fabric.epoch_timing(epoch_key)
    if not timing or timing["released"] is None or timing["wall_s"] is None:
        return {}
    traffic = FABRIC_STATS.since_wall(timing["released"])
    return {
        "epoch_wall_s": round(timing["wall_s"], 3),
        "engine_critical_path_s": round(timing["critical_path_s"], 3),
        "epoch_overhead_s": round(timing["wall_s"] - timing["critical_path_s"], 3),
        "fabric_connects": traffic["connects"],
        "fabric_round_trips": traffic["queries"],
        "fabric_s": round(traffic["seconds"], 3),
        "run_cpu_s_since_release": round(traffic["cpu_s"], 3),
    }


CHAPTER = dg.AssetKey("chapter")
CHAPTER_SPEC = dg.AssetSpec(
    CHAPTER, deps=[ELO_RANKINGS], group_name="epoch", kinds={"postgres"},
    description="The epoch's chapter in the canon, and the roster the next epoch starts with. Collapse: the epoch "
                "winner's draft written to the canon (a rerun rewrites the same chapter) and the book's rolling "
                "summary brought up to date with it (one recorded engine call). Reap: the eliminated agent retired "
                "(record and lineage kept), its replacement seated, the epoch committed. A replay compares the "
                "chapter with the canon and writes nothing.",
)


def close_epoch(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine, scope: EpochScope,
                summary: Future[Summary] | None = None) -> dg.MaterializeResult:
    """Commit the ranked epoch's chapter, write the summary, reap, commit. `scope` holds the epoch as its
    ranking left it (winner and loser stored). `summary`: the summary's engine call, already out when the
    caller started it as soon as the winner was known; otherwise it goes out here, once the chapter is
    committed, while the Reaper plans the replacement."""
    try:
        row = chapter_row(fabric, scope)
    except NoWinnerYet as exc:
        raise dg.Failure(str(exc)) from None
    replacement = None
    if is_replay(scope.epoch):  # a committed epoch: compare with the canon, write nothing (summary included)
        verify_replay(fabric, scope.epoch, {"chapter": fingerprint.chapter_facts(row)})
        context.log.info(f"chapter {scope.number} verified against its commit")
    else:
        fabric.commit_chapter(scope.epoch.epoch_id, scope.book.name, row)
        author = next(a.name for a in scope.agents if a.instance_id == row.agent_id)
        context.log.info(f"chapter {scope.number} committed: written by the {author}")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="summary") as pool:
            if summary is None and scope.book.canon_memory:  # the row names its author: nothing to read back
                summary = pool.submit(summarize, fabric, llm, scope, row)
            replacement = plan_replacement(fabric, scope)
            warning = write_summary(fabric, scope, summary.result(), row) if summary is not None else None
        if warning:
            context.log.warning(warning)
    try:
        reaped = reap_epoch(fabric, scope, replacement)
    except ReplayMismatch as mismatch:
        raise replay_failure(mismatch) from None
    outcome, replacement = reaped.outcome, reaped.replacement
    if outcome.already_done:
        context.log.info(f"{scope.key} was already committed; nothing to reap")
    elif outcome.retired:
        context.log.info(f"the Reaper retired {outcome.retired}; {outcome.replacement} joins the tournament")
    written = fabric.chapter_for_epoch(scope.epoch.epoch_id)
    lineage = (
        f"{replacement.name} ({replacement.lineage.origin}) replaces {outcome.retired}"
        if outcome.replacement and replacement else ""
    )
    return dg.MaterializeResult(
        asset_key=CHAPTER,
        metadata={
            **chapter_metadata(written, scope.book),
            "words": len(written.text.split()),
            "margin": written.margin,
            "eliminated": outcome.retired or "",
            "replacement": lineage,
            **reaped.verified,
            **({} if outcome.already_done else epoch_profile(fabric, scope.key)),
        }
    )
