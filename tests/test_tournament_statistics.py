"""Bradley–Terry, bootstrap intervals and voter statistics (dream_pipeline.tournament)."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dream_pipeline.tournament import Vote, pairwise_outcomes
from dream_pipeline.tournament.bradley_terry import battles_frame, bootstrap_intervals, compute_mle_elo
from dream_pipeline.tournament.voter_stats import (
    consensus_deviations,
    flag_cliques,
    flag_outlier_voters,
    reciprocity,
    voter_agreement,
    votes_frame,
)

AGENTS = [
    "Physicist",
    "Financier",
    "Politician",
    "Mathematician",
    "Technologist",
    "Cyberneticist",
    "Navigator",
]
seeds = st.integers(0, 2**32)
# Statistical properties: a fixed, reproducible set of examples (no flaky reruns).
stat_settings = settings(max_examples=25, deadline=None, derandomize=True)


def one_epoch(rng: random.Random, agents, quality, noise=1.0) -> list[Vote]:
    return [
        Vote(v, t, "L", max(1, min(10, round(quality[t] + rng.gauss(0, noise)))), "")
        for v in agents
        for t in agents
        if t != v
    ]


# --- Bradley–Terry -----------------------------------------------------------------------------


def test_battles_frame_columns():
    frame = battles_frame([("A", "B", 1.0), ("A", "C", 0.0), ("B", "C", 0.5)])
    assert list(frame.columns) == ["model_a", "model_b", "winner"]
    assert list(frame["winner"]) == ["model_a", "model_b", "tie"]
    with pytest.raises(ValueError):
        battles_frame([("A", "B", 0.3)])


def log_likelihood_gradient(ratings: pd.Series, battles: pd.DataFrame) -> dict[str, float]:
    credit = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}
    grad = dict.fromkeys(ratings.index, 0.0)
    for a, b, w in battles.itertuples(index=False):
        e = 1.0 / (1.0 + 10 ** ((ratings[b] - ratings[a]) / 400))
        grad[a] += credit[w] - e
        grad[b] -= credit[w] - e
    return grad


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(3, 7))
def test_mle_without_prior_is_a_stationary_point_centred_on_init(seed, n):
    rng = random.Random(seed)
    agents = AGENTS[:n]
    # a cycle of wins and losses guarantees a finite MLE (no agent undefeated or winless)
    outcomes = [(agents[i], agents[(i + 1) % n], 1.0) for i in range(n)] * 2
    outcomes += [(a, b, rng.choice([0.0, 0.5, 1.0])) for a in agents for b in agents if a < b]
    battles = battles_frame(outcomes)
    ratings = compute_mle_elo(battles, prior=0.0)
    assert set(ratings.index) == set(agents)
    assert ratings.mean() == pytest.approx(1000.0)
    assert list(ratings) == sorted(ratings, reverse=True)
    assert max(abs(g) for g in log_likelihood_gradient(ratings, battles).values()) < 1e-6


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(3, 7))
def test_mle_recovers_clearly_separated_qualities(seed, n):
    rng = random.Random(seed)
    agents = rng.sample(AGENTS, n)
    quality = {a: 2 + 7 * i / (n - 1) for i, a in enumerate(agents)}  # >= 1.1 points apart
    votes = one_epoch(rng, agents, quality, noise=0.3)
    ratings = compute_mle_elo(battles_frame(pairwise_outcomes(votes)))
    assert list(ratings.index) == list(reversed(agents))


def test_mle_is_order_free_and_finite_for_an_undefeated_agent():
    outcomes = [("A", "B", 1.0), ("A", "C", 1.0), ("B", "C", 1.0), ("C", "B", 0.5)]
    forward = compute_mle_elo(battles_frame(outcomes))
    backward = compute_mle_elo(battles_frame(outcomes[::-1]))
    pd.testing.assert_series_equal(forward, backward)
    assert np.isfinite(forward).all() and list(forward.index) == ["A", "B", "C"]
    assert compute_mle_elo(battles_frame([])).empty


@settings(max_examples=10, deadline=None)
@given(seed=seeds)
def test_bootstrap_intervals_contain_the_rating_and_order(seed):
    rng = random.Random(seed)
    agents = AGENTS[:6]
    quality = {a: 2 + 1.4 * i for i, a in enumerate(agents)}
    votes = one_epoch(rng, agents, quality, noise=1.0)
    table = bootstrap_intervals(votes, rounds=60, seed=seed % 1000)
    assert list(table.columns) == ["rating", "lower", "upper", "mle"]
    assert set(table.index) == set(agents)
    assert (table["lower"] <= table["rating"]).all() and (table["rating"] <= table["upper"]).all()
    assert table.loc[agents[-1], "rating"] > table.loc[agents[0], "rating"]
    assert table.loc[agents[-1], "lower"] > table.loc[agents[0], "upper"]
    again = bootstrap_intervals(votes, rounds=60, seed=seed % 1000)
    pd.testing.assert_frame_equal(table, again)


def test_bootstrap_resamples_whole_ballots():
    """With a single voter, every resample is that one ballot: a zero-width interval."""
    votes = [Vote("Poet", t, "L", s, "") for t, s in [("A", 9), ("B", 5), ("C", 2)]]
    table = bootstrap_intervals(votes, rounds=20)
    assert (table["upper"] - table["lower"]).abs().max() < 1e-9
    with pytest.raises(ValueError):
        bootstrap_intervals(votes, rounds=0)
    assert bootstrap_intervals([], rounds=5).empty


# --- voter statistics --------------------------------------------------------------------------


def simulate(seed, n, epochs=8, random_voter=None, clique=None):
    """Honest voters: draft quality + the voter's leniency + noise; optionally a random voter
    (uniform 1..10) and a clique pair who give each other 10 on middling drafts."""
    rng = random.Random(seed)
    agents = AGENTS[:n]
    leniency = {a: rng.uniform(-1.5, 1.5) for a in agents}
    rows = []
    for epoch in range(epochs):
        quality = {a: rng.uniform(2, 9) for a in agents}
        for member in clique or ():
            quality[member] = rng.uniform(2, 6)
        for v in agents:
            for t in agents:
                if t == v:
                    continue
                if v == random_voter:
                    score = rng.randint(1, 10)
                elif clique and v in clique and t in clique:
                    score = 10
                else:
                    score = max(1, min(10, round(quality[t] + leniency[v] + rng.gauss(0, 1))))
                rows.append((epoch, v, t, score))
    return pd.DataFrame(rows, columns=["epoch", "voter", "target", "insight_score"])


def test_consensus_is_leave_one_out_per_epoch():
    df = pd.DataFrame(
        [(0, "A", "C", 4), (0, "B", "C", 8), (1, "A", "C", 10), (0, "C", "A", 5)],
        columns=["epoch", "voter", "target", "insight_score"],
    )
    out = consensus_deviations(df)
    assert list(out["consensus"][:2]) == [8.0, 4.0]
    assert math.isnan(out["consensus"][2]) and math.isnan(out["consensus"][3])
    assert list(out["deviation"][:2]) == [-4.0, 4.0]


def test_voter_agreement_columns_and_leniency():
    votes = [
        Vote(v, t, "L", s, "")
        for v, t, s in [
            ("A", "B", 9),
            ("A", "C", 7),
            ("B", "A", 3),
            ("B", "C", 5),
            ("C", "A", 4),
            ("C", "B", 6),
        ]
    ]
    table = voter_agreement(votes)
    assert list(table.columns) == ["n_votes", "spearman", "pearson", "leniency", "bias", "disagreement"]
    overall = (9 + 7 + 3 + 5 + 4 + 6) / 6
    assert table.loc["A", "leniency"] == pytest.approx(8 - overall)
    assert table.loc["B", "leniency"] == pytest.approx(4 - overall)
    assert table.loc["A", "bias"] == pytest.approx(((9 - 6) + (7 - 5)) / 2)
    pd.testing.assert_frame_equal(table, voter_agreement(votes_frame(votes)))


@stat_settings
@given(seed=seeds, n=st.integers(5, 7))
def test_honest_noisy_voters_raise_no_flags(seed, n):
    votes = simulate(seed, n)
    assert flag_outlier_voters(votes) == {}
    assert flag_cliques(votes) == {}
    agreement = voter_agreement(votes)
    assert (agreement["spearman"] > 0.5).all()


@stat_settings
@given(seed=seeds, n=st.integers(5, 7), who=st.integers(0, 4))
def test_a_random_voter_is_flagged_alone(seed, n, who):
    rogue = AGENTS[who]
    votes = simulate(seed, n, random_voter=rogue)
    assert set(flag_outlier_voters(votes)) == {rogue}
    assert flag_cliques(votes) == {}
    agreement = voter_agreement(votes)
    assert agreement["spearman"].idxmin() == rogue


@settings(stat_settings, max_examples=12)
@given(seed=seeds, n=st.integers(5, 7), pair=st.sets(st.integers(0, 4), min_size=2, max_size=2))
def test_a_planted_clique_is_flagged_as_a_clique(seed, n, pair):
    a, b = sorted(AGENTS[i] for i in pair)
    votes = simulate(seed, n, clique=(a, b))
    cliques = flag_cliques(votes)
    assert set(cliques) == {(a, b)}
    assert cliques[(a, b)] >= 2.5
    # set aside as a clique, not reported again as two outlier voters
    assert not {a, b} & set(flag_outlier_voters(votes))
    table = reciprocity(votes).set_index(["a", "b"])
    assert table.loc[(a, b), "score_ab"] == 10 and table.loc[(a, b), "score_ba"] == 10
    others = table.drop(index=(a, b))
    assert (others["mutual_excess"] < table.loc[(a, b), "mutual_excess"]).all()


def test_reciprocity_removes_the_voters_own_bias():
    """A voter who is generous to everyone is not a clique partner of anyone."""
    rows = []
    for epoch in range(4):
        for v in AGENTS[:5]:
            for t in AGENTS[:5]:
                if t != v:
                    base = 5 + (epoch + AGENTS.index(t)) % 3
                    rows.append((epoch, v, t, min(10, base + (3 if v in AGENTS[:2] else 0))))
    votes = pd.DataFrame(rows, columns=["epoch", "voter", "target", "insight_score"])
    table = reciprocity(votes).set_index(["a", "b"])
    assert table["mutual_excess"].abs().max() <= 1.0  # far below the 2.5 clique threshold
    assert flag_cliques(votes) == {}
