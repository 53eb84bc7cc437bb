"""Resource configuration from the environment: `DREAM_*` variables, read through Dagster's `EnvVar`.

An unset variable means the embedded default (embedded PostgreSQL, offline engine); a set one is
passed as an `EnvVar`, so its value never lands in a file or in Dagster's run config.
"""

from __future__ import annotations

import os

import dagster as dg

from resources.fabric import StateFabric
from resources.llm import LLMEngine

ENV_SETTINGS = {
    "DREAM_DATABASE_URL": "state fabric: libpq URL of a PostgreSQL with pgvector (default: embedded pgserver)",
    "DREAM_LLM_BASE_URL": "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (default: offline engine)",
    "DREAM_LLM_API_KEY": "API key for the engine (never written anywhere)",
    "DREAM_LLM_MODEL": "chat model name (default: offline-scribe)",
    "DREAM_LLM_EMBEDDING_MODEL": "embedding model name (default: the chat model)",
    "DREAM_MAX_TOKENS": "hard token cap of a draft (default: 2048)",
    "DREAM_LLM_MAX_CONCURRENCY": "engine calls in flight at once (default: 8)",
    "DREAM_LLM_TIMEOUT_S": "per-request timeout in seconds (default: 120)",
    "DREAM_VOTE_FORMAT": "json_schema or json_object (default: json_schema)",
}


def _env(name: str, kind: type = str):
    if not os.environ.get(name):
        return None
    if kind is int:
        return dg.EnvVar.int(name)
    return dg.EnvVar(name)


def _set(**fields):
    return {k: v for k, v in fields.items() if v is not None}


def fabric_from_env() -> StateFabric:
    return StateFabric(**_set(database_url=_env("DREAM_DATABASE_URL")))


def llm_from_env() -> LLMEngine:
    return LLMEngine(
        **_set(
            base_url=_env("DREAM_LLM_BASE_URL"),
            api_key=_env("DREAM_LLM_API_KEY"),
            model=_env("DREAM_LLM_MODEL"),
            embedding_model=_env("DREAM_LLM_EMBEDDING_MODEL"),
            max_tokens=_env("DREAM_MAX_TOKENS", int),
            max_concurrency=_env("DREAM_LLM_MAX_CONCURRENCY", int),
            timeout_s=_float_env("DREAM_LLM_TIMEOUT_S"),
            vote_format=_env("DREAM_VOTE_FORMAT"),
        )
    )


def _float_env(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
