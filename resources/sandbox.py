"""The sandbox: model-written code runs here, never in the loop's process or with its privileges.

One run = one fresh process tree that calls a candidate function on a list of argument tuples and
reports, on its stdout, one JSON line with each call's `repr` or exception name. The expected values
never enter the sandbox: the caller compares (see `dream_pipeline.domains.code_repair.rules`), so a
candidate that forges the result line still has to produce the right answers to score.

How the process is held (each layer is probed once per process; what does not hold is said once,
as a warning, and shows in `SandboxRunner.capabilities`):

- a separate process (`python -S -s -B`: no site, no user paths) with an **empty environment**
  (but PYTHONHASHSEED=0, which the harness removes once read, so the same code gives the same
  result: replays can verify), in its own process group;
- a small bootstrap we control (a fresh single-threaded interpreter: no `preexec_fn`, which is
  unsafe in a threaded run worker) first **unshares** a network namespace (no interface but a
  downed loopback: the **network is cut**), a mount namespace and a PID namespace. In the mount
  namespace it builds a **jail**: a fresh tmpfs root holding the system runtime (/usr, /lib, ...)
  bound read-only, /dev/null, zero and urandom, a `/proc` of its own and a small private `/work`
  (0700, owned by the sandbox user) as cwd, and chroots into it: the checkout, the hidden tests,
  /tmp, /etc and every unix socket of the host are simply not there. Then it forks the harness
  as PID 1 of the PID namespace, so when the tree is killed every process in it dies, even one
  that left the process group. A mount namespace it cannot finish setting up fails the run;
- the harness sets **CPU-time, address-space, file-size, process-count** and open-file limits
  and, when the caller is root, **drops to nobody** (setgroups, setgid, setuid) before it execs
  the interpreter that reads the candidate; RLIMIT_NPROC binds only a non-root uid, one more
  reason for the drop. When the caller is not root it maps itself to 65534 in a user namespace
  (exec then drops every capability) and the candidate runs with the caller's rights (said once);
- a **wall-clock timeout** kills the whole process group; stdout is read up to a cap, and
  anything but exactly one well-formed result line scores 0 (`malformed`).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534  # nogroup
MAX_PAYLOAD_BYTES = 1_000_000
MAX_VALUE_CHARS = 10_000  # a call's repr longer than this counts as a failed call, not a result

STATUSES = ("ok", "timeout", "killed", "malformed", "error", "unavailable")
"""ok: one well-formed result line. timeout: the wall clock ran out. killed: a signal ended it (CPU or
file-size limit, memory). malformed: output other than one result line. error: exited without a result.
unavailable: the sandbox could not start (no usable interpreter)."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use. The defaults fit a small pure function and its tests."""

    cpu_s: int = 4
    # a backstop well above the CPU limits: on a loaded machine those decide, so results are reproducible
    wall_s: float = 20.0
    call_s: float = 0.5  # CPU seconds per call: a call that loops fails alone, the others still count
    memory_bytes: int = 256 * 1024 * 1024
    file_bytes: int = 1024 * 1024
    workspace_bytes: int = 16 * 1024 * 1024  # the private /work, a tmpfs inside the jail
    processes: int = 32
    open_files: int = 64
    output_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_bytes", "file_bytes", "workspace_bytes", "processes", "open_files",
                     "output_bytes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not (self.wall_s > 0 and self.call_s > 0):
            raise ValueError("wall_s and call_s must be > 0")


@dataclass(frozen=True)
class CallResult:
    """One call of the candidate: its repr, or the name of the exception it raised."""

    ok: bool
    value: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SandboxRun:
    """The outcome of one run. `calls` is empty unless `status == "ok"`: nothing else is trusted."""

    status: str
    calls: tuple[CallResult, ...] = ()
    detail: str = ""
    returncode: int | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Capabilities:
    """What the sandbox holds on this machine, as measured by a probe run inside it."""

    python: str | None
    privileges_dropped: bool = False
    network_cut: bool = False
    filesystem_jail: bool = False
    pid_namespace: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def missing(self) -> list[str]:
        wanted = {
            "privileges_dropped": "the candidate runs as the calling user (not root, so no drop to nobody)",
            "network_cut": "the network is NOT cut (no network namespace on this machine)",
            "filesystem_jail": "no file-system jail: the candidate sees the host's files its user may read",
            "pid_namespace": "no PID namespace: a process that leaves the group may outlive the run",
        }
        return [text for name, text in wanted.items() if not getattr(self, name)]


# --- code that runs inside the sandbox (standard library only) -------------------------------------

_BOOTSTRAP = r'''
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
# the interpreter's own symbols, libc's among them: `ctypes.util.find_library` would start `ldconfig -p` every run
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWNET, NEWPID, NEWUSER = 0x00020000, 0x40000000, 0x20000000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
def mount(src, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), "mount " + str(target))
def bind_ro(src, dst):
    mount(src, dst, None, MS_BIND | MS_REC)
    st = os.statvfs(src).f_flag  # keep the source's flags (a user namespace may not clear them)
    kept = (st & (MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048)) | ((1 << 21) if st & 4096 else 0)
    mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | kept)
def jail(root):
    # a fresh tmpfs as the new root: the system's runtime bound read-only, a few devices, an empty
    # /proc for the PID namespace and a small private /work; nothing else of the host is visible
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    for top in cfg["runtime"]:
        target = root + top
        if os.path.islink(top):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(top), target)
        elif os.path.isdir(top) and not os.path.exists(target):
            os.makedirs(target)
            bind_ro(top, target)
    os.mkdir(root + "/dev")
    for dev in ("null", "zero", "urandom", "random"):
        open(root + "/dev/" + dev, "w").close()
        mount("/dev/" + dev, root + "/dev/" + dev, None, MS_BIND)
    os.mkdir(root + "/proc")
    os.mkdir(root + "/work")
    owner = ",uid=%d,gid=%d" % (cfg["uid"], cfg["gid"]) if cfg["drop"] else ""
    mount("tmpfs", root + "/work", "tmpfs", MS_NOSUID | MS_NODEV,
          "size=%d,mode=0700%s" % (cfg["limits"]["workspace_bytes"], owner))
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    os.chroot(root)
    os.chdir("/work")
root = os.getuid() == 0
base = NEWNS | NEWNET | NEWPID | (0 if root else NEWUSER)
flags = 0
outer_uid, outer_gid = os.getuid(), os.getgid()
for attempt in (base, base & ~NEWPID, NEWNET | (0 if root else NEWUSER)):
    if libc.unshare(attempt) == 0:
        flags = attempt
        break
if flags & NEWUSER:  # the caller as uid 65534 inside, so files can be made and exec drops every capability
    for name, text in (("setgroups", "deny"), ("uid_map", "65534 %d 1" % outer_uid), ("gid_map", "65534 %d 1" % outer_gid)):
        with open("/proc/self/" + name, "w") as f:
            f.write(text)
fs = False
if flags & NEWNS:
    try:
        jail(cfg["workdir"])
        fs = True
    except OSError:
        os._exit(96)  # a mount namespace we could not finish setting up: refuse to run the candidate
pid = os.fork()
if pid == 0:
    if flags & NEWPID and fs:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    lim = cfg["limits"]
    for res, value in ((resource.RLIMIT_CPU, lim["cpu_s"]), (resource.RLIMIT_AS, lim["memory_bytes"]),
                       (resource.RLIMIT_FSIZE, lim["file_bytes"]), (resource.RLIMIT_NPROC, lim["processes"]),
                       (resource.RLIMIT_NOFILE, lim["open_files"]), (resource.RLIMIT_CORE, 0)):
        hard = value + 1 if res == resource.RLIMIT_CPU else value
        resource.setrlimit(res, (value, hard))
    if root and cfg["drop"]:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
        if os.getuid() != cfg["uid"] or os.geteuid() != cfg["uid"]:
            os._exit(97)
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL: die with the bootstrap
    # -s -S -B, not -I: the environment is ours, and a fixed hash seed makes a run reproducible
    os.execve(sys.executable, [sys.executable, "-s", "-S", "-B", "-c", cfg["harness"], str(int(fs))],
              {"PYTHONHASHSEED": "0"})
_, status = os.waitpid(pid, 0)
os._exit(os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
'''

_HARNESS = r'''
import ast, json, os, signal, sys
os.environ.clear()  # drops PYTHONHASHSEED and the LC_CTYPE that locale coercion adds: the candidate sees none
out = os.dup(1)
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 1)
os.dup2(null, 2)
payload = json.loads(sys.stdin.buffer.read(%(max_payload)d))
os.dup2(null, 0)
class CallTimeout(BaseException):
    pass
def on_alarm(signum, frame):
    raise CallTimeout()
signal.signal(signal.SIGPROF, on_alarm)
def emit(obj):
    os.write(out, (json.dumps(obj) + "\n").encode())
    os._exit(0)
if payload.get("probe"):
    name = "/tmp/.dream-sandbox-probe-%%d" %% os.getpid()
    try:
        open(name, "w").close()
        os.unlink(name)
        tmp = True
    except OSError:
        tmp = False
    emit({"probe": {"uid": os.getuid(), "pid": os.getpid(), "tmp_writable": tmp, "fs": sys.argv[1] == "1",
                    "visible": [p for p in payload["paths"] if os.path.exists(p)],
                    "interfaces": [name for _, name in __import__("socket").if_nameindex()]}})
results = []
namespace = {"__name__": "candidate"}
try:
    exec(compile(payload["code"], "<candidate>", "exec"), namespace)
    fn = namespace[payload["function"]]
    defined = None
except BaseException as exc:
    fn, defined = None, type(exc).__name__
for source in payload["calls"]:
    if fn is None:
        results.append({"ok": False, "error": "definition:" + str(defined)})
        continue
    try:
        args = ast.literal_eval(source)
        signal.setitimer(signal.ITIMER_PROF, payload["call_s"])
        try:
            text = repr(fn(*args))  # a __repr__ that never ends is the call's fault too
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        results.append({"ok": True, "value": text} if len(text) <= %(max_value)d else {"ok": False, "error": "TooLong"})
    except BaseException as exc:
        results.append({"ok": False, "error": type(exc).__name__})
emit({"results": results})
''' % {"max_payload": MAX_PAYLOAD_BYTES, "max_value": MAX_VALUE_CHARS}


# --- the caller's side ------------------------------------------------------------------------------


def _usable_by_others(path: Path) -> bool:
    """Can an unprivileged user execute `path` (every ancestor searchable, the file executable)?"""
    try:
        if not path.is_file() or not (path.stat().st_mode & stat.S_IXOTH):
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
    except OSError:
        return False


def find_python(drop: bool) -> str | None:
    """The interpreter the sandbox runs: `DREAM_SANDBOX_PYTHON`, else this one if the sandbox user may
    execute it, else a system `python3`. None when none qualifies."""
    configured = os.environ.get("DREAM_SANDBOX_PYTHON")
    candidates: list[str] = [configured] if configured else []
    candidates += [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                   os.path.realpath(sys.executable)]
    candidates += [p for p in (shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3") if p]
    for candidate in candidates:
        path = Path(os.path.realpath(candidate))
        if (_usable_by_others(path) if drop else os.access(path, os.X_OK)):
            return str(path)
    return None


RUNTIME = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


def _runtime_paths(python: str) -> list[str]:
    """What the jail shows of the host, read-only: the system's runtime folders, and the installation
    prefix of the sandbox's interpreter when it lives elsewhere (e.g. /opt/python)."""
    prefix = str(Path(python).parent.parent)
    paths = list(RUNTIME)
    if not any(prefix == p or prefix.startswith(p + "/") for p in RUNTIME) and prefix != "/":
        paths.append(prefix)
    return paths


class SandboxRunner:
    """Runs candidate functions in the sandbox. Cheap to create; the probe runs once per process."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.drop = os.geteuid() == 0

    @property
    def capabilities(self) -> Capabilities:
        return _probe()

    def run(self, code: str, function: str, calls: Sequence[str]) -> SandboxRun:
        """Call `function` defined by `code` once per argument tuple in `calls` (Python literals)."""
        if not function.isidentifier():
            raise ValueError(f"not a function name: {function!r}")
        payload = {"code": code, "function": function, "calls": list(calls), "call_s": self.limits.call_s}
        data = json.dumps(payload).encode()
        if len(data) > MAX_PAYLOAD_BYTES:
            return SandboxRun("error", detail=f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        caps = self.capabilities
        run = self._execute(data, caps.python)
        if run.status != "ok":
            return run
        calls_out = _parse_results(run.detail, len(calls))
        if calls_out is None:
            return SandboxRun("malformed", detail=_clip(run.detail), returncode=run.returncode, wall_s=run.wall_s)
        return SandboxRun("ok", calls_out, returncode=run.returncode, wall_s=run.wall_s)

    def _execute(self, data: bytes, python: str | None) -> SandboxRun:
        """Start the bootstrap, feed it `data`, read its stdout under the wall clock. On "ok", `detail`
        holds the raw stdout for the caller to parse."""
        if python is None:
            return SandboxRun("unavailable", detail="no Python interpreter the sandbox user may execute "
                                                    "(set DREAM_SANDBOX_PYTHON)")
        workdir = tempfile.mkdtemp(prefix="dream-sandbox-")
        started = time.monotonic()
        try:
            os.chmod(workdir, 0o700)
            if self.drop:
                os.chown(workdir, SANDBOX_UID, SANDBOX_GID)
            cfg = {
                "drop": self.drop, "uid": SANDBOX_UID, "gid": SANDBOX_GID,
                "workdir": workdir, "runtime": _runtime_paths(python),
                "harness": _HARNESS, "limits": {
                    "cpu_s": self.limits.cpu_s, "memory_bytes": self.limits.memory_bytes,
                    "file_bytes": self.limits.file_bytes, "workspace_bytes": self.limits.workspace_bytes,
                    "processes": self.limits.processes,
                    "open_files": self.limits.open_files},
            }
            proc = subprocess.Popen(  # noqa: S603 - our own bootstrap, argv only, no shell
                [python, "-I", "-S", "-B", "-c", _BOOTSTRAP, json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=workdir, env={}, close_fds=True, process_group=0,
            )
            deadline = started + self.limits.wall_s
            out, reason = _communicate(proc, data, deadline, self.limits.output_bytes)
            if reason is None and not _exited(proc.pid, deadline):
                reason = "timeout"
            _kill_group(proc)  # the leader is not reaped yet, so its group id still names this tree only
            code = proc.wait()
            wall = time.monotonic() - started
            if reason == "timeout":
                return SandboxRun("timeout", detail=f"over {self.limits.wall_s:g} s wall clock", returncode=code, wall_s=wall)
            if reason == "output":
                return SandboxRun("malformed", detail=f"over {self.limits.output_bytes} bytes of output",
                                  returncode=code, wall_s=wall)
            text = out.decode("utf-8", "replace")
            if code != 0 and not text.strip():
                status = "killed" if code >= 128 or code < 0 else "error"
                return SandboxRun(status, detail=f"exit status {code}", returncode=code, wall_s=wall)
            return SandboxRun("ok", detail=text, returncode=code, wall_s=wall)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _communicate(proc: subprocess.Popen, data: bytes, deadline: float, cap: int) -> tuple[bytes, str | None]:
    """Write stdin (in a thread: a candidate may never read it), read stdout up to `cap` bytes until EOF
    or the deadline. The reason is None, "timeout" or "output"."""

    def feed() -> None:
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except OSError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), "timeout"
            if not sel.select(timeout=left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                return b"".join(chunks), "output"
    return b"".join(chunks), None


def _exited(pid: int, deadline: float) -> bool:
    """Wait until `pid` has exited, without reaping it (so its process group id cannot be reused)."""
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _parse_results(text: str, expected_calls: int) -> tuple[CallResult, ...] | None:
    """Exactly one line, a JSON object `{"results": [...]}` with one well-typed entry per call; else None."""
    lines = text.splitlines()
    if len(lines) != 1 or not text.endswith("\n"):
        return None
    try:
        obj = json.loads(lines[0])
    except ValueError:
        return None
    if not isinstance(obj, dict) or set(obj) != {"results"} or not isinstance(obj["results"], list):
        return None
    if len(obj["results"]) != expected_calls:
        return None
    out = []
    for entry in obj["results"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("ok"), bool):
            return None
        if entry["ok"] and set(entry) == {"ok", "value"} and isinstance(entry["value"], str):
            out.append(CallResult(True, value=entry["value"]))
        elif not entry["ok"] and set(entry) == {"ok", "error"} and isinstance(entry["error"], str):
            out.append(CallResult(False, error=entry["error"][:200]))
        else:
            return None
    return tuple(out)


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


@cache
def _probe() -> Capabilities:
    """Run the probe harness once and measure what holds; warn once about what does not."""
    drop = os.geteuid() == 0
    python = find_python(drop)
    if python is None:
        caps = Capabilities(python=None, notes=("no interpreter the sandbox user may execute",))
        log.warning("sandbox unavailable: %s (set DREAM_SANDBOX_PYTHON)", caps.notes[0])
        return caps
    runner = SandboxRunner()
    probe_paths = [str(PROJECT_ROOT), tempfile.gettempdir(), str(Path.home())]
    run = runner._execute(json.dumps({"probe": True, "paths": probe_paths}).encode(), python)
    try:
        probe = json.loads(run.detail.splitlines()[0])["probe"] if run.ok else None
    except (ValueError, IndexError, KeyError, TypeError):
        probe = None
    if not isinstance(probe, dict):
        caps = Capabilities(python=python, notes=(f"probe failed: {run.status} {_clip(run.detail)}",))
    else:
        caps = Capabilities(
            python=python,
            privileges_dropped=drop and probe.get("uid") == SANDBOX_UID,
            network_cut=set(probe.get("interfaces") or []) <= {"lo"},
            filesystem_jail=bool(probe.get("fs")) and not probe.get("tmp_writable") and not probe.get("visible"),
            pid_namespace=probe.get("pid") == 1,
        )
    for text in caps.missing():
        log.warning("sandbox: %s", text)
    return caps


def describe(caps: Capabilities) -> Iterable[str]:
    """Readable lines about the sandbox on this machine (for benchmarks and `dream` output)."""
    yield f"interpreter      : {caps.python or 'none'}"
    yield f"unprivileged user: {'nobody (65534)' if caps.privileges_dropped else 'NO: runs as the calling user'}"
    yield f"network          : {'cut (own network namespace)' if caps.network_cut else 'NOT cut'}"
    yield (f"file system      : {'a jail: the system runtime read-only and a private /work' if caps.filesystem_jail else 'NO jail'}")
    yield f"process tree     : {'own PID namespace' if caps.pid_namespace else 'process group only'}"
    for note in caps.notes:
        yield f"note             : {note}"
