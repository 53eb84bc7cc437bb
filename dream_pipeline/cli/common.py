"""What every `dream` command shares: the fabric, the start-up checks, the engine line, the log files."""

from __future__ import annotations


def open_fabric():
    from dream_pipeline.config.settings import fabric_from_env

    return fabric_from_env(resolve=True)


def run_preflight(need_engine: bool = True):
    """Bad settings stop `dream` here with one line naming them (exit code 2), not mid-run. Returns what
    the configured engine was probed to do (None for the offline engine)."""
    from dream_pipeline.cli.preflight import preflight

    return preflight(need_engine=need_engine)


def engine_line(fabric, llm, probed) -> None:
    """Probe the engine once (or keep what preflight found), store it, and say what the loop will do."""
    if probed is not None:
        fabric.save_engine_capabilities(probed.base_url, probed.model, probed.as_json())
    caps = probed or llm.probe_now()
    print(f"engine modes : {caps.summary()}")
    if not caps.embeddings:
        print("               no embedding engine: memory uses PostgreSQL full-text search and novelty a lexical "
              "similarity\n"
              "               (set DREAM_LLM_EMBEDDING_BASE_URL for a separate embedding server)")


def log_file(name: str):
    """A log file under the state folder's logs/, opened for appending (line-buffered)."""
    from resources.locations import state_dir

    folder = state_dir() / "logs"
    folder.mkdir(exist_ok=True)
    return open(folder / name, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the whole command


def run_failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:  # Dagster wraps the step's own exception
                error = error.cause
            line = error.message.strip().splitlines()[-1]
            # a dg.Failure is the pipeline's own one-line explanation: no class name in front of it
            return line.split(": ", 1)[-1] if error.cls_name == "Failure" else line
    return "run failed"


def redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url
