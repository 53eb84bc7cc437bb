"""Does a ballot stay the same size as the cast grows? Epochs at casts of 7, 16 and 64 agents.

Each cast runs its own book in a scratch database, through the full epoch graph (Dagster, the fabric,
the offline engine over HTTP), in the default context window (or `--window`). Figures per cast: the
review load (drafts per voter), reviews per draft, the ballot prompt tokens per voter (median over
every voter's first ballot request, as the engine counted them, and as the project estimates them),
the largest ballot request against the window, drafts cut on ballots, and the epoch's wall time.
`ballot_prompt_tokens_per_voter` is the engine's count; the goal is that 64 agents take at most 1.2x
what 7 do (a full review of 6 drafts).

Run: python -m bench.cast_size [--epochs N] [--window TOKENS] [--full]
     (fast: 1 epoch per cast; --full: 3)
`bench.engines` may call `cast_size_figures()`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence

import dagster as dg

from bench.common import print_result, print_table, scratch_fabric
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.tournament.token_budget import messages_tokens
from offline_engine import EngineConfig, running_engine
from resources.llm import LLMEngine

CASTS = (7, 16, 64)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def run_cast(cast: int, epochs: int, url: str, window: int | None) -> dict:
    """Run `epochs` epochs of a fresh book seated with `cast` agents; the figures of its ballots."""
    fabric = scratch_fabric(f"dream_bench_cast_{cast}")
    saved = {k: os.environ.get(k) for k in ("DREAM_CAST_SIZE", "DREAM_LLM_CONTEXT_TOKENS")}
    os.environ["DREAM_CAST_SIZE"] = str(cast)
    if window:
        os.environ["DREAM_LLM_CONTEXT_TOKENS"] = str(window)
    llm = LLMEngine(base_url=url)
    walls, prompts, estimates, largest, loads, received, cut, failed = [], [], [], 0, set(), Counter(), 0, 0
    try:
        with dg.instance_for_test() as instance:
            for number in range(1, epochs + 1):
                key = epoch_key("space_time", number)
                instance.add_dynamic_partitions("epochs", [key])
                started = time.perf_counter()
                result = dg.materialize(epoch_assets, instance=instance, partition_key=key, run_config=QUIET,
                                        resources={"fabric": fabric, "llm": llm}, raise_on_error=False)
                walls.append(time.perf_counter() - started)
                failed += not result.success
                epoch = fabric.epoch(key)
                for call in _first_ballots(fabric, key):
                    prompts.append(call["prompt_tokens"])
                    estimate = messages_tokens(call["request"]["messages"])
                    estimates.append(estimate)
                    largest = max(largest, estimate + call["request"]["max_tokens"])
                assignments = fabric.review_assignments(epoch.epoch_id)
                per_voter = Counter(a.voter_agent for a in assignments)
                loads |= set(per_voter.values())
                received.update(Counter(Counter(a.target_agent for a in assignments).values()))
                cut += len({a.target_agent for a in assignments if a.shown_chars is not None})
                window_used = epoch.context_window
                print(f"  cast {cast:>3} epoch {number}: {'ok' if result.success else 'FAILED'} "
                      f"({walls[-1]:.1f} s)", flush=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {
        "cast": cast,
        "epochs": epochs,
        "failed": failed,
        "review_load": ",".join(map(str, sorted(loads))),
        "reviews_per_draft": ",".join(map(str, sorted(received))),
        "ballot_prompt_tokens_median": statistics.median(prompts) if prompts else None,
        "ballot_estimate_median": statistics.median(estimates) if estimates else None,
        "largest_ballot_request": largest,
        "window": window_used,
        "drafts_cut_on_ballots": cut,
        "epoch_wall_s": statistics.median(walls),
        "_prompts": prompts,
    }


def _first_ballots(fabric, key: str) -> list[dict]:
    """Every voter's first ballot request of the epoch (a repair adds a message: not the ballot's size)."""
    with fabric.connection() as conn:
        return conn.execute(
            "SELECT DISTINCT ON (agent_name) agent_name, request, prompt_tokens FROM llm_calls"
            " WHERE epoch_key = %s AND purpose = 'ballot' AND status = 'ok'"
            " AND jsonb_array_length(request->'messages') = 2 ORDER BY agent_name, started_at",
            (key,),
        ).fetchall()


def cast_size_figures(epochs: int = 1, window: int | None = None, casts: Sequence[int] = CASTS,
                      seed: int = 11) -> tuple[list[dict], dict]:
    """The rows per cast and the figures of the RESULT line (for this benchmark and `bench.engines`)."""
    with running_engine(EngineConfig(seed=seed)) as url:
        rows = [run_cast(cast, epochs, url, window) for cast in casts]
    per_voter = {str(r["cast"]): r["ballot_prompt_tokens_median"] for r in rows}
    samples = {str(r["cast"]): r.pop("_prompts") for r in rows}
    base = per_voter.get("7")
    figures = {
        "ballot_prompt_tokens_per_voter": per_voter,
        "ratio_64_to_7": round(per_voter["64"] / base, 3) if base and per_voter.get("64") else None,
        "ratio_64_to_7_95ci": _ratio_interval(samples.get("64"), samples.get("7"), seed),
        "review_load": {str(r["cast"]): r["review_load"] for r in rows},
        "largest_ballot_request": max(r["largest_ballot_request"] for r in rows),
        "window": rows[0]["window"],
        "failed_epochs": sum(r["failed"] for r in rows),
    }
    return rows, figures


def _ratio_interval(large: list[int] | None, small: list[int] | None, seed: int,
                    rounds: int = 2000) -> list[float] | None:
    """A 95 % bootstrap interval of median(large) / median(small), resampling voters' ballots."""
    if not large or not small:
        return None
    rng = random.Random(seed)  # noqa: S311 - resampling, not cryptography
    ratios = sorted(
        statistics.median(rng.choices(large, k=len(large))) / statistics.median(rng.choices(small, k=len(small)))
        for _ in range(rounds)
    )
    return [round(ratios[int(0.025 * rounds)], 3), round(ratios[int(0.975 * rounds) - 1], 3)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per cast (default 1, --full 3)")
    parser.add_argument("--window", type=int, default=None, help="DREAM_LLM_CONTEXT_TOKENS (default: the setting)")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.full else 1)
    rows, figures = cast_size_figures(epochs, args.window)
    print_table("ballots by cast size (tokens per voter: the engine's count; estimate: the project's)", rows)
    print(f"\nballot prompt tokens per voter at 64 agents / at 7: {figures['ratio_64_to_7']} "
          f"(95 % interval {figures['ratio_64_to_7_95ci']}, resampling voters; goal: at most 1.2)")
    print_result(figures)


if __name__ == "__main__":
    main()
