"""Both domains in one fabric: PHASE checks and replays each domain's latest epoch; a CodeRepair epoch
re-rolls into an alternate world with its candidates tested again, the canon untouched."""

from __future__ import annotations

from dream_pipeline.defs.phase.job import phase_job
from dream_pipeline.epoch.worlds import reroll


def test_phase_checks_and_replays_both_domains(run_epoch, fabric, llm, instance):
    assert run_epoch(1).success and run_epoch(1, book="code_repair").success
    result = phase_job.execute_in_process(instance=instance, resources={"fabric": fabric, "llm": llm})
    assert result.success
    events = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for e in events for k, v in e.event_specific_data.metadata.items()}
    assert metadata["replays"] == {"space_time-00001": "verified", "code_repair-00001": "verified"}
    assert metadata["untested_candidates"] == 0 and metadata["committed_without_chapter"] == 0

    # a candidate's test run missing from a committed CodeRepair epoch is a violation PHASE reports
    epoch = fabric.epoch("code_repair-00001")
    with fabric.connection() as conn:
        conn.execute("DELETE FROM candidate_tests WHERE draft_id = (SELECT draft_id FROM drafts"
                     " WHERE epoch_id = %s ORDER BY agent_name LIMIT 1)", (epoch.epoch_id,))
    assert fabric.integrity(epoch.epoch_id)["untested_candidates"] == 1
    broken = phase_job.execute_in_process(instance=instance, resources={"fabric": fabric, "llm": llm},
                                          raise_on_error=False)
    assert not broken.success


def test_a_code_repair_epoch_rerolls_with_its_candidates_tested_and_the_canon_unchanged(run_epoch, fabric, llm):
    assert run_epoch(1, book="code_repair").success
    epoch = fabric.epoch("code_repair-00001")
    before = fabric.canon_snapshot(epoch.epoch_id)
    world = reroll(fabric, llm, epoch.epoch_key)
    assert world.status == "complete"
    tests = world.document["tests"]
    assert {t["agent"] for t in tests} == {d["agent"] for d in world.document["drafts"]}
    best = max(tests, key=lambda t: t["fitness"])
    assert world.document["winner"] == best["agent"]
    assert world.document["chapter"]["title"] == fabric.repair_task(epoch.epoch_id)["task_id"]
    assert fabric.canon_snapshot(epoch.epoch_id) == before
    assert isinstance(world.document["chapter"]["text"], str)
