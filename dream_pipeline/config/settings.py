"""Resource configuration from the environment: `DREAM_*` variables, read through Dagster's `EnvVar`.

An unset variable means the embedded default (embedded PostgreSQL, offline engine); a set one is
passed as an `EnvVar`, so its value never lands in a file or in Dagster's run config. `ENV_SETTINGS`
lists every `DREAM_*` variable the project reads (the offline engine's `DREAM_ENGINE_*` come from
its `EngineConfig`): `dream` refuses any other, as a likely typo (`dream_pipeline/cli/preflight.py`).
"""

from __future__ import annotations

import dataclasses
import os

import dagster as dg
import pydantic

from resources.fabric import StateFabric
from resources.llm import LLMEngine

ENV_SETTINGS = {
    "DREAM_DATABASE_URL": "state fabric: libpq URL of a PostgreSQL with pgvector (default: embedded pgserver)",
    "DREAM_LLM_BASE_URL": "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (default: offline engine)",
    "DREAM_LLM_API_KEY": "API key for the engine (never written anywhere)",
    "DREAM_LLM_MODEL": "chat model name (default: offline-scribe)",
    "DREAM_LLM_EMBEDDING_MODEL": "embedding model name (default: the chat model)",
    "DREAM_LLM_EMBEDDING_BASE_URL": "a separate OpenAI-compatible embedding server, …/v1 (default: DREAM_LLM_BASE_URL)",
    "DREAM_LLM_EMBEDDING_API_KEY": "API key for the embedding server (default: DREAM_LLM_API_KEY)",
    "DREAM_MAX_TOKENS": "hard token cap of a draft (default: 2048)",
    "DREAM_LLM_MAX_CONCURRENCY": "engine calls in flight at once (default: 8)",
    "DREAM_LLM_TIMEOUT_S": "per-request timeout in seconds (default: 120)",
    "DREAM_VOTE_FORMAT": "auto, json_schema, json_object_schema, guided_json, ollama_format, json_object or "
                         "prompt_only (default: auto, the best mode the engine honours)",
    "DREAM_EMBEDDING_DIM": "dimension of the embedding model's vectors; the HNSW indexes are built for it (default: 256)",
    "DREAM_CONTEXT_TOKENS": "budget of a draft prompt's book context, in whitespace tokens (default: 1500)",
    "DREAM_CONTEXT_TOP_K": "earlier chapters retrieved by similarity into a draft prompt (default: 3)",
    "DREAM_SUMMARY_TOKENS": "cap of the rolling summary of the book (default: 200)",
    "DREAM_LLM_CONTEXT_TOKENS": "the engine's context window in tokens: every request is fitted into it, at least 1536 (default: 8192)",
    "DREAM_CAST_SIZE": "agents seated when a book starts, overriding its manifest's cast_size (default: the manifest's)",
    # read outside the resources
    "DREAM_DAGSTER_STORAGE_URL": "Dagster's run/event storage, postgresql+psycopg2://… (default: the embedded server)",
    "DREAM_DAGSTER_YAML": "instance configuration installed into DAGSTER_HOME (default: deploy/dagster.yaml)",
    "DREAM_STATE_DIR": "where the embedded database, engine and Dagster home live (default: .dream/)",
    "DREAM_EXPERIMENTS": "the experiments file: books the loop runs in turn (default: experiments.yaml)",
    "DREAM_LOOP_STAGING_DEPTH": "loop runs queued or running at once; 1 turns staging off (default: 5)",
    "DREAM_LOOP": "on or off: the loop sensor's default status (default: on; `dream ui` sets off unless --loop)",
    "DREAM_PHASE_START": "opening of the nightly PHASE window, HH:MM (default: 03:00)",
    "DREAM_PHASE_END": "end of the PHASE window, HH:MM (default: 07:00)",
    "DREAM_PHASE_TZ": "IANA time zone of the PHASE window (default: the machine's)",
    "DREAM_DECK_DATABASE_URL": "the deck's read-only URL (role dream_reader) when the fabric is external",
    "DREAM_SANDBOX_PYTHON": "CodeRepair sandbox: the interpreter candidates run in (default: this one if nobody may run it, else python3)",
    # tests and benchmarks only
    "DREAM_TEST_DATABASE_URL": "tests: a PostgreSQL for the test suite (default: the embedded server)",
    "DREAM_TEST_DECK_DATABASE_URL": "tests: the deck's read-only URL on that server",
    "DREAM_BENCH_DATABASE_URL": "benchmarks: a PostgreSQL for python -m bench.* (default: the embedded server)",
}

# DREAM_* variable -> LLMEngine field, for the settings parsed by `llm_from_env`
LLM_FIELDS = {
    "DREAM_LLM_BASE_URL": "base_url",
    "DREAM_LLM_API_KEY": "api_key",
    "DREAM_LLM_MODEL": "model",
    "DREAM_LLM_EMBEDDING_MODEL": "embedding_model",
    "DREAM_LLM_EMBEDDING_BASE_URL": "embedding_base_url",
    "DREAM_LLM_EMBEDDING_API_KEY": "embedding_api_key",
    "DREAM_LLM_CONTEXT_TOKENS": "context_window",
    "DREAM_MAX_TOKENS": "max_tokens",
    "DREAM_LLM_MAX_CONCURRENCY": "max_concurrency",
    "DREAM_LLM_TIMEOUT_S": "timeout_s",
    "DREAM_VOTE_FORMAT": "vote_format",
    "DREAM_CONTEXT_TOKENS": "context_tokens",
    "DREAM_CONTEXT_TOP_K": "context_top_k",
    "DREAM_SUMMARY_TOKENS": "summary_tokens",
}
FABRIC_FIELDS = {"DREAM_DATABASE_URL": "database_url", "DREAM_EMBEDDING_DIM": "embedding_dim"}


DEFAULT_CONTEXT_TOKENS = 8192  # what the small local servers give (llama.cpp, Ollama: 2048-8192) at most
MIN_CONTEXT_TOKENS = 1536  # below this a ballot of two drafts has no room to show them (tests/test_context_fit.py)
CAST_SIZE_RANGE = (2, 256)


class ConfigError(ValueError):
    """A setting that cannot work; `str()` is one line that starts with the setting's name."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.message = " ".join(message.split())
        super().__init__(f"{setting}: {self.message}")


def known_settings() -> frozenset[str]:
    """Every DREAM_* variable something in the project reads."""
    from offline_engine.config import ENV_PREFIX, EngineConfig

    engine = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(EngineConfig) if f.name != "qualities"}
    return frozenset(ENV_SETTINGS) | engine


def _env(name: str, kind: type = str, resolve: bool = False):
    if not os.environ.get(name):
        return None
    if kind is int:
        # a number, not a secret: parsed here, because an `EnvVar.int` fails the fields' bounds (ge=…)
        # when the resource is built (pydantic sees it as 0)
        raw = os.environ[name]
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    return os.environ[name] if resolve else dg.EnvVar(name)


def _set(**fields):
    return {k: v for k, v in fields.items() if v is not None}


def fabric_from_env(resolve: bool = False) -> StateFabric:
    """The fabric resource. `resolve=True` reads the values now, for use outside a Dagster run (the CLI);
    otherwise set variables are `EnvVar`s that Dagster resolves in the run."""
    fields = _set(database_url=_env("DREAM_DATABASE_URL", resolve=resolve),
                  embedding_dim=_env("DREAM_EMBEDDING_DIM", int))
    try:
        return StateFabric(**fields)
    except pydantic.ValidationError as exc:
        raise _config_error(exc, FABRIC_FIELDS) from None


def llm_from_env(fabric: StateFabric | None = None, resolve: bool = False) -> LLMEngine:
    """The engine resource; with `fabric`, a committed epoch re-materialized is replayed from its calls.
    A value the resource rejects (DREAM_MAX_TOKENS=5, DREAM_VOTE_FORMAT=xml) is a `ConfigError` naming it."""
    fields = _set(
        base_url=_env("DREAM_LLM_BASE_URL", resolve=resolve),
        api_key=_env("DREAM_LLM_API_KEY", resolve=resolve),
        model=_env("DREAM_LLM_MODEL", resolve=resolve),
        embedding_model=_env("DREAM_LLM_EMBEDDING_MODEL", resolve=resolve),
        embedding_base_url=_env("DREAM_LLM_EMBEDDING_BASE_URL", resolve=resolve),
        embedding_api_key=_env("DREAM_LLM_EMBEDDING_API_KEY", resolve=resolve),
        context_window=_env("DREAM_LLM_CONTEXT_TOKENS", int),
        max_tokens=_env("DREAM_MAX_TOKENS", int),
        max_concurrency=_env("DREAM_LLM_MAX_CONCURRENCY", int),
        timeout_s=_float_env("DREAM_LLM_TIMEOUT_S"),
        vote_format=_env("DREAM_VOTE_FORMAT", resolve=True),  # not a secret; a Literal cannot take an EnvVar
        context_tokens=_env("DREAM_CONTEXT_TOKENS", int),
        context_top_k=_env("DREAM_CONTEXT_TOP_K", int),
        summary_tokens=_env("DREAM_SUMMARY_TOKENS", int),
    )
    try:
        return LLMEngine(fabric=fabric, **fields)
    except pydantic.ValidationError as exc:
        raise _config_error(exc, LLM_FIELDS) from None


def _config_error(exc: pydantic.ValidationError, fields: dict[str, str]) -> ConfigError:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    setting = next((var for var, name in fields.items() if name == field), field or "DREAM_*")
    secret = ("DREAM_LLM_API_KEY", "DREAM_LLM_EMBEDDING_API_KEY", "DREAM_DATABASE_URL")
    shown = repr(error.get("input")) if setting not in secret else "***"
    return ConfigError(setting, f"{error['msg']}, got {shown}")


def _float_env(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number of seconds, got {raw!r}") from None


def _bounded_int(name: str, low: int, high: int) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be within {low}..{high}, got {value}")
    return value


def llm_context_tokens() -> int:
    """The engine's context window, in tokens: what every draft and ballot request is fitted into.

    `DREAM_LLM_CONTEXT_TOKENS`, else `DEFAULT_CONTEXT_TOKENS`. The one place the pipeline asks, so a
    window probed from the server can replace the setting here."""
    return _bounded_int("DREAM_LLM_CONTEXT_TOKENS", MIN_CONTEXT_TOKENS, 10_000_000) or DEFAULT_CONTEXT_TOKENS


def cast_size() -> int | None:
    """`DREAM_CAST_SIZE`: how many agents a new book seats (None: its manifest decides)."""
    return _bounded_int("DREAM_CAST_SIZE", *CAST_SIZE_RANGE)
