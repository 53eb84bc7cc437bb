"""The bounded review (who reviews whom, how much of each draft a ballot shows) pinned with literal
examples worked by hand: the properties in tests/test_review_design.py hold for any constants, these
fail when one changes."""

from __future__ import annotations

import pytest

from dream_pipeline.tournament import plan_presentations
from dream_pipeline.tournament.anonymize import (
    BALLOT_INSTRUCTIONS,
    BallotItem,
    Presentation,
    render_ballot_prompt,
    shown_on_ballot,
)
from dream_pipeline.tournament.review_design import (
    ContextTooSmall,
    ReviewPlan,
    assign_reviews,
    cyclic_targets,
    plan_review,
    reply_tokens,
    reviews_received,
    water_level,
)
from dream_pipeline.tournament.token_budget import (
    completion_room,
    estimate_tokens,
    messages_tokens,
    prefix_within,
)

BALLOT = Presentation("Poet", (BallotItem("Anonymous_Scribe_1", "Sage", 0), BallotItem("Anonymous_Oracle_2", "Jurist", 1)))

# --- token estimates -----------------------------------------------------------------------------


def test_estimates_round_a_third_of_the_characters_up_and_count_words():
    assert estimate_tokens("abcd") == 2  # 4 / 3 rounded up
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("a b c d e f g") == 7  # 7 words in 13 characters (5 by characters)
    assert estimate_tokens("  ") == 1  # no word, two characters


def test_a_request_counts_eight_tokens_of_template_per_message():
    assert messages_tokens([{"role": "system", "content": "one two three"}, {"role": "user", "content": ""}]) == 21
    assert messages_tokens([]) == 0


def test_the_room_left_for_a_completion_keeps_the_margin_and_is_never_negative():
    assert completion_room(1000, 300) == 572  # 128 kept free
    assert completion_room(1000, 300, margin=0) == 700
    assert completion_room(400, 300) == 0
    assert completion_room(428, 300) == 0 and completion_room(429, 300) == 1


def test_a_prefix_is_cut_at_three_characters_a_token_or_before_the_word_that_overflows():
    assert prefix_within("abc def ghi", 2) == 6  # "abc de": 2 words, 6 characters
    assert prefix_within("a b c d e f", 2) == 4  # "a b ": the third word would make 3
    assert prefix_within("a b c d e f", 6) == 11  # the whole text fits
    assert prefix_within("abcdefgh", 3) == 8 and prefix_within("abcdefghij", 3) == 9
    assert prefix_within("abc", 0) == 0 and prefix_within("abc", -4) == 0
    assert prefix_within("aa bb", 1) == 3  # "aa ": still one word in 3 characters
    assert prefix_within("a  b  c  d", 2) == 6  # "a  b  ": two words in 6 characters
    assert prefix_within("a b c d e f g h", 3) == 6  # "a b c ": cut before the fourth word
    assert prefix_within("a b c d e f", 4) == 8  # "a b c d ": the cut reaches the last character's word
    # a word starts after a space, not inside a word, nor after two spaces only
    assert prefix_within("b ab  b bb ", 3) == 8  # "b ab  b "
    assert prefix_within("ab a bab   ", 2) == 5  # "ab a "
    assert prefix_within("a  bc d e f g", 3) == 8  # "a  bc d "


# --- the design ----------------------------------------------------------------------------------


def test_the_design_of_a_seed_never_changes():
    """A replay rebuilds the ballots from the epoch's seed: seed 5 gives the cycle Poet, Scribe, Sage,
    Jurist, and each voter reviews the next two."""
    design = assign_reviews(["Poet", "Sage", "Jurist", "Scribe"], 2, 5)
    assert design == {"Poet": ("Scribe", "Sage"), "Sage": ("Jurist", "Poet"), "Jurist": ("Poet", "Scribe"),
                      "Scribe": ("Sage", "Jurist")}
    assert list(design) == ["Poet", "Sage", "Jurist", "Scribe"]
    plan = plan_presentations(["Poet", "Sage", "Jurist", "Scribe"], 5, load=2)
    assert {v: tuple(i.author for i in p.items) for v, p in plan.items()} == design
    assert reviews_received(design) == {"Poet": 2, "Sage": 2, "Jurist": 2, "Scribe": 2}


def test_the_largest_cast_is_accepted():
    authors = [f"Author{i:03d}" for i in range(256)]
    plan = plan_presentations(authors, 0, load=1)
    assert len(plan) == 256 and all(len(p.items) == 1 for p in plan.values())


def test_cyclic_targets_and_their_errors():
    assert cyclic_targets(["a", "b", "c"], 1) == {"a": ("b",), "b": ("c",), "c": ("a",)}
    assert cyclic_targets(["a", "b", "c"], 2) == {"a": ("b", "c"), "b": ("c", "a"), "c": ("a", "b")}
    with pytest.raises(ValueError, match=r"^a review load must be within 1..2 for 3 authors, got 3$"):
        cyclic_targets(["a", "b", "c"], 3)
    with pytest.raises(ValueError, match=r"^a review load must be within 1..2 for 3 authors, got 0$"):
        cyclic_targets(["a", "b", "c"], 0)
    with pytest.raises(ValueError, match=r"^duplicate author names$"):
        assign_reviews(["a", "a", "b"], 1, 0)


# --- fitting the window --------------------------------------------------------------------------


def test_reply_tokens_grow_per_draft_up_to_the_cap():
    assert reply_tokens(1) == 224  # 96 + 128
    assert reply_tokens(7) == 992
    assert reply_tokens(8) == 1024  # 1120, capped


def test_water_levels_worked_by_hand():
    assert water_level([100, 200, 300], 600) is None  # fits whole
    assert water_level([100, 200, 300], 450) == 175  # 100 whole, the other two share 350
    assert water_level([300, 100, 200], 599) == 299  # only the longest is cut, by one
    assert water_level([100, 200, 300], 299) == 99  # all three cut: 299 // 3
    assert water_level([100, 200, 300], 0) == 0
    assert water_level([5], 1) == 1
    assert water_level([100, 200, 300], -5) == 0


DRAFTS = {"A": 1000, "B": 900, "C": 600, "D": 100}


def test_a_full_review_cuts_the_long_drafts_to_the_lowest_level_of_their_ballots():
    """Window 3000: per ballot 3000 - 128 margin - 400 fixed - 480 reply - 3 x 40 frames = 1872.
    C's ballot (A, B, D: 2000) cuts A and B at 886; D's (A, B, C: 2500) at 636: both shown at 636."""
    plan = plan_review(DRAFTS, seed=0, context_tokens=3000, fixed_tokens=400, per_draft_tokens=40)
    assert plan == ReviewPlan(3, {"A": 636, "B": 636}, 480)
    assert plan.shortest_cut == 636
    assert plan_review(DRAFTS, seed=0, context_tokens=3000, fixed_tokens=400, per_draft_tokens=40,
                       margin=228) == ReviewPlan(3, {"A": 590, "B": 590, "C": 590}, 480)  # 1772 // 3 on D's ballot


def test_a_load_whose_cuts_would_fall_below_512_steps_down_to_two():
    """Window 2600: at load 3 D's ballot would show A, B and C at 490 (< 512); at load 2 each ballot has
    2600 - 128 - 400 - 352 - 80 = 1640: seed 0 puts A and B on C's ballot (1900: both cut to 820),
    seed 1 never puts two long drafts together (nothing cut)."""
    assert plan_review(DRAFTS, seed=0, context_tokens=2600, fixed_tokens=400, per_draft_tokens=40) == ReviewPlan(
        2, {"A": 820, "B": 820}, 352)
    plan = plan_review(DRAFTS, seed=1, context_tokens=2600, fixed_tokens=400, per_draft_tokens=40)
    assert plan == ReviewPlan(2, {}, 352) and plan.shortest_cut is None


def test_the_load_steps_down_one_at_a_time():
    """Five drafts of 600..1000, window 2700: at load 4 a ballot has 1404 (351 each, < 512); at load 3,
    1572: every ballot cuts its three drafts to 524, whatever the design."""
    drafts = {"A": 1000, "B": 900, "C": 800, "D": 700, "E": 600}
    plan = plan_review(drafts, seed=0, context_tokens=2700, fixed_tokens=400, per_draft_tokens=40)
    assert plan == ReviewPlan(3, dict.fromkeys(drafts, 524), 480)


def test_a_draft_exactly_at_its_ballots_level_is_shown_whole():
    """C's ballot holds A (150) and B (200) in a room of 300: the level is 150, so only B is cut."""
    assert plan_review({"A": 150, "B": 200, "C": 100}, seed=0, context_tokens=800, fixed_tokens=0,
                       per_draft_tokens=10) == ReviewPlan(2, {"B": 150}, 352)


def test_a_load_exactly_at_512_is_kept():
    """Window 2666: D's ballot at load 3 has 1538 for A, B, C: 512 each, exactly the minimum."""
    plan = plan_review(DRAFTS, seed=0, context_tokens=2666, fixed_tokens=400, per_draft_tokens=40)
    assert plan == ReviewPlan(3, {"A": 512, "B": 512, "C": 512}, 480)
    assert plan_review(DRAFTS, seed=0, context_tokens=2664, fixed_tokens=400, per_draft_tokens=40).load == 3
    assert plan_review(DRAFTS, seed=0, context_tokens=2663, fixed_tokens=400, per_draft_tokens=40).load == 2  # 511


def test_the_smallest_ballot_must_show_each_draft_at_least_its_frame():
    """Load 2: a room of 80 per ballot shows every draft at 40 (D's 100 too), 79 would show 39."""
    fits = 128 + 400 + 352 + 80 + 80
    assert plan_review(DRAFTS, seed=0, context_tokens=fits, fixed_tokens=400, per_draft_tokens=40) == ReviewPlan(
        2, {"A": 40, "B": 40, "C": 40, "D": 40}, 352)
    with pytest.raises(ContextTooSmall) as info:
        plan_review(DRAFTS, seed=0, context_tokens=fits - 1, fixed_tokens=400, per_draft_tokens=40)
    assert str(info.value) == ("a context of 1039 tokens cannot hold a ballot of 2 drafts "
                               "(the ballot's fixed part alone takes 400 tokens)")


def test_two_drafts_review_each_other_and_one_is_refused():
    assert plan_review({"A": 5000, "B": 10}, seed=0, context_tokens=4096, fixed_tokens=400,
                       per_draft_tokens=40) == ReviewPlan(1, {"A": 3304}, 224)
    with pytest.raises(ValueError, match=r"^a review needs at least 2 drafts, got 1$"):
        plan_review({"A": 10}, seed=0, context_tokens=4096, fixed_tokens=400, per_draft_tokens=40)
    assert plan_review({"A": 10, "B": 10}, seed=0, context_tokens=None, fixed_tokens=0,
                       per_draft_tokens=0) == ReviewPlan(1, {}, 1024)


# --- what a ballot shows -------------------------------------------------------------------------


def test_a_ballot_shows_a_draft_within_its_share_after_the_tags_are_neutralised():
    assert shown_on_ballot("abc", None) == 3
    assert shown_on_ballot("x" * 60_000, None) == 50_000  # no share: whole up to the character cap
    assert shown_on_ballot("x" * 60_000, 20_000) == 50_000  # a share above the cap: the cap still holds
    assert shown_on_ballot("word " * 100, 10) == 30  # "word " x 6: 30 characters, 10 tokens
    assert shown_on_ballot("word " * 100, 1000) == 500
    # 60 characters of tags become 84 once each "<draft" is "&lt;draft" (28 tokens, 8 over): the share
    # is asked again with 12, 36 characters, 51 neutralised (17 tokens)
    assert shown_on_ballot("<draft>" * 30, 20) == 36
    assert shown_on_ballot("<draft>" * 30, 0) == 0
    # 9 characters ("</draft> ") are 4 tokens neutralised, one over 3: asked again with 2, "</draf" (6)
    assert shown_on_ballot("</draft> << </draft></draft><<", 3) == 6


def test_a_ballot_prompt_cuts_each_draft_at_its_own_length():
    drafts = {"Sage": "sage text", "Jurist": "jurist <draft> text"}
    prompt = render_ballot_prompt(BALLOT, drafts, {"Sage": 4})
    assert prompt == BALLOT_INSTRUCTIONS + (
        '\n\n<draft id="Anonymous_Scribe_1">\nsage\n[… 5 more characters of this draft are not shown on the ballot]'
        '\n</draft>'
        '\n\n<draft id="Anonymous_Oracle_2">\njurist &lt;draft> text\n</draft>\n'
    )
    assert render_ballot_prompt(BALLOT, drafts, {}) == render_ballot_prompt(BALLOT, drafts)
    long = {"Sage": "s" * 50_001, "Jurist": "j"}
    assert render_ballot_prompt(BALLOT, long, {"Jurist": 1}).count("[… 1 more characters") == 1
