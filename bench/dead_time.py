"""Dead time between epochs under the real Dagster daemon: the staged loop against Dagster's defaults.

Each scenario starts its own embedded PostgreSQL, offline engine (fixed latency) and Dagster daemon
in a scratch state folder, lets the loop run until enough epochs have committed, then stops it.
Dead time is measured in the fabric, from epoch N's commit (the Reaper's transaction) to epoch N+1's
first engine call (`llm_calls.started_at`), for consecutive epochs; the first epoch is a cold start and
is not counted. `to_barrier_median_s` is the part of it up to N+1 passing its barrier (its claim); an
overlap is an epoch released before its predecessor committed. `epoch_over_critical_path` is an epoch's wall time (barrier to commit) over its LLM critical
path (slowest draft + slowest ballot), median over epochs.

The staged scenario also prints where each epoch's time goes (bench/epoch.py: per epoch and per step,
engine critical path, step transitions, Dagster events, fabric connects and round trips, embeddings,
CPU), the dead time before each epoch in its parts (to the release, then the opening step, roster and
drafts, up to its first engine call) and the engine's probed concurrency; `epoch_overhead_s` is the median of an epoch's wall time minus its engine critical path (slowest
draft + slowest draft embedding + slowest ballot + the summary), `burst_over_slowest_draft` the median
of the burst's wall time (first draft request to last draft reply) over its slowest single draft.

Scenarios: `staged` (this project: the default staging depth, 5; run queue dequeue every 1 s, tag limit 4) and
`default` (sensor chaining only: staging off, Dagster's default run coordinator settings).

With `--books 2` the loop runs two books in turn (space_time and far_shore), one epoch at a time
across both: an overlap is then any two epochs, of either book, whose barrier-to-commit spans
intersect, and there must be none.

Run: python -m bench.dead_time [--epochs N] [--full] [--books 2]   (fast: 12 epochs each; --full: 30)
"""

from __future__ import annotations

import argparse
import statistics

from bench import epoch as epoch_profile
from bench.common import print_result, print_table
from bench.loop_harness import LoopHarness
from dream_pipeline.cli.status import dead_times
from dream_pipeline.defs.loop.sensors import STAGING_DEPTH

DEFAULT_DAGSTER_YAML = """\
storage:
  postgres:
    postgres_url:
      env: DREAM_DAGSTER_STORAGE_URL
telemetry:
  enabled: false
"""


BOOKS = ("space_time", "far_shore")


def overlaps(committed: list[dict]) -> int:
    """Pairs of epochs (any books) whose spans from barrier release to commit intersect."""
    spans = sorted((r["released_at"], r["end_time"]) for r in committed if r["released_at"] and r["end_time"])
    return sum(1 for i, (start, _) in enumerate(spans) for _, end in spans[:i] if start < end)


def run_scenario(name: str, staged: bool, epochs: int, seed: int, books: int = 1) -> dict:
    env = {
        "DREAM_ENGINE_SEED": str(seed),
        "DREAM_ENGINE_TTFT_S": "0.3",
        "DREAM_ENGINE_TOKENS_PER_S": "250",
        "DREAM_LOOP_STAGING_DEPTH": str(STAGING_DEPTH) if staged else "1",
    }
    with LoopHarness(name, env) as loop:
        stats_dir = loop.state / "fabric_stats"
        stats_dir.mkdir()
        loop.env["BENCH_FABRIC_STATS_DIR"] = str(stats_dir)
        if books > 1:
            experiments = loop.state / "experiments.yaml"
            experiments.write_text("experiments:\n" + "".join(f"  - book: {b}\n    enabled: true\n"
                                                                for b in BOOKS[:books]))
            loop.env["DREAM_EXPERIMENTS"] = str(experiments)
        if not staged:
            default_yaml = loop.state / "dagster-default.yaml"
            default_yaml.write_text(DEFAULT_DAGSTER_YAML)
            loop.env["DREAM_DAGSTER_YAML"] = str(default_yaml)
        loop.start_daemon()
        loop.wait_for(epochs + 1, timeout_s=120 + epochs * 60)
        loop.stop_daemon()
        committed = loop.committed()[: epochs + 1]
        gaps = dead_times(committed)  # to the next epoch's first engine call
        barrier_gaps = dead_times(committed, until="released_at")
        ratios = []
        with loop.fabric.connection() as conn:
            for row in committed[1:]:
                path = conn.execute(
                    "SELECT coalesce(max(latency_s) FILTER (WHERE purpose = 'draft'), 0)"
                    " + coalesce(max(latency_s) FILTER (WHERE purpose = 'ballot'), 0) AS s"
                    " FROM llm_calls WHERE epoch_key = %s",
                    (row["epoch_key"],),
                ).fetchone()["s"]
                if path:
                    ratios.append((row["end_time"] - row["released_at"]).total_seconds() / path)
        per_epoch, per_step, per_phase = epoch_profile.profile(loop.fabric, committed, stats_dir)
        parts = epoch_profile.dead_time_profile(loop.fabric, committed, stats_dir)
        engine = loop.fabric.latest_engine_capabilities() or {}
    print_table(f"{name}: where each epoch's time goes (seconds; barrier release to commit)", per_epoch)
    print_table(f"{name}: per step (median over epochs; fabric figures from the run's own process)", per_step)
    print_table(f"{name}: gaps between the engine phases (seconds; median over each domain's epochs)", per_phase)
    print_table(f"{name}: the dead time before each epoch in its parts (seconds; fabric and CPU from the release"
                " to the first engine call)", parts)
    # the probe's figure caps the calls in flight, drafts included (resources/engine_probe.py)
    print(f"{name}: the engine's probed concurrency: {engine.get('concurrency') or 'no limit seen'}")
    ordered = sorted(gaps)
    return {
        **epoch_profile.summary(per_epoch),
        "scenario": name,
        "epochs": len(gaps),
        "books": len({r["book"] for r in committed}),
        "overlaps": overlaps(committed),
        "dead_median_s": statistics.median(gaps),
        "dead_p95_s": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "dead_max_s": max(gaps),
        "to_barrier_median_s": statistics.median(barrier_gaps),
        "epoch_over_critical_path": statistics.median(ratios) if ratios else float("nan"),
        "engine_concurrency": engine.get("concurrency"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="30 epochs per scenario (default: 12)")
    parser.add_argument("--epochs", type=int, help="epochs per scenario (overrides --full)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--only", choices=["staged", "default"], help="run one scenario")
    parser.add_argument("--books", type=int, choices=[1, 2], default=1, help="books the loop runs in turn")
    args = parser.parse_args(argv)
    epochs = args.epochs or (30 if args.full else 12)
    print(f"dead-time benchmark: {epochs} epochs per scenario under the real daemon, {args.books} book(s)")
    rows = []
    for name, staged in [("staged", True), ("default", False)]:
        if args.only in (None, name):
            rows.append(run_scenario(name, staged, epochs, args.seed, args.books))
    print_table("dead time between consecutive epochs (commit -> the next epoch's first engine call)", rows)
    by = {r["scenario"]: r for r in rows}
    staged, default = by.get("staged"), by.get("default")
    print_result({
        "epochs": (staged or default)["epochs"],
        "books": args.books,
        "overlaps": sum(r["overlaps"] for r in rows),
        "dead_time_median_s": round(staged["dead_median_s"], 3) if staged else None,
        "dead_time_p95_s": round(staged["dead_p95_s"], 3) if staged else None,
        "dead_time_max_s": round(staged["dead_max_s"], 3) if staged else None,
        "epoch_over_critical_path": round(staged["epoch_over_critical_path"], 2) if staged else None,
        "epoch_overhead_s": round(staged["epoch_overhead_s"], 3) if staged else None,
        "burst_over_slowest_draft": round(staged["burst_over_slowest_draft"], 3) if staged else None,
        "engine_concurrency": staged["engine_concurrency"] if staged else None,  # None: no limit seen
        "default_dead_time_median_s": round(default["dead_median_s"], 3) if default else None,
        "default_dead_time_p95_s": round(default["dead_p95_s"], 3) if default else None,
    })


if __name__ == "__main__":
    main()
