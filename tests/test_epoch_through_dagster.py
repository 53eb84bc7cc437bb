"""One epoch, and the next, materialized through Dagster against the real fabric and engine."""

from __future__ import annotations

import dagster as dg
import pytest

from dream_pipeline.defs.epoch.partitions import epoch_key
from tests.fabric_helpers import alive_agents

MATERIALIZED = dg.DagsterEventType.ASSET_MATERIALIZATION


def _count(fabric, query: str, *params) -> int:
    with fabric.connection() as conn:
        return conn.execute(query, params).fetchone()["n"]


def _materialization(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    assert len(events) == 1, f"expected one materialization of {asset}"
    return events[0].materialization


def test_one_epoch_writes_the_whole_record(run_epoch, fabric, instance):
    result = run_epoch(1)
    assert result.success

    epoch = fabric.epoch(epoch_key("space_time", 1))
    assert epoch.status == "committed"
    assert len(epoch.active_agent_ids) == 5
    drafts = fabric.drafts(epoch.epoch_id)
    assert len(drafts) == 5
    assert all(d.embedding is not None and len(d.embedding) > 0 for d in drafts)
    assert all(d.completion_tokens <= 900 for d in drafts)
    for d in drafts:  # the flag is the engine's finish_reason; the penalty is what truncation and latency cost
        assert d.finish_reason in ("stop", "length")
        assert d.truncated is (d.finish_reason == "length")
        assert d.penalty == d.latency_penalty + (5.0 if d.finish_reason == "length" else 0.0)

    votes = fabric.votes(epoch.epoch_id)
    abstentions = fabric.abstentions(epoch.epoch_id)
    voters = {v.voter_agent for v in votes}
    assert len(voters) + len(abstentions) == 5
    assert len(votes) == 4 * len(voters)  # a cast of 5 fits the default window: everyone reviews everyone else
    assignments = fabric.review_assignments(epoch.epoch_id)
    assert len(assignments) == 5 * 4 and epoch.context_window == 8192
    assert {(v.voter_agent, v.target_agent) for v in votes} <= {(a.voter_agent, a.target_agent) for a in assignments}
    assert all(v.voter_agent != v.target_agent for v in votes)
    assert all(1 <= v.insight_score <= 10 for v in votes)
    assert all(v.masked_label.startswith("Anonymous_") and v.voter_agent not in v.masked_label for v in votes)

    ratings = fabric.ratings(epoch.epoch_id)
    assert len(ratings) == 5
    assert abs(sum(r.rating_after for r in ratings) - sum(r.rating_before for r in ratings)) < 1e-6
    chapter = fabric.chapter_for_epoch(epoch.epoch_id)
    assert chapter.chapter_number == 1
    assert chapter.agent_id == epoch.winner_agent_id
    assert chapter.text == next(d.text for d in drafts if d.agent_id == epoch.winner_agent_id)

    # the Reaper: the loser is retired (record kept, state cleared), a reserve persona took its seat
    alive = alive_agents(fabric, "space_time")
    assert len(alive) == 5
    assert epoch.loser_agent_id not in {a.instance_id for a in alive}
    with fabric.connection() as conn:
        loser = conn.execute("SELECT * FROM agents WHERE agent_id = %s", (epoch.loser_agent_id,)).fetchone()
        newcomer = conn.execute("SELECT * FROM agents WHERE replaced_agent_id = %s", (epoch.loser_agent_id,)).fetchone()
    assert loser["alive"] is False and loser["state"] == {} and loser["retired_epoch"] == 1
    assert newcomer["origin"] == "reserve" and newcomer["joined_epoch"] == 2 and newcomer["alive"]

    calls = _count(fabric, "SELECT count(*) AS n FROM llm_calls WHERE epoch_key = %s", epoch.epoch_key)
    assert calls >= 5 + 5 + 1  # drafts, ballots, one embedding batch
    assert _count(fabric, "SELECT count(*) AS n FROM telemetry WHERE epoch_key = %s", epoch.epoch_key) >= 10

    # the asset checks run after the Reaper's commit, so they never hold up the epoch or the next one
    steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert steps[:2] == ["roster_drafts_and_votes", "rankings_and_chapter"]
    assert sorted(steps[2:]) == ["chapter_one_chapter_per_epoch", "drafts_every_agent_drafted",
                                 "peer_votes_ballots_complete"]
    # one step opens the epoch, drafts and votes: no step boundary before the first draft request nor between
    # the drafts and the ballots; the three assets are materialized by it in the graph's order (Dagster's)
    opening = [e.asset_key.path[-1] for e in result.all_events
               if e.event_type_value == "ASSET_MATERIALIZATION" and e.step_key == "roster_drafts_and_votes"]
    assert opening == ["roster", "drafts", "peer_votes"]
    roster_written = next(e.timestamp for e in instance.all_logs(result.run_id, of_type=MATERIALIZED)
                          if e.dagster_event.asset_key.path[-1] == "roster")
    with fabric.connection() as conn:
        first_draft = conn.execute("SELECT min(started_at) AS t FROM llm_calls WHERE epoch_key = %s"
                                   " AND purpose = 'draft'", (epoch.epoch_key,)).fetchone()["t"]
    assert first_draft.timestamp() < roster_written  # the roster's events wait until the drafts are out
    drafts_written = next(e.timestamp for e in instance.all_logs(result.run_id, of_type=MATERIALIZED)
                          if e.dagster_event.asset_key.path[-1] == "drafts")
    with fabric.connection() as conn:
        first_ballot = conn.execute("SELECT min(started_at) AS t FROM llm_calls WHERE epoch_key = %s"
                                    " AND purpose = 'ballot'", (epoch.epoch_key,)).fetchone()["t"]
    assert first_ballot.timestamp() < drafts_written  # and the drafts' until the ballots are
    with fabric.connection() as conn:  # the next epoch can only start from this chapter's summary
        summary = conn.execute("SELECT s.created_at, e.end_time FROM book_summaries s JOIN simulation_epochs e"
                               " USING (epoch_id) WHERE e.epoch_key = %s", (epoch.epoch_key,)).fetchone()
    assert summary["created_at"] < summary["end_time"]  # written before the commit
    # one step ranks and closes the epoch; the summary's engine call goes out as soon as the winner is known:
    # from the opening step once the last ballot is in, before the closing step starts, and that one call is
    # the summary the closing step writes (it crowned the same draft, so it sends no other)
    closing = [e.asset_key.path[-1] for e in result.all_events
               if e.event_type_value == "ASSET_MATERIALIZATION" and e.step_key == "rankings_and_chapter"]
    assert closing == ["elo_rankings", "chapter"]
    closing_started = next(e.timestamp for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)
                           if e.step_key == "rankings_and_chapter")
    with fabric.connection() as conn:
        summary_calls = conn.execute("SELECT started_at FROM llm_calls WHERE epoch_key = %s AND purpose = 'summary'",
                                     (epoch.epoch_key,)).fetchall()
    assert len(summary_calls) == 1
    assert summary_calls[0]["started_at"].timestamp() < closing_started
    roster_md = _materialization(result, "roster").metadata["roster"].value
    assert all(name in roster_md for name in voters)

    chapter_md = _materialization(result, "chapter").metadata["chapter"].value
    assert chapter.title in chapter_md and chapter.text[:200] in chapter_md
    # where the epoch's time went (bench/epoch.py): the engine's critical path lies inside the epoch's wall
    profile = {k: v.value for k, v in _materialization(result, "chapter").metadata.items()}
    assert profile["epoch_wall_s"] >= profile["engine_critical_path_s"] > 0
    assert abs(profile["epoch_overhead_s"] - (profile["epoch_wall_s"] - profile["engine_critical_path_s"])) < 0.002
    # the pool's connections: a cold pool opens one per concurrent user (ballots are written from worker
    # threads as they arrive, so how many overlap is a matter of timing), never one per round trip
    assert profile["fabric_round_trips"] > 10 and profile["fabric_connects"] <= 8
    matrix = _materialization(result, "peer_votes").metadata["vote_matrix"].value
    assert all(name in matrix for name in voters)
    rankings = _materialization(result, "elo_rankings").metadata
    assert rankings["winner"].value in {r.agent_name for r in ratings}
    assert "BT (95 %)" in rankings["standings"].value and "voter_flags" in rankings
    assert "None" not in rankings["standings"].value
    for r in ratings:  # Bradley–Terry with bootstrap intervals, stored with the Elo ratings
        assert r.bt_lower is not None and r.bt_lower <= r.bt_rating <= r.bt_upper
    with fabric.connection() as conn:
        separated = conn.execute(
            "SELECT bottom_separated FROM simulation_epochs WHERE epoch_id = %s", (epoch.epoch_id,)
        ).fetchone()["bottom_separated"]
    # what produced the flag: the loser's upper Bradley–Terry bound against the lowest lower bound of
    # the others (epoch 1 has no newcomer: everyone is a candidate)
    by_id = {r.agent_id: r for r in ratings}
    loser_row = by_id[epoch.loser_agent_id]
    others = [r.bt_lower for r in ratings if r.agent_id != epoch.loser_agent_id]
    assert separated is (loser_row.bt_upper < min(others))
    assert rankings["bottom_separated"].value == ("true" if separated else "false")
    # and the loser has the lowest elimination score (shrunk window mean; ties: epoch score, then name)
    assert all(r.elimination_score is not None and r.window_epochs == 1 for r in ratings)
    lowest = min(ratings, key=lambda r: (r.elimination_score, r.epoch_score, r.agent_name))
    assert epoch.loser_agent_id == lowest.agent_id


def test_epochs_chain_and_a_rerun_changes_nothing(run_epoch, fabric):
    assert run_epoch(1).success
    assert run_epoch(2).success
    counts = fabric.table_counts()
    second = fabric.epoch(epoch_key("space_time", 2))
    # the newcomer seated by epoch 1 took part in epoch 2, and could not be eliminated there (grace)
    first = fabric.epoch(epoch_key("space_time", 1))
    with fabric.connection() as conn:
        newcomer = conn.execute(
            "SELECT agent_id FROM agents WHERE replaced_agent_id = %s", (first.loser_agent_id,)
        ).fetchone()["agent_id"]
    assert newcomer in second.active_agent_ids
    assert second.loser_agent_id != newcomer

    # every engine call knows when it was sent: the dead time runs from a commit to the next first call
    with fabric.connection() as conn:
        unstamped = conn.execute("SELECT count(*) AS n FROM llm_calls WHERE started_at IS NULL").fetchone()["n"]
        late = conn.execute("SELECT count(*) AS n FROM llm_calls WHERE started_at > created_at").fetchone()["n"]
    assert unstamped == 0 and late == 0
    timeline = {row["epoch_key"]: row for row in fabric.loop_timeline()}
    for row in timeline.values():
        assert row["released_at"] <= row["first_call_at"] <= row["end_time"]
    assert timeline[second.epoch_key]["first_call_at"] > timeline[first.epoch_key]["end_time"]

    assert run_epoch(2).success  # re-materialize a committed epoch
    after = fabric.table_counts()
    for table in ("agents", "simulation_epochs", "drafts", "peer_votes", "elo_ratings", "chapters"):
        assert after[table] == counts[table], table
    assert [c.chapter_number for c in fabric.chapters("space_time")] == [1, 2]
    assert len(alive_agents(fabric, "space_time")) == 5


def test_an_epoch_cannot_start_before_its_predecessor(run_epoch, fabric):
    result = run_epoch(2, raise_on_error=False)
    assert not result.success
    errors = [e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert any("space_time-00001 is not started and no live run can commit it" in m for m in errors)
    with pytest.raises(LookupError):
        fabric.epoch(epoch_key("space_time", 2))


def test_a_run_worker_keeps_its_dagster_storage_connection(tmp_path):
    """Dagster's postgres storage opens a connection per event by default; the roster makes the run's
    instance keep one, so the epoch's events after the barrier's release do not each pay for a connect."""
    import os

    import psycopg
    from psycopg import sql

    from dream_pipeline.defs.epoch.assets.roster import hold_storage_connection
    from resources import embedded_postgres

    if os.environ.get("DREAM_TEST_DATABASE_URL"):
        pytest.skip("needs the embedded server to create a Dagster storage database")
    server, name = embedded_postgres.server_url(), f"dagster_test_{os.getpid()}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = embedded_postgres.server_url(name).replace("postgresql://", "postgresql+psycopg2://")
    (tmp_path / "dagster.yaml").write_text(f'storage:\n  postgres:\n    postgres_url: "{url}"\n'
                                           "telemetry:\n  enabled: false\n")

    def sessions() -> int:
        with psycopg.connect(server, autocommit=True) as conn:
            return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()[0]

    @dg.asset
    def one() -> int:
        return 1

    opened = {}
    try:
        for held in (False, True):
            with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
                if held:
                    hold_storage_connection(instance)
                before = sessions()
                assert dg.materialize([one], instance=instance).success
                opened[held] = sessions() - before
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(drop)
    # a one-step run writes some twenty events: one connection each by default, a handful when held
    assert opened[False] >= 20 and opened[True] <= 8
