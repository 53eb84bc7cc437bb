"""Property tests of the bounded review design and the token estimates it rests on."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dream_pipeline.tournament import Vote, epoch_scores, pairwise_outcomes, plan_presentations
from dream_pipeline.tournament.anonymize import neutralise_draft_tags, shown_on_ballot
from dream_pipeline.tournament.review_design import (
    ContextTooSmall,
    assign_reviews,
    plan_review,
    reply_tokens,
    reviews_received,
    water_level,
)
from dream_pipeline.tournament.token_budget import estimate_tokens, prefix_within

settings.register_profile("review_design", max_examples=100, deadline=None)
settings.load_profile("review_design")

seeds = st.integers(min_value=0, max_value=2**32)


@st.composite
def casts_and_loads(draw, max_size: int = 80):
    n = draw(st.integers(min_value=2, max_value=max_size))
    authors = [f"Agent{i:03d}" for i in range(n)]
    authors = draw(st.permutations(authors))
    return list(authors), draw(st.integers(min_value=1, max_value=n - 1)), draw(seeds)


# --- the design ----------------------------------------------------------------------------------


@given(casts_and_loads())
def test_the_design_is_balanced_covers_every_draft_and_bounds_every_voter(case):
    authors, k, seed = case
    design = assign_reviews(authors, k, seed)
    assert list(design) == authors
    received = reviews_received(design)
    assert set(received) == set(authors)  # every draft covered
    assert max(received.values()) - min(received.values()) <= 1  # balanced (in fact exactly k each)
    assert set(received.values()) == {k}
    for voter, targets in design.items():
        assert voter not in targets  # no self-review
        assert len(targets) == len(set(targets)) <= k  # each voter at most k, none twice
        assert len(targets) == k


@given(casts_and_loads())
def test_the_ballots_show_exactly_the_design_with_every_position_once(case):
    authors, k, seed = case
    plan = plan_presentations(authors, seed, load=k)
    design = assign_reviews(authors, k, seed)
    positions = {a: Counter() for a in authors}
    for voter, pres in plan.items():
        assert tuple(item.author for item in pres.items) == design[voter]
        for item in pres.items:
            positions[item.author][item.position] += 1
    for author in authors:
        assert positions[author] == Counter(range(k))


@given(casts_and_loads(max_size=12))
def test_the_full_load_is_the_old_full_review(case):
    authors, _, seed = case
    assert plan_presentations(authors, seed, load=len(authors) - 1) == plan_presentations(authors, seed)


@given(casts_and_loads())
def test_the_design_is_deterministic_per_seed_and_order_free(case):
    authors, k, seed = case
    design = assign_reviews(authors, k, seed)
    assert design == assign_reviews(authors, k, seed)
    assert design == assign_reviews(list(reversed(authors)), k, seed)  # same targets, whatever the input order


def test_the_design_changes_from_epoch_to_epoch():
    authors = [f"Agent{i:02d}" for i in range(16)]
    designs = {tuple(sorted(assign_reviews(authors, 6, seed).items())) for seed in range(20)}
    assert len(designs) == 20


@pytest.mark.parametrize("load", [0, 16])
def test_a_load_outside_one_to_n_minus_one_is_refused(load):
    with pytest.raises(ValueError):
        assign_reviews([f"Agent{i}" for i in range(16)], load, 0)


# --- fitting the window --------------------------------------------------------------------------

token_lists = st.lists(st.integers(min_value=1, max_value=6000), min_size=2, max_size=80)


@given(token_lists, st.integers(min_value=0, max_value=40_000))
def test_the_water_level_is_the_highest_cut_that_fits(lengths, room):
    level = water_level(lengths, room)
    if level is None:
        assert sum(lengths) <= room
        return
    assert sum(min(t, level) for t in lengths) <= room
    assert sum(min(t, level + 1) for t in lengths) > room


@st.composite
def drafts_by_author(draw):
    n = draw(st.integers(min_value=2, max_value=80))
    return {f"Agent{i:03d}": draw(st.integers(1, 6000)) for i in range(n)}


def _ballot_sizes(plan, tokens: dict[str, int], seed: int, per_draft: int) -> dict[str, int]:
    """Each voter's drafts as shown (cut or whole), frames included, in the plan's design."""
    return {
        voter: sum(per_draft + min(tokens[t], plan.cuts.get(t, tokens[t])) for t in targets)
        for voter, targets in assign_reviews(list(tokens), plan.load, seed).items()
    }


@given(drafts_by_author(), seeds, st.integers(min_value=1024, max_value=131_072), st.integers(0, 600),
       st.integers(1, 60))
def test_every_planned_ballot_fits_the_window(tokens, seed, window, fixed, per_draft):
    try:
        plan = plan_review(tokens, seed=seed, context_tokens=window, fixed_tokens=fixed, per_draft_tokens=per_draft)
    except ContextTooSmall:
        assert window - 128 - fixed - reply_tokens(2) - 2 * per_draft < 2 * per_draft
        return
    n = len(tokens)
    assert min(n - 1, 2) <= plan.load <= min(n - 1, 6)
    assert plan.reply_tokens == reply_tokens(plan.load)
    for size in _ballot_sizes(plan, tokens, seed, per_draft).values():
        assert fixed + size + plan.reply_tokens + 128 <= window
    assert all(tokens[author] > cut >= per_draft for author, cut in plan.cuts.items())  # only long drafts are cut
    if plan.load > min(n - 1, 2):
        assert all(cut >= 512 for cut in plan.cuts.values())  # a higher load never shows less than that


@given(st.integers(min_value=7, max_value=80), seeds, st.data())
def test_the_load_does_not_grow_with_the_cast(n, seed, data):
    """Drafts that fit: 6 per voter whatever the cast, so a ballot is the size of a cast of 7's."""
    tokens = {f"Agent{i:03d}": data.draw(st.integers(200, 800)) for i in range(n)}
    plan = plan_review(tokens, seed=seed, context_tokens=8192, fixed_tokens=400, per_draft_tokens=40)
    assert plan.load == 6 and plan.cuts == {}


def test_only_the_drafts_too_long_for_a_ballot_are_cut():
    tokens = {f"Agent{i:02d}": 700 for i in range(16)} | {"Agent00": 6000}
    plan = plan_review(tokens, seed=1, context_tokens=8192, fixed_tokens=400, per_draft_tokens=40)
    assert plan.load == 6 and set(plan.cuts) == {"Agent00"}
    assert 512 <= plan.cuts["Agent00"] < 6000


def test_a_small_window_shows_two_drafts_cut_to_fit():
    tokens = {f"Agent{i}": 1700 for i in range(7)}
    plan = plan_review(tokens, seed=3, context_tokens=2048, fixed_tokens=600, per_draft_tokens=40)
    assert plan.load == 2 and set(plan.cuts) == set(tokens)
    assert all(0 < cut < 1700 for cut in plan.cuts.values())
    for size in _ballot_sizes(plan, tokens, 3, 40).values():
        assert 600 + size + plan.reply_tokens + 128 <= 2048


def test_no_window_means_the_full_uncut_review():
    plan = plan_review({f"Agent{i}": 5000 for i in range(7)}, seed=0, context_tokens=None, fixed_tokens=600,
                       per_draft_tokens=40)
    assert (plan.load, dict(plan.cuts), plan.reply_tokens) == (6, {}, 1024)


def test_a_window_too_small_for_any_ballot_is_a_clear_error():
    with pytest.raises(ContextTooSmall, match="cannot hold a ballot"):
        plan_review({f"Agent{i}": 1700 for i in range(7)}, seed=0, context_tokens=1024, fixed_tokens=600,
                    per_draft_tokens=40)


# --- token estimates -----------------------------------------------------------------------------

texts = st.text(alphabet=st.sampled_from(list("ab <draft/>\n.é")), max_size=3000)


@given(texts, st.integers(min_value=0, max_value=1500))
def test_a_prefix_never_exceeds_its_tokens_and_is_the_whole_text_when_it_fits(text, tokens):
    end = prefix_within(text, tokens)
    assert estimate_tokens(text[:end]) <= tokens
    if estimate_tokens(text) <= tokens:
        assert end == len(text)


@given(texts, st.integers(min_value=0, max_value=1500))
def test_what_a_ballot_shows_fits_its_share_after_the_tags_are_neutralised(text, tokens):
    shown = shown_on_ballot(text, tokens)
    assert estimate_tokens(neutralise_draft_tags(text[:shown])) <= tokens


def test_the_estimate_is_above_whitespace_words_and_a_third_of_the_characters():
    assert estimate_tokens("one two three") == 5  # 13 characters / 3, rounded up
    assert estimate_tokens("a a a a a a") == 6  # six words in 11 characters
    assert estimate_tokens("") == 0


# --- a draft's score from fewer reviews ------------------------------------------------------------


@given(casts_and_loads(max_size=30), st.data())
def test_a_score_from_fewer_reviews_is_the_mean_of_the_reviews_it_got(case, data):
    authors, k, seed = case
    design = assign_reviews(authors, k, seed)
    votes = [Vote(v, t, "x", data.draw(st.integers(1, 10)), "") for v, targets in design.items() for t in targets]
    scores = epoch_scores(votes, {}, authors)
    for author in authors:
        got = [v.insight_score for v in votes if v.target == author]
        assert len(got) == k
        assert math.isclose(scores[author], sum(got) / k)
        assert 1 <= scores[author] <= 10  # the scale is the ballot's, whatever k
    # every ballot of k drafts gives its k(k-1)/2 battles, and only between drafts a voter read
    battles = pairwise_outcomes(votes)
    assert len(battles) == len(authors) * k * (k - 1) // 2


@given(casts_and_loads())
def test_two_voters_review_each_other_within_an_epoch_only_in_a_small_cast(case):
    """Docs, section 11: mutual reviews exist in one epoch's design exactly when N <= 2k."""
    authors, k, seed = case
    design = assign_reviews(authors, k, seed)
    mutual = any(v in design[t] for v, targets in design.items() for t in targets)
    assert mutual == (len(authors) <= 2 * k)
