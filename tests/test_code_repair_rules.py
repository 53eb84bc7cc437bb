"""CodeRepair's pure rules: judging calls, fitness, the winner, Spearman calibration (property-tested)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dream_pipeline.domains.code_repair.rules import (
    call_passes,
    fitness,
    judge_calls,
    pass_rate,
    pick_fix_winner,
    spearman,
    voter_calibration,
)
from dream_pipeline.domains.code_repair.tasks import TestCase
from resources.sandbox import CallResult

peer = st.one_of(st.none(), st.just(math.nan), st.floats(min_value=1, max_value=10))


def test_call_passes_compares_literals_and_exception_names():
    assert call_passes(TestCase("(1,)", "[1, 2]"), CallResult(True, value="[1, 2]"))
    assert call_passes(TestCase("(1,)", "2.5"), CallResult(True, value="2.5"))
    assert call_passes(TestCase("(1,)", "3.0"), CallResult(True, value="3"))  # == on literals: 3 == 3.0
    assert not call_passes(TestCase("(1,)", "[1, 2]"), CallResult(True, value="[2, 1]"))
    assert not call_passes(TestCase("(1,)", "'a'"), CallResult(True, value="<object at 0x1>"))
    assert not call_passes(TestCase("(1,)", "None"), CallResult(False, error="TypeError"))
    assert call_passes(TestCase("(1,)", "raises:ValueError"), CallResult(False, error="ValueError"))
    assert not call_passes(TestCase("(1,)", "raises:ValueError"), CallResult(False, error="TypeError"))
    assert not call_passes(TestCase("(1,)", "raises:ValueError"), CallResult(True, value="'ValueError'"))
    assert not call_passes(TestCase("(1,)", "1"), CallResult(True, value="1" * 20_000))


def test_judge_calls_fails_everything_for_a_run_that_did_not_end_well():
    tests = [TestCase("(1,)", "2"), TestCase("(2,)", "3")]
    good = [CallResult(True, value="2"), CallResult(True, value="3")]
    assert judge_calls(tests, True, good) == [True, True]
    assert judge_calls(tests, False, good) == [False, False]
    assert judge_calls(tests, True, good[:1]) == [False, False]
    assert pass_rate([True, False, True, True]) == 0.75
    with pytest.raises(ValueError):
        pass_rate([])


@given(n=st.integers(1, 99), data=st.data())
def test_a_higher_pass_rate_always_wins_whatever_the_peers_say(n, data):
    low = data.draw(st.integers(0, n - 1))
    high = data.draw(st.integers(low + 1, n))
    assert fitness(high / n, data.draw(peer)) > fitness(low / n, data.draw(peer))


@given(rate=st.integers(0, 20).map(lambda k: k / 20),
       a=st.floats(min_value=1, max_value=10), b=st.floats(min_value=1, max_value=10))
def test_equal_pass_rates_are_decided_by_the_peers(rate, a, b):
    if a > b:
        assert fitness(rate, a) > fitness(rate, b)
        assert pick_fix_winner({"x": rate, "y": rate}, {"x": a, "y": b}) == "x"


def test_pinned_fitness_values_and_bad_input():
    assert fitness(1.0, 10) == pytest.approx(1.01)
    assert fitness(0.5, 1) == 0.5
    assert fitness(0.5, None) == fitness(0.5, math.nan) == 0.5
    with pytest.raises(ValueError):
        fitness(1.5, 5)
    with pytest.raises(ValueError):
        pick_fix_winner({}, {})


@given(st.dictionaries(st.sampled_from("ABCDEFG"), st.integers(0, 10).map(lambda k: k / 10), min_size=1),
       st.dictionaries(st.sampled_from("ABCDEFG"), st.floats(min_value=1, max_value=10)))
def test_the_winner_has_the_best_pass_rate_and_is_deterministic(rates, peers):
    winner = pick_fix_winner(rates, peers)
    assert rates[winner] == max(rates.values())
    assert pick_fix_winner(dict(reversed(list(rates.items()))), peers) == winner


def test_spearman_pinned_values():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 2], [0.0, 0.0, 1.0]) == pytest.approx(1.0)
    assert math.isnan(spearman([1, 2, 3], [0.5, 0.5, 0.5]))
    assert math.isnan(spearman([1], [1]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1])


finite = st.integers(-1000, 1000)  # scores and pass-rate numerators are small integers


@given(st.lists(st.tuples(finite, finite), min_size=2, max_size=12))
def test_spearman_is_bounded_symmetric_and_rank_invariant(pairs):
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    rho = spearman(xs, ys)
    if math.isnan(rho):
        assert len(set(xs)) == 1 or len(set(ys)) == 1
        return
    assert -1.0 <= rho <= 1.0
    assert spearman(ys, xs) == pytest.approx(rho)
    assert spearman([x * 3 + 7 for x in xs], ys) == pytest.approx(rho, abs=1e-9)  # a monotone map keeps ranks
    assert spearman([-x for x in xs], ys) == pytest.approx(-rho, abs=1e-9)


def test_voter_calibration_per_voter():
    rates = {"a": 1.0, "b": 0.5, "c": 0.0}
    votes = [("good", "a", 9), ("good", "b", 5), ("good", "c", 2),
             ("bad", "a", 2), ("bad", "b", 5), ("bad", "c", 9),
             ("blind", "a", 5), ("blind", "b", 5)]
    cal = voter_calibration(votes, rates)
    assert cal["good"] == pytest.approx(1.0)
    assert cal["bad"] == pytest.approx(-1.0)
    assert math.isnan(cal["blind"])
    with pytest.raises(ValueError, match="no pass rate"):
        voter_calibration([("v", "zzz", 3)], rates)
