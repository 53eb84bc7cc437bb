"""The pure rules of CodeRepair: which hidden tests a candidate passed, its fitness, the winner, and
how well each voter's scores follow the tests (calibration). No I/O, no clock, no randomness.

Fitness (see docs/code_repair.md for why):

    fitness = pass_rate + TIE_BREAK_WEIGHT * (peer_score - 1) / 9

`pass_rate` is the share of hidden tests passed (0 for a run that did not end well), `peer_score` the
mean insight score (1..10) the candidate received in blind review; a candidate nobody scored counts as
1. With at most `MAX_HIDDEN_TESTS` (99) tests two pass rates differ by at least 1/99 > 0.01, so the
tests decide whenever they can tell two candidates apart, and the jury decides among candidates the
tests cannot separate (most often: several fixes that pass everything).
"""

from __future__ import annotations

import ast
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from dream_pipeline.domains.code_repair.tasks import TestCase

__all__ = [
    "TIE_BREAK_WEIGHT",
    "call_passes",
    "fitness",
    "pass_rate",
    "pick_fix_winner",
    "spearman",
    "judge_calls",
    "voter_calibration",
]

TIE_BREAK_WEIGHT = 0.01
_MAX_LITERAL_CHARS = 10_000


class CallOutcome(Protocol):
    """What the sandbox reports about one call (`resources.sandbox.CallResult` fits)."""

    ok: bool
    value: str | None
    error: str | None


def _literal(text: str | None) -> tuple[bool, object]:
    if text is None or len(text) > _MAX_LITERAL_CHARS:
        return False, None
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def call_passes(test: TestCase, outcome: CallOutcome) -> bool:
    """A call passes when it raised exactly the expected exception, or returned a literal equal (==) to
    the expected value. A returned repr that is not a Python literal fails."""
    if test.raises is not None:
        return (not outcome.ok) and outcome.error == test.raises
    if not outcome.ok:
        return False
    parsed, value = _literal(outcome.value)
    if not parsed:
        return False
    try:
        return bool(value == test.expected_value())
    except Exception:  # noqa: BLE001 - a comparison of literals that still fails counts as a miss
        return False


def judge_calls(tests: Sequence[TestCase], run_ok: bool, calls: Sequence[CallOutcome]) -> list[bool]:
    """Pass/fail per test; all False unless the run ended well with exactly one result per test."""
    if not run_ok or len(calls) != len(tests):
        return [False] * len(tests)
    return [call_passes(t, c) for t, c in zip(tests, calls, strict=True)]


def pass_rate(outcomes: Sequence[bool]) -> float:
    if not outcomes:
        raise ValueError("no tests")
    return sum(outcomes) / len(outcomes)


def fitness(rate: float, peer_score: float | None) -> float:
    """`rate` in [0, 1]; `peer_score` in [1, 10], None or nan for "nobody scored it" (counts as 1)."""
    if not (0.0 <= rate <= 1.0):
        raise ValueError(f"pass rate must be within [0, 1], got {rate!r}")
    peer = 1.0 if peer_score is None or math.isnan(peer_score) else min(10.0, max(1.0, float(peer_score)))
    return rate + TIE_BREAK_WEIGHT * (peer - 1.0) / 9.0


def pick_fix_winner(rates: Mapping[str, float], peer_scores: Mapping[str, float]) -> str:
    """The author of the fittest candidate; equal fitness -> alphabetically first author."""
    if not rates:
        raise ValueError("no candidates")
    return min(rates, key=lambda a: (-fitness(rates[a], peer_scores.get(a)), a))


def _ranks(xs: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson on mean ranks); nan with fewer than 2 pairs or when either
    side is constant (nothing to rank)."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if len(xs) < 2:
        return math.nan
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = math.fsum(rx) / len(rx), math.fsum(ry) / len(ry)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = math.fsum((a - mx) ** 2 for a in rx)
    syy = math.fsum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def voter_calibration(
    votes: Iterable[tuple[str, str, float]], rates: Mapping[str, float]
) -> dict[str, float]:
    """Per voter: Spearman between the scores it gave (voter, target, score) and the targets' hidden-test
    pass rates; nan when the voter's targets all passed the same share (the tests cannot rank them).
    A vote for a target without a pass rate is a bug upstream and raises ValueError."""
    by_voter: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for voter, target, score in votes:
        if target not in rates:
            raise ValueError(f"no pass rate for {target!r}")
        by_voter[voter].append((float(score), rates[target]))
    return {v: spearman([s for s, _ in pairs], [r for _, r in pairs]) for v, pairs in by_voter.items()}

