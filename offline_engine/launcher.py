"""Starting the engine as a separate process: scoped for tests, detached and shared for long runs.

The engine always runs in its own process and is reached over HTTP, exactly like a real
inference server. `running_engine` owns a child for the span of a `with` block. `ensure_engine`
keeps one detached engine per state directory alive across jobs (recorded in `engine.json`,
guarded by an `fcntl` lock so concurrent callers never start two), and `stop_engine` ends it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from offline_engine.config import EngineConfig

START_TIMEOUT_S = 20.0
STATE_FILE = "engine.json"
LOCK_FILE = "engine.lock"
LOG_FILE = "engine.log"

_detached: list[subprocess.Popen] = []
"""Detached engines started here, kept referenced so Python reaps them without warnings."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _command(config: EngineConfig, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "offline_engine", "--host", host, "--port", str(port), *config.cli_args()]


def _child_env(config: EngineConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DREAM_ENGINE_")}
    if config.api_key is not None:
        env["DREAM_ENGINE_API_KEY"] = config.api_key
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def health(host: str, port: int, timeout: float = 1.0) -> dict[str, Any] | None:
    """The engine's /health document, or None if nothing healthy answers there."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=timeout) as resp:  # noqa: S310
            doc = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("status") == "ok" else None


def _wait_healthy(proc: subprocess.Popen, host: str, port: int, config: EngineConfig,
                  read_log: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    doc = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"offline engine exited with code {proc.returncode} before becoming healthy:\n"
                               f"{read_log()}")
        doc = health(host, port, timeout=0.5)
        if doc and doc.get("pid") == proc.pid and doc.get("fingerprint") == config.fingerprint():
            return
        time.sleep(0.05)
    _terminate(proc.pid, proc)
    seen = f"last /health answer: {doc}; expected pid {proc.pid}, fingerprint {config.fingerprint()}"
    raise RuntimeError(f"offline engine on {host}:{port} not healthy after {START_TIMEOUT_S:.0f}s ({seen}):\n"
                       f"{read_log()}")


def _terminate(pid: int, proc: subprocess.Popen | None = None, grace_s: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _spawn(config: EngineConfig, host: str, log: IO[bytes], detached: bool) -> tuple[subprocess.Popen, int]:
    port = _free_port(host)
    proc = subprocess.Popen(  # noqa: S603
        _command(config, host, port), env=_child_env(config), stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=detached,
    )
    return proc, port


@contextlib.contextmanager
def running_engine(config: EngineConfig | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Run an engine subprocess on a free port for the `with` block; yields its base URL (…/v1)."""
    config = config or EngineConfig()
    with tempfile.TemporaryFile() as log:
        def read_log() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        proc, port = _spawn(config, host, log, detached=False)
        try:
            _wait_healthy(proc, host, port, config, read_log)
            yield f"http://{host}:{port}/v1"
        finally:
            _terminate(proc.pid, proc)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    with open(state_dir / LOCK_FILE, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _recorded_engine_alive(doc: dict[str, Any]) -> bool:
    pid, host, port = doc.get("pid"), doc.get("host"), doc.get("port")
    if not isinstance(pid, int) or not isinstance(port, int) or not isinstance(host, str) or not _alive(pid):
        return False
    h = health(host, port)
    return bool(h) and h.get("pid") == pid and h.get("fingerprint") == doc.get("fingerprint")


def ensure_engine(state_dir: Path, config: EngineConfig | None = None, host: str = "127.0.0.1") -> str:
    """The base URL of a healthy detached engine with `config`, reusing the recorded one if it fits.

    A recorded engine with a different config is stopped and replaced. The engine outlives the
    caller; `stop_engine` ends it. Its output goes to `state_dir/engine.log`.
    """
    config = config or EngineConfig()
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        doc = _read_state(state_dir)
        if doc and _recorded_engine_alive(doc):
            if doc.get("fingerprint") == config.fingerprint():
                return str(doc["base_url"])
            _terminate(int(doc["pid"]))
        log_path = state_dir / LOG_FILE
        with open(log_path, "ab") as log:
            proc, port = _spawn(config, host, log, detached=True)
        _detached.append(proc)

        def read_log() -> str:
            return log_path.read_text(errors="replace")[-4000:]

        _wait_healthy(proc, host, port, config, read_log)
        base_url = f"http://{host}:{port}/v1"
        record = {"pid": proc.pid, "host": host, "port": port, "base_url": base_url,
                  "fingerprint": config.fingerprint(), "config": config.public_dict(), "started_at": time.time()}
        tmp = state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(state_dir / STATE_FILE)
        return base_url


def stop_engine(state_dir: Path) -> bool:
    """Stop the engine recorded in `state_dir`; True if one was running and has been stopped."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return False
    with _locked(state_dir):
        doc = _read_state(state_dir)
        if doc is None:
            return False
        stopped = False
        if _recorded_engine_alive(doc):
            _terminate(int(doc["pid"]))
            stopped = True
        with contextlib.suppress(FileNotFoundError):
            (state_dir / STATE_FILE).unlink()
        return stopped
