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
    "DREAM_EMBEDDING_DIM": "dimension of the embedding model's vectors; the HNSW indexes are built for it (default: 256)",
    "DREAM_CONTEXT_TOKENS": "budget of a draft prompt's book context, in whitespace tokens (default: 1500)",
    "DREAM_CONTEXT_TOP_K": "earlier chapters retrieved by similarity into a draft prompt (default: 3)",
    "DREAM_SUMMARY_TOKENS": "cap of the rolling summary of the book (default: 200)",
}


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
            raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    return os.environ[name] if resolve else dg.EnvVar(name)


def _set(**fields):
    return {k: v for k, v in fields.items() if v is not None}


def fabric_from_env(resolve: bool = False) -> StateFabric:
    """The fabric resource. `resolve=True` reads the values now, for use outside a Dagster run (the CLI);
    otherwise set variables are `EnvVar`s that Dagster resolves in the run."""
    return StateFabric(
        **_set(database_url=_env("DREAM_DATABASE_URL", resolve=resolve),
               embedding_dim=_env("DREAM_EMBEDDING_DIM", int))
    )


def llm_from_env(fabric: StateFabric | None = None, resolve: bool = False) -> LLMEngine:
    """The engine resource; with `fabric`, a committed epoch re-materialized is replayed from its calls."""
    return LLMEngine(
        fabric=fabric,
        **_set(
            base_url=_env("DREAM_LLM_BASE_URL", resolve=resolve),
            api_key=_env("DREAM_LLM_API_KEY", resolve=resolve),
            model=_env("DREAM_LLM_MODEL", resolve=resolve),
            embedding_model=_env("DREAM_LLM_EMBEDDING_MODEL", resolve=resolve),
            max_tokens=_env("DREAM_MAX_TOKENS", int),
            max_concurrency=_env("DREAM_LLM_MAX_CONCURRENCY", int),
            timeout_s=_float_env("DREAM_LLM_TIMEOUT_S"),
            vote_format=_env("DREAM_VOTE_FORMAT", resolve=resolve),
            context_tokens=_env("DREAM_CONTEXT_TOKENS", int),
            context_top_k=_env("DREAM_CONTEXT_TOP_K", int),
            summary_tokens=_env("DREAM_SUMMARY_TOKENS", int),
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
