"""Alternate worlds on the real fabric and the offline engine: a re-roll leaves the canon alone, only the
latest epoch can be promoted, and a promoted world becomes the canon and replays bit for bit."""

from __future__ import annotations

import dagster as dg
import pytest

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.defs.worlds.jobs import promote_job, reroll_job
from dream_pipeline.epoch.worlds import unwind_for_promotion, world_seed
from resources.fabric import PromotionError
from resources.llm import LLMEngine
from tests.fabric_helpers import alive_agents, epoch_fingerprint

KEY1, KEY2 = epoch_key("space_time", 1), epoch_key("space_time", 2)


def _reroll(instance, fabric, llm, key):
    return reroll_job.execute_in_process(
        instance=instance, partition_key=key, resources={"fabric": fabric, "llm": llm}, raise_on_error=False
    )


def _calls(fabric, key: str) -> list[dict]:
    with fabric.connection() as conn:
        return conn.execute(
            "SELECT purpose, request FROM llm_calls WHERE epoch_key = %s ORDER BY created_at", (key,)
        ).fetchall()


def test_a_reroll_asks_the_engine_again_and_leaves_the_canon_alone(run_epoch, fabric, llm, instance):
    assert run_epoch(1).success and run_epoch(2).success
    epochs = [fabric.epoch(k) for k in (KEY1, KEY2)]
    before = [epoch_fingerprint(fabric, e.epoch_id) for e in epochs]
    canon_calls = len(_calls(fabric, KEY1))
    alive = {a.name for a in alive_agents(fabric, "space_time")}

    result = _reroll(instance, fabric, llm, KEY1)
    assert result.success

    assert [epoch_fingerprint(fabric, e.epoch_id) for e in epochs] == before  # the canon is untouched
    assert len(_calls(fabric, KEY1)) == canon_calls
    assert {a.name for a in alive_agents(fabric, "space_time")} == alive
    [world] = fabric.worlds(KEY1)
    assert (world.world_key, world.world_number, world.status) == (f"{KEY1}~1", 1, "complete")
    assert world.seed == world_seed(KEY1, 1)
    world_calls = _calls(fabric, world.world_key)
    chats = [c["request"] for c in world_calls if c["purpose"] != "draft_embedding"]
    assert chats and all(r["seed"] == world.seed for r in chats)  # fresh calls, with the world's seed
    canon_texts = {d.agent_name: d.text for d in fabric.drafts(epochs[0].epoch_id)}
    world_texts = {d["agent"]: d["text"] for d in world.document["drafts"]}
    assert world_texts.keys() <= canon_texts.keys()
    assert all(world_texts[a] != canon_texts[a] for a in world_texts)  # another roll, other drafts
    assert world.document["chapter"]["text"] == world_texts[world.document["winner"]]
    assert {v["voter"] for v in world.document["votes"]} <= set(world_texts)

    again = _reroll(instance, fabric, llm, KEY1)  # a second re-roll is a second world
    assert again.success
    assert [w.world_number for w in fabric.worlds(KEY1)] == [1, 2]


def test_a_reroll_of_an_open_epoch_is_refused(run_epoch, fabric, llm, instance):
    assert run_epoch(1).success
    instance.add_dynamic_partitions("epochs", [KEY2])
    result = _reroll(instance, fabric, llm, KEY2)  # epoch 2 has not been opened
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert f"{KEY2} is not opened: only a committed epoch has alternate worlds" in str(failure.step_failure_data.error)
    assert fabric.worlds(KEY1) == []


def test_only_the_latest_epoch_can_be_promoted(run_epoch, fabric, llm, instance):
    assert run_epoch(1).success
    assert _reroll(instance, fabric, llm, KEY1).success
    assert run_epoch(2).success
    epoch = fabric.epoch(KEY1)
    before, counts = epoch_fingerprint(fabric, epoch.epoch_id), fabric.table_counts()
    with pytest.raises(PromotionError, match=f"only the latest epoch can be promoted, and {KEY2} has opened"):
        unwind_for_promotion(fabric, KEY1, 1)
    with pytest.raises(PromotionError, match="world 7 of .* is missing"):
        unwind_for_promotion(fabric, KEY2, 7)
    assert epoch_fingerprint(fabric, epoch.epoch_id) == before and fabric.table_counts() == counts
    assert fabric.worlds(KEY1)[0].status == "complete"


def test_a_promoted_world_becomes_the_canon_and_replays_bit_for_bit(run_epoch, fabric, llm, instance):
    assert run_epoch(1).success
    first = fabric.epoch(KEY1)
    first_chapter = fabric.chapter_for_epoch(first.epoch_id)
    [first_loser] = fabric.agents([first.loser_agent_id])
    assert _reroll(instance, fabric, llm, KEY1).success
    [world] = fabric.worlds(KEY1)
    doc = world.document
    world_calls = _calls(fabric, world.world_key)

    promoted = promote_job.execute_in_process(
        instance=instance, partition_key=KEY1, resources={"fabric": fabric, "llm": llm},
        run_config={"ops": {"promote_world": {"config": {"world": 1}}}},
    )
    assert promoted.success
    epoch = fabric.epoch(KEY1)
    assert epoch.status == "committed" and epoch.world_seed == world.seed
    chapter = fabric.chapter_for_epoch(epoch.epoch_id)
    assert (chapter.text, chapter.author) == (doc["chapter"]["text"], doc["chapter"]["author"])
    assert {d.agent_name: d.text for d in fabric.drafts(epoch.epoch_id)} == \
        {d["agent"]: d["text"] for d in doc["drafts"]}
    assert [(r.agent_name, r.rating_after) for r in fabric.ratings(epoch.epoch_id)] == \
        [(s["agent"], s["elo_after"]) for s in doc["standings"]]
    # the Reaper acted on the promoted world: its loser is retired, the canon's loser lives again if spared
    [loser] = fabric.agents([epoch.loser_agent_id])
    assert loser.name == doc["eliminated"]
    alive = {a.name for a in alive_agents(fabric, "space_time")}
    assert loser.name not in alive and len(alive) == len(first.active_agent_ids)
    assert (first_loser.name in alive) == (first_loser.name != loser.name)
    # rebuilt from the record: the only new engine call is the rolling summary of the new chapter
    calls = [c for c in _calls(fabric, KEY1) if c not in world_calls]
    assert len(_calls(fabric, KEY1)) == len(world_calls) + 1 and [c["purpose"] for c in calls] == ["summary"]
    # the old canon is kept as a superseded world, with its calls
    worlds = {w.world_number: w for w in fabric.worlds(KEY1)}
    assert (worlds[1].status, worlds[2].status) == ("promoted", "superseded")
    assert worlds[2].document["chapter"]["text"] == first_chapter.text
    assert _calls(fabric, worlds[2].world_key) and _calls(fabric, world.world_key) == []
    assert set(fabric.integrity().values()) == {0}
    with fabric.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM chapters WHERE epoch_id = %s",
                            (epoch.epoch_id,)).fetchone()["n"] == 1

    # a backfill of the promoted epoch replays it without the engine, bit for bit
    fingerprint, counts = epoch_fingerprint(fabric, epoch.epoch_id), fabric.table_counts()
    unreachable = LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=900, max_retries=0, timeout_s=2,
                            fabric=fabric)
    replay = dg.materialize(epoch_assets, instance=instance, partition_key=KEY1,
                            resources={"fabric": fabric, "llm": unreachable})
    assert replay.success
    assert epoch_fingerprint(fabric, epoch.epoch_id) == fingerprint and fabric.table_counts() == counts
    assert run_epoch(2).success  # and the book goes on from the promoted world
    assert fabric.chapters("space_time")[0].text == doc["chapter"]["text"]
