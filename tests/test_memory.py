"""The book's memory on the real fabric and the offline engine over HTTP: retrieval, novelty,
rolling summaries, bounded prompts, search, and the embedding dimension."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.assets.opening import roster_drafts_and_votes
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.domains.book.memory import NOVELTY_PENALTY_MAX, novelty_penalty
from dream_pipeline.domains.book.prompts import draft_context
from dream_pipeline.tournament import Vote, epoch_scores
from resources import fabric as fabric_module
from resources.fabric import CanonLocked, ChapterRow, DraftRow, EmbeddingDimensionError, StateFabric
from resources.fabric.rows import as_list
from resources.llm import LLMEngine
from spica import SpicaBook
from tests.engine_text import embed_texts, persona_prose
from tests.fabric_helpers import scratch_database

BOOK = "space_time"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

LIGHTHOUSE = (
    "Chapter {n}: The Lighthouse on the Reef\n"
    "The lighthouse keeper climbed the iron stair to the lantern room while the fog horn moaned over the reef. "
    "He trimmed the wick, polished the great lens, and watched the beacon sweep the grey water where the gulls "
    "slept on the rocks. Every night the keeper wrote the beacon's hours in the lighthouse log: lantern lit, "
    "fog rolling, reef breaking white, the lens turning and turning. The fog horn answered the bell buoy; the "
    "keeper counted the turns of the beacon and the lantern never failed the ships beyond the reef."
)


def _write_book(fabric: StateFabric, texts: list[str], vectors: list[list[float]]) -> None:
    """Commit `texts` as chapters 1..n through the fabric, as the pipeline would."""
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


@pytest.fixture
def planted(fabric: StateFabric, llm: LLMEngine) -> list[str]:
    """Twelve chapters: chapter 4 about a lighthouse among persona-prose distractors, and the last
    chapter (12) back on the lighthouse."""
    texts = persona_prose(llm, 12)
    texts[3] = LIGHTHOUSE.format(n=4)
    texts[11] = LIGHTHOUSE.format(n=12).replace("The lighthouse keeper climbed", "Years later the keeper's son climbed")
    _write_book(fabric, texts, embed_texts(llm, texts))
    return texts


def test_retrieval_returns_the_planted_chapter_among_distractors(planted, fabric: StateFabric):
    memory = fabric.book_memory(BOOK, 13, top_k=3)
    assert memory.last.chapter_number == 12
    assert [c.chapter_number for c, _ in memory.related][0] == 4
    assert all(c.chapter_number < 12 for c, _ in memory.related)
    similarities = [s for _, s in memory.related]
    assert similarities == sorted(similarities, reverse=True)
    context = draft_context(SpicaBook.load("space_time"), memory, 1500)
    assert context.related[0] == 4 and "[chapter 4: Title 4" in context.text
    # the same query without the index finds the same neighbours
    [last] = fabric.drafts(fabric.epoch(epoch_key(BOOK, 12)).epoch_id)
    exact = fabric.nearest_chapters(BOOK, last.embedding, 3, before_number=12, scan="exact")
    assert [c.chapter_number for c, _ in exact] == [c.chapter_number for c, _ in memory.related]


def test_the_novelty_rule_penalizes_a_copied_chapter(planted, fabric: StateFabric, llm: LLMEngine):
    fresh = persona_prose(llm, 14)[13]  # persona prose no chapter used
    copy, new = embed_texts(llm, [planted[6], fresh])
    copied_sim, fresh_sim = fabric.canon_similarity(BOOK, 13, [copy, new])
    assert copied_sim == pytest.approx(1.0, abs=1e-4)
    assert fresh_sim < copied_sim
    assert novelty_penalty(copied_sim) == pytest.approx(NOVELTY_PENALTY_MAX, abs=1e-2)
    assert novelty_penalty(fresh_sim) < 1.0
    assert fabric.canon_similarity(BOOK, 1, [copy]) == [None]  # no canon before chapter 1: no penalty
    # scored equally by the voters, the copy loses the novelty penalty
    votes = [Vote(v, t, "Anonymous_Archivist_1", 8, "") for v in ("A", "B", "C") for t in ("Copy", "Fresh")]
    scores = epoch_scores(votes, {"Copy": novelty_penalty(copied_sim), "Fresh": novelty_penalty(fresh_sim)},
                          ["Copy", "Fresh"])
    assert scores["Copy"] <= 8 - NOVELTY_PENALTY_MAX + 1e-2 < scores["Fresh"]


def test_canon_similarity_is_the_exact_nearest_chapters_similarity(planted, fabric: StateFabric, llm: LLMEngine):
    """One statement for all the drafts gives, bit for bit, what an exact nearest-neighbour scan per draft
    gave (the statement it replaced): the novelty penalty of a replayed epoch must not move."""
    from resources.fabric.memory import CHAPTERS_NEAR

    vectors = embed_texts(llm, [planted[6], *persona_prose(llm, 16)[13:], LIGHTHOUSE.format(n=20)])
    given = [vectors[0], None, *vectors[1:]]
    for before in (1, 2, 5, 13, 99):
        with fabric.connection() as conn:
            scanned = [None if v is None else next(
                (r["similarity"] for r in fabric._nearest(conn, CHAPTERS_NEAR, v, [BOOK, before], 1, "exact")), None)
                for v in given]
        assert fabric.canon_similarity(BOOK, before, given) == scanned
    assert fabric.canon_similarity(BOOK, 1, given) == [None] * 6  # no chapter before chapter 1
    assert fabric.canon_similarity(BOOK, 13, [None, None]) == [None, None]
    assert fabric.canon_similarity(BOOK, 13, []) == []
    assert fabric.canon_similarity(BOOK, 13, given)[0] == pytest.approx(1.0, abs=1e-4)  # chapter 7's own text


def test_book_memory_outlines_and_retrieves_by_the_last_chapter(planted, fabric: StateFabric):
    """The outline is the latest chapters in order; retrieval queries with the last chapter's vector."""
    with fabric.connection() as conn:
        last_vector = conn.execute("SELECT embedding FROM chapters WHERE book = %s AND chapter_number = 12",
                                   (BOOK,)).fetchone()["embedding"]
    memory = fabric.book_memory(BOOK, 13, top_k=3)
    assert [c.chapter_number for c in memory.outline] == list(range(1, 13))
    assert memory.last.chapter_number == 12
    by_last = fabric.nearest_chapters(BOOK, as_list(last_vector), 3, before_number=12, scan="exact")
    assert [c.chapter_number for c, _ in memory.related] == [c.chapter_number for c, _ in by_last]


def test_search_prints_the_nearest_chapters_and_drafts(planted, fabric, engine_url, monkeypatch, capsys):
    import argparse

    from dream_pipeline.cli.search import add_search_command

    monkeypatch.setenv("DREAM_DATABASE_URL", fabric.url())
    monkeypatch.setenv("DREAM_LLM_BASE_URL", engine_url)
    parser = argparse.ArgumentParser()
    add_search_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["search", "the keeper lit the lighthouse lantern in the fog", "--limit", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    chapters, drafts = out.split("Drafts:")
    first = [line for line in chapters.splitlines() if "Title" in line][0]
    assert "4. Title 4" in first or "12. Title 12" in first
    assert "(became the chapter)" in drafts
    with fabric.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM llm_calls WHERE purpose = 'search_embedding'").fetchone()["n"]


def _materialize(fabric: StateFabric, llm: LLMEngine, instance, number: int, assets=epoch_assets, **kwargs):
    key = epoch_key(BOOK, number)
    instance.add_dynamic_partitions("epochs", [key])
    return dg.materialize(assets, instance=instance, partition_key=key, resources={"fabric": fabric, "llm": llm},
                          run_config=QUIET, **kwargs)


def test_epochs_keep_the_prompt_bounded_and_the_summary_rolling(fabric, engine_url, instance):
    budget = 450
    llm = LLMEngine(base_url=engine_url, max_tokens=900, max_retries=2, timeout_s=30, fabric=fabric,
                    context_tokens=budget, summary_tokens=60)
    results = [_materialize(fabric, llm, instance, number) for number in (1, 2)]
    assert all(r.success for r in results)
    with fabric.connection() as conn:
        summaries = conn.execute("SELECT * FROM book_summaries ORDER BY chapter_number").fetchall()
        prompts = conn.execute(
            "SELECT epoch_key, request FROM llm_calls WHERE purpose = 'draft' ORDER BY epoch_key"
        ).fetchall()
        calls = conn.execute("SELECT count(*) AS n FROM llm_calls WHERE purpose = 'summary'").fetchone()["n"]
    assert [s["chapter_number"] for s in summaries] == [1, 2]
    assert all(0 < s["tokens"] <= 60 for s in summaries)
    assert calls == 2
    for p in prompts:  # the user message is the bounded context
        user = p["request"]["messages"][-1]["content"]
        assert len(user.split()) <= budget
    second = [p["request"]["messages"][-1]["content"] for p in prompts if p["epoch_key"] == epoch_key(BOOK, 2)]
    assert second and "summary through chapter 1" in second[0]
    chapter1 = fabric.chapters(BOOK)[0]
    assert chapter1.text.split()[-1] in second[0].split()  # the last chapter's ending is in the prompt

    epoch = fabric.epoch(epoch_key(BOOK, 2))
    for d in fabric.drafts(epoch.epoch_id):  # novelty is recorded and is part of the penalty
        assert d.canon_similarity is not None and -1.0 <= d.canon_similarity <= 1.0 + 1e-6
        assert d.novelty_penalty == novelty_penalty(d.canon_similarity)
        assert d.penalty == pytest.approx(d.latency_penalty + (5.0 if d.truncated else 0.0) + d.novelty_penalty)
        assert d.peer_similarity is not None
    meta = [e for e in results[1].get_asset_materialization_events() if e.asset_key == dg.AssetKey("drafts")]
    metadata = meta[0].materialization.metadata
    assert metadata["context_tokens"].value <= budget and metadata["context_budget"].value == budget
    assert "canon_sim" in metadata["drafts_table"].value and "max_canon_similarity" in metadata
    committed = fabric.latest_summary(BOOK, 3).summary
    with pytest.raises(CanonLocked):  # a committed epoch's summary is canon: a replay never rewrites it
        fabric.write_summary(epoch.epoch_id, BOOK, 2, "rewritten")
    assert fabric.latest_summary(BOOK, 3).summary == committed
    with fabric.connection() as conn:  # as if its run had died between the chapter and the Reaper
        conn.execute("UPDATE simulation_epochs SET status = 'collapsed' WHERE epoch_id = %s", (epoch.epoch_id,))
    fabric.write_summary(epoch.epoch_id, BOOK, 2, "rewritten")  # a rerun of an open epoch rewrites, never adds
    assert fabric.table_counts()["book_summaries"] == 2
    assert fabric.latest_summary(BOOK, 3).summary == "rewritten"


@pytest.fixture
def scratch_url():
    """A database of its own (the recorded embedding dimension is per database)."""
    with scratch_database("dims") as url:
        yield url


def test_a_dimension_mismatch_is_a_clear_error(fabric: StateFabric, scratch_url, engine_url, instance):
    # a fabric configured with another dimension than the one its memory is indexed for
    with pytest.raises(EmbeddingDimensionError, match="DREAM_EMBEDDING_DIM.*128.*256-dimensional"):
        StateFabric(database_url=fabric.url(), embedding_dim=128).migrate()
    with pytest.raises(EmbeddingDimensionError, match="DREAM_EMBEDDING_DIM"):
        fabric.check_dimensions([[0.0] * 128])

    # an engine whose vectors do not have the configured dimension: the epoch fails, saying why
    small = StateFabric(database_url=scratch_url, embedding_dim=128)
    llm = LLMEngine(base_url=engine_url, max_tokens=300, max_retries=0, timeout_s=30, fabric=small)
    result = _materialize(small, llm, instance, 1, assets=[roster_drafts_and_votes], raise_on_error=False)
    assert not result.success
    errors = [e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert any("256-dimensional draft embeddings" in m and "DREAM_EMBEDDING_DIM" in m for m in errors)
    assert small.epoch(epoch_key(BOOK, 1)).status == "failed"

    # stored vectors of another dimension, found when the memory is first set up
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        epoch_id = conn.execute("SELECT epoch_id FROM simulation_epochs").fetchone()[0]
        agent_id = conn.execute("SELECT agent_id FROM agents LIMIT 1").fetchone()[0]
        conn.execute(
            "INSERT INTO drafts (epoch_id, agent_id, agent_name, text, prompt_tokens, completion_tokens,"
            " truncated, latency_s, embedding) VALUES (%s, %s, 'x', 'x', 0, 1, false, 0, '[1,0,0]')",
            (epoch_id, agent_id),
        )
        conn.execute("DELETE FROM memory_settings")
    fabric_module._MEMORY_READY.clear()
    with pytest.raises(EmbeddingDimensionError, match="stored drafts embeddings have 3 dimensions"):
        StateFabric(database_url=scratch_url, embedding_dim=128).migrate()
