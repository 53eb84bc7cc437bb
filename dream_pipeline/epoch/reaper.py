"""The Reaper: the eliminated agent leaves, a replacement joins, and the epoch commits, without stopping the loop.

`choose_replacement` is the rule (a fresh reserve persona drawn with the epoch's seed, else a mutation of the
elite of the least-represented lineage, its traits crossed with another lineage's: tournament/diversity.py);
`reap_epoch` applies it through `StateFabric.reap`, which retires, seats, commits and NOTIFYs `dream_epochs` in
one transaction (a rerun is a no-op). The `chapter` asset (defs/epoch/assets/chapter.py) runs it in the
epoch's own run, after the chapter is committed; the replacement is planned while the summary is written.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from dream_pipeline.epoch.replay import is_replay, verify_replay
from dream_pipeline.epoch.scope import EpochScope, epoch_seed
from dream_pipeline.tournament.diversity import Member, choose_replacement_parent, crossed_traits
from resources.fabric import ReapOutcome, StateFabric
from spica import SpicaAgent


@dataclass(frozen=True)
class Reaped:
    """What the Reaper did to an epoch: the fabric's outcome, the replacement seated, a replay's verdict."""

    outcome: ReapOutcome
    replacement: SpicaAgent | None
    verified: dict


def lineage_root(agent: SpicaAgent) -> str:
    """The root persona an agent descends from (a mutation keeps its root's name as `base_name`)."""
    return str(agent.manifest.get("base_name", agent.name))


def choose_replacement(scope: EpochScope, loser: SpicaAgent, used_names: set[str], survivors: list[SpicaAgent],
                       members: list[tuple[SpicaAgent, bool, float | None]]) -> SpicaAgent:
    """A fresh reserve persona if any is left (drawn with the epoch's seed), else a mutation of the elite
    of the least-represented lineage among the survivors, its traits crossed with another lineage's
    (`tournament/diversity.py`)."""
    pool = [p for p in scope.book.reserve() if p["name"] not in used_names]
    seed = epoch_seed(scope.key)
    if pool:
        persona = random.Random(seed).choice(pool)  # noqa: S311 (reproducible draw, not crypto)
        return scope.book.recruit(persona, replaced=loser)
    by_name = {agent.name: agent for agent, _, _ in members}
    for agent in survivors:
        by_name.setdefault(agent.name, agent)
    scored = [Member(agent.name, lineage_root(agent), agent.name in {s.name for s in survivors},
                     -math.inf if score is None else float(score)) for agent, _, score in members]
    parent = by_name[choose_replacement_parent(scored, [s.name for s in survivors])]
    donors = sorted({lineage_root(a): a for a in survivors if lineage_root(a) != lineage_root(parent)}.items())
    donor = donors[seed % len(donors)][1] if donors else parent
    generation = parent.lineage.generation + 1
    child = parent.mutate(generation)
    while child.name in used_names:
        generation += 1
        child = parent.mutate(generation)
    crossed = {**child.manifest, **crossed_traits(child.manifest, donor.manifest, seed)}
    return SpicaAgent(crossed, instance_id=child.instance_id, lineage=child.lineage)


def eliminated(scope: EpochScope) -> SpicaAgent | None:
    """The agent the epoch's ranking eliminated, if any."""
    return next((a for a in scope.agents if a.instance_id == scope.epoch.loser_agent_id), None)


def plan_replacement(fabric: StateFabric, scope: EpochScope) -> SpicaAgent | None:
    """Who replaces the epoch's eliminated agent (None: nobody is eliminated, or the epoch is committed).
    Reads only rows the epoch's ranking already wrote, so it can run while the summary is being written."""
    loser = eliminated(scope)
    if loser is None or scope.epoch.status == "committed":
        return None
    ratings = {r.agent_id: r.rating_after for r in fabric.ratings(scope.epoch.epoch_id)}
    survivors = sorted(
        (a for a in scope.agents if a is not loser), key=lambda a: -ratings.get(a.instance_id, -math.inf)
    )
    return choose_replacement(scope, loser, fabric.persona_names_used(scope.book.name), survivors,
                              fabric.lineage_members(scope.book.name))


def reap_epoch(fabric: StateFabric, scope: EpochScope, replacement: SpicaAgent | None) -> Reaped:
    """Retire the eliminated agent (record and lineage kept), seat its replacement (`plan_replacement`'s),
    commit the epoch."""
    verified = verify_replay(fabric, scope.epoch, {}) if is_replay(scope.epoch) else {}
    return Reaped(fabric.reap(scope.epoch, eliminated(scope), replacement), replacement, verified)
