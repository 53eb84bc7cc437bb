"""What the loop needs to know from Dagster's own records: live runs per epoch, PHASE completion."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

LOOP_TAG = "dream/loop"  # on runs the loop sensor requests: the run queue limits them, PHASE gates them
PARTITION_TAG = "dagster/partition"
PHASE_JOB = "phase_job"
LIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def live_runs(instance: dg.DagsterInstance, epoch_key: str, *, exclude: str | None = None) -> list[dg.DagsterRun]:
    runs = instance.get_runs(dg.RunsFilter(tags={PARTITION_TAG: epoch_key}, statuses=LIVE_STATUSES))
    return [r for r in runs if r.run_id != exclude]


def run_is_live(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


def last_phase_success(instance: dg.DagsterInstance) -> datetime | None:
    """When the PHASE job last completed successfully: the signal that lets the loop resume early."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=PHASE_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    if not records or records[0].end_time is None:
        return None
    return datetime.fromtimestamp(records[0].end_time, tz=UTC)
