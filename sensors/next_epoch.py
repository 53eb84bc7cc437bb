"""Chain epochs: when an epoch run succeeds, add the next `epochs` partition and request its run.

The run key is the partition key, so the same epoch is never requested twice. Inside the PHASE window
the sensor skips with the reason; the continuous loop (cold start, staging, resume) builds on this.
"""


from datetime import UTC, datetime

import dagster as dg

from dream_pipeline.jobs import epoch_job
from dream_pipeline.partitions import epoch_key, epochs_partitions, parse_epoch_key
from schedules.phase_window import PhaseWindow, phase_window_from_env


def plan_next_epoch(finished_key: str, now: datetime, window: PhaseWindow) -> dg.SensorResult | dg.SkipReason:
    """The decision, apart from Dagster's context so it can be tested with any clock."""
    book, number = parse_epoch_key(finished_key)
    if window.contains(now):
        return dg.SkipReason(
            f"PHASE window {window.start:%H:%M}-{window.end:%H:%M} {window.timezone} is open: "
            f"no new epoch after {finished_key}"
        )
    next_key = epoch_key(book, number + 1)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=next_key, partition_key=next_key)],
        dynamic_partitions_requests=[epochs_partitions.build_add_request([next_key])],
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[epoch_job],
    request_job=epoch_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts the next epoch as soon as one succeeds (skips inside the PHASE window).",
)
def next_epoch_sensor(context: dg.RunStatusSensorContext):
    finished = context.dagster_run.tags.get("dagster/partition")
    if not finished:
        return dg.SkipReason("the finished run has no epoch partition")
    return plan_next_epoch(finished, datetime.now(UTC), phase_window_from_env())
