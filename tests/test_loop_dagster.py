"""The loop's steps through Dagster: the PHASE gate, replaying a committed epoch, the PHASE job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.defs.phase.job import phase_job
from resources.llm import LLMEngine
from tests.fabric_helpers import epoch_fingerprint


def test_a_new_epoch_inside_phase_ends_cleanly_without_opening(run_epoch, fabric, instance, monkeypatch):
    now = datetime.now(UTC)
    monkeypatch.setenv("DREAM_PHASE_START", (now - timedelta(minutes=30)).strftime("%H:%M"))
    monkeypatch.setenv("DREAM_PHASE_END", (now + timedelta(minutes=30)).strftime("%H:%M"))
    monkeypatch.setenv("DREAM_PHASE_TZ", "UTC")
    manual = run_epoch(1, tags={"dream/loop": "manual"})  # a person's run is not gated
    assert manual.success and manual.get_asset_materialization_events()
    result = run_epoch(2, tags={"dream/loop": "epoch"})  # the loop's run is
    assert result.success
    assert result.get_asset_materialization_events() == []
    calls = fabric.table_counts()["llm_calls"]
    assert fabric.find_epoch(epoch_key("space_time", 2)) is None
    assert instance.get_run_by_id(result.run_id).tags["dream/outcome"] == "deferred-phase"
    assert fabric.table_counts()["llm_calls"] == calls  # no engine call for the deferred epoch


def test_a_committed_epoch_replays_bit_for_bit_without_the_engine(run_epoch, fabric, instance):
    assert run_epoch(1).success
    epoch = fabric.epoch(epoch_key("space_time", 1))
    before = epoch_fingerprint(fabric, epoch.epoch_id)
    counts = fabric.table_counts()
    unreachable = LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=900, max_retries=0, timeout_s=2,
                            fabric=fabric)
    key = epoch_key("space_time", 1)
    replay = dg.materialize(
        epoch_assets,
        instance=instance, partition_key=key, resources={"fabric": fabric, "llm": unreachable},
    )
    assert replay.success
    assert epoch_fingerprint(fabric, epoch.epoch_id) == before
    assert fabric.table_counts() == counts  # no new call recorded, no row duplicated


def test_the_phase_job_checks_the_fabric_and_replays_the_latest_epoch(run_epoch, fabric, llm, instance):
    assert run_epoch(1).success and run_epoch(2).success
    result = phase_job.execute_in_process(instance=instance, resources={"fabric": fabric, "llm": llm})
    assert result.success
    events = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for e in events for k, v in e.event_specific_data.metadata.items()}
    assert metadata["replays"] == {"space_time-00002": "verified"}
    assert metadata["committed_without_chapter"] == 0 and metadata["incomplete_ballots"] == 0


def test_an_old_epoch_replays_from_the_chapters_its_prompt_retrieved(run_epoch, fabric, instance):
    """Retrieval is approximate (HNSW) and the index changes as the book grows: a replay must read the
    related chapters its epoch recorded, not search again."""
    for number in range(1, 6):
        assert run_epoch(number).success
    epoch = fabric.epoch(epoch_key("space_time", 4))
    assert epoch.context_chapters is not None and set(epoch.context_chapters) == {1, 2}
    before = epoch_fingerprint(fabric, epoch.epoch_id)
    unreachable = LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=900, max_retries=0, timeout_s=2,
                            fabric=fabric)

    def replay():
        return dg.materialize(epoch_assets, instance=instance, partition_key=epoch.epoch_key,
                              resources={"fabric": fabric, "llm": unreachable}, raise_on_error=False)

    assert replay().success  # after chapters 4 and 5 were written
    assert epoch_fingerprint(fabric, epoch.epoch_id) == before
    # the record, not a new search, decides the prompt: with another list it no longer matches its answers
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET context_chapters = %s WHERE epoch_id = %s",
                     ([epoch.context_chapters[0]], epoch.epoch_id))
    failed = replay()
    assert not failed.success
    logged = [entry.user_message for entry in instance.all_logs(failed.run_id)]
    assert any("forfeits space_time-00004: replay of space_time-00004: no recorded answer" in m for m in logged)
    assert fabric.epoch(epoch.epoch_key).status == "committed"  # a failed replay leaves the canon alone
    assert epoch_fingerprint(fabric, epoch.epoch_id) == before
