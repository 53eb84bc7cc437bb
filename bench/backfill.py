"""A one-epoch backfill from the Dagster UI against `epoch_job`: how long each takes to materialize a
new epoch, run by run (Dagster's own start and end times of the run).

The UI's path is the implicit asset job (`__ASSET_JOB`: what "Materialize" on the asset graph and a
backfill of the epoch assets launch) with the executor the definitions give it; `epoch_job` is what
the loop runs. Each run is `dagster.execute_job` of the reconstructable job in a process of its own,
as a run worker does, on a scratch loop (embedded PostgreSQL, offline engine at a fixed latency).
Epochs alternate between the two jobs; the figure is the median of 3 (`--full`: 5) each, and the
ratio must stay at or under 2.

Run: python -m bench.backfill [--full]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import dagster as dg

from bench.common import print_result, print_table
from bench.loop_harness import LoopHarness


def _run_one(job: str, key: str) -> None:
    """In the child process: run `job` for epoch `key` and print the run's duration as JSON."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from dream_pipeline.cli.instance import dagster_instance
    from resources.locations import PROJECT_ROOT

    instance = dagster_instance()
    instance.add_dynamic_partitions("epochs", [key])
    # the job as a run worker rebuilds it from the code location (workspace.yaml: dream_pipeline.definitions)
    repository = ReconstructableRepository.for_module("dream_pipeline.definitions", "defs", str(PROJECT_ROOT))
    recon = repository.get_reconstructable_job(job)
    with dg.execute_job(recon, instance=instance, tags={"dagster/partition": key}) as result:
        record = instance.get_run_record_by_id(result.run_id)
        print(json.dumps({"success": result.success, "run_s": record.end_time - record.start_time,
                          "executor": recon.get_definition().executor_def.name}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="5 epochs per job (default: 3)")
    parser.add_argument("--child", nargs=2, metavar=("JOB", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run_one(*args.child)
        return
    reps = 5 if args.full else 3
    env = {"DREAM_ENGINE_TTFT_S": "0.3", "DREAM_ENGINE_TOKENS_PER_S": "250"}
    rows = []
    with LoopHarness("backfill", env) as loop:
        loop.dream("run", "--epochs", "1", "--no-text")  # seats the cast, warms the engine and storage
        for _ in range(reps):
            for job in ("epoch_job", "__ASSET_JOB"):
                key = f"space_time-{loop.fabric.next_epoch_number('space_time'):05d}"
                child = subprocess.run([sys.executable, "-m", "bench.backfill", "--child", job, key], env=loop.env,
                                       capture_output=True, text=True, timeout=900)
                if child.returncode != 0:
                    raise RuntimeError(f"{job} on {key} failed:\n{child.stderr[-3000:]}")
                figures = json.loads(child.stdout.strip().splitlines()[-1])
                rows.append({"job": job, "epoch": key, **figures})
                print(f"  {job:<12} {key}  {figures['run_s']:.1f} s  ({figures['executor']})", flush=True)
    by_job = {job: statistics.median(r["run_s"] for r in rows if r["job"] == job) for job in ("epoch_job", "__ASSET_JOB")}
    print_table("one epoch per run: epoch_job against the UI's asset job", rows)
    print_result({
        "epochs_per_job": reps,
        "all_succeeded": all(r["success"] for r in rows),
        "epoch_job_median_s": round(by_job["epoch_job"], 2),
        "ui_backfill_median_s": round(by_job["__ASSET_JOB"], 2),
        "ui_over_epoch_job": round(by_job["__ASSET_JOB"] / by_job["epoch_job"], 2),
        "ui_executor": next(r["executor"] for r in rows if r["job"] == "__ASSET_JOB"),
    })


if __name__ == "__main__":
    main()
