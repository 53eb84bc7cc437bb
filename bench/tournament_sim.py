"""Synthetic tournaments: the project's rule functions over the offline reviewer's noise model.

Each persona has a planted quality ``q`` and a verbosity ``v`` (its chance of running into the token
cap). A draft's length follows the offline engine's model (:func:`draft_length`: log-normal around the
persona's own median, cut when it runs past the cap; ``Scenario.world = "coin"``: the seed's coin toss).
Its text quality ``t`` is drawn from real offline-engine drafts measured by the offline reviewer
(``offline_engine.reviewer.measure``), cut ones when it was cut; a vote is
the reviewer's own formula ``clamp(round(1 + 9 (0.7 t + 0.3 q) + N(0, 0.7)), 1, 10)``. A truncated
draft costs ``TRUNCATION_PENALTY``. The truth an agent is measured against is its expected adjusted
epoch score under those rules, penalties included (:func:`expected_score`).

Masks and presentation order come from ``plan_presentations``; flags from ``voter_stats``; the
elimination from ``elimination.judge_window``; the replacement from ``diversity``: the same functions
the pipeline calls.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from dream_pipeline.tournament import TRUNCATION_PENALTY, plan_presentations
from dream_pipeline.tournament.diversity import (
    Member,
    choose_replacement_parent,
    jury_majority,
    lineage_shares,
)
from dream_pipeline.tournament.elimination import (
    GRACE_EPOCHS,
    WINDOW_EPOCHS,
    draft_lengths,
    draft_scores,
    judge_window,
    pick_eliminated,
    shrunk_penalties,
)
from dream_pipeline.tournament.reliability import sticky_flags
from dream_pipeline.tournament.verbosity import truncation_chances
from dream_pipeline.tournament.voter_stats import flag_cliques, flag_outlier_voters
from offline_engine.prose import draft_length as engine_draft_length
from offline_engine.prose import write_prose
from offline_engine.reviewer import measure
from spica import SpicaAgent, SpicaBook

VOTE_NOISE = 0.7  # the offline reviewer's voter noise (reviewer.score_draft)
DRAFT_CAP = 900  # the benchmark's token cap (the Dagster path runs with the same)
POSITION_BIAS = 3.0
CLIQUE_QUALITY = 0.35
COLUMNS = ["epoch", "voter", "target", "insight_score", "position", "penalty", "tokens", "truncated"]


@lru_cache(maxsize=1)
def text_quality_pool() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Measured text quality of real offline drafts: (normal drafts, drafts cut at the cap)."""
    book = SpicaBook.load("space_time")
    personas = [*book.manifest["cast"], *book.manifest["reserve"]]
    rng = random.Random(11)  # noqa: S311 - simulation
    normal, cut = [], []
    for i in range(48):
        system = SpicaAgent(personas[i % len(personas)]).system_prompt()
        normal.append(measure(write_prose(rng, system, "Write chapter 2.", DRAFT_CAP, 0.0).text).quality)
        if i % 2 == 0:
            cut.append(measure(write_prose(rng, system, "Write chapter 2.", DRAFT_CAP, 1.0).text).quality)
    return tuple(normal), tuple(cut)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def expected_vote(base: float, noise: float = VOTE_NOISE) -> float:
    """E[clamp(round(1 + 9 base + N(0, noise)), 1, 10)], exactly (normal CDF over the rounding bins)."""
    mu = 1 + 9 * base
    total = 0.0
    for k in range(1, 11):
        lo = -math.inf if k == 1 else (k - 0.5 - mu) / noise
        hi = math.inf if k == 10 else (k + 0.5 - mu) / noise
        total += k * (_phi(hi) - _phi(lo))
    return total


def expected_score(q: float, v: float) -> float:
    """The truth: a persona's expected adjusted epoch score (one vote's expectation, penalty included)."""
    normal, cut = text_quality_pool()
    s_normal = sum(expected_vote(0.7 * t + 0.3 * q) for t in normal) / len(normal)
    s_cut = sum(expected_vote(0.7 * t + 0.3 * q) for t in cut) / len(cut)
    return (1 - v) * s_normal + v * (s_cut - TRUNCATION_PENALTY)


@dataclass
class Persona:
    name: str
    root: str
    q: float
    v: float
    joined: int
    truth: float = 0.0

    def __post_init__(self) -> None:
        self.truth = expected_score(self.q, self.v)


@dataclass
class Scenario:
    """Who misbehaves: a position-biased voter (never eliminated) and/or a clique pair."""

    biased: str | None = None
    clique: tuple[str, ...] = ()
    correct_positions: bool = True
    use_flags: bool = True
    penalties: bool = True
    world: str = "lengths"  # "lengths": cut = the draft ran past the cap; "coin": cut = a coin toss of v


@dataclass
class EpochRecord:
    epoch: int
    roster: list[str]
    eligible: list[str]
    loser: str | None
    loser_without_clique: str | None = None
    clique_flagged: bool = False


@dataclass
class Run:
    personas: dict[str, Persona]
    epochs: list[EpochRecord] = field(default_factory=list)
    votes: pd.DataFrame | None = None
    oracle_votes: pd.DataFrame | None = None
    detected: dict[str, dict[int, float]] = field(default_factory=dict)
    lineage_max_share: float = 0.0
    jury_majority_epochs: int = 0  # epochs whose jury (the roster) had a majority of one lineage


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _logistic(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def new_personas(rng: random.Random) -> tuple[list[Persona], list[Persona]]:
    """The book's cast and reserve with planted qualities (an even spread, shuffled) and verbosities."""
    book = SpicaBook.load("space_time")
    cast = [p["name"] for p in book.manifest["cast"]]
    reserve = [p["name"] for p in book.manifest["reserve"]]
    names = cast + reserve
    spread = [0.05 + 0.9 * i / (len(names) - 1) for i in range(len(names))]
    rng.shuffle(spread)
    made = [Persona(n, n, q, _logistic(_logit(0.1) + rng.uniform(-1.5, 1.5)), 0) for n, q in zip(names, spread, strict=True)]
    return made[: len(cast)], made[len(cast):]


def mutate(parent: Persona, name: str, epoch: int, rng: random.Random) -> Persona:
    """A mutation writes like its parent, perturbed: its own quality and verbosity."""
    q = min(0.98, max(0.02, parent.q + rng.gauss(0.0, 0.1)))
    v = _logistic(_logit(parent.v) + rng.gauss(0.0, 0.5))
    return Persona(name, parent.root, q, v, epoch)


def draft_length(v: float, world: str, rng: random.Random) -> tuple[int, bool]:
    """One draft's (tokens, truncated) for a writer of verbosity ``v`` under ``DRAFT_CAP``.

    "lengths": the offline engine's own length model (``offline_engine.prose.draft_length``: log-normal,
    a share ``v`` of drafts past the cap), so a verbose writer's whole drafts run long too. "coin": the
    seed's model, a coin toss of ``v`` rambles to the cap, any other draft 250-700 tokens whatever the
    writer."""
    if world == "coin":
        if rng.random() < v:
            return DRAFT_CAP, True
        return rng.randint(250, 700), False
    length = engine_draft_length(rng, v, DRAFT_CAP)
    return (DRAFT_CAP, True) if length > DRAFT_CAP else (length, False)


Rule = Callable[[pd.DataFrame, list[str], list[str], list[tuple[str, str, str, float]], dict[str, Persona],
                 random.Random, Scenario], str | None]


def project_rule(window: pd.DataFrame, candidates: list[str], newcomers: list[str],
                 flags: list[tuple[str, str, str, float]], personas: dict[str, Persona], rng: random.Random,
                 scenario: Scenario) -> str | None:
    frame = window if scenario.penalties else window.drop(columns=["tokens", "truncated"]).assign(penalty=0.0)
    return judge_window(frame, candidates, newcomers, flags if scenario.use_flags else (),
                        correct_positions=scenario.correct_positions, lengths=draft_lengths(frame)).loser


def random_rule(window, candidates, newcomers, flags, personas, rng, scenario) -> str | None:
    pool = sorted(a for a in candidates if a not in newcomers)
    return rng.choice(pool) if pool else None


def oracle_rule(window, candidates, newcomers, flags, personas, rng, scenario) -> str | None:
    return pick_eliminated({a: personas[a].truth for a in candidates}, candidates, newcomers)


def known_verbosity_rule(window, candidates, newcomers, flags, personas, rng, scenario) -> str | None:
    """A bound: the project's rule, but told each persona's true verbosity (its chance of the cap)."""
    return judge_window(window, candidates, newcomers, flags if scenario.use_flags else (),
                        correct_positions=scenario.correct_positions, lengths=draft_lengths(window),
                        chances={a: personas[a].v for a in set(window["target"])}).loser


def known_quality_rule(window, candidates, newcomers, flags, personas, rng, scenario) -> str | None:
    """A bound: each persona's true quality, but the project's estimate of its verbosity."""
    lengths = draft_lengths(window)
    chances = truncation_chances(lengths) if lengths else None
    if chances is None:
        drafts = draft_scores(window.assign(score=window["penalty"].astype(float), weight=1.0))
        chances = {a: e.shrunk / TRUNCATION_PENALTY for a, e in
                   shrunk_penalties({k: m for k, (m, _) in drafts.items()}).items()}
    return pick_eliminated({a: expected_score(personas[a].q, min(1.0, chances.get(a, 0.0))) for a in candidates},
                           candidates, newcomers)


def window_flags(window: pd.DataFrame) -> list[tuple[str, str, str, float]]:
    frame = window[["epoch", "voter", "target", "insight_score"]]
    cliques = flag_cliques(frame)
    flags = [("clique", a, b, float(x)) for (a, b), x in sorted(cliques.items())]
    flags += [("outlier", v, "", float(r)) for v, r in sorted(flag_outlier_voters(frame, cliques=cliques).items())]
    return flags


def simulate(seed: int, epochs: int, scenario: Scenario | None = None, rule: Rule = project_rule,
             *, diverse: bool = True) -> Run:
    """One synthetic tournament of ``epochs`` epochs on the book's personas."""
    scenario = scenario or Scenario()
    rng = random.Random(seed)  # noqa: S311 - simulation
    cast, reserve = new_personas(rng)
    if scenario.biased:  # the biased voter is the best writer and is never eliminated
        by_name = {p.name: p for p in cast}
        by_name[scenario.biased].q = 0.95
        by_name[scenario.biased].__post_init__()
    for p in cast:
        if p.name in scenario.clique:
            p.q = CLIQUE_QUALITY
            p.__post_init__()
    personas = {p.name: p for p in cast + reserve}
    roster = [p.name for p in cast]
    draws = random.Random(seed + 7_000_003)  # noqa: S311 - the rules' own randomness, apart from the votes
    normal, cut = text_quality_pool()
    by_epoch: list[list[tuple]] = []
    flag_history: list[list[tuple[str, str, str, float]]] = []
    oracle_rows: list[tuple] = []
    run = Run(personas)
    run.lineage_max_share = max(lineage_shares([personas[a].root for a in roster]).values())
    generation = 0
    for epoch in range(1, epochs + 1):
        run.jury_majority_epochs += jury_majority([personas[a].root for a in roster]) is not None
        tokens, truncated = {}, {}
        for a in roster:
            tokens[a], truncated[a] = draft_length(personas[a].v, scenario.world, rng)
        text_q = {a: rng.choice(cut if truncated[a] else normal) for a in roster}
        penalty = {a: TRUNCATION_PENALTY if truncated[a] else 0.0 for a in roster}
        presentations = plan_presentations(roster, seed * 10_007 + epoch)
        rows: list[tuple] = []
        by_epoch.append(rows)
        for voter in roster:
            for item in presentations[voter].items:
                target = personas[item.author]
                noise = rng.gauss(0.0, VOTE_NOISE)
                if voter in scenario.clique:
                    score = 10 if item.author in scenario.clique else 1
                else:
                    raw = 1 + 9 * (0.7 * text_q[item.author] + 0.3 * target.q) + noise
                    raw += POSITION_BIAS if voter == scenario.biased and item.position == 0 else 0.0
                    score = int(min(10, max(1, round(raw))))
                rows.append((epoch, voter, item.author, score, item.position, penalty[item.author],
                             tokens[item.author], truncated[item.author]))
                oracle_rows.append((epoch, voter, item.author, target.truth + noise, item.position, 0.0, 0, False))
        window = pd.DataFrame([r for rs in by_epoch[-WINDOW_EPOCHS:] for r in rs], columns=COLUMNS)
        raised = window_flags(window) if scenario.use_flags or scenario.clique else []
        flag_history.append(raised)
        flags = sticky_flags(raised, [f for fs in flag_history[-WINDOW_EPOCHS:-1] for f in fs])
        newcomers = [a for a in roster if personas[a].joined > 0 and epoch - personas[a].joined <= GRACE_EPOCHS]
        protected = {scenario.biased} if scenario.biased else set()
        candidates = [a for a in roster if a not in protected]
        loser = rule(window, candidates, newcomers, flags, personas, draws, scenario)
        record = EpochRecord(epoch, list(roster), [a for a in candidates if a not in newcomers], loser)
        if scenario.clique:
            members = set(scenario.clique)
            record.clique_flagged = any(k == "clique" and {v, p} == members for k, v, p, _ in raised)
            honest = window[~window["voter"].isin(members)]
            rest = [f for f in flags if not ({f[1], f[2]} & members)]
            record.loser_without_clique = rule(honest, candidates, newcomers, rest, personas, draws, scenario)
        run.epochs.append(record)
        if loser is None:
            continue
        survivors = [a for a in roster if a != loser]
        fresh = [p for p in reserve if p.name not in _used(run, roster)]
        if fresh:
            newcomer = fresh[draws.randrange(len(fresh))]
            newcomer.joined = epoch
        else:
            generation += 1
            seen = _seen(by_epoch)
            members = [Member(p.name, p.root, p.name in survivors,
                              p.truth if rule is oracle_rule else seen.get(p.name, -math.inf))
                       for p in personas.values()]
            if diverse:
                parent = personas[choose_replacement_parent(members, survivors)]
            else:  # the seed's rule: a mutation of the best survivor
                parent = personas[max(survivors, key=lambda a: (seen.get(a, -math.inf), a))]
            newcomer = mutate(parent, f"{parent.root} {_roman(generation + 1)}", epoch, rng)
            personas[newcomer.name] = newcomer
        roster = [newcomer.name if a == loser else a for a in roster]
        share = max(lineage_shares([personas[a].root for a in roster]).values())
        run.lineage_max_share = max(run.lineage_max_share, share)
    run.votes = pd.DataFrame([r for rs in by_epoch for r in rs], columns=COLUMNS)
    run.oracle_votes = pd.DataFrame(oracle_rows, columns=COLUMNS)
    if scenario.biased:
        from dream_pipeline.tournament.reliability import position_effects

        final = run.votes[run.votes["epoch"] > epochs - WINDOW_EPOCHS]
        run.detected = position_effects(final)
    return run


def _used(run: Run, roster: Sequence[str]) -> set[str]:
    used = set(roster)
    for record in run.epochs:
        used |= set(record.roster)
    return used


def _seen(by_epoch: Sequence[Sequence[tuple]]) -> dict[str, float]:
    """Each agent's mean adjusted score received over the run (what the Reaper can know of it)."""
    totals: dict[str, list[float]] = {}
    for rows in by_epoch:
        for _, _, target, score, _, penalty, _, _ in rows:
            acc = totals.setdefault(target, [0.0, 0.0])
            acc[0] += score - penalty
            acc[1] += 1
    return {a: total / n for a, (total, n) in totals.items()}


def _roman(number: int) -> str:
    numerals = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
                (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    out = []
    for value, letter in numerals:
        while number >= value:
            out.append(letter)
            number -= value
    return "".join(out)
