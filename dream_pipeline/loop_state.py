"""What the loop needs to know from Dagster's own records: live runs per epoch, PHASE completion."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import dagster as dg
import psutil

LOOP_TAG = "dream/loop"  # on runs the loop sensor requests: the run queue limits them, PHASE gates them
PARTITION_TAG = "dagster/partition"
PHASE_JOB = "phase_job"
WORKER_TAG = "dream/worker"  # host:pid:start-time of the process executing an epoch run
LIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def worker_identity(pid: int | None = None) -> str:
    """This process as `host:pid:start-time`, so a reused pid is not mistaken for it."""
    process = psutil.Process(pid or os.getpid())
    return f"{socket.gethostname()}:{process.pid}:{process.create_time():.3f}"


def worker_is_gone(run: dg.DagsterRun) -> bool:
    """A run whose recorded worker process on this host no longer exists (killed, machine rebooted).

    Dagster's default run launcher cannot check a worker's health, so without this a SIGKILLed run
    would stay STARTED forever and the loop would wait for it. Runs on other hosts (Kubernetes) are
    left to their launcher's own monitoring.
    """
    worker = run.tags.get(WORKER_TAG)
    if not worker or run.status != dg.DagsterRunStatus.STARTED:
        return False
    host, pid, started = worker.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        return f"{psutil.Process(int(pid)).create_time():.3f}" != started
    except (psutil.NoSuchProcess, ValueError):
        return True


def live_runs(instance: dg.DagsterInstance, epoch_key: str, *, exclude: str | None = None) -> list[dg.DagsterRun]:
    runs = instance.get_runs(dg.RunsFilter(tags={PARTITION_TAG: epoch_key}, statuses=LIVE_STATUSES))
    return [r for r in runs if r.run_id != exclude and not worker_is_gone(r)]


def run_is_live(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished and not worker_is_gone(run)


def fail_gone_runs(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> list[dg.DagsterRun]:
    """Mark runs whose worker is gone as failed (so the loop retries them); returns the others."""
    alive = []
    for run in runs:
        if worker_is_gone(run):
            instance.report_run_failed(run, f"run worker {run.tags[WORKER_TAG]} is gone (killed or rebooted)")
        else:
            alive.append(run)
    return alive


def last_phase_success(instance: dg.DagsterInstance) -> datetime | None:
    """When the PHASE job last completed successfully: the signal that lets the loop resume early."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=PHASE_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    if not records or records[0].end_time is None:
        return None
    return datetime.fromtimestamp(records[0].end_time, tz=UTC)
