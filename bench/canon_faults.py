"""The canon under faults: replays SIGKILLed at every step, a replay against an altered record, and a
Ctrl-C of `dream start` followed by a start. Used by `bench.faults` on its loop once the loop is done.

A replay here is the UI's path: `dagster asset materialize` of one epoch's assets through the
project's definitions (the implicit asset job, its default executor), in a process of its own.
`canon_changed` counts the rows of committed epochs (ids, times and fingerprints included) that differ
from before: it must stay 0 whatever happens to a replay.

Run alone (no engine faults, the engine at a fixed latency): python -m bench.canon_faults
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg

from bench.loop_harness import LoopHarness
from resources.locations import PROJECT_ROOT

EPOCH_ASSETS = "roster,drafts,peer_votes,elo_rankings,chapter"
KILL_STEPS = ["roster_drafts_and_votes", "rankings_and_chapter"]


def rows_changed(before: dict[str, list[str]], after: dict[str, list[str]]) -> int:
    """Rows in one snapshot and not the other (a changed row counts once on each side)."""
    return sum(len(set(before[t]) ^ set(after.get(t, []))) for t in before)


def _materialize(loop: LoopHarness, key: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dream_pipeline.definitions",
               "--select", EPOCH_ASSETS, "--partition", key]
    env = {**loop.env, "DAGSTER_HOME": str(loop.state / "dagster_home"),
           "DREAM_DAGSTER_STORAGE_URL": _dagster_url(loop).replace("postgresql://", "postgresql+psycopg2://", 1)}
    return subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def replay(loop: LoopHarness, key: str, kill_at: str | None = None, timeout_s: float = 300) -> tuple[int, str]:
    """Replay epoch `key`; with `kill_at`, SIGKILL the process the moment that step starts. Returns the
    exit code (-9 when killed) and the output."""
    process = _materialize(loop, key)
    lines = []
    deadline = time.monotonic() + timeout_s
    for line in process.stdout:
        lines.append(line)
        if kill_at and "STEP_START" in line and f'step "{kill_at}"' in line:
            time.sleep(0.2)  # inside the step, not before it
            os.killpg(process.pid, signal.SIGKILL)
            break
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            break
    return process.wait(), "".join(lines)


def replay_kills(loop: LoopHarness, key: str) -> list[dict]:
    rows = []
    for step in KILL_STEPS:
        before = loop.fabric.canon_snapshot()
        code, _ = replay(loop, key, kill_at=step)
        rows.append({"replay of": key, "killed at": step, "killed": code == -signal.SIGKILL,
                     "canon_changed": rows_changed(before, loop.fabric.canon_snapshot())})
    return rows


def tampered_replay(loop: LoopHarness, key: str) -> dict:
    """Alter one recorded vote of a committed epoch, replay it, put the vote back."""
    fabric = loop.fabric
    epoch = fabric.epoch(key)
    with fabric.connection() as conn:
        vote = conn.execute("SELECT voter_agent, target_agent, insight_score FROM peer_votes WHERE epoch_id = %s"
                            " ORDER BY voter_agent, target_agent LIMIT 1", (epoch.epoch_id,)).fetchone()
        where = (epoch.epoch_id, vote["voter_agent"], vote["target_agent"])
        conn.execute("UPDATE peer_votes SET insight_score = %s WHERE epoch_id = %s AND voter_agent = %s"
                     " AND target_agent = %s", (11 - vote["insight_score"], *where))
    tampered = fabric.canon_snapshot()
    code, output = replay(loop, key)
    detected = code != 0 and "does not match its commit" in output and "votes[" in output
    changed = rows_changed(tampered, fabric.canon_snapshot())
    with fabric.connection() as conn:
        conn.execute("UPDATE peer_votes SET insight_score = %s WHERE epoch_id = %s AND voter_agent = %s"
                     " AND target_agent = %s", (vote["insight_score"], *where))
    diff = next((line.strip() for line in output.splitlines() if "votes[" in line), "")
    return {"replay of": key, "detected": detected, "canon_changed": changed, "diff": diff[:110]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dagster_url(loop: LoopHarness) -> str:
    """Dagster's own database on the loop's embedded server."""
    return loop.fabric.url().replace("/dream?", "/dagster?", 1)


def _dagster_runs(loop: LoopHarness) -> dict[str, int]:
    with psycopg.connect(_dagster_url(loop)) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())


def stop_and_restart(loop: LoopHarness, timeout_s: float = 120) -> dict:
    """`dream start` until an epoch is in progress, Ctrl-C (SIGINT), then `dream start` again: the runs
    the stop ended, what the restart found, and the seconds from the restart to its first new commit."""
    loop.stop_daemon()
    port = _free_port()

    def start() -> subprocess.Popen:
        log = open(loop.state / "start.log", "a")  # noqa: SIM115 (lives as long as the process)
        return subprocess.Popen([sys.executable, "-m", "dream_pipeline.cli", "start", "--no-deck", "--port", str(port)],
                                env=loop.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    first = start()
    done = len(loop.committed())
    deadline = time.monotonic() + timeout_s
    while len(loop.committed()) < done + 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # mid-epoch
    runs_before = _dagster_runs(loop)
    os.killpg(first.pid, signal.SIGINT)
    first.wait(timeout=60)
    runs_after = _dagster_runs(loop)
    log = (loop.state / "start.log").read_text()
    traces = log.count("DagsterExecutionInterruptedError")
    if traces:
        at = log.index("DagsterExecutionInterruptedError")
        print("interruption trace in the log:\n" + log[max(0, at - 1500):at + 200])
    left = sum(runs_after.get(s, 0) for s in ("STARTING", "STARTED", "QUEUED", "NOT_STARTED", "CANCELING"))
    failed_by_stop = runs_after.get("FAILURE", 0) - runs_before.get("FAILURE", 0)

    restarted_at = datetime.now(UTC)
    clock = time.monotonic()
    second = start()
    first_commit_s = None
    while time.monotonic() - clock < timeout_s:
        if any(r["end_time"] and r["end_time"] > restarted_at for r in loop.committed()):
            first_commit_s = time.monotonic() - clock
            break
        time.sleep(0.25)
    os.killpg(second.pid, signal.SIGINT)
    second.wait(timeout=60)
    # where the time went: the first run the restarted loop created, its barrier release, its first call
    with psycopg.connect(_dagster_url(loop)) as conn:
        first_run = conn.execute("SELECT min(create_timestamp) FROM runs WHERE create_timestamp > %s",
                                 (restarted_at.replace(tzinfo=None),)).fetchone()[0]
    first = next((r for r in loop.committed() if r["end_time"] and r["end_time"] > restarted_at), None)

    def since(moment) -> float | None:
        if moment is None:
            return None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return round((moment - restarted_at).total_seconds(), 1)

    print("\n".join(line for line in (loop.state / "start.log").read_text().splitlines()[-400:]
                    if any(k in line for k in ("resumed", "Sensor dream_loop_sensor", "Started process for run",
                                               "STEP_START", "RUN_START", "stopping", "canceled"))
                    and "_every_" not in line)[-6000:])
    return {"runs_left_live": left, "runs_failed_by_the_stop": failed_by_stop, "interruption_traces": traces,
            "restart_to_first_run_s": since(first_run),
            "restart_to_release_s": since(first["released_at"]) if first else None,
            "restart_to_first_commit_s": None if first_commit_s is None else round(first_commit_s, 1)}


def main() -> None:
    from bench.common import print_result, print_table

    env = {"DREAM_ENGINE_SEED": "11", "DREAM_ENGINE_TTFT_S": "0.2", "DREAM_ENGINE_TOKENS_PER_S": "400"}
    with LoopHarness("canon", env) as loop:
        loop.dream("run", "--epochs", "3", "--no-text")
        kill_rows = replay_kills(loop, "space_time-00002")
        tamper = tampered_replay(loop, "space_time-00001")
        restart = stop_and_restart(loop)
    print_table("replays SIGKILLed at each step (the UI's path: dagster asset materialize)", kill_rows)
    print_table("a replay against an altered record (one vote changed)", [tamper])
    print_table("Ctrl-C of dream start mid-epoch, then dream start", [restart])
    print_result({
        "replay_kills": sum(r["killed"] for r in kill_rows),
        "canon_changed": sum(r["canon_changed"] for r in kill_rows) + tamper["canon_changed"],
        "tampered_replays_detected": int(tamper["detected"]),
        **{f"stop_{k}" if not k.startswith("restart") else k: v for k, v in restart.items()},
    })


if __name__ == "__main__":
    main()
