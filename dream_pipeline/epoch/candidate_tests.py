"""Test: a domain whose candidates can be tested (CodeRepair) runs each one in the sandbox, and the fittest
candidate wins the epoch (its domain's rules: docs/code_repair.md).

`test_candidates` stores nothing: the `elo_rankings` asset writes its result with the ratings, a re-roll
keeps it in the world's document. Code runs only in `resources.sandbox.SandboxRunner`, never here. Each
voter's calibration is the Spearman correlation of its scores with the candidates' pass rates.

The runs need only the drafts, so `start_candidate_tests` starts them in a background thread when the
vote step begins: they overlap the ballots' engine time instead of following it (about 0.3 s of an
epoch's overhead for five candidates). `test_candidates` then takes their results for the same code,
function and calls, and runs anything else itself. A run's result depends only on those and the
sandbox's limits (a call's limit is CPU time, not wall time), so the outcome is the same either way,
and candidates with the same code share one run.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


Run = Callable[[str, str, Sequence[str]], Any]
_RunKey = tuple[str, str, tuple[str, ...]]

_AHEAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="candidate-tests")
_started: dict[str, Future[dict[_RunKey, Any]]] = {}  # epoch key -> its runs, started ahead
_started_lock = threading.Lock()


def start_candidate_tests(scope: EpochScope, written: Sequence[DraftRow]) -> None:
    """Start the sandbox runs of `written` in the background, for the epoch's `test_candidates` to take.
    Only the latest epoch's runs are kept; a domain without tests (the book) runs nothing."""
    candidates = {d.agent_name: d.text for d in written}

    def runs() -> dict[_RunKey, Any]:
        done: dict[_RunKey, Any] = {}

        def run(code: str, function: str, calls: Sequence[str]) -> Any:
            key = (code, function, tuple(calls))
            if key not in done:  # two candidates with the same code: one run answers both
                done[key] = sandbox_runner().run(code, function, calls)
            return done[key]

        scope.book.score_candidates(scope.book.posed(scope.number), candidates, {}, run)
        return done

    with _started_lock:
        _started.clear()
        _started[scope.key] = _AHEAD.submit(runs)


def _started_or_now(key: str) -> Run:
    """A run that answers from the runs started ahead for epoch `key` (waiting for them) and runs the
    rest now, each code once."""
    with _started_lock:
        started = _started.pop(key, None)
    done: dict[_RunKey, Any] = {}
    if started is not None:
        try:
            done = started.result()
        except Exception:  # a failed head start costs only its time: every run is made again below
            logging.getLogger(__name__).warning("candidate tests started ahead failed; running them now",
                                                exc_info=True)

    def run(code: str, function: str, calls: Sequence[str]) -> Any:
        key = (code, function, tuple(calls))
        if key not in done:
            done[key] = sandbox_runner().run(code, function, calls)
        return done[key]

    return run


def test_candidates(scope: EpochScope, written: Sequence[DraftRow], votes: Sequence[VoteRow],
                    run: Run | None = None) -> TestedCandidates | None:
    """The epoch's candidates tested by its domain (None when the domain has no tests: the book), taking
    the runs `start_candidate_tests` started for it; `run` replaces the sandbox."""
    peers: dict[str, list[int]] = defaultdict(list)
    for v in votes:
        peers[v.target_agent].append(v.insight_score)
    peer_means = {a: sum(s) / len(s) for a, s in peers.items()}
    scores = scope.book.score_candidates(scope.book.posed(scope.number), {d.agent_name: d.text for d in written},
                                        peer_means, run or _started_or_now(scope.key))
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
