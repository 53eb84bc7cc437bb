"""A whole loop in a scratch folder: its own embedded PostgreSQL, offline engine and Dagster daemon.

Used by the benchmarks that need the real daemon (dead time, faults). Everything it starts binds to
127.0.0.1 or a unix socket, and everything is stopped and deleted on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from resources.fabric import StateFabric


class LoopHarness:
    def __init__(self, name: str, env: dict[str, str] | None = None) -> None:
        self.state = Path(tempfile.mkdtemp(prefix=f"dream_bench_{name}_"))
        self.name = name
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DREAM_", "DAGSTER_"))}
        far = datetime.now(UTC) + timedelta(hours=12)  # keep the PHASE window away from the measurement
        base.update({
            "DREAM_STATE_DIR": str(self.state),
            "DREAM_PHASE_START": far.strftime("%H:%M"),
            "DREAM_PHASE_END": (far + timedelta(minutes=1)).strftime("%H:%M"),
            "DREAM_PHASE_TZ": "UTC",
        })
        self.env = {**base, **(env or {})}
        self.daemon: subprocess.Popen | None = None
        self.fabric = StateFabric(database_url=self.dream("db", "url"))
        self.fabric.migrate()

    def dream(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "dream_pipeline.cli", *args], env=self.env, check=True, capture_output=True,
            text=True, timeout=300,
        ).stdout.strip()

    def start_daemon(self) -> None:
        self._log = open(self.state / "daemon.log", "a")  # noqa: SIM115 (closed in stop_daemon)
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "dream_pipeline.cli", "daemon"], env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop_daemon(self) -> None:
        """Stop the daemon's process group, then whatever it spawned in sessions of its own (Dagster's
        code servers): listed before the daemon goes, since they are re-parented once it has."""
        if self.daemon is not None and self.daemon.poll() is None:
            try:
                spawned = psutil.Process(self.daemon.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                spawned = []
            os.killpg(self.daemon.pid, signal.SIGTERM)
            try:
                self.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.daemon.pid, signal.SIGKILL)
            for child in spawned:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.terminate()
            _, alive = psutil.wait_procs(spawned, timeout=20)
            for child in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            self._log.close()
        self.daemon = None

    def committed(self, limit: int = 500) -> list[dict]:
        return [r for r in self.fabric.loop_timeline(limit) if r["status"] == "committed"]

    def wait_for(self, epochs: int, timeout_s: float, on_tick: Callable[[int], None] | None = None) -> None:
        """Until `epochs` epochs have committed; `on_tick(committed)` runs about once a second."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = len(self.committed())
            print(f"  {self.name}: {done}/{epochs} epochs committed", end="\r", flush=True)
            if done >= epochs:
                print()
                return
            if self.daemon is not None and self.daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited; see {self.state / 'daemon.log'}")
            if on_tick:
                on_tick(done)
            time.sleep(1)
        raise TimeoutError(f"{self.name}: {epochs} epochs did not commit in {timeout_s:.0f} s "
                           f"(log: {self.state / 'daemon.log'})")

    def close(self) -> None:
        self.stop_daemon()
        for args in (("engine", "stop"), ("db", "stop")):
            subprocess.run([sys.executable, "-m", "dream_pipeline.cli", *args], env=self.env, capture_output=True,
                           timeout=120)
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> LoopHarness:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
