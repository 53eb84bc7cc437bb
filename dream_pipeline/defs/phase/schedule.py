"""The PHASE schedule: opens the nightly window by running the PHASE job at its start."""

import dagster as dg

from dream_pipeline.defs.phase.job import phase_job
from dream_pipeline.defs.phase.window import phase_window_from_env

_window = phase_window_from_env()

phase_schedule = dg.ScheduleDefinition(
    name="phase_schedule",
    job=phase_job,
    cron_schedule=f"{_window.start.minute} {_window.start.hour} * * *",
    execution_timezone=_window.timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs the PHASE job when the window opens; the loop pauses until it completes or the window ends.",
)
