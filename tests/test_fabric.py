"""The state fabric on a real PostgreSQL: migrations, constraints, idempotent epoch rewrites."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from resources.fabric import AbstentionRow, ChapterRow, DraftRow, EpochOrderError, StateFabric, VoteRow
from spica import SpicaBook
from tests.fabric_helpers import alive_agents, applied_migrations, epoch_fingerprint, write_votes


def _open(fabric: StateFabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    return fabric.open_epoch("space_time", "space_time-00001", 1)


def _drafts(epoch, fabric: StateFabric) -> list[DraftRow]:
    agents = fabric.agents(epoch.active_agent_ids)
    return [
        DraftRow(a.instance_id, a.name, f"text of {a.name}", 10, 20 + i, "stop", False, 0.1 * (i + 1),
                 embedding=[float(i), 1.0, 0.0])
        for i, a in enumerate(agents)
    ]


def _votes(epoch, fabric: StateFabric) -> list[VoteRow]:
    agents = fabric.agents(epoch.active_agent_ids)
    return [
        VoteRow(v.name, t.name, v.instance_id, t.instance_id, 5, "fine", f"Anonymous_Archivist_{i}", i)
        for v in agents
        for i, t in enumerate(a for a in agents if a is not v)
    ]


def test_migrations_are_recorded_and_idempotent(database_url):
    fresh = StateFabric(database_url=database_url)
    applied = applied_migrations(fresh)
    assert applied and applied[0] == "001_state_fabric.sql"
    from resources import fabric as fabric_module

    fabric_module._MIGRATED.clear()  # force a second pass over the same database
    assert fresh.migrate() == []
    assert applied_migrations(fresh) == applied


def test_book_seats_its_cast_once(fabric):
    book = SpicaBook.load("space_time")
    assert fabric.ensure_book(book) is True
    assert fabric.ensure_book(SpicaBook.load("space_time")) is False
    names = [a.name for a in alive_agents(fabric, "space_time")]
    assert sorted(names) == sorted(p["name"] for p in book.manifest["cast"])


def test_insight_score_and_self_votes_are_enforced_by_the_schema(fabric):
    epoch = _open(fabric)
    fabric.write_drafts(epoch.epoch_id, _drafts(epoch, fabric))
    good = _votes(epoch, fabric)
    bad_score = [VoteRow(**{**good[0].__dict__, "insight_score": 11})]
    with pytest.raises(psycopg.errors.CheckViolation):
        write_votes(fabric, epoch.epoch_id, bad_score, [])
    v = good[0]
    self_vote = [VoteRow(v.voter_agent, v.voter_agent, v.voter_agent_id, v.voter_agent_id, 5, "", "x", 0)]
    with pytest.raises(psycopg.errors.CheckViolation):
        write_votes(fabric, epoch.epoch_id, self_vote, [])
    assert fabric.votes(epoch.epoch_id) == []  # a failed batch leaves nothing behind


def test_rewriting_an_epoch_replaces_its_rows(fabric):
    epoch = _open(fabric)
    for _ in range(3):
        fabric.write_drafts(epoch.epoch_id, _drafts(epoch, fabric))
        write_votes(fabric, epoch.epoch_id, _votes(epoch, fabric), [AbstentionRow("Poet", "not_json", "{")])
    counts = fabric.table_counts()
    assert counts["drafts"] == 5
    assert counts["peer_votes"] == 20
    assert counts["vote_abstentions"] == 1
    stored = fabric.drafts(epoch.epoch_id)
    assert [round(x, 3) for x in stored[0].embedding] == [0.0, 1.0, 0.0]


def test_reopening_an_epoch_keeps_its_roster_and_order_is_enforced(fabric):
    epoch = _open(fabric)
    again = fabric.open_epoch("space_time", "space_time-00001", 1)
    assert again.epoch_id == epoch.epoch_id and again.active_agent_ids == epoch.active_agent_ids
    with pytest.raises(EpochOrderError, match="epoch 1 is running"):
        fabric.open_epoch("space_time", "space_time-00002", 2)


def test_the_reaper_commits_once_and_notifies(fabric):
    epoch = _open(fabric)
    ids = fabric.write_drafts(epoch.epoch_id, _drafts(epoch, fabric))
    agents = fabric.agents(epoch.active_agent_ids)
    loser = agents[-1]
    book = SpicaBook.load("space_time")
    fabric.commit_chapter(
        epoch.epoch_id, "space_time",
        ChapterRow(1, ids[0], agents[0].instance_id, "Opening", "text", 7.0, 1.0, [1.0, 0.0, 0.0]),
    )
    with psycopg.connect(fabric.url(), autocommit=True) as listener:
        listener.execute("LISTEN dream_epochs")
        first = fabric.reap(epoch, loser, book.recruit(book.reserve()[0], replaced=loser))
        notes = list(listener.notifies(timeout=2, stop_after=1))
    assert notes and notes[0].payload == "space_time-00001"
    second = fabric.reap(fabric.epoch("space_time-00001"), loser, book.recruit(book.reserve()[1], replaced=loser))
    assert first.retired == loser.name and not first.already_done
    assert first.replacement == book.reserve()[0]["name"]
    assert second == type(second)(None, None, already_done=True)
    with fabric.connection() as conn:
        retired = conn.execute("SELECT * FROM agents WHERE agent_id = %s", (loser.instance_id,)).fetchone()
        seated = conn.execute("SELECT * FROM agents WHERE replaced_agent_id = %s", (loser.instance_id,)).fetchall()
        end_time = conn.execute("SELECT end_time FROM simulation_epochs WHERE epoch_id = %s",
                                (epoch.epoch_id,)).fetchone()["end_time"]
    assert retired["alive"] is False and retired["state"] == {} and retired["retired_epoch"] == 1
    assert retired["retired_at"] is not None and end_time is not None
    assert len(seated) == 1 and seated[0]["name"] == first.replacement
    # the commit stores the fingerprint of the rows it decided, section by section
    stored, sections = fabric.committed_fingerprint(epoch.epoch_id)
    assert stored == epoch_fingerprint(fabric, epoch.epoch_id) and len(stored) == 64
    assert set(sections) == {"drafts", "votes", "abstentions", "ratings", "outcome", "chapter"}
    assert seated[0]["joined_epoch"] == 2 and seated[0]["alive"] is True and seated[0]["book"] == "space_time"
    assert len(alive_agents(fabric, "space_time")) == 5
    assert fabric.table_counts()["agents"] == 6
    assert fabric.epoch("space_time-00001").status == "committed"
    assert fabric.next_epoch_number("space_time") == 2


HOLD_KEY = 180_018  # an advisory lock the test holds to keep the Reaper's transaction from committing


@pytest.fixture
def commit_gate(fabric):
    """A deferred trigger that makes the commit of an epoch wait on an advisory lock held by the test:
    the Reaper's transaction stays open, everything done but the COMMIT, for as long as the test says."""
    with fabric.connection() as conn:
        conn.execute(
            "CREATE FUNCTION test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_advisory_xact_lock({HOLD_KEY}); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER test_hold_commit AFTER UPDATE ON simulation_epochs"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = 'committed')"
            " EXECUTE FUNCTION test_hold_commit()"
        )
    holder = psycopg.connect(fabric.url(), autocommit=True)
    try:
        yield holder
    finally:
        holder.close()
        with fabric.connection() as conn:
            conn.execute("DROP TRIGGER IF EXISTS test_hold_commit ON simulation_epochs")
            conn.execute("DROP FUNCTION IF EXISTS test_hold_commit()")


def test_the_reapers_notification_is_sent_by_its_commit(fabric, commit_gate):
    """No one waiting on `dream_epochs` hears of the epoch before its commit: while the transaction is
    held open nothing arrives and nothing is visible; once it commits, the note and the state arrive."""
    import threading

    epoch = _open(fabric)
    ids = fabric.write_drafts(epoch.epoch_id, _drafts(epoch, fabric))
    agents = fabric.agents(epoch.active_agent_ids)
    loser, book = agents[-1], SpicaBook.load("space_time")
    fabric.commit_chapter(
        epoch.epoch_id, "space_time", ChapterRow(1, ids[0], agents[0].instance_id, "Opening", "text", 7.0, 1.0),
    )
    outcome = {}
    with psycopg.connect(fabric.url(), autocommit=True) as listener:
        listener.execute("LISTEN dream_epochs")
        commit_gate.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))
        reaper = threading.Thread(target=lambda: outcome.setdefault(
            "reap", fabric.reap(epoch, loser, book.recruit(book.reserve()[0], replaced=loser))))
        reaper.start()
        try:
            early = list(listener.notifies(timeout=1.5, stop_after=1))
            seen = listener.execute(
                "SELECT status FROM simulation_epochs WHERE epoch_id = %s", (epoch.epoch_id,)
            ).fetchone()[0]
            assert reaper.is_alive()  # the Reaper is still inside its transaction, at the commit
        finally:
            commit_gate.execute("SELECT pg_advisory_unlock(%s)", (HOLD_KEY,))
        assert early == [] and seen == "collapsed"
        late = list(listener.notifies(timeout=10, stop_after=1))
        reaper.join(10)
        assert [n.payload for n in late] == ["space_time-00001"]
        after = listener.execute(
            "SELECT e.status, (SELECT count(*) FROM agents a WHERE a.replaced_agent_id = %s) AS seated"
            " FROM simulation_epochs e WHERE e.epoch_id = %s", (loser.instance_id, epoch.epoch_id)
        ).fetchone()
    assert after == ("committed", 1)  # what the notification announces is there for whoever heard it
    assert outcome["reap"].retired == loser.name


def _collapsed(fabric: StateFabric):
    epoch = _open(fabric)
    ids = fabric.write_drafts(epoch.epoch_id, _drafts(epoch, fabric))
    agents = fabric.agents(epoch.active_agent_ids)
    fabric.commit_chapter(
        epoch.epoch_id, "space_time", ChapterRow(1, ids[0], agents[0].instance_id, "Opening", "text", 7.0, 1.0),
    )
    return epoch, agents


def test_the_reaper_refuses_an_epoch_without_a_chapter(fabric):
    epoch = _open(fabric)
    loser = fabric.agents(epoch.active_agent_ids)[-1]
    with pytest.raises(RuntimeError, match=r"^epoch space_time-00001 has no committed chapter yet \(status running\)$"):
        fabric.reap(epoch, loser, None)
    assert fabric.epoch("space_time-00001").status == "running"
    assert len(alive_agents(fabric, "space_time")) == 5


def test_the_reaper_without_a_replacement_or_without_a_loser(fabric):
    epoch, agents = _collapsed(fabric)
    outcome = fabric.reap(epoch, agents[-1], None)  # the pool is empty and no mutation was made
    assert outcome == type(outcome)(agents[-1].name, None, already_done=False)
    assert {a.name for a in alive_agents(fabric, "space_time")} == {a.name for a in agents[:-1]}
    assert fabric.table_counts()["agents"] == 5
    assert fabric.epoch("space_time-00001").status == "committed"


def test_the_reaper_with_nobody_to_eliminate_only_commits(fabric):
    epoch, agents = _collapsed(fabric)
    book = SpicaBook.load("space_time")
    outcome = fabric.reap(epoch, None, book.recruit(book.reserve()[0], replaced=agents[-1]))
    assert outcome == type(outcome)(None, None, already_done=False)  # no loser: nobody retired, nobody seated
    assert len(alive_agents(fabric, "space_time")) == 5 and fabric.table_counts()["agents"] == 5
    assert fabric.epoch("space_time-00001").status == "committed"


def test_llm_calls_and_telemetry_are_stored(fabric):
    from resources.fabric import LlmCallRow

    agent = SpicaBook.load("space_time").initial_cast()[0]
    fabric.record_llm_calls([LlmCallRow("space_time-00001", "draft", agent.name, {"model": "m"}, None, 1, 2, 0.5, "ok")])
    for _ in range(2):
        agent.record_telemetry("draft", epoch_key="space_time-00001", tokens=3)
        fabric.record_telemetry(agent.drain_telemetry())
    counts = fabric.table_counts()
    assert counts["llm_calls"] == 1
    assert counts["telemetry"] == 1  # one event per instance per epoch, updated on rerun
    assert uuid.UUID(str(agent.instance_id))
