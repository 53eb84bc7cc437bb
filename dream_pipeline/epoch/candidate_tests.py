"""Test: a domain whose candidates can be tested (CodeRepair) runs each one in the sandbox, and the fittest
candidate wins the epoch (its domain's rules: docs/code_repair.md).

`test_candidates` stores nothing: the `elo_rankings` asset writes its result with the ratings, a re-roll
keeps it in the world's document. Code runs only in `resources.sandbox.SandboxRunner`, never here. Each
voter's calibration is the Spearman correlation of its scores with the candidates' pass rates.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from dream_pipeline.domains.code_repair.rules import voter_calibration
from dream_pipeline.epoch.scope import EpochScope
from resources.fabric import DraftRow, VoteRow
from resources.sandbox import SandboxRunner


@dataclass(frozen=True)
class TestedCandidates:
    """Each author's test result (a domain's score: status, passed, total, pass_rate, fitness), each
    voter's calibration (Spearman or None, scores it rests on), and the fittest author."""

    __test__ = False  # not a pytest class

    scores: Mapping[str, Any]
    calibration: Mapping[str, tuple[float | None, int]]
    winner: str


@cache
def sandbox_runner() -> SandboxRunner:
    """One runner per process, with the sandbox's default limits (its probe runs once)."""
    return SandboxRunner()


def test_candidates(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow],
                    run: Callable[[str, str, Sequence[str]], Any] | None = None) -> TestedCandidates | None:
    """The epoch's candidates tested by its domain (None when the domain has no tests: the book)."""
    peers: dict[str, list[int]] = defaultdict(list)
    for v in votes:
        peers[v.target_agent].append(v.insight_score)
    peer_means = {a: sum(s) / len(s) for a, s in peers.items()}
    scores = scope.book.score_candidates(scope.book.posed(scope.number), {d.agent_name: d.text for d in written},
                                        peer_means, run or sandbox_runner().run)
    if scores is None:
        return None
    rates = {a: s.pass_rate for a, s in scores.items()}
    rhos = voter_calibration([(v.voter_agent, v.target_agent, v.insight_score) for v in votes], rates)
    counts: dict[str, int] = defaultdict(int)
    for v in votes:
        counts[v.voter_agent] += 1
    calibration = {voter: (None if math.isnan(rho) else rho, counts[voter]) for voter, rho in rhos.items()}
    winner = min(scores, key=lambda a: (-scores[a].fitness, a))
    return TestedCandidates(dict(scores), calibration, winner)


def record_posed(fabric: Any, scope: EpochScope) -> None:
    """Record what the epoch poses where its domain keeps it (CodeRepair: `repair_tasks`)."""
    from dream_pipeline.domains.code_repair.tasks import RepairTask

    posed = scope.book.posed(scope.number)
    if isinstance(posed, RepairTask):
        fabric.write_repair_task(scope.epoch.epoch_id, posed)
