"""Bad configuration stops `dream` at start with one line naming the setting (exit code 2), never a
traceback mid-run. The CLI runs as a user runs it, in a subprocess, against real servers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dream_pipeline.cli.preflight import ConfigError, needs_api_key, preflight, redact_url
from dream_pipeline.config.settings import known_settings
from offline_engine import EngineConfig, running_engine
from resources.locations import PROJECT_ROOT

ENGINE_KEY = "sk-engine-key-0123456789"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, str]]:
    with running_engine(EngineConfig(json_mode=False)) as no_json, running_engine(EngineConfig(api_key=ENGINE_KEY)) as keyed:
        yield {"no_json": no_json, "keyed": keyed}


@pytest.fixture(scope="module")
def results(engines, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every case at once (each `dream` start costs seconds of imports): name -> finished process."""
    tmp = tmp_path_factory.mktemp("preflight")
    experiments = tmp / "experiments.yaml"
    experiments.write_text("experiments:\n  - book: space_time\n    enabeld: true\n", encoding="utf-8")
    port = _closed_port()
    # without the check, a service command would fail on this file before starting anything
    stop = {"DREAM_EXPERIMENTS": str(experiments)}
    cases = {
        "unknown": (["run"], {"DREAM_MAX_TOKNS": "512"}),
        "unknown_daemon": (["daemon"], {"DREAM_LLM_MODLE": "x", **stop}),
        "unknown_start": (["start", "--no-deck"], {"DREAM_VOTE_FROMAT": "json_object", **stop}),
        "unknown_webserver": (["webserver"], {"DREAM_PHASE_TIMEZONE": "UTC", **stop}),
        "bad_number": (["run"], {"DREAM_MAX_TOKENS": "abc"}),
        "bad_zone": (["run"], {"DREAM_PHASE_TZ": "Mars/Olympus_Mons"}),  # read when the definitions load
        "experiments": (["run"], {"DREAM_EXPERIMENTS": str(experiments)}),
        "missing_key": (["run"], {"DREAM_LLM_BASE_URL": "https://api.openai.com/v1"}),
        "database": (["run"], {"DREAM_DATABASE_URL": f"postgresql://dream:hunter2secret@127.0.0.1:{port}/dream"}),
        "engine_down": (["run"], {"DREAM_LLM_BASE_URL": f"http://127.0.0.1:{port}/v1"}),
        "no_json_schema": (["run"], {"DREAM_LLM_BASE_URL": engines["no_json"], "DREAM_VOTE_FORMAT": "json_schema"}),
        "no_json_object": (["run"], {"DREAM_LLM_BASE_URL": engines["no_json"], "DREAM_VOTE_FORMAT": "json_object"}),
        "wrong_key": (["run"], {"DREAM_LLM_BASE_URL": engines["keyed"], "DREAM_LLM_API_KEY": "sk-wrong-key-987654"}),
    }

    def dream(case):
        args, overrides = case
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_"))}
        env.update(DREAM_STATE_DIR=str(tmp / "state"), **overrides)
        return subprocess.run([sys.executable, "-m", "dream_pipeline.cli", *args], env=env, capture_output=True,
                              text=True, timeout=120, cwd=PROJECT_ROOT)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(cases, pool.map(dream, cases.values()), strict=True))


@pytest.mark.parametrize(
    ("case", "setting", "words"),
    [
        ("unknown", "DREAM_MAX_TOKNS", "did you mean DREAM_MAX_TOKENS?"),
        ("unknown_daemon", "DREAM_LLM_MODLE", "did you mean DREAM_LLM_MODEL?"),
        ("unknown_start", "DREAM_VOTE_FROMAT", "did you mean DREAM_VOTE_FORMAT?"),
        ("unknown_webserver", "DREAM_PHASE_TIMEZONE", "is not a setting"),
        ("bad_number", "DREAM_MAX_TOKENS", "must be an integer, got 'abc'"),
        ("bad_zone", "DREAM_PHASE_TZ", "is not an IANA time zone"),
        ("experiments", "DREAM_EXPERIMENTS", "unknown keys ['enabeld']"),
        ("missing_key", "DREAM_LLM_API_KEY", "api.openai.com"),
        ("database", "DREAM_DATABASE_URL", "cannot connect to postgresql://dream:***@127.0.0.1:"),
        ("engine_down", "DREAM_LLM_BASE_URL", "cannot reach the engine"),
        ("no_json_schema", "DREAM_VOTE_FORMAT", "refuses json_schema ballots"),
        ("no_json_object", "DREAM_VOTE_FORMAT", "unset DREAM_VOTE_FORMAT (auto) to use prompt_only"),
        ("wrong_key", "DREAM_LLM_API_KEY", "refused the key"),
    ],
)
def test_bad_setting_is_one_line_naming_it(results, case, setting, words):
    result = results[case]
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"dream: {setting}: ") and words in lines[0], lines[0]
    assert "Traceback" not in result.stderr and not result.stdout.strip()


def test_secrets_never_appear_in_the_error(results):
    assert "hunter2secret" not in results["database"].stderr
    assert "sk-wrong-key-987654" not in results["wrong_key"].stderr


# --- in-process: values and rules ------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("DREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DREAM_STATE_DIR", str(tmp_path))
    return monkeypatch


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("DREAM_MAX_TOKENS", "5"),
        ("DREAM_LLM_TIMEOUT_S", "soon"),
        ("DREAM_LLM_MAX_CONCURRENCY", "0"),
        ("DREAM_VOTE_FORMAT", "xml"),
        ("DREAM_EMBEDDING_DIM", "-3"),
        ("DREAM_CONTEXT_TOP_K", "1e3"),
        ("DREAM_PHASE_START", "3am"),
        ("DREAM_PHASE_TZ", "Mars/Olympus_Mons"),
        ("DREAM_LOOP_STAGING_DEPTH", "0"),
        ("DREAM_DAGSTER_YAML", "/nonexistent/dagster.yaml"),
        ("DREAM_ENGINE_FAULT_RATE", "2"),
        ("DREAM_ENGINE_JSON_MODE", "maybe"),
        ("DREAM_LLM_BASE_URL", "127.0.0.1:8000"),
        ("DREAM_LLM_CONTEXT_TOKENS", "512"),
        ("DREAM_LLM_CONTEXT_TOKENS", "8k"),
        ("DREAM_CAST_SIZE", "1"),
        ("DREAM_CAST_SIZE", "300"),
    ],
)
def test_bad_values_name_their_setting(clean_env, setting, value):
    clean_env.setenv(setting, value)
    with pytest.raises(ConfigError) as raised:
        preflight()
    assert raised.value.setting == setting
    assert str(raised.value).startswith(f"{setting}: ") and "\n" not in str(raised.value)


def _chat_requests(engine_url: str) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{engine_url}/engine/stats", timeout=10) as reply:  # noqa: S310 (our engine)
        return json.load(reply)["requests"]["chat.completions"]


def test_a_working_engine_and_database_pass(clean_env, engine_url, database_url):
    """Both pass, and the engine was really asked: one probe request per check, each format accepted."""
    clean_env.setenv("DREAM_LLM_BASE_URL", engine_url)
    clean_env.setenv("DREAM_DATABASE_URL", database_url)
    before = _chat_requests(engine_url)
    assert preflight().vote_mode == "json_schema"
    probed = _chat_requests(engine_url)
    assert probed > before  # the engine was really asked (a chat request, then the probe)
    clean_env.setenv("DREAM_VOTE_FORMAT", "json_object")
    assert preflight().vote_mode == "json_object"
    after = _chat_requests(engine_url)
    assert after > probed
    assert preflight(need_engine=False) is None
    assert _chat_requests(engine_url) == after  # need_engine=False sends nothing
    # the same settings with the database gone do not pass: the check above did connect
    clean_env.setenv("DREAM_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{_closed_port()}/dream")
    with pytest.raises(ConfigError) as raised:
        preflight(need_engine=False)
    assert raised.value.setting == "DREAM_DATABASE_URL"


@pytest.mark.parametrize(("profile", "mode"), [("llama_cpp_python", "json_object_schema"), ("bare", "prompt_only")])
def test_preflight_chooses_the_mode_the_server_honours_instead_of_carrying_on(clean_env, profile, mode):
    with running_engine(EngineConfig(profile=profile)) as url:
        clean_env.setenv("DREAM_LLM_BASE_URL", url)
        caps = preflight()
    assert caps.vote_mode == mode and caps.base_url == url.rstrip("/")


def test_hosted_apis_need_a_key_local_servers_do_not():
    assert needs_api_key("https://api.openai.com/v1")
    assert needs_api_key("https://api.together.xyz/v1")
    for url in ("http://127.0.0.1:8000/v1", "https://localhost:8000/v1", "http://vllm.inference:8000/v1",
                "https://10.0.0.7/v1", "https://gpu-box.local/v1", "http://vllm:8000/v1"):
        assert not needs_api_key(url), url


def test_redact_url_hides_passwords():
    assert redact_url("postgresql://u:pa%40ss@db.example:5432/x") == "postgresql://u:***@db.example:5432/x"
    assert "s3cret" not in redact_url("postgresql://u@db/x?sslmode=require&password=s3cret")
    assert redact_url("postgresql://postgres@/dream?host=/tmp/s") == "postgresql://postgres@/dream?host=/tmp/s"


def test_every_dream_variable_the_project_reads_is_a_known_setting():
    """The known list stays complete: a new DREAM_* variable anywhere in the code must be added to
    `dream_pipeline/config/settings.py` ENV_SETTINGS (or be an offline-engine field), or `dream` refuses it."""
    used = set()
    for folder in ("dream_pipeline", "resources", "offline_engine", "deck", "bench", "deploy"):
        for path in (PROJECT_ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".yaml", ".service"):
                used |= set(re.findall(r"\bDREAM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    prefixes = {"DREAM_ENGINE"}  # a prefix, not a variable
    assert sorted(used - known_settings() - prefixes) == []


def test_engine_json_mode_flag_round_trips():
    config = EngineConfig.from_env({"DREAM_ENGINE_JSON_MODE": "0"})
    assert config.json_mode is False and "--no-json-mode" in config.cli_args()
    assert "--no-json-mode" not in EngineConfig().cli_args()
    assert Path(PROJECT_ROOT / "docs" / "offline_engine.md").read_text(encoding="utf-8").count("DREAM_ENGINE_JSON_MODE")
