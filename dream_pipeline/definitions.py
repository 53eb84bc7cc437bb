"""Everything Dagster loads: the epoch assets, the epoch job, the loop sensor, the resources."""

from __future__ import annotations

import dagster as dg

from dream_pipeline.assets import epoch_assets
from dream_pipeline.jobs import epoch_job
from dream_pipeline.settings import fabric_from_env, llm_from_env
from sensors import next_epoch_sensor

defs = dg.Definitions(
    assets=epoch_assets,
    jobs=[epoch_job],
    sensors=[next_epoch_sensor],
    resources={"fabric": fabric_from_env(), "llm": llm_from_env()},
)
