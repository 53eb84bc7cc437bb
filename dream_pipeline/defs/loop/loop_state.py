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


# a run still in one of these has a process working on it, or had one
IN_PROCESS_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
DAEMON_ALIVE_S = 30.0  # a daemon heartbeat younger than this: another daemon serves the instance


def run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[str, int, str | None] | None:
    """The (host, pid, start time) of the process executing `run`: the `dream/worker` tag (set by the
    opening step), else the pid Dagster's run worker reports when it starts (this host; no start time)."""
    worker = run.tags.get(WORKER_TAG)
    if worker:
        host, pid, started = worker.rsplit(":", 2)
        return host, int(pid), started
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        pid = event.engine_event_data.metadata.get("pid") if event and event.engine_event_data else None
        if pid is not None and str(pid.value).isdigit():
            return socket.gethostname(), int(pid.value), None
    return None


def process_is_gone(host: str, pid: int, started: str | None, since: float) -> bool | None:
    """Whether that process no longer exists (None: on another host, unknown). A pid reused by a
    process started after the run was created (`since`) is not the run's."""
    if host != socket.gethostname():
        return None
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    return f"{created:.3f}" != started if started else created > since + 1.0


def another_daemon_alive(instance: dg.DagsterInstance, now: float) -> bool:
    return any(now - beat.timestamp < DAEMON_ALIVE_S for beat in instance.get_daemon_heartbeats().values())


def orphaned_runs(instance: dg.DagsterInstance, *, daemon_alive: bool) -> list[dg.DagsterRun]:
    """Runs of this instance left STARTING, STARTED or CANCELING by a process that is gone (a stopped or
    killed `dream start`, a reboot). Without a live daemon a run whose process is unknown is orphaned
    too: every run worker of the default launcher is a child of the daemon's code server."""
    orphans = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROCESS_STATUSES)):
        run = record.dagster_run
        process = run_process(instance, run)
        gone = process_is_gone(*process, since=record.create_timestamp.timestamp()) if process else None
        if gone or (gone is None and not daemon_alive and (process is None or process[0] == socket.gethostname())):
            orphans.append(run)
    return orphans


def cancel_runs(instance: dg.DagsterInstance, runs: list[dg.DagsterRun], reason: str) -> None:
    """End runs as canceled (not failed: the loop resumes their epochs at once, without a retry backoff)."""
    for run in runs:
        latest = instance.get_run_by_id(run.run_id)
        if latest is not None and not latest.is_finished:
            instance.report_run_canceled(latest, message=reason)


def resume_orphaned_runs(instance: dg.DagsterInstance, now: float) -> list[dg.DagsterRun]:
    """At a start: end every run a gone process left STARTING/STARTED as canceled, so the loop sensor's
    first tick starts its epoch again (the fabric's claim passes to the new run) instead of waiting
    for Dagster's start timeout. Returns the runs it ended."""
    orphans = orphaned_runs(instance, daemon_alive=another_daemon_alive(instance, now))
    cancel_runs(instance, orphans, "its process is gone (a stopped or killed `dream start`); the loop resumes "
                                   "its epoch")
    return orphans


def stop_run_workers(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """SIGKILL the run workers of this host's in-process runs (a clean stop: the fabric's writes are
    transactions, and a killed worker prints no interruption trace) and return every live run, the
    queued ones included, for `cancel_runs`."""
    live = instance.get_runs(dg.RunsFilter(statuses=LIVE_STATUSES))
    for run in live:
        if run.status not in IN_PROCESS_STATUSES:
            continue
        process = run_process(instance, run)
        if process is None or process[0] != socket.gethostname():
            continue
        _, pid, started = process
        try:
            worker = psutil.Process(pid)
            if started is None or f"{worker.create_time():.3f}" == started:
                worker.kill()
        except psutil.NoSuchProcess:
            pass
    return live


def last_phase_success(instance: dg.DagsterInstance) -> datetime | None:
    """When the PHASE job last completed successfully: the signal that lets the loop resume early."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=PHASE_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    if not records or records[0].end_time is None:
        return None
    return datetime.fromtimestamp(records[0].end_time, tz=UTC)
