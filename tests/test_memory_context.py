"""The book's memory as pure functions: the prompt budget, the trim order, the novelty rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dream_pipeline.domains.book.memory import (
    LAST_CHAPTER_FLOOR,
    NEAR_DUPLICATE_SIMILARITY,
    NOVELTY_PENALTY_MAX,
    NOVELTY_THRESHOLD,
    Passage,
    build_context,
    count_tokens,
    novelty_penalty,
    peer_similarities,
)
from dream_pipeline.domains.book.prompts import draft_task

word = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
texts = st.lists(word, max_size=900).map(" ".join)
passages = st.builds(
    Passage,
    number=st.integers(1, 2000),
    title=st.lists(word, max_size=30).map(" ".join),
    author=st.lists(word, max_size=6).map(" ".join),
    text=texts,
    similarity=st.one_of(st.none(), st.floats(-1, 1)),
)


@settings(max_examples=100, deadline=None)
@given(
    budget=st.integers(60, 3000),
    title=st.lists(word, max_size=40).map(" ".join),
    premise=texts,
    summary=st.one_of(st.none(), texts),
    last=st.one_of(st.none(), passages),
    related=st.lists(passages, max_size=6),
    outline=st.lists(passages, max_size=14),
    number=st.integers(1, 100_000),
)
# a last chapter cut to its final word by a tight budget (found by Hypothesis in a fresh clone's test run)
@example(budget=66, title="0", premise="0 0 0 0 0", summary=None,
         last=Passage(number=1, title="", author="", text="0 0 0", similarity=None),
         related=[], outline=[], number=1)
def test_the_budget_is_never_exceeded(budget, title, premise, summary, last, related, outline, number):
    task = draft_task(number)
    context = build_context(
        title=title, premise=premise, task=task, budget=budget, summary=summary, summary_through=3,
        last=last, related=related, outline=outline,
    )
    assert context.tokens == count_tokens(context.text) <= budget
    assert context.text.endswith(task)  # the task is never cut
    if last is not None and context.section_tokens["last_chapter"]:
        # the last chapter is kept from its end: whole, or its final words after an ellipsis
        words = last.text.split()
        cut = [t for t in context.trimmed if t.startswith("shortened last_chapter to ")]
        shown = int(cut[-1].split()[-2]) - 1 if cut else len(words)
        tail = words[-min(10, shown):]
        before_task = context.text.split()[:-count_tokens(task)]
        assert before_task[-len(tail):] == tail
        if cut:
            assert before_task[-shown - 1] == "…"


def test_a_task_longer_than_the_budget_is_refused():
    with pytest.raises(ValueError, match="budget"):
        build_context(title="T", premise="P", task="word " * 50, budget=49)


def _chapter(number: int, words: int, similarity: float | None = None) -> Passage:
    return Passage(number, f"Title {number}", "Physicist", " ".join(f"w{number}_{i}" for i in range(words)), similarity)


def test_everything_fits_nothing_is_cut_and_the_last_chapter_is_whole():
    last = _chapter(9, 300)
    context = build_context(
        title="Book", premise="A premise.", task=draft_task(10), budget=1500, summary="so far " * 50,
        summary_through=9, last=last, related=[_chapter(2, 50, 0.9), _chapter(5, 50, 0.95)],
        outline=[_chapter(n, 10) for n in range(1, 10)],
    )
    assert context.trimmed == ()
    assert last.text in context.text
    assert context.related == (5, 2)  # most similar first
    assert context.summary_through == 9


def test_the_trim_order_outline_then_related_then_last_chapter_then_summary():
    base = dict(title="Book", premise="A premise.", task=draft_task(10), summary="so far " * 100,
                summary_through=9, last=_chapter(9, 900),
                related=[_chapter(2, 120, 0.9), _chapter(5, 120, 0.95)],
                outline=[_chapter(n, 10) for n in range(1, 10)])
    full = build_context(budget=10_000, **base)
    # a little over: the oldest outline lines go first
    context = build_context(budget=full.tokens - 5, **base)
    assert context.trimmed and all(t == "dropped an outline line" for t in context.trimmed)
    # much less: the outline, then the least similar related chapter, then the last chapter shrinks
    context = build_context(budget=full.tokens - 700, **base)
    assert context.trimmed[-3:] == ("dropped related chapter 2", "dropped related chapter 5",
                                    f"shortened last_chapter to {context.section_tokens['last_chapter'] - 9} tokens")
    assert context.related == ()
    # tight: the last chapter keeps its floor while the summary goes
    context = build_context(budget=LAST_CHAPTER_FLOOR + 120, **base)
    assert context.section_tokens["summary"] < full.section_tokens["summary"]
    assert context.text.split()[-count_tokens(base["task"]) - 1] == "w9_899"  # the ending is kept


def test_the_novelty_rule():
    assert novelty_penalty(None) == 0.0
    assert novelty_penalty(math.nan) == 0.0
    assert novelty_penalty(NOVELTY_THRESHOLD) == 0.0
    assert novelty_penalty(0.5) == 0.0
    assert novelty_penalty(1.0) == NOVELTY_PENALTY_MAX
    halfway = NOVELTY_THRESHOLD + (1 - NOVELTY_THRESHOLD) / 2
    assert novelty_penalty(halfway) == pytest.approx(NOVELTY_PENALTY_MAX / 2)


@given(st.floats(-1, 1), st.floats(-1, 1))
def test_novelty_penalty_is_bounded_and_monotone(a, b):
    lo, hi = sorted((a, b))
    assert 0.0 <= novelty_penalty(lo) <= novelty_penalty(hi) <= NOVELTY_PENALTY_MAX


def test_near_duplicates_within_an_epoch_are_flagged():
    flags = peer_similarities(
        ["Physicist", "Poet", "Jurist"], [[1.0, 0.0, 0.0], [0.99, 0.05, 0.0], [0.0, 1.0, 0.0]]
    )
    assert flags["Physicist"].closest == "Poet" and flags["Physicist"].near_duplicate
    assert flags["Poet"].closest == "Physicist" and flags["Poet"].similarity >= NEAR_DUPLICATE_SIMILARITY
    assert not flags["Jurist"].near_duplicate
    assert peer_similarities(["Alone"], [[1.0]])["Alone"].closest is None
