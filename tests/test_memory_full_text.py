"""Memory and novelty without an embedding engine: PostgreSQL full-text search and word shingles."""

from __future__ import annotations

import re

import dagster as dg
from hypothesis import given
from hypothesis import strategies as st

from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.domains.book.memory import lexical_peer_similarities, lexical_similarity, novelty_penalty
from offline_engine import EngineConfig, running_engine
from resources.fabric.memory import text_query
from resources.llm import LLMEngine
from tests.fabric_helpers import epoch_fingerprint

words = st.lists(st.sampled_from("the furnace iron bell night morning river stone ledger crown".split()),
                 min_size=0, max_size=40).map(" ".join)


@given(a=words, b=words)
def test_lexical_similarity_is_a_symmetric_share(a, b):
    s = lexical_similarity(a, b)
    assert 0.0 <= s <= 1.0
    assert s == lexical_similarity(b, a)
    assert lexical_similarity(a, a) == 1.0


def test_a_copy_costs_the_novelty_penalty_and_other_prose_does_not():
    chapter = ("The furnace burned through the night, and by morning the iron had taken the shape of a bell. "
               "Nobody in the village could say who had cast it, or why it rang at noon.")
    other = ("A ledger lay open on the counting-house table, its columns balanced to the last farthing, "
             "while the river carried the merchants' barges past the customs stone.")
    assert novelty_penalty(lexical_similarity(chapter, chapter)) == 5.0
    assert lexical_similarity(chapter, other) < 0.05 and novelty_penalty(lexical_similarity(chapter, other)) == 0.0
    peers = lexical_peer_similarities(["A", "B", "C"], [chapter, chapter + " And so it went.", other])
    assert peers["A"].closest == "B" and peers["C"].near_duplicate is False


def test_without_embeddings_the_loop_commits_and_memory_goes_by_full_text(fabric, instance):
    from dream_pipeline.defs.epoch.assets import epoch_assets

    # a chat model: no embeddings served. Seed 3's chapters 1 and 2 share words (checked below); with seed 2
    # they share none of chapter 2's salient words, and full text then rightly retrieves nothing.
    with running_engine(EngineConfig(seed=3, profile="vllm")) as url:
        llm = LLMEngine(base_url=url, max_tokens=300, max_retries=2, timeout_s=30, fabric=fabric)
        for number in (1, 2, 3):
            key = epoch_key("space_time", number)
            instance.add_dynamic_partitions("epochs", [key])
            result = dg.materialize(epoch_assets, instance=instance, partition_key=key,
                                    resources={"fabric": fabric, "llm": llm})
            assert result.success
    third = fabric.epoch(epoch_key("space_time", 3))
    assert third.status == "committed" and third.engine_modes["embedding_mode"] == "full_text"
    assert third.context_chapters == (1,)  # the earlier chapter, found by its words
    with fabric.connection() as conn:  # the premise: chapter 2's salient words occur in chapter 1
        first, second = (r["text"] for r in conn.execute(
            "SELECT text FROM chapters WHERE chapter_number IN (1, 2) ORDER BY chapter_number").fetchall())
    assert set(text_query(second).split(" | ")) & {w.lower() for w in re.findall(r"[A-Za-z]+", first)}
    drafts = fabric.drafts(third.epoch_id)
    assert all(d.embedding is None and d.canon_similarity is not None for d in drafts)
    assert all(0.0 <= d.canon_similarity < 0.95 for d in drafts)  # fresh prose: no novelty penalty
    metadata = next(m.metadata for m in result.asset_materializations_for_node("roster_drafts_and_votes")
                    if m.asset_key == dg.AssetKey("drafts"))
    assert metadata["memory_mode"].value == "full_text"
    with fabric.connection() as conn:
        embedding_calls = conn.execute("SELECT count(*) AS n FROM llm_calls WHERE purpose LIKE '%%embedding%%'"
                                       ).fetchone()["n"]
    assert embedding_calls == 0  # the engine was never asked for vectors it does not serve

    # a replay builds the same prompt from the recorded mode and chapters, with no engine at all
    fingerprint = epoch_fingerprint(fabric, third.epoch_id)
    gone = LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=300, max_retries=0, timeout_s=2, fabric=fabric)
    replay = dg.materialize(epoch_assets, instance=instance, partition_key=third.epoch_key,
                            resources={"fabric": fabric, "llm": gone})
    assert replay.success and epoch_fingerprint(fabric, third.epoch_id) == fingerprint
