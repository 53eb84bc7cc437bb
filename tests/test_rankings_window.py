"""Ratings with uncertainty over a window of epochs, the bottom-separation rule, and voter flags."""

from __future__ import annotations

import random
import uuid

from hypothesis import given
from hypothesis import strategies as st

from dream_pipeline.epoch.rating_window import window_statistics
from dream_pipeline.tournament.selection import bottom_is_separated
from resources.fabric import VoteRow


def _recent(epochs: int, quality: dict[str, float], clique: tuple[str, ...] = (), seed: int = 0):
    rng = random.Random(seed)
    ids = {name: uuid.uuid5(uuid.NAMESPACE_DNS, name) for name in quality}
    rows = []
    for epoch in range(1, epochs + 1):
        for voter in quality:
            for position, target in enumerate(t for t in quality if t != voter):
                if voter in clique:
                    score = 10 if target in clique else 1
                else:
                    score = int(min(10, max(1, round(1 + 9 * quality[target] + rng.gauss(0, 0.8)))))
                rows.append((epoch, VoteRow(voter, target, ids[voter], ids[target], score, "", f"L{position}",
                                            position), 0.0))
    return rows


QUALITY = {"A": 0.9, "B": 0.7, "C": 0.5, "D": 0.3, "E": 0.1, "F": 0.6}


def test_intervals_bracket_the_rating_and_order_clear_qualities():
    stats = window_statistics(_recent(8, QUALITY), seed=1)
    bt = stats.intervals
    assert set(bt.index) == set(QUALITY)
    assert (bt["lower"] <= bt["rating"]).all() and (bt["rating"] <= bt["upper"]).all()
    assert bt.loc["A", "rating"] > bt.loc["C", "rating"] > bt.loc["E", "rating"]
    assert bottom_is_separated("E", bt["lower"].to_dict(), bt["upper"].to_dict(), list(QUALITY))
    assert not stats.flags


def test_a_planted_clique_is_flagged_and_not_as_outliers():
    stats = window_statistics(_recent(6, QUALITY, clique=("D", "E")), seed=1)
    cliques = [(f.voter_agent, f.partner) for f in stats.flags if f.kind == "clique"]
    assert cliques == [("D", "E")]
    assert not any(f.kind == "outlier" and f.voter_agent in ("D", "E") for f in stats.flags)


def test_penalties_of_each_epoch_enter_the_pooled_fit():
    rows = _recent(4, {"A": 0.5, "B": 0.5, "C": 0.5})
    penalised = [(e, v, 5.0 if v.target_agent == "A" else 0.0) for e, v, _ in rows]
    plain = window_statistics(rows, seed=2).intervals
    hit = window_statistics(penalised, seed=2).intervals
    assert hit.loc["A", "rating"] < plain.loc["A", "rating"]


@given(
    lower=st.dictionaries(st.sampled_from("ABCDE"), st.floats(800, 1200), min_size=2),
    width=st.floats(0, 300),
)
def test_separation_needs_the_bottom_interval_below_every_other(lower, width):
    upper = {a: v + width for a, v in lower.items()}
    loser = min(lower, key=upper.get)
    separated = bottom_is_separated(loser, lower, upper, list(lower))
    assert separated == all(upper[loser] < lower[a] for a in lower if a != loser)


def test_missing_intervals_are_not_separated():
    assert not bottom_is_separated("A", {"A": 1.0}, {"A": 2.0}, ["A", "B"])
    assert not bottom_is_separated("A", {"A": 1.0, "B": 5.0}, {}, ["A", "B"])
