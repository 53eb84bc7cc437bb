"""The loop on every kind of server: 3 epochs against each offline-engine profile, nothing configured
but the URL and the model (openai, vllm, llama_cpp_python, llama_cpp, ollama, bare: docs/offline_engine.md).

Per profile: chapters committed, the share of voters whose ballot was valid (an epoch that failed for
want of ballots counts all its voters as invalid), the vote mode the probe chose, context overflows
(HTTP 400s for a request past the context) and silent truncations (Ollama cutting a prompt), as the
engine counted them during the epochs (the probe's own deliberately oversized request, by which it learns
the window of a server that does not state it, is shown apart as `probe_overflows`), drafts cut by the
context or the cap, and the memory mode (vectors or full text).
Each epoch gets up to `--attempts` runs, as `dream run` gives it.

Then the cast-size scenario of `bench.cast_size`: one epoch each at casts of 7, 16 and 64 agents on
the bounded review design, and the median ballot prompt tokens per voter at each (`--no-casts` skips it).

Run: python -m bench.engines [--epochs N] [--full]   (fast: 3 epochs per profile; --full: 10)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

import dagster as dg

from bench.cast_size import cast_size_figures
from bench.common import print_result, print_table, scratch_fabric
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epoch_key
from offline_engine import EngineConfig, running_engine
from offline_engine.profiles import PROFILE_NAMES
from resources.llm import LLMEngine

RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
              "ops": {"roster_drafts_and_votes": {"config": {"phase_gate": False}}}}


def engine_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/engine/stats", timeout=5) as reply:  # noqa: S310 - our engine on loopback
        return json.loads(reply.read())


def run_profile(profile: str, epochs: int, attempts: int, seed: int) -> dict:
    fabric = scratch_fabric(f"dream_bench_engines_{profile}")
    asked = valid = 0
    committed = 0
    started = time.perf_counter()
    with running_engine(EngineConfig(seed=seed, profile=profile)) as url, dg.instance_for_test() as instance:
        llm = LLMEngine(base_url=url, fabric=fabric)  # the URL and the model: nothing else
        llm.probe_now()  # the probe's own oversized prompt (how a silent server's context is learned) is
        probe = engine_stats(url)["profile"]  # counted apart from the epochs' requests
        for number in range(1, epochs + 1):
            key = epoch_key("space_time", number)
            instance.add_dynamic_partitions("epochs", [key])
            for _ in range(attempts):
                result = dg.materialize(epoch_assets, instance=instance, partition_key=key, raise_on_error=False,
                                        resources={"fabric": fabric, "llm": llm}, run_config=RUN_CONFIG)
                epoch = fabric.find_epoch(key)
                votes = fabric.votes(epoch.epoch_id) if epoch else []
                voters = {v.voter_agent for v in votes}
                if epoch is not None and (voters or not result.success):
                    drafted = len(fabric.drafts(epoch.epoch_id))
                    asked += len(voters) + len(fabric.abstentions(epoch.epoch_id)) if voters else drafted
                    valid += len(voters)
                if result.success:
                    committed += 1
                    break
            else:
                break  # the loop would retry it later with backoff; here it stops the count
        stats = engine_stats(url)
        caps = fabric.engine_capabilities(url.rstrip("/"), llm.model) or {}
    with fabric.connection() as conn:
        drafts = conn.execute(
            "SELECT count(*) AS n, count(*) FILTER (WHERE truncated) AS cut FROM drafts").fetchone()
        ballot_tokens = [r["prompt_tokens"] for r in conn.execute(
            "SELECT prompt_tokens FROM llm_calls WHERE purpose = 'ballot' AND status = 'ok'"
            " AND prompt_tokens IS NOT NULL").fetchall()]
        modes = conn.execute("SELECT engine_modes FROM simulation_epochs ORDER BY epoch_number DESC LIMIT 1"
                             ).fetchone()
    return {
        "profile": profile,
        "chapters": committed,
        "ballot_valid_rate": round(valid / asked, 3) if asked else None,
        "vote_mode": caps.get("vote_mode"),
        "context_tokens": caps.get("context_tokens"),
        "concurrency": caps.get("concurrency"),
        "context_overflows": stats["profile"]["context_overflows"] - probe["context_overflows"],
        "silent_truncations": stats["profile"]["silent_truncations"] - probe["silent_truncations"],
        "probe_overflows": probe["context_overflows"],
        "embedding_mode": ((modes or {}).get("engine_modes") or {}).get("embedding_mode")
        or ("vectors" if caps.get("embeddings") else "full_text"),  # a failed last epoch decides again
        "drafts_cut": f"{drafts['cut']}/{drafts['n']}",
        "ballot_prompt_tokens": round(statistics.median(ballot_tokens)) if ballot_tokens else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="10 epochs per profile (default: 3)")
    parser.add_argument("--epochs", type=int, help="epochs per profile (overrides --full)")
    parser.add_argument("--attempts", type=int, default=2, help="runs per epoch before giving up (as dream run)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profiles", default=",".join(PROFILE_NAMES))
    parser.add_argument("--no-casts", action="store_true", help="skip the cast-size scenario (7, 16, 64 agents)")
    args = parser.parse_args()
    epochs = args.epochs or (10 if args.full else 3)
    rows = [run_profile(p, epochs, args.attempts, args.seed) for p in args.profiles.split(",")]
    print_table(f"{epochs} epochs per engine profile (URL and model only)", rows)
    per_voter = {"7": None, "16": None, "64": None}
    if not args.no_casts:
        cast_rows, figures = cast_size_figures(epochs=1, seed=args.seed)
        print_table("cast size: ballot prompt tokens per voter (bounded review, bench.cast_size)", cast_rows)
        per_voter = figures["ballot_prompt_tokens_per_voter"]
    keys = ("chapters", "ballot_valid_rate", "vote_mode", "context_overflows", "silent_truncations", "embedding_mode")
    print_result({
        "profiles": {r["profile"]: {k: r[k] for k in keys} for r in rows},
        "ballot_prompt_tokens_per_voter": per_voter,
    })


if __name__ == "__main__":
    main()
