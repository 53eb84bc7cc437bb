"""bench/epoch.py's split of the dead time before an epoch: its parts, from literal timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.epoch import dead_time_parts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_dead_time_is_split_at_the_release_the_roster_and_the_drafts_step():
    # commit at 0; released 0.05 s later; the roster ends at 0.12, the drafts step starts at 0.15 and
    # sends its first request at 0.31; two round trips of 2 ms each and 0.04 s of CPU in between
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": at(0.31)}
    steps = [{"step": "roster", "start": at(-30.0), "end": at(0.12)},
             {"step": "drafts", "start": at(0.15), "end": at(4.0)}]
    trace = [(at(0.10).timestamp(), 0.002, "query", 1.00), (at(0.20).timestamp(), 0.002, "query", 1.04),
             (at(1.0).timestamp(), 0.002, "query", 1.30)]  # the last one after the first call: not counted
    parts = dead_time_parts(at(0.0), row, steps, trace)
    assert {k: round(v, 6) for k, v in parts.items() if k != "epoch"} == {
        "dead_s": 0.31, "to_release_s": 0.05, "roster_after_release_s": 0.07, "roster_to_drafts_s": 0.03,
        "drafts_to_first_call_s": 0.16, "round_trips": 2, "round_trip_s": 0.004, "cpu_s": 0.04,
    }


def test_an_epoch_without_an_engine_call_has_no_parts():
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": None}
    assert dead_time_parts(at(0.0), row, [], []) is None
