"""The epoch job: one run materializes one `epochs` partition, Reaper included."""

from __future__ import annotations

import dagster as dg

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epochs_partitions

epoch_job = dg.define_asset_job(
    "epoch_job",
    selection=dg.AssetSelection.assets(*epoch_assets),
    partitions_def=epochs_partitions,
    # the steps are I/O-bound and async inside; the multiprocess executor costs ~3 s per step
    executor_def=dg.in_process_executor,
    description="One epoch of the tournament: roster → drafts → peer_votes → elo_rankings → chapter (+ Reaper).",
)
