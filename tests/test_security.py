"""Secrets come only from the environment and are never recorded; every server binds to 127.0.0.1 by
default; the bandit lint rules run with the tests. (The deck's read-only role: tests/test_deck_app.py.)"""

from __future__ import annotations

import inspect
import os
import tomllib
from urllib.parse import urlsplit

import dagster as dg
import psycopg
import pytest
from dagster._serdes import serialize_value
from psycopg import sql

from dream_pipeline.cli import build_parser
from dream_pipeline.cli.services import service_commands
from dream_pipeline.config.settings import fabric_from_env, llm_from_env
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.jobs import epoch_job
from dream_pipeline.defs.epoch.partitions import epoch_key
from offline_engine import EngineConfig, ensure_engine, running_engine
from offline_engine.__main__ import build_parser as engine_parser
from resources.llm import LLMEngine
from resources.locations import PROJECT_ROOT

SECRET = "sk-test-SECRET-never-recorded-4242"  # noqa: S105 (a test key, the thing searched for)
WRONG = "sk-test-WRONG-never-recorded-1717"


def _rows_containing(fabric, text: str) -> dict[str, int]:
    """Rows of every table of the fabric whose text form contains `text`."""
    found = {}
    with fabric.connection() as conn:
        tables = [r["table_name"] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE'")]
        for table in tables:
            query = sql.SQL("SELECT count(*) AS n FROM {} t WHERE strpos(t::text, %s) > 0").format(sql.Identifier(table))
            found[table] = conn.execute(query, (text,)).fetchone()["n"]
    return found


def test_the_api_key_is_in_no_recorded_call_and_not_in_dagster(monkeypatch, database_url, fabric, instance):
    with running_engine(EngineConfig(seed=5, api_key=SECRET)) as url:
        # as `dream` runs it: the resources read DREAM_* through EnvVar, the engine demands the key
        for name, value in {"DREAM_LLM_BASE_URL": url, "DREAM_LLM_API_KEY": SECRET,
                            "DREAM_DATABASE_URL": database_url, "DREAM_MAX_TOKENS": "300"}.items():
            monkeypatch.setenv(name, value)
        resources = {"fabric": fabric_from_env()}
        resources["llm"] = llm_from_env(resources["fabric"])
        defs = dg.Definitions(assets=epoch_assets, jobs=[epoch_job], resources=resources)
        key = epoch_key("space_time", 1)
        instance.add_dynamic_partitions("epochs", [key])
        result = defs.resolve_job_def("epoch_job").execute_in_process(instance=instance, partition_key=key)
        assert result.success  # so every call carried the key

        # a wrong key: every call fails and is recorded with its error, without the key
        monkeypatch.delenv("DREAM_LLM_API_KEY")
        wrong = LLMEngine(base_url=url, api_key=WRONG, max_retries=0, fabric=fabric)
        second = epoch_key("space_time", 2)
        instance.add_dynamic_partitions("epochs", [second])
        failed = dg.materialize(epoch_assets, instance=instance, partition_key=second,
                                resources={"fabric": fabric, "llm": wrong}, raise_on_error=False)
        assert not failed.success

    with fabric.connection() as conn:
        calls = conn.execute("SELECT count(*) FILTER (WHERE status = 'ok') AS ok,"
                             " count(*) FILTER (WHERE status = 'error') AS error FROM llm_calls").fetchone()
    assert calls["ok"] > 5 and calls["error"] > 0
    assert _rows_containing(fabric, "Incorrect API key")["llm_calls"] == calls["error"]  # the search finds text
    assert not any(_rows_containing(fabric, SECRET).values())
    assert not any(_rows_containing(fabric, WRONG).values())

    run = instance.get_run_by_id(result.run_id)
    assert SECRET not in serialize_value(run)  # run config and tags
    for record in instance.all_logs(result.run_id):
        assert SECRET not in serialize_value(record)


def test_every_server_binds_to_localhost_by_default(engine_url):
    assert urlsplit(engine_url).hostname == "127.0.0.1"
    for launcher in (running_engine, ensure_engine):
        assert inspect.signature(launcher).parameters["host"].default == "127.0.0.1"
    assert engine_parser(EngineConfig()).parse_args([]).host == "127.0.0.1"

    parser = build_parser()
    for command in ("start", "daemon", "webserver", "ui", "deck"):
        assert parser.parse_args([command]).host == "127.0.0.1", command
    commands = service_commands(parser.parse_args(["start"]))
    webserver = commands["webserver"]
    assert webserver[webserver.index("-h") + 1] == "127.0.0.1"
    deck = commands["deck"]
    assert deck[deck.index("--server.address") + 1] == "127.0.0.1"


@pytest.mark.skipif(bool(os.environ.get("DREAM_TEST_DATABASE_URL")), reason="an external test server")
def test_the_embedded_database_listens_on_no_tcp_port(database_url):
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""


def test_the_bandit_rules_run_with_the_tests():
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "S" in config["tool"]["ruff"]["lint"]["select"]
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "test: lint" in makefile and "ruff check ." in makefile
