"""Bradley–Terry and the voter statistics pinned with literal values on tiny, hand-made inputs.

The statistical tests (tests/test_tournament_statistics.py) check properties over thousands of
fits; these check the numbers themselves, fast enough to be the mutation benchmark's selection for
these modules. Every literal was computed once outside the code under test: the ratings by
Zermelo's fixed-point iteration (Hunter's MM algorithm, a different method from the code's Newton
steps) and the closed form ``R_A - R_B = 400 log10(p / (1 - p))`` of two agents; the bootstraps
by drawing the same ballots (``numpy.random.default_rng(seed).integers``) and fitting each
resample that way; the voter statistics with exact fractions in plain Python. Beyond the literals,
the bootstrap's every round (batched Newton steps under a prior, a fit per round without) is held
to Zermelo's iteration run in the test itself on that round's resample, to 1e-8 rating points.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import pandas as pd
import pytest

from dream_pipeline.tournament import Vote, bradley_terry, pairwise_outcomes
from dream_pipeline.tournament.bradley_terry import (
    battles_frame,
    bootstrap_ballots,
    bootstrap_intervals,
    compute_mle_elo,
)
from dream_pipeline.tournament.voter_stats import (
    consensus_deviations,
    flag_cliques,
    flag_outlier_voters,
    reciprocity,
    voter_agreement,
    votes_frame,
)

COLUMNS = ["epoch", "voter", "target", "insight_score"]

# --- Bradley–Terry ------------------------------------------------------------------------------

THREE = [("A", "B", 1.0), ("A", "B", 0.5), ("B", "C", 1.0), ("C", "A", 1.0), ("A", "C", 1.0), ("B", "A", 0.0)]


def ratings(series: pd.Series) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in series.items()}


def test_the_battle_table_names_each_winner_and_refuses_other_outcomes():
    frame = battles_frame([("A", "B", 1.0), ("A", "C", 0.0), ("B", "C", 0.5)])
    assert frame.to_dict("records") == [
        {"model_a": "A", "model_b": "B", "winner": "model_a"},
        {"model_a": "A", "model_b": "C", "winner": "model_b"},
        {"model_a": "B", "model_b": "C", "winner": "tie"},
    ]
    with pytest.raises(ValueError, match=r"^outcome 0.3 is not 0, 0.5 or 1$"):
        battles_frame([("A", "B", 0.3)])
    assert list(battles_frame([]).columns) == ["model_a", "model_b", "winner"]


def test_two_agents_without_a_prior_meet_the_closed_form():
    """3 wins in 4: p = 3/4, so R_A - R_B = 400 log10(3), centred on 1000."""
    fit = compute_mle_elo(battles_frame([("A", "B", 1.0)] * 3 + [("B", "A", 1.0)]), prior=0.0)
    assert ratings(fit) == {"A": 1095.424251, "B": 904.575749}
    assert list(fit.index) == ["A", "B"] and fit.name == "rating"


def test_the_prior_pulls_two_agents_together_and_keeps_an_unbeaten_one_finite():
    assert ratings(compute_mle_elo(battles_frame([("A", "B", 1.0)] * 3 + [("B", "A", 1.0)]))) == {
        "A": 1082.419269, "B": 917.580731}
    assert ratings(compute_mle_elo(battles_frame([("A", "B", 1.0)] * 2))) == {"A": 1175.802595, "B": 824.197405}


def test_three_agents_with_a_tie_and_a_cycle():
    battles = battles_frame(THREE)
    assert ratings(compute_mle_elo(battles)) == {"A": 1086.589209, "B": 968.719512, "C": 944.691279}
    assert ratings(compute_mle_elo(battles, prior=0.0)) == {"A": 1100.674202, "B": 967.07544, "C": 932.250359}
    # the curve's parameters: R = init + scale * (theta - mean) / ln(base)
    assert ratings(compute_mle_elo(battles, 200.0, 2.0, 1500.0)) == {
        "A": 1643.821563, "B": 1448.044233, "C": 1408.134204}
    # sorted descending whatever the input order, and the same fit reversed
    assert list(compute_mle_elo(battles_frame(THREE[::-1])).index) == ["A", "B", "C"]


def test_a_fit_stopped_after_one_step_is_not_the_optimum():
    """One Newton step from theta = 0 is not yet the maximum: the iteration and its tolerance count."""
    one = compute_mle_elo(battles_frame(THREE), prior=0.0, max_iter=1)
    assert ratings(one) != {"A": 1100.674202, "B": 967.07544, "C": 932.250359}
    loose = compute_mle_elo(battles_frame(THREE), prior=0.0, tol=10.0)
    assert ratings(loose) == ratings(one)  # a tolerance above the first step stops after it


def test_six_newton_steps_reach_the_optimum():
    """Newton's steps converge fast: six give the optimum that 100 allow (a fit that crept towards it
    with shortened steps would still be on its way)."""
    assert ratings(compute_mle_elo(battles_frame(THREE), max_iter=6)) == {
        "A": 1086.589209, "B": 968.719512, "C": 944.691279}
    assert ratings(compute_mle_elo(battles_frame(THREE), prior=0.0, max_iter=6)) == {
        "A": 1100.674202, "B": 967.07544, "C": 932.250359}


def test_a_loose_tolerance_stops_before_the_optimum_even_where_an_agent_does_not_move():
    """A beats B twice, B beats C twice: by symmetry B's first step is 0, the others' are not."""
    battles = battles_frame([("A", "B", 1.0)] * 2 + [("B", "C", 1.0)] * 2)
    optimum = {"A": 1279.588002, "B": 1000.0, "C": 720.411998}
    assert ratings(compute_mle_elo(battles)) == optimum
    loose = compute_mle_elo(battles, tol=10.0)
    assert ratings(loose) != optimum and ratings(loose) == ratings(compute_mle_elo(battles, max_iter=1))


def test_no_battles_give_an_empty_rating_and_bad_tables_are_refused():
    empty = compute_mle_elo(battles_frame([]))
    assert empty.empty and empty.name == "rating" and empty.dtype == float
    with pytest.raises(ValueError, match=r"^unknown winner values \['draw'\]$"):
        compute_mle_elo(pd.DataFrame([("A", "B", "draw")], columns=["model_a", "model_b", "winner"]))
    with pytest.raises(ValueError, match=r"^an agent cannot battle itself$"):
        compute_mle_elo(battles_frame([("A", "A", 1.0), ("A", "B", 1.0)]))


BALLOTS = [  # three voters' ballots: D is on the second and third only
    [("A", "B", 1.0), ("A", "C", 1.0), ("B", "C", 0.5)],
    [("B", "C", 1.0), ("B", "D", 0.0), ("C", "D", 0.0)],
    [("A", "C", 0.5), ("A", "D", 1.0), ("C", "D", 1.0)],
]


def table(frame: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    return {str(k): tuple(round(float(x), 6) for x in row) for k, row in frame.iterrows()}


def test_a_bootstrap_pinned_with_an_agent_missing_from_two_resamples():
    """Seed 0 draws ballots (2,1,1), (0,0,0), (0,0,0), (2,1,2): D is absent twice, so its median and
    percentiles come from its two other rounds; ``mle`` is the fit of all three ballots."""
    result = bootstrap_ballots(BALLOTS, rounds=4, seed=0)
    assert list(result.columns) == ["rating", "lower", "upper", "mle"]
    assert list(result.index) == ["A", "D", "B", "C"]  # by bootstrap rating
    assert table(result) == {
        "A": (1214.301399, 1103.331671, 1314.233608, 1187.356827),
        "D": (988.976452, 924.11015, 1053.842753, 981.595809),
        "B": (907.0093, 842.883196, 971.295084, 919.310114),
        "C": (856.027143, 842.883196, 984.292479, 911.73725),
    }
    assert table(bootstrap_ballots(BALLOTS, rounds=4, seed=6)) == {
        "D": (1207.581885, 987.270381, 1357.907, 981.595809),
        "A": (1144.896782, 1104.55974, 1185.233825, 1187.356827),
        "B": (985.567702, 923.19701, 1000.0, 919.310114),
        "C": (755.632045, 642.093, 908.544788, 911.73725),
    }


def test_an_agent_with_a_single_battle_in_a_resample_is_rated_in_it():
    """Seed 2 draws (2,0,0), (0,1,2), (1,0,1): in the last, A has played once (A-B) and is rated."""
    ballots = [[("A", "B", 1.0)], [("B", "C", 1.0)], [("A", "C", 0.5), ("A", "B", 0.0), ("B", "C", 1.0)]]
    result = bootstrap_ballots(ballots, rounds=3, seed=2)
    assert table(result) == {
        "A": (1067.635275, 1025.654007, 1206.198267, 1023.444466),
        "B": (1038.800816, 1023.930346, 1106.330538, 1109.884734),
        "C": (866.6708, 753.656261, 907.089723, 866.6708),
    }
    assert result.dtypes.tolist() == [np.float64] * 4


def test_the_bootstraps_defaults_are_200_rounds_from_seed_0():
    """Twelve voters' ballots of four drafts: enough resamples that 199, 201 rounds or another seed
    move the percentiles."""
    rng = random.Random(12)
    names = ["A", "B", "C", "D", "E"]
    votes = [Vote(f"V{i:02d}", t, "L", rng.randint(1, 10), "") for i in range(12)
             for t in rng.sample(names, 4)]
    table_ = bootstrap_intervals(votes)
    pd.testing.assert_frame_equal(table_, bootstrap_intervals(votes, rounds=200, seed=0))
    assert not table_.equals(bootstrap_intervals(votes, rounds=201, seed=0))
    assert not table_.equals(bootstrap_intervals(votes, rounds=200, seed=1))
    ballots = [pairwise_outcomes([v for v in votes if v.voter == f"V{i:02d}"]) for i in range(12)]
    pd.testing.assert_frame_equal(bootstrap_ballots(ballots), table_)


def test_a_bootstrap_on_another_curve_and_prior():
    result = bootstrap_ballots(BALLOTS, rounds=3, seed=1, prior=2.0, scale=200.0, base=2.0, init=1500.0)
    assert table(result) == {
        "A": (1792.401701, 1636.73614, 1863.475866, 1755.093598),
        "C": (1490.794635, 1321.418364, 1600.854921, 1373.895867),
        "B": (1447.240009, 1398.913275, 1467.50067, 1392.306768),
        "D": (1245.618991, 1158.306136, 1573.147592, 1478.703766),
    }


def test_bootstrap_intervals_break_each_voters_ballot_after_the_penalties():
    """Voters A, B, D (sorted) give the ballots BALLOTS[1], BALLOTS[2], BALLOTS[0] once C loses 2
    points; E's ballot of one draft has no battle and is left out of the resampling."""
    votes = [
        Vote("D", "A", "L", 9, ""), Vote("D", "B", "L", 6, ""), Vote("D", "C", "L", 8, ""),
        Vote("A", "B", "L", 8, ""), Vote("A", "C", "L", 7, ""), Vote("A", "D", "L", 9, ""),
        Vote("B", "A", "L", 6, ""), Vote("B", "C", "L", 8, ""), Vote("B", "D", "L", 3, ""),
        Vote("E", "A", "L", 4, ""),
    ]
    result = bootstrap_intervals(votes, rounds=5, seed=3, penalties={"C": 2.0})
    assert table(result) == {
        "A": (1172.370649, 1103.629983, 1185.858209, 1187.356827),
        "D": (1057.256769, 926.786102, 1248.570053, 981.595809),
        "B": (919.310114, 888.904015, 971.290768, 919.310114),
        "C": (869.17109, 690.155283, 985.437706, 911.73725),
    }
    curve = bootstrap_intervals(votes, rounds=3, seed=1, penalties={"C": 2.0}, prior=2.0, scale=200.0, base=2.0,
                                init=1500.0)
    assert table(curve) == {
        "A": (1792.401701, 1714.908927, 1811.574204, 1755.093598),
        "D": (1704.38883, 1181.244628, 1814.823991, 1478.703766),
        "B": (1368.824156, 1309.071961, 1443.319216, 1392.306768),
        "C": (1177.100779, 1103.5787, 1585.170228, 1373.895867),
    }
    assert table(bootstrap_intervals(votes[::-1], rounds=5, seed=0, penalties={"C": 2.0})) == {
        "A": (1216.049707, 1216.049707, 1271.243499, 1187.356827),
        "C": (1003.894554, 642.093, 1084.801253, 911.73725),
        "B": (974.503534, 944.061093, 1000.0, 919.310114),
        "D": (781.278411, 724.645506, 1357.907, 981.595809),
    }


def test_a_bootstrap_needs_a_round_and_of_no_battle_is_empty():
    with pytest.raises(ValueError, match=r"^rounds must be >= 1$"):
        bootstrap_ballots(BALLOTS, rounds=0)
    empty = bootstrap_ballots([[], []], rounds=3)
    assert empty.empty and list(empty.columns) == ["rating", "lower", "upper", "mle"]
    assert empty.dtypes.tolist() == [np.float64] * 4
    one = bootstrap_ballots(BALLOTS[:1], rounds=1)  # one ballot: every resample is that ballot
    assert table(one) == {name: (r, r, r, r) for name, r in ratings(compute_mle_elo(battles_frame(BALLOTS[0]))).items()}


# --- voter statistics ---------------------------------------------------------------------------

SMALL = pd.DataFrame([
    (0, "A", "B", 8), (0, "A", "C", 5), (0, "A", "D", 3),
    (0, "B", "A", 6), (0, "B", "C", 4), (0, "B", "D", 2),
    (0, "C", "A", 7), (0, "C", "B", 9), (0, "C", "D", 4),
    (0, "D", "A", 2), (0, "D", "B", 3), (0, "D", "C", 10),
    (1, "A", "B", 7), (1, "A", "C", 6), (1, "B", "A", 5), (1, "B", "C", 5), (1, "C", "A", 8), (1, "C", "B", 8),
    (1, "A", "E", 5),  # nobody else scored E in epoch 1: no consensus
], columns=COLUMNS)


def test_the_consensus_leaves_the_voter_out_within_its_epoch():
    out = consensus_deviations(SMALL)
    assert list(out.columns) == [*COLUMNS, "consensus", "deviation"]
    assert out["consensus"].tolist()[:18] == [6.0, 7.0, 3.0, 4.5, 7.5, 3.5, 4.0, 5.5, 2.5, 6.5, 8.5, 4.5,
                                             8.0, 5.0, 8.0, 6.0, 5.0, 7.0]
    assert out["deviation"].tolist()[:18] == [2.0, -2.0, 0.0, 1.5, -3.5, -1.5, 3.0, 3.5, 1.5, -4.5, -5.5, 5.5,
                                             -1.0, 1.0, -3.0, -1.0, 3.0, 1.0]
    assert math.isnan(out["consensus"].iloc[18]) and math.isnan(out["deviation"].iloc[18])
    assert out["insight_score"].dtype == float
    assert SMALL["insight_score"].dtype == np.int64  # the caller's table is not changed


def test_voter_agreement_pinned():
    got = voter_agreement(SMALL)
    assert list(got.columns) == ["n_votes", "spearman", "pearson", "leniency", "bias", "disagreement"]
    assert got.index.name == "voter" and list(got.index) == ["A", "B", "C", "D"]
    expected = {
        "A": (5, 0.5, 0.662162, 0.035088, 0.0, 1.414214),
        "B": (5, 0.205196, 0.361158, -1.231579, -1.5, 1.760682),
        "C": (5, 0.820783, 0.827397, 1.568421, 2.4, 0.969536),
        "D": (3, -0.5, -0.802955, -0.631579, -1.5, 4.966555),
    }
    assert {v: (int(r.n_votes), *(round(float(x), 6) for x in r[1:])) for v, r in got.iterrows()} == expected
    votes = [Vote(v, t, "L", s, "") for e, v, t, s in SMALL.itertuples(index=False) if e == 0]
    pd.testing.assert_frame_equal(voter_agreement(votes), voter_agreement(SMALL[SMALL["epoch"] == 0]))
    assert list(voter_agreement(SMALL.iloc[::-1]).index) == ["A", "B", "C", "D"]  # by voter, whatever the order


def test_an_empty_vote_table_has_no_statistics_and_no_flags():
    empty = pd.DataFrame(columns=COLUMNS)
    got = voter_agreement(empty)
    assert got.empty and list(got.columns) == ["n_votes", "spearman", "pearson", "leniency", "bias", "disagreement"]
    assert flag_outlier_voters(empty) == {} and flag_cliques(empty) == {}


def test_agreement_of_a_voter_with_too_few_or_constant_votes_is_nan():
    rows = [(0, "A", "C", 5), (0, "B", "C", 7), (0, "A", "D", 5), (0, "B", "D", 3), (0, "X", "C", 9), (0, "Y", "Q", 4)]
    got = voter_agreement(pd.DataFrame(rows, columns=COLUMNS))
    # A scores 5 and 5 (no spread): no correlation; X has one comparable vote; Y has none
    assert math.isnan(got.loc["A", "spearman"]) and math.isnan(got.loc["A", "pearson"])
    assert (got.loc["A", "leniency"], got.loc["A", "bias"], got.loc["A", "disagreement"]) == (-0.5, -0.5, 2.5)
    assert got.loc["B", "pearson"] == pytest.approx(1.0) and got.loc["B", "spearman"] == pytest.approx(1.0)
    assert (got.loc["B", "bias"], got.loc["B", "disagreement"]) == (-1.0, 1.0)
    assert got.loc["X", "n_votes"] == 1 and math.isnan(got.loc["X", "pearson"])
    assert got.loc["X", "bias"] == 3.0 and got.loc["X", "disagreement"] == 0.0
    assert got.loc["Y", "n_votes"] == 0
    assert math.isnan(got.loc["Y", "bias"]) and math.isnan(got.loc["Y", "disagreement"])
    assert got.loc["Y", "leniency"] == -1.5 and got.loc["X", "leniency"] == 3.5


def test_a_vote_table_without_an_epoch_is_one_epoch_and_one_without_targets_is_refused():
    no_epoch = SMALL[SMALL["epoch"] == 0].drop(columns="epoch")
    pd.testing.assert_frame_equal(voter_agreement(no_epoch), voter_agreement(SMALL[SMALL["epoch"] == 0]))
    assert consensus_deviations(no_epoch)["epoch"].tolist() == [0] * 12
    with pytest.raises(ValueError, match=r"^vote table lacks columns \['insight_score', 'target'\]$"):
        voter_agreement(pd.DataFrame({"voter": ["A"]}))
    assert votes_frame([Vote("A", "B", "L", 7, "why")], epoch=4).values.tolist() == [[4, "A", "B", 7]]
    assert votes_frame([Vote("A", "B", "L", 7, "why")]).values.tolist() == [[0, "A", "B", 7]]


def test_reciprocity_pinned():
    got = reciprocity(SMALL)
    assert list(got.columns) == ["a", "b", "n_ab", "n_ba", "score_ab", "score_ba", "excess_ab", "excess_ba",
                                 "mutual_excess"]
    rows = [(r.a, r.b, r.n_ab, r.n_ba, *(round(float(x), 6) for x in r[4:])) for r in got.itertuples(index=False)]
    assert rows == [
        ("A", "B", 2, 2, 7.5, 5.5, 0.833333, 1.25, 0.833333),
        ("A", "C", 2, 2, 5.5, 7.5, -0.833333, 1.0, -0.833333),
        ("A", "D", 1, 1, 3.0, 2.0, 0.0, -4.5, -4.5),
        ("B", "C", 2, 2, 4.5, 8.5, -1.25, -0.25, -1.25),
        ("B", "D", 1, 1, 2.0, 3.0, 0.0, -6.0, -6.0),
        ("C", "D", 1, 1, 4.0, 10.0, -1.125, 10.5, -1.125),
    ]
    assert reciprocity(SMALL[SMALL["voter"] != "B"])[["a", "b"]].values.tolist() == [["A", "C"], ["A", "D"],
                                                                                    ["C", "D"]]


def test_excess_without_other_votes_has_no_bias_to_remove():
    """B's one comparable vote is for A (no other targets: its bias is 0); A's other vote (for C, +1)
    is its bias: A likes B 5/3 - 1 = 2/3 above it, B likes A 4 above consensus."""
    rows = [(0, "A", "B", 9), (0, "C", "B", 5), (0, "D", "B", 4), (0, "B", "A", 8), (0, "C", "A", 4),
            (0, "B", "E", 6), (0, "E", "B", 7), (0, "E", "C", 3), (0, "A", "C", 6)]
    got = reciprocity(pd.DataFrame(rows, columns=COLUMNS))
    assert [(r.a, r.b, *(round(float(x), 6) for x in r[4:])) for r in got.itertuples(index=False)] == [
        ("A", "B", 9.0, 8.0, 0.666667, 4.0, 0.666667),
        ("A", "C", 6.0, 4.0, -0.666667, -2.333333, -2.333333),
    ]


def test_a_pair_is_a_clique_only_with_enough_votes_each_way():
    assert flag_cliques(SMALL) == {}
    assert flag_cliques(SMALL, threshold=0.83) == {("A", "B"): pytest.approx(5 / 6)}
    assert flag_cliques(SMALL, threshold=0.84) == {}
    assert flag_cliques(SMALL, threshold=0.83, min_votes=2) == {("A", "B"): pytest.approx(5 / 6)}
    assert flag_cliques(SMALL, threshold=0.83, min_votes=3) == {}


def clique_votes() -> pd.DataFrame:
    """Six voters, three epochs: honest scores are the draft's quality plus the voter's leniency; A, B
    and C give each other 10. Without peeling, D and E (2.3125) would look like a second clique."""
    quality = [{"A": 4, "B": 5, "C": 3, "D": 6, "E": 7, "F": 5}, {"A": 5, "B": 3, "C": 4, "D": 7, "E": 5, "F": 6},
               {"A": 3, "B": 4, "C": 5, "D": 5, "E": 6, "F": 8}]
    leniency = {"A": 0, "B": 1, "C": -1, "D": 0, "E": 1, "F": -1}
    rows = [(e, v, t, 10 if {v, t} <= {"A", "B", "C"} else max(1, min(10, q[t] + leniency[v])))
            for e, q in enumerate(quality) for v in "ABCDEF" for t in "ABCDEF" if t != v]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_one_vote_each_way_is_enough_by_default():
    """One epoch: A and B give each other 10, every other vote is 5 (A-B 5.0; C-D 2.5, at the
    threshold, is gone once A and B are set aside)."""
    rows = [(0, v, t, 10 if {v, t} == {"A", "B"} else 5) for v in "ABCD" for t in "ABCD" if v != t]
    votes = pd.DataFrame(rows, columns=COLUMNS)
    assert flag_cliques(votes) == {("A", "B"): 5.0}
    assert flag_cliques(votes, min_votes=2) == {}


QUALITY = [{"A": 4, "B": 5, "C": 6, "D": 3, "E": 4, "F": 7}, {"A": 5, "B": 3, "C": 5, "D": 4, "E": 5, "F": 6},
           {"A": 3, "B": 4, "C": 7, "D": 5, "E": 3, "F": 6}]


def admiring(pairs: dict[frozenset, int]) -> pd.DataFrame:
    """Six voters, three epochs: each scores a draft its quality, but the pairs give each other a score."""
    rows = [(e, v, t, pairs.get(frozenset((v, t)), q[t])) for e, q in enumerate(QUALITY)
            for v in "ABCDEF" for t in "ABCDEF" if v != t]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_a_second_clique_is_found_once_the_first_is_set_aside():
    votes = admiring({frozenset("AB"): 10, frozenset("DE"): 9})
    assert flag_cliques(votes) == {("A", "B"): 6.625, ("D", "E"): 5.0}  # D-E: 5.75 before A, B are set aside


def test_a_chain_of_admirers_is_followed_to_its_end():
    """A-B 5.375, B-C 1.875, C-D 4.125 (E-F 2.0 apart): from A-B, C joins, then D through C."""
    votes = admiring({frozenset("AB"): 10, frozenset("BC"): 10, frozenset("CD"): 10})
    assert flag_cliques(votes, threshold=1.8) == {("A", "B"): 5.375, ("B", "C"): 1.875, ("C", "D"): 4.125}


def test_a_clique_of_three_is_flagged_whole_and_peeled():
    votes = clique_votes()
    excess = reciprocity(votes).set_index(["a", "b"])["mutual_excess"]
    assert excess[("A", "C")] == 3.375 and excess[("A", "B")] == excess[("B", "C")] == 2.4375
    assert excess[("D", "E")] == 2.3125 and excess[("E", "F")] == 2.0
    three = {("A", "B"): 2.4375, ("A", "C"): 3.375, ("B", "C"): 2.4375}
    assert flag_cliques(votes, threshold=2.3) == three  # D-E is not flagged: peeled away with A, B, C
    assert flag_cliques(votes, threshold=2.4375) == three  # at the threshold counts
    assert flag_cliques(votes) == {("A", "C"): 3.375}
    assert flag_cliques(votes, threshold=3.375) == {("A", "C"): 3.375}
    assert flag_cliques(votes, threshold=3.4) == {}
    assert flag_cliques(votes, threshold=2.3, min_votes=3) == three
    assert flag_cliques(votes, threshold=2.3, min_votes=4) == {}


def test_outlier_voters_pinned():
    votes = clique_votes()
    # the default sets aside the votes between A and C (the one clique at 2.5): then C stands out
    assert flag_outlier_voters(votes) == {"C": pytest.approx(1.5318120253899172)}
    assert flag_outlier_voters(votes, cliques=[("A", "C")]) == {"C": pytest.approx(1.5318120253899172)}
    assert flag_outlier_voters(votes, cliques=[("A", "B")]) == {"C": pytest.approx(2.6089160759734615)}
    assert flag_outlier_voters(votes, exclude_cliques=False) == {"C": pytest.approx(1.773529982497591)}
    # A and C keep 12 comparable votes once A-C is set aside: needing 13 leaves B, D, E, F
    assert flag_outlier_voters(votes, min_votes=12) == {"C": pytest.approx(1.5318120253899172)}
    assert flag_outlier_voters(votes, min_votes=13) == {"B": pytest.approx(1.8816115554251538)}
    # the relative margin (C: 1.77 x the median) and the absolute one (C: 1.24 points above it)
    assert flag_outlier_voters(votes, exclude_cliques=False, rel_gap=0.6) == {"C": pytest.approx(1.773529982497591)}
    assert flag_outlier_voters(votes, exclude_cliques=False, rel_gap=0.8) == {}
    assert flag_outlier_voters(votes, exclude_cliques=False, min_gap=1.1) == {"C": pytest.approx(1.773529982497591)}
    assert flag_outlier_voters(votes, exclude_cliques=False, min_gap=1.3) == {}
    assert flag_outlier_voters(votes, exclude_cliques=False, rel_gap=0.0, min_gap=0.0) == {
        "A": pytest.approx(1.3974228655757897), "B": pytest.approx(1.0252098099781952),
        "C": pytest.approx(1.773529982497591)}


def test_outliers_need_three_voters_with_enough_votes():
    # A, B, C have 5 comparable votes each, D 3; disagreements 1.414, 1.761, 0.970, 4.967
    assert flag_outlier_voters(SMALL, min_votes=3) == {"D": pytest.approx(3.1286416840802915)}
    assert flag_outlier_voters(SMALL, rel_gap=0.2, min_gap=0.3) == {"B": pytest.approx(1.2449899597988732)}
    assert flag_outlier_voters(SMALL, rel_gap=0.2, min_gap=0.3, min_votes=6) == {}


def test_when_most_voters_agree_exactly_any_disagreement_beyond_the_gap_is_flagged():
    """H1-H3 score each other alike (disagreement 0, the median); R and X share a draft P and differ on
    it by one point each way (disagreement exactly 1): no ratio, so infinity."""
    rows = [(e, v, t, 5) for e in range(3) for v in ("H1", "H2", "H3") for t in ("H1", "H2", "H3") if t != v]
    rows += [(e, "X", "P", 5) for e in range(6)] + [(e, "R", "P", 6 if e % 2 else 4) for e in range(6)]
    votes = pd.DataFrame(rows, columns=COLUMNS)
    assert flag_outlier_voters(votes) == {"R": math.inf, "X": math.inf}
    assert flag_outlier_voters(votes, min_gap=1.0) == {"R": math.inf, "X": math.inf}
    assert flag_outlier_voters(votes, min_gap=1.01) == {}
    assert flag_outlier_voters(votes, min_votes=7) == {}
    assert flag_outlier_voters(votes, min_gap=0.0) == dict.fromkeys(["H1", "H2", "H3", "R", "X"], math.inf)


def test_an_outlier_exactly_at_both_margins_is_flagged():
    """Three pairs share a draft each and differ on it by 1, 1 and 1.5 points each way (scores of
    5 +- 1.5 are fine in a table): disagreements 1, 1, 1, 1, 1.5, 1.5, median 1. The last pair sits
    exactly at 1.5 x the median and half a point above it."""
    rows = []
    for e in range(6):
        for i, dev in ((1, 1.0), (2, 1.0), (3, 1.5)):
            rows += [(e, f"X{i}", f"P{i}", 5.0), (e, f"R{i}", f"P{i}", 5.0 + (dev if e % 2 else -dev))]
    votes = pd.DataFrame(rows, columns=COLUMNS)
    assert flag_outlier_voters(votes) == {"R3": 1.5, "X3": 1.5}
    assert flag_outlier_voters(votes, rel_gap=0.51) == {}
    assert flag_outlier_voters(votes, min_gap=0.51) == {}


# --- the bootstrap's rounds against a fit of each resample alone ----------------------------------


@functools.cache
def zermelo(battles: tuple[tuple[str, str, float], ...], prior: float) -> dict[str, float]:
    """Log-strengths by Zermelo's fixed point (Hunter's MM), one plain loop per agent: the prior is
    ``prior`` games against a reference of strength 1, half won; without it the strengths are scaled
    to a geometric mean of 1 (the fit is free up to a factor)."""
    names = sorted({x for a, b, _ in battles for x in (a, b)})
    games = {(i, j): 0.0 for i in names for j in names}
    won = dict.fromkeys(names, 0.0)
    for a, b, s in battles:
        games[a, b] += 1.0
        games[b, a] += 1.0
        won[a] += s
        won[b] += 1.0 - s
    p = dict.fromkeys(names, 1.0)
    for _ in range(20_000):
        new = {i: (won[i] + prior / 2) / (sum(games[i, j] / (p[i] + p[j]) for j in names if j != i)
                                           + prior / (p[i] + 1.0)) for i in names}
        if not prior:
            mean = math.fsum(math.log(v) for v in new.values()) / len(new)
            new = {i: v / math.exp(mean) for i, v in new.items()}
        done = max(abs(math.log(new[i] / p[i])) for i in names) < 1e-14
        p = new
        if done:
            break
    else:
        raise AssertionError("Zermelo's iteration did not settle")
    return {i: math.log(v) for i, v in p.items()}


def resamples(ballots, rounds: int, seed: int) -> list[list[tuple[str, str, float]]]:
    """The bootstrap's draws made by hand: per round, as many ballots as there are, with replacement."""
    rng = np.random.default_rng(seed)
    return [[x for k in rng.integers(0, len(ballots), size=len(ballots)) for x in ballots[k]] for _ in range(rounds)]


def centred(battles, prior, scale=400.0, base=10.0, init=1000.0) -> dict[str, float]:
    theta = zermelo(tuple(battles), prior)
    mean = math.fsum(theta.values()) / len(theta)
    return {i: init + scale * (t - mean) / math.log(base) for i, t in theta.items()}


def by_hand(ballots, rounds: int, seed: int, prior: float, **curve) -> pd.DataFrame:
    """The bootstrap's table from each resample fitted alone: an agent without a battle in a round is
    left out of it, the median and percentiles are taken over the rest; ``mle`` fits all ballots."""
    agents = sorted({x for b in ballots for a, c, _ in b for x in (a, c)})
    rows = pd.DataFrame([centred(r, prior, **curve) for r in resamples(ballots, rounds, seed)], columns=agents)
    everything = centred([x for b in ballots for x in b], prior, **curve)
    return pd.DataFrame({"rating": rows.median(), "lower": rows.quantile(0.025), "upper": rows.quantile(0.975),
                         "mle": pd.Series(everything)})


def close(got: pd.DataFrame, want: pd.DataFrame, tol: float = 1e-8) -> bool:
    """The same agents and columns, every figure within ``tol`` rating points (blank where blank)."""
    got = got.sort_index()
    return (list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
            and bool(np.allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=tol, equal_nan=True)))


def cast_ballots(seed: int, voters: int, cyclic: bool) -> list[list[tuple[str, str, float]]]:
    """Ballots of three drafts out of five. ``cyclic``: every ballot holds A and goes round its three
    drafts (each beats or ties the next), so any resample has a finite fit without a prior."""
    rng = random.Random(seed)
    ballots = []
    for _ in range(voters):
        if cyclic:
            x, y, z = ["A", *rng.sample("BCDE", 2)]
            battles = [(x, y, rng.choice((1.0, 0.5))), (y, z, rng.choice((1.0, 0.5))), (z, x, rng.choice((1.0, 0.5)))]
        else:
            x, y, z = rng.sample("ABCDE", 3)
            battles = [(x, y, rng.choice((1.0, 0.5, 0.0))), (x, z, rng.choice((1.0, 0.0))), (y, z, rng.choice((1.0, 0.0)))]
        ballots.append([(b, a, 1.0 - s) if rng.random() < 0.5 else (a, b, s) for a, b, s in battles])
    return ballots


@pytest.mark.parametrize(("prior", "cyclic"), [(1.0, False), (0.0, True)])
def test_every_bootstrap_round_is_the_fit_of_its_resample_alone(prior, cyclic):
    """The batched fit (a prior) and the per-round one (none) against Zermelo's iteration per resample:
    with one round, a seed's ratings are that resample's fit; with four and six, every round enters
    the median or a percentile. The draws hold rounds with an agent absent and, with a prior, rounds
    where an agent wins every battle it plays."""
    absent = unbeaten = 0
    for seed in range(3):
        ballots = cast_ballots(seed, 4, cyclic)
        for rounds, draw in ((1, seed), (4, seed), (6, seed + 20)):
            assert close(bootstrap_ballots(ballots, rounds=rounds, seed=draw, prior=prior),
                         by_hand(ballots, rounds, draw, prior)), (seed, rounds, draw)
            for battles in resamples(ballots, rounds, draw):
                names = {x for a, b, _ in battles for x in (a, b)}
                absent += len(names) < 5
                lost = {b if s == 1.0 else a for a, b, s in battles if s != 0.5} | {x for a, b, s in battles
                                                                                  if s == 0.5 for x in (a, b)}
                unbeaten += bool(names - lost)
    assert absent and (unbeaten > 0) == (prior > 0)


@pytest.mark.parametrize("prior", [1.0, 2.0, 8.0])
def test_the_fit_is_zermelos_fixed_point(prior):
    """compute_mle_elo against Zermelo's iteration on random tables (one to seven battles among two to
    four agents) and on two that need each Newton step's full length: two winners over one loser, and
    a chain whose end agents played once (the prior weighs most in their curvature)."""
    rng = random.Random(int(prior))
    tables = [[("D", "B", 1.0), ("A", "B", 1.0)], [("A", "B", 1.0), ("B", "C", 1.0), ("C", "D", 0.5)]]
    for _ in range(6):
        names = "ABCD"[:rng.randint(2, 4)]
        tables.append([(*rng.sample(names, 2), rng.choice((1.0, 0.5, 0.0))) for _ in range(rng.randint(1, 7))])
    for battles in tables:
        fit = compute_mle_elo(battles_frame(battles), prior=prior)
        want = centred(battles, prior)
        assert set(fit.index) == set(want) and all(abs(fit[i] - want[i]) < 1e-8 for i in want), battles


def test_a_bootstrap_fitted_in_chunks_is_the_same(monkeypatch):
    """Rounds are fitted BATCH_CELLS Hessian cells at a time; with room for two rounds of five agents,
    seven rounds take four chunks (the last of one round), and each round keeps its own row."""
    ballots = cast_ballots(5, 4, cyclic=False)
    whole = bootstrap_ballots(ballots, rounds=7, seed=4)
    assert close(whole, by_hand(ballots, 7, 4, 1.0))
    monkeypatch.setattr(bradley_terry, "BATCH_CELLS", 2 * 5 * 5 + 1)
    pd.testing.assert_frame_equal(bootstrap_ballots(ballots, rounds=7, seed=4), whole, rtol=0, atol=1e-9)
    monkeypatch.setattr(bradley_terry, "BATCH_CELLS", 24)  # not one round's cells: a round at a time
    pd.testing.assert_frame_equal(bootstrap_ballots(ballots, rounds=7, seed=4), whole, rtol=0, atol=1e-9)
    cyclic = cast_ballots(5, 4, cyclic=True)  # without a prior, a round at a time as well
    assert close(bootstrap_ballots(cyclic, rounds=7, seed=4, prior=0.0), by_hand(cyclic, 7, 4, 0.0))


def test_bootstrap_ballots_refuse_bad_battles_and_count_every_agents_games():
    with pytest.raises(ValueError, match=r"^outcome 0.3 is not 0, 0.5 or 1$"):
        bootstrap_ballots([[("A", "B", 1.0)], [("A", "B", 0.3)]])
    with pytest.raises(ValueError, match=r"^an agent cannot battle itself$"):
        bootstrap_ballots([[("A", "B", 1.0)], [("B", "B", 1.0)]])
    # C, last of the agents, is never anyone's opponent (model_b): its games are counted all the same
    ballots = [[("B", "A", 1.0), ("C", "A", 0.5)], [("C", "B", 0.0)], [("C", "A", 1.0), ("B", "A", 0.5)]]
    assert close(bootstrap_ballots(ballots, rounds=4, seed=1), by_hand(ballots, 4, 1, 1.0))
