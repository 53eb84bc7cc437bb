"""Asset checks: the tournament's invariants, evaluated in every epoch run on that epoch's rows."""

import dagster as dg

from dream_pipeline.defs.epoch.assets.chapter import chapter
from dream_pipeline.defs.epoch.assets.drafts import drafts
from dream_pipeline.defs.epoch.assets.peer_votes import peer_votes
from resources.fabric import StateFabric


def _epoch_id(fabric: StateFabric, context: dg.AssetCheckExecutionContext):
    return fabric.epoch(context.partition_key).epoch_id


@dg.asset_check(asset=drafts, description="Every rostered agent drafted (a forfeit is recorded with its reason).")
def every_agent_drafted(context: dg.AssetCheckExecutionContext, fabric: StateFabric) -> dg.AssetCheckResult:
    missing = fabric.forfeits(_epoch_id(fabric, context))
    return dg.AssetCheckResult(
        passed=not missing, severity=dg.AssetCheckSeverity.WARN, metadata={"forfeits": ", ".join(missing) or "none"}
    )


@dg.asset_check(asset=peer_votes,
                description="Each voter rated exactly its assigned drafts (the review design), once each; no self-votes.")
def ballots_complete(context: dg.AssetCheckExecutionContext, fabric: StateFabric) -> dg.AssetCheckResult:
    report = fabric.integrity(_epoch_id(fabric, context))
    bad = {k: report[k] for k in ("self_votes", "incomplete_ballots", "orphan_votes")}
    return dg.AssetCheckResult(passed=not any(bad.values()), metadata=bad)


@dg.asset_check(asset=chapter, description="Exactly one chapter for the committed epoch.")
def one_chapter_per_epoch(context: dg.AssetCheckExecutionContext, fabric: StateFabric) -> dg.AssetCheckResult:
    report = fabric.integrity(_epoch_id(fabric, context))
    bad = {k: report[k] for k in ("committed_without_chapter", "duplicate_chapters", "chapters_of_open_epochs")}
    return dg.AssetCheckResult(passed=not any(bad.values()), metadata=bad)


epoch_checks = [every_agent_drafted, ballots_complete, one_chapter_per_epoch]
