"""Start-up checks: a bad setting is one line naming it, before anything starts, never a traceback mid-run.

`dream run`, `dream start`, `dream daemon`, `dream webserver` and `dream ui` call `preflight()` first.
It checks, in this order, and raises `ConfigError(setting, message)` at the first problem:

1. every `DREAM_*` variable is one the project reads (`settings.known_settings()`), else a likely
   typo, with a "did you mean";
2. every value parses (numbers, bounds, the vote format, the PHASE window, the offline engine's);
3. the experiments file (unknown keys, unknown books);
4. an https engine on a non-local host has `DREAM_LLM_API_KEY`;
5. `DREAM_DATABASE_URL` / `DREAM_DAGSTER_STORAGE_URL`, when set, accept a connection within
   `DATABASE_TIMEOUT_S` (the password is never shown);
6. `DREAM_LLM_BASE_URL`, when set, answers one tiny chat request (reachable, key, model), and is then
   probed (`resources/engine_probe.py`): the structured-output mode ballots will use (the best the server
   honours, or DREAM_VOTE_FORMAT, which must then work), its context, embeddings and concurrency, which
   `dream` prints. Rate limits and 5xx are only warnings: the loop retries them.

The embedded defaults (database, offline engine) are started and health-checked by `dream` itself.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import sys
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dream_pipeline.config.settings import (
    ConfigError,
    cast_size,
    fabric_from_env,
    known_settings,
    llm_context_tokens,
    llm_from_env,
)

if TYPE_CHECKING:
    from resources.engine_probe import EngineCapabilities
    from resources.llm import LLMEngine

__all__ = ["ConfigError", "preflight", "redact_url", "needs_api_key"]

DATABASE_TIMEOUT_S = 5
ENGINE_TIMEOUT_S = 20.0  # per probe request (the configured timeout if shorter), two retries
# hosts that are this machine or a private network: an engine there may run without a key
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".svc", ".cluster.local")


def preflight(*, need_engine: bool = True) -> EngineCapabilities | None:
    """Raise `ConfigError` for the first setting that cannot work (see the module docstring); returns what
    the configured engine was probed to do (None for the offline engine, which `dream` starts itself)."""
    env = os.environ
    check_names(env)
    llm = check_values(env)
    check_experiments(env)
    if llm.base_url:
        check_api_key(llm.base_url, llm.api_key)
    check_databases(env)
    if need_engine and llm.base_url:
        return check_engine(llm)
    return None


# ---- names and values ----------------------------------------------------------------------------


def check_names(env: Mapping[str, str]) -> None:
    known = known_settings()
    unknown = sorted(name for name in env if name.startswith("DREAM_") and name not in known)
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "the settings are listed in README.md, 'Configuration'"
    more = f" (also unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
    raise ConfigError(name, f"is not a setting of this project; {hint}{more}")


def check_values(env: Mapping[str, str]) -> LLMEngine:
    """Parse every value now; returns the engine resource, resolved."""
    fabric_from_env(resolve=True)
    llm = llm_from_env(resolve=True)
    llm_context_tokens()
    cast_size()
    for name in ("DREAM_PHASE_START", "DREAM_PHASE_END"):
        if env.get(name):
            try:
                time.fromisoformat(env[name])
            except ValueError:
                raise ConfigError(name, f"must be a time of day as HH:MM, got {env[name]!r}") from None
    if env.get("DREAM_PHASE_TZ"):
        try:
            ZoneInfo(env["DREAM_PHASE_TZ"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("DREAM_PHASE_TZ", f"is not an IANA time zone: {env['DREAM_PHASE_TZ']!r}") from None
    if env.get("DREAM_LOOP", "on") not in ("on", "off"):
        raise ConfigError("DREAM_LOOP", f"must be on or off, got {env['DREAM_LOOP']!r}")
    depth = env.get("DREAM_LOOP_STAGING_DEPTH")
    if depth is not None and (not depth.isdigit() or int(depth) < 1):
        raise ConfigError("DREAM_LOOP_STAGING_DEPTH", f"must be a whole number >= 1, got {depth!r}")
    if env.get("DREAM_DAGSTER_YAML") and not Path(env["DREAM_DAGSTER_YAML"]).is_file():
        raise ConfigError("DREAM_DAGSTER_YAML", f"no such file: {env['DREAM_DAGSTER_YAML']}")
    if llm.base_url is None:
        from offline_engine.config import ENV_PREFIX, EngineConfig

        try:
            EngineConfig.from_env(env)
        except ValueError as exc:
            message = str(exc)
            setting = message.split("=", 1)[0] if message.startswith(ENV_PREFIX) else "DREAM_ENGINE_*"
            raise ConfigError(setting, message.removeprefix(setting).lstrip("=")) from None
    return llm


def check_experiments(env: Mapping[str, str]) -> None:
    from dream_pipeline.config.experiments import enabled_books, experiments_path

    try:
        enabled_books()
    except ValueError as exc:
        if env.get("DREAM_EXPERIMENTS"):
            raise ConfigError("DREAM_EXPERIMENTS", str(exc)) from None
        path = str(experiments_path())
        raise ConfigError(path, str(exc).removeprefix(f"{path}: ")) from None


# ---- the engine's key ------------------------------------------------------------------------------


def _local_host(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return "." not in host or host == "localhost" or host.endswith(_LOCAL_SUFFIXES)


def needs_api_key(base_url: str) -> bool:
    """A hosted API (https on a public host: api.openai.com, …) needs a key; a server on this machine or
    a private network (http, localhost, private addresses, cluster names) may not, and the probe tells."""
    parts = urlsplit(base_url)
    return parts.scheme == "https" and not _local_host(parts.hostname or "")


def check_api_key(base_url: str, api_key: str | None) -> None:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("DREAM_LLM_BASE_URL", f"must be an http(s) URL such as http://127.0.0.1:8000/v1, "
                                                f"got {redact_url(base_url)!r}")
    if not api_key and needs_api_key(base_url):
        raise ConfigError("DREAM_LLM_API_KEY", f"is not set, and DREAM_LLM_BASE_URL points at {parts.hostname}, "
                                               "a hosted API that needs one: export DREAM_LLM_API_KEY")


# ---- the databases ----------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """`url` with any password (in the user part or as a `password=` parameter) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if "password" in query.lower():
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(query)], safe="*/")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _scrub(message: str, url: str) -> str:
    """The first line of a driver error, without the URL's password in it."""
    line = (message.strip().splitlines() or ["unknown error"])[0]
    secrets = [urlsplit(url).password] + [v for k, v in parse_qsl(urlsplit(url).query) if k.lower() == "password"]
    for secret in filter(None, secrets):
        line = line.replace(secret, "***")
    return line


def check_database(setting: str, url: str) -> None:
    import psycopg

    libpq_url = url.replace("postgresql+psycopg2://", "postgresql://", 1)
    try:
        with psycopg.connect(libpq_url, connect_timeout=DATABASE_TIMEOUT_S, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ConfigError(setting, f"cannot connect to {redact_url(url)}: {_scrub(str(exc), url)}") from None


def check_databases(env: Mapping[str, str]) -> None:
    for setting in ("DREAM_DATABASE_URL", "DREAM_DAGSTER_STORAGE_URL"):
        if env.get(setting):
            check_database(setting, env[setting])


# ---- the engine ---------------------------------------------------------------------------------------


def check_engine(llm: LLMEngine) -> EngineCapabilities | None:
    """One tiny chat request (reachable, key accepted, model served), then the capability probe: the
    structured-output mode ballots will use, the context, embeddings, concurrency. A mode forced with
    DREAM_VOTE_FORMAT that the server refuses is an error naming the mode that works instead."""
    import openai

    from resources.llm import OFFLINE_API_KEY

    url = llm.base_url
    timeout = min(llm.timeout_s, ENGINE_TIMEOUT_S)
    client = openai.OpenAI(base_url=url, api_key=llm.api_key or OFFLINE_API_KEY, timeout=timeout, max_retries=2)

    def scrub(exc: Exception) -> str:
        body = getattr(exc, "body", None)
        text = body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else None
        text = " ".join((text or str(getattr(exc, "message", exc))).split())[:300]
        return text.replace(llm.api_key, "***") if llm.api_key else text

    def probe() -> None:
        client.chat.completions.create(
            model=llm.model, max_tokens=16, temperature=0,
            messages=[{"role": "user", "content": "Answer with the word OK and nothing else."}],
        )

    try:
        probe()
    except openai.APITimeoutError:
        raise ConfigError("DREAM_LLM_BASE_URL", f"the engine at {url} did not answer a one-line request "
                          f"within {timeout:g} s (3 tries)") from None
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise ConfigError("DREAM_LLM_BASE_URL", f"cannot reach the engine at {url}: {scrub(cause)}") from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        what = "refused the key in DREAM_LLM_API_KEY" if llm.api_key else "needs an API key: export DREAM_LLM_API_KEY"
        raise ConfigError("DREAM_LLM_API_KEY", f"the engine at {url} {what} (HTTP {exc.status_code}: "
                          f"{scrub(exc)})") from None
    except (openai.NotFoundError, openai.BadRequestError, openai.UnprocessableEntityError) as exc:
        if "model" in scrub(exc).lower():
            raise ConfigError("DREAM_LLM_MODEL", f"the engine at {url} does not serve {llm.model!r} "
                              f"(HTTP {exc.status_code}: {scrub(exc)})") from None
        hint = "; the base URL usually ends in /v1" if exc.status_code == 404 else ""
        raise ConfigError("DREAM_LLM_BASE_URL", f"the engine at {url} rejected a minimal chat request "
                          f"(HTTP {exc.status_code}: {scrub(exc)}){hint}") from None
    except openai.APIStatusError as exc:  # 429, 5xx: the loop retries these; starting is fine
        print(f"dream: warning: DREAM_LLM_BASE_URL: the engine at {url} answered HTTP {exc.status_code} to a "
              f"test request ({scrub(exc)}); starting anyway, failed calls are retried", file=sys.stderr)
        return None
    finally:
        client.close()
    caps = llm.probe_now()
    forced = llm.vote_format if llm.vote_format != "auto" else None
    if forced and forced in caps.modes_refused:
        best = type(llm)(**{**llm.model_dump(exclude={"fabric"}), "vote_format": "auto"}).probe_now().vote_mode
        raise ConfigError("DREAM_VOTE_FORMAT", f"the engine at {url} refuses {forced} ballots "
                          f"({caps.modes_refused[forced][:200]}); unset DREAM_VOTE_FORMAT (auto) to use {best}")
    return caps
