"""Faults the loop must survive, injected into a real loop under the real Dagster daemon.

The offline engine answers 30 % of requests with a fault (429 with Retry-After, 500, 503, a stall past
the client's timeout, an empty completion, malformed JSON ballots); run workers are SIGKILLed mid-epoch
three times; the database is stopped and restarted once, and so is the Dagster daemon. The loop must finish every epoch by itself,
and the fabric must come out with no duplicate, orphan or half-written row.

Then the canon under faults (`bench/canon_faults.py`): a committed epoch is replayed through the UI's
path and SIGKILLed at each of its steps, and replayed once against an altered record, and the rows of
committed epochs must not change (`canon_changed` 0, the altered replay detected); and `dream start` is
stopped with Ctrl-C mid-epoch and started again (runs left live, interruption traces, seconds from the
restart to its first new commit).

Run: python -m bench.faults [--epochs N] [--full]   (fast: 8 epochs; --full: 20)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
import urllib.request
from collections import Counter

import psutil

from bench import canon_faults
from bench.common import print_result, print_table
from bench.loop_harness import LoopHarness


def engine_stats(loop: LoopHarness) -> dict:
    info = json.loads((loop.state / "engine.json").read_text())
    url = f"http://127.0.0.1:{info['port']}/v1/engine/stats"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our own engine on loopback)
        return json.loads(response.read())


def run_workers(loop: LoopHarness) -> list[psutil.Process]:
    """The processes executing this loop's epoch runs, oldest first (the oldest is the epoch in progress;
    younger ones are staged runs waiting at the barrier). The code server starts each run as a
    `multiprocessing` spawn child, so a worker is a `spawn_main` process of this loop's state folder."""
    home = str(loop.state)
    workers = []
    for process in psutil.process_iter(["cmdline", "create_time"]):
        if "spawn_main" not in " ".join(process.info["cmdline"] or []):
            continue
        try:
            environ = process.environ()
            if home in (environ.get("DREAM_STATE_DIR"), environ.get("DAGSTER_HOME", "")[: len(home)]):
                workers.append(process)
        except psutil.Error:
            continue
    return sorted(workers, key=lambda p: p.info["create_time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="20 epochs (default: 8)")
    parser.add_argument("--epochs", type=int, help="epochs to complete (overrides --full)")
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    epochs = args.epochs or (20 if args.full else 8)
    env = {
        "DREAM_ENGINE_SEED": "11",
        "DREAM_ENGINE_TTFT_S": "0.2",
        "DREAM_ENGINE_TOKENS_PER_S": "400",
        "DREAM_ENGINE_FAULT_RATE": "0.3",
        "DREAM_ENGINE_STALL_S": "4",
        "DREAM_LLM_TIMEOUT_S": "3",
    }
    print(f"fault benchmark: {epochs} epochs, 30% engine faults, {args.kills} SIGKILLs, one database restart")
    kills: list[str] = []
    restarts = 0
    daemon_restarts = 0
    started = time.monotonic()
    with LoopHarness("faults", env) as loop:
        loop.start_daemon()
        # Kill k fires a few seconds after its epoch threshold is crossed, each later than the last, so the
        # kills land at different moments of an epoch (drafting, voting, committing).
        kill_plan = [(max(1, round(epochs * (i + 1) / (args.kills + 1))), 1.0 + 5.0 * i) for i in range(args.kills)]
        restart_at = max(1, epochs // 2) if epochs > 2 else None
        daemon_restart_at = max(1, (3 * epochs) // 4)
        crossed: dict[int, float] = {}

        def inject(done: int) -> None:
            nonlocal restarts, daemon_restarts
            if done >= daemon_restart_at and daemon_restarts == 0:
                loop.stop_daemon()
                loop.start_daemon()
                daemon_restarts += 1
            if kill_plan and done >= kill_plan[0][0]:
                threshold, delay = kill_plan[0]
                first_seen = crossed.setdefault(threshold, time.monotonic())
                workers = run_workers(loop) if time.monotonic() - first_seen >= delay else []
                if workers:
                    victim = workers[0]
                    os.kill(victim.pid, signal.SIGKILL)
                    kills.append(f"pid {victim.pid}, {time.monotonic() - first_seen:.0f} s after epoch {done}")
                    kill_plan.pop(0)
            if restart_at is not None and done >= restart_at and restarts == 0:
                loop.dream("db", "stop")
                time.sleep(2)
                loop.dream("db", "url")  # starts it again
                restarts += 1

        loop.wait_for(epochs, timeout_s=300 + epochs * 120, on_tick=inject)
        loop.stop_daemon()
        elapsed = time.monotonic() - started
        stats = engine_stats(loop)
        fabric = loop.fabric
        integrity = fabric.integrity()  # the fabric's own checks: the PHASE job reads the same
        committed = len(loop.committed())
        keys = [r["epoch_key"] for r in loop.committed()]
        forfeits = sum(len(fabric.forfeits(fabric.epoch(key).epoch_id)) for key in keys)
        counts = fabric.table_counts()
        abstentions, recorded_calls = counts["vote_abstentions"], counts["llm_calls"]
        with fabric.connection() as conn:
            failed_calls = Counter(
                r["error"].split(":")[0]
                for r in conn.execute("SELECT error FROM llm_calls WHERE status = 'error'")
            )
            failures = conn.execute(
                "SELECT count(*) AS n FROM simulation_epochs WHERE timings ? 'failure'"
            ).fetchone()["n"]
        kill_rows = canon_faults.replay_kills(loop, keys[len(keys) // 2])
        tamper = canon_faults.tampered_replay(loop, keys[len(keys) // 2 - 1])
        restart = canon_faults.stop_and_restart(loop)

    faults = {k: v for k, v in stats.get("faults", {}).items() if v and k != "total"}
    print_table("engine faults injected (offline engine's count)", [{"kind": k, "count": v} for k, v in faults.items()])
    print_table("calls that failed after the client's retries", [{"error": k, "count": v} for k, v in failed_calls.items()])
    print_table("process faults", [{"kind": "SIGKILL", "detail": k} for k in kills]
                + [{"kind": "database restart", "detail": f"{restarts} time(s)"},
                   {"kind": "daemon restart", "detail": f"{daemon_restarts} time(s)"}])
    summary = {
        "epochs_planned": epochs,
        "epochs_completed": committed,
        "wall_s": round(elapsed, 1),
        "faults_injected": sum(faults.values()),
        "engine_requests": stats.get("requests", {}).get("total"),
        # every call the pipeline made is one llm_calls row, whatever the client went through to get it;
        # the rest are the client's retries, plus requests of killed workers that never got recorded and
        # the start-up probes of `dream daemon` (two)
        "retries": (stats.get("requests", {}).get("total") or 0) - recorded_calls,
        "kills": len(kills),
        "db_restarts": restarts,
        "daemon_restarts": daemon_restarts,
        "epochs_with_a_failed_run": failures,
        "forfeits": forfeits,
        "abstentions": abstentions,
        "duplicates": integrity["duplicate_chapters"] + integrity["duplicate_replacements"],
        "orphans": integrity["orphan_votes"] + integrity["chapters_of_open_epochs"],
        "half_commits": integrity["committed_without_chapter"] + integrity["incomplete_ballots"]
        + integrity["open_behind_a_later_epoch"],
    }
    print_table("replays SIGKILLed at each step (the UI's path: dagster asset materialize)", kill_rows)
    print_table("a replay against an altered record (one vote changed)", [tamper])
    print_table("Ctrl-C of dream start mid-epoch, then dream start", [restart])
    summary.update({
        "replay_kills": sum(r["killed"] for r in kill_rows),
        "canon_changed": sum(r["canon_changed"] for r in kill_rows) + tamper["canon_changed"],
        "tampered_replays_detected": int(tamper["detected"]),
        "stop_runs_left_live": restart["runs_left_live"],
        "stop_runs_failed": restart["runs_failed_by_the_stop"],
        "stop_interruption_traces": restart["interruption_traces"],
        "restart_to_first_commit_s": restart["restart_to_first_commit_s"],
    })
    print_table("result", [summary])
    print_result(summary)


if __name__ == "__main__":
    main()
