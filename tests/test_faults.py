"""Faults the loop must survive: a faulty engine, a killed run, a resumed epoch. Real processes only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from dream_pipeline.defs.epoch.assets import epoch_assets, roster_drafts_and_votes
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.defs.loop.loop_state import WORKER_TAG, worker_identity, worker_is_gone
from offline_engine import EngineConfig, running_engine
from resources.fabric import StateFabric
from resources.llm import LLMEngine
from tests.fabric_helpers import alive_agents, epoch_fingerprint

KEY = epoch_key("space_time", 1)


def _integrity_is_clean(fabric: StateFabric) -> None:
    assert fabric.integrity() == dict.fromkeys(fabric.integrity(), 0)


def test_an_epoch_completes_through_a_faulty_engine(fabric, instance):
    faults = EngineConfig(seed=3, fault_rate=0.3, fault_kinds=("429", "500", "503", "empty", "malformed_json"))
    with running_engine(faults) as url:
        llm = LLMEngine(base_url=url, max_tokens=600, max_retries=4, timeout_s=20, fabric=fabric)
        instance.add_dynamic_partitions("epochs", [KEY])
        result = dg.materialize(epoch_assets, instance=instance, partition_key=KEY,
                                resources={"fabric": fabric, "llm": llm})
    assert result.success
    epoch = fabric.epoch(KEY)
    assert epoch.status == "committed"
    written = {d.agent_name for d in fabric.drafts(epoch.epoch_id)}
    forfeits = set(fabric.forfeits(epoch.epoch_id))
    assert written | forfeits == {a.name for a in fabric.agents(epoch.active_agent_ids)}
    voters = {v.voter_agent for v in fabric.votes(epoch.epoch_id)}
    abstained = {a.voter_agent for a in fabric.abstentions(epoch.epoch_id)}
    assert voters | abstained == written and not voters & abstained
    assert all(a.reason for a in fabric.abstentions(epoch.epoch_id))  # every abstention says why
    _integrity_is_clean(fabric)


def test_an_interrupted_epoch_reuses_what_it_already_paid_for(fabric, llm, instance):
    instance.add_dynamic_partitions("epochs", [KEY])
    partial = dg.materialize([roster_drafts_and_votes], instance=instance, partition_key=KEY, selection=["roster", "drafts"],
                             resources={"fabric": fabric, "llm": llm})
    assert partial.success
    before = {d.agent_name: d.text for d in fabric.drafts(fabric.epoch(KEY).epoch_id)}
    calls = fabric.table_counts()["llm_calls"]
    assert dg.materialize(epoch_assets, instance=instance, partition_key=KEY,
                          resources={"fabric": fabric, "llm": llm}).success
    after = {d.agent_name: d.text for d in fabric.drafts(fabric.epoch(KEY).epoch_id)}
    assert after == before
    with fabric.connection() as conn:
        draft_calls = conn.execute(
            "SELECT count(*) AS n FROM llm_calls WHERE epoch_key = %s AND purpose = 'draft'", (KEY,)
        ).fetchone()["n"]
    assert draft_calls == len(before)  # the second run asked the engine for no draft again
    assert fabric.table_counts()["llm_calls"] > calls  # but it did ask for the ballots
    _integrity_is_clean(fabric)


def test_an_epoch_that_could_not_be_ranked_is_rolled_afresh(fabric, llm, instance):
    """Its recorded answers would fail it the same way forever: the retry asks again, with a new seed
    that the record keeps, so the epoch still replays bit for bit once it has committed."""
    garbling = EngineConfig(seed=3, fault_rate=1.0, fault_kinds=("malformed_json",))  # every ballot breaks
    instance.add_dynamic_partitions("epochs", [KEY])
    with running_engine(garbling) as url:
        # forced: left to itself, the probe would fall back to prompt-only ballots, which this engine leaves whole
        garbled = LLMEngine(base_url=url, max_tokens=600, max_retries=0, timeout_s=20, fabric=fabric,
                            vote_format="json_schema")
        failed = dg.materialize(epoch_assets, instance=instance, partition_key=KEY,
                                resources={"fabric": fabric, "llm": garbled}, raise_on_error=False)
    assert not failed.success
    epoch = fabric.epoch(KEY)
    assert epoch.status == "failed" and epoch.world_seed is not None
    assert fabric.table_counts()["chapters"] == 0  # nothing half-committed

    assert dg.materialize(epoch_assets, instance=instance, partition_key=KEY,
                          resources={"fabric": fabric, "llm": llm}).success
    epoch = fabric.epoch(KEY)
    assert epoch.status == "committed" and fabric.votes(epoch.epoch_id)
    committed = epoch_fingerprint(fabric, epoch.epoch_id)
    unreachable = LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=llm.max_tokens, max_retries=0,
                            timeout_s=2, fabric=fabric)
    assert dg.materialize(epoch_assets, instance=instance, partition_key=KEY,
                          resources={"fabric": fabric, "llm": unreachable}).success
    assert epoch_fingerprint(fabric, epoch.epoch_id) == committed
    _integrity_is_clean(fabric)


def test_a_killed_worker_is_recognised():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        identity = worker_identity(sleeper.pid)
        run = dg.DagsterRun(job_name="epoch_job", run_id="r1", status=dg.DagsterRunStatus.STARTED,
                            tags={WORKER_TAG: identity})
        assert not worker_is_gone(run)
        sleeper.kill()
        sleeper.wait()
        assert worker_is_gone(run)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    elsewhere = dg.DagsterRun(job_name="epoch_job", run_id="r2", status=dg.DagsterRunStatus.STARTED,
                              tags={WORKER_TAG: "another-host:1:1.000"})
    assert not worker_is_gone(elsewhere)  # left to that host's launcher
    mine = dg.DagsterRun(job_name="epoch_job", run_id="r3", status=dg.DagsterRunStatus.STARTED,
                         tags={WORKER_TAG: worker_identity()})
    assert not worker_is_gone(mine)


def _dream(state: Path, *args: str, wait: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_"))}
    env.update(DREAM_STATE_DIR=str(state), DREAM_ENGINE_TTFT_S="0.2", DREAM_ENGINE_TOKENS_PER_S="300")
    command = [sys.executable, "-m", "dream_pipeline.cli", *args]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def killable_state(tmp_path_factory):
    state = tmp_path_factory.mktemp("dream_kill")
    yield state
    _dream(state, "engine", "stop")
    _dream(state, "db", "stop")


@pytest.mark.parametrize("moment", ["drafting", "voting"])
def test_a_run_killed_mid_epoch_is_finished_by_the_next_run(killable_state, moment):
    url = _dream(killable_state, "db", "url").stdout.strip()
    fabric = StateFabric(database_url=url)
    fabric.migrate()
    number = fabric.next_epoch_number("space_time")
    key = epoch_key("space_time", number)
    victim = _dream(killable_state, "run", "--epochs", "1", "--no-text", "--book", "space_time", wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            state = conn.execute(
                "SELECT e.status, (SELECT count(*) FROM drafts d WHERE d.epoch_id = e.epoch_id) AS drafts"
                " FROM simulation_epochs e WHERE epoch_key = %s", (key,)
            ).fetchone()
        if state and ((moment == "drafting" and state[1] == 0) or (moment == "voting" and state[1] > 0)):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"{key} never reached {moment}")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert fabric.epoch(key).status != "committed"

    survivor = _dream(killable_state, "run", "--epochs", "1", "--no-text", "--book", "space_time")
    assert survivor.returncode == 0, survivor.stderr
    epoch = fabric.epoch(key)
    assert epoch.status == "committed"
    assert [c.chapter_number for c in fabric.chapters("space_time")] == list(range(1, number + 1))
    _integrity_is_clean(fabric)  # no agent replaced twice (`duplicate_replacements`), among the rest
    assert len(alive_agents(fabric, "space_time")) == 5
