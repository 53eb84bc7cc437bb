"""Property tests of the verbosity estimate (``tournament/verbosity.py``) and how elimination uses it."""

from __future__ import annotations

import math
import random

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dream_pipeline.tournament.elimination import cut_gap, judge_window
from dream_pipeline.tournament.verbosity import fit_lengths, truncation_chances

CAP = 900
AGENTS = ["Ada", "Bo", "Cy", "Di", "Ed"]


def drafts_of(medians: dict[str, float], epochs: int, seed: int, sigma: float = 0.3):
    """``(epoch, agent) -> (tokens, truncated)``: log-normal lengths around each writer's median, cut at CAP."""
    rng = random.Random(seed)
    out = {}
    for epoch in range(1, epochs + 1):
        for agent, median in sorted(medians.items()):
            length = round(median * math.exp(rng.gauss(0.0, sigma)))
            out[(epoch, agent)] = (CAP, True) if length > CAP else (max(1, length), False)
    return out


lengths = st.dictionaries(
    st.tuples(st.integers(1, 10), st.sampled_from(AGENTS)),
    st.one_of(st.tuples(st.integers(1, CAP - 1), st.just(False)), st.just((CAP, True))),
    min_size=1,
)


@settings(max_examples=60, deadline=None)
@given(drafts=lengths)
def test_chances_are_probabilities_for_every_writer_with_a_draft(drafts):
    chances = truncation_chances(drafts, CAP)
    if all(truncated for _, truncated in drafts.values()):
        assert chances is None  # no length was ever seen in full
        return
    assert chances is not None
    assert set(chances) == {agent for _, agent in drafts}
    assert all(0.0 <= c <= 1.0 for c in chances.values())


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(1, CAP - 1), st.integers(0, CAP)), min_size=1, max_size=8),
       others=lengths)
def test_a_writer_whose_drafts_run_longer_is_likelier_to_be_cut(pairs, others):
    """Two writers with as many drafts, Bo's each at least as long as Ada's (CAP or more: cut): Bo's chance
    is at least Ada's, whatever the rest of the window."""
    drafts = {k: v for k, v in others.items() if k[1] not in ("Ada", "Bo")}
    for epoch, (short, extra) in enumerate(pairs, start=1):
        long = short + extra
        drafts[(epoch, "Ada")] = (short, False)
        drafts[(epoch, "Bo")] = (CAP, True) if long >= CAP else (long, False)
    chances = truncation_chances(drafts, CAP)
    assert chances["Bo"] >= chances["Ada"] - 1e-9


@settings(max_examples=30, deadline=None)
@given(drafts=lengths)
def test_a_larger_cap_cuts_less_often(drafts):
    small, large = truncation_chances(drafts, CAP), truncation_chances(drafts, 2 * CAP)
    if small is None:
        return
    assert all(large[a] <= small[a] + 1e-12 for a in small)


def test_lengths_tell_verbose_writers_from_terse_ones_before_any_is_cut():
    """Six epochs in which nobody ran into the cap; the writer whose drafts run long is still the likelier."""
    drafts = drafts_of({"Ada": 450, "Bo": 500, "Cy": 800, "Di": 520, "Ed": 480}, 6, seed=4, sigma=0.08)
    assert not any(cut for _, cut in drafts.values())
    chances = truncation_chances(drafts, CAP)
    assert max(chances, key=chances.get) == "Cy"
    assert chances["Cy"] > 0.05 > max(c for a, c in chances.items() if a != "Cy")


def test_one_cut_draft_is_pulled_toward_the_window():
    """Two cut drafts in two epochs do not make a writer certain to ramble: the window's writers pull it back."""
    drafts = drafts_of({"Ada": 500, "Bo": 520, "Cy": 480, "Di": 510, "Ed": 500}, 2, seed=1)
    drafts[(1, "Ed")] = drafts[(2, "Ed")] = (CAP, True)
    chances = truncation_chances(drafts, CAP)
    assert 0.1 < chances["Ed"] < 0.6
    assert chances["Ed"] == max(chances.values())


def test_the_cap_defaults_to_the_one_drafts_hit():
    drafts = drafts_of({"Ada": 600, "Bo": 800}, 8, seed=2)
    assert any(cut for _, cut in drafts.values())
    assert truncation_chances(drafts) == truncation_chances(drafts, CAP)
    whole = {k: v for k, v in drafts.items() if not v[1]}
    assert truncation_chances(whole) is None  # no cap given and none hit: the lengths cannot say


def test_the_fit_recovers_a_known_spread():
    medians = {f"w{i}": 400 + 40 * i for i in range(10)}
    fit = fit_lengths(drafts_of(medians, 30, seed=3))
    assert abs(math.sqrt(fit.sigma2) - 0.3) < 0.03
    assert fit.mu["w9"] > fit.mu["w0"]


def test_the_cut_gap_is_what_a_cut_draft_loses_beside_its_writers_whole_ones():
    scores = {(1, "Ada"): (8.0, 0.1), (2, "Ada"): (6.5, 0.1), (3, "Ada"): (8.0, 0.1), (1, "Bo"): (5.0, 0.1)}
    assert cut_gap(scores, {(2, "Ada"), (1, "Bo")}) == 1.5  # Bo has no whole draft: not counted
    assert cut_gap(scores, set()) == 0.0


def test_elimination_reads_verbosity_from_lengths_not_from_luck():
    """Equal insight; Cy's drafts run long but were never cut, Bo was cut once by bad luck with short drafts.
    With lengths, the expected cost falls on the verbose writer."""
    rows = []
    medians = {"Ada": 450, "Bo": 420, "Cy": 840, "Di": 460, "Ed": 440}
    drafts = drafts_of(medians, 8, seed=5, sigma=0.05)
    drafts = {k: ((CAP - 10, False) if k[1] == "Cy" else v) for k, v in drafts.items()}
    drafts[(3, "Bo")] = (CAP, True)
    for (epoch, target), (_, cut) in drafts.items():
        for voter in AGENTS:
            if voter != target:
                rows.append((epoch, voter, target, 7, 0, 5.0 if cut else 0.0))
    votes = pd.DataFrame(rows, columns=["epoch", "voter", "target", "insight_score", "position", "penalty"])
    assert judge_window(votes, AGENTS).loser == "Bo"  # without lengths: the one truncation decides
    judged = judge_window(votes, AGENTS, lengths=drafts)
    assert judged.loser == "Cy"
    assert judged.truncation["Cy"] > judged.truncation["Bo"]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), medians=st.lists(st.integers(300, 1100), min_size=5, max_size=5))
def test_with_lengths_a_clique_still_never_decides_and_the_loser_is_a_candidate(seed, medians):
    """Lengths change how truncations count, not who may decide: a clique's ballots weigh nothing, the loser
    is one of the candidates outside grace, and every chance is a probability."""
    rng = random.Random(seed)
    drafts = drafts_of(dict(zip(AGENTS, medians, strict=True)), 6, seed)
    quality = {"Ada": 8.0, "Bo": 4.0, "Cy": 7.0, "Di": 4.5, "Ed": 6.0}
    rows = []
    for (epoch, target), (_, cut) in sorted(drafts.items()):
        for position, voter in enumerate(a for a in AGENTS if a != target):
            if voter in ("Bo", "Di"):
                score = 10 if target in ("Bo", "Di") else 1
            else:
                score = int(min(10, max(1, round(quality[target] - (1 if cut else 0) + rng.gauss(0, 0.7)))))
            rows.append((epoch, voter, target, score, position % 4, 5.0 if cut else 0.0))
    votes = pd.DataFrame(rows, columns=["epoch", "voter", "target", "insight_score", "position", "penalty"])
    flags = [("clique", "Bo", "Di", 5.0)]
    with_clique = judge_window(votes, AGENTS, ("Ed",), flags, lengths=drafts)
    without = judge_window(votes[~votes["voter"].isin(["Bo", "Di"])], AGENTS, ("Ed",), [], lengths=drafts)
    assert with_clique.loser == without.loser
    assert with_clique.loser in {"Ada", "Bo", "Cy", "Di"}
    assert all(0.0 <= c <= 1.0 for c in with_clique.truncation.values())
