"""The PHASE job: the nightly integrity pass over the whole fabric, and a replay of the latest epoch.

Its successful completion is the signal that lets the loop resume before the window closes.
"""

import dagster as dg

from dream_pipeline.assets import epoch_assets
from dream_pipeline.experiments import enabled_books
from dream_pipeline.loop_state import PHASE_JOB
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
    """Re-materialize each book's latest committed epoch from its recorded calls; it must come out identical."""
    results = {}
    for book in enabled_books():
        epoch = fabric.latest_committed_epoch(book)
        if epoch is None:
            continue
        before = fabric.epoch_fingerprint(epoch.epoch_id)
        run = dg.materialize(
            epoch_assets, instance=context.instance, partition_key=epoch.epoch_key,
            resources={"fabric": fabric, "llm": llm}, tags={"dream/replay": "phase"},
        )
        after = fabric.epoch_fingerprint(epoch.epoch_id)
        results[epoch.epoch_key] = "identical" if run.success and before == after else "DIFFERENT"
    context.add_output_metadata({"replays": dg.MetadataValue.json(results)})
    if any(v != "identical" for v in results.values()):
        raise dg.Failure(f"a replay did not reproduce the committed epoch: {results}")


@dg.job(name=PHASE_JOB, description="Nightly PHASE: fabric integrity checks and a replay of the latest epoch.")
def phase_job():
    replay_latest_epochs(fabric_integrity())
