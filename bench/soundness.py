"""Do the judgments track quality? Eliminations, ratings, position bias, cliques, diversity, leaks.

Many seeds of synthetic tournaments (`bench/tournament_sim.py`: the project's rule functions over the
offline reviewer's noise model; the truth is each persona's expected adjusted epoch score, penalties
included) give every figure as a mean over seeds with a 95 % interval, beside a random and an oracle
eliminator run on the same seeds. A few seeds then go through the real Dagster path against the
offline engine, and its stored votes are replayed through the same rule to confirm the two agree.

Scenarios (each over the same seeds):
- honest: everyone votes by the noise model; figures: worst / best eliminated rates, tau_b, and, over
  100 epochs, the largest lineage share of the living cast;
- position: the best writer (never eliminated) adds +3 to the draft it reads first; figures: how
  often the score-based position test flags it, and how often it flags an honest voter;
- clique: two mediocre agents rate each other 10 and everyone else 1; figures: the epoch the pair is
  flagged, epochs whose loser would change without the clique's ballots, the best honest agent kept;
- identity leaks: real offline drafts (which name their authors) rendered on ballots after
  de-identification; figure: the share of ballot prompts that still hold a name or role of the book.

Drafts' lengths (`--world`): "lengths" (default) is the offline engine's model, a persona's draft length
log-normal around its own median, cut when it runs past the cap, so a verbose writer's whole drafts run
long too and the elimination rule can read verbosity from them; "coin" is the seed's model, a coin toss
rambles to the cap and every other draft is 250-700 tokens whoever wrote it.

Run: python -m bench.soundness [--seeds N] [--epochs N] [--full] [--cast N] [--world coin] [--bounds]
(fast: 30 seeds, 12 epochs)
`--cast 16` runs the Dagster confirmation with 16 agents, so its votes come from the bounded review
design (6 drafts per voter, docs/tournament_rules.md section 11) instead of the full review.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from collections.abc import Sequence

import pandas as pd

from bench.common import print_result, print_table
from bench.tournament_sim import (
    Run,
    Scenario,
    known_quality_rule,
    known_verbosity_rule,
    oracle_rule,
    project_rule,
    random_rule,
    simulate,
    window_flags,
)
from dream_pipeline.tournament import plan_presentations, render_ballot_prompt
from dream_pipeline.tournament.deidentify import identity_terms, leaked_terms, scrub
from dream_pipeline.tournament.elimination import WINDOW_EPOCHS, draft_lengths, judge_window
from dream_pipeline.tournament.reliability import position_effects, sticky_flags
from offline_engine.prose import write_prose
from spica import SpicaAgent, SpicaBook

T95 = {29: 2.045, 49: 2.010, 99: 1.984}


def kendall_tau_b(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking corrected for)."""
    n = len(xs)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else float("nan")


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t interval over seeds."""
    values = [v for v in values if not math.isnan(v)]
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    t = T95.get(len(values) - 1, 1.96 if len(values) > 100 else 2.05)
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def elimination_rates(run: Run, epochs: int) -> tuple[float, float]:
    """(worst eliminated, best eliminated) per decided epoch of the first ``epochs``: "worst" is the
    eligible agent (not in grace) with the lowest truth, counted only in epochs where it is unique;
    "best" is the roster's highest truth, grace or not."""
    worst_hits = worst_n = best_hits = decided = 0
    for record in run.epochs[:epochs]:
        if record.loser is None or len(record.eligible) < 2:
            continue
        truth = {a: run.personas[a].truth for a in record.eligible}
        ranked = sorted(truth.values())
        decided += 1
        best_hits += record.loser == max(record.roster, key=lambda a: run.personas[a].truth)
        if ranked[0] < ranked[1]:
            worst_n += 1
            worst_hits += record.loser == min(truth, key=truth.get)
    return (worst_hits / worst_n if worst_n else math.nan, best_hits / decided if decided else math.nan)


def pooled_taus(run: Run, epochs: int) -> tuple[float, float]:
    """tau_b of the pooled estimate over every agent rated in the first ``epochs`` (the project's
    estimator, flags and corrections included), and the same estimator fed truth + the ballots' noise."""
    votes = run.votes[run.votes["epoch"] <= epochs]
    oracle = run.oracle_votes[run.oracle_votes["epoch"] <= epochs]
    agents = sorted(set(votes["target"]))
    real = judge_window(votes, agents, (), window_flags(votes), lengths=draft_lengths(votes)).estimates
    ideal = judge_window(oracle, agents, (), (), correct_positions=False).estimates
    truth = [run.personas[a].truth for a in agents]
    return (kendall_tau_b(truth, [real[a].shrunk for a in agents]),
            kendall_tau_b(truth, [ideal[a].shrunk for a in agents]))


def identity_leak_rate(seeds: int) -> tuple[float, float]:
    """(share of raw offline drafts naming a book identity, share of ballot prompts leaking one after
    de-identification), over ``seeds`` epochs' worth of real offline drafts."""
    book = SpicaBook.load("space_time")
    personas = [*book.manifest["cast"], *book.manifest["reserve"]]
    terms = identity_terms(personas)
    raw = prompts = leaks = drafts = 0
    for seed in range(seeds):
        rng = random.Random(seed)  # noqa: S311 - simulation
        chosen = rng.sample(personas, 5)
        texts = {}
        for p in chosen:
            text = write_prose(rng, SpicaAgent(p).system_prompt(), f"Write chapter {seed + 2}.", 900, 0.1).text
            raw += bool(leaked_terms(text, terms))
            drafts += 1
            texts[p["name"]] = scrub(text, terms).text
        for presentation in plan_presentations(list(texts), seed, reserved=terms).values():
            prompts += 1
            leaks += bool(leaked_terms(render_ballot_prompt(presentation, texts).replace("_", " "), terms))
    return raw / drafts, leaks / prompts


def run_seeds(seeds: int, epochs: int, scenario: Scenario | None = None, rule=project_rule, **kw) -> list[Run]:
    return [simulate(seed, epochs, scenario, rule, **kw) for seed in range(seeds)]


def engine_agreement(epochs: int, seed: int, cast: int | None = None) -> dict:
    """One book through the Dagster epoch job against the offline engine; its stored window votes are
    replayed through `judge_window` and must pick the losers the pipeline recorded. `cast`: agents
    seated (default: the book's cast size)."""
    import dagster as dg

    from bench.common import scratch_fabric
    from bench.tournament_sim import expected_score
    from dream_pipeline.defs.epoch.assets import epoch_assets
    from dream_pipeline.defs.epoch.partitions import epoch_key
    from dream_pipeline.epoch.rank import window_frame
    from dream_pipeline.epoch.rating_window import window_statistics
    from offline_engine import EngineConfig, running_engine
    from offline_engine.prose import persona_long_draft_rate
    from offline_engine.themes import persona_quality
    from resources.llm import LLMEngine

    book = SpicaBook.load("space_time")
    names = [p["name"] for p in [*book.manifest["cast"], *book.manifest["reserve"]]]
    spread = [0.05 + 0.9 * i / (len(names) - 1) for i in range(len(names))]
    random.Random(seed).shuffle(spread)
    qualities = dict(zip([n.lower() for n in names], spread, strict=True))
    config = EngineConfig(seed=seed, qualities=qualities, long_draft_rate=0.1)
    fabric = scratch_fabric("dream_bench_soundness")
    if cast:
        os.environ["DREAM_CAST_SIZE"] = str(cast)  # read when the book is seated, in this process
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with running_engine(config) as url, dg.instance_for_test() as instance:
        llm = LLMEngine(base_url=url, max_tokens=900)
        for number in range(1, epochs + 1):
            key = epoch_key("space_time", number)
            instance.add_dynamic_partitions("epochs", [key])
            result = dg.materialize(epoch_assets, instance=instance, partition_key=key, run_config=quiet,
                                    resources={"fabric": fabric, "llm": llm}, raise_on_error=False)
            print(f"  engine epoch {number:>3}: {'ok' if result.success else 'FAILED'}", flush=True)
    agree = decided = worst_hits = worst_n = 0
    for number in range(1, epochs + 1):
        epoch = fabric.epoch(epoch_key("space_time", number))
        if epoch.loser_agent_id is None:
            continue
        roster = fabric.agents(epoch.active_agent_ids)
        joined = fabric.joined_epochs([a.instance_id for a in roster])
        newcomers = [a.name for a in roster if a.lineage.origin != "cast" and joined[a.instance_id] >= number]
        recent = fabric.recent_votes("space_time", number, 10)
        flags = sticky_flags([(f.kind, f.voter_agent, f.partner, f.strength)
                              for f in window_statistics(recent, 0).flags],
                             [(f.kind, f.voter_agent, f.partner, f.strength)
                              for f in fabric.recent_flags("space_time", number - 1, 9)])
        replayed = judge_window(window_frame(recent), [a.name for a in roster], newcomers, flags,
                                lengths=fabric.recent_draft_lengths("space_time", number, 10)).loser
        loser = next(a.name for a in roster if a.instance_id == epoch.loser_agent_id)
        decided += 1
        agree += replayed == loser

        def truth(agent: SpicaAgent) -> float:
            system = agent.system_prompt()
            q = persona_quality(system, seed, config.quality_map)
            return expected_score(q, persona_long_draft_rate(system, config.long_draft_rate))

        eligible = {a.name: truth(a) for a in roster if a.name not in newcomers}
        ranked = sorted(eligible.values())
        if len(ranked) > 1 and ranked[0] < ranked[1]:
            worst_n += 1
            worst_hits += loser == min(eligible, key=eligible.get)
    seated = len(fabric.epoch(epoch_key("space_time", 1)).active_agent_ids)
    return {"engine_epochs": epochs, "engine_cast": seated, "engine_rule_agreement": agree / max(decided, 1),
            "engine_worst_eliminated_rate": worst_hits / max(worst_n, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="100 seeds, 30 epochs, 2 engine seeds")
    parser.add_argument("--seeds", type=int, help="synthetic seeds (default 30; --full 100)")
    parser.add_argument("--epochs", type=int, help="epochs per synthetic run (default 12; --full 30)")
    parser.add_argument("--lineage-epochs", type=int, default=100)
    parser.add_argument("--engine-epochs", type=int, default=12, help="epochs through Dagster per engine seed")
    parser.add_argument("--no-engine", action="store_true", help="skip the Dagster confirmation")
    parser.add_argument("--bounds", action="store_true",
                        help="also eliminate knowing each persona's true verbosity, or its true quality")
    parser.add_argument("--cast", type=int, help="agents in the Dagster confirmation (default: the book's cast)")
    parser.add_argument("--world", choices=("lengths", "coin"), default="lengths",
                        help="synthetic drafts' lengths: the offline engine's (a verbose writer's whole drafts run "
                             "long too) or the seed's coin toss (lengths say nothing)")
    args = parser.parse_args()
    seeds = args.seeds or (100 if args.full else 30)
    epochs = args.epochs or (30 if args.full else 12)
    started = time.perf_counter()
    print(f"soundness benchmark: {seeds} seeds x {epochs} epochs (lineage over {args.lineage_epochs}), "
          f"{args.world} world")

    honest = run_seeds(seeds, epochs, Scenario(world=args.world))
    randoms = run_seeds(seeds, epochs, Scenario(use_flags=False, world=args.world), random_rule)
    oracles = run_seeds(seeds, epochs, Scenario(use_flags=False, world=args.world), oracle_rule)
    # lineage over the long run: who leaves is the project's rule; flags and position corrections are
    # left out there (honest voters raise none), which keeps 100 epochs x seeds within the fast budget
    lean = Scenario(use_flags=False, correct_positions=False, world=args.world)
    lineage = run_seeds(seeds, args.lineage_epochs, lean)
    seed_rule = run_seeds(seeds, args.lineage_epochs, lean, diverse=False)
    no_penalty = run_seeds(seeds, epochs, Scenario(penalties=False, world=args.world))
    print(f"  honest, random, oracle, no-penalty runs: {time.perf_counter() - started:.0f} s", flush=True)
    if args.bounds:
        for name, rule in (("known_verbosity", known_verbosity_rule), ("known_quality", known_quality_rule)):
            runs = run_seeds(seeds, epochs, Scenario(use_flags=False, correct_positions=False, world=args.world), rule)
            m, lo, hi = mean_ci([elimination_rates(r, epochs)[0] for r in runs])
            print(f"  bound, {name}: worst eliminated {m:.3f} [{lo:.3f}, {hi:.3f}]", flush=True)

    worst = [elimination_rates(r, epochs)[0] for r in honest]
    best = [elimination_rates(r, epochs)[1] for r in honest]
    taus = [pooled_taus(r, epochs) for r in honest]
    penalty_decided = [
        statistics.fmean([a.loser != b.loser for a, b in zip(r.epochs[:epochs], q.epochs, strict=True)
                          if a.roster == b.roster] or [math.nan])
        for r, q in zip(honest, no_penalty, strict=True)
    ]
    figures = {
        "worst_eliminated_rate": mean_ci(worst),
        "random_worst_eliminated_rate": mean_ci([elimination_rates(r, epochs)[0] for r in randoms]),
        "oracle_worst_eliminated_rate": mean_ci([elimination_rates(r, epochs)[0] for r in oracles]),
        "best_eliminated_rate": mean_ci(best),
        "random_best_eliminated_rate": mean_ci([elimination_rates(r, epochs)[1] for r in randoms]),
        "tau_b": mean_ci([t for t, _ in taus]),
        "tau_b_oracle": mean_ci([o for _, o in taus]),
        "lineage_max_share": mean_ci([r.lineage_max_share for r in lineage]),
        "seed_rule_lineage_max_share": mean_ci([r.lineage_max_share for r in seed_rule]),
        "penalty_decided_share": mean_ci([p for p in penalty_decided if not math.isnan(p)]),
    }

    biased = run_seeds(seeds, epochs, Scenario(biased="Physicist", world=args.world))
    detection = [1.0 if 0 in r.detected.get("Physicist", {}) else 0.0 for r in biased]
    # false positives: honest voters flagged, beside the biased one and in the honest runs' last window
    false_flags = [len([v for v in r.detected if v != "Physicist"]) / 4 for r in biased]
    for r in honest:
        window = r.votes[r.votes["epoch"] > epochs - WINDOW_EPOCHS]
        false_flags.append(len(position_effects(window)) / window["voter"].nunique())
    figures["position_detection_rate"] = mean_ci(detection)
    figures["position_false_positive_rate"] = mean_ci(false_flags)
    print(f"  position runs: {time.perf_counter() - started:.0f} s", flush=True)

    cliques = run_seeds(seeds, epochs, Scenario(clique=("Financier", "Politician"), world=args.world))
    flag_epochs = [next((e.epoch for e in r.epochs if e.clique_flagged), math.inf) for r in cliques]
    decided_by_clique = sum(sum(e.loser != e.loser_without_clique for e in r.epochs) for r in cliques)
    survived = []
    for r in cliques:
        cast = [a for a in r.epochs[0].roster if a not in ("Financier", "Politician")]
        best_honest = max(cast, key=lambda a: r.personas[a].truth)
        intact = True
        ok = True
        for e in r.epochs:
            if e.loser in ("Financier", "Politician"):
                intact = False
            if intact and e.loser == best_honest:
                ok = False
        survived.append(ok)
    print(f"  clique runs: {time.perf_counter() - started:.0f} s", flush=True)

    raw_leak, leak = identity_leak_rate(seeds)
    synthetic_s = time.perf_counter() - started
    engine = {} if args.no_engine else engine_agreement(args.engine_epochs, 3, args.cast)

    rows = [{"figure": k, "mean": m, "ci95_low": lo, "ci95_high": hi} for k, (m, lo, hi) in figures.items()]
    print_table(f"synthetic tournaments: mean over {seeds} seeds, 95 % interval", rows)
    print_table("clique scenario (Financier + Politician rate each other 10, everyone else 1)", [
        {"flagged_by_epoch_max": max(flag_epochs), "flagged_by_epoch_median": statistics.median(flag_epochs),
         "epochs_decided_by_clique": decided_by_clique, "best_honest_survived_share": statistics.fmean(survived)}])
    print_table(f"lineage over {args.lineage_epochs} epochs", [
        {"rule": "diverse Reaper", "epochs_with_a_one_lineage_jury": sum(r.jury_majority_epochs for r in lineage)},
        {"rule": "seed's Reaper", "epochs_with_a_one_lineage_jury": sum(r.jury_majority_epochs for r in seed_rule)}])
    print_table("identity leaks", [{"raw_drafts_naming_a_persona": raw_leak, "ballot_prompts_leaking": leak}])
    if engine:
        print_table("Dagster path (offline engine, seed 3)", [engine])
    print(f"\n  synthetic part: {synthetic_s:.0f} s; total {time.perf_counter() - started:.0f} s wall, "
          f"{time.process_time():.0f} s CPU in this process (the Dagster path also runs the engine and "
          "PostgreSQL in their own processes)")

    def r3(x: float) -> float:
        return round(x, 3)

    print_result({
        "seeds": seeds,
        "epochs": epochs,
        "world": args.world,
        "worst_eliminated_rate": r3(figures["worst_eliminated_rate"][0]),
        "worst_eliminated_ci95": [r3(figures["worst_eliminated_rate"][1]), r3(figures["worst_eliminated_rate"][2])],
        "random_worst_eliminated_rate": r3(figures["random_worst_eliminated_rate"][0]),
        "oracle_worst_eliminated_rate": r3(figures["oracle_worst_eliminated_rate"][0]),
        "best_eliminated_rate": r3(figures["best_eliminated_rate"][0]),
        "tau_b": r3(figures["tau_b"][0]),
        "tau_b_oracle": r3(figures["tau_b_oracle"][0]),
        "identity_leak_rate": r3(leak),
        "position_detection_rate": r3(figures["position_detection_rate"][0]),
        "position_false_positive_rate": r3(figures["position_false_positive_rate"][0]),
        "clique_flag_epoch": None if math.isinf(max(flag_epochs)) else int(max(flag_epochs)),
        "clique_decided_losers": int(decided_by_clique),
        "best_honest_survived": all(survived),
        "lineage_max_share": r3(figures["lineage_max_share"][0]),
        **{k: (r3(v) if isinstance(v, float) else v) for k, v in engine.items()},
    })


if __name__ == "__main__":
    pd.set_option("display.width", 160)
    main()
