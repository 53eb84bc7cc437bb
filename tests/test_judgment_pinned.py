"""Pinned values of the judgment rules (elimination, reliability, de-identification, diversity, verbosity).

Each expected value is worked out by hand (exact fractions, or a small computation in a comment),
not recomputed with the rules' own code or constants, so that a changed operator or constant in a
rule turns a test red (``python -m bench.mutation --module judgment_rules``). Pure: no database.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dream_pipeline.tournament.deidentify import Scrubbed, identity_terms, leaked_terms, scrub
from dream_pipeline.tournament.diversity import (
    Member,
    choose_replacement_parent,
    crossed_traits,
    jury_majority,
    lineage_shares,
)
from dream_pipeline.tournament.elimination import (
    AgentEstimate,
    cut_gap,
    draft_lengths,
    draft_scores,
    judge_window,
    pick_eliminated,
    shrunk_penalties,
    shrunk_scores,
)
from dream_pipeline.tournament.reliability import (
    ballot_weights,
    position_effects,
    position_statistics,
    sticky_flags,
)
from dream_pipeline.tournament.verbosity import (
    LengthFit,
    _mills,
    _upper_tail,
    fit_lengths,
    truncation_chances,
)

approx = pytest.approx


def votes_frame(rows, columns=("epoch", "target", "score", "weight")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


# ---------------------------------------------------------------- draft_scores


def test_draft_scores_weighted_mean_and_its_sampling_variance():
    votes = votes_frame([
        (1, "Ada", 4, 1.0), (1, "Ada", 8, 1.0),  # mean 6; sample variance of {4, 8} is 8, over 2 votes: 4
        (2, "Ada", 2, 1.0), (2, "Ada", 8, 0.5),  # w 1.5, mean 6/1.5 = 4; n_eff = 2.25/1.25 = 1.8;
        # weighted spread 36/1.5 - 16 = 8, unbiased 8 * 1.8/0.8 = 18, over n_eff: 10
        (1, "Bo", 7, 1.0), (1, "Bo", 7, 1.0), (1, "Bo", 7, 1.0),  # constant: variance exactly 0
        (2, "Bo", 5, 1.0),  # a single vote: no variance
        (3, "Cy", 9, 0.0), (3, "Cy", 1, 0.0),  # every vote weighs 0: not seen
    ])
    out = draft_scores(votes)
    assert set(out) == {(1, "Ada"), (2, "Ada"), (1, "Bo"), (2, "Bo")}
    assert all(type(e) is int and type(t) is str for e, t in out)
    assert out[(1, "Ada")] == (6.0, 4.0)
    assert out[(2, "Ada")] == (approx(4.0), approx(10.0))
    assert out[(1, "Bo")] == (7.0, 0.0)
    mean, var = out[(2, "Bo")]
    assert mean == 5.0 and math.isnan(var)


def test_draft_scores_of_two_equal_weights_and_of_a_near_single_vote():
    # weights 1 and 1e-6: n_eff = (1 + 1e-6)^2 / (1 + 1e-12) ~ 1.000002, not above 1.0001: no variance
    out = draft_scores(votes_frame([(1, "Ada", 3, 1.0), (1, "Ada", 9, 1e-6)]))
    assert math.isnan(out[(1, "Ada")][1])
    # weights 1 and 0.5 of the same score: the spread is 0, never negative
    assert draft_scores(votes_frame([(1, "Ada", 0.1, 1.0), (1, "Ada", 0.1, 0.5)]))[(1, "Ada")][1] == 0.0
    assert draft_scores(votes_frame([])) == {}
    # a draft nobody's vote counts for is skipped, and the drafts after it are still read
    out = draft_scores(votes_frame([(1, "Cy", 9, 0.0), (1, "Ada", 4, 1.0), (1, "Ada", 8, 1.0)]))
    assert out == {(1, "Ada"): (6.0, 4.0)}


# ---------------------------------------------------------------- shrunk_scores


def test_shrinkage_with_epoch_to_epoch_luck_pinned():
    # three agents, two epochs each (dof = 3, enough to estimate luck): means 2, 9, 5; within-agent
    # squares 2 + 2 + 2 = 6 over 3 dof -> luck 2, sigma2 = 2/2 = 1 each. mu = 16/3; spread of the
    # means (100 + 121 + 1)/9/2 = 37/3; tau2 = 37/3 - 1 = 34/3; factor 34/37.
    scores = {(1, "Ada"): 3.0, (2, "Ada"): 1.0, (1, "Bo"): 10.0, (2, "Bo"): 8.0, (1, "Cy"): 4.0, (2, "Cy"): 6.0}
    est = shrunk_scores(scores)
    assert list(est) == ["Ada", "Bo", "Cy"]
    assert est["Ada"] == AgentEstimate("Ada", 2.0, 2, approx(84 / 37), 1.0)  # latest = epoch 2's score
    assert est["Bo"] == AgentEstimate("Bo", 9.0, 2, approx(322 / 37), 8.0)
    assert est["Cy"] == AgentEstimate("Cy", 5.0, 2, approx(186 / 37), 6.0)


def test_one_epoch_each_cannot_decide_and_shrinks_to_the_floor():
    # one epoch each (dof 0), no variances: the spread of all scores is the noise, ((-2)^2 + 2^2)/1 = 8;
    # the spread of the means is 8 as well, so tau2 = the floor 0.001: shrunk = 4 -+ 0.002/8.001
    est = shrunk_scores({(1, "Ada"): 2.0, (1, "Bo"): 6.0})
    assert est["Ada"].shrunk == approx(4 - 0.002 / 8.001, rel=1e-12)
    assert est["Bo"].shrunk == approx(4 + 0.002 / 8.001, rel=1e-12)
    assert est["Ada"].epochs == 1 and est["Ada"].latest == 2.0


def test_three_single_epochs_take_the_spread_over_n_minus_one():
    # scores 1, 2, 6: mean 3, squares 4 + 1 + 9 = 14 over 2 -> noise 7 each; the means spread as much:
    # tau2 = the floor 0.001, shrunk = 3 + (m - 3) * 0.001/7.001
    est = shrunk_scores({(1, "Ada"): 1.0, (1, "Bo"): 2.0, (1, "Cy"): 6.0})
    assert est["Ada"].shrunk == approx(3 - 2 * 0.001 / 7.001, rel=1e-12)
    assert est["Cy"].shrunk == approx(3 + 3 * 0.001 / 7.001, rel=1e-12)


def test_sampling_variances_set_the_noise_before_luck_can_be_measured():
    # variances 0.5 and 1.5, no repeat epoch: luck 0, sigma2 = 0.5 and 1.5; mu 4, spread 8,
    # tau2 = 8 - 1 = 7: Ada 4 - 2*7/7.5 = 32/15, Bo 4 + 2*7/8.5 = 96/17
    est = shrunk_scores({(1, "Ada"): (2.0, 0.5), (1, "Bo"): (6.0, 1.5)})
    assert est["Ada"].shrunk == approx(32 / 15) and est["Bo"].shrunk == approx(96 / 17)
    # a draft without a variance takes the window's mean variance (here (1 + 3)/2 = 2): Ada's noise
    # ((2 + 1)/2)/2 = 0.75, Bo's 3; means 3 and 6, mu 4.5, spread 4.5, tau2 = 4.5 - 1.875 = 2.625:
    # Ada 4.5 - 1.5 * 2.625/3.375 = 10/3, Bo 4.5 + 1.5 * 2.625/5.625 = 5.2
    est = shrunk_scores({(1, "Ada"): (2.0, math.nan), (2, "Ada"): (4.0, 1.0), (1, "Bo"): (6.0, 3.0)})
    assert est["Ada"].shrunk == approx(10 / 3) and est["Bo"].shrunk == approx(5.2)
    assert est["Ada"].latest == 4.0


def test_sampling_variance_is_taken_out_of_the_luck():
    # dof 3 (Ada 3 epochs, Bo 2): within squares Ada (1 + 0 + 1) + Bo (1 + 1) = 4 -> 4/3; each
    # draft's sampling variance 1/3: luck 4/3 - 1/3 = 1. Ada noise (1/3 + 1)/3 = 4/9, Bo (1/3 + 1)/2 = 2/3.
    # means 5 and 2, mu 3.5, spread 4.5, tau2 = 4.5 - (4/9 + 2/3)/2 = 4.5 - 5/9 = 71/18.
    third = 1 / 3
    scores = {(1, "Ada"): (4.0, third), (2, "Ada"): (5.0, third), (3, "Ada"): (6.0, third),
              (1, "Bo"): (1.0, third), (2, "Bo"): (3.0, third)}
    est = shrunk_scores(scores)
    tau2 = 71 / 18
    assert est["Ada"].shrunk == approx(3.5 + 1.5 * tau2 / (tau2 + 4 / 9))
    assert est["Bo"].shrunk == approx(3.5 - 1.5 * tau2 / (tau2 + 2 / 3))
    # sampling variance larger than the luck seen: luck is 0, not negative (noise = the variances alone)
    big = {k: (y, 3.0) for k, (y, _) in scores.items()}
    # Ada 3/3 = 1, Bo 3/2 = 1.5; tau2 = 4.5 - 1.25 = 3.25
    est = shrunk_scores(big)
    assert est["Ada"].shrunk == approx(3.5 + 1.5 * 3.25 / 4.25)
    assert est["Bo"].shrunk == approx(3.5 - 1.5 * 3.25 / 4.75)


def test_a_lone_agent_keeps_its_mean_and_zero_noise_keeps_every_mean():
    est = shrunk_scores({(1, "Ada"): 5.0, (2, "Ada"): 7.0})
    assert est["Ada"].shrunk == 6.0 and est["Ada"].mean == 6.0 and est["Ada"].epochs == 2
    est = shrunk_scores({(1, "Ada"): (2.0, 0.0), (1, "Bo"): (6.0, 0.0)})
    assert (est["Ada"].shrunk, est["Bo"].shrunk) == (2.0, 6.0)
    assert shrunk_scores({}) == {}


def test_a_nan_score_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^nan score for 'Bo' in epoch 3$"):
        shrunk_scores({(1, "Ada"): 1.0, (3, "Bo"): math.nan})
    with pytest.raises(ValueError, match="nan score for 'Bo' in epoch 3"):
        shrunk_scores({(3, "Bo"): (math.nan, 1.0)})


# ---------------------------------------------------------------- shrunk_penalties


def test_shrunk_penalties_pinned():
    # overall 5/3; Ada (5 + 12 * 5/3)/(2 + 12) = 25/14, Bo (0 + 20)/13 = 20/13
    est = shrunk_penalties({(1, "Ada"): 5.0, (2, "Ada"): 0.0, (1, "Bo"): 0.0})
    assert est["Ada"] == AgentEstimate("Ada", 2.5, 2, approx(25 / 14), 0.0)
    assert est["Bo"] == AgentEstimate("Bo", 0.0, 1, approx(20 / 13), 0.0)
    # two virtual drafts: Ada (5 + 2 * 5/3)/4 = 25/12
    assert shrunk_penalties({(1, "Ada"): 5.0, (2, "Ada"): 0.0, (1, "Bo"): 0.0}, 2.0)["Ada"].shrunk == approx(25 / 12)
    assert shrunk_penalties({}) == {}


# ---------------------------------------------------------------- pick_eliminated


def test_pick_eliminated_edges():
    assert pick_eliminated({"Ada": 1.0}, ["Ada", "Bo"]) == "Bo"  # no score counts as lowest
    assert pick_eliminated({"Ada": 1.0, "Bo": 0.0}, ["Ada"]) == "Ada"  # only candidates
    assert pick_eliminated({"Ada": 1.0, "Bo": 0.0}, ["Ada", "Bo"], ["Bo"]) == "Ada"
    assert pick_eliminated({"Ada": 1.0}, ["Ada"], ["Ada"]) is None
    assert pick_eliminated({"Ada": 5.0, "Bo": 5.0}, ["Ada", "Bo"], (), {"Ada": 1.0}) == "Bo"  # missing latest
    assert pick_eliminated({"Ada": 5.0, "Bo": 5.0}, ["Ada", "Bo"], (), {"Ada": 1.0, "Bo": math.nan}) == "Bo"
    assert pick_eliminated({"Ada": 5.0, "Bo": 5.0}, ["Bo", "Ada"], (), {"Ada": 2.0, "Bo": 2.0}) == "Ada"


# ---------------------------------------------------------------- judge_window

COLUMNS = ["epoch", "voter", "target", "insight_score", "penalty"]


def _two_epochs() -> pd.DataFrame:
    """Voters X and Y score Ada and Bo in epochs 1 and 2; Ada's epoch-1 draft was cut (penalty 5), Bo's
    epoch-2 draft was late (penalty 1)."""
    return pd.DataFrame([
        (1, "X", "Ada", 4, 5.0), (1, "Y", "Ada", 6, 5.0), (1, "X", "Bo", 7, 0.0), (1, "Y", "Bo", 7, 0.0),
        (2, "X", "Ada", 8, 0.0), (2, "Y", "Ada", 8, 0.0), (2, "X", "Bo", 6, 1.0), (2, "Y", "Bo", 8, 1.0),
    ], columns=COLUMNS)


LENGTHS = {(1, "Ada"): (900, True), (2, "Ada"): (500, False), (1, "Bo"): (400, False), (2, "Bo"): (450, False)}


def test_judge_window_with_chances_pinned():
    # drafts: Ada (5, var 1), (8, 0); Bo (7, 0), (7, 1). The cut gap: Ada's whole mean 8 - 5 = 3, so
    # the cut draft counts as 8: means 8 and 7, noise 0.25 each, mu 7.5, spread 0.5, tau2 0.25,
    # factor 1/2: insight 7.75 and 7.25. Penalties other than the cut: Ada 0, 0; Bo 0, 1 -> overall
    # 1/4, shrunk Ada (0 + 3)/14, Bo (1 + 3)/14. Expected cost chance * (5 + 3).
    judged = judge_window(_two_epochs(), ["Ada", "Bo"], lengths=LENGTHS, chances={"Ada": 0.5, "Bo": 0.25})
    assert judged.cut_gap == 3.0 and judged.truncation == {"Ada": 0.5, "Bo": 0.25}
    assert set(judged.weights) == {"X", "Y"} and judged.weights["X"].weight == 1.0
    ada, bo = judged.estimates["Ada"], judged.estimates["Bo"]
    assert (ada.agent, bo.agent, bo.epochs) == ("Ada", "Bo", 2)
    assert (ada.mean, ada.epochs, bo.mean) == (4.0, 2, 6.5)  # raw mean adjusted: (0 + 8)/2, (7 + 6)/2
    assert ada.shrunk == approx(7.75 - 4 - 3 / 14) and ada.latest == approx(8 - 0 - 4)
    assert bo.shrunk == approx(7.25 - 2 - 4 / 14) and bo.latest == approx(7 - 1 - 2)
    assert judged.loser == "Ada"
    assert judge_window(_two_epochs(), ["Ada", "Bo"], ["Ada"], lengths=LENGTHS, chances={"Ada": 0.5}).loser == "Bo"
    # an agent missing from the chances has none: Bo's cost is 0
    only_ada = judge_window(_two_epochs(), ["Ada", "Bo"], lengths=LENGTHS, chances={"Ada": 0.5})
    assert only_ada.estimates["Bo"].shrunk == approx(7.25 - 4 / 14)
    assert only_ada.estimates["Bo"].latest == approx(6.0)


def test_judge_window_without_lengths_pinned():
    # raw insight: Ada (5, var 1), (8, 0) mean 6.5; Bo mean 7; noise 0.25 each; mu 6.75, spread 0.125,
    # tau2 = the floor 0.001: shrink by 0.001/0.251. Penalties per draft 5, 0, 0, 1: overall 1.5,
    # Ada (5 + 18)/14, Bo (1 + 18)/14; latest penalties 0 and 1.
    judged = judge_window(_two_epochs(), ["Ada", "Bo"])
    ada, bo = judged.estimates["Ada"], judged.estimates["Bo"]
    shrink = 0.25 * 0.001 / 0.251
    assert ada.mean == approx(4.0) and bo.mean == approx(6.5)
    assert ada.shrunk == approx(6.75 - shrink - 23 / 14) and bo.shrunk == approx(6.75 + shrink - 19 / 14)
    assert ada.latest == 8.0 and bo.latest == 6.0
    assert (ada.agent, ada.epochs, bo.agent, bo.epochs) == ("Ada", 2, "Bo", 2)
    assert judged.loser == "Ada" and judged.truncation == {} and judged.cut_gap == 0.0
    # lengths in which no draft was cut cannot give a cap: the same judgment as without them
    whole = {k: (n, False) for k, (n, _) in LENGTHS.items()}
    assert judge_window(_two_epochs(), ["Ada", "Bo"], lengths=whole).estimates == judged.estimates


def test_a_silenced_voter_first_in_the_frame_shifts_nothing():
    # a clique member's rows come first: the rest of the frame keeps its own index, and the cut flags
    # and position corrections must line up with those rows, not with 0..n
    votes = _two_epochs()
    noise = pd.DataFrame([(1, "Z", "Ada", 1, 0.0), (1, "Z", "Bo", 10, 0.0), (2, "Z", "Ada", 1, 0.0)], columns=COLUMNS)
    both = pd.concat([noise, votes], ignore_index=True)
    flags = [("clique", "Z", "", 1.0)]
    judged = judge_window(both, ["Ada", "Bo"], flags=flags, lengths=LENGTHS, chances={"Ada": 0.5, "Bo": 0.25})
    assert judged.estimates["Ada"].shrunk == approx(7.75 - 4 - 3 / 14)
    assert judged.estimates["Bo"].shrunk == approx(7.25 - 2 - 4 / 14)
    positional = _positional()
    lead = pd.DataFrame([(e, "Z", "T", 1.0, 0, 0.0) for e in range(1, 4)], columns=positional.columns)
    judged = judge_window(pd.concat([lead, positional], ignore_index=True), ["T"], flags=flags)
    assert judged.estimates["T"].mean == approx(62 / 12)
    assert dict(judged.weights["V"].position_correction) == {0: approx(8 / 3)}


def test_a_silenced_voter_takes_no_part_in_the_position_consensus():
    # V silenced: only W's votes are left, one per draft, so there is no consensus and no effect,
    # not even V's own; V's weight and reason stand
    judged = judge_window(_positional(), ["T"], flags=[("clique", "V", "Zed", 1.0)])
    assert judged.weights["V"].position_correction == {} and judged.weights["V"].weight == 0.0
    assert judged.estimates["T"].mean == 5.0
    # with effects, every voter keeps its name and its reasons
    judged = judge_window(_positional(), ["T"], flags=[("outlier", "W", "", 2.0)])
    assert judged.weights["V"].voter == "V" and judged.weights["V"].reason == ""
    assert judged.weights["W"].voter == "W" and judged.weights["W"].reason == "outlier (2.00x the median disagreement)"
    assert judged.weights["W"].weight == 0.25


def test_equal_shrunk_scores_are_decided_by_the_latest_epoch():
    # Ada 5 then 7, Bo 7 then 5, every vote alike: no variance, no luck yet, so each keeps its mean 6;
    # the tie goes against the lower latest score (Bo), not the first name
    rows = [(e, v, t, s, 0.0) for v in ("X", "Y") for e, t, s in
            [(1, "Ada", 5), (2, "Ada", 7), (1, "Bo", 7), (2, "Bo", 5)]]
    judged = judge_window(pd.DataFrame(rows, columns=COLUMNS), ["Ada", "Bo"])
    assert judged.estimates["Ada"].shrunk == judged.estimates["Bo"].shrunk
    assert (judged.estimates["Ada"].latest, judged.estimates["Bo"].latest) == (7.0, 5.0)
    assert judged.loser == "Bo"


def test_judge_window_reads_the_chances_from_the_lengths():
    judged = judge_window(_two_epochs(), ["Ada", "Bo"], lengths=LENGTHS)
    assert judged.truncation == truncation_chances(LENGTHS)
    assert judged.truncation["Ada"] > judged.truncation["Bo"] and judged.cut_gap == 3.0


def test_judge_window_weights_and_silenced_voters():
    votes = _two_epochs()
    judged = judge_window(votes, ["Ada", "Bo"], flags=[("outlier", "X", "", 2.0)])
    assert judged.weights["X"].weight == 0.25 and judged.weights["Y"].weight == 1.0
    # Ada's epoch 1: (0.25 * 4 + 6)/1.25 = 5.6; epoch 2: 8 -> mean 6.8, less the mean penalty 2.5
    assert judged.estimates["Ada"].mean == approx(6.8 - 2.5)
    # every voter silenced: no estimate, and no one heard, so no one is eliminated
    silenced = judge_window(votes, ["Bo", "Ada"], flags=[("clique", "X", "Y", 5.0)])
    assert silenced.estimates == {} and silenced.loser is None
    # a candidate without a draft in the window (it forfeited) still counts as lowest
    assert judge_window(votes, ["Bo", "Ada", "Cy"], flags=[("outlier", "X", "", 2.0)]).loser == "Cy"


def _positional() -> pd.DataFrame:
    """Voter V scores target T high at position 0 (epochs 1-3), W scores it 5 throughout at position 2.
    V's deviations from W: 2, 3, 4 at position 0 and 0, 0, 1 at position 1."""
    rows = []
    for epoch, (score, position) in enumerate([(7, 0), (8, 0), (9, 0), (5, 1), (5, 1), (6, 1)], start=1):
        rows.append((epoch, "V", "T", float(score), position, 0.0))
        rows.append((epoch, "W", "T", 5.0, 2, 0.0))
    return pd.DataFrame(rows, columns=["epoch", "voter", "target", "insight_score", "position", "penalty"])


def test_position_statistics_pinned():
    # V: means 3 and 1/3 by position, residual squares 2 + 6/9 = 8/3 over 6 - 2 dof: spread sqrt(2/3);
    # effect 3 - 1/3 = 8/3, z = (8/3) / (sqrt(2/3) * sqrt(1/3 + 1/3)) = 4. W: one position, no rest.
    stats = position_statistics(_positional())
    assert list(stats.columns) == ["voter", "position", "n", "effect", "z"]
    assert stats[["voter", "position", "n"]].values.tolist() == [["V", 0, 3], ["V", 1, 3], ["W", 2, 6]]
    assert stats["effect"].tolist()[:2] == [approx(8 / 3), approx(-8 / 3)]
    assert stats["z"].tolist()[:2] == [approx(4.0), approx(-4.0)]
    assert math.isnan(stats["effect"].iloc[2]) and math.isnan(stats["z"].iloc[2])


def test_position_statistics_floor_minimum_votes_and_lone_votes():
    frame = _positional()
    # V's deviations 2, 2.2, 1.8 and 0, 0.2, -0.2: spread sqrt(4 * 0.04 / 4) = 0.2, floored at 0.5:
    # z = 2 / (0.5 * sqrt(2/3)) = 4 * sqrt(1.5)
    frame.loc[frame["voter"] == "V", "insight_score"] = [7, 7.2, 6.8, 5, 5.2, 4.8]
    stats = position_statistics(frame)
    assert stats["effect"].iloc[0] == approx(2.0) and stats["z"].iloc[0] == approx(4 * math.sqrt(1.5))
    # two votes at position 0 and four elsewhere: no z for either side (3 needed on each)
    frame = _positional()
    frame.loc[(frame["voter"] == "V") & (frame["epoch"] == 3), "position"] = 1
    stats = position_statistics(frame)
    assert stats["n"].tolist()[:2] == [2, 4] and stats["z"].iloc[:2].isna().all()
    # identical deviations at each position: no spread, no z
    frame = _positional()
    frame.loc[frame["voter"] == "V", "insight_score"] = [8, 8, 8, 5, 5, 5]
    stats = position_statistics(frame)
    assert stats["effect"].iloc[0] == 3.0 and math.isnan(stats["z"].iloc[0])
    # a draft with a single vote has no consensus to deviate from: it is left out
    lone = pd.concat([_positional(), pd.DataFrame([(7, "V", "T", 10, 0, 0.0)], columns=frame.columns)])
    assert position_statistics(lone)["n"].tolist() == [3, 3, 6]
    # rows by voter name, whatever order the votes come in
    reordered = _positional().iloc[::-1]
    assert position_statistics(reordered)["voter"].tolist() == ["V", "V", "W"]
    empty = position_statistics(_positional().iloc[:0])
    assert empty.empty and list(empty.columns) == ["voter", "position", "n", "effect", "z"]


def test_position_effects_peel_and_judge_window_removes_them():
    effects = position_effects(_positional())
    assert effects == {"V": {0: approx(8 / 3)}}  # once taken out, position 1 is no longer apart
    assert position_effects(_positional(), z=4.01) == {}
    exactly = abs(position_statistics(_positional())["z"].iloc[0])
    assert position_effects(_positional(), z=exactly) == {"V": {0: approx(8 / 3)}}  # at the threshold: taken
    assert position_effects(_positional(), z=3.99) == {"V": {0: approx(8 / 3)}}
    judged = judge_window(_positional(), ["T"])
    assert dict(judged.weights["V"].position_correction) == {0: approx(8 / 3)}
    assert dict(judged.weights["W"].position_correction) == {}
    # the mean of T's epoch scores: all twelve votes (70 points) over 12, less 3 * 8/3 when corrected
    assert judged.estimates["T"].mean == approx(62 / 12)
    uncorrected = judge_window(_positional(), ["T"], correct_positions=False)
    assert uncorrected.estimates["T"].mean == approx(70 / 12)
    assert uncorrected.weights["V"].position_correction == {}
    assert judge_window(_positional().drop(columns="position"), ["T"]).estimates["T"].mean == approx(70 / 12)


def test_position_effects_take_two_effects_one_after_the_other():
    # V is biased at position 0 as before; U, a third voter on a second target S, scores S higher at
    # position 1: both are found, each effect its own voter's (U's two positions are equally apart: the
    # first, position 0, is taken, -11/3, and then position 1 is no longer apart)
    rows = _positional().values.tolist()
    for epoch, (score, position) in enumerate([(5, 0), (5, 0), (6, 0), (9, 1), (8, 1), (10, 1)], start=1):
        rows.append([epoch, "U", "S", score, position, 0.0])
        rows.append([epoch, "W", "S", 5, 2, 0.0])
    frame = pd.DataFrame(rows, columns=_positional().columns)
    # U's deviations 0, 0, 1 and 4, 3, 5: effect at 0 = 1/3 - 4 = -11/3, spread sqrt((2/3 + 2)/4) = sqrt(2/3)
    effects = position_effects(frame)
    assert effects == {"V": {0: approx(8 / 3)}, "U": {0: approx(-11 / 3)}}


def test_draft_lengths_from_a_votes_frame():
    frame = pd.DataFrame([(1, "Ada", 900, True), (1, "Ada", 900, True), (2, "Bo", 450, False)],
                         columns=["epoch", "target", "tokens", "truncated"])
    assert draft_lengths(frame) == {(1, "Ada"): (900, True), (2, "Bo"): (450, False)}
    assert draft_lengths(frame.drop(columns="tokens")) == {}
    assert draft_lengths(frame.drop(columns="truncated")) == {}
    assert draft_lengths(frame.iloc[:0]) == {}


def test_cut_gap_means_over_cut_drafts():
    scores = {(1, "Ada"): (8.0, 0.0), (2, "Ada"): (6.0, 0.0), (3, "Ada"): (4.0, 0.0),
              (1, "Bo"): (6.0, 0.0), (2, "Bo"): (5.0, 0.0)}
    # Ada's whole draft 8: gaps 2 and 4; Bo's whole 6: gap 1 -> (2 + 4 + 1)/3
    assert cut_gap(scores, {(2, "Ada"), (3, "Ada"), (2, "Bo")}) == approx(7 / 3)
    assert cut_gap(scores, {(1, "Bo"), (2, "Bo")}) == 0.0  # Bo has no whole draft


# ---------------------------------------------------------------- reliability


def test_ballot_weights_outlier_strengths_and_reasons():
    flags = [("outlier", "Ada", "", 2.0), ("outlier", "Bo", "", math.inf), ("outlier", "Cy", "", 0.5),
             ("outlier", "Di", "", 0.0), ("outlier", "Ed", "", math.nan), ("outlier", "Fay", "", 1.0),
             ("outlier", "Gus", "", -3.0)]
    weights = ballot_weights(["Ada", "Bo", "Cy", "Di", "Ed", "Fay", "Gus"], flags)
    assert {v: w.weight for v, w in weights.items()} == {
        "Ada": 0.25, "Bo": 0.0, "Cy": 1.0, "Di": 1.0, "Ed": 1.0, "Fay": 1.0, "Gus": 1.0}
    assert weights["Ada"].reason == "outlier (2.00x the median disagreement)"
    assert weights["Bo"].reason == "outlier (infx the median disagreement)"
    assert weights["Ada"].position_correction == {}


def test_ballot_weights_keep_the_lowest_and_every_reason_once():
    flags = [("outlier", "Ada", "", 1.5), ("outlier", "Ada", "", 2.0), ("clique", "Bo", "Cy", 4.0),
             ("clique", "Bo", "Cy", 5.0), ("outlier", "Bo", "", 2.0), ("clique", "Di", "", 3.0)]
    weights = ballot_weights(["Bo", "Ada"], flags)
    assert list(weights) == ["Ada", "Bo", "Cy", "Di"]  # flagged non-voters are listed too, sorted
    assert weights["Ada"].weight == 0.25
    assert weights["Ada"].reason == "outlier (1.50x the median disagreement); outlier (2.00x the median disagreement)"
    assert weights["Bo"].weight == 0.0
    assert weights["Bo"].reason == "clique with Cy; outlier (2.00x the median disagreement)"
    assert weights["Cy"].reason == "clique with Bo" and weights["Cy"].weight == 0.0
    assert weights["Di"].weight == 0.0 and weights["Di"].reason == "clique with "  # no partner named
    assert ballot_weights([], []) == {}
    assert weights["Ada"].voter == "Ada" and weights["Cy"].voter == "Cy"
    # a clique flag with no first member still silences the partner; an outlier's partner is untouched
    weights = ballot_weights(["Bo", "Cy"], [("clique", "", "Bo", 3.0), ("outlier", "Cy", "Bo", 2.0)])
    assert weights["Bo"].weight == 0.0 and weights["Bo"].reason == "clique with "
    assert weights["Cy"].weight == 0.25 and "" not in weights
    with pytest.raises(ValueError, match=r"^unknown flag kind 'grudge'$"):
        ballot_weights(["Ada"], [("grudge", "Ada", "", 1.0)])


def test_sticky_flags_add_only_unseen_cliques():
    current = [("clique", "Bo", "Di", 3.0)]
    earlier = [("clique", "Bo", "Di", 6.0), ("clique", "Di", "Bo", 2.0), ("clique", "Ada", "Cy", 1.0),
               ("clique", "Ada", "Cy", 9.0)]
    assert sticky_flags(current, earlier) == [("clique", "Bo", "Di", 3.0), ("clique", "Di", "Bo", 2.0),
                                              ("clique", "Ada", "Cy", 1.0)]
    assert sticky_flags([], []) == []


# ---------------------------------------------------------------- verbosity


def test_normal_tail_and_mills_ratio():
    assert _upper_tail(0.0) == 0.5
    assert _upper_tail(1.0) == approx(0.15865525393145707)  # a normal table's Q(1)
    assert _upper_tail(-1.0) == approx(0.8413447460685429)
    assert _mills(0.0) == approx(0.7978845608028654)  # phi(0)/Q(0) = 2/sqrt(2 pi)
    assert _mills(1.0) == approx(0.24197072451914337 / 0.15865525393145707)
    assert _mills(40.0) == 40.0 + 1 / 40.0  # Q(40) ~ 1e-350 underflows: the asymptote a + 1/a
    assert _mills(10.0) == approx(10.098093, rel=1e-6)  # phi(10)/Q(10) = 7.6946e-23 / 7.6199e-24


def test_length_fit_chance_is_the_posterior_predictive_tail():
    fit = LengthFit({"Ada": math.log(900), "Bo": math.log(900) - 1.0}, {"Ada": 0.0, "Bo": 0.25}, 0.75, 6.0, 0.1)
    assert fit.chance("Ada", 900) == approx(0.5)
    assert fit.chance("Bo", 900) == approx(0.15865525393145707)  # (1) / sqrt(0.75 + 0.25) = 1: Q(1)


def test_fit_of_one_writer_with_equal_whole_drafts():
    # four drafts of 500 tokens, none cut: mu = m = log 500; the spreads solve
    #   sigma2 = (4 v + 10 * 0.09) / 14,  s2 = (v + 4 * 0.0225) / 5,  v = 1 / (4 / sigma2 + 1 / s2)
    # (iterated by hand from sigma2 = 0.09, s2 = 0.0225 to the fixed point):
    #   sigma2 = 0.0668765..., s2 = 0.0198135..., v = 0.0090676...
    fit = fit_lengths({(e, "Ada"): (500, False) for e in range(1, 5)})
    assert fit.mu["Ada"] == approx(math.log(500)) and fit.m == approx(math.log(500))
    assert fit.sigma2 == approx(0.0668765, rel=1e-5)
    assert fit.s2 == approx(0.0198135, rel=1e-5)
    assert fit.var["Ada"] == approx(0.0090676, rel=1e-5)


def test_fit_lengths_leaves_out_failed_calls_and_needs_a_whole_draft():
    assert fit_lengths({}) is None
    assert fit_lengths({(1, "Ada"): (0, False), (2, "Ada"): (None, False)}) is None
    assert fit_lengths({(1, "Ada"): (900, True), (2, "Bo"): (900, True)}) is None
    fit = fit_lengths({(1, "Ada"): (500, False), (2, "Ada"): (0, False), (1, "Bo"): (0, True)})
    assert set(fit.mu) == {"Ada"}
    fit = fit_lengths({(1, "Ada"): (0, False), (2, "Ada"): (500, False), (2, "Bo"): (400, False)})
    assert set(fit.mu) == {"Ada", "Bo"}  # a failed call is skipped, not the end of the window


def test_truncation_chances_edges():
    with pytest.raises(ValueError, match=r"^cap must be a positive token count, not 0$"):
        truncation_chances({(1, "Ada"): (500, False)}, 0)
    with pytest.raises(ValueError, match="not -5"):
        truncation_chances({(1, "Ada"): (500, False)}, -5)
    assert truncation_chances({(1, "Ada"): (0, True), (2, "Ada"): (500, False)}) is None  # no cap hit
    assert truncation_chances({(1, "Ada"): (900, True)}, 900) is None  # nothing seen in full
    drafts = {(1, "Bo"): (500, False), (1, "Ada"): (450, False), (2, "Ada"): (900, True)}
    chances = truncation_chances(drafts)
    assert list(chances) == ["Ada", "Bo"] and chances == truncation_chances(drafts, 900)
    # the cap is the longest cut draft's length
    assert truncation_chances({**drafts, (2, "Bo"): (800, True)}) == truncation_chances({**drafts, (2, "Bo"): (800, True)}, 900)
    assert chances["Ada"] > chances["Bo"]
    # a cap of one token is still a cap (a cut draft of 1 token sets it)
    tiny = {(1, "Ada"): (1, True), (2, "Ada"): (1, False)}
    assert truncation_chances(tiny) == truncation_chances(tiny, 1) and set(truncation_chances(tiny, 1)) == {"Ada"}


def test_a_cut_draft_counts_longer_than_the_cap():
    # the same window with Ada's third draft cut at 600 tokens vs whole at 600: censoring moves Ada's
    # typical length up, so her chance at the cap is higher
    base = {(e, a): (n, False) for e, (a, n) in enumerate([("Ada", 500), ("Ada", 520), ("Bo", 480), ("Bo", 510)], 1)}
    whole = fit_lengths({**base, (5, "Ada"): (600, False)})
    cut = fit_lengths({**base, (5, "Ada"): (600, True)})
    assert cut.mu["Ada"] > whole.mu["Ada"] + 0.01
    assert cut.chance("Ada", 600) > whole.chance("Ada", 600)


# ---------------------------------------------------------------- deidentify


def test_identity_terms_pinned():
    terms = identity_terms([{"name": "Physician XXXI", "base_name": "Physician", "role": None},
                            "Dame Quill", {"name": "Al"}, {"name": "Ada"}, {"role": "O'Brien-Smith"}])
    assert terms == ("o'brien-smith", "dame quill", "physician", "quill", "dame", "ada")
    assert identity_terms([]) == ()
    assert "physicist" in identity_terms([{"name": "Dr Ada Voss", "base_name": "Physicist"}])
    assert identity_terms(["MIX Vic"]) == ("vic",)  # an upper-case word of numeral letters is a numeral


def test_scrub_articles_case_suffixes_and_numerals():
    terms = ["physician", "dame quill", "dame", "quill", "witch"]
    cases = {
        "the Physician spoke": "someone spoke",
        "The physician spoke": "Someone spoke",
        "A physician's notes": "Someone's notes",
        "an PHYSICIAN": "someone",
        "PHYSICIANS agree": "Someone agree",  # the plural is masked whole
        "the physicians' notes": "someone's notes",
        "witches brew": "someone brew",
        "Physician II said": "Someone said",
        "Physician I said": "Someone I said",
        "Dame   Quill spoke": "Someone spoke",
        "physicianly": "physicianly",
        "metaphysician": "metaphysician",
    }
    for text, expected in cases.items():
        assert scrub(text, terms).text == expected, text
    out = scrub("Dame   Quill met the dame and Physician II; QUILL's pen.", terms)
    assert out.masked == (("dame", 1), ("dame quill", 1), ("physician", 1), ("quill", 1))
    assert out.count == 4
    assert scrub("", terms) == Scrubbed("", ())
    assert scrub("Al and Bo", ["al", "bo"]) == Scrubbed("Al and Bo", ())  # under three letters: ignored
    assert scrub("Ada and Bo", ["ADA"]).text == "Someone and Bo"


def test_leaked_terms_lists_each_term_once():
    terms = ["physician", "dame quill", "quill"]
    assert leaked_terms("Dame Quill and the PHYSICIANS, and the physician's quill", terms) == [
        "dame quill", "physician", "quill"]
    assert leaked_terms("nobody here", terms) == []
    assert leaked_terms("Al was here", ["al"]) == []
    assert leaked_terms("Ada was here", ["ada"]) == ["ada"]  # three letters are enough


# ---------------------------------------------------------------- diversity


def test_lineage_shares_and_jury_majority_edges():
    shares = lineage_shares(["Q", "P", "P"])
    assert list(shares) == ["P", "Q"] and shares == {"P": approx(2 / 3), "Q": approx(1 / 3)}
    assert lineage_shares([]) == {}
    assert jury_majority(["P", "Q"]) is None  # exactly half is no majority
    assert jury_majority([]) is None
    assert jury_majority(["Q", "Q", "P"]) == "Q"
    assert jury_majority(["P"]) == "P"


def m(name: str, root: str, alive: bool, score: float) -> Member:
    return Member(name, root, alive, score)


def test_choose_replacement_parent_tie_breaks():
    base = [m("P1", "P", True, 5.0), m("P2", "P", True, 7.0), m("Q1", "Q", True, 3.0)]
    # an extinct root (R: no survivor) is the rarest
    assert choose_replacement_parent([*base, m("R1", "R", False, 2.0)], ["P1", "P2", "Q1"]) == "R1"
    # Q and R both hold one seat: the root whose elite scores best
    assert choose_replacement_parent([*base, m("R1", "R", True, 6.0)], ["P1", "P2", "Q1", "R1"]) == "R1"
    assert choose_replacement_parent([*base, m("R1", "R", True, 2.0)], ["P1", "P2", "Q1", "R1"]) == "Q1"
    # equal elites: the root's name
    assert choose_replacement_parent([*base, m("R1", "R", True, 3.0)], ["P1", "P2", "Q1", "R1"]) == "Q1"
    # the elite of a root: best score, retired or not; equal scores -> first name; nan counts as lowest
    members = [*base, m("R2", "R", False, 9.0), m("R0", "R", False, 9.0), m("R1", "R", False, 2.0)]
    assert choose_replacement_parent(members, ["P1", "P2", "Q1"]) == "R0"
    members = [*base, m("R3", "R", False, math.nan), m("R4", "R", False, 1.0)]
    assert choose_replacement_parent(members, ["P1", "P2", "Q1"]) == "R4"
    members = [*base, m("R4", "R", False, 1.0), m("R3", "R", False, math.nan)]
    assert choose_replacement_parent(members, ["P1", "P2", "Q1"]) == "R4"
    # a member alive but not among the survivors (just eliminated) holds no seat
    assert choose_replacement_parent(base, ["P1", "P2"]) == "Q1"
    assert choose_replacement_parent(base, ["P1", "Q1"]) == "P2"  # P and Q one each: P's elite (7) is best
    with pytest.raises(ValueError, match="^no member to descend from$"):
        choose_replacement_parent([], [])


def test_crossed_traits_counts_and_voices():
    parent = {"voice": "precise, wonder-struck; fond of footnotes", "obsessions": ["a", "b", "c", "d", "e"]}
    donor = {"voice": "calm at the bedside, clinical; tired", "obsessions": ["c", "x", "y", "z"]}
    child = crossed_traits(parent, donor, 1)
    # five own: keep (5 + 1)//2 = 3 of them, take 5 - 3 = 2 of the donor's not already held
    assert len(child["obsessions"]) == 5 and len(set(child["obsessions"])) == 5
    assert set(child["obsessions"][:3]) <= set("abcde") and set(child["obsessions"][3:]) <= {"x", "y", "z"}
    assert child["voice"] == "precise, wonder-struck; with a streak of the calm at the bedside"
    assert crossed_traits(parent, donor, 1) == child
    assert {tuple(crossed_traits(parent, donor, s)["obsessions"]) for s in range(8)} != {tuple(child["obsessions"])}
    # one own obsession: it is kept and one taken; none: one taken; a donor without any: nothing taken
    assert crossed_traits({"obsessions": ["a"]}, {"obsessions": ["x", "y"]}, 3)["obsessions"][0] == "a"
    assert len(crossed_traits({"obsessions": ["a"]}, {"obsessions": ["x", "y"]}, 3)["obsessions"]) == 2
    assert len(crossed_traits({}, {"obsessions": ["x", "y"]}, 3)["obsessions"]) == 1
    assert crossed_traits({"obsessions": ["a", "b"]}, {"obsessions": ["a"]}, 3)["obsessions"] in (["a"], ["b"])
    assert crossed_traits({"voice": "dry"}, {}, 0) == {"obsessions": [], "voice": "dry"}
    assert crossed_traits({"voice": "dry as a TAX"}, {}, 0)["voice"] == "dry as a TAX"  # only "; " is trimmed
    assert crossed_traits({}, {"voice": "calm, kind"}, 0)["voice"] == "with a streak of the calm"
    assert crossed_traits({}, {"voice": "calm; kind, slow"}, 0)["voice"] == "with a streak of the calm"
    assert crossed_traits({}, {}, 0) == {"obsessions": [], "voice": ""}


def _reference_fit(drafts):
    """The length model of verbosity.py's docstring, fitted apart from its code: the textbook moments of
    a normal truncated below at the cut (phi/Q from ``math.erfc``), the M-step's updates with the priors
    0.3^2 x 10 drafts and 0.15^2 x 4 writers, iterated from a crude start until nothing moves."""
    by_agent = {}
    for (_, agent), (tokens, cut) in drafts.items():
        by_agent.setdefault(agent, []).append((math.log(tokens), cut))
    total = sum(len(v) for v in by_agent.values())
    mu = dict.fromkeys(by_agent, 6.0)
    var = dict.fromkeys(by_agent, 0.0)
    sigma2, m, s2 = 0.5, 6.0, 0.5
    for _ in range(5000):
        sd = math.sqrt(sigma2)
        moments = {}
        for a, ys in by_agent.items():
            rows = []
            for y, cut in ys:
                if cut:
                    alpha = (y - mu[a]) / sd
                    lam = math.exp(-alpha * alpha / 2) / math.sqrt(2 * math.pi) / (0.5 * math.erfc(alpha / math.sqrt(2)))
                    mean = mu[a] + sd * lam
                    rows.append((mean, sigma2 * (1 + alpha * lam - lam * lam) + mean * mean))
                else:
                    rows.append((y, y * y))
            moments[a] = rows
        mu = {a: (sum(e for e, _ in rows) / sigma2 + m / s2) / (len(rows) / sigma2 + 1 / s2) for a, rows in moments.items()}
        var = {a: 1 / (len(rows) / sigma2 + 1 / s2) for a, rows in moments.items()}
        sigma2 = (sum(e2 - 2 * e * mu[a] + mu[a] ** 2 + var[a] for a, rows in moments.items() for e, e2 in rows)
                  + 10 * 0.09) / (total + 10)
        m = sum(mu.values()) / len(mu)
        s2 = (sum((x - m) ** 2 + var[a] for a, x in mu.items()) + 4 * 0.0225) / (len(mu) + 4)
    return mu, var, sigma2, m, s2


def test_the_censored_length_fit_matches_the_model_fitted_apart():
    drafts = {(1, "Ada"): (400, False), (2, "Ada"): (900, True), (3, "Ada"): (700, False), (4, "Ada"): (900, True),
              (1, "Bo"): (300, False), (2, "Bo"): (350, False), (3, "Bo"): (420, False),
              (1, "Cy"): (600, False), (2, "Cy"): (900, True)}
    mu, var, sigma2, m, s2 = _reference_fit(drafts)
    fit = fit_lengths(drafts)
    assert fit.sigma2 == approx(sigma2, rel=1e-6) and fit.m == approx(m, rel=1e-6) and fit.s2 == approx(s2, rel=1e-6)
    for agent in mu:
        assert fit.mu[agent] == approx(mu[agent], rel=1e-6) and fit.var[agent] == approx(var[agent], rel=1e-6)
    chances = truncation_chances(drafts)
    for agent in mu:  # the posterior predictive tail at the cap those drafts hit
        z = (math.log(900) - mu[agent]) / math.sqrt(sigma2 + var[agent])
        assert chances[agent] == approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-5)
    assert chances["Ada"] > chances["Cy"] > chances["Bo"]


def test_a_one_token_draft_is_a_length():
    fit = fit_lengths({(1, "Ada"): (1, False)})
    assert fit is not None and fit.mu["Ada"] == approx(0.0, abs=1e-12)
