"""What this project has running, and stopping it: `dream ps`, `dream stop`, `dream erase`.

Every long-lived process `dream` starts is findable by pid from the state folder (`.dream/`):

- the embedded PostgreSQL: `pgdata/postmaster.pid` (pgserver's own record);
- the offline engine: `engine.json` (`offline_engine.launcher`);
- the services (`dream start` itself and its daemon, webserver and deck; `dream ui`, `dream deck`,
  `dream daemon`, `dream webserver`): `services/<name>-<pid>.json`, written when they start.

A record names a pid *and* its start time (`/proc/<pid>/stat`), so a pid the system has since
given to another program is never taken for ours; stale records are dropped when read. Stopping
takes a snapshot of each process's descendants (run workers, code servers, Streamlit) first and
signals them too, so nothing is left reparented to init.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from resources.locations import state_dir

SERVICES_DIR = "services"
STOP_ORDER = ("start", "ui", "daemon", "webserver", "deck")  # supervisors first: they stop their own children
GRACE_S = 25.0  # `dream start` gives its children 20 s before it kills them


@dataclass(frozen=True)
class Running:
    """One process of the project: what it is, its pid, where it listens, since when."""

    name: str
    pid: int
    address: str
    started_at: float | None
    group: bool = False  # a process group leader: signal the whole group
    record: Path | None = None

    def since(self) -> str:
        return "?" if self.started_at is None else f"{datetime.fromtimestamp(self.started_at):%Y-%m-%d %H:%M:%S}"


# ---- processes by pid ----------------------------------------------------------------------------


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone or a
    zombie: with the pid, it names one process for good."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def alive(pid: int) -> bool:
    return start_ticks(pid) is not None


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pids: Iterable[int]) -> set[int]:
    """Every living process below `pids` (children, grandchildren, …)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if alive(p)}


# ---- records -----------------------------------------------------------------------------------------


def _services_dir() -> Path:
    path = state_dir() / SERVICES_DIR
    path.mkdir(exist_ok=True)
    return path


def record_service(name: str, pid: int | None = None, *, host: str | None = None, port: int | None = None,
                   group: bool = False) -> None:
    """Note that `name` runs as `pid` (default: this process, which is about to exec the service)."""
    pid = pid or os.getpid()
    doc = {"name": name, "pid": pid, "ticks": start_ticks(pid), "group": group, "started_at": time.time(),
           "address": f"http://{host}:{port}" if port else ""}
    path = _services_dir() / f"{name}-{pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def _services() -> list[Running]:
    found = []
    for path in sorted(_services_dir().glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            pid = int(doc["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if start_ticks(pid) is None or start_ticks(pid) != doc.get("ticks"):
            path.unlink(missing_ok=True)  # it ended, and the pid may belong to someone else now
            continue
        found.append(Running(str(doc.get("name")), pid, str(doc.get("address") or ""), doc.get("started_at"),
                             bool(doc.get("group")), path))
    return sorted(found, key=lambda p: (STOP_ORDER.index(p.name) if p.name in STOP_ORDER else 99, p.pid))


def _database() -> Running | None:
    from resources import embedded_postgres

    pid_file = embedded_postgres.data_dir() / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if not alive(pid):
        return None
    started = float(lines[2]) if len(lines) > 2 and lines[2].strip().isdigit() else None
    socket_dir = lines[4].strip() if len(lines) > 4 else ""
    return Running("database", pid, f"unix socket in {socket_dir}" if socket_dir else "", started)


def _engine() -> Running | None:
    try:
        doc = json.loads((state_dir() / "engine.json").read_text())
        pid = int(doc["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not alive(pid):
        return None
    return Running("engine", pid, str(doc.get("base_url", "")), doc.get("started_at"))


def running() -> list[Running]:
    """Everything of the project that runs now: the database, the engine, the services."""
    return [p for p in (_database(), _engine()) if p] + _services()


def render_ps(processes: list[Running]) -> str:
    if not processes:
        return f"nothing of this project is running (state folder: {state_dir()})"
    below = {p.pid: len(descendants([p.pid])) for p in processes}
    rows = [("what", "pid", "since", "children", "address")] + [
        (p.name, str(p.pid), p.since(), str(below[p.pid]), p.address) for p in processes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    return "\n".join(lines + ["", "`dream stop` stops them all (nothing is deleted)."])


# ---- stopping ----------------------------------------------------------------------------------------


def _signal(pid: int, signum: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in left if alive(p)}
    return left


def stop_process(process: Running, grace_s: float = GRACE_S, keep: frozenset[int] = frozenset()) -> bool:
    """SIGTERM the process (its group if it leads one) and, once it is gone, whatever it left below it
    except `keep` (the engine `dream start` spawned is its child, but is stopped on its own);
    SIGKILL what remains after `grace_s`. True if it had to be killed."""
    tree = (descendants([process.pid]) - keep - descendants(keep)) | {process.pid}
    _signal(process.pid, signal.SIGTERM, process.group)
    left = _wait_gone({process.pid}, grace_s)
    for pid in tree - {process.pid}:
        _signal(pid, signal.SIGTERM, False)
    left |= _wait_gone(tree - {process.pid}, 5.0)
    for pid in left:
        _signal(pid, signal.SIGKILL, False)
    _wait_gone(left, 5.0)
    if process.record:
        process.record.unlink(missing_ok=True)
    return bool(left)


def stop_all(say=print) -> int:
    """Stop the services (supervisors first), then the offline engine, then the embedded database; nothing
    is deleted. Returns how many processes were stopped."""
    from offline_engine import stop_engine
    from resources import embedded_postgres

    stopped = 0
    keep = frozenset(p.pid for p in (_engine(), _database()) if p)
    for service in _services():
        if not alive(service.pid):  # a supervisor stopped earlier took it down
            continue
        killed = stop_process(service, keep=keep)
        say(f"stopped {service.name} (pid {service.pid})" + (", killed after the grace period" if killed else ""))
        stopped += 1
    engine = _engine()
    if engine:
        stop_engine(state_dir())
        if alive(engine.pid):  # recorded but not healthy: stop it by its pid
            stop_process(engine)
        say(f"stopped engine (pid {engine.pid})")
        stopped += 1
    database = _database()
    if database:
        embedded_postgres.stop()  # pg_ctl's fast shutdown: sessions are ended, data is kept
        if alive(database.pid):
            stop_process(database)
        say(f"stopped database (pid {database.pid})")
        stopped += 1
    if not stopped:
        say("nothing of this project was running")
    return stopped


# ---- deleting ----------------------------------------------------------------------------------------

# what `dream` itself keeps in the state folder; anything else there means it is not only ours
STATE_ENTRIES = {"pgdata", "dagster_home", "engine.json", "engine.json.tmp", "engine.lock", "engine.log",
                 SERVICES_DIR}


def erase_state(say=print) -> Path:
    """Stop everything, then delete the state folder: the embedded database with every book, Dagster's run
    history, the engine's log. Refused if the folder holds anything `dream` did not put there."""
    import shutil

    folder = state_dir()
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in STATE_ENTRIES)
    if foreign:
        raise ValueError(f"{folder} holds files dream did not write ({', '.join(foreign[:5])}); "
                         "delete it yourself if you mean to")
    stop_all(say)
    shutil.rmtree(folder)
    return folder
