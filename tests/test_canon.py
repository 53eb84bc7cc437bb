"""The canon is untouchable: a replay of a committed epoch verifies it against the fingerprint stored
at its commit and never rewrites a row; an altered record is reported as a diff and left as it is."""

from __future__ import annotations

import dagster as dg
import pytest
from psycopg.types.json import Jsonb

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.checks import epoch_checks
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.epoch import canon
from resources.fabric import CanonLocked, StateFabric
from resources.llm import LLMEngine
from tests.conftest import assert_checks_hold
from tests.fabric_helpers import epoch_fingerprint, write_votes

KEY = "space_time-00002"


def _unreachable(fabric: StateFabric) -> LLMEngine:
    """An engine nobody listens on: a replay must not need one."""
    return LLMEngine(base_url="http://127.0.0.1:9/v1", max_tokens=900, max_retries=0, timeout_s=2, fabric=fabric)


def _replay(instance, fabric, key: str = KEY, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([*epoch_assets, *epoch_checks], instance=instance, partition_key=key,
                          resources={"fabric": fabric, "llm": _unreachable(fabric)}, raise_on_error=False, **kwargs)


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(e.step_failure_data.error.message for e in result.all_events if e.is_step_failure)


@pytest.fixture
def two_epochs(run_epoch, fabric):
    assert run_epoch(1).success and run_epoch(2).success
    return fabric.epoch(KEY)


def test_the_commit_stores_the_fingerprint_of_what_the_epoch_decided(two_epochs, fabric):
    stored, sections = fabric.committed_fingerprint(two_epochs.epoch_id)
    assert set(sections) == {"drafts", "votes", "abstentions", "ratings", "outcome", "chapter"}
    assert stored == epoch_fingerprint(fabric, two_epochs.epoch_id)
    assert len(stored) == 64


def test_a_replay_verifies_and_leaves_every_row_byte_identical_ids_included(two_epochs, fabric, instance):
    before = fabric.canon_snapshot()
    chapter_id = before["chapters"]
    result = _replay(instance, fabric)
    assert result.success, _failure_text(result)
    assert_checks_hold(result)
    verified = {e.asset_key.to_user_string(): e.materialization.metadata["replay"].value
                for e in result.get_asset_materialization_events() if "replay" in e.materialization.metadata}
    assert verified == {"roster": "verifying the committed epoch (nothing is rewritten)", "drafts": "verified",
                        "peer_votes": "verified", "elo_rankings": "verified", "chapter": "verified"}
    after = fabric.canon_snapshot()
    assert after["chapters"] == chapter_id  # the chapter row, its id and commit time included
    assert after == before


def test_altered_votes_fail_the_replay_with_a_diff_and_change_nothing(two_epochs, fabric, instance):
    with fabric.connection() as conn:
        vote = conn.execute("SELECT voter_agent, target_agent, insight_score FROM peer_votes WHERE epoch_id = %s"
                            " ORDER BY voter_agent, target_agent LIMIT 1", (two_epochs.epoch_id,)).fetchone()
        altered = 1 if vote["insight_score"] != 1 else 10
        conn.execute("UPDATE peer_votes SET insight_score = %s WHERE epoch_id = %s AND voter_agent = %s"
                     " AND target_agent = %s", (altered, two_epochs.epoch_id, vote["voter_agent"], vote["target_agent"]))
    tampered = fabric.canon_snapshot()
    result = _replay(instance, fabric)
    assert not result.success
    text = _failure_text(result)
    assert f"votes[{vote['voter_agent']}→{vote['target_agent']}].insight_score: recorded {altered}, " \
           f"replayed {vote['insight_score']}" in text
    assert "votes: the stored rows changed after the commit" in text
    assert fabric.canon_snapshot() == tampered  # the replay wrote nothing, not even to undo the tampering
    assert fabric.epoch(KEY).status == "committed"


def test_an_altered_recorded_answer_fails_the_replay_midway_and_the_canon_keeps_every_draft(
        two_epochs, fabric, instance):
    with fabric.connection() as conn:
        call = conn.execute(
            "SELECT call_id, agent_name, response FROM llm_calls WHERE epoch_key = %s AND purpose = 'draft'"
            " AND status = 'ok' ORDER BY agent_name LIMIT 1", (KEY,)).fetchone()
        response = call["response"]
        response["choices"][0]["message"]["content"] = "An altered answer."
        conn.execute("UPDATE llm_calls SET response = %s WHERE call_id = %s", (Jsonb(response), call["call_id"]))
    before = fabric.canon_snapshot()
    result = _replay(instance, fabric)
    assert not result.success
    text = _failure_text(result)
    assert f"drafts[{call['agent_name']}].text: recorded" in text and '"An altered answer."' in text
    assert fabric.canon_snapshot() == before
    assert len(fabric.drafts(two_epochs.epoch_id)) == 5


def test_a_committed_epochs_rows_cannot_be_rewritten_by_a_step(two_epochs, fabric):
    drafts = fabric.drafts(two_epochs.epoch_id)
    with pytest.raises(CanonLocked, match="space_time-00002 is committed"):
        fabric.write_drafts(two_epochs.epoch_id, drafts)
    with pytest.raises(CanonLocked):
        write_votes(fabric, two_epochs.epoch_id, fabric.votes(two_epochs.epoch_id), [])
    assert len(fabric.drafts(two_epochs.epoch_id)) == 5
    assert fabric.chapter_for_epoch(two_epochs.epoch_id) is not None


def test_the_vote_steps_writes_refuse_a_committed_epoch_and_change_nothing(two_epochs, fabric):
    # each of them locks, refuses and clears in one statement: the refusal must come before any change
    epoch_id = two_epochs.epoch_id
    votes = fabric.votes(epoch_id)
    voter = votes[0].voter_agent
    before = fabric.canon_snapshot()
    writes = {
        "clear_votes": lambda: fabric.clear_votes(epoch_id),
        "write_review_design": lambda: fabric.write_review_design(epoch_id, []),
        "write_ballot": lambda: fabric.write_ballot(epoch_id, [v for v in votes if v.voter_agent == voter], None),
        "write_masked_terms": lambda: fabric.write_masked_terms(epoch_id, {}),
    }
    for name, write in writes.items():
        with pytest.raises(CanonLocked, match="space_time-00002 is committed"):
            write()
        assert fabric.canon_snapshot() == before, name
    assert len(fabric.review_assignments(epoch_id)) == 20 and fabric.votes(epoch_id) == votes


def test_rewriting_an_open_epochs_drafts_drops_its_uncommitted_chapter_in_one_transaction(run_epoch, fabric):
    assert run_epoch(1).success
    epoch = fabric.epoch(epoch_key("space_time", 1))
    with fabric.connection() as conn:  # as if the run had died between the chapter and the Reaper
        conn.execute("UPDATE simulation_epochs SET status = 'collapsed' WHERE epoch_id = %s", (epoch.epoch_id,))
    drafts = fabric.drafts(epoch.epoch_id)
    fabric.write_drafts(epoch.epoch_id, drafts)
    assert fabric.chapter_for_epoch(epoch.epoch_id) is None
    assert [d.draft_id for d in fabric.drafts(epoch.epoch_id)] == [d.draft_id for d in drafts]


def test_differences_name_the_item_and_the_field():
    recorded = [{"voter": "A", "target": "B", "insight_score": 7}, {"voter": "B", "target": "A", "insight_score": 3}]
    replayed = [{"voter": "A", "target": "B", "insight_score": 2}]
    assert canon.differences("votes", recorded, replayed) == [
        "votes[A→B].insight_score: recorded 7, replayed 2",
        "votes[B→A]: recorded, missing from the replay",
    ]
    assert canon.differences("outcome", {"winner": "x", "eliminated": "y"}, {"winner": "x", "eliminated": "z"}) == [
        'outcome[].eliminated: recorded "y", replayed "z"'
    ]
    assert canon.differences("chapter", None, None) == []
