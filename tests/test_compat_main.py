"""A fabric and a Dagster instance written by main at 9bd49ed (before issue 14 moved the code) keep working.

The fixture (tests/fixtures/main_9bd49ed/, written by its generate.py with that commit's code) is two
epochs of `space_time` run the way the loop runs them: the fabric as pg_dump wrote it, the Dagster instance
(runs, event logs, the `epochs` partitions) as it was left. The new code restores both and must:

- find the migrations it would apply unchanged (same names, same checksums: an edited migration fails);
- read the old runs as its own (job `epoch_job`, its run tags, partition keys it parses, asset keys it defines);
- continue the loop from the old sensor cursor with the next epoch, `space_time-00003`, and run it;
- replay the old epoch 1 and verify it against the fingerprint the old code stored at its commit: the same
  prompts, ballots, ratings, winner, loser and chapter, computed by the moved code from the old record.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dream_pipeline.definitions import defs
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.checks import epoch_checks
from dream_pipeline.defs.epoch.jobs import epoch_job
from dream_pipeline.defs.loop.loop_state import LOOP_TAG, PARTITION_TAG
from dream_pipeline.defs.loop.sensors import dream_loop_sensor
from resources import fabric as fabric_module
from resources.fabric import StateFabric
from resources.llm import LLMEngine
from resources.locations import sql_dir

FIXTURE = Path(__file__).parent / "fixtures" / "main_9bd49ed"
OLD_MIGRATIONS = [f"{n:03d}_{name}.sql" for n, name in [
    (1, "state_fabric"), (2, "ratings_uncertainty_and_flags"), (3, "book_memory"), (4, "deck_reader"),
    (5, "loop_claims"), (6, "alternate_worlds"), (7, "llm_call_start"), (8, "context_chapters"),
    (9, "engine_capabilities"), (10, "epoch_fingerprint"), (11, "search_and_downtime"), (12, "judgments"),
    (13, "review_design")]]


@pytest.fixture(autouse=True)
def loop_settings(monkeypatch, tmp_path_factory):
    far = datetime.now(UTC) + timedelta(hours=12)  # the PHASE window far from now
    monkeypatch.setenv("DREAM_PHASE_START", far.strftime("%H:%M"))
    monkeypatch.setenv("DREAM_PHASE_END", (far + timedelta(minutes=1)).strftime("%H:%M"))
    monkeypatch.setenv("DREAM_PHASE_TZ", "UTC")
    monkeypatch.setenv("DREAM_LOOP_STAGING_DEPTH", "1")
    # main at 9bd49ed ran one book: its loop continues with that book alone
    book_only = tmp_path_factory.mktemp("experiments") / "experiments.yaml"
    book_only.write_text("experiments:\n  - book: space_time\n", encoding="utf-8")
    monkeypatch.setenv("DREAM_EXPERIMENTS", str(book_only))


@pytest.fixture
def old_fabric(database_url: str):
    """The fabric main wrote, restored into a database of its own (dropped afterwards)."""
    name = f"dream_compat_{os.getpid()}"
    server = make_conninfo(database_url, dbname="postgres")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(database_url, dbname=name)
    dump = gzip.decompress((FIXTURE / "fabric.sql.gz").read_bytes()).decode("utf-8")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(dump)  # pg_dump --inserts: plain statements (the simple query protocol runs them all)
    fabric_module._MIGRATED.discard(url)
    fabric_module._ADAPTERS.pop(url, None)
    yield StateFabric(database_url=url)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture
def old_instance(tmp_path):
    home = tmp_path / "dagster_home"
    with tarfile.open(FIXTURE / "dagster_home.tar.gz") as archive:
        archive.extractall(home, filter="data")
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        yield instance, (home / "cursor.txt").read_text(encoding="utf-8")


def test_the_migrations_main_applied_are_unchanged_and_nothing_old_is_reapplied(old_fabric):
    # read as main left it: the fabric's own connections would apply the newer migrations first
    with psycopg.connect(old_fabric.database_url) as conn:
        recorded = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
    assert sorted(recorded) == OLD_MIGRATIONS
    for version, checksum in recorded.items():
        assert hashlib.sha256((sql_dir() / version).read_text(encoding="utf-8").encode()).hexdigest() == checksum, (
            f"{version} was edited after main applied it: add a new migration instead")
    newer = sorted(p.name for p in sql_dir().glob("*.sql") if p.name not in recorded)
    assert old_fabric.migrate() == newer


def test_the_new_code_reads_mains_runs_and_continues_its_loop(old_fabric, old_instance, engine_url):
    instance, cursor = old_instance
    old_fabric.migrate()  # as every start does (`dream run`, `start`, `daemon`)
    runs = sorted(instance.get_runs(), key=lambda r: r.tags[PARTITION_TAG])
    assert [(r.job_name, r.status, r.tags[PARTITION_TAG], r.tags[LOOP_TAG]) for r in runs] == [
        ("epoch_job", dg.DagsterRunStatus.SUCCESS, "space_time-00001", "epoch"),
        ("epoch_job", dg.DagsterRunStatus.SUCCESS, "space_time-00002", "epoch"),
    ]
    assert defs.resolve_job_def("epoch_job").name == runs[0].job_name
    assert instance.get_dynamic_partitions("epochs") == ["space_time-00001", "space_time-00002"]
    new_keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    old_keys = {key.to_user_string() for key in instance.get_asset_keys()}
    assert old_keys == {"roster", "drafts", "peer_votes", "elo_rankings", "chapter"} <= new_keys
    assert cursor == "space_time-00002"

    tick = dream_loop_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                     resources={"fabric": old_fabric}))
    [request] = tick.run_requests
    assert (request.partition_key, request.run_key, request.tags) == (
        "space_time-00003", "space_time-00003#1", {LOOP_TAG: "epoch"})
    for add in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))

    llm = LLMEngine(base_url=engine_url, max_tokens=900, max_retries=2, timeout_s=30, fabric=old_fabric)
    job = dg.Definitions(assets=epoch_assets, asset_checks=epoch_checks, jobs=[epoch_job],
                         resources={"fabric": old_fabric, "llm": llm},
                         executor=dg.in_process_executor).resolve_job_def("epoch_job")
    alive_before = {s.name for s in old_fabric.standings("space_time") if s.alive}
    third = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                   raise_on_error=False)
    assert third.success
    chapters = old_fabric.chapters("space_time")
    assert [c.chapter_number for c in chapters] == [1, 2, 3]
    epoch3 = old_fabric.epoch("space_time-00003")
    assert epoch3.status == "committed"
    assert {a.name for a in old_fabric.agents(epoch3.active_agent_ids)} == alive_before

    replay = job.execute_in_process(instance=instance, partition_key="space_time-00001", raise_on_error=False)
    assert replay.success
    verdicts = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata["replay"].value
        for event in replay.get_asset_materialization_events()
    }
    assert verdicts == {"roster": "verifying the committed epoch (nothing is rewritten)", "drafts": "verified",
                        "peer_votes": "verified", "elo_rankings": "verified", "chapter": "verified"}
    assert [c.chapter_number for c in old_fabric.chapters("space_time")] == [1, 2, 3]
