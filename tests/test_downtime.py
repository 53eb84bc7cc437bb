"""Downtime (the loop stopped) apart from dead time (its overhead): the pure rules, and `dream status` on the
real fabric after a stop and a start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dream_pipeline.cli.status import render_timeline
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.defs.loop.downtime import merged, note_resumption, resumed_downtime, split_gap
from resources.fabric import LlmCallRow, StateFabric
from spica import SpicaBook

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_sensor_tick_soon_after_the_last_is_no_downtime():
    assert resumed_downtime(s(100), s(90), s(95), ticking=True) is None
    assert resumed_downtime(s(100), s(90), s(85.5), ticking=True) is None  # 14.5 s: a slow tick


def test_a_late_tick_reaches_back_to_the_later_of_the_last_tick_and_the_last_commit():
    assert resumed_downtime(s(200), s(90), s(95), ticking=True) == (s(95), s(200))
    assert resumed_downtime(s(200), s(150), s(95), ticking=True) == (s(150), s(200))  # a `dream run` in between
    assert resumed_downtime(s(200), s(90), None, ticking=True) == (s(90), s(200))  # the sensor's first tick ever
    assert resumed_downtime(s(200), None, None, ticking=True) is None  # nothing committed yet


def test_dream_run_counts_the_time_since_the_last_commit():
    assert resumed_downtime(s(60), s(10)) == (s(10), s(60))
    assert resumed_downtime(s(60), None) is None


def test_a_gap_is_split_at_the_downtime():
    assert split_gap(s(0), s(100), [(s(10), s(90))]) == (20.0, 80.0)
    assert split_gap(s(0), s(100), []) == (100.0, 0.0)
    assert split_gap(s(0), s(100), [(s(-50), s(20)), (s(10), s(30)), (s(500), s(600))]) == (70.0, 30.0)


intervals = st.lists(st.tuples(st.integers(-100, 300), st.integers(1, 200)).map(lambda t: (s(t[0]), s(t[0] + t[1]))),
                     max_size=6)


@given(st.integers(0, 200), st.integers(0, 200), intervals)
def test_dead_and_down_add_up_to_the_gap(a, length, downtimes):
    dead, down = split_gap(s(a), s(a + length), downtimes)
    assert dead >= 0 and down >= 0 and abs(dead + down - length) < 1e-6


@given(intervals)
def test_merged_intervals_do_not_overlap(downtimes):
    out = merged(downtimes)
    assert all(a < b for a, b in out)
    assert all(prev[1] < nxt[0] for prev, nxt in zip(out, out[1:], strict=False))


def _committed_epoch(fabric: StateFabric, n: int, start: datetime, end: datetime) -> None:
    """An epoch of the real fabric whose first engine call was at `start` and whose commit at `end`."""
    key = epoch_key("space_time", n)
    fabric.open_epoch("space_time", key, n)
    fabric.record_llm_calls([LlmCallRow(key, "draft", None, {"n": n}, {}, 1, 1, 0.1, "ok", started_at=start)])
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET start_time = %s, released_at = %s, end_time = %s,"
                     " status = 'committed' WHERE epoch_key = %s", (start, start, end, key))


def test_status_shows_a_restart_as_downtime_not_dead_time(fabric: StateFabric):
    """Epochs 1–3 back to back, the loop stopped for 148 s, epoch 4 after the restart."""
    fabric.ensure_book(SpicaBook.load("space_time"))
    _committed_epoch(fabric, 1, s(0), s(10))
    _committed_epoch(fabric, 2, s(10.5), s(20))
    _committed_epoch(fabric, 3, s(20.4), s(30))
    assert note_resumption(fabric, s(178), "loop sensor", last_tick=s(29), ticking=True) == (s(30), s(178))
    assert note_resumption(fabric, s(180), "loop sensor", last_tick=s(178), ticking=True) is None
    _committed_epoch(fabric, 4, s(180), s(190))
    assert fabric.downtimes(s(0)) == [(s(30), s(178))]

    timeline = fabric.loop_timeline(5)
    lines = render_timeline(timeline, fabric.downtimes(timeline[0]["start_time"]), 4)
    rows = {line.split()[0]: line.split() for line in lines if line.strip().startswith("space_time-")}
    # the gap before epoch 4 is 150 s: 148 s down, 2 s dead
    assert rows["space_time-00004"][-2:] == ["2.00", "148.00"]
    assert rows["space_time-00002"][-1] == "0.50"  # no downtime, an empty column
    assert rows["space_time-00001"][-1] == "—"  # no epoch before it
    text = "\n".join(lines)
    assert "median 0.50 s, p95 2.00 s, max 2.00 s over 3 gaps" in text
    assert "downtime (the loop was stopped; not dead time): 148 s in 1 gap" in text


def test_status_names_the_epoch_job_without_importing_it():
    from dream_pipeline.cli.status import EPOCH_JOB_NAME
    from dream_pipeline.defs.epoch.jobs import epoch_job

    assert EPOCH_JOB_NAME == epoch_job.name == "epoch_job"
