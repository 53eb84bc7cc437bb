"""How good is the jury? CodeRepair epochs where hidden tests know the answer.

Two parts. The main figures come from many epochs run IN PROCESS, outside the Dagster loop (for a
tight interval in seconds): the benchmark composes the pieces the loop uses: the task set, the offline
engine's fixes and reviews (called directly, not over HTTP), the tournament's blind ballots
(`plan_presentations`, `parse_ballot`, `epoch_scores`), the sandbox and the domain's rules. Then
`--loop N` (default 6) epochs of the `code_repair` experiment run THROUGH DAGSTER (the epoch's assets,
a scratch database, the offline engine over HTTP, the real sandbox) and their figures are read back
from the fabric's `candidate_tests` and `voter_calibration` (the `loop_*` keys).

One epoch = one task for one seed, with the domain's cast of five. Per epoch: every agent proposes a
fix (`offline_engine.code.propose_fix`), every fix runs against the hidden tests in the sandbox (a
fix's result is reused when the same code comes back for the same task), every agent reviews the
others' fixes blind (`review_fixes`), and the winner is picked by `rules.pick_fix_winner`. Then every
hostile candidate of `bench.hostile_code` runs once in the sandbox.

Figures:
- jury_test_spearman: mean over epochs of Spearman(mean peer score, hidden-test pass rate) across the
  epoch's candidates (epochs whose candidates all pass the same share are left out: nothing to rank);
- winner_pass_rate: mean pass rate of the winning fixes; oracle_winner_pass_rate: mean of the best
  candidate's pass rate per epoch; best_candidate_pass_rate: the mean pass rate of the best single
  agent over the run (always trusting one engineer);
- jury_only_winner_pass_rate: what the winners would pass if peer score alone chose them;
- sandbox_cases / sandbox_escapes: hostile cases run, and how many left any evidence of escape.

Run: python -m bench.calibration [--seeds N] [--full]   (fast: 2 seeds x 36 tasks; --full: 10 seeds)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.common import print_result, print_table
from bench.hostile_code import run_all
from dream_pipeline.domains.code_repair.domain import SpicaCodeRepair
from dream_pipeline.domains.code_repair.prompts import (
    extract_code,
    repair_prompt,
    review_prompt,
    system_prompt,
)
from dream_pipeline.domains.code_repair.rules import (
    judge_calls,
    pass_rate,
    pick_fix_winner,
    spearman,
    voter_calibration,
)
from dream_pipeline.domains.code_repair.tasks import RepairTask, load_tasks
from dream_pipeline.tournament import epoch_scores, parse_ballot, pick_winner, plan_presentations
from offline_engine.code import persona_skill, propose_fix, review_fixes
from resources.sandbox import SandboxRunner, describe

OUTSIDE_THE_LOOP = ("The main figures run in process, outside the Dagster loop; the loop_* figures come from "
                    "CodeRepair epochs run through Dagster.")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def loop_epochs(n: int, seed: int = 7) -> dict:
    """`n` CodeRepair epochs through Dagster's epoch assets on a scratch fabric and the offline engine over
    HTTP; their figures as the fabric recorded them."""
    import dagster as dg

    from bench.common import scratch_fabric
    from dream_pipeline.defs.epoch.assets import epoch_assets
    from dream_pipeline.defs.epoch.partitions import epoch_key
    from offline_engine import EngineConfig, running_engine
    from resources.llm import LLMEngine

    fabric = scratch_fabric("dream_bench_calibration")
    winners, oracle, rhos, failed, statuses = [], [], [], 0, defaultdict(int)
    with running_engine(EngineConfig(seed=seed)) as url, dg.instance_for_test() as instance:
        llm = LLMEngine(base_url=url)
        for number in range(1, n + 1):
            key = epoch_key("code_repair", number)
            instance.add_dynamic_partitions("epochs", [key])
            result = dg.materialize(epoch_assets, instance=instance, partition_key=key, run_config=QUIET,
                                    resources={"fabric": fabric, "llm": llm}, raise_on_error=False)
            failed += not result.success
            epoch = fabric.epoch(key)
            tests = fabric.candidate_tests(epoch.epoch_id)
            for t in tests:
                statuses[t["status"]] += 1
            winner = next((t for t in tests if t["draft_id"] == fabric.chapter_for_epoch(epoch.epoch_id).draft_id),
                          None) if result.success else None
            if winner is not None:
                winners.append(winner["pass_rate"])
                oracle.append(max(t["pass_rate"] for t in tests))
            rhos += [c["spearman"] for c in fabric.voter_calibrations(epoch.epoch_id) if c["spearman"] is not None]
            print(f"  loop epoch {key}: {'committed' if result.success else 'FAILED'}, task "
                  f"{(fabric.repair_task(epoch.epoch_id) or {}).get('task_id')}, "
                  f"winner passes {winner['pass_rate'] if winner else float('nan'):.2f}")
    return {"epochs": n, "failed": failed, "winner": winners, "oracle": oracle, "rhos": rhos,
            "statuses": dict(statuses)}


@dataclass(frozen=True)
class Epoch:
    seed: int
    task: str
    rates: dict[str, float]
    peer: dict[str, float]
    winner: str
    jury_winner: str
    jury_spearman: float
    calibration: dict[str, float]


def _epoch_seed(seed: int, task: RepairTask) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task.id}".encode()).digest()[:8], "big")


def run_epochs(seeds: range, tasks: tuple[RepairTask, ...], runner: SandboxRunner) -> tuple[list[Epoch], dict]:
    cast = SpicaCodeRepair.load().initial_cast()
    systems = {a.name: system_prompt(a.manifest) for a in cast}
    authors = [a.name for a in cast]
    plans = []
    for seed in seeds:
        for task in tasks:
            codes = {}
            for name in authors:
                reply = propose_fix(repair_prompt(task), systems[name], seed)
                codes[name] = extract_code(reply or "")
            plans.append((seed, task, codes))
    unique = {(task.id, code): task for _, task, codes in plans for code in codes.values()}
    statuses: dict[str, int] = defaultdict(int)

    def judge(key: tuple[str, str]) -> float:
        task = unique[key]
        run = runner.run(key[1], task.function, [t.args for t in task.hidden])
        statuses[run.status] += 1
        return pass_rate(judge_calls(task.hidden, run.ok, run.calls))

    with ThreadPoolExecutor(max_workers=2) as pool:
        rate_of = dict(zip(unique, pool.map(judge, unique), strict=True))
    epochs = []
    for seed, task, codes in plans:
        rates = {name: rate_of[(task.id, codes[name])] for name in authors}
        presentations = plan_presentations(authors, _epoch_seed(seed, task))
        votes = []
        for voter, presentation in presentations.items():
            prompt = review_prompt(task, presentation, {item.author: codes[item.author] for item in presentation.items})
            votes += parse_ballot(json.dumps(review_fixes(prompt, systems[voter], seed)), presentation)
        peer = epoch_scores(votes, {}, authors)
        epochs.append(Epoch(
            seed=seed, task=task.id, rates=rates, peer=peer,
            winner=pick_fix_winner(rates, peer), jury_winner=pick_winner(peer, {}),
            jury_spearman=spearman([peer[a] for a in authors], [rates[a] for a in authors]),
            calibration=voter_calibration(((v.voter, v.target, v.insight_score) for v in votes), rates),
        ))
    skills = {name: persona_skill(systems[name], seeds.start) for name in authors}
    return epochs, {"runs": len(unique), "statuses": dict(statuses), "skills": skills}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (normal approximation; nan below 2 values)."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return math.nan, math.nan
    if len(clean) < 2:
        return clean[0], math.nan
    return statistics.fmean(clean), 1.96 * statistics.stdev(clean) / math.sqrt(len(clean))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds to run (default 2, --full 10)")
    parser.add_argument("--full", action="store_true", help="10 seeds")
    parser.add_argument("--loop", type=int, default=6, help="CodeRepair epochs through Dagster (default 6; 0: none)")
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (10 if args.full else 2)
    if n_seeds < 1:
        parser.error("--seeds must be >= 1")
    print(OUTSIDE_THE_LOOP)
    runner = SandboxRunner()
    print("\nsandbox on this machine:")
    for line in describe(runner.capabilities):
        print("  " + line)

    started = time.monotonic()
    tasks = load_tasks()
    epochs, info = run_epochs(range(n_seeds), tasks, runner)
    elapsed = time.monotonic() - started
    authors = list(epochs[0].rates)

    winner = [e.rates[e.winner] for e in epochs]
    oracle = [max(e.rates.values()) for e in epochs]
    jury_only = [e.rates[e.jury_winner] for e in epochs]
    by_agent = {a: statistics.fmean(e.rates[a] for e in epochs) for a in authors}
    best_agent = max(by_agent, key=by_agent.get)
    rho, rho_ci = mean_ci([e.jury_spearman for e in epochs])
    ranked_epochs = sum(not math.isnan(e.jury_spearman) for e in epochs)

    rows = []
    for a in authors:
        cal, cal_ci = mean_ci([e.calibration.get(a, math.nan) for e in epochs])
        rows.append({"agent": a, "planted_skill": info["skills"][a], "pass_rate": by_agent[a],
                     "wins": sum(e.winner == a for e in epochs), "calibration": cal, "ci95": cal_ci})
    print_table("Per agent: its fixes' pass rate, its wins, and its calibration as a voter "
                "(mean Spearman of its scores against the tests)", rows)

    kinds: dict[str, list[Epoch]] = defaultdict(list)
    kind_of = {t.id: t.kind for t in tasks}
    for e in epochs:
        kinds[kind_of[e.task]].append(e)
    print_table("Per kind of bug", [
        {"kind": k, "epochs": len(es), "winner": statistics.fmean(e.rates[e.winner] for e in es),
         "jury_only": statistics.fmean(e.rates[e.jury_winner] for e in es),
         "mean_candidate": statistics.fmean(statistics.fmean(e.rates.values()) for e in es)}
        for k, es in sorted(kinds.items())])

    cases = run_all(runner)
    print_table("Hostile candidates in the sandbox", [
        {"case": c.name, "stopped_by": c.limit, "status": c.status, "score": c.pass_rate,
         "escaped": "YES: " + c.evidence if c.escaped else "no"} for c in cases])

    loop = None
    if args.loop > 0:
        print(f"\n{args.loop} CodeRepair epochs through Dagster (epoch assets, offline engine over HTTP, sandbox):")
        loop = loop_epochs(args.loop)
        print_table("Through the Dagster loop (from candidate_tests and voter_calibration)", [
            {"figure": "loop_winner_pass_rate", "value": statistics.fmean(loop["winner"]) if loop["winner"] else None},
            {"figure": "loop_oracle_winner_pass_rate",
             "value": statistics.fmean(loop["oracle"]) if loop["oracle"] else None},
            {"figure": "loop_voter_spearman (mean over voters x epochs)",
             "value": statistics.fmean(loop["rhos"]) if loop["rhos"] else None},
            {"figure": "candidate runs by status", "value": str(loop["statuses"])},
        ])

    w_mean, w_ci = mean_ci(winner)
    o_mean, _ = mean_ci(oracle)
    j_mean, j_ci = mean_ci(jury_only)
    print_table("Figures (95% intervals over epochs)", [
        {"figure": "jury_test_spearman", "value": rho, "ci95": rho_ci, "note": f"{ranked_epochs} epochs with rankable tests"},
        {"figure": "winner_pass_rate", "value": w_mean, "ci95": w_ci, "note": "fitness: tests first, jury breaks ties"},
        {"figure": "oracle_winner_pass_rate", "value": o_mean, "ci95": None, "note": "best candidate per epoch"},
        {"figure": "jury_only_winner_pass_rate", "value": j_mean, "ci95": j_ci, "note": "if peer score alone chose"},
        {"figure": "best_candidate_pass_rate", "value": by_agent[best_agent], "ci95": None, "note": f"always the {best_agent}"},
        {"figure": "mean_candidate_pass_rate", "value": statistics.fmean(by_agent.values()), "ci95": None, "note": ""},
    ])
    print(f"\n{len(epochs)} epochs ({n_seeds} seeds x {len(tasks)} tasks), {info['runs']} sandbox runs "
          f"{info['statuses']} in {elapsed:.1f} s; {len(cases)} hostile cases. {OUTSIDE_THE_LOOP}")
    print_result({
        "epochs": len(epochs),
        "jury_test_spearman": round(rho, 3),
        "winner_pass_rate": round(w_mean, 3),
        "oracle_winner_pass_rate": round(o_mean, 3),
        "best_candidate_pass_rate": round(by_agent[best_agent], 3),
        "jury_only_winner_pass_rate": round(j_mean, 3),
        "sandbox_escapes": sum(c.escaped for c in cases),
        "sandbox_cases": len(cases),
        "outside_dagster_loop": True,  # true of the figures above; the loop_* ones ran through Dagster
        **({} if loop is None else {
            "loop_epochs": loop["epochs"] - loop["failed"],
            "loop_winner_pass_rate": round(statistics.fmean(loop["winner"]), 3) if loop["winner"] else None,
            "loop_oracle_winner_pass_rate": round(statistics.fmean(loop["oracle"]), 3) if loop["oracle"] else None,
            "loop_voter_spearman": round(statistics.fmean(loop["rhos"]), 3) if loop["rhos"] else None,
        }),
    })


if __name__ == "__main__":
    main()
