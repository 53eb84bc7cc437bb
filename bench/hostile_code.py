"""Hostile candidates: code that tries to get out of the sandbox, and how to tell whether it did.

Each case defines `f(x)` for the calls (1,), (2,), (3,); a correct answer is x + 1, and every case
returns it only when its attack worked, so a score above 0 is an escape. Attacks with a side effect
outside the sandbox are also checked from outside: a connection to a listener of the caller, a file
outside the private directory, a process left running after the run. Shared by tests/test_sandbox.py
(one test per case) and `python -m bench.calibration` (the `sandbox_escapes` figure).
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from dream_pipeline.domains.code_repair.rules import judge_calls, pass_rate
from dream_pipeline.domains.code_repair.tasks import TestCase
from resources.sandbox import _HARNESS, PROJECT_ROOT, SandboxRun, SandboxRunner

TESTS = (TestCase("(1,)", "2"), TestCase("(2,)", "3"), TestCase("(3,)", "4"))
HIDDEN_FILE = PROJECT_ROOT / "dream_pipeline" / "domains" / "code_repair" / "tasks" / "sum_to_n.toml"


@dataclass(frozen=True)
class HostileCase:
    name: str
    limit: str  # the part of the sandbox that stops it
    code: str  # a template: {port} {unix} {pid} {outside} {inside_checkout} {secret_name} {secret} {hidden} {token}


CASES: tuple[HostileCase, ...] = (
    HostileCase("network_connect", "network namespace", '''
import socket
def f(x):
    socket.create_connection(("127.0.0.1", {port}), timeout=0.5).close()
    return x + 1
'''),
    HostileCase("network_external", "network namespace", '''
import socket
def f(x):
    socket.create_connection(("1.1.1.1", 53), timeout=0.5).close()
    return x + 1
'''),
    HostileCase("unix_socket", "file-system jail", '''
import socket
def f(x):
    client = socket.socket(socket.AF_UNIX)
    client.connect("{unix}")
    client.close()
    return x + 1
'''),
    HostileCase("environment_secret", "empty environment", '''
import os
def f(x):
    if os.environ.get("{secret_name}") != "{secret}":
        raise PermissionError("no secret in the environment")
    return x + 1
'''),
    HostileCase("caller_environ", "unprivileged user, PID namespace", '''
def f(x):
    with open("/proc/{pid}/environ", "rb") as fh:
        if b"{secret}" not in fh.read():
            raise PermissionError("no secret in the caller's environment")
    return x + 1
'''),
    HostileCase("write_outside", "file-system jail", '''
def f(x):
    with open("{outside}", "w") as fh:
        fh.write("escaped")
    return x + 1
'''),
    HostileCase("write_checkout", "file-system jail", '''
def f(x):
    with open("{inside_checkout}", "w") as fh:
        fh.write("escaped")
    return x + 1
'''),
    HostileCase("read_hidden_tests", "file-system jail", '''
def f(x):
    with open("{hidden}") as fh:
        if "hidden" not in fh.read():
            raise LookupError("no hidden tests")
    return x + 1
'''),
    HostileCase("read_shadow", "file-system jail, unprivileged user", '''
def f(x):
    with open("/etc/shadow") as fh:
        fh.read()
    return x + 1
'''),
    HostileCase("regain_root", "unprivileged user", '''
import os
def f(x):
    os.setuid(0)
    if os.getuid() != 0:
        raise PermissionError("still unprivileged")
    return x + 1
'''),
    HostileCase("signal_caller", "unprivileged user, PID namespace", '''
import os
def f(x):
    os.kill({pid}, 0)
    return x + 1
'''),
    HostileCase("fork_bomb", "process-count limit, CPU time, wall clock, PID namespace", '''
import os
def f(x):
    while True:
        try:
            os.fork()
        except OSError:
            pass
'''),
    HostileCase("orphan_process", "PID namespace", '''
import os
def f(x):
    if os.fork() == 0:
        os.setsid()
        os.execv("/bin/sleep", ["sleep", "{token}"])
    raise RuntimeError("left a process behind")
'''),
    HostileCase("memory_hog", "memory limit", '''
def f(x):
    blocks = []
    while True:
        blocks.append(bytearray(1 << 26))
'''),
    HostileCase("huge_allocation", "memory limit", '''
def f(x):
    block = bytearray(1 << 34)
    return x + 1 + block[0]
'''),
    HostileCase("infinite_loop", "per-call CPU alarm", '''
def f(x):
    while True:
        pass
'''),
    HostileCase("stubborn_loop", "CPU time, wall clock", '''
def f(x):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
'''),
    HostileCase("sleep_forever", "wall clock", '''
import time
def f(x):
    time.sleep(10 ** 6)
    return x + 1
'''),
    HostileCase("big_file", "file-size limit", '''
def f(x):
    with open("big.bin", "wb") as fh:
        fh.write(b"x" * (8 << 20))
    return x + 1
'''),
    HostileCase("garbage_output", "one result line or nothing", '''
import os
for fd in range(1, 10):
    try:
        os.write(fd, b"garbage \\x00\\xff not json\\n")
    except OSError:
        pass
os._exit(0)
def f(x):
    return x + 1
'''),
    HostileCase("forged_result", "expected values never enter the sandbox", '''
import os
line = b'{{"results": [{{"ok": true, "value": "999"}}, {{"ok": true, "value": "999"}}, {{"ok": true, "value": "999"}}]}}\\n'
for fd in range(3, 10):
    try:
        os.write(fd, line)
    except OSError:
        pass
os._exit(0)
def f(x):
    return x + 1
'''),
    HostileCase("output_flood", "output cap", '''
import os
chunk = b"x" * 65536
for _ in range(2000):
    for fd in range(3, 10):
        try:
            os.write(fd, chunk)
        except OSError:
            pass
def f(x):
    return x + 1
'''),
)


@dataclass
class Bait:
    """What a hostile candidate reaches for, set up in the caller: a listening socket, a secret in the
    environment, paths outside the sandbox."""

    listener: socket.socket
    port: int
    unix_listener: socket.socket
    unix: Path
    secret_name: str
    secret: str
    outside: Path
    inside_checkout: Path
    token: str

    def fill(self, case: HostileCase) -> str:
        return case.code.format(port=self.port, unix=self.unix, pid=os.getpid(), outside=self.outside,
                                inside_checkout=self.inside_checkout, secret_name=self.secret_name,
                                secret=self.secret, hidden=HIDDEN_FILE, token=self.token)

    def connections(self) -> int:
        count = 0
        for listener in (self.listener, self.unix_listener):
            listener.setblocking(False)
            while True:
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, OSError):
                    break
                conn.close()
                count += 1
        return count


@contextmanager
def bait() -> Iterator[Bait]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    name = "DREAM_SANDBOX_BAIT_" + secrets.token_hex(4).upper()
    value = secrets.token_hex(16)
    tag = secrets.token_hex(6)
    outside = Path(tempfile.gettempdir()) / f"dream-sandbox-escape-{tag}"
    inside = PROJECT_ROOT / f".dream-sandbox-escape-{tag}"
    unix = Path(tempfile.gettempdir()) / f"dream-sandbox-bait-{tag}.sock"
    unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_listener.bind(str(unix))
    unix.chmod(0o777)  # anyone may connect: only the jail keeps the candidate away
    unix_listener.listen(16)
    os.environ[name] = value
    try:
        yield Bait(listener, listener.getsockname()[1], unix_listener, unix, name, value, outside, inside,
                   token=f"{600 + secrets.randbelow(300)}.{secrets.randbelow(10**6):06d}")
    finally:
        os.environ.pop(name, None)
        listener.close()
        unix_listener.close()
        for path in (outside, inside, unix):
            path.unlink(missing_ok=True)


def _leftovers(token: str, grace_s: float = 2.0) -> list[int]:
    """Processes of a sandbox still alive after `grace_s` (the kernel tears a PID namespace down just
    after its bootstrap is reaped): running our harness, or the orphan's marked `sleep`."""
    deadline = time.monotonic() + grace_s
    while True:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            cmdline = proc.info.get("cmdline") or []
            if proc.info.get("status") != psutil.STATUS_ZOMBIE and (token in cmdline or _HARNESS in cmdline):
                found.append(proc.info["pid"])
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@dataclass(frozen=True)
class CaseResult:
    name: str
    limit: str
    status: str
    pass_rate: float
    escaped: bool
    evidence: str


def run_case(runner: SandboxRunner, case: HostileCase, world: Bait) -> CaseResult:
    """Run one hostile case and look for evidence of escape inside (a score) and outside (side effects)."""
    run: SandboxRun = runner.run(world.fill(case), "f", [t.args for t in TESTS])
    rate = pass_rate(judge_calls(TESTS, run.ok, run.calls))
    evidence = []
    if rate > 0:
        evidence.append(f"scored {rate:.2f}")
    if world.connections():
        evidence.append("connected to the caller's listener")
    for path in (world.outside, world.inside_checkout):
        if path.exists():
            evidence.append(f"wrote {path}")
    left = _leftovers(world.token)
    if left:
        evidence.append(f"left processes {left}")
        for pid in left:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
    return CaseResult(case.name, case.limit, run.status, rate, bool(evidence), "; ".join(evidence))


def run_all(runner: SandboxRunner) -> list[CaseResult]:
    with bait() as world:
        return [run_case(runner, case, world) for case in CASES]
