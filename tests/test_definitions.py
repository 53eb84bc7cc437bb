"""The Dagster definitions load, and the loop's sensor decides correctly for any clock."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, time
from pathlib import Path

import dagster as dg
import pytest

from dream_pipeline.definitions import defs
from dream_pipeline.defs.epoch.partitions import epoch_key, parse_epoch_key
from dream_pipeline.defs.phase.window import PhaseWindow

ROOT = Path(__file__).resolve().parents[1]


def test_the_full_definitions_resolve():
    job = defs.resolve_job_def("epoch_job")
    assert job.partitions_def is not None and job.partitions_def.name == "epochs"
    keys = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    assert keys == {"roster", "drafts", "peer_votes", "elo_rankings", "chapter"}
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("chapter")).parent_keys == {dg.AssetKey("elo_rankings")}
    assert graph.get(dg.AssetKey("drafts")).parent_keys == {dg.AssetKey("roster")}
    assert defs.resolve_sensor_def("dream_loop_sensor") is not None
    assert defs.resolve_sensor_def("epoch_failure_sensor") is not None
    assert defs.resolve_schedule_def("phase_schedule").cron_schedule == "0 3 * * *"
    assert defs.resolve_job_def("phase_job") is not None
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {"every_agent_drafted", "ballots_complete", "one_chapter_per_epoch"}


def test_the_workspace_loads_in_dagster_tooling():
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_epoch_keys_round_trip_and_reject_garbage():
    assert parse_epoch_key(epoch_key("space_time", 42)) == ("space_time", 42)
    for bad in ["space_time", "space_time-1", "Space-00001", "space_time-00001; DROP TABLE"]:
        with pytest.raises(ValueError):
            parse_epoch_key(bad)


def test_a_phase_window_can_cross_midnight_in_a_time_zone():
    window = PhaseWindow(start=time(23, 0), end=time(1, 0), timezone="Europe/Paris")
    assert window.contains(datetime(2026, 1, 1, 22, 30, tzinfo=UTC))  # 23:30 in Paris
    assert not window.contains(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    with pytest.raises(ValueError):
        window.contains(datetime(2026, 1, 1, 12, 0))


def test_every_job_runs_in_process_the_uis_implicit_asset_job_included():
    """A backfill from the asset graph runs the implicit asset job: with Dagster's default (multiprocess)
    executor that is one process per step, minutes per epoch on two cores."""
    jobs = [defs.resolve_implicit_global_asset_job_def(), *(defs.resolve_job_def(n) for n in
                                                            ("epoch_job", "phase_job", "reroll_job", "promote_job"))]
    assert {job.name: job.executor_def.name for job in jobs} == {
        "__ASSET_JOB": "in_process", "epoch_job": "in_process", "phase_job": "in_process",
        "reroll_job": "in_process", "promote_job": "in_process",
    }


@pytest.mark.parametrize(("setting", "status", "says"), [
    ("on", "RUNNING", "On by default here"),
    ("off", "STOPPED", "Off by default here (DREAM_LOOP=off: `dream ui` without --loop)"),
])
def test_the_loop_sensor_says_whether_it_runs_by_default(setting, status, says):
    code = ("from dream_pipeline.definitions import defs; s = defs.resolve_sensor_def('dream_loop_sensor'); "
            "print(s.default_status.name); print(s.description)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "DREAM_LOOP": setting})
    assert out.returncode == 0, out.stderr
    first, description = out.stdout.split("\n", 1)
    assert first == status
    assert says in description
