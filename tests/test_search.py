"""Hybrid search on the real fabric with the offline engine's embeddings over HTTP: planted sentences
among persona-prose chapters, found verbatim and paraphrased; reciprocal rank fusion property-tested."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dream_pipeline.cli.search import add_search_command, hybrid_search, reciprocal_rank_fusion
from dream_pipeline.defs.epoch.partitions import epoch_key
from resources.fabric import ChapterRow, DraftRow, StateFabric
from resources.llm import LLMEngine
from spica import SpicaBook
from tests.engine_text import embed_texts, persona_prose

BOOK = "space_time"
# chapter number -> a sentence planted in the middle of that chapter's persona prose, with two more on its
# subject (a chapter is about something); the first sentence is the one searched verbatim
PLANTED = {
    4: "At the bottom of the mine the furnace drives the engine that lifts the flooded water.",
    9: "The brass orrery in the observatory was wound by a clockwork of glass and ivory.",
    13: "Her ledger of debts was burned on the quay while the harbour bells rang for the drowned.",
}
SUBJECT = {
    4: "The miners fed coal to the furnace all night. Without the pump the flooded galleries would drown the mine.",
    9: "Every planet of the orrery turned on its ivory arm. The astronomer wound the clockwork each dusk.",
    13: "The harbour had drowned nine sailors that winter. The quay smelled of smoke and of the burned ledger.",
}
# what a reader remembers of each, in other words (chapter number, query)
PARAPHRASES = [
    (4, "water is pumped out of a flooded mine by an engine a coal furnace drives"),
    (9, "glass and ivory clockwork turning an orrery in an observatory"),
    # not "debts" and "ledger" first: those are the Financier's words, whose prose is among the distractors
    (13, "sailors drowned that winter, bells rang in the harbour, and a ledger burned on the quay"),
]
# short chapters that share the first sentence's words, in another order: the embeddings prefer them
DECOYS = {
    6: "The engine, the furnace. The engine drives nothing; the furnace drives the dark. The engine waits.",
    11: "Drives and engines and furnaces: the furnace drives the night, the engine sleeps under the furnace.",
}
CHAPTERS = 15


@pytest.fixture
def book(fabric: StateFabric, llm: LLMEngine) -> list[str]:
    """Fifteen committed chapters: persona prose, three with a planted sentence, two decoys."""
    texts = persona_prose(llm, CHAPTERS)
    for number, sentence in PLANTED.items():
        words = texts[number - 1].split()
        middle = len(words) // 2
        texts[number - 1] = " ".join(words[:middle] + [sentence, SUBJECT[number]] + words[middle:])
    for number, decoy in DECOYS.items():
        texts[number - 1] = decoy
    vectors = embed_texts(llm, texts)
    fabric.ensure_book(SpicaBook.load("space_time"))
    for n, (text, vector) in enumerate(zip(texts, vectors, strict=True), start=1):
        epoch = fabric.open_epoch(BOOK, epoch_key(BOOK, n), n)
        agent = fabric.agents(epoch.active_agent_ids)[n % len(epoch.active_agent_ids)]
        [draft_id] = fabric.write_drafts(epoch.epoch_id, [
            DraftRow(agent.instance_id, agent.name, text, 0, len(text.split()), "stop", False, 0.0, embedding=vector)
        ])
        fabric.commit_chapter(epoch.epoch_id, BOOK, ChapterRow(
            n, draft_id, agent.instance_id, f"Title {n}", text, None, None, vector))
        fabric.reap(epoch, None, None)
    return texts


def _search(fabric: StateFabric, llm: LLMEngine, text: str, limit: int = 5):
    [vector] = embed_texts(llm, [text])
    return hybrid_search(fabric, BOOK, text, vector, limit), vector


@pytest.mark.parametrize("number", sorted(PLANTED))
def test_a_verbatim_sentence_ranks_its_chapter_first(book, fabric: StateFabric, llm: LLMEngine, number: int):
    (chapters, drafts), _ = _search(fabric, llm, PLANTED[number])
    assert chapters[0].key == number and chapters[0].matched == ("phrase", "words")
    assert drafts[0].key[0] == epoch_key(BOOK, number) and drafts[0].hit.in_canon
    scores = [c.score for c in chapters]
    assert scores == sorted(scores, reverse=True)


def test_the_embeddings_alone_would_not_find_the_copied_sentence(book, fabric: StateFabric, llm: LLMEngine):
    """Why the fusion is there: by cosine similarity alone a decoy that shares the words ranks above the
    chapter the sentence was copied from (the issue's 'the furnace drives the engine' case)."""
    query = "the furnace drives the engine"
    (chapters, _), vector = _search(fabric, llm, query)
    by_meaning = [c.chapter_number for c, _ in fabric.nearest_chapters(BOOK, vector, 5, scan="exact")]
    assert by_meaning[0] in DECOYS
    assert chapters[0].key == 4
    assert chapters[0].similarity < max(c.similarity for c in chapters)  # first despite a lower similarity


@pytest.mark.parametrize(("number", "query"), PARAPHRASES)
def test_a_paraphrase_ranks_its_chapter_first(book, fabric: StateFabric, llm: LLMEngine, number: int, query: str):
    (chapters, _), _ = _search(fabric, llm, query)
    assert chapters[0].key == number
    assert "phrase" not in chapters[0].matched and "words" in chapters[0].matched


def test_stop_words_only_are_searched_by_meaning(book, fabric: StateFabric, llm: LLMEngine):
    (chapters, drafts), _ = _search(fabric, llm, "the of and to", limit=3)
    assert len(chapters) == 3 and len(drafts) == 3
    assert all(c.matched == () for c in chapters)


def test_the_command_labels_its_scores(book, fabric: StateFabric, engine_url: str, monkeypatch, capsys):
    monkeypatch.setenv("DREAM_DATABASE_URL", fabric.url())
    monkeypatch.setenv("DREAM_LLM_BASE_URL", engine_url)
    parser = argparse.ArgumentParser()
    add_search_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["search", PLANTED[9], "--limit", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    chapters, drafts = out.split("Drafts:")
    lines = chapters.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["fused"])
    assert lines[header].split() == ["fused", "cosine", "similarity", "text", "match", "chapter"]
    assert "9. Title 9" in lines[header + 1] and "phrase" in lines[header + 1]
    assert "reciprocal rank fusion" in out


# ---- reciprocal rank fusion (pure) ------------------------------------------------------------------

rankings = st.dictionaries(st.sampled_from(["phrase", "words", "meaning"]),
                           st.lists(st.integers(0, 30), max_size=12), min_size=1)


@given(rankings)
def test_fusion_keeps_every_key_once_best_first(lists):
    fused = reciprocal_rank_fusion(lists)
    assert sorted(k for k, _ in fused) == sorted({k for ranking in lists.values() for k in ranking})
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= len(lists) / 61 for s in scores)


@given(rankings, st.integers(100, 110))
def test_a_key_first_in_every_ranking_is_first(lists, key):
    fused = reciprocal_rank_fusion({name: [key, *ranking] for name, ranking in lists.items()})
    assert fused[0] == (key, pytest.approx(len(lists) / 61))


@given(rankings, st.integers(0, 30))
def test_moving_a_key_up_never_lowers_its_score(lists, key):
    name, ranking = next(iter(lists.items()))
    ranking = [k for k in ranking if k != key]
    before = dict(reciprocal_rank_fusion({**lists, name: [*ranking, key]}))[key]
    after = dict(reciprocal_rank_fusion({**lists, name: [key, *ranking]}))[key]
    assert after >= before


def test_fusion_by_hand():
    assert reciprocal_rank_fusion({"a": ["x", "y"], "b": ["y"]}) == [
        ("y", pytest.approx(1 / 62 + 1 / 61)), ("x", pytest.approx(1 / 61))]
