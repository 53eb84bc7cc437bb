"""sql/018: `epoch_timing`, one row per committed epoch with its duration and the gap before it split into
dead time and downtime. The migration applies on a fabric of the previous main and backfills its epochs;
the Reaper writes each new row in the commit's own transaction; a downtime noted late rewrites the rows it
overlaps; the deck's timing summary reads the table."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from deck import queries
from resources.fabric import ChapterRow, DraftRow, StateFabric
from resources.locations import sql_dir
from spica import SpicaBook
from tests.fabric_helpers import scratch_database

BOOK = "space_time"
TIMING = ("SELECT epoch_number, duration_s, dead_time_s, downtime_s FROM epoch_timing"
          " WHERE book = 'space_time' ORDER BY epoch_number")


@pytest.fixture
def scratch_url():
    with scratch_database("m018") as url:
        yield url


def _epoch(conn, number: int, start: str, end: str | None, status: str) -> None:
    conn.execute("INSERT INTO simulation_epochs (epoch_key, book, epoch_number, active_agent_ids, start_time,"
                 " end_time, status) VALUES (%s, 'space_time', %s, '{}', %s, %s, %s)",
                 (f"space_time-{number:05d}", number, start, end, status))


def test_018_applies_over_a_fabric_of_the_previous_main_and_backfills(scratch_url):
    earlier = [p for p in sorted(sql_dir().glob("*.sql")) if p.name < "018"]
    assert earlier[-1].name == "017_scale_indexes.sql"
    with psycopg.connect(scratch_url) as conn:  # what the previous main's migrate() left, with a book in it
        conn.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
                     " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for path in earlier:
            text = path.read_text(encoding="utf-8")
            conn.execute(text)
            conn.execute("INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                         (path.name, hashlib.sha256(text.encode()).hexdigest()))
        conn.execute("INSERT INTO domains (domain_id, instance_id, kind, manifest)"
                     " VALUES ('space_time', gen_random_uuid(), 'book', '{}')")
        _epoch(conn, 1, "2026-05-01 10:00:00+00", "2026-05-01 10:00:04+00", "committed")
        _epoch(conn, 2, "2026-05-01 10:00:05+00", "2026-05-01 10:00:08+00", "committed")
        _epoch(conn, 3, "2026-05-01 10:01:00+00", "2026-05-01 10:01:02.5+00", "committed")
        _epoch(conn, 4, "2026-05-01 10:01:03+00", None, "running")
        # the loop was stopped for 40 s of the 52 s gap before epoch 3
        conn.execute("INSERT INTO loop_downtime (down_from, down_until, resumed_by)"
                     " VALUES ('2026-05-01 10:00:10+00', '2026-05-01 10:00:50+00', 'dream run')")
    applied = StateFabric(database_url=scratch_url).migrate()
    assert applied == ["018_epoch_timing.sql"]
    with psycopg.connect(scratch_url) as conn:
        # the committed epochs only; the first has no gap before it
        assert conn.execute(TIMING).fetchall() == [(1, 4.0, None, None), (2, 3.0, 1.0, 0.0), (3, 2.5, 12.0, 40.0)]
        # a downtime noted after the fact (inside epoch 2's gap: 10:00:04 to 10:00:05) splits it anew
        conn.execute("INSERT INTO loop_downtime (down_from, down_until, resumed_by)"
                     " VALUES ('2026-05-01 10:00:04.25+00', '2026-05-01 10:00:04.5+00', 'loop sensor')")
        assert conn.execute(TIMING).fetchall()[1] == (2, 3.0, 0.75, 0.25)
    with queries.connect(queries.reader_url(scratch_url)) as conn:  # the deck's role reads it
        summary = queries.timing_summary(conn, BOOK)
        assert conn.execute("SELECT count(*) AS n FROM epoch_timing").fetchone()["n"] == 3
    # epochs 1-3 finished; the dead time of epochs 2, 3 and the running 4 (1 s after epoch 3's end)
    assert summary["finished"] == 3
    assert summary["mean_duration_s"] == pytest.approx(9.5 / 3)
    assert summary["mean_dead_s"] == pytest.approx((0.75 + 12.0 + 0.5) / 3)
    assert summary["total_dead_s"] == pytest.approx(13.25)
    assert summary["total_downtime_s"] == pytest.approx(40.25) and summary["restarts"] == 2


def _collapsed_epoch(fabric: StateFabric, number: int):
    epoch = fabric.open_epoch(BOOK, f"space_time-{number:05d}", number)
    agent = fabric.agents(epoch.active_agent_ids)[0]
    text = f"Chapter {number}. The tide came in over the causeway."
    [draft_id] = fabric.write_drafts(epoch.epoch_id, [
        DraftRow(agent.instance_id, agent.name, text, 0, len(text.split()), "stop", False, 0.0)])
    fabric.commit_chapter(epoch.epoch_id, BOOK, ChapterRow(
        number, draft_id, agent.instance_id, f"Title {number}", text, None, None))
    return epoch


def test_the_reaper_writes_the_timing_row_in_the_commits_transaction(scratch_url):
    fabric = StateFabric(database_url=scratch_url)
    fabric.migrate()
    fabric.ensure_book(SpicaBook.load("space_time"))
    first = _collapsed_epoch(fabric, 1)
    with psycopg.connect(scratch_url, autocommit=True) as listener:
        listener.execute("LISTEN dream_epochs")
        fabric.reap(first, None, None)
        [note] = list(listener.notifies(timeout=5, stop_after=1))
        # whoever the commit wakes finds the epoch's timing row already there
        row = listener.execute("SELECT t.epoch_id, t.duration_s, e.end_time - e.start_time AS took"
                               " FROM epoch_timing t JOIN simulation_epochs e USING (epoch_id)").fetchone()
    assert note.payload == "space_time-00001" and row[0] == first.epoch_id
    assert row[1] == pytest.approx(row[2].total_seconds())

    # a timing write that fails takes the commit (and its notification) down with it
    second = _collapsed_epoch(fabric, 2)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        conn.execute("ALTER FUNCTION record_epoch_timings(TEXT, INT, INT) RENAME TO record_epoch_timings_kept")
        conn.execute("CREATE FUNCTION record_epoch_timings(TEXT, INT, INT) RETURNS INT LANGUAGE plpgsql"
                     " AS $$BEGIN RAISE EXCEPTION 'timing refused'; END$$")
    with pytest.raises(psycopg.errors.RaiseException, match="timing refused"):
        fabric.reap(second, None, None)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert conn.execute("SELECT status FROM simulation_epochs WHERE epoch_number = 2").fetchone()[0] == "collapsed"
        conn.execute("DROP FUNCTION record_epoch_timings(TEXT, INT, INT)")
        conn.execute("ALTER FUNCTION record_epoch_timings_kept(TEXT, INT, INT) RENAME TO record_epoch_timings")
    assert not fabric.reap(second, None, None).already_done
    with psycopg.connect(scratch_url) as conn:
        rows = conn.execute("SELECT epoch_id, dead_time_s IS NOT NULL FROM epoch_timing"
                            " ORDER BY epoch_number").fetchall()
    assert rows == [(first.epoch_id, False), (second.epoch_id, True)]
