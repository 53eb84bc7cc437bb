"""Shared fixtures: a real PostgreSQL with pgvector (the embedded server, a `dream_test` database,
or DREAM_TEST_DATABASE_URL) and a real offline engine subprocess reached over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from offline_engine import EngineConfig, running_engine
from resources import embedded_postgres
from resources import fabric as fabric_module
from resources.fabric import StateFabric
from resources.llm import LLMEngine

# one database per test session, so concurrent sessions on one machine never share rows
TEST_DATABASE = f"dream_test_{os.getpid()}"
FABRIC_TABLES = [
    "loop_downtime", "alternate_worlds", "telemetry", "llm_calls", "chapters", "elo_ratings", "vote_abstentions", "peer_votes", "drafts",
    "simulation_epochs", "agents", "domains", "engine_capabilities", "engine_mode_changes",
]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh test database, so tests never touch the user's book; dropped at the end."""
    explicit = os.environ.get("DREAM_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    server = embedded_postgres.server_url()
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEST_DATABASE))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DATABASE)))
    url = embedded_postgres.server_url(TEST_DATABASE)
    # a second pytest session in this process (mutmut runs several) gets a new, empty database under
    # the same URL: forget that the last one was migrated
    fabric_module._MIGRATED.discard(url)
    fabric_module._ADAPTERS.pop(url, None)
    yield url
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture
def fabric(database_url: str) -> StateFabric:
    """The state fabric on the test database, emptied before each test."""
    fabric = StateFabric(database_url=database_url)
    with fabric.connection() as conn:
        conn.execute(
            sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(sql.Identifier(t) for t in FABRIC_TABLES))
        )
    return fabric


@pytest.fixture(scope="session")
def engine_url() -> Iterator[str]:
    with running_engine(EngineConfig(seed=7)) as url:
        yield url


@pytest.fixture
def llm(engine_url: str, fabric: StateFabric) -> LLMEngine:
    return LLMEngine(base_url=engine_url, max_tokens=900, max_retries=2, timeout_s=30, fabric=fabric)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def run_epoch(instance: dg.DagsterInstance, fabric: StateFabric, llm: LLMEngine):
    """Materialize epoch `number` of a book through Dagster, as the epoch job does."""
    from dream_pipeline.defs.epoch.assets import epoch_assets
    from dream_pipeline.defs.epoch.checks import epoch_checks
    from dream_pipeline.defs.epoch.partitions import epoch_key

    def run(number: int, book: str = "space_time", **kwargs) -> dg.ExecuteInProcessResult:
        key = epoch_key(book, number)
        instance.add_dynamic_partitions("epochs", [key])
        result = dg.materialize(
            [*epoch_assets, *epoch_checks], instance=instance, partition_key=key,
            resources={"fabric": fabric, "llm": llm}, **kwargs,
        )
        assert_checks_hold(result)
        return result

    return run


def assert_checks_hold(result: dg.ExecuteInProcessResult) -> None:
    """The asset checks ran on every asset the run materialized, and every blocking (ERROR) one passed."""
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    evaluations = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    checked = {c.asset_key for c in evaluations}
    expected = materialized & {dg.AssetKey(k) for k in ("drafts", "peer_votes", "chapter")}
    assert expected <= checked, f"asset checks missing for {sorted(k.to_user_string() for k in expected - checked)}"
    failed = [c for c in evaluations if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    assert not failed, f"asset checks failed: {[(c.check_name, c.metadata) for c in failed]}"
