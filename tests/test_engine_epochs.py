"""One epoch end to end through Dagster and the real `openai` client against every engine profile:
the loop commits a chapter on each kind of server with nothing configured but the URL and model."""

from __future__ import annotations

import dagster as dg
import pytest

from dream_pipeline.defs.epoch.partitions import epoch_key
from offline_engine import EngineConfig, running_engine
from resources.llm import LLMEngine
from tests.fabric_helpers import epoch_fingerprint

EXPECTED_MODE = {
    "openai": "json_schema",
    "vllm": "json_schema",
    "llama_cpp_python": "json_object_schema",
    "llama_cpp": "json_schema",
    "ollama": "ollama_format",
    "bare": "prompt_only",
}


@pytest.fixture(scope="module", params=list(EXPECTED_MODE))
def profile_engine(request):
    with running_engine(EngineConfig(seed=5, profile=request.param)) as url:
        yield request.param, url


def test_an_epoch_commits_on_every_engine_profile(profile_engine, fabric, instance):
    from dream_pipeline.defs.epoch.assets import epoch_assets

    profile, url = profile_engine
    # drafts short enough that four fit in a 2,048-token ballot (fitting long ones is the context work)
    llm = LLMEngine(base_url=url, max_tokens=300, max_retries=2, timeout_s=30, fabric=fabric)
    key = epoch_key("space_time", 1)
    instance.add_dynamic_partitions("epochs", [key])
    result = dg.materialize(epoch_assets, instance=instance, partition_key=key,
                            resources={"fabric": fabric, "llm": llm})
    assert result.success

    epoch = fabric.epoch(key)
    assert epoch.status == "committed"
    assert epoch.engine_modes["vote_mode"] == EXPECTED_MODE[profile]
    stored = fabric.engine_capabilities(url.rstrip("/"), "offline-scribe")
    assert stored["vote_mode"] == EXPECTED_MODE[profile]
    votes, abstentions = fabric.votes(epoch.epoch_id), fabric.abstentions(epoch.epoch_id)
    voters = {v.voter_agent for v in votes}
    assert len(votes) % len(voters) == 0  # a balanced review load (all, or k each in a small window)
    # every seated voter either voted or abstained; prompt-only ballots may still be invalid after their
    # repairs (README: 0.867 valid), so on `bare` which ones fail depends on the drafts' text
    drafts = fabric.drafts(epoch.epoch_id)
    assert len(voters | {a.voter_agent for a in abstentions}) == len(drafts)
    assert len(voters) >= (4 if profile != "bare" else 3)
    if profile != "bare":  # a server that constrains output: every ballot valid
        assert abstentions == []
    embedded = profile in ("openai", "ollama")
    assert epoch.engine_modes["embedding_mode"] == ("vectors" if embedded else "full_text")
    assert all((d.embedding is not None) is embedded for d in drafts)
    with fabric.connection() as conn:
        shapes = conn.execute(
            "SELECT DISTINCT request->'response_format'->>'type' AS rf, request ? 'extra_body' AS extra"
            " FROM llm_calls WHERE epoch_key = %s AND purpose = 'ballot'", (key,)
        ).fetchall()
        failed = conn.execute(
            "SELECT count(*) AS n FROM llm_calls WHERE epoch_key = %s AND status = 'error'", (key,)
        ).fetchone()["n"]
    assert failed == 0  # a refused request shape is never sent in the run: the probe found the mode
    expected_shape = {"json_schema": ("json_schema", False), "json_object_schema": ("json_object", False),
                      "ollama_format": (None, True), "prompt_only": (None, False)}[EXPECTED_MODE[profile]]
    assert [(s["rf"], s["extra"]) for s in shapes] == [expected_shape]
    # a backfill replays it from the record in the same request shapes: no engine needed, nothing changes
    fingerprint = epoch_fingerprint(fabric, epoch.epoch_id)
    with fabric.connection() as conn:
        calls = conn.execute("SELECT count(*) AS n FROM llm_calls").fetchone()["n"]
    gone = LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=300, max_retries=0, timeout_s=2, fabric=fabric)
    replay = dg.materialize(epoch_assets, instance=instance, partition_key=key,
                            resources={"fabric": fabric, "llm": gone})
    assert replay.success
    assert epoch_fingerprint(fabric, epoch.epoch_id) == fingerprint
    with fabric.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM llm_calls").fetchone()["n"] == calls
