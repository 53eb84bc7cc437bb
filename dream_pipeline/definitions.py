"""Everything Dagster loads: the epoch assets and checks, the jobs (epoch, PHASE, re-roll, promotion),
the loop sensors, the PHASE schedule, the resources."""

import dagster as dg

from dream_pipeline.config.settings import fabric_from_env, llm_from_env
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.checks import epoch_checks
from dream_pipeline.defs.epoch.jobs import epoch_job
from dream_pipeline.defs.loop.sensors import dream_loop_sensor, epoch_failure_sensor
from dream_pipeline.defs.phase.job import phase_job
from dream_pipeline.defs.phase.schedule import phase_schedule
from dream_pipeline.defs.worlds.jobs import promote_job, reroll_job

fabric = fabric_from_env()

defs = dg.Definitions(
    assets=epoch_assets,
    asset_checks=epoch_checks,
    jobs=[epoch_job, phase_job, reroll_job, promote_job],
    sensors=[dream_loop_sensor, epoch_failure_sensor],
    schedules=[phase_schedule],
    resources={"fabric": fabric, "llm": llm_from_env(fabric)},
    # every job, the UI's implicit asset job included: the steps are I/O-bound and async inside, and the
    # multiprocess executor costs a process (seconds of CPU) per step
    executor=dg.in_process_executor,
)
