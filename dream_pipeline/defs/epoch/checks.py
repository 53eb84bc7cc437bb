"""Asset checks: the tournament's invariants, evaluated in every epoch run on that epoch's rows.

They run last in the run (the lowest step priority; the epoch job's executor runs one step at a time,
highest priority first): after the Reaper has committed and released the next epoch, so checking an
epoch never delays its commit or its successor."""

import dagster as dg

from dream_pipeline.defs.epoch.assets.chapter import CHAPTER
from dream_pipeline.defs.epoch.assets.drafts import DRAFTS
from dream_pipeline.defs.epoch.assets.peer_votes import PEER_VOTES
from resources.fabric import StateFabric

AFTER_THE_REAPER = {"dagster/priority": "-1"}  # below the epoch's own steps (priority 0)


def _epoch_id(fabric: StateFabric, context: dg.AssetCheckExecutionContext):
    return fabric.epoch(context.partition_key).epoch_id


@dg.asset_check(asset=DRAFTS, op_tags=AFTER_THE_REAPER, description="Every rostered agent drafted (a forfeit is recorded with its reason).")
def every_agent_drafted(context: dg.AssetCheckExecutionContext, fabric: StateFabric) -> dg.AssetCheckResult:
    missing = fabric.forfeits(_epoch_id(fabric, context))
    return dg.AssetCheckResult(
        passed=not missing, severity=dg.AssetCheckSeverity.WARN, metadata={"forfeits": ", ".join(missing) or "none"}
    )


@dg.asset_check(asset=PEER_VOTES, op_tags=AFTER_THE_REAPER,
                description="Each voter rated exactly its assigned drafts (the review design), once each; no self-votes.")
def ballots_complete(context: dg.AssetCheckExecutionContext, fabric: StateFabric) -> dg.AssetCheckResult:
    report = fabric.integrity(_epoch_id(fabric, context))
    bad = {k: report[k] for k in ("self_votes", "incomplete_ballots", "orphan_votes")}
    return dg.AssetCheckResult(passed=not any(bad.values()), metadata=bad)


@dg.asset_check(asset=CHAPTER, op_tags=AFTER_THE_REAPER, description="Exactly one chapter for the committed epoch.")
def one_chapter_per_epoch(context: dg.AssetCheckExecutionContext, fabric: StateFabric) -> dg.AssetCheckResult:
    report = fabric.integrity(_epoch_id(fabric, context))
    bad = {k: report[k] for k in ("committed_without_chapter", "duplicate_chapters", "chapters_of_open_epochs")}
    return dg.AssetCheckResult(passed=not any(bad.values()), metadata=bad)


epoch_checks = [every_agent_drafted, ballots_complete, one_chapter_per_epoch]
