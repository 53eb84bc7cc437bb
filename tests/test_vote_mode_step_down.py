"""A vote mode that starts failing mid-run steps down to the next one, recorded, and the refused
request shape is not sent again."""

from __future__ import annotations

import dagster as dg

from dream_pipeline.defs.epoch.partitions import epoch_key
from offline_engine import EngineConfig, running_engine
from resources.engine_probe import EngineCapabilities
from resources.llm import LLMEngine


def test_a_mode_that_starts_failing_steps_down_and_is_recorded(fabric, instance):
    from dream_pipeline.defs.epoch.assets import epoch_assets

    with running_engine(EngineConfig(seed=3, profile="llama_cpp_python")) as url:
        # what an earlier probe found on another server at this address: strict JSON schemas
        stale = EngineCapabilities(base_url=url.rstrip("/"), model="offline-scribe", vote_mode="json_schema",
                                   context_tokens=2048, context_source="test", embeddings=False)
        fabric.save_engine_capabilities(url.rstrip("/"), "offline-scribe", stale.as_json())
        llm = LLMEngine(base_url=url, max_tokens=300, max_retries=2, timeout_s=30, fabric=fabric)
        key = epoch_key("space_time", 1)
        instance.add_dynamic_partitions("epochs", [key])
        result = dg.materialize(epoch_assets, instance=instance, partition_key=key,
                                resources={"fabric": fabric, "llm": llm})
    assert result.success
    epoch = fabric.epoch(key)
    assert epoch.status == "committed" and fabric.abstentions(epoch.epoch_id) == []
    assert epoch.engine_modes["vote_mode"] == "json_object_schema"
    assert epoch.engine_modes["stepped_down_from"] == "json_schema"
    changes = fabric.mode_changes()
    assert [(c["from_mode"], c["to_mode"], c["epoch_key"]) for c in changes] == [
        ("json_schema", "json_object_schema", key)
    ]
    assert "Input should be 'text' or 'json_object'" in changes[0]["reason"]
    caps = fabric.engine_capabilities(url.rstrip("/"), "offline-scribe")
    assert caps["vote_mode"] == "json_object_schema" and "json_schema" in caps["modes_refused"]
    with fabric.connection() as conn:
        refused = conn.execute(
            "SELECT agent_name, count(*) AS n FROM llm_calls WHERE epoch_key = %s AND status = 'error'"
            " AND request->'response_format'->>'type' = 'json_schema' GROUP BY agent_name", (key,)
        ).fetchall()
    # each voter's request already in flight when the first refusal came back: at most once each, never retried
    assert refused and all(r["n"] == 1 for r in refused) and len(refused) <= 5
    # `dream status` says which mode the ballots use now, and when and why it changed
    from dream_pipeline.epoch.engine_report import engine_lines

    lines = engine_lines(fabric)
    assert lines[0].startswith("engine : ") and "ballots as json_object_schema" in lines[0]
    assert "context 2048 tokens" in lines[0] and "no embeddings" in lines[0]
    assert "ballots moved from json_schema to json_object_schema" in lines[1]
    metadata = next(m.metadata for m in result.asset_materializations_for_node("roster_drafts_and_votes")
                    if m.asset_key == dg.AssetKey("peer_votes"))
    assert metadata["vote_mode"].value == "json_object_schema"
    assert metadata["vote_mode_stepped_down_from"].value == "json_schema"
