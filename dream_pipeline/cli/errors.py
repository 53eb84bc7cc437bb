"""The `dream` command's one error path: every failure a user can act on becomes one line on stderr.

`run_command` wraps whichever subcommand runs, so no command needs a try/except of its own. An
exception (or anything in its `__cause__`/`__context__` chain) that means "a part is unreachable or
badly set" — the database, the engine, Dagster's storage — is one line saying which part, what
happened and what to do, with exit code 2; a bad input (a missing epoch, a bad argument) is one line
with exit code 1; anything else is one line naming the exception. `--verbose` prints the trace too.
A closed pipe (`dream status | head -4`) ends the command silently.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

CONFIG_EXIT = 2  # a setting or an unreachable part: fix the environment, then run it again
INPUT_EXIT = 1  # a bad argument or a refused action
PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell tool reports when its reader went away
# commands that connect to PostgreSQL only briefly: a host that does not answer fails them in seconds
CONNECT_TIMEOUT_S = "5"
VERBOSE_FLAG = "--verbose"


class Unreachable(Exception):
    """A part of the system that did not answer; `str()` is the one line shown to the user."""


def split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """`--verbose` may stand anywhere on the command line (`dream status --verbose`, `dream --verbose status`)."""
    return [a for a in argv if a != VERBOSE_FLAG], VERBOSE_FLAG in argv


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else "no detail"


def _scrub(text: str) -> str:
    """Any password of the configured URLs replaced by ***."""
    for name in ("DREAM_DATABASE_URL", "DREAM_DAGSTER_STORAGE_URL", "DREAM_DECK_DATABASE_URL"):
        url = os.environ.get(name)
        password = urlsplit(url).password if url else None
        if password:
            text = text.replace(password, "***")
    key = os.environ.get("DREAM_LLM_API_KEY")
    return text.replace(key, "***") if key else text


def _where() -> str:
    from dream_pipeline.cli.preflight import redact_url

    url = os.environ.get("DREAM_DATABASE_URL")
    return f" at {redact_url(url)}" if url else " (the embedded server)"


def _database_hint() -> str:
    if os.environ.get("DREAM_DATABASE_URL"):
        return "start that server or fix DREAM_DATABASE_URL"
    return "the embedded server under .dream/ did not answer: `dream db stop`, then run the command again"


def _engine_hint() -> str:
    if os.environ.get("DREAM_LLM_BASE_URL"):
        return f"start the server at {os.environ['DREAM_LLM_BASE_URL']} or fix DREAM_LLM_BASE_URL"
    return "`dream engine stop` then `dream engine start` restarts the offline engine"


def describe(exc: BaseException) -> tuple[str, int] | None:
    """The line and exit code for an exception a user can act on, or None for an unexpected one."""
    import psycopg

    from dream_pipeline.config.settings import ConfigError

    chain = list(_chain(exc))
    for link in chain:
        if isinstance(link, ConfigError | Unreachable):
            return str(link), CONFIG_EXIT
    for link in chain:
        # a connection that failed has no SQLSTATE; a deadlock or a cancelled query (also OperationalError) has
        if isinstance(link, psycopg.OperationalError) and link.sqlstate is None:
            return f"cannot reach the database{_where()}: {_first_line(link)}; {_database_hint()}", CONFIG_EXIT
        if _is_dagster_storage_error(link):
            return (f"cannot reach Dagster's storage: {_first_line(link)}; start that server or fix "
                    "DREAM_DAGSTER_STORAGE_URL"), CONFIG_EXIT
        engine = _engine_error(link)
        if engine:
            return engine, CONFIG_EXIT
    if isinstance(exc, ValueError | LookupError | ConnectionError | OSError):
        return _first_line(exc), INPUT_EXIT
    return None


def _is_dagster_storage_error(exc: BaseException) -> bool:
    kind = type(exc)
    names = {f"{k.__module__}.{k.__name__}" for k in kind.__mro__}
    return bool(names & {"dagster_postgres.utils.DagsterPostgresException", "sqlalchemy.exc.OperationalError",
                         "psycopg2.OperationalError"})


def _engine_error(exc: BaseException) -> str | None:
    try:
        import openai
    except ImportError:  # pragma: no cover - a dependency of the project
        return None
    if isinstance(exc, openai.APITimeoutError):
        return f"the engine did not answer in time; {_engine_hint()}"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"cannot reach the engine: {_first_line(cause)}; {_engine_hint()}"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return f"the engine refused the key (HTTP {exc.status_code}); set DREAM_LLM_API_KEY"
    if isinstance(exc, openai.NotFoundError):
        return (f"the engine answered 404 ({_first_line(exc)}); check DREAM_LLM_MODEL and that "
                "DREAM_LLM_BASE_URL ends in /v1")
    return None


def run_command(func: Callable[[], int], *, verbose: bool = False, limit_connect: bool = True) -> int:
    """Run one subcommand; its failures leave as one line on stderr and an exit code (see the module docstring).

    `limit_connect` bounds every PostgreSQL connection attempt of this process (libpq's PGCONNECT_TIMEOUT,
    unless set) so an unreachable host fails in seconds; the long-running services keep libpq's default."""
    if limit_connect:
        os.environ.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S)
    try:
        code = func()
        sys.stdout.flush()  # a reader that went away surfaces here, inside the handler
        return code
    except BrokenPipeError:
        return _broken_pipe()
    except KeyboardInterrupt:
        print("\ninterrupted; the next `dream run` resumes the unfinished epoch", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every command's failure is turned into a line
        if any(isinstance(link, BrokenPipeError) for link in _chain(exc)):
            return _broken_pipe()
        known = describe(exc)
        line, code = known or (f"{type(exc).__name__}: {_first_line(exc)}", INPUT_EXIT)
        if verbose:
            traceback.print_exc(file=sys.stderr)
        hint = "" if verbose or known else f" (`dream {VERBOSE_FLAG} …` shows the trace)"
        print(f"dream: {_scrub(line)}{hint}", file=sys.stderr)
        return code


def _broken_pipe() -> int:
    """The reader (`head`) closed the pipe: nothing to say; stdout goes to /dev/null so Python's final
    flush does not complain either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return PIPE_EXIT


def require_databases(*, dagster: bool = False, deck: bool = False) -> None:
    """Connect once, with a short timeout, to the configured fabric (and Dagster's storage): Dagster's
    own storage layer retries an unreachable server for 15 s and prints every attempt; this answers in
    seconds, in one line. The embedded defaults are started by whoever uses them."""
    from dream_pipeline.cli.preflight import check_database

    settings = ["DREAM_DATABASE_URL"] + (["DREAM_DAGSTER_STORAGE_URL"] if dagster else [])
    settings += ["DREAM_DECK_DATABASE_URL"] if deck else []
    for setting in settings:
        if os.environ.get(setting):
            check_database(setting, os.environ[setting])
