"""Is the tournament sound? Ratings against hidden qualities, eliminations, cliques, position bias.

Three scenarios:
1. engine — the full epoch graph through Dagster against the offline engine, whose simulated
   reviewers blend a measured text quality with a hidden quality per persona (set here) and add
   voter noise. Figures: Kendall τ between final Elo and hidden quality; how often the truly worst
   eligible agent was the one eliminated.
2. clique — tournament rules on synthetic ballots: honest noisy voters score 1 + 9·quality + noise;
   two agents rate each other 10 and everyone else 1. Figures: whether the best honest agent
   survives while the clique is intact (later, better newcomers may fairly outrank it); the first
   epoch in which the clique is flagged; when the clique members are eliminated.
3. position — one voter adds +3 to whatever draft it is shown first. Figure: the spread (max − min,
   percentage points) of each position's rate of being a ballot's top choice, over all ballots.

Run: python -m bench.soundness [--epochs N] [--full] [--cast N]   (fast: 12 epochs; --full: 30)
`--cast 16` runs the engine scenario with 16 agents, so its votes come from the bounded review design
(6 drafts per voter) instead of the full review.
"""

from __future__ import annotations

import argparse
import os
import random
import uuid
from collections import Counter

import dagster as dg

from bench.common import print_result, print_table, scratch_fabric
from dream_pipeline.assets import epoch_assets
from dream_pipeline.partitions import epoch_key
from dream_pipeline.standings import window_statistics
from dream_pipeline.tournament import (
    INITIAL_RATING,
    Vote,
    elo_update,
    epoch_scores,
    pairwise_outcomes,
    pick_loser,
    plan_presentations,
)
from offline_engine import EngineConfig, running_engine
from resources.fabric import VoteRow
from resources.llm import LLMEngine
from spica import SpicaBook

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def kendall_tau(xs: list[float], ys: list[float]) -> float:
    """Kendall's τ-a (ties count as neither concordant nor discordant)."""
    n, total = len(xs), 0
    for i in range(n):
        for j in range(i + 1, n):
            total += _sign(xs[i] - xs[j]) * _sign(ys[i] - ys[j])
    return total / (n * (n - 1) / 2) if n > 1 else float("nan")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def hidden_qualities(seed: int) -> dict[str, float]:
    book = SpicaBook.load()
    names = [p["name"] for p in book.manifest["cast"]] + [p["name"] for p in book.reserve()]
    spread = [0.05 + 0.9 * i / (len(names) - 1) for i in range(len(names))]
    random.Random(seed).shuffle(spread)
    return dict(zip(names, spread, strict=True))


def quality_of(name: str, qualities: dict[str, float]) -> float:
    """A mutation ('Physicist II') writes with its parent's voice, so it has its hidden quality."""
    return qualities.get(name, qualities.get(name.split(" ")[0], 0.5))


# ---- 1. the real pipeline ------------------------------------------------------------------


def engine_scenario(epochs: int, seed: int, cast: int | None = None) -> dict:
    qualities = hidden_qualities(seed)
    fabric = scratch_fabric("dream_bench_soundness")
    if cast:
        os.environ["DREAM_CAST_SIZE"] = str(cast)  # read when the book is seated, in this process
    with running_engine(EngineConfig(seed=seed, qualities=qualities, long_draft_rate=0.05)) as url, \
            dg.instance_for_test() as instance:
        llm = LLMEngine(base_url=url, max_tokens=900)
        for number in range(1, epochs + 1):
            key = epoch_key("space_time", number)
            instance.add_dynamic_partitions("epochs", [key])
            result = dg.materialize(epoch_assets, instance=instance, partition_key=key, run_config=QUIET,
                                    resources={"fabric": fabric, "llm": llm}, raise_on_error=False)
            print(f"  engine epoch {number:>3}: {'ok' if result.success else 'FAILED'}", flush=True)

    worst_hits = decided = 0
    eliminations = []
    for number in range(1, epochs + 1):
        epoch = fabric.epoch(epoch_key("space_time", number))
        if epoch.loser_agent_id is None:
            continue
        roster = fabric.agents(epoch.active_agent_ids)
        joined = fabric.joined_epochs([a.instance_id for a in roster])
        eligible = [a.name for a in roster if a.lineage.origin == "cast" or joined[a.instance_id] < number]
        worst = min(eligible, key=lambda n: quality_of(n, qualities))
        loser = next(a.name for a in roster if a.instance_id == epoch.loser_agent_id)
        decided += 1
        worst_hits += loser == worst
        eliminations.append({"epoch": number, "eliminated": loser, "q_eliminated": quality_of(loser, qualities),
                             "truly_worst": worst, "q_worst": quality_of(worst, qualities)})
    standings = [s for s in fabric.standings("space_time") if s.rating is not None]
    tau = kendall_tau([s.rating for s in standings], [quality_of(s.name, qualities) for s in standings])
    print_table("engine scenario: eliminations", eliminations)
    print_table("engine scenario: final ratings vs hidden quality",
                [{"agent": s.name, "elo": s.rating, "hidden_quality": quality_of(s.name, qualities), "alive": s.alive}
                 for s in standings])
    return {"kendall_tau": round(tau, 3), "worst_eliminated_rate": round(worst_hits / max(decided, 1), 3),
            "engine_epochs": epochs}


# ---- 2 and 3. tournament rules on synthetic ballots ----------------------------------------


def synthetic_run(epochs: int, seed: int, *, clique: tuple[str, ...] = (), first_bias: str | None = None) -> dict:
    rng = random.Random(seed)
    pool = [f"Agent{i:02d}" for i in range(40)]
    quality = {name: rng.random() for name in pool}
    roster, reserve = pool[:6], pool[6:]
    for member in clique:  # the clique members are mediocre writers
        if member not in roster:
            raise ValueError(member)
        quality[member] = 0.35
    ratings: dict[str, float] = {}
    joined = {name: 0 for name in roster}
    recent: list[tuple[int, VoteRow, float]] = []
    ids = {name: uuid.uuid5(uuid.NAMESPACE_DNS, name) for name in pool}
    honest = [a for a in roster if a not in clique]
    best_honest = max(honest, key=quality.get)
    best_survived, clique_flag_epoch, top_positions = True, None, Counter[int]()
    clique_out: dict[str, int] = {}
    ballots = 0
    for epoch in range(1, epochs + 1):
        presentations = plan_presentations(roster, seed * 1000 + epoch)
        votes = []
        for voter in roster:
            ballot: dict[int, int] = {}
            for item in presentations[voter].items:
                if voter in clique:
                    score = 10 if item.author in clique else 1
                else:
                    raw = 1 + 9 * quality[item.author] + rng.gauss(0, 1.2)
                    raw += 3 if (voter == first_bias and item.position == 0) else 0
                    score = int(min(10, max(1, round(raw))))
                votes.append(Vote(voter, item.author, item.label, score, ""))
                ballot[item.position] = score
            top = [p for p, score in ballot.items() if score == max(ballot.values())]
            for position in top:  # a tie for the top choice is shared, not given to the first shown
                top_positions[position] += 1 / len(top)
            ballots += 1
        ratings = elo_update({a: ratings.get(a, INITIAL_RATING) for a in roster}, pairwise_outcomes(votes))
        scores = epoch_scores(votes, {}, roster)
        for v in votes:
            recent.append((epoch, VoteRow(v.voter, v.target, ids[v.voter], ids[v.target], v.insight_score, "",
                                          v.label, 0), 0.0))
        recent = [r for r in recent if r[0] > epoch - 10]
        flags = window_statistics(recent, seed).flags
        if clique and clique_flag_epoch is None and any(
            f.kind == "clique" and {f.voter_agent, f.partner} == set(clique) for f in flags
        ):
            clique_flag_epoch = epoch
        newcomers = [a for a in roster if joined[a] == epoch - 1 and epoch > 1 and a in pool[6:]]
        loser = pick_loser({a: ratings[a] for a in roster}, scores, newcomers)
        if loser is None:
            continue
        if loser == best_honest and clique and not clique_out:
            best_survived = False  # eliminated while the clique was intact
        if loser in clique:
            clique_out[loser] = epoch
        newcomer = reserve.pop(0)
        roster = [newcomer if a == loser else a for a in roster]
        joined[newcomer] = epoch
    rates = {p: 100.0 * top_positions[p] / ballots for p in range(len(roster) - 1)}
    return {"best_honest_survived": best_survived, "clique_flag_epoch": clique_flag_epoch,
            "position_top_rate_pct": rates, "best_honest": best_honest, "clique_eliminated": clique_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="30 epochs per scenario (default: 12)")
    parser.add_argument("--epochs", type=int, help="epochs per scenario (overrides --full)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--cast", type=int, help="agents in the engine scenario (default: the book's 5)")
    args = parser.parse_args()
    epochs = args.epochs or (30 if args.full else 12)

    print(f"soundness benchmark: {epochs} epochs per scenario, seed {args.seed}")
    engine = engine_scenario(epochs, args.seed, args.cast)
    clique = synthetic_run(epochs, args.seed, clique=("Agent01", "Agent02"))
    honest = synthetic_run(epochs, args.seed, first_bias=None)
    biased = synthetic_run(epochs, args.seed, first_bias="Agent03")
    spread = max(biased["position_top_rate_pct"].values()) - min(biased["position_top_rate_pct"].values())
    control = max(honest["position_top_rate_pct"].values()) - min(honest["position_top_rate_pct"].values())

    print_table("clique scenario (Agent01 + Agent02 rate each other 10, everyone else 1)",
                [{"best_honest": clique["best_honest"], "survived_while_clique_intact": clique["best_honest_survived"],
                  "clique_flagged_in_epoch": clique["clique_flag_epoch"],
                  "clique_members_eliminated_in": clique["clique_eliminated"] or "never"}])
    print_table("position scenario: % of ballots whose top choice sat at each position",
                [{"position": p, "one_voter_biased": biased["position_top_rate_pct"][p],
                  "no_bias": honest["position_top_rate_pct"][p]} for p in biased["position_top_rate_pct"]])
    print(f"\n  spread with the biased voter: {spread:.1f} pp; without: {control:.1f} pp")
    print_result({
        **engine,
        "best_honest_survived": clique["best_honest_survived"],
        "clique_flag_epoch": clique["clique_flag_epoch"],
        "position_winrate_spread": round(spread, 1),
        "position_winrate_spread_unbiased": round(control, 1),
        "epochs": epochs,
        "cast": args.cast or SpicaBook.load().cast_size,
    })


if __name__ == "__main__":
    main()
