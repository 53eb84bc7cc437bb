"""Collapse and Reap as Dagster ops: the winning draft becomes the next chapter (epoch/collapse.py), then the
Reaper op replaces the loser (epoch/reaper.py).

The chapter asset is a graph of two ops so that the replacement happens in the same run as the
epoch (no run sits between two epochs) and so that the epoch's commit, the new roster and the
`dream_epochs` notification land in one transaction (`StateFabric.reap`).
"""

import dagster as dg

from dream_pipeline import fingerprint
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.defs.metadata import chapter_metadata, replay_failure, verify_replay
from dream_pipeline.epoch.collapse import NoWinnerYet, chapter_row, update_summary
from dream_pipeline.epoch.reaper import reap_epoch
from dream_pipeline.epoch.replay import ReplayMismatch, is_replay
from dream_pipeline.epoch.scope import load_scope
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


@dg.op(ins={"ranked": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def commit_chapter(context: dg.OpExecutionContext, fabric: StateFabric, llm: LLMEngine) -> None:
    """Collapse: write the epoch winner's draft to the canon (a rerun rewrites the same chapter), then
    bring the book's rolling summary up to date with it (one recorded engine call)."""
    scope = load_scope(fabric, context.partition_key)
    try:
        row = chapter_row(fabric, scope)
    except NoWinnerYet as exc:
        raise dg.Failure(str(exc)) from None
    if is_replay(scope.epoch):  # a committed epoch: compare with the canon, write nothing (summary included)
        verify_replay(fabric, scope.epoch, {"chapter": fingerprint.chapter_facts(row)})
        context.log.info(f"chapter {scope.number} verified against its commit")
        return
    fabric.commit_chapter(scope.epoch.epoch_id, scope.book.name, row)
    author = next(a.name for a in scope.agents if a.instance_id == row.agent_id)
    context.log.info(f"chapter {scope.number} committed: written by the {author}")
    warning = update_summary(fabric, llm, scope)
    if warning:
        context.log.warning(warning)


@dg.op(ins={"committed": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def reaper(context: dg.OpExecutionContext, fabric: StateFabric) -> None:
    """Reap: retire the eliminated agent (record and lineage kept), seat its replacement, commit the epoch."""
    scope = load_scope(fabric, context.partition_key)
    try:
        reaped = reap_epoch(fabric, scope)
    except ReplayMismatch as mismatch:
        raise replay_failure(mismatch) from None
    outcome, replacement = reaped.outcome, reaped.replacement
    if outcome.already_done:
        context.log.info(f"{scope.key} was already committed; nothing to reap")
    elif outcome.retired:
        context.log.info(f"the Reaper retired {outcome.retired}; {outcome.replacement} joins the tournament")
    chapter = fabric.chapter_for_epoch(scope.epoch.epoch_id)
    lineage = (
        f"{replacement.name} ({replacement.lineage.origin}) replaces {outcome.retired}"
        if outcome.replacement and replacement else ""
    )
    context.add_output_metadata(
        {
            **chapter_metadata(chapter, scope.book),
            "words": len(chapter.text.split()),
            "margin": chapter.margin,
            "eliminated": outcome.retired or "",
            "replacement": lineage,
            **reaped.verified,
            **({} if outcome.already_done else epoch_profile(fabric, scope.key)),
        }
    )


@dg.graph_asset(
    partitions_def=epochs_partitions,
    group_name="epoch",
    ins={"elo_rankings": dg.AssetIn("elo_rankings", dagster_type=dg.Nothing)},
    kinds={"postgres"},
)
def chapter(elo_rankings):
    """The epoch's chapter in the canon, and the roster the next epoch starts with."""
    return reaper(commit_chapter(elo_rankings))
