"""The PHASE job: the nightly integrity pass over the whole fabric, and a replay of the latest epoch.

Its successful completion is the signal that lets the loop resume before the window closes.
"""

import dagster as dg

from dream_pipeline.config.experiments import enabled_books
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.checks import epoch_checks
from dream_pipeline.defs.loop.loop_state import PHASE_JOB
from dream_pipeline.epoch.replay import VERIFYING_ASSETS
from resources.fabric import StateFabric
from resources.llm import LLMEngine


@dg.op(out=dg.Out(dg.Nothing))
def fabric_integrity(context: dg.OpExecutionContext, fabric: StateFabric) -> None:
    """Every invariant over every epoch: duplicates, orphans, chapters against committed epochs."""
    report = fabric.integrity()
    context.add_output_metadata({**report, "tables": dg.MetadataValue.json(fabric.table_counts())})
    broken = {k: v for k, v in report.items() if v}
    if broken:
        raise dg.Failure("fabric integrity violated", metadata=broken)


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def replay_latest_epochs(context: dg.OpExecutionContext, fabric: StateFabric, llm: LLMEngine) -> None:
    """Replay each book's latest committed epoch from its record, asset checks included: every step must
    verify against the fingerprint stored at its commit, and the canon must be left byte-identical."""
    results = {}
    for book in enabled_books():
        epoch = fabric.latest_committed_epoch(book)
        if epoch is None:
            continue
        before = fabric.canon_snapshot(epoch.epoch_id)
        run = dg.materialize(
            [*epoch_assets, *epoch_checks], instance=context.instance, partition_key=epoch.epoch_key,
            resources={"fabric": fabric, "llm": llm}, tags={"dream/replay": "phase"}, raise_on_error=False,
        )
        checks = [e.asset_check_evaluation_data for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        verified = {m.asset_key.to_user_string() for m in run.get_asset_materialization_events()
                    if m.materialization.metadata.get("replay") == dg.MetadataValue.text("verified")}
        unchanged = fabric.canon_snapshot(epoch.epoch_id) == before
        ok = run.success and unchanged and verified == set(VERIFYING_ASSETS) and all(c.passed for c in checks)
        results[epoch.epoch_key] = "verified" if ok else (
            f"MISMATCH ({len(verified)} of {len(VERIFYING_ASSETS)} steps verified, checks "
            f"{sum(c.passed for c in checks)}/{len(checks)} passed, canon {'unchanged' if unchanged else 'CHANGED'})"
        )
    context.add_output_metadata({"replays": dg.MetadataValue.json(results)})
    if any(v != "verified" for v in results.values()):
        raise dg.Failure(f"a replay did not verify against its commit: {results}")


@dg.job(name=PHASE_JOB, description="Nightly PHASE: fabric integrity checks and a replay of the latest epoch.")
def phase_job():
    replay_latest_epochs(fabric_integrity())
