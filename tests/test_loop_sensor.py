"""The loop's own code on a real Dagster instance with real runs: the sensor body (snapshot, failures,
cursor), the failure sensor on any job, and the restart after a stopped `dream start`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import psutil
import pytest
from dagster._daemon.types import DaemonHeartbeat

from dream_pipeline.cli.status import render_status
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.jobs import epoch_job
from dream_pipeline.defs.loop.loop_state import (
    LOOP_TAG,
    PARTITION_TAG,
    WORKER_TAG,
    cancel_runs,
    resume_orphaned_runs,
    stop_run_workers,
)
from dream_pipeline.defs.loop.sensors import dream_loop_sensor, epoch_failure_sensor
from resources.llm import LLMEngine


@pytest.fixture(autouse=True)
def phase_far_away(monkeypatch, tmp_path):
    far = datetime.now(UTC) + timedelta(hours=12)
    monkeypatch.setenv("DREAM_PHASE_START", far.strftime("%H:%M"))
    monkeypatch.setenv("DREAM_PHASE_END", (far + timedelta(minutes=1)).strftime("%H:%M"))
    monkeypatch.setenv("DREAM_PHASE_TZ", "UTC")
    monkeypatch.delenv("DREAM_LOOP_STAGING_DEPTH", raising=False)
    # the loop's mechanics on one book (test_experiments.py: the shipped file's domains taking turns)
    book_only = tmp_path / "experiments.yaml"
    book_only.write_text("experiments:\n  - book: space_time\n", encoding="utf-8")
    monkeypatch.setenv("DREAM_EXPERIMENTS", str(book_only))


def _tick(instance, fabric, cursor=None):
    return dream_loop_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"fabric": fabric}))


def _requested(result) -> list[str]:
    assert isinstance(result, dg.SensorResult), result
    return [r.partition_key for r in result.run_requests]


def _epoch_job(fabric, llm):
    return dg.Definitions(assets=epoch_assets, jobs=[epoch_job],
                          resources={"fabric": fabric, "llm": llm}).resolve_job_def("epoch_job")


def _dead_worker() -> str:
    """The identity of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}:12345.000"


def _left_run(instance, fabric, llm, key: str, status: dg.DagsterRunStatus, worker: str | None = None):
    tags = {PARTITION_TAG: key, LOOP_TAG: "epoch", **({WORKER_TAG: worker} if worker else {})}
    return instance.create_run_for_job(_epoch_job(fabric, llm), status=status, tags=tags)


def test_a_cold_start_stages_the_first_epochs_and_moves_the_cursor(instance, fabric):
    result = _tick(instance, fabric)
    assert _requested(result) == [f"space_time-0000{n}" for n in (1, 2, 3, 4, 5)]  # the default depth, 5
    assert [r.run_key for r in result.run_requests][0] == "space_time-00001#1"
    assert all(r.tags[LOOP_TAG] == "epoch" for r in result.run_requests)
    assert result.cursor == "space_time-00005"
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == _requested(result)


def test_the_sensor_reads_committed_epochs_live_runs_and_failures_from_the_instance(
        run_epoch, instance, fabric, llm):
    assert run_epoch(1).success
    assert _requested(_tick(instance, fabric)) == [f"space_time-0000{n}" for n in (2, 3, 4, 5, 6)]
    running = _left_run(instance, fabric, llm, "space_time-00002", dg.DagsterRunStatus.STARTED,
                        worker=f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.3f}")
    assert _requested(_tick(instance, fabric, cursor="space_time-00002")) == [
        "space_time-00003", "space_time-00004", "space_time-00005", "space_time-00006"]
    instance.report_run_failed(running, "engine down")
    skip = _tick(instance, fabric)
    assert isinstance(skip, dg.SkipReason)
    assert skip.skip_message.startswith("space_time-00002 failed 1 time(s); retrying in")


def test_a_run_whose_worker_was_killed_is_failed_and_its_epoch_requested_again(run_epoch, instance, fabric, llm):
    assert run_epoch(1).success
    killed = _left_run(instance, fabric, llm, "space_time-00002", dg.DagsterRunStatus.STARTED, worker=_dead_worker())
    result = _tick(instance, fabric)
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert isinstance(result, dg.SkipReason) and "space_time-00002 failed 1 time(s)" in result.skip_message


def test_a_start_resumes_at_once_the_runs_a_stopped_process_left_behind(run_epoch, instance, fabric, llm):
    assert run_epoch(1).success
    started = _left_run(instance, fabric, llm, "space_time-00002", dg.DagsterRunStatus.STARTED, worker=_dead_worker())
    starting = _left_run(instance, fabric, llm, "space_time-00003", dg.DagsterRunStatus.STARTING)
    status = render_status(fabric, instance=instance)
    assert "running space_time" not in status  # never "running" about a run whose process is gone
    assert "interrupted (process gone, resumed by the next start): space_time-00002, space_time-00003" in status
    resumed = resume_orphaned_runs(instance, time.time())
    assert {r.run_id for r in resumed} == {started.run_id, starting.run_id}
    for run in (started, starting):
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    # the first tick after the start requests them again: no backoff, no start timeout
    assert _requested(_tick(instance, fabric))[:2] == ["space_time-00002", "space_time-00003"]


def test_a_live_daemon_keeps_runs_whose_process_is_unknown(instance, fabric, llm):
    starting = _left_run(instance, fabric, llm, "space_time-00001", dg.DagsterRunStatus.STARTING)
    instance.add_daemon_heartbeat(DaemonHeartbeat(timestamp=time.time(), daemon_type="SENSOR", daemon_id="other"))
    assert resume_orphaned_runs(instance, time.time()) == []
    assert instance.get_run_by_id(starting.run_id).status == dg.DagsterRunStatus.STARTING


def test_a_failed_run_of_any_job_on_an_epoch_is_recorded_on_it(run_epoch, instance, fabric):
    assert run_epoch(1).success
    key = "space_time-00001"
    epoch = fabric.epoch(key)
    with fabric.connection() as conn:  # an altered record: the replay (the UI's asset job) fails
        conn.execute("UPDATE peer_votes SET rationale = 'altered' WHERE epoch_id = %s", (epoch.epoch_id,))
    before = fabric.canon_snapshot()
    unreachable = LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=900, max_retries=0, timeout_s=2,
                            fabric=fabric)
    replay = dg.materialize(epoch_assets, instance=instance, partition_key=key, raise_on_error=False,
                            resources={"fabric": fabric, "llm": unreachable})
    assert not replay.success
    run = instance.get_run_by_id(replay.run_id)
    failure = next(e for e in replay.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="epoch_failure_sensor", dagster_instance=instance, dagster_run=run, dagster_event=failure,
        resources={"fabric": fabric},
    ).for_run_failure()
    epoch_failure_sensor(context)
    [recorded] = fabric.run_failures(key)
    assert recorded["job"] == run.job_name and recorded["run_id"] == run.run_id and recorded["status"] == "committed"
    assert fabric.canon_snapshot() == before  # recorded beside the canon, not in it


def test_a_stop_kills_the_run_workers_and_ends_every_live_run_as_canceled(instance, fabric, llm):
    """What Ctrl-C of `dream start` does before it stops the services: no run is left live or failed."""
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        identity = f"{socket.gethostname()}:{worker.pid}:{psutil.Process(worker.pid).create_time():.3f}"
        running = _left_run(instance, fabric, llm, "space_time-00001", dg.DagsterRunStatus.STARTED, worker=identity)
        staged = _left_run(instance, fabric, llm, "space_time-00002", dg.DagsterRunStatus.NOT_STARTED)
        live = stop_run_workers(instance)
        assert worker.wait(timeout=10) == -9
        cancel_runs(instance, live, "stopped")
    finally:
        worker.kill()
    assert {r.run_id for r in live} == {running.run_id, staged.run_id}
    for run in (running, staged):
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
