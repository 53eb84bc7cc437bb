"""bench/epoch.py's split of the dead time before an epoch: its parts, from literal timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.epoch import dead_time_parts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_dead_time_is_split_at_the_release():
    # commit at 0; released 0.05 s later; the opening step (waiting since -30) sends its first request at
    # 0.31; two round trips of 2 ms each in between, and 0.06 s of CPU from the last sample before the
    # release to the last one before the first call
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": at(0.31)}
    steps = [{"step": "roster_and_drafts", "start": at(-30.0), "end": at(4.0)},
             {"step": "peer_votes", "start": at(4.01), "end": at(5.0)}]
    trace = [(at(0.02).timestamp(), 0.002, "query", 0.98),  # before the release: not a round trip of it
             (at(0.10).timestamp(), 0.002, "query", 1.00), (at(0.20).timestamp(), 0.002, "query", 1.04),
             (at(1.0).timestamp(), 0.002, "query", 1.30)]  # the last one after the first call: not counted
    parts = dead_time_parts(at(0.0), row, steps, trace)
    assert {k: round(v, 6) for k, v in parts.items() if k != "epoch"} == {
        "dead_s": 0.31, "to_release_s": 0.05, "release_to_first_call_s": 0.26,
        "round_trips": 2, "round_trip_s": 0.004, "cpu_s": 0.06,
    }


def test_a_run_without_the_opening_step_has_no_parts():
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": at(0.31)}
    assert dead_time_parts(at(0.0), row, [{"step": "peer_votes", "start": at(1.0), "end": at(2.0)}], []) is None


def test_an_epoch_without_an_engine_call_has_no_parts():
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": None}
    assert dead_time_parts(at(0.0), row, [], []) is None
